#pragma once
// The agent's CredentialSource: PSKs straight from the keystore per handshake, revocations
// (identities and certificate serials) and rotation state cached and refreshed when another
// process (coap-edge-ctl) commits or a grace period ends.
//
// Rotation (see keystore/grace.h for why): while an identity's previous key is inside its grace
// period, pskFor() offers the key chosen by a GraceKeyChooser fed with handshakeResult(); once
// the grace has ended only the current key is offered, the old key is purged from the keystore
// (Agent::pollKeystore) and mayContinue() turns false for sessions that were established with
// it, so the agent closes them. Choices are kept in memory only: after a restart the previous
// key is offered first again, which costs a device that already switched one failed handshake.

#include "coap/server.h"
#include "keystore/grace.h"
#include "keystore/keystore.h"

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace coap_edge::daemon {

class KeystoreCredentials : public coap::CredentialSource {
 public:
  /// @param[in] clock  unix seconds (tests inject a fake one; default: system clock). Should be
  ///                   the keystore's clock, since grace ends are compared to both.
  explicit KeystoreCredentials(keystore::Keystore& keystore, keystore::Clock clock = {});

  std::optional<coap::PskChoice> pskFor(std::string_view identity) noexcept override;
  void handshakeResult(std::string_view identity, std::uint32_t generation, bool ok) noexcept override;
  bool isRevoked(std::string_view identity) noexcept override;
  bool isCertificateRevoked(std::string_view serial) noexcept override;

  /// Re-reads revoked identities and serials and the rotation state. On a storage error the
  /// previous state is kept (fail safe for sessions, logged by the keystore).
  void refresh();

  /// Whether an established session may go on: false for revoked identities and certificates,
  /// and for PSK sessions whose key generation is neither current nor the previous one inside
  /// its grace period.
  [[nodiscard]] bool mayContinue(const coap::PeerIdentity& peer) const;

  /// True once the earliest known grace period has ended (time to purge, refresh and close).
  [[nodiscard]] bool graceEnded() const;

 private:
  [[nodiscard]] std::int64_t now() const { return clock_(); }

  keystore::Keystore& keystore_;
  keystore::Clock clock_;
  std::vector<std::string> revoked_;         // sorted (Keystore::revokedIdentities)
  std::vector<std::string> revoked_serials_; // sorted (Keystore::revokedCertificateSerials)
  std::unordered_map<std::string, keystore::RotationState> rotated_;
  std::optional<std::int64_t> next_grace_end_;
  keystore::GraceKeyChooser chooser_;
};

}  // namespace coap_edge::daemon
