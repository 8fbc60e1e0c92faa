#include "worker.h"

#include "coap_pdu.h"
#include "reports.h"
#include "session.h"
#include "tls_config.h"

#include <arpa/inet.h>
#include <fmt/format.h>
#include <mbedtls/net_sockets.h>
#include <netinet/in.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <memory>
#include <string>

namespace coap_edge::bench {

Session::~Session() {
  mbedtls_ssl_free(&ssl);
  if (fd >= 0) ::close(fd);
}

namespace {

constexpr std::uint8_t kMaxRetransmit = 4;                 // RFC 7252 MAX_RETRANSMIT
constexpr auto kSeparateResponseLimit = std::chrono::seconds(30);
constexpr auto kScanInterval = std::chrono::milliseconds(20);

std::uint64_t cpuMicros() {
  rusage ru{};
  ::getrusage(RUSAGE_SELF, &ru);
  auto us = [](const timeval& tv) {
    return static_cast<std::uint64_t>(tv.tv_sec) * 1000000U + static_cast<std::uint64_t>(tv.tv_usec);
  };
  return us(ru.ru_utime) + us(ru.ru_stime);
}

std::int64_t monotonicNs(Clock::time_point t) {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(t.time_since_epoch()).count();
}

template <std::size_t N>
void copyText(std::array<char, N>& out, const std::string& text) {
  const std::size_t n = std::min(text.size(), N - 1);
  std::memcpy(out.data(), text.data(), n);
  out[n] = '\0';
}

std::vector<std::uint8_t> proxyUriOption(const std::string& uri) {
  std::vector<std::uint8_t> out;
  unsigned last = 0;
  appendOption(out, last, kProxyUri, uri);
  return out;
}

bool writeAll(int fd, const void* data, std::size_t len) {
  const auto* p = static_cast<const char*>(data);
  while (len > 0) {
    const ssize_t n = ::write(fd, p, len);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    p += n;
    len -= static_cast<std::size_t>(n);
  }
  return true;
}

int sendCb(void* ctx, const unsigned char* buf, std::size_t len) {
  const ssize_t n = ::send(static_cast<Session*>(ctx)->fd, buf, len, 0);
  if (n >= 0) return static_cast<int>(n);
  return errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR ? MBEDTLS_ERR_SSL_WANT_WRITE
                                                                    : MBEDTLS_ERR_NET_SEND_FAILED;
}

int recvCb(void* ctx, unsigned char* buf, std::size_t len) {
  const ssize_t n = ::recv(static_cast<Session*>(ctx)->fd, buf, len, 0);
  if (n >= 0) return static_cast<int>(n);
  // ECONNREFUSED: an ICMP port unreachable from a server that is not (yet) listening; the
  // handshake timer resends, so it is just "nothing to read" here.
  return errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR || errno == ECONNREFUSED
             ? MBEDTLS_ERR_SSL_WANT_READ
             : MBEDTLS_ERR_NET_RECV_FAILED;
}

class Worker {
 public:
  Worker(const Options& o, const WorkerShare& share)
      : o_(o), share_(share), options_(o.proxy_uri.empty() ? encodeUriPath(o.path) : proxyUriOption(o.proxy_uri)) {}
  ~Worker() {
    if (epoll_ >= 0) ::close(epoll_);
  }
  Worker(const Worker&) = delete;
  Worker& operator=(const Worker&) = delete;

  int run() {
    HandshakeReport hs;
    if (std::string error = setup(); !error.empty()) {
      copyText(hs.setup_error, error);
      writeAll(share_.to_parent, &hs, sizeof hs);
      return 2;
    }
    handshakePhase(hs);
    if (o_.first_request) firstExchange(hs);
    if (!writeAll(share_.to_parent, &hs, sizeof hs)) return 1;
    char go = 0;
    if (::read(share_.from_parent, &go, 1) != 1) return 1;  // parent gone or said stop
    const std::uint64_t cpu_before = cpuMicros();
    loadPhase();
    load_.cpu_us = cpuMicros() - cpu_before;
    closeAll();
    return writeAll(share_.to_parent, &load_, sizeof load_) ? 0 : 1;
  }

