#pragma once
// One mbedTLS DTLS client configuration per worker process, shared by that worker's sessions:
// a DRBG, the PSK or the certificate, one cipher suite (CCM_8, what constrained nodes speak).

#include "options.h"

#include <mbedtls/ctr_drbg.h>
#include <mbedtls/entropy.h>
#include <mbedtls/pk.h>
#include <mbedtls/ssl.h>
#include <mbedtls/x509_crt.h>

#include <array>
#include <string>

namespace coap_edge::bench {

class TlsConfig {
 public:
  TlsConfig();
  ~TlsConfig();
  TlsConfig(const TlsConfig&) = delete;
  TlsConfig& operator=(const TlsConfig&) = delete;

  /// Empty on success, else what failed (a setup error for the user).
  [[nodiscard]] std::string setup(const Options& options);
  [[nodiscard]] const mbedtls_ssl_config* get() const { return &conf_; }
  [[nodiscard]] bool verifiesServer() const { return verify_; }
  [[nodiscard]] const std::string& serverName() const { return server_name_; }

 private:
  mbedtls_ssl_config conf_;
  mbedtls_entropy_context entropy_;
  mbedtls_ctr_drbg_context drbg_;
  mbedtls_x509_crt own_cert_;
  mbedtls_x509_crt ca_;
  mbedtls_pk_context key_;
  std::array<int, 2> suites_{};
  bool verify_ = false;
  std::string server_name_;
};

/// mbedTLS's text for an error code.
std::string tlsError(int code);

}  // namespace coap_edge::bench
