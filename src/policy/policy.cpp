// Decisions (acl.h): the open /.well-known/core, the built-in rules for a device's own node and
// Resource Directory endpoint, then the configured entries; everything else is denied.

#include "policy/acl.h"

namespace coap_edge::policy {
namespace {

constexpr std::string_view kWellKnownCore = ".well-known/core";

// Whether the canonical path segment `segment` is `raw` written in canonical form (acl.h), i.e.
// the segment a device identity becomes in /nodes/{identity}; compared without building it.
bool segmentIsCanonicalOf(std::string_view segment, std::string_view raw) noexcept {
  static constexpr std::string_view kHex = "0123456789ABCDEF";
  std::size_t at = 0;
  for (const char ch : raw) {
    const auto c = static_cast<unsigned char>(ch);
    const bool plain = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                       std::string_view("-._~!$&'()*+,;=:@").find(ch) != std::string_view::npos;
    if (plain) {
      if (at >= segment.size() || segment[at] != ch) return false;
      ++at;
    } else {
      if (at + 3 > segment.size() || segment[at] != '%' || segment[at + 1] != kHex[c >> 4U] ||
          segment[at + 2] != kHex[c & 0x0FU]) {
        return false;
      }
      at += 3;
    }
  }
  return at == segment.size();
}

// Splits off the first segment: returns it and leaves the rest (without the '/') in `path`;
// `more` tells whether a '/' followed.
std::string_view takeSegment(std::string_view& path, bool& more) noexcept {
  const std::size_t slash = path.find('/');
  if (slash == std::string_view::npos) {
    const std::string_view first = path;
    path = {};
    more = false;
    return first;
  }
  const std::string_view first = path.substr(0, slash);
  path.remove_prefix(slash + 1);
  more = true;
  return first;
}

// /nodes/X or anything below it.
bool isOwnNode(std::string_view identity, std::string_view path) noexcept {
  bool more = false;
  if (takeSegment(path, more) != "nodes" || !more) return false;
  return segmentIsCanonicalOf(takeSegment(path, more), identity);
}

// POST /rd (registration), POST /.well-known/rd (simple registration), or /rd/X (X's
// registration resource).
bool isOwnRd(std::string_view identity, Method method, std::string_view path) noexcept {
  if (path == ".well-known/rd") return method == Method::post;
  bool more = false;
  if (takeSegment(path, more) != "rd") return false;
  if (!more) return method == Method::post;
  const std::string_view ep = takeSegment(path, more);
  return !more && segmentIsCanonicalOf(ep, identity);
}

Verdict builtIn(Decision decision, Basis basis) noexcept { return {decision, basis, nullptr, nullptr}; }

}  // namespace

void DecisionCounts::record(Decision decision) noexcept {
  switch (decision) {
    case Decision::allow:
      ++allowed;
      break;
    case Decision::forbidden:
      ++forbidden;
      break;
    case Decision::unauthenticated:
      ++unauthenticated;
      break;
  }
}

Verdict Policy::check(std::string_view identity, Method method, std::string_view path) const noexcept {
  if (method == Method::get && path == kWellKnownCore) return builtIn(Decision::allow, Basis::well_known_core);
  if (identity.empty()) return builtIn(Decision::unauthenticated, Basis::no_identity);
  // No rule, built-in or configured, ever matches these (acl.h): decide before the built-ins,
  // which compare segments with the identity directly.
  if (hasDotOrEmptySegment(path)) return builtIn(Decision::forbidden, Basis::no_rule);
  if (isOwnNode(identity, path)) return builtIn(Decision::allow, Basis::own_node);
  if (isOwnRd(identity, method, path)) return builtIn(Decision::allow, Basis::own_rd);
  for (const Entry& entry : entries_) {
    bool selected = false;
    for (const IdentityPattern& who : entry.who) {
      if (who.matches(identity)) {
        selected = true;
        break;
      }
    }
    if (!selected) continue;
    for (const Rule& rule : entry.allow) {
      if (rule.matches(method, path)) return {Decision::allow, Basis::rule, &entry, &rule};
    }
  }
  return builtIn(Decision::forbidden, Basis::no_rule);
}

bool Policy::allowsRdEndpoint(std::string_view identity, std::string_view ep) noexcept {
  return !identity.empty() && ep == identity;
}

std::size_t Policy::ruleCount() const noexcept {
  std::size_t n = 0;
  for (const Entry& entry : entries_) n += entry.allow.size();
  return n;
}

}  // namespace coap_edge::policy
