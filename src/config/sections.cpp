// The sections and keys this version understands: one table of key -> handler per section
// (not a strcmp chain), each handler a few lines on top of the typed readers.

#include "config/detail.h"

#include <fmt/format.h>

#include <algorithm>
#include <array>

namespace coap_edge::config::detail {
namespace {

// ---- [agent] ----

bool validName(std::string_view name) {
  constexpr std::size_t kMaxName = 63;  // fits a DNS label, so it can name the mDNS instance
  return !name.empty() && name.size() <= kMaxName && std::all_of(name.begin(), name.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' || c == '_' ||
           c == '-';
  });
}

void agentName(Context& ctx, const toml::node& value) {
  auto name = readString(ctx, value, "[agent] name", R"(like "gw-01")");
  if (!name) return;
  if (!validName(*name)) {
    ctx.fail(value, fmt::format("[agent] name must be 1 to 63 characters from A-Z, a-z, 0-9, '.', '_' and '-', "
                                "not {}",
                                quoteText(*name)));
    return;
  }
  ctx.config.agent.name = std::move(*name);
}

void agentStateDir(Context& ctx, const toml::node& value) {
  if (auto path = readPath(ctx, value, "[agent] state_dir")) ctx.config.agent.state_dir = std::move(*path);
}

void agentLogLevel(Context& ctx, const toml::node& value) {
  const auto text = readString(ctx, value, "[agent] log_level", R"(like "info")");
  if (!text) return;
  if (!log::parseLevel(*text, ctx.config.agent.log_level)) {
    ctx.fail(value, fmt::format(R"([agent] log_level must be one of "error", "warning", "notice", "info", )"
                                R"("debug", not {})",
                                quoteText(*text)));
  }
}

void agentMetricsFile(Context& ctx, const toml::node& value) {
  ctx.config.agent.metrics_file = readPath(ctx, value, "[agent] metrics_file");
}

void agentMetricsInterval(Context& ctx, const toml::node& value) {
  using namespace std::chrono_literals;
  if (const auto interval = readDuration(ctx, value, "[agent] metrics_interval", 1s, 1h)) {
    ctx.config.agent.metrics_interval = *interval;
  }
}

// ---- [downstream] ----

void downstreamListen(Context& ctx, const toml::node& value) {
  if (auto list = readAddressList(ctx, value, "[downstream] listen")) ctx.config.downstream.listen = std::move(*list);
}

void downstreamPlainListen(Context& ctx, const toml::node& value) {
  if (auto list = readAddressList(ctx, value, "[downstream] plain_listen")) {
    ctx.config.downstream.plain_listen = std::move(*list);
  }
}

void downstreamCertificate(Context& ctx, const toml::node& value) {
  ctx.config.downstream.certificate = readPath(ctx, value, "[downstream] certificate");
}

void downstreamPrivateKey(Context& ctx, const toml::node& value) {
  ctx.config.downstream.private_key = readPath(ctx, value, "[downstream] private_key");
}

void downstreamCa(Context& ctx, const toml::node& value) {
  ctx.config.downstream.ca = readPath(ctx, value, "[downstream] ca");
}

void downstreamPsk(Context& ctx, const toml::node& value) {
  if (const auto psk = readBool(ctx, value, "[downstream] psk")) ctx.config.downstream.psk = *psk;
}

void downstreamIdleTimeout(Context& ctx, const toml::node& value) {
  using namespace std::chrono_literals;
  if (const auto timeout = readDuration(ctx, value, "[downstream] idle_timeout", 1s, 24h)) {
    ctx.config.downstream.idle_timeout = *timeout;
  }
}

void downstreamDtlsRetransmitMin(Context& ctx, const toml::node& value) {
  using namespace std::chrono_literals;
  if (const auto d = readDuration(ctx, value, "[downstream] dtls_retransmit_min", 100ms, 60s)) {
    ctx.config.downstream.dtls_retransmit_min = *d;
  }
}

void downstreamDtlsRetransmitMax(Context& ctx, const toml::node& value) {
  using namespace std::chrono_literals;
  if (const auto d = readDuration(ctx, value, "[downstream] dtls_retransmit_max", 100ms, 10min)) {
    ctx.config.downstream.dtls_retransmit_max = *d;
  }
}

void downstreamDtlsHalfOpenTimeout(Context& ctx, const toml::node& value) {
  using namespace std::chrono_literals;
  if (const auto d = readDuration(ctx, value, "[downstream] dtls_half_open_timeout", 1s, 1h)) {
    ctx.config.downstream.dtls_half_open_timeout = *d;
  }
}

void downstreamReceiveBufferBytes(Context& ctx, const toml::node& value) {
  using D = DownstreamSection;
  const auto n = readInteger(ctx, value, "[downstream] receive_buffer_bytes", 0, D::kMaxReceiveBufferBytes);
  if (!n) return;
  if (*n != 0 && *n < D::kMinReceiveBufferBytes) {
    // Below the kernel's own default: it would only make drops under a burst more likely.
    ctx.fail(value, fmt::format("[downstream] receive_buffer_bytes must be 0 (the kernel's default) or from {} to {}, not {}",
                                D::kMinReceiveBufferBytes, D::kMaxReceiveBufferBytes, *n));
    return;
  }
  ctx.config.downstream.receive_buffer_bytes = static_cast<std::uint32_t>(*n);
}

// ---- [discovery] ----

bool validInterfaceName(std::string_view name) {
  constexpr std::size_t kMaxInterfaceName = 15;  // IFNAMSIZ - 1
  return !name.empty() && name.size() <= kMaxInterfaceName && name != "." && name != ".." &&
         std::all_of(name.begin(), name.end(), [](char c) {
           return c > ' ' && c < 0x7f && c != '/' && c != ':' && c != '%';
         });
}

void discoveryInterfaces(Context& ctx, const toml::node& value) {
  const auto* array = value.as_array();
  if (array == nullptr) {
    ctx.fail(value, fmt::format(R"([discovery] interfaces must be an array of interface names like ["eth0"], not {})",
                                describeType(value)));
    return;
  }
  std::vector<Located<std::string>> names;
  for (const auto& item : *array) {
    auto name = readString(ctx, item, "[discovery] interfaces entry", R"(like "eth0")");
    if (!name) return;
    if (!validInterfaceName(*name)) {
      ctx.fail(item, fmt::format("[discovery] interfaces: {} is not a network interface name (1 to 15 characters, "
                                 "no '/', ':', '%' or spaces)",
                                 quoteText(*name)));
      return;
    }
    for (const auto& seen : names) {
      if (seen.value == *name) {
        ctx.fail(item, fmt::format("[discovery] interfaces: {} is listed twice", quoteText(*name)));
        return;
      }
    }
    names.push_back({std::move(*name), positionOf(item.source())});
  }
  ctx.config.discovery.interfaces = std::move(names);
}

void discoveryMulticast(Context& ctx, const toml::node& value) {
  if (const auto on = readBool(ctx, value, "[discovery] multicast")) ctx.config.discovery.multicast = *on;
}

void discoveryDnsSd(Context& ctx, const toml::node& value) {
  if (const auto on = readBool(ctx, value, "[discovery] dns_sd")) ctx.config.discovery.dns_sd = *on;
}

void discoveryPublish(Context& ctx, const toml::node& value) {
  if (const auto on = readBool(ctx, value, "[discovery] publish")) ctx.config.discovery.publish = *on;
}

void discoveryResourceDirectory(Context& ctx, const toml::node& value) {
  if (const auto on = readBool(ctx, value, "[discovery] resource_directory")) {
    ctx.config.discovery.resource_directory = *on;
  }
}

void discoveryInterval(Context& ctx, const toml::node& value) {
  using namespace std::chrono_literals;
  if (const auto d = readDuration(ctx, value, "[discovery] interval", 1s, 24h)) ctx.config.discovery.interval = *d;
}

void discoveryLeisure(Context& ctx, const toml::node& value) {
  using namespace std::chrono_literals;
  if (const auto d = readDuration(ctx, value, "[discovery] leisure", 100ms, 60s)) ctx.config.discovery.leisure = *d;
}

void discoveryNodeTtl(Context& ctx, const toml::node& value) {
  using namespace std::chrono_literals;
  if (const auto d = readDuration(ctx, value, "[discovery] node_ttl", 1s, 7 * 24h)) ctx.config.discovery.node_ttl = *d;
}

void discoveryRt(Context& ctx, const toml::node& value) {
  auto rt = readString(ctx, value, "[discovery] rt", R"(like "temperature")");
  if (!rt) return;
  constexpr std::size_t kMaxRt = 63;
  const bool ok = !rt->empty() && rt->size() <= kMaxRt && std::all_of(rt->begin(), rt->end(), [](char c) {
    return c > ' ' && c < 0x7f && c != '&' && c != '"' && c != '\\';
  });
  if (!ok) {
    ctx.fail(value, fmt::format("[discovery] rt must be one resource type (1 to 63 printable characters, no spaces, "
                                "'&', '\"' or '\\'), not {}",
                                quoteText(*rt)));
    return;
  }
  ctx.config.discovery.rt = std::move(*rt);
}

void discoveryMaxNodes(Context& ctx, const toml::node& value) {
  if (const auto n = readInteger(ctx, value, "[discovery] max_nodes", 1, 100000)) {
    ctx.config.discovery.max_nodes = static_cast<std::uint32_t>(*n);
  }
}

// ---- [limits] ----

void limitsMaxSessions(Context& ctx, const toml::node& value) {
  if (const auto count = readInteger(ctx, value, "[limits] max_sessions", 1, 1000000)) {
    ctx.config.limits.max_sessions = static_cast<std::uint32_t>(*count);
  }
}

void limitsMaxHandshakes(Context& ctx, const toml::node& value) {
  if (const auto count = readInteger(ctx, value, "[limits] max_handshakes", 1, 100000)) {
    ctx.config.limits.max_handshakes = static_cast<std::uint32_t>(*count);
  }
}

void limitsDuplicateMaxBytes(Context& ctx, const toml::node& value) {
  if (const auto n = readInteger(ctx, value, "[limits] duplicate_max_bytes", 0, 1024LL * 1024 * 1024)) {
    ctx.config.limits.duplicate_max_bytes = static_cast<std::uint64_t>(*n);
  }
}

void limitsPerIdentity(Context& ctx, const toml::node& value) {
  ctx.config.limits.per_identity = readRateSpec(ctx, value, "[limits] per_identity");
}

void limitsHandshakesPerAddress(Context& ctx, const toml::node& value) {
  ctx.config.limits.handshakes_per_address = readRateSpec(ctx, value, "[limits] handshakes_per_address");
}

void limitsPerNode(Context& ctx, const toml::node& value) {
  ctx.config.limits.per_node = readRateSpec(ctx, value, "[limits] per_node");
}

// ---- tables ----

constexpr std::array<KeySpec, 5> kAgentKeys{{
    {"name", &agentName},
    {"state_dir", &agentStateDir},
    {"log_level", &agentLogLevel},
    {"metrics_file", &agentMetricsFile},
    {"metrics_interval", &agentMetricsInterval},
}};

constexpr std::array<KeySpec, 11> kDownstreamKeys{{
    {"listen", &downstreamListen},
    {"plain_listen", &downstreamPlainListen},
    {"certificate", &downstreamCertificate},
    {"private_key", &downstreamPrivateKey},
    {"ca", &downstreamCa},
    {"psk", &downstreamPsk},
    {"idle_timeout", &downstreamIdleTimeout},
    {"dtls_retransmit_min", &downstreamDtlsRetransmitMin},
    {"dtls_retransmit_max", &downstreamDtlsRetransmitMax},
    {"dtls_half_open_timeout", &downstreamDtlsHalfOpenTimeout},
    {"receive_buffer_bytes", &downstreamReceiveBufferBytes},
}};

constexpr std::array<KeySpec, 10> kDiscoveryKeys{{
    {"interfaces", &discoveryInterfaces},
    {"multicast", &discoveryMulticast},
    {"dns_sd", &discoveryDnsSd},
    {"interval", &discoveryInterval},
    {"leisure", &discoveryLeisure},
    {"rt", &discoveryRt},
    {"node_ttl", &discoveryNodeTtl},
    {"publish", &discoveryPublish},
    {"resource_directory", &discoveryResourceDirectory},
    {"max_nodes", &discoveryMaxNodes},
}};

constexpr std::array<KeySpec, 7> kLimitsKeys{{
    {"max_sessions", &limitsMaxSessions},
    {"max_handshakes", &limitsMaxHandshakes},
    {"duplicate_max_bytes", &limitsDuplicateMaxBytes},
    {"per_identity", &limitsPerIdentity},
    {"per_node", &limitsPerNode},
    {"handshakes_per_address", &limitsHandshakesPerAddress},
    {"override", &applyLimitOverrides},
}};

// Same family and port, and one of them the wildcard (or both equal): binding both fails.
bool overlaps(const SocketAddress& a, const SocketAddress& b) {
  if (a.port != b.port || a.port == 0) return false;
  const bool a6 = a.host.find(':') != std::string::npos;
  const bool b6 = b.host.find(':') != std::string::npos;
  if (a6 != b6) return false;
  const std::string any = a6 ? canonicalAddress({"::", a.port, {}}) : canonicalAddress({"0.0.0.0", a.port, {}});
  const std::string ca = canonicalAddress(a);
  const std::string cb = canonicalAddress(b);
  return ca == cb || ca == any || cb == any;
}

}  // namespace

