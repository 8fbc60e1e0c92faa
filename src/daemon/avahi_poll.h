#pragma once
// Avahi's main-loop abstraction (AvahiPoll) served by the agent's own EventLoop, so the Avahi
// client runs on the one loop thread (after OTBR's AvahiPoller, mdns_avahi.cpp). Avahi may free
// and create watches and timeouts from inside their callbacks; the adapter copes.

#include <avahi-common/watch.h>

#include <cstddef>
#include <memory>
#include <unordered_map>
#include <vector>

#include "daemon/event_loop.h"

namespace coap_edge::daemon {

class AvahiPollAdapter {
 public:
  /// @param[in] loop  must outlive the adapter.
  explicit AvahiPollAdapter(EventLoop& loop);
  /// Everything created through poll() must be freed before (avahi_client_free does that);
  /// leftovers are released here anyway.
  ~AvahiPollAdapter();
  AvahiPollAdapter(const AvahiPollAdapter&) = delete;
  AvahiPollAdapter& operator=(const AvahiPollAdapter&) = delete;

  /// The vtable for avahi_client_new(); valid as long as the adapter.
  [[nodiscard]] const AvahiPoll* poll() const { return &poll_; }
  /// Live watches and timeouts (tests: everything freed after the client is gone).
  [[nodiscard]] std::size_t watchCount() const;
  [[nodiscard]] std::size_t timeoutCount() const { return timeouts_.size(); }

 private:
  static AvahiWatch* watchNew(const AvahiPoll* api, int fd, AvahiWatchEvent event, AvahiWatchCallback callback,
                              void* userdata) noexcept;
  static void watchUpdate(AvahiWatch* w, AvahiWatchEvent event) noexcept;
  static AvahiWatchEvent watchGetEvents(AvahiWatch* w) noexcept;
  static void watchFree(AvahiWatch* w) noexcept;
  static AvahiTimeout* timeoutNew(const AvahiPoll* api, const struct timeval* tv, AvahiTimeoutCallback callback,
                                  void* userdata) noexcept;
  static void timeoutUpdate(AvahiTimeout* t, const struct timeval* tv) noexcept;
  static void timeoutFree(AvahiTimeout* t) noexcept;

  /// Registers the union of the interests of `fd`'s watches with the loop (or unwatches it).
  void syncFd(int fd);
  void dispatchFd(int fd, std::uint32_t events);
  void dispatchTimeout(AvahiTimeout* t);

  EventLoop& loop_;
  AvahiPoll poll_{};
  // libdbus may keep a read and a write watch on one fd: EventLoop holds one callback per fd,
  // so the watches of one fd are multiplexed here.
  std::unordered_map<int, std::vector<std::shared_ptr<AvahiWatch>>> watches_;
  std::unordered_map<AvahiTimeout*, std::unique_ptr<AvahiTimeout>> timeouts_;
};

}  // namespace coap_edge::daemon
