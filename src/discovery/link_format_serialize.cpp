// Writing CoRE Link Format, and reading a parsed Link's attributes. The writer is the parser's
// inverse: whatever parseLinkFormat() produced comes back unchanged from
// parseLinkFormat(serializeLinkFormat(links)) (tests/unit/test_link_format.cpp checks it on
// random lists, tests/fuzz/fuzz_link_format.cpp on arbitrary input).

#include "discovery/link_format.h"

#include "discovery/link_format_chars.h"

#include <algorithm>
#include <array>

namespace coap_edge::discovery {
namespace {

bool equalsIgnoringCase(std::string_view a, std::string_view b) {
  auto lower = [](char c) { return c >= 'A' && c <= 'Z' ? static_cast<char>(c - 'A' + 'a') : c; };
  return a.size() == b.size() &&
         std::equal(a.begin(), a.end(), b.begin(), [&](char x, char y) { return lower(x) == lower(y); });
}

// RFC 6690 §2: these hold relation-types, i.e. a space-separated list when quoted.
bool isSpaceSeparated(std::string_view name) {
  static constexpr std::array<std::string_view, 4> kNames{"rt", "if", "rel", "rev"};
  return std::any_of(kNames.begin(), kNames.end(), [&](std::string_view n) { return equalsIgnoringCase(n, name); });
}

bool isPtoken(std::string_view value) {
  return !value.empty() && std::all_of(value.begin(), value.end(), [](char c) {
    return detail::isPtokenChar(static_cast<unsigned char>(c));
  });
}

void appendQuoted(std::string& out, std::string_view value) {
  out.push_back('"');
  for (const char c : value) {
    if (c == '"' || c == '\\') out.push_back('\\');
    out.push_back(c);
  }
  out.push_back('"');
}

}  // namespace

std::optional<std::string_view> Link::attribute(std::string_view name) const {
  for (const auto& a : attributes) {
    if (a.value && equalsIgnoringCase(a.name, name)) return std::string_view(*a.value);
  }
  return std::nullopt;
}

std::vector<std::string_view> Link::values(std::string_view name) const {
  std::vector<std::string_view> result;
  const bool split = isSpaceSeparated(name);
  for (const auto& a : attributes) {
    if (!a.value || !equalsIgnoringCase(a.name, name)) continue;
    const std::string_view value = *a.value;
    if (!split) {
      result.push_back(value);
      continue;
    }
    // Words separated by runs of SP (or HTAB): "a  b" is two words, " " none.
    std::size_t i = 0;
    while (i < value.size()) {
      while (i < value.size() && (value[i] == ' ' || value[i] == '\t')) ++i;
      const std::size_t start = i;
      while (i < value.size() && value[i] != ' ' && value[i] != '\t') ++i;
      if (i > start) result.push_back(value.substr(start, i - start));
    }
  }
  return result;
}

bool Link::has(std::string_view name) const {
  return std::any_of(attributes.begin(), attributes.end(),
                     [&](const LinkAttribute& a) { return equalsIgnoringCase(a.name, name); });
}

std::string serializeLinkFormat(const std::vector<Link>& links) {
  std::string out;
  for (std::size_t i = 0; i < links.size(); ++i) {
    const Link& link = links[i];
    if (i != 0) out.push_back(',');
    out.push_back('<');
    out += link.target;
    out.push_back('>');
    for (const auto& a : link.attributes) {
      out.push_back(';');
      out += a.name;
      if (!a.value) continue;
      out.push_back('=');
      // An unquoted value must stay one ptoken, or it would not read back as the same value.
      if (a.quoted || !isPtoken(*a.value)) {
        appendQuoted(out, *a.value);
      } else {
        out += *a.value;
      }
    }
  }
  return out;
}

}  // namespace coap_edge::discovery
