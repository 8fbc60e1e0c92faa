// libFuzzer target for `coap-edge-ctl keys import` input (CSV or JSON). Beyond "no crash, no
// sanitizer report", it checks the parser's contract: an accepted input yields at least one
// valid, unique entry and survives a round trip through CSV; a rejected one yields a message.
#include "ctl/key_import.h"
#include "keystore/keystore.h"
#include "tls/secret.h"

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <unordered_set>

namespace {

void check(bool condition) {
  if (!condition) __builtin_trap();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace coap_edge;
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  const ctl::KeyImport parsed = ctl::parseKeyImport(text);
  if (!parsed.ok()) {
    check(parsed.entries.empty());
    check(!parsed.error->message.empty());
    check(!parsed.error->describe("fuzz").empty());
    return 0;
  }
  check(!parsed.entries.empty());
  check(parsed.entries.size() <= ctl::kMaxImportEntries);
  std::unordered_set<std::string> seen;
  std::string csv;
  for (const auto& entry : parsed.entries) {
    check(keystore::isValidIdentity(entry.identity));
    check(keystore::isValidKeyLength(entry.key.size()));
    check(seen.insert(entry.identity).second);
    check(parsed.format == ctl::ImportFormat::json || entry.line > 0);
    csv += entry.identity + "," + tls::hexEncode(entry.key.span()) + "\n";
  }
  const ctl::KeyImport again = ctl::parseKeyImport(csv);
  check(again.ok());
  check(again.format == ctl::ImportFormat::csv);
  check(again.entries.size() == parsed.entries.size());
  for (std::size_t i = 0; i < again.entries.size(); ++i) {
    check(again.entries[i].identity == parsed.entries[i].identity);
    check(tls::constantTimeEqual(again.entries[i].key.span(), parsed.entries[i].key.span()));
  }
  return 0;
}
