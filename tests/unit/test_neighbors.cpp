// Neighbour table (discovery/neighbors.h): the rtnetlink dump parser on hand-built messages,
// including truncated and malformed ones; and lookups by every address form a socket reports.
// The real kernel table is tested in tests/integration/test_neighbor_table.cpp.

#include "discovery/neighbors.h"


#include <arpa/inet.h>
#include <fcntl.h>
#include <fmt/format.h>
#include <gtest/gtest.h>
#include <linux/neighbour.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <net/if.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <initializer_list>
#include <map>
#include <regex>
#include <string>
#include <vector>

namespace coap_edge::discovery {
namespace {

// ---------------------------------------------------------------- message builders

using Bytes = std::vector<std::uint8_t>;
constexpr std::uint32_t kSeq = 7;

template <typename T>
void append(Bytes& out, const T& value) {
  const auto* bytes = reinterpret_cast<const std::uint8_t*>(&value);
  out.insert(out.end(), bytes, bytes + sizeof(T));
}

void pad(Bytes& out) {
  while (out.size() % 4 != 0) out.push_back(0);
}

Bytes concat(std::initializer_list<Bytes> parts) {
  Bytes out;
  for (const Bytes& part : parts) out.insert(out.end(), part.begin(), part.end());
  return out;
}

/// An rtattr; `declared_len` overrides rta_len to build malformed attributes.
Bytes attribute(std::uint16_t type, const Bytes& data, std::optional<std::uint16_t> declared_len = std::nullopt) {
  rtattr rta{};
  rta.rta_len = declared_len.value_or(static_cast<std::uint16_t>(sizeof(rtattr) + data.size()));
  rta.rta_type = type;
  Bytes out;
  append(out, rta);
  out.insert(out.end(), data.begin(), data.end());
  pad(out);
  return out;
}

Bytes message(std::uint16_t type, const Bytes& payload, std::uint32_t seq = kSeq) {
  nlmsghdr header{};
  header.nlmsg_len = static_cast<std::uint32_t>(sizeof(nlmsghdr) + payload.size());
  header.nlmsg_type = type;
  header.nlmsg_flags = NLM_F_MULTI;
  header.nlmsg_seq = seq;
  Bytes out;
  append(out, header);
  out.insert(out.end(), payload.begin(), payload.end());
  pad(out);
  return out;
}

Bytes neighbor(std::uint8_t family, std::uint16_t state, int ifindex, std::initializer_list<Bytes> attributes,
               std::uint32_t seq = kSeq) {
  ndmsg ndm{};
  ndm.ndm_family = family;
  ndm.ndm_state = state;
  ndm.ndm_ifindex = ifindex;
  ndm.ndm_type = RTN_UNICAST;
  Bytes payload;
  append(payload, ndm);
  for (const Bytes& a : attributes) payload.insert(payload.end(), a.begin(), a.end());
  return message(RTM_NEWNEIGH, payload, seq);
}

Bytes done(std::optional<int> status = 0, std::uint32_t seq = kSeq) {
  Bytes payload;
  if (status) append(payload, *status);
  return message(NLMSG_DONE, payload, seq);
}

Bytes errorMessage(int status) {
  nlmsgerr err{};
  err.error = status;
  Bytes payload;
  append(payload, err);
  return message(NLMSG_ERROR, payload);
}

Bytes ip(const char* text) {
  Bytes out(16);
  if (inet_pton(AF_INET, text, out.data()) == 1) {
    out.resize(4);
  } else if (inet_pton(AF_INET6, text, out.data()) != 1) {
    ADD_FAILURE() << "bad test address " << text;
  }
  return out;
}

const Bytes kMac{0x52, 0x54, 0x00, 0xAB, 0xCD, 0xEF};
const Bytes kOtherMac{0x02, 0x00, 0x00, 0x00, 0x00, 0x01};

Bytes dst(const char* text) { return attribute(NDA_DST, ip(text)); }
Bytes lladdr(const Bytes& mac) { return attribute(NDA_LLADDR, mac); }
// What a real kernel adds to each entry besides NDA_DST and NDA_LLADDR.
Bytes cacheinfo() { return attribute(NDA_CACHEINFO, Bytes(sizeof(nda_cacheinfo), 0x11)); }
Bytes probes() { return attribute(NDA_PROBES, {1, 0, 0, 0}); }

NeighborDump parse(const Bytes& bytes, std::uint32_t seq = kSeq) { return parseNeighborDump(bytes, seq); }

NeighborEntry entry(int family, const char* address, int ifindex, std::string mac) {
  NeighborEntry e;
  e.family = family;
  const Bytes raw = ip(address);
  std::copy(raw.begin(), raw.end(), e.ip.begin());
  e.ifindex = ifindex;
  e.link_address = std::move(mac);
  return e;
}

// ---------------------------------------------------------------- parser

TEST(NeighborDumpParse, RealisticDumpOfBothFamilies) {
  const Bytes dump = concat({
      neighbor(AF_INET, NUD_REACHABLE, 2, {dst("192.0.2.10"), lladdr(kMac), probes(), cacheinfo()}),
      neighbor(AF_INET6, NUD_STALE, 2, {dst("2001:db8::10"), lladdr(kMac), cacheinfo()}),
      // Attribute order is not fixed; a router flag entry as the kernel reports it.
      neighbor(AF_INET6, NUD_DELAY, 3, {cacheinfo(), lladdr(kOtherMac), dst("fe80::1")}),
      done(),
  });
  const NeighborDump result = parse(dump);
  ASSERT_FALSE(result.error) << *result.error;
  EXPECT_TRUE(result.done);
  EXPECT_EQ(result.skipped, 0U);
  EXPECT_EQ(result.entries, (std::vector<NeighborEntry>{entry(AF_INET, "192.0.2.10", 2, "52:54:00:ab:cd:ef"),
                                                        entry(AF_INET6, "2001:db8::10", 2, "52:54:00:ab:cd:ef"),
                                                        entry(AF_INET6, "fe80::1", 3, "02:00:00:00:00:01")}));
}

TEST(NeighborDumpParse, DumpSplitOverDatagramsIsNotDoneUntilDone) {
  const NeighborDump first = parse(neighbor(AF_INET, NUD_REACHABLE, 2, {dst("192.0.2.1"), lladdr(kMac)}));
  EXPECT_FALSE(first.done);
  EXPECT_FALSE(first.error);
  EXPECT_EQ(first.entries.size(), 1U);
  EXPECT_TRUE(parse(done()).done);
  EXPECT_FALSE(parse(Bytes{}).done);
  EXPECT_FALSE(parse(Bytes{}).error);
}

TEST(NeighborDumpParse, FormatsEveryLinkAddressLengthInLowerCaseHex) {
  EXPECT_EQ(formatLinkAddress(kMac), "52:54:00:ab:cd:ef");
  EXPECT_EQ(formatLinkAddress(Bytes{0xff}), "ff");
  EXPECT_EQ(formatLinkAddress(Bytes{}), "");
  const Bytes infiniband(20, 0xA0);
  const NeighborDump result = parse(neighbor(AF_INET, NUD_PERMANENT, 4, {dst("192.0.2.2"), lladdr(infiniband)}));
  ASSERT_EQ(result.entries.size(), 1U);
  EXPECT_EQ(result.entries[0].link_address, "a0:a0:a0:a0:a0:a0:a0:a0:a0:a0:a0:a0:a0:a0:a0:a0:a0:a0:a0:a0");
}

TEST(NeighborDumpParse, SkipsUnresolvedAndIncompleteEntries) {
  const Bytes dump = concat({
      neighbor(AF_INET, NUD_FAILED, 2, {dst("192.0.2.1"), lladdr(kMac)}),
      neighbor(AF_INET, NUD_INCOMPLETE, 2, {dst("192.0.2.2"), lladdr(kMac)}),
      neighbor(AF_INET, NUD_REACHABLE, 2, {dst("192.0.2.3")}),                    // no NDA_LLADDR
      neighbor(AF_INET, NUD_REACHABLE, 2, {lladdr(kMac)}),                        // no NDA_DST
      neighbor(AF_INET, NUD_REACHABLE, 2, {dst("192.0.2.5"), lladdr(Bytes{})}),   // empty NDA_LLADDR
      neighbor(AF_BRIDGE, NUD_PERMANENT, 2, {dst("192.0.2.6"), lladdr(kMac)}),   // not ARP/NDP
      neighbor(AF_INET, NUD_STALE, 2, {dst("192.0.2.7"), lladdr(kMac)}),
      neighbor(AF_INET, NUD_PERMANENT, 2, {dst("192.0.2.8"), lladdr(kMac)}),
      done(),
  });
  const NeighborDump result = parse(dump);
  ASSERT_FALSE(result.error);
  EXPECT_EQ(result.skipped, 6U);
  EXPECT_EQ(result.entries, (std::vector<NeighborEntry>{entry(AF_INET, "192.0.2.7", 2, "52:54:00:ab:cd:ef"),
                                                        entry(AF_INET, "192.0.2.8", 2, "52:54:00:ab:cd:ef")}));
}

TEST(NeighborDumpParse, MalformedAttributesDropOnlyTheirEntry) {
  const Bytes good = neighbor(AF_INET, NUD_REACHABLE, 2, {dst("192.0.2.9"), lladdr(kMac)});
  const std::vector<Bytes> bad{
      neighbor(AF_INET, NUD_REACHABLE, 2, {dst("2001:db8::1"), lladdr(kMac)}),   // IPv6 DST in an IPv4 entry
      neighbor(AF_INET6, NUD_REACHABLE, 2, {dst("192.0.2.1"), lladdr(kMac)}),    // IPv4 DST in an IPv6 entry
      neighbor(AF_INET, NUD_REACHABLE, 2, {attribute(NDA_DST, ip("192.0.2.1"), 3), lladdr(kMac)}),  // rta_len < 4
      neighbor(AF_INET, NUD_REACHABLE, 2, {dst("192.0.2.1"), attribute(NDA_LLADDR, kMac, 200)}),    // past the end
      // 6 bytes declared, 4 present: the rest would be read from the next message.
      neighbor(AF_INET, NUD_REACHABLE, 2, {dst("192.0.2.1"), attribute(NDA_LLADDR, {0x52, 0x54, 0, 0}, 10)}),
      neighbor(AF_INET, NUD_REACHABLE, 2, {dst("192.0.2.1"), lladdr(Bytes(33, 1))}),               // > MAX_ADDR_LEN
      message(RTM_NEWNEIGH, Bytes(sizeof(ndmsg) - 1, 0)),                                          // short ndmsg
  };
  for (std::size_t i = 0; i < bad.size(); ++i) {
    const NeighborDump result = parse(concat({bad[i], good, done()}));
    EXPECT_FALSE(result.error) << "case " << i;
    EXPECT_EQ(result.skipped, 1U) << "case " << i;
    ASSERT_EQ(result.entries.size(), 1U) << "case " << i;
    EXPECT_EQ(result.entries[0], entry(AF_INET, "192.0.2.9", 2, "52:54:00:ab:cd:ef")) << "case " << i;
  }
}

TEST(NeighborDumpParse, ToleratesWhatRtaOkTolerates) {
  // Padding shorter than an attribute header after the last attribute ends the walk.
  ndmsg ndm{};
  ndm.ndm_family = AF_INET;
  ndm.ndm_state = NUD_REACHABLE;
  ndm.ndm_ifindex = 5;
  Bytes payload;
  append(payload, ndm);
  const Bytes attributes = concat({dst("192.0.2.4"), lladdr(kMac)});
  payload.insert(payload.end(), attributes.begin(), attributes.end());
  payload.insert(payload.end(), {0, 0});
  // The type's flag bits (NLA_F_NESTED, NLA_F_NET_BYTEORDER) do not hide the attribute.
  const Bytes flagged = neighbor(AF_INET, NUD_REACHABLE, 6,
                                 {attribute(NDA_DST | NLA_F_NET_BYTEORDER, ip("192.0.2.5")), lladdr(kMac)});
  const NeighborDump result = parse(concat({message(RTM_NEWNEIGH, payload), flagged, done()}));
  ASSERT_FALSE(result.error);
  EXPECT_EQ(result.entries, (std::vector<NeighborEntry>{entry(AF_INET, "192.0.2.4", 5, "52:54:00:ab:cd:ef"),
                                                        entry(AF_INET, "192.0.2.5", 6, "52:54:00:ab:cd:ef")}));
}

TEST(NeighborDumpParse, BrokenFramingIsAnErrorButKeepsWhatCameBefore) {
  const Bytes good = neighbor(AF_INET, NUD_REACHABLE, 2, {dst("192.0.2.9"), lladdr(kMac)});
  nlmsghdr short_len{};
  short_len.nlmsg_len = 8;
  short_len.nlmsg_type = RTM_NEWNEIGH;
  short_len.nlmsg_seq = kSeq;
  Bytes too_short = good;
  append(too_short, short_len);

  Bytes past_end = concat({good, good});
  past_end.resize(past_end.size() - 1);  // the second message is cut

  Bytes header_cut = good;
  header_cut.insert(header_cut.end(), {1, 2, 3, 4, 5, 6, 7, 8, 9, 10});

  for (const Bytes* bytes : {&too_short, &past_end, &header_cut}) {
    const NeighborDump result = parse(*bytes);
    ASSERT_TRUE(result.error);
    EXPECT_EQ(*result.error, fmt::format("malformed netlink message at byte {}", good.size()));
    EXPECT_EQ(result.entries.size(), 1U);
    EXPECT_FALSE(result.done);
  }
}

TEST(NeighborDumpParse, KernelErrorsAreReported) {
  const NeighborDump refused = parse(errorMessage(-EPERM));
  ASSERT_TRUE(refused.error);
  EXPECT_EQ(*refused.error, "kernel refused the neighbour dump: Operation not permitted");

  const NeighborDump aborted = parse(concat({neighbor(AF_INET, NUD_STALE, 1, {dst("192.0.2.1"), lladdr(kMac)}),
                                             done(-EINTR)}));
  ASSERT_TRUE(aborted.error);
  EXPECT_EQ(*aborted.error, "neighbour dump aborted: Interrupted system call");
  EXPECT_TRUE(aborted.done);

  const NeighborDump truncated = parse(message(NLMSG_ERROR, {0xff, 0xff}));
  ASSERT_TRUE(truncated.error);
  EXPECT_EQ(*truncated.error, "truncated netlink error message");

  const NeighborDump odd = parse(errorMessage(INT_MIN));
  ASSERT_TRUE(odd.error);
  EXPECT_EQ(*odd.error, fmt::format("kernel refused the neighbour dump: error code {}", INT_MIN));

  const NeighborDump overrun = parse(message(NLMSG_OVERRUN, {}));
  ASSERT_TRUE(overrun.error);

  // An acknowledgement and a NOOP are no errors; an old kernel's DONE has no status.
  const NeighborDump ack = parse(concat({errorMessage(0), message(NLMSG_NOOP, {}), done(std::nullopt)}));
  EXPECT_FALSE(ack.error);
  EXPECT_TRUE(ack.done);
}

TEST(NeighborDumpParse, IgnoresOtherSequencesAndAnythingAfterDone) {
  const Bytes dump = concat({
      neighbor(AF_INET, NUD_REACHABLE, 2, {dst("192.0.2.1"), lladdr(kMac)}, kSeq + 1),
      done(0, kSeq + 1),  // someone else's dump ending does not end ours
      neighbor(AF_INET, NUD_REACHABLE, 2, {dst("192.0.2.2"), lladdr(kMac)}),
      done(),
      neighbor(AF_INET, NUD_REACHABLE, 2, {dst("192.0.2.3"), lladdr(kMac)}),
  });
  const NeighborDump result = parse(dump);
  ASSERT_FALSE(result.error);
  EXPECT_TRUE(result.done);
  EXPECT_EQ(result.skipped, 2U);
  EXPECT_EQ(result.entries, (std::vector<NeighborEntry>{entry(AF_INET, "192.0.2.2", 2, "52:54:00:ab:cd:ef")}));
}

TEST(NeighborDumpParse, ReadsUnalignedBuffers) {
  const Bytes dump = concat({neighbor(AF_INET6, NUD_REACHABLE, 2, {dst("2001:db8::7"), lladdr(kMac)}), done()});
  Bytes shifted(dump.size() + 1);
  std::copy(dump.begin(), dump.end(), shifted.begin() + 1);
  const NeighborDump result =
      parseNeighborDump(std::span<const std::uint8_t>(shifted).subspan(1), kSeq);
  ASSERT_FALSE(result.error);
  EXPECT_EQ(result.entries, (std::vector<NeighborEntry>{entry(AF_INET6, "2001:db8::7", 2, "52:54:00:ab:cd:ef")}));
}

// ---------------------------------------------------------------- lookup

TEST(NeighborTableLookup, EveryAddressFormASocketReports) {
  const NeighborTable table({entry(AF_INET, "192.0.2.10", 2, "52:54:00:ab:cd:ef"),
                             entry(AF_INET6, "2001:db8::10", 2, "52:54:00:ab:cd:ef")});
  EXPECT_EQ(table.size(), 2U);
  EXPECT_EQ(table.linkAddress("192.0.2.10"), "52:54:00:ab:cd:ef");
  EXPECT_EQ(table.linkAddress("::ffff:192.0.2.10"), "52:54:00:ab:cd:ef");  // dual-stack socket
  EXPECT_EQ(table.linkAddress("2001:db8::10"), "52:54:00:ab:cd:ef");
  EXPECT_EQ(table.linkAddress("2001:DB8:0::0:10"), "52:54:00:ab:cd:ef");
  EXPECT_EQ(table.linkAddress("[2001:db8::10]"), "52:54:00:ab:cd:ef");

  EXPECT_EQ(table.linkAddress("192.0.2.11"), std::nullopt);
  EXPECT_EQ(table.linkAddress("2001:db8::11"), std::nullopt);
  EXPECT_EQ(table.linkAddress("::ffff:192.0.2.11"), std::nullopt);
  for (const char* junk : {"", "localhost", "192.0.2.10.", "192.0.2.010", "2001:db8::10%", "[2001:db8::10",
                           "2001:db8::10%no-such-if0", "::ffff:c000:20a:1"}) {
    EXPECT_EQ(table.linkAddress(junk), std::nullopt) << junk;
  }
  EXPECT_EQ(NeighborTable{}.linkAddress("192.0.2.10"), std::nullopt);

  // The kernel keeps no NDP entry for a mapped address, but if it did the lookup would find it.
  const NeighborTable odd({entry(AF_INET6, "::ffff:192.0.2.12", 2, "02:00:00:00:00:12")});
  EXPECT_EQ(odd.linkAddress("::ffff:192.0.2.12"), "02:00:00:00:00:12");
  EXPECT_EQ(odd.linkAddress("192.0.2.12"), std::nullopt);
}

TEST(NeighborTableLookup, ScopeSelectsTheInterface) {
  const unsigned lo = if_nametoindex("lo");
  ASSERT_NE(lo, 0U);
  const int other = static_cast<int>(lo) + 1000;
  const NeighborTable table({entry(AF_INET6, "fe80::1", static_cast<int>(lo), "52:54:00:ab:cd:ef"),
                             entry(AF_INET6, "fe80::1", other, "02:00:00:00:00:01"),
                             entry(AF_INET6, "fe80::2", other, "02:00:00:00:00:02")});
  EXPECT_EQ(table.linkAddress("fe80::1%lo"), "52:54:00:ab:cd:ef");
  EXPECT_EQ(table.linkAddress(fmt::format("fe80::1%{}", lo)), "52:54:00:ab:cd:ef");
  EXPECT_EQ(table.linkAddress(fmt::format("[fe80::1%{}]", other)), "02:00:00:00:00:01");
  // The same link-local on two links with two MACs: without a scope there is no answer.
  EXPECT_EQ(table.linkAddress("fe80::1"), std::nullopt);
  EXPECT_EQ(table.linkAddress("fe80::2"), "02:00:00:00:00:02");
  EXPECT_EQ(table.linkAddress("fe80::2%lo"), std::nullopt);
  EXPECT_EQ(table.linkAddress("fe80::1%no-such-if0"), std::nullopt);

  // Two entries that agree are no ambiguity.
  const NeighborTable agreeing({entry(AF_INET6, "fe80::1", 2, "02:00:00:00:00:01"),
                                entry(AF_INET6, "fe80::1", 3, "02:00:00:00:00:01")});
  EXPECT_EQ(agreeing.linkAddress("fe80::1"), "02:00:00:00:00:01");
}

}  // namespace
}  // namespace coap_edge::discovery
