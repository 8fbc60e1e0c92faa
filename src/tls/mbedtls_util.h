#pragma once
// Internal to the tls part: owners for the mbedTLS structs that certificates.cpp and csr.cpp
// use (caller-allocated structs: init in the constructor, free in the destructor), and error
// text.

#include "tls/certificates.h"

#include <mbedtls/pk.h>
#include <mbedtls/x509_crt.h>
#include <mbedtls/x509_csr.h>

#include <ctime>
#include <string>

namespace coap_edge::tls {

struct Key::Impl {
  mbedtls_pk_context pk;
  Impl() { mbedtls_pk_init(&pk); }
  ~Impl() { mbedtls_pk_free(&pk); }  // mbedtls_pk_free zeroizes the key
  Impl(const Impl&) = delete;
  Impl& operator=(const Impl&) = delete;
};

namespace detail {

struct Crt {
  mbedtls_x509_crt v;
  Crt() { mbedtls_x509_crt_init(&v); }
  ~Crt() { mbedtls_x509_crt_free(&v); }
  Crt(const Crt&) = delete;
  Crt& operator=(const Crt&) = delete;
};

struct Csr {
  mbedtls_x509_csr v;
  Csr() { mbedtls_x509_csr_init(&v); }
  ~Csr() { mbedtls_x509_csr_free(&v); }
  Csr(const Csr&) = delete;
  Csr& operator=(const Csr&) = delete;
};

struct CrtWriter {
  mbedtls_x509write_cert v;
  CrtWriter() { mbedtls_x509write_crt_init(&v); }
  ~CrtWriter() { mbedtls_x509write_crt_free(&v); }
  CrtWriter(const CrtWriter&) = delete;
  CrtWriter& operator=(const CrtWriter&) = delete;
};

struct CsrWriter {
  mbedtls_x509write_csr v;
  CsrWriter() { mbedtls_x509write_csr_init(&v); }
  ~CsrWriter() { mbedtls_x509write_csr_free(&v); }
  CsrWriter(const CsrWriter&) = delete;
  CsrWriter& operator=(const CsrWriter&) = delete;
};

/// "message (-0x2700)".
[[nodiscard]] std::string mbedtlsError(int rc);

/// mbedTLS's DN syntax for one CN whose value is taken literally: every byte that is not a
/// letter or digit is written as a \XX escape (RFC 4514), so no identity can inject attributes.
[[nodiscard]] std::string cnName(std::string_view common_name);

/// The subject CN of a parsed name, raw ("" if none); sets `count` to the number of CNs.
[[nodiscard]] std::string commonNameOf(const mbedtls_x509_name& name, int* count = nullptr);

/// A PEM buffer for mbedTLS parsers: PEM input must end in NUL (counted in the length).
[[nodiscard]] std::vector<unsigned char> nulTerminated(std::span<const std::uint8_t> bytes);

/// Fills Certificate from a parsed certificate (der, serial, CN, validity; pem from der).
[[nodiscard]] Result<Certificate> describe(const mbedtls_x509_crt& crt);

}  // namespace detail
}  // namespace coap_edge::tls
