#pragma once
// A DTLS-PSK client on mbedTLS over a UDP socket the test owns (dtls::UdpPeer), for tests that
// must put their own raw records on the very address and port of an established session, or
// move the session to another socket (NAT rebinding with a Connection ID, RFC 9146).
// Deliberately small: one session, CoAP GET by hand (Block2 followed), every wait bounded.

#include "dtls_records.h"

#include <mbedtls/ctr_drbg.h>
#include <mbedtls/entropy.h>
#include <mbedtls/ssl.h>
#include <mbedtls/timing.h>

#include <cerrno>
#include <chrono>
#include <optional>
#include <string>
#include <utility>

namespace coap_edge::test::dtls {

class MbedDtlsClient {
 public:
  /// `connection_id`: negotiate RFC 9146 CIDs (the client asks for none of its own, so the
  /// agent's records carry none; the client's records carry the agent's).
  MbedDtlsClient(const UdpPeer& peer, const std::string& identity, const std::string& key,
                 bool connection_id = false)
      : peer_(&peer) {
    mbedtls_ssl_init(&ssl_);
    mbedtls_ssl_config_init(&conf_);
    mbedtls_ctr_drbg_init(&drbg_);
    mbedtls_entropy_init(&entropy_);
    ok_ = mbedtls_ctr_drbg_seed(&drbg_, mbedtls_entropy_func, &entropy_, nullptr, 0) == 0 &&
          mbedtls_ssl_config_defaults(&conf_, MBEDTLS_SSL_IS_CLIENT, MBEDTLS_SSL_TRANSPORT_DATAGRAM,
                                      MBEDTLS_SSL_PRESET_DEFAULT) == 0;
    if (!ok_) return;
    mbedtls_ssl_conf_rng(&conf_, mbedtls_ctr_drbg_random, &drbg_);
    mbedtls_ssl_conf_read_timeout(&conf_, 200);
    ok_ = mbedtls_ssl_conf_psk(&conf_, reinterpret_cast<const unsigned char*>(key.data()), key.size(),
                               reinterpret_cast<const unsigned char*>(identity.data()), identity.size()) == 0 &&
          (!connection_id || mbedtls_ssl_conf_cid(&conf_, 0, MBEDTLS_SSL_UNEXPECTED_CID_IGNORE) == 0) &&
          mbedtls_ssl_setup(&ssl_, &conf_) == 0 &&
          (!connection_id || mbedtls_ssl_set_cid(&ssl_, MBEDTLS_SSL_CID_ENABLED, &kNoCid, 0) == 0);
    if (!ok_) return;
    mbedtls_ssl_set_bio(&ssl_, this, &MbedDtlsClient::sendCb, nullptr, &MbedDtlsClient::recvCb);
    mbedtls_ssl_set_timer_cb(&ssl_, &timer_, mbedtls_timing_set_delay, mbedtls_timing_get_delay);
  }
  ~MbedDtlsClient() {
    mbedtls_ssl_free(&ssl_);
    mbedtls_ssl_config_free(&conf_);
    mbedtls_ctr_drbg_free(&drbg_);
    mbedtls_entropy_free(&entropy_);
  }
  MbedDtlsClient(const MbedDtlsClient&) = delete;
  MbedDtlsClient& operator=(const MbedDtlsClient&) = delete;

  /// True once the handshake completed within `limit`.
  bool handshake(std::chrono::milliseconds limit) {
    if (!ok_) return false;
    const auto deadline = std::chrono::steady_clock::now() + limit;
    for (int i = 0; i < 1000 && std::chrono::steady_clock::now() < deadline; ++i) {
      const int ret = mbedtls_ssl_handshake(&ssl_);
      if (ret == 0) return true;
      if (ret != MBEDTLS_ERR_SSL_WANT_READ && ret != MBEDTLS_ERR_SSL_WANT_WRITE && ret != MBEDTLS_ERR_SSL_TIMEOUT) {
        return false;
      }
    }
    return false;
  }

  /// CON GET /`path` over the session; the response code (class*100+detail) or nullopt.
  std::optional<int> get(const std::string& path, std::chrono::milliseconds limit) {
    const auto r = exchange(request(path, 0), limit);
    if (!r) return std::nullopt;
    return r->code;
  }

  /// CON GET /`path` with the whole body (Block2 followed, at most 16 blocks); nullopt unless
  /// every block came back 2.05.
  std::optional<std::string> getBody(const std::string& path, std::chrono::milliseconds limit) {
    std::string body;
    for (std::uint32_t num = 0; num < 16; ++num) {
      const auto r = exchange(request(path, num), limit);
      if (!r || r->code != 205) return std::nullopt;
      body += r->payload;
      if (!r->more) return body;
    }
    return std::nullopt;
  }

  /// The DTLS datagram a GET /`path` would be sent as, sealed with the session's keys and next
  /// record sequence number but not sent: for tests that deliver it themselves.
  std::optional<Bytes> seal(const std::string& path) {
    const Bytes pdu = request(path, 0);
    capture_ = Bytes{};
    const int n = mbedtls_ssl_write(&ssl_, pdu.data(), pdu.size());
    auto out = std::move(capture_);
    capture_.reset();
    if (n != static_cast<int>(pdu.size()) || !out || out->empty()) return std::nullopt;
    return out;
  }

  /// Sends `bytes` as one application data record (any bytes: the fuzz target's CoAP); false if
  /// Mbed TLS did not take them whole.
  bool sendApplicationData(const Bytes& bytes) {
    if (bytes.empty()) return false;
    return mbedtls_ssl_write(&ssl_, bytes.data(), bytes.size()) == static_cast<int>(bytes.size());
  }

