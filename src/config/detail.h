#pragma once
// Internal to the config part (other parts use config.h): the state of one parse, the typed
// readers that section handlers share, and the section tables. Kept out of config.h so that
// toml++ stays a private dependency of coap_edge_config.

#include "config/config.h"
#include "policy/acl.h"

#include <toml++/toml.h>

#include <chrono>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace coap_edge::config::detail {

/// A configuration file is a few KB; anything this large is the wrong file (or /dev/zero).
inline constexpr std::size_t kMaxConfigBytes = 1024 * 1024;

[[nodiscard]] Position positionOf(const toml::source_region& region);
/// Where a section starts: the table header if there is one, else the key that created it.
[[nodiscard]] Position sectionPosition(const toml::key& key, const toml::node& node);

/// An [[acl]] entry as read, before its group (which may be defined further down) is resolved.
struct AclDraft {
  Position where;  ///< the [[acl]] table
  std::optional<policy::IdentityPattern> identity;
  Position identity_where;
  std::optional<Located<std::string>> group;
  std::vector<policy::Rule> allow;
};

/// A [groups] list; `where` is its key. Kept even when a member was refused, so that entries
/// naming the group do not also report it as undefined.
struct GroupDraft {
  std::string name;
  Position where;
  std::vector<policy::IdentityPattern> members;
};

/// A [[limits.override]] as read, before its group is resolved.
struct LimitOverrideDraft {
  Position where;
  std::optional<policy::IdentityPattern> identity;
  std::optional<Located<std::string>> group;
  std::optional<policy::RateSpec> per_identity;
};

/// One parse: the configuration being filled and every problem found. All problems are kept
/// and the earliest in the file is reported, because toml++ tables iterate in key order, not
/// file order, and an operator fixes a file from the top.
struct Context {
  std::filesystem::path source;
  std::string_view text;  ///< the file's text, to point inside strings (positionInString)
  Config config;
  std::vector<Error> errors;
  std::vector<AclDraft> acl;
  std::vector<GroupDraft> groups;
  std::vector<LimitOverrideDraft> limit_overrides;

  void fail(Position where, std::string message);
  void fail(const toml::node& node, std::string message) { fail(positionOf(node.source()), std::move(message)); }
  [[nodiscard]] std::optional<Error> firstError() const;
  /// Relative paths are relative to the configuration file, not to the daemon's cwd (which
  /// systemd sets to /), lexically: nothing is looked up on disk while parsing.
  [[nodiscard]] std::filesystem::path resolve(const std::filesystem::path& path) const;
};

// ---- text helpers (values.cpp) ----

/// "an integer", "a string", ... for "must be X, not Y" messages.
[[nodiscard]] std::string_view describeType(const toml::node& node);
/// `text` in double quotes, control characters escaped and long text shortened, so a message
/// stays one readable line whatever the file contains.
[[nodiscard]] std::string quoteText(std::string_view text);
/// 'key' for bare keys, else quoteText(key).
[[nodiscard]] std::string displayKey(std::string_view key);
/// key for bare keys, else quoteText(key): for section names inside [brackets].
[[nodiscard]] std::string displayName(std::string_view name);
[[nodiscard]] std::size_t editDistance(std::string_view a, std::string_view b);
/// The candidate within edit distance 2 of `word` and at most half its own length (so "x" does
/// not suggest "ca", nor "a\nb" "acl"), if any.
[[nodiscard]] std::optional<std::string_view> closestMatch(std::string_view word,
                                                          std::span<const std::string_view> candidates);
/// "250ms", "30s", "1d": the largest unit that represents `value` exactly.
[[nodiscard]] std::string formatDuration(std::chrono::milliseconds value);
/// Numeric form used to compare addresses ("[0::1]:5684" equals "[::1]:5684").
[[nodiscard]] std::string canonicalAddress(const SocketAddress& address);

// ---- typed readers (readers.cpp): on a bad value they record an error naming `what`
// (e.g. "[agent] name") at the value's position and return nullopt. ----

[[nodiscard]] std::optional<std::string> readString(Context& ctx, const toml::node& node, std::string_view what,
                                                    std::string_view example);
[[nodiscard]] std::optional<bool> readBool(Context& ctx, const toml::node& node, std::string_view what);
[[nodiscard]] std::optional<std::int64_t> readInteger(Context& ctx, const toml::node& node, std::string_view what,
                                                      std::int64_t min, std::int64_t max);
