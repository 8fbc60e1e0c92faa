// libFuzzer target for the ACL pattern compiler and matcher (policy/acl.h). Input: the first line
// is compiled as a rule ("METHOD /pattern"), as a bare path pattern and as an identity pattern;
// every further line is a request path (canonical form) matched against what compiled. Each
// match is checked against a slow, obviously correct reference (dynamic programming over the
// tokens and segments), so a wrong answer traps just like a crash.

#include "policy/acl.h"

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace {

using coap_edge::policy::PathPattern;

std::vector<std::string_view> split(std::string_view text, char separator) {
  std::vector<std::string_view> parts;
  for (std::size_t start = 0;;) {
    const std::size_t end = text.find(separator, start);
    parts.push_back(text.substr(start, end == std::string_view::npos ? std::string_view::npos : end - start));
    if (end == std::string_view::npos) return parts;
    start = end + 1;
  }
}

bool referenceMatch(const PathPattern& pattern, std::string_view path) {
  const std::vector<std::string_view> segments = path.empty() ? std::vector<std::string_view>{} : split(path, '/');
  for (auto s : segments) {
    if (s.empty() || s == "." || s == "..") return false;
  }
  const std::size_t n = pattern.tokenCount();
  const std::size_t m = segments.size();
  // can[i][j]: tokens i.. match segments j..
  std::vector<std::vector<char>> can(n + 1, std::vector<char>(m + 1, 0));
  can[n][m] = 1;
  for (std::size_t i = n; i-- > 0;) {
    for (std::size_t j = m + 1; j-- > 0;) {
      switch (pattern.kind(i)) {
        case PathPattern::Kind::any:
          can[i][j] = static_cast<char>(can[i + 1][j] || (j < m && can[i][j + 1]));
          break;
        case PathPattern::Kind::one:
          can[i][j] = static_cast<char>(j < m && can[i + 1][j + 1]);
          break;
        case PathPattern::Kind::literal:
          can[i][j] = static_cast<char>(j < m && segments[j] == pattern.literal(i) && can[i + 1][j + 1]);
          break;
      }
    }
  }
  return can[0][0] != 0;
}

// Dynamic programming over suffixes, O(|p| x |s|): obviously correct, and unlike the naive
// recursion it does not go exponential on "**************" against a long identity.
bool referenceGlob(std::string_view p, std::string_view s) {
  std::vector<std::vector<char>> can(p.size() + 1, std::vector<char>(s.size() + 1, 0));
  can[p.size()][s.size()] = 1;
  for (std::size_t i = p.size(); i-- > 0;) {
    for (std::size_t j = s.size() + 1; j-- > 0;) {
      if (p[i] == '*') {
        can[i][j] = static_cast<char>(can[i + 1][j] != 0 || (j < s.size() && can[i][j + 1] != 0));
      } else {
        can[i][j] = static_cast<char>(j < s.size() && s[j] == p[i] && can[i + 1][j + 1] != 0);
      }
    }
  }
  return can[0][0] != 0;
}

// libcoap's form: RFC 3986 pchar bytes as they are, everything else %XX in upper case.
bool isCanonicalLiteral(std::string_view literal) {
  if (literal.empty() || literal == "." || literal == "..") return false;
  static constexpr std::string_view kPlain =
      "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~!$&'()*+,;=:@";
  auto upperHex = [](char h) { return (h >= '0' && h <= '9') || (h >= 'A' && h <= 'F'); };
  for (std::size_t i = 0; i < literal.size(); ++i) {
    const char c = literal[i];
    if (c == '%') {
      if (i + 2 >= literal.size() || !upperHex(literal[i + 1]) || !upperHex(literal[i + 2])) return false;
      // An escaped byte that is itself plain would have been written plainly.
      const auto hex = [](char h) { return h <= '9' ? h - '0' : h - 'A' + 10; };
      const auto byte = static_cast<char>(hex(literal[i + 1]) * 16 + hex(literal[i + 2]));
      if (kPlain.find(byte) != std::string_view::npos) return false;
      i += 2;
    } else if (kPlain.find(c) == std::string_view::npos) {
      return false;
    }
  }
  return true;
}

void checkPattern(const PathPattern& pattern, const std::vector<std::string_view>& paths) {
  if (pattern.tokenCount() > coap_edge::policy::kMaxPatternSegments) __builtin_trap();
  for (std::size_t i = 0; i < pattern.tokenCount(); ++i) {
    if (pattern.kind(i) == PathPattern::Kind::literal && !isCanonicalLiteral(pattern.literal(i))) __builtin_trap();
    if (i > 0 && pattern.kind(i) == PathPattern::Kind::any && pattern.kind(i - 1) == PathPattern::Kind::any) {
      __builtin_trap();  // consecutive `**` are collapsed
    }
  }
  for (auto path : paths) {
    const bool fast = pattern.matches(path);
    if (fast != referenceMatch(pattern, path)) __builtin_trap();
    if (fast && coap_edge::policy::hasDotOrEmptySegment(path)) __builtin_trap();
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace coap_edge::policy;
  const std::string_view input(reinterpret_cast<const char*>(data), size);
  const std::size_t newline = input.find('\n');
  const std::string_view first = input.substr(0, newline);
  std::vector<std::string_view> paths;
  if (newline != std::string_view::npos) paths = split(input.substr(newline + 1), '\n');

  const auto rule = compileRule(first);
  if (rule.ok()) {
    checkPattern(rule.value->path(), paths);
    for (auto path : paths) {
      if (rule.value->matches(Method::get, path) &&
          !(rule.value->method().value_or(Method::get) == Method::get && rule.value->path().matches(path))) {
        __builtin_trap();
      }
    }
  } else if (rule.error.offset > first.size() || rule.error.message.empty()) {
    __builtin_trap();
  }

  const auto pattern = compilePathPattern(first);
  if (pattern.ok()) {
    if (pattern.value->text() != first) __builtin_trap();
    checkPattern(*pattern.value, paths);
  } else if (pattern.error.offset > first.size() || pattern.error.message.empty()) {
    __builtin_trap();
  }

  // Identity globs: bounded input for the exponential reference.
  const auto identity = compileIdentityPattern(first);
  if (identity.ok()) {
    for (auto candidate : paths) {
      if (first.size() > 24 || candidate.size() > 24) continue;
      const bool expected = !candidate.empty() && referenceGlob(first, candidate);
      if (identity.value->matches(candidate) != expected) __builtin_trap();
    }
  }

  // The whole decision: never allocates or throws; the built-ins and the rule agree with it.
  Policy policy;
  if (rule.ok() && identity.ok()) {
    Entry entry;
    entry.label = "fuzz";
    entry.who.push_back(*identity.value);
    entry.allow.push_back(*rule.value);
    policy = Policy({entry});
  }
  for (auto path : paths) {
    for (std::string_view who : {std::string_view(), std::string_view("dev-1"), first}) {
      const Verdict v = policy.check(who, Method::get, path);
      if (who.empty() && v.decision == Decision::forbidden) __builtin_trap();
      if (v.decision == Decision::allow && path != ".well-known/core" && hasDotOrEmptySegment(path)) {
        __builtin_trap();
      }
    }
  }
  return 0;
}
