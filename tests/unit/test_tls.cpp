#include "tls/certificates.h"
#include "tls/mbedtls_util.h"
#include "tls/random.h"
#include "tls/secret.h"

#include <mbedtls/oid.h>
#include <mbedtls/x509_crt.h>

#include <chrono>

#include <gtest/gtest.h>

#include <array>
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

namespace coap_edge::tls {
namespace {

std::vector<std::uint8_t> bytesOf(std::span<const std::uint8_t> s) { return {s.begin(), s.end()}; }

TEST(tlsHex, RoundTripsEveryByteValue) {
  std::vector<std::uint8_t> all(256);
  for (std::size_t i = 0; i < all.size(); ++i) all[i] = static_cast<std::uint8_t>(i);
  const std::string text = hexEncode(all);
  ASSERT_EQ(text.size(), 512u);
  EXPECT_EQ(text.substr(0, 8), "00010203");
  EXPECT_EQ(text.substr(504), "fcfdfeff");
  const auto back = hexDecode(text);
  ASSERT_TRUE(back.has_value());
  EXPECT_EQ(*back, all);
}

TEST(tlsHex, AcceptsUpperAndLowerCase) {
  const auto lower = hexDecode("deadbeef0a");
  const auto upper = hexDecode("DEADBEEF0A");
  ASSERT_TRUE(lower && upper);
  EXPECT_EQ(*lower, (std::vector<std::uint8_t>{0xde, 0xad, 0xbe, 0xef, 0x0a}));
  EXPECT_EQ(*lower, *upper);
}

TEST(tlsHex, EmptyIsEmpty) {
  EXPECT_EQ(hexEncode({}), "");
  const auto empty = hexDecode("");
  ASSERT_TRUE(empty.has_value());
  EXPECT_TRUE(empty->empty());
}

TEST(tlsHex, RejectsOddLengthAndNonHex) {
  EXPECT_FALSE(hexDecode("abc").has_value());
  EXPECT_FALSE(hexDecode("0g").has_value());
  EXPECT_FALSE(hexDecode("g0").has_value());
  EXPECT_FALSE(hexDecode("0x12").has_value());
  EXPECT_FALSE(hexDecode("12 34").has_value());
  EXPECT_FALSE(hexDecode(" 1234").has_value());
  EXPECT_FALSE(hexDecode(std::string("12\0" "4", 4)).has_value());
  // Every byte value that is not a hex digit is rejected, in both nibble positions.
  for (int c = 0; c < 256; ++c) {
    const bool is_hex = (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
    const std::string hi{static_cast<char>(c), '0'};
    const std::string lo{'0', static_cast<char>(c)};
    EXPECT_EQ(hexDecode(hi).has_value(), is_hex) << "char " << c;
    EXPECT_EQ(hexDecode(lo).has_value(), is_hex) << "char " << c;
  }
}

TEST(tlsHex, DecodeSecret) {
  const auto secret = hexDecodeSecret("00ff10");
  ASSERT_TRUE(secret.has_value());
  EXPECT_EQ(bytesOf(secret->span()), (std::vector<std::uint8_t>{0x00, 0xff, 0x10}));
  EXPECT_FALSE(hexDecodeSecret("00f").has_value());
  EXPECT_FALSE(hexDecodeSecret("zz").has_value());
}

TEST(tlsBase64, MatchesRfc4648Vectors) {
  const auto enc = [](std::string_view s) {
    return base64Encode({reinterpret_cast<const std::uint8_t*>(s.data()), s.size()});
  };
  EXPECT_EQ(enc(""), "");
  EXPECT_EQ(enc("f"), "Zg==");
  EXPECT_EQ(enc("fo"), "Zm8=");
  EXPECT_EQ(enc("foo"), "Zm9v");
  EXPECT_EQ(enc("foob"), "Zm9vYg==");
  EXPECT_EQ(enc("fooba"), "Zm9vYmE=");
  EXPECT_EQ(enc("foobar"), "Zm9vYmFy");
}

TEST(tlsConstantTimeEqual, Semantics) {
  const std::array<std::uint8_t, 4> a{1, 2, 3, 4};
  const std::array<std::uint8_t, 4> same{1, 2, 3, 4};
  const std::array<std::uint8_t, 4> last_differs{1, 2, 3, 5};
  const std::array<std::uint8_t, 4> first_differs{0, 2, 3, 4};
  const std::array<std::uint8_t, 3> prefix{1, 2, 3};
  EXPECT_TRUE(constantTimeEqual(a, same));
  EXPECT_FALSE(constantTimeEqual(a, last_differs));
  EXPECT_FALSE(constantTimeEqual(a, first_differs));
  // A prefix with equal content but a different length is not equal, in either order.
  EXPECT_FALSE(constantTimeEqual(a, prefix));
  EXPECT_FALSE(constantTimeEqual(prefix, a));
  EXPECT_TRUE(constantTimeEqual({}, {}));
  EXPECT_FALSE(constantTimeEqual(a, {}));
}

TEST(tlsSecretBytes, MoveLeavesSourceEmpty) {
  SecretBytes a(std::vector<std::uint8_t>{9, 8, 7});
  SecretBytes b(std::move(a));
  EXPECT_EQ(a.size(), 0u);  // NOLINT(bugprone-use-after-move): the moved-from state is the point
  EXPECT_TRUE(a.span().empty());
  EXPECT_EQ(a.span().data(), nullptr);
  EXPECT_EQ(bytesOf(b.span()), (std::vector<std::uint8_t>{9, 8, 7}));

  SecretBytes c(std::vector<std::uint8_t>{1, 1});
  c = std::move(b);
  EXPECT_TRUE(b.empty());  // NOLINT(bugprone-use-after-move)
  EXPECT_EQ(b.span().data(), nullptr);
  EXPECT_EQ(bytesOf(c.span()), (std::vector<std::uint8_t>{9, 8, 7}));
}

TEST(tlsSecretBytes, SizedConstructorZeroesAndCloneCopies) {
  SecretBytes zero(5);
  EXPECT_EQ(bytesOf(zero.span()), std::vector<std::uint8_t>(5, 0));
  zero.mutableSpan()[0] = 42;
  SecretBytes copy = zero.clone();
  EXPECT_NE(copy.span().data(), zero.span().data());
  EXPECT_EQ(bytesOf(copy.span()), bytesOf(zero.span()));
  copy.clear();
  EXPECT_TRUE(copy.empty());
  EXPECT_EQ(zero.span()[0], 42);
}

TEST(tlsSecretBytes, WipeString) {
  std::string text = "00112233";
  wipe(text);
  EXPECT_TRUE(text.empty());
}

TEST(tlsDrbg, KeysHaveTheRightLengthAndDiffer) {
  Drbg drbg("test_tls");
  for (std::size_t n : {16u, 32u, 64u}) {
    const SecretBytes a = drbg.randomSecret(n);
    const SecretBytes b = drbg.randomSecret(n);
    ASSERT_EQ(a.size(), n);
    ASSERT_EQ(b.size(), n);
    EXPECT_FALSE(constantTimeEqual(a.span(), b.span()));
    EXPECT_NE(bytesOf(a.span()), std::vector<std::uint8_t>(n, 0));
  }
  // Two independently seeded generators do not produce the same stream.
  Drbg other("test_tls");
  EXPECT_FALSE(constantTimeEqual(drbg.randomSecret(32).span(), other.randomSecret(32).span()));
}

TEST(tlsDrbg, FillsMoreThanOneRequest) {
  Drbg drbg("test_tls large");
  std::vector<std::uint8_t> big(5000, 0);
  drbg.fill(big);
  // A run of 64 zero bytes at the end would mean the chunking stopped early.
  EXPECT_NE(std::vector<std::uint8_t>(big.end() - 64, big.end()), std::vector<std::uint8_t>(64, 0));
}

TEST(tlsDrbg, RngTrampolineMatchesMbedtlsContract) {
  Drbg drbg("test_tls rng");
  std::array<unsigned char, 48> out{};
  EXPECT_EQ(Drbg::rng(&drbg, out.data(), out.size()), 0);
  EXPECT_EQ(Drbg::rng(&drbg, out.data(), 0), 0);
  EXPECT_NE(Drbg::rng(nullptr, out.data(), out.size()), 0);
  Drbg moved(std::move(drbg));
  EXPECT_EQ(Drbg::rng(&moved, out.data(), out.size()), 0);
}


// --- certificate authority operations -------------------------------------------------------

std::int64_t unixNow() {
  return std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now().time_since_epoch()).count();
}

struct ParsedCrt {
  detail::Crt crt;
  explicit ParsedCrt(const Certificate& c) {
    EXPECT_EQ(mbedtls_x509_crt_parse_der(&crt.v, c.der.data(), c.der.size()), 0);
  }
};

// mbedtls_x509_crt_verify flags of `leaf` against `ca` (0 = trusted), optionally for a host name.
std::uint32_t verifyFlags(const Certificate& leaf, const Certificate& ca, const char* cn = nullptr) {
  ParsedCrt l(leaf);
  ParsedCrt a(ca);
  std::uint32_t flags = 0;
  (void)mbedtls_x509_crt_verify(&l.crt.v, &a.crt.v, nullptr, cn, &flags, nullptr, nullptr);
  return flags;
}

class tlsCa : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    drbg_ = new Drbg("test_tls ca");
    auto ca = CertificateAuthority::create("coap-edge CA test", 30, *drbg_, unixNow());
    ASSERT_TRUE(ca.ok()) << ca.error();
    ca_ = new CertificateAuthority(std::move(*ca));
  }
  static void TearDownTestSuite() {
    delete ca_;
    delete drbg_;
  }
  static Drbg* drbg_;
  static CertificateAuthority* ca_;
};
Drbg* tlsCa::drbg_ = nullptr;
CertificateAuthority* tlsCa::ca_ = nullptr;

