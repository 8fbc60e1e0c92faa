#pragma once
// Just enough CoAP (RFC 7252 §3) for a load generator: a confirmable GET with a 4-byte token and
// Uri-Path, Uri-Query or Proxy-Uri options, an empty ACK, and the fixed header of what comes back.
// Options that never change within a run are encoded once; a per-request query is appended.

#include <array>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace coap_edge::bench {

enum class CoapType : std::uint8_t { Con = 0, Non = 1, Ack = 2, Rst = 3 };

/// Option numbers used here (RFC 7252 §12.2).
inline constexpr unsigned kUriPath = 11;
inline constexpr unsigned kUriQuery = 15;
inline constexpr unsigned kProxyUri = 35;

/// Appends one option to `out` (options must come in ascending order): `last` is the number of the
/// previous option (0 for the first) and becomes `number`. Deltas and lengths up to 65804.
void appendOption(std::vector<std::uint8_t>& out, unsigned& last, unsigned number, std::string_view value);

/// Uri-Path options of `path` ("/a/b" -> "a", "b"), encoded as option deltas and lengths.
std::vector<std::uint8_t> encodeUriPath(const std::string& path);

/// CON GET with message id `mid`, token `token` (4 bytes) and the pre-encoded options.
std::size_t encodeGet(std::array<std::uint8_t, 256>& out, std::uint16_t mid, std::uint32_t token,
                      const std::vector<std::uint8_t>& options);

/// Empty ACK for a confirmable message `mid` (separate responses).
std::array<std::uint8_t, 4> emptyAck(std::uint16_t mid);

struct CoapHeader {
  CoapType type;
  std::uint8_t code;  ///< class << 5 | detail
  std::uint16_t mid;
  std::optional<std::uint32_t> token;  ///< set when the token is 4 bytes long
};

/// The header of a CoAP message; nullopt if it is not CoAP version 1 or is truncated.
std::optional<CoapHeader> parseHeader(const std::uint8_t* data, std::size_t len);

}  // namespace coap_edge::bench
