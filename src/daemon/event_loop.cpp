#include "daemon/event_loop.h"

#include <sys/epoll.h>
#include <sys/timerfd.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <system_error>

namespace coap_edge::daemon {
namespace {

[[noreturn]] void throwErrno(const char* what) { throw std::system_error(errno, std::generic_category(), what); }

std::uint32_t toEpoll(std::uint32_t interest) {
  std::uint32_t events = 0;
  if ((interest & EventLoop::kReadable) != 0) events |= EPOLLIN;
  if ((interest & EventLoop::kWritable) != 0) events |= EPOLLOUT;
  return events;
}

std::uint32_t fromEpoll(std::uint32_t events) {
  std::uint32_t out = 0;
  if ((events & (EPOLLIN | EPOLLPRI | EPOLLRDHUP)) != 0) out |= EventLoop::kReadable;
  if ((events & EPOLLOUT) != 0) out |= EventLoop::kWritable;
  if ((events & EPOLLERR) != 0) out |= EventLoop::kError;
  if ((events & EPOLLHUP) != 0) out |= EventLoop::kHangup;
  return out;
}

itimerspec oneShotAt(std::optional<EventLoop::TimePoint> when) {
  itimerspec spec{};  // all zero: disarmed
  if (!when) return spec;
  // steady_clock is CLOCK_MONOTONIC on Linux; a zero it_value would disarm instead of firing,
  // so the earliest expressible time is 1 ns.
  const auto ns = std::max<std::int64_t>(
      std::chrono::duration_cast<std::chrono::nanoseconds>(when->time_since_epoch()).count(), 1);
  spec.it_value.tv_sec = static_cast<time_t>(ns / 1000000000);
  spec.it_value.tv_nsec = static_cast<long>(ns % 1000000000);
  return spec;
}

}  // namespace

EventLoop::EventLoop() {
  epoll_fd_ = epoll_create1(EPOLL_CLOEXEC);
  if (epoll_fd_ < 0) throwErrno("epoll_create1");
}

EventLoop::~EventLoop() {
  for (auto& [id, fd] : timers_) close(fd);
  close(epoll_fd_);
}

void EventLoop::watch(int fd, FdCallback on_ready, bool writable) {
  watchEvents(fd, writable ? kWritable : kReadable, [cb = std::move(on_ready)](std::uint32_t) { cb(); });
}

void EventLoop::watchEvents(int fd, std::uint32_t interest, EventCallback on_events) {
  epoll_event ev{};
  ev.events = toEpoll(interest);
  ev.data.fd = fd;
  const bool known = watches_.count(fd) != 0;
  int rc = epoll_ctl(epoll_fd_, known ? EPOLL_CTL_MOD : EPOLL_CTL_ADD, fd, &ev);
  // A watched fd closed before unwatch() left the epoll set on its own; its number may be back.
  if (rc != 0 && known && errno == ENOENT) rc = epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, fd, &ev);
  if (rc != 0) throwErrno("epoll_ctl");
  watches_[fd] = std::make_shared<EventCallback>(std::move(on_events));
}

void EventLoop::unwatch(int fd) {
  epoll_ctl(epoll_fd_, EPOLL_CTL_DEL, fd, nullptr);
  watches_.erase(fd);
}

int EventLoop::addTimerFd(FdCallback on_expiry) {
  const int fd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
  if (fd < 0) throwErrno("timerfd_create");
  try {
    watch(fd, [fd, cb = std::move(on_expiry)] {
      std::uint64_t expirations = 0;
      // Drain the counter; a late wakeup runs the callback once, not once per missed period.
      // Nothing to read means the timer was re-armed or disarmed after the wakeup: no callback.
      if (read(fd, &expirations, sizeof(expirations)) == static_cast<ssize_t>(sizeof(expirations))) cb();
    });
  } catch (...) {
    close(fd);
    throw;
  }
  timers_[fd] = fd;
  return fd;
}