TEST_F(tlsCa, CaIsSelfSignedCaTrueAndMaySignCertificates) {
  const Certificate& c = ca_->certificate();
  EXPECT_EQ(c.common_name, "coap-edge CA test");
  EXPECT_EQ(c.serial.size(), 32u);
  EXPECT_EQ(verifyFlags(c, c), 0u);
  ParsedCrt p(c);
  EXPECT_EQ(mbedtls_x509_crt_check_key_usage(&p.crt.v, MBEDTLS_X509_KU_KEY_CERT_SIGN | MBEDTLS_X509_KU_CRL_SIGN), 0);
  EXPECT_NE(mbedtls_x509_crt_check_key_usage(&p.crt.v, MBEDTLS_X509_KU_DIGITAL_SIGNATURE), 0);
  EXPECT_LE(c.not_after - unixNow(), 30 * 86400);  // issued "now", give or take a slow second
  EXPECT_GE(c.not_after - unixNow(), 30 * 86400 - 5);
  EXPECT_NE(c.pem.find("-----BEGIN CERTIFICATE-----"), std::string::npos);
  EXPECT_TRUE(ca_->key().hasPrivate());
}

TEST_F(tlsCa, IssuedDeviceCertificateVerifiesAgainstTheCaOnly) {
  auto key = Key::generate(*drbg_);
  ASSERT_TRUE(key.ok()) << key.error();
  CertificateSpec spec;
  spec.common_name = "dev-1";
  spec.days = 10;
  const std::int64_t now = unixNow();
  auto cert = ca_->issue(*key, spec, *drbg_, now);
  ASSERT_TRUE(cert.ok()) << cert.error();
  EXPECT_EQ(cert->common_name, "dev-1");
  EXPECT_EQ(cert->serial.size(), 32u);
  EXPECT_NE(cert->serial, ca_->certificate().serial);
  EXPECT_EQ(cert->not_before, now - kBackdateSeconds);
  EXPECT_EQ(cert->not_after, now + 10 * 86400);
  EXPECT_EQ(verifyFlags(*cert, ca_->certificate()), 0u);

  ParsedCrt p(*cert);
  EXPECT_EQ(mbedtls_x509_crt_check_key_usage(&p.crt.v, MBEDTLS_X509_KU_DIGITAL_SIGNATURE), 0);
  EXPECT_NE(mbedtls_x509_crt_check_key_usage(&p.crt.v, MBEDTLS_X509_KU_KEY_CERT_SIGN), 0);
  EXPECT_EQ(mbedtls_x509_crt_check_extended_key_usage(&p.crt.v, MBEDTLS_OID_CLIENT_AUTH,
                                                      MBEDTLS_OID_SIZE(MBEDTLS_OID_CLIENT_AUTH)),
            0);
  EXPECT_NE(mbedtls_x509_crt_check_extended_key_usage(&p.crt.v, MBEDTLS_OID_SERVER_AUTH,
                                                      MBEDTLS_OID_SIZE(MBEDTLS_OID_SERVER_AUTH)),
            0);
  // The serial as the agent reads it from a peer certificate is the one recorded.
  EXPECT_EQ(serialHex({p.crt.v.serial.p, p.crt.v.serial.len}), cert->serial);
  // Parsing PEM and DER gives the same description.
  auto from_pem = parseCertificate(tls::bytesOf(cert->pem));
  ASSERT_TRUE(from_pem.ok()) << from_pem.error();
  EXPECT_EQ(from_pem->der, cert->der);
  EXPECT_EQ(from_pem->serial, cert->serial);

  // Another CA does not vouch for it, and it cannot itself sign.
  auto other = CertificateAuthority::create("other CA", 30, *drbg_, now);
  ASSERT_TRUE(other.ok());
  EXPECT_NE(verifyFlags(*cert, other->certificate()) & MBEDTLS_X509_BADCERT_NOT_TRUSTED, 0u);
}

