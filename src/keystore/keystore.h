#pragma once
// The device identity store: PSK identities, their keys and revocations, in an SQLite file
// <state_dir>/keystore.db shared by the agent (reads, per DTLS handshake) and coap-edge-ctl
// (writes). WAL mode lets both use it at once; changeCounter() tells the agent that ctl committed.
//
// Errors reachable at run time are values; only open() throws. Keys are never logged.

#include "tls/secret.h"

#include <cstddef>
#include <cstdint>
#include <filesystem>
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

enum class AddResult { ok, exists, invalid_identity, invalid_key, storage_error };
enum class RevokeResult { ok, unknown, already_revoked, storage_error };
enum class ImportError { none, duplicate_in_batch, exists, invalid_identity, invalid_key, storage_error };

[[nodiscard]] std::string_view toString(AddResult result) noexcept;
[[nodiscard]] std::string_view toString(RevokeResult result) noexcept;
[[nodiscard]] std::string_view toString(ImportError error) noexcept;

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
};

using ImportEntry = std::pair<std::string, tls::SecretBytes>;

/// One connection to the keystore. Movable (a moved-from Keystore may only be destroyed or
/// assigned to), not copyable, not thread-safe: one instance per thread.
class Keystore {
 public:
  /// Opens <state_dir>/keystore.db, creating the directory (0700) and the file (0600) if they
  /// are missing, and brings the schema up to date.
  /// @throws std::runtime_error naming the path when it cannot be created, opened or migrated.
  [[nodiscard]] static Keystore open(const std::filesystem::path& state_dir);

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

  /// Marks an identity revoked (its key stays stored but is never handed out again).
  [[nodiscard]] RevokeResult revoke(std::string_view identity);

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
  struct Impl;
  explicit Keystore(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace coap_edge::keystore
