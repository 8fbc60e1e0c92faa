// Record buffers of established DTLS sessions (issue 9: memory per session). Mbed TLS is built
// with MBEDTLS_SSL_VARIABLE_BUFFER_LENGTH and our patch cmake/mbedtls/patches/0001: the 2 KB
// buffers the handshake needs (whole certificate messages) shrink at the handshake's end to
// what libcoap can hand over — a datagram of COAP_RXBUFFER_SIZE in, a record of the session's
// MTU out — also when the server keeps its last flight because the client has sent nothing yet.
// With 0002 that kept state holds only what sending the flight again needs (the handshake's
// checksums, ECDH context and PSK are freed: a struct Mbed TLS does not export, so this test
// shows that the flight is still sent again from it; bench/run-memory.sh shows the bytes).
//
// A real Mbed TLS client and server of this build talk over an in-memory datagram pipe with a
// fake clock, so that a lost flight and its retransmission are exact; the buffers are read from
// the contexts (private fields: this test is about them).

#define MBEDTLS_ALLOW_PRIVATE_ACCESS
#include <coap3/coap.h>
#include <mbedtls/ctr_drbg.h>
#include <mbedtls/entropy.h>
#include <mbedtls/ssl.h>

#include <gtest/gtest.h>

#include <cstdint>
#include <cstring>
#include <deque>
#include <string>
#include <vector>

namespace {

static_assert(MBEDTLS_SSL_IN_CONTENT_LEN_ESTABLISHED >= COAP_RXBUFFER_SIZE,
              "an established session must take the largest datagram libcoap reads");
static_assert(MBEDTLS_SSL_OUT_CONTENT_LEN_ESTABLISHED >= COAP_DEFAULT_MTU,
              "an established session must send a record of libcoap's default MTU");

using Datagram = std::vector<unsigned char>;

// One direction of the pipe: whole datagrams, in order; `drop` loses what is sent while set.
struct Link {
  std::deque<Datagram> queue;
  bool drop = false;
  int sent = 0;
};

// Mbed TLS's DTLS timer on a clock the test moves.
struct FakeTimer {
  const std::uint64_t* now_ms;
  std::uint64_t start = 0;
  std::uint32_t intermediate = 0, final = 0;

  static void set(void* self, std::uint32_t int_ms, std::uint32_t fin_ms) {
    auto* t = static_cast<FakeTimer*>(self);
    t->start = *t->now_ms;
    t->intermediate = int_ms;
    t->final = fin_ms;
  }
  static int get(void* self) {
    const auto* t = static_cast<FakeTimer*>(self);
    if (t->final == 0) return -1;
    const std::uint64_t elapsed = *t->now_ms - t->start;
    if (elapsed >= t->final) return 2;
    return elapsed >= t->intermediate ? 1 : 0;
  }
};

class Endpoint {
 public:
  Endpoint(int role, Link& out, Link& in, const std::uint64_t& now) : out_(&out), in_(&in), timer_{&now} {
    mbedtls_ssl_init(&ssl_);
    mbedtls_ssl_config_init(&conf_);
    mbedtls_ctr_drbg_init(&drbg_);
    mbedtls_entropy_init(&entropy_);
    static const std::string kIdentity = "dev-1", kKey = "0123456789abcdef";
    ok_ = mbedtls_ctr_drbg_seed(&drbg_, mbedtls_entropy_func, &entropy_, nullptr, 0) == 0 &&
          mbedtls_ssl_config_defaults(&conf_, role, MBEDTLS_SSL_TRANSPORT_DATAGRAM, MBEDTLS_SSL_PRESET_DEFAULT) == 0;
    if (!ok_) return;
    mbedtls_ssl_conf_rng(&conf_, mbedtls_ctr_drbg_random, &drbg_);
    // libcoap's cookie exchange is its own (patch 0002); here it would only add a round trip.
    if (role == MBEDTLS_SSL_IS_SERVER) mbedtls_ssl_conf_dtls_cookies(&conf_, nullptr, nullptr, nullptr);
    ok_ = mbedtls_ssl_conf_psk(&conf_, reinterpret_cast<const unsigned char*>(kKey.data()), kKey.size(),
                               reinterpret_cast<const unsigned char*>(kIdentity.data()), kIdentity.size()) == 0 &&
          mbedtls_ssl_setup(&ssl_, &conf_) == 0;
    mbedtls_ssl_set_bio(&ssl_, this, &Endpoint::send, &Endpoint::recv, nullptr);
    mbedtls_ssl_set_timer_cb(&ssl_, &timer_, &FakeTimer::set, &FakeTimer::get);
  }
  ~Endpoint() {
    mbedtls_ssl_free(&ssl_);
    mbedtls_ssl_config_free(&conf_);
    mbedtls_ctr_drbg_free(&drbg_);
    mbedtls_entropy_free(&entropy_);
  }
  Endpoint(const Endpoint&) = delete;
  Endpoint& operator=(const Endpoint&) = delete;

