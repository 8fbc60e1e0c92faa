// libcoap's C callbacks for Server: each trampoline finds the Server through the context's
// app data, converts to C++ values and catches everything, because an exception must never
// unwind through libcoap's C frames.

#include "coap/server.h"

#include "coap/request_pdu.h"
#include "common/log.h"

#include <coap3/coap.h>
#include <mbedtls/oid.h>
#include <mbedtls/ssl.h>
#include <mbedtls/x509_crt.h>

#include <arpa/inet.h>

#include <array>
#include <cstring>

namespace coap_edge::coap {
namespace {

constexpr std::string_view kLogTag = "coap";

Server* serverOf(const coap_session_t* session) {
  return static_cast<Server*>(coap_context_get_app_data(coap_session_get_context(session)));
}

std::string remoteText(const coap_session_t* session) {
  const coap_address_t* addr = coap_session_get_addr_remote(session);
  if (addr == nullptr) return "?";
  std::array<unsigned char, INET6_ADDRSTRLEN + 8> buf{};
  const size_t n = coap_print_addr(addr, buf.data(), buf.size());
  return std::string(reinterpret_cast<const char*>(buf.data()), n);
}

// The identity of an X.509 peer is its certificate's subject CN (DESIGN.md), read from the
// verified peer certificate: libcoap's CN callback only runs for certificates that failed.
std::optional<std::string> peerCommonName(const coap_session_t* session) {
  coap_tls_library_t lib{};
  void* tls = coap_session_get_tls(session, &lib);
  if (tls == nullptr || lib != COAP_TLS_LIBRARY_MBEDTLS) return std::nullopt;
  const mbedtls_x509_crt* crt = mbedtls_ssl_get_peer_cert(static_cast<mbedtls_ssl_context*>(tls));
  if (crt == nullptr) return std::nullopt;
  const mbedtls_asn1_named_data* cn = mbedtls_asn1_find_named_data(
      &crt->subject, MBEDTLS_OID_AT_CN, MBEDTLS_OID_SIZE(MBEDTLS_OID_AT_CN));
  if (cn == nullptr || cn->val.len == 0) return std::nullopt;
  return std::string(reinterpret_cast<const char*>(cn->val.p), cn->val.len);
}

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

void releaseCopy(coap_session_t*, void* app_ptr) { delete static_cast<std::string*>(app_ptr); }

}  // namespace

Server::~Server() = default;

struct ServerCallbacks {
  static const coap_bin_const_t* psk(coap_bin_const_t* identity, coap_session_t* session, void* arg) noexcept {
    auto* self = static_cast<Server*>(arg);
    try {
      const std::string id(reinterpret_cast<const char*>(identity->s), identity->length);
      const std::string shown = log::printable(id);
      const std::string from = remoteText(session);
      if (self->sessions_.established() >= self->max_sessions_) {
        CE_LOG_WARN("refusing handshake of '{}' from {}: at max_sessions ({})", shown, from, self->max_sessions_);
        return nullptr;
      }
      auto key = self->psk_source_.pskFor(id);
      if (!key) {
        CE_LOG_NOTICE("PSK handshake from {} with unknown or revoked identity '{}'", from, shown);
        return nullptr;
      }
      // libcoap copies the key into the session before this buffer is reused.
      self->handshake_key_ = std::move(*key);
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
      switch (event) {
        case COAP_EVENT_SERVER_SESSION_NEW: {
          SessionEntry& e = self->sessions_.add(session, remoteText(session));
          if (coap_session_get_proto(session) == COAP_PROTO_UDP) {
            // Plain coap has no handshake: the session is usable (and anonymous) at once.
            e.established = true;
            e.since = std::chrono::steady_clock::now();
            self->sessions_changed_ = true;
          }
          break;
        }
        case COAP_EVENT_DTLS_CONNECTED:
          self->onEstablished(session);
          break;
        case COAP_EVENT_DTLS_CLOSED:
        case COAP_EVENT_DTLS_ERROR:
        case COAP_EVENT_SERVER_SESSION_DEL:
          if (SessionEntry* e = self->sessions_.find(session); e != nullptr && e->established) {
            self->sessions_changed_ = true;
            CE_LOG_INFO("session of '{}' from {} ended", log::printable(e->peer.identity), e->peer.address);
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
      SessionEntry& se = self->entryFor(session);

      Request req;
      req.path = entry->spec.path;
      readRequest(pdu, query, req);
      req.peer = &se.peer;

      Response res = entry->spec.handler(req);
      writeResponseCode(res, response);
      if (res.payload.empty() && !res.content_format) return;
      auto* copy = new std::string(std::move(res.payload));
      coap_add_data_large_response(resource, session, pdu, response, query,
                                   res.content_format.value_or(content_format::text_plain),
                                   res.max_age ? static_cast<int>(*res.max_age) : -1, 0, copy->size(),
                                   reinterpret_cast<const uint8_t*>(copy->data()), releaseCopy, copy);
    } catch (...) {
      coap_pdu_set_code(response, COAP_RESPONSE_CODE_INTERNAL_ERROR);
    }
  }
};

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
  if (SessionEntry* e = sessions_.find(session)) {
    if (e->established || coap_session_get_proto(session) != COAP_PROTO_DTLS) return *e;
  }
  // A session we have not seen connect (e.g. plain coap): identify it now.
  SessionEntry& e = sessions_.add(session, remoteText(session));
  if (coap_session_get_proto(session) == COAP_PROTO_UDP) {
    e.established = true;
    e.since = std::chrono::steady_clock::now();
  } else if (identify(session, e)) {
    e.established = true;
    e.since = std::chrono::steady_clock::now();
  }
  return e;
}

bool Server::identify(coap_session_t* session, SessionEntry& entry) {
  if (const coap_bin_const_t* id = coap_session_get_psk_identity(session); id != nullptr && id->length > 0) {
    entry.peer.kind = AuthKind::psk;
    entry.peer.identity.assign(reinterpret_cast<const char*>(id->s), id->length);
    return true;
  }
  if (auto cn = peerCommonName(session)) {
    entry.peer.kind = AuthKind::x509;
    entry.peer.identity = std::move(*cn);
    return true;
  }
  return false;
}

void Server::onEstablished(coap_session_t* session) {
  SessionEntry* e = sessions_.find(session);
  if (e == nullptr) e = &sessions_.add(session, remoteText(session));
  if (!identify(session, *e)) {
    CE_LOG_WARN("DTLS session from {} proved no identity; closing it", e->peer.address);
    pending_close_.push_back(session);
    return;
  }
  if (psk_source_.isRevoked(e->peer.identity)) {
    CE_LOG_NOTICE("identity '{}' from {} is revoked; closing its new session", log::printable(e->peer.identity), e->peer.address);
    pending_close_.push_back(session);
    return;
  }
  if (sessions_.established() >= max_sessions_) {
    CE_LOG_WARN("closing new session of '{}' from {}: at max_sessions ({})", log::printable(e->peer.identity), e->peer.address,
                max_sessions_);
    pending_close_.push_back(session);
    return;
  }
  e->established = true;
  e->since = std::chrono::steady_clock::now();
  sessions_changed_ = true;
  CE_LOG_INFO("session established: '{}' ({}) from {}", log::printable(e->peer.identity), authKindName(e->peer.kind), e->peer.address);
}

void Server::addResource(ResourceSpec spec) {
  auto entry = std::make_unique<ResourceEntry>();
  entry->spec = std::move(spec);
  coap_str_const_t* path = coap_new_str_const(reinterpret_cast<const uint8_t*>(entry->spec.path.data()),
                                              entry->spec.path.size());
  coap_resource_t* r = coap_resource_init(path, COAP_RESOURCE_FLAGS_RELEASE_URI);
  if (r == nullptr) throw StartupError("libcoap: cannot create resource /" + entry->spec.path);
  for (const auto& [name, value] : entry->spec.attributes) {
    coap_add_attr(r, coap_make_str_const(name.c_str()), value.empty() ? nullptr : coap_make_str_const(value.c_str()),
                  0);
  }
  for (Method m : entry->spec.methods) coap_register_request_handler(r, requestOf(m), &ServerCallbacks::request);
  if (entry->spec.observable) coap_resource_set_get_observable(r, 1);
  entry->resource = r;
  coap_resource_set_userdata(r, entry.get());
  coap_add_resource(context_.get(), r);
  resources_.push_back(std::move(entry));
}

}  // namespace coap_edge::coap
