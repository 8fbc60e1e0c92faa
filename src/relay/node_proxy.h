#pragma once
// The reverse proxy in front of the nodes (DESIGN.md "relay/", issue #5): a request for
// /nodes/{id}/{path...} is relayed to node {id} as `{path...}`, over plain coap to an address the
// registry has for it; a Proxy-Uri / Proxy-Scheme request is relayed the same way when its host
// and port are one of a known node's addresses (5.05 otherwise: never an open proxy).
//
// On the way:
//   - GET and FETCH answers are cached (relay/response_cache.h, RFC 7252 §5.6): a fresh entry
//     answers without asking the node (Max-Age counts down), a stale one with an ETag is
//     revalidated (the node answers 2.03 and sends nothing else), a secure (coaps) entry is never
//     served to a request that is not secure (§11.2); identical requests in flight share one
//     exchange with the node (relay/coalescer.h).
//   - [limits] per_node protects each node: a request that neither the cache nor an in-flight
//     exchange can answer takes a token of the node's bucket; without one it gets 5.03 Service
//     Unavailable with Max-Age = seconds until the next token.
//   - Observe (RFC 7641): every resource a node lists with `obs` becomes an observable resource of
//     the gateway at /nodes/{id}/{path}. Its first observer makes the gateway observe the node
//     (one observation however many observers); every notification from the node is fanned out
//     by libcoap to all of them; when a notification finds no observer left, the observation at
//     the node is cancelled. A node that goes away keeps its observers for `kGoneGrace`; when it
//     comes back (same id) the observation is made again and notifications resume.
//
// Answers from the node pass through unchanged (code, Content-Format, Max-Age, ETag, payload;
// block-wise in both directions is libcoap's). What the gateway itself answers: 4.04 for a node
// it does not know, 5.04 Gateway Timeout when the node does not answer in [relay] timeout, 5.02
// Bad Gateway when it refuses (RST) or cannot be reached, or speaks only coaps (the gateway has
// no client credentials for nodes in this version), 5.03 when per_node or max_in_flight is
// exhausted (RFC 7252 §5.7.2).

