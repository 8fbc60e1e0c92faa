// The agent as a CoAP client on the server's own context: requests to nodes (fetching
// /.well-known/core after discovery, RD simple registration, the relay), over plain coap or over
// a DTLS-PSK session of ours to a coaps node ([[relay.credentials]]). libcoap does retransmission and
// block-wise reassembly; this file matches responses to requests by token, bounds every exchange
// in time, and hands results back from process(), outside libcoap's callbacks.

#include "coap/server.h"
#include "coap/session_util.h"

#include "common/log.h"

#include <coap3/coap.h>

#include <netdb.h>
#include <sys/socket.h>

#include <algorithm>
#include <array>
#include <cstring>

namespace coap_edge::coap {
namespace {

constexpr std::string_view kLogTag = "coap";
// A node's client session is kept this long after its last request, for the next one.
constexpr std::chrono::seconds kClientSessionIdle{30};
// Retransmissions of one CON request before libcoap gives up (RFC 7252 default: 4).
constexpr std::uint8_t kMaxRetransmit = 3;

std::string tokenOf(const coap_pdu_t* pdu) {
  const coap_bin_const_t token = coap_pdu_get_token(pdu);
  return std::string(reinterpret_cast<const char*>(token.s), token.length);
}

Code codeOf(const coap_pdu_t* pdu) {
  const unsigned raw = coap_pdu_get_code(pdu);
  return static_cast<Code>((raw >> 5) * 100 + (raw & 0x1f));
}

std::optional<std::uint32_t> uintOption(const coap_pdu_t* pdu, coap_option_num_t number, unsigned max_len) {
  coap_opt_iterator_t it;
  const coap_opt_t* opt = coap_check_option(pdu, number, &it);
  if (opt == nullptr || coap_opt_length(opt) > max_len) return std::nullopt;
  return coap_decode_var_bytes(coap_opt_value(opt), coap_opt_length(opt));
}

// Method's values are the request codes 0.01..0.07 themselves (RFC 7252 §12.1.1).
coap_pdu_code_t requestCode(Method m) { return static_cast<coap_pdu_code_t>(m); }
static_assert(static_cast<unsigned>(Method::get) == COAP_REQUEST_CODE_GET &&
              static_cast<unsigned>(Method::del) == COAP_REQUEST_CODE_DELETE &&
              static_cast<unsigned>(Method::ipatch) == COAP_REQUEST_CODE_IPATCH);

void releasePayload(coap_session_t*, void* app_ptr) { delete static_cast<std::string*>(app_ptr); }

void addSegments(coap_pdu_t* pdu, coap_option_num_t number, std::string_view text, char separator) {
  while (!text.empty()) {
    const std::size_t cut = text.find(separator);
    const std::string_view part = text.substr(0, cut);
    if (!part.empty() || number == COAP_OPTION_URI_PATH) {
      coap_add_option(pdu, number, part.size(), reinterpret_cast<const uint8_t*>(part.data()));
    }
    if (cut == std::string_view::npos) break;
    text.remove_prefix(cut + 1);
  }
}

}  // namespace

struct ClientCallbacks {
  static Server* serverOf(const coap_session_t* session) { return detail::serverOf(session); }

  static void pong(coap_session_t* session, const coap_pdu_t* /*received*/, const coap_mid_t /*mid*/) noexcept {
    Server* self = serverOf(session);
    if (self != nullptr && session == self->upstream_) self->upstream_heard_ = std::chrono::steady_clock::now();
  }

  static std::size_t find(Server& self, const coap_session_t* session, const std::string& token) {
    for (std::size_t i = 0; i < self.pending_requests_.size(); ++i) {
      const auto& p = self.pending_requests_[i];
      if (p.session == session && p.token == token) return i;
    }
    return self.pending_requests_.size();
  }

