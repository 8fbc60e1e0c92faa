// libcoap's delay queue as our build patches it (cmake/patches/0025): the CONs a session holds
// back for NSTART are appended at a kept tail instead of after a walk, and a Message ID already
// waiting there is still refused. A relay with hundreds of requests in progress to one node
// depends on both: every request in order, none lost, no ID twice on the wire.
//
// The peer is a plain UDP socket of the test's own on loopback, so that nothing answers until
// the test does, one datagram at a time.

#include <coap3/coap.h>
#include <gtest/gtest.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <array>
#include <cstdint>
#include <memory>
#include <optional>
#include <vector>

namespace {

struct ContextDeleter {
  void operator()(coap_context_t* c) const noexcept { coap_free_context(c); }
};

class SilentPeer {
 public:
  SilentPeer() {
    fd_ = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (fd_ < 0 || bind(fd_, reinterpret_cast<const sockaddr*>(&a), sizeof(a)) != 0) return;
    socklen_t n = sizeof(a);
    getsockname(fd_, reinterpret_cast<sockaddr*>(&a), &n);
    port_ = ntohs(a.sin_port);
  }
  ~SilentPeer() {
    if (fd_ >= 0) close(fd_);
  }
  SilentPeer(const SilentPeer&) = delete;
  SilentPeer& operator=(const SilentPeer&) = delete;

  [[nodiscard]] std::uint16_t port() const { return port_; }

  // The Message ID of the next datagram the session sent, if one arrives within `ms`.
  std::optional<std::uint16_t> receive(int ms) {
    pollfd p{fd_, POLLIN, 0};
    if (poll(&p, 1, ms) != 1) return std::nullopt;
    std::array<std::uint8_t, 1500> buf{};
    socklen_t n = sizeof(from_);
    const ssize_t got = recvfrom(fd_, buf.data(), buf.size(), 0, reinterpret_cast<sockaddr*>(&from_), &n);
    if (got < 4) return std::nullopt;
    last_token_.assign(buf.begin() + 4, buf.begin() + 4 + (buf[0] & 0x0f));
    return static_cast<std::uint16_t>((buf[2] << 8) | buf[3]);
  }

  // A piggybacked 2.05 for the request with this Message ID (and the token last received).
  void answer(std::uint16_t mid) {
    std::vector<std::uint8_t> ack{static_cast<std::uint8_t>(0x60 | last_token_.size()), 0x45,
                                  static_cast<std::uint8_t>(mid >> 8), static_cast<std::uint8_t>(mid & 0xff)};
    ack.insert(ack.end(), last_token_.begin(), last_token_.end());
    sendto(fd_, ack.data(), ack.size(), 0, reinterpret_cast<const sockaddr*>(&from_), sizeof(from_));
  }

 private:
  int fd_ = -1;
  std::uint16_t port_ = 0;
  sockaddr_in from_{};
  std::vector<std::uint8_t> last_token_;
};

class DelayQueue : public ::testing::Test {
 protected:
  void SetUp() override {
    coap_startup();
    coap_set_log_level(COAP_LOG_EMERG);
    context_.reset(coap_new_context(nullptr));
    ASSERT_TRUE(context_);
    ASSERT_NE(peer_.port(), 0);
    coap_address_t dst;
    coap_address_init(&dst);
    dst.addr.sin.sin_family = AF_INET;
    dst.addr.sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    dst.addr.sin.sin_port = htons(peer_.port());
    session_ = coap_new_client_session(context_.get(), nullptr, &dst, COAP_PROTO_UDP);
    ASSERT_NE(session_, nullptr);
  }
  void TearDown() override {
    if (session_ != nullptr) coap_session_release(session_);
    context_.reset();
  }

  // A CON GET; mid < 0: the session's next Message ID (coap_new_message_id()).
  coap_mid_t send(int mid = -1) {
    coap_pdu_t* pdu = mid < 0 ? coap_new_pdu(COAP_MESSAGE_CON, COAP_REQUEST_CODE_GET, session_)
                              : coap_pdu_init(COAP_MESSAGE_CON, COAP_REQUEST_CODE_GET, static_cast<coap_mid_t>(mid),
                                              coap_session_max_pdu_size(session_));
    if (pdu == nullptr) return COAP_INVALID_MID;
    std::array<std::uint8_t, 8> token{};
    size_t len = 0;
    coap_session_new_token(session_, &len, token.data());
    coap_add_token(pdu, len, token.data());
    return coap_send(session_, pdu);
  }
  // The datagrams the session sends while the test answers each one (bounded).
  std::vector<std::uint16_t> drain(std::size_t expected) {
    std::vector<std::uint16_t> seen;
    for (int i = 0; i < 50 && seen.size() < expected; ++i) {
      coap_io_process(context_.get(), COAP_IO_NO_WAIT);
      if (auto mid = peer_.receive(100)) {
        seen.push_back(*mid);
        peer_.answer(*mid);
        coap_io_process(context_.get(), 100);
      }
    }
    return seen;
  }

  SilentPeer peer_;
  std::unique_ptr<coap_context_t, ContextDeleter> context_;
  coap_session_t* session_ = nullptr;
};

TEST_F(DelayQueue, ConfirmablesWaitingForNstartLeaveInTheOrderTheyWereSent) {
  std::vector<std::uint16_t> sent;
  for (int i = 0; i < 6; ++i) {
    const coap_mid_t mid = send();
    ASSERT_NE(mid, COAP_INVALID_MID);
    sent.push_back(static_cast<std::uint16_t>(mid));
  }
  // NSTART = 1: one on the wire, five queued; each answer lets the next one go.
  EXPECT_EQ(drain(sent.size()), sent);
  // The queue drained: one queued into it again leaves too.
  const coap_mid_t again = send();
  ASSERT_NE(again, COAP_INVALID_MID);
  EXPECT_EQ(drain(1), std::vector<std::uint16_t>{static_cast<std::uint16_t>(again)});
}

TEST_F(DelayQueue, AMessageIdAlreadyWaitingIsRefusedWhereverItIsInTheQueue) {
  std::vector<std::uint16_t> sent;
  for (int i = 0; i < 4; ++i) sent.push_back(static_cast<std::uint16_t>(send()));
  // The first is on the wire; the others wait. An ID chosen by the application that one of them
  // holds is refused, in the middle of the queue as at its tail.
  EXPECT_EQ(send(sent[2]), COAP_INVALID_MID);
  EXPECT_EQ(send(sent[3]), COAP_INVALID_MID);
  // IDs that nobody holds are queued, among them the one the session is about to issue, then
  // another behind it: the session's next ID is refused, although the last entry holds another
  // one (once an ID not issued by the session waits, fresh ones are looked for in the whole
  // queue), and the ID after it is queued.
  const int chosen = (sent[3] + 1) & 0xffff;
  const int other = (sent[3] + 1000) & 0xffff;
  EXPECT_EQ(send(chosen), chosen);
  EXPECT_EQ(send(other), other);
  EXPECT_EQ(send(), COAP_INVALID_MID);
  const coap_mid_t fresh = send();
  ASSERT_NE(fresh, COAP_INVALID_MID);
  EXPECT_EQ(fresh, (chosen + 1) & 0xffff);
  // All of them leave, once each, in order.
  const std::vector<std::uint16_t> expected{sent[0],
                                            sent[1],
                                            sent[2],
                                            sent[3],
                                            static_cast<std::uint16_t>(chosen),
                                            static_cast<std::uint16_t>(other),
                                            static_cast<std::uint16_t>(fresh)};
  EXPECT_EQ(drain(expected.size()), expected);
}

}  // namespace
