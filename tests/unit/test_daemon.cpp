// The daemon's own logic: what /status tells an operator, and the event loop's timers and
// watches (callbacks that remove watches while the loop iterates, the loop nested in another
// epoll set as the agent nests it in libcoap's).

#include "daemon/access_filter.h"
#include "daemon/event_loop.h"
#include "daemon/status_resource.h"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <string>
#include <vector>

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

// Stops the loop after `limit` whatever happens, so no test below can hang.
void stopAfter(EventLoop& loop, std::chrono::milliseconds limit) {
  loop.addTimeout(std::chrono::steady_clock::now() + limit, [&loop] { loop.stop(); });
}

// An epoll set standing in for libcoap's (the agent nests its loop in libcoap's own).
struct OuterSet {
  int fd = epoll_create1(EPOLL_CLOEXEC);
  ~OuterSet() { close(fd); }
  void add(int watched, void* tag) const {
    epoll_event ev{};
    ev.events = EPOLLIN;
    ev.data.ptr = tag;
    ASSERT_EQ(epoll_ctl(fd, EPOLL_CTL_ADD, watched, &ev), 0);
  }
};

TEST(EventLoop, NestedLoopWakesTheOuterOwnerOnEveryTimeoutBoundedWait) {
  OuterSet outer;
  ASSERT_GE(outer.fd, 0);
  EventLoop loop;
  int wakes = 0;
  int events_seen = 0;
  loop.setTimeoutProvider([] { return std::optional<std::chrono::milliseconds>(5ms); });
  loop.nestIn(outer.fd, [&](epoll_event*, int n) {
    events_seen += n;
    if (++wakes == 4) loop.stop();
  });
  loop.run();
  EXPECT_EQ(wakes, 4);
  EXPECT_EQ(events_seen, 0);  // nothing was ready: the owner's timers ran on timeouts alone
}

TEST(EventLoop, NestedLoopHandsOuterEventsFirstThenRunsItsOwnThenWakesTheOwnerAgain) {
  int a[2], b[2];
  ASSERT_EQ(pipe(a), 0);
  ASSERT_EQ(pipe(b), 0);
  OuterSet outer;
  int tag = 0;
  outer.add(a[0], &tag);
  ASSERT_EQ(write(a[1], "x", 1), 1);
  ASSERT_EQ(write(b[1], "x", 1), 1);
  EventLoop loop;
  std::vector<std::string> ran;
  char c = 0;
  loop.watch(b[0], [&] {
    ASSERT_EQ(read(b[0], &c, 1), 1);
    ran.push_back("own b");
  });
  loop.nestIn(outer.fd, [&](epoll_event* events, int n) {
    std::string what = "outer " + std::to_string(n);
    for (int i = 0; i < n; ++i) {
      // Only the outer set's own registrations, never the nested loop's. (epoll_event is
      // packed on x86-64: copy the pointer out instead of binding a reference to it.)
      const void* registered = events[i].data.ptr;
      EXPECT_EQ(registered, &tag);
      ASSERT_EQ(read(a[0], &c, 1), 1);
    }
    ran.push_back(what);
    if (ran.size() >= 3) loop.stop();
  });
  stopAfter(loop, 2s);
  loop.run();
  // One wakeup: the outer event first (the owner may free what it points to), then the loop's
  // callback, then the owner again for what that callback started.
  EXPECT_EQ(ran, (std::vector<std::string>{"outer 1", "own b", "outer 0"}));
  for (int fd : {a[0], a[1], b[0], b[1]}) close(fd);
}

TEST(EventLoop, NestedLoopWithOnlyOuterEventsWakesTheOwnerOncePerWakeup) {
  int a[2];
  ASSERT_EQ(pipe(a), 0);
  OuterSet outer;
  int tag = 0;
  outer.add(a[0], &tag);
  EventLoop loop;
  std::vector<int> wakes;
  char c = 0;
  int written = 0;
  loop.nestIn(outer.fd, [&](epoll_event*, int n) {
    wakes.push_back(n);
    if (n > 0) {
      ASSERT_EQ(read(a[0], &c, 1), 1);
    }
    if (written == 3) {
      loop.stop();
      return;
    }
    ASSERT_EQ(write(a[1], "x", 1), 1);
    ++written;
  });
  loop.setTimeoutProvider([] { return std::optional<std::chrono::milliseconds>(1000ms); });
  stopAfter(loop, 2s);
  ASSERT_EQ(write(a[1], "x", 1), 1);
  loop.run();
  EXPECT_EQ(wakes, (std::vector<int>{1, 1, 1, 1}));
  for (int fd : {a[0], a[1]}) close(fd);
}

TEST(EventLoop, OneShotTimeoutsFireOnceInOrderAndMayBeRearmed) {
  EventLoop loop;
  const auto now = std::chrono::steady_clock::now();
  std::vector<std::string> fired;
  int late = -1, late_calls = 0;
  late = loop.addTimeout(now + 40ms, [&] {
    fired.push_back("late");
    if (++late_calls < 3) loop.rearmTimeout(late, std::chrono::steady_clock::now() + 5ms);
  });
  loop.addTimeout(now + 5ms, [&] { fired.push_back("early"); });
  loop.addTimeout(now - 1s, [&] { fired.push_back("past"); });  // already due: next wait
  loop.addTimeout(std::nullopt, [&] { fired.push_back("disarmed"); });
  stopAfter(loop, 300ms);
  loop.run();
  EXPECT_EQ(fired, (std::vector<std::string>{"past", "early", "late", "late", "late"}));
}

TEST(EventLoop, DisarmingOrCancellingATimeoutFromACallbackPreventsIt) {
  EventLoop loop;
  const auto now = std::chrono::steady_clock::now();
  int a_calls = 0, b_calls = 0;
  const int b = loop.addTimeout(now + 30ms, [&] { ++b_calls; });
  const int c = loop.addTimeout(now + 30ms, [&] { ++b_calls; });
  loop.addTimeout(now + 5ms, [&] {
    ++a_calls;
    loop.rearmTimeout(b, std::nullopt);
    loop.cancelTimer(c);
  });
  stopAfter(loop, 150ms);
  loop.run();
  EXPECT_EQ(a_calls, 1);
  EXPECT_EQ(b_calls, 0);
}

TEST(EventLoop, WatchEventsReportsWhatHappened) {
  int sv[2];
  ASSERT_EQ(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv), 0);
  EventLoop loop;
  std::vector<std::uint32_t> seen;
  // Writable at once; readable only after the peer writes; a hangup once the peer is closed.
  loop.watchEvents(sv[0], EventLoop::kReadable | EventLoop::kWritable, [&](std::uint32_t ev) {
    seen.push_back(ev);
    if (seen.size() == 1) {
      loop.watchEvents(sv[0], EventLoop::kReadable, [&](std::uint32_t ev2) {
        seen.push_back(ev2);
        char buf[8];
        while (read(sv[0], buf, sizeof(buf)) > 0) {
        }
        if ((ev2 & EventLoop::kHangup) != 0) {
          loop.unwatch(sv[0]);
          loop.stop();
        } else {
          close(sv[1]);
          sv[1] = -1;
        }
      });
      ASSERT_EQ(write(sv[1], "x", 1), 1);
    }
  });
  stopAfter(loop, 2s);
  loop.run();
  ASSERT_EQ(seen.size(), 3U);
  EXPECT_EQ(seen[0], EventLoop::kWritable);
  EXPECT_EQ(seen[1], EventLoop::kReadable);
  EXPECT_NE(seen[2] & EventLoop::kHangup, 0U);
  close(sv[0]);
  if (sv[1] >= 0) close(sv[1]);
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
