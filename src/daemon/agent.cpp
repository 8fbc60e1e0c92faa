#include "daemon/agent.h"

#include "coap/runtime.h"
#include "common/log.h"
#include "daemon/metrics.h"
#include "daemon/service_notify.h"
#include "daemon/status_resource.h"
#include "tls/pki_files.h"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <csignal>

namespace coap_edge::daemon {
namespace {

constexpr std::string_view kLogTag = "agent";
constexpr int kExConfig = 78;
// Revocations by coap-edge-ctl must end live sessions within 2 s (DESIGN.md): poll at 0.5 s.
constexpr std::chrono::milliseconds kKeystorePoll{500};
constexpr std::chrono::milliseconds kDrainBudget{2000};
// Idle (full) token buckets are dropped this often, so their tables track active keys only.
constexpr std::chrono::milliseconds kBucketSweep{10000};
// Observations to nodes are checked (restored, timed out) this often.
constexpr std::chrono::milliseconds kRelayTick{1000};
// The upstream link: connection state, keepalive, RD and telemetry are looked at this often.
constexpr std::chrono::milliseconds kUpstreamTick{250};

std::string at(const config::Config& cfg, config::Position where, const std::string& message) {
  return config::Error{cfg.file.string(), where, message}.str();
}

// [discovery] is applied at startup only (sockets, Avahi, the registry's size).
bool sameDiscovery(const config::DiscoverySection& a, const config::DiscoverySection& b) {
  if (a.interfaces.size() != b.interfaces.size()) return false;
  for (std::size_t i = 0; i < a.interfaces.size(); ++i) {
    if (a.interfaces[i].value != b.interfaces[i].value) return false;
  }
  return a.multicast == b.multicast && a.dns_sd == b.dns_sd && a.interval == b.interval && a.leisure == b.leisure &&
         a.rt == b.rt && a.node_ttl == b.node_ttl && a.publish == b.publish &&
         a.resource_directory == b.resource_directory && a.max_nodes == b.max_nodes;
}

}  // namespace

relay::ProxySettings proxySettings(const config::Config& cfg) {
  relay::ProxySettings s;
  s.timeout = cfg.relay.request_timeout;
  s.cache_max_bytes = static_cast<std::size_t>(cfg.relay.cache_max_bytes);
  s.max_in_flight = cfg.relay.max_in_flight;
  s.observe = cfg.relay.observe;
  s.per_node = cfg.limits.per_node;
  for (const auto& entry : cfg.relay.credentials) {
    // checkReferencedFiles() has read these files already; one that changed since is skipped
    // (its nodes get 5.02 naming the missing credential) rather than stopping the agent.
    config::PskKeyFile key = config::readPskKeyFile(entry.psk_key_file.value);
    if (!key.ok()) {
      CE_LOG_ERROR("[[relay.credentials]] psk_key_file {} {}", entry.psk_key_file.value.string(), key.error);
      continue;
    }
    auto psk = std::make_shared<coap::ClientPsk>();
    psk->identity = entry.psk_identity;
    psk->key = tls::SecretBytes(std::span<const std::uint8_t>(key.key));
    std::fill(key.key.begin(), key.key.end(), std::uint8_t{0});
    s.credentials.push_back({entry.nodes, std::move(psk)});
  }
  return s;
}

std::optional<std::string> checkReferencedFiles(const config::Config& cfg) {
  const auto& d = cfg.downstream;
  if (d.x509()) {
    if (auto problem = tls::checkPkiFiles(d.certificate->value, d.private_key->value, d.ca->value)) {
      const config::Position where = problem->file == tls::PkiFile::certificate ? d.certificate->where
                                     : problem->file == tls::PkiFile::private_key ? d.private_key->where
                                                                                   : d.ca->where;
      return at(cfg, where, problem->message);
    }
  }
  // The upstream's credential, so that a bad key or certificate names its line here rather than
  // surfacing later as a session that never comes up.
  if (auto problem = config::checkUpstreamFiles(cfg)) return problem->str();
  if (auto problem = config::checkNodeCredentialFiles(cfg)) return problem->str();
  if (cfg.upstream && cfg.upstream->x509()) {
    const auto& u = *cfg.upstream;
    if (auto problem = tls::checkPkiFiles(u.certificate->value, u.private_key->value, u.ca->value)) {
      const config::Position where = problem->file == tls::PkiFile::certificate ? u.certificate->where
                                     : problem->file == tls::PkiFile::private_key ? u.private_key->where
                                                                                   : u.ca->where;
      return at(cfg, where, "[upstream] " + problem->message);
    }
  }
  return std::nullopt;
}

coap::ServerSettings serverSettings(const config::Config& cfg) {
  coap::ServerSettings s;
  // Listen entries with no position in the file are the built-in loopback defaults.
  for (const auto& l : cfg.downstream.listen) s.listen.push_back({l.value.host, l.value.port, true, l.where.line == 0});
  for (const auto& l : cfg.downstream.plain_listen) s.listen.push_back({l.value.host, l.value.port, false, false});
  s.psk = cfg.downstream.psk;
  if (cfg.downstream.x509()) {
    s.pki = coap::PkiFiles{cfg.downstream.certificate->value, cfg.downstream.private_key->value,
                           cfg.downstream.ca->value};
  }
  s.idle_timeout = std::chrono::duration_cast<std::chrono::seconds>(cfg.downstream.idle_timeout);
  s.max_sessions = cfg.limits.max_sessions;
  s.max_handshakes = cfg.limits.max_handshakes;
  s.duplicate_max_bytes = static_cast<std::size_t>(cfg.limits.duplicate_max_bytes);
  s.dtls_retransmit_min = cfg.downstream.dtls_retransmit_min;
  s.dtls_retransmit_max = cfg.downstream.dtls_retransmit_max;
  s.dtls_half_open_timeout = std::chrono::ceil<std::chrono::seconds>(cfg.downstream.dtls_half_open_timeout);
  s.receive_buffer_bytes = cfg.downstream.receive_buffer_bytes;
  return s;
}

namespace {

keystore::Keystore openKeystore(const config::Config& cfg) {
  try {
    return keystore::Keystore::open(cfg.agent.state_dir.value);
  } catch (const std::exception& e) {
    throw StartupFailure(at(cfg, cfg.agent.state_dir.where, e.what()), 1);
  }
}

}  // namespace

Agent::Agent(config::Config cfg) : config_(std::move(cfg)), keystore_(openKeystore(config_)) {
  started_ = std::chrono::steady_clock::now();
  if (auto problem = checkReferencedFiles(config_)) throw StartupFailure(*problem, kExConfig);
  if (config_.downstream.x509() && tls::isGroupOrWorldReadable(config_.downstream.private_key->value)) {
    CE_LOG_WARN("private key '{}' is readable by group or others: chmod 600 it", config_.downstream.private_key->value.string());
  }
  // Before any socket: a second agent on the same state_dir must fail here, not share ports.
  try {
    control_ = std::make_unique<ControlSocket>(loop_, config_.agent.state_dir.value / "agent.sock",
                                               [this](std::string_view r) { return controlRequest(r); });
  } catch (const std::exception& e) {
    throw StartupFailure(at(config_, config_.agent.state_dir.where, e.what()), 1);
  }
  credentials_ = std::make_unique<KeystoreCredentials>(keystore_);
  keystore_version_ = keystore_.changeCounter();

  const coap::ServerSettings settings = serverSettings(config_);
  try {
    server_ = std::make_unique<coap::Server>(settings, *credentials_);
  } catch (const coap::StartupError& e) {
    config::Position where{};
    if (e.listen_index) {
      const std::size_t i = *e.listen_index;
      const auto& d = config_.downstream;
      where = i < d.listen.size() ? d.listen[i].where : d.plain_listen[i - d.listen.size()].where;
    }
    throw StartupFailure(at(config_, where, e.what()), kExConfig);
  }
  // Every request, /.well-known/core and unknown paths included, passes the ACL first.
  access_.setPolicy(config_.acl);
  // Then the per-identity rate (RFC 8516): only requests the ACL let through use tokens.
  limits_.setLimits(config_.limits);
  server_->setRequestFilter([this](const coap::Request& req) -> std::optional<coap::Response> {
    if (auto refused = access_(req)) return refused;
    return limits_(req);
  });
  server_->setHandshakeGate([this](std::string_view address) { return limits_.admitHandshake(address); });
  CE_LOG_INFO("access control: {} rules in {} [[acl]] entries, everything else denied", config_.acl.ruleCount(),
              config_.acl.entries().size());
  registerResources();
  try {
    discovery_ = std::make_unique<DiscoveryService>(loop_, *server_, config_);
  } catch (const discovery::ProbeError& e) {
    throw StartupFailure(at(config_, config_.discovery.interfaces[e.interface_index].where, e.what()), kExConfig);
  }

  proxy_ = std::make_unique<relay::NodeProxy>(*server_, discovery_->registry(), proxySettings(config_));
  discovery_->setRelay([this](const coap::Request& req, coap::Responder respond) { proxy_->handle(req, std::move(respond)); });
  discovery_->setCredentialLookup([this](const std::string& id) { return proxy_->credentialFor(id); });
  server_->setForwardProxy([this](coap::Request& req) { return proxy_->mapForwardRequest(req); });
  loop_.addTimer(kRelayTick, [this] { proxy_->tick(); });
  if (config_.upstream) {
    try {
      upstream_ = std::make_unique<relay::UpstreamLink>(*server_, discovery_->registry(), *proxy_, config_);
    } catch (const std::exception& e) {
      throw StartupFailure(at(config_, config_.upstream->where, std::string("[upstream]: ") + e.what()), 1);
    }
    loop_.addTimer(kUpstreamTick, [this] { upstream_->tick(); });
  }

  loop_.setTimeoutProvider([this] { return server_->nextTimeout(); });
  // The loop waits on libcoap's epoll set itself (one epoll_wait per packet under load); libcoap's
  // retransmission and session timers run on every wakeup, with or without I/O.
  loop_.nestIn(server_->fd(), [this](epoll_event* events, int n) { server_->processEvents(events, n); });
  loop_.watch(signals_.fd(), [this] { onSignals(); });
  loop_.addTimer(kKeystorePoll, [this] { pollKeystore(); });
  loop_.addTimer(kBucketSweep, [this] { limits_.sweep(); });
  if (config_.agent.metrics_file) {
    writeMetrics();
    loop_.addTimer(config_.agent.metrics_interval, [this] { writeMetrics(); });
  }
  if (auto wd = service_notify::watchdogInterval()) {
    loop_.addTimer(*wd / 2, [] { service_notify::watchdog(); });
  }
}

Agent::~Agent() = default;

void Agent::registerResources() {
  server_->addResource({"status",
                        {{"rt", "\"coap-edge.status\""}, {"ct", "50"}, {"title", "\"Gateway status\""}},
                        {coap::Method::get},
                        [this](const coap::Request& req) { return statusResponse(req, snapshot()); },
                        true, {}});
  // Observers of /status learn about sessions coming and going without polling.
  server_->onSessionsChanged([this] { server_->notifyObservers("status"); });
}

StatusSnapshot Agent::snapshot() const {
  StatusSnapshot snap;
  snap.agent_name = config_.agent.name;
  snap.uptime = std::chrono::duration_cast<std::chrono::seconds>(std::chrono::steady_clock::now() - started_);
  snap.sessions = server_->sessionCounts();
  snap.acl = access_.counts();
  snap.acl_rules = access_.policy().ruleCount();
  snap.server = server_->stats();
  snap.duplicate_memory_bytes = server_->recentResponseBytes();
  snap.duplicate_memory_limit = server_->recentResponseBudget().limit();
  snap.duplicates_not_kept = server_->recentResponseBudget().refused();
  snap.limits = limits_.counts();
  if (discovery_) snap.discovery = discovery_->status();
  if (proxy_) snap.relay = proxy_->stats();
  if (upstream_) snap.upstream = upstream_->status();
  return snap;
}

void Agent::writeMetrics() {
  // Reloads may change or remove the path; the interval is fixed at startup.
  if (!config_.agent.metrics_file) return;
  const auto& path = config_.agent.metrics_file->value;
  if (auto error = writeFileAtomically(path, prometheusText(snapshot()))) {
    if (!metrics_failed_) CE_LOG_WARN("metrics_file: {} (reported once until it works again)", *error);
    metrics_failed_ = true;
  } else {
    metrics_failed_ = false;
  }
}

std::string Agent::controlRequest(std::string_view request) {
  if (request != "status") return nlohmann::json{{"error", "unknown request"}}.dump() + "\n";
  auto doc = nlohmann::json::parse(statusJson(snapshot()));
  nlohmann::json list = nlohmann::json::array();
  for (const auto& s : server_->sessionList()) {
    list.push_back({{"identity", s.peer.identity},
                    {"auth", coap::authKindName(s.peer.kind)},
                    {"peer", s.peer.address},
                    {"age_s", s.age.count()}});
  }
  doc["session_list"] = std::move(list);
  std::size_t active = 0;
  std::size_t revoked = 0;
  for (const auto& k : keystore_.list()) (k.revoked_at ? revoked : active)++;
  doc["keys"] = {{"active", active}, {"revoked", revoked}};
  // Invalid UTF-8 in identities is replaced rather than failing the whole answer.
  return doc.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) + "\n";
}

