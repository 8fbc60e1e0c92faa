#pragma once
// The gateway's link to its upstream service (DESIGN.md "Upstream", issue #5): one DTLS session
// that the gateway opens ([upstream] uri, PSK or a client certificate; the server certificate
// is verified against [upstream] ca and the name), kept alive with CoAP pings and re-opened with
// exponential backoff and jitter when it fails. Host names are resolved on a worker thread,
// never on the event loop. Over that session:
//   - the nodes are registered at the upstream Resource Directory (RFC 9176, relay/upstream_rd.h):
//     created, updated when a node's resources change, refreshed before their lifetime ends,
//     deleted when the node is gone;
//   - every value the nodes report (the relay observes every observable node resource, see
//     NodeProxy::setValueSink) is first written to the durable queue (relay/telemetry_queue.h,
//     state_dir/telemetry.db) and removed only when the upstream acknowledged the POST that
//     carried it: at-least-once, in order per node, across outages, crashes and reboots. POSTs
//     carry SenML packs (relay/senml.h) of up to telemetry_batch values of one node, one at a
//     time, so a busy network costs a few confirmable messages per second, not one per value;
//   - the upstream's own requests are served by the coap server like any other, as the ACL
//     identity [upstream] identity (role reversal: the gateway may sit behind NAT).
// Everything runs on the event loop: tick() drives it, callbacks come from coap::Server::process().

#include "coap/server.h"
#include "config/config.h"
#include "discovery/node_registry.h"
#include "relay/backoff.h"
#include "relay/node_proxy.h"
#include "relay/telemetry_queue.h"
#include "relay/upstream_rd.h"

#include <chrono>
#include <cstdint>
#include <mutex>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace coap_edge::relay {

struct UpstreamStatus {
  std::string state = "off";  ///< off, waiting, resolving, connecting, up
  std::string address;        ///< the upstream's address while connected
  std::string last_error;
  std::uint64_t connects = 0;
  std::uint64_t established = 0;
  std::uint64_t failures = 0;
  std::uint64_t requests_served = 0;   ///< role reversal
  std::size_t rd_registrations = 0;
  std::uint64_t rd_failures = 0;
  std::uint64_t telemetry_posts = 0;   ///< POSTs acknowledged
  std::uint64_t telemetry_post_failures = 0;
  std::uint64_t telemetry_values_sent = 0;  ///< values in acknowledged POSTs
  TelemetryQueue::Stats queue;
  std::optional<std::int64_t> queue_oldest_age_s;
  bool telemetry = false;
};

class UpstreamLink {
 public:
  using Clock = std::chrono::steady_clock;
  /// Reads the PSK key file and opens the queue (state_dir/telemetry.db); throws
  /// std::runtime_error with a message for the operator when either fails. Starts connecting
  /// on the first tick().
  UpstreamLink(coap::Server& server, discovery::NodeRegistry& registry, NodeProxy& proxy, const config::Config& config);
  ~UpstreamLink();
  UpstreamLink(const UpstreamLink&) = delete;
  UpstreamLink& operator=(const UpstreamLink&) = delete;

  /// Drives connecting, keepalive, registration and telemetry; call every few hundred ms.
  void tick();
  [[nodiscard]] UpstreamStatus status() const;

 private:
  enum class State : std::uint8_t { waiting, resolving, connecting, up };

  void startResolve();
  void connect(const std::string& address);
  void onEvent(coap::UpstreamEvent event, const std::string& detail);
  void retryLater(const std::string& why);
  void onValue(const std::string& node_id, const std::string& path, const coap::Response& value);
  void maintainRegistrations();
  void sendRd(coap::Method method, std::string path, std::string query, std::string payload,
              std::function<void(const coap::ClientResult&)> done);
  void pushTelemetry();

  coap::Server& server_;
  discovery::NodeRegistry& registry_;
  config::UpstreamSection config_;
  std::string agent_name_;
  tls::SecretBytes psk_key_;
  Backoff backoff_;
  State state_ = State::waiting;
  Clock::time_point retry_at_{};
  Clock::time_point up_since_{};
  Clock::time_point last_ping_{};
  /// Filled by the resolver thread (detached: a hung DNS server must not hold up a shutdown).
  struct Resolution {
    std::mutex mutex;
    bool done = false;
    std::vector<std::string> addresses;
    std::string error;
  };
  std::shared_ptr<Resolution> resolving_;
  std::string address_;
  std::string last_error_;
  // Resource Directory
  RdRegistrationState rd_;
  bool rd_busy_ = false;
  Clock::time_point rd_retry_at_{};
  std::uint64_t rd_failures_ = 0;
  // Telemetry
  std::optional<TelemetryQueue> queue_;
  bool post_busy_ = false;
  Clock::time_point next_post_at_{};
  std::uint32_t post_failures_in_row_ = 0;
  std::uint64_t posts_ = 0;
  std::uint64_t post_failures_ = 0;
  std::uint64_t values_sent_ = 0;
  std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
};

}  // namespace coap_edge::relay
