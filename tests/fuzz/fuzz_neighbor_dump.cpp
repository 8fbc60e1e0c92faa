// libFuzzer target for the rtnetlink neighbour dump parser (discovery/neighbors.h).
// Any input: no crash, no sanitizer report (the parser must not form pointers into the
// unaligned, truncated buffer); every entry is an IPv4/IPv6 address with a well-formed, bounded
// link-layer address; parsing is deterministic; and a table built from the entries answers each
// entry's "address%ifindex" with that entry's link address unless another entry contradicts it.
// A broken property traps.

#include "discovery/neighbors.h"

#include <arpa/inet.h>
#include <sys/socket.h>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <span>
#include <string>

namespace {

using namespace coap_edge::discovery;

constexpr std::uint32_t kSequence = 1;  // the seeds' nlmsg_seq

void checkEntry(const NeighborEntry& entry) {
  if (entry.family != AF_INET && entry.family != AF_INET6) __builtin_trap();
  if (entry.family == AF_INET) {
    for (std::size_t i = 4; i < entry.ip.size(); ++i) {
      if (entry.ip[i] != 0) __builtin_trap();
    }
  }
  const std::string& mac = entry.link_address;
  // "xx" or "xx:xx:..." with at most 32 bytes (MAX_ADDR_LEN).
  if (mac.size() < 2 || mac.size() > 32 * 3 - 1 || mac.size() % 3 != 2) __builtin_trap();
  for (std::size_t i = 0; i < mac.size(); ++i) {
    const char c = mac[i];
    const bool hex = (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f');
    if (i % 3 == 2 ? c != ':' : !hex) __builtin_trap();
  }
}

/// Whether a lookup of `entry`'s address text also finds `other`: the same address, or for an
/// IPv4-mapped IPv6 address the IPv4 address that ARP would hold.
bool answersFor(const NeighborEntry& entry, const NeighborEntry& other) {
  if (other.family == entry.family && other.ip == entry.ip) return true;
  static constexpr std::uint8_t kMappedPrefix[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
  if (entry.family != AF_INET6 || other.family != AF_INET) return false;
  return std::equal(entry.ip.begin(), entry.ip.begin() + 12, kMappedPrefix) &&
         std::equal(entry.ip.begin() + 12, entry.ip.end(), other.ip.begin());
}

void checkLookup(const NeighborTable& table, const NeighborEntry& entry) {
  if (entry.ifindex <= 0) return;
  char text[INET6_ADDRSTRLEN] = {};
  if (inet_ntop(entry.family, entry.ip.data(), text, sizeof text) == nullptr) __builtin_trap();
  const auto answer = table.linkAddress(std::string(text) + "%" + std::to_string(entry.ifindex));
  if (answer == entry.link_address) return;
  // Only a contradicting entry on the same interface may suppress the answer (an interface of
  // this machine with a name made of digits could shadow the number: not present in fuzzing).
  bool contradicted = false;
  for (const NeighborEntry& other : table.entries()) {
    contradicted = contradicted || (answersFor(entry, other) && other.ifindex == entry.ifindex &&
                                    other.link_address != entry.link_address);
  }
  if (!contradicted || answer.has_value()) __builtin_trap();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::span<const std::uint8_t> input(data, size);
  const NeighborDump dump = parseNeighborDump(input, kSequence);
  // Each entry needs a netlink header, an ndmsg, a 4-byte NDA_DST and a 1-byte NDA_LLADDR.
  if (dump.entries.size() * (16 + 12 + 8 + 5) > size) __builtin_trap();
  for (const NeighborEntry& entry : dump.entries) checkEntry(entry);
  if (dump.error && dump.error->empty()) __builtin_trap();

  const NeighborDump again = parseNeighborDump(input, kSequence);
  if (again.entries != dump.entries || again.done != dump.done || again.error != dump.error ||
      again.skipped != dump.skipped) {
    __builtin_trap();
  }

  const NeighborTable table(dump.entries);
  if (table.size() != dump.entries.size()) __builtin_trap();
  const std::size_t checked = std::min<std::size_t>(dump.entries.size(), 64);
  for (std::size_t i = 0; i < checked; ++i) checkLookup(table, dump.entries[i]);
  return 0;
}
