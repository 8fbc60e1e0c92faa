// libFuzzer target for the configuration loader: any bytes must give either a configuration or
// one positioned error, never an exception, crash or hang (parse() promises not to throw).

#include "config/config.h"

#include <cstddef>
#include <cstdint>
#include <string_view>

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace coap_edge::config;
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  const LoadResult result = parse(text, "/etc/coap-edge/fuzz.toml");
  if (result.ok() == result.error.has_value()) __builtin_trap();
  if (result.ok()) {
    // Consumers rely on these without checking.
    if (result.config->downstream.listen.empty()) __builtin_trap();
    if (result.config->downstream.x509() != result.config->downstream.ca.has_value()) __builtin_trap();
    if (result.config->limits.max_sessions == 0) __builtin_trap();
    // Whatever rules loaded, decisions keep their promises (policy/acl.h).
    using coap_edge::policy::Decision;
    using coap_edge::policy::Method;
    const auto& acl = result.config->acl;
    if (acl.check("", Method::get, ".well-known/core").decision != Decision::allow) __builtin_trap();
    if (acl.check("", Method::get, "status").decision != Decision::unauthenticated) __builtin_trap();
    if (acl.check("dev-1", Method::get, "nodes/dev-1/../x").decision != Decision::forbidden) __builtin_trap();
    (void)acl.check("upstream", Method::put, "nodes/n/actuators/a");
  } else {
    (void)result.error->str();
  }
  // The helpers are public too (ctl uses them on command-line input).
  (void)parseDuration(text);
  (void)parseSocketAddress(text);
  return 0;
}
