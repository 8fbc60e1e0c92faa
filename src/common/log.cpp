#include "common/log.h"

#include <syslog.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cstdio>
#include <string>

namespace coap_edge::log {
namespace {

Sink g_sink = Sink::stderr_stream;
Level g_max = Level::info;
std::string g_ident = "coap-edge";

constexpr std::array<std::string_view, 8> kNames{"emerg", "alert", "crit", "error",
                                                 "warning", "notice", "info", "debug"};

}  // namespace

void init(std::string_view program, Sink sink, Level max) {
  g_ident = std::string(program);
  g_sink = sink;
  g_max = max;
  if (sink == Sink::syslog) openlog(g_ident.c_str(), LOG_PID | LOG_NDELAY, LOG_DAEMON);
}

void setMaxLevel(Level max) { g_max = max; }
Level maxLevel() { return g_max; }
bool enabled(Level level) { return static_cast<int>(level) <= static_cast<int>(g_max); }

void write(Level level, std::string_view tag, std::string_view message) noexcept {
  if (!enabled(level)) return;
  const int prio = static_cast<int>(level);
  if (g_sink == Sink::syslog) {
    syslog(prio, "[%.*s] %.*s", static_cast<int>(tag.size()), tag.data(),
           static_cast<int>(message.size()), message.data());
    return;
  }
  // "<N>" prefixes let journald assign priorities when stderr is captured by systemd.
  std::fprintf(stderr, "<%d>%s: %.*s: [%.*s] %.*s\n", prio, g_ident.c_str(),
               static_cast<int>(kNames[static_cast<std::size_t>(prio)].size()),
               kNames[static_cast<std::size_t>(prio)].data(), static_cast<int>(tag.size()),
               tag.data(), static_cast<int>(message.size()), message.data());
}

std::string printable(std::string_view text, std::size_t max) {
  std::string out;
  out.reserve(std::min(text.size(), max) + 4);
  std::size_t shown = 0;
  for (char c : text) {
    if (shown++ == max) {
      out += "...";
      break;
    }
    const auto u = static_cast<unsigned char>(c);
    if (u >= 0x20 && u < 0x7f && c != '\\') {
      out.push_back(c);
    } else {
      out += fmt::format("\\x{:02x}", u);
    }
  }
  return out;
}

bool parseLevel(std::string_view text, Level& out) {
  for (int i = 3; i <= 7; ++i) {
    if (kNames[static_cast<std::size_t>(i)] == text) {
      out = static_cast<Level>(i);
      return true;
    }
  }
  return false;
}

}  // namespace coap_edge::log
