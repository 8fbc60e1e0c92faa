// The AvahiPoll adapter over the agent's EventLoop, driven through Avahi's own vtable the way
// avahi-client's D-Bus glue drives it: watches on readable/writable fds, one-shot timeouts at
// absolute times, and callbacks that update or free watches and timeouts while the loop runs.

#include "daemon/avahi_poll.h"

#include <gtest/gtest.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <chrono>
#include <functional>
#include <string>
#include <vector>

namespace coap_edge::daemon {
namespace {

using namespace std::chrono_literals;

// Absolute time `delay` from now on Avahi's clock, as avahi_elapse_time() computes it.
timeval avahiIn(std::chrono::milliseconds delay) {
  timeval tv{};
  gettimeofday(&tv, nullptr);
  const long long us = static_cast<long long>(tv.tv_usec) + delay.count() * 1000;
  tv.tv_sec += static_cast<time_t>(us / 1000000);
  tv.tv_usec = static_cast<suseconds_t>(us % 1000000);
  if (tv.tv_usec < 0) {
    tv.tv_sec -= 1;
    tv.tv_usec += 1000000;
  }
  return tv;
}

void stopAfter(EventLoop& loop, std::chrono::milliseconds limit) {
  loop.addTimeout(std::chrono::steady_clock::now() + limit, [&loop] { loop.stop(); });
}

// Every C callback below gets one of these as userdata and forwards to a lambda.
struct WatchProbe {
  std::function<void(AvahiWatch*, AvahiWatchEvent)> on_event;
  static void callback(AvahiWatch* w, int, AvahiWatchEvent event, void* userdata) {
    static_cast<WatchProbe*>(userdata)->on_event(w, event);
  }
};
struct TimeoutProbe {
  std::function<void(AvahiTimeout*)> on_timeout;
  static void callback(AvahiTimeout* t, void* userdata) { static_cast<TimeoutProbe*>(userdata)->on_timeout(t); }
};

class AvahiPollTest : public ::testing::Test {
 protected:
  void SetUp() override { ASSERT_EQ(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv_), 0); }
  void TearDown() override {
    for (int fd : sv_)
      if (fd >= 0) close(fd);
  }
  void drain() {
    char buf[64];
    while (read(sv_[0], buf, sizeof(buf)) > 0) {
    }
  }

