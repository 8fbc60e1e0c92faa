// The relay end to end (issue #5, downstream side): the agent in a network-namespace lab finds a
// coap-edge-simnode by multicast and relays /nodes/{id}/... to it; Debian's coap-client-gnutls
// (an independent DTLS stack) is the client. The node logs every request it handles
// (--log-requests), so the tests count what reached it: cache hits and coalesced requests must
// not, two observers must make one observation. Root only (network namespaces).

#include "coap_clients.h"
#include "harness.h"
#include "netns_lab.h"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <csignal>
#include <fstream>
#include <regex>
#include <set>
#include <sstream>
#include <thread>

namespace coap_edge::test {
namespace {

using namespace std::chrono_literals;

constexpr const char* kTester = "tester";
constexpr const char* kTesterKey = "tester-secret-key-1";
constexpr int kBigSize = 5000;  // > 4 KiB: Block2 from the node and again to the client

// Temperature values in an observer's output (coap-client prints each payload, no separator).
std::size_t valuesIn(const std::string& out) {
  const std::regex value("2[0-9]\\.[0-9]");
  return static_cast<std::size_t>(std::distance(std::sregex_iterator(out.begin(), out.end(), value), std::sregex_iterator()));
}

// What `--big-size` makes the simnode serve (tests/support/simnode/resources.cpp).
std::string bigPayload(std::size_t size) {
  std::string out(size, '\0');
  for (std::size_t i = 0; i < size; ++i) out[i] = i % 50 == 49 ? '\n' : static_cast<char>('a' + i % 26);
  return out;
}

class RelayLab : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!NetnsLab::available()) GTEST_SKIP() << NetnsLab::unavailableReason();
    lab_ = std::make_unique<NetnsLab>();
    lab_->addHost("gw");
    lab_->addHost("n1");
    startNode();
    std::this_thread::sleep_for(500ms);  // the node joins its groups
    const std::string config =
        "[agent]\nname = \"gw-lab\"\nstate_dir = \"" + (dir_ / "state").string() +
        "\"\nlog_level = \"debug\"\n[downstream]\nlisten = [\"" + lab_->ipv4("gw") + ":5684\"]\n" +
        "[discovery]\ninterfaces = [\"eth0\"]\nmulticast = true\ninterval = \"5s\"\nleisure = \"2s\"\n"
        "node_ttl = \"60s\"\ndns_sd = false\n" + extraConfig() +
        "[[acl]]\nidentity = \"" + kTester + "\"\nallow = [\"GET /nodes\", \"GET /nodes/**\", \"PUT /nodes/*/actuators/**\", "
        "\"DELETE /nodes/**\", \"GET /status\"]\n";
    writeFile(dir_ / "agent.toml", config);
    const auto imported = ctl(dir_ / "agent.toml", {"keys", "import", "-"}, std::string(kTester) + "," + hexOf(kTesterKey) + "\n");
    ASSERT_EQ(imported.exit_code, 0) << imported.err;
    agent_ = std::make_unique<AgentUnderTest>(dir_, config, std::map<std::string, std::string>{}, lab_->netns("gw"));
    ASSERT_TRUE(agent_->ready()) << agent_->log();
    node_id_ = waitForNode(30s);
    ASSERT_FALSE(node_id_.empty()) << agent_->log();
  }

  virtual std::string extraConfig() { return {}; }

  void startNode() {
    node_log_ = (dir_ / ("n1-" + std::to_string(++node_starts_) + ".log")).string();
    node_ = std::make_unique<Child>(
        lab_->inHost("n1", {simnodeBinary(), "--name", "n1", "--join", "eth0", "--leisure", "1", "--temp-period", "1",
                            "--resources", "3", "--big-size", std::to_string(kBigSize), "--log-requests"}),
        std::map<std::string, std::string>{}, node_log_);
  }

  // coap-client-gnutls prints the payload and a newline; the newline is taken off.
  RunResult coaps(const std::vector<std::string>& args, std::chrono::seconds limit = 20s) {
    std::vector<std::string> argv{kGnutlsClient, "-B", "8", "-u", kTester, "-k", kTesterKey};
    argv.insert(argv.end(), args.begin(), args.end());
    RunResult r = run(lab_->inHost("gw", argv), limit);
    if (!r.out.empty() && r.out.back() == '\n') r.out.pop_back();
    return r;
  }
  std::string agentUri(const std::string& path) { return "coaps://" + lab_->ipv4("gw") + ":5684/" + path; }
  std::string nodeUri(const std::string& path) { return agentUri("nodes/" + node_id_ + "/" + path); }

  // The id of the first node /nodes lists with its resources known (bounded wait).
  std::string waitForNode(std::chrono::seconds limit) {
    const auto deadline = std::chrono::steady_clock::now() + limit;
    const std::regex link("</nodes/([^>]+)>");
    for (int i = 0; i < 100 && std::chrono::steady_clock::now() < deadline; ++i) {
      const std::string body = coaps({agentUri("nodes")}).out;
      std::smatch m;
      // One node, its IPv4 and IPv6 addresses merged (the id follows the merged node).
      const bool merged = countOf(body, "</nodes/") == 1 && body.find(lab_->ipv4("n1")) != std::string::npos;
      if (merged && std::regex_search(body, m, link)) {
        const std::string id = m[1];
        // Wait until the gateway has fetched the node's resources (the obs links matter).
        if (coaps({agentUri("nodes/" + id)}).out.find("sensors/temp") != std::string::npos) return id;
      }
      std::this_thread::sleep_for(1s);
    }
    return {};
  }

  // Our libcoap 4.3.5 test client: Debian's 4.3.1 coap-client cannot follow a separate response
  // that continues with Block2 (libcoap PR #1440), and the relay answers separately.
  RunResult peer(const std::vector<std::string>& args, std::chrono::seconds limit = 30s) {
    std::vector<std::string> argv{testpeerBinary(), "client", "--timeout", "20", "--psk-identity", kTester, "--psk-key",
                                  kTesterKey};
    argv.insert(argv.end(), args.begin(), args.end());
    return run(lab_->inHost("gw", argv), limit);
  }

  std::string nodeLog() const { return readFile(node_log_); }
  std::size_t nodeRequests(const std::string& method_and_path) const {
    return countOf(nodeLog(), "request " + method_and_path + " token=");
  }
  nlohmann::json status() {
    const auto r = coaps({agentUri("status")});
    last_status_ = r.out + r.err;
    return nlohmann::json::parse(r.out, nullptr, false);
  }
  std::string last_status_;
  std::string agentLogTail() const {
    const std::string log = agent_->log();
    return log.size() > 6000 ? log.substr(log.size() - 6000) : log;
  }

  TempDir dir_;
  std::unique_ptr<NetnsLab> lab_;
  std::unique_ptr<Child> node_;
  std::unique_ptr<AgentUnderTest> agent_;
  std::string node_log_;
  int node_starts_ = 0;
  std::string node_id_;
};

