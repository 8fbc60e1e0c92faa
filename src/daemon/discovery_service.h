#pragma once
// Discovery wired onto the agent: the node registry fed by the multicast prober, the Avahi
// browser and the Resource Directory; /nodes, /rd, /rd/{ep}, /rd-lookup/ep and /rd-lookup/res on
// the server; probe and expiry timers on the event loop. The parts themselves (discovery/) are
// pure logic or own only their sockets; this class is the glue and the place that turns their
// results into CoAP responses and registry sightings.

#include "coap/server.h"
#include "config/config.h"
#include "daemon/discovery_status.h"
#include "daemon/event_loop.h"
#include "discovery/multicast_prober.h"
#include "discovery/neighbors.h"
#include "discovery/node_registry.h"
#include "discovery/resource_directory.h"

#include <chrono>
#include <cstddef>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace coap_edge::discovery {
class DnsSd;
}

namespace coap_edge::daemon {

class AvahiPollAdapter;

class DiscoveryService {
 public:
  /// Opens the multicast sockets and connects to Avahi as configured, and adds the resources.
  /// Throws StartupFailure-worthy std::runtime_error subclasses: discovery::ProbeError.
  DiscoveryService(EventLoop& loop, coap::Server& server, const config::Config& config);
  ~DiscoveryService();
  DiscoveryService(const DiscoveryService&) = delete;
  DiscoveryService& operator=(const DiscoveryService&) = delete;

  [[nodiscard]] DiscoveryStatus status() const;
  [[nodiscard]] discovery::NodeRegistry& registry() { return registry_; }
  /// Where requests below /nodes/{id}/ go (the relay); without one they get 5.01.
  void setRelay(coap::AsyncHandler relay) { relay_ = std::move(relay); }
  /// The gateway's own credential for a coaps node ([[relay.credentials]]), or null: with one,
  /// a node announced as _coaps._udp has its resources fetched over coaps too.
  using CredentialLookup = std::function<std::shared_ptr<const coap::ClientPsk>(const std::string& node_id)>;
  void setCredentialLookup(CredentialLookup lookup) { credential_for_ = std::move(lookup); }

 private:
  void addResources(bool resource_directory);
  void startMulticast(const config::DiscoverySection& d);
  void startDnsSd(const config::Config& config);
  void onProbeAnswer(const discovery::ProbeAnswer& answer);
  /// The answers held back by onProbeAnswer(), with a fresh neighbour table.
  void observeUnnamedAnswers();
  void observeProbeAnswer(const discovery::ProbeAnswer& answer, std::optional<std::string> mac);
  void onDnsSdFound(const std::string& instance, const std::string& interface, const std::string& address,
                    std::uint16_t port, bool secure);
  /// GET /.well-known/core from a node and record what it lists as the sighting's resources.
  void fetchResources(discovery::Sighting sighting, std::shared_ptr<const coap::ClientPsk> psk = nullptr);
  void onRegistration(const discovery::Registration& registration, discovery::RdEvent event);
  void expire();
  /// The responder's link-layer address (kernel neighbour table, re-read at most every kNeighborReread).
  std::optional<std::string> linkAddressOf(const std::string& host);

  [[nodiscard]] coap::Response rdRegister(const coap::Request& request);
  [[nodiscard]] coap::Response rdResource(const coap::Request& request);
  /// POST /.well-known/rd (RFC 9176 §5.1): 2.04 at once, then the RD fetches the requester's
  /// /.well-known/core over the same session and registers what it lists.
  [[nodiscard]] coap::Response rdSimpleRegister(const coap::Request& request);
  [[nodiscard]] coap::Response nodesList(const coap::Request& request) const;
  /// GET /nodes/{id}: the node's resources as the gateway knows them, targets under /nodes/{id}.
  [[nodiscard]] coap::Response nodeResources(const coap::Request& request) const;

  EventLoop& loop_;
  coap::Server& server_;
  coap::AsyncHandler relay_;
  CredentialLookup credential_for_;
  discovery::NodeRegistry registry_;
  discovery::ResourceDirectory rd_;
  std::unique_ptr<discovery::MulticastProber> prober_;
  std::unique_ptr<AvahiPollAdapter> avahi_poll_;
  std::unique_ptr<discovery::DnsSd> dns_sd_;
  std::chrono::seconds node_ttl_;
  std::uint64_t rd_refused_ = 0;
  std::uint64_t fetches_ = 0;
  std::uint64_t fetch_failures_ = 0;
  std::vector<int> timers_;
  discovery::NeighborTable neighbors_;
  std::optional<std::chrono::steady_clock::time_point> neighbors_read_;
  bool neighbors_error_logged_ = false;
  /// Probe answers whose address was not in the last neighbour table read, waiting for the next.
  std::vector<discovery::ProbeAnswer> unnamed_answers_;
  int unnamed_timer_ = -1;
  /// Bounds the table dumps a burst of answers (or a hostile sender) can cause.
  static constexpr std::chrono::milliseconds kNeighborReread{250};
  /// Beyond this many held-back answers, the rest are observed unnamed at once.
  static constexpr std::size_t kMaxUnnamedAnswers = 256;
};

}  // namespace coap_edge::daemon
