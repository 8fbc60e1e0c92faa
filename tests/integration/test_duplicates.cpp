// Duplicate requests (issue 7, RFC 7252 §4.5): a copy of a request the agent already answered
// (same session, Message ID, token and type) gets the same answer again and does not reach the
// request filter or the application a second time; /status counts it under "duplicates".
// Deterministic, no random loss: raw datagrams sent twice to a plain coap endpoint, a DTLS POST
// whose first answer a relay on loopback drops, so that the client retransmits it, and a PUT
// relayed to a coap-edge-simnode (registered at the agent's RD over DTLS-PSK, --log-requests)
// whose answers are held back until the client has retransmitted it.

#include "coap_clients.h"
#include "udp_impairment.h"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <optional>
#include <thread>

namespace coap_edge::test {
namespace {

using namespace std::chrono_literals;

constexpr const char* kKey = "dev1-secret-key-0001";
constexpr const char* kNodeKey = "node-a-secret-key-1";
using Bytes = std::vector<std::uint8_t>;

// A request datagram: CON or NON, code, Message ID, token, Uri-Path segments (each < 13 bytes)
// and an optional Uri-Query.
Bytes request(bool con, std::uint8_t code, std::uint16_t mid, const std::string& token,
              const std::vector<std::string>& path, const std::string& query = "") {
  Bytes d{static_cast<std::uint8_t>(0x40 | (con ? 0x00 : 0x10) | token.size()), code,
          static_cast<std::uint8_t>(mid >> 8), static_cast<std::uint8_t>(mid & 0xff)};
  d.insert(d.end(), token.begin(), token.end());
  unsigned last = 0;
  const auto option = [&d, &last](unsigned number, const std::string& value) {
    d.push_back(static_cast<std::uint8_t>(((number - last) << 4) | value.size()));
    d.insert(d.end(), value.begin(), value.end());
    last = number;
  };
  for (const auto& segment : path) option(11, segment);
  if (!query.empty()) option(15, query);
  return d;
}

// A UDP socket on 127.0.0.1 that sends to one port and waits (bounded) for answers.
class RawPeer {
 public:
  explicit RawPeer(std::uint16_t port) : fd_(socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0)) {
    to_.sin_family = AF_INET;
    to_.sin_port = htons(port);
    to_.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  }
  ~RawPeer() {
    if (fd_ >= 0) close(fd_);
  }
  RawPeer(const RawPeer&) = delete;
  RawPeer& operator=(const RawPeer&) = delete;

  /// Sends `d` and returns the first datagram that comes back within 3 s.
  std::optional<Bytes> exchange(const Bytes& d) {
    if (sendto(fd_, d.data(), d.size(), 0, reinterpret_cast<const sockaddr*>(&to_), sizeof(to_)) < 0) return std::nullopt;
    pollfd p{fd_, POLLIN, 0};
    if (poll(&p, 1, 3000) != 1) return std::nullopt;
    Bytes buf(2048);
    const ssize_t n = recv(fd_, buf.data(), buf.size(), 0);
    if (n < 4) return std::nullopt;
    buf.resize(static_cast<std::size_t>(n));
    return buf;
  }

 private:
  int fd_;
  sockaddr_in to_{};
};

class Duplicates : public ::testing::Test {
 protected:
  void SetUp() override {
    port_ = freeUdpPort();
    plain_port_ = freeUdpPort();
    const std::string config =
        baseConfig(dir_, port_, "plain_listen = [\"127.0.0.1:" + std::to_string(plain_port_) + "\"]\n",
                   std::string(kStatusForEveryone) + "[[acl]]\nidentity = \"dev-1\"\nallow = [\"PUT /nodes/*/actuators/**\", \"GET /nodes/*/big\"]\n" +
                       extraSections());
    agent_ = std::make_unique<AgentUnderTest>(dir_, config);
    ASSERT_TRUE(agent_->ready()) << agent_->log();
    const auto imported = ctl(agent_->configFile(), {"keys", "import", "-"},
                              std::string("dev-1,") + hexOf(kKey) + "\nnode-a," + hexOf(kNodeKey) + "\n");
    ASSERT_EQ(imported.exit_code, 0) << imported.err;
  }

  [[nodiscard]] virtual std::string extraSections() const { return ""; }

