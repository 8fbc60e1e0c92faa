// libcoap's randomness through RandomPool (src/coap/random_pool.h): the kernel is asked a block
// at a time instead of once per draw, and no byte is ever handed out twice.

#include "coap/random_pool.h"
#include "coap/runtime.h"

#include <coap3/coap.h>

#include <gtest/gtest.h>

#include <cstdint>
#include <set>
#include <vector>

namespace coap_edge::coap {
namespace {

// A source whose byte at each position is known (so that order and reuse are visible), and
// which counts its calls.
int g_calls = 0;
std::uint64_t g_position = 0;
bool g_fail = false;

// The top byte of a multiplicative hash of the position: no short period, so a block handed
// out twice or out of order shows.
std::uint8_t byteAt(std::uint64_t position) {
  return static_cast<std::uint8_t>((position * 0x9E3779B97F4A7C15ull) >> 56);
}

bool numbered(std::uint8_t* out, std::size_t len) {
  ++g_calls;
  if (g_fail) return false;
  for (std::size_t i = 0; i < len; ++i) out[i] = byteAt(g_position++);
  return true;
}

class RandomPoolTest : public ::testing::Test {
 protected:
  void SetUp() override {
    g_calls = 0;
    g_position = 0;
    g_fail = false;
  }
  static std::uint8_t expected(std::uint64_t position) { return byteAt(position); }
};

TEST_F(RandomPoolTest, SmallDrawsShareOneKernelCallPerBlockAndGetEveryByteOnce) {
  RandomPool pool(numbered);
  // 1000 draws of the sizes libcoap uses (a 1-byte jitter, a 2-byte Message ID, 8-byte tokens).
  std::vector<std::uint8_t> all;
  for (int i = 0; i < 1000; ++i) {
    std::uint8_t buf[8];
    const std::size_t n = i % 3 == 0 ? 1 : i % 3 == 1 ? 2 : 8;
    ASSERT_TRUE(pool.fill(buf, n));
    all.insert(all.end(), buf, buf + n);
  }
  ASSERT_EQ(all.size(), 334u * 1 + 333u * 2 + 333u * 8);
  for (std::size_t i = 0; i < all.size(); ++i) ASSERT_EQ(all[i], expected(i)) << "byte " << i;
  EXPECT_EQ(g_calls, static_cast<int>((all.size() + RandomPool::kBlock - 1) / RandomPool::kBlock));
}

TEST_F(RandomPoolTest, ADrawAcrossABlockEndTakesTheRestThenANewBlock) {
  RandomPool pool(numbered);
  std::vector<std::uint8_t> first(RandomPool::kBlock - 3), second(8);
  ASSERT_TRUE(pool.fill(first.data(), first.size()));
  ASSERT_TRUE(pool.fill(second.data(), second.size()));
  for (std::size_t i = 0; i < second.size(); ++i) EXPECT_EQ(second[i], expected(first.size() + i));
  EXPECT_EQ(g_calls, 2);
}

TEST_F(RandomPoolTest, LargeDrawsGoToTheSourceDirectly) {
  RandomPool pool(numbered);
  std::vector<std::uint8_t> big(RandomPool::kBlock * 2);
  ASSERT_TRUE(pool.fill(big.data(), big.size()));
  EXPECT_EQ(g_calls, 1);
  EXPECT_EQ(big[0], expected(0));
}

TEST_F(RandomPoolTest, AFailingSourceIsReportedAndNothingStaleIsHandedOut) {
  RandomPool pool(numbered);
  g_fail = true;
  std::uint8_t buf[4];
  EXPECT_FALSE(pool.fill(buf, sizeof buf));
  g_fail = false;
  ASSERT_TRUE(pool.fill(buf, sizeof buf));
  EXPECT_EQ(buf[0], expected(0));  // the failed block was never used
}

TEST(KernelRandom, FillsLargeAndSmallBuffersWithDifferentBytes) {
  std::vector<std::uint8_t> a(4096), b(4096);
  ASSERT_TRUE(kernelRandom(a.data(), a.size()));
  ASSERT_TRUE(kernelRandom(b.data(), b.size()));
  EXPECT_NE(a, b);
}

TEST(LibcoapRandomness, TokensDrawnThroughThePoolAreDistinct) {
  Runtime runtime(log::Level::warning);  // installs the pool
  std::set<std::uint64_t> seen;
  for (int i = 0; i < 10000; ++i) {
    std::uint64_t v = 0;
    ASSERT_EQ(coap_prng(&v, sizeof v), 1);
    seen.insert(v);
  }
  EXPECT_EQ(seen.size(), 10000u);
}

}  // namespace
}  // namespace coap_edge::coap
