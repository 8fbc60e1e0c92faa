#include "relay/upstream_link.h"

#include "common/log.h"
#include "relay/senml.h"

#include <netdb.h>
#include <sys/socket.h>

#include <arpa/inet.h>

#include <algorithm>
#include <optional>
#include <thread>

namespace coap_edge::relay {
namespace {

constexpr std::string_view kLogTag = "upstream";
// A session that stayed up this long resets the reconnect backoff.
constexpr std::chrono::seconds kStableSession{60};
// Bound on one exchange with the upstream (retransmissions and block-wise included).
constexpr std::chrono::seconds kRequestTimeout{30};
// After a failed registration or telemetry POST: wait this long before the next try (doubling).
constexpr std::chrono::seconds kRetryMin{1};
constexpr std::chrono::seconds kRetryMax{60};
// Bytes of queued values one POST may carry (before SenML overhead).
constexpr std::size_t kMaxPackBytes = 16 * 1024;

std::int64_t unixMillis() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch())
      .count();
}

std::chrono::seconds retryDelay(std::uint32_t failures) {
  return std::min<std::chrono::seconds>(kRetryMax, kRetryMin * (1U << std::min<std::uint32_t>(failures, 6)));
}

bool isSuccess(const coap::ClientResult& r) {
  return r.outcome == coap::ClientOutcome::response && static_cast<unsigned>(r.response.code) / 100 == 2;
}

std::string describe(const coap::ClientResult& r) {
  if (r.outcome != coap::ClientOutcome::response) return r.error.empty() ? "no answer" : r.error;
  const auto c = static_cast<unsigned>(r.response.code);
  std::string text = std::to_string(c / 100) + "." + (c % 100 < 10 ? "0" : "") + std::to_string(c % 100);
  if (!r.response.payload.empty()) text += " " + log::printable(r.response.payload.substr(0, 80));
  return text;
}

QueueLimits queueLimits(const config::UpstreamSection& u) {
  QueueLimits l;
  l.max_bytes = u.queue_max_bytes;
  l.max_age = std::chrono::duration_cast<std::chrono::seconds>(u.queue_max_age);
  l.when_full = u.queue_when_full == config::QueueWhenFull::drop_newest ? QueueLimits::WhenFull::drop_newest
                                                                         : QueueLimits::WhenFull::drop_oldest;
  l.synchronous_full = u.queue_sync == config::QueueSync::full;
  return l;
}

// "/rd/4521" or "rd/4521" -> "rd/4521" (OutgoingRequest paths have no leading '/').
std::string relativePath(std::string_view path) {
  while (!path.empty() && path.front() == '/') path.remove_prefix(1);
  return std::string(path);
}

}  // namespace

UpstreamLink::UpstreamLink(coap::Server& server, discovery::NodeRegistry& registry, NodeProxy& proxy,
                           const config::Config& config)
    : server_(server),
      registry_(registry),
      config_(*config.upstream),
      agent_name_(config.agent.name),
      backoff_(config_.reconnect_min, config_.reconnect_max) {
  if (config_.psk_key_file) {
    auto key = config::readPskKeyFile(config_.psk_key_file->value);
    if (!key.ok()) throw std::runtime_error(key.error);
    psk_key_ = tls::SecretBytes(std::span<const std::uint8_t>(key.key.data(), key.key.size()));
    std::fill(key.key.begin(), key.key.end(), std::uint8_t{0});
  }
  if (config_.telemetry_path) {
    const auto file = config.agent.state_dir.value / "telemetry.db";
    queue_.emplace(TelemetryQueue::open(file, queueLimits(config_)));
    const auto s = queue_->stats();
    if (s.depth > 0) CE_LOG_NOTICE("telemetry queue {}: {} values waiting from before", file.string(), s.depth);
    std::weak_ptr<bool> alive = alive_;
    proxy.setValueSink([this, alive](const std::string& node, const std::string& path, const coap::Response& value) {
      if (!alive.expired()) onValue(node, path, value);
    });
  }
  CE_LOG_INFO("upstream {} ({}), registration {}, telemetry {}", config_.uri.value.text,
              config_.x509() ? "X.509" : "PSK",
              config_.registration == config::RdRegistrationMode::gateway ? "as the gateway" : "per node",
              config_.telemetry_path ? config_.telemetry_path->value : std::string("off"));
}

UpstreamLink::~UpstreamLink() {
  alive_.reset();
  server_.disconnectUpstream();
}

