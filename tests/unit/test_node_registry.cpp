// The node registry (discovery/node_registry.h) with a fake clock: time is whatever `now` the
// test passes. What a user of /nodes, the relay and /status would notice: which nodes exist,
// under which id, with which addresses/sources/resources, and which events say so.

#include "discovery/node_id.h"
#include "discovery/node_registry.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <map>
#include <random>
#include <set>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

namespace coap_edge::discovery {
namespace {

using std::chrono::seconds;

const Clock::time_point t0 = Clock::time_point{} + std::chrono::hours(24);
Clock::time_point at(int s) { return t0 + seconds(s); }

Link link(std::string target, std::string rt = {}) {
  Link l;
  l.target = std::move(target);
  if (!rt.empty()) l.attributes.push_back({"rt", std::move(rt), true});
  return l;
}

Sighting multicast(std::string host, std::uint16_t port = 5683, std::vector<Link> resources = {},
                   seconds ttl = seconds(180)) {
  Sighting s;
  s.source = Source::multicast;
  s.address = {std::move(host), port, false};
  s.interface = "eth0";
  s.resources_known = !resources.empty();
  s.resources = std::move(resources);
  s.ttl = ttl;
  return s;
}

Sighting mdns(std::string name, std::string host, std::uint16_t port = 5683, std::string interface = "eth0",
              seconds ttl = seconds(3600)) {
  Sighting s;
  s.source = Source::dns_sd;
  s.address = {std::move(host), port, port == 5684};
  s.name = std::move(name);
  s.interface = std::move(interface);
  s.ttl = ttl;
  return s;
}

Sighting rd(std::string ep, std::string host, std::uint16_t port, std::vector<Link> resources,
            seconds ttl = seconds(90000)) {
  Sighting s;
  s.source = Source::rd;
  s.address = {std::move(host), port, port == 5684};
  s.name = std::move(ep);
  s.resources_known = true;
  s.resources = std::move(resources);
  s.ttl = ttl;
  return s;
}

std::vector<std::string> targets(const std::vector<Link>& links) {
  std::vector<std::string> out;
  for (const auto& l : links) out.push_back(l.target);
  return out;
}

std::vector<std::string> ids(const NodeRegistry& registry) {
  std::vector<std::string> out;
  for (const auto* n : registry.nodes()) out.push_back(n->id);
  return out;
}

/// Every event as "appeared lamp", "gone 192-0-2-5-5683", "changed lamp".
struct Events {
  std::vector<std::string> log;
  std::vector<NodeRecord> records;
  explicit Events(NodeRegistry& registry) {
    registry.subscribe([this](NodeEvent e, const NodeRecord& r) {
      const char* what = e == NodeEvent::appeared ? "appeared " : e == NodeEvent::changed ? "changed " : "gone ";
      log.push_back(what + r.id);
      records.push_back(r);
    });
  }
  std::vector<std::string> take() { return std::exchange(log, {}); }
};

using Strings = std::vector<std::string>;

// --- ids -------------------------------------------------------------------------------------

TEST(NodeId, NamesBecomeLowerCasePathSegments) {
  EXPECT_EQ(nodeIdFromName("lamp"), "lamp");
  EXPECT_EQ(nodeIdFromName("Living Room Lamp"), "living-room-lamp");
  EXPECT_EQ(nodeIdFromName("Küche / Licht #2"), "k-che-licht-2");  // UTF-8 bytes, '/', '#' -> one '-'
  EXPECT_EQ(nodeIdFromName("sensor_1.local"), "sensor_1.local");
  EXPECT_EQ(nodeIdFromName("--a--b--"), "a-b");
  EXPECT_EQ(nodeIdFromName("a%2Fb?x=1"), "a-2fb-x-1");
  EXPECT_EQ(nodeIdFromName(""), "");
  EXPECT_EQ(nodeIdFromName("💡"), "");  // nothing usable: the registry falls back to the address
  EXPECT_EQ(nodeIdFromName(".."), "");  // a dot-segment would be normalised away from /nodes/..
  EXPECT_EQ(nodeIdFromName(". ."), ".-.");
  EXPECT_EQ(nodeIdFromName("..x"), "..x");
  const std::string long_name(300, 'A');
  EXPECT_EQ(nodeIdFromName(long_name), std::string(kMaxNodeIdBase, 'a'));
}

TEST(NodeId, AddressesKeepEveryByteAndThePort) {
  EXPECT_EQ(nodeIdFromAddress({"192.0.2.5", 5683, false}), "192-0-2-5-5683");
  EXPECT_EQ(nodeIdFromAddress({"fe80::1%eth0", 5683, false}), "fe80--1-eth0-5683");
  EXPECT_EQ(nodeIdFromAddress({"2001:DB8::A", 5684, true}), "2001-db8--a-5684");
  const std::string id = nodeIdFromAddress({"2001:db8:1111:2222:3333:4444:5555:6666%verylongifname0", 61616, false});
  EXPECT_EQ(id.size(), kMaxNodeIdBase);
  EXPECT_TRUE(id.ends_with("-61616")) << id;
  EXPECT_EQ(nodeIdWithSuffix("lamp", 1), "lamp");
  EXPECT_EQ(nodeIdWithSuffix("lamp", 3), "lamp-3");
  EXPECT_LE(nodeIdWithSuffix(std::string(kMaxNodeIdBase, 'x'), 123456).size(), kMaxNodeIdLength);
}

TEST(NodeUri, BracketsIpv6AndEncodesTheZone) {
  EXPECT_EQ(nodeUri({"192.0.2.5", 5683, false}), "coap://192.0.2.5:5683");
  EXPECT_EQ(nodeUri({"fe80::1%eth0", 5684, true}), "coaps://[fe80::1%25eth0]:5684");
}

// --- merging ---------------------------------------------------------------------------------

TEST(NodeRegistry, MulticastAndDnsSdAtOneAddressAreOneNodeNamedByMdns) {
  NodeRegistry r;
  Events ev(r);
  ASSERT_TRUE(r.observe(multicast("192.0.2.5", 5683, {link("/temp", "temperature")}), at(0)));
  EXPECT_EQ(ev.take(), Strings{"appeared 192-0-2-5-5683"});
  ASSERT_TRUE(r.observe(mdns("Lamp", "192.0.2.5"), at(1)));
  // The better name renames the node: the old URL is gone, the new one appears (documented).
  EXPECT_EQ(ev.take(), (Strings{"gone 192-0-2-5-5683", "appeared lamp"}));
  ASSERT_EQ(ids(r), Strings{"lamp"});
  const NodeRecord* n = r.find("lamp");
  ASSERT_NE(n, nullptr);
  EXPECT_EQ(n->name, "Lamp");
  EXPECT_TRUE(n->has(Source::multicast));
  EXPECT_TRUE(n->has(Source::dns_sd));
  EXPECT_FALSE(n->has(Source::rd));
  EXPECT_EQ(n->addresses, (std::vector<NodeAddress>{{"192.0.2.5", 5683, false}}));
  EXPECT_EQ(targets(n->resources), Strings{"/temp"});  // the probe's list survives the merge
  EXPECT_EQ(n->first_seen, at(0));
  EXPECT_EQ(n->last_seen, at(1));
  EXPECT_EQ(r.find("192-0-2-5-5683"), nullptr);
  EXPECT_EQ(r.findByAddress({"192.0.2.5", 5683, true}), n);  // scheme is not part of the match
  const auto st = r.stats();
  EXPECT_EQ(st.nodes, 1U);
  EXPECT_EQ(st.by_source[sourceIndex(Source::multicast)], 1U);
  EXPECT_EQ(st.by_source[sourceIndex(Source::dns_sd)], 1U);
  EXPECT_EQ(st.by_source[sourceIndex(Source::rd)], 0U);
  EXPECT_EQ(st.sightings, 2U);
  EXPECT_EQ(st.appeared, 2U);
  EXPECT_EQ(st.gone, 1U);
  // Seen again by both: nothing a subscriber needs to hear, but last_seen moves.
  ASSERT_TRUE(r.observe(multicast("192.0.2.5"), at(60)));
  ASSERT_TRUE(r.observe(mdns("Lamp", "192.0.2.5"), at(61)));
  EXPECT_TRUE(ev.take().empty());
  EXPECT_EQ(r.find("lamp")->last_seen, at(61));
  EXPECT_EQ(r.stats().sightings, 2U);
}

TEST(NodeRegistry, SameHostOtherPortIsAnotherNode) {
  NodeRegistry r;
  ASSERT_TRUE(r.observe(multicast("192.0.2.5", 5683), at(0)));
  ASSERT_TRUE(r.observe(multicast("192.0.2.5", 5690), at(0)));
  ASSERT_TRUE(r.observe(multicast("192.0.2.6", 5683), at(0)));
  ASSERT_EQ(ids(r), (Strings{"192-0-2-5-5683", "192-0-2-5-5690", "192-0-2-6-5683"}));
  EXPECT_EQ(r.findByAddress({"192.0.2.5", 5690, false})->id, "192-0-2-5-5690");
  EXPECT_EQ(r.findByAddress({"192.0.2.7", 5683, false}), nullptr);
}

TEST(NodeRegistry, MulticastAnswersFromOneLinkLayerAddressAreOneNodeEvenWhenItIsLearnedLater) {
  NodeRegistry r;
  // First round: the neighbour table did not know the responder yet (no name).
  ASSERT_TRUE(r.observe(multicast("192.0.2.5"), at(0)));
  ASSERT_TRUE(r.observe(multicast("fe80::1%eth0"), at(0)));
  ASSERT_EQ(r.nodes().size(), 2U);
  // Next round: both addresses named by the same MAC: one node with both addresses.
  auto v4 = multicast("192.0.2.5");
  v4.name = "02:00:00:00:00:05";
  auto v6 = multicast("fe80::1%eth0");
  v6.name = "02:00:00:00:00:05";
  ASSERT_TRUE(r.observe(v4, at(10)));
  ASSERT_TRUE(r.observe(v6, at(10)));
  ASSERT_EQ(r.nodes().size(), 1U);
  EXPECT_EQ(r.nodes().front()->addresses.size(), 2U);
  // Another MAC stays another node.
  auto other = multicast("192.0.2.6");
  other.name = "02:00:00:00:00:06";
  ASSERT_TRUE(r.observe(other, at(10)));
  EXPECT_EQ(r.nodes().size(), 2U);
}

TEST(NodeRegistry, Ipv4AndIpv6OfOneMdnsInstanceAreOneNode) {
  NodeRegistry r;
  Events ev(r);
  ASSERT_TRUE(r.observe(mdns("printer", "192.0.2.9"), at(0)));
  ASSERT_TRUE(r.observe(mdns("printer", "FE80::9%eth0"), at(0)));
  EXPECT_EQ(ev.take(), (Strings{"appeared printer", "changed printer"}));
  const NodeRecord* n = r.find("printer");
  ASSERT_NE(n, nullptr);
  EXPECT_EQ(n->addresses, (std::vector<NodeAddress>{{"192.0.2.9", 5683, false}, {"fe80::9%eth0", 5683, false}}));
  EXPECT_EQ(r.findByAddress({"fe80::9%eth0", 5683, false}), n);
  // A new IPv4 address for the same instance replaces the old one (same interface and family).
  ASSERT_TRUE(r.observe(mdns("printer", "192.0.2.10"), at(5)));
  EXPECT_EQ(ev.take(), Strings{"changed printer"});
  EXPECT_EQ(r.find("printer")->addresses,
            (std::vector<NodeAddress>{{"192.0.2.10", 5683, false}, {"fe80::9%eth0", 5683, false}}));
  EXPECT_EQ(r.findByAddress({"192.0.2.9", 5683, false}), nullptr);
  EXPECT_EQ(r.stats().nodes, 1U);
}

TEST(NodeRegistry, ASightingThatLinksTwoNodesMergesThemAndTheLinkGoingSplitsThem) {
  NodeRegistry r;
  Events ev(r);
  ASSERT_TRUE(r.observe(multicast("192.0.2.5", 5683, {link("/a")}), at(0)));
  ASSERT_TRUE(r.observe(mdns("lamp", "fe80::5%eth0"), at(1)));
  EXPECT_EQ(ev.take(), (Strings{"appeared 192-0-2-5-5683", "appeared lamp"}));
  ASSERT_EQ(r.stats().nodes, 2U);

  // lamp's IPv4 resolution is the multicast responder: one device.
  ASSERT_TRUE(r.observe(mdns("lamp", "192.0.2.5"), at(2)));
  EXPECT_EQ(ev.take(), (Strings{"gone 192-0-2-5-5683", "changed lamp"}));
  ASSERT_EQ(ids(r), Strings{"lamp"});
  const NodeRecord* n = r.find("lamp");
  EXPECT_EQ(n->addresses.size(), 2U);
  EXPECT_EQ(n->sources, static_cast<unsigned>(Source::multicast) | static_cast<unsigned>(Source::dns_sd));
  EXPECT_EQ(targets(n->resources), Strings{"/a"});
  EXPECT_EQ(n->first_seen, at(0));

  // lamp's IPv4 address changes: nothing says the multicast responder at .5 is lamp any more.
  ASSERT_TRUE(r.observe(mdns("lamp", "192.0.2.6"), at(3)));
  EXPECT_EQ(ev.take(), (Strings{"appeared 192-0-2-5-5683", "changed lamp"}));
  ASSERT_EQ(ids(r), (Strings{"192-0-2-5-5683", "lamp"}));
  EXPECT_EQ(targets(r.find("192-0-2-5-5683")->resources), Strings{"/a"});
  EXPECT_TRUE(r.find("lamp")->resources.empty());
  EXPECT_EQ(r.find("lamp")->sources, static_cast<unsigned>(Source::dns_sd));
  EXPECT_EQ(r.stats().sightings, 3U);
}

TEST(NodeRegistry, NamesFromDifferentSourcesDoNotMergeButAddressesDo) {
  NodeRegistry r;
  ASSERT_TRUE(r.observe(mdns("sensor", "192.0.2.20"), at(0)));
  ASSERT_TRUE(r.observe(rd("sensor", "192.0.2.21", 5683, {link("/x")}), at(0)));
  // Same text, other address: an mDNS name is free text, so these stay two nodes.
  ASSERT_EQ(ids(r), (Strings{"sensor", "sensor-2"}));
  EXPECT_EQ(r.find("sensor")->sources, static_cast<unsigned>(Source::dns_sd));  // first come
  EXPECT_EQ(r.find("sensor-2")->sources, static_cast<unsigned>(Source::rd));
  // The same RD ep from another address is a re-registration of the same endpoint, not a third node.
  ASSERT_TRUE(r.observe(rd("sensor", "192.0.2.22", 5683, {link("/x")}), at(1)));
  ASSERT_EQ(ids(r), (Strings{"sensor", "sensor-2"}));
  EXPECT_EQ(r.find("sensor-2")->addresses, (std::vector<NodeAddress>{{"192.0.2.22", 5683, false}}));
}

// --- ids in the registry ---------------------------------------------------------------------

TEST(NodeRegistry, IdsAreUniqueAndKeepTheirSuffix) {
  NodeRegistry r;
  Events ev(r);
  ASSERT_TRUE(r.observe(mdns("Lamp", "192.0.2.1"), at(0)));
  ASSERT_TRUE(r.observe(mdns("lamp", "192.0.2.2"), at(0)));
  ASSERT_TRUE(r.observe(mdns("LAMP!", "192.0.2.3"), at(0)));
  ASSERT_EQ(ids(r), (Strings{"lamp", "lamp-2", "lamp-3"}));
  EXPECT_EQ(r.find("lamp-2")->name, "lamp");
  // The first goes; the others keep their ids (URLs handed out stay valid).
  EXPECT_EQ(r.withdraw(Source::dns_sd, "Lamp", "", at(1)), 1U);
  ASSERT_EQ(ids(r), (Strings{"lamp-2", "lamp-3"}));
  ASSERT_TRUE(r.observe(mdns("lamp", "192.0.2.2"), at(2)));  // renewal: no change, no rename
  ASSERT_EQ(ids(r), (Strings{"lamp-2", "lamp-3"}));
  // A newcomer whose name makes the same id takes the free plain id.
  ASSERT_TRUE(r.observe(mdns("Lamp ", "192.0.2.4"), at(3)));
  // Another resolution of instance "lamp" (on wlan0) is the node lamp-2, not a newcomer.
  ASSERT_TRUE(r.observe(mdns("lamp", "192.0.2.99", 5683, "wlan0"), at(3)));
  EXPECT_EQ(ev.take(), (Strings{"appeared lamp", "appeared lamp-2", "appeared lamp-3", "gone lamp",
                                "appeared lamp", "changed lamp-2"}));
  ASSERT_EQ(ids(r), (Strings{"lamp", "lamp-2", "lamp-3"}));
  EXPECT_EQ(r.find("lamp")->name, "Lamp ");
  EXPECT_EQ(r.find("lamp-2")->addresses.size(), 2U);
}

TEST(NodeRegistry, AnAddressIdThatClashesWithANameGetsASuffix) {
  NodeRegistry r;
  ASSERT_TRUE(r.observe(mdns("192-0-2-5-5683", "192.0.2.77"), at(0)));
  ASSERT_TRUE(r.observe(multicast("192.0.2.5"), at(0)));
  ASSERT_TRUE(r.observe(mdns("..", "192.0.2.8"), at(0)));  // unusable name: the address is the id
  ASSERT_EQ(ids(r), (Strings{"192-0-2-5-5683", "192-0-2-5-5683-2", "192-0-2-8-5683"}));
  EXPECT_EQ(r.find("192-0-2-5-5683-2")->addresses.front().host, "192.0.2.5");
  EXPECT_EQ(r.find("192-0-2-8-5683")->name, "..");  // still the name /nodes shows as ep
}

TEST(NodeRegistry, RdEndpointNameBeatsMdnsNameAndTheNameComesBackWhenItGoes) {
  NodeRegistry r;
  Events ev(r);
  ASSERT_TRUE(r.observe(mdns("Kitchen Sensor", "192.0.2.30"), at(0)));
  ASSERT_TRUE(r.observe(rd("node-7", "192.0.2.30", 5683, {link("/t", "temperature")}), at(1)));
  EXPECT_EQ(ev.take(), (Strings{"appeared kitchen-sensor", "gone kitchen-sensor", "appeared node-7"}));
  EXPECT_EQ(r.find("node-7")->name, "node-7");
  EXPECT_EQ(r.withdraw(Source::rd, "node-7", "", at(2)), 1U);
  EXPECT_EQ(ev.take(), (Strings{"gone node-7", "appeared kitchen-sensor"}));
  // Whichever name was seen first among equals stays: a second mDNS name does not rename.
  ASSERT_TRUE(r.observe(mdns("Another Name", "192.0.2.30"), at(3)));
  EXPECT_EQ(ev.take(), Strings{});  // same address, same sources, same resources: nothing changed
  ASSERT_EQ(ids(r), Strings{"kitchen-sensor"});
}

// --- resources -------------------------------------------------------------------------------

TEST(NodeRegistry, LatestKnownListWinsAndRdBeatsProbes) {
  NodeRegistry r;
  Events ev(r);
  ASSERT_TRUE(r.observe(multicast("192.0.2.40", 5683, {link("/a")}), at(0)));
  ev.take();
  // A renewal that did not fetch /.well-known/core keeps the list.
  ASSERT_TRUE(r.observe(multicast("192.0.2.40"), at(10)));
  EXPECT_EQ(targets(r.find("192-0-2-40-5683")->resources), Strings{"/a"});
  // An empty answer does not erase a known list.
  auto empty = multicast("192.0.2.40");
  empty.resources_known = true;
  ASSERT_TRUE(r.observe(empty, at(20)));
  EXPECT_EQ(targets(r.find("192-0-2-40-5683")->resources), Strings{"/a"});
  EXPECT_TRUE(ev.take().empty());
  // A newer list does.
  ASSERT_TRUE(r.observe(multicast("192.0.2.40", 5683, {link("/a"), link("/b")}), at(30)));
  EXPECT_EQ(ev.take(), Strings{"changed 192-0-2-40-5683"});
  EXPECT_EQ(targets(r.find("192-0-2-40-5683")->resources), (Strings{"/a", "/b"}));
  // The node registers itself: its own choice wins, now and against later probes.
  ASSERT_TRUE(r.observe(rd("n40", "192.0.2.40", 5683, {link("/registered")}), at(40)));
  EXPECT_EQ(ev.take(), (Strings{"gone 192-0-2-40-5683", "appeared n40"}));
  ASSERT_TRUE(r.observe(multicast("192.0.2.40", 5683, {link("/c")}), at(50)));
  EXPECT_EQ(targets(r.find("n40")->resources), Strings{"/registered"});
  EXPECT_TRUE(ev.take().empty());
  // An RD update without payload (lifetime only) keeps the registered links.
  auto update = rd("n40", "192.0.2.40", 5683, {});
  update.resources_known = false;
  ASSERT_TRUE(r.observe(update, at(55)));
  EXPECT_EQ(targets(r.find("n40")->resources), Strings{"/registered"});
  // Registration removed: the latest probe's list is what the node offers.
  ASSERT_EQ(r.withdraw(Source::rd, "n40", "", at(60)), 1U);
  EXPECT_EQ(targets(r.find("192-0-2-40-5683")->resources), Strings{"/c"});
}

TEST(NodeRegistry, LongResourceListsAreTruncatedAndCounted) {
  RegistryLimits limits;
  limits.max_resources_per_node = 3;
  NodeRegistry r(limits);
  std::vector<Link> many;
  for (int i = 0; i < 10; ++i) many.push_back(link("/r" + std::to_string(i)));
  ASSERT_TRUE(r.observe(multicast("192.0.2.50", 5683, many), at(0)));
  EXPECT_EQ(targets(r.find("192-0-2-50-5683")->resources), (Strings{"/r0", "/r1", "/r2"}));
  EXPECT_EQ(r.stats().resources_truncated, 1U);

  RegistryLimits by_bytes;
  by_bytes.max_resource_bytes_per_node = 2048;
  NodeRegistry small(by_bytes);
  std::vector<Link> big;
  for (int i = 0; i < 100; ++i) big.push_back(link("/" + std::string(200, 'x') + std::to_string(i), "big"));
  ASSERT_TRUE(small.observe(multicast("192.0.2.51", 5683, big), at(0)));
  const auto kept = small.find("192-0-2-51-5683")->resources.size();
  EXPECT_GE(kept, 1U);
  EXPECT_LT(kept, 10U);
  EXPECT_EQ(small.stats().resources_truncated, 1U);
  EXPECT_LT(small.stats().memory_bytes, 3 * by_bytes.max_resource_bytes_per_node);
}

// --- expiry and withdrawal -------------------------------------------------------------------

TEST(NodeRegistry, EachSightingExpiresOnItsOwnAndGoneIsSaidOnce) {
  NodeRegistry r;
  Events ev(r);
  EXPECT_EQ(r.nextExpiry(), std::nullopt);
  ASSERT_TRUE(r.observe(mdns("lamp", "192.0.2.60", 5683, "eth0", seconds(600)), at(0)));
  ASSERT_TRUE(r.observe(multicast("192.0.2.60", 5683, {}, seconds(120)), at(10)));
  ev.take();
  EXPECT_EQ(r.nextExpiry(), at(130));
  EXPECT_EQ(r.find("lamp")->expires, at(600));
  EXPECT_EQ(r.expire(at(129)), 0U);
  EXPECT_TRUE(ev.take().empty());
  EXPECT_EQ(r.expire(at(130)), 1U);
  EXPECT_EQ(ev.take(), Strings{"changed lamp"});
  EXPECT_EQ(r.find("lamp")->sources, static_cast<unsigned>(Source::dns_sd));
  EXPECT_EQ(r.nextExpiry(), at(600));
  // Renewed before its time: lives on.
  ASSERT_TRUE(r.observe(mdns("lamp", "192.0.2.60", 5683, "eth0", seconds(600)), at(500)));
  EXPECT_EQ(r.expire(at(600)), 0U);
  EXPECT_EQ(r.nextExpiry(), at(1100));
  EXPECT_EQ(r.expire(at(1100)), 1U);
  EXPECT_EQ(ev.take(), Strings{"gone lamp"});
  EXPECT_EQ(ev.records.back().name, "lamp");  // the subscriber gets the record as it was
  EXPECT_EQ(r.expire(at(5000)), 0U);
  EXPECT_TRUE(ev.take().empty());
  EXPECT_EQ(r.nodes().size(), 0U);
  EXPECT_EQ(r.nextExpiry(), std::nullopt);
  EXPECT_EQ(r.stats().gone, 1U);
  EXPECT_EQ(r.stats().memory_bytes, 0U);
}

TEST(NodeRegistry, WithdrawDropsOnlyThatSourcesSightings) {
  NodeRegistry r;
  Events ev(r);
  ASSERT_TRUE(r.observe(mdns("cam", "192.0.2.70", 5683, "eth0"), at(0)));
  ASSERT_TRUE(r.observe(mdns("cam", "192.0.2.70", 5683, "wlan0"), at(0)));
  ASSERT_TRUE(r.observe(multicast("192.0.2.70"), at(0)));
  ev.take();
  EXPECT_EQ(r.stats().sightings, 3U);
  EXPECT_EQ(r.withdraw(Source::dns_sd, "cam", "eth0", at(1)), 1U);  // Avahi: ItemRemove on eth0
  EXPECT_TRUE(ev.take().empty());  // still seen on wlan0 and by multicast
  EXPECT_EQ(r.withdraw(Source::rd, "cam", "", at(1)), 0U);  // other source: nothing
  EXPECT_EQ(r.withdraw(Source::dns_sd, "cam", "", at(2)), 1U);
  // The name went with the last mDNS sighting: the node is known by its address again.
  EXPECT_EQ(ev.take(), (Strings{"gone cam", "appeared 192-0-2-70-5683"}));
  EXPECT_EQ(r.withdraw(Source::multicast, NodeAddress{"192.0.2.70", 5683, false}, at(3)), 1U);
  EXPECT_EQ(ev.take(), Strings{"gone 192-0-2-70-5683"});
  EXPECT_EQ(r.stats().nodes, 0U);

  ASSERT_TRUE(r.observe(mdns("a", "192.0.2.71"), at(4)));
  ASSERT_TRUE(r.observe(mdns("b", "192.0.2.72"), at(4)));
  ASSERT_TRUE(r.observe(multicast("192.0.2.72"), at(4)));
  ev.take();
  EXPECT_EQ(r.withdrawAll(Source::dns_sd, at(5)), 2U);  // e.g. avahi-daemon went away
  EXPECT_EQ(ev.take(), (Strings{"gone a", "gone b", "appeared 192-0-2-72-5683"}));
}

// --- bounds ----------------------------------------------------------------------------------

TEST(NodeRegistry, AFullTableRefusesNewNodesButUpdatesKnownOnes) {
  RegistryLimits limits;
  limits.max_nodes = 3;
  NodeRegistry r(limits);
  Events ev(r);
  for (int i = 1; i <= 3; ++i) ASSERT_TRUE(r.observe(multicast("192.0.2." + std::to_string(i)), at(0)));
  EXPECT_FALSE(r.observe(multicast("192.0.2.4"), at(0)));
  EXPECT_FALSE(r.observe(mdns("newcomer", "192.0.2.5"), at(0)));
  EXPECT_EQ(r.stats().refused_full, 2U);
  EXPECT_EQ(r.stats().nodes, 3U);
  ev.take();
  // Known nodes still get news, and a sighting that joins a known node is not a new node.
  ASSERT_TRUE(r.observe(multicast("192.0.2.1", 5683, {link("/x")}), at(1)));
  ASSERT_TRUE(r.observe(mdns("two", "192.0.2.2"), at(1)));
  EXPECT_EQ(ev.take(), (Strings{"changed 192-0-2-1-5683", "gone 192-0-2-2-5683", "appeared two"}));
  EXPECT_EQ(r.stats().refused_full, 2U);
  // Room again once one expires (192.0.2.3 was seen at t=0 with a ttl of 180 s; so was the
  // multicast sighting of "two", which stays known through mDNS).
  EXPECT_EQ(r.expire(at(180)), 2U);
  EXPECT_EQ(ev.take(), (Strings{"gone 192-0-2-3-5683", "changed two"}));
  EXPECT_TRUE(r.observe(multicast("192.0.2.4"), at(180)));
  EXPECT_EQ(r.stats().nodes, 3U);
}

TEST(NodeRegistry, ASplitIntoAFullTableKeepsTheBestNamedPart) {
  RegistryLimits limits;
  limits.max_nodes = 2;
  NodeRegistry r(limits);
  Events ev(r);
  ASSERT_TRUE(r.observe(rd("meter", "192.0.2.5", 5683, {link("/kwh")}), at(0)));
  ASSERT_TRUE(r.observe(mdns("Meter", "192.0.2.5"), at(0)));
  ASSERT_TRUE(r.observe(multicast("192.0.2.9"), at(0)));
  ev.take();
  // The mDNS instance moves away from the registration's address: it would be a third node.
  EXPECT_FALSE(r.observe(mdns("Meter", "192.0.2.6"), at(1)));
  EXPECT_EQ(r.stats().refused_full, 1U);
  ASSERT_EQ(ids(r), (Strings{"192-0-2-9-5683", "meter"}));
  EXPECT_EQ(r.find("meter")->sources, static_cast<unsigned>(Source::rd));
  EXPECT_EQ(ev.take(), Strings{"changed meter"});
  EXPECT_EQ(r.findByAddress({"192.0.2.6", 5683, false}), nullptr);
}

TEST(NodeRegistry, ANodeHoldsABoundedNumberOfSightings) {
  RegistryLimits limits;
  limits.max_sightings_per_node = 2;
  NodeRegistry r(limits);
  ASSERT_TRUE(r.observe(mdns("x", "192.0.2.80", 5683, "eth0"), at(0)));
  ASSERT_TRUE(r.observe(mdns("x", "192.0.2.80", 5683, "eth1"), at(0)));
  EXPECT_FALSE(r.observe(mdns("x", "192.0.2.80", 5683, "eth2"), at(0)));
  EXPECT_FALSE(r.observe(mdns("alias", "192.0.2.80"), at(0)));
  EXPECT_TRUE(r.observe(mdns("x", "192.0.2.80", 5683, "eth1"), at(1)));  // renewals still work
  EXPECT_EQ(r.stats().refused_sightings, 2U);
  EXPECT_EQ(r.stats().sightings, 2U);
}

TEST(NodeRegistry, InvalidSightingsAreRefusedAndCounted) {
  NodeRegistry r;
  EXPECT_FALSE(r.observe(multicast(""), at(0)));
  EXPECT_FALSE(r.observe(multicast("192.0.2.1", 0), at(0)));
  EXPECT_FALSE(r.observe(mdns(std::string(kMaxNameLength + 1, 'n'), "192.0.2.1"), at(0)));
  EXPECT_FALSE(r.observe(multicast(std::string(kMaxHostLength + 1, '1')), at(0)));
  EXPECT_EQ(r.stats().refused_invalid, 4U);
  EXPECT_EQ(r.stats().nodes, 0U);
}

TEST(NodeRegistry, TwoHundredNodesFromOneProbeWithBoundedMemory) {
  NodeRegistry r;
  Events ev(r);
  const auto probe = [&r](Clock::time_point now) {
    std::size_t accepted = 0;
    for (int i = 0; i < 200; ++i) {
      const std::string host = "10.0." + std::to_string(i / 100) + "." + std::to_string(i % 100 + 1);
      if (r.observe(multicast(host, 5683, {link("/sensors/temp", "temperature"), link("/led")}), now)) ++accepted;
    }
    return accepted;
  };
  EXPECT_EQ(probe(at(0)), 200U);
  EXPECT_EQ(ev.take().size(), 200U);  // 200 x appeared
  const auto full = r.stats();
  EXPECT_EQ(full.nodes, 200U);
  EXPECT_EQ(full.by_source[sourceIndex(Source::multicast)], 200U);
  EXPECT_EQ(r.nodes().front()->id, "10-0-0-1-5683");
  EXPECT_EQ(r.findByAddress({"10.0.1.100", 5683, false})->id, "10-0-1-100-5683");
  // At least the bytes of the strings held (hosts, two resource lists each), at most a few KiB a node.
  EXPECT_GE(full.memory_bytes, 200U * (8 + 2 * (13 + 2 + 11 + 4)));
  EXPECT_LE(full.memory_bytes, 200U * 4096);
  // The next probe finds the same nodes: no events, no growth.
  EXPECT_EQ(probe(at(60)), 200U);
  EXPECT_TRUE(ev.take().empty());
  EXPECT_EQ(r.stats().memory_bytes, full.memory_bytes);
  // They stop answering: all gone, all memory returned.
  EXPECT_EQ(r.expire(at(60 + 180)), 200U);
  EXPECT_EQ(ev.take().size(), 200U);
  EXPECT_EQ(r.stats().memory_bytes, 0U);
  EXPECT_EQ(r.stats().gone, 200U);

  // The same probe into a table for 150: the rest is refused, memory scales with what is kept.
  RegistryLimits limits;
  limits.max_nodes = 150;
  NodeRegistry capped(limits);
  std::size_t accepted = 0;
  for (int i = 0; i < 200; ++i) {
    const std::string host = "10.0." + std::to_string(i / 100) + "." + std::to_string(i % 100 + 1);
    if (capped.observe(multicast(host, 5683, {link("/sensors/temp", "temperature"), link("/led")}), at(0))) ++accepted;
  }
  EXPECT_EQ(accepted, 150U);
  EXPECT_EQ(capped.stats().refused_full, 50U);
  EXPECT_LT(capped.stats().memory_bytes, full.memory_bytes);
}

// --- subscribers -----------------------------------------------------------------------------

TEST(NodeRegistry, AThrowingSubscriberIsCountedAndTheOthersStillRun) {
  NodeRegistry r;
  r.subscribe([](NodeEvent, const NodeRecord&) { throw std::runtime_error("relay bug"); });
  Events ev(r);
  ASSERT_TRUE(r.observe(multicast("192.0.2.90"), at(0)));
  ASSERT_TRUE(r.observe(mdns("n", "192.0.2.90"), at(0)));
  EXPECT_EQ(ev.take(), (Strings{"appeared 192-0-2-90-5683", "gone 192-0-2-90-5683", "appeared n"}));
  EXPECT_EQ(r.stats().subscriber_errors, 3U);
  ASSERT_EQ(ids(r), Strings{"n"});
  EXPECT_EQ(r.stats().sightings, 2U);
}

TEST(NodeRegistry, ASubscriberMayChangeTheRegistryItsEventsComeAfter) {
  NodeRegistry r;
  std::vector<std::string> seen;
  r.subscribe([&](NodeEvent e, const NodeRecord& n) {
    seen.push_back((e == NodeEvent::appeared ? "+" : e == NodeEvent::gone ? "-" : "~") + n.id);
    // E.g. a relay that learns the node's name by asking it, synchronously in this test.
    if (e == NodeEvent::appeared && n.id == "192-0-2-95-5683") {
      EXPECT_EQ(r.find(n.id), r.findByAddress({"192.0.2.95", 5683, false}));  // consistent when called
      EXPECT_TRUE(r.observe(mdns("learned", "192.0.2.95"), at(1)));
    }
  });
  ASSERT_TRUE(r.observe(multicast("192.0.2.95"), at(0)));
  EXPECT_EQ(seen, (Strings{"+192-0-2-95-5683", "-192-0-2-95-5683", "+learned"}));
  ASSERT_EQ(ids(r), Strings{"learned"});
}

// --- a replayed history ----------------------------------------------------------------------

bool validId(const std::string& id) {
  if (id.empty() || id.size() > kMaxNodeIdLength || id == "." || id == "..") return false;
  return std::all_of(id.begin(), id.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '.' || c == '_';
  });
}

// A subscriber that only knows the events must end up with exactly the registry's nodes, after
// every step of a random history dense in merges, splits, renames, expiries and withdrawals
// (fixed seed: a failure replays).
TEST(NodeRegistry, EventsReplayToTheRegistrysContentsThroughARandomHistory) {
  RegistryLimits limits;
  limits.max_nodes = 12;
  limits.max_sightings_per_node = 6;
  NodeRegistry r(limits);
  std::map<std::string, NodeRecord> shadow;
  std::size_t bad_events = 0;
  r.subscribe([&](NodeEvent e, const NodeRecord& n) {
    const bool known = shadow.contains(n.id);
    if (e == NodeEvent::appeared ? known : !known) ++bad_events;
    if (e == NodeEvent::gone) shadow.erase(n.id);
    else shadow[n.id] = n;
  });
  std::mt19937 rng(20240611);
  const auto pick = [&rng](int n) { return std::uniform_int_distribution<int>(0, n - 1)(rng); };
  const Strings names{"lamp", "Lamp", "meter", "cam", "192-0-2-1-5683", "x"};
  const Strings ifaces{"eth0", "wlan0"};
  const auto host = [&]() {
    const int h = pick(8);
    return h < 6 ? "192.0.2." + std::to_string(h) : "fe80::" + std::to_string(h) + "%eth0";
  };
  int t = 0;
  for (int step = 0; step < 3000; ++step) {
    t += pick(20);
    switch (pick(7)) {
      case 0: case 1: {
        std::vector<Link> res;
        if (pick(2) == 0) res.push_back(link("/r" + std::to_string(pick(3))));
        r.observe(multicast(host(), static_cast<std::uint16_t>(5683 + pick(2)), res, seconds(30 + pick(200))), at(t));
        break;
      }
      case 2: case 3:
        r.observe(mdns(names[static_cast<std::size_t>(pick(6))], host(), 5683, ifaces[static_cast<std::size_t>(pick(2))],
                       seconds(50 + pick(400))),
                  at(t));
        break;
      case 4: {
        std::vector<Link> res{link("/reg" + std::to_string(pick(3)))};
        r.observe(rd(names[static_cast<std::size_t>(pick(6))], host(), 5683, res, seconds(60 + pick(300))), at(t));
        break;
      }
      case 5:
        if (pick(2) == 0) r.withdraw(Source::dns_sd, names[static_cast<std::size_t>(pick(6))], "", at(t));
        else r.withdraw(Source::rd, names[static_cast<std::size_t>(pick(6))], "", at(t));
        break;
      default:
        r.expire(at(t));
        break;
    }
    ASSERT_EQ(bad_events, 0U) << "step " << step;
    const auto nodes = r.nodes();
    ASSERT_EQ(nodes.size(), shadow.size()) << "step " << step;
    ASSERT_LE(nodes.size(), limits.max_nodes);
    std::set<std::pair<std::string, std::uint16_t>> endpoints;
    for (const NodeRecord* n : nodes) {
      ASSERT_TRUE(validId(n->id)) << n->id;
      const auto it = shadow.find(n->id);
      ASSERT_NE(it, shadow.end()) << "step " << step << " " << n->id;
      EXPECT_EQ(it->second.addresses, n->addresses) << "step " << step << " " << n->id;
      EXPECT_EQ(it->second.sources, n->sources) << "step " << step << " " << n->id;
      EXPECT_EQ(it->second.resources, n->resources) << "step " << step << " " << n->id;
      ASSERT_FALSE(n->addresses.empty());
      ASSERT_NE(n->sources, 0U);
      for (const auto& a : n->addresses) {
        // One address, one node: otherwise the relay could not tell where a request goes.
        ASSERT_TRUE(endpoints.emplace(a.host, a.port).second) << "step " << step << " " << a.host;
      }
    }
  }
  const auto st = r.stats();
  EXPECT_GT(st.appeared, 100U);  // the history did exercise what it claims to
  EXPECT_GT(st.gone, 100U);
  EXPECT_GT(st.refused_full, 0U);
  r.expire(at(t + 100000));
  EXPECT_TRUE(shadow.empty());
  EXPECT_EQ(r.stats().memory_bytes, 0U);
}

// --- /nodes ----------------------------------------------------------------------------------

class NodesResource : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(r.observe(multicast("192.0.2.5"), at(0)));
    ASSERT_TRUE(r.observe(mdns("Lamp", "192.0.2.5"), at(0)));
    ASSERT_TRUE(r.observe(rd("meter-1", "fe80::7%eth0", 5684, {link("/kwh")}), at(0)));
    ASSERT_TRUE(r.observe(multicast("192.0.2.9"), at(0)));
  }
  Strings filtered(std::string_view query) const {
    const auto parsed = parseLinkFormat(r.linkFormat(query));
    EXPECT_TRUE(parsed.ok()) << r.linkFormat(query);
    return targets(parsed.links);
  }
  NodeRegistry r;
};

