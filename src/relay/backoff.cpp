#include "relay/backoff.h"

#include <algorithm>
#include <cmath>
#include <memory>
#include <random>

namespace coap_edge::relay {
namespace {

Backoff::Random defaultRandom() {
  // Shared by copies of the function object: one engine per Backoff.
  auto engine = std::make_shared<std::mt19937_64>(std::random_device{}());
  return [engine] { return std::uniform_real_distribution<double>(0.0, 1.0)(*engine); };
}

}  // namespace

Backoff::Backoff(std::chrono::milliseconds min, std::chrono::milliseconds max)
    : Backoff(min, max, defaultRandom()) {}

Backoff::Backoff(std::chrono::milliseconds min, std::chrono::milliseconds max, Random random)
    : min_(std::max(min, std::chrono::milliseconds(1))), max_(std::max(max, min_)), random_(std::move(random)) {}

std::chrono::milliseconds Backoff::ceiling() const noexcept {
  // Doubling stops once the cap is reached; 62 doublings of 1 ms exceed any duration we hold.
  std::chrono::milliseconds ceiling = min_;
  for (std::uint32_t i = 0; i < attempts_ && ceiling < max_ && i < 62; ++i) ceiling *= 2;
  return std::min(ceiling, max_);
}

std::chrono::milliseconds Backoff::next() {
  const auto high = ceiling();
  if (attempts_ < UINT32_MAX) ++attempts_;
  double r = random_ ? random_() : 0.0;
  if (!(r >= 0.0)) r = 0.0;  // also nan
  if (r >= 1.0) r = std::nextafter(1.0, 0.0);
  const auto span = static_cast<double>((high - min_).count());
  // floor keeps the result inside [min, high]: r < 1 never reaches high + 1.
  const auto extra = static_cast<std::int64_t>(std::floor(r * (span + 1.0)));
  return min_ + std::chrono::milliseconds(std::min<std::int64_t>(extra, (high - min_).count()));
}

}  // namespace coap_edge::relay
