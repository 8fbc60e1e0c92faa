#pragma once
// URI handling for the Resource Directory (RFC 9176 §4.3 / Appendix C "Limited Link Format"):
// registered links are resolved against the registration's base URI with RFC 3986 §5.2, and
// base URIs given by endpoints are checked before they are stored. Pure string work, no DNS.

#include <optional>
#include <string>
#include <string_view>

namespace coap_edge::discovery {

/// The five components of a URI reference (RFC 3986 Appendix B); an absent component is nullopt,
/// which differs from a present empty one ("coap://h?" has an empty query).
struct UriComponents {
  std::optional<std::string_view> scheme;
  std::optional<std::string_view> authority;
  std::string_view path;
  std::optional<std::string_view> query;
  std::optional<std::string_view> fragment;
};

/// Splits any string into components (never fails: Appendix B's regular expression matches all).
[[nodiscard]] UriComponents splitUriReference(std::string_view reference) noexcept;

/// RFC 3986 §5.2.4.
[[nodiscard]] std::string removeDotSegments(std::string_view path);

/// RFC 3986 §5.2.2 (strict): the target URI of `reference` against the absolute URI `base`.
[[nodiscard]] std::string resolveUriReference(std::string_view base, std::string_view reference);

/// True if `reference` has a scheme (is an absolute URI rather than a relative reference).
[[nodiscard]] bool hasUriScheme(std::string_view reference) noexcept;

/// Why `base` cannot be a registration's base URI, or nullopt if it can: an absolute coap: or
/// coaps: URI with a host (reg-name, IPv4 or bracketed IPv6 literal), an optional port, an
/// optional path, no user info, no query and no fragment (RFC 9176 §5.3), at most `max_bytes`.
[[nodiscard]] std::optional<std::string> baseUriError(std::string_view base, std::size_t max_bytes);

/// One path segment in canonical form: RFC 3986 pchar bytes as they are, every other byte %XX in
/// upper-case hex (libcoap's form of Uri-Path, so "/rd/" + this is what the server routes on).
[[nodiscard]] std::string encodePathSegment(std::string_view segment);

}  // namespace coap_edge::discovery