#include "coap/server.h"
#include "discovery/node_registry.h"
#include "policy/acl.h"
#include "policy/rate_limit.h"
#include "relay/coalescer.h"
#include "relay/response_cache.h"

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace coap_edge::relay {

/// [[relay.credentials]]: what the gateway presents to the coaps nodes whose ids match.
struct NodeCredential {
  std::vector<policy::IdentityPattern> nodes;
  std::shared_ptr<const coap::ClientPsk> psk;
};

struct ProxySettings {
  std::chrono::milliseconds timeout{std::chrono::seconds(10)};  ///< one exchange with a node
  std::size_t cache_max_bytes = 1024 * 1024;                    ///< 0: no cache
  std::size_t max_in_flight = 256;                              ///< exchanges with nodes at once
  bool observe = true;                                          ///< relay Observe
  std::optional<policy::RateSpec> per_node;                     ///< absent: no per-node limit
  std::vector<NodeCredential> credentials;                      ///< first match applies
};

struct ProxyStats {
  std::uint64_t requests = 0;         ///< relayed requests received (reverse and forward)
  std::uint64_t forwarded = 0;        ///< exchanges started with nodes
  std::uint64_t cache_hits = 0;       ///< answered from the cache
  std::uint64_t revalidated = 0;      ///< stale entries a node confirmed with 2.03
  std::uint64_t coalesced = 0;        ///< joined an identical exchange in flight
  std::uint64_t unknown_node = 0;     ///< 4.04: no such node
  std::uint64_t timeouts = 0;         ///< 5.04
  std::uint64_t bad_gateway = 0;      ///< 5.02
  std::uint64_t node_limited = 0;     ///< 5.03: per_node bucket empty
  std::uint64_t busy = 0;             ///< 5.03: max_in_flight reached
  std::uint64_t forward_requests = 0; ///< Proxy-Uri/Proxy-Scheme requests mapped to a node
  std::size_t in_flight = 0;
  std::size_t observed_resources = 0;   ///< node resources offered for Observe
  std::size_t node_observations = 0;    ///< observations the gateway holds at nodes
  std::size_t observers = 0;            ///< downstream observers at the last notifications
  std::uint64_t notifications = 0;      ///< notifications from nodes fanned out
  std::uint64_t observations_cancelled = 0;  ///< because no observer was left
  /// The gateway's own coaps sessions to nodes ([[relay.credentials]]): open now, handshakes
  /// completed, and handshakes failed or sessions broken.
  std::size_t coaps_sessions = 0;
  std::uint64_t coaps_established = 0;
  std::uint64_t coaps_failures = 0;
  std::uint64_t observations_restored = 0;   ///< made again after the node or the observation came back
  ResponseCache::Stats cache;
};

class NodeProxy {
 public:
  using Clock = std::chrono::steady_clock;
  /// Follows `registry` (subscribes to its events) and answers on `server`.
  NodeProxy(coap::Server& server, discovery::NodeRegistry& registry, ProxySettings settings);
  ~NodeProxy();
  NodeProxy(const NodeProxy&) = delete;
  NodeProxy& operator=(const NodeProxy&) = delete;

  /// A request for nodes/{id}/{path...} (Request::path), already allowed by the ACL.
  void handle(const coap::Request& request, coap::Responder respond);
  /// The server's ProxyMapper: rewrites a Proxy-Uri / Proxy-Scheme request for a known node's
  /// address to nodes/{id}/{path}; false for anything else (5.05).
  bool mapForwardRequest(coap::Request& request);
  /// Periodic upkeep (every second or so): observations to restore, grace periods that ended.
  void tick();
  /// Where every value a node reports goes (the telemetry queue). Setting one pins every
  /// observable node resource: the gateway observes it while its node is known, whether or not
  /// anyone downstream observes it too.
  using ValueSink = std::function<void(const std::string& node_id, const std::string& path, const coap::Response& value)>;
  void setValueSink(ValueSink sink);
  /// New limits and cache size (SIGHUP); cached entries and buckets are kept where they fit.
  void setSettings(const ProxySettings& settings);
  /// The [[relay.credentials]] entry for `node_id`'s coaps address, or null.
  [[nodiscard]] std::shared_ptr<const coap::ClientPsk> credentialFor(const std::string& node_id) const;

  [[nodiscard]] ProxyStats stats() const;

 private:
  /// One node resource the gateway offers for Observe (/nodes/{id}/{path}).
  struct Observed {
    std::string node_id;
    std::string node_path;                ///< "sensors/temp"
    std::optional<coap::RequestId> observation;  ///< ours at the node
    bool registering = false;             ///< the observation request is in flight
    std::optional<coap::Response> latest; ///< the node's last notification
    std::vector<coap::Responder> waiting; ///< first observers waiting for the node's answer
    std::uint64_t round = 0;              ///< notifications sent downstream
    bool round_open = false;              ///< a fan-out is under way; `answered` counts its observers
    std::size_t answered = 0;
    std::size_t last_observers = 0;
    Clock::time_point last_notification{};
    std::optional<Clock::time_point> node_gone;  ///< the node left the registry then
    std::uint32_t failures = 0;           ///< consecutive failed registrations (backoff)
    Clock::time_point retry_at{};
  };
  struct Target {
    std::string node_id;
    std::string host;
    std::uint16_t port = 0;
    std::string path;  ///< decoded segments joined by '/'
    bool secure_node = false;
  };
  struct Split {
    std::string node_id;
    std::vector<std::string> segments;  ///< decoded
  };

  void onNodeEvent(discovery::NodeEvent event, const discovery::NodeRecord& node);
  void syncObserved(const discovery::NodeRecord& node);
  void handleObserved(const coap::Request& request, coap::Responder respond, const std::string& key);
  void startObservation(const std::string& key);
  void onObservationAnswer(const std::string& key, const coap::ClientResult& result);
  void onNotification(const std::string& key, const coap::ClientResult& result);
  void stopObservation(Observed& o);
  /// Relays one request (cache, coalescing, limits, the exchange).
  void relay(const coap::Request& request, coap::Responder respond, const Split& split);
  [[nodiscard]] std::optional<coap::Response> admit(const std::string& node_id);
  void exchange(const coap::Request& request, const Split& split, const discovery::NodeRecord& node,
                const std::string& cache_key, bool requester_secure, std::optional<std::string> revalidate_etag);
  [[nodiscard]] static std::optional<Split> splitPath(std::string_view path);
  [[nodiscard]] static coap::Response fromCache(const CachedResponse& cached, std::uint32_t max_age_left);

  coap::Server& server_;
  discovery::NodeRegistry& registry_;
  ProxySettings settings_;
  std::optional<ResponseCache> cache_;
  Coalescer<coap::Response> coalescer_;
  policy::RateLimiter node_buckets_{4096};
  std::map<std::string, Observed, std::less<>> observed_;  ///< by server path "nodes/{id}/{path}"
  ProxyStats stats_;
  std::uint64_t unsafe_seq_ = 0;
  ValueSink sink_;  ///< set: every observable resource is observed (telemetry)
  std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);  ///< callbacks outliving us see false
};

}  // namespace coap_edge::relay