  EventLoop loop_;
  AvahiPollAdapter adapter_{loop_};
  const AvahiPoll* api_ = adapter_.poll();
  int sv_[2] = {-1, -1};
};

TEST_F(AvahiPollTest, WatchFiresWhenReadableAndReportsTheEvent) {
  std::vector<int> events;
  std::vector<int> got_events;
  WatchProbe probe{[&](AvahiWatch* w, AvahiWatchEvent ev) {
    events.push_back(ev);
    got_events.push_back(api_->watch_get_events(w));
    drain();
    loop_.stop();
  }};
  AvahiWatch* w = api_->watch_new(api_, sv_[0], AVAHI_WATCH_IN, &WatchProbe::callback, &probe);
  ASSERT_NE(w, nullptr);
  // Nothing to read yet: the watch stays quiet.
  stopAfter(loop_, 50ms);
  loop_.run();
  EXPECT_TRUE(events.empty());

  ASSERT_EQ(write(sv_[1], "x", 1), 1);
  stopAfter(loop_, 2s);
  loop_.run();
  EXPECT_EQ(events, std::vector<int>{AVAHI_WATCH_IN});
  EXPECT_EQ(got_events, std::vector<int>{AVAHI_WATCH_IN});
  api_->watch_free(w);
  EXPECT_EQ(adapter_.watchCount(), 0U);
}

TEST_F(AvahiPollTest, ReadAndWriteWatchesOnOneFdAreDispatchedSeparately) {
  // libdbus keeps a read and a write watch on its socket; each must see only its own events.
  std::vector<std::string> calls;
  AvahiWatch* writer = nullptr;
  WatchProbe read_probe{[&](AvahiWatch*, AvahiWatchEvent ev) {
    calls.push_back(ev == AVAHI_WATCH_IN ? "in" : "read-other");
    drain();
    loop_.stop();
  }};
  WatchProbe write_probe{[&](AvahiWatch* w, AvahiWatchEvent ev) {
    calls.push_back(ev == AVAHI_WATCH_OUT ? "out" : "write-other");
    api_->watch_update(w, AvahiWatchEvent{});  // nothing more to write
    ASSERT_EQ(write(sv_[1], "x", 1), 1);
  }};
  AvahiWatch* reader = api_->watch_new(api_, sv_[0], AVAHI_WATCH_IN, &WatchProbe::callback, &read_probe);
  writer = api_->watch_new(api_, sv_[0], AVAHI_WATCH_OUT, &WatchProbe::callback, &write_probe);
  ASSERT_NE(reader, nullptr);
  ASSERT_NE(writer, nullptr);
  EXPECT_EQ(adapter_.watchCount(), 2U);
  stopAfter(loop_, 2s);
  loop_.run();
  EXPECT_EQ(calls, (std::vector<std::string>{"out", "in"}));
  EXPECT_EQ(api_->watch_get_events(reader), 0);  // only meaningful inside the callback
  api_->watch_free(reader);
  api_->watch_free(writer);
  EXPECT_EQ(adapter_.watchCount(), 0U);
}

TEST_F(AvahiPollTest, CallbackMayFreeItselfAndAnotherWatchOfTheSameFd) {
  ASSERT_EQ(write(sv_[1], "x", 1), 1);
  int calls = 0;
  AvahiWatch* first = nullptr;
  AvahiWatch* second = nullptr;
  // Whichever runs first frees both; the other must not run, in this wakeup or later.
  WatchProbe probe{[&](AvahiWatch*, AvahiWatchEvent) {
    ++calls;
    api_->watch_free(first);
    api_->watch_free(second);
  }};
  first = api_->watch_new(api_, sv_[0], AVAHI_WATCH_IN, &WatchProbe::callback, &probe);
  second = api_->watch_new(api_, sv_[0], AVAHI_WATCH_IN, &WatchProbe::callback, &probe);
  stopAfter(loop_, 100ms);
  loop_.run();
  EXPECT_EQ(calls, 1);
  EXPECT_EQ(adapter_.watchCount(), 0U);
}

TEST_F(AvahiPollTest, CallbackMayReplaceItsWatchWithANewOne) {
  // What libdbus does when it toggles a watch: free it and create another on the same fd.
  ASSERT_EQ(write(sv_[1], "x", 1), 1);
  int old_calls = 0, new_calls = 0;
  WatchProbe fresh{[&](AvahiWatch* w, AvahiWatchEvent) {
    ++new_calls;
    drain();
    api_->watch_free(w);
    loop_.stop();
  }};
  WatchProbe old{[&](AvahiWatch* w, AvahiWatchEvent) {
    ++old_calls;
    api_->watch_free(w);
    ASSERT_NE(api_->watch_new(api_, sv_[0], AVAHI_WATCH_IN, &WatchProbe::callback, &fresh), nullptr);
  }};
  api_->watch_new(api_, sv_[0], AVAHI_WATCH_IN, &WatchProbe::callback, &old);
  stopAfter(loop_, 2s);
  loop_.run();
  EXPECT_EQ(old_calls, 1);
  EXPECT_EQ(new_calls, 1);
  EXPECT_EQ(adapter_.watchCount(), 0U);
}

TEST_F(AvahiPollTest, WatchUpdateToNoEventsSilencesIt) {
  ASSERT_EQ(write(sv_[1], "x", 1), 1);
  int calls = 0;
  WatchProbe probe{[&](AvahiWatch* w, AvahiWatchEvent) {
    ++calls;
    api_->watch_update(w, AvahiWatchEvent{});  // still readable, but no longer of interest
  }};
  AvahiWatch* w = api_->watch_new(api_, sv_[0], AVAHI_WATCH_IN, &WatchProbe::callback, &probe);
  stopAfter(loop_, 100ms);
  loop_.run();
  EXPECT_EQ(calls, 1);
  api_->watch_update(w, AVAHI_WATCH_IN);
  stopAfter(loop_, 2s);
  probe.on_event = [&](AvahiWatch*, AvahiWatchEvent) {
    ++calls;
    loop_.stop();
  };
  loop_.run();
  EXPECT_EQ(calls, 2);
  api_->watch_free(w);
}

TEST_F(AvahiPollTest, HangupIsReportedEvenWithoutInterest) {
  std::vector<int> events;
  WatchProbe probe{[&](AvahiWatch* w, AvahiWatchEvent ev) {
    events.push_back(ev);
    api_->watch_free(w);
    loop_.stop();
  }};
  api_->watch_new(api_, sv_[0], AvahiWatchEvent{}, &WatchProbe::callback, &probe);
  close(sv_[1]);
  sv_[1] = -1;
  stopAfter(loop_, 2s);
  loop_.run();
  ASSERT_EQ(events.size(), 1U);
  EXPECT_NE(events[0] & AVAHI_WATCH_HUP, 0);
  EXPECT_EQ(events[0] & AVAHI_WATCH_IN, 0);
}

TEST_F(AvahiPollTest, TimeoutsFireOnceInOrderOfTheirAbsoluteTimes) {
  std::vector<std::string> fired;
  TimeoutProbe early{[&](AvahiTimeout*) { fired.push_back("early"); }};
  TimeoutProbe late{[&](AvahiTimeout*) { fired.push_back("late"); }};
  TimeoutProbe past{[&](AvahiTimeout*) { fired.push_back("past"); }};
  TimeoutProbe off{[&](AvahiTimeout*) { fired.push_back("disabled"); }};
  const timeval t_late = avahiIn(60ms), t_early = avahiIn(10ms), t_past = avahiIn(-1000ms);
  AvahiTimeout* a = api_->timeout_new(api_, &t_late, &TimeoutProbe::callback, &late);
  AvahiTimeout* b = api_->timeout_new(api_, &t_early, &TimeoutProbe::callback, &early);
  AvahiTimeout* c = api_->timeout_new(api_, &t_past, &TimeoutProbe::callback, &past);
  AvahiTimeout* d = api_->timeout_new(api_, nullptr, &TimeoutProbe::callback, &off);
  for (auto* t : {a, b, c, d}) ASSERT_NE(t, nullptr);
  EXPECT_EQ(adapter_.timeoutCount(), 4U);
  stopAfter(loop_, 300ms);
  loop_.run();
  // Expired timeouts stay disabled until updated: each fired exactly once.
  EXPECT_EQ(fired, (std::vector<std::string>{"past", "early", "late"}));
  for (auto* t : {a, b, c, d}) api_->timeout_free(t);
  EXPECT_EQ(adapter_.timeoutCount(), 0U);
}

TEST_F(AvahiPollTest, TimeoutUpdateFromItsCallbackRearmsAndFreeStopsIt) {
  int ticks = 0;
  TimeoutProbe probe{[&](AvahiTimeout* t) {
    if (++ticks < 3) {
      const timeval next = avahiIn(5ms);
      api_->timeout_update(t, &next);
    } else {
      api_->timeout_free(t);  // freeing itself from its own callback is allowed
    }
  }};
  const timeval first = avahiIn(5ms);
  ASSERT_NE(api_->timeout_new(api_, &first, &TimeoutProbe::callback, &probe), nullptr);
  stopAfter(loop_, 300ms);
  loop_.run();
  EXPECT_EQ(ticks, 3);
  EXPECT_EQ(adapter_.timeoutCount(), 0U);
}

TEST_F(AvahiPollTest, ACallbackMayDisableOrFreeAnotherDueTimeout) {
  int victims = 0;
  TimeoutProbe victim{[&](AvahiTimeout*) { ++victims; }};
  const timeval soon = avahiIn(30ms);
  AvahiTimeout* disabled = api_->timeout_new(api_, &soon, &TimeoutProbe::callback, &victim);
  AvahiTimeout* freed = api_->timeout_new(api_, &soon, &TimeoutProbe::callback, &victim);
  int killer_calls = 0;
  TimeoutProbe killer{[&](AvahiTimeout* self) {
    ++killer_calls;
    api_->timeout_update(disabled, nullptr);
    api_->timeout_free(freed);
    api_->timeout_free(self);
  }};
  const timeval now = avahiIn(0ms);
  ASSERT_NE(api_->timeout_new(api_, &now, &TimeoutProbe::callback, &killer), nullptr);
  stopAfter(loop_, 150ms);
  loop_.run();
  EXPECT_EQ(killer_calls, 1);
  EXPECT_EQ(victims, 0);
  EXPECT_EQ(adapter_.timeoutCount(), 1U);
  api_->timeout_free(disabled);
}

TEST(AvahiPollLifetime, LeftoversAreReleasedWithTheAdapter) {
  // avahi_client_free frees everything; if something is left anyway, the adapter releases it
  // (ASan's leak check sees the difference) and the loop no longer calls into it.
  int sv[2];
  ASSERT_EQ(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
  EventLoop loop;
  int calls = 0;
  WatchProbe probe{[&](AvahiWatch*, AvahiWatchEvent) { ++calls; }};
  TimeoutProbe tprobe{[&](AvahiTimeout*) { ++calls; }};
  {
    AvahiPollAdapter adapter(loop);
    const timeval soon = avahiIn(1ms);
    ASSERT_NE(adapter.poll()->watch_new(adapter.poll(), sv[0], AVAHI_WATCH_OUT, &WatchProbe::callback, &probe),
              nullptr);
    ASSERT_NE(adapter.poll()->timeout_new(adapter.poll(), &soon, &TimeoutProbe::callback, &tprobe), nullptr);
  }
  stopAfter(loop, 50ms);
  loop.run();
  EXPECT_EQ(calls, 0);
  close(sv[0]);
  close(sv[1]);
}

}  // namespace
}  // namespace coap_edge::daemon
