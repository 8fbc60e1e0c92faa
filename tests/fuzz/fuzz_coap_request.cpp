// Bytes from the network as a CoAP request: libcoap's PDU parser, then our conversion into a
// Request and the /status handler that answers it (the agent's packet-facing path above DTLS).

#include "coap/request_pdu.h"
#include "daemon/access_filter.h"
#include "daemon/status_resource.h"

#include <coap3/coap.h>

#include <cstddef>
#include <cstdint>

namespace {

constexpr std::size_t kMaxPdu = 1400;  // what the agent accepts over one UDP/DTLS datagram

// Request codes are class 0, detail 1..31 (RFC 7252 §12.1.1).
bool isRequest(const coap_pdu_t* pdu) {
  const auto code = static_cast<unsigned>(coap_pdu_get_code(pdu));
  return code >= 1 && code < 32;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  static const bool started = [] {
    coap_startup();
    coap_set_log_level(COAP_LOG_EMERG);
    return true;
  }();
  (void)started;
  coap_pdu_t* pdu = coap_pdu_init(COAP_MESSAGE_CON, COAP_REQUEST_CODE_GET, 0, kMaxPdu);
  if (pdu == nullptr) return 0;
  if (coap_pdu_parse(COAP_PROTO_UDP, data, size, pdu) != 0 && isRequest(pdu)) {
    coap_string_t* query = coap_get_query(pdu);
    coap_edge::coap::Request req;
    coap_edge::coap::PeerIdentity peer;
    req.peer = &peer;
    coap_edge::coap::readRequest(pdu, query, req);
    // The path the ACL judges is libcoap's canonical form: '%' only ever starts an escape.
    // (Not for Proxy-Uri requests: libcoap answers those 5.05 before any handler runs.)
    coap_opt_iterator_t it;
    if (coap_check_option(pdu, COAP_OPTION_PROXY_URI, &it) == nullptr) {
      for (std::size_t i = 0; i < req.path.size(); ++i) {
        if (req.path[i] == '%' && (i + 2 >= req.path.size() || req.path[i + 1] == '%')) __builtin_trap();
      }
    }
    static coap_edge::daemon::AccessFilter filter;
    peer.kind = coap_edge::coap::AuthKind::psk;
    peer.identity = "dev-1";
    (void)filter(req);
    coap_edge::daemon::StatusSnapshot snapshot;
    const auto res = coap_edge::daemon::statusResponse(req, snapshot);
    coap_pdu_t* response = coap_pdu_init(COAP_MESSAGE_ACK, static_cast<coap_pdu_code_t>(0), 0, kMaxPdu);
    if (response != nullptr) {
      coap_edge::coap::writeResponseCode(res, response);
      coap_delete_pdu(response);
    }
    coap_delete_string(query);
  }
  coap_delete_pdu(pdu);
  return 0;
}