  bool ok() const { return ok_; }
  mbedtls_ssl_context& ssl() { return ssl_; }
  const mbedtls_ssl_context& ssl() const { return ssl_; }
  bool done() const { return ssl_.state == MBEDTLS_SSL_HANDSHAKE_OVER; }
  // One step: 0 when done, WANT_READ/WANT_WRITE while waiting, anything else is a failure.
  int step() { return done() ? 0 : mbedtls_ssl_handshake(&ssl_); }

 private:
  static int send(void* self, const unsigned char* buf, std::size_t len) {
    auto* e = static_cast<Endpoint*>(self);
    ++e->out_->sent;
    if (!e->out_->drop) e->out_->queue.emplace_back(buf, buf + len);
    return static_cast<int>(len);
  }
  static int recv(void* self, unsigned char* buf, std::size_t len) {
    auto* e = static_cast<Endpoint*>(self);
    if (e->in_->queue.empty()) return MBEDTLS_ERR_SSL_WANT_READ;
    const Datagram d = std::move(e->in_->queue.front());
    e->in_->queue.pop_front();
    const std::size_t n = d.size() < len ? d.size() : len;  // truncated like a short read buffer
    std::memcpy(buf, d.data(), n);
    return static_cast<int>(n);
  }

  Link* out_;
  Link* in_;
  FakeTimer timer_;
  bool ok_ = false;
  mbedtls_ssl_context ssl_;
  mbedtls_ssl_config conf_;
  mbedtls_ctr_drbg_context drbg_;
  mbedtls_entropy_context entropy_;
};

bool waiting(int rc) { return rc == 0 || rc == MBEDTLS_ERR_SSL_WANT_READ || rc == MBEDTLS_ERR_SSL_WANT_WRITE; }

class DtlsRecordBuffers : public ::testing::Test {
 protected:
  // Steps both sides until `until` holds, at most `steps` rounds; false on a handshake error.
  template <typename Until>
  bool run(Until until, int steps = 100) {
    for (int i = 0; i < steps && !until(); ++i) {
      if (!waiting(client_.step()) || !waiting(server_.step())) return false;
    }
    return until();
  }
  std::size_t serverIn() const { return server_.ssl().in_buf_len; }
  std::size_t serverOut() const { return server_.ssl().out_buf_len; }
  // Application data one way: what the reader got, or the reader's error code as text.
  static std::string transfer(Endpoint& from, Endpoint& to, std::size_t size) {
    const std::vector<unsigned char> data(size, 0x5a);
    const int w = mbedtls_ssl_write(&from.ssl(), data.data(), data.size());
    if (w < 0) return "write " + std::to_string(w);
    std::vector<unsigned char> got(4096);
    const int r = mbedtls_ssl_read(&to.ssl(), got.data(), got.size());
    if (r < 0) return "read " + std::to_string(r);
    return std::to_string(r) + " bytes";
  }