int EventLoop::addTimer(std::chrono::milliseconds period, FdCallback on_expiry) {
  const int fd = addTimerFd(std::move(on_expiry));
  itimerspec spec{};
  spec.it_interval.tv_sec = static_cast<time_t>(period.count() / 1000);
  spec.it_interval.tv_nsec = static_cast<long>((period.count() % 1000) * 1000000);
  spec.it_value = spec.it_interval;
  if (timerfd_settime(fd, 0, &spec, nullptr) != 0) {
    const int err = errno;
    cancelTimer(fd);
    throw std::system_error(err, std::generic_category(), "timerfd_settime");
  }
  return fd;
}

int EventLoop::addTimeout(std::optional<TimePoint> when, FdCallback on_expiry) {
  const int fd = addTimerFd(std::move(on_expiry));
  try {
    rearmTimeout(fd, when);
  } catch (...) {
    cancelTimer(fd);
    throw;
  }
  return fd;
}

void EventLoop::rearmTimeout(int id, std::optional<TimePoint> when) {
  auto it = timers_.find(id);
  if (it == timers_.end()) return;
  const itimerspec spec = oneShotAt(when);
  // timerfd_settime also clears an expiry counted but not yet read.
  if (timerfd_settime(it->second, TFD_TIMER_ABSTIME, &spec, nullptr) != 0) throwErrno("timerfd_settime");
}

void EventLoop::cancelTimer(int id) {
  auto it = timers_.find(id);
  if (it == timers_.end()) return;
  unwatch(it->second);
  close(it->second);
  timers_.erase(it);
}

void EventLoop::nestIn(int outer_epfd, OuterWake on_wake) {
  epoll_event ev{};
  ev.events = EPOLLIN;
  ev.data.ptr = this;  // tells our set's readiness apart from the outer set's own events
  if (epoll_ctl(outer_epfd, EPOLL_CTL_ADD, epoll_fd_, &ev) != 0) throwErrno("epoll_ctl (nest)");
  outer_epfd_ = outer_epfd;
  on_outer_wake_ = std::move(on_wake);
}

bool EventLoop::dispatchOwn(int timeout_ms) {
  std::array<epoll_event, 32> events{};
  const int n = epoll_wait(epoll_fd_, events.data(), static_cast<int>(events.size()), timeout_ms);
  if (n < 0) {
    if (errno == EINTR) return false;
    throwErrno("epoll_wait");
  }
  bool ran = false;
  for (int i = 0; i < n && running_; ++i) {
    const epoll_event& ev = events[static_cast<std::size_t>(i)];
    auto it = watches_.find(ev.data.fd);
    if (it == watches_.end()) continue;  // unwatched by an earlier callback in this batch
    auto cb = it->second;  // keeps the callback alive even if it unwatches itself
    ran = true;
    (*cb)(fromEpoll(ev.events));
  }
  return ran;
}

void EventLoop::run() {
  running_ = true;
  std::array<epoll_event, 32> events{};
  while (running_) {
    int timeout_ms = -1;
    if (timeout_provider_) {
      if (auto t = timeout_provider_()) timeout_ms = static_cast<int>(std::min<std::int64_t>(t->count(), 60000));
    }
    if (outer_epfd_ < 0) {
      dispatchOwn(timeout_ms);
      continue;
    }
    int n = epoll_wait(outer_epfd_, events.data(), static_cast<int>(events.size()), timeout_ms);
    if (n < 0) {
      if (errno != EINTR) throwErrno("epoll_wait");
      n = 0;
    }
    bool own_ready = false;
    int outer = 0;
    for (int i = 0; i < n; ++i) {
      const epoll_event& ev = events[static_cast<std::size_t>(i)];
      if (ev.data.ptr == this) {
        own_ready = true;
      } else {
        events[static_cast<std::size_t>(outer++)] = ev;
      }
    }
    on_outer_wake_(events.data(), outer);
    if (own_ready && running_ && dispatchOwn(0) && running_) on_outer_wake_(nullptr, 0);
  }
}

}  // namespace coap_edge::daemon
