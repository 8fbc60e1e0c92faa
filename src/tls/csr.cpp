// Certificate signing requests: checking a device's CSR before `cert sign` certifies its key,
// and making the gateway's own for an upstream CA (`cert csr`).
//
// mbedTLS 3.6 parses CSRs but does not verify their self-signature, so checkCsr() does: it
// hashes the CertificationRequestInfo with the algorithm the CSR names and verifies the
// signature BIT STRING (read from the DER with the public ASN.1 helpers) with the CSR's key.
#include "tls/certificates.h"

#include "tls/mbedtls_util.h"

#include <mbedtls/asn1.h>
#include <mbedtls/ecp.h>
#include <mbedtls/md.h>
#include <mbedtls/oid.h>
#include <mbedtls/pem.h>

#include <fmt/format.h>

#include <algorithm>
#include <array>

namespace coap_edge::tls {
namespace {

using detail::mbedtlsError;

// The signature BIT STRING of a parsed CSR: CertificationRequest ::= SEQUENCE {
// certificationRequestInfo, signatureAlgorithm, signature BIT STRING }.
bool signatureOf(const mbedtls_x509_csr& csr, const unsigned char*& sig, std::size_t& sig_len) {
  unsigned char* p = csr.raw.p;
  const unsigned char* end = csr.raw.p + csr.raw.len;
  std::size_t len = 0;
  if (mbedtls_asn1_get_tag(&p, end, &len, MBEDTLS_ASN1_CONSTRUCTED | MBEDTLS_ASN1_SEQUENCE) != 0) return false;
  end = p + len;
  if (mbedtls_asn1_get_tag(&p, end, &len, MBEDTLS_ASN1_CONSTRUCTED | MBEDTLS_ASN1_SEQUENCE) != 0) return false;
  p += len;  // certificationRequestInfo (csr.cri)
  mbedtls_asn1_buf alg{};
  mbedtls_asn1_buf params{};
  if (mbedtls_asn1_get_alg(&p, end, &alg, &params) != 0) return false;
  if (mbedtls_asn1_get_bitstring_null(&p, end, &len) != 0 || p + len != end) return false;
  sig = p;
  sig_len = len;
  return true;
}

}  // namespace

Result<CheckedCsr> checkCsr(std::span<const std::uint8_t> pem_or_der) {
  if (pem_or_der.empty()) return Failure{"the CSR is empty"};
  if (pem_or_der.size() > kMaxCsrBytes) {
    return Failure{fmt::format("the CSR is larger than {} KiB; is it really a CSR?", kMaxCsrBytes / 1024)};
  }
  detail::Csr csr;
  static constexpr std::string_view kBegin = "-----BEGIN";
  const bool pem = std::search(pem_or_der.begin(), pem_or_der.end(), kBegin.begin(), kBegin.end()) != pem_or_der.end();
  int rc = 0;
  if (pem) {
    const std::vector<unsigned char> buf = detail::nulTerminated(pem_or_der);
    rc = mbedtls_x509_csr_parse(&csr.v, buf.data(), buf.size());
  } else {
    rc = mbedtls_x509_csr_parse_der(&csr.v, pem_or_der.data(), pem_or_der.size());
  }
  if (rc != 0) {
    return Failure{"not a certificate signing request (PKCS#10, PEM or DER): " + mbedtlsError(rc)};
  }

  if (mbedtls_pk_get_type(&csr.v.pk) != MBEDTLS_PK_ECKEY) {
    return Failure{fmt::format("the CSR's key is {}, not EC: the gateway negotiates ECDHE-ECDSA only; make a "
                               "P-256 key (openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256)",
                               mbedtls_pk_get_name(&csr.v.pk))};
  }
  if (mbedtls_ecp_keypair_get_group_id(mbedtls_pk_ec(csr.v.pk)) != MBEDTLS_ECP_DP_SECP256R1) {
    return Failure{"the CSR's key is not on curve P-256 (RFC 7252 9.1.3.3); make a P-256 key "
                   "(openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256)"};
  }
  mbedtls_md_type_t md = MBEDTLS_MD_NONE;
  mbedtls_pk_type_t sig_pk = MBEDTLS_PK_NONE;
  if (mbedtls_oid_get_sig_alg(&csr.v.sig_oid, &md, &sig_pk) != 0 || sig_pk != MBEDTLS_PK_ECDSA ||
      (md != MBEDTLS_MD_SHA256 && md != MBEDTLS_MD_SHA384 && md != MBEDTLS_MD_SHA512)) {
    return Failure{"the CSR is not signed with ECDSA and SHA-256/384/512 (devices use EC P-256 keys)"};
  }

  const unsigned char* sig = nullptr;
  std::size_t sig_len = 0;
  if (!signatureOf(csr.v, sig, sig_len)) return Failure{"the CSR's signature cannot be located"};
  const mbedtls_md_info_t* info = mbedtls_md_info_from_type(md);
  std::array<unsigned char, MBEDTLS_MD_MAX_SIZE> hash{};
  if (info == nullptr || mbedtls_md(info, csr.v.cri.p, csr.v.cri.len, hash.data()) != 0) {
    return Failure{"cannot hash the CSR"};
  }
  if (mbedtls_pk_verify(&csr.v.pk, md, hash.data(), mbedtls_md_get_size(info), sig, sig_len) != 0) {
    return Failure{"the CSR's signature does not verify: it was altered, or not signed by the key it carries"};
  }

  int cn_count = 0;
  std::string cn = detail::commonNameOf(csr.v.subject, &cn_count);
  if (cn_count != 1) {
    return Failure{cn_count == 0 ? "the CSR's subject has no CN (the CN is the device identity)"
                                 : "the CSR's subject has more than one CN"};
  }
  // The certified key is a fresh public-only context, independent of the parsed CSR.
  std::array<unsigned char, 512> der{};
  const int len = mbedtls_pk_write_pubkey_der(&csr.v.pk, der.data(), der.size());
  if (len < 0) return Failure{"cannot copy the CSR's public key: " + mbedtlsError(len)};
  CheckedCsr out;
  if (const int r = mbedtls_pk_parse_public_key(&out.public_key.impl().pk, der.data() + der.size() - len,
                                                static_cast<std::size_t>(len));
      r != 0) {
    return Failure{"cannot copy the CSR's public key: " + mbedtlsError(r)};
  }
  out.common_name = std::move(cn);
  return out;
}

Result<std::string> makeCsr(const Key& key, std::string_view common_name, Drbg& drbg) {
  if (!key.hasPrivate()) return Failure{"a CSR needs the private key"};
  if (common_name.empty()) return Failure{"the subject CN is empty"};
  detail::CsrWriter w;
  mbedtls_x509write_csr_set_md_alg(&w.v, MBEDTLS_MD_SHA256);
  mbedtls_x509write_csr_set_key(&w.v, &key.impl().pk);
  const std::string name = detail::cnName(common_name);
  if (const int rc = mbedtls_x509write_csr_set_subject_name(&w.v, name.c_str()); rc != 0) {
    return Failure{"cannot set the CSR's subject: " + mbedtlsError(rc)};
  }
  std::vector<unsigned char> buf(4096);
  if (const int rc = mbedtls_x509write_csr_pem(&w.v, buf.data(), buf.size(), Drbg::rng, &drbg); rc != 0) {
    return Failure{"cannot sign the CSR: " + mbedtlsError(rc)};
  }
  return std::string(reinterpret_cast<const char*>(buf.data()), ::strnlen(reinterpret_cast<const char*>(buf.data()), buf.size()));
}

}  // namespace coap_edge::tls
