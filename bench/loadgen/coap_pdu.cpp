#include "coap_pdu.h"

#include <algorithm>
#include <cstring>

namespace coap_edge::bench {

std::vector<std::uint8_t> encodeUriPath(const std::string& path) {
  constexpr unsigned kUriPath = 11;
  std::vector<std::uint8_t> out;
  unsigned delta = kUriPath;
  std::size_t pos = 1;  // after the leading '/'
  while (pos <= path.size()) {
    const std::size_t slash = std::min(path.find('/', pos), path.size());
    const std::size_t len = slash - pos;
    if (len > 0) {
      // Uri-Path delta is 11 then 0 (< 13); segment lengths up to 268 use one extended byte.
      if (len < 13) {
        out.push_back(static_cast<std::uint8_t>(delta << 4 | len));
      } else {
        out.push_back(static_cast<std::uint8_t>(delta << 4 | 13U));
        out.push_back(static_cast<std::uint8_t>(len - 13));
      }
      out.insert(out.end(), path.begin() + static_cast<std::ptrdiff_t>(pos),
                 path.begin() + static_cast<std::ptrdiff_t>(slash));
      delta = 0;
    }
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
