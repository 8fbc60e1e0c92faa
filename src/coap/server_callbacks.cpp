// libcoap's C callbacks for Server: each trampoline finds the Server through the context's
// app data, converts to C++ values and catches everything, because an exception must never
// unwind through libcoap's C frames.

#include "coap/server.h"

#include "coap/request_pdu.h"
#include "coap/session_util.h"
#include "common/log.h"

#include <coap3/coap.h>

#include <arpa/inet.h>

#include <algorithm>
#include <array>
#include <climits>
#include <cstring>

namespace coap_edge::coap {
namespace {

using detail::remoteIp;
using detail::remoteText;
using detail::serverOf;

constexpr std::string_view kLogTag = "coap";

coap_request_t requestOf(Method m) {
  switch (m) {
    case Method::get:
      return COAP_REQUEST_GET;
    case Method::post:
      return COAP_REQUEST_POST;
    case Method::put:
      return COAP_REQUEST_PUT;
    case Method::del:
      return COAP_REQUEST_DELETE;
    case Method::fetch:
      return COAP_REQUEST_FETCH;
    case Method::patch:
      return COAP_REQUEST_PATCH;
    case Method::ipatch:
      return COAP_REQUEST_IPATCH;
  }
  return COAP_REQUEST_GET;
}

ResponseClass classOf(Code code) {
  const auto n = static_cast<unsigned>(code);
  if (n == 0) return ResponseClass::none;
  if (n < 400) return ResponseClass::success;
  if (n < 500) return ResponseClass::client_error;
  return ResponseClass::server_error;
}

// One Location-Path option per segment of "rd/4" (RFC 7252 §5.10.7), in order.
void addLocationPath(std::string_view path, coap_pdu_t* response) {
  while (!path.empty()) {
    const std::size_t slash = path.find('/');
    const std::string_view segment = path.substr(0, slash);
    if (!segment.empty()) {
      coap_add_option(response, COAP_OPTION_LOCATION_PATH, segment.size(),
                      reinterpret_cast<const uint8_t*>(segment.data()));
    }
    if (slash == std::string_view::npos) break;
    path.remove_prefix(slash + 1);
  }
}

void releaseCopy(coap_session_t*, void* app_ptr) { delete static_cast<std::string*>(app_ptr); }

constexpr std::array<Method, 7> kAllMethods{Method::get,   Method::post,  Method::put,   Method::del,
                                            Method::fetch, Method::patch, Method::ipatch};

}  // namespace

Server::~Server() {
  destroying_ = true;  // Responders dying with the pending requests must not reach libcoap
  for (auto& [id, d] : deferred_) {
    if (auto state = d.state.lock()) state->server = nullptr;
  }
  disconnectUpstream();
  releaseClientSessions();
  // Freeing the context ends the sessions left with events; the members they would touch are
  // gone by then, so the trampolines must find no Server.
  if (context_) coap_context_set_app_data(context_.get(), nullptr);
}

struct ServerCallbacks {
  static const coap_bin_const_t* psk(coap_bin_const_t* identity, coap_session_t* session, void* arg) noexcept {
    auto* self = static_cast<Server*>(arg);
    try {
      const std::string id(reinterpret_cast<const char*>(identity->s), identity->length);
      const std::string shown = log::printable(id);
      const std::string from = remoteText(session);
      SessionEntry* e = self->sessions_.find(session);
      if (e == nullptr) e = &self->sessions_.add(session, from);
      // Refused here, the handshake fails; its DTLS_ERROR must not count it a second time.
      const auto refuse = [e](std::uint64_t& counter) -> const coap_bin_const_t* {
        ++counter;
        e->failure_counted = true;
        return nullptr;
      };
      if (self->handshake_gate_ && !self->handshake_gate_(remoteIp(session))) {
        CE_LOG_DEBUG("refusing handshake of '{}' from {}: handshakes_per_address exceeded", shown, from);
        return refuse(self->stats_.handshakes_rate_limited);
      }
      if (self->sessions_.established() >= self->max_sessions_) {
        CE_LOG_WARN("refusing handshake of '{}' from {}: at max_sessions ({})", shown, from, self->max_sessions_);
        return refuse(self->stats_.handshakes_max_sessions);
      }
      auto choice = self->credentials_.pskFor(id);
      if (!choice) {
        e->peer.identity = id;
        self->countHandshakeFailure(*e, HandshakeFailure::unknown_identity);
        return nullptr;
      }
      // Remember which key this handshake got: its outcome (DTLS_CONNECTED or DTLS_ERROR) is
      // reported back, and the sessions of a key whose grace period ends are closed.
      e->peer.identity = id;
      e->peer.key_generation = choice->generation;
      // libcoap copies the key into the session before this buffer is reused.
      self->handshake_key_ = std::move(choice->key);
      self->handshake_bin_->s = self->handshake_key_.span().data();
      self->handshake_bin_->length = self->handshake_key_.span().size();
      return self->handshake_bin_.get();
    } catch (...) {
      return nullptr;
    }
  }

