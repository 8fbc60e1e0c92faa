#pragma once
// The durable telemetry queue (issue #5, DESIGN.md "relay/"): values that nodes report are kept
// in an SQLite file until the upstream acknowledges them, so that they reach it at least once,
// in order per node, across upstream outages, agent crashes (kill -9) and reboots.
//
// Order: every stored value gets a sequence number (seq) from an ever-increasing counter that
// survives reopening and is never reused, even after the queue ran empty, so a late or repeated
// ack can never remove a newer value. seq order is arrival order, hence per-node order too.
//
// Durability: push() is one transaction per batch. With synchronous=FULL (default) a value is on
// disk when push() returns (survives power loss); with NORMAL it survives a crash of the agent but
// the last batches may be lost on power loss (WAL not fsynced per commit).
//
// Size: max_bytes bounds the sum over stored values of payload + node + path bytes (the measure
// stats().bytes reports), not the file, which adds SQLite's per-row and per-page overhead.
//
// Only open() throws. push/peek/ack/expire return errors as values and count them, so that the
// event loop survives a full or failing disk; lastError() says what SQLite reported.
// One owner, one thread: the class does no locking of its own.

#include "common/c_ptr.h"

#include <sqlite3.h>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

namespace coap_edge::relay {

/// One value as a node reported it.
struct TelemetryValue {
  std::string node;                 ///< node id (the registry's)
  std::string path;                 ///< resource path on the node, e.g. "sensors/temp"
  std::int64_t time_ms = 0;         ///< unix time in ms when the gateway got it
  std::uint16_t content_format = 0; ///< CoAP Content-Format of `payload`
  std::string payload;              ///< bytes as received (not necessarily text)
  friend bool operator==(const TelemetryValue&, const TelemetryValue&) = default;
};

/// A value as stored, with its place in the queue.
struct QueuedValue : TelemetryValue {
  std::uint64_t seq = 0;  ///< > 0, increasing in push order, never reused
  friend bool operator==(const QueuedValue&, const QueuedValue&) = default;
};

/// Bounds of the queue, as configured.
struct QueueLimits {
  enum class WhenFull : std::uint8_t {
    drop_oldest,  ///< the newest values win: oldest queued values (any node) are deleted
    drop_newest,  ///< the queued values win: new values are refused
  };
  std::uint64_t max_bytes = 16u * 1024u * 1024u;       ///< see "Size" above
  std::chrono::seconds max_age{7 * 24 * 3600};         ///< expire() drops older values
  WhenFull when_full = WhenFull::drop_oldest;
  bool synchronous_full = true;                        ///< false: PRAGMA synchronous=NORMAL
};

/// What push() did with a batch. stored + dropped_in_batch + refused = number of values pushed.
struct PushResult {
  std::size_t stored = 0;            ///< values now in the queue
  std::size_t dropped_oldest = 0;    ///< values that left (or never entered) to make room for newer ones
  std::size_t refused = 0;           ///< new values refused: drop_newest while full, or larger than max_bytes
  /// One entry per pushed value, in the same order: its seq, or 0 if it was not stored.
  std::vector<std::uint64_t> seqs;
  std::string error;                 ///< SQLite's message; non-empty means nothing of the batch was stored
  [[nodiscard]] bool ok() const noexcept { return error.empty(); }
};

/// The durable FIFO. Movable, not copyable; a moved-from queue may only be destroyed or assigned.
class TelemetryQueue {
 public:
  struct Stats {
    std::uint64_t depth = 0;                ///< values queued
    std::uint64_t bytes = 0;                ///< sum of payload + node + path sizes
    std::optional<std::int64_t> oldest_ms;  ///< smallest time_ms queued, nullopt if empty
    // Counters since open():
    std::uint64_t pushed = 0;        ///< values stored by push()
    std::uint64_t acked = 0;         ///< values removed by ack()
    std::uint64_t dropped_full = 0;  ///< drop_oldest: values deleted (or not stored) for newer ones
    std::uint64_t refused_full = 0;  ///< values refused: drop_newest while full, or oversize
    std::uint64_t expired = 0;       ///< values removed by expire()
    std::uint64_t errors = 0;        ///< SQLite failures in push/peek/ack/expire/stats
  };

