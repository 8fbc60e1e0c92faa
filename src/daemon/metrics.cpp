#include "daemon/metrics.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <fmt/format.h>

#include <cerrno>
#include <cstdio>
#include <cstring>

namespace coap_edge::daemon {
namespace {

struct Writer {
  std::string out;
  void family(std::string_view name, std::string_view type, std::string_view help) {
    out += fmt::format("# HELP {} {}\n# TYPE {} {}\n", name, help, name, type);
  }
  void sample(std::string_view name, std::string_view labels, std::uint64_t value) {
    if (labels.empty()) {
      out += fmt::format("{} {}\n", name, value);
    } else {
      out += fmt::format("{}{{{}}} {}\n", name, labels, value);
    }
  }
};

}  // namespace

std::string prometheusText(const StatusSnapshot& s) {
  Writer w;
  const auto& st = s.server;
  const auto& l = s.limits;
  w.family("coap_edge_uptime_seconds", "gauge", "Seconds since the agent started.");
  w.sample("coap_edge_uptime_seconds", "", static_cast<std::uint64_t>(s.uptime.count()));
  w.family("coap_edge_sessions", "gauge", "Established downstream sessions by authentication kind.");
  w.sample("coap_edge_sessions", R"(auth="psk")", s.sessions.psk);
  w.sample("coap_edge_sessions", R"(auth="x509")", s.sessions.x509);
  w.sample("coap_edge_sessions", R"(auth="none")", s.sessions.plain);
  w.family("coap_edge_handshakes_total", "counter", "DTLS handshakes by result.");
  w.sample("coap_edge_handshakes_total", R"(result="ok")", st.handshakes_ok);
  w.sample("coap_edge_handshakes_total", R"(result="unknown_identity")", st.handshakes_unknown_identity);
  w.sample("coap_edge_handshakes_total", R"(result="bad_key")", st.handshakes_bad_key);
  w.sample("coap_edge_handshakes_total", R"(result="bad_certificate")", st.handshakes_bad_certificate);
  w.sample("coap_edge_handshakes_total", R"(result="timeout")", st.handshakes_timeout);
  w.sample("coap_edge_handshakes_total", R"(result="dtls_error")", st.handshakes_dtls_error);
  w.sample("coap_edge_handshakes_total", R"(result="rate_limited")", st.handshakes_rate_limited);
  w.sample("coap_edge_handshakes_total", R"(result="max_sessions")", st.handshakes_max_sessions);
  w.sample("coap_edge_handshakes_total", R"(result="refused")", st.handshakes_refused);
  w.family("coap_edge_requests_total", "counter", "Downstream requests by method and response class.");
  for (std::size_t m = 0; m < coap::kMethodCount; ++m) {
    for (std::size_t c = 0; c < coap::kResponseClassCount; ++c) {
      w.sample("coap_edge_requests_total",
               fmt::format(R"(method="{}",class="{}")", coap::methodName(static_cast<coap::Method>(m + 1)),
                           coap::responseClassName(static_cast<coap::ResponseClass>(c))),
               st.requests[m][c]);
    }
  }
  w.family("coap_edge_limited_total", "counter", "Requests and handshakes refused by rate limits.");
  w.sample("coap_edge_limited_total", R"(limit="per_identity",action="rejected")", l.per_identity_rejected);
  w.sample("coap_edge_limited_total", R"(limit="per_identity",action="dropped")", l.per_identity_dropped);
  w.sample("coap_edge_limited_total", R"(limit="handshakes_per_address",action="refused")", l.handshakes_refused);
  w.sample("coap_edge_limited_total", R"(limit="per_node",action="rejected")", s.relay.node_limited);
  w.family("coap_edge_limit_table_full_total", "counter",
           "Refusals because a limit's bucket table was full of active keys.");
  w.sample("coap_edge_limit_table_full_total", R"(limit="per_identity")", l.per_identity_table_full);
  w.sample("coap_edge_limit_table_full_total", R"(limit="handshakes_per_address")", l.handshakes_table_full);
  w.family("coap_edge_limit_buckets", "gauge", "Token buckets held.");
  w.sample("coap_edge_limit_buckets", R"(limit="per_identity")", l.identity_buckets);
  w.sample("coap_edge_limit_buckets", R"(limit="handshakes_per_address")", l.address_buckets);
  w.family("coap_edge_acl_decisions_total", "counter", "Access control decisions.");
  w.sample("coap_edge_acl_decisions_total", R"(decision="allowed")", s.acl.allowed);
  w.sample("coap_edge_acl_decisions_total", R"(decision="forbidden")", s.acl.forbidden);
  w.sample("coap_edge_acl_decisions_total", R"(decision="unauthenticated")", s.acl.unauthenticated);
  w.family("coap_edge_acl_rules", "gauge", "Configured ACL rules in force.");
  w.sample("coap_edge_acl_rules", "", s.acl_rules);
  const auto& d = s.discovery;
  w.family("coap_edge_nodes", "gauge", "Known nodes by the source that sees them (a node may have several).");
  w.sample("coap_edge_nodes", R"(source="multicast")", d.registry.by_source[0]);
  w.sample("coap_edge_nodes", R"(source="dns_sd")", d.registry.by_source[1]);
  w.sample("coap_edge_nodes", R"(source="rd")", d.registry.by_source[2]);
  w.family("coap_edge_nodes_total", "gauge", "Known nodes.");
  w.sample("coap_edge_nodes_total", "", d.registry.nodes);
  w.family("coap_edge_registry_bytes", "gauge", "Estimated memory held by the node registry and the RD.");
  w.sample("coap_edge_registry_bytes", R"(table="nodes")", d.registry.memory_bytes);
  w.sample("coap_edge_registry_bytes", R"(table="rd")", d.rd_memory_bytes);
  w.family("coap_edge_rd_registrations", "gauge", "Resource Directory registrations.");
  w.sample("coap_edge_rd_registrations", "", d.rd_registrations);
  w.family("coap_edge_discovery_total", "counter", "Discovery events.");
  w.sample("coap_edge_discovery_total", R"(event="probe_sent")", d.probe.probes_sent);
  w.sample("coap_edge_discovery_total", R"(event="probe_answer")", d.probe.answers);
  w.sample("coap_edge_discovery_total", R"(event="malformed")", d.probe.malformed);
  w.sample("coap_edge_discovery_total", R"(event="unexpected")", d.probe.unexpected);
  w.sample("coap_edge_discovery_total", R"(event="node_refused_full")", d.registry.refused_full);
  w.sample("coap_edge_discovery_total", R"(event="rd_refused")", d.rd_refused);
  w.sample("coap_edge_discovery_total", R"(event="dns_sd_found")", d.dns_sd_found);
  w.sample("coap_edge_discovery_total", R"(event="dns_sd_reconnect")", d.dns_sd_reconnects);
  w.family("coap_edge_malformed_packets_total", "counter", "CoAP messages dropped as malformed.");
  w.sample("coap_edge_malformed_packets_total", "", s.server.malformed_packets);
  w.family("coap_edge_dtls_records_dropped_total", "counter",
           "DTLS application data records dropped: invalid (bad MAC, malformed) or replayed.");
  w.sample("coap_edge_dtls_records_dropped_total", R"(reason="invalid")", s.server.dtls_records_invalid);
  w.sample("coap_edge_dtls_records_dropped_total", R"(reason="replayed")", s.server.dtls_records_replayed);
  w.family("coap_edge_duplicate_requests_total", "counter",
           "Copies of requests already answered, answered again without serving them twice.");
  w.sample("coap_edge_duplicate_requests_total", "", s.server.duplicates);
  w.family("coap_edge_duplicate_memory_bytes", "gauge", "Bytes the sessions keep to answer duplicate requests.");
  w.sample("coap_edge_duplicate_memory_bytes", "", s.duplicate_memory_bytes);
  w.family("coap_edge_duplicate_not_kept_total", "counter",
           "Answers not kept for duplicates because [limits] duplicate_max_bytes was spent.");
  w.sample("coap_edge_duplicate_not_kept_total", "", s.duplicates_not_kept);
  const auto& x = s.relay;
  w.family("coap_edge_relay_total", "counter", "Requests relayed to nodes, by what became of them.");
  w.sample("coap_edge_relay_total", R"(event="request")", x.requests);
  w.sample("coap_edge_relay_total", R"(event="forwarded")", x.forwarded);
  w.sample("coap_edge_relay_total", R"(event="cache_hit")", x.cache_hits);
  w.sample("coap_edge_relay_total", R"(event="revalidated")", x.revalidated);
  w.sample("coap_edge_relay_total", R"(event="coalesced")", x.coalesced);
  w.sample("coap_edge_relay_total", R"(event="unknown_node")", x.unknown_node);
  w.sample("coap_edge_relay_total", R"(event="timeout")", x.timeouts);
  w.sample("coap_edge_relay_total", R"(event="bad_gateway")", x.bad_gateway);
  w.sample("coap_edge_relay_total", R"(event="busy")", x.busy);
  w.sample("coap_edge_relay_total", R"(event="forward_proxy")", x.forward_requests);
  w.sample("coap_edge_relay_total", R"(event="forward_proxy_refused")", s.server.proxy_refused);
  w.family("coap_edge_relay_coaps_total", "counter",
           "The gateway's own DTLS handshakes with coaps nodes ([[relay.credentials]]), by outcome.");
  w.sample("coap_edge_relay_coaps_total", R"(event="established")", x.coaps_established);
  w.sample("coap_edge_relay_coaps_total", R"(event="failed")", x.coaps_failures);
  w.family("coap_edge_relay_coaps_sessions", "gauge", "The gateway's own coaps sessions to nodes, open now.");
  w.sample("coap_edge_relay_coaps_sessions", "", x.coaps_sessions);
  w.family("coap_edge_relay_in_flight", "gauge", "Exchanges with nodes in progress.");
  w.sample("coap_edge_relay_in_flight", "", x.in_flight);
  w.family("coap_edge_cache_entries", "gauge", "Responses in the relay's cache.");
  w.sample("coap_edge_cache_entries", "", x.cache.entries);
  w.family("coap_edge_cache_bytes", "gauge", "Estimated bytes held by the relay's cache.");
  w.sample("coap_edge_cache_bytes", "", x.cache.bytes);
  w.family("coap_edge_observe_relations", "gauge", "Observations the gateway holds at nodes.");
  w.sample("coap_edge_observe_relations", "", x.node_observations);
  w.family("coap_edge_observers", "gauge", "Downstream observers of relayed node resources.");
  w.sample("coap_edge_observers", "", x.observers);
  w.family("coap_edge_notifications_total", "counter", "Notifications from nodes fanned out to observers.");
  w.sample("coap_edge_notifications_total", "", x.notifications);
  const auto& u = s.upstream;
  w.family("coap_edge_upstream_up", "gauge", "1 while the upstream session is established.");
  w.sample("coap_edge_upstream_up", "", u.state == "up" ? 1 : 0);
  w.family("coap_edge_upstream_total", "counter", "Upstream session events.");
  w.sample("coap_edge_upstream_total", R"(event="connect")", u.connects);
  w.sample("coap_edge_upstream_total", R"(event="established")", u.established);
  w.sample("coap_edge_upstream_total", R"(event="failure")", u.failures);
  w.sample("coap_edge_upstream_total", R"(event="request_served")", u.requests_served);
  w.family("coap_edge_upstream_rd_registrations", "gauge", "Endpoints registered at the upstream Resource Directory.");
  w.sample("coap_edge_upstream_rd_registrations", "", u.rd_registrations);
  if (u.telemetry) {
    w.family("coap_edge_telemetry_total", "counter", "Telemetry values and POSTs.");
    w.sample("coap_edge_telemetry_total", R"(event="queued")", u.queue.pushed);
    w.sample("coap_edge_telemetry_total", R"(event="sent")", u.telemetry_values_sent);
    w.sample("coap_edge_telemetry_total", R"(event="post")", u.telemetry_posts);
    w.sample("coap_edge_telemetry_total", R"(event="post_failure")", u.telemetry_post_failures);
    w.sample("coap_edge_telemetry_total", R"(event="dropped_full")", u.queue.dropped_full);
    w.sample("coap_edge_telemetry_total", R"(event="refused_full")", u.queue.refused_full);
    w.sample("coap_edge_telemetry_total", R"(event="expired")", u.queue.expired);
    w.family("coap_edge_queue_depth", "gauge", "Telemetry values waiting for the upstream.");
    w.sample("coap_edge_queue_depth", "", u.queue.depth);
    w.family("coap_edge_queue_bytes", "gauge", "Bytes of telemetry waiting for the upstream.");
    w.sample("coap_edge_queue_bytes", "", u.queue.bytes);
    w.family("coap_edge_queue_oldest_seconds", "gauge", "Age of the oldest value waiting.");
    w.sample("coap_edge_queue_oldest_seconds", "", static_cast<std::uint64_t>(std::max<std::int64_t>(0, u.queue_oldest_age_s.value_or(0))));
  }
  return std::move(w.out);
}

std::optional<std::string> writeFileAtomically(const std::filesystem::path& path, const std::string& text) {
  // node_exporter only reads *.prom: a ".tmp" suffix keeps the half-written file out of it.
  const std::filesystem::path tmp = path.string() + ".tmp";
  const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0644);
  if (fd < 0) return fmt::format("cannot write {}: {}", tmp.string(), std::strerror(errno));
  std::size_t done = 0;
  while (done < text.size()) {
    const ssize_t n = ::write(fd, text.data() + done, text.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      const int err = errno;
      ::close(fd);
      ::unlink(tmp.c_str());
      return fmt::format("cannot write {}: {}", tmp.string(), std::strerror(err));
    }
    done += static_cast<std::size_t>(n);
  }
  // fchmod: the umask (systemd UMask=0077) must not hide the file from node_exporter.
  (void)::fchmod(fd, 0644);
  if (::close(fd) != 0 || std::rename(tmp.c_str(), path.c_str()) != 0) {
    const int err = errno;
    ::unlink(tmp.c_str());
    return fmt::format("cannot replace {}: {}", path.string(), std::strerror(err));
  }
  return std::nullopt;
}

}  // namespace coap_edge::daemon
