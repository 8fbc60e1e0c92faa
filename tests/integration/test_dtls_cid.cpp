// DTLS Connection IDs (issue 7, RFC 9146 §6): the agent moves a session to a new address only
// for a record from there that authenticates and is newer than every record before it
// (cmake/patches/0003). A spoofed record carrying the session's CID, a replayed record and a
// delayed older record from another port leave the session where it was; the same client
// continuing from a new port (NAT rebinding) takes the session with it. Each record dropped is
// counted in /status "packets" (cmake/patches/0012): a forged one as dtls_invalid, a replayed one
// as dtls_replayed. The client is mbedTLS with CIDs (mbedtls_dtls_client.h); every wait is
// bounded.

#include "coap_clients.h"
#include "dtls_records.h"
#include "mbedtls_dtls_client.h"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <cstdint>
#include <utility>

namespace coap_edge::test {
namespace {

using namespace std::chrono_literals;

constexpr const char* kKey1 = "dev1-secret-key-0001";

/// One object of the agent's /status ("sessions", "packets"), read over `client`'s own session.
std::optional<nlohmann::json> statusOf(dtls::MbedDtlsClient& client, const char* what) {
  const auto body = client.getBody("status", 3s);
  if (!body) return std::nullopt;
  const auto doc = nlohmann::json::parse(*body, nullptr, false);
  if (doc.is_discarded() || !doc.contains(what)) return std::nullopt;
  return doc[what];
}

std::optional<nlohmann::json> sessionsOf(dtls::MbedDtlsClient& client) { return statusOf(client, "sessions"); }

class DtlsCid : public ::testing::Test {
 protected:
  void SetUp() override {
    port_ = freeUdpPort();
    agent_ = std::make_unique<AgentUnderTest>(dir_, baseConfig(dir_, port_));
    ASSERT_TRUE(agent_->ready()) << agent_->log();
    const auto r = ctl(agent_->configFile(), {"keys", "import", "-"}, std::string("dev-1,") + hexOf(kKey1) + "\n");
    ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
    client_ = std::make_unique<dtls::MbedDtlsClient>(originalPeer(), "dev-1", kKey1, /*connection_id=*/true);
    ASSERT_TRUE(client_->handshake(5s)) << agent_->log();
    cid_ = client_->peerCid();
    ASSERT_FALSE(cid_.empty()) << "the agent did not negotiate a Connection ID";
    before_ = sessionsOf(*client_);
    ASSERT_TRUE(before_.has_value()) << agent_->log();
    const auto packets = statusOf(*client_, "packets");
    ASSERT_TRUE(packets.has_value()) << agent_->log();
    invalid_before_ = packets->value("dtls_invalid", std::uint64_t{0});
    replayed_before_ = packets->value("dtls_replayed", std::uint64_t{0});
  }

  /// Records dropped since SetUp, as /status counts them: {invalid, replayed}.
  std::pair<std::uint64_t, std::uint64_t> droppedSinceStart() {
    const auto packets = statusOf(*client_, "packets");
    if (!packets) {
      ADD_FAILURE() << "no /status answer\n" << agent_->log();
      return {0, 0};
    }
    return {packets->value("dtls_invalid", std::uint64_t{0}) - invalid_before_,
            packets->value("dtls_replayed", std::uint64_t{0}) - replayed_before_};
  }

  const dtls::UdpPeer& originalPeer() {
    if (!original_) original_ = std::make_unique<dtls::UdpPeer>(port_);
    return *original_;
  }

  /// The session still lives at the original port: a request over it is answered there, the
  /// other socket hears nothing, and the agent counts the same sessions as before.
  void expectSessionStayed(const dtls::UdpPeer& other) {
    const auto now = sessionsOf(*client_);
    ASSERT_TRUE(now.has_value()) << "no answer on the original port\n" << agent_->log();
    EXPECT_EQ(*now, *before_);
    EXPECT_FALSE(other.receive(500ms).has_value()) << "the agent answered the other port";
  }

  /// Revokes dev-1's key: the agent closes the session with a close_notify alert, which goes to
  /// wherever the session lives now, the one thing it sends unasked. It must reach `home` and
  /// nothing may reach `elsewhere`.
  void expectCloseNotifyAt(const dtls::UdpPeer& home, const dtls::UdpPeer& elsewhere) {
    ASSERT_EQ(ctl(agent_->configFile(), {"keys", "revoke", "dev-1"}).exit_code, 0);
    const auto alert = home.receive(5s);
    ASSERT_TRUE(alert.has_value()) << "no close_notify where the session should be\n" << agent_->log();
    const auto rec = dtls::firstRecord(*alert);
    ASSERT_TRUE(rec.has_value());
    EXPECT_EQ(rec->content_type, dtls::kContentAlert);
    EXPECT_EQ(rec->epoch, 1);  // encrypted: the session's own alert
    EXPECT_FALSE(elsewhere.receive(300ms).has_value()) << "the agent sent to the other port";
  }