std::span<const SectionSpec> sections() {
  // Built on first use: the [relay] and [upstream] tables live in upstream.cpp.
  static const std::array<SectionSpec, 8> kSections{{
      {"agent", kAgentKeys, {}, nullptr},
      {"downstream", kDownstreamKeys, {}, nullptr},
      {"discovery", kDiscoveryKeys, {}, nullptr},
      {"relay", relayKeys(), {}, nullptr},
      {"upstream", upstreamKeys(), {}, nullptr},
      {"limits", kLimitsKeys, {}, nullptr},
      {"acl", {}, {}, &applyAcl},
      {"groups", {}, {}, &applyGroups},
  }};
  return kSections;
}
// Every section DESIGN.md names is implemented; the mechanism stays for the next one.
std::span<const std::string_view> plannedSections() { return {}; }

namespace {

// The retransmission timer must be able to grow, and a half-open session must outlive the
// longest wait between two flights. Reported at the key the operator set.
void checkDtlsTimers(Context& ctx, const toml::table& table) {
  const auto& d = ctx.config.downstream;
  if (d.dtls_retransmit_max < d.dtls_retransmit_min) {
    const auto* at = table.get("dtls_retransmit_max") != nullptr ? table.get("dtls_retransmit_max")
                                                                  : table.get("dtls_retransmit_min");
    ctx.fail(*at, fmt::format("[downstream] dtls_retransmit_max ({}) must not be below dtls_retransmit_min ({})",
                              formatDuration(d.dtls_retransmit_max), formatDuration(d.dtls_retransmit_min)));
  }
  if (d.dtls_half_open_timeout <= d.dtls_retransmit_max) {
    const auto* at = table.get("dtls_half_open_timeout") != nullptr ? table.get("dtls_half_open_timeout")
                                                                     : table.get("dtls_retransmit_max");
    if (at == nullptr) at = table.get("dtls_retransmit_min");
    if (at == nullptr) return;
    ctx.fail(*at, fmt::format("[downstream] dtls_half_open_timeout ({}) must be longer than dtls_retransmit_max ({}), "
                              "or half-open handshakes are dropped while they wait for the peer",
                              formatDuration(d.dtls_half_open_timeout), formatDuration(d.dtls_retransmit_max)));
  }
}

}  // namespace

