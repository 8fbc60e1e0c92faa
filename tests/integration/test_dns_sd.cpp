// DNS-SD against real avahi-daemons: two network namespaces joined by a veth pair, each with
// its own avahi-daemon on a private D-Bus bus. Our DnsSd (EventLoop + AvahiPoll adapter) runs in
// this process inside namespace A; namespace B plays the nodes and the other gateways with
// avahi-publish and avahi-browse. Every wait is bounded.

#include <fcntl.h>
#include <gtest/gtest.h>
#include <sched.h>
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cstdlib>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <regex>
#include <sstream>
#include <thread>
#include <tuple>

#include "avahi_sandbox.h"
#include "daemon/avahi_poll.h"
#include "daemon/event_loop.h"
#include "discovery/dns_sd.h"

namespace coap_edge::test {
namespace {

using namespace std::chrono_literals;
using discovery::DnsSd;
using discovery::DnsSdService;
using discovery::DnsSdSettings;

constexpr const char* kIfA = "ce-a0";
constexpr const char* kIfB = "ce-b0";
constexpr const char* kAddrA = "10.77.0.1";
constexpr const char* kAddrB = "10.77.0.2";

void ip(const std::vector<std::string>& args) {
  std::vector<std::string> argv{AvahiSandbox::findProgram("ip")};
  argv.insert(argv.end(), args.begin(), args.end());
  const auto r = run(argv, 10s);
  if (r.exit_code != 0) throw std::runtime_error("ip failed: " + r.err);
}

// Two namespaces, A (kIfA, kAddrA) and B (kIfB, kAddrB), on one veth link with multicast;
// names unique per process and test; removed in the destructor, whatever the test did.
// Meant to be replaced by tests/support/netns_lab.h's NetnsLab.
class LinkedNamespaces {
 public:
  LinkedNamespaces() {
    static int serial = 0;
    const std::string suffix = std::to_string(getpid()) + "-" + std::to_string(++serial);
    a_ = "ce-dnssd-a-" + suffix;
    b_ = "ce-dnssd-b-" + suffix;
    try {
      ip({"netns", "add", a_});
      ip({"netns", "add", b_});
      // Created inside the namespaces directly: no transient names in the caller's namespace.
      ip({"-n", a_, "link", "add", kIfA, "type", "veth", "peer", "name", kIfB, "netns", b_});
      for (const auto& [ns, dev, addr] : {std::tuple{a_, kIfA, kAddrA}, std::tuple{b_, kIfB, kAddrB}}) {
        ip({"-n", ns, "link", "set", "lo", "up"});
        ip({"-n", ns, "addr", "add", std::string(addr) + "/24", "dev", dev});
        ip({"-n", ns, "link", "set", dev, "multicast", "on", "up"});
      }
    } catch (...) {
      remove();
      throw;
    }
  }
  ~LinkedNamespaces() { remove(); }
  LinkedNamespaces(const LinkedNamespaces&) = delete;
  LinkedNamespaces& operator=(const LinkedNamespaces&) = delete;

  [[nodiscard]] const std::string& a() const { return a_; }
  [[nodiscard]] const std::string& b() const { return b_; }

 private:
  void remove() {
    for (const auto& ns : {a_, b_}) run({AvahiSandbox::findProgram("ip"), "netns", "del", ns}, 10s);
  }
  std::string a_, b_;
};

// Puts the calling thread into a network namespace while it lives: interface names and indexes,
// which DnsSd reports and looks up, are per namespace.
class InNetns {
 public:
  explicit InNetns(const std::string& name) {
    home_ = open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC);
    const int target = open(("/run/netns/" + name).c_str(), O_RDONLY | O_CLOEXEC);
    const bool ok = home_ >= 0 && target >= 0 && setns(target, CLONE_NEWNET) == 0;
    if (target >= 0) close(target);
    if (!ok) {
      if (home_ >= 0) close(home_);
      throw std::runtime_error("cannot enter network namespace " + name);
    }
  }
  ~InNetns() {
    if (setns(home_, CLONE_NEWNET) != 0) std::abort();  // the rest of the process would be lost
    close(home_);
  }
  InNetns(const InNetns&) = delete;
  InNetns& operator=(const InNetns&) = delete;

