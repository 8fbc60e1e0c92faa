#include "policy/log_throttle.h"

namespace coap_edge::policy {

ThrottleDecision LogThrottle::admit(std::string_view key, Nanos now) {
  if (auto it = index_.find(key); it != index_.end()) {
    Node& node = *it->second;
    if (now - node.last_logged < interval_) {
      ++node.suppressed;
      return {};
    }
    const ThrottleDecision decision{true, node.suppressed, node.last_logged};
    node.last_logged = now;
    node.suppressed = 0;
    // Its line is now the newest: last in eviction order.
    order_.splice(order_.end(), order_, it->second);
    return decision;
  }
  if (index_.size() >= max_keys_) {
    index_.erase(order_.front().key);
    order_.pop_front();
    ++evicted_;
  }
  order_.push_back(Node{std::string(key), now, 0});
  auto last = std::prev(order_.end());
  index_.emplace(last->key, last);
  return ThrottleDecision{true, 0, 0};
}

}  // namespace coap_edge::policy
