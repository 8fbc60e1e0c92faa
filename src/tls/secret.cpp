#include "tls/secret.h"

#include <mbedtls/base64.h>
// mbedTLS 3.6 ships this one header without an extern "C" guard.
extern "C" {
#include <mbedtls/constant_time.h>
}
#include <mbedtls/platform_util.h>

#include <algorithm>
#include <new>
#include <stdexcept>

namespace coap_edge::tls {

SecretBytes::SecretBytes(std::size_t size) : data_(size == 0 ? nullptr : new std::uint8_t[size]()), size_(size) {}

SecretBytes::SecretBytes(std::span<const std::uint8_t> bytes) : SecretBytes(bytes.size()) {
  std::copy(bytes.begin(), bytes.end(), data_.get());
}

SecretBytes::~SecretBytes() { clear(); }

SecretBytes::SecretBytes(SecretBytes&& other) noexcept : data_(std::move(other.data_)), size_(other.size_) {
  other.size_ = 0;
}

SecretBytes& SecretBytes::operator=(SecretBytes&& other) noexcept {
  if (this != &other) {
    clear();  // the bytes being replaced must not linger in the freed block
    data_ = std::move(other.data_);
    size_ = other.size_;
    other.size_ = 0;
  }
  return *this;
}

SecretBytes SecretBytes::clone() const { return SecretBytes(span()); }

void SecretBytes::clear() noexcept {
  if (data_) mbedtls_platform_zeroize(data_.get(), size_);
  data_.reset();
  size_ = 0;
}

bool constantTimeEqual(std::span<const std::uint8_t> a, std::span<const std::uint8_t> b) noexcept {
  // The content comparison always runs over the common prefix, so a length mismatch is not an
  // early exit that would make the content comparison skippable (lengths themselves are public).
  const std::size_t n = std::min(a.size(), b.size());
  int diff = 0;
  if (n > 0) diff = mbedtls_ct_memcmp(a.data(), b.data(), n);
  const bool same_length = a.size() == b.size();
  return (diff == 0) & same_length;
}

namespace {

constexpr char kHexDigits[] = "0123456789abcdef";

// No branch on the character value (comparisons become setcc), so decoding a key does not leak
// it through timing. Returns the nibble, or a value with bit 8 set for a non-hex character.
unsigned hexNibble(unsigned char c) noexcept {
  const unsigned u = c;
  const unsigned digit = u - '0';            // wraps to a large value below '0'
  const unsigned lower = (u | 0x20u) - 'a';  // folds A-F onto a-f
  const auto is_digit = static_cast<unsigned>(digit < 10u);
  const auto is_alpha = static_cast<unsigned>(lower < 6u);
  const unsigned value = (digit & (0u - is_digit)) | ((lower + 10u) & (0u - is_alpha));
  return value | ((1u - (is_digit | is_alpha)) << 8);
}

bool hexDecodeInto(std::string_view text, std::span<std::uint8_t> out) noexcept {
  unsigned bad = 0;
  for (std::size_t i = 0; i < out.size(); ++i) {
    const unsigned hi = hexNibble(static_cast<unsigned char>(text[2 * i]));
    const unsigned lo = hexNibble(static_cast<unsigned char>(text[2 * i + 1]));
    bad |= (hi | lo) & 0x100u;
    out[i] = static_cast<std::uint8_t>(((hi << 4) | lo) & 0xFFu);
  }
  return bad == 0;
}

}  // namespace

std::string hexEncode(std::span<const std::uint8_t> bytes) {
  std::string text(bytes.size() * 2, '\0');
  for (std::size_t i = 0; i < bytes.size(); ++i) {
    text[2 * i] = kHexDigits[bytes[i] >> 4];
    text[2 * i + 1] = kHexDigits[bytes[i] & 0x0F];
  }
  return text;
}

std::optional<std::vector<std::uint8_t>> hexDecode(std::string_view text) {
  if (text.size() % 2 != 0) return std::nullopt;
  std::vector<std::uint8_t> bytes(text.size() / 2);
  if (!hexDecodeInto(text, bytes)) return std::nullopt;
  return bytes;
}

std::optional<SecretBytes> hexDecodeSecret(std::string_view text) {
  if (text.size() % 2 != 0) return std::nullopt;
  SecretBytes bytes(text.size() / 2);
  if (!hexDecodeInto(text, bytes.mutableSpan())) return std::nullopt;  // bytes wipes itself
  return bytes;
}

std::string base64Encode(std::span<const std::uint8_t> bytes) {
  // 4 characters per 3 bytes, plus the terminating NUL that mbedtls_base64_encode writes.
  std::string text((bytes.size() + 2) / 3 * 4 + 1, '\0');
  std::size_t written = 0;
  const int rc = mbedtls_base64_encode(reinterpret_cast<unsigned char*>(text.data()), text.size(), &written,
                                       bytes.data(), bytes.size());
  if (rc != 0) throw std::length_error("base64Encode: input too large");
  text.resize(written);
  return text;
}

void wipe(std::string& text) noexcept {
  mbedtls_platform_zeroize(text.data(), text.size());
  text.clear();
}

}  // namespace coap_edge::tls
