#pragma once
// Raw DTLS 1.2 records for tests that must speak to the agent below any DTLS library: a
// ClientHello generator (RFC 6347 §4.2.1, RFC 5246 §7.4.1.2) with the cipher suites and cookie
// the test chooses, and readers for what comes back (HelloVerifyRequest, ServerHello, alerts).
// Plain UDP sockets on loopback; every read is bounded in time.

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <array>
#include <chrono>
#include <cstdint>
#include <optional>
#include <random>
#include <stdexcept>
#include <string>
#include <vector>

namespace coap_edge::test::dtls {

using Bytes = std::vector<std::uint8_t>;

inline constexpr std::uint8_t kContentAlert = 21;
inline constexpr std::uint8_t kContentHandshake = 22;
inline constexpr std::uint8_t kContentTls12Cid = 25;  ///< RFC 9146 §4
inline constexpr std::uint8_t kClientHello = 1;
inline constexpr std::uint8_t kServerHello = 2;
inline constexpr std::uint8_t kHelloVerifyRequest = 3;
inline constexpr std::uint8_t kAlertHandshakeFailure = 40;

// Cipher suite numbers (IANA).
inline constexpr std::uint16_t kPskAes128Ccm8 = 0xC0A8;
inline constexpr std::uint16_t kEcdheEcdsaAes128Ccm8 = 0xC0AE;
inline constexpr std::uint16_t kPskAes128GcmSha256 = 0x00A8;
inline constexpr std::uint16_t kEcdheEcdsaAes128GcmSha256 = 0xC02B;
inline constexpr std::uint16_t kPskAes256CbcSha384 = 0x00AF;
/// What the agent is configured to offer (cmake/mbedtls/coap_edge_mbedtls_config.h).
inline const std::vector<std::uint16_t> kOurSuites{kPskAes128Ccm8, kEcdheEcdsaAes128Ccm8, kPskAes128GcmSha256,
                                                   kEcdheEcdsaAes128GcmSha256};

namespace detail {
inline void put16(Bytes& b, std::size_t v) {
  b.push_back(static_cast<std::uint8_t>(v >> 8));
  b.push_back(static_cast<std::uint8_t>(v));
}
inline void put24(Bytes& b, std::size_t v) {
  b.push_back(static_cast<std::uint8_t>(v >> 16));
  put16(b, v & 0xFFFF);
}
}  // namespace detail

/// A complete ClientHello record: epoch 0, record sequence `record_seq`, handshake message_seq
/// `message_seq`, the given suites and cookie, and the extensions an ECDHE-ECDSA suite needs
/// (supported_groups P-256, ec_point_formats uncompressed, signature_algorithms ECDSA-SHA256).
inline Bytes clientHello(const std::vector<std::uint16_t>& suites, const Bytes& cookie = {},
                         std::uint64_t record_seq = 0, std::uint16_t message_seq = 0, std::uint32_t random_seed = 1) {
  using detail::put16;
  using detail::put24;
  Bytes body;
  put16(body, 0xFEFD);  // DTLS 1.2
  std::mt19937 rng(random_seed);
  for (int i = 0; i < 32; ++i) body.push_back(static_cast<std::uint8_t>(rng()));
  body.push_back(0);  // session_id
  body.push_back(static_cast<std::uint8_t>(cookie.size()));
  body.insert(body.end(), cookie.begin(), cookie.end());
  put16(body, suites.size() * 2);
  for (std::uint16_t s : suites) put16(body, s);
  body.push_back(1);  // compression methods: null
  body.push_back(0);
  Bytes ext;
  put16(ext, 0x000A);  // supported_groups: secp256r1
  put16(ext, 4);
  put16(ext, 2);
  put16(ext, 0x0017);
  put16(ext, 0x000B);  // ec_point_formats: uncompressed
  put16(ext, 2);
  ext.push_back(1);
  ext.push_back(0);
  put16(ext, 0x000D);  // signature_algorithms: ecdsa_secp256r1_sha256
  put16(ext, 4);
  put16(ext, 2);
  put16(ext, 0x0403);
  put16(body, ext.size());
  body.insert(body.end(), ext.begin(), ext.end());

  Bytes rec;
  rec.push_back(kContentHandshake);
  put16(rec, 0xFEFD);
  put16(rec, 0);  // epoch
  for (int shift = 40; shift >= 0; shift -= 8) rec.push_back(static_cast<std::uint8_t>(record_seq >> shift));
  put16(rec, 12 + body.size());
  rec.push_back(kClientHello);
  put24(rec, body.size());
  put16(rec, message_seq);
  put24(rec, 0);            // fragment_offset
  put24(rec, body.size());  // fragment_length
  rec.insert(rec.end(), body.begin(), body.end());
  return rec;
}

/// A DTLS 1.2 record with a Connection ID (RFC 9146 §4): tls12_cid, DTLS 1.2, `epoch`, `seq`,
/// the `cid`, the length, then `encrypted` as it stands (a test chooses it, e.g. garbage).
inline Bytes cidRecord(const Bytes& cid, std::uint16_t epoch, std::uint64_t seq, const Bytes& encrypted) {
  Bytes rec;
  rec.push_back(kContentTls12Cid);
  detail::put16(rec, 0xFEFD);
  detail::put16(rec, epoch);
  for (int shift = 40; shift >= 0; shift -= 8) rec.push_back(static_cast<std::uint8_t>(seq >> shift));
  rec.insert(rec.end(), cid.begin(), cid.end());
  detail::put16(rec, encrypted.size());
  rec.insert(rec.end(), encrypted.begin(), encrypted.end());
  return rec;
}

/// The first record of a datagram, as far as these tests look at it.
struct Record {
  std::uint8_t content_type = 0;
  std::uint16_t epoch = 0;
  std::optional<std::uint8_t> handshake_type;  ///< handshake records (epoch 0) only
  Bytes fragment;                              ///< the record's payload
};

inline std::optional<Record> firstRecord(const Bytes& d) {
  if (d.size() < 13) return std::nullopt;
  Record r;
  r.content_type = d[0];
  r.epoch = static_cast<std::uint16_t>((d[3] << 8) | d[4]);
  const std::size_t len = static_cast<std::size_t>((d[11] << 8) | d[12]);
  if (13 + len > d.size()) return std::nullopt;
  r.fragment.assign(d.begin() + 13, d.begin() + static_cast<std::ptrdiff_t>(13 + len));
  if (r.content_type == kContentHandshake && r.epoch == 0 && !r.fragment.empty()) r.handshake_type = r.fragment[0];
  return r;
}

/// The cookie of a HelloVerifyRequest datagram; nullopt if it is not one.
inline std::optional<Bytes> helloVerifyCookie(const Bytes& d) {
  const auto r = firstRecord(d);
  if (!r || r->handshake_type != kHelloVerifyRequest || r->fragment.size() < 15) return std::nullopt;
  const std::size_t n = r->fragment[14];
  if (15 + n > r->fragment.size()) return std::nullopt;
  return Bytes(r->fragment.begin() + 15, r->fragment.begin() + static_cast<std::ptrdiff_t>(15 + n));
}

/// A UDP socket on 127.0.0.1 (ephemeral port) connected to the agent.
class UdpPeer {
 public:
  explicit UdpPeer(std::uint16_t agent_port) {
    fd_ = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd_ < 0) throw std::runtime_error("socket");
    sockaddr_in to{};
    to.sin_family = AF_INET;
    to.sin_port = htons(agent_port);
    to.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(fd_, reinterpret_cast<const sockaddr*>(&to), sizeof(to)) != 0) {
      close(fd_);
      throw std::runtime_error("connect");
    }
  }
  ~UdpPeer() {
    if (fd_ >= 0) close(fd_);
  }
  UdpPeer(const UdpPeer&) = delete;
  UdpPeer& operator=(const UdpPeer&) = delete;
  UdpPeer(UdpPeer&& o) noexcept : fd_(o.fd_) { o.fd_ = -1; }

  [[nodiscard]] int fd() const { return fd_; }
  [[nodiscard]] std::uint16_t localPort() const {
    sockaddr_in a{};
    socklen_t n = sizeof(a);
    getsockname(fd_, reinterpret_cast<sockaddr*>(&a), &n);
    return ntohs(a.sin_port);
  }
  /// True if the whole datagram was handed to the kernel.
  bool send(const Bytes& d) const { return ::send(fd_, d.data(), d.size(), 0) == static_cast<ssize_t>(d.size()); }
  /// One datagram, or nullopt if none arrives within `limit`.
  [[nodiscard]] std::optional<Bytes> receive(std::chrono::milliseconds limit) const {
    pollfd p{fd_, POLLIN, 0};
    if (poll(&p, 1, static_cast<int>(limit.count())) <= 0) return std::nullopt;
    return tryReceive();
  }
  /// One datagram if one is queued now.
  [[nodiscard]] std::optional<Bytes> tryReceive() const {
    std::array<std::uint8_t, 2048> buf{};
    const ssize_t n = recv(fd_, buf.data(), buf.size(), 0);
    if (n < 0) return std::nullopt;
    return Bytes(buf.begin(), buf.begin() + n);
  }

 private:
  int fd_ = -1;
};

}  // namespace coap_edge::test::dtls
