#pragma once
// Which of two keys to hand out during a PSK rotation's grace period. Pure logic, no I/O.
//
// DTLS-PSK gives the server one chance per handshake: it sees the identity (in the
// ClientKeyExchange), must answer with one key, and learns only afterwards, from the client's
// Finished message, whether the client holds the same key. So during the grace period of a
// rotation the agent offers, per identity, the key that identity last completed a handshake
// with; when a handshake with the offered key fails, the next one offers the other key; when a
// handshake succeeds, that key is preferred from then on. Without any outcome yet (right after
// `keys rotate`, or after an agent restart) the previous key is offered: at rotation time every
// device still holds it. A device switching keys therefore needs at most one failed handshake.

#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <unordered_map>

namespace coap_edge::keystore {

class GraceKeyChooser {
 public:
  /// @param[in] current   generation of the identity's current (new) key
  /// @param[in] previous  generation of its previous key, still inside its grace period
  /// @returns the generation to offer: `current` or `previous`.
  [[nodiscard]] std::uint32_t choose(std::string_view identity, std::uint32_t current,
                                     std::uint32_t previous) const;

  /// The outcome of a handshake in which `generation` was offered to `identity`. Only call it
  /// for identities inside a grace period (the map stays bounded by those).
  void record(std::string_view identity, std::uint32_t generation, bool ok);

  /// Forgets identities for which `keep` returns false (their grace period is over).
  void prune(const std::function<bool(const std::string&)>& keep);

  [[nodiscard]] std::size_t size() const noexcept { return last_.size(); }

 private:
  struct Outcome {
    std::uint32_t generation = 0;
    bool ok = false;
  };
  std::unordered_map<std::string, Outcome> last_;
};

}  // namespace coap_edge::keystore
