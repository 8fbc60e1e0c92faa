// GET /nodes: the registry as CoRE link format, with RFC 6690 §4.1 query filtering.

#include "discovery/node_registry.h"

#include <algorithm>
#include <optional>
#include <string>
#include <utility>

namespace coap_edge::discovery {
namespace {

struct Filter {
  std::string name;                  ///< lower-case
  std::optional<std::string> value;  ///< nullopt: "the attribute is present"
};

/// "rt=core.node&ep=lamp*" -> filters. CoAP carries each Uri-Query option decoded, so there is
/// no percent-decoding here; the caller joins several options with '&'.
std::vector<Filter> parseQuery(std::string_view query) {
  std::vector<Filter> filters;
  while (!query.empty()) {
    const auto amp = query.find('&');
    const std::string_view part = query.substr(0, amp);
    query = amp == std::string_view::npos ? std::string_view{} : query.substr(amp + 1);
    if (part.empty()) continue;
    const auto eq = part.find('=');
    Filter f;
    f.name = std::string(part.substr(0, eq));
    std::transform(f.name.begin(), f.name.end(), f.name.begin(),
                   [](char c) { return c >= 'A' && c <= 'Z' ? static_cast<char>(c - 'A' + 'a') : c; });
    if (eq != std::string_view::npos) f.value = std::string(part.substr(eq + 1));
    filters.push_back(std::move(f));
  }
  return filters;
}

bool valueMatches(std::string_view value, std::string_view pattern) {
  if (!pattern.empty() && pattern.back() == '*') return value.starts_with(pattern.substr(0, pattern.size() - 1));
  return value == pattern;
}

/// rt, if, rel and src hold space-separated words (RFC 6690 §3.1 ff.); a filter matches any one.
bool isWordList(std::string_view name) { return name == "rt" || name == "if" || name == "rel" || name == "src"; }

bool matches(const Link& link, const Filter& f) {
  if (f.name.empty()) return false;
  if (f.name == "href") return f.value && valueMatches(link.target, *f.value);
  for (const auto& a : link.attributes) {
    if (a.name != f.name) continue;
    if (!f.value) return true;
    if (!a.value) continue;
    if (!isWordList(f.name)) {
      if (valueMatches(*a.value, *f.value)) return true;
      continue;
    }
    std::string_view rest = *a.value;
    while (!rest.empty()) {
      const auto sp = rest.find(' ');
      const std::string_view word = rest.substr(0, sp);
      rest = sp == std::string_view::npos ? std::string_view{} : rest.substr(sp + 1);
      if (!word.empty() && valueMatches(word, *f.value)) return true;
    }
  }
  return false;
}

LinkAttribute quoted(std::string name, std::string value) { return {std::move(name), std::move(value), true}; }

Link nodeLink(const NodeRecord& node) {
  Link link;
  link.target = "/nodes/" + node.id;  // ids are path-segment safe: nothing to percent-encode
  link.attributes.push_back(quoted("rt", "core.node"));
  if (!node.name.empty()) link.attributes.push_back(quoted("ep", node.name));
  std::string src;
  for (const Source s : kAllSources) {
    if (!node.has(s)) continue;
    if (!src.empty()) src += ' ';
    src += sourceName(s);
  }
  link.attributes.push_back(quoted("src", std::move(src)));
  // RFC 9176's "base": where the node itself answers (the preferred address).
  if (!node.addresses.empty()) link.attributes.push_back(quoted("base", nodeUri(node.addresses.front())));
  // Every address the node was seen at (a dual-stack host answers from several), space-separated.
  if (node.addresses.size() > 1) {
    std::string all;
    for (const auto& a : node.addresses) all += (all.empty() ? "" : " ") + nodeUri(a);
    link.attributes.push_back(quoted("addr", std::move(all)));
  }
  if (node.secure) link.attributes.push_back({"secure", std::nullopt, false});
  return link;
}

}  // namespace

std::vector<Link> NodeRegistry::links(std::string_view filter_query) const {
  const auto filters = parseQuery(filter_query);
  std::vector<Link> out;
  for (const auto& [id, node] : nodes_) {
    Link link = nodeLink(node.record);
    if (std::all_of(filters.begin(), filters.end(), [&link](const Filter& f) { return matches(link, f); })) {
      out.push_back(std::move(link));
    }
  }
  return out;
}

std::string NodeRegistry::linkFormat(std::string_view filter_query) const {
  return serializeLinkFormat(links(filter_query));
}

}  // namespace coap_edge::discovery