 private:
  std::string setup() {
    if (std::string error = tls_.setup(o_); !error.empty()) return error;
    // A request is built in 256 bytes: header and token (8), the options, a per-request query (< 48).
    if (options_.size() + 8 + 48 > 256) return "--path or --proxy-uri is too long for one request";
    if (::inet_pton(AF_INET, o_.host.c_str(), &addr4_.sin_addr) == 1) {
      addr4_.sin_family = AF_INET;
      addr4_.sin_port = htons(o_.port);
    } else if (::inet_pton(AF_INET6, o_.host.c_str(), &addr6_.sin6_addr) == 1) {
      addr6_.sin6_family = AF_INET6;
      addr6_.sin6_port = htons(o_.port);
    } else {
      return fmt::format("--host {} is not a numeric IPv4 or IPv6 address", o_.host);
    }
    epoll_ = ::epoll_create1(EPOLL_CLOEXEC);
    if (epoll_ < 0) return fmt::format("epoll_create1: {}", std::strerror(errno));
    sessions_.reserve(share_.sessions);
    for (std::uint32_t i = 0; i < share_.sessions; ++i) sessions_.push_back(std::make_unique<Session>());
    return {};
  }

  /// Socket + mbedTLS context + first flight; false (with a reason) if it failed locally.
  bool start(std::uint32_t index, std::string& why) {
    Session& s = *sessions_[index];
    s.index = index;
    const bool v4 = addr4_.sin_family == AF_INET;
    s.fd = ::socket(v4 ? AF_INET : AF_INET6, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (s.fd < 0) {
      why = fmt::format("socket: {} (raise the open-files limit or lower --sessions)", std::strerror(errno));
      return false;
    }
    const auto* addr = v4 ? reinterpret_cast<const sockaddr*>(&addr4_) : reinterpret_cast<const sockaddr*>(&addr6_);
    const socklen_t addr_len = v4 ? sizeof addr4_ : sizeof addr6_;
    if (::connect(s.fd, addr, addr_len) != 0) {
      why = fmt::format("connect: {}", std::strerror(errno));
      return false;
    }
    epoll_event ev{};
    ev.events = EPOLLIN;
    ev.data.u32 = index;
    if (::epoll_ctl(epoll_, EPOLL_CTL_ADD, s.fd, &ev) != 0) {
      why = fmt::format("epoll_ctl: {}", std::strerror(errno));
      return false;
    }
    if (int rc = mbedtls_ssl_setup(&s.ssl, tls_.get()); rc != 0) {
      why = "mbedtls_ssl_setup: " + tlsError(rc);
      return false;
    }
    if (tls_.verifiesServer()) {
      const char* name = tls_.serverName().empty() ? nullptr : tls_.serverName().c_str();
      mbedtls_ssl_set_hostname(&s.ssl, name);
    }
    mbedtls_ssl_set_bio(&s.ssl, &s, sendCb, recvCb, nullptr);
    mbedtls_ssl_set_timer_cb(&s.ssl, &s.timer, mbedtls_timing_set_delay, mbedtls_timing_get_delay);
    s.slots.resize(o_.outstanding);
    s.state = Session::State::Handshaking;
    return true;
  }

  /// Advances one handshake; 1 established, 0 still going, -1 failed.
  int stepHandshake(Session& s, HandshakeReport& hs) {
    int rc = 0;
    for (int i = 0; i < 4; ++i) {
      rc = mbedtls_ssl_handshake(&s.ssl);
      if (rc != MBEDTLS_ERR_SSL_WANT_WRITE) break;
    }
    if (rc == 0) {
      s.state = Session::State::Established;
      if (hs.cipher_suite[0] == '\0') copyText(hs.cipher_suite, mbedtls_ssl_get_ciphersuite(&s.ssl));
      return 1;
    }
    if (rc == MBEDTLS_ERR_SSL_WANT_READ || rc == MBEDTLS_ERR_SSL_WANT_WRITE) return 0;
    if (hs.first_failure[0] == '\0') copyText(hs.first_failure, "handshake: " + tlsError(rc));
    kill(s);
    return -1;
  }

  void kill(Session& s) {
    if (s.fd >= 0) {
      ::epoll_ctl(epoll_, EPOLL_CTL_DEL, s.fd, nullptr);
      ::close(s.fd);
      s.fd = -1;
    }
    s.state = Session::State::Dead;
  }

  void handshakePhase(HandshakeReport& hs) {
    const auto t0 = Clock::now();
    const auto deadline = t0 + std::chrono::duration_cast<Clock::duration>(
                                   std::chrono::duration<double>(o_.handshake_timeout_s));
    hs.start_ns = monotonicNs(t0);
    std::vector<std::uint32_t> running;
    std::uint32_t next = 0;
    std::uint32_t finished = 0;
    auto settle = [&](int result) {
      if (result == 0) return;
      ++finished;
      if (result > 0) {
        ++hs.established;
        hs.end_ns = monotonicNs(Clock::now());
      } else {
        ++hs.failures;
      }
    };
    std::array<epoll_event, 256> events{};
    auto last_scan = t0;
    while (finished < share_.sessions && Clock::now() < deadline) {
      while (running.size() < share_.handshake_concurrency && next < share_.sessions) {
        std::string why;
        Session& s = *sessions_[next];
        if (!start(next, why)) {
          if (hs.first_failure[0] == '\0') copyText(hs.first_failure, why);
          kill(s);
          settle(-1);
        } else {
          running.push_back(next);
          settle(stepHandshake(s, hs));
        }
        ++next;
      }
      const int n = ::epoll_wait(epoll_, events.data(), static_cast<int>(events.size()), 5);
      for (int i = 0; i < n; ++i) {
        Session& s = *sessions_[events[static_cast<std::size_t>(i)].data.u32];
        if (s.state == Session::State::Handshaking) settle(stepHandshake(s, hs));
      }
      const auto now = Clock::now();
      if (now - last_scan >= std::chrono::milliseconds(5)) {
        last_scan = now;
        for (std::uint32_t index : running) {
          Session& s = *sessions_[index];
          if (s.state == Session::State::Handshaking && mbedtls_timing_get_delay(&s.timer) == 2) {
            ++hs.retransmissions;
            settle(stepHandshake(s, hs));
          }
        }
      }
      std::erase_if(running, [&](std::uint32_t index) {
        return sessions_[index]->state != Session::State::Handshaking;
      });
    }
    for (auto& s : sessions_) {
      if (s->state == Session::State::Handshaking || s->state == Session::State::Pending) {
        if (s->state == Session::State::Handshaking && hs.first_failure[0] == '\0') {
          copyText(hs.first_failure, "handshake did not finish within --handshake-timeout");
        }
        kill(*s);
        ++hs.failures;
      }
    }
    if (hs.end_ns == 0) hs.end_ns = monotonicNs(Clock::now());
  }

  /// The options of one request: the fixed Uri-Path, or Proxy-Uri, plus its own query with
  /// --unique-query (worker pid, session, token: unique within the run, the same on a retransmission).
  const std::vector<std::uint8_t>& requestOptions(const Session& s, const Slot& slot) {
    if (!o_.unique_query) return options_;
    std::array<char, 40> query{};
    const auto q = fmt::format_to_n(query.data(), query.size(), "n={:x}.{:x}.{:x}", pid_, s.index, slot.token);
    const std::string_view query_text(query.data(), std::min(q.size, query.size()));
    unsigned last = 0;
    if (o_.proxy_uri.empty()) {
      scratch_ = options_;
      if (!options_.empty()) last = kUriPath;
      appendOption(scratch_, last, kUriQuery, query_text);
    } else {
      scratch_.clear();
      proxy_uri_.assign(o_.proxy_uri).append(o_.proxy_uri.find('?') == std::string::npos ? "?" : "&").append(query_text);
      appendOption(scratch_, last, kProxyUri, proxy_uri_);
    }
    return scratch_;
  }

  void send(Session& s, Slot& slot) {
    std::array<std::uint8_t, 256> pdu{};
    const std::size_t len = encodeGet(pdu, slot.mid, slot.token, requestOptions(s, slot));
    const int rc = mbedtls_ssl_write(&s.ssl, pdu.data(), len);
    if (rc == static_cast<int>(len)) return;
    if (rc == MBEDTLS_ERR_SSL_WANT_WRITE) {
      ++load_.send_drops;  // the retransmission timer covers it
      return;
    }
    ++load_.dtls_errors;
    ++load_.sessions_lost;
    kill(s);
  }

  /// --first-request: one GET on every established session, each answered, before the sessions
  /// idle or take the load (a device that has talked once; until its first record a DTLS server
  /// keeps its last handshake flight, RFC 6347 §4.2.4). Bounded by --handshake-timeout.
  void firstExchange(HandshakeReport& hs) {
    const auto t0 = Clock::now();
    const auto deadline = t0 + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(o_.handshake_timeout_s));
    first_exchange_ = true;
    std::uint32_t asked = 0;
    for (auto& s : sessions_) {
      if (s->state != Session::State::Established) continue;
      s->slots.assign(1, Slot{});
      issue(*s, 0, t0);
      ++asked;
    }
    std::array<epoll_event, 512> events{};
    auto last_scan = t0;
    for (auto now = t0; first_answers_ < asked && now < deadline; now = Clock::now()) {
      const int n = ::epoll_wait(epoll_, events.data(), static_cast<int>(events.size()), 10);
      const auto after = Clock::now();
      dispatch(events.data(), n, after, last_scan);
    }
    first_exchange_ = false;
    hs.first_answers = first_answers_;
    for (auto& s : sessions_) s->slots.assign(o_.outstanding, Slot{});
    load_ = LoadReport{};  // the load phase counts its own requests only
  }

