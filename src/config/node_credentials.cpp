// [[relay.credentials]]: the DTLS-PSK credential the gateway presents to nodes that speak only
// coaps, so that it can relay to them without their opening a session first:
//
//   [[relay.credentials]]
//   nodes = ["sensor-*", "door-3"]        # node ids or globs; the first matching entry applies
//   psk_identity = "gw-01"
//   psk_key_file = "/etc/coap-edge/sensors.key"   # hex on one line, like [upstream]'s

#include "config/detail.h"

#include <fmt/format.h>

#include <array>

namespace coap_edge::config::detail {
namespace {

constexpr std::array<std::string_view, 3> kKeys{"nodes", "psk_identity", "psk_key_file"};
constexpr std::size_t kMaxPatterns = 1024;

void readNodes(Context& ctx, const toml::node& value, NodeCredential& entry) {
  const auto* array = value.as_array();
  if (array == nullptr || array->empty()) {
    ctx.fail(value, fmt::format(R"([[relay.credentials]] nodes must be a non-empty list like ["sensor-*"], not {})",
                                array == nullptr ? std::string(describeType(value)) : std::string("an empty list")));
    return;
  }
  if (array->size() > kMaxPatterns) {
    ctx.fail(value, fmt::format("[[relay.credentials]] nodes has {} entries; at most {}", array->size(), kMaxPatterns));
    return;
  }
  for (const auto& element : *array) {
    if (auto pattern = readIdentityPattern(ctx, element, "[[relay.credentials]] nodes")) {
      entry.nodes.push_back(std::move(*pattern));
    }
  }
}

void readEntry(Context& ctx, const toml::table& table) {
  NodeCredential entry;
  entry.where = positionOf(table.source());
  bool complete = true;
  for (const auto& [key, value] : table) {
    const std::string_view name = key.str();
    if (name == "nodes") {
      readNodes(ctx, value, entry);
    } else if (name == "psk_identity") {
      if (auto id = readIdentity(ctx, value, "[[relay.credentials]] psk_identity")) entry.psk_identity = std::move(*id);
    } else if (name == "psk_key_file") {
      if (auto path = readPath(ctx, value, "[[relay.credentials]] psk_key_file")) entry.psk_key_file = std::move(*path);
    } else {
      const auto near = closestMatch(name, kKeys);
      ctx.fail(positionOf(key.source()),
               fmt::format("unknown key {} in [[relay.credentials]]{}", displayKey(name),
                           near ? fmt::format("; did you mean '{}'?", *near)
                                : std::string("; an entry has nodes, psk_identity and psk_key_file")));
      complete = false;
    }
  }
  if (!complete) return;  // a "needs ..." below would only repeat the typo
  for (const std::string_view key : kKeys) {
    if (!table.contains(key)) {
      ctx.fail(entry.where, fmt::format("[[relay.credentials]] needs {} (an entry has nodes = [\"sensor-*\"], "
                                        "psk_identity and psk_key_file)",
                                        key));
      return;
    }
  }
  ctx.config.relay.credentials.push_back(std::move(entry));
}

}  // namespace

void applyNodeCredentials(Context& ctx, const toml::node& value) {
  if (value.is_table()) {
    ctx.fail(value, "write [[relay.credentials]] (double brackets): one table per credential");
    return;
  }
  const auto* array = value.as_array();
  if (array == nullptr) {
    ctx.fail(value, fmt::format("[relay] credentials must be [[relay.credentials]] tables, not {}", describeType(value)));
    return;
  }
  for (const auto& element : *array) {
    if (const auto* table = element.as_table()) {
      readEntry(ctx, *table);
    } else {
      ctx.fail(element, fmt::format("[[relay.credentials]] entries must be tables, not {}", describeType(element)));
    }
  }
}

}  // namespace coap_edge::config::detail
