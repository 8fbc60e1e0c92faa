// Identity and key rules, and the names of keystore results: shared by the keystore, ctl's
// messages and the import parser, without SQLite.
#include "keystore/keystore.h"

#include <fmt/format.h>

namespace coap_edge::keystore {

bool isValidIdentity(std::string_view identity) noexcept {
  if (identity.empty() || identity.size() > kMaxIdentityBytes) return false;
  for (const char c : identity) {
    if (c <= ' ' || c > '~' || c == ',' || c == '"') return false;
  }
  return true;
}

std::string identityProblem(std::string_view identity) {
  if (identity.empty()) return "identity is empty";
  if (identity.size() > kMaxIdentityBytes) {
    return fmt::format("identity is {} bytes long (at most {})", identity.size(), kMaxIdentityBytes);
  }
  for (std::size_t i = 0; i < identity.size(); ++i) {
    const char c = identity[i];
    const std::size_t at = i + 1;
    if (c == ',' || c == '"') return fmt::format("identity contains '{}' at character {} (not allowed)", c, at);
    if (c == ' ') return fmt::format("identity contains a space at character {}", at);
    if (c < ' ' || c > '~') {
      return fmt::format("identity contains byte 0x{:02x} at character {} (only printable ASCII is allowed)",
                         static_cast<unsigned char>(c), at);
    }
  }
  return "";
}

bool isValidKeyLength(std::size_t bytes) noexcept { return bytes >= kMinKeyBytes && bytes <= kMaxKeyBytes; }

std::optional<std::string> normalizeSerial(std::string_view text) {
  constexpr std::size_t kMaxSerialBytes = 20;
  if (text.size() > 3 * kMaxSerialBytes + 8) return std::nullopt;
  std::string hex;
  hex.reserve(text.size());
  for (const char c : text) {
    if (c == ':') continue;
    if (c >= '0' && c <= '9') {
      hex.push_back(c);
    } else if ((c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F')) {
      hex.push_back(static_cast<char>(c | 0x20));
    } else {
      return std::nullopt;
    }
  }
  if (hex.empty()) return std::nullopt;
  if (hex.size() % 2 != 0) hex.insert(hex.begin(), '0');
  std::size_t skip = 0;
  while (skip + 2 < hex.size() && hex[skip] == '0' && hex[skip + 1] == '0') skip += 2;
  hex.erase(0, skip);
  if (hex.size() > 2 * kMaxSerialBytes) return std::nullopt;
  return hex;
}

std::string_view toString(AddResult result) noexcept {
  switch (result) {
    case AddResult::ok: return "ok";
    case AddResult::exists: return "identity exists";
    case AddResult::invalid_identity: return "invalid identity";
    case AddResult::invalid_key: return "invalid key length";
    case AddResult::storage_error: return "storage error";
  }
  return "?";
}

std::string_view toString(RevokeResult result) noexcept {
  switch (result) {
    case RevokeResult::ok: return "ok";
    case RevokeResult::unknown: return "unknown identity";
    case RevokeResult::already_revoked: return "already revoked";
    case RevokeResult::storage_error: return "storage error";
  }
  return "?";
}

std::string_view toString(RotateResult result) noexcept {
  switch (result) {
    case RotateResult::ok: return "ok";
    case RotateResult::unknown: return "unknown identity";
    case RotateResult::revoked: return "identity is revoked";
    case RotateResult::invalid_key: return "invalid key length";
    case RotateResult::storage_error: return "storage error";
  }
  return "?";
}

std::string_view toString(CertAddResult result) noexcept {
  switch (result) {
    case CertAddResult::ok: return "ok";
    case CertAddResult::exists: return "serial number exists";
    case CertAddResult::invalid: return "invalid certificate record";
    case CertAddResult::storage_error: return "storage error";
  }
  return "?";
}

std::string_view toString(ImportError error) noexcept {
  switch (error) {
    case ImportError::none: return "ok";
    case ImportError::duplicate_in_batch: return "identity appears twice in the input";
    case ImportError::exists: return "identity already exists in the keystore";
    case ImportError::invalid_identity: return "invalid identity";
    case ImportError::invalid_key: return "invalid key length";
    case ImportError::storage_error: return "storage error";
  }
  return "?";
}

}  // namespace coap_edge::keystore