TEST_F(RelayLab, GetPutAndDeleteAreRelayedWithTheNodesAnswers) {
  const auto temp = coaps({nodeUri("sensors/temp")});
  EXPECT_EQ(temp.exit_code, 0) << temp.err;
  EXPECT_TRUE(std::regex_search(temp.out, std::regex("^2[0-9]\\.[0-9]"))) << temp.out << temp.err;

  const auto put = coaps({"-m", "put", "-e", "on", nodeUri("actuators/led")});
  EXPECT_EQ(put.exit_code, 0) << put.err;
  for (int i = 0; i < 20 && nodeLog().find("led set to on") == std::string::npos; ++i) std::this_thread::sleep_for(100ms);
  EXPECT_NE(nodeLog().find("led set to on"), std::string::npos) << nodeLog();
  const auto led = coaps({nodeUri("actuators/led")});
  EXPECT_EQ(led.out, "on") << led.err;

  // The node has no DELETE for it: its own 4.05 comes back.
  const auto del = coaps({"-m", "delete", nodeUri("sensors/temp")});
  EXPECT_NE(del.err.find("4.05"), std::string::npos) << del.out << del.err;
  // A node that does not exist: the gateway's 4.04; a path the node lacks: the node's 4.04.
  const auto unknown = coaps({agentUri("nodes/no-such-node/sensors/temp")});
  EXPECT_NE(unknown.err.find("4.04"), std::string::npos) << unknown.out << unknown.err;
  const auto missing = coaps({nodeUri("no/such/resource")});
  EXPECT_NE(missing.err.find("4.04"), std::string::npos) << missing.out << missing.err;
  EXPECT_EQ(nodeRequests("GET /no/such/resource"), 1u) << nodeLog();
  // The ACL still decides: tester may not POST.
  const auto post = coaps({"-m", "post", "-e", "x", nodeUri("actuators/led")});
  EXPECT_NE(post.err.find("4.03"), std::string::npos) << post.out << post.err;
  EXPECT_EQ(nodeRequests("POST /actuators/led"), 0u) << nodeLog();
}

