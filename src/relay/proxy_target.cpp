#include "relay/proxy_target.h"

#include <cctype>

namespace coap_edge::relay {
namespace {

int hexValue(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

std::optional<std::string> decodeSegment(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (std::size_t i = 0; i < s.size(); ++i) {
    if (s[i] != '%') {
      out.push_back(s[i]);
      continue;
    }
    if (i + 2 >= s.size()) return std::nullopt;
    const int hi = hexValue(s[i + 1]);
    const int lo = hexValue(s[i + 2]);
    if (hi < 0 || lo < 0) return std::nullopt;
    out.push_back(static_cast<char>(hi * 16 + lo));
    i += 2;
  }
  return out;
}

bool pchar(unsigned char c) {
  return std::isalnum(c) != 0 || std::string_view("-._~!$&'()*+,;=:@").find(static_cast<char>(c)) != std::string_view::npos;
}

std::optional<std::uint16_t> parsePort(std::string_view digits) {
  if (digits.empty() || digits.size() > 5) return std::nullopt;
  unsigned value = 0;
  for (char ch : digits) {
    if (ch < '0' || ch > '9') return std::nullopt;
    value = value * 10 + static_cast<unsigned>(ch - '0');
  }
  if (value == 0 || value > 65535) return std::nullopt;
  return static_cast<std::uint16_t>(value);
}

}  // namespace

std::optional<std::vector<std::string>> decodePathSegments(std::string_view path) {
  std::vector<std::string> out;
  while (true) {
    const std::size_t cut = path.find('/');
    auto seg = decodeSegment(path.substr(0, cut));
    if (!seg || seg->find('/') != std::string::npos) return std::nullopt;
    out.push_back(std::move(*seg));
    if (cut == std::string_view::npos) break;
    path.remove_prefix(cut + 1);
  }
  return out;
}

std::string encodePathSegment(std::string_view raw) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  std::string out;
  out.reserve(raw.size());
  for (char ch : raw) {
    const auto c = static_cast<unsigned char>(ch);
    if (pchar(c)) {
      out.push_back(ch);
    } else {
      out.push_back('%');
      out.push_back(kHex[c >> 4]);
      out.push_back(kHex[c & 15]);
    }
  }
  return out;
}

std::optional<ProxyTarget> proxyTarget(const coap::Request& request) {
  ProxyTarget t;
  if (!request.proxy_uri.empty()) {
    std::string_view uri = request.proxy_uri;
    if (uri.size() > kMaxProxyUri) return std::nullopt;
    const std::size_t colon = uri.find("://");
    if (colon == std::string_view::npos || colon == 0) return std::nullopt;
    t.scheme = std::string(uri.substr(0, colon));
    uri.remove_prefix(colon + 3);
    const std::size_t end_authority = std::min(uri.find_first_of("/?#"), uri.size());
    std::string_view authority = uri.substr(0, end_authority);
    uri.remove_prefix(end_authority);
    if (authority.find('@') != std::string_view::npos) return std::nullopt;  // no userinfo
    if (!authority.empty() && authority.front() == '[') {
      const std::size_t close = authority.find(']');
      if (close == std::string_view::npos) return std::nullopt;
      t.host = std::string(authority.substr(1, close - 1));
      authority.remove_prefix(close + 1);
    } else {
      const std::size_t c = authority.rfind(':');
      t.host = std::string(authority.substr(0, c));
      authority.remove_prefix(c == std::string_view::npos ? authority.size() : c);
    }
    if (!authority.empty()) {
      if (authority.front() != ':') return std::nullopt;
      t.port = parsePort(authority.substr(1));
      if (!t.port) return std::nullopt;
    }
    if (!uri.empty() && uri.front() == '#') return std::nullopt;
    const std::size_t q = uri.find('?');
    std::string_view path = uri.substr(0, q);
    if (q != std::string_view::npos) {
      std::string_view query = uri.substr(q + 1);
      if (query.find('#') != std::string_view::npos) return std::nullopt;
      t.query = std::string(query);
    }
    if (!path.empty() && path.front() == '/') path.remove_prefix(1);
    if (path.find('#') != std::string_view::npos) return std::nullopt;
    if (!path.empty()) {
      auto segments = decodePathSegments(path);
      if (!segments) return std::nullopt;
      t.segments = std::move(*segments);
    }
  } else if (!request.proxy_scheme.empty()) {
    t.scheme = request.proxy_scheme;
    t.host = request.uri_host;
    t.port = request.uri_port;
    if (t.port && *t.port == 0) return std::nullopt;
    if (!request.path.empty()) {
      auto segments = decodePathSegments(request.path);
      if (!segments) return std::nullopt;
      t.segments = std::move(*segments);
    }
    t.query = request.query;
  } else {
    return std::nullopt;
  }
  if (t.host.empty() || t.host.size() > kMaxProxyHost) return std::nullopt;
  return t;
}

}  // namespace coap_edge::relay