  /// Opens `file`, creating it with mode 0600 (the parent directory must exist; a wider mode on an
  /// existing file is tightened). Sets WAL mode, synchronous, busy_timeout; creates or upgrades
  /// the schema. @throws std::runtime_error naming the file and SQLite's message.
  [[nodiscard]] static TelemetryQueue open(const std::filesystem::path& file, QueueLimits limits);

  TelemetryQueue(TelemetryQueue&&) noexcept = default;
  TelemetryQueue& operator=(TelemetryQueue&&) noexcept = default;
  TelemetryQueue(const TelemetryQueue&) = delete;
  TelemetryQueue& operator=(const TelemetryQueue&) = delete;
  ~TelemetryQueue();

  /// Appends `values` in order, in one transaction (one fsync per batch). When full: drop_oldest
  /// deletes the oldest values until the batch fits (of a batch larger than max_bytes, the newest
  /// values that fit are kept); drop_newest stores the values that fit and refuses the first one
  /// that does not and every later one, so what is stored never skips over a refused value.
  /// A value larger than max_bytes on its own is always refused. When room must be made, values
  /// older than max_age go first (counted as expired), before any valid value is dropped.
  /// @param[in] now_ms  unix ms, the clock expiry is measured against.
  [[nodiscard]] PushResult push(const std::vector<TelemetryValue>& values, std::int64_t now_ms);

  /// The oldest values, in seq order: at most `max_values`, and no more than `max_bytes` (same
  /// measure as Stats::bytes) except that a non-empty queue always yields at least one value, so
  /// an oversize value cannot block the queue. Does not remove anything.
  /// @returns empty if the queue is empty, `max_values` is 0, or on error (counted).
  [[nodiscard]] std::vector<QueuedValue> peek(std::size_t max_values, std::size_t max_bytes) const;

  /// Removes exactly the values with these seqs (the upstream acknowledged them). Unknown or
  /// repeated seqs are ignored. @returns false on a storage error (nothing removed).
  [[nodiscard]] bool ack(const std::vector<std::uint64_t>& seqs);

  /// Removes values whose time_ms is older than now_ms - max_age. @returns how many.
  std::size_t expire(std::int64_t now_ms);

  [[nodiscard]] Stats stats() const;
  /// Values queued now (kept as a running total: no query).
  [[nodiscard]] std::uint64_t depth() const noexcept { return depth_; }
  [[nodiscard]] const QueueLimits& limits() const noexcept { return limits_; }
  [[nodiscard]] const std::filesystem::path& path() const noexcept { return path_; }
  /// SQLite's message for the last failure, empty if none yet.
  [[nodiscard]] const std::string& lastError() const noexcept { return last_error_; }

 private:
  using DbPtr = CPtr<sqlite3, sqlite3_close_v2>;
  using StmtPtr = CPtr<sqlite3_stmt, sqlite3_finalize>;

  TelemetryQueue() = default;
  void prepareAll();
  void loadTotals();
  void fail(const char* what) const;
  [[nodiscard]] bool evictOldest(std::uint64_t need, std::uint64_t& count, std::uint64_t& freed);

  std::filesystem::path path_;
  QueueLimits limits_;
  // close_v2 defers the close until the statements are finalized, so member order is tidiness.
  DbPtr db_;
  StmtPtr insert_;
  StmtPtr peek_;
  StmtPtr delete_seq_;
  StmtPtr head_;
  StmtPtr delete_upto_;
  StmtPtr expire_;
  StmtPtr oldest_;
  std::uint64_t depth_ = 0;
  std::uint64_t bytes_ = 0;
  mutable Stats counters_;  ///< only the counters are used; depth/bytes live above
  mutable std::string last_error_;
};

}  // namespace coap_edge::relay