  /// The Connection ID the agent asked for (what this client's records carry); empty if none.
  [[nodiscard]] Bytes peerCid() {
    int enabled = MBEDTLS_SSL_CID_DISABLED;
    std::array<unsigned char, MBEDTLS_SSL_CID_OUT_LEN_MAX> cid{};
    std::size_t len = 0;
    if (mbedtls_ssl_get_peer_cid(&ssl_, &enabled, cid.data(), &len) != 0 || enabled != MBEDTLS_SSL_CID_ENABLED) return {};
    return Bytes(cid.begin(), cid.begin() + static_cast<std::ptrdiff_t>(len));
  }

  /// Continue the same session over another socket (a NAT that gave the client a new port).
  void rebind(const UdpPeer& peer) { peer_ = &peer; }

 private:
  struct Response {
    int code = 0;
    std::string payload;
    bool more = false;  ///< Block2 M bit
  };

  Bytes request(const std::string& path, std::uint32_t block) {
    Bytes pdu{0x40, 0x01, static_cast<std::uint8_t>(mid_ >> 8), static_cast<std::uint8_t>(mid_)};
    ++mid_;
    if (path.size() > 12 || block > 15) return {};  // short Uri-Path and Block2 only
    pdu.push_back(static_cast<std::uint8_t>(0xB0 | path.size()));  // Uri-Path (11)
    pdu.insert(pdu.end(), path.begin(), path.end());
    if (block > 0) {
      pdu.push_back(0xC1);                                       // Block2 (23 = 11 + 12), 1 byte
      pdu.push_back(static_cast<std::uint8_t>(block << 4 | 6));  // NUM, M=0, SZX 6 (1024)
    }
    return pdu;
  }

  // Sends `pdu` and waits for the piggybacked response with its message ID.
  std::optional<Response> exchange(const Bytes& pdu, std::chrono::milliseconds limit) {
    if (pdu.size() < 4) return std::nullopt;
    if (mbedtls_ssl_write(&ssl_, pdu.data(), pdu.size()) != static_cast<int>(pdu.size())) return std::nullopt;
    const auto deadline = std::chrono::steady_clock::now() + limit;
    std::array<unsigned char, 2048> buf{};
    for (int i = 0; i < 100 && std::chrono::steady_clock::now() < deadline; ++i) {
      const int n = mbedtls_ssl_read(&ssl_, buf.data(), buf.size());
      if (n >= 4 && ((buf[0] >> 4) & 3) == 2 /* ACK */ && buf[1] != 0 && buf[2] == pdu[2] && buf[3] == pdu[3]) {
        return parse(buf.data(), static_cast<std::size_t>(n));
      }
      if (n < 0 && n != MBEDTLS_ERR_SSL_WANT_READ && n != MBEDTLS_ERR_SSL_TIMEOUT) return std::nullopt;
    }
    return std::nullopt;
  }

  static std::optional<Response> parse(const unsigned char* d, std::size_t n) {
    Response r;
    r.code = (d[1] >> 5) * 100 + (d[1] & 0x1F);
    std::size_t at = 4 + (d[0] & 0x0F);
    unsigned option = 0;
    while (at < n && d[at] != 0xFF) {
      unsigned delta = d[at] >> 4, len = d[at] & 0x0F;
      ++at;
      for (unsigned* v : {&delta, &len}) {
        if (*v == 13) {
          if (at >= n) return std::nullopt;
          *v = 13U + d[at++];
        } else if (*v == 14) {
          if (at + 1 >= n) return std::nullopt;
          *v = 269U + (static_cast<unsigned>(d[at]) << 8 | d[at + 1]);
          at += 2;
        } else if (*v == 15) {
          return std::nullopt;
        }
      }
      option += delta;
      if (at + len > n) return std::nullopt;
      if (option == 23 && len > 0) r.more = (d[at + len - 1] & 0x08) != 0;
      at += len;
    }
    if (at < n) r.payload.assign(reinterpret_cast<const char*>(d) + at + 1, n - at - 1);
    return r;
  }

  static int sendCb(void* ctx, const unsigned char* buf, size_t len) {
    auto* self = static_cast<MbedDtlsClient*>(ctx);
    if (self->capture_) {
      self->capture_->insert(self->capture_->end(), buf, buf + len);
      return static_cast<int>(len);
    }
    const ssize_t n = ::send(self->peer_->fd(), buf, len, 0);
    return n < 0 ? MBEDTLS_ERR_SSL_WANT_WRITE : static_cast<int>(n);
  }
  static int recvCb(void* ctx, unsigned char* buf, size_t len, uint32_t timeout_ms) {
    auto* self = static_cast<MbedDtlsClient*>(ctx);
    pollfd p{self->peer_->fd(), POLLIN, 0};
    if (poll(&p, 1, static_cast<int>(timeout_ms == 0 ? 200 : timeout_ms)) <= 0) return MBEDTLS_ERR_SSL_TIMEOUT;
    const ssize_t n = ::recv(self->peer_->fd(), buf, len, 0);
    return n < 0 ? MBEDTLS_ERR_SSL_WANT_READ : static_cast<int>(n);
  }

  // An empty own CID; not nullptr, which mbedTLS would hand to memcpy (undefined, UBSan).
  static constexpr unsigned char kNoCid = 0;
  const UdpPeer* peer_;
  std::optional<Bytes> capture_;  ///< set: sendCb collects instead of sending (seal())
  mbedtls_ssl_context ssl_;
  mbedtls_ssl_config conf_;
  mbedtls_ctr_drbg_context drbg_;
  mbedtls_entropy_context entropy_;
  mbedtls_timing_delay_context timer_{};
  std::uint16_t mid_ = 0x1000;
  bool ok_ = false;
};

}  // namespace coap_edge::test::dtls
