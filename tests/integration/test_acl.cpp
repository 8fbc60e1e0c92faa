// Access control in the running agent: [[acl]] rules decide per identity (4.03 otherwise),
// plain coap peers without identity get 4.01, /.well-known/core stays open, paths that do not
// exist are refused before they can be probed, and SIGHUP swaps the rules for established
// sessions while a broken file keeps the old ones. Peers: Debian's coap-client-gnutls and
// coap-client-notls, and a libcoap client of our own where one DTLS session must carry several
// requests across a reload.

#include "coap_clients.h"

#include <coap3/coap.h>
#include <gtest/gtest.h>

#include <arpa/inet.h>

#include <csignal>
#include <optional>

namespace coap_edge::test {
namespace {

using namespace std::chrono_literals;

constexpr const char* kKey1 = "dev1-secret-key-0001";
constexpr const char* kKey2 = "dev2-secret-key-0002";
constexpr const char* kDev1Rules = "[[acl]]\nidentity = \"dev-1\"\nallow = [\"GET /status\", \"GET /missing/**\"]\n";

/// One DTLS-PSK session that stays up across requests (Debian's coap-client makes a new one per
/// run), driven synchronously: get() sends a confirmable GET and waits for its response.
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

  /// The response code as class*100+detail (205, 403, ...), or nullopt after `limit`.
  std::optional<int> get(const std::string& path, std::chrono::milliseconds limit = 5s) {
    coap_pdu_t* pdu = coap_new_pdu(COAP_MESSAGE_CON, COAP_REQUEST_CODE_GET, session_);
    if (pdu == nullptr) return std::nullopt;
    std::array<uint8_t, 8> token{};
    size_t token_length = 0;
    coap_session_new_token(session_, &token_length, token.data());
    coap_add_token(pdu, token_length, token.data());
    for (std::size_t start = 0; start <= path.size();) {
      const std::size_t end = std::min(path.find('/', start), path.size());
      coap_add_option(pdu, COAP_OPTION_URI_PATH, end - start,
                      reinterpret_cast<const uint8_t*>(path.data() + start));
      start = end + 1;
    }
    code_.reset();
    payload_.clear();
    if (coap_send(session_, pdu) == COAP_INVALID_MID) return std::nullopt;
    const auto deadline = std::chrono::steady_clock::now() + limit;
    while (!code_ && std::chrono::steady_clock::now() < deadline) coap_io_process(context_, 50);
    return code_;
  }
  [[nodiscard]] const std::string& payload() const { return payload_; }

 private:
  static coap_response_t onResponse(coap_session_t* session, const coap_pdu_t*, const coap_pdu_t* received,
                                    const coap_mid_t) {
    auto* self = static_cast<PskSession*>(coap_context_get_app_data(coap_session_get_context(session)));
    const auto code = static_cast<int>(coap_pdu_get_code(received));
    self->code_ = (code >> 5) * 100 + (code & 0x1f);
    size_t length = 0;
    const uint8_t* data = nullptr;
    if (coap_get_data(received, &length, &data) != 0 && data != nullptr) {
      self->payload_.assign(reinterpret_cast<const char*>(data), length);
    }
    return COAP_RESPONSE_OK;
  }

  std::string identity_;
  std::string key_;
  coap_context_t* context_ = nullptr;
  coap_session_t* session_ = nullptr;
  std::optional<int> code_;
  std::string payload_;
};

std::size_t count(const std::string& text, const std::string& needle) {
  std::size_t n = 0;
  for (auto at = text.find(needle); at != std::string::npos; at = text.find(needle, at + 1)) ++n;
  return n;
}

class Acl : public ::testing::Test {
 protected:
  void SetUp() override {
    port_ = freeUdpPort();
    plain_port_ = freeUdpPort();
    start(kDev1Rules);
  }

  void start(const std::string& acl) {
    agent_.reset();
    agent_ = std::make_unique<AgentUnderTest>(dir_, config(acl));
    ASSERT_TRUE(agent_->ready()) << agent_->log();
    if (imported_) return;
    const auto r = ctl(agent_->configFile(), {"keys", "import", "-"},
                       std::string("dev-1,") + hexOf(kKey1) + "\ndev-2," + hexOf(kKey2) + "\n");
    ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
    imported_ = true;
  }

