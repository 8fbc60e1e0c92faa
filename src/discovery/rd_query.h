#pragma once
// Query strings of the Resource Directory (RFC 9176): registration parameters (?ep=..&lt=..) and
// lookup filters (?rt=..&page=..). Pure parsing, bounded, errors are values.
//
// Form: items separated by '&'; each item is `name` or `name=value` (split at the first '=');
// names and values are percent-decoded (%XX; '+' is not a space). Names are ASCII-lower-cased
// (link parameter names are case-insensitive, RFC 6690 §2) and must be RFC 6690 parmnames
// after decoding. Empty items ("a&&b", a trailing '&') are skipped.
//
// CoAP carries each query item in its own Uri-Query option, not percent-encoded; the server
// joins them with joinQueryOptions(), which escapes '%' and '&' so that parsing gives every
// option back exactly.

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace coap_edge::discovery {

inline constexpr std::size_t kDefaultMaxQueryBytes = 1024;
inline constexpr std::size_t kDefaultMaxQueryParams = 32;

struct QueryParam {
  std::string name;                  ///< decoded, lower-case
  std::optional<std::string> value;  ///< decoded; nullopt for a bare name ("?obs")

  friend bool operator==(const QueryParam&, const QueryParam&) = default;
};

struct QueryParseResult {
  std::vector<QueryParam> params;  ///< in the order written; empty on error
  std::string error;               ///< empty when the query is well formed
  [[nodiscard]] bool ok() const noexcept { return error.empty(); }
};

/// Parses a query (without the leading '?'). At most `max_bytes` bytes and `max_params` items.
[[nodiscard]] QueryParseResult parseRdQuery(std::string_view query, std::size_t max_bytes, std::size_t max_params);

/// Joins Uri-Query option values into one query string that parseRdQuery() splits back into the
/// same options ('%' and '&' inside an option are written %25 and %26).
[[nodiscard]] std::string joinQueryOptions(const std::vector<std::string_view>& options);

/// The endpoint name of a registration query (its single `ep=` value), for the access check that
/// happens before the registration: nullopt if the query does not parse, has no ep, an empty ep
/// or more than one. The registration itself validates again.
[[nodiscard]] std::optional<std::string> registrationEndpointName(std::string_view query,
                                                                  std::size_t max_bytes = kDefaultMaxQueryBytes,
                                                                  std::size_t max_params = kDefaultMaxQueryParams);

/// True for an RFC 6690 parmname: 1*( ALPHA / DIGIT / "!" / "#" / "$" / "&" / "+" / "-" / "." /
/// "^" / "_" / "`" / "|" / "~" ).
[[nodiscard]] bool isParmName(std::string_view name) noexcept;

}  // namespace coap_edge::discovery
