// [limits] rates and [[limits.override]] entries:
//
//   [limits]
//   per_identity = { rate = 20.0, burst = 40 }            # requests/s of each identity
//   handshakes_per_address = { rate = 5.0, burst = 10 }   # DTLS handshakes/s of each source IP
//   [[limits.override]]
//   identity = "upstream"                                 # or a glob, or: group = "sensors"
//   per_identity = { rate = 200.0, burst = 400 }

#include "config/detail.h"

#include <fmt/format.h>

#include <array>

namespace coap_edge::config::detail {
namespace {

constexpr double kMinRate = 0.001;  // one per 1000 s
constexpr double kMaxRate = 1e6;
constexpr std::int64_t kMaxBurst = 1000000;
constexpr std::array<std::string_view, 2> kRateKeys{"rate", "burst"};
constexpr std::array<std::string_view, 3> kOverrideKeys{"identity", "group", "per_identity"};

std::optional<double> readRate(Context& ctx, const toml::node& node, std::string_view what) {
  double rate = 0;
  if (const auto* f = node.as_floating_point()) {
    rate = f->get();
  } else if (const auto* i = node.as_integer()) {
    rate = static_cast<double>(i->get());
  } else {
    ctx.fail(node, fmt::format("{} rate must be a number of requests per second like 20.0, not {}", what,
                               describeType(node)));
    return std::nullopt;
  }
  if (!(rate >= kMinRate && rate <= kMaxRate)) {  // also refuses nan
    ctx.fail(node, fmt::format("{} rate must be between {} and {} per second, not {}", what, kMinRate, kMaxRate,
                               rate));
    return std::nullopt;
  }
  return rate;
}

void readOverride(Context& ctx, const toml::table& table) {
  LimitOverrideDraft draft;
  draft.where = positionOf(table.source());
  bool unknown_key = false;
  for (const auto& [key, value] : table) {
    const std::string_view name = key.str();
    if (name == "identity") {
      draft.identity = readIdentityPattern(ctx, value, "[[limits.override]] identity");
    } else if (name == "group") {
      if (auto group = readString(ctx, value, "[[limits.override]] group", "(a name from [groups])")) {
        draft.group = Located<std::string>{std::move(*group), positionOf(value.source())};
      }
    } else if (name == "per_identity") {
      draft.per_identity = readRateSpec(ctx, value, "[[limits.override]] per_identity");
    } else {
      const auto near = closestMatch(name, kOverrideKeys);
      ctx.fail(positionOf(key.source()),
               fmt::format("unknown key {} in [[limits.override]]{}", displayKey(name),
                           near ? fmt::format("; did you mean '{}'?", *near)
                                : std::string("; an override has identity or group, and per_identity")));
      unknown_key = true;
    }
  }
  if (unknown_key) return;
  const auto* identity = table.get("identity");
  const auto* group = table.get("group");
  if (identity == nullptr && group == nullptr) {
    ctx.fail(draft.where, R"([[limits.override]] needs identity = "..." or group = "..." (a list in [groups]))");
  } else if (identity != nullptr && group != nullptr) {
    ctx.fail(*group, "[[limits.override]] takes identity or group, not both; write two entries");
  }
  if (!table.contains("per_identity")) {
    ctx.fail(draft.where, "[[limits.override]] needs per_identity = { rate = ..., burst = ... }");
  }
  ctx.limit_overrides.push_back(std::move(draft));
}

}  // namespace

std::optional<policy::RateSpec> readRateSpec(Context& ctx, const toml::node& node, std::string_view what) {
  const auto* table = node.as_table();
  if (table == nullptr) {
    ctx.fail(node, fmt::format("{} must be a table like {{ rate = 20.0, burst = 40 }}, not {}", what,
                               describeType(node)));
    return std::nullopt;
  }
  policy::RateSpec spec;
  bool ok = true;
  for (const auto& [key, value] : *table) {
    const std::string_view name = key.str();
    if (name == "rate") {
      if (const auto rate = readRate(ctx, value, what)) {
        spec.rate = *rate;
      } else {
        ok = false;
      }
    } else if (name == "burst") {
      if (const auto burst = readInteger(ctx, value, fmt::format("{} burst", what), 1, kMaxBurst)) {
        spec.burst = static_cast<std::uint32_t>(*burst);
      } else {
        ok = false;
      }
    } else {
      const auto near = closestMatch(name, kRateKeys);
      ctx.fail(positionOf(key.source()),
               fmt::format("unknown key {} in {}{}", displayKey(name), what,
                           near ? fmt::format("; did you mean '{}'?", *near)
                                : std::string("; it takes rate (per second) and burst")));
      ok = false;
    }
  }
  if (!ok) return std::nullopt;
  if (!table->contains("rate") || !table->contains("burst")) {
    ctx.fail(node, fmt::format("{} needs both rate and burst, e.g. {{ rate = 20.0, burst = 40 }}", what));
    return std::nullopt;
  }
  return spec;
}

void applyLimitOverrides(Context& ctx, const toml::node& value) {
  const auto* array = value.as_array();
  if (array == nullptr || !array->is_array_of_tables()) {
    ctx.fail(value, fmt::format("[limits] override must be [[limits.override]] tables, not {}",
                                value.is_table() ? std::string_view("a single table") : describeType(value)));
    return;
  }
  for (const auto& element : *array) readOverride(ctx, *element.as_table());
}

void finishLimits(Context& ctx) {
  for (const LimitOverrideDraft& draft : ctx.limit_overrides) {
    if (!draft.per_identity) continue;  // already reported
    LimitOverride entry;
    entry.per_identity = *draft.per_identity;
    if (draft.group) {
      const GroupDraft* group = findGroup(ctx, draft.group->value);
      if (group == nullptr) {
        ctx.fail(draft.group->where, fmt::format("[[limits.override]] group {} is not defined in [groups]{}",
                                                 quoteText(draft.group->value), groupHint(ctx, draft.group->value)));
        continue;
      }
      entry.label = fmt::format("group \"{}\"", draft.group->value);
      entry.who = group->members;
    } else if (draft.identity) {
      entry.label = fmt::format("identity \"{}\"", draft.identity->text());
      entry.who.push_back(*draft.identity);
    } else {
      continue;
    }
    ctx.config.limits.overrides.push_back(std::move(entry));
  }
}

}  // namespace coap_edge::config::detail

namespace coap_edge::config {

std::optional<policy::RateSpec> LimitsSection::perIdentityFor(std::string_view identity) const {
  for (const auto& entry : overrides) {
    for (const auto& pattern : entry.who) {
      if (pattern.matches(identity)) return entry.per_identity;
    }
  }
  return per_identity;
}

}  // namespace coap_edge::config
