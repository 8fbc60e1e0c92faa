#include "coap/session_table.h"

#include "coap/server.h"

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

std::string_view methodName(Method method) noexcept {
  switch (method) {
    case Method::get:
      return "GET";
    case Method::post:
      return "POST";
    case Method::put:
      return "PUT";
    case Method::del:
      return "DELETE";
    case Method::fetch:
      return "FETCH";
    case Method::patch:
      return "PATCH";
    case Method::ipatch:
      return "iPATCH";
  }
  return "GET";
}

std::string_view responseClassName(ResponseClass c) noexcept {
  switch (c) {
    case ResponseClass::success:
      return "2xx";
    case ResponseClass::client_error:
      return "4xx";
    case ResponseClass::server_error:
      return "5xx";
    case ResponseClass::none:
      break;
  }
  return "none";
}

SessionEntry& SessionTable::add(const void* session, std::string address) {
  SessionEntry& entry = entries_[session];
  disestablish(entry);  // a reused pointer: the old session is gone
  entry = SessionEntry{};
  entry.recent.setBudget(recent_budget_);
  entry.peer.address = std::move(address);
  entry.since = std::chrono::steady_clock::now();
  return entry;
}

SessionEntry* SessionTable::find(const void* session) {
  auto it = entries_.find(session);
  return it == entries_.end() ? nullptr : &it->second;
}

void SessionTable::remove(const void* session) {
  auto it = entries_.find(session);
  if (it == entries_.end()) return;
  disestablish(it->second);
  entries_.erase(it);
}

void SessionTable::establish(SessionEntry& entry) {
  if (entry.established) return;
  entry.established = true;
  entry.since = std::chrono::steady_clock::now();
  ++established_;
  ++by_kind_[static_cast<std::size_t>(entry.peer.kind)];
}

void SessionTable::disestablish(SessionEntry& entry) {
  if (!entry.established) return;
  entry.established = false;
  --established_;
  --by_kind_[static_cast<std::size_t>(entry.peer.kind)];
}

void SessionTable::forEach(const std::function<void(const void*, SessionEntry&)>& fn) {
  for (auto& [key, entry] : entries_) fn(key, entry);
}

void SessionTable::forEach(const std::function<void(const SessionEntry&)>& fn) const {
  for (const auto& [key, entry] : entries_) fn(entry);
}

}  // namespace coap_edge::coap
