#pragma once
// Discovery's numbers as /status, `coap-edge-ctl status` and the metrics file report them.

#include "discovery/multicast_prober.h"
#include "discovery/node_registry.h"

#include <cstddef>
#include <cstdint>
#include <string>

namespace coap_edge::daemon {

/// What /status, `coap-edge-ctl status` and the metrics file report about discovery.
struct DiscoveryStatus {
  discovery::NodeRegistry::Stats registry;
  std::size_t rd_registrations = 0;
  std::size_t rd_memory_bytes = 0;
  std::uint64_t rd_refused = 0;  ///< registrations refused (4.xx/5.03), the ep check included
  discovery::ProbeStats probe;
  std::uint64_t fetches = 0;         ///< unicast GET /.well-known/core after discovery
  std::uint64_t fetch_failures = 0;
  std::string dns_sd_state = "off";  ///< "off", "running", "connecting", "failed"
  std::uint64_t dns_sd_found = 0;
  std::uint64_t dns_sd_lost = 0;
  std::uint64_t dns_sd_reconnects = 0;
  std::string published_as;  ///< the gateway's mDNS instance name, "" if not published
};

}  // namespace coap_edge::daemon
