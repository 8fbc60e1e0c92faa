#pragma once
// Metrics in the Prometheus text exposition format (version 0.0.4), written to a file for
// node_exporter's textfile collector ([agent] metrics_file). The numbers are /status's.
//
//   coap_edge_uptime_seconds                                   gauge
//   coap_edge_sessions{auth="psk"|"x509"|"none"}                gauge (established)
//   coap_edge_handshakes_total{result="ok"|"unknown_identity"|"bad_key"|"bad_certificate"|
//                              "timeout"|"dtls_error"|"rate_limited"|"max_sessions"|"refused"}
//                                                              counter (dtls_error: any other
//                                                              DTLS failure, e.g. the peer's alert)
//   coap_edge_requests_total{method="GET",class="2xx"|"4xx"|"5xx"|"none"}  counter
//   coap_edge_limited_total{limit="per_identity",action="rejected"|"dropped"}, 
//                          {limit="handshakes_per_address",action="refused"}  counter
//   coap_edge_limit_table_full_total{limit=...}                counter (subset of the above)
//   coap_edge_limit_buckets{limit=...}                         gauge
//   coap_edge_acl_decisions_total{decision="allowed"|"forbidden"|"unauthenticated"}  counter
//   coap_edge_acl_rules                                        gauge

#include "daemon/status_resource.h"

#include <filesystem>
#include <optional>
#include <string>

namespace coap_edge::daemon {

/// The whole exposition text for `snapshot`.
[[nodiscard]] std::string prometheusText(const StatusSnapshot& snapshot);

/// Writes `text` to `path` atomically: a temporary file in the same directory (mode 0644), then
/// rename(), so the collector never reads half a file. Returns an error message on failure.
[[nodiscard]] std::optional<std::string> writeFileAtomically(const std::filesystem::path& path,
                                                             const std::string& text);

}  // namespace coap_edge::daemon
