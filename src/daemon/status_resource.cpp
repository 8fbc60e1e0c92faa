#include "daemon/status_resource.h"

#include "coap/runtime.h"

#include <nlohmann/json.hpp>

namespace coap_edge::daemon {

nlohmann::json statusDocument(const StatusSnapshot& s) {
  const auto& st = s.server;
  nlohmann::json requests = nlohmann::json::object();
  for (std::size_t m = 0; m < coap::kMethodCount; ++m) {
    nlohmann::json by_class = nlohmann::json::object();
    bool any = false;
    for (std::size_t c = 0; c < coap::kResponseClassCount; ++c) {
      by_class[std::string(coap::responseClassName(static_cast<coap::ResponseClass>(c)))] = st.requests[m][c];
      any = any || st.requests[m][c] != 0;
    }
    if (any) requests[std::string(coap::methodName(static_cast<coap::Method>(m + 1)))] = std::move(by_class);
  }
  const auto& l = s.limits;
  const auto& d = s.discovery;
  const auto& r = d.registry;
  const auto& x = s.relay;
  const auto& u = s.upstream;
  nlohmann::json upstream = {{"state", u.state},
                             {"address", u.address},
                             {"last_error", u.last_error},
                             {"connects", u.connects},
                             {"established", u.established},
                             {"failures", u.failures},
                             {"requests_served", u.requests_served},
                             {"rd", {{"registrations", u.rd_registrations}, {"failures", u.rd_failures}}}};
  if (u.telemetry) {
    upstream["telemetry"] = {{"posts", u.telemetry_posts},
                             {"post_failures", u.telemetry_post_failures},
                             {"values_sent", u.telemetry_values_sent},
                             {"queue",
                              {{"depth", u.queue.depth},
                               {"bytes", u.queue.bytes},
                               {"oldest_age_s", u.queue_oldest_age_s ? nlohmann::json(*u.queue_oldest_age_s) : nlohmann::json()},
                               {"pushed", u.queue.pushed},
                               {"acked", u.queue.acked},
                               {"dropped_full", u.queue.dropped_full},
                               {"refused_full", u.queue.refused_full},
                               {"expired", u.queue.expired},
                               {"errors", u.queue.errors}}}};
  }
  return {
      {"agent", s.agent_name},
      {"version", COAP_EDGE_VERSION},
      {"uptime_s", s.uptime.count()},
      {"libcoap", coap::Runtime::libcoapVersion()},
      {"tls_library", coap::Runtime::tlsVersion()},
      {"sessions",
       {{"established", s.sessions.established},
        {"psk", s.sessions.psk},
        {"x509", s.sessions.x509},
        {"plain", s.sessions.plain},
        {"total", s.sessions.total}}},
      {"acl",
       {{"rules", s.acl_rules},
        {"allowed", s.acl.allowed},
        {"forbidden", s.acl.forbidden},
        {"unauthenticated", s.acl.unauthenticated}}},
      {"handshakes",
       {{"ok", st.handshakes_ok},
        {"unknown_identity", st.handshakes_unknown_identity},
        {"bad_key", st.handshakes_bad_key},
        {"bad_certificate", st.handshakes_bad_certificate},
        {"timeout", st.handshakes_timeout},
        {"dtls_error", st.handshakes_dtls_error},
        {"rate_limited", st.handshakes_rate_limited},
        {"max_sessions", st.handshakes_max_sessions},
        {"refused", st.handshakes_refused},
        {"sessions_allocated", st.dtls_sessions_allocated}}},
      {"requests", std::move(requests)},
      {"packets",
       {{"malformed", st.malformed_packets},
        {"dtls_invalid", st.dtls_records_invalid},
        {"dtls_replayed", st.dtls_records_replayed}}},
      {"duplicates",
       {{"answered", st.duplicates},
        {"memory_bytes", s.duplicate_memory_bytes},
        {"memory_limit", s.duplicate_memory_limit},
        {"not_kept", s.duplicates_not_kept}}},
      {"limits",
       {{"per_identity", {{"rejected", l.per_identity_rejected},
                          {"dropped", l.per_identity_dropped},
                          {"table_full", l.per_identity_table_full},
                          {"buckets", l.identity_buckets}}},
        {"handshakes_per_address",
         {{"refused", l.handshakes_refused}, {"table_full", l.handshakes_table_full}, {"buckets", l.address_buckets}}},
        {"per_node", {{"rejected", s.relay.node_limited}}}}},
      {"nodes",
       {{"count", r.nodes},
        {"by_source", {{"multicast", r.by_source[0]}, {"dns_sd", r.by_source[1]}, {"rd", r.by_source[2]}}},
        {"memory_bytes", r.memory_bytes},
        {"appeared", r.appeared},
        {"gone", r.gone},
        {"refused_full", r.refused_full},
        {"refused_invalid", r.refused_invalid},
        {"resources_truncated", r.resources_truncated}}},
      {"rd", {{"registrations", d.rd_registrations}, {"memory_bytes", d.rd_memory_bytes}, {"refused", d.rd_refused}}},
      {"discovery",
       {{"probe_rounds", d.probe.rounds},
        {"probes_sent", d.probe.probes_sent},
        {"probe_send_errors", d.probe.send_errors},
        {"answers", d.probe.answers},
        {"malformed", d.probe.malformed},
        {"unexpected", d.probe.unexpected},
        {"fetches", d.fetches},
        {"fetch_failures", d.fetch_failures},
        {"dns_sd", {{"state", d.dns_sd_state},
                    {"found", d.dns_sd_found},
                    {"lost", d.dns_sd_lost},
                    {"reconnects", d.dns_sd_reconnects},
                    {"published_as", d.published_as}}}}},
      {"relay",
       {{"requests", x.requests},
        {"forwarded", x.forwarded},
        {"in_flight", x.in_flight},
        {"unknown_node", x.unknown_node},
        {"timeouts", x.timeouts},
        {"bad_gateway", x.bad_gateway},
        {"busy", x.busy},
        {"coalesced", x.coalesced},
        {"forward_proxy", {{"requests", x.forward_requests}, {"refused", st.proxy_refused}}},
        {"coaps",
         {{"sessions", x.coaps_sessions}, {"established", x.coaps_established}, {"failures", x.coaps_failures}}},
        {"cache",
         {{"hits", x.cache_hits},
          {"revalidated", x.revalidated},
          {"stored", x.cache.stored},
          {"evicted", x.cache.evicted},
          {"invalidated", x.cache.invalidated},
          {"entries", x.cache.entries},
          {"bytes", x.cache.bytes}}},
        {"observe",
         {{"resources", x.observed_resources},
          {"relations", x.node_observations},
          {"observers", x.observers},
          {"notifications", x.notifications},
          {"cancelled", x.observations_cancelled},
          {"restored", x.observations_restored}}}}},
      {"upstream", std::move(upstream)},
  };
}

std::string statusJson(const StatusSnapshot& s) {
  return statusDocument(s).dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

coap::Response statusResponse(const coap::Request& request, const StatusSnapshot& snapshot) {
  coap::Response res;
  res.max_age = 0;  // counters change all the time: never cache
  if (!request.accept || *request.accept == coap::content_format::json) {
    res.content_format = coap::content_format::json;
    res.payload = statusJson(snapshot);
  } else if (*request.accept == coap::content_format::cbor) {
    res.content_format = coap::content_format::cbor;
    const std::vector<std::uint8_t> bytes = nlohmann::json::to_cbor(statusDocument(snapshot));
    res.payload.assign(bytes.begin(), bytes.end());
  } else {
    res.code = coap::Code::not_acceptable;
    res.max_age.reset();
  }
  return res;
}

}  // namespace coap_edge::daemon
