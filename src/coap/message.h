#pragma once
// Requests and responses as the rest of the agent sees them: plain values, so that only this
// folder includes <coap3/coap.h>.

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace coap_edge::coap {

enum class Method : std::uint8_t { get = 1, post = 2, put = 3, del = 4, fetch = 5, patch = 6, ipatch = 7 };

/// How the peer proved who it is.
enum class AuthKind : std::uint8_t { none, psk, x509 };

[[nodiscard]] std::string_view authKindName(AuthKind kind);

/// Who sent a request: fixed once the DTLS handshake completes.
struct PeerIdentity {
  AuthKind kind = AuthKind::none;
  std::string identity;  ///< PSK identity or certificate subject CN; empty for plain coap
  std::string address;   ///< remote address as text, for logs and counters
  std::string certificate_serial;  ///< x509: the peer certificate's serial (lower-case hex, no leading 00)
  std::uint32_t key_generation = 0;  ///< psk: the generation of the key the handshake used
};

struct Request {
  Method method = Method::get;
  /// Confirmable (CON) or non-confirmable (NON): an over-limit NON is dropped, not answered.
  bool confirmable = true;
  /// The request's Uri-Path as libcoap matches resources against it (policy/acl.h): segments
  /// joined by '/', no leading '/', "" for the root, bytes outside RFC 3986 pchar written %XX.
  /// For a resource added with Server::addResource, exactly its path.
  std::string path;
  std::string query;  ///< raw query, '&'-joined
  std::optional<std::uint16_t> accept;
  std::optional<std::uint16_t> content_format;  ///< of the request's payload, if given
  std::vector<std::uint8_t> payload;
  const PeerIdentity* peer = nullptr;  ///< never null inside a handler
  /// The session the request came on, opaque: lets a handler send a request back to the peer
  /// over the same (DTLS) session (OutgoingRequest::over_session). Valid only inside the handler.
  const void* session = nullptr;
  /// Observe (RFC 7641): 0 registers, 1 deregisters; absent for a plain request.
  std::optional<std::uint32_t> observe;
  /// libcoap runs a resource's GET handler again for every notification it sends to an observer
  /// (with the observer's stored request). Such a run is not a new request: the rate limits do
  /// not charge it, the ACL still applies.
  bool notification = false;
  /// ETag options of the request (RFC 7252 §5.10.6: validators the client holds).
  std::vector<std::string> etags;
  /// Forward proxying (RFC 7252 §5.7.2): Proxy-Uri as sent, or Proxy-Scheme with Uri-Host and
  /// Uri-Port. Requests with neither never carry these.
  std::string proxy_uri;
  std::string proxy_scheme;
  std::string uri_host;
  std::optional<std::uint16_t> uri_port;
};

/// CoAP response codes as class*100+detail (2.05 -> 205).
enum class Code : std::uint16_t {
  /// No response at all: for a NON request nothing is sent (libcoap drops a 0.00 response to a
  /// NON); for a CON request libcoap still sends the empty ACK.
  none = 0,
  created = 201,
  deleted = 202,
  valid = 203,
  changed = 204,
  content = 205,
  bad_request = 400,
  unauthorized = 401,
  bad_option = 402,
  forbidden = 403,
  not_found = 404,
  method_not_allowed = 405,
  not_acceptable = 406,
  request_entity_incomplete = 408,
  precondition_failed = 412,
  request_entity_too_large = 413,
  unsupported_content_format = 415,
  too_many_requests = 429,  ///< RFC 8516, with Max-Age = seconds until the client may retry
  internal_error = 500,
  not_implemented = 501,
  bad_gateway = 502,
  service_unavailable = 503,
  gateway_timeout = 504,
  proxying_not_supported = 505,
};

namespace content_format {
inline constexpr std::uint16_t text_plain = 0;
inline constexpr std::uint16_t link_format = 40;
inline constexpr std::uint16_t json = 50;
inline constexpr std::uint16_t cbor = 60;
}  // namespace content_format

struct Response {
  Code code = Code::content;
  std::optional<std::uint16_t> content_format;
  std::optional<std::uint32_t> max_age;
  std::string payload;
  /// Location-Path of a 2.01 Created (e.g. "rd/4": one option per segment).
  std::string location_path;
  /// ETag (RFC 7252 §5.10.6), 1..8 opaque bytes; relayed from nodes.
  std::optional<std::string> etag;
};

}  // namespace coap_edge::coap