TEST_F(NodesResource, OneLinkPerNodeWithItsAttributes) {
  const std::string body = r.linkFormat();
  const auto parsed = parseLinkFormat(body);
  ASSERT_TRUE(parsed.ok()) << body;
  EXPECT_EQ(parsed.links, r.links());  // linkFormat() is links() serialized, faithfully
  ASSERT_EQ(targets(parsed.links), (Strings{"/nodes/192-0-2-9-5683", "/nodes/lamp", "/nodes/meter-1"}));
  const Link& lamp = parsed.links[1];
  EXPECT_EQ(lamp.attribute("rt"), "core.node");
  EXPECT_EQ(lamp.attribute("ep"), "Lamp");
  EXPECT_EQ(lamp.attribute("src"), "multicast dns-sd");
  EXPECT_EQ(lamp.attribute("base"), "coap://192.0.2.5:5683");
  EXPECT_FALSE(lamp.has("secure"));
  const Link& meter = parsed.links[2];
  EXPECT_EQ(meter.attribute("src"), "rd");
  EXPECT_EQ(meter.attribute("base"), "coaps://[fe80::7%25eth0]:5684");
  EXPECT_TRUE(meter.has("secure"));
  const Link& anonymous = parsed.links[0];
  EXPECT_FALSE(anonymous.has("ep"));
  EXPECT_EQ(anonymous.attribute("src"), "multicast");
  EXPECT_NE(body.find("</nodes/lamp>"), std::string::npos) << body;
}

