// Resource Directory lookups (RFC 9176 §6): /rd-lookup/ep and /rd-lookup/res.
//
// Filters: every query parameter other than page and count is a filter, and all must match.
// `name=value` matches an attribute of that name with exactly that value; a value ending in '*'
// matches every value that starts with the rest; a bare `name` matches the attribute's presence.
// Space-separated attributes (rt, if, rel, ct) also match word by word.
//   - Resource lookup: a link matches a filter through its own attributes or through its
//     registration's endpoint attributes (ep, d, base, lt, et and the others).
//   - Endpoint lookup: an endpoint matches a filter through its endpoint attributes or through
//     any one of its links (each filter on its own).
//   - href (and anchor): a filter value with a scheme is compared with the resolved absolute URI,
//     one without with the reference as registered; on endpoint lookup, href also matches the
//     registration resource's path ("/rd/ep").
// Paging: count=N returns at most N results, page=P (needs count) skips the first P*N.

#include "discovery/rd_detail.h"
#include "discovery/rd_uri.h"
#include "discovery/resource_directory.h"

#include <fmt/format.h>

#include <charconv>
#include <limits>

namespace coap_edge::discovery {

using rd_detail::badRequest;
using rd_detail::reply;

namespace {

struct Filter {
  std::string name;
  std::optional<std::string> value;  ///< without the trailing '*' when `prefix`
  bool prefix = false;
};

struct Lookup {
  std::vector<Filter> filters;
  std::size_t skip = 0;
  std::optional<std::size_t> count;
};

bool isListAttribute(std::string_view name) noexcept {
  return name == "rt" || name == "if" || name == "rel" || name == "ct";
}

bool valueMatches(const Filter& filter, std::string_view value) noexcept {
  if (!filter.value) return true;
  return filter.prefix ? value.starts_with(*filter.value) : value == *filter.value;
}

bool wordMatches(const Filter& filter, std::string_view value) noexcept {
  if (valueMatches(filter, value)) return true;
  if (!isListAttribute(filter.name)) return false;
  std::size_t start = 0;
  while (start < value.size()) {
    std::size_t end = value.find(' ', start);
    if (end == std::string_view::npos) end = value.size();
    if (end > start && valueMatches(filter, value.substr(start, end - start))) return true;
    start = end + 1;
  }
  return false;
}

bool attributeMatches(const std::vector<LinkAttribute>& attributes, const Filter& filter) noexcept {
  for (const LinkAttribute& attribute : attributes) {
    if (attribute.name != filter.name) continue;
    if (!filter.value) return true;
    if (attribute.value && wordMatches(filter, *attribute.value)) return true;
  }
  return false;
}

bool endpointMatches(const Registration& r, const Filter& filter) {
  if (filter.name == "ep") return valueMatches(filter, r.ep);
  if (filter.name == "d") return !r.sector.empty() && valueMatches(filter, r.sector);
  if (filter.name == "base") return valueMatches(filter, r.base);
  if (filter.name == "lt") return valueMatches(filter, std::to_string(r.lifetime.count()));
  return attributeMatches(r.extra_attributes, filter);
}

// The absolute anchor of a link: its anchor resolved against the base, or the base itself.
std::string resolvedAnchor(const Registration& r, const Link& link) {
  for (const LinkAttribute& a : link.attributes) {
    if (a.name == "anchor" && a.value) return resolveUriReference(r.base, *a.value);
  }
  return r.base;
}

// A filter on one link (with the registration it came from for resolution).
bool linkMatches(const Registration& r, const Link& link, const Filter& filter) {
  const bool absolute = filter.value && hasUriScheme(*filter.value);
  if (filter.name == "href") {
    if (!filter.value) return true;
    return valueMatches(filter, absolute ? resolveUriReference(r.base, link.target) : link.target);
  }
  if (filter.name == "anchor" && absolute) return valueMatches(filter, resolvedAnchor(r, link));
  return attributeMatches(link.attributes, filter);
}

// The link as the lookup presents it (RFC 9176 Appendix C): absolute target, absolute anchor.
Link resolvedLink(const Registration& r, const Link& link) {
  Link out;
  out.target = resolveUriReference(r.base, link.target);
  out.attributes.reserve(link.attributes.size() + 1);
  for (const LinkAttribute& a : link.attributes) {
    if (a.name != "anchor") out.attributes.push_back(a);
  }
  out.attributes.push_back(LinkAttribute{"anchor", resolvedAnchor(r, link), true});
  return out;
}

Link endpointLink(const Registration& r) {
  Link out;
  out.target = rd_detail::registrationPath(r.id);
  out.attributes.push_back(LinkAttribute{"base", r.base, true});
  out.attributes.push_back(LinkAttribute{"ep", r.ep, true});
  if (!r.sector.empty()) out.attributes.push_back(LinkAttribute{"d", r.sector, true});
  out.attributes.push_back(LinkAttribute{"lt", std::to_string(r.lifetime.count()), false});
  for (const LinkAttribute& a : r.extra_attributes) out.attributes.push_back(a);
  return out;
}

std::optional<std::size_t> parseCount(const std::string& text) noexcept {
  std::size_t value = 0;
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (text.empty() || ec != std::errc() || end != text.data() + text.size()) return std::nullopt;
  return value;
}

// Parses filters and paging; the error text is for a 4.00.
std::optional<std::string> parseLookup(std::string_view query, const RdLimits& limits, Lookup& lookup) {
  QueryParseResult parsed = parseRdQuery(query, limits.max_query_bytes, limits.max_query_params);
  if (!parsed.ok()) return parsed.error;
  std::optional<std::size_t> page;
  for (QueryParam& param : parsed.params) {
    if (param.name == "page" || param.name == "count") {
      std::optional<std::size_t>& slot = param.name == "page" ? page : lookup.count;
      if (slot) return fmt::format("duplicate {}", param.name);
      slot = param.value ? parseCount(*param.value) : std::nullopt;
      if (!slot) return fmt::format("{} must be a non-negative integer", param.name);
      continue;
    }
    Filter filter{std::move(param.name), std::move(param.value), false};
    if (filter.value && !filter.value->empty() && filter.value->back() == '*') {
      filter.value->pop_back();
      filter.prefix = true;
    }
    lookup.filters.push_back(std::move(filter));
  }
  if (page && !lookup.count) return std::string("page needs count");
  if (lookup.count && *lookup.count > limits.max_page_count) {
    return fmt::format("count is above this directory's maximum of {}", limits.max_page_count);
  }
  if (page && *lookup.count > 0) {
    if (*page > std::numeric_limits<std::size_t>::max() / *lookup.count) {
      lookup.skip = std::numeric_limits<std::size_t>::max();
    } else {
      lookup.skip = *page * *lookup.count;
    }
  }
  return std::nullopt;
}

// Collects results in order, honouring paging: `add(n)` is called for each match with its
// index; returns false (refusal) if there is no count and the results exceed the maximum.
class Pager {
 public:
  Pager(const Lookup& lookup, std::size_t max) : lookup_(lookup), max_(max) {}
  /// True if the match with the next index is to be included in the response.
  bool take() {
    const std::size_t index = seen_++;
    if (index < lookup_.skip) return false;
    const std::size_t position = index - lookup_.skip;
    if (lookup_.count) return position < *lookup_.count;
    if (position >= max_) overflow_ = true;
    return !overflow_;
  }
  /// No further match can be included: stop iterating.
  [[nodiscard]] bool done() const noexcept {
    if (overflow_) return true;
    return lookup_.count && seen_ >= lookup_.skip && seen_ - lookup_.skip >= *lookup_.count;
  }
  [[nodiscard]] bool overflow() const noexcept { return overflow_; }

