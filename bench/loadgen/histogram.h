#pragma once
// Latency histogram with bounded memory whatever the number of samples: log-linear buckets
// (exact below 128 µs, then 64 sub-buckets per power of two, <1.6% error), so that workers in
// other processes can ship theirs through a pipe as a fixed-size array and the parent can add them.

#include <array>
#include <cstdint>

namespace coap_edge::bench {

class Histogram {
 public:
  static constexpr std::size_t kBuckets = 2048;

  void record(std::uint64_t micros);
  void merge(const Histogram& other);
  [[nodiscard]] std::uint64_t count() const { return count_; }
  [[nodiscard]] std::uint64_t max() const { return max_; }
  [[nodiscard]] double mean() const;
  /// Smallest recorded value (bucket midpoint) at or above `fraction` of the samples; 0 if empty.
  [[nodiscard]] std::uint64_t percentile(double fraction) const;

 private:
  std::array<std::uint64_t, kBuckets> buckets_{};
  std::uint64_t count_ = 0;
  std::uint64_t sum_ = 0;
  std::uint64_t max_ = 0;
};

}  // namespace coap_edge::bench
