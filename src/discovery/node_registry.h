#pragma once
// The node registry (DESIGN.md "discovery/"): one record per downstream node, merged from three
// discovery sources — the multicast prober (GET /.well-known/core to All-CoAP-Nodes), the Avahi
// browser (DNS-SD _coap._udp / _coaps._udp) and the Resource Directory (RFC 9176). /nodes serves
// it, the relay follows its events, /status reports its counters. Pure logic: no I/O, no clock
// of its own (every call takes `now`), one thread.
//
// Model. A source reports *sightings*; a sighting lives until its ttl runs out or its source
// withdraws it. A sighting is identified by its source and:
//   - multicast, or any sighting without a name: its address (host + port);
//   - dns_sd: the instance name, interface and address family (Avahi resolves each instance
//     once per interface and protocol), so a new address for the same instance replaces the old;
//   - rd: the endpoint name (a registration has one base address; re-registering replaces it).
// Two sightings belong to the same node when they share an address (host + port; the scheme
// does not matter) or come from the same source with the same non-empty name. A node is exactly
// a connected group of live sightings under that relation: a sighting that links two nodes
// merges them (multicast and DNS-SD seeing 192.0.2.5:5683 are one node with both sources; the
// IPv4 and IPv6 resolutions of one mDNS instance are one node with two addresses), and when the
// link goes (expiry, withdrawal, a changed address) the node splits again. Names are compared
// within one source only: an RD ep and an mDNS instance with the same text are not assumed to be
// the same device (mDNS names are free text and collide); a shared address still merges them.
//
// Node ids are URL path segments for /nodes/{id}: [a-z0-9._-], at most kMaxNodeIdLength bytes,
// never "." or "..", unique ("-2", "-3", ... on a clash). The id comes from the node's primary
// sighting: the RD ep if there is one, else the mDNS instance name, else the address
// ("192-0-2-5-5683", "fe80--1-eth0-5683"); see node_id.h. Ties between sightings of the same
// rank go to the one seen first, so a second name does not rename a node.
//
// Decision: the id FOLLOWS the best name. A node first seen by multicast as "192-0-2-5-5683"
// becomes "lamp" when mDNS names it; subscribers see gone("192-0-2-5-5683") then
// appeared("lamp"). A /nodes/{id} URL must stay truthful — an address-derived id would keep a
// meaningless name forever, and the name is what users (and the upstream RD) look nodes up by.
// The cost is one rename per node shortly after start-up; renames back happen only when the
// naming source goes away, which is a real change too. While the base name stays the same, the
// id (with its suffix) stays the same.
//
// Resources: the most recently reported non-empty list of a sighting whose resources are known
// wins, except that a live RD registration's non-empty list beats every probe (the node chose
// what to register). A renewal with resources_known = false, or with a known but empty list,
// keeps what that sighting had.
//
// Events: appeared / changed / gone per id, computed after each call by comparing the records
// before and after it, so each is emitted exactly once, `changed` only when addresses, sources,
// resources or the name changed (never for last_seen/expires alone), gone before appeared before
// changed. Subscribers run after the registry is consistent, get a copy of the record, may read
// the registry and may even call observe()/withdraw()/expire() (those events are queued and
// delivered after the current ones). A subscriber that throws is caught and counted
// (Stats::subscriber_errors); the others still run.
//
// Bounds: max_nodes (a sighting that would make a new node is refused and counted; existing nodes
// are still updated), max_sightings_per_node, and per reported list max_resources_per_node links
// and max_resource_bytes_per_node estimated bytes (truncated and counted). Hosts, names and
// interfaces longer than the kMax* constants are refused. memory_bytes estimates what the
// registry holds from string sizes and element counts. Every operation is O(total sightings),
// which at max_nodes = 1024 is a few thousand short comparisons.

#include "discovery/link_format.h"

#include <array>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace coap_edge::discovery {

using Clock = std::chrono::steady_clock;

/// Where a sighting comes from; values are bits of NodeRecord::sources.
enum class Source : std::uint8_t { multicast = 1, dns_sd = 2, rd = 4 };
inline constexpr std::array<Source, 3> kAllSources{Source::multicast, Source::dns_sd, Source::rd};

/// "multicast", "dns-sd", "rd" (the words of the src="..." attribute of /nodes).
[[nodiscard]] std::string_view sourceName(Source source) noexcept;
/// 0, 1, 2: the index into Stats::by_source.
[[nodiscard]] std::size_t sourceIndex(Source source) noexcept;