  static int event(coap_session_t* session, const coap_event_t event) noexcept {
    try {
      Server* self = serverOf(session);
      if (self == nullptr) return 0;
      // Our own client sessions (requests to nodes, the upstream) are not peers of the server.
      if (event == COAP_EVENT_BAD_PACKET) {
        ++self->stats_.malformed_packets;
        return 0;
      }
      if (event == COAP_EVENT_DTLS_BAD_RECORD) {
        ++self->stats_.dtls_records_invalid;
        return 0;
      }
      if (event == COAP_EVENT_DTLS_REPLAYED_RECORD) {
        ++self->stats_.dtls_records_replayed;
        return 0;
      }
      if (coap_session_get_type(session) == COAP_SESSION_TYPE_CLIENT) {
        if (!self->onUpstreamEvent(session, event)) self->onClientSessionEvent(session, event);
        return 0;
      }
      switch (event) {
        case COAP_EVENT_SERVER_SESSION_NEW: {
          SessionEntry& e = self->sessions_.add(session, remoteText(session));
          if (coap_session_get_proto(session) == COAP_PROTO_DTLS) {
            ++self->stats_.dtls_sessions_allocated;
            if (self->pki_enabled_) self->unhooked_.push_back(session);
          }
          if (coap_session_get_proto(session) == COAP_PROTO_UDP) {
            // Plain coap has no handshake: the session is usable (and anonymous) at once.
            self->sessions_.establish(e);
            self->sessions_changed_ = true;
          }
          break;
        }
        case COAP_EVENT_DTLS_CONNECTED:
          self->onEstablished(session);
          break;
        case COAP_EVENT_DTLS_ERROR:
          if (SessionEntry* e = self->sessions_.find(session)) self->onHandshakeError(*e);
          [[fallthrough]];
        case COAP_EVENT_DTLS_CLOSED:
        case COAP_EVENT_SERVER_SESSION_DEL:
          if (SessionEntry* e = self->sessions_.find(session); e != nullptr && event == COAP_EVENT_DTLS_CLOSED) {
            self->onHandshakeAborted(*e);
          } else if (e != nullptr && event == COAP_EVENT_SERVER_SESSION_DEL) {
            self->onHandshakeGone(*e);
          }
          if (SessionEntry* e = self->sessions_.find(session); e != nullptr && e->established) {
            self->sessions_changed_ = true;
            CE_LOG_INFO("session of '{}' from {} ended", log::printable(e->peer.identity), e->peer.address);
          }
          if (event == COAP_EVENT_SERVER_SESSION_DEL) {
            for (auto o = self->observers_.begin(); o != self->observers_.end();) {
              o = std::get<1>(*o) == session ? self->observers_.erase(o) : std::next(o);
            }
          }
          self->sessions_.remove(session);
          break;
        default:
          break;
      }
    } catch (...) {
      // Out of memory inside an event: the session table may miss one entry; nothing to unwind.
    }
    return 0;
  }

