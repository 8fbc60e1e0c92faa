#include "daemon/discovery_service.h"

#include "common/log.h"
#include "daemon/avahi_poll.h"
#include "discovery/dns_sd.h"
#include "discovery/rd_query.h"
#include "discovery/rd_uri.h"
#include "policy/acl.h"

#include <fmt/format.h>

#include <algorithm>

namespace coap_edge::daemon {
namespace {

constexpr std::string_view kLogTag = "discovery";
// Registry and RD lifetimes are checked this often; a node or registration outlives its TTL by
// at most this much.
constexpr std::chrono::milliseconds kExpirySweep{1000};
// A DNS-SD sighting lives until Avahi withdraws it; this only bounds a sighting whose removal
// was missed.
constexpr std::chrono::hours kDnsSdTtl{24};

coap::Response textResponse(coap::Code code, std::string text) {
  coap::Response r;
  r.code = code;
  if (!text.empty()) r.content_format = coap::content_format::text_plain;
  r.payload = std::move(text);
  return r;
}

coap::Response fromRd(const discovery::RdReply& reply) {
  coap::Response r;
  r.code = static_cast<coap::Code>(discovery::rdCoapCode(reply.status));
  r.payload = reply.payload;
  if (reply.status == discovery::RdStatus::content) {
    r.content_format = coap::content_format::link_format;
  } else if (!r.payload.empty()) {
    r.content_format = coap::content_format::text_plain;
  }
  r.location_path = reply.location;  // "rd/{ep}", already in path form
  return r;
}

// The requester as a base URI: how the RD reaches a node that gave no base=.
std::string requesterBase(const coap::Request& request) {
  const bool secure = request.peer->kind != coap::AuthKind::none;
  return std::string(secure ? "coaps://" : "coap://") + request.peer->address;
}

std::string payloadText(const coap::Request& request) {
  return std::string(request.payload.begin(), request.payload.end());
}

// host, port and scheme of a registration's base ("coaps://[fe80::1%25eth0]:5684/x").
std::optional<discovery::NodeAddress> addressOfBase(std::string_view base) {
  const auto parts = discovery::splitUriReference(base);
  if (!parts.scheme || !parts.authority) return std::nullopt;
  discovery::NodeAddress a;
  a.secure = *parts.scheme == "coaps";
  a.port = a.secure ? 5684 : 5683;
  std::string_view auth = *parts.authority;
  std::string_view port_text;
  if (!auth.empty() && auth.front() == '[') {
    const auto close = auth.find(']');
    if (close == std::string_view::npos) return std::nullopt;
    a.host = std::string(auth.substr(1, close - 1));
    if (close + 1 < auth.size() && auth[close + 1] == ':') port_text = auth.substr(close + 2);
    // RFC 6874 zone: "%25eth0" in a URI is "%eth0" in an address.
    if (const auto zone = a.host.find("%25"); zone != std::string::npos) a.host.erase(zone + 1, 2);
  } else {
    const auto colon = auth.rfind(':');
    a.host = std::string(auth.substr(0, colon));
    if (colon != std::string_view::npos) port_text = auth.substr(colon + 1);
  }
  if (!port_text.empty()) {
    unsigned port = 0;
    for (char c : port_text) {
      if (c < '0' || c > '9' || port > 65535) return std::nullopt;
      port = port * 10 + static_cast<unsigned>(c - '0');
    }
    if (port == 0 || port > 65535) return std::nullopt;
    a.port = static_cast<std::uint16_t>(port);
  }
  if (a.host.empty()) return std::nullopt;
  return a;
}

discovery::RdLimits rdLimits() {
  discovery::RdLimits limits;
  // Sleepy nodes on short duty cycles register for tens of seconds; below 10 s the refresh
  // traffic costs more than the registration is worth.
  limits.min_lifetime = std::chrono::seconds(10);
  return limits;
}

bool listensBeyondLoopback(const config::Config& config) {
  return std::any_of(config.downstream.listen.begin(), config.downstream.listen.end(), [](const auto& l) {
    return l.value.host != "127.0.0.1" && l.value.host != "::1";
  });
}

}  // namespace

DiscoveryService::DiscoveryService(EventLoop& loop, coap::Server& server, const config::Config& config)
    : loop_(loop),
      server_(server),
      registry_(discovery::RegistryLimits{config.discovery.max_nodes, 16, 256, 32 * 1024}),
      rd_(rdLimits()),
      node_ttl_(std::chrono::ceil<std::chrono::seconds>(config.discovery.nodeTtl())) {
  registry_.subscribe([](discovery::NodeEvent event, const discovery::NodeRecord& node) {
    const char* what = event == discovery::NodeEvent::appeared ? "appeared" : event == discovery::NodeEvent::gone ? "gone" : "changed";
    std::string sources;
    for (auto s : discovery::kAllSources) {
      if (node.has(s)) sources += std::string(sources.empty() ? "" : " ") + std::string(discovery::sourceName(s));
    }
    CE_LOG_INFO("node {} {} ({}, {} resources, via {})", log::printable(node.id), what,
                node.addresses.empty() ? std::string("?") : discovery::nodeUri(node.addresses.front()),
                node.resources.size(), sources);
  });
  addResources(config.discovery.resource_directory);
  if (config.discovery.multicast && !config.discovery.interfaces.empty()) startMulticast(config.discovery);
  if (config.discovery.dns_sd && !config.discovery.interfaces.empty()) startDnsSd(config);
  timers_.push_back(loop_.addTimer(kExpirySweep, [this] { expire(); }));
}

DiscoveryService::~DiscoveryService() {
  for (int t : timers_) loop_.cancelTimer(t);
  if (unnamed_timer_ >= 0) loop_.cancelTimer(unnamed_timer_);
  if (prober_) {
    for (int fd : prober_->fds()) loop_.unwatch(fd);
  }
  dns_sd_.reset();  // before the poll adapter it runs on
  avahi_poll_.reset();
}

void DiscoveryService::addResources(bool resource_directory) {
  server_.addResource({"nodes",
                       {{"rt", "\"core.nodes\""}, {"ct", "40"}, {"title", "\"Known nodes\""}},
                       {coap::Method::get},
                       [this](const coap::Request& req) { return nodesList(req); },
                       false, {}});
  coap::ResourceSpec nodes{"nodes", {}, {coap::Method::get, coap::Method::post, coap::Method::put, coap::Method::del,
                                          coap::Method::fetch, coap::Method::patch, coap::Method::ipatch},
                           {}, false, {}};
  // /nodes/{id} is ours (the node's resources); anything deeper is the relay's.
  nodes.async_handler = [this](const coap::Request& req, coap::Responder respond) {
    const std::string_view rest = std::string_view(req.path).substr(6);  // after "nodes/"
    if (rest.find('/') != std::string_view::npos && relay_) {
      relay_(req, std::move(respond));
      return;
    }
    respond(nodeResources(req));
  };
  server_.addPrefixRoute(std::move(nodes));
  if (!resource_directory) return;
  rd_.onChange([this](const discovery::Registration& r, discovery::RdEvent e) { onRegistration(r, e); });
  server_.addResource({"rd",
                       {{"rt", "\"core.rd\""}, {"ct", "40"}},
                       {coap::Method::post},
                       [this](const coap::Request& req) { return rdRegister(req); },
                       false, {}});
  server_.addResource({".well-known/rd",
                       {},
                       {coap::Method::post},
                       [this](const coap::Request& req) { return rdSimpleRegister(req); },
                       false, {}});
  server_.addPrefixRoute({"rd", {}, {coap::Method::get, coap::Method::post, coap::Method::del},
                          [this](const coap::Request& req) { return rdResource(req); }, false, {}});
  server_.addResource({"rd-lookup/ep",
                       {{"rt", "\"core.rd-lookup-ep\""}, {"ct", "40"}},
                       {coap::Method::get},
                       [this](const coap::Request& req) { return fromRd(rd_.lookupEndpoints(req.query)); },
                       false, {}});
  server_.addResource({"rd-lookup/res",
                       {{"rt", "\"core.rd-lookup-res\""}, {"ct", "40"}},
                       {coap::Method::get},
                       [this](const coap::Request& req) { return fromRd(rd_.lookupResources(req.query)); },
                       false, {}});
}

coap::Response DiscoveryService::nodesList(const coap::Request& request) const {
  coap::Response r;
  r.content_format = coap::content_format::link_format;
  r.payload = registry_.linkFormat(request.query);
  return r;
}

coap::Response DiscoveryService::nodeResources(const coap::Request& request) const {
  const std::string_view rest = std::string_view(request.path).substr(6);  // after "nodes/"
  const std::size_t slash = rest.find('/');
  const auto id = discovery::percentDecode(rest.substr(0, slash));
  const discovery::NodeRecord* node = id ? registry_.find(*id) : nullptr;
  if (node == nullptr) return textResponse(coap::Code::not_found, "no such node");
  if (slash != std::string_view::npos) {
    // Relaying is the relay's job (setRelay); an agent without one does not relay.
    return textResponse(coap::Code::not_implemented, "relaying requests to nodes is not enabled");
  }
  if (request.method != coap::Method::get) return textResponse(coap::Code::method_not_allowed, {});
  std::vector<discovery::Link> links;
  links.reserve(node->resources.size());
  const std::string prefix = "/nodes/" + discovery::encodePathSegment(node->id);
  for (const auto& link : node->resources) {
    discovery::Link l = link;
    // Relative targets ("/sensors/temp", "sensors/temp") become paths under the node.
    if (!discovery::hasUriScheme(l.target)) {
      l.target = prefix + (l.target.empty() || l.target.front() != '/' ? "/" : "") + l.target;
    }
    links.push_back(std::move(l));
  }
  coap::Response r;
  r.content_format = coap::content_format::link_format;
  r.payload = discovery::serializeLinkFormat(links);
  return r;
}

coap::Response DiscoveryService::rdRegister(const coap::Request& request) {
  if (request.content_format && *request.content_format != coap::content_format::link_format) {
    ++rd_refused_;
    return textResponse(coap::Code::unsupported_content_format, "registration payload must be link format (ct=40)");
  }
  const std::string& identity = request.peer->identity;
  // The ACL let this identity POST /rd; which endpoint it may register is the RD's question.
  if (const auto ep = discovery::registrationEndpointName(request.query);
      ep && !policy::Policy::allowsRdEndpoint(identity, *ep)) {
    ++rd_refused_;
    CE_LOG_NOTICE("RD: '{}' from {} may not register endpoint '{}'", log::printable(identity), request.peer->address,
                  log::printable(*ep));
    return textResponse(coap::Code::forbidden,
                        identity.empty() ? "registration needs an authenticated identity"
                                         : fmt::format("identity may register only endpoint ep={}", identity));
  }
  const auto reply = rd_.registerEndpoint(request.query, payloadText(request), requesterBase(request), identity,
                                          discovery::RdClock::now());
  if (reply.status != discovery::RdStatus::created && reply.status != discovery::RdStatus::changed) ++rd_refused_;
  return fromRd(reply);
}

coap::Response DiscoveryService::rdSimpleRegister(const coap::Request& request) {
  if (auto refused = rd_.checkSimpleRegistration(request.query)) {
    ++rd_refused_;
    return fromRd(*refused);
  }
  if (!request.payload.empty()) {
    ++rd_refused_;
    return textResponse(coap::Code::bad_request, "simple registration has no payload: the RD fetches /.well-known/core");
  }
  const std::string identity = request.peer->identity;
  const auto ep = discovery::registrationEndpointName(request.query);
  if (ep && !policy::Policy::allowsRdEndpoint(identity, *ep)) {
    ++rd_refused_;
    return textResponse(coap::Code::forbidden, fmt::format("identity may register only endpoint ep={}", identity));
  }
  coap::OutgoingRequest fetch;
  fetch.over_session = request.session;
  fetch.path = ".well-known/core";
  server_.request(fetch, [this, query = request.query, base = requesterBase(request), identity](
                             const coap::ClientResult& result) {
    if (result.outcome != coap::ClientOutcome::response || result.response.code != coap::Code::content) {
      ++rd_refused_;
      CE_LOG_NOTICE("RD: simple registration of '{}': cannot fetch its /.well-known/core ({})",
                    log::printable(identity),
                    result.outcome == coap::ClientOutcome::response
                        ? std::to_string(static_cast<int>(result.response.code))
                        : result.error);
      return;
    }
    const auto reply = rd_.registerSimple(query, result.response.payload, base, identity, discovery::RdClock::now());
    if (reply.status != discovery::RdStatus::changed && reply.status != discovery::RdStatus::created) {
      ++rd_refused_;
      CE_LOG_NOTICE("RD: simple registration of '{}' refused: {}", log::printable(identity),
                    log::printable(reply.payload));
    }
  });
  return textResponse(coap::Code::changed, {});
}

coap::Response DiscoveryService::rdResource(const coap::Request& request) {
  const std::string_view rest = std::string_view(request.path).substr(3);  // after "rd/"
  const auto id = discovery::percentDecode(rest);
  if (!id || rest.find('/') != std::string_view::npos) return textResponse(coap::Code::not_found, {});
  const std::string& identity = request.peer->identity;
  switch (request.method) {
    case coap::Method::get:
      return fromRd(rd_.read(*id));
    case coap::Method::post:
      return fromRd(rd_.update(*id, request.query, payloadText(request), requesterBase(request), identity,
                               discovery::RdClock::now()));
    case coap::Method::del:
      return fromRd(rd_.remove(*id, identity));
    default:
      return textResponse(coap::Code::method_not_allowed, {});
  }
}

void DiscoveryService::onRegistration(const discovery::Registration& registration, discovery::RdEvent event) {
  const auto now = discovery::Clock::now();
  if (event == discovery::RdEvent::removed) {
    registry_.withdraw(discovery::Source::rd, registration.ep, "", now);
    return;
  }
  const auto address = addressOfBase(registration.base);
  if (!address) {
    CE_LOG_WARN("RD: endpoint '{}' has a base the registry cannot use: {}", log::printable(registration.ep),
                log::printable(registration.base));
    return;
  }
  discovery::Sighting s;
  s.source = discovery::Source::rd;
  s.address = *address;
  s.name = registration.ep;
  s.resources = registration.links;
  s.resources_known = true;
  s.ttl = registration.lifetime;
  // The registry keys RD sightings by ep: a new base replaces the old address in place.
  registry_.observe(s, now);
}

void DiscoveryService::startMulticast(const config::DiscoverySection& d) {
  discovery::ProbeSettings settings;
  for (const auto& i : d.interfaces) settings.interfaces.push_back(i.value);
  settings.rt = d.rt;
  settings.leisure = d.leisure;
  prober_ = std::make_unique<discovery::MulticastProber>(std::move(settings));
  for (int fd : prober_->fds()) {
    loop_.watch(fd, [this, fd] {
      prober_->onReadable(fd, [this](const discovery::ProbeAnswer& a) { onProbeAnswer(a); });
    });
  }
  prober_->probe();
  timers_.push_back(loop_.addTimer(d.interval, [this] { prober_->probe(); }));
  CE_LOG_INFO("multicast discovery on {} interfaces every {} s", d.interfaces.size(),
              std::chrono::duration_cast<std::chrono::seconds>(d.interval).count());
}

void DiscoveryService::onProbeAnswer(const discovery::ProbeAnswer& answer) {
  // One host answers from its IPv4, IPv6 link-local and global addresses: the same link-layer
  // address makes them one node (the registry merges sightings of one source with one name).
  // The answers of one probe arrive within the node's leisure, and the kernel learns each
  // address's link-layer address just before the answer from it (the node's ARP request or
  // neighbour solicitation), so a table read for the first answer may predate the entry for the
  // second. Observing that one unnamed would list the node twice for a probe interval (and
  // register, then withdraw, a second endpoint upstream), so it waits for the next read.
  if (auto mac = neighbors_.linkAddress(answer.host)) return observeProbeAnswer(answer, std::move(mac));
  const auto now = std::chrono::steady_clock::now();
  if (!neighbors_read_ || now - *neighbors_read_ >= kNeighborReread) {
    return observeProbeAnswer(answer, linkAddressOf(answer.host));
  }
  if (unnamed_answers_.size() >= kMaxUnnamedAnswers) return observeProbeAnswer(answer, std::nullopt);
  unnamed_answers_.push_back(answer);
  if (unnamed_timer_ < 0) {
    unnamed_timer_ = loop_.addTimeout(*neighbors_read_ + kNeighborReread, [this] { observeUnnamedAnswers(); });
  } else {
    loop_.rearmTimeout(unnamed_timer_, *neighbors_read_ + kNeighborReread);
  }
}

void DiscoveryService::observeUnnamedAnswers() {
  auto answers = std::move(unnamed_answers_);
  unnamed_answers_.clear();
  for (const auto& answer : answers) observeProbeAnswer(answer, linkAddressOf(answer.host));
}

void DiscoveryService::observeProbeAnswer(const discovery::ProbeAnswer& answer, std::optional<std::string> mac) {
  discovery::Sighting s;
  s.source = discovery::Source::multicast;
  s.address = {answer.host, answer.port, false};
  s.interface = answer.interface;
  s.resources = answer.links;
  s.resources_known = answer.complete;
  s.ttl = node_ttl_;
  if (mac) s.name = std::move(*mac);
  registry_.observe(s, discovery::Clock::now());
  if (!answer.complete) fetchResources(std::move(s));
}

std::optional<std::string> DiscoveryService::linkAddressOf(const std::string& host) {
  if (auto mac = neighbors_.linkAddress(host)) return mac;
  const auto now = std::chrono::steady_clock::now();
  if (neighbors_read_ && now - *neighbors_read_ < kNeighborReread) return std::nullopt;
  neighbors_read_ = now;
  neighbors_ = discovery::NeighborTable::read();
  if (!neighbors_.error().empty() && !neighbors_error_logged_) {
    neighbors_error_logged_ = true;
    CE_LOG_WARN("cannot read the neighbour table ({}): a dual-stack node found by multicast is listed once per address",
                neighbors_.error());
  }
  return neighbors_.linkAddress(host);
}

void DiscoveryService::fetchResources(discovery::Sighting sighting, std::shared_ptr<const coap::ClientPsk> psk) {
  ++fetches_;
  coap::OutgoingRequest request;
  request.host = sighting.address.host;
  request.port = sighting.address.port;
  request.psk = std::move(psk);
  request.path = ".well-known/core";
  server_.request(request, [this, sighting = std::move(sighting)](const coap::ClientResult& result) mutable {
    if (result.outcome != coap::ClientOutcome::response || result.response.code != coap::Code::content) {
      ++fetch_failures_;
      CE_LOG_DEBUG("GET /.well-known/core from {}: {}", sighting.address.host,
                   result.outcome == coap::ClientOutcome::response ? std::to_string(static_cast<int>(result.response.code))
                                                                   : result.error);
      return;
    }
    auto links = discovery::parseLinkFormat(result.response.payload);
    if (!links.ok()) {
      ++fetch_failures_;
      CE_LOG_NOTICE("node {} sent /.well-known/core that is not link format (offset {}: {})", sighting.address.host,
                    links.error->offset, links.error->message);
      return;
    }
    sighting.resources = std::move(links.links);
    sighting.resources_known = true;
    registry_.observe(sighting, discovery::Clock::now());
  });
}

void DiscoveryService::startDnsSd(const config::Config& config) {
  avahi_poll_ = std::make_unique<AvahiPollAdapter>(loop_);
  discovery::DnsSdSettings settings;
  for (const auto& i : config.discovery.interfaces) settings.interfaces.push_back(i.value);
  if (config.discovery.publish) {
    if (listensBeyondLoopback(config)) {
      discovery::DnsSdPublication pub;
      pub.instance = config.agent.name;
      pub.port = config.downstream.listen.front().value.port;
      pub.txt = {{"name", config.agent.name}};
      if (config.discovery.resource_directory) pub.txt["rd"] = "/rd";
      settings.publication = std::move(pub);
    } else {
      CE_LOG_NOTICE("not announcing the gateway over mDNS: [downstream] listen is loopback only");
    }
  }
  dns_sd_ = std::make_unique<discovery::DnsSd>(
      avahi_poll_->poll(), std::move(settings),
      [this](const discovery::DnsSdService& s) { onDnsSdFound(s.instance, s.interface, s.address, s.port, s.secure); },
      [this](const discovery::DnsSdService& s) {
        registry_.withdraw(discovery::Source::dns_sd, s.instance, s.interface, discovery::Clock::now());
      });
}

void DiscoveryService::onDnsSdFound(const std::string& instance, const std::string& interface,
                                    const std::string& address, std::uint16_t port, bool secure) {
  discovery::Sighting s;
  s.source = discovery::Source::dns_sd;
  s.address = {address, port, secure};
  s.name = instance;
  s.interface = interface;
  s.resources_known = false;
  s.ttl = kDnsSdTtl;
  registry_.observe(s, discovery::Clock::now());
  if (!secure) {
    fetchResources(std::move(s));
    return;
  }
  // A coaps node is asked only with a credential of ours for it ([[relay.credentials]], matched
  // by the node id the sighting got); else it is listed without resources.
  const discovery::NodeRecord* node = registry_.findByAddress(s.address);
  if (node == nullptr || !credential_for_) return;
  if (auto psk = credential_for_(node->id)) fetchResources(std::move(s), std::move(psk));
}

void DiscoveryService::expire() {
  const auto now = discovery::Clock::now();
  rd_.expire(now);  // removals reach the registry through onRegistration
  registry_.expire(now);
}

DiscoveryStatus DiscoveryService::status() const {
  DiscoveryStatus s;
  s.registry = registry_.stats();
  s.rd_registrations = rd_.size();
  s.rd_memory_bytes = rd_.memoryBytes();
  s.rd_refused = rd_refused_;
  if (prober_) s.probe = prober_->stats();
  s.fetches = fetches_;
  s.fetch_failures = fetch_failures_;
  if (dns_sd_) {
    s.dns_sd_state = std::string(dns_sd_->state());
    const auto c = dns_sd_->counters();
    s.dns_sd_found = c.services_found;
    s.dns_sd_lost = c.services_lost;
    s.dns_sd_reconnects = c.daemon_reconnects;
    if (dns_sd_->published()) s.published_as = dns_sd_->publishedName().value_or("");
  }
  return s;
}

}  // namespace coap_edge::daemon
