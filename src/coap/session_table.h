#pragma once
// What the agent knows about each live downstream session: who it is (fixed at handshake) and
// where it comes from. Keyed by libcoap's session pointer, which stays valid from libcoap's
// SERVER_SESSION_NEW event to its SERVER_SESSION_DEL event.

#include "coap/message.h"
#include "coap/recent_responses.h"

#include <array>
#include <chrono>
#include <cstddef>
#include <functional>
#include <optional>
#include <string>
#include <unordered_map>

namespace coap_edge::coap {

struct VerifiedCertificate {
  std::string common_name;  ///< empty if the subject has no CN: no identity
  std::string serial;       ///< tls::serialHex, as the keystore records and revokes it
};

struct SessionEntry {
  PeerIdentity peer;
  bool established = false;
  bool failure_counted = false;  ///< the handshake's failure is already in ServerStats
  bool refused = false;  ///< handshake done but the peer may not stay (revoked, no identity, full): closing
  bool address_checked = false;       ///< the X.509 handshake asked the HandshakeGate
  bool certificate_rejected = false;  ///< the peer's certificate failed verification
  std::string failure_detail;         ///< why, for the log (mbedTLS's verify info)
  /// The peer's own certificate as the handshake verified it (X.509): its subject CN is the
  /// identity, its serial what a revocation names. Taken in the verify hook because Mbed TLS is
  /// built without MBEDTLS_SSL_KEEP_PEER_CERTIFICATE (the parsed certificate, ~1.6 KB per session).
  std::optional<VerifiedCertificate> verified_certificate;
  std::chrono::steady_clock::time_point since{};  ///< when the session appeared, then when it was established
  /// Answers to the session's latest requests, for duplicates (RFC 7252 §4.5); freed with it.
  RecentResponses recent;
};

class SessionTable {
 public:
  /// `recent_budget` (outliving the table) is what the entries' RecentResponses draw on.
  explicit SessionTable(RecentResponsesBudget* recent_budget = nullptr) noexcept : recent_budget_(recent_budget) {}

  SessionEntry& add(const void* session, std::string address);
  [[nodiscard]] SessionEntry* find(const void* session);
  void remove(const void* session);

  /// Marks an entry usable (its peer.kind already set) from now on; counted until disestablish()
  /// or remove().
  void establish(SessionEntry& entry);
  void disestablish(SessionEntry& entry);

  [[nodiscard]] std::size_t size() const { return entries_.size(); }
  /// O(1): asked on every handshake (max_sessions), so kept as counters, not counted.
  [[nodiscard]] std::size_t established() const { return established_; }
  [[nodiscard]] std::size_t established(AuthKind kind) const { return by_kind_[static_cast<std::size_t>(kind)]; }
  void forEach(const std::function<void(const void*, SessionEntry&)>& fn);
  void forEach(const std::function<void(const SessionEntry&)>& fn) const;
  [[nodiscard]] const std::unordered_map<const void*, SessionEntry>& entries() const { return entries_; }

 private:
  std::unordered_map<const void*, SessionEntry> entries_;
  std::size_t established_ = 0;
  std::array<std::size_t, 3> by_kind_{};  // indexed by AuthKind
  RecentResponsesBudget* recent_budget_;
};

}  // namespace coap_edge::coap