  static void request(coap_resource_t* resource, coap_session_t* session, const coap_pdu_t* pdu,
                      const coap_string_t* query, coap_pdu_t* response) noexcept {
    try {
      auto* entry = static_cast<Server::ResourceEntry*>(coap_resource_get_userdata(resource));
      Server* self = serverOf(session);
      if (self == nullptr) {
        coap_pdu_set_code(response, COAP_RESPONSE_CODE_FORBIDDEN);
        return;
      }
      // Role reversal: the upstream sends requests over the session we opened to it, as the
      // configured upstream identity. A request on any other client session of ours (a node
      // talking back) is not served.
      const bool from_upstream = coap_session_get_type(session) != COAP_SESSION_TYPE_SERVER;
      if (from_upstream && (session != self->upstream_ || !self->upstream_up_)) {
        coap_pdu_set_code(response, COAP_RESPONSE_CODE_FORBIDDEN);
        return;
      }
      // The second run of a deferred request (coap_async_trigger): its answer is ready and was
      // filtered and counted when the request first came in.
      const coap_bin_const_t token = coap_pdu_get_token(pdu);
      if (coap_async_t* async = coap_find_async(session, token)) {
        const auto id = reinterpret_cast<std::uintptr_t>(coap_async_get_app_data(async));
        auto it = self->deferred_.find(id);
        Response res{Code::internal_error, std::nullopt, std::nullopt, {}, {}, std::nullopt};
        if (it != self->deferred_.end() && it->second.response) res = std::move(*it->second.response);
        if (it != self->deferred_.end()) self->deferred_.erase(it);
        // A deferred Observe registration answered 2.xx: libcoap keeps the observer, and its
        // later handler runs are notifications.
        coap_opt_iterator_t oi;
        const coap_opt_t* observe = coap_check_option(pdu, COAP_OPTION_OBSERVE, &oi);
        if (observe != nullptr && coap_decode_var_bytes(coap_opt_value(observe), coap_opt_length(observe)) == 0 &&
            entry != nullptr && entry->spec.observable && static_cast<unsigned>(res.code) / 100 == 2) {
          self->observers_.emplace(static_cast<const void*>(resource), static_cast<const void*>(session),
                                   std::string(reinterpret_cast<const char*>(token.s), token.length));
        }
        // Ready before the request's held-back ACK was due (libcoap patch 0024): the answer is
        // that ACK, with the request's Message ID, and a copy of the request arriving later must
        // get it again, not the empty ACK remembered when the request came in.
        if (observe == nullptr && coap_pdu_get_type(response) == COAP_MESSAGE_ACK) {
          RecentResponses* recent = from_upstream ? &self->upstream_recent_ : &self->entryFor(session).recent;
          const std::string token_text(reinterpret_cast<const char*>(token.s), token.length);
          (void)recent->remember(static_cast<std::uint16_t>(coap_pdu_get_mid(response)), true, token_text, res,
                                 std::chrono::steady_clock::now());
        }
        writeResponse(resource, session, pdu, query, response, std::move(res));
        return;
      }
      const PeerIdentity* peer = &self->upstream_peer_;
      RecentResponses* recent = &self->upstream_recent_;
      const auto now = std::chrono::steady_clock::now();
      if (from_upstream) {
        self->upstream_heard_ = now;
      } else {
        SessionEntry& se = self->entryFor(session);
        if (se.refused) {
          // Admission failed (revoked, no identity, full) and the close is pending: serve nothing.
          coap_pdu_set_code(response, COAP_RESPONSE_CODE_UNAUTHORIZED);
          return;
        }
        peer = &se.peer;
        recent = &se.recent;
      }

      Request req;
      readRequest(pdu, query, req);
      req.peer = peer;
      req.session = session;
      const std::string token_text(reinterpret_cast<const char*>(token.s), token.length);
      // Duplicates (RFC 7252 §4.5): a copy of a request this session already sent (same Message
      // ID, token and type, within EXCHANGE_LIFETIME) gets the answer the first copy got, and
      // neither the filter (ACL, rate limits) nor the application sees it again. Not for
      // requests with Observe: libcoap runs the handler again with the registration's own
      // message for every notification, and a repeated registration is a GET (safe).
      const auto mid = static_cast<std::uint16_t>(coap_pdu_get_mid(pdu));
      const bool dedup = !req.observe.has_value();
      if (dedup) {
        if (const Response* again = recent->find(mid, req.confirmable, token_text, now)) {
          ++self->stats_.duplicates;
          CE_LOG_DEBUG("duplicate {} mid=0x{:04x} from {}: answered as before, not served again",
                       methodName(req.method), mid, log::printable(peer->address));
          writeResponse(resource, session, pdu, query, response, *again);
          return;
        }
      }
      if (from_upstream) ++self->upstream_stats_.requests;
      const auto keep = [&](const Response& answer) {
        if (dedup) (void)recent->remember(mid, req.confirmable, token_text, answer, now);
      };
      if (req.observe && entry->spec.observable) {
        const auto key = std::make_tuple(static_cast<const void*>(resource), static_cast<const void*>(session), token_text);
        if (*req.observe == 0) {
          req.notification = self->observers_.count(key) != 0;
        } else {
          self->observers_.erase(key);
        }
      }
      if (resource == self->proxy_resource_) {
        // Forward proxying: only what the mapper turns into one of our own paths is served.
        if (!self->proxy_mapper_ || !self->proxy_mapper_(req)) {
          ++self->stats_.proxy_refused;
          const auto m = static_cast<std::size_t>(req.method) - 1;
          if (m < kMethodCount) ++self->stats_.requests[m][static_cast<std::size_t>(ResponseClass::server_error)];
          keep(Response{Code::proxying_not_supported, std::nullopt, std::nullopt, {}, {}, std::nullopt});
          coap_pdu_set_code(response, static_cast<coap_pdu_code_t>(COAP_RESPONSE_CODE(505)));
          return;
        }
        entry = self->routeFor(req.path);
        req.observe.reset();  // observations are relayed on /nodes/... only, not through Proxy-Uri
      } else if (entry == self->unknown_.get()) {
        // Paths under a prefix route (/rd/{id}, /nodes/{id}/...) reach libcoap's handler for
        // unknown resources; dispatch them here, behind the same filter.
        if (Server::ResourceEntry* routed = self->prefixRouteFor(req.path)) entry = routed;
      }
      const auto count = [self, &req](Code code) {
        const auto m = static_cast<std::size_t>(req.method) - 1;
        if (m < kMethodCount) ++self->stats_.requests[m][static_cast<std::size_t>(classOf(code))];
      };

      // The filter (access control) first, whatever the method and whether the path exists.
      std::optional<Response> refused;
      if (self->filter_) refused = self->filter_(req);
      const auto& methods = entry->spec.methods;
      Response res;
      if (refused) {
        res = std::move(*refused);
      } else if (std::find(methods.begin(), methods.end(), req.method) == methods.end()) {
        res.code = Code::method_not_allowed;
      } else if (entry->spec.async_handler) {
        auto state = std::make_shared<Responder::State>();
        state->server = self;
        state->in_handler = true;
        entry->spec.async_handler(req, Responder(state));
        state->in_handler = false;
        if (state->answer) {
          res = std::move(*state->answer);
        } else if (!state->answered) {
          // Not answered yet: libcoap keeps a copy of the request and sends the empty ACK; the
          // Responder triggers the second run with the answer.
          coap_async_t* async = coap_register_async(session, pdu, 0);
          if (async == nullptr) {
            state->server = nullptr;  // nobody to answer any more
            res.code = Code::internal_error;
          } else {
            const std::uint64_t id = self->next_deferred_id_++;
            self->deferred_.emplace(id, Server::Deferred{async, std::nullopt, req.method, state});
            coap_async_set_app_data(async, reinterpret_cast<void*>(static_cast<std::uintptr_t>(id)));
            state->deferred_id = id;
            // This exchange's own answer is the empty ACK libcoap sends when kPiggybackWait is
            // over (the response follows separately, with its own Message ID), unless the answer
            // comes first and rides on the ACK (remembered again then, above): a copy arriving
            // while the answer is pending is acknowledged by libcoap (coap_find_async), one
            // arriving after it gets that ACK here.
            keep(Response{Code::none, std::nullopt, std::nullopt, {}, {}, std::nullopt});
            return;  // counted when answered (answerDeferred)
          }
        }
      } else {
        res = entry->spec.handler(req);
      }
      if (!req.notification) count(res.code);
      if (req.observe && *req.observe == 0 && entry->spec.observable) {
        const auto key = std::make_tuple(static_cast<const void*>(resource), static_cast<const void*>(session), token_text);
        if (static_cast<unsigned>(res.code) / 100 == 2) {
          self->observers_.insert(key);
        } else {
          self->observers_.erase(key);
        }
      }
      keep(res);
      writeResponse(resource, session, pdu, query, response, std::move(res));
    } catch (...) {
      coap_pdu_set_code(response, COAP_RESPONSE_CODE_INTERNAL_ERROR);
    }
  }

