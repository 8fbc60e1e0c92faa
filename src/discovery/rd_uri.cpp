// URI reference resolution and base URI checks (rd_uri.h).

#include "discovery/rd_uri.h"

#include <fmt/format.h>

#include <algorithm>
#include <cstddef>

namespace coap_edge::discovery {
namespace {

bool isAlpha(char c) noexcept { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'); }
bool isDigit(char c) noexcept { return c >= '0' && c <= '9'; }
bool isHex(char c) noexcept { return isDigit(c) || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F'); }
bool isUnreserved(char c) noexcept { return isAlpha(c) || isDigit(c) || c == '-' || c == '.' || c == '_' || c == '~'; }
bool isSubDelim(char c) noexcept { return std::string_view("!$&'()*+,;=").find(c) != std::string_view::npos; }
bool isPchar(char c) noexcept { return isUnreserved(c) || isSubDelim(c) || c == ':' || c == '@'; }

bool equalsIgnoreCase(std::string_view a, std::string_view b) noexcept {
  if (a.size() != b.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i) {
    char x = a[i];
    if (x >= 'A' && x <= 'Z') x = static_cast<char>(x - 'A' + 'a');
    if (x != b[i]) return false;
  }
  return true;
}

// `text` is made of `allowed` characters and well-formed %XX escapes.
template <typename Allowed>
bool isEscapedRun(std::string_view text, Allowed allowed) noexcept {
  for (std::size_t i = 0; i < text.size(); ++i) {
    if (text[i] == '%') {
      if (i + 2 >= text.size() || !isHex(text[i + 1]) || !isHex(text[i + 2])) return false;
      i += 2;
    } else if (!allowed(text[i])) {
      return false;
    }
  }
  return true;
}

std::optional<std::string> hostError(std::string_view authority) {
  if (authority.find('@') != std::string_view::npos) return "the base URI must not contain user information";
  std::string_view host = authority;
  std::string_view port;
  if (!host.empty() && host.front() == '[') {
    const std::size_t close = host.find(']');
    if (close == std::string_view::npos) return "the base URI's IPv6 literal has no ']'";
    std::string_view literal = host.substr(1, close - 1);
    // A zone (RFC 6874: "%25" then unreserved or escapes), after the address.
    const std::size_t zone = literal.find("%25");
    if (zone != std::string_view::npos) {
      const std::string_view zone_id = literal.substr(zone + 3);
      if (zone_id.empty() || !isEscapedRun(zone_id, isUnreserved)) return "the base URI's IPv6 zone is malformed";
      literal = literal.substr(0, zone);
    }
    // IPv6 hex groups, ':' and an embedded IPv4 tail.
    const bool ok = std::all_of(literal.begin(), literal.end(), [](char c) { return isHex(c) || c == ':' || c == '.'; });
    if (!ok || literal.find(':') == std::string_view::npos) return "the base URI's IPv6 literal is malformed";
    if (close + 1 < host.size()) {
      if (host[close + 1] != ':') return "the base URI has characters after its IPv6 literal";
      port = host.substr(close + 2);
      if (port.empty()) return "the base URI has an empty port";
    }
  } else {
    const std::size_t colon = host.find(':');
    if (colon != std::string_view::npos) {
      port = host.substr(colon + 1);
      host = host.substr(0, colon);
      if (port.empty()) return "the base URI has an empty port";
    }
    if (host.empty()) return "the base URI has no host";
    if (!isEscapedRun(host, isUnreserved)) return "the base URI's host has characters that are not allowed";
  }
  if (port.size() > 5) return "the base URI's port is out of range";
  unsigned value = 0;
  for (const char c : port) {
    if (!isDigit(c)) return "the base URI's port is not a number";
    value = value * 10 + static_cast<unsigned>(c - '0');
  }
  if (value > 65535) return "the base URI's port is out of range";
  return std::nullopt;
}

}  // namespace

UriComponents splitUriReference(std::string_view reference) noexcept {
  UriComponents parts;
  std::string_view rest = reference;
  // Appendix B takes any [^:/?#]+ before ':' as the scheme; only a valid scheme is taken here
  // (ALPHA *( ALPHA / DIGIT / "+" / "-" / "." )), so "~x:y" is a relative path as a lenient
  // parser may let through, and resolves to an absolute URI like every other reference.
  const std::size_t colon = rest.find_first_of(":/?#");
  if (colon != std::string_view::npos && rest[colon] == ':' && hasUriScheme(rest)) {
    parts.scheme = rest.substr(0, colon);
    rest.remove_prefix(colon + 1);
  }
  if (rest.size() >= 2 && rest[0] == '/' && rest[1] == '/') {
    rest.remove_prefix(2);
    const std::size_t end = rest.find_first_of("/?#");
    parts.authority = rest.substr(0, end);
    rest.remove_prefix(end == std::string_view::npos ? rest.size() : end);
  }
  const std::size_t path_end = rest.find_first_of("?#");
  parts.path = rest.substr(0, path_end);
  rest.remove_prefix(path_end == std::string_view::npos ? rest.size() : path_end);
  if (!rest.empty() && rest.front() == '?') {
    rest.remove_prefix(1);
    const std::size_t hash = rest.find('#');
    parts.query = rest.substr(0, hash);
    rest.remove_prefix(hash == std::string_view::npos ? rest.size() : hash);
  }
  if (!rest.empty() && rest.front() == '#') parts.fragment = rest.substr(1);
  return parts;
}

std::string removeDotSegments(std::string_view input) {
  std::string output;
  output.reserve(input.size());
  // Drops the last segment of the output and its preceding '/' (if any).
  auto popSegment = [&output] {
    const std::size_t slash = output.rfind('/');
    output.erase(slash == std::string::npos ? 0 : slash);
  };
  while (!input.empty()) {
    if (input.substr(0, 3) == "../") {
      input.remove_prefix(3);
    } else if (input.substr(0, 2) == "./") {
      input.remove_prefix(2);
    } else if (input.substr(0, 3) == "/./") {
      input.remove_prefix(2);
    } else if (input == "/.") {
      input = "/";
    } else if (input.substr(0, 4) == "/../") {
      input.remove_prefix(3);
      popSegment();
    } else if (input == "/..") {
      input = "/";
      popSegment();
    } else if (input == "." || input == "..") {
      input = {};
    } else {
      // Move the first segment (with its leading '/', if any) to the output.
      const std::size_t next = input.find('/', input.front() == '/' ? 1 : 0);
      const std::size_t length = next == std::string_view::npos ? input.size() : next;
      output.append(input.substr(0, length));
      input.remove_prefix(length);
    }
  }
  return output;
}

std::string resolveUriReference(std::string_view base, std::string_view reference) {
  const UriComponents b = splitUriReference(base);
  const UriComponents r = splitUriReference(reference);
  std::optional<std::string_view> scheme = b.scheme;
  std::optional<std::string_view> authority = b.authority;
  std::optional<std::string_view> query = r.query;
  std::string path;
  if (r.scheme) {
    scheme = r.scheme;
    authority = r.authority;
    path = removeDotSegments(r.path);
  } else if (r.authority) {
    authority = r.authority;
    path = removeDotSegments(r.path);
  } else if (r.path.empty()) {
    path = std::string(b.path);
    if (!r.query) query = b.query;
  } else if (r.path.front() == '/') {
    path = removeDotSegments(r.path);
  } else {
    // §5.2.3 merge
    std::string merged;
    if (b.authority && b.path.empty()) {
      merged = "/";
    } else {
      const std::size_t slash = b.path.rfind('/');
      if (slash != std::string_view::npos) merged = std::string(b.path.substr(0, slash + 1));
    }
    merged.append(r.path);
    path = removeDotSegments(merged);
  }
  // §5.3 recomposition
  std::string target;
  if (scheme) {
    target.append(*scheme);
    target += ':';
  }
  if (authority) {
    target += "//";
    target.append(*authority);
  }
  target += path;
  if (query) {
    target += '?';
    target.append(*query);
  }
  if (r.fragment) {
    target += '#';
    target.append(*r.fragment);
  }
  return target;
}

bool hasUriScheme(std::string_view reference) noexcept {
  if (reference.empty() || !isAlpha(reference.front())) return false;
  for (const char c : reference) {
    if (c == ':') return true;
    if (!isAlpha(c) && !isDigit(c) && c != '+' && c != '-' && c != '.') return false;
  }
  return false;
}

std::optional<std::string> baseUriError(std::string_view base, std::size_t max_bytes) {
  if (base.size() > max_bytes) return fmt::format("the base URI is longer than {} bytes", max_bytes);
  if (!hasUriScheme(base)) return "the base URI must be an absolute coap:// or coaps:// URI";
  const UriComponents parts = splitUriReference(base);
  if (!equalsIgnoreCase(*parts.scheme, "coap") && !equalsIgnoreCase(*parts.scheme, "coaps")) {
    return "the base URI must be a coap:// or coaps:// URI";
  }
  if (!parts.authority) return "the base URI has no host";
  if (parts.query) return "the base URI must not have a query";
  if (parts.fragment) return "the base URI must not have a fragment";
  if (std::optional<std::string> error = hostError(*parts.authority)) return error;
  if (!isEscapedRun(parts.path, [](char c) { return isPchar(c) || c == '/'; })) {
    return "the base URI's path has characters that are not allowed";
  }
  return std::nullopt;
}

std::string encodePathSegment(std::string_view segment) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  std::string encoded;
  encoded.reserve(segment.size());
  for (const char c : segment) {
    if (isPchar(c)) {
      encoded += c;
    } else {
      const auto byte = static_cast<unsigned char>(c);
      encoded += '%';
      encoded += kHex[byte >> 4];
      encoded += kHex[byte & 0x0F];
    }
  }
  return encoded;
}

}  // namespace coap_edge::discovery
