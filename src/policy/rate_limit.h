#pragma once
// Rate limiting (DESIGN.md "policy/", RFC 8516): token buckets keyed by identity or address.
// Pure logic, no I/O, no clock of its own: every call takes `now`, integer nanoseconds on a
// monotonic clock (the daemon passes steady_clock; tests pass a fake), so arithmetic is exact.
//
// Each bucket is kept in the GCRA form (generic cell rate algorithm, equivalent to a token bucket):
// one int64 "theoretical arrival time" `tat`. With interval = 1 s / rate (ns, rounded, >= 1) and
// capacity = burst * interval, a request at `now` is allowed when max(tat, now) + interval - now
// <= capacity, and then tat = max(tat, now) + interval. tat <= now means the bucket is full
// (burst tokens), i.e. exactly what a fresh bucket is: such entries carry no state and are the
// only ones ever evicted. No floating point after the interval is computed, no drift.
//
// The table is bounded (max_keys). A new key when the table is full takes the slot of a full
// (idle) bucket; when every bucket holds state (active keys), the new key is refused and
// counted (`Stats::table_full`) rather than evicting an active key, so an attacker creating
// keys cannot cheaply reset an established key's limit.

#include <cstddef>
#include <cstdint>
#include <list>
#include <string>
#include <string_view>
#include <unordered_map>

namespace coap_edge::policy {

/// Monotonic time in nanoseconds.
using Nanos = std::int64_t;
inline constexpr Nanos kNanosPerSecond = 1'000'000'000;

/// A rate as configured: `rate` tokens per second, at most `burst` at once.
struct RateSpec {
  double rate = 1.0;         ///< > 0
  std::uint32_t burst = 1;   ///< >= 1
  friend bool operator==(const RateSpec&, const RateSpec&) = default;
};

/// A rate in the integer form the buckets use.
struct BucketParams {
  Nanos interval = kNanosPerSecond;  ///< time to earn one token, >= 1 ns
  Nanos capacity = kNanosPerSecond;  ///< burst * interval
};

/// Rounds 1/rate to whole nanoseconds (at least 1); rates are clamped to [1e-6, 1e9] per second.
[[nodiscard]] BucketParams bucketParams(const RateSpec& spec) noexcept;

/// Whole seconds a client should wait (Max-Age of a 4.29): ceil(wait), at least 1.
[[nodiscard]] std::uint32_t retryAfterSeconds(Nanos wait) noexcept;

/// One bucket. O(1), never allocates.
class TokenBucket {
 public:
  /// Takes one token if there is one; otherwise returns the time until the next token (> 0).
  /// Returns 0 when the token was taken.
  [[nodiscard]] Nanos take(const BucketParams& params, Nanos now) noexcept;
  /// Whole tokens available at `now`.
  [[nodiscard]] std::uint64_t tokens(const BucketParams& params, Nanos now) const noexcept;
  /// True if the bucket is full at `now` (no state worth keeping).
  [[nodiscard]] bool full(Nanos now) const noexcept { return tat_ <= now; }

 private:
  Nanos tat_ = 0;  ///< theoretical arrival time; <= now means full
};

struct LimitDecision {
  bool allowed = true;
  Nanos wait = 0;            ///< when refused: time until the next token
  bool table_full = false;   ///< refused because no bucket could be made for a new key
};

/// Buckets by key (identity, address), bounded, with idle eviction.
class RateLimiter {
 public:
  struct Stats {
    std::uint64_t allowed = 0;
    std::uint64_t limited = 0;     ///< refused: no token
    std::uint64_t table_full = 0;  ///< refused: new key and the table was full of active keys
    std::uint64_t evicted = 0;     ///< idle (full) buckets dropped
  };

  explicit RateLimiter(std::size_t max_keys = 10000) : max_keys_(max_keys == 0 ? 1 : max_keys) {}

  /// Takes a token from `key`'s bucket (made on first use). O(1) amortised.
  [[nodiscard]] LimitDecision check(std::string_view key, const BucketParams& params, Nanos now);
  /// Drops every full bucket (a periodic sweep keeps memory proportional to active keys). O(n).
  std::size_t expire(Nanos now);

  void setMaxKeys(std::size_t max_keys) noexcept { max_keys_ = max_keys == 0 ? 1 : max_keys; }
  [[nodiscard]] std::size_t size() const noexcept { return index_.size(); }
  [[nodiscard]] std::size_t maxKeys() const noexcept { return max_keys_; }
  [[nodiscard]] const Stats& stats() const noexcept { return stats_; }
  /// Tokens left for `key` (burst if it has no bucket), for tests and diagnostics.
  [[nodiscard]] std::uint64_t tokens(std::string_view key, const BucketParams& params, Nanos now) const;

 private:
  struct Node {
    std::string key;
    TokenBucket bucket;
  };
  using List = std::list<Node>;
  /// How many least recently used entries a full table looks at for a full bucket to replace.
  static constexpr std::size_t kEvictionProbe = 8;

  bool makeRoom(Nanos now);

  std::size_t max_keys_;
  List lru_;  ///< most recently used first
  std::unordered_map<std::string_view, List::iterator> index_;  ///< views into lru_ keys
  Stats stats_;
};

}  // namespace coap_edge::policy
