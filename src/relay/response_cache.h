#pragma once
// The reverse proxy's response cache (DESIGN.md "relay/", issue #5): RFC 7252 §5.6-5.9 for the
// /nodes/{id}/{path} relay, so that repeated GETs do not wake a sleepy node or spend its radio.
// Pure logic, no I/O, no clock of its own: every call that needs time takes `now` on a monotonic
// clock (the daemon passes steady_clock::now(); tests pass a fake).
//
// Entries are keyed by cacheKey() (everything §5.6 puts in the key for the options we forward),
// kept in one LRU list bounded by bytes and by count, and indexed a second time by node + Uri-Path
// so that §5.9.1 invalidation ("a 2.01/2.02/2.04 to an unsafe request makes that URI's cached
// responses stale") drops every query/Accept variant of the URI without a scan.
//
// Security (RFC 7252 §11.2): an entry stored from a secure exchange is never handed to a requester
// that is not secure; it stays cached for secure requesters.

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <list>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>

#include "coap/message.h"

namespace coap_edge::relay {

using Clock = std::chrono::steady_clock;

/// Max-Age when a response carries none (RFC 7252 §5.10.5).
inline constexpr std::uint32_t kDefaultMaxAge = 60;

/// A response as the cache keeps it. Self-contained: coap::Response has no ETag.
struct CachedResponse {
  coap::Code code = coap::Code::content;
  std::optional<std::uint16_t> content_format;
  std::string payload;
  std::optional<std::string> etag;  ///< opaque, 1-8 bytes on the wire; lets a stale entry be revalidated
};

/// The cache key of a request, or "" when the method is not cacheable (only GET and FETCH are).
///
/// Length-prefixed fields ("<decimal length>:<bytes>"), so no two different requests share a key
/// whatever bytes they carry. The first two fields are the node id and the Uri-Path, so every key
/// of one URI starts with the same prefix (the cache indexes on it). Then the method, Uri-Query,
/// Accept and, for FETCH only (RFC 8132 §2.3), Content-Format and the body; GET ignores the last
/// two since a GET has no payload.
///
/// @param[in] node_id        the node the request is relayed to
/// @param[in] method         the request method
/// @param[in] path           Uri-Path below /nodes/{id}/, as in coap::Request::path
/// @param[in] query          Uri-Query, '&'-joined as in coap::Request::query (order is kept)
/// @param[in] accept         Accept option, if any
/// @param[in] content_format Content-Format of a FETCH body, if any
/// @param[in] fetch_body     the FETCH payload
/// @returns the key, or "" for a method other than GET or FETCH
[[nodiscard]] std::string cacheKey(std::string_view node_id, coap::Method method, std::string_view path,
                                   std::string_view query, std::optional<std::uint16_t> accept,
                                   std::optional<std::uint16_t> content_format, std::string_view fetch_body);

/// Bounds of a ResponseCache.
struct CacheLimits {
  std::size_t max_bytes = 1024 * 1024;     ///< estimated bytes of all entries
  std::size_t max_entries = 4096;
  std::size_t max_entry_bytes = 64 * 1024;  ///< a larger response is relayed but not stored
};

/// What a lookup found.
struct Lookup {
  enum Kind { miss, fresh, stale };
  Kind kind = miss;
  /// fresh or stale: the stored response; valid until the next non-const call on the cache.
  const CachedResponse* response = nullptr;
  /// fresh: the Max-Age to send, whole seconds left (rounded down, RFC 7252 §5.6.1); else 0.
  std::uint32_t max_age_left = 0;
};

/// Responses of relayed GET/FETCH requests, bounded, LRU. Every operation is O(log n) or better
/// (invalidate* also linear in what they drop).
class ResponseCache {
 public:
  struct Stats {
    std::uint64_t hits = 0;         ///< lookups answered fresh
    std::uint64_t misses = 0;       ///< lookups answered miss (absent, expired without ETag, insecure requester)
    std::uint64_t stale = 0;        ///< lookups answered stale (caller may revalidate)
    std::uint64_t revalidated = 0;  ///< entries made fresh again by a 2.03 Valid
    std::uint64_t stored = 0;       ///< responses stored (new or replacing)
    std::uint64_t evicted = 0;      ///< entries dropped to stay within the limits
    std::uint64_t expired = 0;      ///< entries dropped at lookup: stale and no ETag to revalidate with
    std::uint64_t invalidated = 0;  ///< entries dropped by invalidate() / invalidateNode()
    std::size_t entries = 0;        ///< now
    std::size_t bytes = 0;          ///< now, estimated as for the limits
  };

