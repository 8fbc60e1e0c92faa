// libFuzzer target for the Resource Directory (discovery/resource_directory.h). The input is a
// script: one operation per line: an operation letter, a selector character (its value picks the
// requester's base URI, one usable and others not, and identity, "" or one of two), then fields
// separated by TAB:
//   R<sel><query>\t<payload>   register     S<sel><query>\t<payload>   simple registration
//   U<sel><id>\t<query>\t<payload>   update   D<sel><id>   remove   G<sel><id>   read
//   E<sel><query>   endpoint lookup   L<sel><query>   resource lookup   T<sel><seconds>   expire
// Checked after every step: the table stays within its limits; a refused request changes
// nothing (the whole directory is compared before and after); created/changed replies name a
// registration that exists; every 2.05 payload parses back as link format, within the page size,
// with absolute targets and anchors from resource lookups; the expiry index agrees with the
// registrations; memoryBytes() is 0 exactly when the directory is empty.

#include "discovery/rd_uri.h"
#include "discovery/resource_directory.h"

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>
#include <vector>

namespace {

using coap_edge::discovery::Link;
using coap_edge::discovery::LinkFormatLimits;
using coap_edge::discovery::LinkFormatResult;
using coap_edge::discovery::RdClock;
using coap_edge::discovery::RdLimits;
using coap_edge::discovery::RdReply;
using coap_edge::discovery::RdStatus;
using coap_edge::discovery::Registration;
using coap_edge::discovery::ResourceDirectory;

void check(bool condition) {
  if (!condition) std::abort();
}

std::vector<std::string_view> split(std::string_view text, char separator, std::size_t max_parts) {
  std::vector<std::string_view> parts;
  while (parts.size() + 1 < max_parts) {
    const std::size_t end = text.find(separator);
    if (end == std::string_view::npos) break;
    parts.push_back(text.substr(0, end));
    text.remove_prefix(end + 1);
  }
  parts.push_back(text);
  return parts;
}

RdLimits fuzzLimits() {
  RdLimits limits;
  limits.max_registrations = 8;
  limits.max_links_per_registration = 16;
  limits.max_payload_bytes = 512;
  limits.max_endpoint_attributes = 4;
  limits.max_page_count = 8;
  limits.min_lifetime = std::chrono::seconds(60);
  limits.max_lifetime = std::chrono::seconds(100000);
  return limits;
}

// Everything observable about the directory, to compare before and after a refused request.
std::string snapshot(const ResourceDirectory& rd) {
  std::string s;
  for (const Registration* r : rd.registrations()) {
    s += r->id + '\0' + r->ep + '\0' + r->sector + '\0' + r->base + '\0' + (r->base_explicit ? "1" : "0") +
         std::to_string(r->lifetime.count()) + '\0' + std::to_string(r->expires.time_since_epoch().count()) + '\0' +
         r->registrant + '\0' + coap_edge::discovery::serializeLinkFormat(r->links) + '\0';
    for (const auto& a : r->extra_attributes) s += a.name + '=' + a.value.value_or("<none>") + ';';
    s += '\n';
  }
  s += std::to_string(rd.memoryBytes());
  return s;
}

std::vector<Link> parseBack(std::string_view payload) {
  LinkFormatLimits generous;
  generous.max_bytes = 1 << 22;
  generous.max_links = 1 << 16;
  generous.max_attributes_per_link = 64;
  generous.max_target_bytes = 4096;
  generous.max_value_bytes = 4096;
  LinkFormatResult parsed = coap_edge::discovery::parseLinkFormat(payload, generous);
  check(parsed.ok());
  return std::move(parsed.links);
}

bool succeeded(RdStatus status) {
  return status == RdStatus::created || status == RdStatus::changed || status == RdStatus::deleted ||
         status == RdStatus::content;
}

void checkInvariants(const ResourceDirectory& rd, const RdLimits& limits, RdClock::time_point now) {
  check(rd.size() <= limits.max_registrations);
  check((rd.memoryBytes() == 0) == (rd.size() == 0));
  const auto registrations = rd.registrations();
  check(registrations.size() == rd.size());
  std::optional<RdClock::time_point> earliest;
  for (const Registration* r : registrations) {
    check(rd.find(r->id) == r);
    check(r->id == r->ep && coap_edge::discovery::encodePathSegment(r->id) == r->id);
    check(r->links.size() <= limits.max_links_per_registration);
    check(r->extra_attributes.size() <= limits.max_endpoint_attributes);
    check(r->lifetime >= limits.min_lifetime && r->lifetime <= limits.max_lifetime);
    check(!coap_edge::discovery::baseUriError(r->base, limits.max_value_bytes));
    check(r->expires > now - limits.max_lifetime);
    if (!earliest || r->expires < *earliest) earliest = r->expires;
  }
  check(rd.nextExpiry() == earliest);
}

void checkLookup(const RdReply& reply, const RdLimits& limits, bool resources) {
  if (reply.status != RdStatus::content) {
    check(reply.status == RdStatus::bad_request && !reply.payload.empty());
    return;
  }
  const std::vector<Link> links = parseBack(reply.payload);
  check(links.size() <= limits.max_page_count);
  for (const Link& link : links) {
    if (resources) {
      check(coap_edge::discovery::hasUriScheme(link.target));
      const auto anchor = link.attribute("anchor");
      check(anchor.has_value() && coap_edge::discovery::hasUriScheme(*anchor));
    } else {
      check(link.target.rfind("/rd/", 0) == 0);
      check(link.attribute("ep").has_value() && link.attribute("base").has_value());
    }
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view input(reinterpret_cast<const char*>(data), size);
  const RdLimits limits = fuzzLimits();
  ResourceDirectory rd(limits);
  RdClock::time_point now{std::chrono::hours(24 * 365)};
  static constexpr std::string_view kBases[] = {"coap://[2001:db8::1]:5683", "coaps://192.0.2.7:5684", "", "bogus"};
  static constexpr std::string_view kIdentities[] = {"", "dev-1", "dev-2"};
  std::size_t steps = 0;
  for (const std::string_view line : split(input, '\n', 65)) {
    if (line.empty()) continue;
    if (++steps > 64) break;
    if (line.size() < 2) continue;
    const char op = line[0];
    const auto selector = static_cast<unsigned char>(line[1]);
    const std::vector<std::string_view> f = split(line.substr(2), '\t', 3);
    const std::string_view a = f.size() > 0 ? f[0] : std::string_view();
    const std::string_view b = f.size() > 1 ? f[1] : std::string_view();
    const std::string_view c = f.size() > 2 ? f[2] : std::string_view();
    const std::string_view base = kBases[selector % 4];
    const std::string_view identity = kIdentities[(selector / 4) % 3];
    const std::string before = snapshot(rd);
    RdReply reply;
    switch (op) {
      case 'R':
      case 'S': {
        if (op == 'S') {
          const auto refusal = rd.checkSimpleRegistration(a);
          if (refusal) check(refusal->status == RdStatus::bad_request);
          reply = rd.registerSimple(a, b, base, identity, now);
          if (refusal) check(reply.status == RdStatus::bad_request);
        } else {
          reply = rd.registerEndpoint(a, b, base, identity, now);
        }
        if (succeeded(reply.status)) {
          check(reply.status == (op == 'S' ? RdStatus::changed : RdStatus::created));
          check(reply.location.rfind("rd/", 0) == 0);
          const Registration* r = rd.find(std::string_view(reply.location).substr(3));
          check(r != nullptr && r->registrant == identity && r->expires == now + r->lifetime);
          check(coap_edge::discovery::registrationEndpointName(a) == r->ep);
        }
        break;
      }
      case 'U':
        reply = rd.update(a, b, c, base, identity, now);
        if (succeeded(reply.status)) {
          check(reply.status == RdStatus::changed);
          check(rd.find(a) != nullptr && rd.find(a)->expires == now + rd.find(a)->lifetime);
        }
        break;
      case 'D':
        reply = rd.remove(a, identity);
        if (succeeded(reply.status)) check(rd.find(a) == nullptr);
        break;
      case 'G':
        reply = rd.read(a);
        if (reply.status == RdStatus::content) check(parseBack(reply.payload).size() == rd.find(a)->links.size());
        break;
      case 'E':
        reply = rd.lookupEndpoints(a);
        checkLookup(reply, limits, false);
        break;
      case 'L':
        reply = rd.lookupResources(a);
        checkLookup(reply, limits, true);
        break;
      case 'T': {
        std::int64_t seconds = 0;
        for (const char digit : a.substr(0, 7)) seconds = seconds * 10 + (digit >= '0' && digit <= '9' ? digit - '0' : 0);
        now += std::chrono::seconds(seconds);
        const std::size_t count = rd.size();
        const auto expired = rd.expire(now);
        check(rd.size() + expired.size() == count);
        for (const Registration& r : expired) check(r.expires <= now && rd.find(r.id) == nullptr);
        if (const auto next = rd.nextExpiry()) check(*next > now);
        checkInvariants(rd, limits, now);
        continue;
      }
      default:
        continue;
    }
    if (!succeeded(reply.status) || op == 'G' || op == 'E' || op == 'L') check(snapshot(rd) == before);
    if (!succeeded(reply.status)) check(!reply.payload.empty());
    checkInvariants(rd, limits, now);
  }
  return 0;
}
