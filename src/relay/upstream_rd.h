#pragma once
// What the gateway registers at the upstream Resource Directory (RFC 9176), and when. Pure: the
// nodes come in as discovery::NodeRecord, the clock as `now`; the caller sends the requests.
//
// Where the links point. The upstream reaches the nodes only through the gateway's own DTLS
// session (the gateway is the client, role reversal, possibly behind NAT): there is no address
// it could dial, so no `base` is sent. RFC 9176 §5.3: without base, the RD takes the source
// address of the registration as the endpoint's base — that is the gateway's session, the
// one way in. Every href is therefore anchored under the gateway's reverse proxy,
// "</nodes/{id}/{path}>", so it resolves through the gateway in both modes:
//   - per-node: one endpoint per node, ep = node id, its own links only;
//   - gateway:  one endpoint, ep = the gateway's [agent] name, every node's links.
// A node's link targets are taken as the node wrote them: "/temp" and "temp" (relative to the
// node's origin, RFC 6690 §2.1) both become "/nodes/{id}/temp"; a target with a scheme
// ("coap://other/x") points somewhere the gateway does not proxy and is left out (counted). The
// `anchor` attribute is dropped: it names a context on the node that the RD would resolve
// against the gateway. Every other attribute (rt, if, ct, obs, sz, ...) is kept as written.
// A payload is kept within max_payload_bytes by leaving out the links past it (counted).

#include "discovery/link_format.h"
#include "discovery/node_registry.h"

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <map>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace coap_edge::relay {

/// How nodes appear at the upstream RD (config [upstream] registration).
enum class RdMode : std::uint8_t { per_node, gateway };

struct RdPlanOptions {
  RdMode mode = RdMode::per_node;
  std::string gateway_name;                      ///< [agent] name: the ep in gateway mode
  std::chrono::seconds lifetime{3600};           ///< lt, whole seconds
  /// Only when the upstream can reach the gateway at an address of its own (a VPN): sent as
  /// `base`. Absent (the default, see above): the RD uses the registration's source address.
  std::optional<std::string> base;
  std::size_t max_payload_bytes = 64 * 1024;     ///< links past it are left out
};

/// One RD endpoint: POST /{rd_path}?{query} with `payload` (application/link-format, cf 40).
struct RdRegistration {
  std::string ep;
  std::string query;    ///< "ep=lamp-1&lt=3600" (+ "&base=..." when given), percent-encoded
  /// For an update (POST to the location): "lt=3600" (+ base); ep cannot change (§5.3.1).
  std::string update_query;
  std::string payload;  ///< link format
  std::size_t links = 0;    ///< links in payload
  std::size_t skipped = 0;  ///< links left out (absolute targets, over max_payload_bytes)
};

/// Percent-encodes a query parameter value: everything but RFC 3986 unreserved characters.
[[nodiscard]] std::string rdQueryEscape(std::string_view value);

/// "/nodes/{id}/{path}" for a node's link target, nullopt for a target with a scheme.
[[nodiscard]] std::optional<std::string> gatewayTarget(std::string_view node_id, std::string_view target);

/// The registrations for `nodes` (ordered as given; NodeRegistry::nodes() orders by id): one
/// per node in per-node mode, exactly one in gateway mode (also with no nodes).
[[nodiscard]] std::vector<RdRegistration> planRdRegistrations(std::span<const discovery::NodeRecord* const> nodes,
                                                              const RdPlanOptions& options);

/// When to refresh a registration of lifetime `lt`: at 3/4 of it or 60 s before it ends,
/// whichever is earlier and still after 0 (so lt = 60 s refreshes at 45 s).
[[nodiscard]] std::chrono::seconds rdRefreshAfter(std::chrono::seconds lifetime);

/// What is registered upstream, per ep, and what to do next. Holds no I/O: the caller sends
/// what action() says and reports the outcome with registered() / refreshed() / lost() /
/// removed().
class RdRegistrationState {
 public:
  using Clock = std::chrono::steady_clock;

  enum class Action : std::uint8_t {
    none,      ///< registered, unchanged, not due
    create,    ///< POST /{rd_path}?query with the payload (RFC 9176 §5.3)
    update,    ///< content changed: POST {location}?update_query with the new payload (§5.3.1)
    refresh,   ///< due: POST {location} with no payload, which renews lt (§5.3.1)
  };

  struct Entry {
    std::string location;          ///< Location-Path the RD returned, e.g. "/rd/4521"
    Clock::time_point registered;  ///< when the RD last confirmed it (create, update or refresh)
    Clock::time_point refresh_at;  ///< registered + rdRefreshAfter(lifetime)
    std::chrono::seconds lifetime{0};
    std::uint64_t content_hash = 0;  ///< of query and payload, to see that they changed
  };

  /// What `planned` needs at `now`.
  [[nodiscard]] Action action(const RdRegistration& planned, Clock::time_point now) const;
  /// The RD answered 2.01 Created (or 2.04 to an update) for `planned`, at `location`.
  void registered(const RdRegistration& planned, std::string location, std::chrono::seconds lifetime,
                  Clock::time_point now);
  /// The RD answered 2.04 Changed to a refresh of `ep`.
  void refreshed(std::string_view ep, Clock::time_point now);
  /// The RD no longer knows `ep` (4.04 to a refresh or update) or removed it: create it again.
  void lost(std::string_view ep);
  /// `ep` was deleted at the RD on purpose (DELETE {location}).
  void removed(std::string_view ep) { lost(ep); }
  /// Endpoints registered but no longer in `plan` (a node gone): DELETE their location.
  [[nodiscard]] std::vector<std::string> stale(std::span<const RdRegistration> plan) const;
  /// The earliest refresh_at, for a timer; nullopt when nothing is registered.
  [[nodiscard]] std::optional<Clock::time_point> nextRefresh() const;
  [[nodiscard]] const Entry* find(std::string_view ep) const;
  [[nodiscard]] std::size_t size() const noexcept { return entries_.size(); }

  /// FNV-1a 64 of query and payload (not cryptographic: it detects edits, not attackers).
  [[nodiscard]] static std::uint64_t contentHash(const RdRegistration& registration);

 private:
  std::map<std::string, Entry, std::less<>> entries_;
};

}  // namespace coap_edge::relay
