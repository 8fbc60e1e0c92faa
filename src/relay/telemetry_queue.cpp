#include "relay/telemetry_queue.h"

#include "common/log.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <limits>
#include <stdexcept>
#include <string_view>

namespace coap_edge::relay {
namespace {

constexpr std::string_view kLogTag = "queue";
// Short: the event loop owns the file alone; waiting longer would only stall the loop if
// something else (an admin's sqlite3 shell) holds the lock.
constexpr int kBusyTimeoutMs = 200;
// "CETQ": tells this file apart from the keystore or any other SQLite file it could be confused
// with by a typo in the configuration, before anything in it is changed.
constexpr std::int32_t kApplicationId = 0x43455451;
// A checkpointed WAL is truncated back to this, so a burst does not leave a large file behind.
constexpr const char* kJournalSizeLimit = "PRAGMA journal_size_limit = 4194304";

// Migrations, applied in order: kMigrations[i] brings user_version i to i + 1. Append, never edit.
constexpr const char* kMigrations[] = {
    // 1: AUTOINCREMENT so that seq is never reused after the queue ran empty (a stale ack must
    // not remove a newer value); size = node + path + payload bytes, because length() counts
    // characters of TEXT; the time index serves expire() and oldest_ms.
    "CREATE TABLE queue ("
    "  seq            INTEGER PRIMARY KEY AUTOINCREMENT,"
    "  node           TEXT NOT NULL,"
    "  path           TEXT NOT NULL,"
    "  time_ms        INTEGER NOT NULL,"
    "  content_format INTEGER NOT NULL CHECK (content_format BETWEEN 0 AND 65535),"
    "  payload        BLOB NOT NULL,"
    "  size           INTEGER NOT NULL CHECK (size >= 0)"
    ");"
    "CREATE INDEX queue_by_time ON queue (time_ms);",
};
constexpr int kSchemaVersion = static_cast<int>(std::size(kMigrations));

using StmtPtr = CPtr<sqlite3_stmt, sqlite3_finalize>;

std::runtime_error openError(const std::filesystem::path& file, std::string_view what) {
  return std::runtime_error(fmt::format("telemetry queue {}: {}", file.string(), what));
}

std::string errorText(sqlite3* db) {
  return std::string(sqlite3_errmsg(db)) + " (" + sqlite3_errstr(sqlite3_extended_errcode(db)) + ")";
}

int exec(sqlite3* db, const char* sql) noexcept { return sqlite3_exec(db, sql, nullptr, nullptr, nullptr); }

StmtPtr prepare(sqlite3* db, std::string_view sql) noexcept {
  sqlite3_stmt* raw = nullptr;
  const int rc = sqlite3_prepare_v3(db, sql.data(), static_cast<int>(sql.size()), SQLITE_PREPARE_PERSISTENT,
                                    &raw, nullptr);
  StmtPtr stmt(raw);
  if (rc != SQLITE_OK) stmt.reset();
  return stmt;
}

StmtPtr mustPrepare(sqlite3* db, std::string_view sql, const std::filesystem::path& file) {
  StmtPtr stmt = prepare(db, sql);
  if (!stmt) throw openError(file, errorText(db));
  return stmt;
}

std::int64_t pragmaInt(sqlite3* db, const char* sql, const std::filesystem::path& file) {
  StmtPtr stmt = mustPrepare(db, sql, file);
  if (sqlite3_step(stmt.get()) != SQLITE_ROW) throw openError(file, errorText(db));
  return sqlite3_column_int64(stmt.get(), 0);
}

// Resets a cached statement when the scope ends, so that it never keeps a read transaction open
// (that would block checkpoints and let the WAL grow) nor points at a caller's buffer.
class Scope {
 public:
  explicit Scope(sqlite3_stmt* stmt) noexcept : stmt_(stmt) {}
  ~Scope() {
    sqlite3_reset(stmt_);
    sqlite3_clear_bindings(stmt_);
  }
  Scope(const Scope&) = delete;
  Scope& operator=(const Scope&) = delete;
  [[nodiscard]] sqlite3_stmt* get() const noexcept { return stmt_; }
  [[nodiscard]] int step() noexcept { return sqlite3_step(stmt_); }

