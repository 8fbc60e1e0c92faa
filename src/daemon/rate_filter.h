#pragma once
// Rate limits on the request path and at handshakes (RFC 8516, DESIGN.md "Rate limiting"):
//   - per identity: every authenticated requester has a token bucket ([limits] per_identity, or
//     the first matching [[limits.override]]); over the limit, a confirmable request gets 4.29
//     Too Many Requests with Max-Age = whole seconds until the next token (at least 1), a
//     non-confirmable one is dropped (no response at all). Runs after the ACL filter.
//   - per source address for DTLS handshakes ([limits] handshakes_per_address), asked by the
//     server before a PSK handshake gets its key or an X.509 peer's certificate is accepted.
// Bucket state lives here, across SIGHUP: a reload changes rates, not how full buckets are.

#include "coap/message.h"
#include "config/config.h"
#include "policy/rate_limit.h"

#include <cstdint>
#include <functional>
#include <optional>
#include <string_view>

namespace coap_edge::daemon {

struct LimitCounts {
  std::uint64_t per_identity_rejected = 0;    ///< CON answered 4.29
  std::uint64_t per_identity_dropped = 0;     ///< NON dropped
  std::uint64_t per_identity_table_full = 0;  ///< of those: no bucket could be made (table full)
  std::uint64_t handshakes_refused = 0;       ///< handshakes_per_address exceeded (or table full)
  std::uint64_t handshakes_table_full = 0;
  std::size_t identity_buckets = 0;  ///< buckets held now
  std::size_t address_buckets = 0;
};

class RateFilter {
 public:
  using Clock = std::function<policy::Nanos()>;
  /// Bounds of the two tables (keys = identities, addresses).
  static constexpr std::size_t kMaxIdentityKeys = 100000;
  static constexpr std::size_t kMaxAddressKeys = 10000;

  /// `clock`: monotonic nanoseconds; default steady_clock.
  explicit RateFilter(Clock clock = {});

  /// Takes the new rates (startup, SIGHUP); buckets are kept.
  void setLimits(const config::LimitsSection& limits);
  /// nullopt: go on; otherwise the answer (4.29 with Max-Age, or Code::none to drop). Never throws.
  [[nodiscard]] std::optional<coap::Response> operator()(const coap::Request& request) noexcept;
  /// True if a handshake from `address` (source IP) may proceed. Never throws.
  [[nodiscard]] bool admitHandshake(std::string_view address) noexcept;
  /// Drops idle (full) buckets; run periodically.
  void sweep();

  [[nodiscard]] LimitCounts counts() const;

 private:
  Clock clock_;
  config::LimitsSection limits_;
  policy::RateLimiter identities_{kMaxIdentityKeys};
  policy::RateLimiter addresses_{kMaxAddressKeys};
  LimitCounts counts_;
};

}  // namespace coap_edge::daemon
