#pragma once
// A real avahi-daemon for tests, on a PRIVATE D-Bus bus and optionally inside a network
// namespace, so tests never touch the machine's own avahi-daemon or system bus:
//   - a mount namespace with its own tmpfs on /run (avahi-daemon's pid file and socket),
//   - a dbus-daemon from a generated config (a unix socket in a temp dir, policy: allow all),
//   - avahi-daemon --no-drop-root --no-chroot -f <generated config> (allow-interfaces as given,
//     no workstation/hinfo records, IPv4 and IPv6) with DBUS_SYSTEM_BUS_ADDRESS set to that bus.
// Clients reach it through clientEnv() (avahi-browse, avahi-publish) or, in process, by setting
// DBUS_SYSTEM_BUS_ADDRESS to busAddress() before avahi_client_new(). Needs root.

#include <chrono>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "harness.h"
#include "process.h"

namespace coap_edge::test {

struct AvahiSandboxOptions {
  std::string netns;                          ///< `ip netns` name; "" = the caller's namespace
  std::vector<std::string> allow_interfaces;  ///< empty = every interface avahi-daemon likes
  std::string host_name;                      ///< distinct per sandbox on one link; "" = generated
  bool start_daemon = true;                   ///< false: only the bus; startDaemon() later
};

class AvahiSandbox {
 public:
  /// Why the sandbox cannot run here ("" if it can): not root, or a program is missing.
  static std::string unavailableReason();
  /// Absolute path of `program` from PATH or the sbin directories ("" if none).
  static std::string findProgram(const std::string& program);

  /// Starts the bus (bounded wait until it answers), then avahi-daemon unless told not to.
  /// Throws std::runtime_error with the bus log if the bus does not come up.
  explicit AvahiSandbox(AvahiSandboxOptions options);
  /// Stops avahi-daemon and the bus (SIGTERM, then SIGKILL) and removes the temp dir.
  ~AvahiSandbox();
  AvahiSandbox(const AvahiSandbox&) = delete;
  AvahiSandbox& operator=(const AvahiSandbox&) = delete;

  /// "unix:path=/tmp/.../bus".
  [[nodiscard]] std::string busAddress() const;
  /// {DBUS_SYSTEM_BUS_ADDRESS: busAddress()} for Child/run().
  [[nodiscard]] std::map<std::string, std::string> clientEnv() const;
  [[nodiscard]] const std::string& hostName() const { return options_.host_name; }
  [[nodiscard]] const std::filesystem::path& dir() const { return dir_.path(); }

  /// Starts avahi-daemon in the sandbox's namespaces (no-op if it runs).
  void startDaemon();
  /// SIGTERM (goodbye packets go out), bounded wait, SIGKILL if it lingers.
  void stopDaemon();
  /// Waits until avahi-daemon answers on the bus in its running state; false at `limit`.
  bool waitRunning(std::chrono::milliseconds limit = std::chrono::seconds(15));
  /// avahi-daemon's and dbus-daemon's output so far (for failure messages).
  [[nodiscard]] std::string logs() const;

 private:
  bool busAnswers();

  AvahiSandboxOptions options_;
  TempDir dir_;
  std::unique_ptr<Child> bus_;     // holds the mount (and network) namespace
  std::unique_ptr<Child> daemon_;  // avahi-daemon, entered into the bus's namespaces
  int daemon_runs_ = 0;
};

}  // namespace coap_edge::test
