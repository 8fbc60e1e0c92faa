#include "coap/runtime.h"

#include "coap/random_pool.h"

#include <coap3/coap.h>
#include <mbedtls/version.h>

#include <array>
#include <string_view>

namespace coap_edge::coap {
namespace {

constexpr std::string_view kLogTag = "libcoap";

log::Level toOurs(coap_log_t level) {
  switch (level) {
    case COAP_LOG_EMERG:
    case COAP_LOG_ALERT:
    case COAP_LOG_CRIT:
    case COAP_LOG_ERR:
      return log::Level::error;
    case COAP_LOG_WARN:
      return log::Level::warning;
    case COAP_LOG_NOTICE:
      return log::Level::notice;
    case COAP_LOG_INFO:
      return log::Level::info;
    default:
      return log::Level::debug;
  }
}

coap_log_t toLibcoap(log::Level level) {
  switch (level) {
    case log::Level::error:
      return COAP_LOG_ERR;
    case log::Level::warning:
      return COAP_LOG_WARN;
    case log::Level::notice:
      return COAP_LOG_NOTICE;
    case log::Level::info:
      return COAP_LOG_INFO;
    case log::Level::debug:
      return COAP_LOG_DEBUG;
  }
  return COAP_LOG_WARN;
}

// libcoap's warnings for each failed handshake (Mbed TLS's error, each certificate issue): the
// server logs every failure itself, with its reason, identity and peer, once per identity per
// minute (server_handshakes.cpp), so a flood of failures must not get a line each here.
bool isPerHandshakeFailure(std::string_view text) {
  return text.find("do_mbedtls_handshake: session establish returned") != std::string_view::npos ||
         (text.find(" DTLS: ") != std::string_view::npos && text.find(": issue 0x") != std::string_view::npos);
}

// libcoap's log handler has no context pointer: one free function forwards into our sink.
void forwardLog(coap_log_t level, const char* message) {
  std::string_view text = message != nullptr ? message : "";
  while (!text.empty() && (text.back() == '\n' || text.back() == '\r')) text.remove_suffix(1);
  const log::Level ours = toOurs(level);
  log::write(ours < log::Level::debug && isPerHandshakeFailure(text) ? log::Level::debug : ours, kLogTag, text);
}

}  // namespace

Runtime::Runtime(log::Level level) {
  coap_startup();
  installRandomPool();
  coap_set_log_handler(forwardLog);
  setLogLevel(level);
}

Runtime::~Runtime() {
  coap_set_log_handler(nullptr);
  coap_cleanup();
}

void Runtime::setLogLevel(log::Level level) {
  coap_set_log_level(toLibcoap(level));
  const coap_log_t dtls = level == log::Level::debug ? COAP_LOG_INFO : toLibcoap(level);
  coap_dtls_set_log_level(dtls);
}

// coap_package_version() already reads "libcoap 4.3.5".
std::string Runtime::libcoapVersion() { return coap_package_version(); }

std::string Runtime::tlsVersion() {
  std::array<char, 32> buf{};
  mbedtls_version_get_string_full(buf.data());
  return std::string(buf.data());
}

}  // namespace coap_edge::coap
