#pragma once
// The project's one source of random bytes: mbedTLS CTR_DRBG seeded from the platform entropy
// source. Keys, cookies and the DTLS stack all draw from a Drbg, never from rand() or <random>.

#include "tls/secret.h"

#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string_view>

namespace coap_edge::tls {

/// A seeded CTR_DRBG (AES-256) with its entropy source. Not thread-safe: one instance per thread
/// (the event loop owns one; coap-edge-ctl owns its own). Movable; the mbedTLS contexts stay at
/// a fixed address because the DRBG keeps a pointer to its entropy context.
class Drbg {
 public:
  /// Seeds from the platform entropy source (getrandom / /dev/urandom).
  /// @param[in] personalization  distinguishes instances (e.g. "coap-edge-ctl keys"); not secret.
  /// @throws std::runtime_error when the entropy source or the seeding fails.
  explicit Drbg(std::string_view personalization);
  ~Drbg();
  Drbg(Drbg&&) noexcept;
  Drbg& operator=(Drbg&&) noexcept;
  Drbg(const Drbg&) = delete;
  Drbg& operator=(const Drbg&) = delete;

  /// Fills `out` with random bytes (any length; requests are split to the DRBG's limit).
  /// @throws std::runtime_error if reseeding fails (the entropy source broke after startup).
  void fill(std::span<std::uint8_t> out);

  /// @returns n fresh random bytes, e.g. a PSK.
  [[nodiscard]] SecretBytes randomSecret(std::size_t n);

  /// mbedTLS f_rng trampoline: pass `rng` with `p = &drbg` to mbedtls_ssl_conf_rng,
  /// mbedtls_pk_sign and friends. @returns 0 or an mbedTLS error code; never throws.
  static int rng(void* p, unsigned char* out, std::size_t len) noexcept;

 private:
  struct State;
  std::unique_ptr<State> state_;
};

}  // namespace coap_edge::tls
