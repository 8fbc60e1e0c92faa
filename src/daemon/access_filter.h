#pragma once
// The request filter that applies the ACL (policy/acl.h) to every downstream request: maps the
// request to the policy's terms, counts the decision, and answers refusals with 4.03 Forbidden,
// or 4.01 Unauthorized when the peer established no identity (plain coap).

#include "coap/message.h"
#include "policy/acl.h"

#include <optional>
#include <string_view>

namespace coap_edge::daemon {

/// The policy's method for a CoAP method.
[[nodiscard]] policy::Method policyMethod(coap::Method method) noexcept;

/// The identity a request is judged as: empty when none was established (plain coap).
[[nodiscard]] std::string_view requestIdentity(const coap::Request& request) noexcept;

class AccessFilter {
 public:
  /// Default: the built-in rules only (default deny).
  explicit AccessFilter(policy::Policy policy = {}) : policy_(std::move(policy)) {}

  /// nullopt: go on to the resource; otherwise the refusal to send. Never throws.
  [[nodiscard]] std::optional<coap::Response> operator()(const coap::Request& request) noexcept;

  /// Swaps in a new rule set (SIGHUP) as a whole; counters continue.
  void setPolicy(policy::Policy policy) noexcept { policy_ = std::move(policy); }
  [[nodiscard]] const policy::Policy& policy() const noexcept { return policy_; }
  [[nodiscard]] const policy::DecisionCounts& counts() const noexcept { return counts_; }

 private:
  policy::Policy policy_;
  policy::DecisionCounts counts_;
};

}  // namespace coap_edge::daemon
