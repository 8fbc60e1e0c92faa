#include "discovery/node_id.h"

#include <algorithm>
#include <string>

namespace coap_edge::discovery {
namespace {

char lowerAscii(char c) noexcept { return c >= 'A' && c <= 'Z' ? static_cast<char>(c - 'A' + 'a') : c; }
bool alnum(char c) noexcept { return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9'); }

}  // namespace

std::string nodeIdFromName(std::string_view name) {
  std::string id;
  id.reserve(std::min(name.size(), kMaxNodeIdBase));
  for (const char raw : name) {
    const char c = lowerAscii(raw);
    const bool keep = alnum(c) || c == '.' || c == '_';
    if (keep) {
      if (id.size() == kMaxNodeIdBase) break;
      id.push_back(c);
    } else if (!id.empty() && id.back() != '-') {  // a leading '-' is never written
      if (id.size() == kMaxNodeIdBase) break;
      id.push_back('-');
    }
  }
  while (!id.empty() && id.back() == '-') id.pop_back();
  // "." and ".." would be removed by URI normalisation (RFC 3986 §5.2.4) and address /nodes.
  if (std::all_of(id.begin(), id.end(), [](char c) { return c == '.'; })) return {};
  return id;
}

std::string nodeIdFromAddress(const NodeAddress& address) {
  const std::string port = "-" + std::to_string(address.port);
  const std::size_t host_room = kMaxNodeIdBase - port.size();
  std::string id;
  id.reserve(std::min(address.host.size(), host_room) + port.size());
  for (const char raw : address.host) {
    if (id.size() == host_room) break;
    const char c = lowerAscii(raw);
    id.push_back(alnum(c) ? c : '-');
  }
  return id + port;
}

std::string nodeIdWithSuffix(std::string_view base, std::size_t n) {
  if (n <= 1) return std::string(base);
  const std::string suffix = "-" + std::to_string(n);
  // base is at most kMaxNodeIdBase, so the suffix has kMaxNodeIdLength - kMaxNodeIdBase bytes.
  const std::size_t room = kMaxNodeIdLength > suffix.size() ? kMaxNodeIdLength - suffix.size() : 0;
  return std::string(base.substr(0, room)) + suffix;
}

}  // namespace coap_edge::discovery