  void issue(Session& s, std::size_t index, Clock::time_point now) {
    Slot& slot = s.slots[index];
    slot.busy = true;
    slot.acked = false;
    slot.retransmits = 0;
    slot.mid = s.next_mid++;
    slot.token = (s.next_seq++ << 8) | static_cast<std::uint32_t>(index);
    slot.timeout = std::chrono::milliseconds(o_.ack_timeout_ms);
    slot.first_sent = slot.last_sent = now;
    send(s, slot);
  }

  Slot* slotByMid(Session& s, std::uint16_t mid) {
    for (auto& slot : s.slots) {
      if (slot.busy && slot.mid == mid) return &slot;
    }
    return nullptr;
  }

  void onMessage(Session& s, const std::uint8_t* data, std::size_t len, Clock::time_point now) {
    const auto h = parseHeader(data, len);
    if (!h) {
      ++load_.dtls_errors;
      return;
    }
    if (h->type == CoapType::Rst) {
      if (Slot* slot = slotByMid(s, h->mid)) {
        ++load_.resets;
        issue(s, static_cast<std::size_t>(slot - s.slots.data()), now);
      }
      return;
    }
    if (h->code == 0) {  // empty ACK: the response comes separately
      if (Slot* slot = slotByMid(s, h->mid); slot && h->type == CoapType::Ack && !slot->acked) {
        slot->acked = true;
        ++load_.empty_acks;
      }
      return;
    }
    if (h->type == CoapType::Con) {
      const auto ack = emptyAck(h->mid);
      mbedtls_ssl_write(&s.ssl, ack.data(), ack.size());
    }
    if (!h->token) return;
    const std::size_t index = *h->token & 0xFFU;
    if (index >= s.slots.size()) return;
    Slot& slot = s.slots[index];
    if (!slot.busy || slot.token != *h->token || (h->type == CoapType::Ack && slot.mid != h->mid)) return;
    const unsigned cls = h->code >> 5;
    if (cls == 2) {
      ++load_.completed;
      load_.response_bytes += len;
      const auto micros = std::chrono::duration_cast<std::chrono::microseconds>(now - slot.first_sent).count();
      load_.latency.record(static_cast<std::uint64_t>(std::max<std::int64_t>(micros, 0)));
    } else if (cls == 4) {
      ++load_.client_errors;
    } else {
      ++load_.server_errors;
    }
    if (first_exchange_) {  // answered: the session stays quiet now
      slot.busy = false;
      ++first_answers_;
      return;
    }
    issue(s, index, now);
  }

