#pragma once
// Key material and the byte/text conversions it travels through. Secrets live in SecretBytes so
// that every copy is accounted for and wiped; nothing here prints a secret on its own.

#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace coap_edge::tls {

/// Owns a fixed-size buffer of secret bytes. Wiped with mbedtls_platform_zeroize (which the
/// compiler may not elide) when destroyed, cleared or overwritten by a move; moving steals the
/// buffer, so the moved-from object is empty and no second copy exists. Deliberately has no
/// stream operator, no implicit conversion and no copy constructor: duplicates come from clone().
class SecretBytes {
 public:
  SecretBytes() noexcept = default;
  /// @param[in] size  number of bytes, zero-initialised.
  explicit SecretBytes(std::size_t size);
  /// Copies `bytes` in; the caller remains responsible for wiping its own copy.
  explicit SecretBytes(std::span<const std::uint8_t> bytes);
  ~SecretBytes();

  SecretBytes(SecretBytes&& other) noexcept;
  SecretBytes& operator=(SecretBytes&& other) noexcept;
  SecretBytes(const SecretBytes&) = delete;
  SecretBytes& operator=(const SecretBytes&) = delete;

  /// An explicit duplicate (a second wiped buffer).
  [[nodiscard]] SecretBytes clone() const;
  /// Wipes and releases the buffer; afterwards size() == 0.
  void clear() noexcept;

  [[nodiscard]] std::span<const std::uint8_t> span() const noexcept { return {data_.get(), size_}; }
  /// Write access, for filling a freshly sized buffer (DRBG output, decoding).
  [[nodiscard]] std::span<std::uint8_t> mutableSpan() noexcept { return {data_.get(), size_}; }
  [[nodiscard]] std::size_t size() const noexcept { return size_; }
  [[nodiscard]] bool empty() const noexcept { return size_ == 0; }

 private:
  std::unique_ptr<std::uint8_t[]> data_;
  std::size_t size_ = 0;
};

/// Compares in time that depends only on the two lengths, never on the content.
/// @returns true iff both spans have the same length and the same bytes.
[[nodiscard]] bool constantTimeEqual(std::span<const std::uint8_t> a, std::span<const std::uint8_t> b) noexcept;

/// Lower-case hex, two characters per byte.
[[nodiscard]] std::string hexEncode(std::span<const std::uint8_t> bytes);
/// Accepts upper and lower case. @returns nullopt on odd length or a non-hex character.
[[nodiscard]] std::optional<std::vector<std::uint8_t>> hexDecode(std::string_view text);
/// Same as hexDecode, straight into a SecretBytes so that no unwiped copy of a key is left over.
[[nodiscard]] std::optional<SecretBytes> hexDecodeSecret(std::string_view text);

/// Standard base64 (RFC 4648 §4, with padding).
[[nodiscard]] std::string base64Encode(std::span<const std::uint8_t> bytes);

/// Wipes a string that held secret text (a hex key on its way to stdout), then empties it.
void wipe(std::string& text) noexcept;

}  // namespace coap_edge::tls
