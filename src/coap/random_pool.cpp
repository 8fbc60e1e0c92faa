#include "coap/random_pool.h"

#include <coap3/coap.h>

#include <sys/random.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

namespace coap_edge::coap {

bool RandomPool::fill(std::uint8_t* out, std::size_t len) {
  if (len >= kBlock) return source_(out, len);
  while (len > 0) {
    if (next_ == kBlock) {
      if (!source_(bytes_.data(), kBlock)) return false;
      next_ = 0;
    }
    const std::size_t n = std::min(len, kBlock - next_);
    std::memcpy(out, bytes_.data() + next_, n);
    // Wiped once handed out: some draws seed Mbed TLS's generators (libcoap's mbedtls glue).
    explicit_bzero(bytes_.data() + next_, n);
    next_ += n;
    out += n;
    len -= n;
  }
  return true;
}

bool kernelRandom(std::uint8_t* out, std::size_t len) {
  for (int attempts = 0; len > 0 && attempts < 100; ++attempts) {
    const ssize_t got = getrandom(out, len, 0);
    if (got < 0) {
      if (errno == EINTR) continue;
      return false;
    }
    out += got;
    len -= static_cast<std::size_t>(got);
  }
  return len == 0;
}

namespace {

// libcoap's callback has no context pointer, and its contexts may live on any thread.
int drawForLibcoap(void* out, size_t len) {
  thread_local RandomPool pool(kernelRandom);
  return pool.fill(static_cast<std::uint8_t*>(out), len) ? 1 : 0;
}

}  // namespace

void installRandomPool() { coap_set_prng(drawForLibcoap); }

}  // namespace coap_edge::coap
