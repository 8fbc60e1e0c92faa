#include "ctl/key_import.h"

#include "common/log.h"
#include "keystore/keystore.h"

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <limits>
#include <unordered_map>
#include <utility>

namespace coap_edge::ctl {
namespace {

using Json = nlohmann::json;
constexpr std::string_view kBom = "\xEF\xBB\xBF";
constexpr std::size_t kNone = std::numeric_limits<std::size_t>::max();

std::string_view trim(std::string_view s) {
  const auto first = s.find_first_not_of(" \t\r");
  if (first == std::string_view::npos) return {};
  const auto last = s.find_last_not_of(" \t\r");
  return s.substr(first, last - first + 1);
}

// Spreadsheets quote every field on export; '"' can occur in neither an identity nor hex, so
// stripping one pair of quotes cannot change a valid value.
std::string_view unquote(std::string_view s) {
  if (s.size() >= 2 && s.front() == '"' && s.back() == '"') return s.substr(1, s.size() - 2);
  return s;
}

// Checks one entry's fields; on success moves the decoded key into `key`. The message never
// contains the key text.
std::optional<std::string> checkEntry(std::string_view identity, std::string_view key_hex, tls::SecretBytes& key) {
  if (identity.empty()) return "identity is missing";
  if (std::string problem = keystore::identityProblem(identity); !problem.empty()) return problem;
  if (key_hex.empty()) return "key_hex is missing";
  auto decoded = tls::hexDecodeSecret(key_hex);
  if (!decoded) {
    return fmt::format("key_hex is not a hex string (expected {} to {} hex digits)", 2 * keystore::kMinKeyBytes,
                       2 * keystore::kMaxKeyBytes);
  }
  if (!keystore::isValidKeyLength(decoded->size())) {
    return fmt::format("key is {} bytes; keys must be {} to {} bytes ({} to {} hex digits)", decoded->size(),
                       keystore::kMinKeyBytes, keystore::kMaxKeyBytes, 2 * keystore::kMinKeyBytes,
                       2 * keystore::kMaxKeyBytes);
  }
  key = std::move(*decoded);
  return std::nullopt;
}

KeyImport failure(ImportFormat format, ImportProblem problem) {
  KeyImport out;
  out.format = format;
  out.error = std::move(problem);
  return out;
}

ImportProblem atLine(std::size_t line, std::string message) {
  ImportProblem p;
  p.line = line;
  p.message = std::move(message);
  return p;
}

ImportProblem atIndex(std::size_t index, std::string message) {
  ImportProblem p;
  p.index = index;
  p.message = std::move(message);
  return p;
}

KeyImport parseCsv(std::string_view text) {
  KeyImport out;
  out.format = ImportFormat::csv;
  std::unordered_map<std::string, std::size_t> seen;  // identity -> line
  bool header_allowed = true;
  std::size_t line_no = 0;
  while (!text.empty()) {
    const auto nl = text.find('\n');
    const std::string_view raw = text.substr(0, nl);
    text = nl == std::string_view::npos ? std::string_view{} : text.substr(nl + 1);
    ++line_no;
    const std::string_view line = trim(raw);
    if (line.empty() || line.front() == '#') continue;
    const auto comma = line.find(',');
    if (comma == std::string_view::npos) return failure(out.format, atLine(line_no, "expected 'identity,key_hex'"));
    if (line.find(',', comma + 1) != std::string_view::npos) {
      return failure(out.format, atLine(line_no, "too many fields (expected 'identity,key_hex')"));
    }
    const std::string_view identity = unquote(trim(line.substr(0, comma)));
    const std::string_view key_hex = unquote(trim(line.substr(comma + 1)));
    if (std::exchange(header_allowed, false) && identity == "identity" && key_hex == "key_hex") continue;
    if (out.entries.size() == kMaxImportEntries) {
      const std::string message = fmt::format("more than {} entries; split the input", kMaxImportEntries);
      return failure(out.format, atLine(line_no, message));
    }
    ImportedKey entry;
    if (auto problem = checkEntry(identity, key_hex, entry.key)) return failure(out.format, atLine(line_no, *problem));
    entry.identity = std::string(identity);
    entry.line = line_no;
    if (const auto [it, fresh] = seen.emplace(entry.identity, line_no); !fresh) {
      const std::string message = fmt::format("identity '{}' already appears on line {}", entry.identity, it->second);
      return failure(out.format, atLine(line_no, message));
    }
    out.entries.push_back(std::move(entry));
  }
  return out;
}

// Problems noticed while nlohmann parses (they cannot be seen in the finished document):
// duplicate fields in an entry, and nesting where a string belongs. The nested value is
// discarded right away, which also bounds memory for inputs like "[[[[[[...".
struct JsonWatcher {
  std::size_t element = kNone;  // index of the latest array element seen
  bool inside = false;           // between the start and the end of that element
  std::vector<std::string> fields;
  std::optional<ImportProblem> problem;

  // The element an exception thrown now belongs to (a scalar element throws before its event).
  [[nodiscard]] std::size_t current() const { return inside ? element : element + 1; }

