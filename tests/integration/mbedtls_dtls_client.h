#pragma once
// A DTLS-PSK client on mbedTLS over a UDP socket the test owns (dtls::UdpPeer), for tests that
// must put their own raw records on the very address and port of an established session.
// Deliberately small: one session, CoAP GET by hand, every wait bounded.

#include "dtls_records.h"

#include <mbedtls/ctr_drbg.h>
#include <mbedtls/entropy.h>
#include <mbedtls/ssl.h>
#include <mbedtls/timing.h>

#include <cerrno>
#include <chrono>
#include <optional>
#include <string>

namespace coap_edge::test::dtls {

class MbedDtlsClient {
 public:
  MbedDtlsClient(const UdpPeer& peer, const std::string& identity, const std::string& key) : peer_(peer) {
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
          mbedtls_ssl_setup(&ssl_, &conf_) == 0;
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
    Bytes pdu{0x40, 0x01, static_cast<std::uint8_t>(mid_ >> 8), static_cast<std::uint8_t>(mid_)};
    ++mid_;
    if (path.size() > 12) return std::nullopt;  // short Uri-Path only: one option byte
    pdu.push_back(static_cast<std::uint8_t>(0xB0 | path.size()));
    pdu.insert(pdu.end(), path.begin(), path.end());
    if (mbedtls_ssl_write(&ssl_, pdu.data(), pdu.size()) != static_cast<int>(pdu.size())) return std::nullopt;
    const auto deadline = std::chrono::steady_clock::now() + limit;
    std::array<unsigned char, 2048> buf{};
    for (int i = 0; i < 100 && std::chrono::steady_clock::now() < deadline; ++i) {
      const int n = mbedtls_ssl_read(&ssl_, buf.data(), buf.size());
      if (n >= 4 && ((buf[0] >> 4) & 3) == 2 /* ACK */ && buf[1] != 0) return (buf[1] >> 5) * 100 + (buf[1] & 0x1F);
      if (n < 0 && n != MBEDTLS_ERR_SSL_WANT_READ && n != MBEDTLS_ERR_SSL_TIMEOUT) return std::nullopt;
    }
    return std::nullopt;
  }

 private:
  static int sendCb(void* ctx, const unsigned char* buf, size_t len) {
    auto* self = static_cast<MbedDtlsClient*>(ctx);
    const ssize_t n = ::send(self->peer_.fd(), buf, len, 0);
    return n < 0 ? MBEDTLS_ERR_SSL_WANT_WRITE : static_cast<int>(n);
  }
  static int recvCb(void* ctx, unsigned char* buf, size_t len, uint32_t timeout_ms) {
    auto* self = static_cast<MbedDtlsClient*>(ctx);
    pollfd p{self->peer_.fd(), POLLIN, 0};
    if (poll(&p, 1, static_cast<int>(timeout_ms == 0 ? 200 : timeout_ms)) <= 0) return MBEDTLS_ERR_SSL_TIMEOUT;
    const ssize_t n = ::recv(self->peer_.fd(), buf, len, 0);
    return n < 0 ? MBEDTLS_ERR_SSL_WANT_READ : static_cast<int>(n);
  }

  const UdpPeer& peer_;
  mbedtls_ssl_context ssl_;
  mbedtls_ssl_config conf_;
  mbedtls_ctr_drbg_context drbg_;
  mbedtls_entropy_context entropy_;
  mbedtls_timing_delay_context timer_{};
  std::uint16_t mid_ = 0x1000;
  bool ok_ = false;
};

}  // namespace coap_edge::test::dtls