  /// Fixed per-entry overhead added to key + payload + ETag in the byte estimate (list and index
  /// nodes, the response fields).
  static constexpr std::size_t kEntryOverhead = 160;

  explicit ResponseCache(CacheLimits limits = {});

  ResponseCache(const ResponseCache&) = delete;
  ResponseCache& operator=(const ResponseCache&) = delete;

  /// Looks `key` up.
  ///
  /// @param[in] key              from cacheKey()
  /// @param[in] requester_secure the request came over DTLS; a secure entry is a miss otherwise
  ///                             (and stays cached)
  /// @param[in] now              monotonic time
  /// @returns fresh with the seconds left; stale if expired and it has an ETag (revalidate it, then
  ///          call revalidated() on a 2.03); miss otherwise (an expired entry without ETag is dropped)
  [[nodiscard]] Lookup lookup(std::string_view key, bool requester_secure, Clock::time_point now);

  /// Stores (or replaces) the response for `key` if RFC 7252 §5.6/§5.9 lets it be cached.
  ///
  /// Cacheable: 2.05 Content and 4.xx/5.xx errors; never 2.01/2.02/2.03/2.04. The caller must not
  /// store a 5.04 the gateway made itself (the node never answered). Max-Age 0, or a response larger
  /// than max_entry_bytes (or max_bytes), is not stored and drops the entry the key had, since it
  /// is superseded. Least recently used entries are evicted to stay within the limits.
  ///
  /// @param[in] key     from cacheKey(); "" or a key not made by cacheKey() is never stored
  /// @param[in] r       the response
  /// @param[in] max_age its Max-Age option; absent = kDefaultMaxAge
  /// @param[in] secure  it came over a secure exchange (§11.2)
  /// @param[in] now     monotonic time
  /// @returns true if stored
  bool store(std::string_view key, const CachedResponse& r, std::optional<std::uint32_t> max_age, bool secure,
             Clock::time_point now);

  /// A 2.03 Valid answered the revalidation of `key`'s stored ETag: the entry is fresh again for
  /// `max_age` (absent = kDefaultMaxAge; 0 = valid for this request only, it stays stale).
  ///
  /// @returns false if the key has no entry, or its entry has no ETag
  bool revalidated(std::string_view key, std::optional<std::uint32_t> max_age, Clock::time_point now);

  /// §5.9.1: drops every entry for `path` on `node_id`, whatever its method, query, Accept or body.
  /// @returns how many were dropped
  std::size_t invalidate(std::string_view node_id, std::string_view path);

  /// Drops every entry of `node_id` (the node is gone).
  /// @returns how many were dropped
  std::size_t invalidateNode(std::string_view node_id);

  [[nodiscard]] Stats stats() const;
  [[nodiscard]] const CacheLimits& limits() const noexcept { return limits_; }

 private:
  struct Entry;
  using List = std::list<Entry>;
  /// The entries of one URI, by the key prefix cacheKey() gives node id + path. Ordered, so that
  /// the URIs of one node are adjacent (invalidateNode is a range).
  using Uris = std::map<std::string, std::list<List::iterator>, std::less<>>;

  struct Entry {
    std::string key;
    CachedResponse response;
    Clock::time_point expires;
    bool secure = false;
    std::size_t bytes = 0;
    Uris::iterator uri;                            ///< its URI group
    std::list<List::iterator>::iterator uri_pos;  ///< its place in that group
  };

  void erase(List::iterator it);
  std::size_t eraseUri(Uris::iterator uri);

  CacheLimits limits_;
  List lru_;  ///< most recently used first
  std::unordered_map<std::string_view, List::iterator> index_;  ///< views into lru_ keys
  Uris uris_;
  std::size_t bytes_ = 0;
  Stats stats_;
};

}  // namespace coap_edge::relay
