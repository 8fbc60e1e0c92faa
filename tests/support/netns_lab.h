#pragma once
// A network-namespace lab for integration tests: hosts on one Ethernet segment, each host a
// network namespace with "eth0" on a Linux bridge that lives in a namespace of its own, so that
// nothing touches the machine's own interfaces and addresses. Multicast floods on the segment
// (snooping off) and addresses are usable at once (no DAD, no STP delay).
//
// Names carry the owning pid and a per-process counter ("celab-<pid>-<n>-<host>"), so labs of
// tests that run in parallel never collide, and a lab left by a crashed test process (dead pid)
// is swept by the next lab. Everything is removed in the destructor, also when a test failed.

#include <cstddef>
#include <string>
#include <vector>

namespace coap_edge::test {

class NetnsLab {
 public:
  /// Removes stale labs of dead processes, then creates the bridge namespace of this lab.
  NetnsLab();
  /// Kills what still runs in the lab's namespaces and deletes them (and so every veth).
  ~NetnsLab();
  NetnsLab(const NetnsLab&) = delete;
  NetnsLab& operator=(const NetnsLab&) = delete;

  /// Adds a host: interface "eth0" on the bridge, 10.199.<lab>.N/24 and fd00:199:<lab>::N/64 (lab 1..255)
  /// (nodad) plus its link-local address, lo up, routes that send 224.0.0.0/4 and ff05::/16 out
  /// of eth0. Returns the namespace's name. Throws std::runtime_error if a setup step fails.
  std::string addHost(const std::string& name);

  [[nodiscard]] std::string ipv4(const std::string& host) const;
  [[nodiscard]] std::string ipv6(const std::string& host) const;
  [[nodiscard]] std::string netns(const std::string& host) const;
  /// `argv` prefixed with "ip netns exec <ns>", for run() or Child.
  [[nodiscard]] std::vector<std::string> inHost(const std::string& host, std::vector<std::string> argv) const;
  /// Runs `sh -c shell_command` inside the host (at most 30 s); its exit code, -1 on timeout.
  int run(const std::string& host, const std::string& shell_command) const;

  /// Root, and `ip netns` can create a namespace with a bridge and a veth pair in it.
  static bool available();
  /// Why available() is false, for GTEST_SKIP().
  static std::string unavailableReason();
  /// The prefix of every namespace a lab creates.
  static constexpr const char* kPrefix = "celab-";

 private:
  struct Host {
    std::string name, ns, v4, v6;
  };
  [[nodiscard]] const Host& host(const std::string& name) const;

  std::string base_;       ///< "celab-<pid>-<n>"
  std::string bridge_ns_;  ///< base_ + "-br"
  unsigned lab_index_ = 0;
  std::vector<Host> hosts_;
};

}  // namespace coap_edge::test
