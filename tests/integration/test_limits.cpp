// Rate limiting and metrics in the running agent (RFC 8516): an identity flooding /status at
// 10x its rate gets 4.29 Too Many Requests with Max-Age = whole seconds until its next token
// (non-confirmable requests over the limit get no answer at all) while a well-behaved identity
// is served every time; [[limits.override]] gives one identity its own rate; handshakes per
// source address are limited; and the Prometheus text file parses with the Python
// prometheus_client parser and carries /status's numbers; a storm of 500 clients handshaking at
// once all get in (bounded by max_handshakes in flight) while an established session keeps being
// answered. One DTLS session per identity, driven
// by a libcoap client of our own (Debian's coap-client makes a handshake per request).
// Every loop is bounded in count and time.

#include "coap_clients.h"

#include <coap3/coap.h>
#include <gtest/gtest.h>
#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <arpa/inet.h>
#include <sys/socket.h>
#include <unistd.h>

#include <array>
#include <iostream>
#include <optional>
#include <thread>

namespace coap_edge::test {
namespace {

using namespace std::chrono_literals;

constexpr const char* kFloodKey = "flood-secret-key-0001";
constexpr const char* kCalmKey = "calm-secret-key-00002";
constexpr const char* kSlowKey = "slow-secret-key-00003";

struct Reply {
  int code = 0;                          ///< class*100+detail
  std::optional<std::uint32_t> max_age;  ///< Max-Age option, if present
  std::string payload;
};

/// One DTLS-PSK session carrying many requests; get() sends one GET (CON or NON) and waits.
class PskSession {
 public:
  PskSession(std::uint16_t port, const std::string& identity, const std::string& key)
      : identity_(identity), key_(key) {
    static const bool started = [] {
      coap_startup();
      coap_set_log_level(COAP_LOG_WARN);
      return true;
    }();
    (void)started;
    context_ = coap_new_context(nullptr);
    if (context_ == nullptr) throw std::runtime_error("coap_new_context");
    coap_context_set_app_data(context_, this);
    coap_context_set_block_mode(context_, COAP_BLOCK_USE_LIBCOAP | COAP_BLOCK_SINGLE_BODY);
    coap_register_response_handler(context_, &PskSession::onResponse);
    coap_address_t server;
    coap_address_init(&server);
    server.addr.sin.sin_family = AF_INET;
    inet_pton(AF_INET, "127.0.0.1", &server.addr.sin.sin_addr);
    server.size = sizeof(server.addr.sin);
    coap_address_set_port(&server, port);
    coap_dtls_cpsk_t psk{};
    psk.version = COAP_DTLS_CPSK_SETUP_VERSION;
    psk.psk_info.identity.s = reinterpret_cast<const uint8_t*>(identity_.data());
    psk.psk_info.identity.length = identity_.size();
    psk.psk_info.key.s = reinterpret_cast<const uint8_t*>(key_.data());
    psk.psk_info.key.length = key_.size();
    session_ = coap_new_client_session_psk2(context_, nullptr, &server, COAP_PROTO_DTLS, &psk);
    if (session_ == nullptr) throw std::runtime_error("coap_new_client_session_psk2");
  }
  ~PskSession() {
    coap_session_release(session_);
    coap_free_context(context_);
  }
  PskSession(const PskSession&) = delete;
  PskSession& operator=(const PskSession&) = delete;

  /// The reply, or nullopt when none came within `limit`.
  std::optional<Reply> get(const std::string& path, bool confirmable = true,
                           std::optional<std::uint16_t> accept = std::nullopt,
                           std::chrono::milliseconds limit = 5s) {
    coap_pdu_t* pdu =
        coap_new_pdu(confirmable ? COAP_MESSAGE_CON : COAP_MESSAGE_NON, COAP_REQUEST_CODE_GET, session_);
    if (pdu == nullptr) return std::nullopt;
    std::array<uint8_t, 8> token{};
    size_t token_length = 0;
    coap_session_new_token(session_, &token_length, token.data());
    coap_add_token(pdu, token_length, token.data());
    // One Uri-Path option per segment ("nodes/n/r/0").
    for (std::size_t start = 0; start <= path.size();) {
      const std::size_t end = std::min(path.find('/', start), path.size());
      coap_add_option(pdu, COAP_OPTION_URI_PATH, end - start, reinterpret_cast<const uint8_t*>(path.data() + start));
      start = end + 1;
    }
    if (accept) {
      std::array<uint8_t, 4> buf{};
      const unsigned n = coap_encode_var_safe(buf.data(), buf.size(), *accept);
      coap_add_option(pdu, COAP_OPTION_ACCEPT, n, buf.data());
    }
    reply_.reset();
    if (coap_send(session_, pdu) == COAP_INVALID_MID) return std::nullopt;
    const auto deadline = std::chrono::steady_clock::now() + limit;
    while (!reply_ && std::chrono::steady_clock::now() < deadline) coap_io_process(context_, 20);
    return reply_;
  }

