// Raw CoAP datagrams for multicast discovery: our probe encoder checked against libcoap's own
// parser, and the parser wrapper on answers a node could send (or forge).

#include "coap/datagram.h"

#include <coap3/coap.h>
#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace coap_edge::coap {
namespace {

struct LibcoapStarted {
  LibcoapStarted() {
    coap_startup();
    coap_set_log_level(COAP_LOG_EMERG);
  }
};
const LibcoapStarted kStarted;

std::vector<std::uint8_t> bytesOf(std::initializer_list<int> values) {
  std::vector<std::uint8_t> out;
  for (int v : values) out.push_back(static_cast<std::uint8_t>(v));
  return out;
}

TEST(ProbeEncoding, LibcoapReadsTheSameRequest) {
  const auto bytes = encodeNonGet(0x1234, "abcdefgh", ".well-known/core", "rt=temperature");
  coap_pdu_t* pdu = coap_pdu_init(COAP_MESSAGE_CON, COAP_EMPTY_CODE, 0, bytes.size());
  ASSERT_NE(coap_pdu_parse(COAP_PROTO_UDP, bytes.data(), bytes.size(), pdu), 0);
  EXPECT_EQ(coap_pdu_get_type(pdu), COAP_MESSAGE_NON);
  EXPECT_EQ(coap_pdu_get_code(pdu), COAP_REQUEST_CODE_GET);
  EXPECT_EQ(coap_pdu_get_mid(pdu), 0x1234);
  coap_string_t* path = coap_get_uri_path(pdu);
  ASSERT_NE(path, nullptr);
  EXPECT_EQ(std::string(reinterpret_cast<const char*>(path->s), path->length), ".well-known/core");
  coap_delete_string(path);
  coap_string_t* query = coap_get_query(pdu);
  ASSERT_NE(query, nullptr);
  EXPECT_EQ(std::string(reinterpret_cast<const char*>(query->s), query->length), "rt=temperature");
  coap_delete_string(query);
  const coap_bin_const_t token = coap_pdu_get_token(pdu);
  EXPECT_EQ(std::string(reinterpret_cast<const char*>(token.s), token.length), "abcdefgh");
  coap_delete_pdu(pdu);
}

TEST(ProbeEncoding, LongOptionsUseExtendedLengths) {
  // 13..268 bytes take a 1-byte length extension (Uri-Path and Uri-Query stop at 255).
  const std::string segment(200, 'x');
  const auto bytes = encodeNonGet(1, "t", segment + "/" + std::string(13, 'y'), "a=" + std::string(250, 'q'));
  coap_pdu_t* pdu = coap_pdu_init(COAP_MESSAGE_CON, COAP_EMPTY_CODE, 0, bytes.size());
  ASSERT_NE(coap_pdu_parse(COAP_PROTO_UDP, bytes.data(), bytes.size(), pdu), 0);
  coap_string_t* path = coap_get_uri_path(pdu);
  ASSERT_NE(path, nullptr);
  EXPECT_EQ(std::string(reinterpret_cast<const char*>(path->s), path->length), segment + "/" + std::string(13, 'y'));
  coap_delete_string(path);
  coap_string_t* query = coap_get_query(pdu);
  ASSERT_NE(query, nullptr);
  EXPECT_EQ(query->length, 252U);
  coap_delete_string(query);
  coap_delete_pdu(pdu);
  const auto parsed = parseDatagram(bytes);
  ASSERT_TRUE(parsed);
  EXPECT_EQ(parsed->code, static_cast<Code>(1));
  EXPECT_EQ(parsed->type, MessageType::non);
}

TEST(DatagramParsing, ReadsAnAnswerWithFormatAndBlock2) {
  // A NON 2.05 with token "tk", Content-Format 40, Block2 num 0 M=1 szx 2 (64 bytes).
  auto bytes = bytesOf({0x52, 0x45, 0x00, 0x07, 't', 'k',
                        0xc1, 40,        // Content-Format (12) = 40
                        0xb1, 0x0a,      // Block2 (23 = 12 + 11): num 0, M=1, szx 2
                        0xff});
  const std::string payload = "</a>;rt=\"x\"";
  bytes.insert(bytes.end(), payload.begin(), payload.end());
  const auto m = parseDatagram(bytes);
  ASSERT_TRUE(m);
  EXPECT_EQ(m->type, MessageType::non);
  EXPECT_EQ(m->code, Code::content);
  EXPECT_EQ(m->message_id, 7);
  EXPECT_EQ(m->token, "tk");
  EXPECT_EQ(m->content_format, content_format::link_format);
  ASSERT_TRUE(m->block2);
  EXPECT_TRUE(m->block2->more);
  EXPECT_EQ(m->block2->size, 64);
  EXPECT_EQ(m->payload, payload);
}

TEST(DatagramParsing, RefusesWhatIsNotCoap) {
  EXPECT_FALSE(parseDatagram(bytesOf({})));
  EXPECT_FALSE(parseDatagram(bytesOf({0x40, 0x01, 0x00})));                    // short header
  EXPECT_FALSE(parseDatagram(bytesOf({0x80, 0x45, 0x00, 0x01})));              // version 2
  EXPECT_FALSE(parseDatagram(bytesOf({0x49, 0x45, 0x00, 0x01})));              // TKL 9
  EXPECT_FALSE(parseDatagram(bytesOf({0x42, 0x45, 0x00, 0x01, 1})));           // token cut short
  EXPECT_FALSE(parseDatagram(bytesOf({0x40, 0x45, 0x00, 0x01, 0xff})));        // payload marker, no payload
  EXPECT_FALSE(parseDatagram(bytesOf({0x40, 0x45, 0x00, 0x01, 0xc3, 1, 2, 3})));  // Content-Format of 3 bytes
  EXPECT_FALSE(parseDatagram(std::vector<std::uint8_t>(1501, 0x40)));          // larger than any datagram we take
}

}  // namespace
}  // namespace coap_edge::coap
