#pragma once
// Duplicate detection for requests (RFC 7252 §4.5, issue 7): the answers the most recent
// requests of one session got, so that a retransmitted or duplicated request (same Message ID,
// same token, same type) is answered again with the same response without running the
// application a second time. libcoap 4.3.5 does this only for requests to its proxy resource:
// every other retransmission of a CON whose piggybacked answer was lost reaches the handler.
//
// Bounded per session: at most kMaxEntries answers and kMaxBytes (the entries themselves plus
// their strings), oldest evicted first; an entry expires after EXCHANGE_LIFETIME (CON, 247 s)
// or NON_LIFETIME (NON, 145 s) with the default transmission parameters. An answer larger than
// kMaxBytes is not kept (only piggybacked answers of the agent's own resources can be that
// large: GETs of /status, /nodes, /.well-known/core, lookups, which RFC 7252 lets a server
// process again); relayed answers are remembered as their empty ACK while they are separate
// responses, and as themselves once they ride on the ACK (server.h kPiggybackWait).
// Freed with the session (SessionEntry). Plain values only: no libcoap here.
//
// Bounded across sessions too: every RecentResponses of a server draws on one
// RecentResponsesBudget (`[limits] duplicate_max_bytes`), so the worst case is that budget, not
// kMaxBytes x max_sessions (40 MB at the default 10,000 sessions). An answer that does not fit
// is not kept and counted: a copy of that request would be served again, as without
// deduplication.

#include "coap/message.h"

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace coap_edge::coap {

/// What the RecentResponses of all sessions may hold together. Not thread-safe: one event loop.
class RecentResponsesBudget {
 public:
  static constexpr std::size_t kDefaultLimit = 4 * 1024 * 1024;
  explicit RecentResponsesBudget(std::size_t limit = kDefaultLimit) noexcept : limit_(limit) {}
  RecentResponsesBudget(const RecentResponsesBudget&) = delete;
  RecentResponsesBudget& operator=(const RecentResponsesBudget&) = delete;

  /// A lower limit frees nothing at once: answers already kept expire as usual.
  void setLimit(std::size_t limit) noexcept { limit_ = limit; }
  /// Reserves `n` bytes; false (and counted as refused) if that would pass the limit.
  [[nodiscard]] bool take(std::size_t n) noexcept;
  void give(std::size_t n) noexcept;

  [[nodiscard]] std::size_t used() const noexcept { return used_; }
  [[nodiscard]] std::size_t limit() const noexcept { return limit_; }
  /// Answers not kept because the budget was spent.
  [[nodiscard]] std::uint64_t refused() const noexcept { return refused_; }

 private:
  std::size_t limit_;
  std::size_t used_ = 0;
  std::uint64_t refused_ = 0;
};

class RecentResponses {
 public:
  using Clock = std::chrono::steady_clock;
  static constexpr std::size_t kMaxEntries = 4;
  static constexpr std::size_t kMaxBytes = 4096;
  /// RFC 7252 §4.8.2 with the default ACK_TIMEOUT, ACK_RANDOM_FACTOR, MAX_RETRANSMIT.
  static constexpr std::chrono::seconds kExchangeLifetime{247};
  static constexpr std::chrono::seconds kNonLifetime{145};

  RecentResponses() = default;
  ~RecentResponses();
  RecentResponses(const RecentResponses&) = delete;
  RecentResponses& operator=(const RecentResponses&) = delete;
  /// Moves the answers and the budget they are charged to; the source is left empty.
  RecentResponses(RecentResponses&& other) noexcept;
  RecentResponses& operator=(RecentResponses&& other) noexcept;

  /// Charges what this instance keeps to `budget` (which must outlive it) from now on. Only
  /// while empty: what is kept was charged where it was taken.
  void setBudget(RecentResponsesBudget* budget) noexcept;

  /// The answer remembered for this message if it is a duplicate, else nullptr. Drops expired
  /// entries first. The pointer is valid until the next call of remember() or clear().
  [[nodiscard]] const Response* find(std::uint16_t mid, bool confirmable, std::string_view token, Clock::time_point now);
  /// Remembers the answer to a message (replacing one for the same message). False if it is too
  /// large to keep or the budget is spent (then nothing is kept for that message).
  bool remember(std::uint16_t mid, bool confirmable, std::string_view token, const Response& answer,
                Clock::time_point now);
  void clear() noexcept;

  /// Bytes held on the heap: the vector's entry slots and the strings beyond their small-string
  /// buffers; at most kMaxBytes, 0 when empty.
  [[nodiscard]] std::size_t bytes() const noexcept;
  [[nodiscard]] std::size_t size() const noexcept { return entries_.size(); }

 private:
  struct Entry {
    Clock::time_point at;
    std::uint16_t mid = 0;
    bool confirmable = true;
    std::string token;
    Response response;
    std::size_t heap = 0;  ///< heap bytes of its strings
  };
  /// What the strings of the kept answers may take: kMaxBytes less the entries' slots.
  static const std::size_t kStringBudget;
  void expire(Clock::time_point now);
  void eraseAt(std::size_t index);

  std::vector<Entry> entries_;  ///< oldest first; no buffer while empty
  std::size_t heap_ = 0;
  RecentResponsesBudget* budget_ = nullptr;  ///< charged with bytes(); none: unbounded across sessions
};

}  // namespace coap_edge::coap
