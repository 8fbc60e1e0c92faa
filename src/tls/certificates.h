#pragma once
// Certificate authority operations on mbedTLS, for coap-edge-ctl: EC P-256 keys drawn from our
// Drbg, a self-signed device CA, device (clientAuth) and gateway (serverAuth) certificates, and
// CSRs, made (the gateway's own) and checked (a device's, signature verified before signing).
//
// Errors are values (Result); nothing here throws except std::bad_alloc. Private keys leave
// only as SecretBytes (PEM or DER text/bytes, wiped when dropped) and are never logged.

#include "tls/random.h"
#include "tls/secret.h"

#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace coap_edge::tls {

/// Why an operation failed, fit for an operator's eyes.
struct Failure {
  std::string message;
};

/// A value, or the Failure that prevented it.
template <typename T>
class Result {
 public:
  Result(T value) : value_(std::move(value)) {}                       // NOLINT(google-explicit-constructor)
  Result(Failure failure) : error_(std::move(failure.message)) {}     // NOLINT(google-explicit-constructor)
  [[nodiscard]] bool ok() const noexcept { return value_.has_value(); }
  explicit operator bool() const noexcept { return ok(); }
  [[nodiscard]] T& operator*() { return *value_; }
  [[nodiscard]] const T& operator*() const { return *value_; }
  [[nodiscard]] T* operator->() { return &*value_; }
  [[nodiscard]] const T* operator->() const { return &*value_; }
  /// The failure message ("" when ok()).
  [[nodiscard]] const std::string& error() const noexcept { return error_; }

 private:
  std::optional<T> value_;
  std::string error_;
};

/// An EC key (mbedtls_pk_context): a P-256 key pair we generated or loaded, or only the public
/// half (from a CSR). Movable, not copyable.
class Key {
 public:
  /// A fresh P-256 key pair.
  [[nodiscard]] static Result<Key> generate(Drbg& drbg);
  /// Loads a private key (PEM or DER; SEC1 or PKCS#8). Must be EC.
  [[nodiscard]] static Result<Key> loadPrivate(std::span<const std::uint8_t> pem_or_der, Drbg& drbg);

  Key();
  ~Key();
  Key(Key&&) noexcept;
  Key& operator=(Key&&) noexcept;
  Key(const Key&) = delete;
  Key& operator=(const Key&) = delete;

  [[nodiscard]] bool hasPrivate() const noexcept;
  /// SEC1 "EC PRIVATE KEY" PEM text (no trailing NUL). Fails for a public-only key.
  [[nodiscard]] Result<SecretBytes> privatePem() const;
  /// SEC1 DER.
  [[nodiscard]] Result<SecretBytes> privateDer() const;
  /// A public-only copy (SubjectPublicKeyInfo round trip).
  [[nodiscard]] Result<Key> publicCopy() const;

  struct Impl;  ///< internal: the mbedtls_pk_context (certificates.cpp, csr.cpp)
  [[nodiscard]] Impl& impl() const noexcept { return *impl_; }

 private:
  std::unique_ptr<Impl> impl_;
  bool has_private_ = false;
};

/// A certificate and what we record about it.
struct Certificate {
  std::string pem;                ///< PEM text, one certificate
  std::vector<std::uint8_t> der;  ///< the same certificate, DER
  std::string serial;             ///< lower-case hex without leading zero bytes (serialHex)
  std::string common_name;        ///< subject CN ("" if none)
  std::int64_t not_before = 0;    ///< unix seconds
  std::int64_t not_after = 0;
};

enum class Profile {
  client,  ///< a device: CA:FALSE, keyUsage digitalSignature, extendedKeyUsage clientAuth
  server,  ///< the gateway: CA:FALSE, digitalSignature, serverAuth, subjectAltName
};

