#include "util.h"

#include <fmt/format.h>

#include <netdb.h>

#include <algorithm>
#include <cstring>

namespace coap_edge::testpeer {
namespace {

void releaseString(coap_session_t*, void* p) { delete static_cast<std::string*>(p); }

int nibble(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

void addUint(coap_optlist_t** chain, coap_option_num_t number, unsigned value) {
  std::uint8_t buf[4];
  coap_insert_optlist(chain, coap_new_optlist(number, coap_encode_var_safe(buf, sizeof(buf), value), buf));
}

}  // namespace

std::optional<std::string> parseHex(std::string_view hex) {
  if (hex.empty() || hex.size() % 2 != 0) return std::nullopt;
  std::string out;
  for (std::size_t i = 0; i < hex.size(); i += 2) {
    const int hi = nibble(hex[i]);
    const int lo = nibble(hex[i + 1]);
    if (hi < 0 || lo < 0) return std::nullopt;
    out.push_back(static_cast<char>(hi * 16 + lo));
  }
  return out;
}

std::string hexOf(std::string_view bytes) {
  static const char* digits = "0123456789abcdef";
  std::string out;
  out.reserve(bytes.size() * 2);
  for (char ch : bytes) {
    const auto c = static_cast<unsigned char>(ch);
    out.push_back(digits[c >> 4]);
    out.push_back(digits[c & 15]);
  }
  return out;
}

std::string codeText(coap_pdu_code_t code) {
  const unsigned c = static_cast<unsigned>(code);
  return fmt::format("{}.{:02}", c >> 5, c & 0x1f);
}

std::string textOrHex(std::string_view payload) {
  const bool printable = std::all_of(payload.begin(), payload.end(), [](char ch) {
    const auto c = static_cast<unsigned char>(ch);
    return (c >= 0x20 && c < 0x7f) || c == '\t';
  });
  return printable ? std::string(payload) : hexOf(payload);
}

const char* nackText(coap_nack_reason_t reason) {
  switch (reason) {
    case COAP_NACK_TOO_MANY_RETRIES:
      return "no answer (too many retransmissions)";
    case COAP_NACK_NOT_DELIVERABLE:
      return "not deliverable";
    case COAP_NACK_RST:
      return "reset by the peer";
    case COAP_NACK_TLS_FAILED:
      return "DTLS handshake failed";
    case COAP_NACK_ICMP_ISSUE:
      return "ICMP error (nothing listens there?)";
    case COAP_NACK_BAD_RESPONSE:
      return "bad response";
    case COAP_NACK_TLS_LAYER_FAILED:
      return "DTLS layer failed";
    default:
      return "failed";
  }
}

coap_pdu_code_t methodCode(const std::string& method) {
  if (method == "get") return COAP_REQUEST_CODE_GET;
  if (method == "post") return COAP_REQUEST_CODE_POST;
  if (method == "put") return COAP_REQUEST_CODE_PUT;
  if (method == "delete") return COAP_REQUEST_CODE_DELETE;
  if (method == "fetch") return COAP_REQUEST_CODE_FETCH;
  return static_cast<coap_pdu_code_t>(0);
}

bool parseAddress(const std::string& text, coap_address_t& out) {
  std::string host, port;
  if (!text.empty() && text[0] == '[') {
    const auto close = text.find(']');
    if (close == std::string::npos || close + 1 >= text.size() || text[close + 1] != ':') return false;
    host = text.substr(1, close - 1);
    port = text.substr(close + 2);
  } else {
    const auto colon = text.rfind(':');
    if (colon == std::string::npos || text.find(':') != colon) return false;
    host = text.substr(0, colon);
    port = text.substr(colon + 1);
  }
  if (host.empty() || port.empty() || port.find_first_not_of("0123456789") != std::string::npos) return false;
  addrinfo hints{};
  hints.ai_flags = AI_NUMERICHOST | AI_NUMERICSERV | AI_PASSIVE;
  hints.ai_socktype = SOCK_DGRAM;
  hints.ai_family = text[0] == '[' ? AF_INET6 : AF_INET;
  addrinfo* res = nullptr;
  if (getaddrinfo(host.c_str(), port.c_str(), &hints, &res) != 0 || res == nullptr) return false;
  coap_address_init(&out);
  std::memcpy(&out.addr, res->ai_addr, res->ai_addrlen);
  out.size = res->ai_addrlen;
  freeaddrinfo(res);
  return true;
}

std::optional<std::vector<std::uint8_t>> sendRequest(coap_session_t* session, const RequestSpec& spec) {
  coap_pdu_t* pdu = coap_pdu_init(COAP_MESSAGE_CON, spec.code, coap_new_message_id(session),
                                  coap_session_max_pdu_size(session));
  if (pdu == nullptr) return std::nullopt;
  std::uint8_t token[8];
  size_t token_len = 0;
  coap_session_new_token(session, &token_len, token);
  coap_add_token(pdu, token_len, token);

  coap_optlist_t* options = nullptr;
  if (!spec.proxy_uri.empty()) {
    coap_insert_optlist(&options, coap_new_optlist(COAP_OPTION_PROXY_URI, spec.proxy_uri.size(),
                                                   reinterpret_cast<const std::uint8_t*>(spec.proxy_uri.data())));
  } else {
    std::string_view path = spec.path;
    while (!path.empty() && path.front() == '/') path.remove_prefix(1);
    if (!path.empty()) {
      coap_path_into_optlist(reinterpret_cast<const std::uint8_t*>(path.data()), path.size(), COAP_OPTION_URI_PATH,
                             &options);
    }
    if (!spec.query.empty()) {
      coap_query_into_optlist(reinterpret_cast<const std::uint8_t*>(spec.query.data()), spec.query.size(),
                              COAP_OPTION_URI_QUERY, &options);
    }
  }
  if (spec.observe >= 0) addUint(&options, COAP_OPTION_OBSERVE, static_cast<unsigned>(spec.observe));
  if (spec.content_format >= 0) addUint(&options, COAP_OPTION_CONTENT_FORMAT, static_cast<unsigned>(spec.content_format));
  if (spec.accept >= 0) addUint(&options, COAP_OPTION_ACCEPT, static_cast<unsigned>(spec.accept));
  const int added = coap_add_optlist_pdu(pdu, &options);
  coap_delete_optlist(options);
  if (added == 0) {
    coap_delete_pdu(pdu);
    return std::nullopt;
  }
  if (spec.payload && !spec.payload->empty()) {
    // Past one PDU libcoap sends it with Block1; the copy lives until libcoap releases it.
    auto* body = new std::string(*spec.payload);
    if (coap_add_data_large_request(session, pdu, body->size(), reinterpret_cast<const std::uint8_t*>(body->data()),
                                    releaseString, body) == 0) {
      coap_delete_pdu(pdu);
      return std::nullopt;
    }
  }
  if (coap_send(session, pdu) == COAP_INVALID_MID) return std::nullopt;
  return std::vector<std::uint8_t>(token, token + token_len);
}

std::string bodyOf(const coap_pdu_t* pdu) {
  size_t len = 0, offset = 0, total = 0;
  const std::uint8_t* data = nullptr;
  if (coap_get_data_large(pdu, &len, &data, &offset, &total) == 0 || data == nullptr) return {};
  return std::string(reinterpret_cast<const char*>(data), len);
}

bool sameToken(const coap_pdu_t* pdu, const std::vector<std::uint8_t>& token) {
  if (pdu == nullptr) return false;
  const coap_bin_const_t t = coap_pdu_get_token(pdu);
  return t.length == token.size() && std::equal(token.begin(), token.end(), t.s);
}

coap_dtls_pki_t verifyingPemPki(const std::string& certificate, const std::string& private_key, const std::string& ca) {
  coap_dtls_pki_t pki;
  std::memset(&pki, 0, sizeof(pki));
  pki.version = COAP_DTLS_PKI_SETUP_VERSION;
  pki.verify_peer_cert = 1;
  pki.check_common_ca = 1;
  pki.cert_chain_validation = 1;
  pki.cert_chain_verify_depth = 2;
  pki.allow_no_crl = 1;
  pki.pki_key.key_type = COAP_PKI_KEY_PEM;
  pki.pki_key.key.pem.public_cert = certificate.c_str();
  pki.pki_key.key.pem.private_key = private_key.c_str();
  pki.pki_key.key.pem.ca_file = ca.c_str();
  return pki;
}

}  // namespace coap_edge::testpeer
