#pragma once
// Process-wide libcoap state: coap_startup()/coap_cleanup() and the log bridge. Exactly one
// instance lives in main(), created before any Server and destroyed after the last one.

#include "common/log.h"

#include <string>

namespace coap_edge::coap {

class Runtime {
 public:
  /// @param[in] level  most verbose level forwarded from libcoap into our log.
  explicit Runtime(log::Level level);
  ~Runtime();
  Runtime(const Runtime&) = delete;
  Runtime& operator=(const Runtime&) = delete;

  /// Follows a log level change (SIGHUP). DTLS library output is capped at info: its debug
  /// dumps contain handshake secrets.
  static void setLogLevel(log::Level level);

  /// "libcoap 4.3.5", as linked.
  [[nodiscard]] static std::string libcoapVersion();
  /// "Mbed TLS 3.6.7", as linked (the DTLS library libcoap runs on).
  [[nodiscard]] static std::string tlsVersion();
};

}  // namespace coap_edge::coap
