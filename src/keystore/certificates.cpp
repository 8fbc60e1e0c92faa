// Certificates coap-edge-ctl issued or signed, and their revocation (by serial or by identity).
// The agent reads revokedCertificateSerials() and refuses and closes sessions that present one.
#include "keystore/keystore_impl.h"

namespace coap_edge::keystore {
namespace {

constexpr std::string_view kLogTag = "keystore";

bool validProfile(std::string_view p) { return p == "client" || p == "server"; }
bool validOrigin(std::string_view o) { return o == "issued" || o == "csr"; }

}  // namespace

CertAddResult Keystore::recordCertificate(const CertificateInfo& info) {
  impl_->last_error.clear();
  const auto serial = normalizeSerial(info.serial);
  if (!serial || *serial != info.serial || !isValidIdentity(info.identity) || !validProfile(info.profile) ||
      !validOrigin(info.origin)) {
    return CertAddResult::invalid;
  }
  detail::StatementScope insert(impl_->cert_insert.get());
  if (!insert.bindText(1, info.serial) || !insert.bindText(2, info.identity) || !insert.bindText(3, info.profile) ||
      !insert.bindText(4, info.origin) || !insert.bindInt64(5, info.not_before) ||
      !insert.bindInt64(6, info.not_after) || !insert.bindInt64(7, info.issued_at)) {
    impl_->storageError("recording a certificate");
    return CertAddResult::storage_error;
  }
  const int rc = insert.step();
  if (rc == SQLITE_DONE) {
    CE_LOG_INFO("certificate {} for {} recorded", info.serial, info.identity);
    return CertAddResult::ok;
  }
  if (rc == SQLITE_CONSTRAINT_PRIMARYKEY) return CertAddResult::exists;
  impl_->storageError("recording a certificate");
  return CertAddResult::storage_error;
}

std::vector<CertificateInfo> Keystore::listCertificates() {
  impl_->last_error.clear();
  std::vector<CertificateInfo> out;
  detail::StatementScope query(impl_->cert_list.get());
  int rc = SQLITE_ROW;
  while ((rc = query.step()) == SQLITE_ROW) {
    sqlite3_stmt* s = query.get();
    CertificateInfo c;
    c.serial = columnText(s, 0);
    c.identity = columnText(s, 1);
    c.profile = columnText(s, 2);
    c.origin = columnText(s, 3);
    c.not_before = sqlite3_column_int64(s, 4);
    c.not_after = sqlite3_column_int64(s, 5);
    c.issued_at = sqlite3_column_int64(s, 6);
    if (sqlite3_column_type(s, 7) != SQLITE_NULL) c.revoked_at = sqlite3_column_int64(s, 7);
    out.push_back(std::move(c));
  }
  if (rc != SQLITE_DONE) {
    impl_->storageError("listing certificates");
    out.clear();
  }
  return out;
}

RevokeResult Keystore::revokeCertificate(std::string_view serial) {
  impl_->last_error.clear();
  {
    detail::StatementScope update(impl_->cert_revoke.get());
    if (!update.bindText(1, serial) || !update.bindInt64(2, impl_->now()) || update.step() != SQLITE_DONE) {
      impl_->storageError("revoking a certificate");
      return RevokeResult::storage_error;
    }
    if (sqlite3_changes(impl_->db.get()) == 1) {
      CE_LOG_NOTICE("certificate {} revoked", serial);
      return RevokeResult::ok;
    }
  }
  detail::StatementScope query(impl_->cert_state.get());
  if (!query.bindText(1, serial)) {
    impl_->storageError("revoking a certificate");
    return RevokeResult::storage_error;
  }
  const int rc = query.step();
  if (rc == SQLITE_ROW) return RevokeResult::already_revoked;
  if (rc == SQLITE_DONE) return RevokeResult::unknown;
  impl_->storageError("revoking a certificate");
  return RevokeResult::storage_error;
}

BulkRevoke Keystore::revokeCertificatesOf(std::string_view identity) {
  impl_->last_error.clear();
  BulkRevoke out;
  if (!isValidIdentity(identity)) {
    out.result = RevokeResult::unknown;
    return out;
  }
  {
    detail::StatementScope update(impl_->cert_revoke_identity.get());
    if (!update.bindText(1, identity) || !update.bindInt64(2, impl_->now()) || update.step() != SQLITE_DONE) {
      impl_->storageError("revoking certificates");
      return out;
    }
    out.revoked = static_cast<std::size_t>(sqlite3_changes(impl_->db.get()));
  }
  if (out.revoked > 0) {
    CE_LOG_NOTICE("{} certificates of {} revoked", out.revoked, identity);
    out.result = RevokeResult::ok;
    return out;
  }
  detail::StatementScope count(impl_->cert_count_identity.get());
  if (!count.bindText(1, identity) || count.step() != SQLITE_ROW) {
    impl_->storageError("revoking certificates");
    return out;
  }
  out.result = sqlite3_column_int64(count.get(), 0) > 0 ? RevokeResult::already_revoked : RevokeResult::unknown;
  return out;
}

std::vector<std::string> Keystore::revokedCertificateSerials() {
  impl_->last_error.clear();
  std::vector<std::string> out;
  detail::StatementScope query(impl_->cert_revoked.get());
  int rc = SQLITE_ROW;
  while ((rc = query.step()) == SQLITE_ROW) out.push_back(columnText(query.get(), 0));
  if (rc != SQLITE_DONE) {
    impl_->storageError("listing revoked certificates");
    out.clear();
  }
  return out;
}

}  // namespace coap_edge::keystore