  void drain(Session& s, Clock::time_point now) {
    std::array<std::uint8_t, 2048> buf{};
    for (int i = 0; i < 32 && s.state == Session::State::Established; ++i) {
      const int n = mbedtls_ssl_read(&s.ssl, buf.data(), buf.size());
      if (n > 0) {
        onMessage(s, buf.data(), static_cast<std::size_t>(n), now);
        continue;
      }
      if (n == MBEDTLS_ERR_SSL_WANT_READ || n == MBEDTLS_ERR_SSL_WANT_WRITE || n == MBEDTLS_ERR_SSL_TIMEOUT) break;
      if (n != 0 && n != MBEDTLS_ERR_SSL_PEER_CLOSE_NOTIFY) ++load_.dtls_errors;
      ++load_.sessions_lost;
      kill(s);
    }
  }

  void scanTimers(Clock::time_point now) {
    // Only the active sessions have requests: idle ones cost the generator nothing per scan.
    for (std::uint32_t k = 0; k < share_.active && k < sessions_.size(); ++k) {
      Session& s = *sessions_[k];
      if (s.state != Session::State::Established) continue;
      for (std::size_t i = 0; i < s.slots.size() && s.state == Session::State::Established; ++i) {
        Slot& slot = s.slots[i];
        if (!slot.busy) continue;
        if (slot.acked) {
          if (now - slot.first_sent > kSeparateResponseLimit) {
            ++load_.timeouts;
            issue(s, i, now);
          }
        } else if (now - slot.last_sent >= slot.timeout) {
          if (slot.retransmits >= kMaxRetransmit) {
            ++load_.timeouts;
            issue(s, i, now);
          } else {
            ++slot.retransmits;
            ++load_.retransmissions;
            slot.timeout *= 2;
            slot.last_sent = now;
            send(s, slot);
          }
        }
      }
    }
  }

