#include "keystore/keystore.h"

#include "common/log.h"
#include "keystore/keystore_impl.h"
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
    // 2: key rotation (the key generation, the previous key and the end of its grace period)
    // and the certificates coap-edge-ctl issued or signed, with their revocations.
    "ALTER TABLE identities ADD COLUMN generation INTEGER NOT NULL DEFAULT 1;"
    "ALTER TABLE identities ADD COLUMN previous_psk BLOB"
    "  CHECK (previous_psk IS NULL OR (typeof(previous_psk) = 'blob' AND length(previous_psk) BETWEEN 16 AND 64));"
    "ALTER TABLE identities ADD COLUMN grace_until INTEGER;"
    "CREATE TABLE certificates ("
    "  serial     TEXT PRIMARY KEY NOT NULL CHECK (length(serial) BETWEEN 1 AND 40),"
    "  identity   TEXT NOT NULL,"
    "  profile    TEXT NOT NULL CHECK (profile IN ('client', 'server')),"
    "  origin     TEXT NOT NULL CHECK (origin IN ('issued', 'csr')),"
    "  not_before INTEGER NOT NULL,"
    "  not_after  INTEGER NOT NULL,"
    "  issued_at  INTEGER NOT NULL,"
    "  revoked_at INTEGER"
    ") WITHOUT ROWID;"
    "CREATE INDEX certificates_by_identity ON certificates (identity);",
};
constexpr int kSchemaVersion = static_cast<int>(std::size(kMigrations));

std::int64_t systemSeconds() {
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

void Keystore::Impl::storageError(std::string_view what) {
  last_error = detail::errorText(db.get());
  CE_LOG_ERROR("{}: {} failed: {}", path.string(), what, last_error);
}

std::string columnText(sqlite3_stmt* stmt, int column) {
  const auto* text = reinterpret_cast<const char*>(sqlite3_column_text(stmt, column));
  return std::string(text ? text : "", static_cast<std::size_t>(sqlite3_column_bytes(stmt, column)));
}

void Keystore::Impl::prepareAll() {
  sqlite3* d = db.get();
  const auto& file = path;
  insert = mustPrepare(d, "INSERT INTO identities (identity, psk, created_at) VALUES (?1, ?2, ?3)", file);
  lookup = mustPrepare(d, "SELECT psk FROM identities WHERE identity = ?1 AND revoked_at IS NULL", file);
  revoke = mustPrepare(d, "UPDATE identities SET revoked_at = ?2 WHERE identity = ?1 AND revoked_at IS NULL", file);
  revoked_at = mustPrepare(d, "SELECT revoked_at FROM identities WHERE identity = ?1", file);
  list = mustPrepare(d,
                     "SELECT identity, created_at, revoked_at, generation,"
                     " CASE WHEN previous_psk IS NOT NULL THEN grace_until END"
                     " FROM identities ORDER BY identity",
                     file);
  revoked = mustPrepare(d, "SELECT identity FROM identities WHERE revoked_at IS NOT NULL ORDER BY identity", file);
  data_version = mustPrepare(d, "PRAGMA data_version", file);
  // ?2 = now: a previous key whose grace has ended is never returned, purged or not.
  lookup_keys = mustPrepare(d,
                            "SELECT psk, generation, CASE WHEN grace_until > ?2 THEN previous_psk END, grace_until"
                            " FROM identities WHERE identity = ?1 AND revoked_at IS NULL",
                            file);
  rotate_read = mustPrepare(d,
                            "SELECT revoked_at, generation, previous_psk IS NOT NULL AND grace_until > ?2"
                            " FROM identities WHERE identity = ?1",
                            file);
  rotate_write = mustPrepare(d,
                             "UPDATE identities SET previous_psk = CASE WHEN ?3 > ?4 THEN psk END, psk = ?2,"
                             " generation = generation + 1, grace_until = CASE WHEN ?3 > ?4 THEN ?3 END"
                             " WHERE identity = ?1 AND revoked_at IS NULL",
                             file);
  rotations = mustPrepare(d,
                          "SELECT identity, generation, CASE WHEN previous_psk IS NOT NULL THEN grace_until END"
                          " FROM identities WHERE generation > 1 AND revoked_at IS NULL ORDER BY identity",
                          file);
  purge = mustPrepare(d,
                      "UPDATE identities SET previous_psk = NULL, grace_until = NULL"
                      " WHERE previous_psk IS NOT NULL AND grace_until <= ?1",
                      file);
  cert_insert = mustPrepare(d,
                            "INSERT INTO certificates (serial, identity, profile, origin, not_before, not_after,"
                            " issued_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                            file);
  cert_list = mustPrepare(d,
                          "SELECT serial, identity, profile, origin, not_before, not_after, issued_at, revoked_at"
                          " FROM certificates ORDER BY identity, issued_at, serial",
                          file);
  cert_revoke = mustPrepare(
      d, "UPDATE certificates SET revoked_at = ?2 WHERE serial = ?1 AND revoked_at IS NULL", file);
  cert_revoke_identity = mustPrepare(
      d, "UPDATE certificates SET revoked_at = ?2 WHERE identity = ?1 AND revoked_at IS NULL", file);
  cert_state = mustPrepare(d, "SELECT revoked_at FROM certificates WHERE serial = ?1", file);
  cert_count_identity = mustPrepare(d, "SELECT count(*) FROM certificates WHERE identity = ?1", file);
  cert_revoked = mustPrepare(d, "SELECT serial FROM certificates WHERE revoked_at IS NOT NULL ORDER BY serial", file);
}

Keystore Keystore::open(const std::filesystem::path& state_dir, Clock clock) {
  ensureDirectory(state_dir);
  auto impl = std::make_unique<Impl>();
  impl->clock = clock ? std::move(clock) : Clock(systemSeconds);
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
  // Deleted and overwritten content (a purged or rotated key) is zeroed in the file, not just
  // unlinked from the B-tree.
  if (detail::exec(db, "PRAGMA secure_delete = ON") != SQLITE_OK) {
    throw openError(file, "cannot enable secure_delete: " + detail::errorText(db));
  }

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

  impl->prepareAll();
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
  if (!insert.bindText(1, identity) || !insert.bindBlob(2, key.span()) || !insert.bindInt64(3, impl_->now())) {
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
  const std::int64_t now = impl_->now();
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
    if (!update.bindText(1, identity) || !update.bindInt64(2, impl_->now()) || update.step() != SQLITE_DONE) {
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
    info.identity = columnText(query.get(), 0);
    info.created_at = sqlite3_column_int64(query.get(), 1);
    if (sqlite3_column_type(query.get(), 2) != SQLITE_NULL) info.revoked_at = sqlite3_column_int64(query.get(), 2);
    info.generation = static_cast<std::uint32_t>(sqlite3_column_int64(query.get(), 3));
    if (sqlite3_column_type(query.get(), 4) != SQLITE_NULL) info.grace_until = sqlite3_column_int64(query.get(), 4);
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
    out.push_back(columnText(query.get(), 0));
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
