// Typed readers in the style of chrony's parse_int(line, &r, min, max): each one checks the
// TOML type and the range, and on failure records one message that names the key, what was
// expected and what was found, at the position of the offending value.

#include "config/detail.h"

#include <fmt/format.h>

#include <charconv>
#include <map>

namespace coap_edge::config::detail {
namespace {

std::string withExample(std::string_view example) {
  return example.empty() ? std::string() : fmt::format(" {}", example);
}

bool isIntegerText(std::string_view text) {
  std::int64_t ignored = 0;
  const auto* end = text.data() + text.size();
  const auto result = std::from_chars(text.data(), end, ignored);
  return !text.empty() && result.ec == std::errc() && result.ptr == end;
}

// "30s" or "400d": a number and a known unit, whether or not in range, so that an
// out-of-range value is reported as such rather than as bad syntax.
bool looksLikeDuration(std::string_view text) {
  const auto digits = text.find_first_not_of("0123456789");
  if (digits == 0 || digits == std::string_view::npos) return false;
  const auto unit = text.substr(digits);
  return unit == "ms" || unit == "s" || unit == "m" || unit == "h" || unit == "d";
}

std::string formatPosition(Position where) { return fmt::format("{}:{}", where.line, where.column); }

}  // namespace

std::optional<std::string> readString(Context& ctx, const toml::node& node, std::string_view what,
                                      std::string_view example) {
  if (const auto* value = node.as_string()) return value->get();
  ctx.fail(node, fmt::format("{} must be a string{}, not {}", what, withExample(example), describeType(node)));
  return std::nullopt;
}

std::optional<bool> readBool(Context& ctx, const toml::node& node, std::string_view what) {
  if (const auto* value = node.as_boolean()) return value->get();
  const auto* text = node.as_string();
  const bool quoted_bool = text != nullptr && (text->get() == "true" || text->get() == "false");
  ctx.fail(node, fmt::format("{} must be true or false, not {}{}", what, describeType(node),
                             quoted_bool ? " (remove the quotes)" : ""));
  return std::nullopt;
}

std::optional<std::int64_t> readInteger(Context& ctx, const toml::node& node, std::string_view what,
                                        std::int64_t min, std::int64_t max) {
  const auto* value = node.as_integer();
  if (value == nullptr) {
    const auto* text = node.as_string();
    const bool quoted_number = text != nullptr && isIntegerText(text->get());
    ctx.fail(node, fmt::format("{} must be an integer, not {}{}", what, describeType(node),
                               quoted_number ? " (remove the quotes)" : ""));
    return std::nullopt;
  }
  const std::int64_t number = value->get();
  if (number < min || number > max) {
    ctx.fail(node, fmt::format("{} must be between {} and {}, not {}", what, min, max, number));
    return std::nullopt;
  }
  return number;
}

std::optional<std::chrono::milliseconds> readDuration(Context& ctx, const toml::node& node, std::string_view what,
                                                      std::chrono::milliseconds min, std::chrono::milliseconds max) {
  const auto* value = node.as_string();
  if (value == nullptr) {
    ctx.fail(node, fmt::format("{} must be a duration string like \"30s\", not {}", what, describeType(node)));
    return std::nullopt;
  }
  const std::string& text = value->get();
  const auto duration = parseDuration(text);
  if (!duration && !looksLikeDuration(text)) {
    ctx.fail(node, fmt::format("{} {} is not a duration: write a whole number and a unit (ms, s, m, h or d) "
                               "with nothing in between, e.g. \"30s\"",
                               what, quoteText(text)));
    return std::nullopt;
  }
  if (!duration || *duration < min || *duration > max) {
    ctx.fail(node, fmt::format("{} must be between {} and {}, not {}", what, formatDuration(min),
                               formatDuration(max), quoteText(text)));
    return std::nullopt;
  }
  return duration;
}

std::optional<Located<std::filesystem::path>> readPath(Context& ctx, const toml::node& node, std::string_view what) {
  const auto text = readString(ctx, node, what, "(a file path)");
  if (!text) return std::nullopt;
  if (text->empty()) {
    ctx.fail(node, fmt::format("{} must not be empty; remove the key to use the default", what));
    return std::nullopt;
  }
  // The OS would silently cut the path at the NUL and open a different file.
  if (text->find('\0') != std::string::npos) {
    ctx.fail(node, fmt::format("{} must not contain a NUL character", what));
    return std::nullopt;
  }
  return Located<std::filesystem::path>{ctx.resolve(*text), positionOf(node.source())};
}

std::optional<std::vector<Located<SocketAddress>>> readAddressList(Context& ctx, const toml::node& node,
                                                                   std::string_view what) {
  const auto* array = node.as_array();
  if (array == nullptr) {
    ctx.fail(node, fmt::format("{} must be an array of addresses like [\"0.0.0.0:5684\"], not {}", what,
                               describeType(node)));
    return std::nullopt;
  }
  std::vector<Located<SocketAddress>> addresses;
  std::map<std::string, std::size_t> seen;  // canonical form -> index in `addresses`
  bool ok = true;
  for (const auto& element : *array) {
    const Position where = positionOf(element.source());
    const auto* text = element.as_string();
    if (text == nullptr) {
      ctx.fail(where, fmt::format("{} entries must be strings like \"0.0.0.0:5684\", not {}", what,
                                  describeType(element)));
      ok = false;
      continue;
    }
    std::string why;
    auto address = parseSocketAddress(text->get(), &why);
    if (!address) {
      ctx.fail(where, fmt::format("{} {}: {}", what, quoteText(text->get()), why));
      ok = false;
      continue;
    }
    const auto [it, inserted] = seen.emplace(canonicalAddress(*address), addresses.size());
    if (!inserted) {
      const auto& first = addresses[it->second];
      ctx.fail(where, first.value.text == address->text
                          ? fmt::format("{} {} is listed twice (first at {})", what, quoteText(address->text),
                                        formatPosition(first.where))
                          : fmt::format("{} {} is the same address as {} at {}", what, quoteText(address->text),
                                        quoteText(first.value.text), formatPosition(first.where)));
      ok = false;
      continue;
    }
    addresses.push_back({std::move(*address), where});
  }
  if (!ok) return std::nullopt;
  return addresses;
}

}  // namespace coap_edge::config::detail