[[nodiscard]] std::optional<std::chrono::milliseconds> readDuration(Context& ctx, const toml::node& node,
                                                                    std::string_view what,
                                                                    std::chrono::milliseconds min,
                                                                    std::chrono::milliseconds max);
[[nodiscard]] std::optional<Located<std::filesystem::path>> readPath(Context& ctx, const toml::node& node,
                                                                     std::string_view what);
[[nodiscard]] std::optional<std::vector<Located<SocketAddress>>> readAddressList(Context& ctx,
                                                                                 const toml::node& node,
                                                                                 std::string_view what);

// ---- sections (sections.cpp) ----

using KeyHandler = void (*)(Context& ctx, const toml::node& value);

struct KeySpec {
  std::string_view name;
  KeyHandler apply;
};

/// Reads a whole section whose keys are not fixed ([groups]) or that is an array of tables
/// ([[acl]]); `key` is the section's name as written.
using SectionHandler = void (*)(Context& ctx, const toml::key& key, const toml::node& value);

struct SectionSpec {
  std::string_view name;
  std::span<const KeySpec> keys;
  /// Keys DESIGN.md names that this version does not implement: rejected with a clear
  /// message rather than ignored, so that an operator does not believe they are in force.
  std::span<const std::string_view> planned;
  /// When set, the section is handed over whole instead of key by key through `keys`.
  SectionHandler whole;
};

[[nodiscard]] std::span<const SectionSpec> sections();
/// Sections DESIGN.md names that this version does not implement yet.
[[nodiscard]] std::span<const std::string_view> plannedSections();
/// Checks that need the whole [downstream] section (companions, listen defaults, overlaps).
/// `table` is null when the section is absent.
void finishDownstream(Context& ctx, const toml::table* table);
/// Checks that combine [discovery] keys (interfaces needed, leisure < interval < node_ttl).
void finishDiscovery(Context& ctx, const toml::table* table);

// ---- [relay] and [upstream] (upstream.cpp) ----

[[nodiscard]] std::span<const KeySpec> relayKeys();
[[nodiscard]] std::span<const KeySpec> upstreamKeys();
/// A DTLS identity (PSK identity, ACL identity): 1..128 printable ASCII characters without
/// space, ',' or '"'.
[[nodiscard]] std::optional<std::string> readIdentity(Context& ctx, const toml::node& value, std::string_view what);
/// [[relay.credentials]] (node_credentials.cpp).
void applyNodeCredentials(Context& ctx, const toml::node& value);
/// Checks that combine [upstream] keys (required uri, one credential, companions, backoff
/// order). `table` is null when the section is absent (then Config::upstream stays empty).
void finishUpstream(Context& ctx, const toml::table* table);

// ---- rate limits (limits.cpp) ----

/// `{ rate = 20.0, burst = 40 }` (rate > 0 per second, burst >= 1); `what` names the key.
[[nodiscard]] std::optional<policy::RateSpec> readRateSpec(Context& ctx, const toml::node& node,
                                                           std::string_view what);
void applyLimitOverrides(Context& ctx, const toml::node& value);
/// Resolves the groups named by [[limits.override]] entries into Config::limits.overrides.
void finishLimits(Context& ctx);

// ---- access control (access.cpp) ----

/// The position of byte `offset` inside the string value `node`, when the string is written
/// on one line without escapes (so its bytes are the file's); nullopt otherwise.
[[nodiscard]] std::optional<Position> positionInString(const Context& ctx, const toml::node& node,
                                                       std::size_t offset);
/// An identity pattern from a string node (errors at the offending character).
[[nodiscard]] std::optional<policy::IdentityPattern> readIdentityPattern(Context& ctx, const toml::node& node,
                                                                         std::string_view what);
/// The [groups] entry called `name`, or null.
[[nodiscard]] const GroupDraft* findGroup(const Context& ctx, std::string_view name);
/// "; did you mean ..." or "; define it: ..." for an undefined group.
[[nodiscard]] std::string groupHint(const Context& ctx, std::string_view name);
void applyAcl(Context& ctx, const toml::key& key, const toml::node& value);
void applyGroups(Context& ctx, const toml::key& key, const toml::node& value);
/// Resolves groups and builds Config::acl.
void finishAcl(Context& ctx);

}  // namespace coap_edge::config::detail