 private:
  const Lookup& lookup_;
  std::size_t max_;
  std::size_t seen_ = 0;
  bool overflow_ = false;
};

RdReply tooMany(std::size_t max) {
  return badRequest(fmt::format("more than {} results: ask for them in pages with count= (at most {}) and page=",
                                max, max));
}

}  // namespace

RdReply ResourceDirectory::lookupResources(std::string_view query) const {
  Lookup lookup;
  if (auto error = parseLookup(query, limits_, lookup)) return badRequest(std::move(*error));
  Pager pager(lookup, limits_.max_page_count);
  std::vector<Link> results;
  for (const auto& [sequence, entry] : entries_) {
    const Registration& r = entry.registration;
    for (const Link& link : r.links) {
      const bool match = std::all_of(lookup.filters.begin(), lookup.filters.end(), [&](const Filter& f) {
        return linkMatches(r, link, f) || (f.name != "href" && endpointMatches(r, f));
      });
      if (!match) continue;
      if (pager.take()) results.push_back(resolvedLink(r, link));
      if (pager.done()) break;
    }
    if (pager.done()) break;
  }
  if (pager.overflow()) return tooMany(limits_.max_page_count);
  return reply(RdStatus::content, serializeLinkFormat(results));
}

RdReply ResourceDirectory::lookupEndpoints(std::string_view query) const {
  Lookup lookup;
  if (auto error = parseLookup(query, limits_, lookup)) return badRequest(std::move(*error));
  Pager pager(lookup, limits_.max_page_count);
  std::vector<Link> results;
  for (const auto& [sequence, entry] : entries_) {
    const Registration& r = entry.registration;
    const bool match = std::all_of(lookup.filters.begin(), lookup.filters.end(), [&](const Filter& f) {
      if (f.name == "href" && (!f.value || (!hasUriScheme(*f.value) &&
                                            valueMatches(f, rd_detail::registrationPath(r.id))))) {
        return true;
      }
      if (f.name != "href" && endpointMatches(r, f)) return true;
      return std::any_of(r.links.begin(), r.links.end(), [&](const Link& link) { return linkMatches(r, link, f); });
    });
    if (!match) continue;
    if (pager.take()) results.push_back(endpointLink(r));
    if (pager.done()) break;
  }
  if (pager.overflow()) return tooMany(limits_.max_page_count);
  return reply(RdStatus::content, serializeLinkFormat(results));
}

}  // namespace coap_edge::discovery
