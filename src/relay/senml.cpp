#include "relay/senml.h"

#include <nlohmann/json.hpp>

#include <bit>
#include <charconv>
#include <cmath>
#include <cstring>
#include <set>

namespace coap_edge::relay {
namespace {

// RFC 8428 §6, Table 4.
enum Label : std::int64_t {
  kBaseName = -2,
  kBaseTime = -3,
  kName = 0,
  kUnit = 1,
  kValue = 2,
  kStringValue = 3,
  kBoolValue = 4,
  kTime = 6,
  kDataValue = 8,
};

// Largest magnitude below which every integer is an exact double: such numbers go out as
// integers, others as floating point.
constexpr double kMaxExactInteger = 9007199254740992.0;  // 2^53
// Longer "numbers" are identifiers or garbage, and from_chars of megabytes of digits is slow.
constexpr std::size_t kMaxNumberText = 64;

// Length of the well-formed UTF-8 sequence at the start of `s`, or 0.
std::size_t utf8SequenceLength(std::string_view s) noexcept {
  const auto b = [&](std::size_t i) { return static_cast<unsigned char>(s[i]); };
  const unsigned char c = b(0);
  if (c < 0x80) return 1;
  std::size_t n;
  unsigned char lo = 0x80, hi = 0xBF;  // allowed range of the second byte (RFC 3629 §4)
  if (c >= 0xC2 && c <= 0xDF) {
    n = 2;
  } else if (c >= 0xE0 && c <= 0xEF) {
    n = 3;
    if (c == 0xE0) lo = 0xA0;  // overlong
    if (c == 0xED) hi = 0x9F;  // surrogates
  } else if (c >= 0xF0 && c <= 0xF4) {
    n = 4;
    if (c == 0xF0) lo = 0x90;  // overlong
    if (c == 0xF4) hi = 0x8F;  // past U+10FFFF
  } else {
    return 0;
  }
  if (s.size() < n || b(1) < lo || b(1) > hi) return 0;
  for (std::size_t i = 2; i < n; ++i) {
    if (b(i) < 0x80 || b(i) > 0xBF) return 0;
  }
  return n;
}

std::string toValidUtf8(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  while (!s.empty()) {
    const std::size_t n = utf8SequenceLength(s);
    if (n == 0) {
      out += "\xEF\xBF\xBD";
      s.remove_prefix(1);
    } else {
      out.append(s.substr(0, n));
      s.remove_prefix(n);
    }
  }
  return out;
}

bool isDigit(char c) noexcept { return c >= '0' && c <= '9'; }

// A decimal number as a sensor writes one, JSON-number-like (leading zeros allowed, no '+',
// no spaces, no hex/inf/nan), that is finite as a double.
std::optional<double> parseDecimal(std::string_view s) noexcept {
  if (s.empty() || s.size() > kMaxNumberText) return std::nullopt;
  std::size_t i = 0;
  const auto digits = [&] {
    const std::size_t start = i;
    while (i < s.size() && isDigit(s[i])) ++i;
    return i > start;
  };
  if (s[i] == '-') ++i;
  if (!digits()) return std::nullopt;
  if (i < s.size() && s[i] == '.') {
    ++i;
    if (!digits()) return std::nullopt;
  }
  if (i < s.size() && (s[i] == 'e' || s[i] == 'E')) {
    ++i;
    if (i < s.size() && (s[i] == '+' || s[i] == '-')) ++i;
    if (!digits()) return std::nullopt;
  }
  if (i != s.size()) return std::nullopt;
  double value = 0;
  const auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), value);
  if (ec != std::errc{} || end != s.data() + s.size() || !std::isfinite(value)) return std::nullopt;
  return value;
}

bool isExactInteger(double v) noexcept { return std::isfinite(v) && std::trunc(v) == v && std::fabs(v) <= kMaxExactInteger; }

struct Mapped {
  DecodedRecord::Kind kind;
  double number = 0;
  bool boolean = false;
};

