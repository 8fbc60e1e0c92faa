// DnsSd: the Avahi client's lifecycle. avahi-daemon may be missing at start, stop, restart or be
// replaced; the client is created with AVAHI_CLIENT_NO_FAIL and rebuilt after each failure, and
// whatever was found through the old one is reported lost before anything is found again.

#include <avahi-common/error.h>
#include <avahi-common/timeval.h>
#include <net/if.h>

#include <algorithm>

#include "common/log.h"
#include "discovery/dns_sd_impl.h"

namespace coap_edge::discovery {
namespace {

constexpr std::string_view kLogTag = "dns-sd";

}  // namespace

PollTimer::PollTimer(const AvahiPoll* poll, std::function<void()> on_expiry)
    : poll_(poll), on_expiry_(std::move(on_expiry)) {
  timeout_ = poll_->timeout_new(poll_, nullptr, &PollTimer::trampoline, this);
  if (timeout_ == nullptr) throw std::bad_alloc();
}

PollTimer::~PollTimer() { poll_->timeout_free(timeout_); }

void PollTimer::arm(std::chrono::milliseconds delay) {
  timeval when{};
  avahi_elapse_time(&when, static_cast<unsigned>(std::max<std::int64_t>(delay.count(), 0)), 0);
  poll_->timeout_update(timeout_, &when);
  armed_ = true;
}

void PollTimer::disarm() {
  poll_->timeout_update(timeout_, nullptr);
  armed_ = false;
}

void PollTimer::trampoline(AvahiTimeout*, void* userdata) noexcept {
  auto* self = static_cast<PollTimer*>(userdata);
  self->armed_ = false;
  try {
    self->on_expiry_();
  } catch (const std::exception& e) {
    CE_LOG_ERROR("timer: {}", e.what());
  } catch (...) {
    CE_LOG_ERROR("timer: unknown exception");
  }
}

DnsSd::DnsSd(const AvahiPoll* poll, DnsSdSettings settings, FoundCallback on_found, LostCallback on_lost)
    : impl_(std::make_unique<Impl>(poll, std::move(settings), std::move(on_found), std::move(on_lost))) {}
DnsSd::~DnsSd() = default;
std::string_view DnsSd::state() const { return impl_->state(); }
DnsSdCounters DnsSd::counters() const { return impl_->counters; }
std::vector<DnsSdService> DnsSd::services() const { return impl_->services(); }
std::optional<std::string> DnsSd::publishedName() const { return impl_->publishedName(); }
bool DnsSd::published() const { return impl_->published(); }

DnsSd::Impl::Impl(const AvahiPoll* poll, DnsSdSettings settings, FoundCallback on_found, LostCallback on_lost)
    : poll_(poll),
      settings_(std::move(settings)),
      on_found_(std::move(on_found)),
      on_lost_(std::move(on_lost)),
      retry_timer_(poll, [this] { retry(); }),
      reconnect_timer_(poll, [this] { reconnect(); }) {
  if (settings_.publication) publish_name_ = settings_.publication->instance;
  settings_.max_resolvers = std::max<std::size_t>(settings_.max_resolvers, 1);
  createClient();
}

DnsSd::Impl::~Impl() {
  // Children first (avahi_client_free would free them too, behind their owners' backs).
  dropEverything(false);
  client_.reset();
}

std::string_view DnsSd::Impl::state() const {
  switch (phase_) {
    case Phase::running:
      return "running";
    case Phase::connecting:
      return "connecting";
    case Phase::failed:
      break;
  }
  return "failed";
}

std::vector<DnsSdService> DnsSd::Impl::services() const {
  std::vector<DnsSdService> out;
  for (const auto& [key, entry] : entries_)
    if (entry.found) out.push_back(*entry.found);
  return out;
}

std::optional<std::string> DnsSd::Impl::publishedName() const {
  if (!settings_.publication) return std::nullopt;
  return publish_name_;
}

void DnsSd::Impl::createClient() {
  int error = 0;
  constructing_ = true;
  early_state_.reset();
  AvahiClient* c = avahi_client_new(poll_, AVAHI_CLIENT_NO_FAIL, &Impl::onClientState, this, &error);
  constructing_ = false;
  if (c == nullptr) {
    // Only the bus itself can be missing here: a missing daemon is waited for (NO_FAIL).
    setPhase(Phase::failed,
             fmt::format("cannot reach the D-Bus system bus ({}); retrying every {} ms", avahi_strerror(error),
                         settings_.retry_interval.count()),
             log::Level::warning);
    retry_timer_.arm(settings_.retry_interval);
    return;
  }
  client_.reset(c);
  if (early_state_) handleClientState(c, *early_state_);
}

void DnsSd::Impl::onClientState(AvahiClient* c, AvahiClientState state, void* userdata) noexcept {
  auto* self = static_cast<Impl*>(userdata);
  try {
    // avahi_client_new reports its first state before it returns the client.
    if (self->constructing_) {
      self->early_state_ = state;
      return;
    }
    self->handleClientState(c, state);
  } catch (const std::exception& e) {
    CE_LOG_ERROR("client state {}: {}", static_cast<int>(state), e.what());
  } catch (...) {
    CE_LOG_ERROR("client state {}: unknown exception", static_cast<int>(state));
  }
}

void DnsSd::Impl::handleClientState(AvahiClient* c, AvahiClientState state) {
  switch (state) {
    case AVAHI_CLIENT_S_RUNNING:
      if (awaiting_reconnect_) ++counters.daemon_reconnects;
      awaiting_reconnect_ = false;
      setPhase(Phase::running, "connected to avahi-daemon", log::Level::notice);
      ensureBrowsers();
      ensurePublished();
      break;
    case AVAHI_CLIENT_S_COLLISION:
    case AVAHI_CLIENT_S_REGISTERING:
      // The daemon's host name is being (re)established: as Avahi's client-publish-service
      // example does, withdraw the publication and add it again once the daemon runs.
      setPhase(Phase::connecting, "avahi-daemon is registering its host name", log::Level::info);
      withdrawPublication();
      break;
    case AVAHI_CLIENT_CONNECTING:
      setPhase(Phase::connecting, "avahi-daemon is not running; waiting for it", log::Level::warning);
      break;
    case AVAHI_CLIENT_FAILURE: {
      const int error = avahi_client_errno(c);
      const bool disconnected = error == AVAHI_ERR_DISCONNECTED;
      setPhase(disconnected ? Phase::connecting : Phase::failed,
               fmt::format("lost avahi-daemon ({}); reconnecting", avahi_strerror(error)), log::Level::warning);
      if (was_running_) awaiting_reconnect_ = true;
      // Nothing found through this client stays reported; the client itself is rebuilt from the
      // loop, outside its own callback.
      dropEverything(true);
      reconnect_timer_.arm(disconnected ? std::chrono::milliseconds(0) : settings_.retry_interval);
      break;
    }
  }
  if (state == AVAHI_CLIENT_S_RUNNING) was_running_ = true;
}

void DnsSd::Impl::reconnect() {
  dropEverything(true);
  client_.reset();
  createClient();
}

void DnsSd::Impl::retry() {
  if (!client_) {
    createClient();
    return;
  }
  if (phase_ != Phase::running) return;
  ensureBrowsers();
  ensurePublished();
}

void DnsSd::Impl::dropEverything(bool report) {
  resolve_queue_.clear();
  resolving_ = 0;
  std::vector<DnsSdService> lost;
  for (auto& [key, entry] : entries_) {
    entry.resolver.reset();
    if (entry.found) lost.push_back(std::move(*entry.found));
  }
  entries_.clear();
  browsers_.clear();
  group_.reset();
  published_ = false;
  published_on_.clear();
  dropped_warned_ = false;
  if (report)
    for (const auto& service : lost) reportLost(service);
}

void DnsSd::Impl::setPhase(Phase phase, std::string message, log::Level level) {
  phase_ = phase;
  // Once per change, not once per retry.
  if (message == last_logged_) return;
  log::emit(level, kLogTag, "{}", message);
  last_logged_ = std::move(message);
}

void DnsSd::Impl::reportFound(const DnsSdService& service) {
  ++counters.services_found;
  CE_LOG_INFO("found {} \"{}\" on {} at {} port {}", service.type, log::printable(service.instance),
              service.interface, service.address, service.port);
  if (!on_found_) return;
  try {
    on_found_(service);
  } catch (const std::exception& e) {
    CE_LOG_ERROR("found callback: {}", e.what());
  } catch (...) {
    CE_LOG_ERROR("found callback: unknown exception");
  }
}

void DnsSd::Impl::reportLost(const DnsSdService& service) {
  ++counters.services_lost;
  CE_LOG_INFO("lost {} \"{}\" on {}", service.type, log::printable(service.instance), service.interface);
  if (!on_lost_) return;
  try {
    on_lost_(service);
  } catch (const std::exception& e) {
    CE_LOG_ERROR("lost callback: {}", e.what());
  } catch (...) {
    CE_LOG_ERROR("lost callback: unknown exception");
  }
}

bool DnsSd::Impl::interfaceIndexes(std::vector<std::pair<std::string, int>>& out) {
  out.clear();
  if (settings_.interfaces.empty()) {
    out.emplace_back("", AVAHI_IF_UNSPEC);
    return true;
  }
  bool all = true;
  for (const auto& name : settings_.interfaces) {
    const unsigned index = if_nametoindex(name.c_str());
    if (index == 0) {
      if (missing_warned_.insert(name).second)
        CE_LOG_WARN("interface {} is not present; will retry every {} ms", log::printable(name),
                    settings_.retry_interval.count());
      all = false;
      continue;
    }
    if (missing_warned_.erase(name) != 0) CE_LOG_NOTICE("interface {} is present now", log::printable(name));
    out.emplace_back(name, static_cast<int>(index));
  }
  return all;
}

}  // namespace coap_edge::discovery
