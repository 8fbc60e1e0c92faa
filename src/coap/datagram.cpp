#include "coap/datagram.h"

#include <coap3/coap.h>

#include <memory>

namespace coap_edge::coap {
namespace {

// RFC 7252 §3.1: delta and length nibbles, 13 and 14 announcing 1- and 2-byte extensions.
void appendOptionHeader(std::vector<std::uint8_t>& out, unsigned delta, std::size_t length) {
  const auto nibble = [](std::size_t v) -> unsigned { return v < 13 ? static_cast<unsigned>(v) : v < 269 ? 13u : 14u; };
  const unsigned d = nibble(delta);
  const unsigned l = nibble(length);
  out.push_back(static_cast<std::uint8_t>((d << 4) | l));
  const auto extend = [&out](unsigned n, std::size_t v) {
    if (n == 13) out.push_back(static_cast<std::uint8_t>(v - 13));
    if (n == 14) {
      const std::size_t e = v - 269;
      out.push_back(static_cast<std::uint8_t>(e >> 8));
      out.push_back(static_cast<std::uint8_t>(e & 0xff));
    }
  };
  extend(d, delta);
  extend(l, length);
}

void appendOptions(std::vector<std::uint8_t>& out, unsigned& last, unsigned number, std::string_view text, char sep) {
  while (true) {
    const std::size_t cut = text.find(sep);
    const std::string_view part = text.substr(0, cut);
    if (!part.empty() || number == COAP_OPTION_URI_PATH) {
      appendOptionHeader(out, number - last, part.size());
      out.insert(out.end(), part.begin(), part.end());
      last = number;
    }
    if (cut == std::string_view::npos) break;
    text.remove_prefix(cut + 1);
  }
}

struct PduDeleter {
  void operator()(coap_pdu_t* pdu) const noexcept { coap_delete_pdu(pdu); }
};

}  // namespace

std::vector<std::uint8_t> encodeNonGet(std::uint16_t message_id, std::string_view token, std::string_view path,
                                       std::string_view query) {
  std::vector<std::uint8_t> out;
  const auto tkl = static_cast<std::uint8_t>(std::min<std::size_t>(token.size(), 8));
  out.push_back(static_cast<std::uint8_t>(0x40 | (1u << 4) | tkl));  // version 1, NON
  out.push_back(COAP_REQUEST_CODE_GET);
  out.push_back(static_cast<std::uint8_t>(message_id >> 8));
  out.push_back(static_cast<std::uint8_t>(message_id & 0xff));
  out.insert(out.end(), token.begin(), token.begin() + tkl);
  unsigned last = 0;
  if (!path.empty()) appendOptions(out, last, COAP_OPTION_URI_PATH, path, '/');
  if (!query.empty()) appendOptions(out, last, COAP_OPTION_URI_QUERY, query, '&');
  return out;
}

std::optional<DatagramMessage> parseDatagram(std::span<const std::uint8_t> bytes) {
  // Larger than any datagram a constrained node sends unfragmented; refuse before allocating.
  constexpr std::size_t kMaxDatagram = 1500;
  if (bytes.size() < 4 || bytes.size() > kMaxDatagram) return std::nullopt;
  std::unique_ptr<coap_pdu_t, PduDeleter> pdu(coap_pdu_init(COAP_MESSAGE_CON, COAP_EMPTY_CODE, 0, bytes.size()));
  if (!pdu) return std::nullopt;
  if (coap_pdu_parse(COAP_PROTO_UDP, bytes.data(), bytes.size(), pdu.get()) == 0) return std::nullopt;
  DatagramMessage m;
  m.type = static_cast<MessageType>(coap_pdu_get_type(pdu.get()) & 3);
  const unsigned raw = coap_pdu_get_code(pdu.get());
  m.code = static_cast<Code>((raw >> 5) * 100 + (raw & 0x1f));
  m.message_id = static_cast<std::uint16_t>(coap_pdu_get_mid(pdu.get()));
  const coap_bin_const_t token = coap_pdu_get_token(pdu.get());
  m.token.assign(reinterpret_cast<const char*>(token.s), token.length);
  coap_opt_iterator_t it;
  if (const coap_opt_t* cf = coap_check_option(pdu.get(), COAP_OPTION_CONTENT_FORMAT, &it)) {
    if (coap_opt_length(cf) > 2) return std::nullopt;
    m.content_format = static_cast<std::uint16_t>(coap_decode_var_bytes(coap_opt_value(cf), coap_opt_length(cf)));
  }
  coap_block_t block{};
  if (coap_get_block(pdu.get(), COAP_OPTION_BLOCK2, &block) != 0) {
    if (block.szx > 6) return std::nullopt;  // 7 is reserved (BERT is TCP only)
    m.block2 = Block2{block.num, block.m != 0, static_cast<std::uint16_t>(1u << (block.szx + 4))};
  }
  size_t len = 0;
  const uint8_t* data = nullptr;
  if (coap_get_data(pdu.get(), &len, &data) != 0 && data != nullptr) m.payload.assign(reinterpret_cast<const char*>(data), len);
  return m;
}

}  // namespace coap_edge::coap
