// The network-namespace lab the multicast and node tests stand on: hosts reach each other over
// IPv4 and IPv6, multicast to the CoAP groups floods the segment, and nothing is left behind.

#include "coap_clients.h"
#include "netns_lab.h"

#include <gtest/gtest.h>

#include <sys/wait.h>
#include <unistd.h>

#include <memory>
#include <sstream>

namespace coap_edge::test {
namespace {

using namespace std::chrono_literals;

bool nsExists(const std::string& ns) {
  const RunResult r = run({"ip", "netns", "list"});
  std::istringstream lines(r.out);
  std::string line;
  while (std::getline(lines, line)) {
    if (line.substr(0, line.find(' ')) == ns) return true;
  }
  return false;
}

// A receiver that joins `group` on eth0, prints the first datagram and its source, and exits.
std::string receiverScript(const std::string& group, int port) {
  const bool v6 = group.find(':') != std::string::npos;
  std::string s = "import socket,struct\n";
  if (v6) {
    s += "s=socket.socket(socket.AF_INET6,socket.SOCK_DGRAM)\ns.bind(('::'," + std::to_string(port) + "))\n"
         "m=socket.inet_pton(socket.AF_INET6,'" + group + "')+struct.pack('@I',socket.if_nametoindex('eth0'))\n"
         "s.setsockopt(socket.IPPROTO_IPV6,socket.IPV6_JOIN_GROUP,m)\n";
  } else {
    s += "s=socket.socket(socket.AF_INET,socket.SOCK_DGRAM)\ns.bind(('0.0.0.0'," + std::to_string(port) + "))\n"
         "m=struct.pack('4s4si',socket.inet_aton('" + group + "'),socket.inet_aton('0.0.0.0'),socket.if_nametoindex('eth0'))\n"
         "s.setsockopt(socket.IPPROTO_IP,socket.IP_ADD_MEMBERSHIP,m)\n";
  }
  s += "s.settimeout(10)\nd,a=s.recvfrom(200)\nprint(d.decode(),a[0].split('%')[0],flush=True)\n";
  return s;
}

// One datagram to `group`; no interface is chosen for IPv4 or ff05:: (the lab's routes decide),
// ff02:: is link-local and names eth0.
std::string senderScript(const std::string& group, int port, const std::string& text) {
  const bool v6 = group.find(':') != std::string::npos;
  if (!v6) {
    return "import socket\ns=socket.socket(socket.AF_INET,socket.SOCK_DGRAM)\ns.sendto(b'" + text + "',('" + group +
           "'," + std::to_string(port) + "))\n";
  }
  const std::string scope = group.rfind("ff02", 0) == 0 ? "socket.if_nametoindex('eth0')" : "0";
  return "import socket\ns=socket.socket(socket.AF_INET6,socket.SOCK_DGRAM)\ns.sendto(b'" + text + "',('" + group +
         "'," + std::to_string(port) + ",0," + scope + "))\n";
}

// Sends from `from` until the receiver in `to` has printed what it got (bounded: 50 tries).
std::string multicastOnce(const NetnsLab& lab, const std::string& from, const std::string& to, const std::string& group) {
  TempDir dir;
  const auto out = dir / "received";
  Child receiver(lab.inHost(to, {"python3", "-c", receiverScript(group, 5683)}), {}, (dir / "err").string(),
                 out.string());
  for (int i = 0; i < 50 && receiver.running(); ++i) {
    run(lab.inHost(from, {"python3", "-c", senderScript(group, 5683, "hello-from-" + from)}), 10s);
    receiver.wait(100ms);
  }
  receiver.wait(2s);
  return readFile(out);
}

class NetnsLabTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!NetnsLab::available()) GTEST_SKIP() << NetnsLab::unavailableReason();
  }
};

TEST_F(NetnsLabTest, TwoHostsPingEachOtherOverIpv4AndIpv6) {
  NetnsLab lab;
  lab.addHost("a");
  lab.addHost("b");
  EXPECT_NE(lab.ipv4("a"), lab.ipv4("b"));
  for (const auto& [from, to] : {std::pair{"a", "b"}, std::pair{"b", "a"}}) {
    const RunResult v4 = run(lab.inHost(from, {"ping", "-n", "-c", "1", "-W", "3", lab.ipv4(to)}), 10s);
    EXPECT_EQ(v4.exit_code, 0) << from << " -> " << lab.ipv4(to) << ": " << v4.out << v4.err;
    const RunResult v6 = run(lab.inHost(from, {"ping", "-n", "-6", "-c", "1", "-W", "3", lab.ipv6(to)}), 10s);
    EXPECT_EQ(v6.exit_code, 0) << from << " -> " << lab.ipv6(to) << ": " << v6.out << v6.err;
  }
  // The host's own namespace has its addresses on eth0, and nothing of the lab is in ours.
  EXPECT_EQ(lab.run("a", "ip -4 addr show dev eth0 | grep -q 'inet " + lab.ipv4("a") + "/24'"), 0);
  EXPECT_EQ(run({"ip", "-4", "addr", "show"}).out.find(lab.ipv4("a") + "/24"), std::string::npos);
}

