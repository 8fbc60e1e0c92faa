#pragma once
// SenML packs (RFC 8428) of queued telemetry values, in JSON (Content-Format 110,
// application/senml+json) and CBOR (112, application/senml+cbor), and a strict decoder for them.
//
// Encoding, one record per value: `bn` = prefix + node + "/" on the first record of each run of
// the same node (so a pack of one node carries its name once), `n` = the resource path without a
// leading '/', `t` = absolute unix time in seconds, and the value mapped from the payload:
//   - Content-Format 0 (text/plain) holding a finite decimal number ("21.5", "-3", "1e3") -> `v`;
//   - text/plain "true" / "false" -> `vb`;
//   - other valid UTF-8 text/plain, and valid UTF-8 application/json (50) -> `vs` (the text);
//   - anything else (other formats, invalid UTF-8) -> `vd`: base64url without padding in JSON,
//     a byte string in CBOR.
// Numbers (`v`, `t`) that are integers of at most 2^53 in magnitude are written as integers, so
// integral times and readings are exact and short; others as doubles (CBOR: float32 when exact).
// CBOR maps use the integer labels of RFC 8428 §6 in the deterministic key order of RFC 8949
// §4.2.1 (n, v, vs, vb, t, vd, bn), so the bytes of a pack depend only on its values.
// Node ids and paths that are not valid UTF-8 have each bad byte replaced by U+FFFD.
//
// Decoding reads untrusted bytes: bounded input size, nesting (array of maps only), definite
// lengths (CBOR) checked against the bytes present; it never throws.

#include "relay/telemetry_queue.h"

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace coap_edge::relay {

enum class SenmlFormat { json, cbor };

inline constexpr std::uint16_t kContentFormatText = 0;
inline constexpr std::uint16_t kContentFormatJson = 50;
inline constexpr std::uint16_t kContentFormatSenmlJson = 110;
inline constexpr std::uint16_t kContentFormatSenmlCbor = 112;
/// decodePack refuses larger inputs.
inline constexpr std::size_t kMaxDecodedPackBytes = 4u * 1024u * 1024u;

/// The Content-Format number of `format` (110 or 112).
[[nodiscard]] std::uint16_t contentFormatOf(SenmlFormat format) noexcept;

/// One pack of `values`, in their order. Never fails (allocation aside).
/// @param[in] base_name_prefix  prepended to "node/", e.g. "urn:gw:gw-01:".
[[nodiscard]] std::string encodePack(const std::vector<QueuedValue>& values, SenmlFormat format,
                                     std::string_view base_name_prefix);

/// A record with bn/bt resolved.
struct DecodedRecord {
  enum class Kind { number, string, boolean, data };
  std::string name;      ///< bn + n
  double time = 0;       ///< bt + t, seconds (0 if neither is present)
  Kind kind = Kind::number;
  double number = 0;     ///< `v`
  bool boolean = false;  ///< `vb`
  std::string text;      ///< `vs`, or the decoded bytes of `vd`
  friend bool operator==(const DecodedRecord&, const DecodedRecord&) = default;
};

/// Parses a pack. @returns nullopt for anything that is not a well-formed pack: not an array of
/// maps, a record without a name or without exactly one of v/vs/vb/vd, a label ending in '_'
/// (must-understand, RFC 8428 §4.4), a duplicate label, a wrong type, invalid base64url,
/// non-finite numbers, trailing bytes, or more than kMaxDecodedPackBytes. Other labels are ignored.
[[nodiscard]] std::optional<std::vector<DecodedRecord>> decodePack(std::string_view bytes, SenmlFormat format);

/// base64url (RFC 4648 §5) without padding, as SenML JSON carries `vd`.
[[nodiscard]] std::string base64UrlEncode(std::string_view bytes);
/// The inverse: refuses padding, other alphabets, an impossible length and non-zero trailing
/// bits (so that every byte string has exactly one accepted encoding).
[[nodiscard]] std::optional<std::string> base64UrlDecode(std::string_view text);

/// True if `text` is well-formed UTF-8 (no overlongs, surrogates or code points past U+10FFFF).
[[nodiscard]] bool isValidUtf8(std::string_view text) noexcept;

}  // namespace coap_edge::relay