TEST_F(tlsCa, GatewayCertificateHasServerAuthAndItsAltNames) {
  auto key = Key::generate(*drbg_);
  ASSERT_TRUE(key.ok());
  CertificateSpec spec;
  spec.common_name = "gw-1";
  spec.profile = Profile::server;
  spec.alt_names = {"127.0.0.1", "localhost", "::1"};
  auto cert = ca_->issue(*key, spec, *drbg_, unixNow());
  ASSERT_TRUE(cert.ok()) << cert.error();
  EXPECT_EQ(verifyFlags(*cert, ca_->certificate(), "localhost"), 0u);
  EXPECT_NE(verifyFlags(*cert, ca_->certificate(), "elsewhere.example") & MBEDTLS_X509_BADCERT_CN_MISMATCH, 0u);
  ParsedCrt p(*cert);
  EXPECT_EQ(mbedtls_x509_crt_check_extended_key_usage(&p.crt.v, MBEDTLS_OID_SERVER_AUTH,
                                                      MBEDTLS_OID_SIZE(MBEDTLS_OID_SERVER_AUTH)),
            0);

  spec.alt_names = {"not a name!"};
  EXPECT_FALSE(ca_->issue(*key, spec, *drbg_, unixNow()).ok());
  spec.profile = Profile::client;
  spec.alt_names = {"localhost"};
  EXPECT_FALSE(ca_->issue(*key, spec, *drbg_, unixNow()).ok());  // SANs are for gateways only
}