TEST_F(NetnsLabTest, CoapMulticastGroupsReachTheOtherHost) {
  NetnsLab lab;
  lab.addHost("a");
  lab.addHost("b");
  lab.addHost("c");
  const std::string v4 = multicastOnce(lab, "a", "b", "224.0.1.187");
  EXPECT_EQ(v4, "hello-from-a " + lab.ipv4("a") + "\n");
  const std::string link_local = multicastOnce(lab, "b", "c", "ff02::fd");
  EXPECT_EQ(link_local.rfind("hello-from-b fe80:", 0), 0u) << link_local;
  const std::string site = multicastOnce(lab, "c", "a", "ff05::fd");
  EXPECT_EQ(site, "hello-from-c " + lab.ipv6("c") + "\n");
}

TEST_F(NetnsLabTest, TwoLabsInOneProcessDoNotCollide) {
  NetnsLab one;
  NetnsLab two;
  one.addHost("a");
  two.addHost("a");
  EXPECT_NE(one.netns("a"), two.netns("a"));
  EXPECT_TRUE(nsExists(one.netns("a")));
  EXPECT_TRUE(nsExists(two.netns("a")));
  EXPECT_THROW(one.addHost("a"), std::invalid_argument);
}

TEST_F(NetnsLabTest, DestructorRemovesEveryNamespaceAndWhatRunsInIt) {
  std::vector<std::string> names;
  std::unique_ptr<Child> sleeper;
  {
    NetnsLab lab;
    names.push_back(lab.addHost("a"));
    names.push_back(lab.addHost("b"));
    sleeper = std::make_unique<Child>(lab.inHost("a", {"sleep", "60"}));
    for (const auto& ns : names) EXPECT_TRUE(nsExists(ns)) << ns;
  }
  for (const auto& ns : names) EXPECT_FALSE(nsExists(ns)) << ns;
  EXPECT_EQ(run({"ip", "netns", "list"}).out.find("celab-" + std::to_string(getpid()) + "-"), std::string::npos);
  EXPECT_TRUE(sleeper->wait(5s).has_value()) << "a process left running in a removed lab";
}

TEST_F(NetnsLabTest, ALabOfADeadProcessIsSweptByTheNextLab) {
  // A pid that certainly belonged to a process that has exited: our own reaped child.
  const pid_t dead = fork();
  if (dead == 0) _exit(0);
  waitpid(dead, nullptr, 0);
  const std::string stale = std::string(NetnsLab::kPrefix) + std::to_string(dead) + "-0-x";
  ASSERT_EQ(run({"ip", "netns", "add", stale}).exit_code, 0);
  ASSERT_TRUE(nsExists(stale));
  // A lab of a live process (ours) is not touched by the sweep.
  NetnsLab alive;
  const std::string ours = alive.addHost("a");
  NetnsLab next;
  EXPECT_FALSE(nsExists(stale));
  EXPECT_TRUE(nsExists(ours));
}

TEST_F(NetnsLabTest, TheAgentRunsInAHostAndServesAnotherOne) {
  NetnsLab lab;
  lab.addHost("gw");
  lab.addHost("node");
  TempDir dir;
  std::string config = baseConfig(dir, 5684);
  config.replace(config.find("127.0.0.1"), 9, lab.ipv4("gw"));
  // NOTIFY_SOCKET is a path: the agent's readiness reaches us from inside the namespace.
  AgentUnderTest agent(dir, config, {}, lab.netns("gw"));
  ASSERT_TRUE(agent.ready()) << agent.log();
  const auto imported = ctl(agent.configFile(), {"keys", "import", "-"}, "dev-1," + hexOf("lab-secret-key-01") + "\n");
  ASSERT_EQ(imported.exit_code, 0) << imported.err;
  const RunResult r = run(lab.inHost("node", {kGnutlsClient, "-B", "5", "-u", "dev-1", "-k", "lab-secret-key-01",
                                              "coaps://" + lab.ipv4("gw") + ":5684/.well-known/core"}),
                          20s);
  EXPECT_NE(r.out.find("</status>"), std::string::npos) << r.out << r.err << agent.log();
  EXPECT_EQ(agent.stop(), std::optional<int>(0)) << agent.log();
}

}  // namespace
}  // namespace coap_edge::test
