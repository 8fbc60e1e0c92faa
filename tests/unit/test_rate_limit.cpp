// Token buckets and the bounded keyed table (policy/rate_limit.h) with a fake clock: time is
// whatever the test says, in integer nanoseconds.

#include "policy/rate_limit.h"

#include <gtest/gtest.h>

#include <string>

namespace coap_edge::policy {
namespace {

constexpr Nanos kSecond = kNanosPerSecond;
constexpr Nanos kMs = 1'000'000;

TEST(BucketParams, IntervalIsOneOverRateInWholeNanoseconds) {
  EXPECT_EQ(bucketParams({20.0, 40}).interval, 50 * kMs);
  EXPECT_EQ(bucketParams({20.0, 40}).capacity, 40 * 50 * kMs);
  EXPECT_EQ(bucketParams({3.0, 1}).interval, 333'333'333);  // rounded, once; no drift after that
  EXPECT_EQ(bucketParams({0.5, 2}).interval, 2 * kSecond);
  EXPECT_EQ(bucketParams({1e12, 1}).interval, 1);  // clamped to at least 1 ns
  EXPECT_EQ(bucketParams({1.0, 0}).capacity, kSecond);  // burst at least 1
}

TEST(TokenBucket, BurstThenRefusedWithTheTimeToTheNextToken) {
  const auto p = bucketParams({10.0, 5});  // one token per 100 ms, 5 at once
  TokenBucket b;
  const Nanos t0 = 1000 * kSecond;
  EXPECT_EQ(b.tokens(p, t0), 5U);
  for (int i = 0; i < 5; ++i) EXPECT_EQ(b.take(p, t0), 0) << i;
  EXPECT_EQ(b.tokens(p, t0), 0U);
  EXPECT_EQ(b.take(p, t0), 100 * kMs);
  EXPECT_EQ(b.take(p, t0 + 30 * kMs), 70 * kMs);  // refusals take nothing
  EXPECT_FALSE(b.full(t0));
}

TEST(TokenBucket, RefillsExactlyAndNeverAboveBurst) {
  const auto p = bucketParams({10.0, 5});
  TokenBucket b;
  const Nanos t0 = 5 * kSecond;
  for (int i = 0; i < 5; ++i) ASSERT_EQ(b.take(p, t0), 0);
  EXPECT_EQ(b.tokens(p, t0 + 99 * kMs), 0U);
  EXPECT_EQ(b.tokens(p, t0 + 100 * kMs), 1U);
  EXPECT_EQ(b.tokens(p, t0 + 250 * kMs), 2U);
  EXPECT_EQ(b.tokens(p, t0 + 500 * kMs), 5U);
  EXPECT_TRUE(b.full(t0 + 500 * kMs));
  EXPECT_EQ(b.tokens(p, t0 + 3600 * kSecond), 5U);  // idle for an hour: still only the burst
  // One request every interval for a long time is always allowed: exact arithmetic, no drift.
  TokenBucket steady;
  for (Nanos i = 0; i < 100000; ++i) ASSERT_EQ(steady.take(p, t0 + i * 100 * kMs), 0) << i;
  // A third-of-a-second rate over a million tokens: still exact.
  const auto third = bucketParams({3.0, 1});
  TokenBucket odd;
  for (Nanos i = 0; i < 1000000; ++i) ASSERT_EQ(odd.take(third, i * third.interval), 0) << i;
  EXPECT_EQ(odd.take(third, 999999 * third.interval + 1), third.interval - 1);
}

TEST(TokenBucket, SustainedRateIsTheConfiguredRate) {
  const auto p = bucketParams({20.0, 40});
  TokenBucket b;
  int allowed = 0;
  // 10x the rate for 10 s: the burst plus 20 per second.
  for (Nanos t = 0; t < 10 * kSecond; t += 5 * kMs) allowed += b.take(p, kSecond + t) == 0 ? 1 : 0;
  EXPECT_EQ(allowed, 40 + 199);  // the 200th token is earned exactly at 10 s, one tick after the loop
}

TEST(MaxAge, WholeSecondsRoundedUpAndAtLeastOne) {
  EXPECT_EQ(retryAfterSeconds(1), 1U);
  EXPECT_EQ(retryAfterSeconds(0), 1U);
  EXPECT_EQ(retryAfterSeconds(-5), 1U);
  EXPECT_EQ(retryAfterSeconds(50 * kMs), 1U);
  EXPECT_EQ(retryAfterSeconds(kSecond), 1U);
  EXPECT_EQ(retryAfterSeconds(kSecond + 1), 2U);
  EXPECT_EQ(retryAfterSeconds(10 * kSecond - 1), 10U);
  // A slow bucket: one token per 10 s, refused right after the burst -> Max-Age 10.
  const auto p = bucketParams({0.1, 1});
  TokenBucket b;
  ASSERT_EQ(b.take(p, kSecond), 0);
  EXPECT_EQ(retryAfterSeconds(b.take(p, kSecond)), 10U);
  EXPECT_EQ(retryAfterSeconds(b.take(p, kSecond + 9500 * kMs)), 1U);
  EXPECT_EQ(b.take(p, 11 * kSecond), 0);
}

TEST(RateLimiter, KeysHaveTheirOwnBuckets) {
  RateLimiter limiter(10);
  const auto p = bucketParams({1.0, 2});
  const Nanos t = 7 * kSecond;
  EXPECT_TRUE(limiter.check("a", p, t).allowed);
  EXPECT_TRUE(limiter.check("a", p, t).allowed);
  const auto refused = limiter.check("a", p, t);
  EXPECT_FALSE(refused.allowed);
  EXPECT_FALSE(refused.table_full);
  EXPECT_EQ(refused.wait, kSecond);
  EXPECT_TRUE(limiter.check("b", p, t).allowed);
  EXPECT_EQ(limiter.tokens("a", p, t), 0U);
  EXPECT_EQ(limiter.tokens("b", p, t), 1U);
  EXPECT_EQ(limiter.tokens("never-seen", p, t), 2U);
  EXPECT_EQ(limiter.stats().allowed, 3U);
  EXPECT_EQ(limiter.stats().limited, 1U);
}

TEST(RateLimiter, IdleBucketsAreEvictedWithoutLosingAnything) {
  RateLimiter limiter(100);
  const auto p = bucketParams({10.0, 3});
  const Nanos t = 3 * kSecond;
  for (int i = 0; i < 50; ++i) ASSERT_TRUE(limiter.check("k" + std::to_string(i), p, t).allowed);
  ASSERT_TRUE(limiter.check("busy", p, t).allowed);
  ASSERT_TRUE(limiter.check("busy", p, t).allowed);
  ASSERT_TRUE(limiter.check("busy", p, t).allowed);
  EXPECT_EQ(limiter.size(), 51U);
  EXPECT_EQ(limiter.expire(t + 99 * kMs), 0U);  // nobody is full again yet
  // After 100 ms the one-token users are full (= a fresh bucket); "busy" still owes 200 ms.
  EXPECT_EQ(limiter.expire(t + 100 * kMs), 50U);
  EXPECT_EQ(limiter.size(), 1U);
  EXPECT_EQ(limiter.tokens("busy", p, t + 100 * kMs), 1U);
  EXPECT_EQ(limiter.stats().evicted, 50U);
}

TEST(RateLimiter, AFullTableRefusesNewKeysRatherThanEvictingActiveOnes) {
  RateLimiter limiter(4);
  const auto p = bucketParams({1.0, 2});
  const Nanos t = 100 * kSecond;
  for (const char* k : {"a", "b", "c", "d"}) {
    ASSERT_TRUE(limiter.check(k, p, t).allowed);
    ASSERT_TRUE(limiter.check(k, p, t).allowed);  // empty: each holds state
  }
  // An attacker making up keys cannot push out the established ones...
  for (int i = 0; i < 1000; ++i) {
    const auto d = limiter.check("attacker-" + std::to_string(i), p, t + i);
    ASSERT_FALSE(d.allowed);
    ASSERT_TRUE(d.table_full);
  }
  EXPECT_EQ(limiter.stats().table_full, 1000U);
  EXPECT_EQ(limiter.size(), 4U);
  // ... so "a" is still limited: its empty bucket was not reset.
  EXPECT_FALSE(limiter.check("a", p, t + 10).allowed);
  // Once a bucket is full again (idle), a new key takes its slot (the least recently used first).
  const auto later = t + 2 * kSecond;
  EXPECT_TRUE(limiter.check("newcomer", p, later).allowed);
  EXPECT_EQ(limiter.size(), 4U);
  EXPECT_EQ(limiter.stats().evicted, 1U);
}

TEST(RateLimiter, RecentlyUsedKeysAreTheLastToBeReplaced) {
  RateLimiter limiter(3);
  const auto p = bucketParams({1.0, 1});
  ASSERT_TRUE(limiter.check("a", p, 0).allowed);
  ASSERT_TRUE(limiter.check("b", p, 0).allowed);
  ASSERT_TRUE(limiter.check("c", p, 0).allowed);
  // At 1 s all are full; "a" is used again (and emptied), so "b" is the one replaced.
  ASSERT_TRUE(limiter.check("a", p, kSecond).allowed);
  ASSERT_TRUE(limiter.check("d", p, kSecond).allowed);
  EXPECT_FALSE(limiter.check("a", p, kSecond).allowed);  // "a" kept its (empty) bucket
  EXPECT_EQ(limiter.tokens("b", p, kSecond), 1U);        // "b" is gone: a fresh bucket
  EXPECT_EQ(limiter.size(), 3U);
}

}  // namespace
}  // namespace coap_edge::policy