TEST_F(RelayLab, LargeBodiesTravelBlockwiseBothWays) {
  // 5000 bytes: the node sends Block2, libcoap reassembles, the gateway sends Block2 again.
  const auto big = peer({"get", nodeUri("big")});
  EXPECT_EQ(big.exit_code, 0) << big.err;
  EXPECT_TRUE(big.out == bigPayload(kBigSize)) << big.out.size() << " bytes; " << big.err;
  EXPECT_EQ(nodeRequests("GET /big"), 1u) << nodeLog();  // later blocks are libcoap's, not the node app's
  // The second time it comes from the cache, piggybacked: Debian's client can read it too.
  const auto cached = coaps({nodeUri("big")}, 30s);
  EXPECT_TRUE(cached.out == bigPayload(kBigSize)) << cached.out.size() << " bytes; " << cached.err;
  EXPECT_EQ(nodeRequests("GET /big"), 1u) << nodeLog();
  // 3000 bytes up (Block1 to the gateway, reassembled, Block1 again to the node): the node
  // takes at most 32 and says so with its own 4.13.
  const auto put = peer({"-e", std::string(3000, 'x'), "put", nodeUri("actuators/led")});
  EXPECT_EQ(put.exit_code, 2) << put.err << agentLogTail();
  EXPECT_NE(put.err.find("4.13"), std::string::npos) << put.err;
  EXPECT_EQ(nodeRequests("PUT /actuators/led"), 1u) << nodeLog();
}

TEST_F(RelayLab, CacheHitsDoNotReachTheNode) {
  // /r/0 has no Max-Age: cacheable for the default 60 s.
  for (int i = 0; i < 4; ++i) {
    const auto r = coaps({nodeUri("r/0")});
    EXPECT_EQ(r.out, "r/0") << r.err;
  }
  EXPECT_EQ(nodeRequests("GET /r/0"), 1u) << nodeLog();
  const auto s = status();
  ASSERT_TRUE(s.is_object());
  EXPECT_GE(s["relay"]["cache"]["hits"].get<int>(), 3) << s.dump();
  // A different query is another cache entry: the node is asked.
  const auto q = coaps({nodeUri("r/0?x=1")});
  EXPECT_EQ(q.out, "r/0");
  EXPECT_EQ(nodeRequests("GET /r/0"), 2u) << nodeLog();
  // PUT invalidates what the cache holds for that resource (RFC 7252 §5.9.1).
  EXPECT_EQ(coaps({nodeUri("actuators/led")}).out, "off");
  EXPECT_EQ(coaps({"-m", "put", "-e", "blue", nodeUri("actuators/led")}).exit_code, 0);
  EXPECT_EQ(coaps({nodeUri("actuators/led")}).out, "blue");
}

TEST_F(RelayLab, ForwardProxyServesKnownNodesOnlyAndCountsTheRest) {
  const std::string node = "coap://" + lab_->ipv4("n1") + ":5683/";
  const auto ok = coaps({"-P", agentUri(""), node + "r/1"});
  EXPECT_EQ(ok.out, "r/1") << ok.err;
  EXPECT_EQ(nodeRequests("GET /r/1"), 1u) << nodeLog();
  // Another host, a known host on another port, another scheme: 5.05, nothing sent anywhere.
  for (const std::string& target : {std::string("coap://10.199.254.254/r/1"),
                                    "coap://" + lab_->ipv4("n1") + ":5699/r/1", "http://" + lab_->ipv4("n1") + "/r/1"}) {
    const auto refused = coaps({"-P", agentUri(""), target});
    EXPECT_NE(refused.err.find("5.05"), std::string::npos) << target << ": " << refused.out << refused.err;
  }
  // Our own libcoap 4.3.5 client through the same door.
  const auto viaPeer = peer({"-P", agentUri(""), "get", node + "r/2"});
  EXPECT_EQ(viaPeer.out, "r/2") << viaPeer.err;
  const auto s = status();
  ASSERT_TRUE(s.is_object());
  EXPECT_GE(s["relay"]["forward_proxy"]["refused"].get<int>(), 3) << s.dump();
  EXPECT_EQ(s["relay"]["forward_proxy"]["requests"].get<int>(), 2) << s.dump();
}

