#pragma once
// A real avahi-daemon inside a NetnsLab host, on a D-Bus system bus of its own: mDNS stays on
// the lab's segment, the machine's own bus and daemon (if any) are not touched, and two tests can
// each have one at the same time (/run/avahi-daemon is a private tmpfs in the daemon's mount
// namespace). Programs that should talk to it get env() (DBUS_SYSTEM_BUS_ADDRESS).

#include "netns_lab.h"
#include "process.h"

#include <chrono>
#include <filesystem>
#include <map>
#include <memory>
#include <string>

namespace coap_edge::test {

class PrivateAvahi {
 public:
  /// Starts dbus-daemon and avahi-daemon (eth0 only) in `host`; files go under `dir`.
  PrivateAvahi(const NetnsLab& lab, const std::string& host, const std::filesystem::path& dir);
  ~PrivateAvahi();
  PrivateAvahi(const PrivateAvahi&) = delete;
  PrivateAvahi& operator=(const PrivateAvahi&) = delete;

  /// avahi-daemon said "Server startup complete" (waited for in the constructor, bounded).
  [[nodiscard]] bool ready() const { return ready_; }
  [[nodiscard]] std::map<std::string, std::string> env() const;
  [[nodiscard]] std::string log() const;
  /// dbus-daemon, avahi-daemon and unshare are installed; else why not.
  static bool available(std::string& why);

 private:
  std::filesystem::path dir_;
  std::unique_ptr<Child> bus_;
  std::unique_ptr<Child> avahi_;
  bool ready_ = false;
};

}  // namespace coap_edge::test