  static void writeResponse(coap_resource_t* resource, coap_session_t* session, const coap_pdu_t* pdu,
                            const coap_string_t* query, coap_pdu_t* response, Response res) {
    writeResponseCode(res, response);
    if (res.code == Code::none) return;  // nothing is sent for a NON (libcoap drops 0.00)
    addLocationPath(res.location_path, response);
    if (res.etag && !res.etag->empty() && res.etag->size() <= 8) {
      coap_add_option(response, COAP_OPTION_ETAG, res.etag->size(), reinterpret_cast<const uint8_t*>(res.etag->data()));
    }
    if (res.payload.empty() && !res.content_format) {
      if (res.max_age) {
        std::array<std::uint8_t, 4> buf{};
        const unsigned n = coap_encode_var_safe(buf.data(), buf.size(), *res.max_age);
        coap_add_option(response, COAP_OPTION_MAXAGE, n, buf.data());
      }
      return;
    }
    // A response sent block-wise gets libcoap's ETag option in place of ours; give it the same
    // value (as a number, which drops leading zero bytes of an opaque node ETag).
    std::uint64_t etag_number = 0;
    if (res.etag && res.etag->size() <= 8) {
      for (char c : *res.etag) etag_number = (etag_number << 8) | static_cast<std::uint8_t>(c);
    }
    auto* copy = new std::string(std::move(res.payload));
    coap_add_data_large_response(resource, session, pdu, response, query,
                                 res.content_format.value_or(content_format::text_plain),
                                 res.max_age ? static_cast<int>(*res.max_age) : -1, etag_number, copy->size(),
                                 reinterpret_cast<const uint8_t*>(copy->data()), releaseCopy, copy);
  }
};

Responder& Responder::operator=(Responder&& other) noexcept {
  if (this != &other) {
    Responder dying(std::move(*this));  // an unanswered one being replaced answers 5.00
    state_ = std::move(other.state_);
  }
  return *this;
}

Responder::~Responder() {
  if (state_ && !state_->answered) {
    try {
      (*this)(Response{Code::internal_error, std::nullopt, std::nullopt, {}, {}, std::nullopt});
    } catch (...) {
      // Out of memory while answering: libcoap frees the request with its session.
    }
  }
}

void Responder::operator()(Response response) {
  std::shared_ptr<State> state = std::move(state_);
  if (!state || state->answered) return;
  state->answered = true;
  if (state->in_handler) {
    state->answer = std::move(response);
    return;
  }
  if (state->server != nullptr && state->deferred_id != 0) state->server->answerDeferred(state->deferred_id, std::move(response));
}

void Server::answerDeferred(std::uint64_t id, Response response) {
  if (destroying_) return;
  auto it = deferred_.find(id);
  if (it == deferred_.end()) return;
  const auto m = static_cast<std::size_t>(it->second.method) - 1;
  if (m < kMethodCount) ++stats_.requests[m][static_cast<std::size_t>(classOf(response.code))];
  it->second.response = std::move(response);
  coap_async_trigger(static_cast<coap_async_t*>(it->second.async));
  deferred_ready_ = true;
}

std::size_t Server::recentResponseBytes() const { return recent_budget_.used(); }

void Server::installCallbacks() {
  coap_register_event_handler(context_.get(), &ServerCallbacks::event);
}

void Server::setupPsk() {
  coap_dtls_spsk_t spsk;
  std::memset(&spsk, 0, sizeof(spsk));
  spsk.version = COAP_DTLS_SPSK_SETUP_VERSION;
  spsk.validate_id_call_back = &ServerCallbacks::psk;
  spsk.id_call_back_arg = this;
  handshake_bin_ = std::make_unique<coap_bin_const_t>();
  if (coap_context_set_psk2(context_.get(), &spsk) == 0) throw StartupError("libcoap: cannot enable DTLS-PSK");
  psk_enabled_ = true;
}

void Server::setupPki(const PkiFiles& files) {
  pki_paths_ = {files.certificate.string(), files.private_key.string(), files.ca.string()};
  coap_dtls_pki_t pki;
  std::memset(&pki, 0, sizeof(pki));
  pki.version = COAP_DTLS_PKI_SETUP_VERSION;
  // Secure by default, unlike libcoap's example server: a device certificate must chain to our
  // CA, be in its validity period and not be self-signed.
  pki.verify_peer_cert = 1;
  pki.check_common_ca = 1;
  pki.allow_self_signed = 0;
  pki.allow_expired_certs = 0;
  pki.cert_chain_validation = 1;
  pki.cert_chain_verify_depth = 2;
  pki.check_cert_revocation = 0;  // no CRL distribution yet: revocation is by identity (keystore)
  pki.allow_no_crl = 1;
  pki.allow_expired_crl = 0;
  pki.allow_bad_md_hash = 0;
  pki.allow_short_rsa_length = 0;
  pki.pki_key.key_type = COAP_PKI_KEY_PEM;
  pki.pki_key.key.pem.public_cert = pki_paths_[0].c_str();
  pki.pki_key.key.pem.private_key = pki_paths_[1].c_str();
  pki.pki_key.key.pem.ca_file = pki_paths_[2].c_str();
  if (coap_context_set_pki(context_.get(), &pki) == 0) throw StartupError("libcoap: cannot enable DTLS with X.509");
  pki_enabled_ = true;
}

SessionEntry& Server::entryFor(coap_session_t* session) {
  SessionEntry* found = sessions_.find(session);
  if (found != nullptr && (found->established || found->refused)) return *found;
  if (coap_session_get_proto(session) == COAP_PROTO_DTLS) {
    // A DTLS session we have not seen connect: admit it now, with the same checks.
    onEstablished(session);
    if (SessionEntry* e = sessions_.find(session)) return *e;
  } else if (found != nullptr) {
    return *found;
  }
  // Plain coap: no handshake, the session is usable (and anonymous) at once.
  SessionEntry& e = sessions_.add(session, remoteText(session));
  sessions_.establish(e);
  return e;
}

bool Server::identify(coap_session_t* session, SessionEntry& entry) {
  if (const coap_bin_const_t* id = coap_session_get_psk_identity(session); id != nullptr && id->length > 0) {
    entry.peer.kind = AuthKind::psk;
    entry.peer.identity.assign(reinterpret_cast<const char*>(id->s), id->length);
    return true;
  }
  // The identity of an X.509 peer is its certificate's subject CN (DESIGN.md), as the verify hook
  // saw it (libcoap's CN callback only runs for certificates that failed). The serial lets a
  // revoked certificate be refused although its CN is still a valid identity.
  if (entry.verified_certificate && !entry.verified_certificate->common_name.empty()) {
    entry.peer.kind = AuthKind::x509;
    entry.peer.identity = std::move(entry.verified_certificate->common_name);
    entry.peer.certificate_serial = std::move(entry.verified_certificate->serial);
    entry.verified_certificate.reset();
    return true;
  }
  return false;
}

void Server::onEstablished(coap_session_t* session) {
  SessionEntry* e = sessions_.find(session);
  if (e == nullptr) e = &sessions_.add(session, remoteText(session));
  if (e->established || e->refused) return;
  // Closed from process(), outside libcoap's callback; until then requests get 4.01.
  const auto refuse = [this, e, session] {
    ++stats_.handshakes_refused;
    e->refused = true;
    pending_close_.push_back(session);
  };
  if (!identify(session, *e)) {
    CE_LOG_WARN("DTLS session from {} proved no identity; closing it", e->peer.address);
    refuse();
    return;
  }
  ++stats_.handshakes_ok;
  if (e->peer.kind == AuthKind::psk && e->peer.key_generation != 0) {
    credentials_.handshakeResult(e->peer.identity, e->peer.key_generation, true);
  }
  if (credentials_.isRevoked(e->peer.identity)) {
    CE_LOG_NOTICE("identity '{}' from {} is revoked; closing its new session", log::printable(e->peer.identity), e->peer.address);
    refuse();
    return;
  }
  if (e->peer.kind == AuthKind::x509 && credentials_.isCertificateRevoked(e->peer.certificate_serial)) {
    CE_LOG_NOTICE("certificate {} of '{}' from {} is revoked; closing its new session", e->peer.certificate_serial,
                  log::printable(e->peer.identity), e->peer.address);
    refuse();
    return;
  }
  if (sessions_.established() >= max_sessions_) {
    CE_LOG_WARN("closing new session of '{}' from {}: at max_sessions ({})", log::printable(e->peer.identity), e->peer.address,
                max_sessions_);
    refuse();
    return;
  }
  sessions_.establish(*e);
  sessions_changed_ = true;
  CE_LOG_INFO("session established: '{}' ({}) from {}", log::printable(e->peer.identity), authKindName(e->peer.kind), e->peer.address);
}

void Server::addBuiltinResources() {
  // /.well-known/core as our own resource: libcoap's built-in one would answer before the
  // request filter runs. libcoap leaves a resource at this path out of the listing.
  addResource({".well-known/core", {}, {Method::get}, [this](const Request& req) { return wellKnownCore(req); },
               false, {}});

  // Paths that do not exist: the filter decides first; only then 4.04 (also for DELETE, which
  // libcoap would otherwise answer 2.02 without asking anyone).
  unknown_ = std::make_unique<ResourceEntry>();
  unknown_->spec.methods.assign(kAllMethods.begin(), kAllMethods.end());
  unknown_->spec.handler = [](const Request&) {
    return Response{Code::not_found, std::nullopt, std::nullopt, {}, {}, std::nullopt};
  };
  coap_resource_t* r = coap_resource_unknown_init2(&ServerCallbacks::request, 0);
  if (r == nullptr) throw StartupError("libcoap: cannot create the handler for unknown resources");
  for (Method m : kAllMethods) coap_register_request_handler(r, requestOf(m), &ServerCallbacks::request);
  unknown_->resource = r;
  coap_resource_set_userdata(r, unknown_.get());
  coap_add_resource(context_.get(), r);
}

Response Server::wellKnownCore(const Request& request) {
  // As libcoap's own handler does: measure (offset past any end), then print. The query is the
  // filter (?rt=, ?href=, ...), in the form libcoap handed to the handler.
  std::string filter_text = request.query;
  coap_string_t filter{filter_text.size(), reinterpret_cast<uint8_t*>(filter_text.data())};
  const coap_string_t* filter_ptr = filter_text.empty() ? nullptr : &filter;
  std::array<unsigned char, 4> probe{};
  size_t total = 0;
  if (coap_print_wellknown(context_.get(), probe.data(), &total, UINT_MAX, filter_ptr) & COAP_PRINT_STATUS_ERROR) {
    return Response{Code::internal_error, std::nullopt, std::nullopt, {}, {}, std::nullopt};
  }
  Response res{Code::content, content_format::link_format, std::nullopt, std::string(total, '\0'), {}, std::nullopt};
  size_t written = total;
  if (total > 0) {
    if (coap_print_wellknown(context_.get(), reinterpret_cast<unsigned char*>(res.payload.data()), &written, 0,
                             filter_ptr) &
        COAP_PRINT_STATUS_ERROR) {
      return Response{Code::internal_error, std::nullopt, std::nullopt, {}, {}, std::nullopt};
    }
  }
  res.payload.resize(std::min(written, total));
  return res;
}

void Server::addResource(ResourceSpec spec) {
  auto entry = std::make_unique<ResourceEntry>();
  entry->spec = std::move(spec);
  coap_str_const_t* path = coap_new_str_const(reinterpret_cast<const uint8_t*>(entry->spec.path.data()),
                                              entry->spec.path.size());
  coap_resource_t* r = coap_resource_init(path, COAP_RESOURCE_FLAGS_RELEASE_URI);
  if (r == nullptr) {
    coap_delete_str_const(path);  // only a resource that was created takes ownership of it
    throw StartupError("libcoap: cannot create resource /" + entry->spec.path);
  }
  for (const auto& [name, value] : entry->spec.attributes) {
    coap_add_attr(r, coap_make_str_const(name.c_str()), value.empty() ? nullptr : coap_make_str_const(value.c_str()),
                  0);
  }
  // Every method reaches the trampoline, so that the request filter runs before a 4.05.
  for (Method m : kAllMethods) coap_register_request_handler(r, requestOf(m), &ServerCallbacks::request);
  if (entry->spec.observable) coap_resource_set_get_observable(r, 1);
  entry->resource = r;
  coap_resource_set_userdata(r, entry.get());
  coap_add_resource(context_.get(), r);
  resources_.push_back(std::move(entry));
}

void Server::addPrefixRoute(ResourceSpec spec) {
  auto entry = std::make_unique<ResourceEntry>();
  entry->spec = std::move(spec);
  while (!entry->spec.path.empty() && entry->spec.path.back() == '/') entry->spec.path.pop_back();
  prefix_routes_.push_back(std::move(entry));
}

Server::ResourceEntry* Server::routeFor(std::string_view path) const {
  for (const auto& r : resources_) {
    if (r->spec.path == path) return r.get();
  }
  if (ResourceEntry* routed = prefixRouteFor(path)) return routed;
  return unknown_.get();
}

bool Server::hasResource(std::string_view path) const {
  return std::any_of(resources_.begin(), resources_.end(), [&](const auto& r) { return r->spec.path == path; });
}

bool Server::removeResource(std::string_view path) {
  for (auto it = resources_.begin(); it != resources_.end(); ++it) {
    if ((*it)->spec.path != path) continue;
    coap_resource_t* r = (*it)->resource;
    for (auto o = observers_.begin(); o != observers_.end();) {
      o = std::get<0>(*o) == r ? observers_.erase(o) : std::next(o);
    }
    // libcoap tells the resource's observers it is gone (4.04) and frees it.
    coap_delete_resource(context_.get(), r);
    resources_.erase(it);
    return true;
  }
  return false;
}

void Server::setForwardProxy(ProxyMapper mapper) {
  proxy_mapper_ = std::move(mapper);
  if (proxy_resource_ != nullptr) return;
  // libcoap wants at least one name of our own (a Proxy-Uri naming it is served locally); a
  // reserved name (RFC 2606) that no request can mean by accident. Every other Proxy-Uri names
  // someone else, and the mapper decides whether that is a node we relay to.
  static const char* kOwnNames[] = {"coap-edge.invalid"};
  coap_resource_t* r = coap_resource_proxy_uri_init2(&ServerCallbacks::request, 1, kOwnNames, 0);
  if (r == nullptr) throw StartupError("libcoap: cannot create the forward proxy resource");
  for (Method m : kAllMethods) coap_register_request_handler(r, requestOf(m), &ServerCallbacks::request);
  coap_resource_set_userdata(r, unknown_.get());
  coap_add_resource(context_.get(), r);
  proxy_resource_ = r;
}

Server::ResourceEntry* Server::prefixRouteFor(std::string_view path) const {
  for (const auto& r : prefix_routes_) {
    const std::string& p = r->spec.path;
    if (path.size() > p.size() + 1 && path.compare(0, p.size(), p) == 0 && path[p.size()] == '/') return r.get();
  }
  return nullptr;
}

}  // namespace coap_edge::coap
