#include "relay/node_proxy.h"

#include "common/log.h"
#include "relay/proxy_target.h"

#include <algorithm>
#include <cctype>

namespace coap_edge::relay {
namespace {

constexpr std::string_view kLogTag = "relay";
// A node that left the registry keeps its observable resources (and their observers) this long,
// so that a node that reboots or sleeps picks up where it was.
constexpr std::chrono::minutes kGoneGrace{10};
// An observation that heard nothing for its Max-Age plus this is taken for dead and made again
// (RFC 7641 §3.3.1: the client re-registers when it doubts freshness).
constexpr std::chrono::seconds kObservationSlack{10};
// Re-registration backoff after failures: 2 s doubling to 5 min.
constexpr std::chrono::seconds kRetryMin{2};
constexpr std::chrono::seconds kRetryMax{300};
// Node resources offered for Observe, per node.
constexpr std::size_t kMaxObservedPerNode = 64;

coap::Response plain(coap::Code code, std::string text = {}) {
  coap::Response r;
  r.code = code;
  if (!text.empty()) {
    r.content_format = coap::content_format::text_plain;
    r.payload = std::move(text);
  }
  return r;
}

policy::Nanos nowNanos() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

std::string joinPath(const std::vector<std::string>& segments) {
  std::string out;
  for (std::size_t i = 0; i < segments.size(); ++i) {
    if (i > 0) out.push_back('/');
    out += segments[i];
  }
  return out;
}

bool safeHrefChar(char c) {
  return std::isalnum(static_cast<unsigned char>(c)) != 0 || std::string_view("-._~!$&'()*+,;=:@/").find(c) != std::string_view::npos;
}

// "/sensors/temp" -> "sensors/temp" when it can be a resource path of ours as it is: plain
// characters, no empty, "." or ".." segment, no query. Other links are relayed, not offered
// for Observe.
std::optional<std::string> observablePath(std::string_view href) {
  if (href.size() < 2 || href.front() != '/' || href.size() > 256) return std::nullopt;
  href.remove_prefix(1);
  if (!std::all_of(href.begin(), href.end(), safeHrefChar)) return std::nullopt;
  std::size_t start = 0;
  while (start <= href.size()) {
    const std::size_t end = std::min(href.find('/', start), href.size());
    const std::string_view seg = href.substr(start, end - start);
    if (seg.empty() || seg == "." || seg == "..") return std::nullopt;
    start = end + 1;
  }
  return std::string(href);
}

bool hasAttribute(const discovery::Link& link, std::string_view name) {
  return std::any_of(link.attributes.begin(), link.attributes.end(), [&](const auto& a) { return a.name == name; });
}

// Where to send a request for `node`: a plain coap address; else the DTLS session a node that
// registered itself over coaps still holds with us (asked back over it, as RD simple
// registration does: no handshake, and it reaches a node behind NAT); else a coaps session of
// ours with the node's [[relay.credentials]] entry.
struct Route {
  std::string host;
  std::uint16_t port = 0;
  const void* over_session = nullptr;
  std::shared_ptr<const coap::ClientPsk> psk;
  [[nodiscard]] bool secure() const { return over_session != nullptr || psk != nullptr; }
};

constexpr std::string_view kNoRoute =
    "the node speaks only coaps, holds no session with the gateway, and no [[relay.credentials]] entry names it";

std::shared_ptr<const coap::ClientPsk> credentialFor(const std::vector<NodeCredential>& credentials,
                                                    const std::string& node_id) {
  for (const auto& c : credentials) {
    for (const auto& pattern : c.nodes) {
      if (pattern.matches(node_id)) return c.psk;
    }
  }
  return nullptr;
}

std::optional<Route> routeTo(const coap::Server& server, const discovery::NodeRecord& node,
                             const std::vector<NodeCredential>& credentials) {
  for (const auto& a : node.addresses) {
    if (!a.secure) return Route{a.host, a.port, nullptr, nullptr};
  }
  for (const auto& a : node.addresses) {
    if (const void* s = server.peerSession(a.host, a.port)) return Route{a.host, a.port, s, nullptr};
  }
  if (auto psk = credentialFor(credentials, node.id)) {
    for (const auto& a : node.addresses) {
      if (a.secure) return Route{a.host, a.port, nullptr, std::move(psk)};
    }
  }
  return std::nullopt;
}

coap::Response mapFailure(const coap::ClientResult& result, ProxyStats& stats) {
  switch (result.outcome) {
    case coap::ClientOutcome::timeout:
      ++stats.timeouts;
      return plain(coap::Code::gateway_timeout, "the node did not answer: " + result.error);
    case coap::ClientOutcome::reset:
      ++stats.bad_gateway;
      return plain(coap::Code::bad_gateway, "the node refused the request (RST)");
    default:
      ++stats.bad_gateway;
      return plain(coap::Code::bad_gateway, "the node cannot be reached: " + result.error);
  }
}

// max_in_flight bounds the exchanges with nodes (admit() answers 5.03 beyond it); identical
// requests waiting for one exchange cost a deferred answer each, already bounded by sessions and
// per-identity limits, so a burst of them is coalesced rather than refused (a fixed 64 did:
// a cached resource expiring under load turned into 5.03s).
constexpr std::size_t kMaxWaitersPerExchange = 4096;

CoalescerLimits coalescerLimits(const ProxySettings& s) {
  return CoalescerLimits{s.max_in_flight + 1, kMaxWaitersPerExchange};
}

bool cacheable(coap::Method m) { return m == coap::Method::get || m == coap::Method::fetch; }

}  // namespace

NodeProxy::NodeProxy(coap::Server& server, discovery::NodeRegistry& registry, ProxySettings settings)
    : server_(server), registry_(registry), settings_(std::move(settings)) {
  coalescer_.setLimits(coalescerLimits(settings_));
  if (settings_.cache_max_bytes > 0) cache_.emplace(CacheLimits{settings_.cache_max_bytes, 4096, 64 * 1024});
  std::weak_ptr<bool> alive = alive_;
  registry_.subscribe([this, alive](discovery::NodeEvent event, const discovery::NodeRecord& node) {
    if (alive.expired()) return;
    onNodeEvent(event, node);
  });
  // Nodes the registry knew before we subscribed.
  for (const discovery::NodeRecord* node : registry_.nodes()) syncObserved(*node);
}

NodeProxy::~NodeProxy() {
  alive_.reset();
  for (auto& [path, o] : observed_) {
    if (o.observation) server_.cancelObservation(*o.observation);
  }
}

void NodeProxy::setSettings(const ProxySettings& settings) {
  if (settings.cache_max_bytes != settings_.cache_max_bytes) {
    // Resizing keeps nothing: a smaller cache starts empty rather than evicting at random.
    cache_.reset();
    if (settings.cache_max_bytes > 0) cache_.emplace(CacheLimits{settings.cache_max_bytes, 4096, 64 * 1024});
  }
  if (settings.observe != settings_.observe) {
    CE_LOG_WARN("[relay] observe changed: restart the agent to apply it");
  }
  const bool observe = settings_.observe;
  settings_ = settings;
  settings_.observe = observe;
  coalescer_.setLimits(coalescerLimits(settings_));
}

void NodeProxy::setValueSink(ValueSink sink) {
  sink_ = std::move(sink);
  tick();  // start observing what is known already
}

std::shared_ptr<const coap::ClientPsk> NodeProxy::credentialFor(const std::string& node_id) const {
  return relay::credentialFor(settings_.credentials, node_id);
}

ProxyStats NodeProxy::stats() const {
  ProxyStats s = stats_;
  s.in_flight = coalescer_.inFlight();
  const coap::ClientStats client = server_.clientStats();
  s.coaps_sessions = client.dtls_sessions;
  s.coaps_established = client.dtls_established;
  s.coaps_failures = client.dtls_failures;
  s.observed_resources = observed_.size();
  s.node_observations = 0;
  s.observers = 0;
  for (const auto& [path, o] : observed_) {
    if (o.observation) ++s.node_observations;
    s.observers += o.last_observers + o.waiting.size();
  }
  if (cache_) s.cache = cache_->stats();
  return s;
}

std::optional<NodeProxy::Split> NodeProxy::splitPath(std::string_view path) {
  // "nodes/{id}/{segments...}"
  constexpr std::string_view kPrefix = "nodes/";
  if (path.substr(0, kPrefix.size()) != kPrefix) return std::nullopt;
  path.remove_prefix(kPrefix.size());
  const std::size_t slash = path.find('/');
  if (slash == std::string_view::npos || slash == 0) return std::nullopt;
  auto segments = decodePathSegments(path.substr(slash + 1));
  // A '/' inside a segment cannot be written as Uri-Path text here; such a request is refused.
  if (!segments) return std::nullopt;
  return Split{std::string(path.substr(0, slash)), std::move(*segments)};
}

coap::Response NodeProxy::fromCache(const CachedResponse& cached, std::uint32_t max_age_left) {
  coap::Response r;
  r.code = cached.code;
  r.content_format = cached.content_format;
  r.payload = cached.payload;
  r.etag = cached.etag;
  r.max_age = max_age_left;
  return r;
}

void NodeProxy::handle(const coap::Request& request, coap::Responder respond) {
  ++stats_.requests;
  auto split = splitPath(request.path);
  if (!split) {
    respond(plain(coap::Code::bad_request, "not a node resource path"));
    return;
  }
  if (registry_.find(split->node_id) == nullptr) {
    ++stats_.unknown_node;
    respond(plain(coap::Code::not_found, "no node '" + split->node_id + "'"));
    return;
  }
  relay(request, std::move(respond), *split);
}

std::optional<coap::Response> NodeProxy::admit(const std::string& node_id) {
  if (coalescer_.inFlight() > settings_.max_in_flight) {
    ++stats_.busy;
    coap::Response r = plain(coap::Code::service_unavailable, "too many requests to nodes in progress");
    r.max_age = 1;
    return r;
  }
  if (!settings_.per_node) return std::nullopt;
  const auto decision = node_buckets_.check(node_id, policy::bucketParams(*settings_.per_node), nowNanos());
  if (decision.allowed) return std::nullopt;
  ++stats_.node_limited;
  coap::Response r = plain(coap::Code::service_unavailable, "the node is busy");
  r.max_age = policy::retryAfterSeconds(decision.wait);
  return r;
}

void NodeProxy::relay(const coap::Request& request, coap::Responder respond, const Split& split) {
  const discovery::NodeRecord* node = registry_.find(split.node_id);
  if (node == nullptr) {
    ++stats_.unknown_node;
    respond(plain(coap::Code::not_found, "no node '" + split.node_id + "'"));
    return;
  }
  const bool requester_secure = request.peer != nullptr && request.peer->kind != coap::AuthKind::none;
  const std::string path = joinPath(split.segments);
  std::string key;
  std::optional<std::string> revalidate;
  if (cacheable(request.method)) {
    const std::string_view body(reinterpret_cast<const char*>(request.payload.data()), request.payload.size());
    key = cacheKey(split.node_id, request.method, path, request.query, request.accept, request.content_format,
                   request.method == coap::Method::fetch ? body : std::string_view{});
    if (cache_) {
      const auto hit = cache_->lookup(key, requester_secure, Clock::now());
      if (hit.kind == Lookup::fresh && hit.response != nullptr) {
        ++stats_.cache_hits;
        coap::Response r = fromCache(*hit.response, hit.max_age_left);
        // The client already holds this representation (RFC 7252 §5.10.6.2).
        if (r.etag && std::find(request.etags.begin(), request.etags.end(), *r.etag) != request.etags.end()) {
          r.code = coap::Code::valid;
          r.payload.clear();
          r.content_format.reset();
        }
        respond(std::move(r));
        return;
      }
      if (hit.kind == Lookup::stale && hit.response != nullptr) revalidate = hit.response->etag;
    }
    // Identical requests in flight share the node's one answer.
    auto shared = std::make_shared<coap::Responder>(std::move(respond));
    const auto joined = coalescer_.join(key, [shared](const coap::Response& r) { (*shared)(r); });
    if (joined == Join::joined) {
      ++stats_.coalesced;
      return;
    }
    if (joined == Join::full) {
      ++stats_.busy;
      coap::Response r = plain(coap::Code::service_unavailable, "too many requests to nodes in progress");
      r.max_age = 1;
      (*shared)(std::move(r));
      return;
    }
    if (auto refused = admit(split.node_id)) {
      coalescer_.complete(key, *refused);
      return;
    }
    exchange(request, split, *node, key, requester_secure, revalidate);
    return;
  }
  if (auto refused = admit(split.node_id)) {
    respond(std::move(*refused));
    return;
  }
  // Unsafe methods: never coalesced or cached; each waits for its own answer.
  auto shared = std::make_shared<coap::Responder>(std::move(respond));
  // A key no cacheable request can have (cache keys are never empty-prefixed like this).
  const std::string unique = std::string(1, '\0') + std::to_string(++unsafe_seq_);
  (void)coalescer_.join(unique, [shared](const coap::Response& r) { (*shared)(r); });
  exchange(request, split, *node, unique, requester_secure, std::nullopt);
}

void NodeProxy::exchange(const coap::Request& request, const Split& split, const discovery::NodeRecord& node,
                         const std::string& key, bool /*requester_secure*/, std::optional<std::string> revalidate_etag) {
  const auto route = routeTo(server_, node, settings_.credentials);
  if (!route) {
    ++stats_.bad_gateway;
    coalescer_.complete(key, plain(coap::Code::bad_gateway, std::string(kNoRoute)));
    return;
  }
  ++stats_.forwarded;
  coap::OutgoingRequest out;
  out.host = route->host;
  out.port = route->port;
  out.over_session = route->over_session;
  out.psk = route->psk;
  out.method = request.method;
  out.path = joinPath(split.segments);
  out.query = request.query;
  out.content_format = request.content_format;
  out.accept = request.accept;
  out.payload.assign(request.payload.begin(), request.payload.end());
  out.timeout = settings_.timeout;
  out.confirmable = true;  // the gateway's leg is reliable whatever the client chose
  if (revalidate_etag) {
    out.etags.push_back(*revalidate_etag);
  } else if (!cacheable(request.method)) {
    out.etags = request.etags;  // If-Match style preconditions are the node's to judge
  }
  const coap::Method method = request.method;
  const std::string node_id = split.node_id;
  const std::string path = out.path;
  const bool has_cache_key = cacheable(method);
  std::weak_ptr<bool> alive = alive_;
  // An answer that came over DTLS (the node's session or ours) is never served from the cache to
  // a request that is not secure (RFC 7252 §11.2).
  const bool secure_exchange = route->secure();
  server_.request(out, [this, alive, key, node_id, path, has_cache_key, secure_exchange,
                        revalidating = revalidate_etag.has_value()](const coap::ClientResult& result) {
    if (alive.expired()) return;
    coap::Response answer;
    if (result.outcome != coap::ClientOutcome::response) {
      answer = mapFailure(result, stats_);
    } else {
      answer = result.response;
      const auto now = Clock::now();
      if (cache_ && has_cache_key) {
        if (revalidating && answer.code == coap::Code::valid && cache_->revalidated(key, answer.max_age, now)) {
          // The stored representation is current again: answer with it (2.05, not the 2.03 the
          // node sent us for our own validator).
          ++stats_.revalidated;
          const auto hit = cache_->lookup(key, true, now);
          if (hit.kind == Lookup::fresh && hit.response != nullptr) {
            answer = fromCache(*hit.response, hit.max_age_left);
          }
        } else {
          const auto code = static_cast<unsigned>(answer.code);
          if (code == 205 || code >= 400) {
            (void)cache_->store(key, CachedResponse{answer.code, answer.content_format, answer.payload, answer.etag},
                                answer.max_age, secure_exchange, now);
          }
        }
      } else if (cache_ && !has_cache_key) {
        const auto code = static_cast<unsigned>(answer.code);
        if (code == 201 || code == 202 || code == 204) cache_->invalidate(node_id, path);
      }
    }
    coalescer_.complete(key, answer);
  });
}

bool NodeProxy::mapForwardRequest(coap::Request& request) {
  const auto target = proxyTarget(request);
  // Only plain coap to a node's own address: the gateway is no open proxy.
  if (!target || target->scheme != "coap" || target->segments.empty() ||
      target->host.size() > discovery::kMaxHostLength) {
    return false;
  }
  const discovery::NodeRecord* node =
      registry_.findByAddress(discovery::NodeAddress{target->host, target->port.value_or(5683), false});
  if (node == nullptr) return false;
  ++stats_.forward_requests;
  std::string mapped = "nodes/" + node->id;
  for (const auto& s : target->segments) mapped += "/" + encodePathSegment(s);
  request.path = std::move(mapped);
  request.query = target->query;
  return true;
}

// ---- Observe ----

void NodeProxy::onNodeEvent(discovery::NodeEvent event, const discovery::NodeRecord& node) {
  if (cache_ && event != discovery::NodeEvent::changed) cache_->invalidateNode(node.id);
  if (event == discovery::NodeEvent::gone) {
    const auto now = Clock::now();
    for (auto& [path, o] : observed_) {
      if (o.node_id != node.id) continue;
      stopObservation(o);
      o.node_gone = now;
    }
    return;
  }
  syncObserved(node);
}

void NodeProxy::syncObserved(const discovery::NodeRecord& node) {
  if (!settings_.observe) return;
  std::vector<std::string> wanted;
  for (const auto& link : node.resources) {
    if (wanted.size() >= kMaxObservedPerNode) break;
    if (!hasAttribute(link, "obs")) continue;
    if (auto p = observablePath(link.target)) wanted.push_back("nodes/" + node.id + "/" + *p);
  }
  // Resources the node no longer lists as observable go (their observers get 4.04).
  for (auto it = observed_.begin(); it != observed_.end();) {
    if (it->second.node_id == node.id && std::find(wanted.begin(), wanted.end(), it->first) == wanted.end()) {
      stopObservation(it->second);
      for (auto& w : it->second.waiting) w(plain(coap::Code::not_found, "the node no longer offers this resource"));
      server_.removeResource(it->first);
      it = observed_.erase(it);
    } else {
      ++it;
    }
  }
  for (const std::string& path : wanted) {
    auto [it, added] = observed_.try_emplace(path);
    Observed& o = it->second;
    if (added) {
      o.node_id = node.id;
      o.node_path = path.substr(6 + node.id.size() + 1);
      if (!server_.hasResource(path)) {
        coap::ResourceSpec spec;
        spec.path = path;
        spec.methods = {coap::Method::get, coap::Method::post, coap::Method::put, coap::Method::del,
                        coap::Method::fetch, coap::Method::patch, coap::Method::ipatch};
        spec.observable = true;
        spec.attributes = {{"obs", ""}};
        std::weak_ptr<bool> alive = alive_;
        spec.async_handler = [this, alive, path](const coap::Request& r, coap::Responder respond) {
          if (alive.expired()) {
            respond(plain(coap::Code::service_unavailable));
            return;
          }
          handleObserved(r, std::move(respond), path);
        };
        try {
          server_.addResource(std::move(spec));
        } catch (const std::exception& e) {
          CE_LOG_WARN("cannot offer {} for Observe: {}", path, e.what());
          observed_.erase(it);
          continue;
        }
      }
    }
    if (o.node_gone) {
      // The node is back: observers that stayed get its notifications again.
      o.node_gone.reset();
      o.failures = 0;
      o.retry_at = Clock::time_point{};
      if (o.last_observers > 0 || !o.waiting.empty()) startObservation(path);
    }
  }
}

void NodeProxy::handleObserved(const coap::Request& request, coap::Responder respond, const std::string& key) {
  auto it = observed_.find(key);
  const bool register_observe = request.method == coap::Method::get && request.observe && *request.observe == 0;
  if (it == observed_.end() || !register_observe) {
    if (it != observed_.end() && it->second.node_gone && !registry_.find(it->second.node_id)) {
      respond(plain(coap::Code::service_unavailable, "the node is away"));
      return;
    }
    handle(request, std::move(respond));
    return;
  }
  Observed& o = it->second;
  if (request.notification) {
    // libcoap asking for the notification of one observer: the value we just got.
    ++o.answered;
    respond(o.latest ? *o.latest : plain(coap::Code::service_unavailable, "no value yet"));
    return;
  }
  ++stats_.requests;
  if (o.observation && o.latest) {
    respond(*o.latest);  // a new observer of an observation we already hold
    ++o.last_observers;
    return;
  }
  if (o.node_gone || registry_.find(o.node_id) == nullptr) {
    respond(plain(coap::Code::service_unavailable, "the node is away"));
    return;
  }
  o.waiting.push_back(std::move(respond));
  if (!o.registering && !o.observation) startObservation(key);
}

void NodeProxy::startObservation(const std::string& key) {
  auto it = observed_.find(key);
  if (it == observed_.end()) return;
  Observed& o = it->second;
  const discovery::NodeRecord* node = registry_.find(o.node_id);
  const auto route = node != nullptr ? routeTo(server_, *node, settings_.credentials) : std::nullopt;
  if (!route) {
    for (auto& w : o.waiting) {
      ++stats_.bad_gateway;
      w(plain(coap::Code::bad_gateway, std::string(kNoRoute)));
    }
    o.waiting.clear();
    o.retry_at = Clock::now() + kRetryMax;
    return;
  }
  coap::OutgoingRequest out;
  out.host = route->host;
  out.port = route->port;
  out.over_session = route->over_session;
  out.psk = route->psk;
  out.path = o.node_path;
  out.observe = true;
  out.timeout = settings_.timeout;
  o.registering = true;
  ++stats_.forwarded;
  std::weak_ptr<bool> alive = alive_;
  o.observation = server_.request(
      out,
      [this, alive, key](const coap::ClientResult& r) {
        if (!alive.expired()) onObservationAnswer(key, r);
      },
      [this, alive, key](const coap::ClientResult& r) {
        if (!alive.expired()) onNotification(key, r);
      });
}

void NodeProxy::onObservationAnswer(const std::string& key, const coap::ClientResult& result) {
  auto it = observed_.find(key);
  if (it == observed_.end()) return;
  Observed& o = it->second;
  o.registering = false;
  const auto now = Clock::now();
  coap::Response answer;
  const bool ok = result.outcome == coap::ClientOutcome::response && static_cast<unsigned>(result.response.code) / 100 == 2;
  if (result.outcome != coap::ClientOutcome::response) {
    answer = mapFailure(result, stats_);
  } else {
    answer = result.response;
  }
  if (ok) {
    o.latest = answer;
    o.last_notification = now;
    o.failures = 0;
    if (sink_) sink_(o.node_id, o.node_path, answer);
    if (o.round > 0) ++stats_.observations_restored;
    if (o.last_observers > 0 && o.round > 0) {
      // Observers that stayed while the observation was re-made get the value now.
      o.round_open = true;
      o.answered = 0;
      ++o.round;
      server_.notifyObservers(key);
    }
    ++o.round;
  } else {
    o.observation.reset();
    ++o.failures;
    const auto backoff = std::min<std::chrono::seconds>(kRetryMax, kRetryMin * (1 << std::min<std::uint32_t>(o.failures, 8)));
    o.retry_at = now + backoff;
  }
  auto waiting = std::move(o.waiting);
  o.waiting.clear();
  o.last_observers += ok ? waiting.size() : 0;
  for (auto& w : waiting) w(answer);
}

void NodeProxy::onNotification(const std::string& key, const coap::ClientResult& result) {
  auto it = observed_.find(key);
  if (it == observed_.end()) return;
  Observed& o = it->second;
  if (result.outcome != coap::ClientOutcome::response || static_cast<unsigned>(result.response.code) >= 400) {
    // The node ended the observation (error, RST, reboot): made again by tick() while someone
    // still observes.
    o.observation.reset();
    o.retry_at = Clock::now() + kRetryMin;
    return;
  }
  if (o.round_open && o.answered == 0 && !sink_) {
    // Nobody received the last notification: every observer has left. Stop observing the node.
    ++stats_.observations_cancelled;
    o.last_observers = 0;
    stopObservation(o);
    o.latest.reset();
    CE_LOG_DEBUG("no observer left for /{}: observation at the node cancelled", key);
    return;
  }
  if (o.round_open) o.last_observers = o.answered;
  o.latest = result.response;
  o.last_notification = Clock::now();
  ++stats_.notifications;
  if (sink_) sink_(o.node_id, o.node_path, result.response);
  o.round_open = true;
  o.answered = 0;
  ++o.round;
  server_.notifyObservers(key);
}

void NodeProxy::stopObservation(Observed& o) {
  if (o.observation) server_.cancelObservation(*o.observation);
  o.observation.reset();
  o.registering = false;
  o.round_open = false;
}

void NodeProxy::tick() {
  const auto now = Clock::now();
  std::vector<std::string> restart;
  std::vector<std::string> remove;
  for (auto& [path, o] : observed_) {
    if (o.node_gone) {
      if (now - *o.node_gone > kGoneGrace) remove.push_back(path);
      continue;
    }
    if (o.round_open) o.last_observers = std::max(o.last_observers, o.answered);
    const bool wanted = sink_ || o.last_observers > 0 || !o.waiting.empty();
    if (!wanted) continue;
    if (o.observation && !o.registering && o.latest) {
      const std::uint32_t max_age = o.latest->max_age.value_or(kDefaultMaxAge);
      if (now - o.last_notification > std::chrono::seconds(max_age) + kObservationSlack) {
        CE_LOG_INFO("no notification for /{} in {} s: observing the node again", path, max_age);
        stopObservation(o);
        restart.push_back(path);
      }
      continue;
    }
    if (!o.observation && !o.registering && now >= o.retry_at && registry_.find(o.node_id) != nullptr) {
      restart.push_back(path);
    }
  }
  for (const auto& path : restart) startObservation(path);
  for (const auto& path : remove) {
    auto it = observed_.find(path);
    if (it == observed_.end()) continue;
    for (auto& w : it->second.waiting) w(plain(coap::Code::not_found, "the node is gone"));
    server_.removeResource(path);
    observed_.erase(it);
  }
}

}  // namespace coap_edge::relay
