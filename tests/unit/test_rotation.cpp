// The agent's side of PSK rotation and certificate revocation (daemon::KeystoreCredentials) over
// a real keystore file, with a fake clock: which key a handshake gets during the grace period,
// how handshake outcomes move that choice, and which established sessions may go on.

#include "daemon/credentials.h"

#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <string>
#include <vector>

namespace coap_edge::daemon {
namespace {

namespace fs = std::filesystem;
using keystore::Keystore;
using tls::SecretBytes;

SecretBytes key(std::size_t n, std::uint8_t fill) { return SecretBytes(std::vector<std::uint8_t>(n, fill)); }

std::uint8_t firstByte(const coap::PskChoice& c) { return c.key.span()[0]; }

coap::PeerIdentity pskPeer(const std::string& id, std::uint32_t generation) {
  coap::PeerIdentity p;
  p.kind = coap::AuthKind::psk;
  p.identity = id;
  p.key_generation = generation;
  return p;
}

class rotationTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string tmpl = (fs::temp_directory_path() / "coap-edge-rotation-XXXXXX").string();
    ASSERT_NE(::mkdtemp(tmpl.data()), nullptr);
    root_ = tmpl;
    agent_ks_.emplace(Keystore::open(root_, clock()));
    ctl_ks_.emplace(Keystore::open(root_, clock()));  // a second connection, as coap-edge-ctl
    creds_.emplace(*agent_ks_, clock());
  }
  void TearDown() override {
    creds_.reset();
    ctl_ks_.reset();
    agent_ks_.reset();
    fs::remove_all(root_);
  }
  keystore::Clock clock() {
    return [this] { return now_; };
  }

  std::int64_t now_ = 1800000000;
  fs::path root_;
  std::optional<Keystore> agent_ks_;
  std::optional<Keystore> ctl_ks_;
  std::optional<KeystoreCredentials> creds_;
};

TEST_F(rotationTest, WithoutRotationTheOneKeyIsOffered) {
  ASSERT_EQ(ctl_ks_->add("dev-1", key(16, 0x11)), keystore::AddResult::ok);
  auto c = creds_->pskFor("dev-1");
  ASSERT_TRUE(c.has_value());
  EXPECT_EQ(c->generation, 1u);
  EXPECT_EQ(firstByte(*c), 0x11);
  creds_->handshakeResult("dev-1", 1, false);  // nothing to choose between: no effect
  EXPECT_EQ(creds_->pskFor("dev-1")->generation, 1u);
  EXPECT_FALSE(creds_->pskFor("nobody").has_value());
  EXPECT_TRUE(creds_->mayContinue(pskPeer("dev-1", 1)));
  EXPECT_FALSE(creds_->graceEnded());
}

TEST_F(rotationTest, DuringGraceTheOfferFollowsHandshakeOutcomes) {
  ASSERT_EQ(ctl_ks_->add("dev-1", key(16, 0x11)), keystore::AddResult::ok);
  ASSERT_EQ(ctl_ks_->rotate("dev-1", key(16, 0x22), std::chrono::seconds(60)).result, keystore::RotateResult::ok);
  creds_->refresh();  // the agent does this when data_version moves

  // Right after the rotation every device still has the old key: offer it first.
  auto c = creds_->pskFor("dev-1");
  ASSERT_TRUE(c.has_value());
  EXPECT_EQ(c->generation, 1u);
  EXPECT_EQ(firstByte(*c), 0x11);
  // This device was re-provisioned: its handshake with the old key fails ...
  creds_->handshakeResult("dev-1", 1, false);
  // ... so its next handshake gets the new key, which works and is kept.
  c = creds_->pskFor("dev-1");
  EXPECT_EQ(c->generation, 2u);
  EXPECT_EQ(firstByte(*c), 0x22);
  creds_->handshakeResult("dev-1", 2, true);
  EXPECT_EQ(creds_->pskFor("dev-1")->generation, 2u);
  EXPECT_EQ(creds_->pskFor("dev-1")->generation, 2u);
  // A late handshake with the old key (a second unit, or a stale config) fails once, then works.
  creds_->handshakeResult("dev-1", 2, false);
  EXPECT_EQ(creds_->pskFor("dev-1")->generation, 1u);

  // Sessions with either key may continue during the grace period.
  EXPECT_TRUE(creds_->mayContinue(pskPeer("dev-1", 1)));
  EXPECT_TRUE(creds_->mayContinue(pskPeer("dev-1", 2)));
  EXPECT_FALSE(creds_->graceEnded());

  // The grace period ends: only the new key, old sessions must go, and the old key is purged.
  now_ += 60;
  EXPECT_TRUE(creds_->graceEnded());
  c = creds_->pskFor("dev-1");
  EXPECT_EQ(c->generation, 2u);
  EXPECT_FALSE(creds_->mayContinue(pskPeer("dev-1", 1)));
  EXPECT_TRUE(creds_->mayContinue(pskPeer("dev-1", 2)));
  EXPECT_EQ(agent_ks_->purgeExpiredKeys(), 1u);
  creds_->refresh();
  EXPECT_FALSE(creds_->graceEnded());
  EXPECT_FALSE(creds_->mayContinue(pskPeer("dev-1", 1)));
  EXPECT_TRUE(creds_->mayContinue(pskPeer("dev-1", 2)));
  creds_->handshakeResult("dev-1", 2, false);  // outside any grace: nothing to remember
  EXPECT_EQ(creds_->pskFor("dev-1")->generation, 2u);
}

