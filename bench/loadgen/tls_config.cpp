#include "tls_config.h"

#include <fmt/format.h>
#include <mbedtls/error.h>

namespace coap_edge::bench {

std::string tlsError(int code) {
  std::array<char, 160> text{};
  mbedtls_strerror(code, text.data(), text.size());
  return fmt::format("{} (-0x{:04x})", text.data(), static_cast<unsigned>(-code));
}

TlsConfig::TlsConfig() {
  mbedtls_ssl_config_init(&conf_);
  mbedtls_entropy_init(&entropy_);
  mbedtls_ctr_drbg_init(&drbg_);
  mbedtls_x509_crt_init(&own_cert_);
  mbedtls_x509_crt_init(&ca_);
  mbedtls_pk_init(&key_);
}

TlsConfig::~TlsConfig() {
  mbedtls_pk_free(&key_);
  mbedtls_x509_crt_free(&ca_);
  mbedtls_x509_crt_free(&own_cert_);
  mbedtls_ctr_drbg_free(&drbg_);
  mbedtls_entropy_free(&entropy_);
  mbedtls_ssl_config_free(&conf_);
}

std::string TlsConfig::setup(const Options& o) {
  if (int rc = mbedtls_ctr_drbg_seed(&drbg_, mbedtls_entropy_func, &entropy_, nullptr, 0); rc != 0) {
    return "seeding the DRBG: " + tlsError(rc);
  }
  if (int rc = mbedtls_ssl_config_defaults(&conf_, MBEDTLS_SSL_IS_CLIENT, MBEDTLS_SSL_TRANSPORT_DATAGRAM,
                                           MBEDTLS_SSL_PRESET_DEFAULT);
      rc != 0) {
    return "mbedtls_ssl_config_defaults: " + tlsError(rc);
  }
  mbedtls_ssl_conf_rng(&conf_, mbedtls_ctr_drbg_random, &drbg_);
  // Handshake retransmissions from 1 s up to 8 s; beyond that the session counts as failed.
  mbedtls_ssl_conf_handshake_timeout(&conf_, 1000, 8000);
  if (o.cert_file.empty()) {
    suites_ = {MBEDTLS_TLS_PSK_WITH_AES_128_CCM_8, 0};
    if (int rc = mbedtls_ssl_conf_psk(&conf_, o.psk.data(), o.psk.size(),
                                      reinterpret_cast<const unsigned char*>(o.psk_identity.data()),
                                      o.psk_identity.size());
        rc != 0) {
      return "PSK: " + tlsError(rc);
    }
  } else {
    suites_ = {MBEDTLS_TLS_ECDHE_ECDSA_WITH_AES_128_CCM_8, 0};
    if (int rc = mbedtls_x509_crt_parse_file(&own_cert_, o.cert_file.c_str()); rc != 0) {
      return fmt::format("reading certificate {}: {}", o.cert_file, tlsError(rc));
    }
    if (int rc = mbedtls_pk_parse_keyfile(&key_, o.key_file.c_str(), nullptr, mbedtls_ctr_drbg_random, &drbg_);
        rc != 0) {
      return fmt::format("reading key {}: {}", o.key_file, tlsError(rc));
    }
    if (int rc = mbedtls_ssl_conf_own_cert(&conf_, &own_cert_, &key_); rc != 0) {
      return "certificate and key: " + tlsError(rc);
    }
  }
  mbedtls_ssl_conf_ciphersuites(&conf_, suites_.data());
  if (!o.ca_file.empty()) {
    if (int rc = mbedtls_x509_crt_parse_file(&ca_, o.ca_file.c_str()); rc != 0) {
      return fmt::format("reading CA {}: {}", o.ca_file, tlsError(rc));
    }
    mbedtls_ssl_conf_ca_chain(&conf_, &ca_, nullptr);
    mbedtls_ssl_conf_authmode(&conf_, MBEDTLS_SSL_VERIFY_REQUIRED);
    verify_ = true;
    server_name_ = o.server_name;
  } else {
    // A benchmark against a known server on loopback: the server's certificate is not checked
    // unless --ca says against what (the PSK suites have none).
    mbedtls_ssl_conf_authmode(&conf_, MBEDTLS_SSL_VERIFY_NONE);
  }
  return {};
}

}  // namespace coap_edge::bench