 private:
  sqlite3_stmt* stmt_;
};

// BEGIN IMMEDIATE takes the write lock up front, so a conflict waits in busy_timeout instead of
// failing at COMMIT; ROLLBACK on destruction unless committed.
class Transaction {
 public:
  explicit Transaction(sqlite3* db) noexcept : db_(db), rc_(exec(db, "BEGIN IMMEDIATE")) {}
  ~Transaction() {
    if (rc_ == SQLITE_OK && !done_) (void)exec(db_, "ROLLBACK");
  }
  Transaction(const Transaction&) = delete;
  Transaction& operator=(const Transaction&) = delete;
  [[nodiscard]] bool begun() const noexcept { return rc_ == SQLITE_OK; }
  [[nodiscard]] bool commit() noexcept {
    done_ = exec(db_, "COMMIT") == SQLITE_OK;
    return done_;
  }

 private:
  sqlite3* db_;
  int rc_;
  bool done_ = false;
};

bool bindText(sqlite3_stmt* stmt, int index, std::string_view text) noexcept {
  if (text.size() > static_cast<std::size_t>(std::numeric_limits<int>::max())) return false;
  return sqlite3_bind_text(stmt, index, text.data(), static_cast<int>(text.size()), SQLITE_STATIC) == SQLITE_OK;
}

bool bindBlob(sqlite3_stmt* stmt, int index, std::string_view bytes) noexcept {
  if (bytes.size() > static_cast<std::size_t>(std::numeric_limits<int>::max())) return false;
  // string_view::data() of an empty payload may be null, which SQLite would store as NULL.
  if (bytes.empty()) return sqlite3_bind_zeroblob(stmt, index, 0) == SQLITE_OK;
  return sqlite3_bind_blob(stmt, index, bytes.data(), static_cast<int>(bytes.size()), SQLITE_STATIC) == SQLITE_OK;
}

std::string columnBytes(sqlite3_stmt* stmt, int column, bool blob) {
  const void* data = blob ? sqlite3_column_blob(stmt, column) : static_cast<const void*>(sqlite3_column_text(stmt, column));
  const int n = sqlite3_column_bytes(stmt, column);
  if (data == nullptr || n <= 0) return {};
  return std::string(static_cast<const char*>(data), static_cast<std::size_t>(n));
}

std::uint64_t sizeOf(const TelemetryValue& v) noexcept { return v.node.size() + v.path.size() + v.payload.size(); }

// Creating the file ourselves with O_EXCL and 0600 makes it private whatever the umask; SQLite
// then creates -wal and -shm with the database file's mode. A symlink is refused (O_NOFOLLOW).
void createOrCheckFile(const std::filesystem::path& file) {
  const int fd = ::open(file.c_str(), O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
  if (fd >= 0) {
    ::close(fd);
    return;
  }
  if (errno != EEXIST) throw openError(file, fmt::format("cannot create: {}", std::strerror(errno)));
  struct stat st {};
  if (::lstat(file.c_str(), &st) != 0) throw openError(file, fmt::format("cannot stat: {}", std::strerror(errno)));
  if (!S_ISREG(st.st_mode)) throw openError(file, "not a regular file");
}

// Called once the file is known to be ours, so a wrong path never changes someone else's file.
void tightenMode(const std::filesystem::path& file) {
  struct stat st {};
  if (::stat(file.c_str(), &st) != 0) throw openError(file, fmt::format("cannot stat: {}", std::strerror(errno)));
  if ((st.st_mode & 077) != 0) {
    // Node values can be personal data (presence, meters): never readable by other users.
    if (::chmod(file.c_str(), 0600) != 0) {
      throw openError(file, fmt::format("is accessible to group/others and chmod failed: {}", std::strerror(errno)));
    }
    CE_LOG_WARN("{} was accessible to group/others (mode {:o}); changed to 0600", file.string(), st.st_mode & 0777);
  }
}

void checkIdentity(sqlite3* db, const std::filesystem::path& file) {
  const std::int64_t app = pragmaInt(db, "PRAGMA application_id", file);
  const std::int64_t version = pragmaInt(db, "PRAGMA user_version", file);
  if (app == kApplicationId) {
    if (version > kSchemaVersion) {
      throw openError(file, fmt::format("schema version {} is newer than this build understands ({}); "
                                        "use the coap-edge version that wrote it",
                                        version, kSchemaVersion));
    }
    return;
  }
  // A fresh file has neither; anything else belongs to someone else and is left untouched.
  const std::int64_t tables = pragmaInt(db, "SELECT count(*) FROM sqlite_schema", file);
  if (app != 0 || version != 0 || tables != 0) throw openError(file, "not a coap-edge telemetry queue");
}

void migrate(sqlite3* db, const std::filesystem::path& file) {
  if (pragmaInt(db, "PRAGMA user_version", file) == kSchemaVersion) return;
  Transaction tx(db);
  if (!tx.begun()) throw openError(file, "cannot lock for schema upgrade: " + errorText(db));
  const std::int64_t version = pragmaInt(db, "PRAGMA user_version", file);
  for (std::int64_t v = version; v < kSchemaVersion; ++v) {
    if (exec(db, kMigrations[v]) != SQLITE_OK) {
      throw openError(file, fmt::format("schema upgrade to version {} failed: {}", v + 1, errorText(db)));
    }
  }
  const std::string set = fmt::format("PRAGMA application_id = {}; PRAGMA user_version = {}", kApplicationId,
                                      kSchemaVersion);
  if (exec(db, set.c_str()) != SQLITE_OK || !tx.commit()) {
    throw openError(file, "schema upgrade failed: " + errorText(db));
  }
}

}  // namespace

TelemetryQueue::~TelemetryQueue() = default;

TelemetryQueue TelemetryQueue::open(const std::filesystem::path& file, QueueLimits limits) {
  createOrCheckFile(file);
  TelemetryQueue q;
  q.path_ = file;
  q.limits_ = limits;
  sqlite3* raw = nullptr;
  const int rc = sqlite3_open_v2(file.c_str(), &raw, SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOFOLLOW, nullptr);
  q.db_.reset(raw);  // owned even on failure: open_v2 may return a handle carrying the message
  if (rc != SQLITE_OK) {
    throw openError(file, raw ? errorText(raw) : std::string(sqlite3_errstr(rc)));
  }
  sqlite3* db = q.db_.get();
  sqlite3_extended_result_codes(db, 1);
  sqlite3_busy_timeout(db, kBusyTimeoutMs);
  checkIdentity(db, file);
  tightenMode(file);

  StmtPtr mode = mustPrepare(db, "PRAGMA journal_mode = WAL", file);
  if (sqlite3_step(mode.get()) != SQLITE_ROW) throw openError(file, "cannot set WAL mode: " + errorText(db));
  const std::string got = columnBytes(mode.get(), 0, false);
  mode.reset();
  // Without WAL every commit rewrites a rollback journal: slower, and readers block the writer.
  if (got != "wal") throw openError(file, fmt::format("WAL mode not available (journal_mode is {})", got));
  const char* sync = limits.synchronous_full ? "PRAGMA synchronous = FULL" : "PRAGMA synchronous = NORMAL";
  if (exec(db, sync) != SQLITE_OK || exec(db, kJournalSizeLimit) != SQLITE_OK) {
    throw openError(file, errorText(db));
  }
  migrate(db, file);
  q.prepareAll();
  q.loadTotals();
  if (!q.last_error_.empty()) throw openError(file, q.last_error_);
  return q;
}

void TelemetryQueue::prepareAll() {
  sqlite3* db = db_.get();
  insert_ = mustPrepare(db,
                        "INSERT INTO queue (node, path, time_ms, content_format, payload, size)"
                        " VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                        path_);
  peek_ = mustPrepare(db,
                      "SELECT seq, size, node, path, time_ms, content_format, payload FROM queue"
                      " ORDER BY seq LIMIT ?1",
                      path_);
  delete_seq_ = mustPrepare(db, "DELETE FROM queue WHERE seq = ?1 RETURNING size", path_);
  head_ = mustPrepare(db, "SELECT seq, size FROM queue ORDER BY seq", path_);
  delete_upto_ = mustPrepare(db, "DELETE FROM queue WHERE seq <= ?1", path_);
  expire_ = mustPrepare(db, "DELETE FROM queue WHERE time_ms < ?1 RETURNING size", path_);
  oldest_ = mustPrepare(db, "SELECT min(time_ms) FROM queue", path_);
}

// Recomputes the running totals from the file: at open, and after a failed write, whose effect
// on the file (rolled back or not) is then known for sure.
void TelemetryQueue::loadTotals() {
  StmtPtr totals = prepare(db_.get(), "SELECT count(*), total(size) FROM queue");
  if (!totals || sqlite3_step(totals.get()) != SQLITE_ROW) {
    fail("counting the queue");
    return;
  }
  depth_ = static_cast<std::uint64_t>(sqlite3_column_int64(totals.get(), 0));
  bytes_ = static_cast<std::uint64_t>(sqlite3_column_double(totals.get(), 1));
}

void TelemetryQueue::fail(const char* what) const {
  last_error_ = errorText(db_.get());
  ++counters_.errors;
  CE_LOG_ERROR("{}: {} failed: {}", path_.string(), what, last_error_);
}

bool TelemetryQueue::evictOldest(std::uint64_t need, std::uint64_t& count, std::uint64_t& freed) {
  std::int64_t last = -1;
  {
    Scope head(head_.get());
    int rc = SQLITE_ROW;
    while (freed < need && (rc = head.step()) == SQLITE_ROW) {
      last = sqlite3_column_int64(head.get(), 0);
      freed += static_cast<std::uint64_t>(sqlite3_column_int64(head.get(), 1));
      ++count;
    }
    if (rc != SQLITE_ROW && rc != SQLITE_DONE) return false;
  }
  if (last < 0) return true;
  Scope del(delete_upto_.get());
  return sqlite3_bind_int64(del.get(), 1, last) == SQLITE_OK && del.step() == SQLITE_DONE;
}

PushResult TelemetryQueue::push(const std::vector<TelemetryValue>& values, std::int64_t now_ms) {
  PushResult result;
  result.seqs.assign(values.size(), 0);
  if (values.empty()) return result;
  const std::uint64_t max = limits_.max_bytes;

  // Decide in memory which values enter, so that the transaction only does what was decided.
  std::vector<bool> take(values.size(), false);
  std::uint64_t kept = 0;
  std::size_t dropped_in_batch = 0;
  if (limits_.when_full == QueueLimits::WhenFull::drop_oldest) {
    bool cut = false;  // once a value does not fit, every older one of the batch is older still
    for (std::size_t i = values.size(); i-- > 0;) {
      const std::uint64_t size = sizeOf(values[i]);
      if (size > max) {
        ++result.refused;
      } else if (cut || kept + size > max) {
        cut = true;
        ++dropped_in_batch;
      } else {
        kept += size;
        take[i] = true;
      }
    }
  } else {
    bool full = false;  // nothing after a refused value enters: no newer value skips over it
    for (std::size_t i = 0; i < values.size(); ++i) {
      const std::uint64_t size = sizeOf(values[i]);
      if (size > max || full || bytes_ + kept + size > max) {
        full = full || size <= max;
        ++result.refused;
      } else {
        kept += size;
        take[i] = true;
      }
    }
  }

  std::uint64_t expired = 0, expired_bytes = 0, evicted = 0, evicted_bytes = 0;
  std::size_t stored = 0;
  const char* failed = nullptr;
  {
    Transaction tx(db_.get());
    if (!tx.begun()) failed = "begin";
    if (failed == nullptr && bytes_ + kept > max) {
      // Values past their age go first: they would be dropped anyway, fresher ones are worth more.
      const std::int64_t cutoff = now_ms - static_cast<std::int64_t>(limits_.max_age.count()) * 1000;
      Scope ex(expire_.get());
      int rc = sqlite3_bind_int64(ex.get(), 1, cutoff) == SQLITE_OK ? ex.step() : SQLITE_MISUSE;
      for (; rc == SQLITE_ROW; rc = ex.step()) {
        ++expired;
        expired_bytes += static_cast<std::uint64_t>(sqlite3_column_int64(ex.get(), 0));
      }
      if (rc != SQLITE_DONE) failed = "expiring";
    }
    const std::uint64_t remaining = bytes_ - std::min(bytes_, expired_bytes);
    if (failed == nullptr && remaining + kept > max &&
        !evictOldest(remaining + kept - max, evicted, evicted_bytes)) {
      failed = "dropping the oldest";
    }
    for (std::size_t i = 0; failed == nullptr && i < values.size(); ++i) {
      if (!take[i]) continue;
      const TelemetryValue& v = values[i];
      Scope ins(insert_.get());
      if (!bindText(ins.get(), 1, v.node) || !bindText(ins.get(), 2, v.path) ||
          sqlite3_bind_int64(ins.get(), 3, v.time_ms) != SQLITE_OK ||
          sqlite3_bind_int(ins.get(), 4, v.content_format) != SQLITE_OK || !bindBlob(ins.get(), 5, v.payload) ||
          sqlite3_bind_int64(ins.get(), 6, static_cast<std::int64_t>(sizeOf(v))) != SQLITE_OK ||
          ins.step() != SQLITE_DONE) {
        failed = "insert";
        break;
      }
      result.seqs[i] = static_cast<std::uint64_t>(sqlite3_last_insert_rowid(db_.get()));
      ++stored;
    }
    if (failed == nullptr && !tx.commit()) failed = "commit";
    if (failed != nullptr) fail(failed);  // before the rollback, which would replace the message
  }
  if (failed != nullptr) {
    loadTotals();
    PushResult error;
    error.seqs.assign(values.size(), 0);
    error.error = last_error_;
    return error;
  }
  depth_ = depth_ - expired - evicted + stored;
  bytes_ = bytes_ - expired_bytes - evicted_bytes + kept;
  result.stored = stored;
  result.dropped_oldest = dropped_in_batch + evicted;
  counters_.pushed += stored;
  counters_.expired += expired;
  counters_.dropped_full += result.dropped_oldest;
  counters_.refused_full += result.refused;
  return result;
}

std::vector<QueuedValue> TelemetryQueue::peek(std::size_t max_values, std::size_t max_bytes) const {
  std::vector<QueuedValue> out;
  if (max_values == 0) return out;
  Scope scope(peek_.get());
  const auto limit = static_cast<std::int64_t>(std::min<std::size_t>(max_values, std::numeric_limits<std::int64_t>::max()));
  if (sqlite3_bind_int64(scope.get(), 1, limit) != SQLITE_OK) {
    fail("peek");
    return {};
  }
  std::uint64_t bytes = 0;
  int rc;
  while ((rc = scope.step()) == SQLITE_ROW) {
    sqlite3_stmt* s = scope.get();
    const auto size = static_cast<std::uint64_t>(sqlite3_column_int64(s, 1));
    if (!out.empty() && bytes + size > max_bytes) break;
    bytes += size;
    QueuedValue& v = out.emplace_back();
    v.seq = static_cast<std::uint64_t>(sqlite3_column_int64(s, 0));
    v.node = columnBytes(s, 2, false);
    v.path = columnBytes(s, 3, false);
    v.time_ms = sqlite3_column_int64(s, 4);
    v.content_format = static_cast<std::uint16_t>(sqlite3_column_int(s, 5));
    v.payload = columnBytes(s, 6, true);
  }
  if (rc != SQLITE_ROW && rc != SQLITE_DONE) {
    fail("peek");
    return {};
  }
  return out;
}

bool TelemetryQueue::ack(const std::vector<std::uint64_t>& seqs) {
  if (seqs.empty()) return true;
  std::uint64_t removed = 0, removed_bytes = 0;
  const char* failed = nullptr;
  {
    Transaction tx(db_.get());
    if (!tx.begun()) failed = "ack";
    for (std::size_t i = 0; failed == nullptr && i < seqs.size(); ++i) {
      if (seqs[i] == 0 || seqs[i] > static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max())) continue;
      Scope del(delete_seq_.get());
      int rc = sqlite3_bind_int64(del.get(), 1, static_cast<std::int64_t>(seqs[i])) == SQLITE_OK ? del.step()
                                                                                                 : SQLITE_MISUSE;
      for (; rc == SQLITE_ROW; rc = del.step()) {
        ++removed;
        removed_bytes += static_cast<std::uint64_t>(sqlite3_column_int64(del.get(), 0));
      }
      if (rc != SQLITE_DONE) failed = "ack";
    }
    if (failed == nullptr && !tx.commit()) failed = "ack commit";
    if (failed != nullptr) fail(failed);
  }
  if (failed != nullptr) {
    loadTotals();
    return false;
  }
  depth_ -= removed;
  bytes_ -= removed_bytes;
  counters_.acked += removed;
  return true;
}

std::size_t TelemetryQueue::expire(std::int64_t now_ms) {
  const std::int64_t max_age_ms = static_cast<std::int64_t>(limits_.max_age.count()) * 1000;
  const std::int64_t cutoff = now_ms - max_age_ms;
  std::uint64_t removed = 0, removed_bytes = 0;
  bool ok = true;
  {
    // One statement is its own transaction: all expired rows go, or none.
    Scope ex(expire_.get());
    int rc = sqlite3_bind_int64(ex.get(), 1, cutoff) == SQLITE_OK ? ex.step() : SQLITE_MISUSE;
    for (; rc == SQLITE_ROW; rc = ex.step()) {
      ++removed;
      removed_bytes += static_cast<std::uint64_t>(sqlite3_column_int64(ex.get(), 0));
    }
    if (rc != SQLITE_DONE) {
      ok = false;
      fail("expire");
    }
  }
  if (!ok) {
    loadTotals();
    return 0;
  }
  depth_ -= removed;
  bytes_ -= removed_bytes;
  counters_.expired += removed;
  return removed;
}

TelemetryQueue::Stats TelemetryQueue::stats() const {
  Stats s = counters_;
  s.depth = depth_;
  s.bytes = bytes_;
  if (depth_ > 0) {
    Scope scope(oldest_.get());
    const int rc = scope.step();
    if (rc == SQLITE_ROW && sqlite3_column_type(scope.get(), 0) != SQLITE_NULL) {
      s.oldest_ms = sqlite3_column_int64(scope.get(), 0);
    } else if (rc != SQLITE_ROW) {
      fail("stats");
      s.errors = counters_.errors;
    }
  }
  return s;
}

}  // namespace coap_edge::relay