  TempDir dir_;
  std::uint16_t port_ = 0;
  std::unique_ptr<AgentUnderTest> agent_;
  std::unique_ptr<dtls::UdpPeer> original_;
  std::unique_ptr<dtls::MbedDtlsClient> client_;
  dtls::Bytes cid_;
  std::optional<nlohmann::json> before_;
  std::uint64_t invalid_before_ = 0, replayed_before_ = 0;
};

TEST_F(DtlsCid, SpoofedRecordWithTheSessionsCidDoesNotMoveIt) {
  dtls::UdpPeer spoofer(port_);
  // Epoch 1, sequence numbers far ahead of the client's, an AES-CCM-8 sized body of garbage:
  // everything a valid record has except the MAC.
  for (std::uint64_t seq = 1000; seq < 1003; ++seq) {
    ASSERT_TRUE(spoofer.send(dtls::cidRecord(cid_, 1, seq, dtls::Bytes(8 + 16 + 8, 0x5A))));
  }
  EXPECT_FALSE(spoofer.receive(500ms).has_value());
  expectSessionStayed(spoofer);
  // Dropped silently, and counted: three forged records, no replay.
  EXPECT_EQ(droppedSinceStart(), std::make_pair(std::uint64_t{3}, std::uint64_t{0}));
  // The request above came from the original port and would have fetched a diverted session
  // back: what the agent sends unasked shows where the session lives.
  ASSERT_TRUE(spoofer.send(dtls::cidRecord(cid_, 1, 2000, dtls::Bytes(8 + 16 + 8, 0xA5))));
  EXPECT_FALSE(spoofer.receive(300ms).has_value());
  expectCloseNotifyAt(originalPeer(), spoofer);
  EXPECT_EQ(agent_->log().find("CID: New Client Session"), std::string::npos) << agent_->log();
}

TEST_F(DtlsCid, ReplayedRecordFromAnotherPortDoesNotMoveIt) {
  // A genuine request, delivered and answered on the original port, then replayed elsewhere.
  const auto sealed = client_->seal("status");
  ASSERT_TRUE(sealed.has_value());
  ASSERT_TRUE(originalPeer().send(*sealed));
  ASSERT_TRUE(originalPeer().receive(3s).has_value()) << agent_->log();
  dtls::UdpPeer replayer(port_);
  ASSERT_TRUE(replayer.send(*sealed));
  EXPECT_FALSE(replayer.receive(500ms).has_value());
  expectSessionStayed(replayer);
  // The anti-replay window dropped it, and it is counted as a replay, not as a forgery.
  EXPECT_EQ(droppedSinceStart(), std::make_pair(std::uint64_t{0}, std::uint64_t{1}));
  ASSERT_TRUE(replayer.send(*sealed));
  EXPECT_FALSE(replayer.receive(300ms).has_value());
  expectCloseNotifyAt(originalPeer(), replayer);
}

TEST_F(DtlsCid, OlderRecordFromAnotherPortDoesNotMoveIt) {
  // A genuine record held back while a newer one gets through, then delivered from another
  // port: it authenticates and is no replay, but it is not the newest (RFC 9146 §6).
  const auto held = client_->seal("status");
  ASSERT_TRUE(held.has_value());
  ASSERT_EQ(client_->get("status", 3s), 205) << agent_->log();
  dtls::UdpPeer late(port_);
  ASSERT_TRUE(late.send(*held));
  EXPECT_FALSE(late.receive(500ms).has_value()) << "the answer to the held request went to the new port";
  expectSessionStayed(late);
  // It authenticated and was inside the window: a late record, not a dropped one.
  EXPECT_EQ(droppedSinceStart(), std::make_pair(std::uint64_t{0}, std::uint64_t{0}));
}

TEST_F(DtlsCid, LastWordAfterASpoofedRecordGoesToTheClient) {
  // No request from the client after the spoofed record: nothing could fetch a diverted
  // session back before the agent speaks unasked.
  dtls::UdpPeer spoofer(port_);
  ASSERT_TRUE(spoofer.send(dtls::cidRecord(cid_, 1, 5000, dtls::Bytes(8 + 16 + 8, 0x5A))));
  EXPECT_FALSE(spoofer.receive(500ms).has_value());
  expectCloseNotifyAt(originalPeer(), spoofer);
}

TEST_F(DtlsCid, ClientOnANewPortTakesTheSessionWithIt) {
  dtls::UdpPeer moved(port_);
  ASSERT_NE(moved.localPort(), originalPeer().localPort());
  client_->rebind(moved);  // same DTLS session, new source port: a NAT rebinding
  // The client now reads only the new socket: answers arrive there.
  ASSERT_EQ(client_->get("status", 3s), 205) << agent_->log();
  const auto now = sessionsOf(*client_);
  ASSERT_TRUE(now.has_value()) << agent_->log();
  EXPECT_EQ(*now, *before_) << "the session moved, no other was made";
  EXPECT_FALSE(originalPeer().receive(500ms).has_value()) << "the agent still answered the old port";
  EXPECT_NE(agent_->log().find("CID: New Client Session"), std::string::npos) << agent_->log();
  expectCloseNotifyAt(moved, originalPeer());
}

}  // namespace
}  // namespace coap_edge::test
