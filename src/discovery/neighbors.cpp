// Neighbour table through rtnetlink. The parser never forms a pointer to a netlink struct
// inside the buffer: RTA_OK/RTA_NEXT/NLMSG_NEXT cast (old-style) to possibly unaligned
// structs, which is undefined behaviour on fuzzed bytes, so every header is copied out with
// std::memcpy at an offset checked against the remaining length. The alignment rules are the
// kernel's (NLMSG_ALIGN / RTA_ALIGN), asserted below.

#include "discovery/neighbors.h"

#include <arpa/inet.h>
#include <fmt/format.h>
#include <linux/neighbour.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <net/if.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <charconv>
#include <chrono>
#include <climits>
#include <cstring>
#include <exception>
#include <system_error>
#include <type_traits>

namespace coap_edge::discovery {
namespace {

constexpr std::size_t align4(std::size_t n) { return (n + 3U) & ~std::size_t{3U}; }
static_assert(NLMSG_ALIGNTO == 4U && RTA_ALIGNTO == 4U, "netlink alignment is 4 bytes");
constexpr std::size_t kMessageHeaderBytes = align4(sizeof(nlmsghdr));  // NLMSG_HDRLEN
constexpr std::size_t kAttributeHeaderBytes = align4(sizeof(rtattr));  // RTA_LENGTH(0)
constexpr std::size_t kNeighborHeaderBytes = align4(sizeof(ndmsg));    // offset of NDA_RTA()
static_assert(kMessageHeaderBytes == NLMSG_ALIGN(sizeof(nlmsghdr)));
static_assert(kAttributeHeaderBytes == RTA_LENGTH(0));
// Ethernet is 6 bytes, InfiniBand 20; MAX_ADDR_LEN in the kernel is 32.
constexpr std::size_t kMaxLinkAddressBytes = 32;
constexpr std::chrono::milliseconds kReceiveTimeout{200};
// Several receives each bounded by kReceiveTimeout could add up; the whole read is bounded too.
constexpr std::chrono::milliseconds kReadDeadline{500};
constexpr std::size_t kReceiveBufferBytes = 64 * 1024;  // the kernel fills at most 32 KiB per datagram

/// A copy of the T stored at `offset`, or nullopt if the bytes are not all there.
template <typename T>
std::optional<T> readAt(std::span<const std::uint8_t> bytes, std::size_t offset) {
  static_assert(std::is_trivially_copyable_v<T>);
  if (offset > bytes.size() || bytes.size() - offset < sizeof(T)) return std::nullopt;
  T value;
  std::memcpy(&value, bytes.data() + offset, sizeof(T));
  return value;
}

std::string errnoText(int code) {
  if (code <= 0) return fmt::format("error code {}", code);
  return std::error_code(code, std::system_category()).message();
}

/// A kernel status (0 or -errno) as text; INT_MIN cannot be negated.
std::string kernelErrorText(int status) {
  if (status >= 0 || status == INT_MIN) return fmt::format("error code {}", status);
  return errnoText(-status);
}

std::size_t addressBytes(int family) {
  if (family == AF_INET) return 4;
  if (family == AF_INET6) return 16;
  return 0;
}

/// One RTM_NEWNEIGH payload (ndmsg + attributes), or nullopt if it is unusable or malformed.
std::optional<NeighborEntry> parseNeighbor(std::span<const std::uint8_t> payload) {
  const auto ndm = readAt<ndmsg>(payload, 0);
  if (!ndm) return std::nullopt;
  const std::size_t ip_bytes = addressBytes(ndm->ndm_family);
  if (ip_bytes == 0) return std::nullopt;
  // A failed or unresolved entry may carry a stale or no address: not evidence of identity.
  if ((ndm->ndm_state & (NUD_FAILED | NUD_INCOMPLETE)) != 0) return std::nullopt;

  NeighborEntry entry;
  entry.family = ndm->ndm_family;
  entry.ifindex = ndm->ndm_ifindex;
  bool have_ip = false;
  std::span<const std::uint8_t> link_address;
  // Same walk as RTA_OK/RTA_NEXT, but a bad rta_len drops the entry instead of ending quietly.
  std::size_t offset = kNeighborHeaderBytes;
  while (offset <= payload.size() && payload.size() - offset >= kAttributeHeaderBytes) {
    const auto rta = readAt<rtattr>(payload, offset);
    if (!rta || rta->rta_len < kAttributeHeaderBytes || rta->rta_len > payload.size() - offset) {
      return std::nullopt;
    }
    const auto data = payload.subspan(offset + kAttributeHeaderBytes, rta->rta_len - kAttributeHeaderBytes);
    switch (rta->rta_type & NLA_TYPE_MASK) {
      case NDA_DST:
        if (data.size() != ip_bytes) return std::nullopt;
        entry.ip = {};
        std::memcpy(entry.ip.data(), data.data(), ip_bytes);
        have_ip = true;
        break;
      case NDA_LLADDR:
        if (data.size() > kMaxLinkAddressBytes) return std::nullopt;
        link_address = data;
        break;
      default:
        break;
    }
    offset += align4(rta->rta_len);
  }
  if (!have_ip || link_address.empty()) return std::nullopt;
  entry.link_address = formatLinkAddress(link_address);
  return entry;
}

/// Owns a file descriptor.
class Fd {
 public:
  explicit Fd(int fd) : fd_(fd) {}
  ~Fd() {
    if (fd_ >= 0) ::close(fd_);
  }
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  [[nodiscard]] int get() const { return fd_; }

