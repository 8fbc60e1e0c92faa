// PSK rotation: the previous key and its grace period (Keystore::rotate and friends), and the
// choice between the two keys during the grace period (GraceKeyChooser).
#include "keystore/grace.h"
#include "keystore/keystore_impl.h"

#include <algorithm>
#include <limits>

namespace coap_edge::keystore {
namespace {

constexpr std::string_view kLogTag = "keystore";
constexpr int kBusyTimeoutMs = 2000;

bool validBlob(sqlite3_stmt* stmt, int column) {
  return sqlite3_column_type(stmt, column) == SQLITE_BLOB &&
         isValidKeyLength(static_cast<std::size_t>(sqlite3_column_bytes(stmt, column)));
}

tls::SecretBytes blobSecret(sqlite3_stmt* stmt, int column) {
  const auto* bytes = static_cast<const std::uint8_t*>(sqlite3_column_blob(stmt, column));
  const auto size = static_cast<std::size_t>(sqlite3_column_bytes(stmt, column));
  return tls::SecretBytes(std::span<const std::uint8_t>(bytes, size));
}

std::uint32_t generationOf(sqlite3_stmt* stmt, int column) {
  const std::int64_t g = sqlite3_column_int64(stmt, column);
  return static_cast<std::uint32_t>(std::clamp<std::int64_t>(g, 1, std::numeric_limits<std::uint32_t>::max()));
}

}  // namespace

std::optional<PskKeys> Keystore::lookupKeys(std::string_view identity) noexcept {
  if (!isValidIdentity(identity)) return std::nullopt;
  detail::StatementScope lookup(impl_->lookup_keys.get());
  if (!lookup.bindText(1, identity) || !lookup.bindInt64(2, impl_->now())) return std::nullopt;
  const int rc = lookup.step();
  if (rc == SQLITE_ROW) {
    sqlite3_stmt* s = lookup.get();
    if (!validBlob(s, 0)) return std::nullopt;
    PskKeys keys;
    keys.current = blobSecret(s, 0);
    keys.generation = generationOf(s, 1);
    if (validBlob(s, 2) && keys.generation > 1) {
      keys.previous = blobSecret(s, 2);
      keys.grace_until = sqlite3_column_int64(s, 3);
    }
    return keys;
  }
  if (rc != SQLITE_DONE) {
    CE_LOG_ERROR("{}: PSK lookup failed: {}", impl_->path.string(), sqlite3_errmsg(impl_->db.get()));
  }
  return std::nullopt;
}

Rotation Keystore::rotate(std::string_view identity, tls::SecretBytes key, std::chrono::seconds grace) {
  impl_->last_error.clear();
  Rotation out;
  if (!isValidIdentity(identity)) {
    out.result = RotateResult::unknown;
    return out;
  }
  if (!isValidKeyLength(key.size())) {
    out.result = RotateResult::invalid_key;
    return out;
  }
  detail::Transaction tx(impl_->db.get());
  if (!tx.begun()) {
    impl_->storageError("rotate (begin)");
    return out;
  }
  const std::int64_t now = impl_->now();
  std::uint32_t generation = 0;
  {
    detail::StatementScope read(impl_->rotate_read.get());
    if (!read.bindText(1, identity) || !read.bindInt64(2, now)) {
      impl_->storageError("rotate");
      return out;
    }
    const int rc = read.step();
    if (rc == SQLITE_DONE) {
      out.result = RotateResult::unknown;
      return out;
    }
    if (rc != SQLITE_ROW) {
      impl_->storageError("rotate");
      return out;
    }
    if (sqlite3_column_type(read.get(), 0) != SQLITE_NULL) {
      out.result = RotateResult::revoked;
      return out;
    }
    generation = generationOf(read.get(), 1);
    out.dropped_previous = sqlite3_column_int(read.get(), 2) != 0;
  }
  const std::int64_t grace_until = now + std::max<std::int64_t>(grace.count(), 0);
  {
    detail::StatementScope write(impl_->rotate_write.get());
    if (!write.bindText(1, identity) || !write.bindBlob(2, key.span()) || !write.bindInt64(3, grace_until) ||
        !write.bindInt64(4, now) || write.step() != SQLITE_DONE) {
      impl_->storageError("rotate");
      return out;
    }
  }
  if (tx.commit() != SQLITE_OK) {
    impl_->storageError("rotate (commit)");
    return out;
  }
  out.result = RotateResult::ok;
  out.generation = generation + 1;
  out.grace_until = grace_until;
  CE_LOG_NOTICE("identity {} rotated to key generation {}; the previous key works for {} s more", identity,
                out.generation, grace_until - now);
  return out;
}

std::vector<RotationState> Keystore::rotations() {
  impl_->last_error.clear();
  std::vector<RotationState> out;
  detail::StatementScope query(impl_->rotations.get());
  int rc = SQLITE_ROW;
  while ((rc = query.step()) == SQLITE_ROW) {
    RotationState r;
    r.identity = columnText(query.get(), 0);
    r.generation = generationOf(query.get(), 1);
    if (sqlite3_column_type(query.get(), 2) != SQLITE_NULL) r.grace_until = sqlite3_column_int64(query.get(), 2);
    out.push_back(std::move(r));
  }
  if (rc != SQLITE_DONE) {
    impl_->storageError("listing rotations");
    out.clear();
  }
  return out;
}

std::optional<std::size_t> Keystore::purgeExpiredKeys() noexcept {
  impl_->last_error.clear();
  sqlite3* db = impl_->db.get();
  // The agent's event loop must never wait for coap-edge-ctl's write lock: fail fast instead.
  sqlite3_busy_timeout(db, 0);
  int rc = SQLITE_OK;
  {
    detail::StatementScope purge(impl_->purge.get());
    rc = purge.bindInt64(1, impl_->now()) ? purge.step() : SQLITE_ERROR;
  }
  const int changed = sqlite3_changes(db);
  sqlite3_busy_timeout(db, kBusyTimeoutMs);
  if (rc != SQLITE_DONE) {
    if ((rc & 0xFF) == SQLITE_BUSY || (rc & 0xFF) == SQLITE_LOCKED) return std::nullopt;
    try {
      impl_->storageError("purging expired keys");
    } catch (...) {
    }
    return std::nullopt;
  }
  if (changed > 0) {
    // Move the zeroed pages into the main file now rather than at the next auto-checkpoint;
    // PASSIVE never waits for readers.
    (void)sqlite3_wal_checkpoint_v2(db, nullptr, SQLITE_CHECKPOINT_PASSIVE, nullptr, nullptr);
    CE_LOG_NOTICE("{} previous keys reached the end of their grace period and were deleted", changed);
  }
  return static_cast<std::size_t>(changed);
}

std::uint32_t GraceKeyChooser::choose(std::string_view identity, std::uint32_t current,
                                      std::uint32_t previous) const {
  const auto it = last_.find(std::string(identity));
  if (it == last_.end()) return previous;
  const Outcome& o = it->second;
  if (o.generation == current) return o.ok ? current : previous;
  if (o.generation == previous) return o.ok ? previous : current;
  return previous;
}

void GraceKeyChooser::record(std::string_view identity, std::uint32_t generation, bool ok) {
  last_[std::string(identity)] = Outcome{generation, ok};
}

void GraceKeyChooser::prune(const std::function<bool(const std::string&)>& keep) {
  std::erase_if(last_, [&keep](const auto& entry) { return !keep(entry.first); });
}

}  // namespace coap_edge::keystore
