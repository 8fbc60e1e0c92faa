// The relay's response cache (relay/response_cache.h) and request coalescer (relay/coalescer.h)
// with a fake clock: time is whatever the test says.

#include "relay/coalescer.h"
#include "relay/response_cache.h"

#include <gtest/gtest.h>

#include <memory>
#include <set>
#include <stdexcept>
#include <string>
#include <vector>

namespace coap_edge::relay {
namespace {

using namespace std::chrono_literals;
using coap::Code;
using coap::Method;

const Clock::time_point kT0 = Clock::time_point{} + 1000h;  // far from the clock's ends

std::string getKey(std::string_view node, std::string_view path, std::string_view query = "",
                   std::optional<std::uint16_t> accept = std::nullopt) {
  return cacheKey(node, Method::get, path, query, accept, std::nullopt, "");
}

CachedResponse content(std::string payload, std::optional<std::string> etag = std::nullopt) {
  return CachedResponse{Code::content, coap::content_format::text_plain, std::move(payload), std::move(etag)};
}

// ---- cacheKey ---------------------------------------------------------------------------------

TEST(CacheKey, OnlyGetAndFetchAreCacheable) {
  EXPECT_FALSE(cacheKey("n1", Method::get, "temp", "", std::nullopt, std::nullopt, "").empty());
  EXPECT_FALSE(cacheKey("n1", Method::fetch, "temp", "", std::nullopt, std::nullopt, "").empty());
  for (const Method m : {Method::post, Method::put, Method::del, Method::patch, Method::ipatch}) {
    EXPECT_EQ(cacheKey("n1", m, "temp", "", std::nullopt, std::nullopt, ""), "") << static_cast<int>(m);
  }
}

TEST(CacheKey, FieldsCannotRunIntoEachOther) {
  // Each pair would collide under a naive "node/path?query" join.
  const std::vector<std::string> keys = {
      getKey("n1", "a", "b=c"),
      getKey("n1", "a/b", "c"),
      getKey("n1", "a/b=c"),
      getKey("n1", "a?b=c"),
      getKey("n1/a", "b=c"),
      getKey("n1", "a", "b=c&d"),
      getKey("n1", "a", "b=c", 0),
      getKey("n1", "a", "b=c", 50),
      getKey("n1", "a", "b=c", 5),
      getKey("n", "1a", "b=c"),
      getKey("", "n1a", "b=c"),
      getKey("1:n", "a", "b=c"),
      getKey("n1", "", ""),
      getKey("n1", "", "", 0),
      cacheKey("n1", Method::fetch, "a", "b=c", std::nullopt, std::nullopt, ""),
      cacheKey("n1", Method::fetch, "a", "b=c", std::nullopt, 60, ""),
      cacheKey("n1", Method::fetch, "a", "b=c", std::nullopt, std::nullopt, "6"),
      cacheKey("n1", Method::fetch, "a", "b=c", std::nullopt, 6, "0"),
      cacheKey("n1", Method::fetch, "a", "b=c", std::nullopt, 60, "x"),
      cacheKey("n1", Method::fetch, "a", "b=c", std::nullopt, 60, "y"),
      cacheKey("n1", Method::fetch, "a", "b=c", 60, 60, "x"),
  };
  const std::set<std::string> distinct(keys.begin(), keys.end());
  EXPECT_EQ(distinct.size(), keys.size());
}

TEST(CacheKey, GetIgnoresBodyAndContentFormatFetchDoesNot) {
  EXPECT_EQ(cacheKey("n1", Method::get, "a", "", std::nullopt, 60, "junk"),
            cacheKey("n1", Method::get, "a", "", std::nullopt, std::nullopt, ""));
  EXPECT_NE(cacheKey("n1", Method::fetch, "a", "", std::nullopt, 60, "{\"q\":1}"),
            cacheKey("n1", Method::fetch, "a", "", std::nullopt, 60, "{\"q\":2}"));
  EXPECT_NE(cacheKey("n1", Method::fetch, "a", "", std::nullopt, std::nullopt, ""), getKey("n1", "a"));
}

TEST(CacheKey, BinaryBytesAreKept) {
  const std::string body_a("\0\x01:", 3);
  const std::string body_b("\0\x02:", 3);
  EXPECT_NE(cacheKey("n1", Method::fetch, "a", "", std::nullopt, 60, body_a),
            cacheKey("n1", Method::fetch, "a", "", std::nullopt, 60, body_b));
}

// ---- freshness --------------------------------------------------------------------------------

TEST(ResponseCache, MissThenFreshWithMaxAgeCountingDown) {
  ResponseCache cache;
  const auto key = getKey("n1", "temp");
  EXPECT_EQ(cache.lookup(key, true, kT0).kind, Lookup::miss);
  ASSERT_TRUE(cache.store(key, content("21.5"), 30, true, kT0));

  auto l = cache.lookup(key, true, kT0);
  ASSERT_EQ(l.kind, Lookup::fresh);
  ASSERT_NE(l.response, nullptr);
  EXPECT_EQ(l.response->payload, "21.5");
  EXPECT_EQ(l.response->content_format, coap::content_format::text_plain);
  EXPECT_EQ(l.max_age_left, 30U);
  EXPECT_EQ(cache.lookup(key, true, kT0 + 10s).max_age_left, 20U);
  EXPECT_EQ(cache.lookup(key, true, kT0 + 10s + 999ms).max_age_left, 19U);  // rounded down
  l = cache.lookup(key, true, kT0 + 29s + 500ms);
  EXPECT_EQ(l.kind, Lookup::fresh);
  EXPECT_EQ(l.max_age_left, 0U);
  EXPECT_EQ(cache.lookup(key, true, kT0 + 30s).kind, Lookup::miss);  // expired, no ETag: dropped

  const auto s = cache.stats();
  EXPECT_EQ(s.hits, 4U);
  EXPECT_EQ(s.misses, 2U);
  EXPECT_EQ(s.expired, 1U);
  EXPECT_EQ(s.entries, 0U);
  EXPECT_EQ(s.bytes, 0U);
}

TEST(ResponseCache, MaxAgeDefaultsToSixtySeconds) {
  ResponseCache cache;
  const auto key = getKey("n1", "temp");
  ASSERT_TRUE(cache.store(key, content("1"), std::nullopt, false, kT0));
  EXPECT_EQ(cache.lookup(key, false, kT0).max_age_left, 60U);
  EXPECT_EQ(cache.lookup(key, false, kT0 + 59s).kind, Lookup::fresh);
  EXPECT_EQ(cache.lookup(key, false, kT0 + 60s).kind, Lookup::miss);
}

TEST(ResponseCache, MaxAgeZeroIsNotStoredAndDropsTheOldEntry) {
  ResponseCache cache;
  const auto key = getKey("n1", "temp");
  EXPECT_FALSE(cache.store(key, content("1"), 0, false, kT0));
  EXPECT_EQ(cache.lookup(key, false, kT0).kind, Lookup::miss);
  ASSERT_TRUE(cache.store(key, content("1"), 60, false, kT0));
  EXPECT_FALSE(cache.store(key, content("2"), 0, false, kT0 + 1s));
  EXPECT_EQ(cache.lookup(key, false, kT0 + 1s).kind, Lookup::miss);  // the old value is out of date
  EXPECT_EQ(cache.stats().entries, 0U);
}

TEST(ResponseCache, HugeMaxAgeSaturatesInsteadOfOverflowing) {
  ResponseCache cache;
  const auto key = getKey("n1", "temp");
  ASSERT_TRUE(cache.store(key, content("1"), 0xFFFFFFFFU, false, kT0));
  const auto l = cache.lookup(key, false, kT0 + 1s);
  EXPECT_EQ(l.kind, Lookup::fresh);
  EXPECT_EQ(l.max_age_left, 0xFFFFFFFEU);
  // Near the end of the clock: saturates, still fresh, still a sane Max-Age.
  const auto late = Clock::time_point::max() - 10s;
  ASSERT_TRUE(cache.store(key, content("1"), 0xFFFFFFFFU, false, late));
  EXPECT_EQ(cache.lookup(key, false, late).kind, Lookup::fresh);
  EXPECT_EQ(cache.lookup(key, false, late).max_age_left, 10U);
}

TEST(ResponseCache, StoreReplacesTheEntry) {
  ResponseCache cache;
  const auto key = getKey("n1", "temp");
  ASSERT_TRUE(cache.store(key, content("old"), 60, false, kT0));
  ASSERT_TRUE(cache.store(key, content("new"), 5, false, kT0 + 1s));
  const auto l = cache.lookup(key, false, kT0 + 1s);
  ASSERT_EQ(l.kind, Lookup::fresh);
  EXPECT_EQ(l.response->payload, "new");
  EXPECT_EQ(l.max_age_left, 5U);
  EXPECT_EQ(cache.stats().entries, 1U);
  EXPECT_EQ(cache.stats().stored, 2U);
}

// ---- revalidation -----------------------------------------------------------------------------

TEST(ResponseCache, StaleWithEtagIsRevalidatedByValid) {
  ResponseCache cache;
  const auto key = getKey("n1", "temp");
  ASSERT_TRUE(cache.store(key, content("21.5", "\x01\x02"), 10, false, kT0));
  auto l = cache.lookup(key, false, kT0 + 10s);
  ASSERT_EQ(l.kind, Lookup::stale);
  ASSERT_NE(l.response, nullptr);
  EXPECT_EQ(l.response->etag, std::string("\x01\x02"));  // what to put in the request's ETag
  EXPECT_EQ(l.max_age_left, 0U);
  EXPECT_EQ(cache.lookup(key, false, kT0 + 3600s).kind, Lookup::stale);  // stays until revalidated

  ASSERT_TRUE(cache.revalidated(key, 20, kT0 + 3600s));
  l = cache.lookup(key, false, kT0 + 3601s);
  ASSERT_EQ(l.kind, Lookup::fresh);
  EXPECT_EQ(l.response->payload, "21.5");
  EXPECT_EQ(l.max_age_left, 19U);

  // Default Max-Age on the 2.03 too.
  ASSERT_TRUE(cache.revalidated(key, std::nullopt, kT0 + 4000s));
  EXPECT_EQ(cache.lookup(key, false, kT0 + 4000s).max_age_left, 60U);
  // Max-Age 0: valid for that one request, stale for the next.
  ASSERT_TRUE(cache.revalidated(key, 0, kT0 + 5000s));
  EXPECT_EQ(cache.lookup(key, false, kT0 + 5000s).kind, Lookup::stale);

  const auto s = cache.stats();
  EXPECT_EQ(s.stale, 3U);
  EXPECT_EQ(s.revalidated, 3U);
}

TEST(ResponseCache, RevalidatedNeedsAnEntryWithAnEtag) {
  ResponseCache cache;
  const auto key = getKey("n1", "temp");
  EXPECT_FALSE(cache.revalidated(key, 60, kT0));
  ASSERT_TRUE(cache.store(key, content("1"), 60, false, kT0));
  EXPECT_FALSE(cache.revalidated(key, 60, kT0));
  EXPECT_EQ(cache.stats().revalidated, 0U);
}

// ---- what is cacheable ------------------------------------------------------------------------

TEST(ResponseCache, ErrorsAreCachedForTheirMaxAge) {
  ResponseCache cache;
  const auto key = getKey("n1", "missing");
  ASSERT_TRUE(cache.store(key, CachedResponse{Code::not_found, std::nullopt, "", std::nullopt}, 5, false, kT0));
  auto l = cache.lookup(key, false, kT0 + 1s);
  ASSERT_EQ(l.kind, Lookup::fresh);
  EXPECT_EQ(l.response->code, Code::not_found);
  EXPECT_EQ(l.max_age_left, 4U);
  EXPECT_EQ(cache.lookup(key, false, kT0 + 5s).kind, Lookup::miss);

  // A 5.03 from the node with its Max-Age (how long it wants to be left alone).
  ASSERT_TRUE(cache.store(key, CachedResponse{Code::service_unavailable, std::nullopt, "", std::nullopt}, 30, false,
                          kT0));
  EXPECT_EQ(cache.lookup(key, false, kT0).response->code, Code::service_unavailable);
  EXPECT_TRUE(cache.store(key, CachedResponse{Code::bad_request, std::nullopt, "", std::nullopt}, 30, false, kT0));
}

TEST(ResponseCache, SuccessCodesOtherThanContentAreNotCached) {
  ResponseCache cache;
  const auto key = getKey("n1", "temp");
  for (const Code c : {Code::created, Code::deleted, Code::valid, Code::changed, Code::none}) {
    EXPECT_FALSE(cache.store(key, CachedResponse{c, std::nullopt, "x", std::nullopt}, 60, false, kT0))
        << static_cast<int>(c);
  }
  EXPECT_EQ(cache.lookup(key, false, kT0).kind, Lookup::miss);
  EXPECT_EQ(cache.stats().stored, 0U);
}

TEST(ResponseCache, KeysNotMadeByCacheKeyAreRefused) {
  ResponseCache cache;
  for (const std::string bad : {"", "x", "3:ab", "2:ab", "2:ab9:", "a:bc", ":"}) {
    EXPECT_FALSE(cache.store(bad, content("1"), 60, false, kT0)) << bad;
  }
  EXPECT_EQ(cache.stats().entries, 0U);
}

TEST(ResponseCache, OversizeResponsesAreNotStored) {
  ResponseCache cache(CacheLimits{1024 * 1024, 4096, 1024});
  const auto key = getKey("n1", "big");
  ASSERT_TRUE(cache.store(key, content("small"), 60, false, kT0));
  EXPECT_FALSE(cache.store(key, content(std::string(1024, 'x')), 60, false, kT0));
  EXPECT_EQ(cache.lookup(key, false, kT0).kind, Lookup::miss);  // superseded, not served stale data
  const std::size_t fits = 1024 - ResponseCache::kEntryOverhead - key.size() - 2;
  EXPECT_TRUE(cache.store(key, content(std::string(fits, 'x'), "e1"), 60, false, kT0));
  EXPECT_FALSE(cache.store(key, content(std::string(fits, 'x'), "e12"), 60, false, kT0));

  ResponseCache tiny(CacheLimits{200, 4096, 64 * 1024});  // max_bytes smaller than max_entry_bytes
  EXPECT_FALSE(tiny.store(key, content(std::string(100, 'x')), 60, false, kT0));
  EXPECT_EQ(tiny.stats().entries, 0U);
}

// ---- security ---------------------------------------------------------------------------------

TEST(ResponseCache, SecureEntryIsNeverServedToAnInsecureRequester) {
  ResponseCache cache;
  const auto key = getKey("n1", "temp");
  ASSERT_TRUE(cache.store(key, content("secret"), 60, /*secure=*/true, kT0));
  EXPECT_EQ(cache.lookup(key, /*requester_secure=*/false, kT0).kind, Lookup::miss);
  EXPECT_EQ(cache.stats().entries, 1U);  // not evicted
  const auto l = cache.lookup(key, true, kT0);
  ASSERT_EQ(l.kind, Lookup::fresh);
  EXPECT_EQ(l.response->payload, "secret");
  // Stale secure entries are not revealed either (not even their ETag).
  ASSERT_TRUE(cache.store(key, content("secret", "e"), 60, true, kT0));
  EXPECT_EQ(cache.lookup(key, false, kT0 + 61s).kind, Lookup::miss);
  EXPECT_EQ(cache.lookup(key, true, kT0 + 61s).kind, Lookup::stale);
}

TEST(ResponseCache, InsecureEntryIsServedToBoth) {
  ResponseCache cache;
  const auto key = getKey("n1", "temp");
  ASSERT_TRUE(cache.store(key, content("public"), 60, false, kT0));
  EXPECT_EQ(cache.lookup(key, false, kT0).kind, Lookup::fresh);
  EXPECT_EQ(cache.lookup(key, true, kT0).kind, Lookup::fresh);
}

// ---- limits -----------------------------------------------------------------------------------

TEST(ResponseCache, EvictsLeastRecentlyUsedByEntries) {
  ResponseCache cache(CacheLimits{1024 * 1024, 3, 64 * 1024});
  const auto a = getKey("n1", "a");
  const auto b = getKey("n1", "b");
  const auto c = getKey("n1", "c");
  const auto d = getKey("n1", "d");
  ASSERT_TRUE(cache.store(a, content("a"), 60, false, kT0));
  ASSERT_TRUE(cache.store(b, content("b"), 60, false, kT0));
  ASSERT_TRUE(cache.store(c, content("c"), 60, false, kT0));
  ASSERT_EQ(cache.lookup(a, false, kT0).kind, Lookup::fresh);  // a is now the most recently used
  ASSERT_TRUE(cache.store(d, content("d"), 60, false, kT0));
  EXPECT_EQ(cache.lookup(b, false, kT0).kind, Lookup::miss);  // b was the least recently used
  EXPECT_EQ(cache.lookup(a, false, kT0).kind, Lookup::fresh);
  EXPECT_EQ(cache.lookup(c, false, kT0).kind, Lookup::fresh);
  EXPECT_EQ(cache.lookup(d, false, kT0).kind, Lookup::fresh);
  EXPECT_EQ(cache.stats().entries, 3U);
  EXPECT_EQ(cache.stats().evicted, 1U);
}

TEST(ResponseCache, EvictsLeastRecentlyUsedByBytes) {
  const auto key = [](int i) { return getKey("n1", "r" + std::to_string(i)); };
  const std::size_t entry = key(0).size() + 100 + ResponseCache::kEntryOverhead;
  ResponseCache cache(CacheLimits{4 * entry, 4096, 64 * 1024});
  for (int i = 0; i < 4; ++i) ASSERT_TRUE(cache.store(key(i), content(std::string(100, 'x')), 60, false, kT0));
  EXPECT_EQ(cache.stats().bytes, 4 * entry);
  EXPECT_EQ(cache.stats().evicted, 0U);
  ASSERT_EQ(cache.lookup(key(0), false, kT0).kind, Lookup::fresh);
  // Twice the size: two entries must go, the least recently used (1, then 2).
  ASSERT_TRUE(cache.store(key(4), content(std::string(100 + entry, 'x')), 60, false, kT0));
  EXPECT_EQ(cache.lookup(key(1), false, kT0).kind, Lookup::miss);
  EXPECT_EQ(cache.lookup(key(2), false, kT0).kind, Lookup::miss);
  EXPECT_EQ(cache.lookup(key(0), false, kT0).kind, Lookup::fresh);
  EXPECT_EQ(cache.lookup(key(3), false, kT0).kind, Lookup::fresh);
  EXPECT_EQ(cache.lookup(key(4), false, kT0).kind, Lookup::fresh);
  EXPECT_EQ(cache.stats().evicted, 2U);
  EXPECT_LE(cache.stats().bytes, 4 * entry);
}

TEST(ResponseCache, ManyEntriesStayWithinTheLimits) {
  ResponseCache cache(CacheLimits{64 * 1024, 100, 4 * 1024});
  for (int i = 0; i < 10000; ++i) {
    const auto key = getKey("n" + std::to_string(i % 7), "p" + std::to_string(i % 300), "q=" + std::to_string(i % 3));
    cache.store(key, content(std::string(static_cast<std::size_t>(i % 500), 'x')), 60, i % 2 == 0, kT0);
    if (i % 5 == 0) (void)cache.lookup(key, true, kT0);
    if (i % 97 == 0) cache.invalidate("n1", "p1");
    const auto s = cache.stats();
    ASSERT_LE(s.entries, 100U);
    ASSERT_LE(s.bytes, 64U * 1024);
  }
  cache.invalidateNode("n0");
  cache.invalidateNode("n1");
  cache.invalidateNode("n2");
  cache.invalidateNode("n3");
  cache.invalidateNode("n4");
  cache.invalidateNode("n5");
  cache.invalidateNode("n6");
  EXPECT_EQ(cache.stats().entries, 0U);
  EXPECT_EQ(cache.stats().bytes, 0U);
}

// ---- invalidation -----------------------------------------------------------------------------

TEST(ResponseCache, InvalidateDropsEveryVariantOfThePath) {
  ResponseCache cache;
  const std::vector<std::string> same_uri = {
      getKey("n1", "led"),
      getKey("n1", "led", "x=1"),
      getKey("n1", "led", "x=2", coap::content_format::json),
      cacheKey("n1", Method::fetch, "led", "", std::nullopt, 60, "q"),
  };
  const std::vector<std::string> others = {
      getKey("n1", "led/2"), getKey("n1", "le"), getKey("n2", "led"), getKey("n1", "temp", "led"),
  };
  for (const auto& k : same_uri) ASSERT_TRUE(cache.store(k, content("v"), 60, false, kT0));
  for (const auto& k : others) ASSERT_TRUE(cache.store(k, content("v"), 60, true, kT0));

  EXPECT_EQ(cache.invalidate("n1", "led"), same_uri.size());
  for (const auto& k : same_uri) EXPECT_EQ(cache.lookup(k, true, kT0).kind, Lookup::miss);
  for (const auto& k : others) EXPECT_EQ(cache.lookup(k, true, kT0).kind, Lookup::fresh);
  EXPECT_EQ(cache.invalidate("n1", "led"), 0U);
  EXPECT_EQ(cache.stats().invalidated, same_uri.size());
  EXPECT_EQ(cache.stats().entries, others.size());
}

TEST(ResponseCache, InvalidateNodeDropsOnlyThatNode) {
  ResponseCache cache;
  // "n1" must not take "n10" or "n1x" with it.
  const std::vector<std::string> n1 = {getKey("n1", "a"), getKey("n1", "b", "q"), getKey("n1", "")};
  const std::vector<std::string> others = {getKey("n10", "a"), getKey("n1x", "a"), getKey("n", "1a"),
                                           getKey("", "n1")};
  for (const auto& k : n1) ASSERT_TRUE(cache.store(k, content("v"), 60, false, kT0));
  for (const auto& k : others) ASSERT_TRUE(cache.store(k, content("v"), 60, false, kT0));
  EXPECT_EQ(cache.invalidateNode("n1"), n1.size());
  for (const auto& k : n1) EXPECT_EQ(cache.lookup(k, false, kT0).kind, Lookup::miss);
  for (const auto& k : others) EXPECT_EQ(cache.lookup(k, false, kT0).kind, Lookup::fresh);
  EXPECT_EQ(cache.invalidateNode("n1"), 0U);
  EXPECT_EQ(cache.invalidateNode("nobody"), 0U);
}

TEST(ResponseCache, FetchBodyIsPartOfTheKey) {
  ResponseCache cache;
  const auto q1 = cacheKey("n1", Method::fetch, "db", "", std::nullopt, coap::content_format::json, "{\"id\":1}");
  const auto q2 = cacheKey("n1", Method::fetch, "db", "", std::nullopt, coap::content_format::json, "{\"id\":2}");
  ASSERT_TRUE(cache.store(q1, content("one"), 60, false, kT0));
  EXPECT_EQ(cache.lookup(q2, false, kT0).kind, Lookup::miss);
  ASSERT_TRUE(cache.store(q2, content("two"), 60, false, kT0));
  EXPECT_EQ(cache.lookup(q1, false, kT0).response->payload, "one");
  EXPECT_EQ(cache.lookup(q2, false, kT0).response->payload, "two");
}

// ---- coalescer --------------------------------------------------------------------------------

struct Result {
  int value = 0;
};

TEST(Coalescer, OneFirstAndManyJoinedGetTheOneResultOnce) {
  Coalescer<Result> co;
  std::vector<int> got(6, 0);
  EXPECT_EQ(co.join("k", [&](const Result& r) { got[0] += r.value; }), Join::first);
  for (int i = 1; i < 6; ++i) {
    EXPECT_EQ(co.join("k", [&got, i](const Result& r) { got[static_cast<std::size_t>(i)] += r.value; }),
              Join::joined);
  }
  EXPECT_EQ(co.join("other", nullptr), Join::first);  // a different key is its own request
  EXPECT_EQ(co.inFlight(), 2U);
  EXPECT_EQ(co.waiters("k"), 6U);

  EXPECT_EQ(co.complete("k", Result{7}), 6U);
  for (const int g : got) EXPECT_EQ(g, 7);
  EXPECT_EQ(co.complete("k", Result{9}), 0U);  // nothing in flight any more: no second call
  for (const int g : got) EXPECT_EQ(g, 7);
  EXPECT_EQ(co.inFlight(), 1U);
  EXPECT_EQ(co.complete("other", Result{1}), 0U);  // an empty waiter is not called
  EXPECT_EQ(co.inFlight(), 0U);
  EXPECT_EQ(co.stats().first, 2U);
  EXPECT_EQ(co.stats().joined, 5U);
  EXPECT_EQ(co.stats().completed, 2U);
}

TEST(Coalescer, WaiterMayJoinAndCompleteReentrantly) {
  Coalescer<Result> co;
  std::vector<std::string> log;
  Join rejoin = Join::full;
  ASSERT_EQ(co.join("k", [&](const Result& r) {
    log.push_back("a" + std::to_string(r.value));
    // Same key: the old request is over, so this one starts a new one.
    rejoin = co.join("k", [&](const Result& r2) { log.push_back("again" + std::to_string(r2.value)); });
    // Completing the same key from inside: reaches only the new waiter, never "a" or "b" again.
    EXPECT_EQ(co.complete("k", Result{2}), 1U);
  }), Join::first);
  ASSERT_EQ(co.join("k", [&](const Result& r) {
    log.push_back("b" + std::to_string(r.value));
    EXPECT_EQ(co.join("other", [&](const Result& r2) { log.push_back("o" + std::to_string(r2.value)); }),
              Join::first);
  }), Join::joined);

  EXPECT_EQ(co.complete("k", Result{1}), 2U);
  EXPECT_EQ(rejoin, Join::first);
  EXPECT_EQ(log, (std::vector<std::string>{"a1", "again2", "b1"}));
  EXPECT_EQ(co.inFlight(), 1U);  // "other"
  EXPECT_EQ(co.complete("other", Result{3}), 1U);
  EXPECT_EQ(log.back(), "o3");
  EXPECT_EQ(co.inFlight(), 0U);
}

TEST(Coalescer, CompleteWithTheKeyOwnedByAWaiterIsSafe) {
  // The caller may pass a key that lives in a waiter's capture; complete() must not read it after
  // the waiters are moved out (ASan checks this).
  Coalescer<Result> co;
  int calls = 0;
  auto owned = std::make_shared<std::string>("k");
  ASSERT_EQ(co.join(*owned, [owned, &calls](const Result&) { ++calls; }), Join::first);
  const std::string& key = *owned;
  owned.reset();  // now only the waiter holds the key
  EXPECT_EQ(co.complete(key, Result{}), 1U);
  EXPECT_EQ(calls, 1);
}

TEST(Coalescer, CapsRefuseWithFull) {
  Coalescer<Result> co(CoalescerLimits{2, 3});
  EXPECT_EQ(co.join("a", nullptr), Join::first);
  EXPECT_EQ(co.join("a", nullptr), Join::joined);
  EXPECT_EQ(co.join("a", nullptr), Join::joined);
  EXPECT_EQ(co.join("a", nullptr), Join::full);  // 3 waiters per key, the first included
  EXPECT_EQ(co.waiters("a"), 3U);
  EXPECT_EQ(co.join("b", nullptr), Join::first);
  EXPECT_EQ(co.join("c", nullptr), Join::full);  // 2 keys in flight
  EXPECT_EQ(co.inFlight(), 2U);
  EXPECT_EQ(co.stats().refused, 2U);
  co.complete("a", Result{});
  EXPECT_EQ(co.join("c", nullptr), Join::first);  // room again

  Coalescer<Result> none(CoalescerLimits{0, 0});
  EXPECT_EQ(none.join("a", nullptr), Join::full);
  EXPECT_EQ(none.inFlight(), 0U);
}

TEST(Coalescer, ThrowingWaiterDoesNotStopTheOthers) {
  Coalescer<Result> co;
  int calls = 0;
  ASSERT_EQ(co.join("k", [&](const Result&) { ++calls; }), Join::first);
  ASSERT_EQ(co.join("k", [&](const Result&) { ++calls; throw std::runtime_error("waiter failed"); }), Join::joined);
  ASSERT_EQ(co.join("k", [&](const Result&) { ++calls; throw 42; }), Join::joined);
  ASSERT_EQ(co.join("k", [&](const Result&) { ++calls; }), Join::joined);
  EXPECT_EQ(co.complete("k", Result{}), 4U);
  EXPECT_EQ(calls, 4);
  EXPECT_EQ(co.stats().waiter_errors, 2U);
  EXPECT_EQ(co.inFlight(), 0U);
}

}  // namespace
}  // namespace coap_edge::relay