struct NodeAddress {
  std::string host;        ///< numeric IP, no brackets; IPv6 link-local keeps "%ifname"
  std::uint16_t port = 0;
  bool secure = false;     ///< coaps (DTLS)

  friend bool operator==(const NodeAddress&, const NodeAddress&) = default;
};

/// "coap://192.0.2.5:5683", "coaps://[fe80::1%25eth0]:5684" (RFC 6874 zone encoding).
[[nodiscard]] std::string nodeUri(const NodeAddress& address);

/// One source saw a node.
struct Sighting {
  Source source = Source::multicast;
  NodeAddress address;
  std::string name;              ///< mDNS instance name or RD ep; "" for multicast
  std::string interface;         ///< where it was seen ("eth0"); may be ""
  std::vector<Link> resources;   ///< from /.well-known/core or the RD payload
  bool resources_known = false;  ///< false: not fetched (yet); the sighting's previous list stays
  std::chrono::seconds ttl{0};   ///< valid this long from `now` unless renewed (clamped to kMaxTtl)
};

struct NodeRecord {
  std::string id;                     ///< /nodes/{id}
  std::string name;                   ///< RD ep or mDNS instance name of the primary sighting; "" if none
  std::vector<NodeAddress> addresses; ///< union of the live sightings'; secure first, then by host, port
  unsigned sources = 0;               ///< bitmask of Source
  std::vector<Link> resources;
  Clock::time_point first_seen{};
  Clock::time_point last_seen{};      ///< latest observe() of any of its sightings
  Clock::time_point expires{};        ///< when its last sighting runs out, unless renewed
  bool secure = false;                ///< reachable over coaps (some address is secure)
  std::string interface;              ///< interface of the primary sighting (or any, if it has none)

  [[nodiscard]] bool has(Source source) const noexcept {
    return (sources & static_cast<unsigned>(source)) != 0;
  }
};

enum class NodeEvent : std::uint8_t { appeared, changed, gone };

struct RegistryLimits {
  std::size_t max_nodes = 1024;
  std::size_t max_sightings_per_node = 16;
  std::size_t max_resources_per_node = 256;           ///< links kept from one report
  std::size_t max_resource_bytes_per_node = 32 * 1024;  ///< estimated bytes kept from one report
};

inline constexpr std::size_t kMaxHostLength = 64;       ///< "ffff:...:ffff%" + IFNAMSIZ and then some
inline constexpr std::size_t kMaxNameLength = 255;      ///< an mDNS instance label is <= 63, an RD ep <= 63
inline constexpr std::size_t kMaxInterfaceLength = 64;
inline constexpr std::chrono::seconds kMaxTtl{400L * 24 * 3600};  ///< > RFC 9176's 2^25 s lifetime

class NodeRegistry {
 public:
  using Subscriber = std::function<void(NodeEvent, const NodeRecord&)>;

  struct Stats {
    std::size_t nodes = 0;
    std::array<std::size_t, 3> by_source{};  ///< nodes seen by multicast, dns_sd, rd (sourceIndex)
    std::size_t sightings = 0;
    std::size_t memory_bytes = 0;            ///< estimate
    std::uint64_t appeared = 0;
    std::uint64_t gone = 0;
    std::uint64_t refused_full = 0;          ///< new node refused: max_nodes reached
    std::uint64_t refused_sightings = 0;     ///< sighting refused: its node has max_sightings_per_node
    std::uint64_t refused_invalid = 0;       ///< empty host, port 0, or a field over its kMax* length
    std::uint64_t resources_truncated = 0;   ///< reported lists cut to the per-node limits
    std::uint64_t subscriber_errors = 0;     ///< exceptions thrown by subscribers
  };

  explicit NodeRegistry(RegistryLimits limits = {});

  /// Records or renews a sighting. Returns false (and counts why) when it is refused: invalid,
  /// its node would be new and the table is full, or its node has too many sightings.
  bool observe(const Sighting& sighting, Clock::time_point now);

  /// The source says `name` is gone (mDNS ItemRemove, RD de-registration): drops that source's
  /// sightings with this name, only those on `interface` unless it is "". Returns how many.
  std::size_t withdraw(Source source, std::string_view name, std::string_view interface,
                       Clock::time_point now);
  /// Drops that source's sightings at `address` (host + port). Returns how many.
  std::size_t withdraw(Source source, const NodeAddress& address, Clock::time_point now);
  /// Drops every sighting of `source` (Avahi disconnected, a source disabled on reload).
  std::size_t withdrawAll(Source source, Clock::time_point now);

