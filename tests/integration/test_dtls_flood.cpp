// A handshake flood against the agent (issue 7): ClientHellos from many loopback source ports
// that never answer the cookie exchange, while Debian's coap-client-gnutls and
// coap-client-openssl handshake with PSK and read /status. With the stateless cookie exchange
// (cmake/patches/0002) the flood gets HelloVerifyRequests no larger than its ClientHellos, the
// agent allocates no session for it and its memory stays flat, and the real clients get in.
// Every loop is bounded in count and time.

#include "coap_clients.h"
#include "dtls_records.h"
#include "mbedtls_dtls_client.h"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <sys/resource.h>

#include <algorithm>
#include <atomic>
#include <fstream>
#include <iostream>
#include <set>
#include <thread>

namespace coap_edge::test {
namespace {

using namespace std::chrono_literals;

constexpr const char* kKey1 = "dev1-secret-key-0001";
constexpr const char* kKey2 = "dev2-secret-key-0002";

// The numbers: at least 20,000 ClientHellos from at least 1,000 source ports.
constexpr std::size_t kSocketsPerGroup = 250;
constexpr std::size_t kRoundsPerGroup = 20;
constexpr std::size_t kMinGroups = 4;
constexpr std::size_t kMaxGroups = 40;  // the flood outlasts the clients, within bounds

// The bound: the agent's RSS grows by less than 1 MB, asserted in the plain build. Under
// AddressSanitizer RSS also holds shadow memory, redzones and the allocator's per-size-class
// caches, which grow with the two real clients' sessions and with how the flood interleaves
// with them on a loaded machine (measured: 200-1040 kB, with no session for the flood); that
// build still checks everything else here, and the memory only against a wider bound.
#if defined(__SANITIZE_ADDRESS__)
constexpr long kRssGrowthLimitKb = 4096;
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
constexpr long kRssGrowthLimitKb = 4096;
#else
constexpr long kRssGrowthLimitKb = 1024;
#endif
#else
constexpr long kRssGrowthLimitKb = 1024;
#endif

std::optional<long> rssKb(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/status");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("VmRSS:", 0) == 0) return std::stol(line.substr(6));
  }
  return std::nullopt;
}

struct FloodCounts {
  std::uint64_t sent = 0, sent_bytes = 0;
  std::uint64_t received = 0, received_bytes = 0;
  std::uint64_t hello_verify = 0;   ///< HelloVerifyRequests received
  std::uint64_t other = 0;          ///< anything else (a ServerHello would mean a session)
  std::uint64_t larger_than_hello = 0;
  std::set<std::uint16_t> ports;
};

void drain(const std::vector<dtls::UdpPeer>& peers, std::size_t hello_size, FloodCounts& c) {
  for (const auto& p : peers) {
    for (int i = 0; i < 64; ++i) {  // bounded: more than the rounds that can be in flight
      const auto d = p.tryReceive();
      if (!d) break;
      ++c.received;
      c.received_bytes += d->size();
      if (d->size() > hello_size) ++c.larger_than_hello;
      if (dtls::helloVerifyCookie(*d)) {
        ++c.hello_verify;
      } else {
        ++c.other;
      }
    }
  }
}

// Floods until `stop` is set and the minimum was sent, or kMaxGroups.
FloodCounts flood(std::uint16_t port, const std::atomic<bool>& stop, std::atomic<std::uint64_t>& progress) {
  FloodCounts c;
  std::uint32_t seed = 1;
  // The first groups stay open so that the kernel cannot hand their ports out again: the
  // minimum flood comes from kMinGroups * kSocketsPerGroup distinct ports.
  std::vector<std::vector<dtls::UdpPeer>> kept;
  for (std::size_t g = 0; g < kMaxGroups && (g < kMinGroups || !stop.load()); ++g) {
    std::vector<dtls::UdpPeer> peers;
    peers.reserve(kSocketsPerGroup);
    for (std::size_t i = 0; i < kSocketsPerGroup; ++i) {
      peers.emplace_back(port);
      c.ports.insert(peers.back().localPort());
    }
    std::size_t hello_size = 0;
    for (std::size_t round = 0; round < kRoundsPerGroup; ++round) {
      for (const auto& p : peers) {
        const auto hello = dtls::clientHello(dtls::kOurSuites, {}, round, 0, seed++);
        hello_size = hello.size();
        if (p.send(hello)) {
          ++c.sent;
          c.sent_bytes += hello.size();
        }
      }
      progress = c.sent;
      // Pace the flood by the agent's answers (bounded): a flood that only overflows the
      // socket buffer would test the kernel, not the agent.
      std::this_thread::sleep_for(5ms);
      drain(peers, hello_size, c);
    }
    std::this_thread::sleep_for(50ms);
    drain(peers, hello_size, c);
    if (g < kMinGroups) kept.push_back(std::move(peers));
  }
  return c;
}

std::optional<std::uint64_t> sessionsAllocated(const RunResult& status) {
  const auto doc = nlohmann::json::parse(status.out, nullptr, false);
  if (doc.is_discarded() || !doc.contains("handshakes")) return std::nullopt;
  return doc["handshakes"].value("sessions_allocated", std::uint64_t{0});
}

class DtlsFlood : public ::testing::Test {
 protected:
  void SetUp() override {
    port_ = freeUdpPort();
    agent_ = std::make_unique<AgentUnderTest>(dir_, baseConfig(dir_, port_));
    ASSERT_TRUE(agent_->ready()) << agent_->log();
    const auto r = ctl(agent_->configFile(), {"keys", "import", "-"},
                       std::string("dev-1,") + hexOf(kKey1) + "\ndev-2," + hexOf(kKey2) + "\n");
    ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  }

