#pragma once
// Resource Directory (RFC 9176) for nodes that register themselves (sleepy nodes): the
// registration interface (POST /rd, POST /.well-known/rd), registration resources
// (GET/POST/DELETE /rd/{ep}) and the lookup interface (GET /rd-lookup/ep, /rd-lookup/res).
// Pure logic: no I/O, no clock of its own (every call that needs time takes `now`), plain values
// in and out, so the CoAP server maps requests to calls and replies to responses.
//
// Choices this RD makes where RFC 9176 leaves them open, and where it differs:
//   - A registration resource is named after its endpoint: /rd/{ep}. The access policy's built-in
//     rule (policy/acl.h: identity X may use /rd/X) relies on it, and as ep == authenticated
//     identity, one device holds one registration. So an endpoint is keyed by ep alone:
//     registering ep again, in the same or another sector (d), replaces the registration in
//     place (same resource, same place in the order). For the same reason an ep is made of URI
//     path characters only (RFC 3986 unreserved, sub-delims, ':' and '@'; no '/', no '%', no
//     space, no non-ASCII): /rd/{ep} then needs no escaping anywhere, in Location-Path, in
//     libcoap's canonical request path and in links.
//   - lt: 1..2^32-1 as in RFC 9176; above RdLimits::max_lifetime is refused (4.00, the node must
//     learn that it would expire early); below min_lifetime is raised to it (limits churn).
//   - A registration update (POST /rd/{ep}) with a link-format payload replaces the links; an
//     empty payload keeps them. Endpoint attributes given in an update override all earlier
//     values of the same name (RFC 9176 §5.3.1: they cannot be removed).
//   - A lookup that matches more than max_page_count links (or endpoints) without `count` is
//     refused with 4.00 telling the client to page, rather than truncated silently.
//   - Registrations carry the identity that made them; only that identity may replace, update or
//     remove them (RFC 9176 §7.1). Registrations made without an identity (plain coap) have none.
//
// Not thread-safe; the event loop owns it.

