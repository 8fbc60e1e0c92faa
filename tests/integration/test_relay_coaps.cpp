// The relay to nodes that speak only coaps, with the gateway's own credential for them
// ([[relay.credentials]], issue #5). The nodes are Debian's coap-server-openssl (OpenSSL's DTLS:
// an independent stack) in network namespaces of their own; each announces itself at the
// gateway's Resource Directory with a coaps base (Debian's coap-client-gnutls as the node's
// registration client), so the gateway knows only its coaps address and has to open a DTLS-PSK
// session of its own to relay. Root only (network namespaces).

#include "avahi_sandbox.h"
#include "coap_clients.h"
#include "harness.h"
#include "netns_lab.h"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <thread>

namespace coap_edge::test {
namespace {

using namespace std::chrono_literals;

constexpr const char* kTester = "tester";
constexpr const char* kTesterKey = "tester-secret-key-1";
// What the nodes expect from the gateway (coap-server -k takes the key as text).
constexpr const char* kNodeKey = "node-side-secret-key";

class RelayCoapsLab : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!NetnsLab::available()) GTEST_SKIP() << NetnsLab::unavailableReason();
    lab_ = std::make_unique<NetnsLab>();
    lab_->addHost("gw");
    writeFile(dir_ / "node.key", hexOf(kNodeKey) + "\n");
    ::chmod((dir_ / "node.key").c_str(), 0600);
  }

  // Debian's coap-server-openssl in its own host, expecting `key` from the gateway; on the
  // host's IPv4 address, or with `any_address` on every address (mDNS may resolve to IPv6).
  void startNode(const std::string& n, const std::string& key, bool any_address = false) {
    lab_->addHost(n);
    nodes_.push_back(std::make_unique<Child>(
        lab_->inHost(n, {"coap-server-openssl", "-A", any_address ? "::" : lab_->ipv4(n), "-k", key, "-v", "4"}),
        std::map<std::string, std::string>{}, (dir_ / (n + ".log")).string()));
  }

  // The agent in "gw" with the nodes' credential for `credential_nodes` (a TOML list).
  void startAgent(const std::string& credential_nodes, const std::string& extra = {},
                  const std::map<std::string, std::string>& env = {}) {
    const std::string config =
        "[agent]\nname = \"gw-coaps\"\nstate_dir = \"" + (dir_ / "state").string() +
        "\"\nlog_level = \"debug\"\n[downstream]\nlisten = [\"" + lab_->ipv4("gw") + ":5684\"]\n" + extra +
        "[relay]\ncache_max_bytes = 0\ntimeout = \"4s\"\n"
        "[[relay.credentials]]\nnodes = " + credential_nodes + "\npsk_identity = \"gw-coaps\"\npsk_key_file = \"" +
        (dir_ / "node.key").string() + "\"\n" +
        "[[acl]]\nidentity = \"" + kTester + "\"\nallow = [\"GET /nodes/**\", \"GET /status\"]\n";
    writeFile(dir_ / "agent.toml", config);
    std::string keys = std::string(kTester) + "," + hexOf(kTesterKey) + "\n";
    for (const std::string n : {"n1", "n2", "n3"}) keys += n + "," + hexOf(n + "-registration-key") + "\n";
    const auto imported = ctl(dir_ / "agent.toml", {"keys", "import", "-"}, keys);
    ASSERT_EQ(imported.exit_code, 0) << imported.err;
    agent_ = std::make_unique<AgentUnderTest>(dir_, config, env, lab_->netns("gw"));
    ASSERT_TRUE(agent_->ready()) << agent_->log();
  }

  // n1 expects the gateway's key; n2 expects another one; n3 has no [[relay.credentials]]
  // entry. Each registers itself with its coaps base.
  void startRegisteredNodes() {
    startNode("n1", kNodeKey);
    startNode("n2", "not-the-gateway-key-2");
    startNode("n3", kNodeKey);
    startAgent(R"(["n1", "n2"])");
    for (const std::string n : {"n1", "n2", "n3"}) ASSERT_TRUE(registerNode(n)) << agent_->log();
  }

  // The node's own registration over DTLS-PSK as identity n, with base= its coaps address: all
  // the gateway knows of it.
  bool registerNode(const std::string& n) {
    const std::string uri =
        "coaps://" + lab_->ipv4("gw") + ":5684/rd?ep=" + n + "&lt=300&base=coaps://" + lab_->ipv4(n) + ":5684";
    const auto r = run(lab_->inHost(n, {kGnutlsClient, "-B", "8", "-u", n, "-k", n + "-registration-key", "-m", "post",
                                        "-t", "40", "-e", "</time>;obs;ct=0,</example_data>;ct=0", uri}),
                       20s);
    return r.exit_code == 0 && r.err.find("4.") == std::string::npos && r.err.find("5.") == std::string::npos;
  }

  RunResult coaps(const std::vector<std::string>& args, std::chrono::seconds limit = 30s) {
    std::vector<std::string> argv{kGnutlsClient, "-B", "15", "-u", kTester, "-k", kTesterKey};
    argv.insert(argv.end(), args.begin(), args.end());
    return run(lab_->inHost("gw", argv), limit);
  }
  std::string nodeUri(const std::string& n, const std::string& path) {
    return "coaps://" + lab_->ipv4("gw") + ":5684/nodes/" + n + "/" + path;
  }
  nlohmann::json relayStatus() {
    const auto r = coaps({"coaps://" + lab_->ipv4("gw") + ":5684/status"});
    const auto doc = nlohmann::json::parse(r.out, nullptr, false);
    return doc.is_object() && doc.contains("relay") ? doc["relay"] : nlohmann::json::object();
  }

  TempDir dir_;
  std::unique_ptr<NetnsLab> lab_;
  std::vector<std::unique_ptr<Child>> nodes_;
  std::unique_ptr<AgentUnderTest> agent_;
};

