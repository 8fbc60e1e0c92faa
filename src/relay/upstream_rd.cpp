#include "relay/upstream_rd.h"

#include <fmt/format.h>

#include <algorithm>

namespace coap_edge::relay {
namespace {

bool isUnreserved(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' || c == '.' ||
         c == '_' || c == '~';
}

std::string lifetimeParam(const RdPlanOptions& options) {
  std::string out = fmt::format("lt={}", options.lifetime.count());
  if (options.base) out += "&base=" + rdQueryEscape(*options.base);
  return out;
}

// The node's link as the upstream sees it: target under /nodes/{id}, anchor dropped.
std::optional<discovery::Link> rewrite(std::string_view node_id, const discovery::Link& link) {
  auto target = gatewayTarget(node_id, link.target);
  if (!target) return std::nullopt;
  discovery::Link out;
  out.target = std::move(*target);
  for (const auto& attribute : link.attributes) {
    if (attribute.name != "anchor") out.attributes.push_back(attribute);
  }
  return out;
}

// Adds the node's links to `out` while the payload stays within the bound.
void addLinks(RdRegistration& out, std::string_view node_id, const std::vector<discovery::Link>& links,
              std::size_t max_bytes) {
  for (const auto& link : links) {
    const auto rewritten = rewrite(node_id, link);
    if (!rewritten) {
      ++out.skipped;
      continue;
    }
    // The serializer writes links joined by ',': one link at a time gives the same text.
    const std::string text = discovery::serializeLinkFormat({*rewritten});
    const std::size_t needed = text.size() + (out.payload.empty() ? 0 : 1);
    if (out.payload.size() + needed > max_bytes) {
      ++out.skipped;
      continue;
    }
    if (!out.payload.empty()) out.payload.push_back(',');
    out.payload += text;
    ++out.links;
  }
}

RdRegistration start(std::string ep, const RdPlanOptions& options) {
  RdRegistration r;
  r.update_query = lifetimeParam(options);
  r.query = fmt::format("ep={}&{}", rdQueryEscape(ep), r.update_query);
  r.ep = std::move(ep);
  return r;
}

}  // namespace

std::string rdQueryEscape(std::string_view value) {
  std::string out;
  out.reserve(value.size());
  for (const char c : value) {
    if (isUnreserved(c)) {
      out.push_back(c);
    } else {
      out += fmt::format("%{:02X}", static_cast<unsigned char>(c));
    }
  }
  return out;
}

std::optional<std::string> gatewayTarget(std::string_view node_id, std::string_view target) {
  // A scheme (RFC 3986 §3.1) ends at the first ':' that comes before any '/', '?' or '#'.
  const auto colon = target.find(':');
  if (colon != std::string_view::npos && colon < target.find_first_of("/?#")) return std::nullopt;
  if (target.rfind("//", 0) == 0) return std::nullopt;  // network-path reference: another host
  std::string out = fmt::format("/nodes/{}", node_id);
  if (target.empty() || target.front() != '/') out.push_back('/');
  out += target;
  return out;
}

std::vector<RdRegistration> planRdRegistrations(std::span<const discovery::NodeRecord* const> nodes,
                                                const RdPlanOptions& options) {
  std::vector<RdRegistration> plan;
  if (options.mode == RdMode::gateway) {
    plan.push_back(start(options.gateway_name, options));
    for (const auto* node : nodes) addLinks(plan.back(), node->id, node->resources, options.max_payload_bytes);
    return plan;
  }
  plan.reserve(nodes.size());
  for (const auto* node : nodes) {
    plan.push_back(start(node->id, options));
    addLinks(plan.back(), node->id, node->resources, options.max_payload_bytes);
  }
  return plan;
}

std::chrono::seconds rdRefreshAfter(std::chrono::seconds lifetime) {
  using std::chrono::seconds;
  const seconds three_quarters = lifetime * 3 / 4;
  const seconds margin = lifetime - seconds(60);
  seconds best = three_quarters;
  if (margin > seconds(0) && (best <= seconds(0) || margin < best)) best = margin;
  return std::max(best, seconds(1));
}

std::uint64_t RdRegistrationState::contentHash(const RdRegistration& registration) {
  std::uint64_t hash = 0xcbf29ce484222325ULL;
  auto mix = [&hash](std::string_view text) {
    for (const char c : text) {
      hash ^= static_cast<unsigned char>(c);
      hash *= 0x100000001b3ULL;
    }
  };
  mix(registration.query);
  mix(std::string_view("\0", 1));  // "a" + "bc" differs from "ab" + "c"
  mix(registration.payload);
  return hash;
}

RdRegistrationState::Action RdRegistrationState::action(const RdRegistration& planned, Clock::time_point now) const {
  const Entry* entry = find(planned.ep);
  if (entry == nullptr) return Action::create;
  if (entry->content_hash != contentHash(planned)) return Action::update;
  if (now >= entry->refresh_at) return Action::refresh;
  return Action::none;
}

void RdRegistrationState::registered(const RdRegistration& planned, std::string location,
                                     std::chrono::seconds lifetime, Clock::time_point now) {
  Entry& entry = entries_[planned.ep];
  entry.location = std::move(location);
  entry.registered = now;
  entry.lifetime = lifetime;
  entry.refresh_at = now + rdRefreshAfter(lifetime);
  entry.content_hash = contentHash(planned);
}

void RdRegistrationState::refreshed(std::string_view ep, Clock::time_point now) {
  const auto it = entries_.find(ep);
  if (it == entries_.end()) return;
  it->second.registered = now;
  it->second.refresh_at = now + rdRefreshAfter(it->second.lifetime);
}

void RdRegistrationState::lost(std::string_view ep) {
  const auto it = entries_.find(ep);
  if (it != entries_.end()) entries_.erase(it);
}

std::vector<std::string> RdRegistrationState::stale(std::span<const RdRegistration> plan) const {
  std::vector<std::string> out;
  for (const auto& kv : entries_) {
    // A plain reference: clang 14 cannot capture a structured binding in a lambda.
    const std::string& ep = kv.first;
    const bool planned = std::any_of(plan.begin(), plan.end(), [&](const RdRegistration& r) { return r.ep == ep; });
    if (!planned) out.push_back(ep);
  }
  return out;
}

std::optional<RdRegistrationState::Clock::time_point> RdRegistrationState::nextRefresh() const {
  std::optional<Clock::time_point> next;
  for (const auto& [ep, entry] : entries_) {
    if (!next || entry.refresh_at < *next) next = entry.refresh_at;
  }
  return next;
}

const RdRegistrationState::Entry* RdRegistrationState::find(std::string_view ep) const {
  const auto it = entries_.find(ep);
  return it == entries_.end() ? nullptr : &it->second;
}

}  // namespace coap_edge::relay
