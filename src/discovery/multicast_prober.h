#pragma once
// Multicast discovery (RFC 7252 §8, RFC 6690 §4): GET /.well-known/core as NON to All-CoAP-Nodes
// (224.0.1.187, ff02::fd, ff05::fd) on each configured interface, answers gathered for the
// leisure window. One unbound-to-address socket per interface and family, sending with
// IP_MULTICAST_IF / IPV6_MULTICAST_IF so that "wpan0"-style interfaces get their own probe, and
// receiving with the arrival interface (IP_PKTINFO) checked: an answer that did not come in on
// the interface it was asked on, or that does not carry the current round's token, is dropped
// and counted. Nothing here ever answers a multicast request (RFC 7252 §11.3).
//
// The daemon owns the loop: it watches fds(), calls onReadable() and probe() on its timer.

#include "discovery/link_format.h"

#include <chrono>
#include <cstdint>
#include <functional>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

namespace coap_edge::discovery {

struct ProbeSettings {
  std::vector<std::string> interfaces;
  std::optional<std::string> rt;  ///< ?rt= filter of the probe
  std::uint16_t port = 5683;      ///< CoAP's port on the nodes
  std::chrono::milliseconds leisure{std::chrono::seconds(5)};
};

/// One node's answer to a probe.
struct ProbeAnswer {
  std::string interface;
  std::string host;  ///< numeric source address; IPv6 link-local as "fe80::1%eth0"
  std::uint16_t port = 0;
  std::vector<Link> links;
  /// False if the answer was the first block of a longer /.well-known/core (Block2 M=1) or
  /// not link format: the rest must be fetched by unicast.
  bool complete = true;
};

struct ProbeStats {
  std::uint64_t rounds = 0;
  std::uint64_t probes_sent = 0;
  std::uint64_t send_errors = 0;
  std::uint64_t answers = 0;
  std::uint64_t malformed = 0;       ///< not CoAP, not a 2.05, or bad link format
  std::uint64_t unexpected = 0;      ///< wrong token, after the leisure window, wrong interface
};

/// A configured interface that cannot be used; names it for the operator.
class ProbeError : public std::runtime_error {
 public:
  ProbeError(std::size_t index, const std::string& message) : std::runtime_error(message), interface_index(index) {}
  std::size_t interface_index;  ///< into ProbeSettings::interfaces
};

class MulticastProber {
 public:
  using Clock = std::chrono::steady_clock;
  using AnswerSink = std::function<void(const ProbeAnswer&)>;

  /// Opens the sockets; throws ProbeError if an interface does not exist or has no usable
  /// family at all.
  explicit MulticastProber(ProbeSettings settings);
  ~MulticastProber();
  MulticastProber(const MulticastProber&) = delete;
  MulticastProber& operator=(const MulticastProber&) = delete;

  [[nodiscard]] std::vector<int> fds() const;
  /// Sends one round (a new token) on every interface and family.
  void probe(Clock::time_point now = Clock::now());
  /// Reads every datagram waiting on `fd` and hands valid answers of the current round to `sink`.
  void onReadable(int fd, const AnswerSink& sink, Clock::time_point now = Clock::now());
  [[nodiscard]] const ProbeStats& stats() const noexcept { return stats_; }

 private:
  struct Socket {
    int fd = -1;
    int family = 0;
    unsigned ifindex = 0;
    std::string interface;
  };
  void openSockets(std::size_t index, const std::string& interface);
  void sendTo(const Socket& s, const std::vector<std::uint8_t>& datagram, const char* group);
  void handleDatagram(const Socket& s, const std::uint8_t* data, std::size_t len, unsigned arrived_on,
                      const std::string& host, std::uint16_t port, const AnswerSink& sink, Clock::time_point now);

  ProbeSettings settings_;
  std::vector<Socket> sockets_;
  std::string token_;
  std::uint16_t message_id_ = 0;
  Clock::time_point round_ends_{};
  ProbeStats stats_;
  bool send_error_logged_ = false;
};

}  // namespace coap_edge::discovery
