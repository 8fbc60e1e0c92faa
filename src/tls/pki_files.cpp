#include "tls/pki_files.h"

#include "tls/mbedtls_util.h"
#include "tls/random.h"

#include <mbedtls/pk.h>
#include <mbedtls/x509_crt.h>
#include <sys/stat.h>

#include <array>

namespace coap_edge::tls {
namespace {

using detail::Crt;
using detail::mbedtlsError;

struct Pk {
  mbedtls_pk_context v;
  Pk() { mbedtls_pk_init(&v); }
  ~Pk() { mbedtls_pk_free(&v); }
  Pk(const Pk&) = delete;
  Pk& operator=(const Pk&) = delete;
};

std::optional<PkiProblem> checkValidity(const mbedtls_x509_crt& crt, PkiFile which) {
  if (mbedtls_x509_time_is_past(&crt.valid_to) != 0) return PkiProblem{which, "certificate has expired"};
  if (mbedtls_x509_time_is_future(&crt.valid_from) != 0) return PkiProblem{which, "certificate is not valid yet"};
  return std::nullopt;
}

}  // namespace

std::optional<PkiProblem> checkPkiFiles(const std::filesystem::path& certificate,
                                        const std::filesystem::path& private_key,
                                        const std::filesystem::path& ca) {
  Crt cert;
  if (int rc = mbedtls_x509_crt_parse_file(&cert.v, certificate.c_str()); rc != 0) {
    return PkiProblem{PkiFile::certificate, "cannot load certificate '" + certificate.string() + "': " + mbedtlsError(rc)};
  }
  if (auto p = checkValidity(cert.v, PkiFile::certificate)) {
    p->message = "'" + certificate.string() + "': " + p->message;
    return p;
  }
  Drbg drbg("coap-edge pki check");
  Pk key;
  if (int rc = mbedtls_pk_parse_keyfile(&key.v, private_key.c_str(), nullptr, Drbg::rng, &drbg); rc != 0) {
    return PkiProblem{PkiFile::private_key, "cannot load private key '" + private_key.string() + "': " + mbedtlsError(rc)};
  }
  if (!mbedtls_pk_can_do(&key.v, MBEDTLS_PK_ECKEY)) {
    return PkiProblem{PkiFile::private_key,
                      "private key '" + private_key.string() +
                          "' is not an EC key: the gateway's cipher suites are ECDHE-ECDSA (use a P-256 key)"};
  }
  if (int rc = mbedtls_pk_check_pair(&cert.v.pk, &key.v, Drbg::rng, &drbg); rc != 0) {
    return PkiProblem{PkiFile::private_key,
                      "private key '" + private_key.string() + "' does not belong to certificate '" + certificate.string() + "'"};
  }
  Crt authority;
  if (int rc = mbedtls_x509_crt_parse_file(&authority.v, ca.c_str()); rc != 0) {
    return PkiProblem{PkiFile::ca, "cannot load CA certificate '" + ca.string() + "': " + mbedtlsError(rc)};
  }
  if (auto p = checkValidity(authority.v, PkiFile::ca)) {
    p->message = "CA '" + ca.string() + "': " + p->message;
    return p;
  }
  return std::nullopt;
}

bool isGroupOrWorldReadable(const std::filesystem::path& file) {
  struct stat st {};
  if (stat(file.c_str(), &st) != 0) return false;
  return (st.st_mode & (S_IRGRP | S_IROTH)) != 0;
}

}  // namespace coap_edge::tls