TEST_F(RelayLab, TwoObserversMakeOneObservationThatEndsWithTheLastObserver) {
  std::vector<std::unique_ptr<Child>> observers;
  for (int i = 0; i < 2; ++i) {
    const auto out = (dir_ / ("observer-" + std::to_string(i) + ".out")).string();
    observers.push_back(std::make_unique<Child>(
        lab_->inHost("gw", {kGnutlsClient, "-B", "8", "-s", "8", "-u", kTester, "-k", kTesterKey, nodeUri("sensors/temp")}),
        std::map<std::string, std::string>{}, out + ".err", out));
    std::this_thread::sleep_for(1s);
  }
  for (auto& o : observers) EXPECT_TRUE(o->wait(30s).has_value());
  for (int i = 0; i < 2; ++i) {
    const std::string out = readFile(dir_ / ("observer-" + std::to_string(i) + ".out"));
    // The client prints each notification's payload ("20.3") as it comes, without separators.
    std::set<std::string> values;
    const std::regex value("2[0-9]\\.[0-9]");
    for (std::sregex_iterator it(out.begin(), out.end(), value), end; it != end; ++it) values.insert(it->str());
    // The value changes every second; 8 s of observing sees several of them.
    EXPECT_GE(values.size(), 4u) << "observer " << i << ":\n" << out << "\nnode:\n" << nodeLog();
  }
  // One registration at the node (distinct tokens with observe=0) for both observers.
  const std::regex registration("request GET /sensors/temp token=([0-9a-f]*) observe=0");
  std::set<std::string> tokens;
  const std::string log = nodeLog();
  for (std::sregex_iterator it(log.begin(), log.end(), registration), end; it != end; ++it) tokens.insert((*it)[1]);
  EXPECT_EQ(tokens.size(), 1u) << log;
  // Both left: the next notification finds nobody and the gateway deregisters at the node.
  bool cancelled = false;
  for (int i = 0; i < 20 && !cancelled; ++i) {
    std::this_thread::sleep_for(500ms);
    const auto s = status();
    cancelled = s.is_object() && s["relay"]["observe"]["relations"].get<int>() == 0 &&
                s["relay"]["observe"]["cancelled"].get<int>() >= 1;
  }
  EXPECT_TRUE(cancelled) << last_status_ << "\n" << agentLogTail();
  // The node stops notifying: its GET handler is no longer run for our token.
  const std::size_t before = countOf(nodeLog(), "request GET /sensors/temp");
  std::this_thread::sleep_for(3s);
  EXPECT_LE(countOf(nodeLog(), "request GET /sensors/temp"), before + 1) << nodeLog();
}

TEST_F(RelayLab, AnObservationIsMadeAgainWhenTheNodeComesBack) {
  const auto out = (dir_ / "observer.out").string();
  Child observer(
      lab_->inHost("gw", {kGnutlsClient, "-B", "60", "-s", "40", "-u", kTester, "-k", kTesterKey, nodeUri("sensors/temp")}),
      std::map<std::string, std::string>{}, out + ".err", out);
  std::this_thread::sleep_for(4s);
  const std::size_t before = valuesIn(readFile(out));
  // The node restarts (same address, so the same id): it has forgotten the observation.
  node_->signal(SIGKILL);
  (void)node_->wait(5s);
  std::this_thread::sleep_for(1s);
  startNode();
  // The gateway notices the silence (Max-Age 1 s + slack) and observes the new node.
  bool again = false;
  for (int i = 0; i < 60 && !again; ++i) {
    std::this_thread::sleep_for(500ms);
    again = nodeLog().find("observe=0") != std::string::npos;
  }
  EXPECT_TRUE(again) << nodeLog() << "\n" << agent_->log();
  std::this_thread::sleep_for(4s);
  const std::size_t after = valuesIn(readFile(out));
  EXPECT_GE(after, before + 2) << readFile(out) << "\n" << nodeLog() << agentLogTail();
  observer.signal(SIGTERM);
  (void)observer.wait(5s);
}

}  // namespace
}  // namespace coap_edge::test
