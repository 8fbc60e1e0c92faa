// The coap part's pure pieces: the request path handlers and the ACL see, the session table the
// request handlers rely on for identities, and log sanitising of identities from the network,
// and the answers kept per session for duplicate requests (RecentResponses).

#include "coap/recent_responses.h"
#include "coap/request_pdu.h"
#include "coap/session_table.h"
#include "common/log.h"
#include "policy/acl.h"

#include <coap3/coap.h>
#include <gtest/gtest.h>

#include <initializer_list>
#include <string_view>

namespace coap_edge::coap {
namespace {

// The Request path of a GET whose Uri-Path options are `segments`, as handlers and the ACL see it.
std::string pathOf(std::initializer_list<std::string_view> segments) {
  static const bool started = [] {
    coap_startup();
    coap_set_log_level(COAP_LOG_EMERG);
    return true;
  }();
  (void)started;
  coap_pdu_t* pdu = coap_pdu_init(COAP_MESSAGE_CON, COAP_REQUEST_CODE_GET, 1, 1152);
  for (const auto segment : segments) {
    coap_add_option(pdu, COAP_OPTION_URI_PATH, segment.size(), reinterpret_cast<const uint8_t*>(segment.data()));
  }
  Request req;
  readRequest(pdu, nullptr, req);
  coap_delete_pdu(pdu);
  return req.path;
}

TEST(RequestPath, IsLibcoapsCanonicalFormWhichTheAclPatternsUse) {
  EXPECT_EQ(pathOf({}), "");
  EXPECT_EQ(pathOf({"status"}), "status");
  EXPECT_EQ(pathOf({".well-known", "core"}), ".well-known/core");
  // One option holding '/', a space, '%' or non-ASCII stays one segment, escaped; pchar stays.
  const std::string odd = pathOf({"a/b", "x y", "%41", "\xc3\xa9", "~*:@!$&'()+,;="});
  EXPECT_EQ(odd, "a%2Fb/x%20y/%2541/%C3%A9/~*:@!$&'()+,;=");
  // The pattern compiler puts literals in the same form, so they compare byte for byte.
  const auto pattern = policy::compilePathPattern("/a%2fb/x%20y/%2541/%c3%a9/~%2A:@!$&'()+,;=");
  ASSERT_TRUE(pattern.ok()) << pattern.error.message;
  EXPECT_TRUE(pattern.value->matches(odd));
  EXPECT_FALSE(policy::compilePathPattern("/a/b/**").value->matches(odd));
  // Dot segments and empty options arrive as they were sent: nothing is normalised.
  EXPECT_EQ(pathOf({"nodes", "..", "status"}), "nodes/../status");
  EXPECT_EQ(pathOf({"a", "", "b"}), "a//b");
  EXPECT_TRUE(policy::hasDotOrEmptySegment(pathOf({"a", ""})));
}

TEST(SessionTable, CountsOnlyEstablishedSessionsPerAuthKind) {
  SessionTable t;
  int a = 0, b = 0, c = 0;
  t.add(&a, "127.0.0.1:1000");  // still handshaking
  SessionEntry& psk = t.add(&b, "127.0.0.1:1001");
  psk.peer.kind = AuthKind::psk;
  psk.peer.identity = "dev-1";
  t.establish(psk);
  t.establish(psk);  // idempotent: counted once
  SessionEntry& x = t.add(&c, "127.0.0.1:1002");
  x.peer.kind = AuthKind::x509;
  t.establish(x);
  EXPECT_EQ(t.size(), 3u);
  EXPECT_EQ(t.established(), 2u);
  EXPECT_EQ(t.established(AuthKind::psk), 1u);
  EXPECT_EQ(t.established(AuthKind::x509), 1u);
  t.remove(&b);
  EXPECT_EQ(t.established(AuthKind::psk), 0u);
  EXPECT_EQ(t.established(), 1u);
  EXPECT_EQ(t.find(&b), nullptr);
  t.disestablish(*t.find(&c));
  EXPECT_EQ(t.established(), 0u);
  EXPECT_EQ(t.established(AuthKind::x509), 0u);
}

TEST(SessionTable, ReusedSessionPointerStartsFresh) {
  SessionTable t;
  int s = 0;
  SessionEntry& first = t.add(&s, "a");
  first.peer.identity = "old";
  t.establish(first);
  SessionEntry& again = t.add(&s, "b");
  EXPECT_FALSE(again.established);
  EXPECT_EQ(t.established(), 0u);
  EXPECT_TRUE(again.peer.identity.empty());
  EXPECT_EQ(again.peer.address, "b");
}

TEST(SessionTable, ReusedSessionPointerForgetsTheOldSessionsAnswers) {
  SessionTable t;
  int s = 0;
  const auto now = RecentResponses::Clock::now();
  t.add(&s, "a").recent.remember(7, true, "tok", Response{Code::changed, std::nullopt, std::nullopt, "on", {}, std::nullopt}, now);
  EXPECT_EQ(t.add(&s, "a").recent.find(7, true, "tok", now), nullptr);
}

Response answer(Code code, std::string payload) {
  return Response{code, content_format::text_plain, std::nullopt, std::move(payload), {}, std::nullopt};
}

TEST(RecentResponses, ACopyOfTheSameMessageGetsTheFirstAnswer) {
  RecentResponses r;
  const auto t0 = RecentResponses::Clock::now();
  EXPECT_EQ(r.find(0x1234, true, "ab", t0), nullptr);
  EXPECT_EQ(r.bytes(), 0u);
  ASSERT_TRUE(r.remember(0x1234, true, "ab", answer(Code::changed, "toggled"), t0));
  const Response* again = r.find(0x1234, true, "ab", t0 + std::chrono::seconds(2));
  ASSERT_NE(again, nullptr);
  EXPECT_EQ(again->code, Code::changed);
  EXPECT_EQ(again->payload, "toggled");
  EXPECT_EQ(again->content_format, content_format::text_plain);
  // Another message: Message ID, token or type differ.
  EXPECT_EQ(r.find(0x1235, true, "ab", t0), nullptr);
  EXPECT_EQ(r.find(0x1234, true, "ac", t0), nullptr);
  EXPECT_EQ(r.find(0x1234, false, "ab", t0), nullptr);
  EXPECT_GT(r.bytes(), 0u);
}

TEST(RecentResponses, AnswersExpireAfterExchangeLifetimeOrNonLifetime) {
  RecentResponses r;
  const auto t0 = RecentResponses::Clock::now();
  ASSERT_TRUE(r.remember(1, true, "c", answer(Code::changed, ""), t0));
  ASSERT_TRUE(r.remember(2, false, "n", answer(Code::changed, ""), t0));
  EXPECT_NE(r.find(2, false, "n", t0 + std::chrono::seconds(144)), nullptr);
  EXPECT_EQ(r.find(2, false, "n", t0 + std::chrono::seconds(145)), nullptr);  // NON_LIFETIME
  EXPECT_NE(r.find(1, true, "c", t0 + std::chrono::seconds(246)), nullptr);
  EXPECT_EQ(r.find(1, true, "c", t0 + std::chrono::seconds(247)), nullptr);  // EXCHANGE_LIFETIME
  EXPECT_EQ(r.size(), 0u);
  EXPECT_EQ(r.bytes(), 0u);  // nothing left: the buffer is given back
}

TEST(RecentResponses, KeepsAtMostMaxEntriesAndMaxBytesOldestFirst) {
  RecentResponses r;
  const auto t0 = RecentResponses::Clock::now();
  for (std::uint16_t mid = 1; mid <= RecentResponses::kMaxEntries + 1; ++mid) {
    ASSERT_TRUE(r.remember(mid, true, "t", answer(Code::content, "x"), t0 + std::chrono::seconds(mid)));
  }
  EXPECT_EQ(r.size(), RecentResponses::kMaxEntries);
  EXPECT_EQ(r.find(1, true, "t", t0 + std::chrono::seconds(10)), nullptr);  // the oldest went
  EXPECT_NE(r.find(2, true, "t", t0 + std::chrono::seconds(10)), nullptr);
  EXPECT_LE(r.bytes(), RecentResponses::kMaxBytes);
  // A large answer makes room by evicting the oldest until it fits.
  ASSERT_TRUE(r.remember(100, true, "t", answer(Code::content, std::string(2500, 'y')), t0 + std::chrono::seconds(11)));
  ASSERT_TRUE(r.remember(101, true, "t", answer(Code::content, std::string(2000, 'z')), t0 + std::chrono::seconds(12)));
  EXPECT_EQ(r.find(100, true, "t", t0 + std::chrono::seconds(12)), nullptr);
  ASSERT_NE(r.find(101, true, "t", t0 + std::chrono::seconds(12)), nullptr);
  EXPECT_LE(r.bytes(), RecentResponses::kMaxBytes);
  // One larger than the whole budget is not kept, and nothing stale stands for that message.
  ASSERT_TRUE(r.remember(200, true, "t", answer(Code::content, "small"), t0 + std::chrono::seconds(13)));
  EXPECT_FALSE(r.remember(200, true, "t", answer(Code::content, std::string(RecentResponses::kMaxBytes, 'w')),
                          t0 + std::chrono::seconds(14)));
  EXPECT_EQ(r.find(200, true, "t", t0 + std::chrono::seconds(14)), nullptr);
  EXPECT_NE(r.find(101, true, "t", t0 + std::chrono::seconds(14)), nullptr);
  r.clear();
  EXPECT_EQ(r.bytes(), 0u);
}

TEST(RecentResponses, AllSessionsTogetherStayWithinTheirBudget) {
  // Three sessions on a budget that holds about two sessions' worth of answers.
  const auto t0 = RecentResponses::Clock::now();
  RecentResponses probe;
  ASSERT_TRUE(probe.remember(1, true, "t", answer(Code::changed, std::string(600, 'p')), t0));
  const std::size_t one = probe.bytes();
  RecentResponsesBudget budget(2 * one + one / 2);
  SessionTable table(&budget);
  int a = 0, b = 0, c = 0;
  EXPECT_TRUE(table.add(&a, "a").recent.remember(1, true, "t", answer(Code::changed, std::string(600, 'a')), t0));
  EXPECT_TRUE(table.add(&b, "b").recent.remember(1, true, "t", answer(Code::changed, std::string(600, 'b')), t0));
  EXPECT_EQ(budget.used(), 2 * one);
  // The third does not fit: not kept, counted, and that session finds nothing for it.
  auto& third = table.add(&c, "c").recent;
  EXPECT_FALSE(third.remember(1, true, "t", answer(Code::changed, std::string(600, 'c')), t0));
  EXPECT_EQ(third.find(1, true, "t", t0), nullptr);
  EXPECT_EQ(budget.refused(), 1u);
  EXPECT_EQ(budget.used(), 2 * one);
  EXPECT_LE(budget.used(), budget.limit());
  // What a session gives back (it ended, its answers expired) is there for the others.
  table.remove(&a);
  EXPECT_EQ(budget.used(), one);
  EXPECT_TRUE(third.remember(1, true, "t", answer(Code::changed, std::string(600, 'c')), t0));
  EXPECT_NE(third.find(1, true, "t", t0), nullptr);
  EXPECT_EQ(budget.used(), 2 * one);
  EXPECT_EQ(third.find(1, true, "t", t0 + RecentResponses::kExchangeLifetime), nullptr);
  EXPECT_EQ(budget.used(), one);
  // A session pointer reused by libcoap starts empty, and its old answers are given back.
  table.add(&b, "b2");
  EXPECT_EQ(budget.used(), 0u);
}

TEST(RecentResponses, TheBudgetIsChargedWithExactlyWhatIsKept) {
  // Whatever the sequence, used() is the sum of bytes() of the instances charged to it.
  RecentResponsesBudget budget;
  const auto t0 = RecentResponses::Clock::now();
  {
    RecentResponses x, y;
    x.setBudget(&budget);
    y.setBudget(&budget);
    for (std::uint16_t mid = 1; mid <= 20; ++mid) {
      const auto at = t0 + std::chrono::seconds(mid * 20);
      (void)x.remember(mid, mid % 2 == 0, "tok" + std::to_string(mid), answer(Code::content, std::string(mid * 150, 'x')), at);
      (void)y.remember(static_cast<std::uint16_t>(mid % 3), true, "t", answer(Code::changed, std::string(mid * 40, 'y')), at);
      (void)x.find(static_cast<std::uint16_t>(mid - 1), true, "tok", at);
      ASSERT_EQ(budget.used(), x.bytes() + y.bytes()) << "after message " << mid;
    }
    RecentResponses z(std::move(x));  // moved: still charged once
    EXPECT_EQ(budget.used(), z.bytes() + y.bytes());
    EXPECT_EQ(x.bytes(), 0u);
    y = std::move(z);
    EXPECT_EQ(budget.used(), y.bytes());
  }
  EXPECT_EQ(budget.used(), 0u);  // every instance gave back what it held
  EXPECT_EQ(budget.refused(), 0u);
}

TEST(LogPrintable, EscapesControlBytesAndCutsLongText) {
  EXPECT_EQ(log::printable("dev-1"), "dev-1");
  EXPECT_EQ(log::printable(std::string("a\nb\x01\\", 5)), "a\\x0ab\\x01\\x5c");
  EXPECT_EQ(log::printable(std::string(200, 'x'), 10), std::string(10, 'x') + "...");
}

}  // namespace
}  // namespace coap_edge::coap
