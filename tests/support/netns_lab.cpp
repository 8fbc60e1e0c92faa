#include "netns_lab.h"

#include "process.h"

#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <sstream>
#include <stdexcept>
#include <thread>

namespace coap_edge::test {
namespace {

constexpr auto kStepLimit = std::chrono::seconds(15);

void must(const std::vector<std::string>& argv) {
  const RunResult r = test::run(argv, kStepLimit);
  if (r.exit_code != 0) {
    std::string cmd;
    for (const auto& a : argv) cmd += (cmd.empty() ? "" : " ") + a;
    throw std::runtime_error("netns lab: `" + cmd + "` failed: " + r.err);
  }
}

std::vector<std::string> namespaces() {
  std::vector<std::string> out;
  const RunResult r = test::run({"ip", "netns", "list"}, kStepLimit);
  std::istringstream lines(r.out);
  std::string line;
  while (std::getline(lines, line)) {
    // "name" or "name (id: 3)"
    const std::string name = line.substr(0, line.find(' '));
    if (!name.empty()) out.push_back(name);
  }
  return out;
}

// Whatever still runs in a lab namespace belongs to the test that made the lab (agents and
// simulated nodes it started); a namespace with processes left in it would outlive its name.
void removeNamespace(const std::string& ns) {
  const RunResult pids = test::run({"ip", "netns", "pids", ns}, kStepLimit);
  std::istringstream in(pids.out);
  long pid = 0;
  while (in >> pid) {
    if (pid > 1 && pid != getpid()) kill(static_cast<pid_t>(pid), SIGKILL);
  }
  test::run({"ip", "netns", "delete", ns}, kStepLimit);
}

// "celab-<pid>-..." -> pid, or 0 if the name is not a lab's.
pid_t ownerOf(const std::string& ns) {
  const std::string prefix = NetnsLab::kPrefix;
  if (ns.rfind(prefix, 0) != 0) return 0;
  const std::string rest = ns.substr(prefix.size());
  const auto dash = rest.find('-');
  const std::string digits = rest.substr(0, dash);
  if (digits.empty() || digits.find_first_not_of("0123456789") != std::string::npos || digits.size() > 9) return 0;
  return static_cast<pid_t>(std::stol(digits));
}

void sweepStaleLabs() {
  for (const auto& ns : namespaces()) {
    const pid_t owner = ownerOf(ns);
    if (owner <= 0 || owner == getpid()) continue;
    if (kill(owner, 0) == -1 && errno == ESRCH) removeNamespace(ns);
  }
}

bool validHostName(const std::string& name) {
  if (name.empty() || name.size() > 20) return false;
  for (char c : name) {
    const bool ok = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_';
    if (!ok) return false;
  }
  return true;
}

std::atomic<unsigned> g_lab_counter{0};

struct Availability {
  bool ok = false;
  std::string reason;
};

Availability probe() {
  if (geteuid() != 0) return {false, "network-namespace tests need root (ip netns, bridges, veth)"};
  const std::string ns = std::string(NetnsLab::kPrefix) + std::to_string(getpid()) + "-probe";
  const RunResult add = test::run({"ip", "netns", "add", ns}, kStepLimit);
  if (add.exit_code != 0) return {false, "`ip netns add` does not work here: " + add.err};
  Availability a{true, ""};
  const RunResult br = test::run({"ip", "-n", ns, "link", "add", "br0", "type", "bridge"}, kStepLimit);
  const RunResult veth = test::run({"ip", "-n", ns, "link", "add", "a0", "type", "veth", "peer", "name", "b0"}, kStepLimit);
  if (br.exit_code != 0) a = {false, "cannot create a Linux bridge in a namespace: " + br.err};
  if (a.ok && veth.exit_code != 0) a = {false, "cannot create a veth pair in a namespace: " + veth.err};
  removeNamespace(ns);
  return a;
}

const Availability& availability() {
  static const Availability a = probe();
  return a;
}

}  // namespace

bool NetnsLab::available() { return availability().ok; }
std::string NetnsLab::unavailableReason() { return availability().reason; }

NetnsLab::NetnsLab() {
  sweepStaleLabs();
  lab_index_ = g_lab_counter.fetch_add(1);
  base_ = std::string(kPrefix) + std::to_string(getpid()) + "-" + std::to_string(lab_index_);
  bridge_ns_ = base_ + "-br";
  try {
    must({"ip", "netns", "add", bridge_ns_});
    // Snooping off: multicast floods to every port, as on a dumb switch, without waiting for
    // MLD/IGMP reports. No STP and no forward delay: ports forward as soon as they are up.
    must({"ip", "-n", bridge_ns_, "link", "add", "br0", "type", "bridge", "mcast_snooping", "0", "stp_state", "0",
          "forward_delay", "0"});
    must({"ip", "-n", bridge_ns_, "link", "set", "br0", "up"});
  } catch (...) {
    removeNamespace(bridge_ns_);
    throw;
  }
}

NetnsLab::~NetnsLab() {
  for (const auto& h : hosts_) removeNamespace(h.ns);
  removeNamespace(bridge_ns_);
}

std::string NetnsLab::addHost(const std::string& name) {
  if (!validHostName(name)) throw std::invalid_argument("netns lab: bad host name '" + name + "'");
  for (const auto& h : hosts_) {
    if (h.name == name) throw std::invalid_argument("netns lab: host '" + name + "' exists");
  }
  if (hosts_.size() >= 250) throw std::invalid_argument("netns lab: too many hosts");
  const std::string n = std::to_string(hosts_.size() + 1);
  // Never 0, so that the IPv6 address is written the one way the kernel prints it back.
  const std::string lab = std::to_string(lab_index_ % 255 + 1);
  Host h{name, base_ + "-" + name, "10.199." + lab + "." + n, "fd00:199:" + lab + "::" + n};
  must({"ip", "netns", "add", h.ns});
  hosts_.push_back(h);  // from here on the destructor removes it, whatever fails below
  const std::string port = "port" + n;
  // DAD off before eth0 exists, so that its link-local and global addresses are usable at once.
  // (/proc/sys/net shows the namespace of the process that writes it.)
  must(inHost(name, {"sh", "-c",
                     "echo 0 > /proc/sys/net/ipv6/conf/all/accept_dad && "
                     "echo 0 > /proc/sys/net/ipv6/conf/default/accept_dad"}));
  must({"ip", "-n", bridge_ns_, "link", "add", port, "type", "veth", "peer", "name", "eth0", "netns", h.ns});
  must({"ip", "-n", bridge_ns_, "link", "set", port, "master", "br0", "up"});
  must({"ip", "-n", h.ns, "link", "set", "lo", "up"});
  must({"ip", "-n", h.ns, "link", "set", "eth0", "multicast", "on", "up"});
  must({"ip", "-n", h.ns, "addr", "add", h.v4 + "/24", "dev", "eth0"});
  must({"ip", "-n", h.ns, "-6", "addr", "add", h.v6 + "/64", "dev", "eth0", "nodad"});
  // Without a default route a multicast send with no chosen interface has nowhere to go.
  must({"ip", "-n", h.ns, "route", "add", "224.0.0.0/4", "dev", "eth0"});
  must({"ip", "-n", h.ns, "-6", "route", "add", "ff05::/16", "dev", "eth0"});
  // The link-local address appears when the veth carrier comes up; wait for it (bounded).
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
  while (true) {
    const RunResult r = test::run({"ip", "-n", h.ns, "-6", "addr", "show", "dev", "eth0", "scope", "link"}, kStepLimit);
    if (r.out.find("fe80::") != std::string::npos && r.out.find("tentative") == std::string::npos) break;
    if (std::chrono::steady_clock::now() >= deadline) {
      throw std::runtime_error("netns lab: no link-local address on eth0 of " + h.ns + ": " + r.out);
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  return h.ns;
}

const NetnsLab::Host& NetnsLab::host(const std::string& name) const {
  for (const auto& h : hosts_) {
    if (h.name == name) return h;
  }
  throw std::invalid_argument("netns lab: no host '" + name + "'");
}

std::string NetnsLab::ipv4(const std::string& name) const { return host(name).v4; }
std::string NetnsLab::ipv6(const std::string& name) const { return host(name).v6; }
std::string NetnsLab::netns(const std::string& name) const { return host(name).ns; }

std::vector<std::string> NetnsLab::inHost(const std::string& name, std::vector<std::string> argv) const {
  std::vector<std::string> out{"ip", "netns", "exec", host(name).ns};
  out.insert(out.end(), std::make_move_iterator(argv.begin()), std::make_move_iterator(argv.end()));
  return out;
}

int NetnsLab::run(const std::string& name, const std::string& shell_command) const {
  return test::run(inHost(name, {"sh", "-c", shell_command}), std::chrono::seconds(30)).exit_code;
}

}  // namespace coap_edge::test
