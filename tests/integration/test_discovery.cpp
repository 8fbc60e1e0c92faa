// Discovery against real nodes on a real (virtual) Ethernet segment: the agent in one network
// namespace, coap-edge-simnode instances and Debian's coap-server-notls (an independent libcoap
// node) in others, all on a bridge that floods multicast. The agent's /nodes and RD are read
// with Debian's coap-client-gnutls over DTLS-PSK, as an operator would.

#include "coap_clients.h"
#include "avahi_sandbox.h"
#include "harness.h"
#include "netns_lab.h"

#include <gtest/gtest.h>

#include <csignal>
#include <memory>
#include <regex>
#include <thread>

namespace coap_edge::test {
namespace {

using namespace std::chrono_literals;

constexpr const char* kTester = "tester";
constexpr const char* kTesterKey = "tester-secret-key-1";
constexpr const char* kRdNode = "node-rd";
constexpr const char* kRdNodeKey = "node-rd-secret-key-1";

class DiscoveryLab : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!NetnsLab::available()) GTEST_SKIP() << NetnsLab::unavailableReason();
    lab_ = std::make_unique<NetnsLab>();
    lab_->addHost("gw");
  }

  // The agent in host "gw", probing eth0; `tester` may read /nodes, /status and the RD lookups.
  void startAgent(const std::string& discovery, const std::map<std::string, std::string>& env = {}) {
    const std::string config =
        "[agent]\nname = \"gw-lab\"\nstate_dir = \"" + (dir_ / "state").string() +
        "\"\nlog_level = \"debug\"\n[downstream]\nlisten = [\"" + lab_->ipv4("gw") + ":5684\"]\n" + discovery +
        "[[acl]]\nidentity = \"" + kTester + "\"\nallow = [\"GET /nodes\", \"GET /nodes/*\", \"GET /status\", "
        "\"GET /rd-lookup/**\"]\n";
    writeFile(dir_ / "agent.toml", config);
    const std::string keys = std::string(kTester) + "," + hexOf(kTesterKey) + "\n" + kRdNode + "," + hexOf(kRdNodeKey) +
                             "\nnode-other," + hexOf("node-other-secret-1") + "\n";
    if (!keys_imported_) {  // the keystore outlives an agent restarted with another config
      const auto imported = ctl(dir_ / "agent.toml", {"keys", "import", "-"}, keys);
      ASSERT_EQ(imported.exit_code, 0) << imported.err;
      keys_imported_ = true;
    }
    agent_ = std::make_unique<AgentUnderTest>(dir_, config, env, lab_->netns("gw"));
    ASSERT_TRUE(agent_->ready()) << agent_->log();
  }

  // GET or another method on the agent over DTLS-PSK, from inside the gateway's namespace.
  RunResult coaps(const std::vector<std::string>& args, const std::string& identity = kTester,
                  const std::string& key = kTesterKey) {
    std::vector<std::string> argv{"coap-client-gnutls", "-B", "5", "-u", identity, "-k", key};
    argv.insert(argv.end(), args.begin(), args.end());
    return run(lab_->inHost("gw", argv), 20s);
  }
  std::string agentUri(const std::string& path) { return "coaps://" + lab_->ipv4("gw") + ":5684/" + path; }

  // Polls /nodes until `pred` holds (bounded); the last body either way.
  std::string waitForNodes(const std::function<bool(const std::string&)>& pred, std::chrono::seconds limit) {
    const auto deadline = std::chrono::steady_clock::now() + limit;
    std::string body;
    for (int i = 0; i < 200 && std::chrono::steady_clock::now() < deadline; ++i) {
      body = coaps({agentUri("nodes")}).out;
      if (pred(body)) return body;
      std::this_thread::sleep_for(1s);
    }
    return body;
  }

  std::unique_ptr<Child> simnode(const std::string& host, std::vector<std::string> extra) {
    std::vector<std::string> argv{simnodeBinary(), "--name", host, "--join", "eth0", "--leisure", "1"};
    argv.insert(argv.end(), extra.begin(), extra.end());
    return std::make_unique<Child>(lab_->inHost(host, argv), std::map<std::string, std::string>{},
                                   (dir_ / (host + ".log")).string());
  }

  TempDir dir_;
  std::unique_ptr<NetnsLab> lab_;
  std::unique_ptr<AgentUnderTest> agent_;
  bool keys_imported_ = false;
};