 private:
  static coap_response_t onResponse(coap_session_t* session, const coap_pdu_t*, const coap_pdu_t* received,
                                    const coap_mid_t) {
    auto* self = static_cast<PskSession*>(coap_context_get_app_data(coap_session_get_context(session)));
    Reply r;
    const auto code = static_cast<int>(coap_pdu_get_code(received));
    r.code = (code >> 5) * 100 + (code & 0x1f);
    coap_opt_iterator_t it;
    if (const coap_opt_t* opt = coap_check_option(received, COAP_OPTION_MAXAGE, &it)) {
      r.max_age = coap_decode_var_bytes(coap_opt_value(opt), coap_opt_length(opt));
    }
    size_t length = 0;
    const uint8_t* data = nullptr;
    if (coap_get_data(received, &length, &data) != 0 && data != nullptr) {
      r.payload.assign(reinterpret_cast<const char*>(data), length);
    }
    self->reply_ = std::move(r);
    return COAP_RESPONSE_OK;
  }

  std::string identity_;
  std::string key_;
  coap_context_t* context_ = nullptr;
  coap_session_t* session_ = nullptr;
  std::optional<Reply> reply_;
};

class Limits : public ::testing::Test {
 protected:
  void start(const std::string& limits, const std::string& agent_extra = "",
             const std::string& downstream_extra = "") {
    port_ = freeUdpPort();
    std::string text = baseConfig(dir_, port_, downstream_extra);
    // [agent] keys go right after the section header; [limits] at the end.
    const std::string header = "[agent]\n";
    text.insert(text.find(header) + header.size(), agent_extra);
    text += limits;
    agent_ = std::make_unique<AgentUnderTest>(dir_, text);
    ASSERT_TRUE(agent_->ready()) << agent_->log();
    const auto r = ctl(agent_->configFile(), {"keys", "import", "-"},
                       std::string("flood,") + hexOf(kFloodKey) + "\ncalm," + hexOf(kCalmKey) + "\nslow," +
                           hexOf(kSlowKey) + "\n");
    ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  }

  TempDir dir_;
  std::uint16_t port_ = 0;
  std::unique_ptr<AgentUnderTest> agent_;
};

constexpr const char* kRates = R"([limits]
per_identity = { rate = 2.0, burst = 4 }
[[limits.override]]
identity = "slow"
per_identity = { rate = 0.2, burst = 1 }
)";

TEST_F(Limits, FloodingIdentityGets429WithMaxAgeWhileAWellBehavedOneIsServed) {
  ASSERT_NO_FATAL_FAILURE(start(kRates));
  PskSession flood(port_, "flood", kFloodKey);
  PskSession calm(port_, "calm", kCalmKey);
  // 10x its rate of 2/s for 3 s: 60 requests, one every 50 ms; calm asks once every 600 ms.
  int ok = 0;
  int limited = 0;
  int calm_ok = 0;
  int calm_sent = 0;
  const auto begin = std::chrono::steady_clock::now();
  for (int i = 0; i < 60; ++i) {
    const auto reply = flood.get("status");
    ASSERT_TRUE(reply) << "no reply to request " << i << "\n" << agent_->log();
    if (reply->code == 205) {
      ++ok;
    } else {
      ASSERT_EQ(reply->code, 429) << i;
      // One token per 500 ms: the next is less than a second away, so Max-Age is 1 (never 0).
      ASSERT_EQ(reply->max_age, std::optional<std::uint32_t>(1)) << i;
      EXPECT_TRUE(reply->payload.empty());
      ++limited;
    }
    if (i % 12 == 0) {
      ++calm_sent;
      const auto c = calm.get("status");
      ASSERT_TRUE(c);
      EXPECT_EQ(c->code, 205) << "calm request " << calm_sent;
      calm_ok += c->code == 205 ? 1 : 0;
    }
    std::this_thread::sleep_until(begin + (i + 1) * 50ms);
  }
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - begin).count();
  EXPECT_EQ(calm_ok, calm_sent);
  // The burst plus the rate over the time it took (and one token of slack for timing).
  EXPECT_GE(ok, 4);
  EXPECT_LE(ok, 4 + static_cast<int>(seconds * 2.0) + 1) << seconds;
  EXPECT_EQ(ok + limited, 60);
  EXPECT_GE(limited, 40);