void UpstreamLink::tick() {
  const auto now = Clock::now();
  if (queue_) (void)queue_->expire(unixMillis());
  switch (state_) {
    case State::waiting:
      if (now >= retry_at_) startResolve();
      break;
    case State::resolving: {
      std::vector<std::string> addresses;
      std::string error;
      {
        std::lock_guard lock(resolving_->mutex);
        if (!resolving_->done) break;
        addresses = resolving_->addresses;
        error = resolving_->error;
      }
      resolving_.reset();
      if (addresses.empty()) {
        retryLater("cannot resolve " + config_.uri.value.host + ": " + error);
        break;
      }
      connect(addresses.front());
      break;
    }
    case State::connecting:
      break;  // libcoap's handshake timers end it either way
    case State::up:
      if (now - up_since_ > kStableSession) backoff_.reset();
      if (config_.keepalive.count() > 0 && server_.upstreamIdle() > config_.keepalive &&
          now - last_ping_ > config_.keepalive) {
        last_ping_ = now;
        (void)server_.pingUpstream();
      }
      maintainRegistrations();
      pushTelemetry();
      break;
  }
}

void UpstreamLink::startResolve() {
  const auto& uri = config_.uri.value;
  if (uri.ip_literal) {
    connect(uri.host);
    return;
  }
  state_ = State::resolving;
  auto resolution = std::make_shared<Resolution>();
  resolving_ = resolution;
  // getaddrinfo may wait for a DNS server for many seconds: never on the event loop.
  std::thread([resolution, host = uri.host] {
    addrinfo hints{};
    hints.ai_socktype = SOCK_DGRAM;
    hints.ai_flags = AI_ADDRCONFIG;
    addrinfo* res = nullptr;
    const int rc = getaddrinfo(host.c_str(), nullptr, &hints, &res);
    std::vector<std::string> out;
    for (addrinfo* a = res; a != nullptr; a = a->ai_next) {
      char text[INET6_ADDRSTRLEN] = {};
      const void* addr = a->ai_family == AF_INET ? static_cast<const void*>(&reinterpret_cast<sockaddr_in*>(a->ai_addr)->sin_addr)
                                                 : static_cast<const void*>(&reinterpret_cast<sockaddr_in6*>(a->ai_addr)->sin6_addr);
      if ((a->ai_family == AF_INET || a->ai_family == AF_INET6) && inet_ntop(a->ai_family, addr, text, sizeof(text)) != nullptr) {
        out.emplace_back(text);
      }
    }
    if (res != nullptr) freeaddrinfo(res);
    std::lock_guard lock(resolution->mutex);
    resolution->addresses = std::move(out);
    resolution->error = rc == 0 ? "no address" : gai_strerror(rc);
    resolution->done = true;
  }).detach();
}

void UpstreamLink::connect(const std::string& address) {
  coap::UpstreamTarget target;
  target.host = address;
  target.port = config_.uri.value.port;
  target.identity = config_.identity;
  if (config_.x509()) {
    target.pki = coap::PkiFiles{config_.certificate->value, config_.private_key->value, config_.ca->value};
    // The name the server's certificate must carry, also sent as SNI: server_name, else the
    // uri's host (the config requires server_name when that is an IP address).
    target.server_name = config_.serverName();
  } else {
    target.psk_identity = config_.psk_identity.value_or("");
    target.psk_key = tls::SecretBytes(psk_key_.span());
    // SNI only carries names (RFC 6066 §3).
    if (!config_.uri.value.ip_literal) target.server_name = config_.uri.value.host;
  }
  std::string error;
  std::weak_ptr<bool> alive = alive_;
  const bool started = server_.connectUpstream(target, [this, alive](coap::UpstreamEvent e, const std::string& detail) {
    if (!alive.expired()) onEvent(e, detail);
  }, error);
  if (!started) {
    retryLater(error);
    return;
  }
  address_ = address;
  state_ = State::connecting;
  CE_LOG_INFO("connecting to the upstream at {}:{}", address, target.port);
}

void UpstreamLink::onEvent(coap::UpstreamEvent event, const std::string& detail) {
  if (event == coap::UpstreamEvent::connected) {
    state_ = State::up;
    up_since_ = Clock::now();
    last_ping_ = up_since_;
    last_error_.clear();
    CE_LOG_NOTICE("upstream session established with {}", detail);
    tick();
    return;
  }
  retryLater(detail);
}

void UpstreamLink::retryLater(const std::string& why) {
  const bool was_up = state_ == State::up;
  server_.disconnectUpstream();
  rd_busy_ = false;
  post_busy_ = false;
  state_ = State::waiting;
  const auto wait = backoff_.next();
  retry_at_ = Clock::now() + wait;
  last_error_ = why;
  if (was_up) {
    CE_LOG_WARN("upstream session lost ({}); reconnecting in {} ms", why, wait.count());
  } else {
    CE_LOG_WARN("upstream: {}; next attempt in {} ms", why, wait.count());
  }
}

