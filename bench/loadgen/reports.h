#pragma once
// What a worker process sends its parent through a pipe: plain, trivially copyable structs.

#include "histogram.h"

#include <array>
#include <cstdint>
#include <type_traits>

namespace coap_edge::bench {

struct HandshakeReport {
  std::array<char, 256> setup_error{};  ///< non-empty: the worker could not start
  std::array<char, 160> first_failure{};  ///< why the first failed handshake failed
  std::array<char, 64> cipher_suite{};
  std::uint32_t established = 0;
  std::uint32_t failures = 0;
  std::uint32_t retransmissions = 0;  ///< handshake flights resent after a timer expired
  std::uint32_t first_answers = 0;    ///< --first-request: sessions whose first GET was answered
  std::int64_t start_ns = 0;          ///< CLOCK_MONOTONIC, comparable across processes
  std::int64_t end_ns = 0;
};

struct LoadReport {
  std::uint64_t completed = 0;        ///< 2.xx responses
  std::uint64_t retransmissions = 0;  ///< CON requests resent after ACK_TIMEOUT
  std::uint64_t timeouts = 0;         ///< requests given up after MAX_RETRANSMIT
  std::uint64_t resets = 0;
  std::uint64_t client_errors = 0;  ///< 4.xx (e.g. 4.29 from a rate limit, 4.03 from an ACL)
  std::uint64_t server_errors = 0;  ///< 5.xx
  std::uint64_t dtls_errors = 0;
  std::uint64_t sessions_lost = 0;  ///< closed by the peer or by a fatal DTLS error
  std::uint64_t send_drops = 0;     ///< datagrams the socket refused (EAGAIN)
  std::uint64_t empty_acks = 0;     ///< requests answered by an empty ACK first (separate responses)
  std::uint64_t response_bytes = 0;
  std::uint64_t cpu_us = 0;  ///< the worker's own CPU time (user + system) in the load phase
  Histogram latency;
};

static_assert(std::is_trivially_copyable_v<HandshakeReport>);
static_assert(std::is_trivially_copyable_v<LoadReport>);

}  // namespace coap_edge::bench
