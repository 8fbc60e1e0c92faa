// Keys, the CA and certificate issuance on mbedTLS (see certificates.h).
#include "tls/certificates.h"

#include "tls/mbedtls_util.h"

#include <arpa/inet.h>
#include <mbedtls/asn1write.h>
#include <mbedtls/ecp.h>
#include <mbedtls/error.h>
#include <mbedtls/oid.h>
#include <mbedtls/pem.h>
#include <mbedtls/platform_util.h>

#include <fmt/format.h>

#include <algorithm>
#include <array>
#include <cstring>

namespace coap_edge::tls {
namespace detail {

std::string mbedtlsError(int rc) {
  std::array<char, 160> text{};
  mbedtls_strerror(rc, text.data(), text.size());
  return fmt::format("{} (-0x{:04x})", text.data(), static_cast<unsigned>(rc < 0 ? -rc : rc));
}

std::string cnName(std::string_view common_name) {
  std::string out = "CN=";
  out.reserve(3 + 3 * common_name.size());
  for (const char ch : common_name) {
    const auto c = static_cast<unsigned char>(ch);
    if ((c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')) {
      out.push_back(ch);
    } else {
      out += fmt::format("\\{:02X}", c);
    }
  }
  return out;
}

std::string commonNameOf(const mbedtls_x509_name& name, int* count) {
  std::string cn;
  int n = 0;
  for (const mbedtls_x509_name* at = &name; at != nullptr; at = at->next) {
    if (at->oid.p == nullptr || MBEDTLS_OID_CMP(MBEDTLS_OID_AT_CN, &at->oid) != 0) continue;
    if (n++ == 0) cn.assign(reinterpret_cast<const char*>(at->val.p), at->val.len);
  }
  if (count != nullptr) *count = n;
  return cn;
}

std::vector<unsigned char> nulTerminated(std::span<const std::uint8_t> bytes) {
  std::vector<unsigned char> buf(bytes.begin(), bytes.end());
  buf.push_back('\0');
  return buf;
}

namespace {

std::int64_t unixTime(const mbedtls_x509_time& t) {
  std::tm tm{};
  tm.tm_year = t.year - 1900;
  tm.tm_mon = t.mon - 1;
  tm.tm_mday = t.day;
  tm.tm_hour = t.hour;
  tm.tm_min = t.min;
  tm.tm_sec = t.sec;
  return static_cast<std::int64_t>(::timegm(&tm));
}

}  // namespace

Result<Certificate> describe(const mbedtls_x509_crt& crt) {
  Certificate c;
  c.der.assign(crt.raw.p, crt.raw.p + crt.raw.len);
  std::vector<unsigned char> pem(crt.raw.len * 2 + 128);
  std::size_t written = 0;
  if (const int rc = mbedtls_pem_write_buffer("-----BEGIN CERTIFICATE-----\n", "-----END CERTIFICATE-----\n",
                                              crt.raw.p, crt.raw.len, pem.data(), pem.size(), &written);
      rc != 0) {
    return Failure{"cannot write the certificate as PEM: " + mbedtlsError(rc)};
  }
  c.pem.assign(reinterpret_cast<const char*>(pem.data()), written > 0 ? written - 1 : 0);  // without the NUL
  c.serial = serialHex({crt.serial.p, crt.serial.len});
  c.common_name = commonNameOf(crt.subject);
  c.not_before = unixTime(crt.valid_from);
  c.not_after = unixTime(crt.valid_to);
  return c;
}

}  // namespace detail

using detail::mbedtlsError;

namespace {

std::string x509Time(std::int64_t unix_seconds) {
  const auto t = static_cast<std::time_t>(unix_seconds);
  std::tm tm{};
  ::gmtime_r(&t, &tm);
  return fmt::format("{:04}{:02}{:02}{:02}{:02}{:02}", tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour,
                     tm.tm_min, tm.tm_sec);
}

bool looksLikePem(std::span<const std::uint8_t> bytes) {
  static constexpr std::string_view kBegin = "-----BEGIN";
  return std::search(bytes.begin(), bytes.end(), kBegin.begin(), kBegin.end()) != bytes.end();
}

// A DNS name we are willing to put into a certificate: LDH labels separated by dots.
bool isDnsName(std::string_view name) {
  if (name.empty() || name.size() > 253 || name.front() == '.' || name.back() == '.') return false;
  std::size_t label = 0;
  for (const char c : name) {
    if (c == '.') {
      if (label == 0) return false;
      label = 0;
      continue;
    }
    const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-';
    if (!ok || ++label > 63) return false;
  }
  return true;
}

// The subjectAltName entries, with the storage the mbedTLS list points into.
struct AltNames {
  std::vector<std::vector<unsigned char>> values;
  std::vector<mbedtls_x509_san_list> list;
};

Result<AltNames> altNames(const CertificateSpec& spec) {
  AltNames out;
  std::vector<std::string> names = spec.alt_names;
  if (names.empty()) names.push_back(spec.common_name);
  for (const std::string& name : names) {
    mbedtls_x509_san_list node{};
    std::array<unsigned char, 16> ip{};
    if (inet_pton(AF_INET, name.c_str(), ip.data()) == 1) {
      node.node.type = MBEDTLS_X509_SAN_IP_ADDRESS;
      out.values.emplace_back(ip.begin(), ip.begin() + 4);
    } else if (inet_pton(AF_INET6, name.c_str(), ip.data()) == 1) {
      node.node.type = MBEDTLS_X509_SAN_IP_ADDRESS;
      out.values.emplace_back(ip.begin(), ip.end());
    } else if (isDnsName(name)) {
      node.node.type = MBEDTLS_X509_SAN_DNS_NAME;
      out.values.emplace_back(name.begin(), name.end());
    } else {
      return Failure{fmt::format("'{}' is neither an IP address nor a DNS name", name)};
    }
    out.list.push_back(node);
  }
  for (std::size_t i = 0; i < out.list.size(); ++i) {
    out.list[i].node.san.unstructured_name.p = out.values[i].data();
    out.list[i].node.san.unstructured_name.len = out.values[i].size();
    out.list[i].next = i + 1 < out.list.size() ? &out.list[i + 1] : nullptr;
  }
  return out;
}

// mbedTLS takes non-const contexts for keys it only reads.
mbedtls_pk_context* pkOf(const Key& key) { return &key.impl().pk; }

struct Extensions {
  bool ca = false;
  Profile profile = Profile::client;
  const mbedtls_x509_san_list* san = nullptr;
};

// Builds, signs and DER-encodes one certificate. The issuer's subject is one CN (our CAs).
Result<std::vector<std::uint8_t>> build(const Key& subject, std::string_view subject_cn, const Key& issuer,
                                        std::string_view issuer_cn, const Extensions& ext, int days, Drbg& drbg,
                                        std::int64_t now) {
  if (days < 1 || days > kMaxDays) return Failure{fmt::format("validity must be 1 to {} days, not {}", kMaxDays, days)};
  if (subject_cn.empty()) return Failure{"the subject CN is empty"};
  detail::CrtWriter w;
  mbedtls_x509write_crt_set_version(&w.v, MBEDTLS_X509_CRT_VERSION_3);
  mbedtls_x509write_crt_set_md_alg(&w.v, MBEDTLS_MD_SHA256);
  // 16 random bytes; the top bit cleared keeps the INTEGER positive and one bit set keeps it
  // exactly 16 bytes long, so the serial has one spelling everywhere.
  std::array<unsigned char, 16> serial{};
  drbg.fill(serial);
  serial[0] = static_cast<unsigned char>((serial[0] & 0x7F) | 0x40);
  const std::int64_t not_before = now - kBackdateSeconds;
  const std::int64_t not_after = now + static_cast<std::int64_t>(days) * 86400;
  const std::string subject_name = detail::cnName(subject_cn);
  const std::string issuer_name = detail::cnName(issuer_cn);
  int rc = 0;
  const auto step = [&rc](int r) { return (rc = r) == 0; };
  if (!step(mbedtls_x509write_crt_set_serial_raw(&w.v, serial.data(), serial.size())) ||
      !step(mbedtls_x509write_crt_set_validity(&w.v, x509Time(not_before).c_str(), x509Time(not_after).c_str())) ||
      !step(mbedtls_x509write_crt_set_subject_name(&w.v, subject_name.c_str())) ||
      !step(mbedtls_x509write_crt_set_issuer_name(&w.v, issuer_name.c_str()))) {
    return Failure{"cannot set the certificate's serial, validity or names: " + mbedtlsError(rc)};
  }
  mbedtls_x509write_crt_set_subject_key(&w.v, pkOf(subject));
  mbedtls_x509write_crt_set_issuer_key(&w.v, pkOf(issuer));
  mbedtls_asn1_sequence eku{};
  eku.buf.tag = MBEDTLS_ASN1_OID;
  const char* eku_oid = ext.profile == Profile::server ? MBEDTLS_OID_SERVER_AUTH : MBEDTLS_OID_CLIENT_AUTH;
  eku.buf.p = reinterpret_cast<unsigned char*>(const_cast<char*>(eku_oid));
  eku.buf.len = ext.profile == Profile::server ? MBEDTLS_OID_SIZE(MBEDTLS_OID_SERVER_AUTH)
                                               : MBEDTLS_OID_SIZE(MBEDTLS_OID_CLIENT_AUTH);
  const unsigned int usage =
      ext.ca ? MBEDTLS_X509_KU_KEY_CERT_SIGN | MBEDTLS_X509_KU_CRL_SIGN : MBEDTLS_X509_KU_DIGITAL_SIGNATURE;
  if (!step(mbedtls_x509write_crt_set_basic_constraints(&w.v, ext.ca ? 1 : 0, ext.ca ? 0 : -1)) ||
      !step(mbedtls_x509write_crt_set_key_usage(&w.v, usage)) ||
      !step(mbedtls_x509write_crt_set_subject_key_identifier(&w.v)) ||
      !step(mbedtls_x509write_crt_set_authority_key_identifier(&w.v)) ||
      (!ext.ca && !step(mbedtls_x509write_crt_set_ext_key_usage(&w.v, &eku))) ||
      (ext.san != nullptr && !step(mbedtls_x509write_crt_set_subject_alternative_name(&w.v, ext.san)))) {
    return Failure{"cannot set the certificate's extensions: " + mbedtlsError(rc)};
  }
  std::vector<unsigned char> buf(4096);
  const int len = mbedtls_x509write_crt_der(&w.v, buf.data(), buf.size(), Drbg::rng, &drbg);
  if (len < 0) return Failure{"cannot sign the certificate: " + mbedtlsError(len)};
  return std::vector<std::uint8_t>(buf.end() - len, buf.end());
}

// Parses what build() produced and checks it against the issuer: same issuer name bytes (GnuTLS
// compares them raw) and a chain that mbedTLS verifies. Validity dates are not judged here
// (tests issue at other times); peers judge them.
Result<Certificate> verified(const std::vector<std::uint8_t>& der, const mbedtls_x509_crt* issuer) {
  detail::Crt crt;
  if (const int rc = mbedtls_x509_crt_parse_der(&crt.v, der.data(), der.size()); rc != 0) {
    return Failure{"the new certificate does not parse: " + mbedtlsError(rc)};
  }
  const mbedtls_x509_crt* anchor = issuer != nullptr ? issuer : &crt.v;
  if (crt.v.issuer_raw.len != anchor->subject_raw.len ||
      std::memcmp(crt.v.issuer_raw.p, anchor->subject_raw.p, anchor->subject_raw.len) != 0) {
    return Failure{"the new certificate's issuer does not match the CA's subject"};
  }
  std::uint32_t flags = 0;
  const int rc = mbedtls_x509_crt_verify(&crt.v, const_cast<mbedtls_x509_crt*>(anchor), nullptr, nullptr, &flags,
                                         nullptr, nullptr);
  constexpr std::uint32_t kTimeFlags = MBEDTLS_X509_BADCERT_EXPIRED | MBEDTLS_X509_BADCERT_FUTURE;
  if (rc != 0 && (flags & ~kTimeFlags) != 0) {
    return Failure{fmt::format("the new certificate does not verify against the CA (flags 0x{:x})", flags)};
  }
  return detail::describe(crt.v);
}

Result<SecretBytes> shrink(const SecretBytes& buf, std::size_t offset, std::size_t len) {
  return SecretBytes(buf.span().subspan(offset, len));
}

}  // namespace

Key::Key() : impl_(std::make_unique<Impl>()) {}
Key::~Key() = default;
Key::Key(Key&&) noexcept = default;
Key& Key::operator=(Key&&) noexcept = default;

Result<Key> Key::generate(Drbg& drbg) {
  Key key;
  mbedtls_pk_context& pk = key.impl_->pk;
  if (const int rc = mbedtls_pk_setup(&pk, mbedtls_pk_info_from_type(MBEDTLS_PK_ECKEY)); rc != 0) {
    return Failure{"cannot set up an EC key: " + mbedtlsError(rc)};
  }
  if (const int rc = mbedtls_ecp_gen_key(MBEDTLS_ECP_DP_SECP256R1, mbedtls_pk_ec(pk), Drbg::rng, &drbg); rc != 0) {
    return Failure{"cannot generate a P-256 key: " + mbedtlsError(rc)};
  }
  key.has_private_ = true;
  return key;
}

Result<Key> Key::loadPrivate(std::span<const std::uint8_t> pem_or_der, Drbg& drbg) {
  Key key;
  std::vector<unsigned char> buf = looksLikePem(pem_or_der) ? detail::nulTerminated(pem_or_der)
                                                            : std::vector<unsigned char>(pem_or_der.begin(), pem_or_der.end());
  const int rc = mbedtls_pk_parse_key(&key.impl_->pk, buf.data(), buf.size(), nullptr, 0, Drbg::rng, &drbg);
  mbedtls_platform_zeroize(buf.data(), buf.size());
  if (rc != 0) return Failure{"cannot parse the private key: " + mbedtlsError(rc)};
  if (!mbedtls_pk_can_do(&key.impl_->pk, MBEDTLS_PK_ECKEY)) return Failure{"the private key is not an EC key"};
  key.has_private_ = true;
  return key;
}

bool Key::hasPrivate() const noexcept { return has_private_; }

Result<SecretBytes> Key::privatePem() const {
  if (!has_private_) return Failure{"no private key"};
  SecretBytes buf(2048);
  if (const int rc = mbedtls_pk_write_key_pem(&impl_->pk, buf.mutableSpan().data(), buf.size()); rc != 0) {
    return Failure{"cannot write the private key: " + mbedtlsError(rc)};
  }
  const auto* text = reinterpret_cast<const char*>(buf.span().data());
  return shrink(buf, 0, ::strnlen(text, buf.size()));
}

Result<SecretBytes> Key::privateDer() const {
  if (!has_private_) return Failure{"no private key"};
  SecretBytes buf(2048);
  const int len = mbedtls_pk_write_key_der(&impl_->pk, buf.mutableSpan().data(), buf.size());
  if (len < 0) return Failure{"cannot write the private key: " + mbedtlsError(len)};
  return shrink(buf, buf.size() - static_cast<std::size_t>(len), static_cast<std::size_t>(len));
}

Result<Key> Key::publicCopy() const {
  std::array<unsigned char, 512> der{};
  const int len = mbedtls_pk_write_pubkey_der(&impl_->pk, der.data(), der.size());
  if (len < 0) return Failure{"cannot write the public key: " + mbedtlsError(len)};
  Key copy;
  if (const int rc = mbedtls_pk_parse_public_key(&copy.impl_->pk, der.data() + der.size() - len,
                                                 static_cast<std::size_t>(len));
      rc != 0) {
    return Failure{"cannot read the public key: " + mbedtlsError(rc)};
  }
  return copy;
}

CertificateAuthority::CertificateAuthority(Certificate certificate, Key key)
    : certificate_(std::move(certificate)), key_(std::move(key)) {}

Result<CertificateAuthority> CertificateAuthority::create(std::string_view common_name, int days, Drbg& drbg,
                                                          std::int64_t now) {
  auto key = Key::generate(drbg);
  if (!key) return Failure{key.error()};
  Extensions ext;
  ext.ca = true;
  auto der = build(*key, common_name, *key, common_name, ext, days, drbg, now);
  if (!der) return Failure{der.error()};
  auto cert = verified(*der, nullptr);
  if (!cert) return Failure{cert.error()};
  return CertificateAuthority(std::move(*cert), std::move(*key));
}

Result<CertificateAuthority> CertificateAuthority::load(std::span<const std::uint8_t> cert_pem,
                                                        std::span<const std::uint8_t> key_pem, Drbg& drbg) {
  detail::Crt crt;
  const std::vector<unsigned char> buf = detail::nulTerminated(cert_pem);
  if (const int rc = mbedtls_x509_crt_parse(&crt.v, buf.data(), buf.size()); rc != 0) {
    return Failure{"cannot parse the CA certificate: " + mbedtlsError(rc)};
  }
  if (mbedtls_x509_crt_check_key_usage(&crt.v, MBEDTLS_X509_KU_KEY_CERT_SIGN) != 0) {
    return Failure{"the CA certificate may not sign certificates (keyUsage lacks keyCertSign)"};
  }
  auto key = Key::loadPrivate(key_pem, drbg);
  if (!key) return Failure{"CA key: " + key.error()};
  if (mbedtls_pk_check_pair(&crt.v.pk, pkOf(*key), Drbg::rng, &drbg) != 0) {
    return Failure{"the CA key does not belong to the CA certificate"};
  }
  auto cert = detail::describe(crt.v);
  if (!cert) return Failure{cert.error()};
  return CertificateAuthority(std::move(*cert), std::move(*key));
}

Result<Certificate> CertificateAuthority::issue(const Key& subject, const CertificateSpec& spec, Drbg& drbg,
                                                std::int64_t now) const {
  Extensions ext;
  ext.profile = spec.profile;
  AltNames names;
  if (spec.profile == Profile::server) {
    auto san = altNames(spec);
    if (!san) return Failure{san.error()};
    names = std::move(*san);
    ext.san = names.list.data();
  } else if (!spec.alt_names.empty()) {
    return Failure{"subjectAltName entries are for gateway (server) certificates only"};
  }
  auto der = build(subject, spec.common_name, key_, certificate_.common_name, ext, spec.days, drbg, now);
  if (!der) return Failure{der.error()};
  detail::Crt ca;
  if (const int rc = mbedtls_x509_crt_parse_der(&ca.v, certificate_.der.data(), certificate_.der.size()); rc != 0) {
    return Failure{"cannot parse the CA certificate: " + mbedtlsError(rc)};
  }
  return verified(*der, &ca.v);
}

Result<Certificate> parseCertificate(std::span<const std::uint8_t> pem_or_der) {
  detail::Crt crt;
  const std::vector<unsigned char> buf = looksLikePem(pem_or_der)
                                             ? detail::nulTerminated(pem_or_der)
                                             : std::vector<unsigned char>(pem_or_der.begin(), pem_or_der.end());
  if (const int rc = mbedtls_x509_crt_parse(&crt.v, buf.data(), buf.size()); rc != 0) {
    return Failure{"cannot parse the certificate: " + mbedtlsError(rc)};
  }
  return detail::describe(crt.v);
}

namespace {

bool equalsIgnoringCase(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i) {
    const auto lower = [](char c) { return c >= 'A' && c <= 'Z' ? static_cast<char>(c - 'A' + 'a') : c; };
    if (lower(a[i]) != lower(b[i])) return false;
  }
  return true;
}

// One presented name against the host. Exact only: no wildcards, which upstream certificates
// for one service do not need and whose rules (RFC 6125 §6.4.3) are a source of mistakes.
bool nameMatches(std::string_view presented, std::string_view host) {
  return !presented.empty() && equalsIgnoringCase(presented, host);
}

}  // namespace

bool certificateNamesHost(std::span<const std::uint8_t> der, std::string_view host) {
  if (host.empty()) return false;
  detail::Crt crt;
  if (mbedtls_x509_crt_parse_der(&crt.v, der.data(), der.size()) != 0) return false;
  bool has_dns_name = false;
  for (const mbedtls_x509_sequence* san = &crt.v.subject_alt_names; san != nullptr && san->buf.p != nullptr;
       san = san->next) {
    const int tag = san->buf.tag & (MBEDTLS_ASN1_TAG_CLASS_MASK | MBEDTLS_ASN1_TAG_VALUE_MASK);
    if (tag != (MBEDTLS_ASN1_CONTEXT_SPECIFIC | MBEDTLS_X509_SAN_DNS_NAME)) continue;
    has_dns_name = true;
    if (nameMatches(std::string_view(reinterpret_cast<const char*>(san->buf.p), san->buf.len), host)) return true;
  }
  // The subject CN counts only for certificates without any dNSName (RFC 6125 §6.4.4).
  if (has_dns_name) return false;
  int count = 0;
  const std::string cn = detail::commonNameOf(crt.v.subject, &count);
  return count == 1 && nameMatches(cn, host);
}

std::string serialHex(std::span<const std::uint8_t> raw) {
  std::size_t skip = 0;
  while (skip + 1 < raw.size() && raw[skip] == 0) ++skip;
  return raw.empty() ? std::string("00") : hexEncode(raw.subspan(skip));
}

}  // namespace coap_edge::tls