// The upstream's certificate must be for server_name (the agent checks it itself: libcoap
// clears Mbed TLS's name mismatch flag).
TEST_F(tlsCa, CertificateNamesHostBySubjectAltNameElseByCommonName) {
  auto key = Key::generate(*drbg_);
  ASSERT_TRUE(key.ok());
  CertificateSpec spec;
  spec.common_name = "cn.example";
  spec.profile = Profile::server;
  spec.alt_names = {"127.0.0.1", "upstream.example"};
  auto server = ca_->issue(*key, spec, *drbg_, unixNow());
  ASSERT_TRUE(server.ok()) << server.error();
  EXPECT_TRUE(certificateNamesHost(server->der, "upstream.example"));
  EXPECT_TRUE(certificateNamesHost(server->der, "UPSTREAM.Example"));
  EXPECT_FALSE(certificateNamesHost(server->der, "other.example"));
  EXPECT_FALSE(certificateNamesHost(server->der, "x.upstream.example"));
  EXPECT_FALSE(certificateNamesHost(server->der, "upstream.example."));
  EXPECT_FALSE(certificateNamesHost(server->der, "127.0.0.1"));  // an iPAddress is no dNSName
  EXPECT_FALSE(certificateNamesHost(server->der, ""));
  // With dNSNames present, the CN does not count.
  EXPECT_FALSE(certificateNamesHost(server->der, "cn.example"));
  // Without any dNSName, the CN does.
  auto client = ca_->issue(*key, CertificateSpec{"dev-9", Profile::client, 5, {}}, *drbg_, unixNow());
  ASSERT_TRUE(client.ok()) << client.error();
  EXPECT_TRUE(certificateNamesHost(client->der, "dev-9"));
  EXPECT_FALSE(certificateNamesHost(client->der, "dev-1"));
  // Garbage is no certificate for anything.
  const std::vector<std::uint8_t> garbage{0x30, 0x03, 0x02, 0x01, 0x00};
  EXPECT_FALSE(certificateNamesHost(garbage, "dev-9"));
}

