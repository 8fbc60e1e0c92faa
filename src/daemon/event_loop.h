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
  using TimeoutProvider = std::function<std::optional<std::chrono::milliseconds>()>;

  EventLoop();
  ~EventLoop();
  EventLoop(const EventLoop&) = delete;
  EventLoop& operator=(const EventLoop&) = delete;

  /// Calls `on_ready` whenever `fd` is readable (or writable, if asked). The fd stays owned by
  /// the caller. Watching an fd again replaces its callback and interest.
  void watch(int fd, FdCallback on_ready, bool writable = false);
  void unwatch(int fd);
  /// A periodic timer (timerfd, CLOCK_MONOTONIC); returns its id for cancelTimer().
  int addTimer(std::chrono::milliseconds period, FdCallback on_expiry);
  void cancelTimer(int id);
  /// Asked before each wait: the longest the loop may sleep (libcoap's retransmission timers).
  void setTimeoutProvider(TimeoutProvider provider) { timeout_provider_ = std::move(provider); }
  /// Called after every wakeup, ready fds or not (libcoap's timers run there).
  void setAfterWake(FdCallback fn) { after_wake_ = std::move(fn); }

  /// Runs until stop(). Returns normally; errors from epoll itself throw std::system_error.
  void run();
  void stop() { running_ = false; }

 private:
  int epoll_fd_ = -1;
  bool running_ = false;
  std::unordered_map<int, std::shared_ptr<FdCallback>> watches_;
  std::unordered_map<int, int> timers_;  // timer id -> timerfd (id == fd)
  TimeoutProvider timeout_provider_;
  FdCallback after_wake_;
};

}  // namespace coap_edge::daemon
