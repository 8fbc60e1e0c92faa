#pragma once
// Turning a request PDU into the agent's Request value, and a Response into a PDU: the one place
// where bytes from the network become C++ values (fuzzed by tests/fuzz/fuzz_coap_request.cpp).

#include "coap/message.h"

struct coap_pdu_t;
struct coap_string_t;

namespace coap_edge::coap {

/// Reads method, path (Request::path), query, Accept and the payload of `pdu` into `out`
/// (peer untouched).
void readRequest(const coap_pdu_t* pdu, const coap_string_t* query, Request& out);

/// Sets the response code of `pdu` (payload and options are written by the caller).
void writeResponseCode(const Response& response, coap_pdu_t* pdu);

}  // namespace coap_edge::coap
