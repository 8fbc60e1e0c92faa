#include "discovery/node_registry.h"

#include "discovery/node_id.h"

#include <algorithm>
#include <numeric>
#include <tuple>

namespace coap_edge::discovery {
namespace {

constexpr std::size_t kNone = static_cast<std::size_t>(-1);

std::size_t linkBytes(const Link& link) {
  std::size_t bytes = sizeof(Link) + link.target.size();
  for (const auto& a : link.attributes) {
    bytes += sizeof(LinkAttribute) + a.name.size() + (a.value ? a.value->size() : 0);
  }
  return bytes;
}

std::size_t linksBytes(const std::vector<Link>& links) {
  return std::accumulate(links.begin(), links.end(), std::size_t{0},
                         [](std::size_t sum, const Link& l) { return sum + linkBytes(l); });
}

/// Hosts come from inet_ntop / avahi_address_snprint (lower-case already); a caller passing
/// "FE80::1%eth0" must still meet the same node. The zone (interface name) keeps its case.
std::string normalHost(std::string_view host) {
  std::string h(host);
  const auto zone = h.find('%');
  std::transform(h.begin(), zone == std::string::npos ? h.end() : h.begin() + static_cast<std::ptrdiff_t>(zone),
                 h.begin(), [](char c) { return c >= 'A' && c <= 'Z' ? static_cast<char>(c - 'A' + 'a') : c; });
  return h;
}

bool isIpv6(std::string_view host) noexcept { return host.find(':') != std::string_view::npos; }

bool sameEndpoint(const NodeAddress& a, const NodeAddress& b) noexcept {
  return a.port == b.port && a.host == b.host;
}

/// Same sighting (renewal) — see the keys in node_registry.h. Works on Sighting and on the stored form.
template <typename A, typename B>
bool sameKey(const A& a, const B& b) {
  if (a.source != b.source) return false;
  if (a.source == Source::multicast || a.name.empty() || b.name.empty()) {
    return a.source == Source::multicast ? sameEndpoint(a.address, b.address)
                                         : a.name.empty() && b.name.empty() && sameEndpoint(a.address, b.address);
  }
  if (a.name != b.name) return false;
  if (a.source == Source::rd) return true;
  return a.interface == b.interface && isIpv6(a.address.host) == isIpv6(b.address.host);
}

/// Evidence that two sightings are the same node.
template <typename A, typename B>
bool linked(const A& a, const B& b) {
  return sameEndpoint(a.address, b.address) || (a.source == b.source && !a.name.empty() && a.name == b.name);
}

/// Which sighting names the node: a named RD registration, then a named mDNS instance, then any.
int rank(Source source, const std::string& name) noexcept {
  if (name.empty()) return 1;
  if (source == Source::rd) return 3;
  return source == Source::dns_sd ? 2 : 1;
}

/// Sorts the primary sighting first; later keys only make the order total (deterministic ids).
template <typename S>
std::tuple<int, Clock::time_point, const std::string&, const std::string&, std::uint16_t, int> primaryKey(
    const S& s) {
  return {-rank(s.source, s.name), s.first_seen, s.name, s.address.host, s.address.port, static_cast<int>(s.source)};
}

bool sameContent(const NodeRecord& a, const NodeRecord& b) {
  return a.addresses == b.addresses && a.sources == b.sources && a.resources == b.resources && a.name == b.name;
}

}  // namespace

std::string_view sourceName(Source source) noexcept {
  switch (source) {
    case Source::multicast: return "multicast";
    case Source::dns_sd: return "dns-sd";
    case Source::rd: return "rd";
  }
  return "unknown";
}

std::size_t sourceIndex(Source source) noexcept {
  switch (source) {
    case Source::multicast: return 0;
    case Source::dns_sd: return 1;
    case Source::rd: return 2;
  }
  return 0;
}

std::string nodeUri(const NodeAddress& address) {
  std::string uri = address.secure ? "coaps://" : "coap://";
  if (isIpv6(address.host)) {
    uri += '[';
    for (const char c : address.host) {
      if (c == '%') uri += "%25";  // RFC 6874: the zone delimiter is percent-encoded in a URI
      else uri += c;
    }
    uri += ']';
  } else {
    uri += address.host;
  }
  return uri + ":" + std::to_string(address.port);
}

NodeRegistry::NodeRegistry(RegistryLimits limits) : limits_(limits) {
  limits_.max_nodes = std::max<std::size_t>(limits_.max_nodes, 1);
  limits_.max_sightings_per_node = std::max<std::size_t>(limits_.max_sightings_per_node, 1);
}

bool NodeRegistry::valid(const Sighting& s) const noexcept {
  const bool known_source = s.source == Source::multicast || s.source == Source::dns_sd || s.source == Source::rd;
  return known_source && !s.address.host.empty() && s.address.host.size() <= kMaxHostLength && s.address.port != 0 &&
         s.name.size() <= kMaxNameLength && s.interface.size() <= kMaxInterfaceLength;
}

std::vector<Link> NodeRegistry::boundedResources(const std::vector<Link>& links) {
  std::vector<Link> kept;
  std::size_t bytes = 0;
  for (const auto& link : links) {
    const std::size_t b = linkBytes(link);
    if (kept.size() == limits_.max_resources_per_node || bytes + b > limits_.max_resource_bytes_per_node) {
      ++counters_.resources_truncated;
      break;
    }
    bytes += b;
    kept.push_back(link);
  }
  return kept;
}

NodeRegistry::StoredSighting NodeRegistry::store(const Sighting& s, Clock::time_point now) {
  StoredSighting st;
  st.source = s.source;
  st.address = {normalHost(s.address.host), s.address.port, s.address.secure};
  st.name = s.name;
  st.interface = s.interface;
  st.first_seen = now;
  updateResources(st, s, now);
  return st;
}

void NodeRegistry::updateResources(StoredSighting& st, const Sighting& s, Clock::time_point now) {
  st.address = {normalHost(s.address.host), s.address.port, s.address.secure};
  st.interface = s.interface;
  st.last_seen = now;
  st.expires = now + std::clamp(s.ttl, std::chrono::seconds{0}, kMaxTtl);
  // An empty answer does not erase what this sighting knew: only non-empty lists win (a probe
  // that got an empty or failed /.well-known/core must not blank a node in /nodes).
  if (s.resources_known && (!s.resources.empty() || !st.resources_known)) {
    st.resources = boundedResources(s.resources);
    st.resources_known = true;
    st.resources_at = now;
  }
  st.memory_bytes = sizeof(StoredSighting) + st.address.host.size() + st.name.size() + st.interface.size() +
                    linksBytes(st.resources);
}

bool NodeRegistry::observe(const Sighting& sighting, Clock::time_point now) {
  if (!valid(sighting)) {
    ++counters_.refused_invalid;
    return false;
  }
  Sighting s_norm;  // only the fields the matching reads
  s_norm.source = sighting.source;
  s_norm.address = {normalHost(sighting.address.host), sighting.address.port, sighting.address.secure};
  s_norm.name = sighting.name;
  s_norm.interface = sighting.interface;

  std::vector<std::string> ids;  // the nodes this sighting renews or links
  bool renewal = false;
  std::size_t sightings = 0;
  for (const auto& [id, node] : nodes_) {
    bool involved = false;
    for (const auto& st : node.sightings) {
      if (sameKey(st, s_norm)) renewal = involved = true;
      else if (linked(st, s_norm)) involved = true;
    }
    if (involved) {
      ids.push_back(id);
      sightings += node.sightings.size();
    }
  }
  if (ids.empty() && nodes_.size() >= limits_.max_nodes) {
    ++counters_.refused_full;
    return false;
  }
  if (sightings + (renewal ? 0 : 1) > limits_.max_sightings_per_node) {
    ++counters_.refused_sightings;
    return false;
  }

  Change change;
  std::vector<Node> taken;
  auto pool = extract(ids, taken, change);
  std::optional<std::size_t> index;
  for (std::size_t i = 0; i < pool.size() && !index; ++i) {
    if (!sameKey(pool[i].first, s_norm)) continue;
    updateResources(pool[i].first, sighting, now);
    // A multicast sighting is keyed by its address; its name (the responder's link-layer
    // address) may only become known on a later answer, and then links it to its other addresses.
    if (sighting.source == Source::multicast && !sighting.name.empty()) pool[i].first.name = sighting.name;
    index = i;
  }
  if (!index) {
    pool.emplace_back(store(sighting, now), kNone);
    index = pool.size() - 1;
  }
  const bool kept = regroup(std::move(pool), taken, change, index);
  commit(change);
  return kept;
}

std::vector<std::pair<NodeRegistry::StoredSighting, std::size_t>> NodeRegistry::extract(
    const std::vector<std::string>& ids, std::vector<Node>& taken, Change& change) {
  std::vector<std::pair<StoredSighting, std::size_t>> pool;
  for (const auto& id : ids) {
    auto handle = nodes_.extract(id);
    if (handle.empty()) continue;
    Node& node = handle.mapped();
    memory_bytes_ -= node.memory_bytes;
    // A node (re)made earlier in this call has no "before" of its own: it did not exist then.
    const auto made = std::find(change.after.begin(), change.after.end(), id);
    if (made != change.after.end()) change.after.erase(made);
    else change.before.try_emplace(id, node.record);
    const std::size_t owner = taken.size();
    for (auto& st : node.sightings) pool.emplace_back(std::move(st), owner);
    node.sightings.clear();
    taken.push_back(std::move(node));
  }
  return pool;
}

std::string NodeRegistry::allocateId(const std::string& base) const {
  // At most nodes_.size() ids are taken, so one of the first nodes_.size() + 1 candidates is free.
  for (std::size_t n = 1; n <= nodes_.size() + 1; ++n) {
    std::string id = nodeIdWithSuffix(base, n);
    if (!nodes_.contains(id)) return id;
  }
  return nodeIdWithSuffix(base, nodes_.size() + 2);  // unreachable: pigeonhole above
}

bool NodeRegistry::regroup(std::vector<std::pair<StoredSighting, std::size_t>> pool, const std::vector<Node>& taken,
                           Change& change, std::optional<std::size_t> must_keep) {
  // Connected components of the "linked" relation (union-find; pools hold a few sightings).
  std::vector<std::size_t> parent(pool.size());
  std::iota(parent.begin(), parent.end(), std::size_t{0});
  const auto root = [&parent](std::size_t i) {
    while (parent[i] != i) i = parent[i] = parent[parent[i]];
    return i;
  };
  for (std::size_t i = 0; i < pool.size(); ++i) {
    for (std::size_t j = i + 1; j < pool.size(); ++j) {
      if (linked(pool[i].first, pool[j].first)) parent[root(i)] = root(j);
    }
  }
  std::map<std::size_t, std::vector<std::size_t>> members;  // root -> pool indexes
  for (std::size_t i = 0; i < pool.size(); ++i) members[root(i)].push_back(i);
  std::vector<std::vector<std::size_t>> groups;
  for (auto& [r, m] : members) {
    std::sort(m.begin(), m.end(),
              [&pool](std::size_t a, std::size_t b) { return primaryKey(pool[a].first) < primaryKey(pool[b].first); });
    groups.push_back(std::move(m));
  }
  // The best-named groups choose their ids first (and keep them when the table overflows).
  std::sort(groups.begin(), groups.end(), [&pool](const auto& a, const auto& b) {
    return primaryKey(pool[a.front()].first) < primaryKey(pool[b.front()].first);
  });

  bool kept = true;
  for (const auto& group : groups) {
    const bool holds_kept = must_keep && std::find(group.begin(), group.end(), *must_keep) != group.end();
    if (nodes_.size() >= limits_.max_nodes) {  // only a split can get here: refuse the rest
      ++counters_.refused_full;
      if (holds_kept) kept = false;
      continue;
    }
    Node node;
    const StoredSighting& primary = pool[group.front()].first;
    std::string base;
    if (rank(primary.source, primary.name) > 1) base = nodeIdFromName(primary.name);
    if (base.empty()) base = nodeIdFromAddress(primary.address);
    // Keep the id (with its suffix) of a node these sightings came from when the name is the same.
    std::string id;
    for (const std::size_t i : group) {
      const std::size_t owner = pool[i].second;
      if (owner == kNone || taken[owner].id_base != base || nodes_.contains(taken[owner].record.id)) continue;
      id = taken[owner].record.id;
      break;
    }
    if (id.empty()) id = allocateId(base);
    for (const std::size_t i : group) node.sightings.push_back(std::move(pool[i].first));
    node.id_base = std::move(base);
    node.record.id = id;
    finish(node);
    memory_bytes_ += node.memory_bytes;
    nodes_.emplace(id, std::move(node));
    change.after.push_back(std::move(id));
  }
  return kept;
}

void NodeRegistry::finish(Node& node) {
  // node.sightings is in primary order (regroup sorted it).
  NodeRecord& r = node.record;
  const StoredSighting& primary = node.sightings.front();
  r.name = rank(primary.source, primary.name) > 1 ? primary.name : std::string{};
  r.addresses.clear();
  r.sources = 0;
  r.first_seen = primary.first_seen;
  r.last_seen = primary.last_seen;
  r.expires = primary.expires;
  r.interface = primary.interface;
  const StoredSighting* resources = nullptr;
  std::size_t bytes = sizeof(Node) + 2 * r.id.size() + node.id_base.size() + r.name.size();
  for (const auto& st : node.sightings) {
    bytes += st.memory_bytes;
    r.addresses.push_back(st.address);
    r.sources |= static_cast<unsigned>(st.source);
    r.first_seen = std::min(r.first_seen, st.first_seen);
    r.last_seen = std::max(r.last_seen, st.last_seen);
    r.expires = std::max(r.expires, st.expires);
    if (r.interface.empty()) r.interface = st.interface;
    if (!st.resources_known || st.resources.empty()) continue;
    const auto better = [](const StoredSighting& a, const StoredSighting& b) {
      const bool a_rd = a.source == Source::rd;
      const bool b_rd = b.source == Source::rd;
      return a_rd != b_rd ? a_rd : a.resources_at > b.resources_at;
    };
    if (resources == nullptr || better(st, *resources)) resources = &st;
  }
  std::sort(r.addresses.begin(), r.addresses.end(), [](const NodeAddress& a, const NodeAddress& b) {
    return std::tie(b.secure, a.host, a.port) < std::tie(a.secure, b.host, b.port);
  });
  r.addresses.erase(std::unique(r.addresses.begin(), r.addresses.end()), r.addresses.end());
  r.secure = std::any_of(r.addresses.begin(), r.addresses.end(), [](const NodeAddress& a) { return a.secure; });
  r.resources = resources != nullptr ? resources->resources : std::vector<Link>{};
  for (const auto& a : r.addresses) bytes += sizeof(NodeAddress) + a.host.size();
  bytes += linksBytes(r.resources) + r.interface.size();
  node.memory_bytes = bytes;
}

std::size_t NodeRegistry::dropSightings(const std::function<bool(const StoredSighting&)>& drop) {
  std::vector<std::string> ids;
  for (const auto& [id, node] : nodes_) {
    if (std::any_of(node.sightings.begin(), node.sightings.end(), drop)) ids.push_back(id);
  }
  Change change;
  std::size_t dropped = 0;
  for (const auto& id : ids) {  // one node at a time: dropping sightings never links two nodes
    std::vector<Node> taken;
    auto pool = extract({id}, taken, change);
    const auto before = pool.size();
    std::erase_if(pool, [&drop](const auto& entry) { return drop(entry.first); });
    dropped += before - pool.size();
    regroup(std::move(pool), taken, change);
  }
  commit(change);
  return dropped;
}

std::size_t NodeRegistry::withdraw(Source source, std::string_view name, std::string_view interface,
                                   Clock::time_point /*now*/) {
  if (name.empty()) return 0;
  return dropSightings([&](const StoredSighting& st) {
    return st.source == source && st.name == name && (interface.empty() || st.interface == interface);
  });
}

std::size_t NodeRegistry::withdraw(Source source, const NodeAddress& address, Clock::time_point /*now*/) {
  const NodeAddress normal{normalHost(address.host), address.port, address.secure};
  return dropSightings(
      [&](const StoredSighting& st) { return st.source == source && sameEndpoint(st.address, normal); });
}

std::size_t NodeRegistry::withdrawAll(Source source, Clock::time_point /*now*/) {
  return dropSightings([source](const StoredSighting& st) { return st.source == source; });
}

std::size_t NodeRegistry::expire(Clock::time_point now) {
  return dropSightings([now](const StoredSighting& st) { return st.expires <= now; });
}

std::optional<Clock::time_point> NodeRegistry::nextExpiry() const {
  std::optional<Clock::time_point> next;
  for (const auto& [id, node] : nodes_) {
    for (const auto& st : node.sightings) {
      if (!next || st.expires < *next) next = st.expires;
    }
  }
  return next;
}

const NodeRecord* NodeRegistry::find(std::string_view id) const {
  const auto it = nodes_.find(id);
  return it == nodes_.end() ? nullptr : &it->second.record;
}

const NodeRecord* NodeRegistry::findByAddress(const NodeAddress& address) const {
  const NodeAddress normal{normalHost(address.host), address.port, address.secure};
  for (const auto& [id, node] : nodes_) {
    for (const auto& a : node.record.addresses) {
      if (sameEndpoint(a, normal)) return &node.record;
    }
  }
  return nullptr;
}

std::vector<const NodeRecord*> NodeRegistry::nodes() const {
  std::vector<const NodeRecord*> out;
  out.reserve(nodes_.size());
  for (const auto& [id, node] : nodes_) out.push_back(&node.record);
  return out;
}

void NodeRegistry::subscribe(Subscriber subscriber) {
  if (subscriber) subscribers_.push_back(std::move(subscriber));
}

NodeRegistry::Stats NodeRegistry::stats() const {
  Stats s = counters_;
  s.nodes = nodes_.size();
  s.memory_bytes = memory_bytes_;
  for (const auto& [id, node] : nodes_) {
    s.sightings += node.sightings.size();
    for (const Source src : kAllSources) {
      if (node.record.has(src)) ++s.by_source[sourceIndex(src)];
    }
  }
  return s;
}

void NodeRegistry::commit(Change& change) {
  std::sort(change.after.begin(), change.after.end());
  const auto made = [&change](const std::string& id) {
    return std::binary_search(change.after.begin(), change.after.end(), id);
  };
  for (const auto& [id, record] : change.before) {
    if (made(id)) continue;
    ++counters_.gone;
    pending_.emplace_back(NodeEvent::gone, record);
  }
  std::vector<std::pair<NodeEvent, NodeRecord>> changed;
  for (const auto& id : change.after) {
    const NodeRecord& now = nodes_.find(id)->second.record;
    const auto was = change.before.find(id);
    if (was == change.before.end()) {
      ++counters_.appeared;
      pending_.emplace_back(NodeEvent::appeared, now);
    } else if (!sameContent(was->second, now)) {
      changed.emplace_back(NodeEvent::changed, now);
    }
  }
  for (auto& c : changed) pending_.push_back(std::move(c));
  dispatch();
}

void NodeRegistry::dispatch() {
  if (dispatching_) return;  // a subscriber changed the registry: the outer loop delivers these
  dispatching_ = true;
  while (!pending_.empty()) {
    const auto [event, record] = std::move(pending_.front());
    pending_.pop_front();
    // By index: a subscriber may subscribe() another one (the deque keeps references valid).
    for (std::size_t i = 0; i < subscribers_.size(); ++i) {
      try {
        subscribers_[i](event, record);
      } catch (...) {
        ++counters_.subscriber_errors;  // the registry is already consistent; go on
      }
    }
  }
  dispatching_ = false;
}

}  // namespace coap_edge::discovery