TEST_F(tlsCa, NamesAreTakenLiterallyAndDaysAreBounded) {
  auto key = Key::generate(*drbg_);
  ASSERT_TRUE(key.ok());
  CertificateSpec spec;
  spec.common_name = "x=1+CN=evil\\;#<>";  // DN syntax characters must not inject attributes
  auto cert = ca_->issue(*key, spec, *drbg_, unixNow());
  ASSERT_TRUE(cert.ok()) << cert.error();
  EXPECT_EQ(cert->common_name, spec.common_name);
  ParsedCrt p(*cert);
  int count = 0;
  (void)detail::commonNameOf(p.crt.v.subject, &count);
  EXPECT_EQ(count, 1);
  for (const int days : {0, -1, kMaxDays + 1}) {
    spec.days = days;
    EXPECT_FALSE(ca_->issue(*key, spec, *drbg_, unixNow()).ok()) << days;
  }
  spec.days = 1;
  spec.common_name.clear();
  EXPECT_FALSE(ca_->issue(*key, spec, *drbg_, unixNow()).ok());
}

TEST_F(tlsCa, CaLoadsBackFromPemAndRefusesAForeignKey) {
  auto pem = ca_->key().privatePem();
  ASSERT_TRUE(pem.ok());
  const std::string text(reinterpret_cast<const char*>(pem->span().data()), pem->size());
  EXPECT_NE(text.find("-----BEGIN EC PRIVATE KEY-----"), std::string::npos);
  auto loaded = CertificateAuthority::load(tls::bytesOf(ca_->certificate().pem), pem->span(), *drbg_);
  ASSERT_TRUE(loaded.ok()) << loaded.error();
  EXPECT_EQ(loaded->certificate().serial, ca_->certificate().serial);
  auto key = Key::generate(*drbg_);
  ASSERT_TRUE(key.ok());
  auto cert = loaded->issue(*key, CertificateSpec{"dev-2", Profile::client, 5, {}}, *drbg_, unixNow());
  ASSERT_TRUE(cert.ok()) << cert.error();
  EXPECT_EQ(verifyFlags(*cert, ca_->certificate()), 0u);

  auto foreign = key->privatePem();
  ASSERT_TRUE(foreign.ok());
  auto bad = CertificateAuthority::load(tls::bytesOf(ca_->certificate().pem), foreign->span(), *drbg_);
  EXPECT_FALSE(bad.ok());
  EXPECT_NE(bad.error().find("does not belong"), std::string::npos) << bad.error();
  // A device certificate cannot be loaded as a CA.
  EXPECT_FALSE(CertificateAuthority::load(tls::bytesOf(cert->pem), foreign->span(), *drbg_).ok());
  EXPECT_FALSE(CertificateAuthority::load(tls::bytesOf("garbage"), pem->span(), *drbg_).ok());
}

TEST_F(tlsCa, KeysRoundTripThroughPemAndDer) {
  auto key = Key::generate(*drbg_);
  ASSERT_TRUE(key.ok());
  auto pem = key->privatePem();
  auto der = key->privateDer();
  ASSERT_TRUE(pem.ok() && der.ok());
  auto from_pem = Key::loadPrivate(pem->span(), *drbg_);
  auto from_der = Key::loadPrivate(der->span(), *drbg_);
  ASSERT_TRUE(from_pem.ok()) << from_pem.error();
  ASSERT_TRUE(from_der.ok()) << from_der.error();
  EXPECT_TRUE(constantTimeEqual(from_pem->privateDer()->span(), der->span()));
  auto pub = key->publicCopy();
  ASSERT_TRUE(pub.ok());
  EXPECT_FALSE(pub->hasPrivate());
  EXPECT_FALSE(pub->privatePem().ok());
  EXPECT_FALSE(Key::loadPrivate(tls::bytesOf("-----BEGIN EC PRIVATE KEY-----\nAAAA\n-----END EC PRIVATE KEY-----\n"),
                                *drbg_)
                   .ok());
}

// DER of a CSR made by makeCsr (PEM -> DER via mbedTLS's own parser).
std::vector<std::uint8_t> csrDer(const std::string& pem) {
  detail::Csr csr;
  const auto buf = detail::nulTerminated(tls::bytesOf(pem));
  EXPECT_EQ(mbedtls_x509_csr_parse(&csr.v, buf.data(), buf.size()), 0);
  return {csr.v.raw.p, csr.v.raw.p + csr.v.raw.len};
}

