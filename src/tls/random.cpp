#include "tls/random.h"

#include "common/log.h"

#include <mbedtls/ctr_drbg.h>
#include <mbedtls/entropy.h>
#include <mbedtls/error.h>

#include <algorithm>
#include <stdexcept>
#include <string>

namespace coap_edge::tls {
namespace {

constexpr std::string_view kLogTag = "tls";

std::string mbedtlsError(int rc) {
  char text[128] = {};
  mbedtls_strerror(rc, text, sizeof text);
  return std::string(text) + " (-0x" + fmt::format("{:04x}", static_cast<unsigned>(-rc)) + ")";
}

}  // namespace

// Both contexts are initialised in the constructor and freed in the destructor, so a State that
// exists is always safe to free, also when seeding threw half-way.
struct Drbg::State {
  mbedtls_entropy_context entropy;
  mbedtls_ctr_drbg_context drbg;
  State() {
    mbedtls_entropy_init(&entropy);
    mbedtls_ctr_drbg_init(&drbg);
  }
  ~State() {
    mbedtls_ctr_drbg_free(&drbg);
    mbedtls_entropy_free(&entropy);
  }
  State(const State&) = delete;
  State& operator=(const State&) = delete;
};

Drbg::Drbg(std::string_view personalization) : state_(std::make_unique<State>()) {
  const int rc = mbedtls_ctr_drbg_seed(&state_->drbg, mbedtls_entropy_func, &state_->entropy,
                                       reinterpret_cast<const unsigned char*>(personalization.data()),
                                       personalization.size());
  if (rc != 0) {
    CE_LOG_ERROR("seeding the DRBG failed: {}", mbedtlsError(rc));
    throw std::runtime_error("cannot seed the random generator: " + mbedtlsError(rc));
  }
  // Prediction resistance would reseed on every call; the periodic reseed (every 10000
  // requests by default) is enough for key generation and DTLS.
}

Drbg::~Drbg() = default;
Drbg::Drbg(Drbg&&) noexcept = default;
Drbg& Drbg::operator=(Drbg&&) noexcept = default;

int Drbg::rng(void* p, unsigned char* out, std::size_t len) noexcept {
  auto* self = static_cast<Drbg*>(p);
  if (self == nullptr || !self->state_) return MBEDTLS_ERR_CTR_DRBG_ENTROPY_SOURCE_FAILED;
  while (len > 0) {
    const std::size_t chunk = std::min<std::size_t>(len, MBEDTLS_CTR_DRBG_MAX_REQUEST);
    const int rc = mbedtls_ctr_drbg_random(&self->state_->drbg, out, chunk);
    if (rc != 0) return rc;
    out += chunk;
    len -= chunk;
  }
  return 0;
}

void Drbg::fill(std::span<std::uint8_t> out) {
  const int rc = rng(this, out.data(), out.size());
  if (rc != 0) {
    CE_LOG_ERROR("random generator failed: {}", mbedtlsError(rc));
    throw std::runtime_error("random generator failed: " + mbedtlsError(rc));
  }
}

SecretBytes Drbg::randomSecret(std::size_t n) {
  SecretBytes secret(n);
  fill(secret.mutableSpan());
  return secret;
}

}  // namespace coap_edge::tls