  // A simnode "node-a" on loopback that registered at the agent's RD (so /nodes/node-a/ relays).
  void startNode(const std::string& log, std::unique_ptr<Child>& node) {
    writeFile(dir_ / "node.key", hexOf(kNodeKey) + "\n");
    node = std::make_unique<Child>(
        std::vector<std::string>{simnodeBinary(), "--name", "node-a", "--listen", "127.0.0.1:" + std::to_string(freeUdpPort()),
                                 "--log-requests", "--rd", "coaps://127.0.0.1:" + std::to_string(port_), "--psk-identity",
                                 "node-a", "--psk-key-file", (dir_ / "node.key").string()},
        std::map<std::string, std::string>{}, log);
    bool known = false;
    for (int i = 0; i < 40 && !known; ++i) {
      std::this_thread::sleep_for(250ms);
      known = readFile(log).find("registered at") != std::string::npos;
    }
    ASSERT_TRUE(known) << readFile(log) << agent_->log();
  }

  // /status read over DTLS-PSK straight from the agent (not counted in itself).
  nlohmann::json status() {
    const auto r = pskGet(kGnutlsClient, port_, "dev-1", kKey, "status");
    return nlohmann::json::parse(r.out, nullptr, false);
  }
  static std::uint64_t served(const nlohmann::json& doc, const char* method) {
    std::uint64_t n = 0;
    if (doc.contains("requests") && doc["requests"].contains(method)) {
      for (const auto& item : doc["requests"][method].items()) n += item.value().get<std::uint64_t>();
    }
    return n;
  }

