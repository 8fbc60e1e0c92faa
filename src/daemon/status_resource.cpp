#include "daemon/status_resource.h"

#include "coap/runtime.h"

#include <nlohmann/json.hpp>

namespace coap_edge::daemon {

std::string statusJson(const StatusSnapshot& s) {
  nlohmann::json doc = {
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
  };
  return doc.dump();
}

coap::Response statusResponse(const coap::Request& request, const StatusSnapshot& snapshot) {
  coap::Response res;
  if (request.accept && *request.accept != coap::content_format::json) {
    res.code = coap::Code::not_acceptable;
    return res;
  }
  res.content_format = coap::content_format::json;
  res.max_age = 0;  // counters change all the time: never cache
  res.payload = statusJson(snapshot);
  return res;
}

}  // namespace coap_edge::daemon