TEST_F(rotationTest, OutcomesCountEvenBeforeThePollNoticedTheRotation) {
  ASSERT_EQ(ctl_ks_->add("dev-1", key(16, 0x11)), keystore::AddResult::ok);
  ASSERT_EQ(ctl_ks_->rotate("dev-1", key(16, 0x22), std::chrono::seconds(60)).result, keystore::RotateResult::ok);
  // No refresh(): the agent's 500 ms poll has not run yet, but handshakes already happen.
  EXPECT_EQ(creds_->pskFor("dev-1")->generation, 1u);
  creds_->handshakeResult("dev-1", 1, false);
  EXPECT_EQ(creds_->pskFor("dev-1")->generation, 2u);
}

TEST_F(rotationTest, TwoRotationsInOneGraceLeaveOnlyTheLastTwoKeys) {
  ASSERT_EQ(ctl_ks_->add("dev-1", key(16, 0x11)), keystore::AddResult::ok);
  ASSERT_EQ(ctl_ks_->rotate("dev-1", key(16, 0x22), std::chrono::seconds(600)).result, keystore::RotateResult::ok);
  ASSERT_EQ(ctl_ks_->rotate("dev-1", key(16, 0x33), std::chrono::seconds(600)).result, keystore::RotateResult::ok);
  creds_->refresh();
  EXPECT_FALSE(creds_->mayContinue(pskPeer("dev-1", 1)));
  EXPECT_TRUE(creds_->mayContinue(pskPeer("dev-1", 2)));
  EXPECT_TRUE(creds_->mayContinue(pskPeer("dev-1", 3)));
  auto c = creds_->pskFor("dev-1");
  EXPECT_EQ(c->generation, 2u);
  EXPECT_EQ(firstByte(*c), 0x22);
}

TEST_F(rotationTest, RevocationsOfIdentitiesAndCertificatesEndSessions) {
  ASSERT_EQ(ctl_ks_->add("dev-1", key(16, 0x11)), keystore::AddResult::ok);
  ASSERT_EQ(ctl_ks_->recordCertificate({"5a01", "dev-x", "client", "issued", 1, 2, 3, {}}),
            keystore::CertAddResult::ok);
  ASSERT_EQ(ctl_ks_->recordCertificate({"5a02", "dev-x", "client", "issued", 1, 2, 3, {}}),
            keystore::CertAddResult::ok);
  coap::PeerIdentity cert_a;
  cert_a.kind = coap::AuthKind::x509;
  cert_a.identity = "dev-x";
  cert_a.certificate_serial = "5a01";
  coap::PeerIdentity cert_b = cert_a;
  cert_b.certificate_serial = "5a02";
  creds_->refresh();
  EXPECT_TRUE(creds_->mayContinue(cert_a));
  EXPECT_FALSE(creds_->isCertificateRevoked("5a01"));

  ASSERT_EQ(ctl_ks_->revokeCertificate("5a01"), keystore::RevokeResult::ok);
  creds_->refresh();
  EXPECT_TRUE(creds_->isCertificateRevoked("5a01"));
  EXPECT_FALSE(creds_->mayContinue(cert_a));
  EXPECT_TRUE(creds_->mayContinue(cert_b));  // the same identity's other certificate is fine

  ASSERT_EQ(ctl_ks_->revoke("dev-1"), keystore::RevokeResult::ok);
  creds_->refresh();
  EXPECT_TRUE(creds_->isRevoked("dev-1"));
  EXPECT_FALSE(creds_->mayContinue(pskPeer("dev-1", 1)));
  EXPECT_FALSE(creds_->pskFor("dev-1").has_value());
  coap::PeerIdentity anonymous;
  EXPECT_TRUE(creds_->mayContinue(anonymous));
}

}  // namespace
}  // namespace coap_edge::daemon
