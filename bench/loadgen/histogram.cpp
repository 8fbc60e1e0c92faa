#include "histogram.h"

#include <algorithm>
#include <bit>
#include <cmath>

namespace coap_edge::bench {
namespace {

constexpr std::uint64_t kExact = 128;  // values below are their own bucket
constexpr std::uint64_t kHalf = 64;    // sub-buckets per power of two above that

std::size_t bucketOf(std::uint64_t v) {
  if (v < kExact) return static_cast<std::size_t>(v);
  const auto msb = static_cast<std::uint64_t>(63 - std::countl_zero(v));
  const std::uint64_t shift = msb - 6;  // >= 1: keeps the top 7 bits
  const std::uint64_t index = kExact + (shift - 1) * kHalf + ((v >> shift) - kHalf);
  return static_cast<std::size_t>(std::min<std::uint64_t>(index, Histogram::kBuckets - 1));
}

std::uint64_t midpointOf(std::size_t bucket) {
  if (bucket < kExact) return bucket;
  const std::uint64_t rel = bucket - kExact;
  const std::uint64_t shift = rel / kHalf + 1;
  const std::uint64_t low = (kHalf + rel % kHalf) << shift;
  return low + ((std::uint64_t{1} << shift) >> 1);
}

}  // namespace

void Histogram::record(std::uint64_t micros) {
  ++buckets_[bucketOf(micros)];
  ++count_;
  sum_ += micros;
  max_ = std::max(max_, micros);
}

void Histogram::merge(const Histogram& other) {
  for (std::size_t i = 0; i < kBuckets; ++i) buckets_[i] += other.buckets_[i];
  count_ += other.count_;
  sum_ += other.sum_;
  max_ = std::max(max_, other.max_);
}

double Histogram::mean() const {
  return count_ == 0 ? 0.0 : static_cast<double>(sum_) / static_cast<double>(count_);
}

std::uint64_t Histogram::percentile(double fraction) const {
  if (count_ == 0) return 0;
  const auto wanted = static_cast<std::uint64_t>(std::ceil(fraction * static_cast<double>(count_)));
  std::uint64_t seen = 0;
  for (std::size_t i = 0; i < kBuckets; ++i) {
    seen += buckets_[i];
    if (seen >= std::max<std::uint64_t>(wanted, 1)) return std::min(midpointOf(i), max_);
  }
  return max_;
}

}  // namespace coap_edge::bench