 private:
  int home_ = -1;
};

// One line of `avahi-browse -p -r`: "=;iface;proto;name;type;domain;host;address;port;txt".
struct Browsed {
  std::string name, type, host, address, txt;
  int port = 0;
};

// avahi-browse -p escapes labels as in DNS master files: "gw-01 #2" is "gw-01\032#2".
std::string unescapeLabel(const std::string& in) {
  std::string out;
  for (std::size_t i = 0; i < in.size(); ++i) {
    if (in[i] == '\\' && i + 3 < in.size() && std::isdigit(static_cast<unsigned char>(in[i + 1])) != 0) {
      out += static_cast<char>(std::stoi(in.substr(i + 1, 3)));
      i += 3;
    } else if (in[i] == '\\' && i + 1 < in.size()) {
      out += in[++i];
    } else {
      out += in[i];
    }
  }
  return out;
}

std::vector<Browsed> parseBrowse(const std::string& out) {
  std::vector<Browsed> found;
  std::istringstream lines(out);
  for (std::string line; std::getline(lines, line);) {
    if (line.rfind("=;", 0) != 0) continue;
    std::vector<std::string> f;
    std::size_t start = 0;
    for (int i = 0; i < 9; ++i) {
      const auto semi = line.find(';', start);
      if (semi == std::string::npos) break;
      f.push_back(line.substr(start, semi - start));
      start = semi + 1;
    }
    if (f.size() != 9) continue;
    f.push_back(line.substr(start));
    found.push_back(Browsed{unescapeLabel(f[3]), f[4], f[6], f[7], f[9], std::atoi(f[8].c_str())});
  }
  return found;
}

class DnsSdTest : public ::testing::Test {
 protected:
  struct Event {
    bool found;
    DnsSdService service;
  };

  void SetUp() override {
    const std::string reason = AvahiSandbox::unavailableReason();
    if (!reason.empty()) GTEST_SKIP() << reason;
    links_ = std::make_unique<LinkedNamespaces>();
    const std::string id = std::to_string(getpid());
    sandbox_b_ = std::make_unique<AvahiSandbox>(AvahiSandboxOptions{links_->b(), {kIfB}, "sbx-b-" + id, true});
  }

  void TearDown() override {
    // Reverse order of creation, on failure too: DnsSd before its loop, the bus, the namespaces.
    dns_sd_.reset();
    adapter_.reset();
    loop_.reset();
    std::error_code ec;
    std::filesystem::remove(busLink(), ec);
    in_a_.reset();
    sandbox_a_.reset();
    sandbox_b_.reset();
    links_.reset();
  }

  void startSandboxA(bool with_daemon = true) {
    sandbox_a_ = std::make_unique<AvahiSandbox>(
        AvahiSandboxOptions{links_->a(), {kIfA}, "sbx-a-" + std::to_string(getpid()), with_daemon});
  }

  // libdbus reads DBUS_SYSTEM_BUS_ADDRESS once per process, so the in-process client always
  // dials one path per process: a symlink pointed at the bus of the test's sandbox A.
  static std::filesystem::path busLink() {
    return std::filesystem::temp_directory_path() / ("coap-edge-dnssd-bus-" + std::to_string(getpid()));
  }
  static void pointBusLinkAt(const std::filesystem::path& socket) {
    std::error_code ec;
    std::filesystem::remove(busLink(), ec);
    std::filesystem::create_symlink(socket, busLink());
  }