  static coap_response_t response(coap_session_t* session, const coap_pdu_t* /*sent*/, const coap_pdu_t* received,
                                  const coap_mid_t /*mid*/) noexcept {
    try {
      Server* self = serverOf(session);
      if (self == nullptr) return COAP_RESPONSE_OK;
      if (session == self->upstream_) self->upstream_heard_ = std::chrono::steady_clock::now();
      const std::string token = tokenOf(received);
      const std::size_t i = find(*self, session, token);
      Server::Observation* observation = nullptr;
      if (i == self->pending_requests_.size()) {
        for (auto& o : self->observations_) {
          if (o.session == session && o.token == token) observation = &o;
        }
        // Not ours (late, after a timeout, or unsolicited): acknowledge and drop it. A
        // notification for an observation we cancelled is refused, so the node stops.
        if (observation == nullptr) {
          coap_opt_iterator_t it;
          return coap_check_option(received, COAP_OPTION_OBSERVE, &it) != nullptr ? COAP_RESPONSE_FAIL
                                                                                   : COAP_RESPONSE_OK;
        }
      }
      ClientResult result;
      result.outcome = ClientOutcome::response;
      result.response.code = codeOf(received);
      if (auto cf = uintOption(received, COAP_OPTION_CONTENT_FORMAT, 2)) {
        result.response.content_format = static_cast<std::uint16_t>(*cf);
      }
      result.response.max_age = uintOption(received, COAP_OPTION_MAXAGE, 4);
      coap_opt_iterator_t it;
      if (const coap_opt_t* etag = coap_check_option(received, COAP_OPTION_ETAG, &it)) {
        result.response.etag.emplace(reinterpret_cast<const char*>(coap_opt_value(etag)), coap_opt_length(etag));
      }
      // Location-Path of a 2.01 (an RD registration's resource), segments joined by '/'.
      coap_option_iterator_init(received, &it, COAP_OPT_ALL);
      while (const coap_opt_t* opt = coap_option_next(&it)) {
        if (it.number != COAP_OPTION_LOCATION_PATH) continue;
        if (!result.response.location_path.empty()) result.response.location_path.push_back('/');
        result.response.location_path.append(reinterpret_cast<const char*>(coap_opt_value(opt)), coap_opt_length(opt));
      }
      size_t len = 0;
      const uint8_t* data = nullptr;
      size_t offset = 0;
      size_t total = 0;
      if (coap_get_data_large(received, &len, &data, &offset, &total) != 0 && data != nullptr) {
        result.response.payload.assign(reinterpret_cast<const char*>(data), len);
      }
      if (observation != nullptr) {
        self->notifyObservation(*observation, std::move(result));
        return COAP_RESPONSE_OK;
      }
      self->completeRequest(i, std::move(result));
    } catch (...) {
      // Out of memory building the result: the request times out instead.
    }
    return COAP_RESPONSE_OK;
  }

