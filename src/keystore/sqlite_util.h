#pragma once
// Internal to the keystore part: RAII owners for SQLite handles and the small helpers the
// keystore's statements share. Nothing here throws except errorText() (allocation).

#include "common/c_ptr.h"

#include <sqlite3.h>

#include <cstdint>
#include <span>
#include <string>
#include <string_view>

namespace coap_edge::keystore::detail {

// close_v2 defers the close until the last statement is finalized, so the order in which
// owners are destroyed is tidiness, not correctness.
using DbPtr = CPtr<sqlite3, sqlite3_close_v2>;
using StmtPtr = CPtr<sqlite3_stmt, sqlite3_finalize>;

/// Compiles `sql` once (SQLITE_PREPARE_PERSISTENT). @returns null on error (see errorText()).
[[nodiscard]] StmtPtr prepare(sqlite3* db, std::string_view sql) noexcept;

/// Runs statements without results (schema, PRAGMAs, BEGIN/COMMIT). @returns SQLITE_OK or a code.
[[nodiscard]] int exec(sqlite3* db, const char* sql) noexcept;

/// Resets a cached statement and clears its bindings when the scope ends, so that it never keeps
/// a read transaction open (that would freeze data_version and block checkpoints) and never
/// keeps pointing at a key buffer that is about to be wiped.
class StatementScope {
 public:
  explicit StatementScope(sqlite3_stmt* stmt) noexcept : stmt_(stmt) {}
  ~StatementScope() {
    sqlite3_reset(stmt_);
    sqlite3_clear_bindings(stmt_);
  }
  StatementScope(const StatementScope&) = delete;
  StatementScope& operator=(const StatementScope&) = delete;

  [[nodiscard]] bool bindText(int index, std::string_view text) noexcept;
  /// Binds without copying (SQLITE_STATIC): the bytes must outlive the scope.
  [[nodiscard]] bool bindBlob(int index, std::span<const std::uint8_t> bytes) noexcept;
  [[nodiscard]] bool bindInt64(int index, std::int64_t value) noexcept;
  [[nodiscard]] int step() noexcept { return sqlite3_step(stmt_); }
  [[nodiscard]] sqlite3_stmt* get() const noexcept { return stmt_; }

 private:
  sqlite3_stmt* stmt_;
};

/// BEGIN IMMEDIATE on construction (takes the write lock up front, so a concurrent writer waits
/// in busy_timeout instead of failing at COMMIT); ROLLBACK on destruction unless committed.
class Transaction {
 public:
  explicit Transaction(sqlite3* db) noexcept;
  ~Transaction();
  Transaction(const Transaction&) = delete;
  Transaction& operator=(const Transaction&) = delete;

  [[nodiscard]] bool begun() const noexcept { return rc_ == SQLITE_OK; }
  [[nodiscard]] int beginCode() const noexcept { return rc_; }
  /// @returns SQLITE_OK or the COMMIT error (the destructor then rolls back).
  [[nodiscard]] int commit() noexcept;

 private:
  sqlite3* db_;
  int rc_;
  bool done_ = false;
};

/// "<sqlite message> (<code name>)" for the connection's last error.
[[nodiscard]] std::string errorText(sqlite3* db);

}  // namespace coap_edge::keystore::detail
