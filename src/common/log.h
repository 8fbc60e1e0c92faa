#pragma once
// Logging for every part: one sink (syslog/journal by default, or stderr), messages tagged by
// module. Key material must never be passed here: log identities, never keys.

#include <fmt/format.h>

#include <string>
#include <string_view>

namespace coap_edge::log {

enum class Level { error = 3, warning = 4, notice = 5, info = 6, debug = 7 };
enum class Sink { syslog, stderr_stream };

/// @param[in] program  syslog ident; @param[in] sink where lines go; @param[in] max  most verbose level kept.
void init(std::string_view program, Sink sink, Level max);
void setMaxLevel(Level max);
[[nodiscard]] Level maxLevel();
[[nodiscard]] bool enabled(Level level);
/// Writes one line; never throws.
void write(Level level, std::string_view tag, std::string_view message) noexcept;
/// Text from the network made safe for one log line: non-printable bytes become \xNN and
/// anything past `max` bytes is cut with "...". Identities and paths go through this.
[[nodiscard]] std::string printable(std::string_view text, std::size_t max = 96);
/// Parses "error", "warning", "notice", "info", "debug".
[[nodiscard]] bool parseLevel(std::string_view text, Level& out);

template <typename... Args>
void emit(Level level, std::string_view tag, fmt::format_string<Args...> format, Args&&... args) noexcept {
  if (!enabled(level)) return;
  try {
    write(level, tag, fmt::format(format, std::forward<Args>(args)...));
  } catch (...) {
    write(level, tag, "(log formatting failed)");
  }
}

}  // namespace coap_edge::log

// Each module defines its tag once: `constexpr std::string_view kLogTag = "keystore";`
#define CE_LOG_ERROR(...) ::coap_edge::log::emit(::coap_edge::log::Level::error, kLogTag, __VA_ARGS__)
#define CE_LOG_WARN(...) ::coap_edge::log::emit(::coap_edge::log::Level::warning, kLogTag, __VA_ARGS__)
#define CE_LOG_NOTICE(...) ::coap_edge::log::emit(::coap_edge::log::Level::notice, kLogTag, __VA_ARGS__)
#define CE_LOG_INFO(...) ::coap_edge::log::emit(::coap_edge::log::Level::info, kLogTag, __VA_ARGS__)
#define CE_LOG_DEBUG(...) ::coap_edge::log::emit(::coap_edge::log::Level::debug, kLogTag, __VA_ARGS__)
