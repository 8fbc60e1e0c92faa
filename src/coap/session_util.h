#pragma once
// Helpers shared by the files that take libcoap's callbacks (server_callbacks.cpp,
// server_handshakes.cpp, server_client.cpp); internal to the coap part.

#include "coap/server.h"

#include <arpa/inet.h>
#include <netdb.h>
#include <coap3/coap.h>

#include <array>
#include <cstdint>
#include <cstring>
#include <string>

struct mbedtls_x509_crt;

namespace coap_edge::coap::detail {

/// The Server a session's context belongs to (its app data), or nullptr.
inline Server* serverOf(const coap_session_t* session) {
  return static_cast<Server*>(coap_context_get_app_data(coap_session_get_context(session)));
}

/// "192.0.2.1:5684", "[2001:db8::1]:5684": the peer for logs.
inline std::string remoteText(const coap_session_t* session) {
  const coap_address_t* addr = coap_session_get_addr_remote(session);
  if (addr == nullptr) return "?";
  std::array<unsigned char, INET6_ADDRSTRLEN + 8> buf{};
  const size_t n = coap_print_addr(addr, buf.data(), buf.size());
  return std::string(reinterpret_cast<const char*>(buf.data()), n);
}

/// A numeric host (IPv6 link-local scope "%eth0" included) and port as libcoap's address;
/// false for anything that is not a numeric address (names are resolved elsewhere, off the loop).
inline bool numericAddress(const std::string& host, std::uint16_t port, coap_address_t& out) {
  addrinfo hints{};
  hints.ai_flags = AI_NUMERICHOST;
  hints.ai_socktype = SOCK_DGRAM;
  addrinfo* res = nullptr;
  if (getaddrinfo(host.c_str(), nullptr, &hints, &res) != 0 || res == nullptr) return false;
  coap_address_init(&out);
  const bool ok = res->ai_addrlen <= sizeof(out.addr);
  if (ok) {
    std::memcpy(&out.addr, res->ai_addr, res->ai_addrlen);
    out.size = res->ai_addrlen;
    coap_address_set_port(&out, port);
  }
  freeaddrinfo(res);
  return ok;
}

/// The source IP of a session without its port: what handshake limits are keyed by.
inline std::string remoteIp(const coap_session_t* session) {
  const coap_address_t* addr = coap_session_get_addr_remote(session);
  if (addr == nullptr) return "?";
  std::array<char, INET6_ADDRSTRLEN + 8> buf{};
  const char* text = coap_print_ip_addr(addr, buf.data(), buf.size());
  return text == nullptr ? std::string("?") : std::string(text);
}

/// Runs libcoap's own certificate check (the verify callback it set on the session's Mbed TLS
/// config) for one certificate of the peer's chain, as our per-session verify hooks must before
/// adding theirs; returns its result. A session without an Mbed TLS context gets
/// MBEDTLS_X509_BADCERT_OTHER (not the session that was hooked: trust nothing) and false in
/// `checked`. server_handshakes.cpp.
[[nodiscard]] int libcoapVerify(coap_session_t* session, ::mbedtls_x509_crt* crt, int depth, std::uint32_t* flags,
                                bool& checked) noexcept;

/// Mbed TLS's text for X.509 verification flags, first reason only ("The certificate is not
/// correctly signed by the trusted CA"); server_handshakes.cpp.
[[nodiscard]] std::string verifyInfo(std::uint32_t flags);

}  // namespace coap_edge::coap::detail
