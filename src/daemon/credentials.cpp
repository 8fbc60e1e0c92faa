#include "daemon/credentials.h"

#include <algorithm>
#include <chrono>

namespace coap_edge::daemon {
namespace {

std::int64_t systemSeconds() {
  return std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now().time_since_epoch()).count();
}

}  // namespace

KeystoreCredentials::KeystoreCredentials(keystore::Keystore& keystore, keystore::Clock clock)
    : keystore_(keystore), clock_(clock ? std::move(clock) : keystore::Clock(systemSeconds)) {
  refresh();
}

std::optional<coap::PskChoice> KeystoreCredentials::pskFor(std::string_view identity) noexcept {
  auto keys = keystore_.lookupKeys(identity);
  if (!keys) return std::nullopt;
  coap::PskChoice choice;
  if (keys->previous.empty()) {
    choice.key = std::move(keys->current);
    choice.generation = keys->generation;
    return choice;
  }
  try {
    choice.generation = chooser_.choose(identity, keys->generation, keys->generation - 1);
    // The keystore is fresher than the cache (a rotation committed since the last poll): note
    // the grace period now, so that this handshake's outcome is not ignored.
    keystore::RotationState& r = rotated_[std::string(identity)];
    r.identity = identity;
    r.generation = keys->generation;
    r.grace_until = keys->grace_until;
  } catch (...) {
    choice.generation = keys->generation - 1;
  }
  choice.key = std::move(choice.generation == keys->generation ? keys->current : keys->previous);
  return choice;
}

void KeystoreCredentials::handshakeResult(std::string_view identity, std::uint32_t generation, bool ok) noexcept {
  try {
    // Only identities inside a grace period have a choice to remember (keeps the map bounded).
    const auto it = rotated_.find(std::string(identity));
    if (it == rotated_.end() || !it->second.grace_until || *it->second.grace_until <= now()) return;
    chooser_.record(identity, generation, ok);
  } catch (...) {
  }
}

bool KeystoreCredentials::isRevoked(std::string_view identity) noexcept {
  return std::binary_search(revoked_.begin(), revoked_.end(), identity);
}

bool KeystoreCredentials::isCertificateRevoked(std::string_view serial) noexcept {
  return std::binary_search(revoked_serials_.begin(), revoked_serials_.end(), serial);
}

void KeystoreCredentials::refresh() {
  auto revoked = keystore_.revokedIdentities();
  if (keystore_.lastError().empty()) revoked_ = std::move(revoked);
  auto serials = keystore_.revokedCertificateSerials();
  if (keystore_.lastError().empty()) revoked_serials_ = std::move(serials);
  auto rotations = keystore_.rotations();
  if (!keystore_.lastError().empty()) return;
  rotated_.clear();
  next_grace_end_.reset();
  for (auto& r : rotations) {
    if (r.grace_until && (!next_grace_end_ || *r.grace_until < *next_grace_end_)) next_grace_end_ = r.grace_until;
    std::string name = r.identity;
    rotated_.emplace(std::move(name), std::move(r));
  }
  const std::int64_t t = now();
  chooser_.prune([this, t](const std::string& identity) {
    const auto it = rotated_.find(identity);
    return it != rotated_.end() && it->second.grace_until && *it->second.grace_until > t;
  });
}

bool KeystoreCredentials::mayContinue(const coap::PeerIdentity& peer) const {
  if (peer.kind == coap::AuthKind::none) return true;
  if (std::binary_search(revoked_.begin(), revoked_.end(), peer.identity)) return false;
  if (peer.kind == coap::AuthKind::x509) {
    return !std::binary_search(revoked_serials_.begin(), revoked_serials_.end(), peer.certificate_serial);
  }
  const auto it = rotated_.find(peer.identity);
  if (it == rotated_.end() || peer.key_generation == 0) return true;  // never rotated: generation 1 only
  const keystore::RotationState& r = it->second;
  if (peer.key_generation == r.generation) return true;
  return peer.key_generation + 1 == r.generation && r.grace_until && *r.grace_until > now();
}

bool KeystoreCredentials::graceEnded() const { return next_grace_end_ && *next_grace_end_ <= now(); }

}  // namespace coap_edge::daemon
