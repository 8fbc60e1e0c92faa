// DTLS handshake retransmission timers (issue 7): [downstream] dtls_retransmit_min/max set when
// the agent resends a flight its peer did not answer, and when it gives up (libcoap patch 0004).
// A raw client (dtls_records.h) passes the cookie exchange and then stays silent, counting the
// agent's ServerHello flights. Margins are wide (the tests compare schedules that differ by a
// factor of ten or more, not speeds); every wait is bounded.

#include "coap_clients.h"
#include "dtls_records.h"

#include <gtest/gtest.h>

namespace coap_edge::test {
namespace {

using namespace std::chrono_literals;

struct Flights {
  int count = 0;                                   ///< ServerHello flights received
  std::chrono::steady_clock::duration last_at{};   ///< when the last one came, from the first
};

// Opens a handshake (cookie exchange, then a ClientHello with the cookie) and listens for the
// agent's ServerHello flights for `listen`, or until it has been silent for `quiet`.
Flights serverHelloFlights(std::uint16_t port, std::chrono::milliseconds listen, std::chrono::milliseconds quiet) {
  Flights f;
  dtls::UdpPeer peer(port);
  if (!peer.send(dtls::clientHello({dtls::kPskAes128Ccm8}))) return f;
  const auto hvr = peer.receive(3s);
  if (!hvr) return f;
  const auto cookie = dtls::helloVerifyCookie(*hvr);
  if (!cookie) return f;
  if (!peer.send(dtls::clientHello({dtls::kPskAes128Ccm8}, *cookie, 1, 1))) return f;
  const auto start = std::chrono::steady_clock::now();
  auto last = start;
  for (int i = 0; i < 200; ++i) {
    const auto now = std::chrono::steady_clock::now();
    if (now - start >= listen || now - last >= quiet) break;
    const auto d = peer.receive(100ms);
    if (!d) continue;
    const auto rec = dtls::firstRecord(*d);
    if (!rec || rec->handshake_type != dtls::kServerHello) continue;  // later datagrams of a flight
    ++f.count;
    last = std::chrono::steady_clock::now();
    f.last_at = last - start;
  }
  return f;
}

class DtlsTimers : public ::testing::Test {
 protected:
  void start(const std::string& downstream) {
    port_ = freeUdpPort();
    agent_ = std::make_unique<AgentUnderTest>(dir_, baseConfig(dir_, port_, downstream));
    ASSERT_TRUE(agent_->ready()) << agent_->log();
  }
  TempDir dir_;
  std::uint16_t port_ = 0;
  std::unique_ptr<AgentUnderTest> agent_;
};

TEST_F(DtlsTimers, ShortTimersRetransmitThenGiveUp) {
  start("dtls_retransmit_min = \"200ms\"\ndtls_retransmit_max = \"800ms\"\n");
  // 200, 400, 800, 800 ms...: several flights within a few seconds, then silence.
  const auto f = serverHelloFlights(port_, 15s, 4s);
  EXPECT_GE(f.count, 3) << agent_->log();
  EXPECT_LE(f.count, 8) << "the agent did not give up at dtls_retransmit_max\n" << agent_->log();
  EXPECT_LT(f.last_at, 10s) << agent_->log();
}

TEST_F(DtlsTimers, DefaultTimersWaitForSlowLinks) {
  start("");
  // RFC 7925's 9 s first timeout: nothing is resent within 3 s (libcoap's built-in 1 s would
  // have resent twice by then).
  const auto f = serverHelloFlights(port_, 3s, 3s);
  EXPECT_EQ(f.count, 1) << agent_->log();
}

}  // namespace
}  // namespace coap_edge::test
