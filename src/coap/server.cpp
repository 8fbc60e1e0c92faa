#include "coap/server.h"

#include "common/log.h"

#include <arpa/inet.h>
#include <coap3/coap.h>

#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <limits>

namespace coap_edge::coap {
namespace {

constexpr std::string_view kLogTag = "coap";

coap_address_t toAddress(const ListenAddress& listen) {
  coap_address_t addr;
  coap_address_init(&addr);
  if (inet_pton(AF_INET, listen.host.c_str(), &addr.addr.sin.sin_addr) == 1) {
    addr.addr.sin.sin_family = AF_INET;
    addr.size = sizeof(addr.addr.sin);
  } else if (inet_pton(AF_INET6, listen.host.c_str(), &addr.addr.sin6.sin6_addr) == 1) {
    addr.addr.sin6.sin6_family = AF_INET6;
    addr.size = sizeof(addr.addr.sin6);
  } else {
    throw StartupError("not a numeric address: " + listen.host);
  }
  coap_address_set_port(&addr, listen.port);
  return addr;
}

// 0 if `addr` can be bound exclusively right now, else the errno of the failed bind.
int probeBind(const coap_address_t& addr) {
  const int fd = socket(addr.addr.sa.sa_family, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return errno;
  if (addr.addr.sa.sa_family == AF_INET6) {
    const int off = 0;  // as libcoap does: dual-stack, so a v4 user of the port conflicts too
    setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &off, sizeof(off));
  }
  const int rc = bind(fd, &addr.addr.sa, addr.size);
  const int err = rc == 0 ? 0 : errno;
  close(fd);
  return err;
}

// A burst of datagrams that arrives while the agent waits for a core is queued in the socket;
// the kernel's default (208 KiB: about 256 small datagrams) drops the rest, and each dropped
// request costs its client a retransmission timeout (2-3 s).
void sizeReceiveBuffer(coap_endpoint_t* ep, std::uint32_t bytes, const std::string& shown) {
  const int fd = coap_endpoint_get_fd(ep);
  if (fd < 0) return;
  const int want = static_cast<int>(std::min<std::uint32_t>(bytes, std::numeric_limits<int>::max() / 2));
  if (setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &want, sizeof(want)) != 0) {
    CE_LOG_WARN("cannot set the receive buffer of {} to {} bytes: {}", shown, want, std::strerror(errno));
    return;
  }
  int granted = 0;
  socklen_t len = sizeof(granted);
  if (getsockopt(fd, SOL_SOCKET, SO_RCVBUF, &granted, &len) != 0) return;
  // Linux reports twice what it was asked for (the rest is its bookkeeping), capped at
  // 2 x net.core.rmem_max; without CAP_NET_ADMIN nothing gets past that cap.
  if (granted / 2 < want) {
    CE_LOG_NOTICE("receive buffer of {} is {} bytes, not the {} of [downstream] receive_buffer_bytes: the kernel "
                  "caps it at net.core.rmem_max; raise that (sysctl) to absorb larger bursts",
                  shown, granted / 2, want);
  } else {
    CE_LOG_INFO("receive buffer of {}: {} bytes", shown, want);
  }
}

}  // namespace

void Server::ContextDeleter::operator()(coap_context_t* ctx) const noexcept { coap_free_context(ctx); }

Server::Server(const ServerSettings& settings, CredentialSource& credentials)
    : credentials_(credentials), max_sessions_(settings.max_sessions) {
  context_.reset(coap_new_context(nullptr));
  if (!context_) throw StartupError("libcoap: cannot create a context");
  coap_context_set_app_data(context_.get(), this);
  // Block-wise transfers are libcoap's job (RFC 7959), not ours.
  coap_context_set_block_mode(context_.get(), COAP_BLOCK_USE_LIBCOAP | COAP_BLOCK_SINGLE_BODY);
  // A deferred answer (the relay's, when the node replies) that is ready within this long rides
  // on the request's ACK (libcoap patch 0024): two messages on the client's link instead of an
  // empty ACK, a separate CON response and the client's ACK of it. Well below a client's
  // ACK_TIMEOUT (2 s); aiocoap waits as long (EMPTY_ACK_DELAY).
  coap_context_set_async_ack_delay(context_.get(), static_cast<unsigned int>(kPiggybackWait.count()));
  setLimits(settings.idle_timeout, settings.max_sessions, settings.max_handshakes);
  setDuplicateMemory(settings.duplicate_max_bytes);
  upstream_recent_.setBudget(&recent_budget_);
  setDtlsTimers(settings);

  bool any_secure = false;
  for (const auto& l : settings.listen) any_secure = any_secure || l.secure;
  if (any_secure) {
    if (!settings.psk && !settings.pki) {
      throw StartupError("coaps endpoints need PSK or X.509 credentials: enable [downstream] psk or set certificate/private_key/ca");
    }
    if (settings.psk) setupPsk();
    if (settings.pki) setupPki(*settings.pki);
  }
  installCallbacks();
  installClientCallbacks();
  addBuiltinResources();
  bindEndpoints(settings);
}