void finishDownstream(Context& ctx, const toml::table* table) {
  auto& downstream = ctx.config.downstream;
  // Secure by default: nothing beyond loopback is exposed until the operator says so.
  const bool listen_defaulted = downstream.listen.empty();
  if (listen_defaulted) {
    for (auto& address : defaultListen()) downstream.listen.push_back({std::move(address), {}});
  }
  // These checks combine keys; after an error in one of them their report would only confuse
  // (and, positioned at the section header, would hide the more precise one).
  if (table == nullptr || !ctx.errors.empty()) return;

  const bool cert = table->contains("certificate");
  const bool key = table->contains("private_key");
  const bool ca = table->contains("ca");
  if ((cert || key || ca) && !(cert && key && ca)) {
    std::vector<std::string_view> missing;
    if (!cert) missing.emplace_back("certificate");
    if (!key) missing.emplace_back("private_key");
    if (!ca) missing.emplace_back("ca");
    ctx.fail(*table, fmt::format("[downstream] certificate, private_key and ca must be given together (missing: {})",
                                 fmt::join(missing, ", ")));
  }
  checkDtlsTimers(ctx, *table);
  const auto* psk = table->get("psk");
  if (psk != nullptr && !downstream.psk && !cert && !key && !ca) {
    ctx.fail(*psk, "[downstream] psk = false leaves devices no way to authenticate; "
                   "also set certificate, private_key and ca");
  }
  for (const auto& plain : downstream.plain_listen) {
    for (const auto& secure : downstream.listen) {
      if (!overlaps(plain.value, secure.value)) continue;
      const std::string origin = listen_defaulted
                                     ? std::string("the default [downstream] listen (listen is not set)")
                                     : fmt::format("[downstream] listen {} at {}:{}", quoteText(secure.value.text),
                                                   secure.where.line, secure.where.column);
      ctx.fail(plain.where, fmt::format("[downstream] plain_listen {} overlaps {}; one UDP port cannot serve "
                                        "both coap and coaps",
                                        quoteText(plain.value.text), origin));
      return;
    }
  }
}