void UpstreamLink::onValue(const std::string& node_id, const std::string& path, const coap::Response& value) {
  if (!queue_ || static_cast<unsigned>(value.code) != 205) return;
  TelemetryValue v;
  v.node = node_id;
  v.path = path;
  v.time_ms = unixMillis();
  v.content_format = value.content_format.value_or(coap::content_format::text_plain);
  v.payload = value.payload;
  const auto result = queue_->push({std::move(v)}, unixMillis());
  if (!result.ok()) {
    CE_LOG_ERROR("telemetry queue: {} (value of {}/{} lost)", result.error, node_id, path);
  }
}

void UpstreamLink::sendRd(coap::Method method, std::string path, std::string query, std::string payload,
                          std::function<void(const coap::ClientResult&)> done) {
  coap::OutgoingRequest out;
  out.over_session = server_.upstreamSession();
  out.method = method;
  out.path = relativePath(path);
  out.query = std::move(query);
  if (!payload.empty()) out.content_format = coap::content_format::link_format;
  out.payload = std::move(payload);
  out.timeout = kRequestTimeout;
  rd_busy_ = true;
  std::weak_ptr<bool> alive = alive_;
  server_.request(out, [this, alive, done = std::move(done)](const coap::ClientResult& r) {
    if (alive.expired()) return;
    rd_busy_ = false;
    if (!isSuccess(r)) {
      ++rd_failures_;
      rd_retry_at_ = Clock::now() + retryDelay(static_cast<std::uint32_t>(std::min<std::uint64_t>(rd_failures_, 6)));
    }
    done(r);
  });
}

void UpstreamLink::maintainRegistrations() {
  const auto now = Clock::now();
  if (rd_busy_ || now < rd_retry_at_ || server_.upstreamSession() == nullptr) return;
  RdPlanOptions options;
  options.mode = config_.registration == config::RdRegistrationMode::gateway ? RdMode::gateway : RdMode::per_node;
  options.gateway_name = agent_name_;
  options.lifetime = config_.lifetime;
  const auto nodes = registry_.nodes();
  const auto plan = planRdRegistrations(nodes, options);
  // One operation at a time: the first registration that needs one.
  for (const auto& planned : plan) {
    const auto action = rd_.action(planned, now);
    if (action == RdRegistrationState::Action::none) continue;
    const std::string ep = planned.ep;
    if (action == RdRegistrationState::Action::create) {
      sendRd(coap::Method::post, config_.rd_path, planned.query, planned.payload,
             [this, planned](const coap::ClientResult& r) {
               if (isSuccess(r) && !r.response.location_path.empty()) {
                 rd_.registered(planned, "/" + r.response.location_path, config_.lifetime, Clock::now());
                 CE_LOG_INFO("registered {} at the upstream RD: /{}", planned.ep, r.response.location_path);
               } else {
                 CE_LOG_WARN("upstream RD refused the registration of {}: {}", planned.ep, describe(r));
               }
             });
      return;
    }
    const RdRegistrationState::Entry* entry = rd_.find(ep);
    if (entry == nullptr) continue;
    const bool update = action == RdRegistrationState::Action::update;
    sendRd(coap::Method::post, entry->location, update ? planned.update_query : std::string(),
           update ? planned.payload : std::string(), [this, planned, update](const coap::ClientResult& r) {
             if (isSuccess(r)) {
               const RdRegistrationState::Entry* e = rd_.find(planned.ep);
               if (update && e != nullptr) {
                 rd_.registered(planned, e->location, config_.lifetime, Clock::now());
               } else {
                 rd_.refreshed(planned.ep, Clock::now());
               }
             } else if (r.outcome == coap::ClientOutcome::response && r.response.code == coap::Code::not_found) {
               CE_LOG_INFO("upstream RD forgot {}: registering it again", planned.ep);
               rd_.lost(planned.ep);
               rd_retry_at_ = Clock::time_point{};
             } else {
               CE_LOG_WARN("upstream RD: {} of {} failed: {}", update ? "update" : "refresh", planned.ep, describe(r));
             }
           });
    return;
  }
  // Nodes that are gone: their registrations go too.
  for (const auto& ep : rd_.stale(plan)) {
    const RdRegistrationState::Entry* entry = rd_.find(ep);
    if (entry == nullptr) continue;
    sendRd(coap::Method::del, entry->location, {}, {}, [this, ep](const coap::ClientResult& r) {
      // Gone either way: 2.02, or 4.04 because the RD had already dropped it.
      if (isSuccess(r) || (r.outcome == coap::ClientOutcome::response && r.response.code == coap::Code::not_found)) {
        rd_.removed(ep);
        CE_LOG_INFO("removed {} from the upstream RD", ep);
      }
    });
    return;
  }
}

