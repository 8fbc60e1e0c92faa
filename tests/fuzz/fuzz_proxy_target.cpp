// libFuzzer target for the forward proxy's reading of Proxy-Uri / Proxy-Scheme + Uri-Host
// (relay/proxy_target.h), the bytes a client chooses to steer the relay. Any input: no crash, no
// sanitizer report; an accepted target respects the bounds (CVE-2025-34468 was a Uri-Host or
// Proxy-Uri host of 256+ bytes on libcoap's proxy path); path segments survive encode/decode.
// The first byte selects Proxy-Uri (even) or Proxy-Scheme with NUL-separated fields (odd).

#include "relay/proxy_target.h"

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace {

using namespace coap_edge;

std::string_view nextField(std::string_view& rest) {
  const std::size_t cut = rest.find('\0');
  const std::string_view field = rest.substr(0, cut);
  rest.remove_prefix(cut == std::string_view::npos ? rest.size() : cut + 1);
  return field;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size == 0) return 0;
  std::string_view rest(reinterpret_cast<const char*>(data) + 1, size - 1);
  coap::Request request;
  if ((data[0] & 1) == 0) {
    request.proxy_uri = std::string(rest);
  } else {
    request.proxy_scheme = std::string(nextField(rest));
    request.uri_host = std::string(nextField(rest));
    const std::string_view port = nextField(rest);
    if (port.size() == 2) request.uri_port = static_cast<std::uint16_t>((static_cast<unsigned char>(port[0]) << 8) | static_cast<unsigned char>(port[1]));
    request.path = std::string(nextField(rest));
    request.query = std::string(rest);
  }
  if (const auto target = relay::proxyTarget(request)) {
    if (target->host.empty() || target->host.size() > relay::kMaxProxyHost) __builtin_trap();
    if (target->port && *target->port == 0) __builtin_trap();
    for (const auto& segment : target->segments) {
      if (segment.find('/') != std::string::npos) __builtin_trap();
      // A decoded segment, encoded as Request::path writes it, decodes to itself.
      const auto again = relay::decodePathSegments(relay::encodePathSegment(segment));
      if (!again || again->size() != 1 || (*again)[0] != segment) __builtin_trap();
    }
  }
  (void)relay::decodePathSegments(std::string_view(reinterpret_cast<const char*>(data), size));
  return 0;
}
