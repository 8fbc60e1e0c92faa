// [groups] and [[acl]]: identity patterns and rules are compiled by the policy part as they are
// read, so a bad pattern is reported at its own line and, for strings written plainly, at the
// column of the offending character. The Policy is assembled at the end, once every group (which
// may come after the entries that name it) is known.
//
//   [groups]
//   sensors = ["sensor-*", "dev-1"]        # identities or `*` globs
//   [[acl]]
//   identity = "upstream"                   # an identity or a glob; or: group = "sensors"
//   allow = ["GET /nodes/**", "PUT /nodes/*/actuators/**"]

#include "config/detail.h"

#include <fmt/format.h>

#include <algorithm>
#include <array>

namespace coap_edge::config::detail {
namespace {

constexpr std::array<std::string_view, 3> kAclKeys{"identity", "group", "allow"};
constexpr std::size_t kMaxGroupName = 64;

bool validGroupName(std::string_view name) {
  return !name.empty() && name.size() <= kMaxGroupName && std::all_of(name.begin(), name.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' || c == '_' ||
           c == '-';
  });
}

// Reports a compile error inside the string `node`: at its exact column when the string is
// written plainly, else at the string with the character number added.
void failInString(Context& ctx, const toml::node& node, const policy::CompileError& error, std::string prefix) {
  const auto* text = node.as_string();
  if (text != nullptr && text->get().empty()) {
    ctx.fail(node, fmt::format("{}: {}", prefix, error.message));
    return;
  }
  if (const auto at = positionInString(ctx, node, error.offset)) {
    ctx.fail(*at, fmt::format("{}: {}", prefix, error.message));
  } else {
    ctx.fail(node, fmt::format("{}: {} (at character {})", prefix, error.message, error.offset + 1));
  }
}

}  // namespace

std::optional<policy::IdentityPattern> readIdentityPattern(Context& ctx, const toml::node& node,
                                                           std::string_view what) {
  const auto* value = node.as_string();
  if (value == nullptr) {
    ctx.fail(node, fmt::format(R"({} must be a string like "dev-1" or "sensor-*", not {})", what, describeType(node)));
    return std::nullopt;
  }
  auto compiled = policy::compileIdentityPattern(value->get());
  if (!compiled.ok()) {
    failInString(ctx, node, compiled.error, fmt::format("{} {}", what, quoteText(value->get())));
    return std::nullopt;
  }
  return std::move(compiled.value);
}

