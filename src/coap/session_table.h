#pragma once
// What the agent knows about each live downstream session: who it is (fixed at handshake) and
// where it comes from. Keyed by libcoap's session pointer, which stays valid from libcoap's
// SERVER_SESSION_NEW event to its SERVER_SESSION_DEL event.

#include "coap/message.h"

#include <chrono>
#include <cstddef>
#include <functional>
#include <unordered_map>

namespace coap_edge::coap {

struct SessionEntry {
  PeerIdentity peer;
  bool established = false;
  bool refused = false;  ///< handshake done but the peer may not stay (revoked, no identity, full): closing
  std::chrono::steady_clock::time_point since{};
};

class SessionTable {
 public:
  SessionEntry& add(const void* session, std::string address);
  [[nodiscard]] SessionEntry* find(const void* session);
  void remove(const void* session);

  [[nodiscard]] std::size_t size() const { return entries_.size(); }
  [[nodiscard]] std::size_t established() const;
  [[nodiscard]] std::size_t established(AuthKind kind) const;
  void forEach(const std::function<void(const void*, SessionEntry&)>& fn);
  void forEach(const std::function<void(const SessionEntry&)>& fn) const;

 private:
  std::unordered_map<const void*, SessionEntry> entries_;
};

}  // namespace coap_edge::coap