  // DnsSd in namespace A, talking to sandbox A's bus if there is one yet.
  void startDnsSd(DnsSdSettings settings) {
    in_a_ = std::make_unique<InNetns>(links_->a());
    if (sandbox_a_) pointBusLinkAt(sandbox_a_->dir() / "bus");
    setenv("DBUS_SYSTEM_BUS_ADDRESS", ("unix:path=" + busLink().string()).c_str(), 1);
    loop_ = std::make_unique<daemon::EventLoop>();
    adapter_ = std::make_unique<daemon::AvahiPollAdapter>(*loop_);
    dns_sd_ = std::make_unique<DnsSd>(
        adapter_->poll(), std::move(settings), [this](const DnsSdService& s) { events_.push_back({true, s}); },
        [this](const DnsSdService& s) { events_.push_back({false, s}); });
  }

  static DnsSdSettings settingsOnA() {
    DnsSdSettings s;
    s.interfaces = {kIfA};
    s.retry_interval = 200ms;
    return s;
  }
  static DnsSdSettings publishingSettings(const std::string& name = "gw-01") {
    DnsSdSettings s = settingsOnA();
    s.publication = discovery::DnsSdPublication{name, "_coaps._udp", 5684, {{"name", name}, {"rd", "/rd"}}};
    return s;
  }

  // Runs the loop until `done` holds or `limit` passes; returns `done()`.
  bool pump(const std::function<bool()>& done, std::chrono::milliseconds limit) {
    const auto deadline = std::chrono::steady_clock::now() + limit;
    if (done()) return true;
    const int timer = loop_->addTimer(20ms, [&] {
      if (done() || std::chrono::steady_clock::now() >= deadline) loop_->stop();
    });
    loop_->run();
    loop_->cancelTimer(timer);
    return done();
  }

  int count(bool found, const std::string& instance) const {
    int n = 0;
    for (const auto& e : events_) n += (e.found == found && e.service.instance == instance) ? 1 : 0;
    return n;
  }
  std::optional<DnsSdService> lastFound(const std::string& instance) const {
    for (auto it = events_.rbegin(); it != events_.rend(); ++it)
      if (it->found && it->service.instance == instance) return it->service;
    return std::nullopt;
  }

  // avahi-publish in B, running until killed; waits (bounded) until B's daemon established it.
  std::unique_ptr<Child> publishInB(const std::vector<std::string>& args) {
    const auto out = sandbox_b_->dir() / ("publish-" + std::to_string(++publishes_) + ".out");
    std::vector<std::string> argv{AvahiSandbox::findProgram("ip"), "netns", "exec", links_->b(),
                                  AvahiSandbox::findProgram("avahi-publish")};
    argv.insert(argv.end(), args.begin(), args.end());
    auto child = std::make_unique<Child>(argv, sandbox_b_->clientEnv(), out.string(), out.string());
    const auto deadline = std::chrono::steady_clock::now() + 20s;
    while (readFile(out).find("Established under name") == std::string::npos) {
      if (!child->running() || std::chrono::steady_clock::now() > deadline) {
        ADD_FAILURE() << "avahi-publish did not establish: " << readFile(out);
        break;
      }
      std::this_thread::sleep_for(50ms);
    }
    return child;
  }

  // What B's avahi-daemon resolves for `type` (one browse: until "all for now").
  std::vector<Browsed> browseFromB(const std::string& type) {
    const auto r = run({AvahiSandbox::findProgram("ip"), "netns", "exec", links_->b(),
                        AvahiSandbox::findProgram("avahi-browse"), "-r", "-p", "-t", type},
                       20s, "", sandbox_b_->clientEnv());
    return parseBrowse(r.out);
  }
  // Browses from B until `want` holds for the result (or `limit` passes); returns the last result.
  std::vector<Browsed> browseFromBUntil(const std::string& type,
                                        const std::function<bool(const std::vector<Browsed>&)>& want,
                                        std::chrono::milliseconds limit) {
    const auto deadline = std::chrono::steady_clock::now() + limit;
    std::vector<Browsed> seen;
    do {
      seen = browseFromB(type);
      if (want(seen)) break;
      std::this_thread::sleep_for(200ms);
    } while (std::chrono::steady_clock::now() < deadline);
    return seen;
  }
  static bool hasInstance(const std::vector<Browsed>& seen, const std::string& name, const std::string& address) {
    return std::any_of(seen.begin(), seen.end(),
                       [&](const Browsed& b) { return b.name == name && b.address == address; });
  }

