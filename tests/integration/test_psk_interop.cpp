// DTLS-PSK termination against independent DTLS stacks (GnuTLS and OpenSSL builds of Debian's
// libcoap client), with keys provisioned through coap-edge-ctl into a real SQLite keystore.

#include "coap_clients.h"

#include <gtest/gtest.h>

#include <csignal>
#include <thread>

namespace coap_edge::test {
namespace {

using namespace std::chrono_literals;

// Printable keys: Debian's 4.3.1 clients take -k as a string.
constexpr const char* kKey1 = "dev1-secret-key-0001";
constexpr const char* kKey2 = "dev2-secret-key-0002";


class PskInterop : public ::testing::TestWithParam<std::string> {
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

TEST_P(PskInterop, ProvisionedKeyGetsWellKnownCore) {
  const auto r = pskGet(GetParam(), port_, "dev-1", kKey1, ".well-known/core");
  EXPECT_NE(r.out.find("</status>"), std::string::npos) << r.out << r.err << agent_->log();
  EXPECT_NE(agent_->log().find("session established: 'dev-1' (psk)"), std::string::npos) << agent_->log();
}

TEST_P(PskInterop, StatusReportsVersionsAndSessions) {
  const auto r = pskGet(GetParam(), port_, "dev-1", kKey1, "status");
  EXPECT_NE(r.out.find("\"tls_library\":\"Mbed TLS 3.6.7\""), std::string::npos) << r.out << r.err;
  EXPECT_NE(r.out.find("\"psk\":1"), std::string::npos) << r.out;
}

TEST_P(PskInterop, WrongKeyIsRefused) {
  const auto r = pskGet(GetParam(), port_, "dev-1", "not-the-right-key-01", ".well-known/core", 3);
  EXPECT_EQ(r.out.find("</status>"), std::string::npos) << r.out;
  EXPECT_EQ(agent_->log().find("session established"), std::string::npos) << agent_->log();
}

TEST_P(PskInterop, UnknownIdentityIsRefused) {
  const auto r = pskGet(GetParam(), port_, "nobody", kKey1, ".well-known/core", 3);
  EXPECT_EQ(r.out.find("</status>"), std::string::npos) << r.out;
  EXPECT_NE(agent_->log().find("unknown or revoked identity 'nobody'"), std::string::npos) << agent_->log();
}

TEST_P(PskInterop, RevokedIdentityLosesItsOpenSessionAndCannotReconnect) {
  // An observation of /status keeps dev-2's DTLS session open for up to 30 s.
  const auto out = dir_ / "observer.out";
  Child observer({GetParam(), "-B", "30", "-s", "30", "-u", "dev-2", "-k", kKey2, coapsUri(port_, "status")}, {},
                 (dir_ / "observer.err").string(), out.string());
  // Wait (bounded) until the observer's session is up.
  ASSERT_TRUE(agent_->waitForLog("session established: 'dev-2'")) << agent_->log();
  ASSERT_TRUE(observer.running());

  const auto revoked_at = std::chrono::steady_clock::now();
  const auto r = ctl(agent_->configFile(), {"keys", "revoke", "dev-2"});
  ASSERT_EQ(r.exit_code, 0) << r.err;

  // The agent closes the session within 2 s of the revocation (plus scheduling slack here).
  const auto closed_deadline = revoked_at + 5s;
  while (agent_->log().find("closed 1 sessions of revoked identities") == std::string::npos &&
         std::chrono::steady_clock::now() < closed_deadline) {
    std::this_thread::sleep_for(50ms);
  }
  EXPECT_NE(agent_->log().find("closing session of 'dev-2'"), std::string::npos) << agent_->log();
  // The client sees its session end long before its 30 s observation would have.
  EXPECT_TRUE(observer.wait(10s).has_value()) << "client still connected after revocation";

  // dev-1 is unaffected and the agent counts no dev-2 session any more.
  const auto status = pskGet(GetParam(), port_, "dev-1", kKey1, "status");
  EXPECT_NE(status.out.find("\"psk\":1"), std::string::npos) << status.out << agent_->log();
  // And dev-2 cannot come back.
  const auto again = pskGet(GetParam(), port_, "dev-2", kKey2, ".well-known/core", 3);
  EXPECT_EQ(again.out.find("</status>"), std::string::npos) << again.out;
}

TEST_P(PskInterop, SessionsBeyondMaxSessionsAreRefused) {
  // Restart the agent with room for exactly one session.
  agent_.reset();
  agent_ = std::make_unique<AgentUnderTest>(dir_, baseConfig(dir_, port_) + "[limits]\nmax_sessions = 1\n");
  ASSERT_TRUE(agent_->ready()) << agent_->log();
  Child holder({GetParam(), "-B", "20", "-s", "20", "-u", "dev-1", "-k", kKey1, coapsUri(port_, "status")}, {},
               (dir_ / "holder.err").string(), (dir_ / "holder.out").string());
  ASSERT_TRUE(agent_->waitForLog("session established: 'dev-1'")) << agent_->log();

  const auto second = pskGet(GetParam(), port_, "dev-2", kKey2, ".well-known/core", 3);
  EXPECT_EQ(second.out.find("</status>"), std::string::npos) << second.out;
  EXPECT_NE(agent_->log().find("refusing handshake of 'dev-2'"), std::string::npos) << agent_->log();
  EXPECT_NE(agent_->log().find("at max_sessions (1)"), std::string::npos) << agent_->log();
  EXPECT_TRUE(holder.running()) << "the established session must not be the one that pays";
}

INSTANTIATE_TEST_SUITE_P(DebianClients, PskInterop, ::testing::Values(kGnutlsClient, kOpensslClient),
                         [](const auto& param_info) { return std::string(param_info.param).substr(12); });

}  // namespace
}  // namespace coap_edge::test
