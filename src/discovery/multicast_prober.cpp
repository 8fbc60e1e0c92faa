#include "discovery/multicast_prober.h"

#include "coap/datagram.h"
#include "common/log.h"

#include <arpa/inet.h>
#include <net/if.h>
#include <netinet/in.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <cstring>

namespace coap_edge::discovery {
namespace {

constexpr std::string_view kLogTag = "discovery";
constexpr const char* kAllCoapNodes4 = "224.0.1.187";
constexpr const char* kAllCoapNodesLink = "ff02::fd";
constexpr const char* kAllCoapNodesSite = "ff05::fd";
// Datagrams read per wakeup: 200 nodes answer one probe, but the loop must stay responsive.
constexpr int kMaxReadsPerWakeup = 256;
constexpr std::size_t kTokenBytes = 8;

void setOpt(int fd, int level, int name, int value, const char* what) {
  if (setsockopt(fd, level, name, &value, sizeof(value)) != 0) {
    throw std::runtime_error(std::string("setsockopt ") + what + ": " + std::strerror(errno));
  }
}

std::string randomToken() {
  std::string token(kTokenBytes, '\0');
  if (getrandom(token.data(), token.size(), 0) != static_cast<ssize_t>(token.size())) {
    // Only used to match answers to our own probe, not as a secret: the clock will do.
    const auto t = std::chrono::steady_clock::now().time_since_epoch().count();
    std::memcpy(token.data(), &t, std::min(sizeof(t), token.size()));
  }
  return token;
}

}  // namespace

MulticastProber::MulticastProber(ProbeSettings settings) : settings_(std::move(settings)) {
  try {
    for (std::size_t i = 0; i < settings_.interfaces.size(); ++i) openSockets(i, settings_.interfaces[i]);
  } catch (...) {
    for (auto& s : sockets_) close(s.fd);
    throw;
  }
  std::uint16_t mid = 0;
  if (getrandom(&mid, sizeof(mid), 0) == sizeof(mid)) message_id_ = mid;
}

MulticastProber::~MulticastProber() {
  for (auto& s : sockets_) close(s.fd);
}

void MulticastProber::openSockets(std::size_t index, const std::string& interface) {
  const unsigned ifindex = if_nametoindex(interface.c_str());
  if (ifindex == 0) throw ProbeError(index, "no network interface named '" + interface + "' on this host");
  std::size_t opened = 0;
  for (const int family : {AF_INET, AF_INET6}) {
    const int fd = socket(family, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) continue;  // a kernel without IPv6: the other family still works
    try {
      if (family == AF_INET) {
        ip_mreqn mreq{};
        mreq.imr_ifindex = static_cast<int>(ifindex);
        if (setsockopt(fd, IPPROTO_IP, IP_MULTICAST_IF, &mreq, sizeof(mreq)) != 0) {
          throw std::runtime_error(std::string("IP_MULTICAST_IF: ") + std::strerror(errno));
        }
        // All-CoAP-Nodes is not link-scoped for IPv4: keep the probe on this link anyway.
        setOpt(fd, IPPROTO_IP, IP_MULTICAST_TTL, 1, "IP_MULTICAST_TTL");
        setOpt(fd, IPPROTO_IP, IP_MULTICAST_LOOP, 0, "IP_MULTICAST_LOOP");
        setOpt(fd, IPPROTO_IP, IP_PKTINFO, 1, "IP_PKTINFO");
        sockaddr_in any{};
        any.sin_family = AF_INET;
        if (bind(fd, reinterpret_cast<const sockaddr*>(&any), sizeof(any)) != 0) {
          throw std::runtime_error(std::string("bind: ") + std::strerror(errno));
        }
      } else {
        setOpt(fd, IPPROTO_IPV6, IPV6_V6ONLY, 1, "IPV6_V6ONLY");
        setOpt(fd, IPPROTO_IPV6, IPV6_MULTICAST_IF, static_cast<int>(ifindex), "IPV6_MULTICAST_IF");
        setOpt(fd, IPPROTO_IPV6, IPV6_MULTICAST_HOPS, 1, "IPV6_MULTICAST_HOPS");
        setOpt(fd, IPPROTO_IPV6, IPV6_MULTICAST_LOOP, 0, "IPV6_MULTICAST_LOOP");
        setOpt(fd, IPPROTO_IPV6, IPV6_RECVPKTINFO, 1, "IPV6_RECVPKTINFO");
        sockaddr_in6 any{};
        any.sin6_family = AF_INET6;
        if (bind(fd, reinterpret_cast<const sockaddr*>(&any), sizeof(any)) != 0) {
          throw std::runtime_error(std::string("bind: ") + std::strerror(errno));
        }
      }
    } catch (const std::exception& e) {
      close(fd);
      CE_LOG_WARN("multicast discovery on {} ({}): {}", interface, family == AF_INET ? "IPv4" : "IPv6", e.what());
      continue;
    }
    sockets_.push_back({fd, family, ifindex, interface});
    ++opened;
  }
  if (opened == 0) throw ProbeError(index, "cannot open a multicast socket on '" + interface + "'");
}

std::vector<int> MulticastProber::fds() const {
  std::vector<int> out;
  out.reserve(sockets_.size());
  for (const auto& s : sockets_) out.push_back(s.fd);
  return out;
}

void MulticastProber::sendTo(const Socket& s, const std::vector<std::uint8_t>& datagram, const char* group) {
  sockaddr_storage dst{};
  socklen_t len = 0;
  if (s.family == AF_INET) {
    auto* in = reinterpret_cast<sockaddr_in*>(&dst);
    in->sin_family = AF_INET;
    in->sin_port = htons(settings_.port);
    inet_pton(AF_INET, group, &in->sin_addr);
    len = sizeof(sockaddr_in);
  } else {
    auto* in6 = reinterpret_cast<sockaddr_in6*>(&dst);
    in6->sin6_family = AF_INET6;
    in6->sin6_port = htons(settings_.port);
    in6->sin6_scope_id = s.ifindex;
    inet_pton(AF_INET6, group, &in6->sin6_addr);
    len = sizeof(sockaddr_in6);
  }
  if (sendto(s.fd, datagram.data(), datagram.size(), 0, reinterpret_cast<const sockaddr*>(&dst), len) < 0) {
    ++stats_.send_errors;
    // An interface that is down or has no address of this family fails every round: say it once.
    if (!send_error_logged_) {
      CE_LOG_WARN("multicast probe to {} on {} failed: {} (reported once)", group, s.interface, std::strerror(errno));
      send_error_logged_ = true;
    }
    return;
  }
  ++stats_.probes_sent;
}

void MulticastProber::probe(Clock::time_point now) {
  token_ = randomToken();
  ++message_id_;
  round_ends_ = now + settings_.leisure;
  ++stats_.rounds;
  const std::string query = settings_.rt ? "rt=" + *settings_.rt : std::string();
  const auto datagram = coap::encodeNonGet(message_id_, token_, ".well-known/core", query);
  for (const auto& s : sockets_) {
    if (s.family == AF_INET) {
      sendTo(s, datagram, kAllCoapNodes4);
    } else {
      sendTo(s, datagram, kAllCoapNodesLink);
      sendTo(s, datagram, kAllCoapNodesSite);
    }
  }
}

void MulticastProber::onReadable(int fd, const AnswerSink& sink, Clock::time_point now) {
  const Socket* socket = nullptr;
  for (const auto& s : sockets_) {
    if (s.fd == fd) socket = &s;
  }
  if (socket == nullptr) return;
  std::array<std::uint8_t, 1600> buf{};
  for (int i = 0; i < kMaxReadsPerWakeup; ++i) {
    sockaddr_storage from{};
    alignas(cmsghdr) std::array<char, 256> control{};
    iovec iov{buf.data(), buf.size()};
    msghdr msg{};
    msg.msg_name = &from;
    msg.msg_namelen = sizeof(from);
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control.data();
    msg.msg_controllen = control.size();
    const ssize_t n = recvmsg(fd, &msg, MSG_DONTWAIT);
    if (n < 0) return;  // EAGAIN: drained; other errors (ICMP unreachable) end this wakeup too
    if ((msg.msg_flags & MSG_TRUNC) != 0) {
      ++stats_.malformed;
      continue;
    }
    unsigned arrived_on = 0;
    for (cmsghdr* c = CMSG_FIRSTHDR(&msg); c != nullptr; c = CMSG_NXTHDR(&msg, c)) {
      if (c->cmsg_level == IPPROTO_IP && c->cmsg_type == IP_PKTINFO) {
        in_pktinfo info{};
        std::memcpy(&info, CMSG_DATA(c), sizeof(info));
        arrived_on = static_cast<unsigned>(info.ipi_ifindex);
      } else if (c->cmsg_level == IPPROTO_IPV6 && c->cmsg_type == IPV6_PKTINFO) {
        in6_pktinfo info{};
        std::memcpy(&info, CMSG_DATA(c), sizeof(info));
        arrived_on = info.ipi6_ifindex;
      }
    }
    std::array<char, INET6_ADDRSTRLEN> text{};
    std::string host;
    std::uint16_t port = 0;
    if (from.ss_family == AF_INET) {
      const auto* in = reinterpret_cast<const sockaddr_in*>(&from);
      inet_ntop(AF_INET, &in->sin_addr, text.data(), text.size());
      host = text.data();
      port = ntohs(in->sin_port);
    } else if (from.ss_family == AF_INET6) {
      const auto* in6 = reinterpret_cast<const sockaddr_in6*>(&from);
      inet_ntop(AF_INET6, &in6->sin6_addr, text.data(), text.size());
      host = text.data();
      // A link-local address means nothing without its interface.
      if (IN6_IS_ADDR_LINKLOCAL(&in6->sin6_addr)) host += "%" + socket->interface;
      port = ntohs(in6->sin6_port);
    }
    handleDatagram(*socket, buf.data(), static_cast<std::size_t>(n), arrived_on, host, port, sink, now);
  }
}

void MulticastProber::handleDatagram(const Socket& s, const std::uint8_t* data, std::size_t len, unsigned arrived_on,
                                     const std::string& host, std::uint16_t port, const AnswerSink& sink,
                                     Clock::time_point now) {
  if (arrived_on != s.ifindex || token_.empty() || now > round_ends_ || host.empty()) {
    ++stats_.unexpected;
    return;
  }
  const auto message = coap::parseDatagram({data, len});
  if (!message) {
    ++stats_.malformed;
    return;
  }
  if (message->token != token_) {
    ++stats_.unexpected;
    return;
  }
  if (message->code != coap::Code::content ||
      (message->content_format && *message->content_format != coap::content_format::link_format)) {
    ++stats_.malformed;
    return;
  }
  ProbeAnswer answer;
  answer.interface = s.interface;
  answer.host = host;
  answer.port = port;
  const bool partial = message->block2 && message->block2->more;
  if (!partial) {
    auto parsed = parseLinkFormat(message->payload);
    if (!parsed.ok()) {
      ++stats_.malformed;
      CE_LOG_DEBUG("multicast answer from {} on {}: bad link format at {}: {}", host, s.interface,
                   parsed.error->offset, parsed.error->message);
      return;
    }
    answer.links = std::move(parsed.links);
  }
  answer.complete = !partial;
  ++stats_.answers;
  sink(answer);
}

}  // namespace coap_edge::discovery