  TempDir dir_;
  std::uint16_t port_ = 0;
  std::unique_ptr<AgentUnderTest> agent_;
};

TEST_F(DtlsFlood, UnverifiedHellosAllocateNothingAndRealClientsGetIn) {
  // A thousand sockets open at once: more than the usual soft limit of 1024 descriptors leaves.
  rlimit files{};
  ASSERT_EQ(getrlimit(RLIMIT_NOFILE, &files), 0);
  files.rlim_cur = std::min<rlim_t>(files.rlim_max, 4096);
  ASSERT_EQ(setrlimit(RLIMIT_NOFILE, &files), 0);
  ASSERT_GE(files.rlim_cur, 1100U) << "the flood needs about 1,000 sockets open at once";
  // Warm up both DTLS stacks once so that the baseline holds what any session costs.
  ASSERT_NE(pskGet(kGnutlsClient, port_, "dev-1", kKey1, "status").out.find("sessions"), std::string::npos)
      << agent_->log();
  const auto before = pskGet(kOpensslClient, port_, "dev-2", kKey2, "status");
  const auto allocated_before = sessionsAllocated(before);
  ASSERT_TRUE(allocated_before.has_value()) << before.out << before.err;
  const auto rss_before = rssKb(agent_->pid());
  ASSERT_TRUE(rss_before.has_value());

  std::atomic<bool> stop{false};
  std::atomic<std::uint64_t> progress{0};
  FloodCounts counts;
  std::thread flooder([&] { counts = flood(port_, stop, progress); });
  // The clients start once the flood is well under way, and it lasts until they are done.
  for (int i = 0; i < 600 && progress.load() < 2000; ++i) std::this_thread::sleep_for(10ms);
  RunResult gnutls, openssl;
  std::thread a([&] { gnutls = pskGet(kGnutlsClient, port_, "dev-1", kKey1, "status", 10); });
  std::thread b([&] { openssl = pskGet(kOpensslClient, port_, "dev-2", kKey2, "status", 10); });
  a.join();
  b.join();
  const std::uint64_t sent_while_clients_ran = progress.load();
  stop = true;
  flooder.join();
  std::this_thread::sleep_for(200ms);  // let the agent finish what is still queued
  const auto rss_after = rssKb(agent_->pid());
  ASSERT_TRUE(rss_after.has_value());

  EXPECT_NE(gnutls.out.find("\"sessions\""), std::string::npos) << gnutls.out << gnutls.err;
  EXPECT_NE(openssl.out.find("\"sessions\""), std::string::npos) << openssl.out << openssl.err;

  const auto after = pskGet(kOpensslClient, port_, "dev-2", kKey2, "status");
  const auto allocated_after = sessionsAllocated(after);
  ASSERT_TRUE(allocated_after.has_value()) << after.out << after.err;

  const long rss_growth_kb = *rss_after - *rss_before;
  std::cout << "[ flood    ] " << counts.sent << " ClientHellos (" << counts.sent_bytes << " bytes) from "
            << counts.ports.size() << " ports; " << sent_while_clients_ran << " sent before both clients were done; "
            << counts.hello_verify << " HelloVerifyRequests (" << counts.received_bytes << " bytes), " << counts.other
            << " other replies; bytes out/in " << static_cast<double>(counts.received_bytes) / static_cast<double>(counts.sent_bytes)
            << "; RSS " << *rss_before << " -> " << *rss_after << " kB (" << rss_growth_kb << " kB); sessions allocated "
            << *allocated_before << " -> " << *allocated_after << "\n";

  EXPECT_GE(counts.sent, kMinGroups * kSocketsPerGroup * kRoundsPerGroup);
  EXPECT_GE(counts.ports.size(), 1000U);
  // Answered statelessly: only HelloVerifyRequests, each no larger than the ClientHello, so
  // the flood's sources receive no more bytes than they sent.
  EXPECT_GT(counts.hello_verify, counts.sent / 2) << "the flood was mostly dropped, not answered";
  EXPECT_EQ(counts.other, 0U);
  EXPECT_EQ(counts.larger_than_hello, 0U);
  EXPECT_LE(counts.received_bytes, counts.sent_bytes);
  // Sessions came only from the real clients: the two during the flood and the /status read
  // after it. None for the flood's unverified sources.
  EXPECT_EQ(*allocated_after - *allocated_before, 3U);
  EXPECT_LT(rss_growth_kb, kRssGrowthLimitKb) << "RSS grew by " << rss_growth_kb << " kB";
}

TEST_F(DtlsFlood, CookieIsBoundToTheSourcePortAndOpensTheHandshake) {
  dtls::UdpPeer peer(port_);
  ASSERT_TRUE(peer.send(dtls::clientHello(dtls::kOurSuites)));
  const auto hvr = peer.receive(3s);
  ASSERT_TRUE(hvr.has_value());
  const auto cookie = dtls::helloVerifyCookie(*hvr);
  ASSERT_TRUE(cookie.has_value());
  EXPECT_FALSE(cookie->empty());

  // Another source port with that cookie is not verified: a new HelloVerifyRequest, no session.
  dtls::UdpPeer other(port_);
  ASSERT_TRUE(other.send(dtls::clientHello(dtls::kOurSuites, *cookie, 1, 1)));
  const auto again = other.receive(3s);
  ASSERT_TRUE(again.has_value());
  EXPECT_TRUE(dtls::helloVerifyCookie(*again).has_value());

  // The port the cookie was made for gets the handshake: a ServerHello.
  ASSERT_TRUE(peer.send(dtls::clientHello(dtls::kOurSuites, *cookie, 1, 1)));
  const auto answer = peer.receive(3s);
  ASSERT_TRUE(answer.has_value());
  const auto rec = dtls::firstRecord(*answer);
  ASSERT_TRUE(rec.has_value());
  EXPECT_EQ(rec->handshake_type, dtls::kServerHello);
}

// Cipher suites (issue 7): only the configured ones can be negotiated. Debian's coap-clients
// cannot be told which suites to offer, so the ClientHello comes from dtls_records.h, after the
// cookie exchange so that the agent's handshake itself decides; and OpenSSL's s_client probes
// with whole handshakes (below).
class DtlsSuites : public DtlsFlood {
 protected:
  /// The agent's first answer to a verified ClientHello offering `suites` (nullopt: none).
  std::optional<dtls::Record> answerTo(const std::vector<std::uint16_t>& suites) {
    dtls::UdpPeer peer(port_);
    if (!peer.send(dtls::clientHello(suites))) return std::nullopt;
    const auto hvr = peer.receive(3s);
    if (!hvr) return std::nullopt;
    const auto cookie = dtls::helloVerifyCookie(*hvr);
    if (!cookie) return std::nullopt;
    if (!peer.send(dtls::clientHello(suites, *cookie, 1, 1))) return std::nullopt;
    const auto answer = peer.receive(3s);
    if (!answer) return std::nullopt;
    return dtls::firstRecord(*answer);
  }
};

TEST_F(DtlsSuites, ClientOfferingOnlyOtherSuitesIsRefused) {
  const auto rec = answerTo({dtls::kPskAes256CbcSha384});
  ASSERT_TRUE(rec.has_value()) << agent_->log();
  EXPECT_NE(rec->handshake_type, dtls::kServerHello);
  ASSERT_EQ(rec->content_type, dtls::kContentAlert);
  ASSERT_EQ(rec->fragment.size(), 2U);
  EXPECT_EQ(rec->fragment[0], 2);  // fatal
  EXPECT_EQ(rec->fragment[1], dtls::kAlertHandshakeFailure);
}

TEST_F(DtlsSuites, ConfiguredSuiteIsChosenFromAMixedOffer) {
  // An offer led by a suite we do not allow: the agent picks the allowed one.
  const auto rec = answerTo({dtls::kPskAes256CbcSha384, dtls::kPskAes128Ccm8});
  ASSERT_TRUE(rec.has_value()) << agent_->log();
  ASSERT_EQ(rec->handshake_type, dtls::kServerHello);
  // ServerHello body after the 12-byte handshake header: version(2) random(32) session_id(1+n)
  // cipher_suite(2).
  const auto& f = rec->fragment;
  ASSERT_GT(f.size(), 12U + 2 + 32 + 1);
  const std::size_t at = 12 + 2 + 32 + 1 + f[12 + 2 + 32];
  ASSERT_GE(f.size(), at + 2);
  EXPECT_EQ((f[at] << 8) | f[at + 1], dtls::kPskAes128Ccm8);
}

// The cipher probe: OpenSSL's s_client over DTLS 1.2 (an independent stack), told which
// PSK suites to offer. Only an offer of RFC 7252's suite gets a session.
RunResult opensslProbe(std::uint16_t port, const std::string& ciphers) {
  // @SECLEVEL=0: Debian's OpenSSL default would refuse some suites itself before offering them.
  return run({"openssl", "s_client", "-dtls1_2", "-connect", "127.0.0.1:" + std::to_string(port), "-cipher",
              ciphers + ":@SECLEVEL=0", "-psk_identity", "dev-1", "-psk", hexOf(kKey1), "-no_ign_eof"},
             15s, "");
}

TEST_F(DtlsSuites, OpensslOfferingOnlyOtherSuitesIsRefusedAndTheAllowedOneWorks) {
  for (const char* other : {"PSK-AES256-CBC-SHA384", "PSK-AES128-CBC-SHA256", "PSK-AES256-CCM8", "PSK-CHACHA20-POLY1305"}) {
    SCOPED_TRACE(other);
    const auto refused = opensslProbe(port_, other);
    EXPECT_NE(refused.exit_code, 0) << refused.out << refused.err;
    EXPECT_NE(refused.out.find("Cipher is (NONE)"), std::string::npos) << refused.out << refused.err;
    EXPECT_NE(refused.err.find("handshake failure"), std::string::npos) << refused.out << refused.err;
  }
  const auto allowed = opensslProbe(port_, "PSK-AES128-CCM8");
  EXPECT_NE(allowed.out.find("Cipher is PSK-AES128-CCM8"), std::string::npos) << allowed.out << allowed.err << agent_->log();
  EXPECT_NE(allowed.out.find("Protocol  : DTLSv1.2"), std::string::npos) << allowed.out;
}

// RFC 6347 §4.2.8: a new ClientHello (epoch 0) from the address and port of an established
// session may be a client that lost its state, or a spoofed packet; the session must survive
// until the new peer has proved it receives at that address (the cookie exchange).
TEST_F(DtlsFlood, EpochZeroHelloDoesNotDestroyTheEstablishedSession) {
  dtls::UdpPeer peer(port_);
  dtls::MbedDtlsClient client(peer, "dev-1", kKey1);
  ASSERT_TRUE(client.handshake(5s)) << agent_->log();
  ASSERT_EQ(client.get("status", 3s), 205) << agent_->log();

  // A ClientHello without cookie on the session's own address and port.
  ASSERT_TRUE(peer.send(dtls::clientHello(dtls::kOurSuites, {}, 0, 0, 77)));
  const auto reply = peer.receive(3s);
  ASSERT_TRUE(reply.has_value()) << agent_->log();
  EXPECT_TRUE(dtls::helloVerifyCookie(*reply).has_value()) << "expected a HelloVerifyRequest";

  // The established session still answers.
  EXPECT_EQ(client.get("status", 3s), 205) << agent_->log();
  EXPECT_EQ(agent_->log().find("session of 'dev-1'"), std::string::npos) << agent_->log();
}

}  // namespace
}  // namespace coap_edge::test
