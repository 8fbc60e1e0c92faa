#include "keystore/keystore.h"

#include "common/log.h"
#include "keystore/sqlite_util.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <stdexcept>
#include <unordered_set>

namespace coap_edge::keystore {
namespace {

constexpr std::string_view kLogTag = "keystore";
constexpr int kBusyTimeoutMs = 2000;

// Migrations, applied in order: kMigrations[i] brings user_version i to i + 1. Append, never edit.
constexpr const char* kMigrations[] = {
    // 1: identities with their PSK. WITHOUT ROWID makes the per-handshake lookup one B-tree probe.
    "CREATE TABLE identities ("
    "  identity   TEXT PRIMARY KEY NOT NULL,"
    "  psk        BLOB NOT NULL CHECK (typeof(psk) = 'blob' AND length(psk) BETWEEN 16 AND 64),"
    "  created_at INTEGER NOT NULL,"
    "  revoked_at INTEGER"
    ") WITHOUT ROWID;",
};
constexpr int kSchemaVersion = static_cast<int>(std::size(kMigrations));

std::int64_t nowSeconds() {
  return std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now().time_since_epoch()).count();
}

std::runtime_error openError(const std::filesystem::path& path, std::string_view what) {
  return std::runtime_error(fmt::format("keystore {}: {}", path.string(), what));
}

std::string errnoText() { return std::strerror(errno); }

// Creates each missing component with mode 0700 (never wider: the directory holds key material).
// An existing directory keeps its mode: under systemd, StateDirectory= owns it.
void ensureDirectory(const std::filesystem::path& dir) {
  std::filesystem::path partial;
  for (const auto& part : dir) {
    partial /= part;
    if (::mkdir(partial.c_str(), 0700) != 0 && errno != EEXIST) {
      throw openError(dir, fmt::format("cannot create directory {}: {}", partial.string(), errnoText()));
    }
  }
  struct stat st {};
  if (::stat(dir.c_str(), &st) != 0 || !S_ISDIR(st.st_mode)) throw openError(dir, "not a directory");
}

// A file holding keys that is readable by group or others is tightened, loudly.
void tightenMode(const std::filesystem::path& file, bool required) {
  struct stat st {};
  if (::lstat(file.c_str(), &st) != 0) {
    if (required) throw openError(file, "cannot stat: " + errnoText());
    return;
  }
  if (!S_ISREG(st.st_mode)) throw openError(file, "not a regular file");
  if ((st.st_mode & 077) == 0) return;
  if (::chmod(file.c_str(), 0600) != 0) {
    CE_LOG_WARN("{} is accessible to group/others (mode {:o}) and chmod failed: {}", file.string(),
                st.st_mode & 0777, errnoText());
    return;
  }
  CE_LOG_WARN("{} was accessible to group/others (mode {:o}); changed to 0600", file.string(), st.st_mode & 0777);
}

// Creating the file ourselves with O_EXCL and 0600 means it is never world-readable, whatever
// the umask; SQLite then creates -wal and -shm with the database file's mode.
void createFile(const std::filesystem::path& file) {
  const int fd = ::open(file.c_str(), O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
  if (fd >= 0) {
    ::close(fd);
    return;
  }
  if (errno != EEXIST) throw openError(file, "cannot create: " + errnoText());
}

detail::StmtPtr mustPrepare(sqlite3* db, std::string_view sql, const std::filesystem::path& file) {
  detail::StmtPtr stmt = detail::prepare(db, sql);
  if (!stmt) throw openError(file, detail::errorText(db));
  return stmt;
}

int readUserVersion(sqlite3* db, const std::filesystem::path& file) {
  detail::StmtPtr stmt = mustPrepare(db, "PRAGMA user_version", file);
  if (sqlite3_step(stmt.get()) != SQLITE_ROW) {
    throw openError(file, "cannot read schema version: " + detail::errorText(db));
  }
  return sqlite3_column_int(stmt.get(), 0);
}

void migrate(sqlite3* db, const std::filesystem::path& file) {
  if (readUserVersion(db, file) == kSchemaVersion) return;
  detail::Transaction tx(db);
  if (!tx.begun()) throw openError(file, "cannot lock for schema upgrade: " + detail::errorText(db));
  // Read again under the write lock: another process may have migrated in the meantime.
  const int version = readUserVersion(db, file);
  if (version > kSchemaVersion) {
    throw openError(file, fmt::format("schema version {} is newer than this build understands ({}); "
                                      "use the coap-edge version that wrote it",
                                      version, kSchemaVersion));
  }
  for (int v = version; v < kSchemaVersion; ++v) {
    if (detail::exec(db, kMigrations[v]) != SQLITE_OK) {
      throw openError(file, fmt::format("schema upgrade to version {} failed: {}", v + 1, detail::errorText(db)));
    }
  }
  const std::string set_version = fmt::format("PRAGMA user_version = {}", kSchemaVersion);
  if (detail::exec(db, set_version.c_str()) != SQLITE_OK || tx.commit() != SQLITE_OK) {
    throw openError(file, "schema upgrade failed: " + detail::errorText(db));
  }
  if (version != kSchemaVersion) CE_LOG_INFO("{}: schema {} -> {}", file.string(), version, kSchemaVersion);
}

}  // namespace

struct Keystore::Impl {
  std::filesystem::path path;
  detail::DbPtr db;  // declared first, destroyed last
  detail::StmtPtr insert;
  detail::StmtPtr lookup;
  detail::StmtPtr revoke;
  detail::StmtPtr revoked_at;
  detail::StmtPtr list;
  detail::StmtPtr revoked;
  detail::StmtPtr data_version;
  std::string last_error;
  std::uint64_t last_data_version = 0;

