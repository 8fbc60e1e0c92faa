#pragma once
// Internal to the keystore part: the state behind Keystore, shared by keystore.cpp (identities,
// schema), rotation.cpp (key rotation) and certificates.cpp (issued certificates).

#include "common/log.h"
#include "keystore/keystore.h"
#include "keystore/sqlite_util.h"

#include <cstdint>
#include <filesystem>
#include <string>
#include <string_view>

namespace coap_edge::keystore {

struct Keystore::Impl {
  std::filesystem::path path;
  Clock clock;
  detail::DbPtr db;  // declared first, destroyed last
  // identities
  detail::StmtPtr insert;
  detail::StmtPtr lookup;
  detail::StmtPtr revoke;
  detail::StmtPtr revoked_at;
  detail::StmtPtr list;
  detail::StmtPtr revoked;
  detail::StmtPtr data_version;
  // rotation
  detail::StmtPtr lookup_keys;
  detail::StmtPtr rotate_read;
  detail::StmtPtr rotate_write;
  detail::StmtPtr rotations;
  detail::StmtPtr purge;
  // certificates
  detail::StmtPtr cert_insert;
  detail::StmtPtr cert_list;
  detail::StmtPtr cert_revoke;
  detail::StmtPtr cert_revoke_identity;
  detail::StmtPtr cert_state;
  detail::StmtPtr cert_count_identity;
  detail::StmtPtr cert_revoked;
  std::string last_error;
  std::uint64_t last_data_version = 0;

  [[nodiscard]] std::int64_t now() const { return clock(); }
  void storageError(std::string_view what);
  /// Prepares every cached statement (after the schema is current). Throws naming the file.
  void prepareAll();
};

/// Text of a TEXT column (empty for NULL).
[[nodiscard]] std::string columnText(sqlite3_stmt* stmt, int column);

}  // namespace coap_edge::keystore
