// The upstream session: the gateway as a DTLS client of the upstream service, on the server's own
// context, so that requests the upstream sends back over it reach the same resources (role
// reversal) and our requests to it use the same client machinery (server_client.cpp). libcoap
// does the handshake, retransmission, block-wise and DTLS Connection ID; this file sets the
// credentials up (PSK, or X.509 with the server's certificate verified against the CA, its
// validity and the configured name; libcoap keeps this client setup apart from the downstream
// server's, cmake/patches/0007) and turns libcoap's session events into UpstreamEvents
// delivered from process().

#include "coap/server.h"
#include "coap/session_util.h"

#include "tls/certificates.h"

#include <coap3/coap.h>
#include <mbedtls/ssl.h>
#include <mbedtls/x509_crt.h>

#include <netdb.h>

#include <cstring>

namespace coap_edge::coap {
namespace {

// CoAP retransmissions of one confirmable message to the upstream (RFC 7252's default). The
// DTLS handshake's own timers are the context's ([downstream] dtls_retransmit_min/max).
constexpr std::uint8_t kMaxRetransmit = 4;

}  // namespace

struct UpstreamCallbacks {
  /// Mbed TLS's verify callback for the upstream session, for each certificate of the server's
  /// chain (its own last, at depth 0). libcoap's callback (on the config) judges the chain and
  /// validity first; we add the name: libcoap clears Mbed TLS's name mismatch flag, and with an
  /// IP address in uri no name is checked at all, so the server's certificate must carry
  /// server_name here. The first reason for a refusal is kept for the DTLS_ERROR event.
  static int verify(void* arg, mbedtls_x509_crt* crt, int depth, std::uint32_t* flags) noexcept {
    auto* session = static_cast<coap_session_t*>(arg);
    bool checked = false;
    const int ret = detail::libcoapVerify(session, crt, depth, flags, checked);
    if (!checked) return ret;
    try {
      Server* self = detail::serverOf(session);
      if (self == nullptr || session != self->upstream_) {
        *flags |= MBEDTLS_X509_BADCERT_OTHER;
        return ret;
      }
      if (depth == 0 && !tls::certificateNamesHost({crt->raw.p, crt->raw.len}, self->upstream_sni_)) {
        *flags |= MBEDTLS_X509_BADCERT_CN_MISMATCH;
      }
      if (*flags != 0 && self->upstream_refusal_.empty()) {
        self->upstream_refusal_ = "server certificate refused: " + detail::verifyInfo(*flags);
        if ((*flags & MBEDTLS_X509_BADCERT_CN_MISMATCH) != 0) {
          self->upstream_refusal_ = "server certificate refused: it is not for '" + self->upstream_sni_ + "'";
        } else if (depth != 0) {
          self->upstream_refusal_ += " (certificate at depth " + std::to_string(depth) + ")";
        }
      }
    } catch (...) {
      *flags |= MBEDTLS_X509_BADCERT_OTHER;  // out of memory: refuse rather than guess
    }
    return ret;
  }
};

bool Server::connectUpstream(const UpstreamTarget& target, UpstreamHandler events, std::string& error) {
  disconnectUpstream();
  coap_address_t dst;
  if (!detail::numericAddress(target.host, target.port, dst)) {
    error = "not a numeric address: " + target.host;
    return false;
  }
  // No SNI for an IP literal (RFC 6066 §3 allows only host names there).
  upstream_sni_ = target.server_name;
  char* sni = upstream_sni_.empty() ? nullptr : upstream_sni_.data();
  upstream_refusal_.clear();
  coap_session_t* session = nullptr;
  if (target.pki) {
    if (upstream_sni_.empty()) {
      error = "X.509 needs the name the server's certificate must carry";
      return false;
    }
    upstream_pki_paths_ = {target.pki->certificate.string(), target.pki->private_key.string(), target.pki->ca.string()};
    coap_dtls_pki_t pki;
    std::memset(&pki, 0, sizeof(pki));
    pki.version = COAP_DTLS_PKI_SETUP_VERSION;
    // The upstream must prove who it is: a certificate that chains to our CA, inside its
    // validity, not self-signed, and (UpstreamCallbacks::verify) for server_name. Never the
    // permissive settings of libcoap's example client.
    pki.verify_peer_cert = 1;
    pki.check_common_ca = 1;
    pki.allow_self_signed = 0;
    pki.allow_expired_certs = 0;
    pki.cert_chain_validation = 1;
    pki.cert_chain_verify_depth = 3;
    pki.check_cert_revocation = 0;  // no CRL distribution for the upstream
    pki.allow_no_crl = 1;
    pki.allow_expired_crl = 0;
    pki.allow_bad_md_hash = 0;
    pki.allow_short_rsa_length = 0;
    pki.use_cid = target.use_cid ? 1 : 0;
    pki.client_sni = sni;
    pki.pki_key.key_type = COAP_PKI_KEY_PEM;
    pki.pki_key.key.pem.public_cert = upstream_pki_paths_[0].c_str();
    pki.pki_key.key.pem.private_key = upstream_pki_paths_[1].c_str();
    pki.pki_key.key.pem.ca_file = upstream_pki_paths_[2].c_str();
    session = coap_new_client_session_pki(context_.get(), nullptr, &dst, COAP_PROTO_DTLS, &pki);
    if (session != nullptr) {
      // libcoap made the session's TLS context and sent the ClientHello; the server's
      // certificate comes a round trip later, so the hook is in place before it can arrive.
      coap_tls_library_t lib{};
      void* tls = coap_session_get_tls(session, &lib);
      if (tls == nullptr || lib != COAP_TLS_LIBRARY_MBEDTLS) {
        coap_session_release(session);
        error = "libcoap made no Mbed TLS context for the upstream session";
        return false;
      }
      mbedtls_ssl_set_verify(static_cast<mbedtls_ssl_context*>(tls), &UpstreamCallbacks::verify, session);
    }
  } else {
    coap_dtls_cpsk_t cpsk;
    std::memset(&cpsk, 0, sizeof(cpsk));
    cpsk.version = COAP_DTLS_CPSK_SETUP_VERSION;
    cpsk.use_cid = target.use_cid ? 1 : 0;
    cpsk.client_sni = sni;
    // libcoap copies identity and key into the session during this call.
    cpsk.psk_info.identity.s = reinterpret_cast<const uint8_t*>(target.psk_identity.data());
    cpsk.psk_info.identity.length = target.psk_identity.size();
    cpsk.psk_info.key.s = target.psk_key.span().data();
    cpsk.psk_info.key.length = target.psk_key.span().size();
    session = coap_new_client_session_psk2(context_.get(), nullptr, &dst, COAP_PROTO_DTLS, &cpsk);
  }
  if (session == nullptr) {
    error = "cannot start a DTLS session to " + target.host + ":" + std::to_string(target.port);
    return false;
  }
  coap_session_set_max_retransmit(session, kMaxRetransmit);
  upstream_ = session;
  upstream_up_ = false;
  upstream_events_ = std::move(events);
  upstream_peer_ = PeerIdentity{};
  upstream_recent_.clear();  // Message IDs are per session: the new one starts afresh
  upstream_peer_.kind = target.pki ? AuthKind::x509 : AuthKind::psk;
  upstream_peer_.identity = target.identity;
  upstream_peer_.address = detail::remoteText(session);
  upstream_heard_ = std::chrono::steady_clock::now();
  ++upstream_stats_.connects;
  return true;
}

void Server::disconnectUpstream() {
  if (upstream_ == nullptr) return;
  coap_session_t* s = upstream_;
  upstream_ = nullptr;
  upstream_up_ = false;
  upstream_recent_.clear();
  upstream_events_ = nullptr;
  // Our requests still waiting on it end now (their callbacks see "failed").
  for (std::size_t i = 0; i < pending_requests_.size();) {
    if (pending_requests_[i].session == s) {
      ClientResult r;
      r.outcome = ClientOutcome::failed;
      r.error = "upstream session closed";
      completeRequest(i, std::move(r));
    } else {
      ++i;
    }
  }
  coap_session_release(s);  // sends close_notify when it was established
}

const void* Server::upstreamSession() const { return upstream_up_ ? upstream_ : nullptr; }

bool Server::pingUpstream() {
  if (!upstream_up_ || upstream_ == nullptr) return false;
  ++upstream_stats_.pings;
  return coap_session_send_ping(upstream_) != COAP_INVALID_MID;
}

std::chrono::steady_clock::duration Server::upstreamIdle() const {
  return std::chrono::steady_clock::now() - upstream_heard_;
}

void Server::upstreamEnded(UpstreamEvent event, std::string detail) {
  if (upstream_ == nullptr) return;
  ++upstream_stats_.failures;
  upstream_up_ = false;
  upstream_pending_.emplace_back(event, std::move(detail));
}

bool Server::onUpstreamEvent(coap_session_t* session, int event) {
  if (session != upstream_ || upstream_ == nullptr) return false;
  switch (event) {
    case COAP_EVENT_DTLS_CONNECTED:
      upstream_up_ = true;
      upstream_heard_ = std::chrono::steady_clock::now();
      ++upstream_stats_.established;
      upstream_peer_.address = detail::remoteText(session);
      upstream_pending_.emplace_back(UpstreamEvent::connected, upstream_peer_.address);
      break;
    case COAP_EVENT_DTLS_ERROR:
      upstreamEnded(UpstreamEvent::failed, upstream_refusal_.empty()
                                               ? std::string("DTLS handshake failed (credentials, certificate or name)")
                                               : "DTLS handshake failed: " + upstream_refusal_);
      break;
    case COAP_EVENT_DTLS_CLOSED:
      upstreamEnded(UpstreamEvent::closed, "the upstream closed the DTLS session");
      break;
    case COAP_EVENT_SESSION_FAILED:
      upstreamEnded(UpstreamEvent::failed, "no answer from the upstream");
      break;
    case COAP_EVENT_SESSION_CLOSED:
      upstreamEnded(UpstreamEvent::closed, "session closed");
      break;
    default:
      break;
  }
  return true;
}

}  // namespace coap_edge::coap
