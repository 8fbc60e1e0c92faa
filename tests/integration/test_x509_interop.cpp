// DTLS with X.509: device certificates must chain to the configured CA, be inside their
// validity period and not be self-signed; the session identity is the subject CN. The PKI is
// generated at test time with the openssl CLI; no key is committed.

#include "coap_clients.h"

#include <gtest/gtest.h>

namespace coap_edge::test {
namespace {

class X509Interop : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    pki_dir_ = new TempDir();
    pki_ = new TestPki(makeTestPki(pki_dir_->path()));
  }
  static void TearDownTestSuite() {
    delete pki_;
    delete pki_dir_;
  }

  void SetUp() override {
    port_ = freeUdpPort();
    const std::string x509 = "certificate = \"" + pki_->gw_crt.string() + "\"\nprivate_key = \"" +
                             pki_->gw_key.string() + "\"\nca = \"" + pki_->ca_crt.string() + "\"\n";
    agent_ = std::make_unique<AgentUnderTest>(dir_, baseConfig(dir_, port_, x509));
    ASSERT_TRUE(agent_->ready()) << agent_->log();
  }

  RunResult get(const std::filesystem::path& crt, const std::filesystem::path& key, int wait_s = 5) {
    return certGet(kOpensslClient, port_, crt.string(), key.string(), pki_->ca_crt.string(), ".well-known/core",
                   wait_s);
  }

  static TempDir* pki_dir_;
  static TestPki* pki_;
  TempDir dir_;
  std::uint16_t port_ = 0;
  std::unique_ptr<AgentUnderTest> agent_;
};

TempDir* X509Interop::pki_dir_ = nullptr;
TestPki* X509Interop::pki_ = nullptr;

TEST_F(X509Interop, DeviceCertificateFromOurCaIsAcceptedWithItsCnAsIdentity) {
  const auto r = get(pki_->dev_crt, pki_->dev_key);
  EXPECT_NE(r.out.find("</status>"), std::string::npos) << r.out << r.err << agent_->log();
  EXPECT_NE(agent_->log().find("session established: 'dev-1' (x509)"), std::string::npos) << agent_->log();
}

TEST_F(X509Interop, GnutlsClientWithDeviceCertificateIsAccepted) {
  const auto r = certGet(kGnutlsClient, port_, pki_->dev_crt.string(), pki_->dev_key.string(),
                         pki_->ca_crt.string(), ".well-known/core");
  EXPECT_NE(r.out.find("</status>"), std::string::npos) << r.out << r.err << agent_->log();
}

TEST_F(X509Interop, CertificateFromAnotherCaIsRefused) {
  const auto r = get(pki_->foreign_crt, pki_->foreign_key, 3);
  EXPECT_EQ(r.out.find("</status>"), std::string::npos) << r.out;
  EXPECT_EQ(agent_->log().find("session established"), std::string::npos) << agent_->log();
}

TEST_F(X509Interop, ExpiredCertificateIsRefused) {
  const auto r = get(pki_->expired_crt, pki_->expired_key, 3);
  EXPECT_EQ(r.out.find("</status>"), std::string::npos) << r.out;
  EXPECT_EQ(agent_->log().find("session established"), std::string::npos) << agent_->log();
}

TEST_F(X509Interop, SelfSignedCertificateIsRefused) {
  const auto r = get(pki_->self_crt, pki_->self_key, 3);
  EXPECT_EQ(r.out.find("</status>"), std::string::npos) << r.out;
  EXPECT_EQ(agent_->log().find("session established"), std::string::npos) << agent_->log();
}

TEST_F(X509Interop, PskStillWorksNextToX509) {
  const auto imp = ctl(agent_->configFile(), {"keys", "import", "-"},
                       "dev-psk,6465762d70736b2d7365637265742d6b6579\n");  // "dev-psk-secret-key"
  ASSERT_EQ(imp.exit_code, 0) << imp.err;
  const auto r = pskGet(kGnutlsClient, port_, "dev-psk", "dev-psk-secret-key", ".well-known/core");
  EXPECT_NE(r.out.find("</status>"), std::string::npos) << r.out << r.err << agent_->log();
}

}  // namespace
}  // namespace coap_edge::test
