#pragma once
// The device identity store: PSK identities, their keys (with the previous key of a rotation
// during its grace period), revocations, and the certificates coap-edge-ctl issued or signed, in
// an SQLite file <state_dir>/keystore.db shared by the agent (reads, per DTLS handshake) and
// coap-edge-ctl (writes). WAL mode lets both use it at once; changeCounter() tells the agent
// that ctl committed.
//
// Schema versions (PRAGMA user_version), upgraded in place by open(): 1 = identities and PSKs;
// 2 = key generations and the previous key of a rotation (previous_psk, grace_until), and the
// certificates table. A database written by an older build opens unchanged in meaning.
//
// Errors reachable at run time are values; only open() throws. Keys are never logged. Deleted
// and replaced keys are overwritten in the file (PRAGMA secure_delete).

#include "tls/secret.h"

#include <cstddef>
#include <cstdint>
#include <chrono>
#include <filesystem>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace coap_edge::keystore {

inline constexpr std::size_t kMaxIdentityBytes = 128;
inline constexpr std::size_t kMinKeyBytes = 16;
inline constexpr std::size_t kMaxKeyBytes = 64;
inline constexpr std::string_view kFileName = "keystore.db";

/// 1..128 bytes of printable ASCII without space, ',' or '"': identities travel in CSV, JSON
/// and as the DTLS PSK identity, and must mean the same thing in all three.
[[nodiscard]] bool isValidIdentity(std::string_view identity) noexcept;
/// Why `identity` is invalid, for messages ("" if valid); names the offending character and
/// position rather than echoing the identity.
[[nodiscard]] std::string identityProblem(std::string_view identity);
[[nodiscard]] bool isValidKeyLength(std::size_t bytes) noexcept;

/// Certificate serial numbers as stored and compared: lower-case hex of the INTEGER's value
/// bytes without leading zero bytes, 1..20 bytes (RFC 5280 4.1.2.2). Accepts upper case and
/// ':' separators ("3A:0F:..." as openssl prints it). @returns nullopt if it is not a serial.
[[nodiscard]] std::optional<std::string> normalizeSerial(std::string_view text);

enum class AddResult { ok, exists, invalid_identity, invalid_key, storage_error };
enum class RevokeResult { ok, unknown, already_revoked, storage_error };
enum class ImportError { none, duplicate_in_batch, exists, invalid_identity, invalid_key, storage_error };
enum class RotateResult { ok, unknown, revoked, invalid_key, storage_error };
enum class CertAddResult { ok, exists, invalid, storage_error };

[[nodiscard]] std::string_view toString(AddResult result) noexcept;
[[nodiscard]] std::string_view toString(RevokeResult result) noexcept;
[[nodiscard]] std::string_view toString(ImportError error) noexcept;
[[nodiscard]] std::string_view toString(RotateResult result) noexcept;
[[nodiscard]] std::string_view toString(CertAddResult result) noexcept;

struct ImportResult {
  ImportError error = ImportError::none;
  std::size_t index = 0;  ///< the failing entry (0-based position in the batch) when error != none
  std::size_t added = 0;  ///< entries stored: the whole batch, or 0
  [[nodiscard]] bool ok() const noexcept { return error == ImportError::none; }
};

struct IdentityInfo {
  std::string identity;
  std::int64_t created_at = 0;                ///< unix seconds
  std::optional<std::int64_t> revoked_at;     ///< unix seconds; nullopt while active
  std::uint32_t generation = 1;               ///< 1 when added, +1 per rotation
  std::optional<std::int64_t> grace_until;    ///< the previous key works until then (unix s)
};

/// An identity's keys at one moment, for the DTLS handshake.
struct PskKeys {
  tls::SecretBytes current;
  std::uint32_t generation = 1;  ///< generation of `current`; `previous` is generation - 1
  tls::SecretBytes previous;     ///< empty unless a rotation's grace period is running
  std::int64_t grace_until = 0;  ///< unix seconds; meaningful when `previous` is not empty
};

/// The outcome of rotate().
struct Rotation {
  RotateResult result = RotateResult::storage_error;
  std::uint32_t generation = 0;   ///< the new key's generation
  std::int64_t grace_until = 0;   ///< the old key works until then (unix s); now if grace was 0
  bool dropped_previous = false;  ///< a still-running grace of an earlier rotation was cut short
};

/// An identity whose key was rotated at least once: what sessions may still use.
struct RotationState {
  std::string identity;
  std::uint32_t generation = 1;             ///< current key
  std::optional<std::int64_t> grace_until;  ///< generation - 1 is valid before this (unix s)
};

/// A certificate coap-edge-ctl issued (`cert issue`) or signed (`cert sign`).
struct CertificateInfo {
  std::string serial;             ///< normalized hex (normalizeSerial)
  std::string identity;           ///< subject CN
  std::string profile = "client"; ///< "client" (device) or "server" (gateway)
  std::string origin = "issued";  ///< "issued" (key made by ctl) or "csr" (key made by the device)
  std::int64_t not_before = 0;    ///< unix seconds
  std::int64_t not_after = 0;
  std::int64_t issued_at = 0;
  std::optional<std::int64_t> revoked_at;
};

