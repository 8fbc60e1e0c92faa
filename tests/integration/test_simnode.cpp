// coap-edge-simnode, the simulated constrained node the discovery, relay and RD tests stand on,
// checked against Debian's libcoap 4.3.1 tools (an independent CoAP implementation) in a
// network-namespace lab: multicast discovery over IPv4 and IPv6, Block2, PUT, Observe, sleep,
// and registration at coap-rd.

#include "avahi_sandbox.h"
#include "harness.h"
#include "netns_lab.h"

#include <gtest/gtest.h>

#include <csignal>
#include <filesystem>
#include <memory>
#include <set>
#include <thread>

namespace coap_edge::test {
namespace {

using namespace std::chrono_literals;

constexpr const char* kClient = "coap-client-notls";

// The /big payload as README.md documents it.
std::string bigPayload() {
  std::string out(3000, '\0');
  for (std::size_t i = 0; i < out.size(); ++i) {
    out[i] = i % 50 == 49 ? '\n' : static_cast<char>('a' + static_cast<int>(i % 26));
  }
  return out;
}

std::size_t count(const std::string& text, const std::string& needle) {
  std::size_t n = 0;
  for (auto pos = text.find(needle); pos != std::string::npos; pos = text.find(needle, pos + 1)) ++n;
  return n;
}

bool waitForText(const std::filesystem::path& file, const std::string& needle, std::chrono::milliseconds limit,
                 std::size_t occurrences = 1) {
  const auto deadline = std::chrono::steady_clock::now() + limit;
  while (count(readFile(file), needle) < occurrences) {
    if (std::chrono::steady_clock::now() >= deadline) return false;
    std::this_thread::sleep_for(20ms);
  }
  return true;
}

class SimnodeLab : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!NetnsLab::available()) GTEST_SKIP() << NetnsLab::unavailableReason();
    if (!std::filesystem::exists(std::string("/usr/bin/") + kClient)) {
      GTEST_SKIP() << kClient << " is missing (Debian package libcoap3-bin)";
    }
    lab_ = std::make_unique<NetnsLab>();
    lab_->addHost("n1");
    lab_->addHost("n2");
    lab_->addHost("client");
  }

  // Starts a node in `host`, named like the host, and waits until it is ready.
  std::filesystem::path startNode(const std::string& host, std::vector<std::string> args = {},
                                  const std::map<std::string, std::string>& env = {}) {
    const auto log = dir_ / (host + ".log");
    std::vector<std::string> argv{simnodeBinary(), "--name", host};
    argv.insert(argv.end(), args.begin(), args.end());
    nodes_.push_back(std::make_unique<Child>(lab_->inHost(host, argv), env, log.string()));
    logs_.push_back(log);
    EXPECT_TRUE(waitForText(log, "ready", 10s)) << readFile(log);
    return log;
  }

  RunResult client(const std::string& host, std::vector<std::string> args, std::chrono::milliseconds limit = 20s) {
    args.insert(args.begin(), kClient);
    return run(lab_->inHost(host, args), limit);
  }

  // Debian's RD and server have no readiness signal: wait (bounded) until their port is bound.
  bool waitForUdpPort(const std::string& host, int port) const {
    for (int i = 0; i < 100; ++i) {
      if (lab_->run(host, "ss -Huln | grep -q ':" + std::to_string(port) + " '") == 0) return true;
      std::this_thread::sleep_for(50ms);
    }
    return false;
  }

  std::string uri(const std::string& host, const std::string& path) const {
    return "coap://" + lab_->ipv4(host) + "/" + path;
  }

  // Every node still running ends on SIGTERM with exit 0 (and, in the sanitizer build, without
  // a report: ASan/LSan/UBSan make the exit code non-zero).
  void TearDown() override {
    for (std::size_t i = 0; i < nodes_.size(); ++i) {
      if (!nodes_[i]->running()) continue;
      nodes_[i]->signal(SIGTERM);
      EXPECT_EQ(nodes_[i]->wait(10s), std::optional<int>(0)) << readFile(logs_[i]);
    }
  }

  TempDir dir_;
  std::unique_ptr<NetnsLab> lab_;
  std::vector<std::filesystem::path> logs_;
  std::vector<std::unique_ptr<Child>> nodes_;  // declared last: stopped before the lab goes
};

