#include "keystore/sqlite_util.h"

#include <limits>

namespace coap_edge::keystore::detail {

StmtPtr prepare(sqlite3* db, std::string_view sql) noexcept {
  sqlite3_stmt* raw = nullptr;
  const int rc = sqlite3_prepare_v3(db, sql.data(), static_cast<int>(sql.size()), SQLITE_PREPARE_PERSISTENT,
                                    &raw, nullptr);
  StmtPtr stmt(raw);
  if (rc != SQLITE_OK) stmt.reset();
  return stmt;
}

int exec(sqlite3* db, const char* sql) noexcept { return sqlite3_exec(db, sql, nullptr, nullptr, nullptr); }

bool StatementScope::bindText(int index, std::string_view text) noexcept {
  if (text.size() > static_cast<std::size_t>(std::numeric_limits<int>::max())) return false;
  return sqlite3_bind_text(stmt_, index, text.data(), static_cast<int>(text.size()), SQLITE_STATIC) == SQLITE_OK;
}

bool StatementScope::bindBlob(int index, std::span<const std::uint8_t> bytes) noexcept {
  if (bytes.size() > static_cast<std::size_t>(std::numeric_limits<int>::max())) return false;
  return sqlite3_bind_blob(stmt_, index, bytes.data(), static_cast<int>(bytes.size()), SQLITE_STATIC) == SQLITE_OK;
}

bool StatementScope::bindInt64(int index, std::int64_t value) noexcept {
  return sqlite3_bind_int64(stmt_, index, value) == SQLITE_OK;
}

Transaction::Transaction(sqlite3* db) noexcept : db_(db), rc_(exec(db, "BEGIN IMMEDIATE")) {}

Transaction::~Transaction() {
  if (rc_ == SQLITE_OK && !done_) (void)exec(db_, "ROLLBACK");
}

int Transaction::commit() noexcept {
  const int rc = exec(db_, "COMMIT");
  if (rc == SQLITE_OK) done_ = true;
  return rc;
}

std::string errorText(sqlite3* db) {
  const int code = sqlite3_extended_errcode(db);
  return std::string(sqlite3_errmsg(db)) + " (" + sqlite3_errstr(code) + ")";
}

}  // namespace coap_edge::keystore::detail
