// The throttle of repeated log lines (policy/log_throttle.h) with a fake clock: one line per key
// per interval, the held-back count reported with the next line, a bounded table that evicts
// the key with the oldest line.

#include "policy/log_throttle.h"

#include <gtest/gtest.h>

#include <string>

namespace coap_edge::policy {
namespace {

constexpr Nanos kSecond = kNanosPerSecond;
constexpr Nanos kMinute = 60 * kSecond;
constexpr Nanos kT0 = 5000 * kSecond;

TEST(LogThrottle, OneLinePerKeyPerIntervalThenTheCountOfHeldBackOnes) {
  LogThrottle t(kMinute, 100);
  const auto first = t.admit("id:dev-1", kT0);
  EXPECT_TRUE(first.log);
  EXPECT_EQ(first.suppressed, 0U);
  // Twelve more within the minute: none logged.
  for (int i = 1; i <= 12; ++i) EXPECT_FALSE(t.admit("id:dev-1", kT0 + i * kSecond).log) << i;
  EXPECT_FALSE(t.admit("id:dev-1", kT0 + kMinute - 1).log);
  // The first event a full interval after the last line is logged, with 13 held back since it.
  const auto next = t.admit("id:dev-1", kT0 + kMinute);
  EXPECT_TRUE(next.log);
  EXPECT_EQ(next.suppressed, 13U);
  EXPECT_EQ(next.since, kT0);
  // The interval now counts from that line, and the count starts again.
  EXPECT_FALSE(t.admit("id:dev-1", kT0 + kMinute + kSecond).log);
  const auto third = t.admit("id:dev-1", kT0 + 3 * kMinute);
  EXPECT_TRUE(third.log);
  EXPECT_EQ(third.suppressed, 1U);
  EXPECT_EQ(third.since, kT0 + kMinute);
  // Nothing held back since: no count.
  const auto quiet = t.admit("id:dev-1", kT0 + 5 * kMinute);
  EXPECT_TRUE(quiet.log);
  EXPECT_EQ(quiet.suppressed, 0U);
}

TEST(LogThrottle, KeysAreIndependent) {
  LogThrottle t(kMinute, 100);
  EXPECT_TRUE(t.admit("id:a", kT0).log);
  EXPECT_TRUE(t.admit("id:b", kT0).log);
  EXPECT_TRUE(t.admit("ip:127.0.0.1", kT0).log);
  EXPECT_FALSE(t.admit("id:a", kT0 + kSecond).log);
  EXPECT_FALSE(t.admit("id:b", kT0 + kSecond).log);
  EXPECT_EQ(t.size(), 3U);
}

TEST(LogThrottle, FullTableEvictsTheKeyWithTheOldestLine) {
  LogThrottle t(kMinute, 3);
  EXPECT_TRUE(t.admit("a", kT0).log);
  EXPECT_TRUE(t.admit("b", kT0 + 1).log);
  EXPECT_TRUE(t.admit("c", kT0 + 2).log);
  // "a" logs again a minute later: its line is now the newest, "b" the oldest.
  EXPECT_TRUE(t.admit("a", kT0 + kMinute).log);
  EXPECT_TRUE(t.admit("d", kT0 + kMinute + 1).log);
  EXPECT_EQ(t.size(), 3U);
  EXPECT_EQ(t.evicted(), 1U);
  // "a", "c" and "d" are still throttled; "b" was forgotten, so it logs at once.
  EXPECT_FALSE(t.admit("a", kT0 + kMinute + 2).log);
  EXPECT_FALSE(t.admit("d", kT0 + kMinute + 2).log);
  EXPECT_FALSE(t.admit("c", kT0 + kMinute + 1).log);  // c's line was at kT0 + 2, within a minute
  EXPECT_TRUE(t.admit("b", kT0 + kMinute + 3).log);
}

TEST(LogThrottle, ManyKeysStayWithinTheCap) {
  LogThrottle t(kMinute, 50);
  for (int i = 0; i < 10000; ++i) EXPECT_TRUE(t.admit("ip:" + std::to_string(i), kT0 + i).log);
  EXPECT_EQ(t.size(), 50U);
  EXPECT_EQ(t.evicted(), 10000U - 50U);
  // The newest 50 are the ones kept.
  EXPECT_FALSE(t.admit("ip:9999", kT0 + 10000).log);
  EXPECT_FALSE(t.admit("ip:9950", kT0 + 10000).log);
}

TEST(LogThrottle, ZeroIntervalOrCapAreClampedToOne) {
  LogThrottle t(0, 0);
  EXPECT_TRUE(t.admit("a", kT0).log);
  EXPECT_TRUE(t.admit("a", kT0 + 1).log);  // interval 1 ns
  EXPECT_TRUE(t.admit("b", kT0 + 1).log);
  EXPECT_EQ(t.size(), 1U);
}

}  // namespace
}  // namespace coap_edge::policy
