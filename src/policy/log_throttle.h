#pragma once
// Rate-limited logging of repeated events (handshake failures): at most one line per key
// (identity or address) per interval; what is held back is counted and reported with the next
// line that gets through ("... (12 more since 14:02:11)"). Pure logic like rate_limit.h: every
// call takes `now`, monotonic nanoseconds, so tests drive it with a fake clock.
//
// Memory is bounded: at most `max_keys` keys; a new key in a full table evicts the key whose
// last line is the oldest (its held-back count is lost, which only shortens a later summary).

#include "policy/rate_limit.h"

#include <cstddef>
#include <cstdint>
#include <list>
#include <string>
#include <string_view>
#include <unordered_map>

namespace coap_edge::policy {

struct ThrottleDecision {
  bool log = false;              ///< write this line
  std::uint64_t suppressed = 0;  ///< when log: lines held back for this key since its last line
  Nanos since = 0;               ///< when suppressed > 0: monotonic time of that last line
};

class LogThrottle {
 public:
  LogThrottle(Nanos interval, std::size_t max_keys) noexcept
      : interval_(interval < 1 ? 1 : interval), max_keys_(max_keys == 0 ? 1 : max_keys) {}

  /// One event for `key` at `now`: whether to log it, and what to report with it. O(1).
  [[nodiscard]] ThrottleDecision admit(std::string_view key, Nanos now);

  [[nodiscard]] std::size_t size() const noexcept { return index_.size(); }
  [[nodiscard]] std::uint64_t evicted() const noexcept { return evicted_; }

 private:
  struct Node {
    std::string key;
    Nanos last_logged = 0;
    std::uint64_t suppressed = 0;
  };
  using List = std::list<Node>;

  Nanos interval_;
  std::size_t max_keys_;
  List order_;  ///< oldest last line first
  std::unordered_map<std::string_view, List::iterator> index_;  ///< views into order_ keys
  std::uint64_t evicted_ = 0;
};

}  // namespace coap_edge::policy