  std::string linkLocalOfB() {
    const auto r = run({AvahiSandbox::findProgram("ip"), "-n", links_->b(), "-6", "addr", "show", "dev", kIfB,
                        "scope", "link"},
                       10s);
    std::smatch m;
    static const std::regex re(R"(inet6 (fe80:[0-9a-f:]+)/)");
    return std::regex_search(r.out, m, re) ? m[1].str() : "";
  }

  std::unique_ptr<LinkedNamespaces> links_;
  std::unique_ptr<AvahiSandbox> sandbox_b_;
  std::unique_ptr<AvahiSandbox> sandbox_a_;
  std::unique_ptr<InNetns> in_a_;
  std::unique_ptr<daemon::EventLoop> loop_;
  std::unique_ptr<daemon::AvahiPollAdapter> adapter_;
  std::unique_ptr<DnsSd> dns_sd_;
  std::vector<Event> events_;
  int publishes_ = 0;
};

TEST_F(DnsSdTest, FindsANodeOnTheLinkWithAddressPortAndTxtAndLosesItWhenItLeaves) {
  startSandboxA();
  ASSERT_TRUE(sandbox_a_->waitRunning()) << sandbox_a_->logs();
  ASSERT_TRUE(sandbox_b_->waitRunning()) << sandbox_b_->logs();
  startDnsSd(settingsOnA());
  ASSERT_TRUE(pump([&] { return dns_sd_->state() == "running"; }, 15s)) << dns_sd_->state();

  auto node = publishInB({"-s", "node-1", "_coap._udp", "5683", "ep=node-1"});
  ASSERT_TRUE(pump([&] { return count(true, "node-1") > 0; }, 20s)) << sandbox_a_->logs();
  const DnsSdService s = *lastFound("node-1");
  EXPECT_EQ(s.type, "_coap._udp");
  EXPECT_EQ(s.interface, kIfA);
  EXPECT_EQ(s.host_name, sandbox_b_->hostName() + ".local");
  // Either of B's addresses, whichever IP protocol answered first; link-local carries the zone.
  const std::string v6 = linkLocalOfB() + "%" + kIfA;
  EXPECT_TRUE(s.address == kAddrB || s.address == v6) << s.address << " (B: " << kAddrB << ", " << v6 << ")";
  EXPECT_EQ(s.port, 5683);
  EXPECT_EQ(s.txt, (std::map<std::string, std::string>{{"ep", "node-1"}}));
  EXPECT_FALSE(s.secure);
  EXPECT_EQ(dns_sd_->services(), std::vector<DnsSdService>{s});
  EXPECT_EQ(count(true, "node-1"), 1) << "reported once, though seen over IPv4 and IPv6";

  node->signal(SIGTERM);  // avahi-publish withdraws: goodbye packets
  ASSERT_TRUE(pump([&] { return count(false, "node-1") > 0; }, 20s));
  EXPECT_TRUE(dns_sd_->services().empty());
  EXPECT_EQ(dns_sd_->counters().services_found, 1U);
  EXPECT_EQ(dns_sd_->counters().services_lost, 1U);
}

TEST_F(DnsSdTest, PublishesTheGatewaySoTheOtherHostSeesItButDoesNotFindItself) {
  startSandboxA();
  ASSERT_TRUE(sandbox_a_->waitRunning()) << sandbox_a_->logs();
  ASSERT_TRUE(sandbox_b_->waitRunning()) << sandbox_b_->logs();
  startDnsSd(publishingSettings());
  ASSERT_TRUE(pump([&] { return dns_sd_->published(); }, 20s)) << sandbox_a_->logs();
  EXPECT_EQ(dns_sd_->publishedName(), "gw-01");

  const auto seen = browseFromBUntil(
      "_coaps._udp", [](const auto& v) { return hasInstance(v, "gw-01", kAddrA); }, 20s);
  const auto it = std::find_if(seen.begin(), seen.end(), [](const Browsed& b) { return b.address == kAddrA; });
  ASSERT_NE(it, seen.end()) << "B did not see gw-01 at " << kAddrA;
  EXPECT_EQ(it->name, "gw-01");
  EXPECT_EQ(it->type, "_coaps._udp");
  EXPECT_EQ(it->host, sandbox_a_->hostName() + ".local");
  EXPECT_EQ(it->port, 5684);
  EXPECT_NE(it->txt.find("\"name=gw-01\""), std::string::npos) << it->txt;
  EXPECT_NE(it->txt.find("\"rd=/rd\""), std::string::npos) << it->txt;

  // We browse _coaps._udp too, but our own publication is not a node.
  pump([] { return false; }, 500ms);
  EXPECT_EQ(count(true, "gw-01"), 0);
}

TEST_F(DnsSdTest, DaemonRestartReportsEverythingLostThenFindsAndPublishesAgain) {
  startSandboxA();
  ASSERT_TRUE(sandbox_a_->waitRunning()) << sandbox_a_->logs();
  ASSERT_TRUE(sandbox_b_->waitRunning()) << sandbox_b_->logs();
  auto node = publishInB({"-s", "node-1", "_coap._udp", "5683", "ep=node-1"});
  startDnsSd(publishingSettings());
  ASSERT_TRUE(pump([&] { return count(true, "node-1") == 1 && dns_sd_->published(); }, 20s)) << sandbox_a_->logs();

  sandbox_a_->stopDaemon();
  ASSERT_TRUE(pump([&] { return count(false, "node-1") == 1; }, 15s)) << "no lost report when the daemon went away";
  EXPECT_EQ(dns_sd_->state(), "connecting");
  EXPECT_TRUE(dns_sd_->services().empty());
  EXPECT_FALSE(dns_sd_->published());
  // The daemon said goodbye for our service: B forgets it.
  const auto gone = browseFromBUntil(
      "_coaps._udp", [](const auto& v) { return !hasInstance(v, "gw-01", kAddrA); }, 20s);
  EXPECT_FALSE(hasInstance(gone, "gw-01", kAddrA));

  sandbox_a_->startDaemon();
  ASSERT_TRUE(pump([&] { return count(true, "node-1") == 2 && dns_sd_->published(); }, 30s)) << sandbox_a_->logs();
  EXPECT_EQ(dns_sd_->state(), "running");
  EXPECT_EQ(dns_sd_->counters().daemon_reconnects, 1U);
  EXPECT_EQ(dns_sd_->services().size(), 1U);
  const auto back = browseFromBUntil(
      "_coaps._udp", [](const auto& v) { return hasInstance(v, "gw-01", kAddrA); }, 20s);
  EXPECT_TRUE(hasInstance(back, "gw-01", kAddrA)) << "not re-published";
}

TEST_F(DnsSdTest, NameTakenOnTheLinkRenamesThePublicationAndBothStayVisible) {
  startSandboxA();
  ASSERT_TRUE(sandbox_a_->waitRunning()) << sandbox_a_->logs();
  ASSERT_TRUE(sandbox_b_->waitRunning()) << sandbox_b_->logs();
  auto other = publishInB({"-s", "gw-01", "_coaps._udp", "5684", "name=other"});
  startDnsSd(publishingSettings());
  ASSERT_TRUE(pump([&] { return dns_sd_->published(); }, 30s)) << sandbox_a_->logs();
  EXPECT_EQ(dns_sd_->publishedName(), "gw-01 #2");
  EXPECT_GE(dns_sd_->counters().publish_collisions, 1U);

  const auto seen = browseFromBUntil(
      "_coaps._udp",
      [](const auto& v) { return hasInstance(v, "gw-01", kAddrB) && hasInstance(v, "gw-01 #2", kAddrA); }, 20s);
  EXPECT_TRUE(hasInstance(seen, "gw-01", kAddrB)) << "the first owner lost its name";
  EXPECT_TRUE(hasInstance(seen, "gw-01 #2", kAddrA)) << "our renamed service is not visible";
  // B's gw-01 is another gateway to us: found like any node, secure since it is _coaps.
  ASSERT_TRUE(pump([&] { return count(true, "gw-01") > 0; }, 20s));
  EXPECT_TRUE(lastFound("gw-01")->secure);
  EXPECT_EQ(lastFound("gw-01")->txt.at("name"), "other");
}

TEST_F(DnsSdTest, WaitsForTheBusAndTheDaemonThenRuns) {
  ASSERT_TRUE(sandbox_b_->waitRunning()) << sandbox_b_->logs();
  auto node = publishInB({"-s", "node-1", "_coap._udp", "5683", "ep=node-1"});
  // No bus yet: the client's bus path leads nowhere until sandbox A's bus is up.
  startDnsSd(settingsOnA());
  EXPECT_EQ(dns_sd_->state(), "failed");
  pump([] { return false; }, 500ms);  // a few retries
  EXPECT_EQ(dns_sd_->state(), "failed");

  startSandboxA(/*with_daemon=*/false);
  pointBusLinkAt(sandbox_a_->dir() / "bus");
  ASSERT_TRUE(pump([&] { return dns_sd_->state() == "connecting"; }, 10s)) << dns_sd_->state();

  sandbox_a_->startDaemon();
  ASSERT_TRUE(pump([&] { return count(true, "node-1") == 1; }, 30s)) << dns_sd_->state() << sandbox_a_->logs();
  EXPECT_EQ(dns_sd_->state(), "running");
  EXPECT_EQ(dns_sd_->counters().daemon_reconnects, 0U) << "the first connection is not a reconnect";
}


TEST_F(DnsSdTest, ResolutionsQueueBehindTheResolverCapAndServicesBeyondTheCapAreDropped) {
  startSandboxA();
  ASSERT_TRUE(sandbox_a_->waitRunning()) << sandbox_a_->logs();
  ASSERT_TRUE(sandbox_b_->waitRunning()) << sandbox_b_->logs();
  std::map<std::string, std::unique_ptr<Child>> nodes;
  for (const char* name : {"node-1", "node-2", "node-3", "node-4"})
    nodes[name] = publishInB({"-s", name, "_coap._udp", "5683", std::string("ep=") + name});
  DnsSdSettings settings = settingsOnA();
  settings.service_types = {"_coap._udp"};
  settings.max_resolvers = 1;  // one at a time: the rest wait their turn
  settings.max_services = 3;
  startDnsSd(settings);
  ASSERT_TRUE(pump([&] { return dns_sd_->services().size() == 3 && dns_sd_->counters().services_dropped > 0; }, 30s))
      << dns_sd_->services().size() << " found, " << dns_sd_->counters().services_dropped << " dropped";
  pump([] { return false; }, 500ms);
  EXPECT_EQ(dns_sd_->services().size(), 3U) << "more than max_services tracked";
  EXPECT_EQ(dns_sd_->counters().services_found, 3U);

  // One that was found leaves: reported lost like any other.
  const std::string leaving = dns_sd_->services().front().instance;
  nodes.at(leaving)->signal(SIGTERM);
  ASSERT_TRUE(pump([&] { return count(false, leaving) == 1; }, 20s));
  EXPECT_EQ(dns_sd_->services().size(), 2U);
}

}  // namespace
}  // namespace coap_edge::test