  static void nack(coap_session_t* session, const coap_pdu_t* sent, const coap_nack_reason_t reason,
                   const coap_mid_t /*mid*/) noexcept {
    try {
      Server* self = serverOf(session);
      if (self == nullptr || sent == nullptr) return;
      // Our keepalive ping (an empty CON) went unanswered: the upstream is gone.
      if (session == self->upstream_ && coap_pdu_get_code(sent) == COAP_EMPTY_CODE &&
          reason == COAP_NACK_TOO_MANY_RETRIES) {
        self->upstreamEnded(UpstreamEvent::failed, "keepalive ping unanswered");
        return;
      }
      const std::string token = tokenOf(sent);
      const std::size_t i = find(*self, session, token);
      if (i == self->pending_requests_.size()) {
        // A notification we acknowledged is not a request; but a node that stops answering a
        // re-registration ends the observation.
        for (auto& o : self->observations_) {
          if (o.session == session && o.token == token) {
            ClientResult gone;
            gone.outcome = reason == COAP_NACK_RST ? ClientOutcome::reset : ClientOutcome::timeout;
            gone.error = "observation ended";
            self->notifyObservation(o, std::move(gone));
            break;
          }
        }
        return;
      }
      ClientResult result;
      switch (reason) {
        case COAP_NACK_TOO_MANY_RETRIES:
          result.outcome = ClientOutcome::timeout;
          result.error = "no answer";
          break;
        case COAP_NACK_RST:
          result.outcome = ClientOutcome::reset;
          result.error = "reset by the peer";
          break;
        case COAP_NACK_TLS_FAILED:
          result.outcome = ClientOutcome::failed;
          result.error = "the DTLS handshake with it failed";
          break;
        default:
          result.outcome = ClientOutcome::failed;
          result.error = "not deliverable";
          break;
      }
      self->completeRequest(i, std::move(result));
    } catch (...) {
      // The request then ends by its deadline.
    }
  }
};

void Server::installClientCallbacks() {
  coap_register_response_handler(context_.get(), &ClientCallbacks::response);
  coap_register_nack_handler(context_.get(), &ClientCallbacks::nack);
  coap_register_pong_handler(context_.get(), &ClientCallbacks::pong);
}

coap_session_t* Server::clientSessionFor(const OutgoingRequest& request, std::string& error) {
  // One session per credential too: two entries for one node must not share a handshake.
  const std::string key =
      (request.psk ? "coaps|" + request.psk->identity + "|" : std::string("coap|")) + request.host + "|" +
      std::to_string(request.port);
  if (auto it = client_sessions_.find(key); it != client_sessions_.end() && !it->second.broken) {
    it->second.last_used = std::chrono::steady_clock::now();
    return it->second.session;
  }
  if (client_sessions_.count(key) != 0) {
    error = "the DTLS session with it just failed";  // released by serviceClient(); retried after
    return nullptr;
  }
  coap_address_t dst;
  if (!detail::numericAddress(request.host, request.port, dst)) {
    error = "not a numeric address: " + request.host;
    return nullptr;
  }
  coap_session_t* session = nullptr;
  if (request.psk) {
    coap_dtls_cpsk_t cpsk;
    std::memset(&cpsk, 0, sizeof(cpsk));
    cpsk.version = COAP_DTLS_CPSK_SETUP_VERSION;
    // libcoap copies identity and key into the session during this call. No SNI: the node is
    // addressed by its IP address (RFC 6066 §3 allows host names only).
    cpsk.psk_info.identity.s = reinterpret_cast<const uint8_t*>(request.psk->identity.data());
    cpsk.psk_info.identity.length = request.psk->identity.size();
    cpsk.psk_info.key.s = request.psk->key.span().data();
    cpsk.psk_info.key.length = request.psk->key.span().size();
    session = coap_new_client_session_psk2(context_.get(), nullptr, &dst, COAP_PROTO_DTLS, &cpsk);
  } else {
    session = coap_new_client_session(context_.get(), nullptr, &dst, COAP_PROTO_UDP);
  }
  if (session == nullptr) {
    error = std::string("cannot open a ") + (request.psk ? "coaps" : "coap") + " session to " + request.host;
    return nullptr;
  }
  coap_session_set_max_retransmit(session, kMaxRetransmit);
  ClientSession entry{session, std::chrono::steady_clock::now(), request.psk != nullptr, false, false};
  client_sessions_.emplace(key, entry);
  client_stats_.dtls_sessions += entry.dtls ? 1 : 0;
  return session;
}

void Server::onClientSessionEvent(coap_session_t* session, int event) {
  auto it = std::find_if(client_sessions_.begin(), client_sessions_.end(),
                         [session](const auto& entry) { return entry.second.session == session; });
  if (it == client_sessions_.end() || !it->second.dtls) return;
  ClientSession& s = it->second;
  switch (event) {
    case COAP_EVENT_DTLS_CONNECTED:
      s.connected = true;
      ++client_stats_.dtls_established;
      break;
    case COAP_EVENT_DTLS_ERROR:
    case COAP_EVENT_DTLS_CLOSED:
    case COAP_EVENT_SESSION_FAILED:
    case COAP_EVENT_SESSION_CLOSED:
      if (!s.broken) {
        s.broken = true;
        ++client_stats_.dtls_failures;
        CE_LOG_INFO("coaps session of ours to {} {}", detail::remoteText(session),
                    s.connected ? "ended" : "failed its handshake (wrong credential, or no coaps there)");
      }
      break;
    default:
      break;
  }
}

void Server::endRequestsOn(const coap_session_t* session, const std::string& why) {
  for (std::size_t i = 0; i < pending_requests_.size();) {
    if (pending_requests_[i].session == session) {
      ClientResult r;
      r.outcome = ClientOutcome::failed;
      r.error = why;
      completeRequest(i, std::move(r));
    } else {
      ++i;
    }
  }
  std::vector<RequestId> ended;
  for (const auto& o : observations_) {
    if (o.session == session) ended.push_back(o.id);
  }
  for (const RequestId id : ended) {
    auto o = std::find_if(observations_.begin(), observations_.end(), [id](const Observation& x) { return x.id == id; });
    if (o == observations_.end()) continue;
    ClientResult gone;
    gone.outcome = ClientOutcome::failed;
    gone.error = why;
    notifyObservation(*o, std::move(gone));
  }
}

RequestId Server::request(const OutgoingRequest& request, ResponseCallback done, ResponseCallback notify) {
  ++client_stats_.sent;
  const RequestId id = next_request_id_++;
  std::string error;
  // Our handlers get a const view of the session; libcoap's send API wants it mutable.
  coap_session_t* session = request.over_session != nullptr
                                ? const_cast<coap_session_t*>(static_cast<const coap_session_t*>(request.over_session))
                                : clientSessionFor(request, error);
  coap_pdu_t* pdu = nullptr;
  std::array<uint8_t, 8> token{};
  size_t token_len = 0;
  if (session != nullptr) {
    pdu = coap_new_pdu(request.confirmable ? COAP_MESSAGE_CON : COAP_MESSAGE_NON, requestCode(request.method), session);
    if (pdu == nullptr) error = "cannot build the request";
  }
  if (pdu != nullptr) {
    coap_session_new_token(session, &token_len, token.data());
    coap_add_token(pdu, token_len, token.data());
    for (const auto& etag : request.etags) {
      if (!etag.empty() && etag.size() <= 8) {
        coap_add_option(pdu, COAP_OPTION_ETAG, etag.size(), reinterpret_cast<const uint8_t*>(etag.data()));
      }
    }
    if (request.observe) {
      std::array<uint8_t, 4> buf{};
      coap_add_option(pdu, COAP_OPTION_OBSERVE, coap_encode_var_safe(buf.data(), buf.size(), COAP_OBSERVE_ESTABLISH),
                      buf.data());
    }
    addSegments(pdu, COAP_OPTION_URI_PATH, request.path, '/');
    if (request.content_format) {
      std::array<uint8_t, 4> buf{};
      const unsigned n = coap_encode_var_safe(buf.data(), buf.size(), *request.content_format);
      coap_add_option(pdu, COAP_OPTION_CONTENT_FORMAT, n, buf.data());
    }
    addSegments(pdu, COAP_OPTION_URI_QUERY, request.query, '&');
    if (request.accept) {
      std::array<uint8_t, 4> buf{};
      const unsigned n = coap_encode_var_safe(buf.data(), buf.size(), *request.accept);
      coap_add_option(pdu, COAP_OPTION_ACCEPT, n, buf.data());
    }
    if (!request.payload.empty()) {
      // libcoap sends it block-wise (Block1) if it does not fit, reading the later blocks from
      // our buffer long after this call: it keeps the pointer, not a copy, so the buffer lives
      // until libcoap releases it (also when it fails).
      auto* copy = new std::string(request.payload);
      coap_add_data_large_request(session, pdu, copy->size(), reinterpret_cast<const uint8_t*>(copy->data()),
                                  &releasePayload, copy);
    }
  }
  if (pdu == nullptr || coap_send(session, pdu) == COAP_INVALID_MID) {
    if (error.empty()) error = "cannot send the request";
    ClientResult result;
    result.outcome = ClientOutcome::failed;
    result.error = std::move(error);
    ++client_stats_.failed;
    finished_requests_.emplace_back(std::move(done), std::move(result));
    return id;
  }
  addPending({std::string(reinterpret_cast<const char*>(token.data()), token_len), session,
              std::chrono::steady_clock::now() + request.timeout, std::move(done), id,
              request.observe ? std::move(notify) : ResponseCallback{}});
  return id;
}

void Server::addPending(PendingRequest request) {
  const auto deadline = request.deadline;
  const auto slot = deadlines_.insert(deadline);
  try {
    pending_requests_.push_back(std::move(request));
  } catch (...) {
    deadlines_.erase(slot);
    throw;
  }
  client_stats_.in_flight = pending_requests_.size();
}

Server::PendingRequest Server::takePending(std::size_t index) {
  PendingRequest p = std::move(pending_requests_[index]);
  if (index + 1 != pending_requests_.size()) pending_requests_[index] = std::move(pending_requests_.back());
  pending_requests_.pop_back();
  if (auto d = deadlines_.find(p.deadline); d != deadlines_.end()) deadlines_.erase(d);
  client_stats_.in_flight = pending_requests_.size();
  return p;
}

void Server::notifyObservation(Observation& observation, ClientResult result) {
  ++client_stats_.notifications;
  ResponseCallback callback = observation.notify;
  // An error code, a RST or silence ends the observation at the node (RFC 7641 §3.2, §4.2).
  const bool ended = result.outcome != ClientOutcome::response || static_cast<unsigned>(result.response.code) >= 400;
  if (ended) {
    const RequestId id = observation.id;
    observations_.erase(std::remove_if(observations_.begin(), observations_.end(),
                                       [id](const Observation& o) { return o.id == id; }),
                        observations_.end());
    client_stats_.observations = observations_.size();
  }
  finished_requests_.emplace_back(std::move(callback), std::move(result));
}

void Server::cancelObservation(RequestId id) {
  for (auto it = pending_requests_.begin(); it != pending_requests_.end(); ++it) {
    if (it->id != id) continue;
    coap_binary_t token{it->token.size(), reinterpret_cast<uint8_t*>(it->token.data())};
    coap_cancel_observe(it->session, &token, COAP_MESSAGE_CON);
    (void)takePending(static_cast<std::size_t>(it - pending_requests_.begin()));
    return;
  }
  for (auto it = observations_.begin(); it != observations_.end(); ++it) {
    if (it->id != id) continue;
    // GET with Observe: 1 (libcoap keeps the request it registered with).
    coap_binary_t token{it->token.size(), reinterpret_cast<uint8_t*>(it->token.data())};
    coap_cancel_observe(it->session, &token, COAP_MESSAGE_CON);
    observations_.erase(it);
    client_stats_.observations = observations_.size();
    return;
  }
}

void Server::completeRequest(std::size_t index, ClientResult result) {
  PendingRequest p = takePending(index);
  // An observation the node accepted (2.xx with Observe) lives on for its notifications.
  if (p.notify && result.outcome == ClientOutcome::response && static_cast<unsigned>(result.response.code) / 100 == 2) {
    observations_.push_back({p.id, p.token, p.session, std::move(p.notify)});
    client_stats_.observations = observations_.size();
  }
  if (result.outcome == ClientOutcome::response) {
    ++client_stats_.answered;
  } else if (result.outcome == ClientOutcome::timeout) {
    ++client_stats_.timed_out;
  } else {
    ++client_stats_.failed;
  }
  finished_requests_.emplace_back(std::move(p.done), std::move(result));
}

void Server::serviceClient() {
  const auto now = std::chrono::steady_clock::now();
  // A failed or closed coaps session: what waits on it ends now, and the next request to that
  // node makes a new session (and handshake).
  for (auto it = client_sessions_.begin(); it != client_sessions_.end();) {
    if (!it->second.broken) {
      ++it;
      continue;
    }
    coap_session_t* s = it->second.session;
    endRequestsOn(s, it->second.connected ? "the DTLS session with it ended" : "the DTLS handshake with it failed");
    --client_stats_.dtls_sessions;
    it = client_sessions_.erase(it);
    coap_session_release(s);
  }
  const bool any_late = !deadlines_.empty() && *deadlines_.begin() <= now;
  for (std::size_t i = 0; any_late && i < pending_requests_.size();) {
    if (pending_requests_[i].deadline <= now) {
      ClientResult result;
      result.outcome = ClientOutcome::timeout;
      // A wrong PSK shows as silence, not as an alert: the peer drops our Finished as a record
      // with a bad MAC (RFC 6347 §4.1.2.7). Say where it stopped.
      const coap_session_t* s = pending_requests_[i].session;
      const bool in_handshake = std::any_of(client_sessions_.begin(), client_sessions_.end(), [s](const auto& e) {
        return e.second.session == s && e.second.dtls && !e.second.connected;
      });
      result.error = in_handshake ? "no DTLS handshake with it in time (a wrong credential, or no coaps there)"
                                  : "no answer in time";
      completeRequest(i, std::move(result));
    } else {
      ++i;
    }
  }
  // Callbacks may send new requests: take the list first.
  std::vector<std::pair<ResponseCallback, ClientResult>> done;
  done.swap(finished_requests_);
  for (auto& [callback, result] : done) {
    try {
      if (callback) callback(result);
    } catch (const std::exception& e) {
      CE_LOG_ERROR("client request callback failed: {}", e.what());
    }
  }
  for (auto it = client_sessions_.begin(); it != client_sessions_.end();) {
    const auto busy = [&] {
      return std::any_of(pending_requests_.begin(), pending_requests_.end(),
                         [&](const PendingRequest& p) { return p.session == it->second.session; }) ||
             std::any_of(observations_.begin(), observations_.end(),
                         [&](const Observation& o) { return o.session == it->second.session; });
    };
    if (now - it->second.last_used > kClientSessionIdle && !busy()) {
      if (it->second.dtls) --client_stats_.dtls_sessions;
      coap_session_release(it->second.session);
      it = client_sessions_.erase(it);
    } else {
      ++it;
    }
  }
}

void Server::releaseClientSessions() {
  pending_requests_.clear();
  deadlines_.clear();
  finished_requests_.clear();
  observations_.clear();
  for (auto& [key, s] : client_sessions_) coap_session_release(s.session);
  client_sessions_.clear();
  client_stats_.dtls_sessions = 0;
}

ClientStats Server::clientStats() const { return client_stats_; }

}  // namespace coap_edge::coap