TEST_F(NodesResource, QueryFiltersWithPrefixMatch) {
  const Strings all{"/nodes/192-0-2-9-5683", "/nodes/lamp", "/nodes/meter-1"};
  EXPECT_EQ(filtered(""), all);
  EXPECT_EQ(filtered("rt=core.node"), all);
  EXPECT_EQ(filtered("rt=core.*"), all);
  EXPECT_EQ(filtered("rt=core"), Strings{});
  EXPECT_EQ(filtered("href=/nodes/lamp"), Strings{"/nodes/lamp"});
  EXPECT_EQ(filtered("href=/nodes/m*"), Strings{"/nodes/meter-1"});
  EXPECT_EQ(filtered("ep=Lamp"), Strings{"/nodes/lamp"});
  EXPECT_EQ(filtered("ep=*"), (Strings{"/nodes/lamp", "/nodes/meter-1"}));
  EXPECT_EQ(filtered("src=dns-sd"), Strings{"/nodes/lamp"});
  EXPECT_EQ(filtered("src=multicast"), (Strings{"/nodes/192-0-2-9-5683", "/nodes/lamp"}));
  EXPECT_EQ(filtered("secure"), Strings{"/nodes/meter-1"});
  EXPECT_EQ(filtered("src=multicast&ep=*"), Strings{"/nodes/lamp"});  // every parameter must match
  EXPECT_EQ(filtered("base=coap://192.0.2.9*"), Strings{"/nodes/192-0-2-9-5683"});
  EXPECT_EQ(filtered("if=sensor"), Strings{});
  EXPECT_EQ(filtered("=x"), Strings{});
  EXPECT_EQ(r.linkFormat("rt=nothing"), "");
}

}  // namespace
}  // namespace coap_edge::discovery