#include "discovery/link_format.h"
#include "discovery/rd_query.h"

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace coap_edge::discovery {

using RdClock = std::chrono::steady_clock;

enum class RdStatus : std::uint8_t {
  created,              ///< 2.01
  deleted,              ///< 2.02
  changed,              ///< 2.04
  content,              ///< 2.05
  bad_request,          ///< 4.00, payload says why
  forbidden,            ///< 4.03, the registration belongs to another identity
  not_found,            ///< 4.04, no such registration
  payload_too_large,    ///< 4.13, payload over RdLimits::max_payload_bytes (send Size1)
  service_unavailable,  ///< 5.03, the directory is full
};

/// The CoAP code as class * 100 + detail (201, 404, ...), the form COAP_RESPONSE_CODE() takes.
[[nodiscard]] int rdCoapCode(RdStatus status) noexcept;

struct RdReply {
  RdStatus status = RdStatus::bad_request;
  /// For created/changed by a registration: "rd/{ep}", one Location-Path option per segment.
  std::string location;
  /// Link format (Content-Format 40) for content; a diagnostic text for 4.xx and 5.xx.
  std::string payload;
};

struct RdLimits {
  std::size_t max_registrations = 1024;
  std::size_t max_links_per_registration = 256;
  std::size_t max_payload_bytes = 8192;
  std::size_t max_endpoint_attributes = 16;           ///< extra attributes (et, ...) per registration
  std::size_t max_query_bytes = kDefaultMaxQueryBytes;
  std::size_t max_query_params = kDefaultMaxQueryParams;
  std::size_t max_name_bytes = 63;                    ///< ep, d (RFC 9176 §5.3), attribute names
  std::size_t max_value_bytes = 256;                  ///< base and extra attribute values
  std::chrono::seconds default_lifetime{90000};       ///< RFC 9176 §5.3
  std::chrono::seconds min_lifetime{60};
  std::chrono::seconds max_lifetime{7 * 24 * 3600};   ///< clamped to 2^32-1 s
  std::size_t max_page_count = 256;                   ///< results per lookup response
};

enum class RdEvent : std::uint8_t { added, updated, removed };

struct Registration {
  std::string id;      ///< the registration resource's last path segment (== ep)
  std::string ep;
  std::string sector;  ///< d; empty if none
  std::string base;    ///< links resolve against it
  bool base_explicit = false;  ///< base= was given (else: the requester's address, follows updates)
  std::chrono::seconds lifetime{0};
  RdClock::time_point expires{};
  std::vector<Link> links;                   ///< as registered (targets relative to base)
  std::vector<LinkAttribute> extra_attributes;  ///< endpoint attributes: et and unknown parameters
  std::string registrant;                    ///< identity that registered; "" for plain coap
};

class ResourceDirectory {
 public:
  using ChangeCallback = std::function<void(const Registration&, RdEvent)>;

  explicit ResourceDirectory(RdLimits limits = {});

  /// POST /rd?ep=..[&d=..][&lt=..][&base=..][&attr=..] with a link-format payload.
  /// `default_base` is the requester's address as a base URI ("coaps://[2001:db8::1]:5684"),
  /// used when base= is absent; `registrant` the authenticated identity ("" for none); the
  /// access check (may this identity register this ep?) is the caller's, before this call.
  /// 2.01 with location "rd/{ep}"; nothing changes unless the reply is 2.01.
  [[nodiscard]] RdReply registerEndpoint(std::string_view query, std::string_view payload,
                                         std::string_view default_base, std::string_view registrant,
                                         RdClock::time_point now);

  /// Simple registration (RFC 9176 §5.1), step 1: checks POST /.well-known/rd's query (no base=
  /// allowed, the base is the requester) before the caller fetches the requester's
  /// /.well-known/core. nullopt if acceptable, else the 4.00 reply to send.
  [[nodiscard]] std::optional<RdReply> checkSimpleRegistration(std::string_view query) const;
  /// Step 2: registers the fetched /.well-known/core document `links_payload` (base =
  /// `default_base`). 2.04 on success (the reply to the POST /.well-known/rd), else 4.xx/5.03.
  [[nodiscard]] RdReply registerSimple(std::string_view query, std::string_view links_payload,
                                       std::string_view default_base, std::string_view registrant,
                                       RdClock::time_point now);

  /// POST /rd/{id}?[lt=..][&base=..][&attr=..]: refreshes the lifetime, applies the parameters;
  /// a non-empty payload replaces the links. An implicit base follows `default_base`.
  /// 2.04; 4.04 unknown id; 4.03 if `requester` is not the registrant.
  [[nodiscard]] RdReply update(std::string_view id, std::string_view query, std::string_view payload,
                               std::string_view default_base, std::string_view requester,
                               RdClock::time_point now);
  /// DELETE /rd/{id}: 2.02; 4.04; 4.03 if `requester` is not the registrant.
  [[nodiscard]] RdReply remove(std::string_view id, std::string_view requester);
  /// GET /rd/{id}: 2.05 with the links as registered; 4.04.
  [[nodiscard]] RdReply read(std::string_view id) const;

  /// GET /rd-lookup/ep?filters[&page=..&count=..]: links to registration resources
  /// (</rd/ep>;base="..";ep="..";d="..";lt=N;attr="..").
  [[nodiscard]] RdReply lookupEndpoints(std::string_view query) const;
  /// GET /rd-lookup/res?filters[&page=..&count=..]: registered links with targets resolved
  /// against their registration's base and an absolute anchor (the base unless given).
  [[nodiscard]] RdReply lookupResources(std::string_view query) const;

  /// Removes and returns the registrations whose lifetime ended at or before `now`.
  std::vector<Registration> expire(RdClock::time_point now);
  /// When the next registration expires, for the caller's timer.
  [[nodiscard]] std::optional<RdClock::time_point> nextExpiry() const;

  [[nodiscard]] const Registration* find(std::string_view id) const;
  [[nodiscard]] std::size_t size() const noexcept { return by_id_.size(); }
  /// Approximate bytes held by the registrations (strings and per-object overhead), for /status.
  [[nodiscard]] std::size_t memoryBytes() const noexcept { return bytes_; }
  [[nodiscard]] const RdLimits& limits() const noexcept { return limits_; }
  /// Every registration, in registration order.
  [[nodiscard]] std::vector<const Registration*> registrations() const;

  /// Called after each change (the registry's feed); the callback must not call back into this
  /// directory's mutating functions. One callback; a new one replaces the old.
  void onChange(ChangeCallback callback) { on_change_ = std::move(callback); }

 private:
  struct Entry {
    Registration registration;
    std::size_t bytes = 0;  ///< memoryBytes() share
  };
  struct Params;  // validated registration/update parameters (resource_directory.cpp)

  RdReply registerWith(std::string_view query, std::string_view payload, std::string_view default_base,
                       std::string_view registrant, RdClock::time_point now, bool simple);
  void erase(std::map<std::uint64_t, Entry>::iterator it, const Registration& removed);
  void notify(const Registration& registration, RdEvent event) const;

  RdLimits limits_;
  std::map<std::uint64_t, Entry> entries_;  ///< by sequence number: registration order
  std::map<std::string, std::uint64_t, std::less<>> by_id_;
  std::set<std::pair<RdClock::time_point, std::uint64_t>> by_expiry_;
  std::uint64_t next_sequence_ = 1;
  std::size_t bytes_ = 0;
  ChangeCallback on_change_;
};

}  // namespace coap_edge::discovery