  void storageError(std::string_view what) {
    last_error = detail::errorText(db.get());
    CE_LOG_ERROR("{}: {} failed: {}", path.string(), what, last_error);
  }
};

Keystore Keystore::open(const std::filesystem::path& state_dir) {
  ensureDirectory(state_dir);
  auto impl = std::make_unique<Impl>();
  impl->path = state_dir / kFileName;
  const auto& file = impl->path;
  createFile(file);
  tightenMode(file, true);

  sqlite3* raw = nullptr;
  // No SQLITE_OPEN_CREATE: createFile() made it with the right mode.
  const int flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOFOLLOW | SQLITE_OPEN_EXRESCODE;
  const int rc = sqlite3_open_v2(file.c_str(), &raw, flags, nullptr);
  impl->db.reset(raw);
  if (rc != SQLITE_OK) {
    throw openError(file, raw ? detail::errorText(raw) : std::string(sqlite3_errstr(rc)));
  }
  sqlite3* db = impl->db.get();
  sqlite3_busy_timeout(db, kBusyTimeoutMs);
  // Hardening: the file is data, never code (no schema-triggered functions, no writable schema).
  sqlite3_db_config(db, SQLITE_DBCONFIG_DEFENSIVE, 1, nullptr);
  sqlite3_db_config(db, SQLITE_DBCONFIG_TRUSTED_SCHEMA, 0, nullptr);

  {
    // WAL: the agent keeps reading while coap-edge-ctl writes. The mode is persistent in the file.
    detail::StmtPtr wal = mustPrepare(db, "PRAGMA journal_mode = WAL", file);
    if (sqlite3_step(wal.get()) != SQLITE_ROW) throw openError(file, "cannot enable WAL: " + detail::errorText(db));
    const auto* mode = reinterpret_cast<const char*>(sqlite3_column_text(wal.get(), 0));
    if (mode == nullptr || std::string_view(mode) != "wal") {
      throw openError(file, fmt::format("cannot enable WAL (journal mode is {})", mode ? mode : "unknown"));
    }
  }
  migrate(db, file);
  // -wal/-shm inherit the database's mode when SQLite creates them; ones left over from a
  // database that used to be wider are tightened here.
  tightenMode(std::filesystem::path(file.string() + "-wal"), false);
  tightenMode(std::filesystem::path(file.string() + "-shm"), false);

  impl->insert = mustPrepare(db, "INSERT INTO identities (identity, psk, created_at) VALUES (?1, ?2, ?3)", file);
  impl->lookup = mustPrepare(db, "SELECT psk FROM identities WHERE identity = ?1 AND revoked_at IS NULL", file);
  impl->revoke = mustPrepare(
      db, "UPDATE identities SET revoked_at = ?2 WHERE identity = ?1 AND revoked_at IS NULL", file);
  impl->revoked_at = mustPrepare(db, "SELECT revoked_at FROM identities WHERE identity = ?1", file);
  impl->list = mustPrepare(db, "SELECT identity, created_at, revoked_at FROM identities ORDER BY identity", file);
  impl->revoked = mustPrepare(
      db, "SELECT identity FROM identities WHERE revoked_at IS NOT NULL ORDER BY identity", file);
  impl->data_version = mustPrepare(db, "PRAGMA data_version", file);
  Keystore store(std::move(impl));
  store.impl_->last_data_version = store.changeCounter();
  return store;
}

Keystore::Keystore(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Keystore::~Keystore() = default;
Keystore::Keystore(Keystore&&) noexcept = default;
Keystore& Keystore::operator=(Keystore&&) noexcept = default;

const std::string& Keystore::lastError() const noexcept { return impl_->last_error; }
const std::filesystem::path& Keystore::path() const noexcept { return impl_->path; }

AddResult Keystore::add(std::string_view identity, tls::SecretBytes key) {
  impl_->last_error.clear();
  if (!isValidIdentity(identity)) return AddResult::invalid_identity;
  if (!isValidKeyLength(key.size())) return AddResult::invalid_key;
  detail::StatementScope insert(impl_->insert.get());
  if (!insert.bindText(1, identity) || !insert.bindBlob(2, key.span()) || !insert.bindInt64(3, nowSeconds())) {
    impl_->storageError("add");
    return AddResult::storage_error;
  }
  const int rc = insert.step();
  if (rc == SQLITE_DONE) {
    CE_LOG_INFO("identity {} added", identity);
    return AddResult::ok;
  }
  if (rc == SQLITE_CONSTRAINT_PRIMARYKEY) return AddResult::exists;
  impl_->storageError("add");
  return AddResult::storage_error;
}

ImportResult Keystore::importAll(std::vector<ImportEntry> entries) {
  impl_->last_error.clear();
  ImportResult result;
  const auto fail = [&result](ImportError error, std::size_t index) {
    result.error = error;
    result.index = index;
    result.added = 0;
    return result;
  };
  detail::Transaction tx(impl_->db.get());
  if (!tx.begun()) {
    impl_->storageError("import (begin)");
    return fail(ImportError::storage_error, 0);
  }
  const std::int64_t now = nowSeconds();
  std::unordered_set<std::string_view> seen;
  seen.reserve(entries.size());
  // One pass, so the entry reported is the first one with any problem.
  for (std::size_t i = 0; i < entries.size(); ++i) {
    const auto& [identity, key] = entries[i];
    if (!isValidIdentity(identity)) return fail(ImportError::invalid_identity, i);
    if (!isValidKeyLength(key.size())) return fail(ImportError::invalid_key, i);
    if (!seen.insert(identity).second) return fail(ImportError::duplicate_in_batch, i);
    detail::StatementScope insert(impl_->insert.get());
    if (!insert.bindText(1, identity) || !insert.bindBlob(2, key.span()) || !insert.bindInt64(3, now)) {
      impl_->storageError("import");
      return fail(ImportError::storage_error, i);
    }
    const int rc = insert.step();
    if (rc == SQLITE_CONSTRAINT_PRIMARYKEY) return fail(ImportError::exists, i);
    if (rc != SQLITE_DONE) {
      impl_->storageError("import");
      return fail(ImportError::storage_error, i);
    }
  }
  if (tx.commit() != SQLITE_OK) {
    impl_->storageError("import (commit)");
    return fail(ImportError::storage_error, entries.empty() ? 0 : entries.size() - 1);
  }
  result.added = entries.size();
  CE_LOG_INFO("{} identities imported", result.added);
  return result;
}

std::optional<tls::SecretBytes> Keystore::lookupPsk(std::string_view identity) noexcept {
  // Identities come from the network here: anything that could never have been stored is
  // turned away before touching SQLite.
  if (!isValidIdentity(identity)) return std::nullopt;
  detail::StatementScope lookup(impl_->lookup.get());
  if (!lookup.bindText(1, identity)) return std::nullopt;
  const int rc = lookup.step();
  if (rc == SQLITE_ROW) {
    const auto* bytes = static_cast<const std::uint8_t*>(sqlite3_column_blob(lookup.get(), 0));
    const auto size = static_cast<std::size_t>(sqlite3_column_bytes(lookup.get(), 0));
    if (bytes == nullptr || !isValidKeyLength(size)) return std::nullopt;
    return tls::SecretBytes(std::span<const std::uint8_t>(bytes, size));
  }
  if (rc != SQLITE_DONE) {
    // No allocation-free way to keep the message here; log it, fail closed.
    CE_LOG_ERROR("{}: PSK lookup failed: {}", impl_->path.string(), sqlite3_errmsg(impl_->db.get()));
  }
  return std::nullopt;
}

RevokeResult Keystore::revoke(std::string_view identity) {
  impl_->last_error.clear();
  if (!isValidIdentity(identity)) return RevokeResult::unknown;
  {
    detail::StatementScope update(impl_->revoke.get());
    if (!update.bindText(1, identity) || !update.bindInt64(2, nowSeconds()) || update.step() != SQLITE_DONE) {
      impl_->storageError("revoke");
      return RevokeResult::storage_error;
    }
    if (sqlite3_changes(impl_->db.get()) == 1) {
      CE_LOG_NOTICE("identity {} revoked", identity);
      return RevokeResult::ok;
    }
  }
  detail::StatementScope query(impl_->revoked_at.get());
  if (!query.bindText(1, identity)) {
    impl_->storageError("revoke");
    return RevokeResult::storage_error;
  }
  const int rc = query.step();
  if (rc == SQLITE_ROW) return RevokeResult::already_revoked;
  if (rc == SQLITE_DONE) return RevokeResult::unknown;
  impl_->storageError("revoke");
  return RevokeResult::storage_error;
}

std::vector<IdentityInfo> Keystore::list() {
  impl_->last_error.clear();
  std::vector<IdentityInfo> out;
  detail::StatementScope query(impl_->list.get());
  int rc = SQLITE_ROW;
  while ((rc = query.step()) == SQLITE_ROW) {
    IdentityInfo info;
    const auto* text = reinterpret_cast<const char*>(sqlite3_column_text(query.get(), 0));
    info.identity.assign(text ? text : "", static_cast<std::size_t>(sqlite3_column_bytes(query.get(), 0)));
    info.created_at = sqlite3_column_int64(query.get(), 1);
    if (sqlite3_column_type(query.get(), 2) != SQLITE_NULL) info.revoked_at = sqlite3_column_int64(query.get(), 2);
    out.push_back(std::move(info));
  }
  if (rc != SQLITE_DONE) {
    impl_->storageError("list");
    out.clear();
  }
  return out;
}

std::vector<std::string> Keystore::revokedIdentities() {
  impl_->last_error.clear();
  std::vector<std::string> out;
  detail::StatementScope query(impl_->revoked.get());
  int rc = SQLITE_ROW;
  while ((rc = query.step()) == SQLITE_ROW) {
    const auto* text = reinterpret_cast<const char*>(sqlite3_column_text(query.get(), 0));
    out.emplace_back(text ? text : "", static_cast<std::size_t>(sqlite3_column_bytes(query.get(), 0)));
  }
  if (rc != SQLITE_DONE) {
    impl_->storageError("listing revoked identities");
    out.clear();
  }
  return out;
}

std::uint64_t Keystore::changeCounter() noexcept {
  detail::StatementScope query(impl_->data_version.get());
  if (query.step() == SQLITE_ROW) {
    impl_->last_data_version = static_cast<std::uint64_t>(sqlite3_column_int64(query.get(), 0));
  } else {
    CE_LOG_WARN("{}: reading data_version failed: {}", impl_->path.string(), sqlite3_errmsg(impl_->db.get()));
  }
  return impl_->last_data_version;
}

}  // namespace coap_edge::keystore
