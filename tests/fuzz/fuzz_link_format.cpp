// libFuzzer target for the CoRE Link Format parser and serializer (discovery/link_format.h).
// Any input: no crash, no sanitizer report; a refusal points inside the input and says why; a
// parsed list respects the limits and reads back unchanged from its serialized form, which is a
// fixed point; tighter limits never accept what the defaults refuse. A broken property traps.

#include "discovery/link_format.h"

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace {

using namespace coap_edge::discovery;

void checkWithinLimits(const LinkFormatResult& result, const LinkFormatLimits& limits) {
  if (result.links.size() > limits.max_links) __builtin_trap();
  for (const Link& link : result.links) {
    if (link.target.size() > limits.max_target_bytes) __builtin_trap();
    if (link.attributes.size() > limits.max_attributes_per_link) __builtin_trap();
    for (const LinkAttribute& a : link.attributes) {
      if (a.name.empty() || a.name.size() > limits.max_name_bytes) __builtin_trap();
      for (const char c : a.name) {
        if (c >= 'A' && c <= 'Z') __builtin_trap();  // stored in lower case
      }
      if (a.value && a.value->size() > limits.max_value_bytes) __builtin_trap();
      if (!a.value && a.quoted) __builtin_trap();
    }
    // The accessors agree with the attributes they read.
    for (std::string_view name : {"rt", "if", "anchor", "title", "obs"}) {
      const auto first = link.attribute(name);
      if (first && !link.has(name)) __builtin_trap();
      const auto values = link.values(name);
      if (first.has_value() != !values.empty() && name != "rt" && name != "if") __builtin_trap();
    }
    // rt and if are lists: split into non-empty words without spaces.
    for (std::string_view name : {"rt", "if"}) {
      for (const std::string_view word : link.values(name)) {
        if (word.empty() || word.find_first_of(" \t") != std::string_view::npos) __builtin_trap();
      }
    }
    if (link.has("anchor") && !link.attribute("anchor")) __builtin_trap();
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view input(reinterpret_cast<const char*>(data), size);
  const LinkFormatLimits limits;
  const auto result = parseLinkFormat(input, limits);
  if (!result.ok()) {
    if (!result.links.empty() || result.error->message.empty()) __builtin_trap();
    if (result.error->offset > input.size()) __builtin_trap();
  } else {
    checkWithinLimits(result, limits);
    const std::string text = serializeLinkFormat(result.links);
    const auto again = parseLinkFormat(text, limits);
    if (!again.ok() || again.links != result.links) __builtin_trap();
    if (serializeLinkFormat(again.links) != text) __builtin_trap();
  }

  // Tight limits: whatever they accept, the defaults accept identically.
  LinkFormatLimits tight;
  tight.max_bytes = 512;
  tight.max_links = 4;
  tight.max_attributes_per_link = 3;
  tight.max_target_bytes = 16;
  tight.max_value_bytes = 8;
  tight.max_name_bytes = 6;
  const auto small = parseLinkFormat(input, tight);
  if (small.ok()) {
    checkWithinLimits(small, tight);
    if (!result.ok() || small.links != result.links) __builtin_trap();
  } else if (small.error->offset > input.size() && small.error->offset != tight.max_bytes) {
    __builtin_trap();
  }

  if (auto decoded = percentDecode(input)) {
    if (decoded->size() > input.size()) __builtin_trap();
  }
  return 0;
}