// The node at `host` is listed (its base, or one of its addresses).
bool listsBase(const std::string& body, const std::string& host) {
  for (const std::string& uri : {"coap://" + host + ":5683", "coap://[" + host + "]:5683"}) {
    for (const char* before : {"\"", " "}) {
      for (const char* after : {"\"", " "}) {
        if (body.find(before + uri + after) != std::string::npos) return true;
      }
    }
  }
  return false;
}

TEST_F(DiscoveryLab, MulticastFindsSimnodesAndLibcoapServerOverIpv4AndIpv6ThenForgetsAStoppedOne) {
  std::vector<std::unique_ptr<Child>> nodes;
  for (const char* host : {"n1", "n2", "n3"}) {
    lab_->addHost(host);
    nodes.push_back(simnode(host, {}));
  }
  lab_->addHost("ref");
  Child reference(lab_->inHost("ref", {"coap-server-notls", "-g", "224.0.1.187", "-G", "eth0"}), {},
                  (dir_ / "ref.log").string());
  std::this_thread::sleep_for(500ms);  // the nodes join their groups
  // Probes every 6 s, answers gathered for 5 s (libcoap's leisure), TTL 15 s.
  startAgent("[discovery]\ninterfaces = [\"eth0\"]\nmulticast = true\ninterval = \"6s\"\nleisure = \"5s\"\n"
             "node_ttl = \"15s\"\ndns_sd = false\n");

  // Two probe intervals (and the client's own time).
  const std::string body = waitForNodes(
      [&](const std::string& b) {
        return listsBase(b, lab_->ipv4("n1")) && listsBase(b, lab_->ipv4("n2")) && listsBase(b, lab_->ipv4("n3")) &&
               listsBase(b, lab_->ipv4("ref")) && listsBase(b, lab_->ipv6("n1")) && listsBase(b, lab_->ipv6("n2")) &&
               listsBase(b, lab_->ipv6("n3"));
      },
      20s);
  for (const char* host : {"n1", "n2", "n3", "ref"}) {
    EXPECT_TRUE(listsBase(body, lab_->ipv4(host))) << host << " (IPv4) missing in /nodes:\n" << body << agent_->log();
  }
  for (const char* host : {"n1", "n2", "n3"}) {
    EXPECT_TRUE(listsBase(body, lab_->ipv6(host))) << host << " (IPv6) missing in /nodes:\n" << body;
  }
  EXPECT_NE(body.find("src=\"multicast\""), std::string::npos) << body;
  // A dual-stack simnode answering from three addresses is one node, not three: the neighbour
  // table names each responder by its link-layer address.
  const std::string merged = waitForNodes([](const std::string& b) { return countOf(b, "</nodes/") == 4; }, 15s);
  EXPECT_EQ(countOf(merged, "</nodes/"), 4U) << merged;
  // One from its first answers on: no address is ever listed as a node of its own and merged
  // later (the node's id would change under the relay, and an upstream RD would see an
  // endpoint registered and withdrawn). The agent logs every node that appears or goes.
  EXPECT_EQ(countOf(agent_->log(), " appeared ("), 4U) << agent_->log();
  EXPECT_EQ(countOf(agent_->log(), " gone ("), 0U) << agent_->log();

  // With their resources: the node's own listing, as the gateway knows it.
  const std::smatch id = [&] {
    std::smatch m;
    std::regex_search(merged, m, std::regex("</nodes/([^>]+)>;[^,]*coap://" + lab_->ipv4("n1") + ":5683"));
    return m;
  }();
  ASSERT_FALSE(id.empty()) << merged;
  const auto resources = coaps({agentUri("nodes/" + id[1].str())});
  EXPECT_NE(resources.out.find("sensors/temp"), std::string::npos) << resources.out << resources.err;
  EXPECT_NE(resources.out.find("rt=\"temperature\""), std::string::npos) << resources.out;
  EXPECT_NE(resources.out.find("big"), std::string::npos) << resources.out;

  // A node that stops answering is gone after its TTL (15 s) plus one probe round.
  nodes[2]->signal(SIGKILL);
  const std::string after = waitForNodes(
      [&](const std::string& b) { return !listsBase(b, lab_->ipv4("n3")) && listsBase(b, lab_->ipv4("n1")); }, 35s);
  EXPECT_FALSE(listsBase(after, lab_->ipv4("n3"))) << after;
  EXPECT_TRUE(listsBase(after, lab_->ipv4("n1"))) << after;

  // Counted in /status.
  const auto status = coaps({agentUri("status")});
  EXPECT_NE(status.out.find("\"nodes\":{"), std::string::npos) << status.out;
  EXPECT_NE(status.out.find("\"probe_rounds\":"), std::string::npos) << status.out;
}

