// Resource Directory registrations (resource_directory.h): register, update, remove, expire.
// Lookups are in rd_lookup.cpp.

#include "discovery/resource_directory.h"

#include "discovery/rd_detail.h"
#include "discovery/rd_uri.h"

#include <fmt/format.h>

#include <algorithm>
#include <charconv>
#include <limits>

namespace coap_edge::discovery {

using rd_detail::badRequest;
using rd_detail::reply;

namespace {

constexpr std::int64_t kMaxRfcLifetime = 4294967295;  // RFC 9176 §5.3: lt is 1..2^32-1

// Parameters that belong to lookups (RFC 9176 §6) or to links, never to an endpoint: accepting
// them as endpoint attributes would make lookup results ambiguous.
constexpr std::string_view kNotEndpointAttributes[] = {"page", "count", "href", "anchor", "rel", "rt", "if"};

enum class Mode : std::uint8_t { registration, simple, update };

bool hasControlCharacter(std::string_view text) noexcept {
  return std::any_of(text.begin(), text.end(), [](char c) {
    const auto byte = static_cast<unsigned char>(c);
    return byte < 0x20 || byte == 0x7F;
  });
}

// Approximate heap and object bytes of one registration (strings by size, objects by sizeof,
// plus the three index entries).
std::size_t approxBytes(const Registration& r) noexcept {
  std::size_t bytes = sizeof(Registration) + r.id.size() * 2 + r.ep.size() + r.sector.size() + r.base.size() +
                      r.registrant.size() + 3 * 64;
  auto attributeBytes = [](const LinkAttribute& a) {
    return sizeof(LinkAttribute) + a.name.size() + (a.value ? a.value->size() : 0);
  };
  for (const LinkAttribute& a : r.extra_attributes) bytes += attributeBytes(a);
  for (const Link& link : r.links) {
    bytes += sizeof(Link) + link.target.size();
    for (const LinkAttribute& a : link.attributes) bytes += attributeBytes(a);
  }
  return bytes;
}

}  // namespace

struct ResourceDirectory::Params {
  std::optional<std::string> ep;
  std::optional<std::string> sector;
  std::optional<std::string> base;
  std::optional<std::chrono::seconds> lifetime;
  std::vector<LinkAttribute> extra;
};

namespace {

std::optional<std::string> checkName(std::string_view what, const std::string& value, std::size_t max_bytes) {
  if (value.empty()) return fmt::format("{} is empty", what);
  if (value.size() > max_bytes) return fmt::format("{} is longer than {} bytes", what, max_bytes);
  if (hasControlCharacter(value)) return fmt::format("{} contains a control character", what);
  // The ep names the registration resource /rd/{ep} (resource_directory.h).
  if (what == "ep" && encodePathSegment(value) != value) {
    return std::string("ep may only contain letters, digits and - . _ ~ ! $ & ' ( ) * + , ; = : @");
  }
  return std::nullopt;
}

std::optional<std::string> parseLifetime(const std::string& text, const RdLimits& limits, std::chrono::seconds& out) {
  if (text.empty() || text.size() > 10 || !std::all_of(text.begin(), text.end(), [](char c) { return c >= '0' && c <= '9'; })) {
    return fmt::format("lt must be a number of seconds from 1 to {}", kMaxRfcLifetime);
  }
  std::int64_t seconds = 0;
  std::from_chars(text.data(), text.data() + text.size(), seconds);  // <= 10 digits: cannot overflow
  if (seconds < 1 || seconds > kMaxRfcLifetime) {
    return fmt::format("lt must be a number of seconds from 1 to {}", kMaxRfcLifetime);
  }
  if (seconds > limits.max_lifetime.count()) {
    return fmt::format("lt {} is above this directory's maximum of {} seconds", seconds, limits.max_lifetime.count());
  }
  out = std::max(std::chrono::seconds{seconds}, limits.min_lifetime);
  return std::nullopt;
}

}  // namespace

namespace {

// Validates a registration or update query into `params`; the error text is for a 4.00.
template <typename Params>
std::optional<std::string> parseParams(std::string_view query, const RdLimits& limits, Mode mode, Params& params) {
  QueryParseResult parsed = parseRdQuery(query, limits.max_query_bytes, limits.max_query_params);
  if (!parsed.ok()) return parsed.error;
  bool seen_lt = false;
  for (QueryParam& param : parsed.params) {
    const std::string& name = param.name;
    auto once = [&](bool seen) -> std::optional<std::string> {
      if (seen) return fmt::format("duplicate {}", name);
      if (!param.value) return fmt::format("{} needs a value", name);
      return std::nullopt;
    };
    if (name == "ep" || name == "d") {
      if (mode == Mode::update) return fmt::format("{} cannot be changed by an update", name);
      std::optional<std::string>& slot = name == "ep" ? params.ep : params.sector;
      if (auto error = once(slot.has_value())) return error;
      if (auto error = checkName(name, *param.value, limits.max_name_bytes)) return error;
      slot = std::move(param.value);
    } else if (name == "lt") {
      if (auto error = once(seen_lt)) return error;
      seen_lt = true;
      std::chrono::seconds lifetime{};
      if (auto error = parseLifetime(*param.value, limits, lifetime)) return error;
      params.lifetime = lifetime;
    } else if (name == "base") {
      if (mode == Mode::simple) return std::string("base is not allowed in a simple registration");
      if (auto error = once(params.base.has_value())) return error;
      if (auto error = baseUriError(*param.value, limits.max_value_bytes)) return error;
      params.base = std::move(param.value);
    } else if (std::find(std::begin(kNotEndpointAttributes), std::end(kNotEndpointAttributes), name) !=
               std::end(kNotEndpointAttributes)) {
      return fmt::format("{} is not an endpoint attribute", name);
    } else {
      if (name.size() > limits.max_name_bytes) {
        return fmt::format("a parameter name is longer than {} bytes", limits.max_name_bytes);
      }
      if (params.extra.size() == limits.max_endpoint_attributes) {
        return fmt::format("more than {} endpoint attributes", limits.max_endpoint_attributes);
      }
      if (param.value && param.value->size() > limits.max_value_bytes) {
        return fmt::format("the value of {} is longer than {} bytes", name, limits.max_value_bytes);
      }
      if (param.value && hasControlCharacter(*param.value)) {
        return fmt::format("the value of {} contains a control character", name);
      }
      const bool has_value = param.value.has_value();
      params.extra.push_back(LinkAttribute{std::move(param.name), std::move(param.value), has_value});
    }
  }
  if (mode != Mode::update && !params.ep) return std::string("missing ep");
  return std::nullopt;
}

}  // namespace

namespace rd_detail {

std::string registrationPath(std::string_view id) { return "/rd/" + encodePathSegment(id); }

}  // namespace rd_detail

int rdCoapCode(RdStatus status) noexcept {
  switch (status) {
    case RdStatus::created:
      return 201;
    case RdStatus::deleted:
      return 202;
    case RdStatus::changed:
      return 204;
    case RdStatus::content:
      return 205;
    case RdStatus::bad_request:
      return 400;
    case RdStatus::forbidden:
      return 403;
    case RdStatus::not_found:
      return 404;
    case RdStatus::payload_too_large:
      return 413;
    case RdStatus::service_unavailable:
      return 503;
  }
  return 500;
}

ResourceDirectory::ResourceDirectory(RdLimits limits) : limits_(limits) {
  using std::chrono::seconds;
  limits_.max_lifetime = std::clamp(limits_.max_lifetime, seconds{1}, seconds{kMaxRfcLifetime});
  limits_.min_lifetime = std::clamp(limits_.min_lifetime, seconds{1}, limits_.max_lifetime);
  limits_.default_lifetime = std::clamp(limits_.default_lifetime, limits_.min_lifetime, limits_.max_lifetime);
  limits_.max_page_count = std::max<std::size_t>(limits_.max_page_count, 1);
}

RdReply ResourceDirectory::registerEndpoint(std::string_view query, std::string_view payload,
                                            std::string_view default_base, std::string_view registrant,
                                            RdClock::time_point now) {
  return registerWith(query, payload, default_base, registrant, now, false);
}

std::optional<RdReply> ResourceDirectory::checkSimpleRegistration(std::string_view query) const {
  Params params;
  if (auto error = parseParams(query, limits_, Mode::simple, params)) return badRequest(std::move(*error));
  return std::nullopt;
}

RdReply ResourceDirectory::registerSimple(std::string_view query, std::string_view links_payload,
                                          std::string_view default_base, std::string_view registrant,
                                          RdClock::time_point now) {
  return registerWith(query, links_payload, default_base, registrant, now, true);
}

namespace {

// Parses a registration payload: the link-format parser's own bounds are the RD's limits.
// nullopt with `error` set on failure.
std::optional<std::vector<Link>> parseLinks(std::string_view payload, const RdLimits& limits, bool simple,
                                            RdReply& error) {
  const std::string_view source = simple ? "the endpoint's /.well-known/core: " : "";
  if (payload.size() > limits.max_payload_bytes) {
    error = reply(simple ? RdStatus::bad_request : RdStatus::payload_too_large,
                  fmt::format("{}link-format payload larger than {} bytes", source, limits.max_payload_bytes));
    return std::nullopt;
  }
  LinkFormatLimits link_limits;
  link_limits.max_bytes = limits.max_payload_bytes;
  link_limits.max_links = limits.max_links_per_registration;
  LinkFormatResult parsed = parseLinkFormat(payload, link_limits);
  if (!parsed.ok()) {
    error = badRequest(fmt::format("{}offset {}: {}", source, parsed.error->offset, parsed.error->message));
    return std::nullopt;
  }
  // The parser enforces max_links; checked again so that the bound does not rest on it alone.
  if (parsed.links.size() > limits.max_links_per_registration) {
    error = badRequest(fmt::format("{}more than {} links", source, limits.max_links_per_registration));
    return std::nullopt;
  }
  return std::move(parsed.links);
}

}  // namespace

RdReply ResourceDirectory::registerWith(std::string_view query, std::string_view payload,
                                        std::string_view default_base, std::string_view registrant,
                                        RdClock::time_point now, bool simple) {
  // Everything is checked before anything changes: a refused registration leaves no trace.
  Params params;
  if (auto error = parseParams(query, limits_, simple ? Mode::simple : Mode::registration, params)) {
    return badRequest(std::move(*error));
  }
  RdReply refusal;
  std::optional<std::vector<Link>> links = parseLinks(payload, limits_, simple, refusal);
  if (!links) return refusal;
  const bool base_explicit = params.base.has_value();
  if (!base_explicit && baseUriError(default_base, limits_.max_value_bytes)) {
    return badRequest("no base= given and the requester's address cannot be used as the base URI");
  }
  const std::string& ep = *params.ep;
  Entry* entry = nullptr;
  if (auto found = by_id_.find(ep); found != by_id_.end()) {
    entry = &entries_.at(found->second);
    const std::string& owner = entry->registration.registrant;
    if (!owner.empty() && owner != registrant) {
      return reply(RdStatus::forbidden, fmt::format("endpoint {} is registered by another identity", ep));
    }
  } else if (entries_.size() >= limits_.max_registrations) {
    return reply(RdStatus::service_unavailable,
                 fmt::format("the resource directory is full ({} registrations)", limits_.max_registrations));
  }

  Registration registration;
  registration.id = ep;
  registration.ep = ep;
  registration.sector = params.sector.value_or(std::string());
  registration.base = base_explicit ? std::move(*params.base) : std::string(default_base);
  registration.base_explicit = base_explicit;
  registration.lifetime = params.lifetime.value_or(limits_.default_lifetime);
  registration.links = std::move(*links);
  registration.extra_attributes = std::move(params.extra);
  registration.registrant = std::string(registrant);

  const RdEvent event = entry ? RdEvent::updated : RdEvent::added;
  if (!entry) {
    const std::uint64_t sequence = next_sequence_++;
    entry = &entries_[sequence];
    by_id_.emplace(ep, sequence);
  } else {
    by_expiry_.erase({entry->registration.expires, by_id_.find(ep)->second});
  }
  const std::uint64_t sequence = by_id_.find(ep)->second;
  entry->registration = std::move(registration);
  entry->registration.expires = now + entry->registration.lifetime;
  by_expiry_.emplace(entry->registration.expires, sequence);
  bytes_ -= entry->bytes;
  entry->bytes = approxBytes(entry->registration);
  bytes_ += entry->bytes;
  notify(entry->registration, event);

  RdReply result = reply(simple ? RdStatus::changed : RdStatus::created);
  result.location = "rd/" + ep;
  return result;
}

RdReply ResourceDirectory::update(std::string_view id, std::string_view query, std::string_view payload,
                                  std::string_view default_base, std::string_view requester,
                                  RdClock::time_point now) {
  const auto found = by_id_.find(id);
  if (found == by_id_.end()) return reply(RdStatus::not_found, "no such registration");
  const std::uint64_t sequence = found->second;
  Entry& entry = entries_.at(sequence);
  Registration& current = entry.registration;
  if (!current.registrant.empty() && current.registrant != requester) {
    return reply(RdStatus::forbidden, "the registration belongs to another identity");
  }
  Params params;
  if (auto error = parseParams(query, limits_, Mode::update, params)) return badRequest(std::move(*error));
  std::optional<std::vector<Link>> links;
  if (!payload.empty()) {
    RdReply refusal;
    links = parseLinks(payload, limits_, false, refusal);
    if (!links) return refusal;
  }
  // RFC 9176 §5.3.1: a given attribute overrides every earlier value of that name.
  std::vector<LinkAttribute> attributes = current.extra_attributes;
  for (const LinkAttribute& given : params.extra) {
    std::erase_if(attributes, [&given](const LinkAttribute& a) { return a.name == given.name; });
  }
  attributes.insert(attributes.end(), params.extra.begin(), params.extra.end());
  if (attributes.size() > limits_.max_endpoint_attributes) {
    return badRequest(fmt::format("more than {} endpoint attributes", limits_.max_endpoint_attributes));
  }

  // Checked; now apply.
  if (params.base) {
    current.base = std::move(*params.base);
    current.base_explicit = true;
  } else if (!current.base_explicit && !baseUriError(default_base, limits_.max_value_bytes)) {
    current.base = std::string(default_base);  // the endpoint moved (NAT rebinding, new address)
  }
  if (params.lifetime) current.lifetime = *params.lifetime;
  if (links) current.links = std::move(*links);
  current.extra_attributes = std::move(attributes);
  by_expiry_.erase({current.expires, sequence});
  current.expires = now + current.lifetime;
  by_expiry_.emplace(current.expires, sequence);
  bytes_ -= entry.bytes;
  entry.bytes = approxBytes(current);
  bytes_ += entry.bytes;
  notify(current, RdEvent::updated);
  return reply(RdStatus::changed);
}

RdReply ResourceDirectory::remove(std::string_view id, std::string_view requester) {
  const auto found = by_id_.find(id);
  if (found == by_id_.end()) return reply(RdStatus::not_found, "no such registration");
  const auto it = entries_.find(found->second);
  const std::string& owner = it->second.registration.registrant;
  if (!owner.empty() && owner != requester) {
    return reply(RdStatus::forbidden, "the registration belongs to another identity");
  }
  Registration removed = std::move(it->second.registration);
  erase(it, removed);
  notify(removed, RdEvent::removed);
  return reply(RdStatus::deleted);
}

RdReply ResourceDirectory::read(std::string_view id) const {
  const Registration* registration = find(id);
  if (!registration) return reply(RdStatus::not_found, "no such registration");
  return reply(RdStatus::content, serializeLinkFormat(registration->links));
}

std::vector<Registration> ResourceDirectory::expire(RdClock::time_point now) {
  std::vector<Registration> expired;
  while (!by_expiry_.empty() && by_expiry_.begin()->first <= now) {
    const auto it = entries_.find(by_expiry_.begin()->second);
    Registration removed = std::move(it->second.registration);
    erase(it, removed);
    notify(removed, RdEvent::removed);
    expired.push_back(std::move(removed));
  }
  return expired;
}

std::optional<RdClock::time_point> ResourceDirectory::nextExpiry() const {
  if (by_expiry_.empty()) return std::nullopt;
  return by_expiry_.begin()->first;
}

const Registration* ResourceDirectory::find(std::string_view id) const {
  const auto found = by_id_.find(id);
  if (found == by_id_.end()) return nullptr;
  return &entries_.at(found->second).registration;
}

std::vector<const Registration*> ResourceDirectory::registrations() const {
  std::vector<const Registration*> all;
  all.reserve(entries_.size());
  for (const auto& [sequence, entry] : entries_) all.push_back(&entry.registration);
  return all;
}

void ResourceDirectory::erase(std::map<std::uint64_t, Entry>::iterator it, const Registration& removed) {
  by_expiry_.erase({removed.expires, it->first});
  by_id_.erase(by_id_.find(removed.id));
  bytes_ -= it->second.bytes;
  entries_.erase(it);
}

void ResourceDirectory::notify(const Registration& registration, RdEvent event) const {
  if (on_change_) on_change_(registration, event);
}

}  // namespace coap_edge::discovery
