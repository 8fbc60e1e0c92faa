#include "coap/session_table.h"

#include <algorithm>
#include <utility>

namespace coap_edge::coap {

std::string_view authKindName(AuthKind kind) {
  switch (kind) {
    case AuthKind::psk:
      return "psk";
    case AuthKind::x509:
      return "x509";
    case AuthKind::none:
      break;
  }
  return "none";
}

SessionEntry& SessionTable::add(const void* session, std::string address) {
  SessionEntry& entry = entries_[session];
  entry = SessionEntry{};
  entry.peer.address = std::move(address);
  return entry;
}

SessionEntry* SessionTable::find(const void* session) {
  auto it = entries_.find(session);
  return it == entries_.end() ? nullptr : &it->second;
}

void SessionTable::remove(const void* session) { entries_.erase(session); }

std::size_t SessionTable::established() const {
  return static_cast<std::size_t>(std::count_if(entries_.begin(), entries_.end(),
                                                [](const auto& e) { return e.second.established; }));
}

std::size_t SessionTable::established(AuthKind kind) const {
  return static_cast<std::size_t>(std::count_if(entries_.begin(), entries_.end(), [kind](const auto& e) {
    return e.second.established && e.second.peer.kind == kind;
  }));
}

void SessionTable::forEach(const std::function<void(const void*, SessionEntry&)>& fn) {
  for (auto& [key, entry] : entries_) fn(key, entry);
}

void SessionTable::forEach(const std::function<void(const SessionEntry&)>& fn) const {
  for (const auto& [key, entry] : entries_) fn(entry);
}

}  // namespace coap_edge::coap