  // A non-confirmable request over the limit gets nothing back. A token may have come back since
  // the loop (on a loaded machine the last refusal can be long ago): empty the bucket first, so
  // the NON follows a 4.29 by milliseconds rather than by a refill period.
  for (int i = 0; i < 10; ++i) {
    const auto r = flood.get("status");
    ASSERT_TRUE(r);
    if (r->code == 429) {
      ++limited;
      break;
    }
    ++ok;
  }
  EXPECT_FALSE(flood.get("status", false, std::nullopt, 1s));

  // The override: one token per 5 s, so right after its one request the wait is just under 5 s.
  PskSession slow(port_, "slow", kSlowKey);
  ASSERT_EQ(slow.get("status")->code, 205);
  const auto refused = slow.get("status");
  ASSERT_TRUE(refused);
  EXPECT_EQ(refused->code, 429);
  EXPECT_EQ(refused->max_age, std::optional<std::uint32_t>(5));

  const auto status = calm.get("status");
  ASSERT_TRUE(status);
  ASSERT_EQ(status->code, 205);
  const auto doc = nlohmann::json::parse(status->payload);
  EXPECT_EQ(doc["limits"]["per_identity"]["rejected"], limited + 1) << doc.dump();
  EXPECT_EQ(doc["limits"]["per_identity"]["dropped"], 1) << doc.dump();
  EXPECT_EQ(doc["requests"]["GET"]["4xx"], limited + 1) << doc.dump();
  EXPECT_EQ(doc["requests"]["GET"]["none"], 1) << doc.dump();
  EXPECT_EQ(doc["handshakes"]["ok"], 3) << doc.dump();
  EXPECT_EQ(doc["sessions"]["psk"], 3) << doc.dump();

  // The same document in CBOR on Accept: 60.
  const auto cbor = calm.get("status", true, std::uint16_t{60});
  ASSERT_TRUE(cbor);
  ASSERT_EQ(cbor->code, 205);
  const auto decoded = nlohmann::json::from_cbor(std::vector<std::uint8_t>(cbor->payload.begin(), cbor->payload.end()));
  EXPECT_EQ(decoded["agent"], "gw-test");
  EXPECT_EQ(decoded["limits"], doc["limits"]);
}

TEST_F(Limits, HandshakesPerAddressAreLimitedAndCounted) {
  ASSERT_NO_FATAL_FAILURE(start("[limits]\nhandshakes_per_address = { rate = 0.1, burst = 2 }\n"));
  PskSession calm(port_, "calm", kCalmKey);
  ASSERT_EQ(calm.get("status")->code, 205);  // handshake 1
  const auto second = pskGet(kGnutlsClient, port_, "flood", kFloodKey, "status", 3);
  EXPECT_NE(second.out.find("\"agent\""), std::string::npos) << second.out << second.err;  // handshake 2
  const auto third = pskGet(kGnutlsClient, port_, "flood", kFloodKey, "status", 2);
  EXPECT_EQ(third.out.find("\"agent\""), std::string::npos) << third.out;  // refused: 10 s to the next
  const auto status = calm.get("status");
  ASSERT_TRUE(status);
  const auto doc = nlohmann::json::parse(status->payload);
  EXPECT_GE(doc["limits"]["handshakes_per_address"]["refused"], 1) << doc.dump();
  EXPECT_GE(doc["handshakes"]["rate_limited"], 1) << doc.dump();
  EXPECT_EQ(doc["handshakes"]["ok"], 2) << doc.dump();

  // The same counters for operators: coap-edge-ctl status, human and --json.
  const auto human = ctl(agent_->configFile(), {"status"});
  ASSERT_EQ(human.exit_code, 0) << human.err;
  EXPECT_NE(human.out.find("handshakes: 2 ok"), std::string::npos) << human.out;
  const auto refused = doc["limits"]["handshakes_per_address"]["refused"].get<int>();
  EXPECT_NE(human.out.find(fmt::format("handshakes per address {} refused", refused)), std::string::npos) << human.out;
  EXPECT_NE(human.out.find("requests: GET "), std::string::npos) << human.out;
  const auto json = ctl(agent_->configFile(), {"status", "--json"});
  ASSERT_EQ(json.exit_code, 0) << json.err;
  EXPECT_EQ(nlohmann::json::parse(json.out)["limits"]["handshakes_per_address"]["refused"], refused) << json.out;
}

