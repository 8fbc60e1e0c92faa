// Provisioning with coap-edge-ctl against the real agent and independent DTLS stacks: the
// gateway's and devices' certificates come from `ca init` / `cert issue` / `cert sign` (no
// openssl CA), revocation by serial reaches live sessions, and PSK rotation behaves as
// documented (keystore/grace.h): during the grace period the old key keeps working and a device
// that switched to the new key gets in on its second handshake at the latest; afterwards only
// the new key works and sessions on the old one are closed.

#include "coap_clients.h"

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include <thread>

namespace coap_edge::test {
namespace {

using namespace std::chrono_literals;

class Provisioning : public ::testing::Test {
 protected:
  void SetUp() override {
    port_ = freeUdpPort();
    pki_ = dir_ / "pki";
    ca_ = dir_ / "state" / "ca" / "ca.crt";
    // The agent's own config file, written before the agent exists so that ctl can build the
    // PKI it names; AgentUnderTest rewrites the same text.
    config_text_ = baseConfig(dir_, port_,
                              "certificate = \"" + (pki_ / "gw-test.crt").string() + "\"\nprivate_key = \"" +
                                  (pki_ / "gw-test.key").string() + "\"\nca = \"" + ca_.string() + "\"\n");
    writeFile(dir_ / "agent.toml", config_text_);
    ctlOk({"ca", "init", "--days", "30"});
    ctlOk({"cert", "issue", "gw-test", "--server", "--san", "127.0.0.1", "--san", "localhost", "--out",
           pki_.string()});
    agent_ = std::make_unique<AgentUnderTest>(dir_, config_text_);
    ASSERT_TRUE(agent_->ready()) << agent_->log();
  }

  RunResult ctlRun(const std::vector<std::string>& args, const std::string& input = "") {
    return ctl(dir_ / "agent.toml", args, input);
  }
  void ctlOk(const std::vector<std::string>& args, const std::string& input = "") {
    const RunResult r = ctlRun(args, input);
    ASSERT_EQ(r.exit_code, 0) << "coap-edge-ctl " << args[0] << ' ' << args[1] << ": " << r.out << r.err;
  }
  // A device key and certificate from `cert issue`, in pki_.
  void issue(const std::string& id, const std::filesystem::path& out) {
    ctlOk({"cert", "issue", id, "--out", out.string()});
  }
  std::string serialOf(const std::string& id) {
    const auto list = nlohmann::json::parse(ctlRun({"cert", "list", "--json"}).out);
    for (const auto& c : list) {
      if (c["identity"] == id && c["status"] == "active") return c["serial"];
    }
    return "";
  }
  RunResult get(const std::string& client, const std::string& id, const std::filesystem::path& dir,
                const std::string& path = ".well-known/core", int wait_s = 5) {
    return certGet(client, port_, (dir / (id + ".crt")).string(), (dir / (id + ".key")).string(), ca_.string(), path,
                   wait_s);
  }