TEST_F(DiscoveryLab, NodeRegistersAtTheRdOverDtlsPskAndOnlyAsItself) {
  lab_->addHost("n1");
  startAgent("[discovery]\nresource_directory = true\n");
  writeFile(dir_ / "rd.key", hexOf(kRdNodeKey) + "\n");
  const std::string rd = "coaps://" + lab_->ipv4("gw") + ":5684";
  auto node = simnode("n1", {"--rd", rd, "--psk-identity", kRdNode, "--psk-key-file", (dir_ / "rd.key").string(),
                             "--lifetime", "10", "--name", kRdNode});
  const std::string body = waitForNodes(
      [](const std::string& b) { return b.find("</nodes/node-rd>") != std::string::npos; }, 20s);
  EXPECT_NE(body.find("</nodes/node-rd>"), std::string::npos) << body << agent_->log();
  EXPECT_NE(body.find("src=\"rd\""), std::string::npos) << body;
  const auto res = coaps({agentUri("rd-lookup/res?rt=temperature")});
  EXPECT_NE(res.out.find("/sensors/temp>"), std::string::npos) << res.out << res.err;
  EXPECT_NE(res.out.find("anchor=\"coap"), std::string::npos) << res.out;
  const auto eps = coaps({agentUri("rd-lookup/ep")});
  EXPECT_NE(eps.out.find("ep=\"node-rd\""), std::string::npos) << eps.out;
  const auto status = ctl(dir_ / "agent.toml", {"status"});
  EXPECT_NE(status.out.find("nodes: 1 (0 by multicast, 0 by DNS-SD, 1 in the RD;"), std::string::npos) << status.out;
  EXPECT_NE(status.out.find("1 RD registrations, DNS-SD off"), std::string::npos) << status.out;

  // Another identity cannot register (or take over) endpoint node-rd.
  writeFile(dir_ / "other.key", hexOf("node-other-secret-1") + "\n");
  const auto other = run(lab_->inHost("n1", {simnodeBinary(), "--listen", "0.0.0.0:5699", "--rd", rd, "--psk-identity",
                                             "node-other", "--psk-key-file", (dir_ / "other.key").string(),
                                             "--rd-ep", kRdNode, "--lifetime", "10"}),
                         20s);
  EXPECT_NE(other.exit_code, 0) << other.err;
  EXPECT_NE(other.err.find("4.03"), std::string::npos) << other.err;
  const auto eps_after = coaps({agentUri("rd-lookup/ep")});
  EXPECT_NE(eps_after.out.find("base=\"coap"), std::string::npos) << eps_after.out;

  // Malformed registrations: 4.00 (4.13 for a huge one) with a diagnostic, nothing changes.
  // Debian's client prints an error response's code and payload on stderr.
  const auto bad_links = coaps({"-m", "post", "-t", "40", "-e", "<broken", agentUri("rd?ep=node-other")},
                               "node-other", "node-other-secret-1");
  EXPECT_NE(bad_links.err.find("4.00 offset 7: expected '>'"), std::string::npos) << bad_links.out << bad_links.err;
  const auto no_ep = coaps({"-m", "post", "-t", "40", "-e", "</a>", agentUri("rd")}, "node-other",
                           "node-other-secret-1");
  EXPECT_NE(no_ep.err.find("4.00 missing ep"), std::string::npos) << no_ep.out << no_ep.err;
  writeFile(dir_ / "huge.txt", "</" + std::string(20000, 'a') + ">");
  const auto huge = coaps({"-m", "post", "-t", "40", "-f", (dir_ / "huge.txt").string(), agentUri("rd?ep=node-other")},
                          "node-other", "node-other-secret-1");
  EXPECT_NE(huge.err.find("4.13"), std::string::npos) << huge.out << huge.err;
  const auto plain_text = coaps({"-m", "post", "-t", "0", "-e", "</a>", agentUri("rd?ep=node-other")}, "node-other",
                                "node-other-secret-1");
  EXPECT_NE(plain_text.err.find("4.15"), std::string::npos) << plain_text.out << plain_text.err;
  EXPECT_EQ(coaps({agentUri("rd-lookup/ep?ep=node-other")}).out.find("node-other"), std::string::npos);
  EXPECT_NE(coaps({agentUri("rd-lookup/ep")}).out.find("ep=\"node-rd\""), std::string::npos);

  // Simple registration (RFC 9176 §5.1): the RD fetches /.well-known/core back over the
  // requester's own DTLS session; only the requester's own ep.
  const auto simple_other = coaps({"-m", "post", agentUri(".well-known/rd?ep=node-rd")}, "node-other",
                                  "node-other-secret-1");
  EXPECT_NE(simple_other.err.find("4.03"), std::string::npos) << simple_other.out << simple_other.err;
  const auto simple = coaps({"-m", "post", agentUri(".well-known/rd?ep=node-other&lt=60")}, "node-other",
                            "node-other-secret-1");
  EXPECT_EQ(simple.err.find("4."), std::string::npos) << simple.out << simple.err;
  std::string simple_eps;
  for (int i = 0; i < 20 && simple_eps.find("ep=\"node-other\"") == std::string::npos; ++i) {
    simple_eps = coaps({agentUri("rd-lookup/ep?ep=node-other")}).out;
    if (simple_eps.find("ep=\"node-other\"") == std::string::npos) std::this_thread::sleep_for(500ms);
  }
  EXPECT_NE(simple_eps.find("ep=\"node-other\""), std::string::npos) << simple_eps << agent_->log();

  // Killed without de-registering: the registration (lifetime 10 s) expires and the node goes.
  node->signal(SIGKILL);
  const std::string gone = waitForNodes(
      [](const std::string& b) { return b.find("</nodes/node-rd>") == std::string::npos; }, 25s);
  EXPECT_EQ(gone.find("</nodes/node-rd>"), std::string::npos) << gone;
}