TEST_F(SimnodeLab, MulticastDiscoveryOverIpv4AndIpv6FindsBothNodesOnce) {
  startNode("n1", {"--join", "eth0"});
  startNode("n2", {"--join", "eth0"});
  // Non-confirmable (RFC 7252 §8.1); -B covers the nodes' random delay within the Leisure (1 s).
  for (const std::string target : {"coap://224.0.1.187/.well-known/core", "coap://[ff02::fd%eth0]/.well-known/core",
                                    "coap://[ff05::fd]/.well-known/core"}) {
    const RunResult r = client("client", {"-N", "-B", "3", "-m", "get", target});
    EXPECT_EQ(count(r.out, "title=\"n1 temperature\""), 1u) << target << ": " << r.out << r.err;
    EXPECT_EQ(count(r.out, "title=\"n2 temperature\""), 1u) << target << ": " << r.out << r.err;
    EXPECT_EQ(count(r.out, "</sensors/temp>"), 2u) << target << ": " << r.out;
    EXPECT_EQ(count(r.out, "rt=\"light\""), 2u) << target << ": " << r.out;
    EXPECT_EQ(count(r.out, "</big>;sz=3000"), 2u) << target << ": " << r.out;
    EXPECT_NE(r.out.find("if=\"core.s\""), std::string::npos) << r.out;
    EXPECT_NE(r.out.find("rt=\"temperature\";obs"), std::string::npos) << r.out;
  }
}

TEST_F(SimnodeLab, MulticastGetsNoEmptyOrErrorAnswers) {
  startNode("n1", {"--join", "eth0"});
  startNode("n2", {"--join", "eth0"});
  const RunResult light = client("client", {"-N", "-B", "3", "-m", "get", "coap://224.0.1.187/.well-known/core?rt=light"});
  EXPECT_EQ(count(light.out, "</actuators/led>"), 2u) << light.out;
  EXPECT_EQ(light.out.find("</sensors/temp>"), std::string::npos) << light.out;
  // A filter that matches nothing, and a resource nobody has: silence (RFC 7252 §8.2, RFC 6690 §4.1).
  // coap-client prints no payload for an empty answer: count the answers in its PDU log (-v 7),
  // where the two answers to ?rt=light show up as "c:2.05".
  auto answers = [&](const std::string& target) {
    const RunResult r = client("client", {"-v", "7", "-N", "-B", "3", "-m", "get", target});
    return count(r.out + r.err, "c:2.05") + count(r.out + r.err, "c:4.") + count(r.out + r.err, "c:5.");
  };
  EXPECT_EQ(answers("coap://224.0.1.187/.well-known/core?rt=light"), 2u);
  EXPECT_EQ(answers("coap://224.0.1.187/.well-known/core?rt=none"), 0u);
  EXPECT_EQ(answers("coap://[ff02::fd%eth0]/.well-known/core?rt=none"), 0u);
  EXPECT_EQ(answers("coap://224.0.1.187/missing"), 0u);
  // The same questions asked by unicast are answered.
  const RunResult unicast_missing = client("client", {"-B", "3", "-m", "get", uri("n1", "missing")});
  EXPECT_NE((unicast_missing.out + unicast_missing.err).find("4.04"), std::string::npos) << unicast_missing.out;
}

TEST_F(SimnodeLab, BigResourceArrivesWholeThroughBlock2OverBothFamilies) {
  startNode("n1");
  const RunResult v4 = client("client", {"-B", "5", "-m", "get", uri("n1", "big")});
  // coap-client ends its output with a newline of its own.
  EXPECT_EQ(v4.out, bigPayload() + "\n") << v4.err;
  const RunResult v6 = client("client", {"-B", "5", "-m", "get", "coap://[" + lab_->ipv6("n1") + "]/big"});
  EXPECT_EQ(v6.out, bigPayload() + "\n") << v6.err;
}

TEST_F(SimnodeLab, PutOnTheLedIsKeptPerNode) {
  startNode("n1");
  startNode("n2");
  EXPECT_EQ(client("client", {"-B", "3", "-m", "get", uri("n1", "actuators/led")}).out, "off\n");
  const RunResult put = client("client", {"-B", "3", "-m", "put", "-e", "on", uri("n1", "actuators/led")});
  EXPECT_EQ(put.exit_code, 0) << put.err;
  EXPECT_EQ(client("client", {"-B", "3", "-m", "get", uri("n1", "actuators/led")}).out, "on\n");
  EXPECT_EQ(client("client", {"-B", "3", "-m", "get", uri("n2", "actuators/led")}).out, "off\n");
  // Longer than a constrained node keeps: refused, the value stays.
  const RunResult big = client("client", {"-B", "3", "-m", "put", "-e", std::string(40, 'x'), uri("n1", "actuators/led")});
  EXPECT_NE((big.out + big.err).find("4.13"), std::string::npos) << big.out << big.err;
  EXPECT_EQ(client("client", {"-B", "3", "-m", "get", uri("n1", "actuators/led")}).out, "on\n");
}

