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
// process again); relayed answers are separate responses, remembered as their empty ACK.
// Freed with the session (SessionEntry). Plain values only: no libcoap here.

#include "coap/message.h"

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace coap_edge::coap {

class RecentResponses {
 public:
  using Clock = std::chrono::steady_clock;
  static constexpr std::size_t kMaxEntries = 4;
  static constexpr std::size_t kMaxBytes = 4096;
  /// RFC 7252 §4.8.2 with the default ACK_TIMEOUT, ACK_RANDOM_FACTOR, MAX_RETRANSMIT.
  static constexpr std::chrono::seconds kExchangeLifetime{247};
  static constexpr std::chrono::seconds kNonLifetime{145};

  /// The answer remembered for this message if it is a duplicate, else nullptr. Drops expired
  /// entries first. The pointer is valid until the next call of remember() or clear().
  [[nodiscard]] const Response* find(std::uint16_t mid, bool confirmable, std::string_view token, Clock::time_point now);
  /// Remembers the answer to a message (replacing one for the same message). False if it is too
  /// large to keep (then nothing is kept for that message).
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
};

}  // namespace coap_edge::coap
