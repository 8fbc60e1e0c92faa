// [downstream] receive_buffer_bytes: a burst of datagrams that reaches the agent while it cannot
// run (here: stopped with SIGSTOP, as a busy gateway's agent waits for a core) is queued in its
// sockets and answered afterwards, instead of being dropped by the kernel, which would cost
// every dropped request's client a 2-3 s retransmission. The datagrams are confirmable GETs of
// a path nobody may read, on a plain endpoint: each one is answered (4.01, or 4.29 once the
// address's rate limit binds), which is all this test counts.

#include "coap_clients.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <array>
#include <csignal>
#include <fstream>
#include <set>
#include <thread>

namespace coap_edge::test {
namespace {

using namespace std::chrono_literals;

constexpr int kBurst = 1000;  // four times what the kernel's default buffer holds (about 256)

long procSysValue(const char* path) {
  std::ifstream in(path);
  long v = -1;
  in >> v;
  return v;
}

bool waitForState(pid_t pid, char want, std::chrono::milliseconds limit) {
  const auto deadline = std::chrono::steady_clock::now() + limit;
  while (std::chrono::steady_clock::now() < deadline) {
    std::ifstream in("/proc/" + std::to_string(pid) + "/stat");
    std::string stat;
    std::getline(in, stat);
    const auto close = stat.rfind(')');
    if (close != std::string::npos && close + 2 < stat.size() && stat[close + 2] == want) return true;
    std::this_thread::sleep_for(5ms);
  }
  return false;
}

/// Sends kBurst requests to the paused agent, resumes it and returns how many it answered.
int requestsAnsweredAfterAPause(AgentUnderTest& agent, std::uint16_t port) {
  const int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return -1;
  const int big = 4 * 1024 * 1024;  // our own side must not be where answers are lost
  setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &big, sizeof(big));
  sockaddr_in to{};
  to.sin_family = AF_INET;
  to.sin_port = htons(port);
  to.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  agent.signal(SIGSTOP);
  const bool stopped = waitForState(agent.pid(), 'T', 5s);
  for (int i = 0; stopped && i < kBurst; ++i) {
    const auto hi = static_cast<unsigned char>(i >> 8);
    const auto lo = static_cast<unsigned char>(i);
    // CON GET, Message ID and 2-byte token i, Uri-Path "x".
    const std::array<unsigned char, 8> get{0x42, 0x01, hi, lo, hi, lo, 0xb1, 'x'};
    (void)sendto(fd, get.data(), get.size(), 0, reinterpret_cast<const sockaddr*>(&to), sizeof(to));
  }
  agent.signal(SIGCONT);
  if (!stopped) {
    close(fd);
    return -1;
  }
  std::set<int> answered;
  // Until every request is answered, or nothing more came for 2 s (bounded: 20 s in all).
  const auto give_up = std::chrono::steady_clock::now() + 20s;
  while (static_cast<int>(answered.size()) < kBurst && std::chrono::steady_clock::now() < give_up) {
    pollfd p{fd, POLLIN, 0};
    if (poll(&p, 1, 2000) <= 0) break;
    std::array<unsigned char, 64> buf{};
    const ssize_t n = recv(fd, buf.data(), buf.size(), 0);
    // A piggybacked response (ACK, type 2) with a response code, echoing the Message ID.
    if (n >= 4 && (buf[0] & 0x30) == 0x20 && buf[1] >= 0x40) answered.insert((buf[2] << 8) | buf[3]);
  }
  close(fd);
  return static_cast<int>(answered.size());
}

std::string plainListen(std::uint16_t port) {
  return "plain_listen = [\"127.0.0.1:" + std::to_string(port) + "\"]\n";
}

TEST(ReceiveBuffer, ABurstWhileTheAgentCannotRunIsAnsweredInFullByDefault) {
  const long rmem_max = procSysValue("/proc/sys/net/core/rmem_max");
  if (rmem_max < 1024 * 1024) {
    GTEST_SKIP() << "net.core.rmem_max is " << rmem_max
                 << ": the kernel caps the agent's 1 MiB receive buffer below what this burst needs";
  }
  TempDir dir;
  const auto plain = freeUdpPort();
  AgentUnderTest agent(dir, baseConfig(dir, freeUdpPort(), plainListen(plain)));
  ASSERT_TRUE(agent.ready()) << agent.log();
  EXPECT_NE(agent.log().find("receive buffer of 127.0.0.1:" + std::to_string(plain) + ": 1048576 bytes"),
            std::string::npos)
      << agent.log();
  EXPECT_EQ(requestsAnsweredAfterAPause(agent, plain), kBurst) << agent.log();
}

TEST(ReceiveBuffer, ASizeAboveTheKernelsCapIsLoggedWithWhatWasGranted) {
  const long rmem_max = procSysValue("/proc/sys/net/core/rmem_max");
  if (rmem_max >= 64L * 1024 * 1024) GTEST_SKIP() << "net.core.rmem_max is " << rmem_max << ": nothing caps 64 MiB";
  TempDir dir;
  const auto port = freeUdpPort();
  AgentUnderTest agent(dir, baseConfig(dir, port, "receive_buffer_bytes = 67108864\n"));
  ASSERT_TRUE(agent.ready()) << agent.log();
  // The operator learns what the kernel granted and which setting caps it; the agent runs on.
  EXPECT_NE(agent.log().find("receive buffer of 127.0.0.1:" + std::to_string(port) + " is " + std::to_string(rmem_max) +
                             " bytes, not the 67108864 of [downstream] receive_buffer_bytes: the kernel caps it at "
                             "net.core.rmem_max"),
            std::string::npos)
      << agent.log();
}

TEST(ReceiveBuffer, TheKernelsDefaultBufferLosesPartOfTheSameBurst) {
  // What the default above prevents; if this host's default already holds the burst there is
  // nothing to show.
  const long rmem_default = procSysValue("/proc/sys/net/core/rmem_default");
  if (rmem_default >= 512 * 1024) GTEST_SKIP() << "net.core.rmem_default is " << rmem_default;
  TempDir dir;
  const auto plain = freeUdpPort();
  AgentUnderTest agent(dir, baseConfig(dir, freeUdpPort(), plainListen(plain) + "receive_buffer_bytes = 0\n"));
  ASSERT_TRUE(agent.ready()) << agent.log();
  const int answered = requestsAnsweredAfterAPause(agent, plain);
  RecordProperty("answered", answered);
  EXPECT_GT(answered, 0) << agent.log();
  EXPECT_LT(answered, kBurst) << agent.log();
}

}  // namespace
}  // namespace coap_edge::test
