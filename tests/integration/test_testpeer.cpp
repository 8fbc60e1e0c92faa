// coap-edge-testpeer, the libcoap 4.3.5 client and stand-in upstream the relay and upstream
// tests stand on: its client against the simnode (a 5000-byte Block2 body, Observe), and its
// upstream mode with the client as the "gateway" (telemetry over DTLS-PSK with Block1, requests
// and an observation sent back over the gateway's own session). Loopback, free ports.

#include "harness.h"

#include <gtest/gtest.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <csignal>

#include <filesystem>
#include <memory>
#include <sstream>
#include <thread>

namespace coap_edge::test {
namespace {

using namespace std::chrono_literals;

// simnode's /big as its README documents it.
std::string bigPayload(std::size_t size) {
  std::string out(size, '\0');
  for (std::size_t i = 0; i < out.size(); ++i) {
    out[i] = i % 50 == 49 ? '\n' : static_cast<char>('a' + static_cast<int>(i % 26));
  }
  return out;
}

bool waitForText(const std::filesystem::path& file, const std::string& needle, std::chrono::milliseconds limit) {
  const auto deadline = std::chrono::steady_clock::now() + limit;
  while (readFile(file).find(needle) == std::string::npos) {
    if (std::chrono::steady_clock::now() >= deadline) return false;
    std::this_thread::sleep_for(20ms);
  }
  return true;
}

std::vector<std::string> lines(const std::string& text) {
  std::vector<std::string> out;
  std::istringstream in(text);
  for (std::string l; std::getline(in, l);) out.push_back(l);
  return out;
}

RunResult client(std::vector<std::string> args, std::chrono::milliseconds limit = 20s) {
  args.insert(args.begin(), {testpeerBinary(), "client"});
  return run(args, limit);
}

class TestpeerWithSimnode : public ::testing::Test {
 protected:
  void SetUp() override {
    port_ = freeUdpPort();
    log_ = dir_ / "simnode.log";
    node_ = std::make_unique<Child>(std::vector<std::string>{simnodeBinary(), "--name", "n1", "--listen",
                                                             "127.0.0.1:" + std::to_string(port_), "--big-size", "5000",
                                                             "--temp-period", "0.5"},
                                    std::map<std::string, std::string>{}, log_.string());
    ASSERT_TRUE(waitForText(log_, "ready", 10s)) << readFile(log_);
  }
  std::string uri(const std::string& path) const { return "coap://127.0.0.1:" + std::to_string(port_) + path; }

  TempDir dir_;
  std::uint16_t port_ = 0;
  std::filesystem::path log_;
  std::unique_ptr<Child> node_;
};

TEST_F(TestpeerWithSimnode, GetsA5000ByteBodyWithBlock2Exactly) {
  const auto r = client({"get", uri("/big")});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, bigPayload(5000));
  EXPECT_EQ(r.err, "");
}

TEST_F(TestpeerWithSimnode, PutAndPrintCode) {
  auto r = client({"--print-code", "-e", "on", "put", uri("/actuators/led")});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.err, "2.04\n");
  r = client({"get", uri("/actuators/led")});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, "on");
}

TEST_F(TestpeerWithSimnode, ErrorCodeAndDiagnosticOnStderrExit2) {
  const auto r = client({"get", uri("/no/such")});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_EQ(r.out, "");
  EXPECT_EQ(r.err.rfind("4.04", 0), 0u) << r.err;
}

TEST_F(TestpeerWithSimnode, ObservesForSecondsThenDeregisters) {
  const auto r = client({"-s", "3", "get", uri("/sensors/temp")}, 15s);
  EXPECT_EQ(r.exit_code, 0) << r.err;
  const auto got = lines(r.out);
  // The registration's answer and a notification every 0.5 s for 3 s.
  EXPECT_GE(got.size(), 4u) << r.out;
  for (const auto& l : got) EXPECT_EQ(l.size(), 4u) << l;  // "20.3"
  EXPECT_EQ(r.out.back(), '\n');
}

TEST(Testpeer, TimesOutWithExit3) {
  // A bound socket that never reads: no answer and no ICMP "port unreachable".
  const int fd = socket(AF_INET, SOCK_DGRAM, 0);
  ASSERT_GE(fd, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);
  socklen_t len = sizeof(addr);
  getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
  const auto start = std::chrono::steady_clock::now();
  const auto r = client({"--timeout", "1", "get", "coap://127.0.0.1:" + std::to_string(ntohs(addr.sin_port)) + "/x"}, 10s);
  const auto took = std::chrono::steady_clock::now() - start;
  close(fd);
  EXPECT_EQ(r.exit_code, 3) << r.err;
  EXPECT_EQ(r.err, "timeout after 1 s\n");
  EXPECT_LT(took, 5s);
}

