#pragma once
// DNS-SD over the system's avahi-daemon (D-Bus): browse for CoAP services on the configured
// interfaces and publish the gateway's own coaps service. One owner of the Avahi client; it runs
// on the caller's main loop through an AvahiPoll (the daemon's adapter), never on a thread.
//
// The daemon may be absent, stop or restart at any time: every service found through it is then
// reported lost (no stale entries), and when it is back the browse and the publication start
// again. A name collision on the network renames the publication ("gw-01 #2").

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

struct AvahiPoll;

namespace coap_edge::discovery {

/// A resolved service instance as seen on one interface.
struct DnsSdService {
  std::string instance;   ///< "node-1"
  std::string type;       ///< "_coap._udp"
  std::string interface;  ///< where it was seen, "eth0"
  std::string host_name;  ///< "node-1.local"
  std::string address;    ///< numeric; IPv6 link-local with a zone: "fe80::1%eth0"
  std::uint16_t port = 0;
  /// TXT records key -> value ("" for a bare key); a repeated key keeps one of its values.
  /// Raw bytes from the network: pass through log::printable() before logging.
  std::map<std::string, std::string> txt;
  bool secure = false;  ///< type is _coaps._udp

  friend bool operator==(const DnsSdService&, const DnsSdService&) = default;
};

struct DnsSdPublication {
  std::string instance;  ///< the gateway's name ([agent] name)
  std::string type = "_coaps._udp";
  std::uint16_t port = 5684;
  std::map<std::string, std::string> txt;  ///< e.g. name=gw-01, rd=/rd
};

struct DnsSdSettings {
  /// Interface names to browse and publish on; empty = all interfaces.
  std::vector<std::string> interfaces;
  std::vector<std::string> service_types = {"_coap._udp", "_coaps._udp"};
  std::optional<DnsSdPublication> publication;
  /// Resolutions in flight at once; more wait in a queue.
  std::size_t max_resolvers = 16;
  /// Services tracked at once (found or being resolved); more are ignored and counted.
  std::size_t max_services = 1024;
  /// Retry for what cannot be done now: no D-Bus system bus, an interface not present yet, a
  /// browser or publication that failed.
  std::chrono::milliseconds retry_interval = std::chrono::seconds(5);
};

struct DnsSdCounters {
  std::uint64_t services_found = 0;
  std::uint64_t services_lost = 0;
  std::uint64_t services_dropped = 0;  ///< ignored at max_services
  std::uint64_t resolve_failures = 0;
  std::uint64_t daemon_reconnects = 0;  ///< running again after the daemon or the bus was lost
  std::uint64_t publish_collisions = 0;
};

class DnsSd {
 public:
  using FoundCallback = std::function<void(const DnsSdService&)>;
  /// Gets the service as it was reported found.
  using LostCallback = std::function<void(const DnsSdService&)>;

  /// Connects to avahi-daemon at once (or keeps trying); never throws for a missing daemon or
  /// bus. Callbacks run on the loop behind `poll` and must not destroy this object.
  /// @param[in] poll      must outlive this object (daemon::AvahiPollAdapter::poll()).
  /// @param[in] settings  what to browse and publish; interface names are looked up on use.
  DnsSd(const AvahiPoll* poll, DnsSdSettings settings, FoundCallback on_found, LostCallback on_lost);
  /// Withdraws the publication and stops browsing; reports nothing.
  ~DnsSd();
  DnsSd(const DnsSd&) = delete;
  DnsSd& operator=(const DnsSd&) = delete;

  /// "running" (connected to a running avahi-daemon), "connecting" (waiting for the daemon or
  /// for it to finish registering its host name) or "failed" (no D-Bus bus; retrying).
  [[nodiscard]] std::string_view state() const;
  [[nodiscard]] DnsSdCounters counters() const;
  /// Services currently found, ordered by interface index, type, instance.
  [[nodiscard]] std::vector<DnsSdService> services() const;
  /// The instance name in use for the publication (after collisions), if publishing.
  [[nodiscard]] std::optional<std::string> publishedName() const;
  /// True once avahi-daemon confirmed the publication under publishedName().
  [[nodiscard]] bool published() const;

 private:
  class Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace coap_edge::discovery
