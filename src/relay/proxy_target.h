#pragma once
// Where a forward-proxy request (RFC 7252 §5.7.2) wants to go, read from Proxy-Uri, or from
// Proxy-Scheme with Uri-Host/Uri-Port and the request's own Uri-Path/Uri-Query (§6.5); and the
// percent-decoding of Request::path segments. Pure functions over untrusted bytes: every length
// is bounded, malformed input gives nullopt (fuzzed by tests/fuzz/fuzz_proxy_target.cpp).

#include "coap/message.h"

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace coap_edge::relay {

struct ProxyTarget {
  std::string scheme;                  ///< "coap", "coaps", ... as written
  std::string host;                    ///< IPv6 without brackets
  std::optional<std::uint16_t> port;   ///< absent: the scheme's default
  std::vector<std::string> segments;   ///< Uri-Path segments, decoded
  std::string query;                   ///< '&'-joined, as written
};

/// Longest Proxy-Uri accepted (RFC 7252 §5.10: the option is at most 1034 bytes).
inline constexpr std::size_t kMaxProxyUri = 1034;
/// Longest host accepted (RFC 1035 names; CVE-2025-34468 was an overlong Uri-Host/Proxy-Uri host).
inline constexpr std::size_t kMaxProxyHost = 255;

/// The target of a proxy request; nullopt if it carries neither Proxy-Uri nor Proxy-Scheme, or
/// anything in it is malformed or too long.
[[nodiscard]] std::optional<ProxyTarget> proxyTarget(const coap::Request& request);

/// "a/b%20c" -> {"a", "b c"}; nullopt for a bad %XX or a segment that decodes to contain '/'
/// (it could not be sent as one Uri-Path option through our '/'-joined paths). "" -> {""}.
[[nodiscard]] std::optional<std::vector<std::string>> decodePathSegments(std::string_view path);

/// One path segment as Request::path writes it: bytes outside RFC 3986 pchar as %XX.
[[nodiscard]] std::string encodePathSegment(std::string_view raw);

}  // namespace coap_edge::relay
