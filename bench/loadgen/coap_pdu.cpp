#include "coap_pdu.h"

#include <algorithm>
#include <cstring>

namespace coap_edge::bench {

namespace {

// RFC 7252 §3.1: a nibble below 13 is the value; 13 adds one byte (value - 13), 14 two (- 269).
unsigned nibble(std::size_t value) { return value < 13 ? static_cast<unsigned>(value) : value < 269 ? 13U : 14U; }

void appendExtended(std::vector<std::uint8_t>& out, std::size_t value) {
  if (value < 13) return;
  if (value < 269) {
    out.push_back(static_cast<std::uint8_t>(value - 13));
  } else {
    out.push_back(static_cast<std::uint8_t>((value - 269) >> 8));
    out.push_back(static_cast<std::uint8_t>(value - 269));
  }
}

}  // namespace

void appendOption(std::vector<std::uint8_t>& out, unsigned& last, unsigned number, std::string_view value) {
  const std::size_t delta = number - last;
  out.push_back(static_cast<std::uint8_t>(nibble(delta) << 4 | nibble(value.size())));
  appendExtended(out, delta);
  appendExtended(out, value.size());
  out.insert(out.end(), value.begin(), value.end());
  last = number;
}

std::vector<std::uint8_t> encodeUriPath(const std::string& path) {
  std::vector<std::uint8_t> out;
  unsigned last = 0;
  std::size_t pos = 1;  // after the leading '/'
  while (pos <= path.size()) {
    const std::size_t slash = std::min(path.find('/', pos), path.size());
    if (slash > pos) appendOption(out, last, kUriPath, std::string_view(path).substr(pos, slash - pos));
    pos = slash + 1;
  }
  return out;
}

std::size_t encodeGet(std::array<std::uint8_t, 256>& out, std::uint16_t mid, std::uint32_t token,
                      const std::vector<std::uint8_t>& options) {
  out[0] = 0x44;  // version 1, CON, token length 4
  out[1] = 0x01;  // GET
  out[2] = static_cast<std::uint8_t>(mid >> 8);
  out[3] = static_cast<std::uint8_t>(mid);
  for (std::size_t i = 0; i < 4; ++i) out[4 + i] = static_cast<std::uint8_t>(token >> (24 - 8 * i));
  const std::size_t n = std::min(options.size(), out.size() - 8);
  std::memcpy(out.data() + 8, options.data(), n);
  return 8 + n;
}

std::array<std::uint8_t, 4> emptyAck(std::uint16_t mid) {
  return {0x60, 0x00, static_cast<std::uint8_t>(mid >> 8), static_cast<std::uint8_t>(mid)};
}

std::optional<CoapHeader> parseHeader(const std::uint8_t* data, std::size_t len) {
  if (len < 4 || (data[0] >> 6) != 1) return std::nullopt;
  const std::size_t tkl = data[0] & 0x0FU;
  if (tkl > 8 || len < 4 + tkl) return std::nullopt;
  CoapHeader h{static_cast<CoapType>((data[0] >> 4) & 3U), data[1],
               static_cast<std::uint16_t>(data[2] << 8 | data[3]), std::nullopt};
  if (tkl == 4) {
    h.token = static_cast<std::uint32_t>(data[4]) << 24 | static_cast<std::uint32_t>(data[5]) << 16 |
              static_cast<std::uint32_t>(data[6]) << 8 | data[7];
  }
  return h;
}

}  // namespace coap_edge::bench
