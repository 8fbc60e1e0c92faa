// The files --check-config reads itself: the PSK key files of [upstream] and
// [[relay.credentials]]. parse() stays free of file access (the fuzz target runs it); this is
// called by the agent, at startup, on SIGHUP and for --check-config, so a missing or garbled key
// is reported at its line instead of surfacing as failing handshakes with the upstream or a node.

#include "config/detail.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <fmt/format.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <system_error>

namespace coap_edge::config {
namespace {

// The keystore's bounds (keystore.h kMinKeyBytes, kMaxKeyBytes): the same keys, the same rule.
constexpr std::size_t kMinKeyBytes = 16;
constexpr std::size_t kMaxKeyBytes = 64;
// A key file holds at most 128 hex digits and a newline; anything much larger is the wrong file.
constexpr std::size_t kMaxKeyFileBytes = 4096;

int hexValue(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// Overwrites key material before the buffer is freed; volatile so the stores are not elided.
void wipe(std::string& text) {
  volatile char* p = text.data();
  for (std::size_t i = 0; i < text.size(); ++i) p[i] = 0;
}

std::string errnoText(int error) { return std::error_code(error, std::generic_category()).message(); }

// Messages never quote the file's content: it is (or is meant to be) a secret.
std::string decode(std::string_view text, std::vector<std::uint8_t>& key) {
  while (!text.empty() && (text.back() == '\n' || text.back() == '\r' || text.back() == ' ' || text.back() == '\t')) {
    text.remove_suffix(1);
  }
  while (!text.empty() && (text.front() == ' ' || text.front() == '\t')) text.remove_prefix(1);
  if (text.empty()) return "is empty; write the key in hex on one line (coap-edge-ctl keys add prints one)";
  if (text.find('\n') != std::string_view::npos) return "has more than one line; write the key in hex on one line";
  for (std::size_t i = 0; i < text.size(); ++i) {
    if (hexValue(text[i]) < 0) {
      return fmt::format("is not hex: character {} is not 0-9, a-f or A-F", i + 1);
    }
  }
  if (text.size() % 2 != 0) return fmt::format("has an odd number of hex digits ({})", text.size());
  const std::size_t bytes = text.size() / 2;
  if (bytes < kMinKeyBytes || bytes > kMaxKeyBytes) {
    return fmt::format("holds a {}-byte key; PSKs are {} to {} bytes ({} to {} hex digits)", bytes, kMinKeyBytes,
                       kMaxKeyBytes, 2 * kMinKeyBytes, 2 * kMaxKeyBytes);
  }
  key.resize(bytes);
  for (std::size_t i = 0; i < bytes; ++i) {
    key[i] = static_cast<std::uint8_t>(hexValue(text[2 * i]) * 16 + hexValue(text[2 * i + 1]));
  }
  return {};
}

}  // namespace

PskKeyFile readPskKeyFile(const std::filesystem::path& path) {
  PskKeyFile out;
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
  if (fd < 0) {
    out.error = fmt::format("cannot be read: {}", errnoText(errno));
    return out;
  }
  struct stat st {};
  if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    ::close(fd);
    out.error = "is not a regular file";
    return out;
  }
  std::string text;
  std::array<char, 512> buffer{};
  while (text.size() <= kMaxKeyFileBytes) {
    const ssize_t n = ::read(fd, buffer.data(), buffer.size());
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      out.error = fmt::format("cannot be read: {}", errnoText(errno));
      break;
    }
    if (n == 0) break;
    text.append(buffer.data(), static_cast<std::size_t>(n));
  }
  std::fill(buffer.begin(), buffer.end(), '\0');
  ::close(fd);
  if (out.error.empty()) {
    out.error = text.size() > kMaxKeyFileBytes ? std::string("is too large to be a key file (more than 4 KiB)")
                                               : decode(text, out.key);
  }
  wipe(text);
  if (!out.ok()) out.key.clear();
  return out;
}

std::optional<Error> checkUpstreamFiles(const Config& config) {
  if (!config.upstream || !config.upstream->psk_key_file) return std::nullopt;
  const auto& file = *config.upstream->psk_key_file;
  PskKeyFile key = readPskKeyFile(file.value);
  std::fill(key.key.begin(), key.key.end(), std::uint8_t{0});
  if (key.ok()) return std::nullopt;
  return Error{config.file.string(), file.where,
               fmt::format("[upstream] psk_key_file {} {}", detail::quoteText(file.value.string()), key.error)};
}

std::optional<Error> checkNodeCredentialFiles(const Config& config) {
  for (const auto& entry : config.relay.credentials) {
    const auto& file = entry.psk_key_file;
    PskKeyFile key = readPskKeyFile(file.value);
    std::fill(key.key.begin(), key.key.end(), std::uint8_t{0});
    if (!key.ok()) {
      return Error{config.file.string(), file.where,
                   fmt::format("[[relay.credentials]] psk_key_file {} {}", detail::quoteText(file.value.string()),
                               key.error)};
    }
  }
  return std::nullopt;
}

}  // namespace coap_edge::config
