#pragma once
// Parser for `coap-edge-ctl keys import`: CSV lines `identity,key_hex` or a JSON array of
// {"identity": "...", "key_hex": "..."}. Pure (no I/O) so that libFuzzer can drive it; the
// whole input is checked before anything is stored, and every problem names where it is.
// Messages never quote key material.

#include "tls/secret.h"

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace coap_edge::ctl {

/// A key file is a few KB per thousand devices; these bounds keep a wrong file (or /dev/zero)
/// from exhausting memory.
inline constexpr std::size_t kMaxImportBytes = 4 * 1024 * 1024;
inline constexpr std::size_t kMaxImportEntries = 100000;

enum class ImportFormat { csv, json };

struct ImportedKey {
  std::string identity;
  tls::SecretBytes key;
  std::size_t line = 0;  ///< 1-based line (CSV); 0 for JSON, where the array index is the position
};

/// Where the input is wrong. CSV: line. JSON: index into the array, or line/column for a
/// syntax error. 0 / nullopt = not applicable.
struct ImportProblem {
  std::size_t line = 0;
  std::size_t column = 0;
  std::optional<std::size_t> index;
  std::string message;
  /// "<source>:<line>: msg", "<source>:<line>:<col>: msg" or "<source>: index N: msg".
  [[nodiscard]] std::string describe(std::string_view source) const;
};

struct KeyImport {
  ImportFormat format = ImportFormat::csv;
  std::vector<ImportedKey> entries;    ///< empty when error is set
  std::optional<ImportProblem> error;
  [[nodiscard]] bool ok() const noexcept { return !error.has_value(); }
  /// A problem located at entries[i] (for errors the keystore finds later, e.g. "exists").
  [[nodiscard]] ImportProblem problemAt(std::size_t i, std::string message) const;
};

/// Parses and validates the whole input: identity rules, key hex and length (16..64 bytes),
/// duplicates inside the input, at least one entry, size bounds. JSON is recognised by '[' as
/// the first non-space character. Never throws except std::bad_alloc.
[[nodiscard]] KeyImport parseKeyImport(std::string_view text);

}  // namespace coap_edge::ctl