  std::string config(const std::string& acl) const {
    return baseConfig(dir_, port_, "plain_listen = [\"127.0.0.1:" + std::to_string(plain_port_) + "\"]\n", acl);
  }

  /// Rewrites the config file and reloads; true once the agent is ready again.
  bool reload(const std::string& text) {
    writeFile(agent_->configFile(), text);
    agent_->signal(SIGHUP);
    return agent_->waitNotify("RELOADING=1", 5s) && agent_->waitNotify("READY=1", 5s);
  }

  RunResult plainGet(const std::string& path, const std::string& method = "get") const {
    return run({"coap-client-notls", "-B", "3", "-m", method,
                "coap://127.0.0.1:" + std::to_string(plain_port_) + "/" + path},
               13s);
  }

  TempDir dir_;
  std::uint16_t port_ = 0;
  std::uint16_t plain_port_ = 0;
  bool imported_ = false;
  std::unique_ptr<AgentUnderTest> agent_;
};

TEST_F(Acl, AllowedIdentityGetsStatusAnotherIsForbiddenButSeesWellKnownCore) {
  const auto allowed = pskGet(kGnutlsClient, port_, "dev-1", kKey1, "status");
  EXPECT_NE(allowed.out.find("\"agent\":\"gw-test\""), std::string::npos) << allowed.out << allowed.err;

  const auto refused = pskGet(kGnutlsClient, port_, "dev-2", kKey2, "status");
  EXPECT_NE(refused.err.find("4.03"), std::string::npos) << refused.out << refused.err;
  EXPECT_EQ(refused.out.find("\"agent\""), std::string::npos) << refused.out;

  const auto discovery = pskGet(kOpensslClient, port_, "dev-2", kKey2, ".well-known/core");
  EXPECT_NE(discovery.out.find("</status>"), std::string::npos) << discovery.out << discovery.err;
  // libcoap's query filter still works on our own /.well-known/core.
  const auto filtered = pskGet(kGnutlsClient, port_, "dev-2", kKey2, ".well-known/core?rt=nothing");
  EXPECT_EQ(filtered.out.find("</status>"), std::string::npos) << filtered.out;
  EXPECT_EQ(filtered.err.find("4."), std::string::npos) << filtered.err;
}

TEST_F(Acl, PathsThatDoNotExistAreRefusedBeforeTheyAreNotFound) {
  // Allowed by a rule: the truth (4.04). Not allowed: 4.03, the same as for /status, so a
  // refused client learns nothing about what exists.
  const auto allowed = pskGet(kGnutlsClient, port_, "dev-1", kKey1, "missing/x");
  EXPECT_NE(allowed.err.find("4.04"), std::string::npos) << allowed.err;
  const auto refused = pskGet(kGnutlsClient, port_, "dev-2", kKey2, "missing/x");
  EXPECT_NE(refused.err.find("4.03"), std::string::npos) << refused.err;
  // Methods the resource does not have: the ACL first (4.03), 4.05 only for who may know.
  const auto put = run({kGnutlsClient, "-B", "3", "-m", "put", "-u", "dev-2", "-k", kKey2, coapsUri(port_, "status")},
                       13s);
  EXPECT_NE(put.err.find("4.03"), std::string::npos) << put.err;
  // DELETE of a path that does not exist is not the 2.02 libcoap would give.
  const auto del = run({kGnutlsClient, "-B", "3", "-m", "delete", "-u", "dev-2", "-k", kKey2,
                        coapsUri(port_, "missing/y")},
                       13s);
  EXPECT_NE(del.err.find("4.03"), std::string::npos) << del.err;
  // A '..' segment is an ordinary segment: it never reaches what the path around it allows.
  PskSession dev1(port_, "dev-1", kKey1);
  EXPECT_EQ(dev1.get("missing/../status"), std::optional<int>(403));
  EXPECT_EQ(dev1.get("missing/x/.."), std::optional<int>(403));
  EXPECT_EQ(dev1.get("status"), std::optional<int>(205));
}

TEST_F(Acl, PlainCoapWithoutIdentityGetsUnauthorized) {
  const auto status = plainGet("status");
  EXPECT_NE(status.err.find("4.01"), std::string::npos) << status.out << status.err;
  EXPECT_EQ(status.out.find("\"agent\""), std::string::npos) << status.out;
  const auto missing = plainGet("missing/x");
  EXPECT_NE(missing.err.find("4.01"), std::string::npos) << missing.err;
  const auto discovery = plainGet(".well-known/core");
  EXPECT_NE(discovery.out.find("</status>"), std::string::npos) << discovery.out << discovery.err;
  const auto put = plainGet(".well-known/core", "put");
  EXPECT_NE(put.err.find("4.01"), std::string::npos) << put.err;
}

TEST_F(Acl, DecisionsAreCountedInStatus) {
  (void)pskGet(kGnutlsClient, port_, "dev-2", kKey2, "status");
  (void)plainGet("status");
  const auto r = pskGet(kGnutlsClient, port_, "dev-1", kKey1, "status");
  EXPECT_NE(r.out.find("\"forbidden\":1"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("\"unauthenticated\":1"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("\"rules\":2"), std::string::npos) << r.out;
}

TEST_F(Acl, SighupGrantsAndWithdrawsAccessOnTheSameSession) {
  PskSession dev2(port_, "dev-2", kKey2);
  ASSERT_EQ(dev2.get("status"), std::optional<int>(403)) << agent_->log();

  const std::string granted = std::string(kDev1Rules) + "[[acl]]\nidentity = \"dev-*\"\nallow = [\"GET /status\"]\n";
  ASSERT_TRUE(reload(config(granted))) << agent_->log();
  EXPECT_EQ(dev2.get("status"), std::optional<int>(205)) << agent_->log();
  EXPECT_NE(dev2.payload().find("\"agent\":\"gw-test\""), std::string::npos) << dev2.payload();

  ASSERT_TRUE(reload(config(kDev1Rules))) << agent_->log();
  EXPECT_EQ(dev2.get("status"), std::optional<int>(403));

  // All of it on one DTLS session: no new handshake.
  EXPECT_EQ(count(agent_->log(), "session established: 'dev-2'"), 1U) << agent_->log();
  EXPECT_NE(agent_->log().find("2 ACL rules applied"), std::string::npos) << agent_->log();
}

TEST_F(Acl, BadPatternOnReloadIsRejectedWithItsPositionAndTheOldRulesStay) {
  PskSession dev1(port_, "dev-1", kKey1);
  PskSession dev2(port_, "dev-2", kKey2);
  ASSERT_EQ(dev1.get("status"), std::optional<int>(205));

  // Everyone would get /status, but the second rule is broken: nothing of the file applies.
  const std::string broken = config("[[acl]]\nidentity = \"*\"\nallow = [\"GET /status\", \"GET /a//b\"]\n");
  ASSERT_TRUE(reload(broken)) << agent_->log();
  const auto line = count(broken.substr(0, broken.find("GET /a//b")), "\n") + 1;
  const std::string expected = "reload failed, keeping the running configuration: " + agent_->configFile().string() +
                               ":" + std::to_string(line) + ":33: [[acl]] allow \"GET /a//b\": empty segment ('//')";
  EXPECT_NE(agent_->log().find(expected), std::string::npos) << expected << "\n" << agent_->log();

  EXPECT_EQ(dev1.get("status"), std::optional<int>(205));
  EXPECT_EQ(dev2.get("status"), std::optional<int>(403));
  // --check-config says the same, with exit code 78.
  const auto check = run({agentBinary(), "--config", agent_->configFile().string(), "--check-config"});
  EXPECT_EQ(check.exit_code, 78);
  EXPECT_NE(check.err.find(":" + std::to_string(line) + ":33: [[acl]] allow"), std::string::npos) << check.err;
}

TEST_F(Acl, WithoutAnyRuleOnlyWellKnownCoreIsOpen) {
  start("");
  const auto status = pskGet(kGnutlsClient, port_, "dev-1", kKey1, "status");
  EXPECT_NE(status.err.find("4.03"), std::string::npos) << status.out << status.err;
  const auto discovery = pskGet(kGnutlsClient, port_, "dev-1", kKey1, ".well-known/core");
  EXPECT_NE(discovery.out.find("</status>"), std::string::npos) << discovery.out << discovery.err;
  // The built-in rule for a device's own subtree: allowed, and nothing is there yet.
  PskSession dev1(port_, "dev-1", kKey1);
  EXPECT_EQ(dev1.get("nodes/dev-1/temp"), std::optional<int>(404));
  EXPECT_EQ(dev1.get("nodes/dev-2/temp"), std::optional<int>(403));
}

}  // namespace
}  // namespace coap_edge::test