TEST_F(RelayCoapsLab, RequestsReachACoapsOnlyNodeOverOneSessionWithTheGatewaysCredential) {
  ASSERT_NO_FATAL_FAILURE(startRegisteredNodes());
  // The node's own resource list (coap-server's clock is "Internal Clock").
  const auto core = coaps({nodeUri("n1", ".well-known/core")});
  EXPECT_NE(core.out.find("Internal Clock"), std::string::npos) << core.out << core.err << agent_->log();
  const auto time = coaps({nodeUri("n1", "time")});
  EXPECT_EQ(time.exit_code, 0) << time.err;
  EXPECT_FALSE(time.out.empty()) << time.err;
  // The second request rode on the session of the first: one handshake with the node.
  const auto relay = relayStatus();
  ASSERT_TRUE(relay.contains("coaps")) << relay.dump();
  EXPECT_EQ(relay["coaps"].value("established", 0), 1) << relay.dump();
  EXPECT_EQ(relay["coaps"].value("sessions", 0), 1) << relay.dump();
  EXPECT_EQ(relay["coaps"].value("failures", 0), 0) << relay.dump();
}

TEST_F(RelayCoapsLab, AWrongKeyOrNoCredentialGetsAnErrorThatSaysWhy) {
  ASSERT_NO_FATAL_FAILURE(startRegisteredNodes());
  // A wrong PSK is silence in DTLS (the node drops our Finished as a bad record): 5.04 at the
  // relay's timeout, naming the handshake. Too late to ride on the ACK of the request: the client
  // gets the empty ACK once the agent stops waiting for the answer (kPiggybackWait), without
  // having to ask again, and then the 5.04 as a separate response (its debug log shows every
  // message it sent or got).
  const auto wrong = coaps({"-v", "7", nodeUri("n2", "time")});
  EXPECT_NE(wrong.err.find("5.04"), std::string::npos) << wrong.out << wrong.err;
  EXPECT_NE((wrong.out + wrong.err).find("DTLS handshake"), std::string::npos) << wrong.out << wrong.err;
  const std::string seen = wrong.out + wrong.err;
  EXPECT_NE(seen.find("t:ACK c:0.00"), std::string::npos) << seen;
  EXPECT_NE(seen.find("t:CON c:5.04"), std::string::npos) << seen;
  EXPECT_EQ(countOf(seen, "t:CON c:GET"), 1u) << "the client retransmitted its request\n" << seen;
  const auto none = coaps({nodeUri("n3", "time")});
  EXPECT_NE(none.err.find("5.02"), std::string::npos) << none.out << none.err;
  EXPECT_NE((none.out + none.err).find("[[relay.credentials]]"), std::string::npos) << none.out << none.err;
  const auto relay = relayStatus();
  EXPECT_EQ(relay["coaps"].value("established", 0), 0) << relay.dump();
  // The credential never reaches the log, in hex or as text.
  EXPECT_EQ(agent_->log().find(hexOf(kNodeKey)), std::string::npos);
  EXPECT_EQ(agent_->log().find(kNodeKey), std::string::npos);
}

TEST_F(RelayCoapsLab, ANodeAnnouncedAsCoapsOverMdnsHasItsResourcesFetchedWithTheCredential) {
  if (const auto why = AvahiSandbox::unavailableReason(); !why.empty()) GTEST_SKIP() << why;
  startNode("n4", kNodeKey, true);
  AvahiSandbox gw_avahi({lab_->netns("gw"), {"eth0"}, "gw-host", true});
  AvahiSandbox n4_avahi({lab_->netns("n4"), {"eth0"}, "n4-host", true});
  for (auto* a : {&gw_avahi, &n4_avahi}) ASSERT_TRUE(a->waitRunning()) << a->logs();
  Child publish(lab_->inHost("n4", {AvahiSandbox::findProgram("avahi-publish"), "-s", "cellar", "_coaps._udp", "5684"}),
                n4_avahi.clientEnv(), (dir_ / "publish.log").string());
  startAgent(R"(["cellar"])", "[discovery]\ninterfaces = [\"eth0\"]\nmulticast = false\ndns_sd = true\npublish = false\n",
             gw_avahi.clientEnv());
  // Listed from mDNS, then its /.well-known/core read over the gateway's coaps session.
  std::string resources;
  for (int i = 0; i < 40 && resources.find("time") == std::string::npos; ++i) {
    resources = coaps({"coaps://" + lab_->ipv4("gw") + ":5684/nodes/cellar"}).out;
    if (resources.find("time") == std::string::npos) std::this_thread::sleep_for(500ms);
  }
  EXPECT_NE(resources.find("</nodes/cellar/time>"), std::string::npos) << resources << agent_->log();
  const auto time = coaps({nodeUri("cellar", "time")});
  EXPECT_EQ(time.exit_code, 0) << time.err;
  EXPECT_FALSE(time.out.empty()) << time.err;
}

}  // namespace
}  // namespace coap_edge::test
