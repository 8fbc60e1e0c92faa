// Value syntax that does not depend on TOML: durations, socket addresses, and the small text
// helpers that keep error messages readable.

#include "config/detail.h"

#include <arpa/inet.h>
#include <netinet/in.h>

#include <fmt/format.h>

#include <algorithm>
#include <array>
#include <charconv>
#include <cstdint>
#include <numeric>

namespace coap_edge::config {
namespace {

constexpr bool isDigit(char c) { return c >= '0' && c <= '9'; }
constexpr bool isAlpha(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'); }

struct DurationUnit {
  std::string_view suffix;
  std::int64_t millis;
};
// Longest suffix first is not needed: the whole remainder must equal one suffix.
constexpr std::array<DurationUnit, 5> kUnits{{
    {"ms", 1}, {"s", 1000}, {"m", 60 * 1000}, {"h", 60 * 60 * 1000}, {"d", 24 * 60 * 60 * 1000}}};
// No timeout or interval in this daemon is sensibly longer; the cap also rules out overflow.
constexpr std::int64_t kMaxDurationMillis = 365LL * 24 * 60 * 60 * 1000;

std::nullopt_t reject(std::string* why, std::string text) {
  if (why != nullptr) *why = std::move(text);
  return std::nullopt;
}

std::optional<std::uint16_t> parsePort(std::string_view text, std::string* why) {
  if (text.empty()) return reject(why, "has no port after ':'");
  if (!std::all_of(text.begin(), text.end(), isDigit)) {
    return reject(why, fmt::format("port {} is not a number", detail::quoteText(text)));
  }
  // More than 5 digits is out of range whatever they are; this also keeps from_chars in range.
  std::uint32_t value = 70000;
  if (text.size() <= 5) std::from_chars(text.data(), text.data() + text.size(), value);
  if (value > 65535) {
    return reject(why, fmt::format("port {} is out of range 0..65535", detail::quoteText(text)));
  }
  return static_cast<std::uint16_t>(value);
}

}  // namespace

std::optional<std::chrono::milliseconds> parseDuration(std::string_view text) {
  const auto digits = static_cast<std::size_t>(
      std::find_if_not(text.begin(), text.end(), isDigit) - text.begin());
  // A year in milliseconds has 11 digits: longer numbers are out of range in every unit.
  if (digits == 0 || digits > 12) return std::nullopt;
  std::int64_t count = 0;
  std::from_chars(text.data(), text.data() + digits, count);
  const std::string_view suffix = text.substr(digits);
  for (const auto& unit : kUnits) {
    if (unit.suffix != suffix) continue;
    if (count > kMaxDurationMillis / unit.millis) return std::nullopt;
    return std::chrono::milliseconds(count * unit.millis);
  }
  return std::nullopt;
}

std::optional<SocketAddress> parseSocketAddress(std::string_view text, std::string* why) {
  constexpr std::string_view kExample = R"(e.g. "0.0.0.0:5684" or "[::]:5684")";
  if (text.empty()) return reject(why, fmt::format("is empty; write host:port, {}", kExample));
  std::string_view host;
  std::string_view port;
  if (text.front() == '[') {
    const auto close = text.find(']');
    if (close == std::string_view::npos) {
      return reject(why, "has '[' but no closing ']'");
    }
    host = text.substr(1, close - 1);
    const std::string_view rest = text.substr(close + 1);
    if (rest.empty() || rest.front() != ':') {
      return reject(why, R"(needs ":port" after the brackets, e.g. "[::]:5684")");
    }
    port = rest.substr(1);
    in6_addr addr6{};
    const std::string host_z(host);  // inet_pton needs a terminated string
    if (host.empty() || host_z.find('\0') != std::string::npos ||
        inet_pton(AF_INET6, host_z.c_str(), &addr6) != 1) {
      return reject(why, fmt::format("{} is not a numeric IPv6 address", detail::quoteText(host)));
    }
  } else {
    const auto colon = text.rfind(':');
    if (colon == std::string_view::npos) {
      return reject(why, fmt::format("has no port; write host:port, {}", kExample));
    }
    host = text.substr(0, colon);
    port = text.substr(colon + 1);
    if (host.find(':') != std::string_view::npos) {
      return reject(why, R"(IPv6 addresses need brackets, e.g. "[::1]:5684")");
    }
    if (host.empty()) {
      return reject(why, R"(has no host; use "0.0.0.0" for every IPv4 address)");
    }
    in_addr addr4{};
    const std::string host_z(host);
    if (host_z.find('\0') != std::string::npos || inet_pton(AF_INET, host_z.c_str(), &addr4) != 1) {
      if (std::any_of(host.begin(), host.end(), isAlpha)) {
        return reject(why, fmt::format("host names such as {} are not accepted (no DNS lookup at startup); "
                                       "use a numeric address, {}",
                                       detail::quoteText(host), kExample));
      }
      return reject(why, fmt::format("{} is not a numeric IPv4 address", detail::quoteText(host)));
    }
  }
  const auto number = parsePort(port, why);
  if (!number) return std::nullopt;
  return SocketAddress{std::string(host), *number, std::string(text)};
}

namespace detail {

std::string_view describeType(const toml::node& node) {
  switch (node.type()) {
    case toml::node_type::string: return "a string";
    case toml::node_type::integer: return "an integer";
    case toml::node_type::floating_point: return "a floating-point number";
    case toml::node_type::boolean: return "a boolean";
    case toml::node_type::table: return "a table";
    case toml::node_type::array: return "an array";
    case toml::node_type::date: return "a date";
    case toml::node_type::time: return "a time";
    case toml::node_type::date_time: return "a date-time";
    case toml::node_type::none: break;
  }
  return "nothing";
}

std::string quoteText(std::string_view text) {
  constexpr std::size_t kMaxShown = 80;
  std::string out = "\"";
  for (std::size_t i = 0; i < text.size() && i < kMaxShown; ++i) {
    const auto c = static_cast<unsigned char>(text[i]);
    if (c == '"' || c == '\\') {
      out += '\\';
      out += static_cast<char>(c);
    } else if (c < 0x20 || c == 0x7f) {
      out += fmt::format("\\x{:02x}", c);
    } else {
      out += static_cast<char>(c);
    }
  }
  if (text.size() > kMaxShown) out += "...";
  out += '"';
  return out;
}

namespace {
// Short bare keys are shown as written; anything else goes through quoteText(), which escapes
// and shortens it.
bool isBareKey(std::string_view key) {
  return !key.empty() && key.size() <= 64 && std::all_of(key.begin(), key.end(), [](char c) {
    return isAlpha(c) || isDigit(c) || c == '_' || c == '-';
  });
}
}  // namespace

std::string displayKey(std::string_view key) { return isBareKey(key) ? fmt::format("'{}'", key) : quoteText(key); }

std::string displayName(std::string_view name) { return isBareKey(name) ? std::string(name) : quoteText(name); }

std::size_t editDistance(std::string_view a, std::string_view b) {
  // Two-row Levenshtein; keys are short.
  std::vector<std::size_t> previous(b.size() + 1);
  std::vector<std::size_t> current(b.size() + 1);
  std::iota(previous.begin(), previous.end(), std::size_t{0});
  for (std::size_t i = 1; i <= a.size(); ++i) {
    current[0] = i;
    for (std::size_t j = 1; j <= b.size(); ++j) {
      const std::size_t substitution = previous[j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1);
      current[j] = std::min({previous[j] + 1, current[j - 1] + 1, substitution});
    }
    std::swap(previous, current);
  }
  return previous[b.size()];
}

std::optional<std::string_view> closestMatch(std::string_view word, std::span<const std::string_view> candidates) {
  constexpr std::size_t kMaxDistance = 2;
  // Keys are short; a long word cannot be within distance 2 of any of them.
  if (word.size() > 64) return std::nullopt;
  std::optional<std::string_view> best;
  std::size_t best_distance = kMaxDistance + 1;
  for (const auto candidate : candidates) {
    const std::size_t distance = editDistance(word, candidate);
    // Half the candidate at most: two edits turn any 3-letter word into "acl".
    if (distance < best_distance && 2 * distance <= candidate.size()) {
      best = candidate;
      best_distance = distance;
    }
  }
  return best;
}

std::string formatDuration(std::chrono::milliseconds value) {
  const std::int64_t millis = value.count();
  for (auto unit = kUnits.rbegin(); unit != kUnits.rend(); ++unit) {
    if (millis != 0 && millis % unit->millis == 0) return fmt::format("{}{}", millis / unit->millis, unit->suffix);
  }
  return fmt::format("{}ms", millis);
}

std::string canonicalAddress(const SocketAddress& address) {
  std::array<char, INET6_ADDRSTRLEN> buffer{};
  in6_addr addr6{};
  in_addr addr4{};
  if (inet_pton(AF_INET6, address.host.c_str(), &addr6) == 1 &&
      inet_ntop(AF_INET6, &addr6, buffer.data(), buffer.size()) != nullptr) {
    return fmt::format("[{}]:{}", buffer.data(), address.port);
  }
  if (inet_pton(AF_INET, address.host.c_str(), &addr4) == 1 &&
      inet_ntop(AF_INET, &addr4, buffer.data(), buffer.size()) != nullptr) {
    return fmt::format("{}:{}", buffer.data(), address.port);
  }
  return address.text;
}

}  // namespace detail
}  // namespace coap_edge::config