class TestpeerUpstream : public ::testing::Test {
 protected:
  void start(std::vector<std::string> extra) {
    port_ = freeUdpPort();
    log_ = dir_ / "upstream.log";
    std::vector<std::string> argv{testpeerBinary(), "upstream", "--listen", "127.0.0.1:" + std::to_string(port_),
                                  "--psk-identity", "gw-1", "--psk-key", "secret-1", "--telemetry-log",
                                  (dir_ / "telemetry.jsonl").string(), "--out", (dir_ / "out.txt").string(),
                                  "--exit-after", "30"};
    argv.insert(argv.end(), extra.begin(), extra.end());
    upstream_ = std::make_unique<Child>(argv, std::map<std::string, std::string>{}, log_.string());
    ASSERT_TRUE(waitForText(log_, "listening on", 10s)) << readFile(log_);
  }
  std::string uri(const std::string& path) const { return "coaps://127.0.0.1:" + std::to_string(port_) + path; }
  std::vector<std::string> psk() const { return {"--psk-identity", "gw-1", "--psk-key", "secret-1"}; }

  TempDir dir_;
  std::uint16_t port_ = 0;
  std::filesystem::path log_;
  std::unique_ptr<Child> upstream_;
};

TEST_F(TestpeerUpstream, TelemetryPostsGoToTheLogAndBlock1IsReassembled) {
  start({});
  auto args = psk();
  args.insert(args.end(), {"-t", "112", "-e", "{\"t\":1}", "post", uri("/telemetry/x")});
  auto r = client(args);
  EXPECT_EQ(r.exit_code, 0) << r.err;
  const std::string body = bigPayload(5000);
  writeFile(dir_ / "big.txt", body);
  args = psk();
  args.insert(args.end(), {"-f", (dir_ / "big.txt").string(), "put", uri("/telemetry/a/b")});
  r = client(args);
  EXPECT_EQ(r.exit_code, 0) << r.err;
  ASSERT_TRUE(waitForText(log_, "telemetry PUT /telemetry/a/b (5000 bytes)", 5s)) << readFile(log_);
  const auto got = lines(readFile(dir_ / "telemetry.jsonl"));
  ASSERT_EQ(got.size(), 2u);
  EXPECT_EQ(got[0], "{\"path\":\"/telemetry/x\",\"cf\":112,\"payload_hex\":\"" + hexOf("{\"t\":1}") + "\"}");
  EXPECT_EQ(got[1], "{\"path\":\"/telemetry/a/b\",\"cf\":null,\"payload_hex\":\"" + hexOf(body) + "\"}");
  EXPECT_TRUE(waitForText(log_, "established (identity gw-1)", 1s)) << readFile(log_);
  // Elsewhere: 4.04.
  args = psk();
  args.insert(args.end(), {"-e", "x", "post", uri("/other")});
  r = client(args);
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_EQ(r.err.rfind("4.04", 0), 0u) << r.err;
  upstream_->signal(SIGTERM);
  EXPECT_EQ(upstream_->wait(5s), 0);
}

TEST_F(TestpeerUpstream, RefusesAnotherIdentityOrKey) {
  start({});
  auto r = client({"--psk-identity", "gw-2", "--psk-key", "secret-1", "--timeout", "5", "-e", "x", "post",
                   uri("/telemetry/x")});
  EXPECT_EQ(r.exit_code, 4) << r.err;
  r = client({"--psk-identity", "gw-1", "--psk-key-hex", "00ff", "--timeout", "5", "-e", "x", "post",
              uri("/telemetry/x")});
  EXPECT_EQ(r.exit_code, 4) << r.err;
  EXPECT_EQ(readFile(dir_ / "telemetry.jsonl"), "");
}

TEST_F(TestpeerUpstream, DropTelemetryAnswers503First) {
  start({"--drop-telemetry", "1"});
  auto args = psk();
  args.insert(args.end(), {"-e", "x", "post", uri("/telemetry/x")});
  auto r = client(args);
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_EQ(r.err.rfind("5.03", 0), 0u) << r.err;
  r = client(args);
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(lines(readFile(dir_ / "telemetry.jsonl")).size(), 1u);
}

TEST_F(TestpeerUpstream, SendsRequestsAndObservesOverTheGatewaysSession) {
  start({"--request", "GET /big", "--request", "GET /nothing", "--observe", "/tick", "--observe-seconds", "2"});
  // The client stands in for the gateway: it opens the session with a telemetry POST and
  // then stays (--linger), serving /big (5000 bytes, Block2) and an observable /tick.
  auto args = psk();
  args.insert(args.end(), {"--linger", "5", "--big-size", "5000", "-e", "x", "post", uri("/telemetry/x")});
  const auto r = client(args, 15s);
  EXPECT_EQ(r.exit_code, 0) << r.err;
  ASSERT_TRUE(waitForText(dir_ / "out.txt", "done (", 5s)) << readFile(dir_ / "out.txt") << readFile(log_);
  const auto got = lines(readFile(dir_ / "out.txt"));
  ASSERT_GE(got.size(), 5u) << readFile(dir_ / "out.txt");
  EXPECT_EQ(got[0], "REQ GET /big -> 2.05 5000 " + hexOf(bigPayload(5000)));  // '\n' is not printable: hex
  EXPECT_EQ(got[1], "REQ GET /nothing -> 4.04 9 Not Found");
  EXPECT_EQ(got[2], "OBSERVE /tick -> 2.05");
  EXPECT_EQ(got[3].rfind("NOTIFY tick ", 0), 0u) << got[3];
  EXPECT_GE(got.size(), 6u);  // a notification every 0.5 s for 2 s
  EXPECT_EQ(got.back().rfind("OBSERVE /tick done (", 0), 0u) << got.back();
}

}  // namespace
}  // namespace coap_edge::test
