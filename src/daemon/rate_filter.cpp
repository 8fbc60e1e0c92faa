#include "daemon/rate_filter.h"

#include "common/log.h"
#include "daemon/access_filter.h"

#include <chrono>

namespace coap_edge::daemon {
namespace {

constexpr std::string_view kLogTag = "limits";

policy::Nanos steadyNow() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

}  // namespace

RateFilter::RateFilter(Clock clock) : clock_(clock ? std::move(clock) : Clock(&steadyNow)) {}

void RateFilter::setLimits(const config::LimitsSection& limits) { limits_ = limits; }

std::optional<coap::Response> RateFilter::operator()(const coap::Request& request) noexcept {
  // libcoap re-running an observed resource's handler to notify an observer: not a request.
  if (request.notification) return std::nullopt;
  try {
    const std::string_view identity = requestIdentity(request);
    if (identity.empty()) return std::nullopt;  // no identity: the ACL already answered 4.01
    const auto spec = limits_.perIdentityFor(identity);
    if (!spec) return std::nullopt;
    const auto decision = identities_.check(identity, policy::bucketParams(*spec), clock_());
    if (decision.allowed) return std::nullopt;
    if (decision.table_full) ++counts_.per_identity_table_full;
    coap::Response res;
    if (!request.confirmable) {
      ++counts_.per_identity_dropped;
      res.code = coap::Code::none;
      return res;
    }
    ++counts_.per_identity_rejected;
    res.code = coap::Code::too_many_requests;
    res.max_age = policy::retryAfterSeconds(decision.wait);
    if (log::enabled(log::Level::debug)) {
      CE_LOG_DEBUG("'{}' over its request rate: 4.29, Max-Age {}", log::printable(identity), *res.max_age);
    }
    return res;
  } catch (...) {
    return std::nullopt;  // out of memory for a new bucket: let the request through
  }
}

bool RateFilter::admitHandshake(std::string_view address) noexcept {
  try {
    if (!limits_.handshakes_per_address) return true;
    const auto decision = addresses_.check(address, policy::bucketParams(*limits_.handshakes_per_address), clock_());
    if (decision.allowed) return true;
    ++counts_.handshakes_refused;
    if (decision.table_full) ++counts_.handshakes_table_full;
    return false;
  } catch (...) {
    return false;
  }
}

void RateFilter::sweep() {
  const policy::Nanos now = clock_();
  identities_.expire(now);
  addresses_.expire(now);
}

LimitCounts RateFilter::counts() const {
  LimitCounts c = counts_;
  c.identity_buckets = identities_.size();
  c.address_buckets = addresses_.size();
  return c;
}

}  // namespace coap_edge::daemon
