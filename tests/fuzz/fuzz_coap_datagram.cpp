// Bytes from the network as an answer to a multicast probe: what MulticastProber does with a
// datagram (libcoap's parser through coap::parseDatagram, then the link-format parser on the
// payload). Invariants: no crash, fields within their wire ranges.

#include "coap/datagram.h"
#include "discovery/link_format.h"

#include <coap3/coap.h>

#include <cstddef>
#include <cstdint>
#include <cstdlib>

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  static const bool started = [] {
    coap_startup();
    coap_set_log_level(COAP_LOG_EMERG);
    return true;
  }();
  (void)started;
  const auto message = coap_edge::coap::parseDatagram({data, size});
  if (!message) return 0;
  // libcoap 4.3.5 reads extended tokens (RFC 8974), so a token may exceed 8 bytes; it still
  // comes out of the datagram, as does the payload.
  if (message->token.size() + message->payload.size() + 4 > size) std::abort();
  if (message->block2 && (message->block2->size < 16 || message->block2->size > 1024)) std::abort();
  const auto links = coap_edge::discovery::parseLinkFormat(message->payload);
  if (links.ok() == links.error.has_value()) std::abort();
  return 0;
}
