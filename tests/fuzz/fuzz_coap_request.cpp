// Bytes from the network as a CoAP request: libcoap's PDU parser, then our conversion into a
// Request and the /status handler that answers it (the agent's packet-facing path above DTLS).

#include "coap/request_pdu.h"
#include "daemon/status_resource.h"

#include <coap3/coap.h>

#include <cstddef>
#include <cstdint>

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  static const bool started = [] {
    coap_startup();
    coap_set_log_level(COAP_LOG_EMERG);
    return true;
  }();
  (void)started;
  coap_pdu_t* pdu = coap_pdu_init(COAP_MESSAGE_CON, COAP_REQUEST_CODE_GET, 0, COAP_DEFAULT_MAX_PDU_RX_SIZE);
  if (pdu == nullptr) return 0;
  if (coap_pdu_parse(COAP_PROTO_UDP, data, size, pdu) != 0 && COAP_PDU_IS_REQUEST(pdu)) {
    coap_string_t* query = coap_get_query(pdu);
    coap_edge::coap::Request req;
    coap_edge::coap::PeerIdentity peer;
    req.peer = &peer;
    coap_edge::coap::readRequest(pdu, query, req);
    coap_edge::daemon::StatusSnapshot snapshot;
    const auto res = coap_edge::daemon::statusResponse(req, snapshot);
    coap_pdu_t* response = coap_pdu_init(COAP_MESSAGE_ACK, 0, 0, 1152);
    if (response != nullptr) {
      coap_edge::coap::writeResponseCode(res, response);
      coap_delete_pdu(response);
    }
    coap_delete_string(query);
  }
  coap_delete_pdu(pdu);
  return 0;
}