TEST_F(DiscoveryLab, TwoHundredNodesAnsweringOneProbeAreAllRegisteredAndTheCapHolds) {
  constexpr int kNodes = 200;
  std::vector<std::unique_ptr<Child>> nodes;
  for (int i = 1; i <= kNodes; ++i) {
    const std::string host = "h" + std::to_string(i);
    lab_->addHost(host);
    nodes.push_back(simnode(host, {"--temp-period", "3600"}));
  }
  std::this_thread::sleep_for(1s);  // every node joins its groups
  startAgent("[discovery]\ninterfaces = [\"eth0\"]\nmulticast = true\ninterval = \"8s\"\nleisure = \"5s\"\n"
             "dns_sd = false\n");
  // Within two probe rounds (answers spread over each node's 1 s leisure); each node answers
  // from three addresses, merged into one node by its link-layer address.
  std::string status;
  for (int i = 0; i < 30; ++i) {
    std::this_thread::sleep_for(1s);
    status = coaps({agentUri("status")}).out;
    if (status.find("\"count\":" + std::to_string(kNodes) + ",") != std::string::npos) break;
  }
  EXPECT_NE(status.find("\"count\":" + std::to_string(kNodes) + ","), std::string::npos) << status;
  const std::string body = coaps({agentUri("nodes")}).out;
  // Debian's client reassembles the Block2 transfer of the whole list.
  EXPECT_EQ(countOf(body, "</nodes/"), static_cast<std::size_t>(kNodes)) << body.substr(0, 2000);
  // The registry's memory is reported, and bounded: well under 4 KB a node for these.
  std::smatch m;
  ASSERT_TRUE(std::regex_search(status, m, std::regex("\"memory_bytes\":([0-9]+),\"refused_full\"")))
      << status;
  const auto bytes = std::stoull(m[1].str());
  EXPECT_GT(bytes, 0U);
  // Three sightings of three resources each per node: a few KB; 16 KB would mean a leak.
  EXPECT_LT(bytes, static_cast<unsigned long long>(kNodes) * 16384) << status;

  // With max_nodes = 50 the same segment fills the table and the rest is refused and counted.
  ASSERT_EQ(agent_->stop(), 0);
  agent_.reset();
  startAgent("[discovery]\ninterfaces = [\"eth0\"]\nmulticast = true\ninterval = \"8s\"\nleisure = \"5s\"\n"
             "dns_sd = false\nmax_nodes = 50\n");
  for (int i = 0; i < 30; ++i) {
    std::this_thread::sleep_for(1s);
    status = coaps({agentUri("status")}).out;
    if (std::regex_search(status, m, std::regex("\"refused_full\":([0-9]+)")) && std::stoull(m[1].str()) >= 150) break;
  }
  EXPECT_NE(status.find("\"count\":50,"), std::string::npos) << status;
  ASSERT_TRUE(std::regex_search(status, m, std::regex("\"refused_full\":([0-9]+)"))) << status;
  EXPECT_GE(std::stoull(m[1].str()), 150U) << status;
}

