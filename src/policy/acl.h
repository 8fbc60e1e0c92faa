#pragma once
// Access control (DESIGN.md "policy/"): which identity may use which method on which path.
// Pure logic, no I/O. Rules are compiled once (at load and on SIGHUP) and matched on the
// request path without allocating.
//
// Request paths. check() takes the request's Uri-Path options in libcoap's canonical form (what
// coap_get_uri_path() returns and what libcoap looks resources up with): the segments joined by
// '/', no leading '/', "" for the root; inside a segment the RFC 3986 pchar characters
// (A-Z a-z 0-9 - . _ ~ ! $ & ' ( ) * + , ; = : @) stand for themselves and every other byte is
// written %XX in upper-case hex, so a '/' inside one option is "%2F" and a '%' is "%25".
// Nothing is normalised: "." and ".." are ordinary option values to libcoap, so a path with an
// empty, "." or ".." segment matches no pattern and no built-in rule and is always denied;
// "/nodes/a/../b" never gets what "/nodes/b" is allowed.
//
// Path patterns ("METHOD /pattern"):
//   - METHOD is GET, POST, PUT, DELETE, FETCH, PATCH, iPATCH, or `*` for any method;
//   - the pattern starts with '/'; "/" alone is the root; segments are separated by one '/';
//   - `*` matches exactly one segment, `**` zero or more segments; both only as a whole segment;
//   - any other segment is a literal: pchar characters and %XX escapes (decoded, then compared in
//     the canonical form above, so "%7E" equals "~" and "%2f" equals an escaped '/');
//   - refused with the offending position: empty, no leading '/', empty segments ("//", a
//     trailing '/'), "." and ".." (also escaped), '*' inside a segment, bad %-escapes, other
//     characters (space, '?', '#', non-ASCII: percent-encode them), more than kMaxPatternBytes
//     bytes or kMaxPatternSegments segments.
//
// Identity patterns: the identity exactly, or with `*` standing for any run of characters
// ("sensor-*"); "*" alone is every authenticated identity. There is no escape for a literal '*'.
//
// Decisions (check()):
//   1. GET /.well-known/core is allowed to everyone, with or without an identity.
//   2. Without an identity (plain coap): everything else is `unauthenticated` (4.01). Identity
//      patterns, "*" included, only ever match an established identity.
//   3. Built-in rules for an identity X, no configuration needed: any method on /nodes/X and
//      below (the node's own resources), POST /rd and POST /.well-known/rd (registration and
//      simple registration; the Resource Directory must also ask allowsRdEndpoint(X, ep)), and
//      any method on /rd/X (the registration resource of endpoint X: the RD names them /rd/{ep}).
//   4. Configured entries: allowed if an entry whose identity pattern (or group member) matches X
//      has a rule matching the method and the path.
//   5. Otherwise `forbidden` (4.03).

#include <array>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace coap_edge::policy {

inline constexpr std::size_t kMaxPatternBytes = 256;
inline constexpr std::size_t kMaxPatternSegments = 32;
inline constexpr std::size_t kMaxIdentityPatternBytes = 256;

enum class Method : std::uint8_t { get, post, put, del, fetch, patch, ipatch };

/// "GET", "DELETE", "iPATCH", ... as written in rules.
[[nodiscard]] std::string_view methodName(Method method) noexcept;

/// Why a text did not compile: a message (without the text itself) and the 0-based byte offset
/// in the text where the problem is.
struct CompileError {
  std::size_t offset = 0;
  std::string message;
};

template <typename T>
struct Compiled {
  std::optional<T> value;
  CompileError error;  ///< meaningful when !ok()
  [[nodiscard]] bool ok() const noexcept { return value.has_value(); }
};

/// A compiled path pattern (see the top of this file).
class PathPattern {
 public:
  enum class Kind : std::uint8_t { literal, one, any };

  /// Whether `path` (canonical form, see above) matches. O(segments x tokens); never allocates.
  [[nodiscard]] bool matches(std::string_view path) const noexcept;
  /// The pattern as written.
  [[nodiscard]] const std::string& text() const noexcept { return text_; }
  /// The compiled form, for tests and diagnostics: token i and, for literals, its canonical bytes.
  [[nodiscard]] std::size_t tokenCount() const noexcept { return tokens_.size(); }
  [[nodiscard]] Kind kind(std::size_t i) const noexcept { return tokens_[i].kind; }
  [[nodiscard]] std::string_view literal(std::size_t i) const noexcept;