TEST_F(Limits, PrometheusFileParsesAndMatchesStatus) {
  const auto prom = dir_ / "coap-edge.prom";
  const std::uint16_t plain = freeUdpPort();
  ASSERT_NO_FATAL_FAILURE(start(kRates, "metrics_file = \"" + prom.string() + "\"\nmetrics_interval = \"1s\"\n",
                                "plain_listen = [\"127.0.0.1:" + std::to_string(plain) + "\"]\n"));
  // Three datagrams that are no CoAP message (version 3; a truncated header; a token length of
  // 15): dropped and counted, nothing answered.
  {
    const int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    ASSERT_GE(fd, 0);
    sockaddr_in to{};
    to.sin_family = AF_INET;
    to.sin_port = htons(plain);
    to.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    for (const std::string& bad : {std::string("\xff\x01\x02\x03", 4), std::string("\x40", 1), std::string("\x4f\x01\x00\x01", 4)}) {
      ASSERT_EQ(sendto(fd, bad.data(), bad.size(), 0, reinterpret_cast<const sockaddr*>(&to), sizeof(to)),
                static_cast<ssize_t>(bad.size()));
    }
    close(fd);
    std::this_thread::sleep_for(300ms);
  }
  PskSession flood(port_, "flood", kFloodKey);
  for (int i = 0; i < 8; ++i) ASSERT_TRUE(flood.get("status"));
  (void)flood.get("status", false, std::nullopt, 500ms);
  PskSession calm(port_, "calm", kCalmKey);
  const auto status = calm.get("status");
  ASSERT_TRUE(status);
  const auto doc = nlohmann::json::parse(status->payload);
  // Wait for a write after that request (the file is rewritten every second).
  const auto after = std::filesystem::file_time_type::clock::now();
  for (int i = 0; i < 50 && (!std::filesystem::exists(prom) || std::filesystem::last_write_time(prom) <= after);
       ++i) {
    std::this_thread::sleep_for(100ms);
  }
  ASSERT_TRUE(std::filesystem::exists(prom)) << agent_->log();
  const std::string script =
      "import json, sys\n"
      "from prometheus_client.parser import text_string_to_metric_families\n"
      "out = {}\n"
      "for family in text_string_to_metric_families(open(sys.argv[1]).read()):\n"
      "    for s in family.samples:\n"
      "        key = s.name + '|' + ','.join(k + '=' + v for k, v in sorted(s.labels.items()))\n"
      "        out[key] = s.value\n"
      "print(json.dumps(out))\n";
  const auto parsed = run({"/usr/bin/python3", "-c", script, prom.string()}, 20s);
  ASSERT_EQ(parsed.exit_code, 0) << parsed.err;
  const auto m = nlohmann::json::parse(parsed.out);
  const auto value = [&](const std::string& key) -> double {
    EXPECT_TRUE(m.contains(key)) << key << "\n" << parsed.out;
    return m.contains(key) ? m[key].get<double>() : -1.0;
  };
  EXPECT_EQ(value("coap_edge_limited_total|action=rejected,limit=per_identity"),
            doc["limits"]["per_identity"]["rejected"].get<double>());
  EXPECT_EQ(value("coap_edge_limited_total|action=dropped,limit=per_identity"),
            doc["limits"]["per_identity"]["dropped"].get<double>());
  EXPECT_EQ(value("coap_edge_limited_total|action=rejected,limit=per_identity"), 4.0);  // 8 CON, burst 4
  EXPECT_EQ(value("coap_edge_sessions|auth=psk"), doc["sessions"]["psk"].get<double>());
  EXPECT_EQ(value("coap_edge_handshakes_total|result=ok"), doc["handshakes"]["ok"].get<double>());
  EXPECT_EQ(value("coap_edge_acl_decisions_total|decision=allowed"), doc["acl"]["allowed"].get<double>());
  EXPECT_EQ(value("coap_edge_acl_rules|"), doc["acl"]["rules"].get<double>());
  EXPECT_EQ(doc["packets"]["malformed"].get<double>(), 3.0) << doc.dump();
  EXPECT_EQ(value("coap_edge_malformed_packets_total|"), doc["packets"]["malformed"].get<double>());
  EXPECT_EQ(value("coap_edge_relay_total|event=request"), doc["relay"]["requests"].get<double>());
  EXPECT_EQ(value("coap_edge_requests_total|class=4xx,method=GET"), doc["requests"]["GET"]["4xx"].get<double>());
  // /status counts a request once answered: the file, written later, also has that one.
  EXPECT_EQ(value("coap_edge_requests_total|class=2xx,method=GET"),
            doc["requests"]["GET"]["2xx"].get<double>() + 1.0);
}

