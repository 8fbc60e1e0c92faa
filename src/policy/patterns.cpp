// Compiling and matching path patterns, rules and identity patterns (syntax: acl.h). Compiling
// may allocate and reports the first problem with its offset; matching never allocates.

#include "policy/acl.h"

#include <fmt/format.h>

#include <algorithm>

namespace coap_edge::policy {
namespace {

constexpr std::size_t kNone = static_cast<std::size_t>(-1);

constexpr bool isAlnum(unsigned char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
}

// RFC 3986 pchar without pct-encoded: exactly the bytes libcoap leaves unescaped in
// coap_get_uri_path() (is_unescaped_in_path in coap_uri.c).
constexpr bool isPathChar(unsigned char c) {
  switch (c) {
    case '-': case '.': case '_': case '~':                                         // unreserved
    case '!': case '$': case '&': case '\'': case '(': case ')': case '*': case '+':  // sub-delims
    case ',': case ';': case '=':
    case ':': case '@':
      return true;
    default:
      return isAlnum(c);
  }
}

int hexValue(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

void appendCanonical(std::string& out, unsigned char byte) {
  static constexpr std::string_view kHex = "0123456789ABCDEF";
  if (isPathChar(byte)) {
    out.push_back(static_cast<char>(byte));
    return;
  }
  out.push_back('%');
  out.push_back(kHex[byte >> 4U]);
  out.push_back(kHex[byte & 0x0FU]);
}

// A character as it should appear in a message: 'x', or a name for the invisible ones.
std::string describeChar(unsigned char c) {
  if (c == ' ') return "a space";
  if (c == '\t') return "a tab";
  if (c < 0x20 || c == 0x7F) return fmt::format("control character 0x{:02X}", c);
  if (c >= 0x80) return fmt::format("byte 0x{:02X} (non-ASCII)", c);
  return fmt::format("'{}'", static_cast<char>(c));
}

template <typename T>
Compiled<T> failure(std::size_t offset, std::string message) {
  return {std::nullopt, CompileError{offset, std::move(message)}};
}

// End of the segment that starts at `start` in a canonical path.
std::size_t segmentEnd(std::string_view path, std::size_t start) noexcept {
  const std::size_t slash = path.find('/', start);
  return slash == std::string_view::npos ? path.size() : slash;
}

bool isDotOrEmpty(std::string_view segment) noexcept {
  return segment.empty() || segment == "." || segment == "..";
}

struct MethodName {
  std::string_view name;
  Method method;
};
constexpr std::array<MethodName, 7> kMethods{{
    {"GET", Method::get},
    {"POST", Method::post},
    {"PUT", Method::put},
    {"DELETE", Method::del},
    {"FETCH", Method::fetch},
    {"PATCH", Method::patch},
    {"iPATCH", Method::ipatch},
}};

bool equalsIgnoringCase(std::string_view a, std::string_view b) {
  auto lower = [](char c) { return c >= 'A' && c <= 'Z' ? static_cast<char>(c - 'A' + 'a') : c; };
  return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [&](char x, char y) {
           return lower(x) == lower(y);
         });
}

constexpr bool isBlank(char c) { return c == ' ' || c == '\t'; }

}  // namespace

std::string_view methodName(Method method) noexcept {
  for (const auto& m : kMethods) {
    if (m.method == method) return m.name;
  }
  return "?";
}

bool hasDotOrEmptySegment(std::string_view path) noexcept {
  if (path.empty()) return false;  // the root: no segment at all
  for (std::size_t start = 0;;) {
    const std::size_t end = segmentEnd(path, start);
    if (isDotOrEmpty(path.substr(start, end - start))) return true;
    if (end == path.size()) return false;
    start = end + 1;
  }
}

// ---------------------------------------------------------------- path patterns

std::string_view PathPattern::literal(std::size_t i) const noexcept {
  const Token& t = tokens_[i];
  return std::string_view(literals_).substr(t.offset, t.length);
}

Compiled<PathPattern> compilePathPattern(std::string_view text) { return compilePathPatternAt(text, 0); }

Compiled<PathPattern> compilePathPatternAt(std::string_view text, std::size_t base) {
  using Kind = PathPattern::Kind;
  if (text.empty()) return failure<PathPattern>(base, R"(the path pattern is empty; write e.g. "/status")");
  if (text.size() > kMaxPatternBytes) {
    return failure<PathPattern>(base + kMaxPatternBytes,
                                fmt::format("the path pattern is {} bytes long (at most {})", text.size(),
                                            kMaxPatternBytes));
  }
  if (text.front() != '/') {
    return failure<PathPattern>(base, R"(a path pattern starts with '/', e.g. "/nodes/**")");
  }
  PathPattern pattern;
  pattern.text_ = std::string(text);
  if (text.size() == 1) return {std::move(pattern), {}};  // "/": the root

  std::size_t segments = 0;
  for (std::size_t start = 1; start <= text.size();) {
    std::size_t end = text.find('/', start);
    if (end == std::string_view::npos) end = text.size();
    const std::string_view segment = text.substr(start, end - start);
    const std::size_t at = base + start;
    if (segment.empty()) {
      if (end == text.size()) {
        return failure<PathPattern>(base + start - 1,
                                    "the path pattern ends with '/'; remove it (\"/a/**\" covers everything "
                                    "below /a)");
      }
      return failure<PathPattern>(at, "empty segment ('//') in the path pattern");
    }
    if (++segments > kMaxPatternSegments) {
      return failure<PathPattern>(at, fmt::format("the path pattern has more than {} segments",
                                                  kMaxPatternSegments));
    }
    if (segment == "*" || segment == "**") {
      const Kind kind = segment == "*" ? Kind::one : Kind::any;
      // "/**/**" is "/**": keep one, so matching never does the same work twice.
      if (kind == Kind::one || pattern.tokens_.empty() || pattern.tokens_.back().kind != Kind::any) {
        pattern.tokens_.push_back({kind, 0, 0});
      }
    } else {
      const std::size_t literal_start = pattern.literals_.size();
      std::string decoded;
      for (std::size_t i = 0; i < segment.size(); ++i) {
        const auto c = static_cast<unsigned char>(segment[i]);
        if (c == '%') {
          const int hi = i + 1 < segment.size() ? hexValue(segment[i + 1]) : -1;
          const int lo = i + 2 < segment.size() ? hexValue(segment[i + 2]) : -1;
          if (hi < 0 || lo < 0) {
            return failure<PathPattern>(at + i, fmt::format("invalid percent-encoding \"{}\": '%' must be followed "
                                                            "by two hex digits (write %25 for a literal '%')",
                                                            segment.substr(i, 3)));
          }
          decoded.push_back(static_cast<char>(hi * 16 + lo));
          i += 2;
        } else if (c == '*') {
          return failure<PathPattern>(at + i, "'*' and '**' must be a whole segment (\"/a/*\" is one segment, "
                                              "\"/a/**\" any depth); write %2A for a literal '*'");
        } else if (c == '?') {
          return failure<PathPattern>(at + i, "a pattern matches the path only; remove the query ('?...')");
        } else if (c == '#') {
          return failure<PathPattern>(at + i, "a pattern matches the path only; remove the fragment ('#...')");
        } else if (!isPathChar(c)) {
          return failure<PathPattern>(at + i, fmt::format("{} is not allowed in a path; percent-encode it (%{:02X})",
                                                          describeChar(c), c));
        } else {
          decoded.push_back(static_cast<char>(c));
        }
      }
      if (decoded == "." || decoded == "..") {
        return failure<PathPattern>(at, "'.' and '..' segments are not allowed: request paths are not "
                                        "normalised, so a rule never matches them");
      }
      for (const char c : decoded) appendCanonical(pattern.literals_, static_cast<unsigned char>(c));
      // Canonical literals are never longer than the text (kMaxPatternBytes): they fit 16 bits.
      pattern.tokens_.push_back({Kind::literal, static_cast<std::uint16_t>(literal_start),
                                 static_cast<std::uint16_t>(pattern.literals_.size() - literal_start)});
    }
    start = end + 1;
  }
  return {std::move(pattern), {}};
}

// Glob matching over segments: `**` is the star, `*` and literals match one segment each. The
// classic greedy algorithm that backtracks only to the last star is exact for this pattern
// language and bounded by O(segments x tokens) segment comparisons, whatever the path.
bool PathPattern::matches(std::string_view path) const noexcept {
  if (hasDotOrEmptySegment(path)) return false;
  const std::size_t done = path.size() + 1;  // position "after the last segment"
  const std::size_t n = tokens_.size();
  std::size_t ti = 0;
  std::size_t si = path.empty() ? done : 0;
  std::size_t star_ti = kNone;
  std::size_t star_si = 0;
  while (si != done) {
    const std::size_t end = segmentEnd(path, si);
    if (ti < n && tokens_[ti].kind == Kind::any) {
      star_ti = ti++;
      star_si = si;
      continue;
    }
    if (ti < n && (tokens_[ti].kind == Kind::one || literal(ti) == path.substr(si, end - si))) {
      ++ti;
      si = end + 1;
      continue;
    }
    if (star_ti == kNone) return false;
    // Let the last `**` take one more segment and retry what follows it.
    ti = star_ti + 1;
    star_si = segmentEnd(path, star_si) + 1;
    si = star_si;
  }
  while (ti < n && tokens_[ti].kind == Kind::any) ++ti;
  return ti == n;
}

// ---------------------------------------------------------------- rules

Compiled<Rule> compileRule(std::string_view text) {
  std::size_t begin = 0;
  std::size_t end = text.size();
  while (begin < end && isBlank(text[begin])) ++begin;
  while (end > begin && isBlank(text[end - 1])) --end;
  if (begin == end) return failure<Rule>(0, R"(the rule is empty; write "METHOD /path", e.g. "GET /status")");
  std::size_t method_end = begin;
  while (method_end < end && !isBlank(text[method_end])) ++method_end;
  const std::string_view method = text.substr(begin, method_end - begin);
  std::size_t path_begin = method_end;
  while (path_begin < end && isBlank(text[path_begin])) ++path_begin;

  Rule rule;
  if (method == "*") {
    rule.method_ = std::nullopt;
  } else {
    const auto known = std::find_if(kMethods.begin(), kMethods.end(),
                                    [&](const MethodName& m) { return m.name == method; });
    if (known != kMethods.end()) {
      rule.method_ = known->method;
    } else if (method.starts_with('/')) {
      return failure<Rule>(begin, R"(the rule has no method; write "METHOD /path", e.g. "GET /status", )"
                                  R"(or "* /path" for any method)");
    } else {
      const auto near = std::find_if(kMethods.begin(), kMethods.end(),
                                     [&](const MethodName& m) { return equalsIgnoringCase(m.name, method); });
      if (near != kMethods.end()) {
        return failure<Rule>(begin, fmt::format("unknown method \"{}\"; did you mean \"{}\"?", method, near->name));
      }
      const std::string hint = method == "ANY" || method == "ALL" ? "; write * for any method" : "";
      return failure<Rule>(begin, fmt::format("unknown method \"{}\"{}; methods are GET, POST, PUT, DELETE, FETCH, "
                                              "PATCH, iPATCH or * (any)",
                                              method.size() > 16 ? std::string(method.substr(0, 16)) + "..."
                                                                 : std::string(method),
                                              hint));
    }
  }
  if (path_begin == end) {
    return failure<Rule>(method_end, R"(the rule has no path; write "METHOD /path", e.g. "GET /status")");
  }
  const std::string_view path = text.substr(path_begin, end - path_begin);
  if (const auto blank = std::find_if(path.begin(), path.end(), isBlank); blank != path.end()) {
    const auto at = path_begin + static_cast<std::size_t>(blank - path.begin());
    return failure<Rule>(at, "a space inside the path pattern; percent-encode it (%20) or remove it");
  }
  auto compiled = compilePathPatternAt(path, path_begin);
  if (!compiled.ok()) return {std::nullopt, std::move(compiled.error)};
  rule.path_ = std::move(*compiled.value);
  rule.text_ = std::string(text.substr(begin, end - begin));
  return {std::move(rule), {}};
}

// ---------------------------------------------------------------- identity patterns

Compiled<IdentityPattern> compileIdentityPattern(std::string_view text) {
  if (text.empty()) {
    return failure<IdentityPattern>(0, R"(the identity is empty; write "*" for every authenticated identity)");
  }
  if (text.size() > kMaxIdentityPatternBytes) {
    return failure<IdentityPattern>(kMaxIdentityPatternBytes,
                                    fmt::format("the identity is {} bytes long (at most {})", text.size(),
                                                kMaxIdentityPatternBytes));
  }
  for (std::size_t i = 0; i < text.size(); ++i) {
    const auto c = static_cast<unsigned char>(text[i]);
    if (c < 0x20 || c == 0x7F) {
      return failure<IdentityPattern>(i, fmt::format("the identity contains {}", describeChar(c)));
    }
  }
  IdentityPattern pattern;
  pattern.text_ = std::string(text);
  pattern.glob_ = text.find('*') != std::string_view::npos;
  return {std::move(pattern), {}};
}

// Byte-wise glob with `*` = any run (possibly empty); last-star backtracking, O(n x m).
bool IdentityPattern::matches(std::string_view identity) const noexcept {
  if (identity.empty()) return false;
  if (!glob_) return identity == text_;
  const std::string_view p = text_;
  std::size_t pi = 0;
  std::size_t si = 0;
  std::size_t star = kNone;
  std::size_t mark = 0;
  while (si < identity.size()) {
    if (pi < p.size() && p[pi] == '*') {
      star = pi++;
      mark = si;
    } else if (pi < p.size() && p[pi] == identity[si]) {
      ++pi;
      ++si;
    } else if (star != kNone) {
      pi = star + 1;
      si = ++mark;
    } else {
      return false;
    }
  }
  while (pi < p.size() && p[pi] == '*') ++pi;
  return pi == p.size();
}

}  // namespace coap_edge::policy