TEST_F(SimnodeLab, ObserverSeesTheTemperatureChange) {
  startNode("n1", {"--temp-period", "1"});
  const RunResult r = client("client", {"-s", "5", "-m", "get", uri("n1", "sensors/temp")}, 20s);
  // Values are "dd.d", printed back to back by coap-client.
  std::string values = r.out;
  if (!values.empty() && values.back() == '\n') values.pop_back();
  ASSERT_EQ(values.size() % 4, 0u) << r.out;
  std::set<std::string> distinct;
  for (std::size_t i = 0; i < values.size(); i += 4) distinct.insert(values.substr(i, 4));
  EXPECT_GE(distinct.size(), 2u) << r.out << r.err;
}

TEST_F(SimnodeLab, ASleepingNodeAnswersNothingUntilItWakes) {
  const auto log = startNode("n1", {"--sleep-every", "2", "--sleep-for", "4"});
  ASSERT_TRUE(waitForText(log, "sleeping for 4 s", 10s)) << readFile(log);
  const RunResult asleep = client("client", {"-B", "1", "-m", "get", uri("n1", "actuators/led")});
  EXPECT_EQ(asleep.out, "") << "answered while asleep";
  ASSERT_TRUE(waitForText(log, "awake for 2 s", 10s)) << readFile(log);
  const RunResult awake = client("client", {"-B", "3", "-m", "get", uri("n1", "actuators/led")});
  EXPECT_EQ(awake.out, "off\n") << awake.err;
}

TEST_F(SimnodeLab, RegistersAtAnRdAndLeavesOnSigterm) {
  if (!std::filesystem::exists("/usr/bin/coap-rd-gnutls")) GTEST_SKIP() << "coap-rd-gnutls is missing (libcoap3-bin)";
  // Debian's RD takes the PSK as a string; the node reads it as hex. At -v 7 it logs each PDU.
  const auto rd_log = dir_ / "rd.log";
  // libcoap's examples log to stdout.
  Child rd(lab_->inHost("client", {"coap-rd-gnutls", "-A", lab_->ipv4("client"), "-k", "rd-secret", "-v", "7"}), {},
           (dir_ / "rd.err").string(), rd_log.string());
  writeFile(dir_ / "psk", hexOf("rd-secret") + "\n");
  const std::string rd_uri = "coaps://" + lab_->ipv4("client") + ":5684";
  ASSERT_TRUE(waitForUdpPort("client", 5684));
  const auto log = startNode("n1", {"--rd", rd_uri, "--psk-identity", "n1", "--psk-key-file", (dir_ / "psk").string(),
                                    "--lifetime", "4"});
  ASSERT_TRUE(waitForText(log, "location /rd/", 20s)) << readFile(log);
  const std::string text = readFile(log);
  const auto at = text.find("location /rd/") + std::string("location ").size();
  const std::string location = text.substr(at, text.find(' ', at) - at);
  // What the RD got: POST /rd?ep=n1&lt=4, Content-Format 40, the node's links.
  const std::string rd_text = readFile(rd_log);
  EXPECT_NE(rd_text.find("c:POST"), std::string::npos) << rd_text;
  EXPECT_NE(rd_text.find("Uri-Path:rd, Content-Format:application/link-format, Uri-Query:ep=n1, Uri-Query:lt=4"),
            std::string::npos)
      << rd_text;
  // The RD keeps the node's links under the location the node printed.
  const RunResult stored = client("client", {"-B", "3", "-m", "get", uri("client", location.substr(1))});
  EXPECT_NE(stored.out.find("</sensors/temp>;title=\"n1 temperature\""), std::string::npos) << stored.out;
  EXPECT_NE(stored.out.find("</big>;sz=3000"), std::string::npos) << stored.out;
  // Debian's RD answers a refresh with 4.04: the node registers again (lifetime 4 s: within ~3 s).
  EXPECT_TRUE(waitForText(log, "registering again", 15s)) << readFile(log);
  EXPECT_TRUE(waitForText(log, "location /rd/", 15s, 2)) << readFile(log);
  nodes_.back()->signal(SIGTERM);
  EXPECT_EQ(nodes_.back()->wait(10s), std::optional<int>(0)) << readFile(log);
  EXPECT_NE(readFile(log).find("left the RD: DELETE /rd/"), std::string::npos) << readFile(log);
  EXPECT_NE(readFile(log).find("got 2.02"), std::string::npos) << readFile(log);
}

