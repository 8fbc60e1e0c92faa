#include "daemon/access_filter.h"

#include "common/log.h"

namespace coap_edge::daemon {
namespace {

constexpr std::string_view kLogTag = "acl";

}  // namespace

policy::Method policyMethod(coap::Method method) noexcept {
  switch (method) {
    case coap::Method::get:
      return policy::Method::get;
    case coap::Method::post:
      return policy::Method::post;
    case coap::Method::put:
      return policy::Method::put;
    case coap::Method::del:
      return policy::Method::del;
    case coap::Method::fetch:
      return policy::Method::fetch;
    case coap::Method::patch:
      return policy::Method::patch;
    case coap::Method::ipatch:
      return policy::Method::ipatch;
  }
  return policy::Method::get;
}

std::string_view requestIdentity(const coap::Request& request) noexcept {
  if (request.peer == nullptr || request.peer->kind == coap::AuthKind::none) return {};
  return request.peer->identity;
}

std::optional<coap::Response> AccessFilter::operator()(const coap::Request& request) noexcept {
  const std::string_view identity = requestIdentity(request);
  const policy::Verdict verdict = policy_.check(identity, policyMethod(request.method), request.path);
  counts_.record(verdict.decision);
  if (verdict.decision == policy::Decision::allow) return std::nullopt;
  const bool anonymous = verdict.decision == policy::Decision::unauthenticated;
  // Debug only: a client probing paths must not be able to flood the journal.
  if (log::enabled(log::Level::debug)) {
    CE_LOG_DEBUG("denied {} /{} to {} from {}: {}", policy::methodName(policyMethod(request.method)),
                 log::printable(request.path),
                 anonymous ? std::string("a peer without identity") : "'" + log::printable(identity) + "'",
                 request.peer != nullptr ? request.peer->address : std::string("?"),
                 anonymous ? "4.01 (no identity)" : "4.03 (no rule allows it)");
  }
  coap::Response refusal;
  refusal.code = anonymous ? coap::Code::unauthorized : coap::Code::forbidden;
  return refusal;
}

}  // namespace coap_edge::daemon
