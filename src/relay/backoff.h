#pragma once
// Reconnect backoff for the upstream session: exponential with "Full Jitter" (AWS Architecture
// Blog, "Exponential Backoff And Jitter", 2015), so that gateways that lost their upstream at the
// same moment (an upstream restart) do not all come back at the same moment.
//
// Attempt n (0-based) waits a uniformly random time in [min, ceiling_n], where
// ceiling_n = min(max, min · 2^n). Unlike the blog's Full Jitter, whose range starts at 0, the
// range starts at `min`, so that a flapping upstream is never retried in a tight loop; the first
// wait is exactly `min`. Pure: no clock, and the random source is injected so tests are exact.

#include <chrono>
#include <cstdint>
#include <functional>

namespace coap_edge::relay {

class Backoff {
 public:
  /// Returns a number in [0, 1); values outside are clamped.
  using Random = std::function<double()>;

  /// `min` > 0 and `max` >= min (config guarantees both; others are corrected: min at least
  /// 1 ms, max at least min). Uses a std::mt19937_64 seeded from std::random_device.
  Backoff(std::chrono::milliseconds min, std::chrono::milliseconds max);
  /// As above with an injected random source (tests, or a seeded engine).
  Backoff(std::chrono::milliseconds min, std::chrono::milliseconds max, Random random);

  /// The wait before the next connection attempt; each call counts one failed attempt.
  [[nodiscard]] std::chrono::milliseconds next();
  /// After a session that lasted (the caller decides how long is "lasted", e.g. past its
  /// registration): the next wait is `min` again.
  void reset() noexcept { attempts_ = 0; }

  /// The upper bound of the wait next() will return.
  [[nodiscard]] std::chrono::milliseconds ceiling() const noexcept;
  [[nodiscard]] std::uint32_t attempts() const noexcept { return attempts_; }
  [[nodiscard]] std::chrono::milliseconds min() const noexcept { return min_; }
  [[nodiscard]] std::chrono::milliseconds max() const noexcept { return max_; }

 private:
  std::chrono::milliseconds min_;
  std::chrono::milliseconds max_;
  Random random_;
  std::uint32_t attempts_ = 0;
};

}  // namespace coap_edge::relay