  std::uint64_t now_ = 0;
  Link to_server_, to_client_;
  Endpoint client_{MBEDTLS_SSL_IS_CLIENT, to_server_, to_client_, now_};
  Endpoint server_{MBEDTLS_SSL_IS_SERVER, to_client_, to_server_, now_};
};

TEST_F(DtlsRecordBuffers, HandshakeRunsWithFullBuffersAndAnIdleSessionKeepsSmallOnes) {
  ASSERT_TRUE(client_.ok() && server_.ok());
  ASSERT_TRUE(run([&] { return server_.ssl().state > MBEDTLS_SSL_CLIENT_HELLO; }));
  EXPECT_GE(serverIn(), std::size_t{MBEDTLS_SSL_IN_CONTENT_LEN});
  EXPECT_GE(serverOut(), std::size_t{MBEDTLS_SSL_OUT_CONTENT_LEN});

  ASSERT_TRUE(run([&] { return client_.done() && server_.done(); }));
  // The client has sent nothing since its Finished: the server still keeps its last flight
  // for a retransmission, and its buffers are small already.
  EXPECT_NE(server_.ssl().handshake, nullptr);
  EXPECT_LT(serverIn(), std::size_t{MBEDTLS_SSL_IN_CONTENT_LEN});
  EXPECT_LT(serverOut(), std::size_t{MBEDTLS_SSL_OUT_CONTENT_LEN});
  EXPECT_GE(serverIn(), std::size_t{COAP_RXBUFFER_SIZE} + 13);  // a whole datagram and its header room
  EXPECT_GE(serverOut(), std::size_t{COAP_DEFAULT_MTU});
}

TEST_F(DtlsRecordBuffers, RecordsUpToTheEstablishedSizesPassAndLargerOnesAreRefusedNotWritten) {
  ASSERT_TRUE(client_.ok() && server_.ok());
  ASSERT_TRUE(run([&] { return client_.done() && server_.done(); }));
  const std::size_t most = MBEDTLS_SSL_OUT_CONTENT_LEN_ESTABLISHED;
  EXPECT_EQ(transfer(client_, server_, most), std::to_string(most) + " bytes");
  EXPECT_EQ(server_.ssl().handshake, nullptr);  // the client's first record ended the wait
  EXPECT_EQ(transfer(server_, client_, most), std::to_string(most) + " bytes");
  // One byte more is refused by the writer (the buffer would not hold it), nothing is sent.
  const int sent = to_client_.sent;
  EXPECT_EQ(transfer(server_, client_, most + 1), "write " + std::to_string(MBEDTLS_ERR_SSL_BAD_INPUT_DATA));
  EXPECT_EQ(to_client_.sent, sent);
  EXPECT_EQ(transfer(server_, client_, 16), "16 bytes");  // and the session goes on
}

TEST_F(DtlsRecordBuffers, ALostLastFlightIsSentAgainFromTheSmallBuffers) {
  ASSERT_TRUE(client_.ok() && server_.ok());
  ASSERT_TRUE(run([&] { return server_.done(); }));
  // The server's ChangeCipherSpec and Finished were just sent: lose them.
  ASSERT_FALSE(to_client_.queue.empty());
  to_client_.queue.clear();
  EXPECT_LT(serverOut(), std::size_t{MBEDTLS_SSL_OUT_CONTENT_LEN});
  for (int i = 0; i < 3; ++i) ASSERT_TRUE(waiting(client_.step()));
  EXPECT_TRUE(to_server_.queue.empty());  // the client waits...
  now_ += 1100;  // ...until its retransmission timer (1 s) fires: it sends its last flight again
  ASSERT_TRUE(waiting(client_.step()));
  ASSERT_FALSE(to_server_.queue.empty());
  // The established server reads the copy and sends its last flight again.
  unsigned char buf[64];
  const int r = mbedtls_ssl_read(&server_.ssl(), buf, sizeof buf);
  EXPECT_TRUE(r == MBEDTLS_ERR_SSL_WANT_READ || r == MBEDTLS_ERR_SSL_TIMEOUT) << r;
  ASSERT_FALSE(to_client_.queue.empty());
  ASSERT_TRUE(run([&] { return client_.done(); }, 10));
  EXPECT_EQ(transfer(client_, server_, 100), "100 bytes");
  EXPECT_EQ(transfer(server_, client_, 100), "100 bytes");
}

}  // namespace