void UpstreamLink::pushTelemetry() {
  if (!queue_ || post_busy_ || server_.upstreamSession() == nullptr) return;
  const auto now = Clock::now();
  if (now < next_post_at_) return;
  auto values = queue_->peek(config_.telemetry_batch, kMaxPackBytes);
  if (values.empty()) return;
  const std::uint64_t queued = queue_->depth();
  // One node per POST (the path names it): the oldest value's node, with all of that node's values
  // in the window, in order. Taking only the leading run made a queue of interleaved nodes (any
  // gateway with several busy nodes) leave one value per POST and telemetry_interval.
  const std::string node = values.front().node;
  const std::int64_t window_last_ms = values.back().time_ms;
  std::optional<std::int64_t> left_ms;  // the oldest value this POST leaves queued, if any
  std::size_t kept = 0;
  for (std::size_t i = 0; i < values.size(); ++i) {
    if (values[i].node != node) {
      if (!left_ms) left_ms = values[i].time_ms;
      continue;
    }
    if (kept != i) values[kept] = std::move(values[i]);
    ++kept;
  }
  // Cut at telemetry_batch or the pack size with more behind: what follows is no older than the
  // window's last value.
  if (!left_ms && queued > values.size()) left_ms = window_last_ms;
  values.resize(kept);
  const SenmlFormat format =
      config_.telemetry_format == config::TelemetryFormat::senml_json ? SenmlFormat::json : SenmlFormat::cbor;
  coap::OutgoingRequest out;
  out.over_session = server_.upstreamSession();
  out.method = coap::Method::post;
  out.path = relativePath(config_.telemetryPathFor(node));
  out.content_format = contentFormatOf(format);
  out.payload = encodePack(values, format, agent_name_ + ":");
  out.timeout = kRequestTimeout;
  std::vector<std::uint64_t> seqs;
  seqs.reserve(values.size());
  for (const auto& v : values) seqs.push_back(v.seq);
  post_busy_ = true;
  std::weak_ptr<bool> alive = alive_;
  server_.request(out, [this, alive, seqs = std::move(seqs), node, left_ms](const coap::ClientResult& r) {
    if (alive.expired()) return;
    post_busy_ = false;
    const auto answered = Clock::now();
    if (isSuccess(r)) {
      // Only now may the values leave the queue (at-least-once).
      if (!queue_->ack(seqs)) CE_LOG_ERROR("telemetry queue: cannot remove acknowledged values: {}", queue_->lastError());
      ++posts_;
      values_sent_ += seqs.size();
      post_failures_in_row_ = 0;
      // A full batch: more is waiting, send it now. Otherwise values are gathered for
      // telemetry_interval, counted from the oldest one left waiting: a backlog (after an outage,
      // or of other nodes) goes out POST after POST, new values wait to share a pack.
      if (seqs.size() >= config_.telemetry_batch) {
        next_post_at_ = answered;
      } else if (left_ms) {
        const auto waited = std::chrono::milliseconds(std::max<std::int64_t>(0, unixMillis() - *left_ms));
        next_post_at_ = waited >= config_.telemetry_interval ? answered : answered + (config_.telemetry_interval - waited);
      } else {
        next_post_at_ = answered + config_.telemetry_interval;
      }
      return;
    }
    ++post_failures_;
    ++post_failures_in_row_;
    std::chrono::milliseconds wait = retryDelay(post_failures_in_row_);
    if (r.outcome == coap::ClientOutcome::response && r.response.max_age) {
      wait = std::max<std::chrono::milliseconds>(wait, std::chrono::seconds(*r.response.max_age));
    }
    next_post_at_ = answered + wait;
    CE_LOG_WARN("telemetry POST for {} ({} values) failed: {}; retrying in {} ms", node, seqs.size(), describe(r),
                wait.count());
  });
}

UpstreamStatus UpstreamLink::status() const {
  UpstreamStatus s;
  switch (state_) {
    case State::waiting:
      s.state = "waiting";
      break;
    case State::resolving:
      s.state = "resolving";
      break;
    case State::connecting:
      s.state = "connecting";
      break;
    case State::up:
      s.state = "up";
      break;
  }
  s.address = state_ == State::up ? address_ : std::string();
  s.last_error = last_error_;
  const auto& st = server_.upstreamStats();
  s.connects = st.connects;
  s.established = st.established;
  s.failures = st.failures;
  s.requests_served = st.requests;
  s.rd_registrations = rd_.size();
  s.rd_failures = rd_failures_;
  s.telemetry = queue_.has_value();
  s.telemetry_posts = posts_;
  s.telemetry_post_failures = post_failures_;
  s.telemetry_values_sent = values_sent_;
  if (queue_) {
    s.queue = queue_->stats();
    if (s.queue.oldest_ms) s.queue_oldest_age_s = std::max<std::int64_t>(0, (unixMillis() - *s.queue.oldest_ms) / 1000);
  }
  return s;
}

}  // namespace coap_edge::relay
