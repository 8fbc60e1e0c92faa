// The coap part's pure pieces: the session table the request handlers rely on for identities,
// and log sanitising of identities that arrive from the network.

#include "coap/session_table.h"
#include "common/log.h"

#include <gtest/gtest.h>

namespace coap_edge::coap {
namespace {

TEST(SessionTable, CountsOnlyEstablishedSessionsPerAuthKind) {
  SessionTable t;
  int a = 0, b = 0, c = 0;
  t.add(&a, "127.0.0.1:1000");  // still handshaking
  SessionEntry& psk = t.add(&b, "127.0.0.1:1001");
  psk.established = true;
  psk.peer.kind = AuthKind::psk;
  psk.peer.identity = "dev-1";
  SessionEntry& x = t.add(&c, "127.0.0.1:1002");
  x.established = true;
  x.peer.kind = AuthKind::x509;
  EXPECT_EQ(t.size(), 3u);
  EXPECT_EQ(t.established(), 2u);
  EXPECT_EQ(t.established(AuthKind::psk), 1u);
  EXPECT_EQ(t.established(AuthKind::x509), 1u);
  t.remove(&b);
  EXPECT_EQ(t.established(AuthKind::psk), 0u);
  EXPECT_EQ(t.find(&b), nullptr);
}

TEST(SessionTable, ReusedSessionPointerStartsFresh) {
  SessionTable t;
  int s = 0;
  SessionEntry& first = t.add(&s, "a");
  first.established = true;
  first.peer.identity = "old";
  SessionEntry& again = t.add(&s, "b");
  EXPECT_FALSE(again.established);
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
