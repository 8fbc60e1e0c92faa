// libFuzzer target for SenML packs (relay/senml.h). The first byte picks what the rest is:
//   0: a JSON pack, 1: a CBOR pack, for decodePack on untrusted bytes: no crash, no sanitizer
//      report, and what it accepts is sane (named records with finite times and numbers);
//   2: values to encode: both encodings decode to the same records, in order, carrying the
//      node's name, the payload and the time they were made from.
// A broken property traps.

#include "relay/senml.h"

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace {

using namespace coap_edge::relay;
using Kind = DecodedRecord::Kind;

void checkDecoded(const std::optional<std::vector<DecodedRecord>>& records) {
  if (!records) return;
  for (const DecodedRecord& r : *records) {
    if (r.name.empty() || !std::isfinite(r.time)) __builtin_trap();
    if (r.kind == Kind::number && !std::isfinite(r.number)) __builtin_trap();
    if (r.kind == Kind::string && !isValidUtf8(r.text)) __builtin_trap();
  }
}

// Takes up to n bytes from the front of `in`.
std::string take(std::string_view& in, std::size_t n) {
  n = std::min(n, in.size());
  std::string out(in.substr(0, n));
  in.remove_prefix(n);
  return out;
}

std::vector<QueuedValue> valuesFrom(std::string_view in) {
  std::vector<QueuedValue> values;
  constexpr std::uint16_t kFormats[] = {kContentFormatText, kContentFormatText, kContentFormatJson, 42};
  while (in.size() >= 8 && values.size() < 16) {
    const auto b = [&](std::size_t i) { return static_cast<std::uint8_t>(in[i]); };
    QueuedValue v;
    v.seq = values.size() + 1;
    v.content_format = kFormats[b(0) & 3];
    // Signed times, milliseconds up to about ±70 years around the epoch.
    const std::uint32_t seconds = std::uint32_t{b(1)} << 24 | std::uint32_t{b(2)} << 16 | std::uint32_t{b(3)} << 8 | b(4);
    v.time_ms = static_cast<std::int32_t>(seconds) * std::int64_t{1000} + b(5);
    const std::size_t node_len = b(6) & 7, path_len = (b(6) >> 3) & 7, payload_len = b(7) & 31;
    in.remove_prefix(8);
    v.node = take(in, node_len);
    v.path = take(in, path_len);
    v.payload = take(in, payload_len);
    values.push_back(std::move(v));
  }
  return values;
}

void checkRoundTrip(std::string_view in) {
  const std::vector<QueuedValue> values = valuesFrom(in);
  const std::string_view prefix = "urn:gw:g:";
  const auto json = decodePack(encodePack(values, SenmlFormat::json, prefix), SenmlFormat::json);
  const auto cbor = decodePack(encodePack(values, SenmlFormat::cbor, prefix), SenmlFormat::cbor);
  if (!json || !cbor || json->size() != values.size() || cbor->size() != values.size()) __builtin_trap();
  for (std::size_t i = 0; i < values.size(); ++i) {
    const QueuedValue& v = values[i];
    const DecodedRecord& j = (*json)[i];
    const DecodedRecord& c = (*cbor)[i];
    if (!(j == c)) __builtin_trap();
    if (std::fabs(j.time - static_cast<double>(v.time_ms) / 1000.0) > 1e-6 * std::fabs(j.time) + 1e-9) __builtin_trap();
    std::string_view path = v.path;
    if (!path.empty() && path.front() == '/') path.remove_prefix(1);
    if (isValidUtf8(v.node) && isValidUtf8(path) && j.name != std::string(prefix) + v.node + "/" + std::string(path)) {
      __builtin_trap();
    }
    switch (j.kind) {
      case Kind::number:
        if (v.content_format != kContentFormatText) __builtin_trap();
        break;
      case Kind::boolean:
        if (v.content_format != kContentFormatText || v.payload != (j.boolean ? "true" : "false")) __builtin_trap();
        break;
      case Kind::string:
      case Kind::data:
        if (j.text != v.payload) __builtin_trap();
        break;
    }
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size == 0) return 0;
  const std::string_view rest(reinterpret_cast<const char*>(data + 1), size - 1);
  switch (data[0] % 3) {
    case 0: checkDecoded(decodePack(rest, SenmlFormat::json)); break;
    case 1: checkDecoded(decodePack(rest, SenmlFormat::cbor)); break;
    default: checkRoundTrip(rest); break;
  }
  return 0;
}