TEST_F(tlsCa, CsrIsCheckedAndItsKeyCertified) {
  auto key = Key::generate(*drbg_);
  ASSERT_TRUE(key.ok());
  auto csr = makeCsr(*key, "dev-3", *drbg_);
  ASSERT_TRUE(csr.ok()) << csr.error();
  EXPECT_NE(csr->find("-----BEGIN CERTIFICATE REQUEST-----"), std::string::npos);
  for (const auto& input : {std::vector<std::uint8_t>(csr->begin(), csr->end()), csrDer(*csr)}) {
    auto checked = checkCsr(input);
    ASSERT_TRUE(checked.ok()) << checked.error();
    EXPECT_EQ(checked->common_name, "dev-3");
    EXPECT_FALSE(checked->public_key.hasPrivate());
    auto cert = ca_->issue(checked->public_key, CertificateSpec{"dev-3", Profile::client, 5, {}}, *drbg_, unixNow());
    ASSERT_TRUE(cert.ok()) << cert.error();
    EXPECT_EQ(verifyFlags(*cert, ca_->certificate()), 0u);
    // The certificate carries the CSR's key: it pairs with the device's private key.
    ParsedCrt p(*cert);
    EXPECT_EQ(mbedtls_pk_check_pair(&p.crt.v.pk, &key->impl().pk, Drbg::rng, drbg_), 0);
  }
}

TEST_F(tlsCa, CsrWithABadSignatureIsRefused) {
  auto key = Key::generate(*drbg_);
  ASSERT_TRUE(key.ok());
  auto csr = makeCsr(*key, "dev-4", *drbg_);
  ASSERT_TRUE(csr.ok());
  const std::vector<std::uint8_t> der = csrDer(*csr);

  // A bit flipped inside the signature.
  std::vector<std::uint8_t> bad_sig = der;
  bad_sig[bad_sig.size() - 6] ^= 0x01;
  auto r = checkCsr(bad_sig);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().find("signature does not verify"), std::string::npos) << r.error();

  // The signed content changed: the CN now claims another device.
  std::vector<std::uint8_t> other_cn = der;
  const std::string cn = "dev-4";
  auto at = std::search(other_cn.begin(), other_cn.end(), cn.begin(), cn.end());
  ASSERT_NE(at, other_cn.end());
  at[4] = '5';
  r = checkCsr(other_cn);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().find("signature does not verify"), std::string::npos) << r.error();

  // The key replaced by another one (signature made with the first).
  auto key2 = Key::generate(*drbg_);
  ASSERT_TRUE(key2.ok());
  auto csr2 = makeCsr(*key2, "dev-4", *drbg_);
  ASSERT_TRUE(csr2.ok());
  const std::vector<std::uint8_t> der2 = csrDer(*csr2);
  // Same layout (same CN, P-256): splice the second CSR's public key into the first one.
  std::vector<std::uint8_t> spliced = der;
  detail::Csr a, b;
  ASSERT_EQ(mbedtls_x509_csr_parse_der(&a.v, der.data(), der.size()), 0);
  ASSERT_EQ(mbedtls_x509_csr_parse_der(&b.v, der2.data(), der2.size()), 0);
  ASSERT_EQ(a.v.cri.len, b.v.cri.len);
  const auto cri_at = static_cast<std::size_t>(a.v.cri.p - a.v.raw.p);
  std::copy(b.v.cri.p, b.v.cri.p + b.v.cri.len, spliced.begin() + static_cast<std::ptrdiff_t>(cri_at));
  r = checkCsr(spliced);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().find("signature does not verify"), std::string::npos) << r.error();
}

TEST(tlsCsr, GarbageIsRefusedWithAMessage) {
  EXPECT_FALSE(checkCsr({}).ok());
  EXPECT_FALSE(checkCsr(tls::bytesOf("hello")).ok());
  EXPECT_FALSE(checkCsr(tls::bytesOf("-----BEGIN CERTIFICATE REQUEST-----\n!!\n-----END CERTIFICATE REQUEST-----\n")).ok());
  const std::string huge(kMaxCsrBytes + 1, 'A');
  auto r = checkCsr(tls::bytesOf(huge));
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().find("larger"), std::string::npos);
}

TEST(tlsSerial, HexDropsLeadingZeroBytes) {
  EXPECT_EQ(serialHex(std::vector<std::uint8_t>{0x00, 0x8f, 0x01}), "8f01");
  EXPECT_EQ(serialHex(std::vector<std::uint8_t>{0x7f}), "7f");
  EXPECT_EQ(serialHex(std::vector<std::uint8_t>{0x00}), "00");
  EXPECT_EQ(serialHex(std::vector<std::uint8_t>{}), "00");
}

}  // namespace
}  // namespace coap_edge::tls
