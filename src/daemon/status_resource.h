#pragma once
// /status: health and counters for operators and monitoring (JSON, or CBOR on Accept: 60). The
// same snapshot feeds `coap-edge-ctl status` and the Prometheus text file (daemon/metrics.h).

#include "coap/message.h"
#include "coap/server.h"
#include "daemon/discovery_status.h"
#include "daemon/rate_filter.h"
#include "policy/acl.h"
#include "relay/node_proxy.h"
#include "relay/upstream_link.h"

#include <nlohmann/json_fwd.hpp>

#include <chrono>
#include <string>

namespace coap_edge::daemon {

struct StatusSnapshot {
  std::string agent_name;
  std::chrono::seconds uptime{0};
  coap::SessionCounts sessions;
  policy::DecisionCounts acl;  ///< access decisions since start (they survive reloads)
  std::size_t acl_rules = 0;   ///< configured rules in force
  coap::ServerStats server;    ///< handshakes and requests since start
  std::size_t duplicate_memory_bytes = 0;  ///< what the sessions keep to answer duplicates
  std::size_t duplicate_memory_limit = 0;  ///< [limits] duplicate_max_bytes
  std::uint64_t duplicates_not_kept = 0;   ///< answers not kept: duplicate_max_bytes was spent
  LimitCounts limits;          ///< rate limiting since start
  DiscoveryStatus discovery;   ///< node registry, RD, multicast probes, DNS-SD
  relay::ProxyStats relay;     ///< the /nodes/... and Proxy-Uri relay, its cache and Observe
  relay::UpstreamStatus upstream;  ///< state "off" without [upstream]
};

/// The document served at /status (see statusJson for its shape).
[[nodiscard]] nlohmann::json statusDocument(const StatusSnapshot& snapshot);
/// The JSON text served at /status.
[[nodiscard]] std::string statusJson(const StatusSnapshot& snapshot);

/// Answers a request for /status: JSON by default or on Accept: 50, CBOR (RFC 8949) on
/// Accept: 60, 4.06 for other formats.
[[nodiscard]] coap::Response statusResponse(const coap::Request& request, const StatusSnapshot& snapshot);

}  // namespace coap_edge::daemon