  TempDir dir_;
  std::uint16_t port_ = 0;
  std::uint16_t plain_port_ = 0;
  std::unique_ptr<AgentUnderTest> agent_;
};

TEST_F(Duplicates, CopiesOfAMessageGetTheSameAnswerAndAreServedOnce) {
  RawPeer peer(plain_port_);
  // CON GET /.well-known/core (open to peers without identity): the same piggybacked 2.05 twice.
  const Bytes wkc = request(true, 0x01, 0x4242, "dup1", {".well-known", "core"});
  const auto first = peer.exchange(wkc);
  ASSERT_TRUE(first.has_value()) << agent_->log();
  EXPECT_EQ((*first)[0] & 0x30, 0x20) << "an ACK";
  EXPECT_EQ((*first)[1], 0x45) << "2.05";
  EXPECT_EQ((*first)[2], 0x42);
  EXPECT_EQ((*first)[3], 0x42);
  const auto second = peer.exchange(wkc);
  ASSERT_TRUE(second.has_value()) << agent_->log();
  EXPECT_EQ(*first, *second);

  // CON POST /status from a peer without identity: the filter's 4.01, the same both times.
  const Bytes post = request(true, 0x02, 0x4243, "dup2", {"status"});
  const auto refused = peer.exchange(post);
  ASSERT_TRUE(refused.has_value());
  EXPECT_EQ((*refused)[1], 0x81) << "4.01";
  const auto refused_again = peer.exchange(post);
  ASSERT_TRUE(refused_again.has_value());
  EXPECT_EQ(*refused, *refused_again);

  // NON: answered with a NON of its own Message ID each time; the rest is the same.
  const Bytes non = request(false, 0x01, 0x4244, "dup3", {".well-known", "core"});
  const auto non_first = peer.exchange(non);
  const auto non_second = peer.exchange(non);
  ASSERT_TRUE(non_first.has_value() && non_second.has_value());
  EXPECT_EQ((*non_first)[0] & 0x30, 0x10) << "a NON";
  EXPECT_EQ(Bytes(non_first->begin() + 4, non_first->end()), Bytes(non_second->begin() + 4, non_second->end()));

  // The same Message ID with another token is another request (a client that started over).
  const auto other = peer.exchange(request(true, 0x01, 0x4242, "new1", {".well-known", "core"}));
  ASSERT_TRUE(other.has_value());
  EXPECT_EQ((*other)[1], 0x45);

  const auto doc = status();
  ASSERT_TRUE(doc.is_object()) << agent_->log();
  EXPECT_EQ(served(doc, "GET"), 3u) << doc.dump();  // CON, NON, other token: once each
  EXPECT_EQ(served(doc, "POST"), 1u) << doc.dump();
  EXPECT_EQ(doc["acl"]["unauthenticated"], 1) << doc.dump();  // the filter saw the POST once
  EXPECT_EQ(doc["duplicates"]["answered"], 3) << doc.dump();
  // The plain session keeps its four answers: more than nothing, at most the per-session bound.
  EXPECT_GT(doc["duplicates"]["memory_bytes"].get<std::uint64_t>(), 0u) << doc.dump();
  EXPECT_LE(doc["duplicates"]["memory_bytes"].get<std::uint64_t>(), 2u * 4096u) << doc.dump();
  // The same for operators.
  const auto human = ctl(agent_->configFile(), {"status"});
  ASSERT_EQ(human.exit_code, 0) << human.err;
  EXPECT_NE(human.out.find("duplicates: 3 answered again"), std::string::npos) << human.out;
}

TEST_F(Duplicates, ARetransmittedPostWhoseAnswerWasLostIsServedOnce) {
  // The agent's first DTLS application-data record to the client (content type 23: the POST's
  // piggybacked answer) is lost; the client retransmits the CON after ACK_TIMEOUT (2-3 s).
  std::atomic<int> dropped{0};
  Impairment once{0.0, 0.0, 0.0, 0ms, [&dropped](bool to_client, const std::uint8_t* d, std::size_t n) {
                    if (!to_client || n == 0 || d[0] != 23 || dropped.load() > 0) return false;
                    ++dropped;
                    return true;
                  }};
  ImpairedUdpRelay relay(port_, once);
  const auto before = status();
  ASSERT_TRUE(before.is_object()) << agent_->log();
  const auto posted = run({kGnutlsClient, "-B", "15", "-u", "dev-1", "-k", kKey, "-m", "post", "-t", "40", "-e",
                           "</temp>;rt=\"temperature\"",
                           "coaps://127.0.0.1:" + std::to_string(relay.port()) + "/rd?ep=dev-1"},
                          25s);
  EXPECT_EQ(dropped.load(), 1);
  EXPECT_EQ(posted.exit_code, 0) << posted.out << posted.err << agent_->log();
  const auto after = status();
  ASSERT_TRUE(after.is_object()) << agent_->log();
  EXPECT_EQ(served(after, "POST") - served(before, "POST"), 1u) << after.dump() << agent_->log();
  EXPECT_EQ(after["requests"]["POST"]["2xx"], 1) << after.dump();  // the registration, once
  EXPECT_EQ(after["duplicates"]["answered"].get<int>() - before["duplicates"]["answered"].get<int>(), 1)
      << after.dump();
}

TEST_F(Duplicates, ARelayedPutRetransmittedAfterItsAnswerReachesTheNodeOnce) {
  const auto node_log = (dir_ / "node.log").string();
  std::unique_ptr<Child> node;
  ASSERT_NO_FATAL_FAILURE(startNode(node_log, node));
  // The node answers within milliseconds, so the relay's answer rides on the ACK of the PUT
  // (server.h kPiggybackWait). It is held back (every DTLS application-data record to the client)
  // until the client has sent its PUT a second time (after ACK_TIMEOUT, 2-3 s), by when the
  // agent's exchange with the node is over: only the agent's memory of the request can keep the
  // copy from reaching the node again, and it must answer the copy with the 2.04 itself (an
  // empty ACK, as for a separate answer, would leave the client waiting for a response that
  // never comes).
  std::atomic<int> from_client{0};
  std::atomic<int> held{0};
  Impairment hold{0.0, 0.0, 0.0, 0ms, [&from_client, &held](bool to_client, const std::uint8_t* d, std::size_t n) {
                    if (n == 0 || d[0] != 23) return false;
                    if (!to_client) {
                      ++from_client;
                      return false;
                    }
                    if (from_client.load() >= 2) return false;
                    ++held;
                    return true;
                  }};
  ImpairedUdpRelay relay(port_, hold);
  const auto put = run({kGnutlsClient, "-B", "20", "-v", "7", "-u", "dev-1", "-k", kKey, "-m", "put", "-e", "on",
                        "coaps://127.0.0.1:" + std::to_string(relay.port()) + "/nodes/node-a/actuators/led"},
                       30s);
  EXPECT_EQ(put.exit_code, 0) << put.out << put.err << agent_->log();
  EXPECT_EQ(put.err.find("c:4."), std::string::npos) << put.err;
  // The client got the 2.04 (its debug log shows every message it received), not only an ACK.
  EXPECT_NE((put.out + put.err).find("c:2.04"), std::string::npos) << put.out << put.err;
  EXPECT_GE(from_client.load(), 2) << "the client never sent its PUT again";
  EXPECT_GE(held.load(), 1) << "the first 2.04";
  EXPECT_EQ(countOf(readFile(node_log), "request PUT /actuators/led"), 1u) << readFile(node_log);
  EXPECT_NE(readFile(node_log).find("led set to on"), std::string::npos) << readFile(node_log);
  const auto doc = status();
  ASSERT_TRUE(doc.is_object()) << agent_->log();
  EXPECT_EQ(served(doc, "PUT"), 1u) << doc.dump();
  EXPECT_GE(doc["duplicates"]["answered"].get<int>(), 1) << doc.dump();
}

// RFC 7252 §5.2.1: a node that answers at once lets the relay answer in the ACK of the request
// (server.h kPiggybackWait): the client's link carries the request and one answer, not an empty
// ACK, a separate CON response and the client's ACK of it. Both of Debian's DTLS stacks.
TEST_F(Duplicates, ANodesPromptAnswerRidesOnTheAckOfTheRelayedRequest) {
  const auto node_log = (dir_ / "node.log").string();
  std::unique_ptr<Child> node;
  ASSERT_NO_FATAL_FAILURE(startNode(node_log, node));
  for (const char* client : {kGnutlsClient, kOpensslClient}) {
    const auto put = run({client, "-B", "10", "-v", "7", "-u", "dev-1", "-k", kKey, "-m", "put", "-e", "on",
                          "coaps://127.0.0.1:" + std::to_string(port_) + "/nodes/node-a/actuators/led"},
                         20s);
    const std::string seen = put.out + put.err;  // the client's debug log: every message it sent or got
    EXPECT_EQ(put.exit_code, 0) << client << "\n" << seen << agent_->log();
    EXPECT_NE(seen.find("t:ACK c:2.04"), std::string::npos) << client << "\n" << seen;
    EXPECT_EQ(seen.find("t:CON c:2.04"), std::string::npos) << client << ": a separate response\n" << seen;
    EXPECT_EQ(seen.find("t:ACK c:0.00"), std::string::npos) << client << ": an empty ACK\n" << seen;
  }
  EXPECT_EQ(countOf(readFile(node_log), "request PUT /actuators/led"), 2u) << readFile(node_log);
  // A body larger than one block starts in the ACK too, so Debian 12's libcoap 4.3.1 client,
  // which cannot follow a separate response that continues with Block2 (libcoap PR #1440),
  // gets a prompt node's 3000-byte /big on its first request, blocks 1.. following as requests
  // of their own.
  const auto big = run({kGnutlsClient, "-B", "10", "-u", "dev-1", "-k", kKey,
                        "coaps://127.0.0.1:" + std::to_string(port_) + "/nodes/node-a/big"},
                       20s);
  std::string body;
  for (int i = 0; i < 3000; ++i) body.push_back(i % 50 == 49 ? '\n' : static_cast<char>('a' + i % 26));
  EXPECT_EQ(big.exit_code, 0) << big.out << big.err;
  EXPECT_EQ(big.out.substr(0, body.size()), body) << big.out.size() << "\n" << big.err;
  EXPECT_LE(big.out.size(), body.size() + 1) << "(the client may end with a newline of its own)";
}

// [limits] duplicate_max_bytes bounds what all sessions keep together. At 0 nothing is kept: a
// copy is served again, as without deduplication, and the answers not kept are counted.
class DuplicatesWithoutMemory : public Duplicates {
 protected:
  [[nodiscard]] std::string extraSections() const override { return "[limits]\nduplicate_max_bytes = 0\n"; }
};

TEST_F(DuplicatesWithoutMemory, ACopyIsServedAgainAndTheAnswersNotKeptAreCounted) {
  RawPeer peer(plain_port_);
  const Bytes wkc = request(true, 0x01, 0x5151, "nokeep", {".well-known", "core"});
  const auto first = peer.exchange(wkc);
  const auto second = peer.exchange(wkc);
  ASSERT_TRUE(first.has_value() && second.has_value()) << agent_->log();
  EXPECT_EQ((*second)[1], 0x45) << "2.05";

  const auto doc = status();
  ASSERT_TRUE(doc.is_object()) << agent_->log();
  EXPECT_EQ(served(doc, "GET"), 2u) << doc.dump();  // the copy reached the application
  EXPECT_EQ(doc["duplicates"]["answered"], 0) << doc.dump();
  EXPECT_GE(doc["duplicates"]["not_kept"].get<std::uint64_t>(), 2u) << doc.dump();
  EXPECT_EQ(doc["duplicates"]["memory_bytes"], 0) << doc.dump();
  EXPECT_EQ(doc["duplicates"]["memory_limit"], 0) << doc.dump();
  const auto human = ctl(agent_->configFile(), {"status"});
  ASSERT_EQ(human.exit_code, 0) << human.err;
  EXPECT_NE(human.out.find("not kept: duplicate_max_bytes"), std::string::npos) << human.out;
}

}  // namespace
}  // namespace coap_edge::test
