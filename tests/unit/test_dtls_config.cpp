// The DTLS configuration this build actually carries (cmake/mbedtls/coap_edge_mbedtls_config.h,
// compiled into mbedTLS, libcoap and the agent). Issue 7: renegotiation off and no bad-MAC limit
// (together the preconditions of CVE-2026-50713), anti-replay on, and only the configured cipher
// suites. The features are asked of the compiled library (mbedtls_version_check_feature), not
// only of the headers this test sees, so a library built with another configuration fails here.
//
// libcoap 4.3.5's Mbed TLS backend never calls mbedtls_ssl_conf_dtls_badmac_limit(),
// mbedtls_ssl_conf_dtls_anti_replay() or, on the server side, mbedtls_ssl_conf_ciphersuites()
// (src/coap_mbedtls.c; its set_ciphersuites() is for client sessions): a server session runs with
// mbedtls_ssl_config_defaults(), which is what the runtime checks below look at.

#define MBEDTLS_ALLOW_PRIVATE_ACCESS
#include <mbedtls/ssl.h>
#include <mbedtls/version.h>

#include <gtest/gtest.h>

#include <vector>

namespace {

bool libraryHas(const char* feature) { return mbedtls_version_check_feature(feature) == 0; }

TEST(DtlsConfig, FeatureCheckWorksInThisBuild) {
  // Without MBEDTLS_VERSION_FEATURES every feature would look absent and the tests below
  // would pass for the wrong reason.
  EXPECT_TRUE(libraryHas("MBEDTLS_SSL_PROTO_DTLS"));
  EXPECT_FALSE(libraryHas("MBEDTLS_NOT_A_FEATURE"));
}

TEST(DtlsConfig, RenegotiationIsCompiledOut) {
#ifdef MBEDTLS_SSL_RENEGOTIATION
  ADD_FAILURE() << "MBEDTLS_SSL_RENEGOTIATION is defined in the headers";
#endif
  EXPECT_FALSE(libraryHas("MBEDTLS_SSL_RENEGOTIATION"));
}

TEST(DtlsConfig, NoBadMacLimitCanBeSet) {
  // Compiled out, mbedtls_ssl_conf_dtls_badmac_limit() does not exist: nothing can set a limit.
#ifdef MBEDTLS_SSL_DTLS_BADMAC_LIMIT
  ADD_FAILURE() << "MBEDTLS_SSL_DTLS_BADMAC_LIMIT is defined in the headers";
#endif
  EXPECT_FALSE(libraryHas("MBEDTLS_SSL_DTLS_BADMAC_LIMIT"));
}

TEST(DtlsConfig, TlsOneThreeIsCompiledOut) {
  EXPECT_FALSE(libraryHas("MBEDTLS_SSL_PROTO_TLS1_3"));
}

// Per-session memory (issue 9): the agent takes the peer's CN and serial in its verify hook, so
// a parsed copy of every peer's certificate, and a DHE group per server config, are dead weight.
TEST(DtlsConfig, PerSessionStateWeDoNotUseIsCompiledOut) {
  EXPECT_FALSE(libraryHas("MBEDTLS_SSL_KEEP_PEER_CERTIFICATE"));
  EXPECT_FALSE(libraryHas("MBEDTLS_DHM_C"));
}

TEST(DtlsConfig, DtlsFeaturesTheGatewayReliesOnArePresent) {
  EXPECT_TRUE(libraryHas("MBEDTLS_SSL_DTLS_ANTI_REPLAY"));
  EXPECT_TRUE(libraryHas("MBEDTLS_SSL_DTLS_HELLO_VERIFY"));
  EXPECT_TRUE(libraryHas("MBEDTLS_SSL_COOKIE_C"));
  EXPECT_TRUE(libraryHas("MBEDTLS_SSL_DTLS_CONNECTION_ID"));
}

class ServerDefaults : public ::testing::Test {
 protected:
  void SetUp() override {
    mbedtls_ssl_config_init(&conf_);
    ASSERT_EQ(mbedtls_ssl_config_defaults(&conf_, MBEDTLS_SSL_IS_SERVER, MBEDTLS_SSL_TRANSPORT_DATAGRAM,
                                          MBEDTLS_SSL_PRESET_DEFAULT),
              0);
  }
  void TearDown() override { mbedtls_ssl_config_free(&conf_); }
  mbedtls_ssl_config conf_;
};

TEST_F(ServerDefaults, AntiReplayIsOn) {
  EXPECT_EQ(static_cast<int>(conf_.anti_replay), MBEDTLS_SSL_ANTI_REPLAY_ENABLED);
}

// RFC 7252 §9.1.3: the mandatory CCM_8 suites, plus their AES-128-GCM variants, in this order.
const std::vector<int> kConfiguredSuites{MBEDTLS_TLS_PSK_WITH_AES_128_CCM_8, MBEDTLS_TLS_ECDHE_ECDSA_WITH_AES_128_CCM_8,
                                         MBEDTLS_TLS_PSK_WITH_AES_128_GCM_SHA256,
                                         MBEDTLS_TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256};

std::vector<int> listOf(const int* list) {
  std::vector<int> out;
  for (std::size_t i = 0; list != nullptr && list[i] != 0 && i < 1000; ++i) out.push_back(list[i]);
  return out;
}

TEST(DtlsConfig, LibraryOffersExactlyTheConfiguredSuites) {
  EXPECT_EQ(listOf(mbedtls_ssl_list_ciphersuites()), kConfiguredSuites);
}

TEST_F(ServerDefaults, ServerSessionsUseExactlyTheConfiguredSuites) {
  EXPECT_EQ(listOf(conf_.ciphersuite_list), kConfiguredSuites);
}

}  // namespace
