// The daemon's own logic: what /status tells an operator, and the event loop's timers and
// watches (callbacks that remove watches while the loop iterates).

#include "daemon/access_filter.h"
#include "daemon/event_loop.h"
#include "daemon/status_resource.h"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>
#include <unistd.h>

namespace coap_edge::daemon {
namespace {

using namespace std::chrono_literals;

TEST(Status, JsonCarriesVersionsUptimeAndSessionCounts) {
  StatusSnapshot s;
  s.agent_name = "gw-7";
  s.uptime = 42s;
  s.sessions.established = 3;
  s.sessions.psk = 2;
  s.sessions.x509 = 1;
  const auto doc = nlohmann::json::parse(statusJson(s));
  EXPECT_EQ(doc["agent"], "gw-7");
  EXPECT_EQ(doc["uptime_s"], 42);
  EXPECT_EQ(doc["sessions"]["psk"], 2);
  EXPECT_EQ(doc["sessions"]["x509"], 1);
  EXPECT_EQ(doc["version"], COAP_EDGE_VERSION);
  EXPECT_EQ(doc["libcoap"], "libcoap 4.3.5");
  EXPECT_EQ(doc["tls_library"], "Mbed TLS 3.6.7");
}

TEST(Status, JsonByDefaultAndOnAcceptJsonOtherwiseNotAcceptable) {
  StatusSnapshot s;
  coap::Request req;
  auto res = statusResponse(req, s);
  EXPECT_EQ(res.code, coap::Code::content);
  EXPECT_EQ(res.content_format, coap::content_format::json);
  req.accept = coap::content_format::json;
  EXPECT_EQ(statusResponse(req, s).code, coap::Code::content);
  req.accept = coap::content_format::link_format;
  EXPECT_EQ(statusResponse(req, s).code, coap::Code::not_acceptable);
}

TEST(EventLoop, TimersFireAndStopEndsTheLoop) {
  EventLoop loop;
  int ticks = 0;
  loop.addTimer(10ms, [&] {
    if (++ticks == 3) loop.stop();
  });
  loop.run();
  EXPECT_EQ(ticks, 3);
}

TEST(EventLoop, CallbackMayUnwatchAnotherReadyFd) {
  int a[2], b[2];
  ASSERT_EQ(pipe(a), 0);
  ASSERT_EQ(pipe(b), 0);
  ASSERT_EQ(write(a[1], "x", 1), 1);
  ASSERT_EQ(write(b[1], "x", 1), 1);
  EventLoop loop;
  int calls = 0;
  // Whichever runs first removes the other; the second must not run afterwards.
  loop.watch(a[0], [&] {
    ++calls;
    loop.unwatch(b[0]);
    loop.stop();
  });
  loop.watch(b[0], [&] {
    ++calls;
    loop.unwatch(a[0]);
    loop.stop();
  });
  loop.run();
  EXPECT_EQ(calls, 1);
  for (int fd : {a[0], a[1], b[0], b[1]}) close(fd);
}

TEST(EventLoop, TimeoutProviderBoundsTheWaitAndAfterWakeRuns) {
  EventLoop loop;
  int wakes = 0;
  loop.setTimeoutProvider([] { return std::optional<std::chrono::milliseconds>(5ms); });
  loop.setAfterWake([&] {
    if (++wakes == 4) loop.stop();
  });
  loop.run();
  EXPECT_EQ(wakes, 4);
}

TEST(Status, JsonCarriesAccessControlCounters) {
  StatusSnapshot s;
  s.acl.allowed = 5;
  s.acl.forbidden = 2;
  s.acl.unauthenticated = 1;
  s.acl_rules = 3;
  const auto doc = nlohmann::json::parse(statusJson(s));
  EXPECT_EQ(doc["acl"]["allowed"], 5);
  EXPECT_EQ(doc["acl"]["forbidden"], 2);
  EXPECT_EQ(doc["acl"]["unauthenticated"], 1);
  EXPECT_EQ(doc["acl"]["rules"], 3);
}

coap::PeerIdentity peer(coap::AuthKind kind, std::string identity) {
  coap::PeerIdentity p;
  p.kind = kind;
  p.identity = std::move(identity);
  p.address = "127.0.0.1:5683";
  return p;
}

policy::Policy statusForEveryone() {
  policy::Entry entry;
  entry.label = "test";
  entry.who.push_back(*policy::compileIdentityPattern("*").value);
  entry.allow.push_back(*policy::compileRule("GET /status").value);
  return policy::Policy({entry});
}

TEST(AccessFilter, AnswersRefusalsAndCountsEveryDecision) {
  AccessFilter filter(statusForEveryone());
  const coap::PeerIdentity psk = peer(coap::AuthKind::psk, "dev-1");
  const coap::PeerIdentity plain = peer(coap::AuthKind::none, "");
  coap::Request req;
  req.path = "status";
  req.peer = &psk;
  EXPECT_FALSE(filter(req).has_value());
  req.method = coap::Method::put;
  ASSERT_TRUE(filter(req).has_value());
  EXPECT_EQ(filter(req)->code, coap::Code::forbidden);
  req.peer = &plain;
  req.method = coap::Method::get;
  ASSERT_TRUE(filter(req).has_value());
  EXPECT_EQ(filter(req)->code, coap::Code::unauthorized);
  EXPECT_TRUE(filter(req)->payload.empty());  // nothing about the resource leaks
  req.path = ".well-known/core";
  EXPECT_FALSE(filter(req).has_value());
  EXPECT_EQ(filter.counts().allowed, 2U);
  EXPECT_EQ(filter.counts().forbidden, 2U);
  EXPECT_EQ(filter.counts().unauthenticated, 3U);
}

TEST(AccessFilter, NewPolicyAppliesAtOnceAndCountersContinue) {
  AccessFilter filter;  // built-in rules only
  const coap::PeerIdentity psk = peer(coap::AuthKind::x509, "dev-1");
  coap::Request req;
  req.path = "status";
  req.peer = &psk;
  EXPECT_EQ(filter(req)->code, coap::Code::forbidden);
  filter.setPolicy(statusForEveryone());
  EXPECT_FALSE(filter(req).has_value());
  EXPECT_EQ(filter.counts().forbidden, 1U);
  EXPECT_EQ(filter.counts().allowed, 1U);
  EXPECT_EQ(filter.policy().ruleCount(), 1U);
}

TEST(AccessFilter, MapsEveryMethodAndIdentity) {
  EXPECT_EQ(policyMethod(coap::Method::get), policy::Method::get);
  EXPECT_EQ(policyMethod(coap::Method::post), policy::Method::post);
  EXPECT_EQ(policyMethod(coap::Method::put), policy::Method::put);
  EXPECT_EQ(policyMethod(coap::Method::del), policy::Method::del);
  EXPECT_EQ(policyMethod(coap::Method::fetch), policy::Method::fetch);
  EXPECT_EQ(policyMethod(coap::Method::patch), policy::Method::patch);
  EXPECT_EQ(policyMethod(coap::Method::ipatch), policy::Method::ipatch);
  coap::Request req;
  EXPECT_EQ(requestIdentity(req), "");
  // A plain-coap peer has no identity even if a name were set.
  const coap::PeerIdentity odd = peer(coap::AuthKind::none, "dev-1");
  req.peer = &odd;
  EXPECT_EQ(requestIdentity(req), "");
}

}  // namespace
}  // namespace coap_edge::daemon
