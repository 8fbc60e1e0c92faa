#pragma once
// The running agent: wires configuration, keystore, the downstream CoAP server, signals,
// timers and systemd notification onto one event loop. Construction performs the whole
// startup (throwing StartupFailure); run() returns the process exit code.

#include "coap/server.h"
#include "config/config.h"
#include "daemon/access_filter.h"
#include "daemon/control_socket.h"
#include "daemon/credentials.h"
#include "daemon/discovery_service.h"
#include "daemon/event_loop.h"
#include "daemon/rate_filter.h"
#include "daemon/signals.h"
#include "daemon/status_resource.h"
#include "keystore/keystore.h"
#include "relay/node_proxy.h"
#include "relay/upstream_link.h"

#include <chrono>
#include <memory>
#include <set>
#include <stdexcept>
#include <string>

namespace coap_edge::daemon {

/// A startup failure: `message` is the single line printed; `exit_code` is 78 (EX_CONFIG) when
/// the configuration is at fault, 1 otherwise.
struct StartupFailure : std::runtime_error {
  StartupFailure(const std::string& message, int code) : std::runtime_error(message), exit_code(code) {}
  int exit_code;
};

/// Checks what --check-config promises beyond parsing: the X.509 files ([downstream] and
/// [upstream]) load and match, and the [upstream] PSK key file is a valid key.
/// Returns an error in "file:line:col: message" form, or nullopt.
[[nodiscard]] std::optional<std::string> checkReferencedFiles(const config::Config& cfg);

/// Relay settings derived from the configuration ([relay], [limits] per_node).
[[nodiscard]] relay::ProxySettings proxySettings(const config::Config& cfg);

/// Server settings derived from the configuration.
[[nodiscard]] coap::ServerSettings serverSettings(const config::Config& cfg);

class Agent {
 public:
  explicit Agent(config::Config cfg);
  ~Agent();
  Agent(const Agent&) = delete;
  Agent& operator=(const Agent&) = delete;

  /// Runs until SIGTERM/SIGINT; returns 0 after draining.
  int run();

 private:
  void onSignals();
  void reload();
  void pollKeystore();
  void registerResources();
  void writeMetrics();
  [[nodiscard]] StatusSnapshot snapshot() const;
  /// One control request ("status") -> one JSON line.
  [[nodiscard]] std::string controlRequest(std::string_view request);

  config::Config config_;
  keystore::Keystore keystore_;
  std::unique_ptr<KeystoreCredentials> credentials_;
  std::unique_ptr<coap::Server> server_;
  AccessFilter access_;  ///< the ACL in force (swapped whole on SIGHUP) and its counters
  RateFilter limits_;    ///< token buckets (kept across SIGHUP) and their counters
  bool metrics_failed_ = false;  ///< the last metrics_file write failed (logged once)
  EventLoop loop_;
  SignalFd signals_;
  std::unique_ptr<ControlSocket> control_;
  std::unique_ptr<DiscoveryService> discovery_;  ///< after server_ and loop_: uses both
  std::unique_ptr<relay::NodeProxy> proxy_;      ///< after discovery_: follows its registry
  std::unique_ptr<relay::UpstreamLink> upstream_;  ///< after proxy_: takes its values
  std::uint64_t keystore_version_ = 0;
  std::chrono::steady_clock::time_point started_;
};

/// Entry point behind main(): options, startup, run, exit code.
int realMain(int argc, char** argv);

}  // namespace coap_edge::daemon