/// revokeCertificatesOf(): how many were revoked now.
struct BulkRevoke {
  RevokeResult result = RevokeResult::storage_error;  ///< ok (>= 1 revoked now), unknown, already_revoked
  std::size_t revoked = 0;
};

/// Unix seconds. Tests inject a fake clock; the default reads the system clock.
using Clock = std::function<std::int64_t()>;

using ImportEntry = std::pair<std::string, tls::SecretBytes>;

/// One connection to the keystore. Movable (a moved-from Keystore may only be destroyed or
/// assigned to), not copyable, not thread-safe: one instance per thread.
class Keystore {
 public:
  /// Opens <state_dir>/keystore.db, creating the directory (0700) and the file (0600) if they
  /// are missing, and brings the schema up to date.
  /// @param[in] clock  time source for timestamps and grace periods (default: system clock).
  /// @throws std::runtime_error naming the path when it cannot be created, opened or migrated.
  [[nodiscard]] static Keystore open(const std::filesystem::path& state_dir, Clock clock = {});

  ~Keystore();
  Keystore(Keystore&&) noexcept;
  Keystore& operator=(Keystore&&) noexcept;
  Keystore(const Keystore&) = delete;
  Keystore& operator=(const Keystore&) = delete;

  /// Stores a new active identity. An identity that exists, revoked or not, is never replaced.
  [[nodiscard]] AddResult add(std::string_view identity, tls::SecretBytes key);

  /// Stores all entries in one transaction, or none of them.
  [[nodiscard]] ImportResult importAll(std::vector<ImportEntry> entries);

  /// The key of an active identity; nullopt if unknown, revoked or on a storage error (logged).
  /// One indexed query: called per DTLS handshake on the event loop thread.
  [[nodiscard]] std::optional<tls::SecretBytes> lookupPsk(std::string_view identity) noexcept;

  /// The current key of an active identity and, during a rotation's grace period, the previous
  /// one (never after grace_until, whether or not purgeExpiredKeys() ran). One indexed query.
  [[nodiscard]] std::optional<PskKeys> lookupKeys(std::string_view identity) noexcept;

  /// Marks an identity revoked (its key stays stored but is never handed out again).
  [[nodiscard]] RevokeResult revoke(std::string_view identity);

  /// Replaces the key of an active identity with `key` (generation + 1). The old key keeps
  /// working for `grace` (0: not at all); a previous key still in grace from an earlier rotation
  /// is dropped at once (Rotation::dropped_previous).
  [[nodiscard]] Rotation rotate(std::string_view identity, tls::SecretBytes key, std::chrono::seconds grace);

  /// Every identity rotated at least once (generation > 1) and not revoked, with its grace end.
  /// Empty with lastError() set on a storage error.
  [[nodiscard]] std::vector<RotationState> rotations();

  /// Deletes previous keys whose grace has ended (overwritten in the file). Never waits for a
  /// lock held by another process: @returns the number purged, or nullopt when the keystore was
  /// busy or failed (lastError()); the caller tries again later. lookupKeys() already ignores
  /// expired keys, so a late purge changes nothing a peer can observe.
  [[nodiscard]] std::optional<std::size_t> purgeExpiredKeys() noexcept;

  /// Records a certificate (serial must be new, identity valid, serial normalized).
  [[nodiscard]] CertAddResult recordCertificate(const CertificateInfo& info);
  /// All recorded certificates by identity, then issue time. Empty with lastError() on error.
  [[nodiscard]] std::vector<CertificateInfo> listCertificates();
  /// Revokes one certificate by normalized serial.
  [[nodiscard]] RevokeResult revokeCertificate(std::string_view serial);
  /// Revokes every certificate of `identity` (CN) not yet revoked.
  [[nodiscard]] BulkRevoke revokeCertificatesOf(std::string_view identity);
  /// Serials of revoked certificates, sorted. Empty with lastError() set on a storage error.
  [[nodiscard]] std::vector<std::string> revokedCertificateSerials();

  /// All identities sorted by name, never their keys. Empty with lastError() set on a storage
  /// error.
  [[nodiscard]] std::vector<IdentityInfo> list();
  /// Names of revoked identities, sorted. Empty with lastError() set on a storage error.
  [[nodiscard]] std::vector<std::string> revokedIdentities();

  /// SQLite's PRAGMA data_version for this connection: it changes when ANOTHER connection
  /// (coap-edge-ctl) commits, not when this one does. Poll it to reload without a restart.
  /// On a storage error returns the last value seen (and logs), so a glitch is not a "change".
  [[nodiscard]] std::uint64_t changeCounter() noexcept;

  /// SQLite's message for the last storage_error (empty after a successful call).
  [[nodiscard]] const std::string& lastError() const noexcept;

  [[nodiscard]] const std::filesystem::path& path() const noexcept;

 private:
  struct Impl;  // keystore_impl.h
  explicit Keystore(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace coap_edge::keystore
