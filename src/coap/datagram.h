#pragma once
// CoAP-over-UDP messages as raw datagrams, for the one place where the agent owns the socket
// itself: multicast discovery (RFC 7252 §8), sent per interface with the right scope and
// answered by unicast from any node. Responses are untrusted bytes from the network: parsed with
// libcoap's parser, bounded, fuzzed (tests/fuzz/fuzz_coap_datagram.cpp).

#include "coap/message.h"

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace coap_edge::coap {

enum class MessageType : std::uint8_t { con = 0, non = 1, ack = 2, rst = 3 };

struct Block2 {
  std::uint32_t number = 0;
  bool more = false;
  std::uint16_t size = 0;  ///< bytes per block (16..1024)
};

struct DatagramMessage {
  MessageType type = MessageType::non;
  Code code = Code::none;  ///< class*100+detail; requests have codes 1..31 (0.01..0.31)
  std::uint16_t message_id = 0;
  std::string token;
  std::optional<std::uint16_t> content_format;
  std::optional<Block2> block2;
  std::string payload;
};

/// A NON GET for `path` ("a/b") with '&'-separated `query`, ready to send.
[[nodiscard]] std::vector<std::uint8_t> encodeNonGet(std::uint16_t message_id, std::string_view token,
                                                     std::string_view path, std::string_view query);

/// Parses one datagram; nullopt if it is not a well-formed CoAP message.
[[nodiscard]] std::optional<DatagramMessage> parseDatagram(std::span<const std::uint8_t> bytes);

}  // namespace coap_edge::coap
