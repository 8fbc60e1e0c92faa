#pragma once
// Pieces both modes share: hex, response codes, request PDUs on a session, payload text.

#include <coap3/coap.h>

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace coap_edge::testpeer {

/// Hex digits (even count) to bytes; nullopt if malformed.
std::optional<std::string> parseHex(std::string_view hex);
std::string hexOf(std::string_view bytes);
/// "2.05".
std::string codeText(coap_pdu_code_t code);
/// The payload as text if every byte is printable ASCII (tab too), else as lower-case hex.
std::string textOrHex(std::string_view payload);
const char* nackText(coap_nack_reason_t reason);
/// get|put|post|delete|fetch (lower case) to the request code; 0 if none.
coap_pdu_code_t methodCode(const std::string& method);
/// "A.B.C.D:PORT" or "[IPV6]:PORT", numeric only.
bool parseAddress(const std::string& text, coap_address_t& out);

struct RequestSpec {
  coap_pdu_code_t code = COAP_REQUEST_CODE_GET;
  std::string path;   ///< "a/b" or "/a/b" (percent-encoded as in a URI)
  std::string query;  ///< "x=1&y" without '?'
  std::string proxy_uri;
  std::optional<std::string> payload;
  int content_format = -1;
  int accept = -1;
  int observe = -1;  ///< 0: register
};

/// Builds a CON request for `session` (new token, options, payload with Block1 by libcoap if
/// large) and sends it. Returns the token, or nullopt if libcoap refused.
std::optional<std::vector<std::uint8_t>> sendRequest(coap_session_t* session, const RequestSpec& spec);

/// A PEM certificate setup that verifies the peer as a real device or service would: its
/// certificate must chain to `ca` (depth 2) and be valid now; no CRL. The strings must outlive
/// the setup (libcoap reads the files when the context or session takes it).
coap_dtls_pki_t verifyingPemPki(const std::string& certificate, const std::string& private_key, const std::string& ca);

/// The (reassembled) body of a PDU.
std::string bodyOf(const coap_pdu_t* pdu);
bool sameToken(const coap_pdu_t* pdu, const std::vector<std::uint8_t>& token);

}  // namespace coap_edge::testpeer
