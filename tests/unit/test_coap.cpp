// The coap part's pure pieces: the request path handlers and the ACL see, the session table the
// request handlers rely on for identities, and log sanitising of identities from the network.

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

TEST(LogPrintable, EscapesControlBytesAndCutsLongText) {
  EXPECT_EQ(log::printable("dev-1"), "dev-1");
  EXPECT_EQ(log::printable(std::string("a\nb\x01\\", 5)), "a\\x0ab\\x01\\x5c");
  EXPECT_EQ(log::printable(std::string(200, 'x'), 10), std::string(10, 'x') + "...");
}

}  // namespace
}  // namespace coap_edge::coap
