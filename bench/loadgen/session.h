#pragma once
// One DTLS client session on its own connected, non-blocking UDP socket (its own source port, so
// the server sees a distinct peer), with K request slots for outstanding CON GETs.

#include <mbedtls/ssl.h>
#include <mbedtls/timing.h>

#include <chrono>
#include <cstdint>
#include <vector>

namespace coap_edge::bench {

using Clock = std::chrono::steady_clock;

struct Slot {
  bool busy = false;
  bool acked = false;  ///< empty ACK seen: a separate response will follow
  std::uint8_t retransmits = 0;
  std::uint16_t mid = 0;
  std::uint32_t token = 0;
  std::chrono::milliseconds timeout{0};
  Clock::time_point first_sent;
  Clock::time_point last_sent;
};

struct Session {
  enum class State : std::uint8_t { Pending, Handshaking, Established, Dead };

  Session() { mbedtls_ssl_init(&ssl); }
  ~Session();
  Session(const Session&) = delete;
  Session& operator=(const Session&) = delete;

  int fd = -1;
  std::uint32_t index = 0;  ///< within its worker (part of --unique-query's query)
  State state = State::Pending;
  mbedtls_ssl_context ssl;
  mbedtls_timing_delay_context timer{};
  std::vector<Slot> slots;
  std::uint16_t next_mid = 0;
  std::uint32_t next_seq = 0;
};

}  // namespace coap_edge::bench
