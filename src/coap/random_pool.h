#pragma once
// libcoap draws randomness for nearly every message it sends (a confirmable message's timeout
// jitter, Message IDs and tokens of new sessions, ...) through coap_prng(), by default one
// getrandom() system call per draw: one more syscall for every request the relay forwards.
// RandomPool draws from the kernel a block at a time and hands every byte out once, wiped as it
// goes; what libcoap gets is still the kernel's randomness, only fetched in bulk.

#include <array>
#include <cstddef>
#include <cstdint>

namespace coap_edge::coap {

class RandomPool {
 public:
  /// Fills `len` bytes with fresh randomness; false when it cannot.
  using Source = bool (*)(std::uint8_t* out, std::size_t len);
  static constexpr std::size_t kBlock = 256;

  explicit RandomPool(Source source) : source_(source) {}

  /// Fills `out` with bytes never handed out before. Requests of a block or more go to the
  /// source directly. False (and `out` unspecified) when the source failed.
  bool fill(std::uint8_t* out, std::size_t len);

 private:
  Source source_;
  std::array<std::uint8_t, kBlock> bytes_{};
  std::size_t next_ = kBlock;  // bytes_[next_..] are unused; nothing drawn yet
};

/// The kernel's randomness (getrandom(2), blocking only before the pool is first initialised at
/// boot), looping over short reads and interrupted calls.
bool kernelRandom(std::uint8_t* out, std::size_t len);

/// Makes libcoap draw through a RandomPool on kernelRandom, one pool per thread. Called by
/// Runtime after coap_startup(); libcoap keeps it for the rest of the process.
void installRandomPool();

}  // namespace coap_edge::coap
