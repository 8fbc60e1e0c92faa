#pragma once
// systemd's notification protocol (Type=notify): READY, RELOADING, STOPPING, WATCHDOG, STATUS.
// Outside systemd (no NOTIFY_SOCKET) every call is a cheap no-op.

#include <chrono>
#include <optional>
#include <string_view>

namespace coap_edge::daemon::service_notify {

void ready(std::string_view status);
void reloading();
void stopping();
void status(std::string_view text);
void watchdog();
/// The interval systemd expects WATCHDOG=1 within (WatchdogSec=), if enabled for this process.
[[nodiscard]] std::optional<std::chrono::milliseconds> watchdogInterval();

}  // namespace coap_edge::daemon::service_notify
