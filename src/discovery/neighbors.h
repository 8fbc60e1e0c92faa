#pragma once
// The kernel's neighbour table (ARP for IPv4, NDP for IPv6), read through one rtnetlink
// RTM_GETNEIGH dump. A dual-stack node answers a multicast probe from its IPv4, its IPv6
// link-local and its IPv6 global address; the link-layer address of each source is what lets
// discovery merge the three answers into one node.
//
// The dump parser is a pure function over received bytes so that it is unit-tested with
// hand-built messages and fuzzed (tests/unit/test_neighbors.cpp, tests/fuzz/fuzz_neighbor_dump.cpp).

#include <array>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace coap_edge::discovery {

/// One usable entry: an IP address that resolved to a link-layer address on an interface.
struct NeighborEntry {
  int family = 0;                        ///< AF_INET or AF_INET6
  std::array<std::uint8_t, 16> ip{};     ///< network byte order; IPv4 in the first 4 bytes, rest 0
  int ifindex = 0;                       ///< interface the entry belongs to
  std::string link_address;              ///< "52:54:00:12:34:56", lower-case hex

  friend bool operator==(const NeighborEntry&, const NeighborEntry&) = default;
};

/// What one received buffer (one or more netlink messages) of a neighbour dump contained.
struct NeighborDump {
  std::vector<NeighborEntry> entries;  ///< usable entries, in the order received
  bool done = false;                   ///< NLMSG_DONE seen: the dump is complete
  /// The kernel refused or aborted the dump (NLMSG_ERROR / negative NLMSG_DONE status) or the
  /// framing is broken; entries parsed before the fault are kept but should not be trusted alone.
  std::optional<std::string> error;
  /// Well-framed neighbour messages that were not used: not AF_INET/AF_INET6, NUD_FAILED or
  /// NUD_INCOMPLETE, no NDA_DST or NDA_LLADDR, a malformed attribute, or a foreign sequence number.
  std::size_t skipped = 0;
};

/// Parses netlink messages as received from a NETLINK_ROUTE socket after an RTM_GETNEIGH dump
/// request. Reads through std::memcpy at bounds-checked offsets, so any byte string (unaligned,
/// truncated, hostile) is safe. Messages whose nlmsg_seq differs from `sequence` are skipped.
/// Never throws except std::bad_alloc.
[[nodiscard]] NeighborDump parseNeighborDump(std::span<const std::uint8_t> buffer, std::uint32_t sequence);

/// Formats link-layer address bytes as lower-case hex pairs joined by ':' ("" for no bytes).
[[nodiscard]] std::string formatLinkAddress(std::span<const std::uint8_t> bytes);

/// Link-layer addresses of the kernel's neighbour table (ARP / NDP) via one rtnetlink RTM_GETNEIGH dump.
class NeighborTable {
 public:
  static constexpr std::size_t kMaxEntries = 64 * 1024;
  static constexpr std::size_t kMaxBytes = 1024 * 1024;

  NeighborTable() = default;
  /// A table of given entries (tests; a caller that keeps entries across reads).
  explicit NeighborTable(std::vector<NeighborEntry> entries) : entries_(std::move(entries)) {}

  /// Reads the table now (bounded: stops after 64k entries or 1 MB, every receive waits at most
  /// 200 ms); an empty table on any error (see error(), logged once by the caller). Never throws.
  [[nodiscard]] static NeighborTable read() noexcept;

  /// "52:54:00:12:34:56" for a numeric IPv4/IPv6 address (IPv6 link-local may carry "%ifname":
  /// match the interface index too), or nullopt. "[...]" brackets and IPv4-mapped IPv6
  /// ("::ffff:192.0.2.1", as a dual-stack socket reports IPv4 sources) are accepted.
  [[nodiscard]] std::optional<std::string> linkAddress(std::string_view host) const;

  [[nodiscard]] std::size_t size() const { return entries_.size(); }
  [[nodiscard]] const std::vector<NeighborEntry>& entries() const { return entries_; }
  /// Why read() returned an empty table; empty after a successful read.
  [[nodiscard]] const std::string& error() const { return error_; }

 private:
  std::vector<NeighborEntry> entries_;
  std::string error_;
};

}  // namespace coap_edge::discovery