 private:
  int fd_;
};

std::uint32_t nextSequence() {
  static std::atomic<std::uint32_t> sequence{1};
  return sequence.fetch_add(1, std::memory_order_relaxed);
}

/// The dump into `out`; the reason on failure (then `out` is to be discarded).
std::optional<std::string> dumpNeighbors(std::vector<NeighborEntry>& out) {
  const Fd socket_fd(::socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_ROUTE));
  if (socket_fd.get() < 0) return fmt::format("netlink socket: {}", errnoText(errno));
  timeval timeout{};
  timeout.tv_usec = std::chrono::duration_cast<std::chrono::microseconds>(kReceiveTimeout).count();
  if (::setsockopt(socket_fd.get(), SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof timeout) != 0) {
    return fmt::format("netlink SO_RCVTIMEO: {}", errnoText(errno));
  }

  const std::uint32_t sequence = nextSequence();
  nlmsghdr header{};
  header.nlmsg_len = static_cast<std::uint32_t>(kMessageHeaderBytes + sizeof(ndmsg));
  header.nlmsg_type = RTM_GETNEIGH;
  header.nlmsg_flags = NLM_F_REQUEST | NLM_F_DUMP;
  header.nlmsg_seq = sequence;
  ndmsg request_body{};
  request_body.ndm_family = AF_UNSPEC;  // both ARP and NDP
  std::array<std::uint8_t, kMessageHeaderBytes + sizeof(ndmsg)> request{};
  std::memcpy(request.data(), &header, sizeof header);
  std::memcpy(request.data() + kMessageHeaderBytes, &request_body, sizeof request_body);

  sockaddr_nl kernel{};
  kernel.nl_family = AF_NETLINK;
  if (::sendto(socket_fd.get(), request.data(), request.size(), 0, reinterpret_cast<const sockaddr*>(&kernel),
               sizeof kernel) < 0) {
    return fmt::format("netlink RTM_GETNEIGH request: {}", errnoText(errno));
  }

  std::vector<std::uint8_t> buffer(kReceiveBufferBytes);
  std::size_t total_bytes = 0;
  const auto deadline = std::chrono::steady_clock::now() + kReadDeadline;
  while (true) {
    if (std::chrono::steady_clock::now() > deadline) return "netlink neighbour dump did not finish in time";
    sockaddr_nl sender{};
    iovec io{buffer.data(), buffer.size()};
    msghdr message{};
    message.msg_name = &sender;
    message.msg_namelen = sizeof sender;
    message.msg_iov = &io;
    message.msg_iovlen = 1;
    const ssize_t received = ::recvmsg(socket_fd.get(), &message, 0);
    if (received < 0) {
      if (errno == EINTR) continue;
      if (errno == EAGAIN || errno == EWOULDBLOCK) return "no answer from netlink within 200 ms";
      return fmt::format("netlink receive: {}", errnoText(errno));
    }
    if (received == 0) return "netlink socket closed";
    if ((message.msg_flags & MSG_TRUNC) != 0) return "netlink datagram truncated";
    if (sender.nl_pid != 0) continue;  // only the kernel answers a dump; ignore anyone else
    const auto bytes = static_cast<std::size_t>(received);
    total_bytes += bytes;

    NeighborDump dump = parseNeighborDump(std::span<const std::uint8_t>(buffer.data(), bytes), sequence);
    if (dump.error) return *dump.error;
    for (auto& entry : dump.entries) {
      if (out.size() >= NeighborTable::kMaxEntries) return std::nullopt;
      out.push_back(std::move(entry));
    }
    if (dump.done || total_bytes >= NeighborTable::kMaxBytes) return std::nullopt;
  }
}

/// The interface index named by a "%scope" suffix: a name, or a number as getaddrinfo allows.
unsigned scopeIndex(std::string_view scope) {
  if (scope.empty() || scope.size() >= IF_NAMESIZE) return 0;
  const std::string name(scope);
  if (const unsigned index = ::if_nametoindex(name.c_str()); index != 0) return index;
  unsigned number = 0;
  const auto [end, ec] = std::from_chars(scope.data(), scope.data() + scope.size(), number);
  if (ec != std::errc{} || end != scope.data() + scope.size()) return 0;
  return number;
}

}  // namespace

std::string formatLinkAddress(std::span<const std::uint8_t> bytes) {
  static constexpr char kHex[] = "0123456789abcdef";
  std::string text;
  text.reserve(bytes.size() * 3);
  for (const std::uint8_t byte : bytes) {
    if (!text.empty()) text.push_back(':');
    text.push_back(kHex[byte >> 4U]);
    text.push_back(kHex[byte & 0x0fU]);
  }
  return text;
}

