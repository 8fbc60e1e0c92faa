// What became of the DTLS handshakes that did not end in a session: each failure is counted once,
// by a reason an operator can act on, and logged at most once per identity (or source address)
// per minute, with the identity and the peer and never any key material. Also the per-address
// handshake limit for X.509 handshakes: with Mbed TLS, libcoap's validate_cn_call_back only runs
// for certificates that already failed, so the hook is the per-session verify callback, which
// runs when the peer's certificate arrives (after the cookie exchange verified its address).

#include "coap/server.h"
#include "coap/session_util.h"

#include "common/log.h"
#include "tls/certificates.h"

#include <coap3/coap.h>
#include <mbedtls/oid.h>
#include <mbedtls/ssl.h>
#include <mbedtls/x509_crt.h>

#include <arpa/inet.h>
#include <fmt/chrono.h>

#include <array>
#include <chrono>
#include <ctime>

namespace coap_edge::coap {
namespace {

using detail::remoteIp;
using detail::serverOf;
using detail::verifyInfo;

constexpr std::string_view kLogTag = "coap";

/// "192.0.2.1:5684" or "[2001:db8::1]:5684" without the port: failures of anonymous peers are
/// throttled per source address, whatever port each attempt comes from.
std::string_view hostOf(std::string_view address) {
  const std::size_t colon = address.rfind(':');
  if (colon == std::string_view::npos || address.find(':') != colon) {
    if (address.size() > 2 && address.front() == '[') {
      const std::size_t close = address.find(']');
      if (close != std::string_view::npos) return address.substr(1, close - 1);
    }
    return address;
  }
  return address.substr(0, colon);
}

std::string commonName(const mbedtls_x509_crt& crt) {
  const mbedtls_asn1_named_data* cn = mbedtls_asn1_find_named_data(
      &crt.subject, MBEDTLS_OID_AT_CN, MBEDTLS_OID_SIZE(MBEDTLS_OID_AT_CN));
  if (cn == nullptr) return {};
  return std::string(reinterpret_cast<const char*>(cn->val.p), cn->val.len);
}


policy::Nanos steadyNanos(std::chrono::steady_clock::time_point t) {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(t.time_since_epoch()).count();
}

}  // namespace

namespace detail {

int libcoapVerify(coap_session_t* session, mbedtls_x509_crt* crt, int depth, std::uint32_t* flags,
                  bool& checked) noexcept {
  coap_tls_library_t lib{};
  auto* ssl = static_cast<mbedtls_ssl_context*>(coap_session_get_tls(session, &lib));
  checked = ssl != nullptr && lib == COAP_TLS_LIBRARY_MBEDTLS;
  if (!checked) {
    *flags |= MBEDTLS_X509_BADCERT_OTHER;
    return 0;
  }
  const mbedtls_ssl_config* conf = mbedtls_ssl_context_get_config(ssl);
  if (conf == nullptr || conf->MBEDTLS_PRIVATE(f_vrfy) == nullptr) return 0;
  return conf->MBEDTLS_PRIVATE(f_vrfy)(conf->MBEDTLS_PRIVATE(p_vrfy), crt, depth, flags);
}

std::string verifyInfo(std::uint32_t flags) {
  std::array<char, 512> buf{};
  if (mbedtls_x509_crt_verify_info(buf.data(), buf.size(), "", flags) <= 0) return fmt::format("flags {:#x}", flags);
  std::string text(buf.data());
  if (const std::size_t nl = text.find('\n'); nl != std::string::npos) text.resize(nl);
  return text;
}

}  // namespace detail

struct HandshakeCallbacks {
  /// Mbed TLS's per-context verify callback, called for each certificate of the peer's chain
  /// (root first, the peer's own last at depth 0). libcoap's callback (on the config) decides
  /// first; we add the per-address limit and note a refusal for the failure's reason.
  static int verify(void* arg, mbedtls_x509_crt* crt, int depth, std::uint32_t* flags) noexcept {
    auto* session = static_cast<coap_session_t*>(arg);
    bool checked = false;
    const int ret = detail::libcoapVerify(session, crt, depth, flags, checked);
    if (!checked) return ret;
    try {
      Server* self = serverOf(session);
      SessionEntry* e = self == nullptr ? nullptr : self->sessions_.find(session);
      if (e == nullptr || e->established) return ret;
      if (!e->address_checked) {
        e->address_checked = true;
        if (self->handshake_gate_ && !self->handshake_gate_(remoteIp(session))) {
          CE_LOG_DEBUG("refusing X.509 handshake from {}: handshakes_per_address exceeded", e->peer.address);
          ++self->stats_.handshakes_rate_limited;
          e->failure_counted = true;  // its DTLS_ERROR must not count it a second time
          *flags |= MBEDTLS_X509_BADCERT_OTHER;
          return ret;
        }
      }
      if (*flags != 0 && !e->certificate_rejected && !e->failure_counted) {
        e->certificate_rejected = true;
        e->failure_detail = verifyInfo(*flags);
        if (depth != 0) e->failure_detail += fmt::format(" (certificate at depth {})", depth);
      }
      // The peer's own certificate comes last: name it in the failure's log line, or keep what
      // identifies the session once the handshake completes (Mbed TLS does not keep it).
      if (depth == 0 && e->certificate_rejected) e->peer.identity = commonName(*crt);
      if (depth == 0 && *flags == 0 && !e->certificate_rejected) {
        e->verified_certificate = VerifiedCertificate{commonName(*crt), tls::serialHex({crt->serial.p, crt->serial.len})};
      }
    } catch (...) {
      *flags |= MBEDTLS_X509_BADCERT_OTHER;  // out of memory: refuse rather than guess
    }
    return ret;
  }
};

void Server::hookCertificateChecks() {
  if (unhooked_.empty()) return;
  for (coap_session_t* s : unhooked_) {
    // A session may already be gone (its pointer then finds nothing, or a newer DTLS session
    // that needs the hook as well).
    if (sessions_.find(s) == nullptr) continue;
    coap_tls_library_t lib{};
    void* tls = coap_session_get_tls(s, &lib);
    if (tls == nullptr || lib != COAP_TLS_LIBRARY_MBEDTLS) continue;
    // The peer's certificate comes a round trip after the ServerHello that made this context,
    // so it is hooked before any certificate can arrive.
    mbedtls_ssl_set_verify(static_cast<mbedtls_ssl_context*>(tls), &HandshakeCallbacks::verify, s);
  }
  unhooked_.clear();
}

void Server::countHandshakeFailure(SessionEntry& entry, HandshakeFailure reason) {
  entry.failure_counted = true;
  switch (reason) {
    case HandshakeFailure::unknown_identity:
      ++stats_.handshakes_unknown_identity;
      break;
    case HandshakeFailure::bad_key:
      ++stats_.handshakes_bad_key;
      break;
    case HandshakeFailure::bad_certificate:
      ++stats_.handshakes_bad_certificate;
      break;
    case HandshakeFailure::timeout:
      ++stats_.handshakes_timeout;
      break;
    case HandshakeFailure::dtls_error:
      ++stats_.handshakes_dtls_error;
      break;
  }
  logHandshakeFailure(entry, reason);
}

void Server::onHandshakeError(SessionEntry& entry) {
  if (entry.established || entry.refused) return;
  // Our side failed the handshake. After a PSK was handed out, Mbed TLS fails it only when the
  // peer's Finished does not verify (bad_record_mac): the peer holds another key.
  const bool psk_handed_out = entry.peer.key_generation != 0;
  if (!entry.failure_counted) {
    countHandshakeFailure(entry, psk_handed_out            ? HandshakeFailure::bad_key
                                 : entry.certificate_rejected ? HandshakeFailure::bad_certificate
                                                              : HandshakeFailure::dtls_error);
  }
  // Most likely the peer holds the identity's other key (rotation): let the source offer that
  // one next time.
  if (psk_handed_out) credentials_.handshakeResult(entry.peer.identity, entry.peer.key_generation, false);
}

void Server::onHandshakeAborted(SessionEntry& entry) {
  if (entry.established || entry.refused || entry.failure_counted) return;
  // libcoap reports the same DTLS_CLOSED for the peer's alert (it refused our certificate, our
  // suites, ...) and for its own handshake timeout (retransmissions of our flight from
  // dtls_retransmit_min on, exhausted). An alert comes a round trip after our flight, well
  // before our first retransmission is due; the timeout cannot come before it.
  const bool stalled = std::chrono::steady_clock::now() - entry.since >= handshake_give_up_;
  countHandshakeFailure(entry, stalled ? HandshakeFailure::timeout : HandshakeFailure::dtls_error);
}

void Server::onHandshakeGone(SessionEntry& entry) {
  // Neither connected nor failed nor refused: libcoap gave up waiting (retransmissions
  // exhausted or the session idle), i.e. the peer stopped half way.
  if (entry.established || entry.refused || entry.failure_counted) return;
  countHandshakeFailure(entry, HandshakeFailure::timeout);
}

void Server::logHandshakeFailure(const SessionEntry& entry, HandshakeFailure reason) {
  constexpr log::Level kLevel = log::Level::notice;
  if (!log::enabled(kLevel)) return;
  const std::string key = entry.peer.identity.empty() ? "ip:" + std::string(hostOf(entry.peer.address))
                                                      : "id:" + entry.peer.identity;
  const auto now = std::chrono::steady_clock::now();
  const policy::ThrottleDecision d = failure_log_.admit(key, steadyNanos(now));
  if (!d.log) return;
  std::string more;
  if (d.suppressed > 0) {
    // When the previous line was written, on the wall clock of the log.
    const auto ago = std::chrono::nanoseconds(steadyNanos(now) - d.since);
    const std::time_t then =
        std::chrono::system_clock::to_time_t(std::chrono::system_clock::now() -
                                             std::chrono::duration_cast<std::chrono::system_clock::duration>(ago));
    std::tm local{};
    localtime_r(&then, &local);
    more = fmt::format(" ({} more since {:%H:%M:%S})", d.suppressed, local);
  }
  const std::string who = log::printable(entry.peer.identity);
  const std::string& from = entry.peer.address;
  switch (reason) {
    case HandshakeFailure::unknown_identity:
      CE_LOG_NOTICE("PSK handshake from {} with unknown or revoked identity '{}'{}", from, who, more);
      break;
    case HandshakeFailure::bad_key:
      CE_LOG_NOTICE("PSK handshake of '{}' from {} failed: bad key (the peer's key is not key generation {}){}", who,
                    from, entry.peer.key_generation, more);
      break;
    case HandshakeFailure::bad_certificate:
      CE_LOG_NOTICE("X.509 handshake from {} failed: bad certificate '{}': {}{}", from, who, entry.failure_detail, more);
      break;
    case HandshakeFailure::timeout:
      CE_LOG_NOTICE("DTLS handshake from {}{} timed out half way{}", from,
                    who.empty() ? std::string() : fmt::format(" ('{}')", who), more);
      break;
    case HandshakeFailure::dtls_error:
      CE_LOG_NOTICE("DTLS handshake from {}{} failed (protocol error or the peer's alert){}", from,
                    who.empty() ? std::string() : fmt::format(" ('{}')", who), more);
      break;
  }
}

}  // namespace coap_edge::coap