  /// Drops the sightings whose ttl ran out at `now`; nodes left with none are gone. Returns how
  /// many sightings were dropped.
  std::size_t expire(Clock::time_point now);
  /// When the next sighting runs out (arm a timer for it and call expire()); nullopt if empty.
  [[nodiscard]] std::optional<Clock::time_point> nextExpiry() const;

  [[nodiscard]] const NodeRecord* find(std::string_view id) const;
  /// The node holding this host + port (secure is not compared), or nullptr.
  [[nodiscard]] const NodeRecord* findByAddress(const NodeAddress& address) const;
  /// Every node, ordered by id. Pointers stay valid until the next call that changes the registry.
  [[nodiscard]] std::vector<const NodeRecord*> nodes() const;

  /// The body of GET /nodes: one `</nodes/ID>;rt="core.node";ep="...";src="multicast dns-sd";
  /// base="coap://...";addr="coap://... coap://...";secure` link per node (addr only with more
  /// than one address), ordered by id. `filter_query` is the request's
  /// query ("rt=core.node", "ep=lamp*&src=rd", ...): every parameter must match, a value ending
  /// in '*' is a prefix, `href` matches the link target, rt/if/src match any of their words, a
  /// parameter without '=' asks for the attribute to be present.
  [[nodiscard]] std::string linkFormat(std::string_view filter_query = {}) const;
  /// The links linkFormat() serializes (the filter applied).
  [[nodiscard]] std::vector<Link> links(std::string_view filter_query = {}) const;

  /// Adds a subscriber (relay, metrics, logs). Subscribers are called in the order added.
  void subscribe(Subscriber subscriber);

  [[nodiscard]] Stats stats() const;
  [[nodiscard]] const RegistryLimits& limits() const noexcept { return limits_; }

 private:
  struct StoredSighting {
    Source source = Source::multicast;
    NodeAddress address;
    std::string name;
    std::string interface;
    std::vector<Link> resources;
    bool resources_known = false;
    Clock::time_point first_seen{};
    Clock::time_point last_seen{};
    Clock::time_point resources_at{};  ///< when `resources` was last reported
    Clock::time_point expires{};
    std::size_t memory_bytes = 0;      ///< estimate of the strings and links above
  };
  struct Node {
    std::string id_base;  ///< the sanitized name the id was made from (id without a suffix)
    std::vector<StoredSighting> sightings;
    NodeRecord record;
    std::size_t memory_bytes = 0;
  };
  using NodeMap = std::map<std::string, Node, std::less<>>;
  /// The records before the current call, by id, and the ids (re)made during it.
  struct Change {
    std::map<std::string, NodeRecord, std::less<>> before;
    std::vector<std::string> after;
  };
  [[nodiscard]] bool valid(const Sighting& sighting) const noexcept;
  StoredSighting store(const Sighting& sighting, Clock::time_point now);
  void updateResources(StoredSighting& stored, const Sighting& sighting, Clock::time_point now);
  std::vector<Link> boundedResources(const std::vector<Link>& links);
  /// Takes `ids` out of the map (recording their state for the diff) and returns their sightings
  /// tagged with the index of the node they came from.
  std::vector<std::pair<StoredSighting, std::size_t>> extract(const std::vector<std::string>& ids,
                                                              std::vector<Node>& taken, Change& change);
  /// Groups `pool` into connected nodes and puts them back; returns false if the sighting at
  /// `must_keep` (index into pool) had to be dropped because the table was full.
  bool regroup(std::vector<std::pair<StoredSighting, std::size_t>> pool, const std::vector<Node>& taken,
               Change& change, std::optional<std::size_t> must_keep = std::nullopt);
  void finish(Node& node);
  std::string allocateId(const std::string& base) const;
  /// Drops the sightings `drop` selects (and regroups what is left); returns how many.
  std::size_t dropSightings(const std::function<bool(const StoredSighting&)>& drop);
  void commit(Change& change);
  void dispatch();

  RegistryLimits limits_;
  NodeMap nodes_;  ///< by id
  std::size_t memory_bytes_ = 0;
  std::deque<Subscriber> subscribers_;  ///< a deque: subscribe() from a subscriber keeps references
  std::deque<std::pair<NodeEvent, NodeRecord>> pending_;
  bool dispatching_ = false;
  Stats counters_;  ///< the monotonic counters; the gauges are computed in stats()
};

}  // namespace coap_edge::discovery
