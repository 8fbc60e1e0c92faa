#include "policy/rate_limit.h"

#include <algorithm>
#include <cmath>
#include <limits>

namespace coap_edge::policy {

BucketParams bucketParams(const RateSpec& spec) noexcept {
  const double rate = std::clamp(spec.rate, 1e-6, 1e9);
  const double interval = std::max(1.0, std::round(static_cast<double>(kNanosPerSecond) / rate));
  BucketParams p;
  p.interval = static_cast<Nanos>(interval);  // <= 1e15: fits
  const std::uint32_t burst = std::max<std::uint32_t>(spec.burst, 1);
  // burst <= 2^32 and interval <= 1e15 could overflow; saturate (such a bucket never empties).
  constexpr Nanos kMax = std::numeric_limits<Nanos>::max() / 4;
  p.capacity = p.interval > kMax / static_cast<Nanos>(burst) ? kMax : p.interval * static_cast<Nanos>(burst);
  return p;
}

std::uint32_t retryAfterSeconds(Nanos wait) noexcept {
  if (wait <= 0) return 1;
  const Nanos seconds = (wait + kNanosPerSecond - 1) / kNanosPerSecond;
  return static_cast<std::uint32_t>(std::clamp<Nanos>(seconds, 1, std::numeric_limits<std::uint32_t>::max()));
}

Nanos TokenBucket::take(const BucketParams& params, Nanos now) noexcept {
  const Nanos base = std::max(tat_, now);
  const Nanos next = base + params.interval;
  const Nanos used = next - now;  // capacity consumed after taking this token
  if (used > params.capacity) return used - params.capacity;
  tat_ = next;
  return 0;
}

std::uint64_t TokenBucket::tokens(const BucketParams& params, Nanos now) const noexcept {
  const Nanos used = std::max(tat_, now) - now;
  const Nanos left = params.capacity - used;
  return left <= 0 ? 0 : static_cast<std::uint64_t>(left / params.interval);
}

LimitDecision RateLimiter::check(std::string_view key, const BucketParams& params, Nanos now) {
  LimitDecision d;
  auto it = index_.find(key);
  if (it == index_.end()) {
    if (index_.size() >= max_keys_ && !makeRoom(now)) {
      ++stats_.table_full;
      d.allowed = false;
      d.table_full = true;
      d.wait = params.interval;
      return d;
    }
    lru_.push_front(Node{std::string(key), TokenBucket{}});
    it = index_.emplace(std::string_view(lru_.front().key), lru_.begin()).first;
  } else if (it->second != lru_.begin()) {
    lru_.splice(lru_.begin(), lru_, it->second);  // iterators stay valid
  }
  d.wait = it->second->bucket.take(params, now);
  d.allowed = d.wait == 0;
  ++(d.allowed ? stats_.allowed : stats_.limited);
  return d;
}

bool RateLimiter::makeRoom(Nanos now) {
  std::size_t probed = 0;
  for (auto it = lru_.end(); it != lru_.begin() && probed < kEvictionProbe; ++probed) {
    --it;
    if (!it->bucket.full(now)) continue;
    index_.erase(std::string_view(it->key));
    lru_.erase(it);
    ++stats_.evicted;
    return true;
  }
  // The least recently used keys are all active: refuse rather than scan (a new key per packet
  // must not cost O(n)); the periodic expire() sweep frees full buckets elsewhere.
  return false;
}

std::size_t RateLimiter::expire(Nanos now) {
  std::size_t removed = 0;
  for (auto it = lru_.begin(); it != lru_.end();) {
    if (it->bucket.full(now)) {
      index_.erase(std::string_view(it->key));
      it = lru_.erase(it);
      ++removed;
    } else {
      ++it;
    }
  }
  stats_.evicted += removed;
  return removed;
}

std::uint64_t RateLimiter::tokens(std::string_view key, const BucketParams& params, Nanos now) const {
  const auto it = index_.find(key);
  if (it == index_.end()) return static_cast<std::uint64_t>(params.capacity / params.interval);
  return it->second->bucket.tokens(params, now);
}

}  // namespace coap_edge::policy