int Agent::run() {
  std::string endpoints;
  for (const auto& e : server_->boundEndpoints()) endpoints += (endpoints.empty() ? "" : ", ") + e;
  CE_LOG_NOTICE("coap-edge-agent {} ready on {} ({}, {})", COAP_EDGE_VERSION, endpoints,
                coap::Runtime::libcoapVersion(), coap::Runtime::tlsVersion());
  service_notify::ready("serving on " + endpoints);
  loop_.run();
  service_notify::stopping();
  CE_LOG_NOTICE("stopping: closing {} sessions", server_->sessionCounts().established);
  server_->drain(kDrainBudget);
  CE_LOG_NOTICE("stopped");
  return 0;
}

void Agent::onSignals() {
  while (auto sig = signals_.next()) {
    if (*sig == SIGHUP) {
      reload();
    } else {
      loop_.stop();
    }
  }
}

void Agent::reload() {
  service_notify::reloading();
  CE_LOG_NOTICE("reloading {}", config_.file.string());
  auto loaded = config::loadFile(config_.file);
  if (!loaded.ok()) {
    // A broken edit must not take the gateway down: keep serving with what we have.
    CE_LOG_ERROR("reload failed, keeping the running configuration: {}", loaded.error->str());
    service_notify::ready("reload failed: " + loaded.error->str());
    return;
  }
  config::Config next = std::move(*loaded.config);
  if (auto problem = checkReferencedFiles(next)) {
    CE_LOG_ERROR("reload failed, keeping the running configuration: {}", *problem);
    service_notify::ready("reload failed");
    return;
  }
  const auto before = serverSettings(config_);
  const auto after = serverSettings(next);
  auto sameListen = [](const coap::ServerSettings& a, const coap::ServerSettings& b) {
    if (a.listen.size() != b.listen.size()) return false;
    for (std::size_t i = 0; i < a.listen.size(); ++i) {
      if (a.listen[i].host != b.listen[i].host || a.listen[i].port != b.listen[i].port ||
          a.listen[i].secure != b.listen[i].secure) {
        return false;
      }
    }
    return true;
  };
  if (!sameListen(before, after) || before.psk != after.psk || before.pki.has_value() != after.pki.has_value() ||
      before.receive_buffer_bytes != after.receive_buffer_bytes ||
      next.agent.state_dir.value != config_.agent.state_dir.value) {
    CE_LOG_WARN("listen addresses, receive_buffer_bytes, credentials mode or state_dir changed: restart the agent to apply them");
  }
  log::setMaxLevel(next.agent.log_level);
  coap::Runtime::setLogLevel(next.agent.log_level);
  server_->setLimits(after.idle_timeout, after.max_sessions, after.max_handshakes);
  server_->setDuplicateMemory(after.duplicate_max_bytes);
  limits_.setLimits(next.limits);  // new rates; bucket state of every key is kept
  if (proxy_) proxy_->setSettings(proxySettings(next));
  if (next.agent.metrics_file && !config_.agent.metrics_file) {
    CE_LOG_WARN("metrics_file was not set at startup: restart the agent to start writing it");
  }
  if (next.upstream.has_value() != config_.upstream.has_value() ||
      (next.upstream && (next.upstream->uri.value.text != config_.upstream->uri.value.text ||
                         next.upstream->identity != config_.upstream->identity ||
                         next.upstream->psk_identity != config_.upstream->psk_identity ||
                         next.upstream->telemetry_path.has_value() != config_.upstream->telemetry_path.has_value()))) {
    CE_LOG_WARN("[upstream] changed: restart the agent to apply it");
  }
  if (!sameDiscovery(next.discovery, config_.discovery)) {
    CE_LOG_WARN("[discovery] changed: restart the agent to apply it");
  }
  if (next.agent.metrics_interval != config_.agent.metrics_interval) {
    CE_LOG_WARN("metrics_interval changed: restart the agent to apply it");
  }
  credentials_->refresh();
  // Keep the listen/credential settings we actually run with, take everything reloadable.
  next.downstream.listen = config_.downstream.listen;
  next.downstream.plain_listen = config_.downstream.plain_listen;
  next.downstream.psk = config_.downstream.psk;
  next.downstream.certificate = config_.downstream.certificate;
  next.downstream.private_key = config_.downstream.private_key;
  next.downstream.ca = config_.downstream.ca;
  next.agent.state_dir = config_.agent.state_dir;
  // The new rules were compiled whole while loading; they replace the old ones in one step,
  // between two requests, and apply to established sessions from their next request on.
  access_.setPolicy(next.acl);
  config_ = std::move(next);
  CE_LOG_NOTICE("reloaded: log_level, idle_timeout, max_sessions, rate limits and {} ACL rules applied; keys are "
                "read per handshake",
                config_.acl.ruleCount());
  service_notify::ready("reloaded");
}

void Agent::pollKeystore() {
  // Two reasons to look again: coap-edge-ctl committed (revocation, rotation), or the grace
  // period of a rotated key ended (time passes without any commit).
  const std::uint64_t version = keystore_.changeCounter();
  const bool grace_ended = credentials_->graceEnded();
  if (version == keystore_version_ && !grace_ended) return;
  keystore_version_ = version;
  // Deleting the expired keys never waits for a lock; if ctl holds it, the next poll retries
  // (the keystore already refuses them by time).
  if (grace_ended) (void)keystore_.purgeExpiredKeys();
  credentials_->refresh();
  const std::size_t closed = server_->closeSessions(
      [this](const coap::PeerIdentity& peer) { return !credentials_->mayContinue(peer); });
  if (closed > 0) {
    CE_LOG_NOTICE("keystore changed: closed {} sessions of revoked identities, revoked certificates or expired keys",
                  closed);
  }
}

}  // namespace coap_edge::daemon
