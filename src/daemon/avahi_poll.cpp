#include "daemon/avahi_poll.h"

#include <sys/time.h>

#include <algorithm>
#include <chrono>
#include <optional>

#include "common/log.h"

// Avahi declares these opaque; each poll implementation defines them (as OTBR's does).
struct AvahiWatch {
  coap_edge::daemon::AvahiPollAdapter* adapter = nullptr;
  int fd = -1;
  AvahiWatchEvent events{};
  int happened = 0;  ///< what the running callback was called for (watch_get_events)
  AvahiWatchCallback callback = nullptr;
  void* userdata = nullptr;
  bool freed = false;  ///< freed while a dispatch still holds it
};

struct AvahiTimeout {
  coap_edge::daemon::AvahiPollAdapter* adapter = nullptr;
  int timer_id = -1;
  AvahiTimeoutCallback callback = nullptr;
  void* userdata = nullptr;
};

namespace coap_edge::daemon {
namespace {

constexpr std::string_view kLogTag = "avahi-poll";

std::uint32_t interestOf(int avahi_events) {
  std::uint32_t interest = 0;
  if ((avahi_events & AVAHI_WATCH_IN) != 0) interest |= EventLoop::kReadable;
  if ((avahi_events & AVAHI_WATCH_OUT) != 0) interest |= EventLoop::kWritable;
  return interest;
}

int avahiEventsOf(std::uint32_t loop_events) {
  int events = 0;
  if ((loop_events & EventLoop::kReadable) != 0) events |= AVAHI_WATCH_IN;
  if ((loop_events & EventLoop::kWritable) != 0) events |= AVAHI_WATCH_OUT;
  if ((loop_events & EventLoop::kError) != 0) events |= AVAHI_WATCH_ERR;
  if ((loop_events & EventLoop::kHangup) != 0) events |= AVAHI_WATCH_HUP;
  return events;
}

// Avahi's times are absolute on gettimeofday()'s clock (avahi_elapse_time); the loop's are on
// the monotonic clock, so carry the remaining delay over rather than the absolute value.
std::optional<EventLoop::TimePoint> toSteady(const struct timeval* tv) {
  if (tv == nullptr) return std::nullopt;
  timeval now{};
  gettimeofday(&now, nullptr);
  const auto delay =
      std::chrono::seconds(tv->tv_sec - now.tv_sec) + std::chrono::microseconds(tv->tv_usec - now.tv_usec);
  return std::chrono::steady_clock::now() + std::max<std::chrono::microseconds>(delay, std::chrono::microseconds(0));
}

}  // namespace

AvahiPollAdapter::AvahiPollAdapter(EventLoop& loop) : loop_(loop) {
  poll_.userdata = this;
  poll_.watch_new = &AvahiPollAdapter::watchNew;
  poll_.watch_update = &AvahiPollAdapter::watchUpdate;
  poll_.watch_get_events = &AvahiPollAdapter::watchGetEvents;
  poll_.watch_free = &AvahiPollAdapter::watchFree;
  poll_.timeout_new = &AvahiPollAdapter::timeoutNew;
  poll_.timeout_update = &AvahiPollAdapter::timeoutUpdate;
  poll_.timeout_free = &AvahiPollAdapter::timeoutFree;
}

AvahiPollAdapter::~AvahiPollAdapter() {
  for (auto& [fd, list] : watches_) {
    loop_.unwatch(fd);
    for (auto& w : list) w->freed = true;
  }
  for (auto& [raw, t] : timeouts_) loop_.cancelTimer(t->timer_id);
}

std::size_t AvahiPollAdapter::watchCount() const {
  std::size_t n = 0;
  for (const auto& [fd, list] : watches_) n += list.size();
  return n;
}

AvahiWatch* AvahiPollAdapter::watchNew(const AvahiPoll* api, int fd, AvahiWatchEvent event,
                                       AvahiWatchCallback callback, void* userdata) noexcept {
  if (api == nullptr || fd < 0 || callback == nullptr) return nullptr;
  auto* self = static_cast<AvahiPollAdapter*>(api->userdata);
  try {
    auto w = std::make_shared<AvahiWatch>();
    w->adapter = self;
    w->fd = fd;
    w->events = event;
    w->callback = callback;
    w->userdata = userdata;
    auto& list = self->watches_[fd];
    list.push_back(w);
    try {
      self->syncFd(fd);
    } catch (...) {
      list.pop_back();
      if (list.empty()) self->watches_.erase(fd);
      throw;
    }
    return w.get();
  } catch (const std::exception& e) {
    CE_LOG_ERROR("cannot watch fd {}: {}", fd, e.what());
  } catch (...) {
    CE_LOG_ERROR("cannot watch fd {}", fd);
  }
  return nullptr;  // Avahi treats this as out of memory
}

void AvahiPollAdapter::watchUpdate(AvahiWatch* w, AvahiWatchEvent event) noexcept {
  if (w == nullptr || w->freed) return;
  w->events = event;
  try {
    w->adapter->syncFd(w->fd);
  } catch (const std::exception& e) {
    CE_LOG_ERROR("cannot update the watch on fd {}: {}", w->fd, e.what());
  } catch (...) {
    CE_LOG_ERROR("cannot update the watch on fd {}", w->fd);
  }
}

AvahiWatchEvent AvahiPollAdapter::watchGetEvents(AvahiWatch* w) noexcept {
  return w == nullptr ? AvahiWatchEvent{} : static_cast<AvahiWatchEvent>(w->happened);
}

void AvahiPollAdapter::watchFree(AvahiWatch* w) noexcept {
  if (w == nullptr || w->freed) return;
  AvahiPollAdapter* self = w->adapter;
  const int fd = w->fd;
  w->freed = true;
  auto it = self->watches_.find(fd);
  if (it == self->watches_.end()) return;
  // The last reference may be this erase, unless a dispatch in progress still holds it.
  auto& list = it->second;
  list.erase(std::remove_if(list.begin(), list.end(), [w](const auto& p) { return p.get() == w; }), list.end());
  try {
    self->syncFd(fd);
  } catch (...) {
    // syncFd only unwatches or narrows here; a failure leaves a stale interest, which the
    // dispatch ignores since no live watch wants it.
  }
}

void AvahiPollAdapter::syncFd(int fd) {
  auto it = watches_.find(fd);
  if (it == watches_.end()) return;
  if (it->second.empty()) {
    watches_.erase(it);
    loop_.unwatch(fd);
    return;
  }
  int events = 0;
  for (const auto& w : it->second) events |= w->events;
  loop_.watchEvents(fd, interestOf(events), [this, fd](std::uint32_t happened) { dispatchFd(fd, happened); });
}

void AvahiPollAdapter::dispatchFd(int fd, std::uint32_t loop_events) {
  auto it = watches_.find(fd);
  if (it == watches_.end()) return;
  const int happened_all = avahiEventsOf(loop_events);
  // A callback may free or create watches of this fd (libdbus toggles its read and write
  // watches): walk a copy, skip what was freed meanwhile, leave new ones to the next wakeup.
  const auto snapshot = it->second;
  for (const auto& w : snapshot) {
    if (w->freed) continue;
    const int happened = happened_all & (w->events | AVAHI_WATCH_ERR | AVAHI_WATCH_HUP);
    if (happened == 0) continue;
    w->happened = happened;
    w->callback(w.get(), w->fd, static_cast<AvahiWatchEvent>(happened), w->userdata);
    w->happened = 0;
  }
}

AvahiTimeout* AvahiPollAdapter::timeoutNew(const AvahiPoll* api, const struct timeval* tv,
                                           AvahiTimeoutCallback callback, void* userdata) noexcept {
  if (api == nullptr || callback == nullptr) return nullptr;
  auto* self = static_cast<AvahiPollAdapter*>(api->userdata);
  try {
    auto t = std::make_unique<AvahiTimeout>();
    t->adapter = self;
    t->callback = callback;
    t->userdata = userdata;
    AvahiTimeout* raw = t.get();
    t->timer_id = self->loop_.addTimeout(toSteady(tv), [self, raw] { self->dispatchTimeout(raw); });
    self->timeouts_.emplace(raw, std::move(t));
    return raw;
  } catch (const std::exception& e) {
    CE_LOG_ERROR("cannot create a timeout: {}", e.what());
  } catch (...) {
    CE_LOG_ERROR("cannot create a timeout");
  }
  return nullptr;
}

void AvahiPollAdapter::timeoutUpdate(AvahiTimeout* t, const struct timeval* tv) noexcept {
  if (t == nullptr) return;
  try {
    t->adapter->loop_.rearmTimeout(t->timer_id, toSteady(tv));
  } catch (const std::exception& e) {
    CE_LOG_ERROR("cannot re-arm a timeout: {}", e.what());
  } catch (...) {
    CE_LOG_ERROR("cannot re-arm a timeout");
  }
}

void AvahiPollAdapter::timeoutFree(AvahiTimeout* t) noexcept {
  if (t == nullptr) return;
  AvahiPollAdapter* self = t->adapter;
  auto it = self->timeouts_.find(t);
  if (it == self->timeouts_.end()) return;
  self->loop_.cancelTimer(t->timer_id);
  self->timeouts_.erase(it);  // deletes t; a dispatch in progress no longer touches it
}

void AvahiPollAdapter::dispatchTimeout(AvahiTimeout* t) {
  // The loop's timer has fired and is now disarmed, as Avahi expects after an expiry.
  if (timeouts_.count(t) == 0) return;
  t->callback(t, t->userdata);
}

}  // namespace coap_edge::daemon
