#pragma once
// The agent's single event loop: one epoll set holding libcoap's fd, a signalfd and timerfds.
// Nothing registered here may block. Callbacks may add or remove watches; the loop copes.

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <unordered_map>

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
  /// Called after every wakeup, ready fds or not (libcoap's timers run there), except one whose
  /// last callback was the watch of `done_by_fd` (when that callback does the same work).
  void setAfterWake(FdCallback fn, int done_by_fd = -1) {
    after_wake_ = std::move(fn);
    after_wake_done_by_ = done_by_fd;
  }

  /// Runs until stop(). Returns normally; errors from epoll itself throw std::system_error.
  void run();
  void stop() { running_ = false; }

 private:
  int epoll_fd_ = -1;
  bool running_ = false;

  int addTimerFd(FdCallback on_expiry);
  std::unordered_map<int, std::shared_ptr<EventCallback>> watches_;
  std::unordered_map<int, int> timers_;  // timer id -> timerfd (id == fd)
  TimeoutProvider timeout_provider_;
  FdCallback after_wake_;
  int after_wake_done_by_ = -1;
};

}  // namespace coap_edge::daemon