namespace {

void readAllow(Context& ctx, const toml::node& node, AclDraft& draft) {
  const auto* array = node.as_array();
  if (array == nullptr) {
    ctx.fail(node, fmt::format(R"([[acl]] allow must be an array of rules like ["GET /nodes/**"], not {})",
                               describeType(node)));
    return;
  }
  if (array->empty()) {
    ctx.fail(node, R"([[acl]] allow is empty, so the entry grants nothing; add rules like "GET /status" )"
                   "or remove the entry");
    return;
  }
  for (const auto& element : *array) {
    const auto* text = element.as_string();
    if (text == nullptr) {
      ctx.fail(element, fmt::format(R"([[acl]] allow entries must be strings like "GET /nodes/**", not {})",
                                    describeType(element)));
      continue;
    }
    auto rule = policy::compileRule(text->get());
    if (!rule.ok()) {
      failInString(ctx, element, rule.error, fmt::format("[[acl]] allow {}", quoteText(text->get())));
      continue;
    }
    draft.allow.push_back(std::move(*rule.value));
  }
}

void readAclEntry(Context& ctx, const toml::table& table) {
  AclDraft draft;
  draft.where = positionOf(table.source());
  bool unknown_key = false;  // then a "needs ..." below would only repeat the typo
  for (const auto& [key, value] : table) {
    const std::string_view name = key.str();
    if (name == "identity") {
      draft.identity = readIdentityPattern(ctx, value, "[[acl]] identity");
      draft.identity_where = positionOf(value.source());
    } else if (name == "group") {
      if (auto group = readString(ctx, value, "[[acl]] group", "(a name from [groups])")) {
        draft.group = Located<std::string>{std::move(*group), positionOf(value.source())};
      }
    } else if (name == "allow") {
      readAllow(ctx, value, draft);
    } else {
      std::string hint;
      if (const auto near = closestMatch(name, kAclKeys)) {
        hint = fmt::format("; did you mean '{}'?", *near);
      } else if (name == "deny") {
        hint = "; rules only allow: everything they do not allow is denied";
      } else {
        hint = "; an [[acl]] entry has identity or group, and allow";
      }
      ctx.fail(positionOf(key.source()), fmt::format("unknown key {} in [[acl]]{}", displayKey(name), hint));
      unknown_key = true;
    }
  }
  if (unknown_key) return;
  const auto* identity = table.get("identity");
  const auto* group = table.get("group");
  if (identity == nullptr && group == nullptr) {
    ctx.fail(draft.where, R"([[acl]] needs identity = "..." (an identity, or a glob like "sensor-*") )"
                          R"(or group = "..." (a list in [groups]))");
  } else if (identity != nullptr && group != nullptr) {
    ctx.fail(*group, "[[acl]] takes identity or group, not both; write two [[acl]] entries");
  }
  if (!table.contains("allow")) {
    ctx.fail(draft.where, R"([[acl]] needs allow = ["METHOD /path", ...], e.g. allow = ["GET /status"])");
  }
  ctx.acl.push_back(std::move(draft));
}

}  // namespace

std::string groupHint(const Context& ctx, std::string_view name) {
  if (ctx.groups.empty()) return fmt::format(R"(; define it: [groups] {} = ["dev-1", "sensor-*"])", displayName(name));
  std::vector<std::string_view> names;
  for (const auto& group : ctx.groups) names.push_back(group.name);
  if (const auto near = closestMatch(name, names)) return fmt::format("; did you mean \"{}\"?", *near);
  return {};
}

const GroupDraft* findGroup(const Context& ctx, std::string_view name) {
  const auto it = std::find_if(ctx.groups.begin(), ctx.groups.end(),
                               [&](const GroupDraft& g) { return g.name == name; });
  return it == ctx.groups.end() ? nullptr : &*it;
}

std::optional<Position> positionInString(const Context& ctx, const toml::node& node, std::size_t offset) {
  const auto* value = node.as_string();
  const Position start = positionOf(node.source());
  if (value == nullptr || start.line == 0 || start.column == 0) return std::nullopt;
  std::size_t line_start = 0;
  for (std::uint32_t line = 1; line < start.line; ++line) {
    const std::size_t newline = ctx.text.find('\n', line_start);
    if (newline == std::string_view::npos) return std::nullopt;
    line_start = newline + 1;
  }
  const std::string& content = value->get();
  const std::size_t quote = line_start + start.column - 1;
  const std::size_t close = quote + 1 + content.size();
  if (offset > content.size() || close >= ctx.text.size()) return std::nullopt;
  // toml++ counts columns in characters: they are bytes only on ASCII text.
  const std::string_view line = ctx.text.substr(line_start, close + 1 - line_start);
  if (std::any_of(line.begin(), line.end(), [](char c) { return static_cast<unsigned char>(c) >= 0x80; })) {
    return std::nullopt;
  }
  const char q = ctx.text[quote];
  if ((q != '"' && q != '\'') || ctx.text[close] != q || ctx.text.substr(quote + 1, content.size()) != content) {
    return std::nullopt;  // escapes or a multi-line string: the bytes in the file differ
  }
  return Position{start.line, static_cast<std::uint32_t>(start.column + 1 + offset)};
}

void applyAcl(Context& ctx, const toml::key& key, const toml::node& value) {
  if (value.is_table()) {
    ctx.fail(sectionPosition(key, value), "write [[acl]] (double brackets): one [[acl]] table per entry");
    return;
  }
  const auto* array = value.as_array();
  if (array == nullptr) {
    ctx.fail(value, fmt::format("acl must be [[acl]] tables, not {}", describeType(value)));
    return;
  }
  for (const auto& element : *array) {
    if (const auto* table = element.as_table()) {
      readAclEntry(ctx, *table);
    } else {
      ctx.fail(element, fmt::format(R"(acl entries must be tables like {{ identity = "dev-1", )"
                                    R"(allow = ["GET /status"] }}, not {})",
                                    describeType(element)));
    }
  }
}

void applyGroups(Context& ctx, const toml::key& key, const toml::node& value) {
  const auto* table = value.as_table();
  if (table == nullptr) {
    ctx.fail(value, fmt::format(R"(groups must be a section ([groups]) of lists like sensors = ["sensor-*"], not {})",
                                describeType(value)));
    return;
  }
  (void)key;
  for (const auto& [name_key, members] : *table) {
    const std::string_view name = name_key.str();
    const Position where = positionOf(name_key.source());
    if (members.is_table() && !members.as_table()->is_inline()) {
      ctx.fail(sectionPosition(name_key, members),
               fmt::format(R"(unknown section [groups.{}]; a group is a list: {} = ["dev-1", "sensor-*"])",
                           displayName(name), displayName(name)));
      continue;
    }
    if (!validGroupName(name)) {
      ctx.fail(where, fmt::format("group name {} must be 1 to {} characters from A-Z, a-z, 0-9, '.', '_' and '-'",
                                  quoteText(name), kMaxGroupName));
      continue;
    }
    GroupDraft group{std::string(name), where, {}};
    if (const auto* array = members.as_array()) {
      for (const auto& member : *array) {
        const std::string what = fmt::format("[groups] {} member", name);
        if (auto pattern = readIdentityPattern(ctx, member, what)) group.members.push_back(std::move(*pattern));
      }
    } else {
      ctx.fail(members, fmt::format(R"([groups] {} must be a list of identities like ["dev-1", "sensor-*"], not {})",
                                    name, describeType(members)));
    }
    ctx.groups.push_back(std::move(group));
  }
}

void finishAcl(Context& ctx) {
  std::vector<policy::Entry> entries;
  for (AclDraft& draft : ctx.acl) {
    policy::Entry entry;
    if (draft.group) {
      const std::string& name = draft.group->value;
      const GroupDraft* group = findGroup(ctx, name);
      if (group == nullptr) {
        ctx.fail(draft.group->where, fmt::format("[[acl]] group {} is not defined in [groups]{}", quoteText(name),
                                                 groupHint(ctx, name)));
        continue;
      }
      entry.label = fmt::format("group \"{}\"", name);
      entry.who = group->members;
    } else if (draft.identity) {
      const std::string& text = draft.identity->text();
      // "@name" reads like a group reference in other tools; here it would silently be an identity.
      if (text.size() > 1 && text.front() == '@' && findGroup(ctx, std::string_view(text).substr(1)) != nullptr) {
        ctx.fail(draft.identity_where,
                 fmt::format("[[acl]] identity {} names an identity, not a group; write group = \"{}\"",
                                          quoteText(text), text.substr(1)));
        continue;
      }
      entry.label = fmt::format("identity \"{}\"", text);
      entry.who.push_back(*draft.identity);
    } else {
      continue;  // already reported
    }
    entry.allow = std::move(draft.allow);
    entries.push_back(std::move(entry));
  }
  ctx.config.acl = policy::Policy(std::move(entries));
}

}  // namespace coap_edge::config::detail
