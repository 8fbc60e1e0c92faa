#pragma once
// CoRE Link Format (RFC 6690): the payload of /.well-known/core, of RD registrations and of
// /nodes. Parsing is strict and bounded (the input comes from unauthenticated multicast
// responses and from devices), and errors are values, never exceptions.
//
// Grammar (RFC 6690 §2, with RFC 8288's ext-value and RFC 5987 ext-value left as token or
// quoted-string):
//   Link            = link-value-list
//   link-value-list = [ link-value *[ "," link-value ]]
//   link-value      = "<" URI-Reference ">" *( ";" link-param )
//   link-param      = parmname [ "*" ] [ "=" ( ptoken / quoted-string ) ]
// Whitespace (SP, HTAB, CR, LF) is tolerated around ',' ';' '=' as deployed nodes emit it, and
// before the first and after the last link.
// The optional "*" is RFC 6690's ext-name-star ("title*=UTF-8'en'%E2%82%AC"), kept in the name.
// The target is checked for URI-Reference characters and well-formed %XX escapes only (it is
// kept raw); an "anchor" must have a value that passes the same check.

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace coap_edge::discovery {

struct LinkAttribute {
  std::string name;                  ///< lower-case as written (parmname is case-insensitive)
  std::optional<std::string> value;  ///< unquoted, escapes removed; nullopt for a bare name ("obs")
  /// Written as a quoted-string: kept so that serialize(parse(x)) stays faithful (rt="a b").
  bool quoted = false;

  friend bool operator==(const LinkAttribute&, const LinkAttribute&) = default;
};

struct Link {
  /// The URI-Reference between '<' and '>', exactly as written (still percent-encoded).
  std::string target;
  /// In the order written; a name may repeat (RFC 6690 §2: rt="a" rt="b" are both kept).
  std::vector<LinkAttribute> attributes;

  /// The first value of `name`, if the attribute is present with a value.
  [[nodiscard]] std::optional<std::string_view> attribute(std::string_view name) const;
  /// Every value of `name`; space-separated values (rt, if, rel, rev) split into their words.
  /// `name` is compared ignoring case here and in attribute() and has().
  [[nodiscard]] std::vector<std::string_view> values(std::string_view name) const;
  /// True if `name` is present at all (with or without a value).
  [[nodiscard]] bool has(std::string_view name) const;

  friend bool operator==(const Link&, const Link&) = default;
};

struct LinkFormatLimits {
  std::size_t max_bytes = 16 * 1024;        ///< whole document
  std::size_t max_links = 512;
  std::size_t max_attributes_per_link = 32;
  std::size_t max_target_bytes = 256;
  std::size_t max_value_bytes = 256;        ///< an attribute value, after unquoting
  std::size_t max_name_bytes = 64;          ///< a parameter name
};

struct LinkFormatError {
  std::size_t offset = 0;  ///< byte offset into the input where parsing stopped
  std::string message;     ///< for the operator / a 4.00 diagnostic payload, e.g. "expected '>'"
};

struct LinkFormatResult {
  std::vector<Link> links;               ///< empty on error
  std::optional<LinkFormatError> error;  ///< set if the input is not valid link format
  [[nodiscard]] bool ok() const noexcept { return !error.has_value(); }
};

/// Parses a whole document. An empty input is a valid, empty list.
[[nodiscard]] LinkFormatResult parseLinkFormat(std::string_view input, const LinkFormatLimits& limits = {});

/// Writes links so that parseLinkFormat(serialize(links)) == links for every list that the
/// parser can produce: values are quoted when `quoted` is set or when they are not a valid
/// ptoken; '"' and '\' inside quoted values are escaped.
[[nodiscard]] std::string serializeLinkFormat(const std::vector<Link>& links);

/// Decodes %XX escapes of a URI-Reference; nullopt on a malformed escape.
[[nodiscard]] std::optional<std::string> percentDecode(std::string_view text);

}  // namespace coap_edge::discovery