NeighborDump parseNeighborDump(std::span<const std::uint8_t> buffer, std::uint32_t sequence) {
  NeighborDump dump;
  std::size_t offset = 0;
  while (offset < buffer.size()) {
    const auto header = readAt<nlmsghdr>(buffer, offset);
    if (!header || header->nlmsg_len < kMessageHeaderBytes || header->nlmsg_len > buffer.size() - offset) {
      dump.error = fmt::format("malformed netlink message at byte {}", offset);
      return dump;
    }
    const auto payload = buffer.subspan(offset + kMessageHeaderBytes, header->nlmsg_len - kMessageHeaderBytes);
    offset = std::min(buffer.size(), offset + align4(header->nlmsg_len));  // NLMSG_NEXT

    if (header->nlmsg_seq != sequence) {
      ++dump.skipped;
      continue;
    }
    switch (header->nlmsg_type) {
      case NLMSG_DONE: {
        // Since Linux 4.x the status says whether the dump ended early (e.g. -EINTR).
        const auto status = readAt<int>(payload, 0);
        if (status && *status < 0) dump.error = fmt::format("neighbour dump aborted: {}", kernelErrorText(*status));
        dump.done = true;
        return dump;
      }
      case NLMSG_ERROR: {
        const auto status = readAt<int>(payload, 0);  // nlmsgerr.error comes first
        if (!status) {
          dump.error = "truncated netlink error message";
          return dump;
        }
        if (*status == 0) break;  // an acknowledgement carries no news
        dump.error = fmt::format("kernel refused the neighbour dump: {}", kernelErrorText(*status));
        return dump;
      }
      case NLMSG_OVERRUN:
        dump.error = "netlink overrun";
        return dump;
      case RTM_NEWNEIGH:
        if (auto entry = parseNeighbor(payload)) {
          dump.entries.push_back(std::move(*entry));
        } else {
          ++dump.skipped;
        }
        break;
      default:
        break;  // NLMSG_NOOP and anything newer
    }
  }
  return dump;
}

NeighborTable NeighborTable::read() noexcept {
  NeighborTable table;
  try {
    if (auto error = dumpNeighbors(table.entries_)) {
      table.entries_.clear();
      table.error_ = std::move(*error);
    }
  } catch (const std::exception& e) {
    table.entries_.clear();
    table.error_ = fmt::format("reading the neighbour table: {}", e.what());
  } catch (...) {
    table.entries_.clear();
    table.error_ = "reading the neighbour table: unknown failure";
  }
  return table;
}

std::optional<std::string> NeighborTable::linkAddress(std::string_view host) const {
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']') host = host.substr(1, host.size() - 2);
  unsigned scope = 0;
  if (const auto percent = host.find('%'); percent != std::string_view::npos) {
    scope = scopeIndex(host.substr(percent + 1));
    if (scope == 0) return std::nullopt;  // an interface we do not have matches nothing
    host = host.substr(0, percent);
  }
  if (host.empty() || host.size() >= INET6_ADDRSTRLEN) return std::nullopt;
  const std::string text(host);

  NeighborEntry wanted;
  // ::ffff:a.b.c.d is how a dual-stack socket reports an IPv4 source: ARP has it as a.b.c.d.
  std::optional<NeighborEntry> mapped;
  if (::inet_pton(AF_INET, text.c_str(), wanted.ip.data()) == 1) {
    wanted.family = AF_INET;
  } else if (::inet_pton(AF_INET6, text.c_str(), wanted.ip.data()) == 1) {
    wanted.family = AF_INET6;
    static constexpr std::array<std::uint8_t, 12> kMappedPrefix{0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
    if (std::equal(kMappedPrefix.begin(), kMappedPrefix.end(), wanted.ip.begin())) {
      mapped.emplace();
      mapped->family = AF_INET;
      std::copy_n(wanted.ip.begin() + 12, 4, mapped->ip.begin());
    }
  } else {
    return std::nullopt;
  }
  const auto matches = [&](const NeighborEntry& entry) {
    const auto same = [&](const NeighborEntry& address) {
      return entry.family == address.family && entry.ip == address.ip;
    };
    return same(wanted) || (mapped && same(*mapped));
  };

  // Without a scope the same address may be known on two links (link-local always can be):
  // answer only if every match agrees, since a wrong merge is worse than none.
  const std::string* found = nullptr;
  for (const NeighborEntry& entry : entries_) {
    if (!matches(entry)) continue;
    if (scope != 0 && (entry.ifindex < 0 || static_cast<unsigned>(entry.ifindex) != scope)) continue;
    if (found != nullptr && *found != entry.link_address) return std::nullopt;
    found = &entry.link_address;
  }
  if (found == nullptr) return std::nullopt;
  return *found;
}

}  // namespace coap_edge::discovery