 private:
  friend Compiled<PathPattern> compilePathPatternAt(std::string_view, std::size_t);
  struct Token {
    Kind kind = Kind::literal;
    std::uint16_t offset = 0;  ///< into literals_
    std::uint16_t length = 0;
  };
  std::string text_;
  std::string literals_;  ///< the canonical bytes of every literal segment, back to back
  std::vector<Token> tokens_;
};

/// Compiles a path pattern such as "/nodes/*/actuators/**".
[[nodiscard]] Compiled<PathPattern> compilePathPattern(std::string_view text);
/// The same, with error offsets shifted by `base` (the pattern's position in a longer text).
[[nodiscard]] Compiled<PathPattern> compilePathPatternAt(std::string_view text, std::size_t base);

/// "METHOD /pattern".
class Rule {
 public:
  [[nodiscard]] bool matches(Method method, std::string_view path) const noexcept {
    return (!method_ || *method_ == method) && path_.matches(path);
  }
  /// nullopt for `*` (any method).
  [[nodiscard]] std::optional<Method> method() const noexcept { return method_; }
  [[nodiscard]] const PathPattern& path() const noexcept { return path_; }
  /// The rule as written.
  [[nodiscard]] const std::string& text() const noexcept { return text_; }

 private:
  friend Compiled<Rule> compileRule(std::string_view);
  std::optional<Method> method_;
  PathPattern path_;
  std::string text_;
};

/// Compiles "GET /nodes/**": a method (or `*`), one or more spaces, a path pattern. Spaces or
/// tabs around the whole text are ignored.
[[nodiscard]] Compiled<Rule> compileRule(std::string_view text);

/// An identity, exactly or as a `*` glob.
class IdentityPattern {
 public:
  /// Never matches the empty identity (no identity established). Never allocates.
  [[nodiscard]] bool matches(std::string_view identity) const noexcept;
  [[nodiscard]] const std::string& text() const noexcept { return text_; }
  [[nodiscard]] bool isGlob() const noexcept { return glob_; }

 private:
  friend Compiled<IdentityPattern> compileIdentityPattern(std::string_view);
  std::string text_;
  bool glob_ = false;
};

/// 1..kMaxIdentityPatternBytes bytes, no control characters.
[[nodiscard]] Compiled<IdentityPattern> compileIdentityPattern(std::string_view text);

/// One configured entry: who (an identity pattern, or the members of a group) may do what.
struct Entry {
  std::string label;  ///< for logs: `identity "x"` or `group "g"`
  std::vector<IdentityPattern> who;
  std::vector<Rule> allow;
};

enum class Decision : std::uint8_t { allow, forbidden, unauthenticated };

/// What a decision rests on, for logs.
enum class Basis : std::uint8_t {
  well_known_core,  ///< GET /.well-known/core is open to everyone
  own_node,         ///< built-in: /nodes/X/**
  own_rd,           ///< built-in: POST /rd, any method on /rd/X
  rule,             ///< a configured rule (Verdict::entry, Verdict::rule)
  no_identity,      ///< no identity established
  no_rule,          ///< nothing allows it
};

struct Verdict {
  Decision decision = Decision::forbidden;
  Basis basis = Basis::no_rule;
  const Entry* entry = nullptr;  ///< for Basis::rule; points into the Policy
  const Rule* rule = nullptr;
};

/// Decisions counted by whoever applies the policy (they outlive policy reloads).
struct DecisionCounts {
  std::uint64_t allowed = 0;
  std::uint64_t forbidden = 0;
  std::uint64_t unauthenticated = 0;
  void record(Decision decision) noexcept;
};

/// A compiled rule set. Default-constructed: built-in rules only (default deny). Immutable once
/// built; replace the whole object to change rules.
class Policy {
 public:
  Policy() = default;
  explicit Policy(std::vector<Entry> entries) : entries_(std::move(entries)) {}

  /// The decision for `identity` (empty = none established) doing `method` on `path`
  /// (canonical form, see the top of this file). Never allocates, never throws.
  [[nodiscard]] Verdict check(std::string_view identity, Method method, std::string_view path) const noexcept;

  /// Resource Directory (RFC 9176): may `identity` register, update or remove endpoint `ep`?
  /// Only its own: ep == identity, and never without an identity.
  [[nodiscard]] static bool allowsRdEndpoint(std::string_view identity, std::string_view ep) noexcept;

  [[nodiscard]] const std::vector<Entry>& entries() const noexcept { return entries_; }
  /// Number of configured rules over all entries.
  [[nodiscard]] std::size_t ruleCount() const noexcept;

 private:
  std::vector<Entry> entries_;
};

/// True if `path` (canonical form) has an empty, "." or ".." segment; such paths match nothing.
[[nodiscard]] bool hasDotOrEmptySegment(std::string_view path) noexcept;

}  // namespace coap_edge::policy
