#pragma once
// Request coalescing for the reverse proxy (DESIGN.md "relay/", issue #5): while a request to a
// node is in flight, identical requests (same cacheKey()) wait for its result instead of each
// waking the node again. Pure logic, no I/O, single-threaded (the event loop's thread).
//
// Every caller, the first included, registers a waiter; complete() hands the one result to each
// waiter exactly once. The first caller is the one that must send the request (Join::first).

#include <cstddef>
#include <cstdint>
#include <functional>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

namespace coap_edge::relay {

/// What join() did.
enum class Join : std::uint8_t {
  first,   ///< no request was in flight for the key: the caller must start it, then complete() it
  joined,  ///< a request is in flight: the waiter will be called when it completes
  full,    ///< refused (too many keys in flight, or too many waiters on this key): waiter dropped
};

/// Bounds of a Coalescer, so that a flood of distinct or identical requests cannot grow it.
struct CoalescerLimits {
  std::size_t max_keys = 1024;             ///< requests in flight at once
  std::size_t max_waiters_per_key = 64;    ///< callers sharing one request, the first included
};

/// In-flight requests by key, each with the callers waiting for its result.
template <typename Result>
class Coalescer {
 public:
  using Waiter = std::function<void(const Result&)>;

  struct Stats {
    std::uint64_t first = 0;          ///< joins that started a request
    std::uint64_t joined = 0;         ///< joins that shared one
    std::uint64_t refused = 0;        ///< joins answered Join::full
    std::uint64_t completed = 0;      ///< complete() calls that found the key
    std::uint64_t waiter_errors = 0;  ///< waiters that threw (caught; the others still ran)
  };

  explicit Coalescer(CoalescerLimits limits = {}) : limits_(limits) {}
  /// New bounds for later joins; what is in flight stays.
  void setLimits(CoalescerLimits limits) { limits_ = limits; }

  Coalescer(const Coalescer&) = delete;
  Coalescer& operator=(const Coalescer&) = delete;

  /// Registers `waiter` for `key`.
  ///
  /// @param[in] key    the request's cacheKey()
  /// @param[in] waiter called once with the result by complete(); may be empty (not called)
  /// @returns first (start the request), joined, or full (refuse the request, e.g. 5.03)
  [[nodiscard]] Join join(const std::string& key, Waiter waiter) {
    auto it = waiting_.find(key);
    if (it == waiting_.end()) {
      if (waiting_.size() >= limits_.max_keys || limits_.max_waiters_per_key == 0) {
        ++stats_.refused;
        return Join::full;
      }
      waiting_.emplace(key, std::vector<Waiter>{}).first->second.push_back(std::move(waiter));
      ++stats_.first;
      return Join::first;
    }
    if (it->second.size() >= limits_.max_waiters_per_key) {
      ++stats_.refused;
      return Join::full;
    }
    it->second.push_back(std::move(waiter));
    ++stats_.joined;
    return Join::joined;
  }

  /// Ends the request for `key`: calls each of its waiters once with `r`, in join order.
  ///
  /// The waiters are taken out before any is called, so a waiter may join() or complete() any
  /// key, this one included: a join of this key from a waiter starts a new request (Join::first).
  /// A waiter that throws is counted and the others still run.
  ///
  /// @returns how many waiters were called; 0 if nothing was in flight for `key`
  std::size_t complete(const std::string& key, const Result& r) {
    auto it = waiting_.find(key);
    if (it == waiting_.end()) return 0;
    std::vector<Waiter> waiters = std::move(it->second);
    waiting_.erase(it);  // `key` may refer into the caller's data, never into ours: safe after this
    ++stats_.completed;
    std::size_t called = 0;
    for (auto& waiter : waiters) {
      if (!waiter) continue;
      ++called;
      try {
        waiter(r);
      } catch (...) {
        // A waiter's failure is its own; the others must still get their answer.
        ++stats_.waiter_errors;
      }
    }
    return called;
  }

  /// Requests in flight.
  [[nodiscard]] std::size_t inFlight() const noexcept { return waiting_.size(); }
  /// Waiters on `key` (0 if not in flight).
  [[nodiscard]] std::size_t waiters(const std::string& key) const {
    const auto it = waiting_.find(key);
    return it == waiting_.end() ? 0 : it->second.size();
  }
  [[nodiscard]] const Stats& stats() const noexcept { return stats_; }

 private:
  CoalescerLimits limits_;
  std::unordered_map<std::string, std::vector<Waiter>> waiting_;
  Stats stats_;
};

}  // namespace coap_edge::relay
