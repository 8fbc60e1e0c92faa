#include "daemon/event_loop.h"

#include <sys/epoll.h>
#include <sys/timerfd.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <system_error>

namespace coap_edge::daemon {
namespace {

[[noreturn]] void throwErrno(const char* what) { throw std::system_error(errno, std::generic_category(), what); }

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
  epoll_event ev{};
  ev.events = writable ? EPOLLOUT : EPOLLIN;
  ev.data.fd = fd;
  const int op = watches_.count(fd) != 0 ? EPOLL_CTL_MOD : EPOLL_CTL_ADD;
  if (epoll_ctl(epoll_fd_, op, fd, &ev) != 0) throwErrno("epoll_ctl");
  watches_[fd] = std::make_shared<FdCallback>(std::move(on_ready));
}

void EventLoop::unwatch(int fd) {
  epoll_ctl(epoll_fd_, EPOLL_CTL_DEL, fd, nullptr);
  watches_.erase(fd);
}

int EventLoop::addTimer(std::chrono::milliseconds period, FdCallback on_expiry) {
  const int fd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
  if (fd < 0) throwErrno("timerfd_create");
  itimerspec spec{};
  spec.it_interval.tv_sec = static_cast<time_t>(period.count() / 1000);
  spec.it_interval.tv_nsec = static_cast<long>((period.count() % 1000) * 1000000);
  spec.it_value = spec.it_interval;
  if (timerfd_settime(fd, 0, &spec, nullptr) != 0) {
    close(fd);
    throwErrno("timerfd_settime");
  }
  watch(fd, [fd, cb = std::move(on_expiry)] {
    std::uint64_t expirations = 0;
    // Drain the counter; a late wakeup runs the callback once, not once per missed period.
    if (read(fd, &expirations, sizeof(expirations)) == static_cast<ssize_t>(sizeof(expirations))) cb();
  });
  timers_[fd] = fd;
  return fd;
}

void EventLoop::cancelTimer(int id) {
  auto it = timers_.find(id);
  if (it == timers_.end()) return;
  unwatch(it->second);
  close(it->second);
  timers_.erase(it);
}

void EventLoop::run() {
  running_ = true;
  std::array<epoll_event, 32> events{};
  while (running_) {
    int timeout_ms = -1;
    if (timeout_provider_) {
      if (auto t = timeout_provider_()) timeout_ms = static_cast<int>(std::min<std::int64_t>(t->count(), 60000));
    }
    const int n = epoll_wait(epoll_fd_, events.data(), static_cast<int>(events.size()), timeout_ms);
    if (n < 0) {
      if (errno == EINTR) continue;
      throwErrno("epoll_wait");
    }
    for (int i = 0; i < n && running_; ++i) {
      auto it = watches_.find(events[static_cast<std::size_t>(i)].data.fd);
      if (it == watches_.end()) continue;  // unwatched by an earlier callback in this batch
      auto cb = it->second;  // keeps the callback alive even if it unwatches itself
      (*cb)();
    }
    if (after_wake_ && running_) after_wake_();
  }
}

}  // namespace coap_edge::daemon