  TempDir dir_;
  std::uint16_t port_ = 0;
  std::filesystem::path pki_, ca_;
  std::string config_text_;
  std::unique_ptr<AgentUnderTest> agent_;
};

TEST_F(Provisioning, IssuedCertificateIsAcceptedFromOpensslAndGnutls) {
  issue("dev-1", pki_);
  for (const char* client : {kOpensslClient, kGnutlsClient}) {
    const auto r = get(client, "dev-1", pki_);
    EXPECT_NE(r.out.find("</status>"), std::string::npos) << client << ": " << r.out << r.err << agent_->log();
  }
  EXPECT_NE(agent_->log().find("session established: 'dev-1' (x509)"), std::string::npos) << agent_->log();
  // The DER twins are the same certificate and key.
  EXPECT_TRUE(std::filesystem::exists(pki_ / "dev-1.crt.der"));
  EXPECT_TRUE(std::filesystem::exists(pki_ / "dev-1.key.der"));
  const RunResult der = run({"openssl", "x509", "-inform", "DER", "-in", (pki_ / "dev-1.crt.der").string(), "-noout",
                             "-subject"});
  EXPECT_NE(der.out.find("CN = dev-1"), std::string::npos) << der.out << der.err;
}

TEST_F(Provisioning, RevokedCertificateIsRefusedAndItsOpenSessionClosed) {
  issue("dev-1", pki_);
  issue("dev-2", pki_);
  // dev-2 observes /status: its DTLS session stays open for up to 30 s.
  Child observer({kOpensslClient, "-B", "30", "-s", "30", "-c", (pki_ / "dev-2.crt").string(), "-j",
                  (pki_ / "dev-2.key").string(), "-C", ca_.string(), coapsUri(port_, "status")},
                 {}, (dir_ / "observer.err").string(), (dir_ / "observer.out").string());
  ASSERT_TRUE(agent_->waitForLog("session established: 'dev-2' (x509)")) << agent_->log();
  ASSERT_TRUE(observer.running());

  const std::string serial = serialOf("dev-2");
  ASSERT_EQ(serial.size(), 32u);
  const auto revoked_at = std::chrono::steady_clock::now();
  ctlOk({"cert", "revoke", serial});
  // Closed within 2 s of the revocation (the bound here leaves room for a loaded machine).
  EXPECT_TRUE(agent_->waitForLog("closing session of 'dev-2'", 5s)) << agent_->log();
  EXPECT_LT(std::chrono::steady_clock::now() - revoked_at, 5s);
  EXPECT_TRUE(observer.wait(10s).has_value()) << "client still connected after revocation";

  // A new handshake with the revoked certificate gets nothing ...
  for (const char* client : {kOpensslClient, kGnutlsClient}) {
    const auto again = get(client, "dev-2", pki_, ".well-known/core", 3);
    EXPECT_EQ(again.out.find("</status>"), std::string::npos) << client << ": " << again.out;
  }
  EXPECT_NE(agent_->log().find("certificate " + serial + " of 'dev-2'"), std::string::npos) << agent_->log();
  // ... while other certificates, including a new one for the same device, still work.
  EXPECT_NE(get(kGnutlsClient, "dev-1", pki_).out.find("</status>"), std::string::npos) << agent_->log();
  issue("dev-2", dir_ / "reissued");
  EXPECT_NE(get(kOpensslClient, "dev-2", dir_ / "reissued").out.find("</status>"), std::string::npos)
      << agent_->log();
}

TEST_F(Provisioning, CsrFromOpensslReqIsSignedAndWorks) {
  const auto key = dir_ / "dev-3.key";
  const auto csr = dir_ / "dev-3.csr";
  const RunResult req = run({"openssl", "req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
                             "-nodes", "-keyout", key.string(), "-subj", "/O=Example/CN=dev-3", "-out", csr.string()});
  ASSERT_EQ(req.exit_code, 0) << req.err;
  ctlOk({"cert", "sign", csr.string(), "--out", (dir_ / "dev-3.crt").string(), "--days", "7"});
  for (const char* client : {kOpensslClient, kGnutlsClient}) {
    const auto r = get(client, "dev-3", dir_.path());
    EXPECT_NE(r.out.find("</status>"), std::string::npos) << client << ": " << r.out << r.err << agent_->log();
  }
  EXPECT_NE(agent_->log().find("session established: 'dev-3' (x509)"), std::string::npos) << agent_->log();

  // A CSR whose signed content was altered is refused, and nothing is written.
  std::string text = readFile(csr);
  const auto body = text.find('\n') + 40;
  text[body] = text[body] == 'A' ? 'B' : 'A';
  writeFile(dir_ / "bad.csr", text);
  const RunResult bad = ctlRun({"cert", "sign", (dir_ / "bad.csr").string(), "--out", (dir_ / "bad.crt").string()});
  EXPECT_EQ(bad.exit_code, 65) << bad.err;
  EXPECT_FALSE(std::filesystem::exists(dir_ / "bad.crt"));
}

// PSK rotation, end to end. Debian's clients take -k as text, so both keys are printable.
TEST_F(Provisioning, RotationKeepsTheOldKeyDuringGraceAndOnlyTheNewOneAfter) {
  const std::string old_key = "rotate-old-key-0001";
  const std::string new_key = "rotate-new-key-0002";
  ctlOk({"keys", "import", "-"}, "dev-r," + hexOf(old_key) + "\n");
  const auto ok = [this](const char* client, const std::string& key) {
    return pskGet(client, port_, "dev-r", key, ".well-known/core", 3).out.find("</status>") != std::string::npos;
  };
  // A session opened with the old key before the rotation (observing /status).
  Child observer({kGnutlsClient, "-B", "60", "-s", "60", "-u", "dev-r", "-k", old_key, coapsUri(port_, "status")}, {},
                 (dir_ / "observer.err").string(), (dir_ / "observer.out").string());
  ASSERT_TRUE(agent_->waitForLog("session established: 'dev-r' (psk)")) << agent_->log();

  constexpr auto kGrace = 20s;
  ctlOk({"keys", "rotate", "dev-r", "--grace", "20s", "--from", "-"}, hexOf(new_key) + "\n");
  const auto rotated_at = std::chrono::steady_clock::now();

  // During the grace period: the old key works (it is what the agent offers first) ...
  EXPECT_TRUE(ok(kGnutlsClient, old_key)) << agent_->log();
  // ... a device that has the new key fails once (the agent offered the old key) and then gets
  // in, and from then on the new key is offered first.
  const bool new_first = ok(kOpensslClient, new_key);
  EXPECT_FALSE(new_first) << "the agent offers the previous key until a handshake with it fails";
  EXPECT_TRUE(agent_->waitForLog("PSK handshake of 'dev-r'", 2s)) << agent_->log();
  EXPECT_TRUE(ok(kOpensslClient, new_key)) << agent_->log();
  EXPECT_TRUE(ok(kGnutlsClient, new_key)) << agent_->log();
  // A straggler with the old key is still let in within the grace, again at the second try.
  const bool old_again = ok(kGnutlsClient, old_key) || ok(kGnutlsClient, old_key);
  EXPECT_TRUE(old_again) << agent_->log();
  ASSERT_LT(std::chrono::steady_clock::now() - rotated_at, kGrace) << "machine too slow for this test's grace";
  EXPECT_TRUE(observer.running()) << "the old key's session must survive the grace period";

  // When the grace ends the old key's session is closed and the old key is deleted.
  EXPECT_TRUE(agent_->waitForLog("closing session of 'dev-r'", kGrace + 10s)) << agent_->log();
  EXPECT_TRUE(observer.wait(10s).has_value()) << "old-key session still open after the grace period";
  EXPECT_TRUE(agent_->waitForLog("previous keys reached the end of their grace period", 5s)) << agent_->log();
  EXPECT_FALSE(ok(kGnutlsClient, old_key));
  EXPECT_FALSE(ok(kOpensslClient, old_key));  // no second chance: there is no other key now
  EXPECT_TRUE(ok(kOpensslClient, new_key)) << agent_->log();
  EXPECT_TRUE(ok(kGnutlsClient, new_key)) << agent_->log();
  const auto list = nlohmann::json::parse(ctlRun({"keys", "list", "--json"}).out);
  EXPECT_EQ(list[0]["generation"], 2);
  EXPECT_TRUE(list[0]["previous_key_until"].is_null());
}

}  // namespace
}  // namespace coap_edge::test