TEST_F(SimnodeLab, ARefusedRegistrationEndsTheNodeWithTheCodeAndReason) {
  // A CoAP server without an RD stands in for an RD that refuses: POST /rd gets 4.04.
  Child server(lab_->inHost("client", {"coap-server-gnutls", "-A", lab_->ipv4("client"), "-k", "rd-secret"}));
  writeFile(dir_ / "psk", hexOf("rd-secret") + "\n");
  ASSERT_TRUE(waitForUdpPort("client", 5684));
  const RunResult r = run(lab_->inHost("n1", {simnodeBinary(), "--name", "n1", "--rd",
                                              "coaps://" + lab_->ipv4("client") + ":5684", "--psk-identity", "n1",
                                              "--psk-key-file", (dir_ / "psk").string(), "--rd-ep", "someone-else"}),
                          60s);
  EXPECT_EQ(r.exit_code, 2) << r.err;
  EXPECT_NE(r.err.find("as ep someone-else failed: registration refused: 4.04"), std::string::npos) << r.err;
  // A key the RD does not know: the handshake fails, and the node says so.
  writeFile(dir_ / "wrong", hexOf("not-the-key") + "\n");
  const RunResult wrong = run(lab_->inHost("n1", {simnodeBinary(), "--name", "n1", "--rd",
                                                  "coaps://" + lab_->ipv4("client") + ":5684", "--psk-identity", "n1",
                                                  "--psk-key-file", (dir_ / "wrong").string()}),
                              60s);
  EXPECT_EQ(wrong.exit_code, 2) << wrong.err;
  EXPECT_NE(wrong.err.find("DTLS handshake failed"), std::string::npos) << wrong.err;
}

TEST_F(SimnodeLab, PublishesItselfThroughAvahiOnTheSegment) {
  if (const auto why = AvahiSandbox::unavailableReason(); !why.empty()) GTEST_SKIP() << why;
  // One avahi-daemon where the node runs, another where the browser runs: mDNS crosses the lab.
  AvahiSandbox node_side({lab_->netns("n1"), {"eth0"}, "n1-host", true});
  ASSERT_TRUE(node_side.waitRunning()) << node_side.logs();
  AvahiSandbox browser_side({lab_->netns("client"), {"eth0"}, "client-host", true});
  ASSERT_TRUE(browser_side.waitRunning()) << browser_side.logs();
  const auto log = startNode("n1", {"--avahi", "--listen", "[::]:5699"}, node_side.clientEnv());
  ASSERT_TRUE(waitForText(log, "avahi: published n1 as _coap._udp port 5699", 10s)) << readFile(log);
  // -r resolves, -t stops after the cache is dumped, -p parsable: ...;NAME;TYPE;DOMAIN;HOST;ADDR;PORT;TXT
  bool seen = false;
  std::string last;
  for (int i = 0; i < 10 && !seen; ++i) {
    const RunResult r = run(lab_->inHost("client", {"avahi-browse", "-rtp", "_coap._udp"}), 15s, "", browser_side.clientEnv());
    last = r.out + r.err;
    seen = r.out.find(lab_->ipv4("n1") + ";5699;\"ep=n1\"") != std::string::npos &&
           r.out.find(";n1;_coap._udp;local;") != std::string::npos;
  }
  EXPECT_TRUE(seen) << last;
}

TEST_F(SimnodeLab, WithoutAnAvahiDaemonTheNodeSaysSoAndServesAnyway) {
  const auto log = startNode("n1", {"--avahi"}, {{"DBUS_SYSTEM_BUS_ADDRESS", "unix:path=" + (dir_ / "no-bus").string()}});
  EXPECT_NE(readFile(log).find("avahi: daemon not reachable"), std::string::npos) << readFile(log);
  EXPECT_EQ(client("client", {"-B", "3", "-m", "get", uri("n1", "actuators/led")}).out, "off\n");
}

TEST(SimnodeCli, BadArgumentsAreRefusedWithTheReason) {
  TempDir dir;
  writeFile(dir / "bad.hex", "not hex\n");
  const RunResult no_key = run({simnodeBinary(), "--rd", "coaps://127.0.0.1:5684", "--psk-identity", "x"});
  EXPECT_EQ(no_key.exit_code, 1);
  EXPECT_NE(no_key.err.find("--rd needs --psk-identity and --psk-key-file"), std::string::npos) << no_key.err;
  const RunResult bad_key = run({simnodeBinary(), "--name", "x", "--listen", "127.0.0.1:0", "--rd",
                                 "coaps://127.0.0.1:5684", "--psk-identity", "x", "--psk-key-file",
                                 (dir / "bad.hex").string()});
  EXPECT_EQ(bad_key.exit_code, 1);
  EXPECT_NE(bad_key.err.find("does not hold one line of hex"), std::string::npos) << bad_key.err;
  const RunResult listen = run({simnodeBinary(), "--listen", "localhost:5683"});
  EXPECT_EQ(listen.exit_code, 1);
  EXPECT_NE(listen.err.find("--listen: 'localhost:5683'"), std::string::npos) << listen.err;
  const RunResult help = run({simnodeBinary(), "--help"});
  EXPECT_EQ(help.exit_code, 0);
  EXPECT_NE(help.out.find("--sleep-every"), std::string::npos);
}

}  // namespace
}  // namespace coap_edge::test