int Server::fd() const { return coap_context_get_coap_fd(context_.get()); }

std::optional<std::chrono::milliseconds> Server::nextTimeout() {
  coap_tick_t now = 0;
  coap_ticks(&now);
  const unsigned int ms = coap_io_prepare_epoll(context_.get(), now);
  std::optional<std::chrono::milliseconds> wait;
  if (ms != 0) wait = std::chrono::milliseconds(ms);
  // Our own client requests: results to deliver now, or the next deadline.
  if (!finished_requests_.empty() || deferred_ready_ || !upstream_pending_.empty()) return std::chrono::milliseconds(0);
  if (!deadlines_.empty()) {
    const auto left = std::chrono::ceil<std::chrono::milliseconds>(
        std::max(*deadlines_.begin() - std::chrono::steady_clock::now(), std::chrono::steady_clock::duration::zero()));
    if (!wait || left < *wait) wait = left;
  }
  return wait;
}

void Server::process() {
  coap_io_process(context_.get(), COAP_IO_NO_WAIT);
  afterIo();
}

void Server::processEvents(epoll_event* events, int n) {
  // Also runs libcoap's timers: coap_io_do_epoll() prepares the next wait when it is done.
  coap_io_do_epoll(context_.get(), events, static_cast<std::size_t>(std::max(n, 0)));
  afterIo();
}

void Server::afterIo() {
  hookCertificateChecks();
  applyPendingCloses();
  serviceClient();
  if (deferred_ready_) {
    // Answers given from the callbacks above: libcoap sends triggered entries when it prepares
    // a wait (coap_check_async), so preparing sends them, without the epoll_wait of a whole
    // coap_io_process pass (a third one per wakeup under relay load).
    deferred_ready_ = false;
    coap_tick_t now = 0;
    coap_ticks(&now);
    (void)coap_io_prepare_epoll(context_.get(), now);
  }
  if (!upstream_pending_.empty()) {
    std::vector<std::pair<UpstreamEvent, std::string>> events;
    events.swap(upstream_pending_);
    for (auto& [event, detail] : events) {
      if (!upstream_events_) break;
      UpstreamHandler handler = upstream_events_;  // it may reconnect, replacing upstream_events_
      try {
        handler(event, detail);
      } catch (const std::exception& e) {
        CE_LOG_ERROR("upstream event handler failed: {}", e.what());
      }
    }
  }
  if (sessions_changed_) {
    sessions_changed_ = false;
    if (sessions_changed_cb_) sessions_changed_cb_();
  }
}

void Server::notifyObservers(std::string_view path) {
  for (const auto& r : resources_) {
    if (r->spec.path == path && r->resource != nullptr) coap_resource_notify_observers(r->resource, nullptr);
  }
}

void Server::setLimits(std::chrono::seconds idle_timeout, std::uint32_t max_sessions, std::uint32_t max_handshakes) {
  coap_context_set_session_timeout(context_.get(), static_cast<unsigned int>(idle_timeout.count()));
  // Handshakes beyond this are not started (libcoap drops the ClientHello; the peer retries).
  coap_context_set_max_handshake_sessions(context_.get(), max_handshakes);
  max_sessions_ = max_sessions;
}

// Lossy, duty-cycled links need slower handshake timers than libcoap's built-in 1 s (libcoap
// patch 0004); they apply to sessions created from now on.
void Server::setDtlsTimers(const ServerSettings& settings) {
  const auto ms = [](std::chrono::milliseconds d) {
    return static_cast<std::uint32_t>(std::clamp<std::chrono::milliseconds::rep>(d.count(), 1, std::numeric_limits<std::uint32_t>::max()));
  };
  coap_context_set_dtls_retransmit(context_.get(), ms(settings.dtls_retransmit_min), ms(settings.dtls_retransmit_max));
  handshake_give_up_ = settings.dtls_retransmit_min;
  coap_context_set_partial_session_timeout(
      context_.get(), static_cast<unsigned int>(std::clamp<std::chrono::seconds::rep>(
                          settings.dtls_half_open_timeout.count(), 1, std::numeric_limits<unsigned int>::max())));
}

const void* Server::peerSession(const std::string& host, std::uint16_t port) const {
  const std::string wanted =
      (host.find(':') != std::string::npos ? "[" + host + "]" : host) + ":" + std::to_string(port);
  const void* found = nullptr;
  // O(sessions); asked once per relayed exchange to a coaps-only node.
  for (const auto& [key, entry] : sessions_.entries()) {
    if (entry.established && !entry.refused && entry.peer.address == wanted) found = key;
  }
  return found;
}