/// What goes into a certificate besides the key.
struct CertificateSpec {
  std::string common_name;              ///< subject CN (the device identity or gateway name)
  Profile profile = Profile::client;
  int days = 365;                       ///< validity from now (1..36500)
  /// server profile: subjectAltName entries; IPv4/IPv6 literals become iPAddress, anything
  /// else dNSName. Empty: dNSName = common_name.
  std::vector<std::string> alt_names;
};

inline constexpr int kMaxDays = 36500;
/// Certificates start this long before "now", so that a device whose clock is a little behind
/// does not see a certificate from the future.
inline constexpr std::int64_t kBackdateSeconds = 3600;
/// CSRs larger than this are refused unread (a CSR for a P-256 key is under 1 KiB).
inline constexpr std::size_t kMaxCsrBytes = 16 * 1024;

/// A CA: its certificate and key pair.
class CertificateAuthority {
 public:
  /// A new self-signed CA: P-256 key, serial from the DRBG, basicConstraints CA:TRUE
  /// (pathlen 0), keyUsage keyCertSign|cRLSign, valid `days` from `now` (unix seconds).
  [[nodiscard]] static Result<CertificateAuthority> create(std::string_view common_name, int days, Drbg& drbg,
                                                           std::int64_t now);
  /// Loads a CA from its certificate (PEM) and key (PEM); checks that they belong together
  /// and that the certificate may sign certificates.
  [[nodiscard]] static Result<CertificateAuthority> load(std::span<const std::uint8_t> cert_pem,
                                                         std::span<const std::uint8_t> key_pem, Drbg& drbg);

  [[nodiscard]] const Certificate& certificate() const noexcept { return certificate_; }
  [[nodiscard]] const Key& key() const noexcept { return key_; }

  /// Signs `subject`'s public key into a certificate (random 16-byte serial, SHA-256), then
  /// verifies the result against this CA with mbedtls_x509_crt_verify before returning it.
  [[nodiscard]] Result<Certificate> issue(const Key& subject, const CertificateSpec& spec, Drbg& drbg,
                                          std::int64_t now) const;

 private:
  CertificateAuthority(Certificate certificate, Key key);
  Certificate certificate_;
  Key key_;
};

/// A CSR whose signature verified.
struct CheckedCsr {
  std::string common_name;  ///< subject CN, raw bytes (the caller checks the identity rules)
  Key public_key;           ///< the key to certify (P-256)
};

/// Parses a PKCS#10 CSR (PEM or DER), verifies its self-signature (ECDSA with SHA-256/384/512)
/// and requires a P-256 key and exactly one subject CN. Other subject attributes and requested
/// extensions are ignored: the certificate gets our profile. Never throws except bad_alloc;
/// safe on any input (a fuzz target drives it).
[[nodiscard]] Result<CheckedCsr> checkCsr(std::span<const std::uint8_t> pem_or_der);

/// A CSR (PEM) for `key` with subject CN = common_name, signed with SHA-256.
[[nodiscard]] Result<std::string> makeCsr(const Key& key, std::string_view common_name, Drbg& drbg);

/// Parses one certificate (PEM or DER).
[[nodiscard]] Result<Certificate> parseCertificate(std::span<const std::uint8_t> pem_or_der);

/// True if the certificate (DER) is for `host`, a host name (not an IP address): one of its
/// subjectAltName dNSNames equals it, ASCII case ignored (no wildcards), or, only when it has no
/// dNSName at all, its one subject CN does (RFC 6125 §6.4.4). Safe on any input; false for what
/// does not parse.
[[nodiscard]] bool certificateNamesHost(std::span<const std::uint8_t> der, std::string_view host);

/// A serial number's INTEGER content bytes as stored and compared: lower-case hex, leading zero
/// bytes dropped ("00" for a zero serial).
[[nodiscard]] std::string serialHex(std::span<const std::uint8_t> raw);

/// Bytes of a string, for the span parameters above.
[[nodiscard]] inline std::span<const std::uint8_t> bytesOf(std::string_view text) noexcept {
  return {reinterpret_cast<const std::uint8_t*>(text.data()), text.size()};
}

}  // namespace coap_edge::tls