  /// Reads the sessions epoll reported ready and, every kScanInterval, runs the request timers.
  void dispatch(const epoll_event* events, int n, Clock::time_point after, Clock::time_point& last_scan) {
    for (int i = 0; i < n; ++i) {
      Session& s = *sessions_[events[i].data.u32];
      if (s.state == Session::State::Established) drain(s, after);
    }
    if (after - last_scan >= kScanInterval) {
      last_scan = after;
      scanTimers(after);
    }
  }

  void loadPhase() {
    const auto t0 = Clock::now();
    const auto end = t0 + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(o_.duration_s));
    for (std::uint32_t k = 0; k < share_.active && k < sessions_.size(); ++k) {
      Session& s = *sessions_[k];
      for (std::size_t i = 0; i < s.slots.size() && s.state == Session::State::Established; ++i) issue(s, i, t0);
    }
    std::array<epoll_event, 512> events{};
    auto last_scan = t0;
    for (auto now = t0; now < end; now = Clock::now()) {
      const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(end - now).count();
      const int n = ::epoll_wait(epoll_, events.data(), static_cast<int>(events.size()),
                                 static_cast<int>(std::clamp<std::int64_t>(left, 0, 10)));
      const auto after = Clock::now();
      if (after >= end) break;  // responses after the end are not counted
      dispatch(events.data(), n, after, last_scan);
    }
  }

  /// Tells the server that the sessions are over, so that back-to-back runs start clean.
  void closeAll() {
    for (auto& s : sessions_) {
      if (s->state == Session::State::Established) mbedtls_ssl_close_notify(&s->ssl);
      kill(*s);
    }
  }

  const Options& o_;
  WorkerShare share_;
  std::vector<std::uint8_t> options_;  ///< Uri-Path, encoded once (empty with --proxy-uri)
  std::vector<std::uint8_t> scratch_;  ///< per-request options (--unique-query, --proxy-uri)
  std::string proxy_uri_;
  const pid_t pid_ = ::getpid();
  TlsConfig tls_;
  sockaddr_in addr4_{};
  sockaddr_in6 addr6_{};
  int epoll_ = -1;
  std::vector<std::unique_ptr<Session>> sessions_;
  LoadReport load_;
  bool first_exchange_ = false;
  std::uint32_t first_answers_ = 0;
};

}  // namespace

int runWorker(const Options& options, const WorkerShare& share) noexcept {
  try {
    auto worker = std::make_unique<Worker>(options, share);
    return worker->run();
  } catch (const std::exception& e) {
    fmt::print(stderr, "coap-edge-loadgen worker: {}\n", e.what());
    return 2;
  }
}

}  // namespace coap_edge::bench
