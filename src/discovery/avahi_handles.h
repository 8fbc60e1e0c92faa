#pragma once
// Owners for the Avahi client's handles (one owner each, freed by their own function), and a
// one-shot timer on an AvahiPoll for DnsSd's own retries on the same loop.

#include <avahi-client/client.h>
#include <avahi-client/lookup.h>
#include <avahi-client/publish.h>
#include <avahi-common/malloc.h>
#include <avahi-common/strlst.h>
#include <avahi-common/watch.h>

#include <chrono>
#include <functional>

#include "common/c_ptr.h"

namespace coap_edge::discovery {

using AvahiClientPtr = CPtr<AvahiClient, avahi_client_free>;
using AvahiServiceBrowserPtr = CPtr<AvahiServiceBrowser, avahi_service_browser_free>;
using AvahiServiceResolverPtr = CPtr<AvahiServiceResolver, avahi_service_resolver_free>;
using AvahiEntryGroupPtr = CPtr<AvahiEntryGroup, avahi_entry_group_free>;
using AvahiStringListPtr = CPtr<AvahiStringList, avahi_string_list_free>;
using AvahiStringPtr = CPtr<char, avahi_free>;

/// A one-shot timer created disarmed on `poll`; the callback runs on that poll's loop.
class PollTimer {
 public:
  PollTimer(const AvahiPoll* poll, std::function<void()> on_expiry);
  ~PollTimer();
  PollTimer(const PollTimer&) = delete;
  PollTimer& operator=(const PollTimer&) = delete;

  void arm(std::chrono::milliseconds delay);
  void disarm();
  [[nodiscard]] bool armed() const { return armed_; }

 private:
  static void trampoline(AvahiTimeout* t, void* userdata) noexcept;

  const AvahiPoll* poll_;
  AvahiTimeout* timeout_ = nullptr;  // owned: freed through poll_->timeout_free
  std::function<void()> on_expiry_;
  bool armed_ = false;
};

}  // namespace coap_edge::discovery