void finishDiscovery(Context& ctx, const toml::table* table) {
  if (table == nullptr || !ctx.errors.empty()) return;
  const auto& d = ctx.config.discovery;
  // Without interfaces nothing is probed or browsed; only asking for it explicitly is an error.
  const bool asked = (table->contains("multicast") && d.multicast) || (table->contains("dns_sd") && d.dns_sd);
  if (d.interfaces.empty() && asked) {
    ctx.fail(*table, "[discovery] interfaces is empty or missing: list the interfaces to probe and browse "
                     R"((interfaces = ["eth0"]), or remove multicast and dns_sd)");
    return;
  }
  if (d.leisure >= d.interval) {
    const auto* at = table->get("leisure");
    ctx.fail(at != nullptr ? *at : static_cast<const toml::node&>(*table),
             fmt::format("[discovery] leisure ({}) must be shorter than interval ({})", formatDuration(d.leisure),
                         formatDuration(d.interval)));
    return;
  }
  if (d.node_ttl && *d.node_ttl <= d.interval) {
    ctx.fail(*table->get("node_ttl"), fmt::format("[discovery] node_ttl ({}) must be longer than interval ({}), or "
                                                  "every node would vanish between two probes",
                                                  formatDuration(*d.node_ttl), formatDuration(d.interval)));
  }
}

}  // namespace coap_edge::config::detail