SessionCounts Server::sessionCounts() const {
  SessionCounts c;
  c.total = sessions_.size();
  c.established = sessions_.established();
  c.psk = sessions_.established(AuthKind::psk);
  c.x509 = sessions_.established(AuthKind::x509);
  c.plain = sessions_.established(AuthKind::none);
  return c;
}

std::vector<SessionView> Server::sessionList() const {
  std::vector<SessionView> out;
  const auto now = std::chrono::steady_clock::now();
  sessions_.forEach([&](const SessionEntry& e) {
    if (e.established) out.push_back({e.peer, std::chrono::duration_cast<std::chrono::seconds>(now - e.since)});
  });
  return out;
}

std::size_t Server::closeSessions(const std::function<bool(const PeerIdentity&)>& match) {
  std::vector<coap_session_t*> victims;
  sessions_.forEach([&](const void* key, SessionEntry& entry) {
    if (entry.established && match(entry.peer)) {
      victims.push_back(static_cast<coap_session_t*>(const_cast<void*>(key)));
    }
  });
  for (coap_session_t* s : victims) {
    if (SessionEntry* e = sessions_.find(s)) {
      CE_LOG_NOTICE("closing session of '{}' from {}", log::printable(e->peer.identity), e->peer.address);
      sessions_.disestablish(*e);
      sessions_changed_ = true;
    }
    // Sends close_notify and drops the DTLS state; libcoap frees the session afterwards.
    coap_session_disconnected(s, COAP_NACK_NOT_DELIVERABLE);
  }
  return victims.size();
}

void Server::applyPendingCloses() {
  if (pending_close_.empty()) return;
  std::vector<coap_session_t*> todo;
  todo.swap(pending_close_);
  for (coap_session_t* s : todo) {
    if (sessions_.find(s) != nullptr) coap_session_disconnected(s, COAP_NACK_NOT_DELIVERABLE);
  }
}

void Server::drain(std::chrono::milliseconds budget) {
  closeSessions([](const PeerIdentity&) { return true; });
  const auto deadline = std::chrono::steady_clock::now() + budget;
  // Let libcoap send what is queued (close_notify alerts, pending responses), bounded in time.
  while (std::chrono::steady_clock::now() < deadline && !coap_can_exit(context_.get())) {
    coap_io_process(context_.get(), 50);
  }
}

void Server::bindEndpoints(const ServerSettings& settings) {
  // Ports our own earlier endpoints hold: "0.0.0.0:5684" next to the dual-stack "[::]:5684"
  // (DESIGN.md's example) is one agent on both families, not a conflict; the kernel hands IPv4
  // datagrams to the IPv4 socket.
  std::vector<std::uint16_t> own_ports;
  for (std::size_t i = 0; i < settings.listen.size(); ++i) {
    const ListenAddress& l = settings.listen[i];
    coap_address_t addr = toAddress(l);
    // libcoap binds with SO_REUSEADDR, with which Linux lets a second process bind the same UDP
    // port and silently steal part of the traffic: probe without it first.
    const std::string shown = (l.host.find(':') != std::string::npos ? "[" + l.host + "]" : l.host) + ":" +
                              std::to_string(l.port);
    if (l.port != 0 && std::find(own_ports.begin(), own_ports.end(), l.port) == own_ports.end()) {
      if (const int err = probeBind(addr); err != 0) {
        // Only a default address this host cannot have (no IPv6) is skipped; one that another
        // program holds is an error like any other.
        if (l.optional && (err == EADDRNOTAVAIL || err == EAFNOSUPPORT)) {
          CE_LOG_WARN("default listen address {}:{} is not available here ({}); skipping it", l.host, l.port,
                      std::strerror(err));
          continue;
        }
        StartupError e("cannot listen on " + shown + " (" +
                       (l.secure ? "coaps" : "coap") + "): " + std::strerror(err));
        e.listen_index = i;
        throw e;
      }
    }
    errno = 0;
    coap_endpoint_t* ep = coap_new_endpoint(context_.get(), &addr, l.secure ? COAP_PROTO_DTLS : COAP_PROTO_UDP);
    if (ep == nullptr && l.optional) {
      CE_LOG_WARN("default listen address {}:{} is not available here; skipping it", l.host, l.port);
      continue;
    }
    if (ep == nullptr) {
      const int err = errno;
      StartupError e("cannot listen on " + shown + " (" +
                     (l.secure ? "coaps" : "coap") + ")" + (err != 0 ? std::string(": ") + std::strerror(err) : ""));
      e.listen_index = i;
      throw e;
    }
    bound_.push_back(coap_endpoint_str(ep));
    own_ports.push_back(l.port);
    if (settings.receive_buffer_bytes != 0) sizeReceiveBuffer(ep, settings.receive_buffer_bytes, shown);
  }
  if (bound_.empty()) throw StartupError("no listen address could be bound");
}

}  // namespace coap_edge::coap