Mapped mapPayload(const QueuedValue& v) noexcept {
  using Kind = DecodedRecord::Kind;
  if (v.content_format == kContentFormatText) {
    if (v.payload == "true") return {Kind::boolean, 0, true};
    if (v.payload == "false") return {Kind::boolean, 0, false};
    if (const auto number = parseDecimal(v.payload)) return {Kind::number, *number, false};
    if (isValidUtf8(v.payload)) return {Kind::string};
  } else if (v.content_format == kContentFormatJson && isValidUtf8(v.payload)) {
    return {Kind::string};
  }
  return {Kind::data};
}

std::string_view pathName(std::string_view path) noexcept {
  // bn ends with '/': a leading '/' would make "node//path".
  if (!path.empty() && path.front() == '/') path.remove_prefix(1);
  return path;
}

double seconds(std::int64_t time_ms) noexcept {
  // Whole seconds and the remainder separately: exact for whole seconds at any magnitude.
  return static_cast<double>(time_ms / 1000) + static_cast<double>(time_ms % 1000) / 1000.0;
}

// ---- JSON ------------------------------------------------------------------------------------

nlohmann::json jsonNumber(double v) {
  if (isExactInteger(v)) return static_cast<std::int64_t>(v);
  return v;
}

std::string encodeJson(const std::vector<QueuedValue>& values, std::string_view prefix) {
  nlohmann::json pack = nlohmann::json::array();
  const std::string* previous_node = nullptr;
  for (const QueuedValue& v : values) {
    nlohmann::json record = nlohmann::json::object();
    if (previous_node == nullptr || *previous_node != v.node) {
      record["bn"] = toValidUtf8(std::string(prefix) + v.node + "/");
    }
    previous_node = &v.node;
    record["n"] = toValidUtf8(pathName(v.path));
    record["t"] = jsonNumber(seconds(v.time_ms));
    const Mapped m = mapPayload(v);
    switch (m.kind) {
      case DecodedRecord::Kind::number: record["v"] = jsonNumber(m.number); break;
      case DecodedRecord::Kind::boolean: record["vb"] = m.boolean; break;
      case DecodedRecord::Kind::string: record["vs"] = v.payload; break;
      case DecodedRecord::Kind::data: record["vd"] = base64UrlEncode(v.payload); break;
    }
    pack.push_back(std::move(record));
  }
  // Everything is valid UTF-8 by now; `replace` only makes a throw impossible by construction.
  return pack.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

// Only an array of flat objects is a pack: anything nested deeper is refused before the parser
// builds it, so hostile input cannot make a deep tree.
bool jsonNestingAtMost(std::string_view s, int max_depth) noexcept {
  int depth = 0;
  bool in_string = false, escaped = false;
  for (const char c : s) {
    if (in_string) {
      if (escaped) {
        escaped = false;
      } else if (c == '\\') {
        escaped = true;
      } else if (c == '"') {
        in_string = false;
      }
    } else if (c == '"') {
      in_string = true;
    } else if (c == '[' || c == '{') {
      if (++depth > max_depth) return false;
    } else if (c == ']' || c == '}') {
      --depth;
    }
  }
  return true;
}

std::optional<double> jsonFiniteNumber(const nlohmann::json& j) {
  if (!j.is_number()) return std::nullopt;
  const double v = j.get<double>();
  if (!std::isfinite(v)) return std::nullopt;
  return v;
}

// State that bn/bt carry from record to record.
struct Base {
  std::string name;
  double time = 0;
};

struct Fields {
  std::optional<std::string> n;
  std::optional<double> t;
  int values = 0;
};

bool finishRecord(const Base& base, Fields& f, DecodedRecord& r) {
  if (f.values != 1) return false;
  r.name = base.name + f.n.value_or(std::string());
  if (r.name.empty()) return false;
  r.time = base.time + f.t.value_or(0.0);
  return std::isfinite(r.time);
}

std::optional<std::vector<DecodedRecord>> decodeJson(std::string_view bytes) {
  if (!jsonNestingAtMost(bytes, 2)) return std::nullopt;
  bool duplicate = false;
  std::vector<std::set<std::string>> keys;  // per open object
  const auto callback = [&](int /*depth*/, nlohmann::json::parse_event_t event, nlohmann::json& parsed) {
    using E = nlohmann::json::parse_event_t;
    if (event == E::object_start) keys.emplace_back();
    if (event == E::object_end && !keys.empty()) keys.pop_back();
    if (event == E::key && !keys.empty() && parsed.is_string() && !keys.back().insert(parsed.get<std::string>()).second) {
      duplicate = true;
    }
    return true;
  };
  const nlohmann::json pack = nlohmann::json::parse(bytes.begin(), bytes.end(), callback, false);
  if (pack.is_discarded() || duplicate || !pack.is_array()) return std::nullopt;

  std::vector<DecodedRecord> out;
  Base base;
  for (const nlohmann::json& item : pack) {
    if (!item.is_object()) return std::nullopt;
    DecodedRecord r;
    Fields f;
    for (const auto& [key, value] : item.items()) {
      if (!key.empty() && key.back() == '_') return std::nullopt;
      if (key == "bn") {
        if (!value.is_string()) return std::nullopt;
        base.name = value.get<std::string>();
      } else if (key == "bt") {
        const auto t = jsonFiniteNumber(value);
        if (!t) return std::nullopt;
        base.time = *t;
      } else if (key == "n") {
        if (!value.is_string()) return std::nullopt;
        f.n = value.get<std::string>();
      } else if (key == "t") {
        f.t = jsonFiniteNumber(value);
        if (!f.t) return std::nullopt;
      } else if (key == "v") {
        const auto v = jsonFiniteNumber(value);
        if (!v) return std::nullopt;
        r.kind = DecodedRecord::Kind::number;
        r.number = *v;
        ++f.values;
      } else if (key == "vs") {
        if (!value.is_string()) return std::nullopt;
        r.kind = DecodedRecord::Kind::string;
        r.text = value.get<std::string>();
        ++f.values;
      } else if (key == "vb") {
        if (!value.is_boolean()) return std::nullopt;
        r.kind = DecodedRecord::Kind::boolean;
        r.boolean = value.get<bool>();
        ++f.values;
      } else if (key == "vd") {
        if (!value.is_string()) return std::nullopt;
        auto data = base64UrlDecode(value.get<std::string>());
        if (!data) return std::nullopt;
        r.kind = DecodedRecord::Kind::data;
        r.text = std::move(*data);
        ++f.values;
      }
    }
    if (!finishRecord(base, f, r)) return std::nullopt;
    out.push_back(std::move(r));
  }
  return out;
}

// ---- CBOR (RFC 8949) -------------------------------------------------------------------------

enum Major : std::uint8_t { kUnsigned = 0, kNegative = 1, kBytes = 2, kText = 3, kArray = 4, kMap = 5, kTag = 6, kSimple = 7 };

class CborWriter {
 public:
  void head(std::uint8_t major, std::uint64_t arg) {
    const auto m = static_cast<char>(major << 5);
    if (arg < 24) {
      out_ += static_cast<char>(m | static_cast<char>(arg));
    } else if (arg <= 0xFF) {
      out_ += static_cast<char>(m | 24);
      bigEndian(arg, 1);
    } else if (arg <= 0xFFFF) {
      out_ += static_cast<char>(m | 25);
      bigEndian(arg, 2);
    } else if (arg <= 0xFFFFFFFFu) {
      out_ += static_cast<char>(m | 26);
      bigEndian(arg, 4);
    } else {
      out_ += static_cast<char>(m | 27);
      bigEndian(arg, 8);
    }
  }
  void integer(std::int64_t v) {
    if (v >= 0) {
      head(kUnsigned, static_cast<std::uint64_t>(v));
    } else {
      head(kNegative, static_cast<std::uint64_t>(-(v + 1)));
    }
  }
  void text(std::string_view s) {
    head(kText, s.size());
    out_ += s;
  }
  void bytes(std::string_view s) {
    head(kBytes, s.size());
    out_ += s;
  }
  void boolean(bool b) { out_ += static_cast<char>(b ? 0xF5 : 0xF4); }
  // Integers exactly, else the shorter of float32/float64 that holds the value exactly.
  void number(double v) {
    if (isExactInteger(v)) {
      integer(static_cast<std::int64_t>(v));
    } else if (const auto f = static_cast<float>(v); static_cast<double>(f) == v) {
      out_ += static_cast<char>(0xFA);
      bigEndian(std::bit_cast<std::uint32_t>(f), 4);
    } else {
      out_ += static_cast<char>(0xFB);
      bigEndian(std::bit_cast<std::uint64_t>(v), 8);
    }
  }
  [[nodiscard]] std::string take() { return std::move(out_); }

 private:
  void bigEndian(std::uint64_t v, int n) {
    for (int i = n - 1; i >= 0; --i) out_ += static_cast<char>((v >> (8 * i)) & 0xFF);
  }
  std::string out_;
};

std::string encodeCbor(const std::vector<QueuedValue>& values, std::string_view prefix) {
  CborWriter w;
  w.head(kArray, values.size());
  const std::string* previous_node = nullptr;
  for (const QueuedValue& v : values) {
    const bool with_base = previous_node == nullptr || *previous_node != v.node;
    previous_node = &v.node;
    const Mapped m = mapPayload(v);
    w.head(kMap, with_base ? 4 : 3);
    // Deterministic order (RFC 8949 §4.2.1): keys sorted by their encoded bytes,
    // 0x00 n < 0x02 v < 0x03 vs < 0x04 vb < 0x06 t < 0x08 vd < 0x21 bn.
    w.integer(kName);
    w.text(toValidUtf8(pathName(v.path)));
    switch (m.kind) {
      case DecodedRecord::Kind::number:
        w.integer(kValue);
        w.number(m.number);
        break;
      case DecodedRecord::Kind::string:
        w.integer(kStringValue);
        w.text(v.payload);
        break;
      case DecodedRecord::Kind::boolean:
        w.integer(kBoolValue);
        w.boolean(m.boolean);
        break;
      case DecodedRecord::Kind::data: break;
    }
    w.integer(kTime);
    w.number(seconds(v.time_ms));
    if (m.kind == DecodedRecord::Kind::data) {
      w.integer(kDataValue);
      w.bytes(v.payload);
    }
    if (with_base) {
      w.integer(kBaseName);
      w.text(toValidUtf8(std::string(prefix) + v.node + "/"));
    }
  }
  return w.take();
}

double halfToDouble(std::uint16_t h) noexcept {
  const int exp = (h >> 10) & 0x1F;
  const int mant = h & 0x3FF;
  double v;
  if (exp == 0) {
    v = std::ldexp(mant, -24);
  } else if (exp != 31) {
    v = std::ldexp(mant + 1024, exp - 25);
  } else {
    v = mant == 0 ? INFINITY : NAN;
  }
  return (h & 0x8000) ? -v : v;
}

class CborReader {
 public:
  explicit CborReader(std::string_view in) noexcept : in_(in) {}

  struct Head {
    std::uint8_t major = 0;
    std::uint8_t info = 0;
    std::uint64_t arg = 0;
  };

  // Definite lengths only: a pack has no reason for streaming, and refusing them keeps every
  // length checkable against the bytes present.
  [[nodiscard]] bool head(Head& h) noexcept {
    if (pos_ >= in_.size()) return false;
    const auto first = static_cast<std::uint8_t>(in_[pos_++]);
    h.major = first >> 5;
    h.info = first & 0x1F;
    if (h.info < 24) {
      h.arg = h.info;
      return true;
    }
    if (h.info > 27) return false;  // 28..30 reserved, 31 indefinite
    const std::size_t n = std::size_t{1} << (h.info - 24);
    if (in_.size() - pos_ < n) return false;
    h.arg = 0;
    for (std::size_t i = 0; i < n; ++i) h.arg = (h.arg << 8) | static_cast<std::uint8_t>(in_[pos_++]);
    return true;
  }

  [[nodiscard]] bool string(const Head& h, std::string& out) {
    if (h.arg > in_.size() - pos_) return false;
    out.assign(in_.substr(pos_, static_cast<std::size_t>(h.arg)));
    pos_ += static_cast<std::size_t>(h.arg);
    return true;
  }

  [[nodiscard]] bool text(std::string& out) {
    Head h;
    return head(h) && h.major == kText && string(h, out) && isValidUtf8(out);
  }

  [[nodiscard]] bool number(double& out) noexcept {
    Head h;
    if (!head(h)) return false;
    switch (h.major) {
      case kUnsigned: out = static_cast<double>(h.arg); return true;
      case kNegative: out = -1.0 - static_cast<double>(h.arg); return true;
      case kSimple:
        if (h.info == 25) {
          out = halfToDouble(static_cast<std::uint16_t>(h.arg));
        } else if (h.info == 26) {
          out = static_cast<double>(std::bit_cast<float>(static_cast<std::uint32_t>(h.arg)));
        } else if (h.info == 27) {
          out = std::bit_cast<double>(h.arg);
        } else {
          return false;
        }
        return std::isfinite(out);
      default: return false;
    }
  }

  // Skips one item of a label we do not use; nesting is bounded so hostile input cannot recurse deep.
  [[nodiscard]] bool skip(int depth = 0) {
    if (depth > 4) return false;
    Head h;
    if (!head(h)) return false;
    switch (h.major) {
      case kUnsigned:
      case kNegative: return true;
      case kBytes:
      case kText:
        if (h.arg > in_.size() - pos_) return false;
        pos_ += static_cast<std::size_t>(h.arg);
        return true;
      case kArray:
      case kMap: {
        // Every item takes at least one byte: a count beyond what is left is a lie.
        const std::uint64_t items = h.major == kMap ? h.arg * 2 : h.arg;
        if (h.arg > in_.size() - pos_ || items > in_.size() - pos_) return false;
        for (std::uint64_t i = 0; i < items; ++i) {
          if (!skip(depth + 1)) return false;
        }
        return true;
      }
      case kTag: return skip(depth + 1);
      default: return h.info != 31;  // simple values and floats: the head was the whole item
    }
  }

  [[nodiscard]] std::size_t remaining() const noexcept { return in_.size() - pos_; }

 private:
  std::string_view in_;
  std::size_t pos_ = 0;
};

std::optional<std::vector<DecodedRecord>> decodeCbor(std::string_view bytes) {
  CborReader rd(bytes);
  CborReader::Head top;
  if (!rd.head(top) || top.major != kArray || top.arg > rd.remaining()) return std::nullopt;
  std::vector<DecodedRecord> out;
  out.reserve(static_cast<std::size_t>(top.arg));  // bounded by the input size just above
  Base base;
  for (std::uint64_t i = 0; i < top.arg; ++i) {
    CborReader::Head map;
    if (!rd.head(map) || map.major != kMap || map.arg > rd.remaining() / 2) return std::nullopt;
    DecodedRecord r;
    Fields f;
    std::set<std::int64_t> seen;
    for (std::uint64_t k = 0; k < map.arg; ++k) {
      CborReader::Head key;
      if (!rd.head(key)) return std::nullopt;
      if (key.major == kText) {
        // Labels not registered with an integer travel as text; '_' at the end means
        // "must understand", and we understand none of them.
        std::string name;
        if (!rd.string(key, name) || (!name.empty() && name.back() == '_') || !rd.skip()) return std::nullopt;
        continue;
      }
      if (key.major != kUnsigned && key.major != kNegative) return std::nullopt;
      if (key.arg > 0xFFFF) {
        if (!rd.skip()) return std::nullopt;  // an unknown integer label, far out of the table
        continue;
      }
      const std::int64_t label =
          key.major == kUnsigned ? static_cast<std::int64_t>(key.arg) : -1 - static_cast<std::int64_t>(key.arg);
      if (!seen.insert(label).second) return std::nullopt;
      bool ok = true;
      switch (label) {
        case kBaseName: ok = rd.text(base.name); break;
        case kBaseTime: ok = rd.number(base.time); break;
        case kName: {
          std::string n;
          ok = rd.text(n);
          f.n = std::move(n);
          break;
        }
        case kTime: {
          double t = 0;
          ok = rd.number(t);
          f.t = t;
          break;
        }
        case kValue:
          r.kind = DecodedRecord::Kind::number;
          ok = rd.number(r.number);
          ++f.values;
          break;
        case kStringValue:
          r.kind = DecodedRecord::Kind::string;
          ok = rd.text(r.text);
          ++f.values;
          break;
        case kBoolValue: {
          CborReader::Head b;
          ok = rd.head(b) && b.major == kSimple && (b.info == 20 || b.info == 21);
          r.kind = DecodedRecord::Kind::boolean;
          r.boolean = b.info == 21;
          ++f.values;
          break;
        }
        case kDataValue: {
          CborReader::Head b;
          ok = rd.head(b) && b.major == kBytes && rd.string(b, r.text);
          r.kind = DecodedRecord::Kind::data;
          ++f.values;
          break;
        }
        default: ok = rd.skip(); break;  // bver, units, sums: not ours to interpret
      }
      if (!ok) return std::nullopt;
    }
    if (!finishRecord(base, f, r)) return std::nullopt;
    out.push_back(std::move(r));
  }
  if (rd.remaining() != 0) return std::nullopt;
  return out;
}

constexpr char kBase64Url[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

int base64UrlValue(char c) noexcept {
  if (c >= 'A' && c <= 'Z') return c - 'A';
  if (c >= 'a' && c <= 'z') return c - 'a' + 26;
  if (c >= '0' && c <= '9') return c - '0' + 52;
  if (c == '-') return 62;
  if (c == '_') return 63;
  return -1;
}

}  // namespace

bool isValidUtf8(std::string_view text) noexcept {
  while (!text.empty()) {
    const std::size_t n = utf8SequenceLength(text);
    if (n == 0) return false;
    text.remove_prefix(n);
  }
  return true;
}

std::uint16_t contentFormatOf(SenmlFormat format) noexcept {
  return format == SenmlFormat::json ? kContentFormatSenmlJson : kContentFormatSenmlCbor;
}

std::string encodePack(const std::vector<QueuedValue>& values, SenmlFormat format, std::string_view base_name_prefix) {
  return format == SenmlFormat::json ? encodeJson(values, base_name_prefix) : encodeCbor(values, base_name_prefix);
}

std::optional<std::vector<DecodedRecord>> decodePack(std::string_view bytes, SenmlFormat format) {
  if (bytes.size() > kMaxDecodedPackBytes) return std::nullopt;
  try {
    return format == SenmlFormat::json ? decodeJson(bytes) : decodeCbor(bytes);
  } catch (const std::exception&) {
    // nlohmann's accessors are type-checked before use above; this only keeps a missed case
    // (or allocation failure) from escaping into the caller's event loop.
    return std::nullopt;
  }
}

std::string base64UrlEncode(std::string_view bytes) {
  std::string out;
  out.reserve((bytes.size() * 4 + 2) / 3);
  std::size_t i = 0;
  const auto at = [&](std::size_t k) { return static_cast<std::uint32_t>(static_cast<unsigned char>(bytes[k])); };
  for (; i + 3 <= bytes.size(); i += 3) {
    const std::uint32_t v = (at(i) << 16) | (at(i + 1) << 8) | at(i + 2);
    for (int s = 18; s >= 0; s -= 6) out += kBase64Url[(v >> s) & 0x3F];
  }
  if (bytes.size() - i == 1) {
    const std::uint32_t v = at(i) << 16;
    out += kBase64Url[(v >> 18) & 0x3F];
    out += kBase64Url[(v >> 12) & 0x3F];
  } else if (bytes.size() - i == 2) {
    const std::uint32_t v = (at(i) << 16) | (at(i + 1) << 8);
    out += kBase64Url[(v >> 18) & 0x3F];
    out += kBase64Url[(v >> 12) & 0x3F];
    out += kBase64Url[(v >> 6) & 0x3F];
  }
  return out;
}

std::optional<std::string> base64UrlDecode(std::string_view text) {
  if (text.size() % 4 == 1) return std::nullopt;
  std::string out;
  out.reserve(text.size() * 3 / 4);
  std::uint32_t acc = 0;
  int bits = 0;
  for (const char c : text) {
    const int v = base64UrlValue(c);
    if (v < 0) return std::nullopt;
    acc = (acc << 6) | static_cast<std::uint32_t>(v);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out += static_cast<char>((acc >> bits) & 0xFF);
    }
  }
  if ((acc & ((1u << bits) - 1)) != 0) return std::nullopt;  // non-canonical trailing bits
  return out;
}

}  // namespace coap_edge::relay
