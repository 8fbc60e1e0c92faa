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

void limitsPerIdentity(Context& ctx, const toml::node& value) {
  ctx.config.limits.per_identity = readRateSpec(ctx, value, "[limits] per_identity");
}

void limitsHandshakesPerAddress(Context& ctx, const toml::node& value) {
  ctx.config.limits.handshakes_per_address = readRateSpec(ctx, value, "[limits] handshakes_per_address");
}

// ---- tables ----

constexpr std::array<KeySpec, 5> kAgentKeys{{
    {"name", &agentName},
    {"state_dir", &agentStateDir},
    {"log_level", &agentLogLevel},
    {"metrics_file", &agentMetricsFile},
    {"metrics_interval", &agentMetricsInterval},
}};

constexpr std::array<KeySpec, 7> kDownstreamKeys{{
    {"listen", &downstreamListen},
    {"plain_listen", &downstreamPlainListen},
    {"certificate", &downstreamCertificate},
    {"private_key", &downstreamPrivateKey},
    {"ca", &downstreamCa},
    {"psk", &downstreamPsk},
    {"idle_timeout", &downstreamIdleTimeout},
}};

constexpr std::array<KeySpec, 5> kLimitsKeys{{
    {"max_sessions", &limitsMaxSessions},
    {"max_handshakes", &limitsMaxHandshakes},
    {"per_identity", &limitsPerIdentity},
    {"handshakes_per_address", &limitsHandshakesPerAddress},
    {"override", &applyLimitOverrides},
}};
// per_node protects a node behind the relay, which this version does not have yet.
constexpr std::array<std::string_view, 1> kLimitsPlanned{"per_node"};

constexpr std::array<SectionSpec, 5> kSections{{
    {"agent", kAgentKeys, {}, nullptr},
    {"downstream", kDownstreamKeys, {}, nullptr},
    {"limits", kLimitsKeys, kLimitsPlanned, nullptr},
    {"acl", {}, {}, &applyAcl},
    {"groups", {}, {}, &applyGroups},
}};

constexpr std::array<std::string_view, 2> kPlannedSections{"discovery", "upstream"};

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

std::span<const SectionSpec> sections() { return kSections; }
std::span<const std::string_view> plannedSections() { return kPlannedSections; }

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

}  // namespace coap_edge::config::detail
