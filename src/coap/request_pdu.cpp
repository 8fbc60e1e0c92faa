#include "coap/request_pdu.h"

#include <coap3/coap.h>

#include <string>

namespace coap_edge::coap {
namespace {

Method methodOf(coap_pdu_code_t code) {
  switch (code) {
    case COAP_REQUEST_CODE_POST:
      return Method::post;
    case COAP_REQUEST_CODE_PUT:
      return Method::put;
    case COAP_REQUEST_CODE_DELETE:
      return Method::del;
    case COAP_REQUEST_CODE_FETCH:
      return Method::fetch;
    case COAP_REQUEST_CODE_PATCH:
      return Method::patch;
    case COAP_REQUEST_CODE_IPATCH:
      return Method::ipatch;
    default:
      return Method::get;
  }
}

std::string optionText(const coap_opt_t* opt) {
  return std::string(reinterpret_cast<const char*>(coap_opt_value(opt)), coap_opt_length(opt));
}

}  // namespace

void readRequest(const coap_pdu_t* pdu, const coap_string_t* query, Request& out) {
  out.method = methodOf(coap_pdu_get_code(pdu));
  out.confirmable = coap_pdu_get_type(pdu) == COAP_MESSAGE_CON;
  // The very string libcoap looked the resource up with, so the ACL judges what is served.
  out.path.clear();
  if (coap_string_t* path = coap_get_uri_path(pdu)) {
    if (path->s != nullptr) out.path.assign(reinterpret_cast<const char*>(path->s), path->length);
    coap_delete_string(path);
  }
  if (query != nullptr && query->s != nullptr) out.query.assign(reinterpret_cast<const char*>(query->s), query->length);
  coap_opt_iterator_t it;
  if (const coap_opt_t* accept = coap_check_option(pdu, COAP_OPTION_ACCEPT, &it)) {
    // Accept is a uint of at most 2 bytes (RFC 7252 §5.10); longer encodings are not formats we serve.
    const unsigned len = coap_opt_length(accept);
    out.accept = len <= 2 ? static_cast<std::uint16_t>(coap_decode_var_bytes(coap_opt_value(accept), len)) : 0xffff;
  }
  if (const coap_opt_t* format = coap_check_option(pdu, COAP_OPTION_CONTENT_FORMAT, &it)) {
    const unsigned len = coap_opt_length(format);
    out.content_format = len <= 2 ? static_cast<std::uint16_t>(coap_decode_var_bytes(coap_opt_value(format), len)) : 0xffff;
  }
  if (const coap_opt_t* observe = coap_check_option(pdu, COAP_OPTION_OBSERVE, &it)) {
    // At most 3 bytes (RFC 7641 §2); longer is no value we know (neither register nor cancel).
    const unsigned len = coap_opt_length(observe);
    out.observe = len <= 3 ? coap_decode_var_bytes(coap_opt_value(observe), len) : 0xffffffffu;
  }
  out.etags.clear();
  coap_option_iterator_init(pdu, &it, COAP_OPT_ALL);
  while (const coap_opt_t* opt = coap_option_next(&it)) {
    switch (it.number) {
      case COAP_OPTION_ETAG:
        out.etags.push_back(optionText(opt));
        break;
      case COAP_OPTION_PROXY_URI:
        out.proxy_uri = optionText(opt);
        break;
      case COAP_OPTION_PROXY_SCHEME:
        out.proxy_scheme = optionText(opt);
        break;
      case COAP_OPTION_URI_HOST:
        out.uri_host = optionText(opt);
        break;
      case COAP_OPTION_URI_PORT: {
        const unsigned len = coap_opt_length(opt);
        // A port is at most 2 bytes; anything else cannot name one of our nodes.
        out.uri_port = len <= 2 ? static_cast<std::uint16_t>(coap_decode_var_bytes(coap_opt_value(opt), len)) : 0;
        break;
      }
      default:
        break;
    }
  }
  size_t len = 0;
  const uint8_t* data = nullptr;
  size_t offset = 0;
  size_t total = 0;
  if (coap_get_data_large(pdu, &len, &data, &offset, &total) != 0 && data != nullptr) {
    out.payload.assign(data, data + len);
  }
}

void writeResponseCode(const Response& response, coap_pdu_t* pdu) {
  const auto code = static_cast<unsigned>(response.code);
  coap_pdu_set_code(pdu, static_cast<coap_pdu_code_t>(COAP_RESPONSE_CODE(code)));
}

}  // namespace coap_edge::coap