TEST(DiscoveryStartup, AnInterfaceThatDoesNotExistNamesTheLine) {
  const TempDir dir;
  const std::string config = "[agent]\nstate_dir = \"" + (dir / "state").string() +
                             "\"\n[downstream]\nlisten = [\"127.0.0.1:" + std::to_string(freeUdpPort()) +
                             "\"]\n[discovery]\ninterfaces = [\"lo\",\n  \"nosuch0\"]\ndns_sd = false\n";
  writeFile(dir / "agent.toml", config);
  const auto r = run({agentBinary(), "--config", (dir / "agent.toml").string()}, 20s);
  EXPECT_EQ(r.exit_code, 78) << r.err;
  EXPECT_NE(r.err.find((dir / "agent.toml").string() + ":7:3: no network interface named 'nosuch0'"),
            std::string::npos)
      << r.err;
}

// avahi-browse -p -r -t in `host`: the resolved lines ("=;eth0;IPv4;name;type;...;txt").
std::string browse(const NetnsLab& lab, const std::string& host, const AvahiSandbox& avahi, const std::string& type) {
  return run(lab.inHost(host, {AvahiSandbox::findProgram("avahi-browse"), "-r", "-p", "-t", type}), 20s, "",
             avahi.clientEnv())
      .out;
}

