#include "daemon/service_notify.h"

#include <fmt/format.h>
#include <systemd/sd-daemon.h>

#include <ctime>
#include <string>

namespace coap_edge::daemon::service_notify {
namespace {

void send(const std::string& message) { sd_notify(0, message.c_str()); }

std::uint64_t monotonicUsec() {
  timespec ts{};
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<std::uint64_t>(ts.tv_sec) * 1000000u + static_cast<std::uint64_t>(ts.tv_nsec) / 1000u;
}

}  // namespace

void ready(std::string_view text) { send(fmt::format("READY=1\nSTATUS={}", text)); }
// MONOTONIC_USEC lets systemd >= 253 (Type=notify-reload) match the reload to this message.
void reloading() { send(fmt::format("RELOADING=1\nMONOTONIC_USEC={}", monotonicUsec())); }
void stopping() { send("STOPPING=1"); }
void status(std::string_view text) { send(fmt::format("STATUS={}", text)); }
void watchdog() { send("WATCHDOG=1"); }

std::optional<std::chrono::milliseconds> watchdogInterval() {
  std::uint64_t usec = 0;
  if (sd_watchdog_enabled(0, &usec) <= 0 || usec == 0) return std::nullopt;
  return std::chrono::milliseconds(usec / 1000);
}

}  // namespace coap_edge::daemon::service_notify
