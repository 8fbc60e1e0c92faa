#pragma once
// /status: health and counters for operators and monitoring (JSON; CBOR arrives with metrics).

#include "coap/message.h"
#include "coap/server.h"
#include "policy/acl.h"

#include <chrono>
#include <string>

namespace coap_edge::daemon {

struct StatusSnapshot {
  std::string agent_name;
  std::chrono::seconds uptime{0};
  coap::SessionCounts sessions;
  policy::DecisionCounts acl;  ///< access decisions since start (they survive reloads)
  std::size_t acl_rules = 0;   ///< configured rules in force
};

/// The JSON document served at /status.
[[nodiscard]] std::string statusJson(const StatusSnapshot& snapshot);

/// Answers a request for /status: JSON by default or on Accept: 50, 4.06 for other formats.
[[nodiscard]] coap::Response statusResponse(const coap::Request& request, const StatusSnapshot& snapshot);

}  // namespace coap_edge::daemon