TEST_F(DiscoveryLab, DnsSdFindsAPublishedNodeAndAnnouncesTheGatewayAcrossAvahiRestarts) {
  if (const auto why = AvahiSandbox::unavailableReason(); !why.empty()) GTEST_SKIP() << why;
  lab_->addHost("n1");
  lab_->addHost("obs");
  AvahiSandbox gw_avahi({lab_->netns("gw"), {"eth0"}, "gw-host", true});
  AvahiSandbox n1_avahi({lab_->netns("n1"), {"eth0"}, "n1-host", true});
  AvahiSandbox obs_avahi({lab_->netns("obs"), {"eth0"}, "obs-host", true});
  for (auto* a : {&gw_avahi, &n1_avahi, &obs_avahi}) ASSERT_TRUE(a->waitRunning()) << a->logs();
  // A node that does not answer multicast (not joined), only announced over mDNS.
  auto node = std::make_unique<Child>(lab_->inHost("n1", {simnodeBinary(), "--name", "kitchen"}),
                                      std::map<std::string, std::string>{}, (dir_ / "n1.log").string());
  Child publish(lab_->inHost("n1", {AvahiSandbox::findProgram("avahi-publish"), "-s", "kitchen", "_coap._udp", "5683",
                                    "ep=kitchen"}),
                n1_avahi.clientEnv(), (dir_ / "publish.log").string());
  startAgent("[discovery]\ninterfaces = [\"eth0\"]\nmulticast = false\ndns_sd = true\n", gw_avahi.clientEnv());

  const auto found = [](const std::string& b) {
    return b.find("</nodes/kitchen>") != std::string::npos && b.find("dns-sd") != std::string::npos;
  };
  std::string body = waitForNodes(found, 30s);
  ASSERT_TRUE(found(body)) << body << agent_->log() << gw_avahi.logs();
  // Its resources were fetched by unicast after resolution.
  std::string resources;
  for (int i = 0; i < 20 && resources.find("sensors/temp") == std::string::npos; ++i) {
    resources = coaps({agentUri("nodes/kitchen")}).out;
    if (resources.find("sensors/temp") == std::string::npos) std::this_thread::sleep_for(500ms);
  }
  EXPECT_NE(resources.find("</nodes/kitchen/sensors/temp>"), std::string::npos) << resources;

  // The gateway announces itself as _coaps._udp with its name and RD path.
  const auto announced = [&] {
    std::string out;
    for (int i = 0; i < 20; ++i) {
      out = browse(*lab_, "obs", obs_avahi, "_coaps._udp");
      if (out.find("gw-lab") != std::string::npos) break;
      std::this_thread::sleep_for(500ms);
    }
    return out;
  };
  std::string seen = announced();
  EXPECT_NE(seen.find("gw-lab"), std::string::npos) << seen << agent_->log();
  EXPECT_NE(seen.find("\"rd=/rd\""), std::string::npos) << seen;
  EXPECT_NE(seen.find(";5684;"), std::string::npos) << seen;

  // avahi-daemon restarts: the node goes (no stale entry), then comes back, and the gateway is
  // announced again.
  gw_avahi.stopDaemon();
  body = waitForNodes([](const std::string& b) { return b.find("</nodes/kitchen>") == std::string::npos; }, 20s);
  EXPECT_EQ(body.find("</nodes/kitchen>"), std::string::npos) << body;
  gw_avahi.startDaemon();
  ASSERT_TRUE(gw_avahi.waitRunning()) << gw_avahi.logs();
  body = waitForNodes(found, 40s);
  EXPECT_TRUE(found(body)) << body << agent_->log();
  seen = announced();
  EXPECT_NE(seen.find("gw-lab"), std::string::npos) << seen << agent_->log();
  const auto status = coaps({agentUri("status")}).out;
  EXPECT_NE(status.find("\"reconnects\":1"), std::string::npos) << status;
}

}  // namespace
}  // namespace coap_edge::test
