// The upstream session: the gateway as a DTLS client of the upstream service, on the server's own
// context, so that requests the upstream sends back over it reach the same resources (role
// reversal) and our requests to it use the same client machinery (server_client.cpp). libcoap
// does the handshake, retransmission, block-wise and DTLS Connection ID; this file sets up the
// PSK credentials (X.509 is refused: libcoap keeps one certificate setup per context, which
// the downstream server owns) and turns libcoap's session events into UpstreamEvents
// delivered from process().

#include "coap/server.h"
#include "coap/session_util.h"


#include <coap3/coap.h>

#include <netdb.h>

#include <cstring>

namespace coap_edge::coap {
namespace {

// CoAP retransmissions of one confirmable message to the upstream (RFC 7252's default). The
// DTLS handshake's own timers are the context's ([downstream] dtls_retransmit_min/max).
constexpr std::uint8_t kMaxRetransmit = 4;

}  // namespace

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
  coap_session_t* session = nullptr;
  {
    // PSK only: a client certificate would replace the downstream server's (one PKI setup per
    // libcoap context), so the agent refuses X.509 for the upstream before it gets here.
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
  upstream_peer_.kind = AuthKind::psk;
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
      upstreamEnded(UpstreamEvent::failed, "DTLS handshake failed (credentials, certificate or name)");
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