  bool operator()(int depth, Json::parse_event_t event, Json& parsed) {
    using E = Json::parse_event_t;
    const bool starts = event == E::object_start || event == E::array_start || event == E::value;
    if (depth == 1 && starts) {
      ++element;
      fields.clear();
      inside = event != E::value;
    }
    if (depth == 1 && (event == E::object_end || event == E::array_end)) inside = false;
    if (depth == 2 && event == E::key && parsed.is_string()) {
      const auto& name = parsed.get_ref<const std::string&>();
      for (const auto& f : fields) {
        if (f == name) note(fmt::format("field '{}' appears twice", log::printable(name, 32)));
      }
      if (fields.size() < 8) fields.push_back(name);
    }
    if (depth >= 2 && (event == E::object_start || event == E::array_start)) {
      note("field values must be strings");
      return false;
    }
    return true;
  }
  void note(std::string message) {
    if (!problem && element != kNone) problem = atIndex(element, std::move(message));
  }
};

// Key text also lives in the parsed document; it is wiped however parseJson returns.
struct JsonKeyWiper {
  Json& doc;
  ~JsonKeyWiper() {
    if (!doc.is_array()) return;
    for (auto& el : doc) {
      if (!el.is_object()) continue;
      auto it = el.find("key_hex");
      if (it != el.end() && it->is_string()) tls::wipe(it->get_ref<std::string&>());
    }
  }
};

const std::string* stringField(const Json& el, const char* name) {
  const auto it = el.find(name);
  return it != el.end() && it->is_string() ? &it->get_ref<const std::string&>() : nullptr;
}

KeyImport parseJson(std::string_view text) {
  KeyImport out;
  out.format = ImportFormat::json;
  JsonWatcher watcher;
  Json doc;
  JsonKeyWiper wiper{doc};
  try {
    doc = Json::parse(text.begin(), text.end(), std::ref(watcher));
  } catch (const Json::parse_error& e) {
    // e.what() quotes the text around the error, which may be key material: report the place only.
    ImportProblem p;
    const std::size_t upto = std::min<std::size_t>(e.byte, text.size());
    p.line = 1;
    p.column = 0;
    for (std::size_t i = 0; i < upto; ++i) {
      if (text[i] == '\n') {
        ++p.line;
        p.column = 0;
      } else {
        ++p.column;
      }
    }
    if (p.column == 0) p.column = 1;
    p.message = "JSON syntax error";
    return failure(out.format, std::move(p));
  } catch (const Json::exception&) {
    // Number overflow (out_of_range 406) and the like: located by entry, and again never
    // quoting e.what(), which would show the offending digits (a key written without quotes).
    return failure(out.format, atIndex(watcher.current(), "invalid JSON value (entries hold only strings)"));
  }
  if (!doc.is_array()) return failure(out.format, atLine(1, "expected a JSON array of entries"));
  std::unordered_map<std::string, std::size_t> seen;  // identity -> index
  for (std::size_t i = 0; i < doc.size(); ++i) {
    if (watcher.problem && watcher.problem->index == i) return failure(out.format, *watcher.problem);
    if (i == kMaxImportEntries) {
      return failure(out.format, atIndex(i, fmt::format("more than {} entries; split the input", kMaxImportEntries)));
    }
    const Json& el = doc[i];
    if (!el.is_object()) {
      return failure(out.format, atIndex(i, R"(expected an object {"identity": "...", "key_hex": "..."})"));
    }
    for (const auto& [name, value] : el.items()) {
      if (name != "identity" && name != "key_hex") {
        return failure(out.format, atIndex(i, fmt::format("unknown field '{}'", log::printable(name, 32))));
      }
    }
    const std::string* identity = stringField(el, "identity");
    const std::string* key_hex = stringField(el, "key_hex");
    if (identity == nullptr) return failure(out.format, atIndex(i, "\"identity\" (a string) is missing"));
    if (key_hex == nullptr) return failure(out.format, atIndex(i, "\"key_hex\" (a string) is missing"));
    ImportedKey entry;
    if (auto problem = checkEntry(*identity, *key_hex, entry.key)) return failure(out.format, atIndex(i, *problem));
    entry.identity = *identity;
    if (const auto [it, fresh] = seen.emplace(entry.identity, i); !fresh) {
      return failure(out.format,
                     atIndex(i, fmt::format("identity '{}' already appears at index {}", entry.identity, it->second)));
    }
    out.entries.push_back(std::move(entry));
  }
  return out;
}

}  // namespace

std::string ImportProblem::describe(std::string_view source) const {
  if (index) return fmt::format("{}: index {}: {}", source, *index, message);
  if (line != 0 && column != 0) return fmt::format("{}:{}:{}: {}", source, line, column, message);
  if (line != 0) return fmt::format("{}:{}: {}", source, line, message);
  return fmt::format("{}: {}", source, message);
}

ImportProblem KeyImport::problemAt(std::size_t i, std::string message) const {
  if (format == ImportFormat::json) return atIndex(i, std::move(message));
  return atLine(i < entries.size() ? entries[i].line : 0, std::move(message));
}

KeyImport parseKeyImport(std::string_view text) {
  if (text.size() > kMaxImportBytes) {
    ImportProblem p;
    p.message = fmt::format("input is larger than {} MiB; split it", kMaxImportBytes / (1024 * 1024));
    return failure(ImportFormat::csv, std::move(p));
  }
  if (text.substr(0, kBom.size()) == kBom) text.remove_prefix(kBom.size());
  const auto first = text.find_first_not_of(" \t\r\n");
  KeyImport out = first != std::string_view::npos && text[first] == '[' ? parseJson(text) : parseCsv(text);
  if (out.ok() && out.entries.empty()) {
    ImportProblem p;
    p.message = "no entries found (expected lines 'identity,key_hex' or a JSON array of "
                "{\"identity\": ..., \"key_hex\": ...})";
    return failure(out.format, std::move(p));
  }
  return out;
}

}  // namespace coap_edge::ctl
