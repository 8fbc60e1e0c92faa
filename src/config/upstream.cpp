// [relay] and [upstream]: how requests to nodes are carried out, and the authenticated session
// the gateway opens to its upstream service (DESIGN.md "Upstream"). Kept apart from
// sections.cpp, which holds the local sections, because [upstream] alone has twenty keys and
// checks that combine them (one credential, companions, the uri's host and server_name).

#include "config/detail.h"

#include <arpa/inet.h>
#include <netinet/in.h>

#include <fmt/format.h>

#include <algorithm>
#include <array>
#include <charconv>
#include <tuple>

namespace coap_edge::config {
namespace {

using namespace std::chrono_literals;

constexpr bool isDigit(char c) { return c >= '0' && c <= '9'; }
constexpr bool isAlpha(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'); }
constexpr bool isHexDigit(char c) { return isDigit(c) || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F'); }

std::nullopt_t reject(std::string* why, std::string text) {
  if (why != nullptr) *why = std::move(text);
  return std::nullopt;
}

bool equalsIgnoringCase(std::string_view a, std::string_view b) {
  auto lower = [](char c) { return c >= 'A' && c <= 'Z' ? static_cast<char>(c - 'A' + 'a') : c; };
  return a.size() == b.size() &&
         std::equal(a.begin(), a.end(), b.begin(), [&](char x, char y) { return lower(x) == lower(y); });
}

bool isIPv4(std::string_view text) {
  in_addr addr{};
  const std::string z(text);
  return z.find('\0') == std::string::npos && inet_pton(AF_INET, z.c_str(), &addr) == 1;
}

}  // namespace

namespace detail {
namespace {

/// A DNS host name (RFC 1123): labels of letters, digits and '-', not starting or ending with
/// '-', 1..63 bytes each, 253 in all, no trailing dot. IP literals are not names.
bool isHostName(std::string_view name) {
  if (name.empty() || name.size() > 253) return false;
  std::size_t start = 0;
  while (true) {
    const std::size_t dot = name.find('.', start);
    const std::string_view label = name.substr(start, dot == std::string_view::npos ? dot : dot - start);
    if (label.empty() || label.size() > 63 || label.front() == '-' || label.back() == '-') return false;
    if (!std::all_of(label.begin(), label.end(), [](char c) { return isAlpha(c) || isDigit(c) || c == '-'; })) {
      return false;
    }
    if (dot == std::string_view::npos) break;
    start = dot + 1;
  }
  // "300.1.2.3" is a mistyped address, not a name (and the last label of a name is never numeric).
  return !std::all_of(name.begin(), name.end(), [](char c) { return isDigit(c) || c == '.'; });
}

}  // namespace
}  // namespace detail

std::optional<UpstreamUri> parseUpstreamUri(std::string_view text, std::string* why) {
  constexpr std::string_view kExample = R"(e.g. "coaps://upstream.example:5684")";
  if (text.empty()) return reject(why, fmt::format("is empty; write {}", kExample));
  const auto colon_slashes = text.find("://");
  if (colon_slashes == std::string_view::npos) {
    return reject(why, fmt::format("is not an absolute URI; write coaps://host[:port], {}", kExample));
  }
  const std::string_view scheme = text.substr(0, colon_slashes);
  if (equalsIgnoringCase(scheme, "coap")) {
    return reject(why, "uses coap://, which has no DTLS: the upstream link must be authenticated and "
                       "encrypted; use coaps://");
  }
  if (!equalsIgnoringCase(scheme, "coaps")) {
    return reject(why, fmt::format("has scheme {}; only coaps:// (CoAP over DTLS) is supported",
                                   detail::quoteText(scheme)));
  }
  std::string_view rest = text.substr(colon_slashes + 3);
  const auto authority_end = rest.find_first_of("/?#");
  const std::string_view authority = rest.substr(0, authority_end);
  if (authority_end != std::string_view::npos) {
    const std::string_view tail = rest.substr(authority_end);
    if (tail != "/") {
      return reject(why, fmt::format("must not have a path, query or fragment ({}); the upstream's paths are "
                                     "rd_path and telemetry_path",
                                     detail::quoteText(tail)));
    }
  }
  if (authority.find('@') != std::string_view::npos) {
    return reject(why, "must not have user information ('@'); the credential is psk_identity or certificate");
  }
  UpstreamUri uri;
  std::string_view port_text;
  bool has_port = false;
  if (!authority.empty() && authority.front() == '[') {
    const auto close = authority.find(']');
    if (close == std::string_view::npos) return reject(why, "has '[' but no closing ']'");
    const std::string_view host = authority.substr(1, close - 1);
    in6_addr addr6{};
    const std::string host_z(host);
    if (host.empty() || host_z.find('\0') != std::string::npos || inet_pton(AF_INET6, host_z.c_str(), &addr6) != 1) {
      return reject(why, fmt::format("{} is not a numeric IPv6 address (zone ids are not supported)",
                                     detail::quoteText(host)));
    }
    const std::string_view after = authority.substr(close + 1);
    if (!after.empty()) {
      if (after.front() != ':') return reject(why, "needs ':' or nothing after ']'");
      port_text = after.substr(1);
      has_port = true;
    }
    uri.host = host;
    uri.ip_literal = true;
  } else {
    const auto colon = authority.find(':');
    const std::string_view host = authority.substr(0, colon);
    if (colon != std::string_view::npos) {
      port_text = authority.substr(colon + 1);
      has_port = true;
      if (port_text.find(':') != std::string_view::npos) {
        return reject(why, R"(IPv6 addresses need brackets, e.g. "coaps://[2001:db8::1]:5684")");
      }
    }
    if (host.empty()) return reject(why, fmt::format("has no host; write {}", kExample));
    if (isIPv4(host)) {
      uri.ip_literal = true;
    } else if (!detail::isHostName(host)) {
      return reject(why, fmt::format("host {} is neither a host name (letters, digits, '-' and '.') nor an "
                                     "IP address",
                                     detail::quoteText(host)));
    }
    uri.host = host;
  }
  if (has_port) {
    if (port_text.empty()) return reject(why, "has ':' but no port; write the port or leave out ':' for 5684");
    std::uint32_t port = 0;
    const bool digits = std::all_of(port_text.begin(), port_text.end(), isDigit);
    if (!digits) return reject(why, fmt::format("port {} is not a number", detail::quoteText(port_text)));
    if (port_text.size() > 5) port = 70000;  // out of range whatever the digits; keeps from_chars in range
    else std::from_chars(port_text.data(), port_text.data() + port_text.size(), port);
    if (port < 1 || port > 65535) {
      return reject(why, fmt::format("port {} is out of range 1..65535", detail::quoteText(port_text)));
    }
    uri.port = static_cast<std::uint16_t>(port);
  }
  uri.text = text;
  return uri;
}

std::string UpstreamSection::telemetryPathFor(std::string_view node) const {
  if (!telemetry_path) return {};
  constexpr std::string_view kNode = "{node}";
  std::string out;
  std::string_view rest = telemetry_path->value;
  for (auto at = rest.find(kNode); at != std::string_view::npos; at = rest.find(kNode)) {
    out.append(rest.substr(0, at));
    out.append(node);
    rest.remove_prefix(at + kNode.size());
  }
  out.append(rest);
  return out;
}

namespace detail {
namespace {

UpstreamSection& upstream(Context& ctx) {
  if (!ctx.config.upstream) ctx.config.upstream.emplace();
  return *ctx.config.upstream;
}

// ---- [relay] ----

void relayTimeout(Context& ctx, const toml::node& value) {
  if (const auto d = readDuration(ctx, value, "[relay] timeout", 1s, 5min)) ctx.config.relay.request_timeout = *d;
}

void relayCacheMaxBytes(Context& ctx, const toml::node& value) {
  constexpr std::int64_t kGiB = 1024LL * 1024 * 1024;
  if (const auto n = readInteger(ctx, value, "[relay] cache_max_bytes", 0, kGiB)) {
    ctx.config.relay.cache_max_bytes = static_cast<std::uint64_t>(*n);
  }
}

void relayMaxInFlight(Context& ctx, const toml::node& value) {
  if (const auto n = readInteger(ctx, value, "[relay] max_in_flight", 1, 100000)) {
    ctx.config.relay.max_in_flight = static_cast<std::uint32_t>(*n);
  }
}

void relayObserve(Context& ctx, const toml::node& value) {
  if (const auto on = readBool(ctx, value, "[relay] observe")) ctx.config.relay.observe = *on;
}

// ---- [upstream]: where and who ----

void upstreamUri(Context& ctx, const toml::node& value) {
  const auto text = readString(ctx, value, "[upstream] uri", R"(like "coaps://upstream.example:5684")");
  if (!text) return;
  std::string why;
  auto uri = parseUpstreamUri(*text, &why);
  if (!uri) {
    ctx.fail(value, fmt::format("[upstream] uri {} {}", quoteText(*text), why));
    return;
  }
  upstream(ctx).uri = {std::move(*uri), positionOf(value.source())};
}

// The keystore's identity rule (keystore.h isValidIdentity): 1..128 bytes of printable ASCII
// without space, ',' or '"', so that an identity means the same in the ACL, in CSV and on the wire.
bool validIdentity(std::string_view identity) {
  return !identity.empty() && identity.size() <= 128 && std::all_of(identity.begin(), identity.end(), [](char c) {
    return c > ' ' && c < 0x7f && c != ',' && c != '"';
  });
}

void upstreamIdentity(Context& ctx, const toml::node& value) {
  if (auto id = readIdentity(ctx, value, "[upstream] identity")) upstream(ctx).identity = std::move(*id);
}

void upstreamPskIdentity(Context& ctx, const toml::node& value) {
  if (auto id = readIdentity(ctx, value, "[upstream] psk_identity")) upstream(ctx).psk_identity = std::move(*id);
}

void upstreamPskKeyFile(Context& ctx, const toml::node& value) {
  upstream(ctx).psk_key_file = readPath(ctx, value, "[upstream] psk_key_file");
}

void upstreamCertificate(Context& ctx, const toml::node& value) {
  upstream(ctx).certificate = readPath(ctx, value, "[upstream] certificate");
}

void upstreamPrivateKey(Context& ctx, const toml::node& value) {
  upstream(ctx).private_key = readPath(ctx, value, "[upstream] private_key");
}

void upstreamCa(Context& ctx, const toml::node& value) { upstream(ctx).ca = readPath(ctx, value, "[upstream] ca"); }

void upstreamServerName(Context& ctx, const toml::node& value) {
  auto name = readString(ctx, value, "[upstream] server_name", R"(like "upstream.example")");
  if (!name) return;
  // SNI carries host names only (RFC 6066 §3), and the certificate is checked against this name.
  if (!isHostName(*name)) {
    ctx.fail(value, fmt::format("[upstream] server_name must be a host name (letters, digits, '-' and '.'), "
                                "not {}",
                                quoteText(*name)));
    return;
  }
  upstream(ctx).server_name = std::move(*name);
}

// ---- [upstream]: the session ----

void upstreamKeepalive(Context& ctx, const toml::node& value) {
  // The syntax and the year-long cap are readDuration's; the range has a hole, so it is ours.
  const auto d = readDuration(ctx, value, "[upstream] keepalive", 0ms, 365 * 24h);
  if (!d) return;
  // A ping more often than every 5 s costs the upstream more than a lost session would.
  if (*d != 0ms && (*d < 5s || *d > 1h)) {
    ctx.fail(value, fmt::format(R"([upstream] keepalive must be "0s" (off) or between 5s and 1h, not {})",
                                formatDuration(*d)));
    return;
  }
  upstream(ctx).keepalive = *d;
}

void upstreamReconnectMin(Context& ctx, const toml::node& value) {
  if (const auto d = readDuration(ctx, value, "[upstream] reconnect_min", 100ms, 1h)) upstream(ctx).reconnect_min = *d;
}

void upstreamReconnectMax(Context& ctx, const toml::node& value) {
  if (const auto d = readDuration(ctx, value, "[upstream] reconnect_max", 1s, 24h)) upstream(ctx).reconnect_max = *d;
}

// ---- [upstream]: Resource Directory ----

void upstreamRegistration(Context& ctx, const toml::node& value) {
  const auto text = readString(ctx, value, "[upstream] registration", R"(like "per-node")");
  if (!text) return;
  if (*text == "per-node") {
    upstream(ctx).registration = RdRegistrationMode::per_node;
  } else if (*text == "gateway") {
    upstream(ctx).registration = RdRegistrationMode::gateway;
  } else {
    ctx.fail(value, fmt::format(R"([upstream] registration must be "per-node" or "gateway", not {})", quoteText(*text)));
  }
}

bool isPchar(char c) {
  // RFC 3986 pchar without pct-encoded (checked apart): unreserved, sub-delims, ':' and '@'.
  return isAlpha(c) || isDigit(c) || std::string_view("-._~!$&'()*+,;=:@").find(c) != std::string_view::npos;
}

/// Checks a path of '/'-separated segments (RFC 3986 pchar, %XX escapes); with `placeholder`,
/// "{node}" may appear inside segments. Returns the offset of the first bad byte and why.
std::optional<std::pair<std::size_t, std::string>> pathProblem(std::string_view path, std::size_t first,
                                                               bool placeholder) {
  constexpr std::string_view kNode = "{node}";
  std::size_t segment_start = first;
  for (std::size_t i = first; i <= path.size(); ++i) {
    if (i == path.size() || path[i] == '/') {
      const std::string_view segment = path.substr(segment_start, i - segment_start);
      if (segment.empty()) return std::pair{i, std::string("has an empty segment (\"//\" or a '/' at the end)")};
      if (segment == "." || segment == "..") {
        return std::pair{segment_start, std::string("has a \".\" or \"..\" segment")};
      }
      segment_start = i + 1;
      continue;
    }
    const char c = path[i];
    if (placeholder && path.substr(i, kNode.size()) == kNode) {
      i += kNode.size() - 1;
      continue;
    }
    if (c == '%') {
      if (i + 2 < path.size() && isHexDigit(path[i + 1]) && isHexDigit(path[i + 2])) {
        i += 2;
        continue;
      }
      return std::pair{i, std::string("has a '%' that does not start a %XX escape")};
    }
    if (c == '{' || c == '}') {
      return std::pair{i, std::string(placeholder ? "has a brace that is not part of \"{node}\""
                                                  : "has a brace; only telemetry_path takes \"{node}\"")};
    }
    if (c == '?' || c == '#') return std::pair{i, std::string("has a query or fragment; a path only")};
    if (!isPchar(c)) {
      return std::pair{i, std::string("has a character that must be percent-encoded (outside A-Z a-z 0-9 "
                                      "- . _ ~ ! $ & ' ( ) * + , ; = : @)")};
    }
  }
  return std::nullopt;
}

void failPath(Context& ctx, const toml::node& value, std::string_view what, std::string_view text,
              const std::pair<std::size_t, std::string>& problem) {
  if (const auto at = positionInString(ctx, value, std::min(problem.first, text.empty() ? 0 : text.size() - 1))) {
    ctx.fail(*at, fmt::format("{} {} {}", what, quoteText(text), problem.second));
  } else {
    ctx.fail(value, fmt::format("{} {} {} (at character {})", what, quoteText(text), problem.second,
                                problem.first + 1));
  }
}

void upstreamRdPath(Context& ctx, const toml::node& value) {
  const auto text = readString(ctx, value, "[upstream] rd_path", R"(like "rd")");
  if (!text) return;
  constexpr std::size_t kMaxPath = 255;
  if (text->empty() || *text == "/") {
    ctx.fail(value, R"([upstream] rd_path must name the RD's registration resource, like "rd")");
    return;
  }
  if (text->size() > kMaxPath) {
    ctx.fail(value, fmt::format("[upstream] rd_path must be at most {} bytes", kMaxPath));
    return;
  }
  // "rd" and "/rd" mean the same; kept without the '/' (Uri-Path options carry segments).
  const std::size_t first = !text->empty() && text->front() == '/' ? 1 : 0;
  if (auto problem = pathProblem(*text, first, false)) {
    failPath(ctx, value, "[upstream] rd_path", *text, *problem);
    return;
  }
  upstream(ctx).rd_path = text->substr(first);
}

void upstreamLifetime(Context& ctx, const toml::node& value) {
  const auto d = readDuration(ctx, value, "[upstream] lifetime", 10s, 7 * 24h);
  if (!d) return;
  // RFC 9176's lt is whole seconds.
  if (d->count() % 1000 != 0) {
    ctx.fail(value, fmt::format("[upstream] lifetime must be whole seconds (the RD's lt), not {}",
                                formatDuration(*d)));
    return;
  }
  upstream(ctx).lifetime = std::chrono::duration_cast<std::chrono::seconds>(*d);
}

// ---- [upstream]: telemetry and its queue ----

void upstreamTelemetryPath(Context& ctx, const toml::node& value) {
  const auto text = readString(ctx, value, "[upstream] telemetry_path", R"(like "/telemetry/{node}")");
  if (!text) return;
  constexpr std::size_t kMaxPath = 255;
  if (text->empty() || text->front() != '/') {
    ctx.fail(value, fmt::format(R"([upstream] telemetry_path must start with '/', like "/telemetry/{{node}}", not {})",
                                quoteText(*text)));
    return;
  }
  if (text->size() > kMaxPath) {
    ctx.fail(value, fmt::format("[upstream] telemetry_path must be at most {} bytes", kMaxPath));
    return;
  }
  if (auto problem = pathProblem(*text, 1, true)) {
    failPath(ctx, value, "[upstream] telemetry_path", *text, *problem);
    return;
  }
  upstream(ctx).telemetry_path = Located<std::string>{*text, positionOf(value.source())};
}

void upstreamTelemetryFormat(Context& ctx, const toml::node& value) {
  const auto text = readString(ctx, value, "[upstream] telemetry_format", R"(like "senml+cbor")");
  if (!text) return;
  if (*text == "senml+cbor") {
    upstream(ctx).telemetry_format = TelemetryFormat::senml_cbor;
  } else if (*text == "senml+json") {
    upstream(ctx).telemetry_format = TelemetryFormat::senml_json;
  } else {
    ctx.fail(value, fmt::format(R"([upstream] telemetry_format must be "senml+cbor" or "senml+json", not {})",
                                quoteText(*text)));
  }
}

void upstreamTelemetryBatch(Context& ctx, const toml::node& value) {
  if (const auto n = readInteger(ctx, value, "[upstream] telemetry_batch", 1, 1000)) {
    upstream(ctx).telemetry_batch = static_cast<std::uint32_t>(*n);
  }
}

void upstreamTelemetryInterval(Context& ctx, const toml::node& value) {
  if (const auto d = readDuration(ctx, value, "[upstream] telemetry_interval", 100ms, 1h)) {
    upstream(ctx).telemetry_interval = *d;
  }
}

void upstreamQueueMaxBytes(Context& ctx, const toml::node& value) {
  constexpr std::int64_t kMax = 4LL * 1024 * 1024 * 1024;
  if (const auto n = readInteger(ctx, value, "[upstream] queue_max_bytes", 4096, kMax)) {
    upstream(ctx).queue_max_bytes = static_cast<std::uint64_t>(*n);
  }
}

void upstreamQueueMaxAge(Context& ctx, const toml::node& value) {
  if (const auto d = readDuration(ctx, value, "[upstream] queue_max_age", 1min, 365 * 24h)) {
    upstream(ctx).queue_max_age = *d;
  }
}

void upstreamQueueWhenFull(Context& ctx, const toml::node& value) {
  const auto text = readString(ctx, value, "[upstream] queue_when_full", R"(like "drop_oldest")");
  if (!text) return;
  if (*text == "drop_oldest") {
    upstream(ctx).queue_when_full = QueueWhenFull::drop_oldest;
  } else if (*text == "drop_newest") {
    upstream(ctx).queue_when_full = QueueWhenFull::drop_newest;
  } else {
    ctx.fail(value, fmt::format(R"([upstream] queue_when_full must be "drop_oldest" or "drop_newest", not {})",
                                quoteText(*text)));
  }
}

void upstreamQueueSync(Context& ctx, const toml::node& value) {
  const auto text = readString(ctx, value, "[upstream] queue_sync", R"(like "full")");
  if (!text) return;
  if (*text == "full") {
    upstream(ctx).queue_sync = QueueSync::full;
  } else if (*text == "normal") {
    upstream(ctx).queue_sync = QueueSync::normal;
  } else {
    ctx.fail(value, fmt::format(R"([upstream] queue_sync must be "full" or "normal", not {})", quoteText(*text)));
  }
}

constexpr std::array<KeySpec, 5> kRelayKeys{{
    {"timeout", &relayTimeout},
    {"credentials", &applyNodeCredentials},
    {"cache_max_bytes", &relayCacheMaxBytes},
    {"max_in_flight", &relayMaxInFlight},
    {"observe", &relayObserve},
}};

constexpr std::array<KeySpec, 22> kUpstreamKeys{{
    {"uri", &upstreamUri},
    {"identity", &upstreamIdentity},
    {"psk_identity", &upstreamPskIdentity},
    {"psk_key_file", &upstreamPskKeyFile},
    {"certificate", &upstreamCertificate},
    {"private_key", &upstreamPrivateKey},
    {"ca", &upstreamCa},
    {"server_name", &upstreamServerName},
    {"keepalive", &upstreamKeepalive},
    {"reconnect_min", &upstreamReconnectMin},
    {"reconnect_max", &upstreamReconnectMax},
    {"registration", &upstreamRegistration},
    {"rd_path", &upstreamRdPath},
    {"lifetime", &upstreamLifetime},
    {"telemetry_path", &upstreamTelemetryPath},
    {"telemetry_format", &upstreamTelemetryFormat},
    {"telemetry_batch", &upstreamTelemetryBatch},
    {"telemetry_interval", &upstreamTelemetryInterval},
    {"queue_max_bytes", &upstreamQueueMaxBytes},
    {"queue_max_age", &upstreamQueueMaxAge},
    {"queue_when_full", &upstreamQueueWhenFull},
    {"queue_sync", &upstreamQueueSync},
}};

bool before(const toml::node& a, const toml::node& b) {
  const Position pa = positionOf(a.source());
  const Position pb = positionOf(b.source());
  return std::tie(pa.line, pa.column) < std::tie(pb.line, pb.column);
}

// The earliest of `keys` present in `table`, by position in the file.
const toml::node* firstPresent(const toml::table& table, std::initializer_list<std::string_view> keys) {
  const toml::node* best = nullptr;
  for (const auto key : keys) {
    const auto* node = table.get(key);
    if (node != nullptr && (best == nullptr || before(*node, *best))) best = node;
  }
  return best;
}

void checkCredential(Context& ctx, const toml::table& table, const UpstreamSection& up) {
  const auto* psk = firstPresent(table, {"psk_identity", "psk_key_file"});
  const auto* x509 = firstPresent(table, {"certificate", "private_key"});
  if (psk == nullptr && x509 == nullptr) {
    ctx.fail(up.where, "[upstream] needs a credential: psk_identity and psk_key_file (PSK), or certificate, "
                       "private_key and ca (X.509)");
    return;
  }
  if (psk != nullptr && x509 != nullptr) {
    // The kind written second is the extra one.
    ctx.fail(before(*x509, *psk) ? *psk : *x509,
             "[upstream] takes one credential: PSK (psk_identity, psk_key_file) or X.509 (certificate, "
             "private_key, ca), not both");
    return;
  }
  if (psk != nullptr) {
    if (!table.contains("psk_key_file")) {
      ctx.fail(*table.get("psk_identity"), "[upstream] psk_identity needs psk_key_file (the key, in hex on one line)");
    } else if (!table.contains("psk_identity")) {
      ctx.fail(*table.get("psk_key_file"), "[upstream] psk_key_file needs psk_identity (the identity the key "
                                           "belongs to)");
    }
    // PSK suites exchange no certificates: a ca or server_name here would verify nothing while
    // looking as if it did.
    for (const std::string_view key : {"ca", "server_name"}) {
      if (const auto* node = table.get(key)) {
        ctx.fail(*node, fmt::format("[upstream] {} is for X.509 (certificate and private_key); PSK cipher suites "
                                    "use no certificates, so it would verify nothing; remove it",
                                    key));
      }
    }
    return;
  }
  if (!table.contains("private_key")) {
    ctx.fail(*table.get("certificate"), "[upstream] certificate needs private_key (the gateway's key, PEM)");
  } else if (!table.contains("certificate")) {
    ctx.fail(*table.get("private_key"), "[upstream] private_key needs certificate (the gateway's certificate, PEM)");
  } else if (!table.contains("ca")) {
    ctx.fail(*x509, "[upstream] X.509 needs ca: the CA that the server's certificate must chain to");
  }
  // SNI cannot carry an IP address (RFC 6066 §3) and upstream certificates name hosts: the
  // operator says which name the certificate must carry rather than us guessing.
  if (up.uri.value.ip_literal && !up.server_name) {
    ctx.fail(up.uri.where, fmt::format("[upstream] uri has an IP address as host: with X.509 also set server_name "
                                       "to the name the server's certificate carries"));
  }
}

}  // namespace

std::optional<std::string> readIdentity(Context& ctx, const toml::node& value, std::string_view what) {
  auto text = readString(ctx, value, what, R"(like "gw-01")");
  if (!text) return std::nullopt;
  if (!validIdentity(*text)) {
    ctx.fail(value, fmt::format("{} must be 1 to 128 printable ASCII characters without space, ',' or '\"', "
                                "not {}",
                                what, quoteText(*text)));
    return std::nullopt;
  }
  return text;
}

std::span<const KeySpec> relayKeys() { return std::span(kRelayKeys); }
std::span<const KeySpec> upstreamKeys() { return std::span(kUpstreamKeys); }

void finishUpstream(Context& ctx, const toml::table* table) {
  if (table == nullptr) return;
  UpstreamSection& up = upstream(ctx);
  up.where = positionOf(table->source());
  if (up.where.line == 0 && table->begin() != table->end()) up.where = positionOf(table->begin()->first.source());
  // After an error in one key, the checks below would only add confusing reports.
  if (!ctx.errors.empty()) return;
  if (!table->contains("uri")) {
    ctx.fail(up.where, R"([upstream] needs uri = "coaps://host:port", e.g. "coaps://upstream.example:5684")");
    return;
  }
  checkCredential(ctx, *table, up);
  if (up.reconnect_max < up.reconnect_min) {
    const auto* at = firstPresent(*table, {"reconnect_max"});
    if (at == nullptr) at = table->get("reconnect_min");
    ctx.fail(*at, fmt::format("[upstream] reconnect_max ({}) must not be below reconnect_min ({})",
                              formatDuration(up.reconnect_max), formatDuration(up.reconnect_min)));
  }
  if (!up.telemetry_path) {
    for (const std::string_view key : {"telemetry_format", "telemetry_batch", "telemetry_interval", "queue_max_bytes",
                                       "queue_max_age", "queue_when_full", "queue_sync"}) {
      if (const auto* node = table->get(key)) {
        ctx.fail(*node, fmt::format("[upstream] {} has no effect without telemetry_path; set telemetry_path "
                                    "(e.g. \"/telemetry/{{node}}\") or remove it",
                                    key));
      }
    }
  }
}

}  // namespace detail
}  // namespace coap_edge::config
