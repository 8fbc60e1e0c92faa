#pragma once
// The agent's single event loop: one epoll set holding a signalfd, timerfds and Avahi's fds,
// nested inside libcoap's epoll set, on which the loop waits (nestIn()). Nothing registered
// here may block. Callbacks may add or remove watches; the loop copes.

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <unordered_map>

struct epoll_event;

namespace coap_edge::daemon {

class EventLoop {
 public:
  using FdCallback = std::function<void()>;
  /// Event bits of watchEvents(): kReadable/kWritable as interest; all four as what happened.
  static constexpr std::uint32_t kReadable = 1U << 0;
  static constexpr std::uint32_t kWritable = 1U << 1;
  static constexpr std::uint32_t kError = 1U << 2;
  static constexpr std::uint32_t kHangup = 1U << 3;
  using EventCallback = std::function<void(std::uint32_t events)>;
  using TimePoint = std::chrono::steady_clock::time_point;
  using TimeoutProvider = std::function<std::optional<std::chrono::milliseconds>()>;

  EventLoop();
  ~EventLoop();
  EventLoop(const EventLoop&) = delete;
  EventLoop& operator=(const EventLoop&) = delete;

  /// Calls `on_ready` whenever `fd` is readable (or writable, if asked). The fd stays owned by
  /// the caller. Watching an fd again replaces its callback and interest.
  void watch(int fd, FdCallback on_ready, bool writable = false);
  /// Like watch(), for callers that need to wait for reading and writing at once and to learn
  /// what happened (an AvahiPoll adapter): `interest` is any of kReadable|kWritable, or 0 for
  /// errors and hangups only, which are always reported.
  void watchEvents(int fd, std::uint32_t interest, EventCallback on_events);
  void unwatch(int fd);
  /// A periodic timer (timerfd, CLOCK_MONOTONIC); returns its id for cancelTimer().
  int addTimer(std::chrono::milliseconds period, FdCallback on_expiry);
  /// A one-shot timer at an absolute steady_clock (CLOCK_MONOTONIC) time; a time already past
  /// fires at the next wait. nullopt creates it disarmed. Returns its id for rearmTimeout() and
  /// cancelTimer(). It fires at most once per arming.
  int addTimeout(std::optional<TimePoint> when, FdCallback on_expiry);
  /// Arms a timeout from addTimeout() again at `when`, or disarms it (nullopt); an expiry not
  /// yet dispatched is dropped either way.
  void rearmTimeout(int id, std::optional<TimePoint> when);
  /// Removes a timer or a timeout.
  void cancelTimer(int id);
  /// Asked before each wait: the longest the loop may sleep (libcoap's retransmission timers).
  void setTimeoutProvider(TimeoutProvider provider) { timeout_provider_ = std::move(provider); }
  /// The events of the outer set itself from one wakeup (never the loop's own); n may be 0.
  using OuterWake = std::function<void(epoll_event* events, int n)>;
  /// Waits on `outer_epfd`, another epoll set (libcoap's), with this loop's own set nested in
  /// it, instead of the other way round: under load nearly every wakeup is the outer set's,
  /// and it then costs one epoll_wait instead of two (ours, then the outer set's own). After
  /// every wakeup, ready fds or not, `on_wake` gets the outer set's events first (the owner
  /// dispatches them at once, before a callback here can free what they point to; its timers
  /// run there too), then the loop's own ready fds get their callbacks, and if any ran,
  /// `on_wake` is called once more with none (it handles what they started). The outer set
  /// must outlive the loop or be closed first; events registered in it must not carry `this`.
  void nestIn(int outer_epfd, OuterWake on_wake);

  /// Runs until stop(). Returns normally; errors from epoll itself throw std::system_error.
  void run();
  void stop() { running_ = false; }

 private:
  int epoll_fd_ = -1;
  bool running_ = false;

  int addTimerFd(FdCallback on_expiry);
  std::unordered_map<int, std::shared_ptr<EventCallback>> watches_;
  std::unordered_map<int, int> timers_;  // timer id -> timerfd (id == fd)
  /// Runs the callbacks of the loop's own ready fds (wait 0 ms); true if any ran.
  bool dispatchOwn(int timeout_ms);
  TimeoutProvider timeout_provider_;
  int outer_epfd_ = -1;
  OuterWake on_outer_wake_;
};

}  // namespace coap_edge::daemon