// Per-node limits on the relay (RFC 8516): a node behind the gateway sees at most its
// per_node rate however hard an identity pushes, the flooder gets 4.29 (its own rate) and 5.03
// (the node's) with Max-Age, and another identity is served meanwhile. The node registered
// itself at the gateway's RD over DTLS-PSK; the gateway relays back over that session.
TEST_F(Limits, ANodeSeesNoMoreThanItsPerNodeRateWhileAnotherIdentityIsServed) {
  ASSERT_NO_FATAL_FAILURE(start(R"([limits]
per_identity = { rate = 5.0, burst = 5 }
per_node = { rate = 2.0, burst = 2 }
[[acl]]
identity = "flood"
allow = ["GET /nodes/**"]
)"));
  const auto imported = ctl(agent_->configFile(), {"keys", "import", "-"}, "node-a," + hexOf("node-a-secret-key-1") + "\n");
  ASSERT_EQ(imported.exit_code, 0) << imported.err;
  writeFile(dir_ / "node.key", hexOf("node-a-secret-key-1") + "\n");
  const auto node_log = (dir_ / "node.log").string();
  Child node({simnodeBinary(), "--name", "node-a", "--listen", "127.0.0.1:" + std::to_string(freeUdpPort()),
              "--resources", "60", "--log-requests", "--rd", "coaps://127.0.0.1:" + std::to_string(port_),
              "--psk-identity", "node-a", "--psk-key-file", (dir_ / "node.key").string()},
             {}, node_log);
  PskSession flood(port_, "flood", kFloodKey);
  bool known = false;
  for (int i = 0; i < 40 && !known; ++i) {
    std::this_thread::sleep_for(250ms);
    known = readFile(node_log).find("registered at") != std::string::npos;
  }
  ASSERT_TRUE(known) << readFile(node_log) << agent_->log();
  std::this_thread::sleep_for(1500ms);  // both buckets full again after the registration
  PskSession calm(port_, "calm", kCalmKey);
  // 50 requests for 50 different resources (no cache hit can spare the node), as fast as the
  // answers come: about 10x the flooder's rate of 5/s.
  int ok = 0, identity_limited = 0, node_limited = 0, calm_ok = 0;
  const auto t0 = std::chrono::steady_clock::now();
  for (int i = 0; i < 50; ++i) {
    const auto r = flood.get("nodes/node-a/r/" + std::to_string(i));
    ASSERT_TRUE(r) << i;
    if (r->code == 205) {
      ++ok;
    } else if (r->code == 429) {
      ++identity_limited;
      ASSERT_TRUE(r->max_age && *r->max_age >= 1) << "4.29 needs Max-Age";
    } else if (r->code == 503) {
      ++node_limited;
      ASSERT_TRUE(r->max_age && *r->max_age >= 1) << "5.03 needs Max-Age";
    } else {
      ADD_FAILURE() << "unexpected " << r->code << " " << r->payload;
    }
    if (i % 10 == 0) {
      const auto c = calm.get("status");
      if (c && c->code == 205) ++calm_ok;
    }
    std::this_thread::sleep_for(20ms);
  }
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  const auto reached = countOf(readFile(node_log), "request GET /r/");
  std::cout << ok << " served, " << identity_limited << " 4.29, " << node_limited << " 5.03 in " << seconds
            << " s; the node saw " << reached << "\n";
  EXPECT_GT(identity_limited, 0);
  EXPECT_GT(node_limited, 0);
  EXPECT_EQ(static_cast<std::size_t>(ok), reached);
  // burst 2 + 2 per second, and one token of slack for the clock between our two readings.
  EXPECT_LE(static_cast<double>(reached), 2.0 + 2.0 * seconds + 1.0) << readFile(node_log);
  EXPECT_EQ(calm_ok, 5);
}

/// Many DTLS-PSK clients in one process, each on its own socket (a distinct source port), all
/// starting their handshake at once; driven together without blocking.
class Storm {
 public:
  Storm(std::uint16_t port, std::size_t count, const std::string& identity, const std::string& key)
      : identity_(identity), key_(key) {
    coap_address_init(&server_);
    server_.addr.sin.sin_family = AF_INET;
    inet_pton(AF_INET, "127.0.0.1", &server_.addr.sin.sin_addr);
    server_.size = sizeof(server_.addr.sin);
    coap_address_set_port(&server_, port);
    clients_.resize(count);
    for (auto& c : clients_) {
      c.owner = this;
      c.context = coap_new_context(nullptr);
      if (c.context == nullptr) throw std::runtime_error("coap_new_context");
      coap_context_set_app_data(c.context, &c);
      coap_register_response_handler(c.context, &Storm::onResponse);
      c.session = newSession(c.context);
    }
  }
  ~Storm() {
    for (auto& c : clients_) {
      if (c.session != nullptr) coap_session_release(c.session);
      if (c.context != nullptr) coap_free_context(c.context);
    }
  }
  Storm(const Storm&) = delete;
  Storm& operator=(const Storm&) = delete;

  /// Sends one GET on every session (each starts its handshake now).
  void sendAll(const std::string& path) {
    path_ = path;
    for (auto& c : clients_) send(c);
  }
  /// One non-blocking round over every client; returns how many have had their answer. A
  /// client whose session failed (its DTLS handshake gave up: libcoap's client stops after
  /// about a minute of retransmissions, which a storm under a slow build can exhaust) starts
  /// again with a new session, as a device would.
  std::size_t poll() {
    std::size_t done = 0;
    for (auto& c : clients_) {
      if (!c.answered) {
        coap_io_process(c.context, COAP_IO_NO_WAIT);
        if (!c.answered && coap_session_get_state(c.session) == COAP_SESSION_STATE_NONE) {
          coap_session_release(c.session);
          c.session = newSession(c.context);
          ++retries_;
          send(c);
        }
      }
      done += c.answered ? 1 : 0;
    }
    return done;
  }
  [[nodiscard]] std::size_t retries() const { return retries_; }
  [[nodiscard]] std::size_t ok() const {
    std::size_t n = 0;
    for (const auto& c : clients_) n += c.code == 205 ? 1 : 0;
    return n;
  }

 private:
  struct Client;
  coap_session_t* newSession(coap_context_t* context) {
    coap_dtls_cpsk_t psk{};
    psk.version = COAP_DTLS_CPSK_SETUP_VERSION;
    psk.psk_info.identity.s = reinterpret_cast<const uint8_t*>(identity_.data());
    psk.psk_info.identity.length = identity_.size();
    psk.psk_info.key.s = reinterpret_cast<const uint8_t*>(key_.data());
    psk.psk_info.key.length = key_.size();
    coap_session_t* session = coap_new_client_session_psk2(context, nullptr, &server_, COAP_PROTO_DTLS, &psk);
    if (session == nullptr) throw std::runtime_error("coap_new_client_session_psk2");
    return session;
  }
  void send(Client& c);
  struct Client {
    Storm* owner = nullptr;
    coap_context_t* context = nullptr;
    coap_session_t* session = nullptr;
    bool answered = false;
    int code = 0;
  };
  static coap_response_t onResponse(coap_session_t* session, const coap_pdu_t*, const coap_pdu_t* received,
                                    const coap_mid_t) {
    auto* c = static_cast<Client*>(coap_context_get_app_data(coap_session_get_context(session)));
    const auto code = static_cast<int>(coap_pdu_get_code(received));
    c->code = (code >> 5) * 100 + (code & 0x1f);
    c->answered = true;
    return COAP_RESPONSE_OK;
  }

  std::string identity_;
  std::string key_;
  coap_address_t server_{};
  std::vector<Client> clients_;
  std::string path_;
  std::size_t retries_ = 0;
};

void Storm::send(Client& c) {
  coap_pdu_t* pdu = coap_new_pdu(COAP_MESSAGE_CON, COAP_REQUEST_CODE_GET, c.session);
  if (pdu == nullptr) return;
  std::array<uint8_t, 8> token{};
  size_t token_length = 0;
  coap_session_new_token(c.session, &token_length, token.data());
  coap_add_token(pdu, token_length, token.data());
  // One Uri-Path option per segment ("nodes/n/r/0").
  for (std::size_t start = 0; start <= path_.size();) {
    const std::size_t end = std::min(path_.find('/', start), path_.size());
    coap_add_option(pdu, COAP_OPTION_URI_PATH, end - start, reinterpret_cast<const uint8_t*>(path_.data() + start));
    start = end + 1;
  }
  (void)coap_send(c.session, pdu);
}

TEST_F(Limits, HandshakeStormOf500ClientsAllConnectWhileAnEstablishedSessionIsServed) {
  // At most 100 handshakes in progress (the default): the rest are ignored and retry (DTLS
  // retransmission). The gateway here serves a fast link (loopback), so its DTLS timers are set
  // for one: the defaults (9 s first retransmission, 120 s half-open) suit 802.15.4 nodes, and
  // with them a flight lost in the storm takes 9 s to repeat while stalled handshakes hold their
  // slots for two minutes.
  ASSERT_NO_FATAL_FAILURE(start("[limits]\nmax_handshakes = 100\n", "",
                                "dtls_retransmit_min = \"1s\"\ndtls_retransmit_max = \"8s\"\n"
                                "dtls_half_open_timeout = \"30s\"\n"));
  PskSession calm(port_, "calm", kCalmKey);
  ASSERT_EQ(calm.get("status")->code, 205);
  constexpr std::size_t kClients = 500;
  // The bound this test states: every client is answered within 90 s (measured: 15 s; DTLS
  // retransmission backs off 1, 2, 4, 8 s for the ClientHellos libcoap ignored while at the cap).
  constexpr auto kBound = 90s;
  Storm storm(port_, kClients, "flood", kFloodKey);
  const auto begin = std::chrono::steady_clock::now();
  storm.sendAll("status");
  std::size_t done = 0;
  int calm_answers = 0;
  int calm_asked = 0;
  auto next_calm = begin;
  while (done < kClients && std::chrono::steady_clock::now() - begin < kBound) {
    done = storm.poll();
    if (std::chrono::steady_clock::now() >= next_calm) {
      // The established session keeps getting answers during the storm.
      ++calm_asked;
      const auto reply = calm.get("status", true, std::nullopt, 5s);
      calm_answers += reply && reply->code == 205 ? 1 : 0;
      next_calm = std::chrono::steady_clock::now() + 500ms;
    }
    std::this_thread::sleep_for(2ms);
  }
  const auto took = std::chrono::duration<double>(std::chrono::steady_clock::now() - begin).count();
  EXPECT_EQ(done, kClients) << "after " << took << " s, " << storm.retries() << " clients started again";
  EXPECT_EQ(storm.ok(), done);
  EXPECT_EQ(calm_answers, calm_asked);
  const auto status = calm.get("status");
  ASSERT_TRUE(status);
  const auto doc = nlohmann::json::parse(status->payload);
  EXPECT_EQ(doc["handshakes"]["ok"], kClients + 1) << doc.dump();
  std::cerr << "storm: " << done << " of " << kClients << " clients answered in " << took << " s; calm "
            << calm_answers << "/" << calm_asked << "\n";
}

}  // namespace
}  // namespace coap_edge::test
