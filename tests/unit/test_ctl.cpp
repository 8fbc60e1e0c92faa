#include "ctl/ctl.h"
#include "ctl/key_import.h"
#include "keystore/keystore.h"
#include "tls/certificates.h"
#include "tls/secret.h"

#include <gtest/gtest.h>
#include <mbedtls/x509_crt.h>
#include <nlohmann/json.hpp>
#include <sys/stat.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <regex>
#include <sstream>
#include <string>
#include <vector>

namespace coap_edge::ctl {
namespace {

namespace fs = std::filesystem;

struct CtlRun {
  int code = -1;
  std::string out;
  std::string err;
};

std::size_t count(const std::string& haystack, const std::string& needle) {
  std::size_t n = 0;
  for (auto pos = haystack.find(needle); pos != std::string::npos; pos = haystack.find(needle, pos + 1)) ++n;
  return n;
}

const std::string kKeyA = "00112233445566778899aabbccddeeff";
const std::string kKeyB = "ffeeddccbbaa99887766554433221100ffeeddccbbaa99887766554433221100";

class ctlTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string tmpl = (fs::temp_directory_path() / "coap-edge-ctl-XXXXXX").string();
    ASSERT_NE(::mkdtemp(tmpl.data()), nullptr);
    root_ = tmpl;
    state_ = root_ / "state";
    config_ = root_ / "agent.toml";
    std::ofstream(config_) << "[agent]\nstate_dir = \"" << state_.string() << "\"\n";
  }
  void TearDown() override { fs::remove_all(root_); }

  CtlRun run(std::vector<std::string> args, const std::string& input = "", bool with_config = true) {
    if (with_config) args.insert(args.begin(), {"--config", config_.string()});
    std::vector<std::string_view> views(args.begin(), args.end());
    std::istringstream in(input);
    std::ostringstream out;
    std::ostringstream err;
    CtlRun r;
    r.code = runCtl(views, in, out, err);
    r.out = out.str();
    r.err = err.str();
    return r;
  }

  fs::path write(const std::string& name, const std::string& text) {
    const fs::path p = root_ / name;
    std::ofstream(p, std::ios::binary) << text;
    return p;
  }

  std::optional<std::string> storedKeyHex(const std::string& identity) {
    keystore::Keystore ks = keystore::Keystore::open(state_);
    auto key = ks.lookupPsk(identity);
    if (!key) return std::nullopt;
    return tls::hexEncode(key->span());
  }

  fs::path root_;
  fs::path state_;
  fs::path config_;
};

TEST_F(ctlTest, AddPrintsTheKeyOnceAndListNeverShowsIt) {
  const CtlRun add = run({"keys", "add", "node-1"});
  ASSERT_EQ(add.code, kExitOk) << add.err;
  std::smatch m;
  const std::regex shape("identity: node-1\nhex: ([0-9a-f]+)\nbase64: ([A-Za-z0-9+/=]+)\n");
  ASSERT_TRUE(std::regex_match(add.out, m, shape)) << add.out;
  const std::string hex = m[1];
  const std::string b64 = m[2];
  EXPECT_EQ(hex.size(), 32u);  // default 16 bytes
  const auto bytes = tls::hexDecode(hex);
  ASSERT_TRUE(bytes.has_value());
  EXPECT_EQ(tls::base64Encode(*bytes), b64);
  EXPECT_EQ(storedKeyHex("node-1"), hex);
  EXPECT_EQ(add.err.find(hex), std::string::npos);
  EXPECT_NE(add.err.find("not shown again"), std::string::npos);

  const CtlRun add32 = run({"keys", "add", "node-2", "--bytes", "32"});
  ASSERT_EQ(add32.code, kExitOk) << add32.err;
  ASSERT_TRUE(std::regex_search(add32.out, m, std::regex("hex: ([0-9a-f]+)\n")));
  const std::string hex32 = m[1];
  EXPECT_EQ(hex32.size(), 64u);
  EXPECT_NE(hex32.substr(0, 32), hex);

  using Args = std::vector<std::string>;
  for (const auto& args : {Args{"keys", "list"}, Args{"keys", "list", "--json"}}) {
    const CtlRun list = run(args);
    ASSERT_EQ(list.code, kExitOk) << list.err;
    EXPECT_NE(list.out.find("node-1"), std::string::npos);
    EXPECT_NE(list.out.find("node-2"), std::string::npos);
    for (const std::string& secret : {hex, b64, hex32}) {
      EXPECT_EQ(list.out.find(secret), std::string::npos) << "key material in: " << list.out;
      EXPECT_EQ(list.err.find(secret), std::string::npos);
    }
  }
  // A second add of the same identity fails and shows no key at all.
  const CtlRun again = run({"keys", "add", "node-1"});
  EXPECT_EQ(again.code, kExitFailed);
  EXPECT_EQ(again.out, "");
  EXPECT_NE(again.err.find("already exists"), std::string::npos) << again.err;
  EXPECT_EQ(storedKeyHex("node-1"), hex);
  EXPECT_EQ(count(add.out + add32.out + again.out, hex), 1u);
}

TEST_F(ctlTest, AddUsageErrors) {
  EXPECT_EQ(run({"keys", "add"}).code, kExitUsage);
  EXPECT_EQ(run({"keys", "add", "a", "b"}).code, kExitUsage);
  EXPECT_EQ(run({"keys", "add", "node-1", "--bytes", "20"}).code, kExitUsage);
  EXPECT_EQ(run({"keys", "add", "node-1", "--bytes"}).code, kExitUsage);
  EXPECT_EQ(run({"keys", "add", "node-1", "--frob"}).code, kExitUsage);
  const CtlRun bad = run({"keys", "add", "a,b"});
  EXPECT_EQ(bad.code, kExitUsage);
  EXPECT_NE(bad.err.find("','"), std::string::npos) << bad.err;
  EXPECT_TRUE(run({"keys", "list"}).out.find("a,b") == std::string::npos);
}

TEST_F(ctlTest, ImportCsvFromStdin) {
  const std::string csv = "identity,key_hex\r\n"
                          "# provisioning batch 7\r\n"
                          "\r\n"
                          "node-1," + kKeyA + "\r\n"
                          "  \"node-2\" , \"" + kKeyB + "\"\n"
                          "node-3,00112233445566778899AABBCCDDEEFF";  // no final newline
  const CtlRun r = run({"keys", "import", "-"}, csv);
  ASSERT_EQ(r.code, kExitOk) << r.err;
  EXPECT_NE(r.out.find("imported 3 identities"), std::string::npos) << r.out;
  EXPECT_EQ(storedKeyHex("node-1"), kKeyA);
  EXPECT_EQ(storedKeyHex("node-2"), kKeyB);
  EXPECT_EQ(storedKeyHex("node-3"), kKeyA);
  const CtlRun list = run({"keys", "list"});
  EXPECT_EQ(list.out.find(kKeyA), std::string::npos);
}

TEST_F(ctlTest, ImportJsonFromFile) {
  const fs::path file = write("keys.json", "  [\n  {\"identity\": \"node-1\", \"key_hex\": \"" + kKeyA + "\"},\n" +
                                               "  {\"key_hex\": \"" + kKeyB + "\", \"identity\": \"node-2\"}\n]\n");
  const CtlRun r = run({"keys", "import", file.string()});
  ASSERT_EQ(r.code, kExitOk) << r.err;
  EXPECT_EQ(storedKeyHex("node-1"), kKeyA);
  EXPECT_EQ(storedKeyHex("node-2"), kKeyB);
}

TEST_F(ctlTest, ImportIsAllOrNothingAndNamesTheLine) {
  const std::string csv = "# header comment\n"
                          "node-1," + kKeyA + "\n"
                          "node-2," + kKeyB + "\n"
                          "node-3,0011\n"  // line 4: key too short
                          "node-4," + kKeyA + "\n";
  const CtlRun r = run({"keys", "import", "-"}, csv);
  EXPECT_EQ(r.code, kExitDataErr);
  EXPECT_NE(r.err.find("coap-edge-ctl: <stdin>:4: key is 2 bytes"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("coap-edge-ctl: nothing was imported"), std::string::npos) << r.err;
  EXPECT_EQ(r.out, "");
  EXPECT_EQ(storedKeyHex("node-1"), std::nullopt);
  EXPECT_NE(run({"keys", "list"}).out.find("IDENTITY"), std::string::npos);
  EXPECT_EQ(run({"keys", "list"}).out.find("node-"), std::string::npos);

  const fs::path json = write("bad.json", "[{\"identity\": \"node-1\", \"key_hex\": \"" + kKeyA +
                                              "\"}, {\"identity\": \"bad id\", \"key_hex\": \"" + kKeyB + "\"}]");
  const CtlRun rj = run({"keys", "import", json.string()});
  EXPECT_EQ(rj.code, kExitDataErr);
  EXPECT_NE(rj.err.find(json.string() + ": index 1: identity contains a space"), std::string::npos) << rj.err;
  EXPECT_EQ(storedKeyHex("node-1"), std::nullopt);

  const CtlRun dup = run({"keys", "import", "-"}, "a," + kKeyA + "\nb," + kKeyA + "\na," + kKeyB + "\n");
  EXPECT_EQ(dup.code, kExitDataErr);
  EXPECT_NE(dup.err.find("<stdin>:3: identity 'a' already appears on line 1"), std::string::npos) << dup.err;

  // An identity that is already stored fails the whole batch too, naming its line.
  ASSERT_EQ(run({"keys", "add", "node-9"}).code, kExitOk);
  const CtlRun exists = run({"keys", "import", "-"}, "node-8," + kKeyA + "\nnode-9," + kKeyB + "\n");
  EXPECT_EQ(exists.code, kExitFailed);
  EXPECT_NE(exists.err.find("<stdin>:2: identity 'node-9' already exists"), std::string::npos) << exists.err;
  EXPECT_EQ(storedKeyHex("node-8"), std::nullopt);
}

TEST_F(ctlTest, ImportErrorsNeverQuoteKeys) {
  const std::string key = "0123456789abcdef0123456789abcdef";
  for (const std::string& input : {"bad id," + key + "\n", "a," + key + "x\n", "a," + key + ",extra\n",
                                   "[{\"identity\": \"a\", \"key_hex\": \"" + key + "\" \"x\"}]",
                                   "[{\"identity\": \"a\", \"key_hex\": \"" + key + "\", \"k\": 1}]",
                                   "[{\"identity\": \"a\", \"key_hex\": \"" + key + "\x01\"}]",
                                   // found by fuzz_keys_import: nlohmann's number overflow quoted the digits
                                   "[{\"identity\": \"a\", \"key_hex\": 9" + key + "e9" + key + "}]"}) {
    const CtlRun r = run({"keys", "import", "-"}, input);
    EXPECT_EQ(r.code, kExitDataErr) << input;
    EXPECT_EQ(r.err.find(key), std::string::npos) << r.err;
    EXPECT_EQ(r.err.find(key.substr(0, 8)), std::string::npos) << r.err;
  }
}

TEST_F(ctlTest, ImportInputProblems) {
  EXPECT_EQ(run({"keys", "import", (root_ / "missing.csv").string()}).code, kExitFailed);
  EXPECT_EQ(run({"keys", "import", root_.string()}).code, kExitFailed);
  EXPECT_EQ(run({"keys", "import"}).code, kExitUsage);
  const CtlRun empty = run({"keys", "import", "-"}, "# nothing\n\n");
  EXPECT_EQ(empty.code, kExitDataErr);
  EXPECT_NE(empty.err.find("no entries"), std::string::npos);
  const CtlRun big = run({"keys", "import", "-"}, std::string(kMaxImportBytes + 1, '#'));
  EXPECT_EQ(big.code, kExitDataErr);
  EXPECT_NE(big.err.find("larger than"), std::string::npos) << big.err;
}

TEST_F(ctlTest, RevokeThenListShowsRevoked) {
  ASSERT_EQ(run({"keys", "add", "node-1"}).code, kExitOk);
  ASSERT_EQ(run({"keys", "add", "node-2"}).code, kExitOk);
  const CtlRun revoke = run({"keys", "revoke", "node-1"});
  EXPECT_EQ(revoke.code, kExitOk) << revoke.err;
  EXPECT_EQ(storedKeyHex("node-1"), std::nullopt);

  const CtlRun list = run({"keys", "list"});
  ASSERT_EQ(list.code, kExitOk);
  const std::regex revoked_row("node-1 +\\d{4}-\\d\\d-\\d\\dT\\d\\d:\\d\\d:\\d\\dZ +revoked +\\d{4}-");
  EXPECT_TRUE(std::regex_search(list.out, revoked_row)) << list.out;
  EXPECT_TRUE(std::regex_search(list.out, std::regex("node-2 +\\S+ +active +-"))) << list.out;

  const auto doc = nlohmann::json::parse(run({"keys", "list", "--json"}).out);
  ASSERT_EQ(doc.size(), 2u);
  EXPECT_EQ(doc[0]["identity"], "node-1");
  EXPECT_EQ(doc[0]["status"], "revoked");
  EXPECT_TRUE(doc[0]["revoked"].is_string());
  EXPECT_EQ(doc[1]["status"], "active");
  EXPECT_TRUE(doc[1]["revoked"].is_null());
  EXPECT_FALSE(doc[0].contains("key_hex"));

  EXPECT_EQ(run({"keys", "revoke", "node-1"}).code, kExitOk);  // idempotent
  const CtlRun unknown = run({"keys", "revoke", "nobody"});
  EXPECT_EQ(unknown.code, kExitFailed);
  EXPECT_NE(unknown.err.find("keys list"), std::string::npos) << unknown.err;
  EXPECT_EQ(run({"keys", "revoke", "bad id"}).code, kExitUsage);
}

TEST_F(ctlTest, ExitCodesAndHelp) {
  const CtlRun help = run({"--help"}, "", false);
  EXPECT_EQ(help.code, kExitOk);
  for (const char* s : {"keys add", "keys import", "keys list", "keys revoke", "Exit status", "65", "78"}) {
    EXPECT_NE(help.out.find(s), std::string::npos) << s;
  }
  EXPECT_EQ(run({}, "", false).code, kExitUsage);
  EXPECT_EQ(run({"frob"}).code, kExitUsage);
  EXPECT_EQ(run({"keys", "frob"}).code, kExitUsage);
  EXPECT_EQ(run({"keys", "list", "extra"}).code, kExitUsage);
  const CtlRun no_config = run({"keys", "list"}, "", false);
  EXPECT_EQ(no_config.code, kExitUsage);
  EXPECT_NE(no_config.err.find("--config"), std::string::npos);
  EXPECT_EQ(run({"--version"}, "", false).code, kExitOk);
  // --config may also follow the command.
  EXPECT_EQ(run({"keys", "list", "--config", config_.string()}, "", false).code, kExitOk);

  const fs::path bad = write("bad.toml", "[agent]\nstate_dir = \"/tmp\"\nbogus = 1\n");
  const CtlRun cfg = run({"--config", bad.string(), "keys", "list"}, "", false);
  EXPECT_EQ(cfg.code, kExitConfig);
  EXPECT_NE(cfg.err.find("coap-edge-ctl: " + bad.string() + ":3"), std::string::npos) << cfg.err;
  EXPECT_EQ(run({"--config", (root_ / "absent.toml").string(), "keys", "list"}, "", false).code, kExitConfig);

  // A state_dir that cannot be used is an operation failure naming the path.
  const fs::path file = write("not-a-dir", "x");
  const fs::path cfg2 = write("file-state.toml", "[agent]\nstate_dir = \"" + file.string() + "\"\n");
  const CtlRun unusable = run({"--config", cfg2.string(), "keys", "list"}, "", false);
  EXPECT_EQ(unusable.code, kExitFailed);
  EXPECT_NE(unusable.err.find(file.string()), std::string::npos) << unusable.err;
}

// The import parser on its own (the fuzz target drives the same function).
TEST(ctlKeyImport, CsvDetails) {
  auto r = parseKeyImport("\xEF\xBB\xBF" "a," + kKeyA + "\n");  // BOM from spreadsheet exports
  ASSERT_TRUE(r.ok()) << r.error->message;
  EXPECT_EQ(r.format, ImportFormat::csv);
  ASSERT_EQ(r.entries.size(), 1u);
  EXPECT_EQ(r.entries[0].line, 1u);
  // The header is only a header on the first data line.
  r = parseKeyImport("a," + kKeyA + "\nidentity,key_hex\n");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error->line, 2u);
  r = parseKeyImport("a;" + kKeyA + "\n");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error->describe("f"), "f:1: expected 'identity,key_hex'");
  r = parseKeyImport("a,\n");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error->message, "key_hex is missing");
  r = parseKeyImport("a," + kKeyB + kKeyB + "00\n");  // 65 bytes: too long
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error->message.find("65 bytes"), std::string::npos);
}

TEST(ctlKeyImport, JsonDetails) {
  auto r = parseKeyImport("[{\"identity\": \"a\", \"identity\": \"b\", \"key_hex\": \"" + kKeyA + "\"}]");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error->index, 0u);
  EXPECT_NE(r.error->message.find("appears twice"), std::string::npos);
  r = parseKeyImport("[{\"identity\": \"a\", \"key_hex\": \"" + kKeyA + "\"}, " +
                     "{\"identity\": [\"b\"], \"key_hex\": \"\"}]");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error->index, 1u);
  r = parseKeyImport("[{\"identity\": \"a\", \"key_hex\": \"" + kKeyA + "\"}, 7]");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error->describe("f"), "f: index 1: expected an object {\"identity\": \"...\", \"key_hex\": \"...\"}");
  r = parseKeyImport("[\n{\"identity\": \"a\",\n \"key_hex\": 5}]");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error->index, 0u);
  r = parseKeyImport("[\n{\"identity\": \"a\",\n oops}]");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error->line, 3u);
  EXPECT_GT(r.error->column, 0u);
  EXPECT_EQ(r.error->message, "JSON syntax error");
  r = parseKeyImport(" [778833445e66778899aabbcc[");  // fuzz_keys_import crash: must not throw
  ASSERT_FALSE(r.ok());
  r = parseKeyImport("[{}, 1e999999]");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error->index, 1u);
  r = parseKeyImport("[]");
  EXPECT_FALSE(r.ok());
  r = parseKeyImport(std::string(100000, '[') + std::string(100000, ']'));
  EXPECT_FALSE(r.ok());
}

// --- ca, cert, keys rotate --------------------------------------------------------------------

std::string slurp(const fs::path& p) {
  std::ifstream in(p, std::ios::binary | std::ios::ate);
  std::string bytes(static_cast<std::size_t>(std::max<std::streamoff>(in.tellg(), 0)), '\0');
  in.seekg(0);
  in.read(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  return bytes;
}

unsigned modeOf(const fs::path& p) {
  struct stat st {};
  if (::stat(p.c_str(), &st) != 0) return 0xFFFFFFFFu;
  return st.st_mode & 0777u;
}

// mbedtls_x509_crt_verify flags of a PEM certificate against a PEM CA (0 = trusted).
std::uint32_t verifyPem(const std::string& leaf, const std::string& ca) {
  mbedtls_x509_crt l, a;
  mbedtls_x509_crt_init(&l);
  mbedtls_x509_crt_init(&a);
  std::uint32_t flags = 0xFFFFFFFFu;
  if (mbedtls_x509_crt_parse(&l, reinterpret_cast<const unsigned char*>(leaf.c_str()), leaf.size() + 1) == 0 &&
      mbedtls_x509_crt_parse(&a, reinterpret_cast<const unsigned char*>(ca.c_str()), ca.size() + 1) == 0) {
    flags = 0;
    (void)mbedtls_x509_crt_verify(&l, &a, nullptr, nullptr, &flags, nullptr, nullptr);
  }
  mbedtls_x509_crt_free(&l);
  mbedtls_x509_crt_free(&a);
  return flags;
}

TEST_F(ctlTest, CaInitCreatesAPrivateKeyAndNeverOverwrites) {
  const CtlRun none = run({"ca", "show"});
  EXPECT_EQ(none.code, kExitFailed);
  EXPECT_NE(none.err.find("no CA yet: run coap-edge-ctl"), std::string::npos) << none.err;
  EXPECT_NE(none.err.find("ca init"), std::string::npos) << none.err;

  const mode_t old = ::umask(0);
  const CtlRun init = run({"ca", "init", "--days", "30"});
  ::umask(old);
  ASSERT_EQ(init.code, kExitOk) << init.err;
  EXPECT_EQ(modeOf(state_ / "ca" / "ca.key"), 0600u);
  EXPECT_EQ(modeOf(state_ / "ca"), 0700u);
  const std::string key_pem = slurp(state_ / "ca" / "ca.key");
  EXPECT_NE(key_pem.find("PRIVATE KEY"), std::string::npos);
  EXPECT_EQ(init.out.find("PRIVATE KEY"), std::string::npos);

  const CtlRun show = run({"ca", "show"});
  ASSERT_EQ(show.code, kExitOk) << show.err;
  EXPECT_EQ(show.out, slurp(state_ / "ca" / "ca.crt"));
  EXPECT_EQ(verifyPem(show.out, show.out), 0u);

  const CtlRun again = run({"ca", "init"});
  EXPECT_EQ(again.code, kExitFailed);
  EXPECT_NE(again.err.find("never overwritten"), std::string::npos) << again.err;
  EXPECT_EQ(slurp(state_ / "ca" / "ca.key"), key_pem);
  EXPECT_EQ(run({"ca", "init", "--days", "0"}).code, kExitUsage);
  EXPECT_EQ(run({"ca", "init", "--days", "x"}).code, kExitUsage);
}

TEST_F(ctlTest, CertIssueWritesPemAndDerTwinsThatChainToTheCa) {
  const CtlRun no_ca = run({"cert", "issue", "dev-1", "--out", (root_ / "out").string()});
  EXPECT_EQ(no_ca.code, kExitFailed);
  EXPECT_NE(no_ca.err.find("no CA yet: run coap-edge-ctl"), std::string::npos) << no_ca.err;
  EXPECT_FALSE(fs::exists(root_ / "out" / "dev-1.key"));

  ASSERT_EQ(run({"ca", "init"}).code, kExitOk);
  const fs::path out = root_ / "out";
  const CtlRun issue = run({"cert", "issue", "dev-1", "--out", out.string(), "--days", "10"});
  ASSERT_EQ(issue.code, kExitOk) << issue.err;
  for (const char* name : {"dev-1.key", "dev-1.key.der"}) EXPECT_EQ(modeOf(out / name), 0600u) << name;
  for (const char* name : {"dev-1.crt", "dev-1.crt.der"}) EXPECT_EQ(modeOf(out / name), 0644u) << name;
  const std::string ca = run({"ca", "show"}).out;
  const std::string crt = slurp(out / "dev-1.crt");
  EXPECT_EQ(verifyPem(crt, ca), 0u);
  auto pem = tls::parseCertificate(tls::bytesOf(crt));
  auto der = tls::parseCertificate(tls::bytesOf(slurp(out / "dev-1.crt.der")));
  ASSERT_TRUE(pem.ok() && der.ok());
  EXPECT_EQ(pem->der, der->der);
  EXPECT_EQ(pem->common_name, "dev-1");
  EXPECT_NE(issue.out.find(pem->serial), std::string::npos);
  // Private keys appear in their files only.
  EXPECT_EQ(issue.out.find("PRIVATE"), std::string::npos);
  tls::Drbg drbg("test_ctl");
  auto key = tls::Key::loadPrivate(tls::bytesOf(slurp(out / "dev-1.key")), drbg);
  auto key_der = tls::Key::loadPrivate(tls::bytesOf(slurp(out / "dev-1.key.der")), drbg);
  ASSERT_TRUE(key.ok() && key_der.ok());

  // Recorded, listed (--json too), never overwritten.
  const CtlRun list = run({"cert", "list", "--json"});
  ASSERT_EQ(list.code, kExitOk) << list.err;
  const auto doc = nlohmann::json::parse(list.out);
  ASSERT_EQ(doc.size(), 1u);
  EXPECT_EQ(doc[0]["serial"], pem->serial);
  EXPECT_EQ(doc[0]["identity"], "dev-1");
  EXPECT_EQ(doc[0]["profile"], "client");
  EXPECT_EQ(doc[0]["origin"], "issued");
  EXPECT_EQ(doc[0]["status"], "active");
  EXPECT_TRUE(doc[0]["revoked"].is_null());
  const CtlRun twice = run({"cert", "issue", "dev-1", "--out", out.string()});
  EXPECT_EQ(twice.code, kExitFailed);
  EXPECT_NE(twice.err.find("refusing to overwrite"), std::string::npos) << twice.err;
  EXPECT_EQ(slurp(out / "dev-1.crt"), crt);

  // Gateway certificates, and what is refused up front.
  const CtlRun gw = run({"cert", "issue", "gw", "--server", "--san", "127.0.0.1", "--san", "localhost", "--out",
                         out.string()});
  ASSERT_EQ(gw.code, kExitOk) << gw.err;
  EXPECT_EQ(verifyPem(slurp(out / "gw.crt"), ca), 0u);
  EXPECT_EQ(run({"cert", "issue", "dev-2", "--san", "x", "--out", out.string()}).code, kExitUsage);
  EXPECT_EQ(run({"cert", "issue", "a/b", "--out", out.string()}).code, kExitUsage);
  EXPECT_EQ(run({"cert", "issue", "bad id", "--out", out.string()}).code, kExitUsage);
  EXPECT_EQ(run({"cert", "issue", "dev-2"}).code, kExitUsage);
  EXPECT_EQ(run({"cert", "issue", "gw2", "--server", "--san", "no way", "--out", out.string()}).code, kExitFailed);
  EXPECT_FALSE(fs::exists(out / "gw2.key"));  // nothing left behind by a failed issue
  // A revoked identity gets no certificate.
  ASSERT_EQ(run({"keys", "add", "gone"}).code, kExitOk);
  ASSERT_EQ(run({"keys", "revoke", "gone"}).code, kExitOk);
  EXPECT_EQ(run({"cert", "issue", "gone", "--out", out.string()}).code, kExitFailed);
}

TEST_F(ctlTest, CertSignChecksTheCsrAndRecordsTheCertificate) {
  ASSERT_EQ(run({"ca", "init"}).code, kExitOk);
  tls::Drbg drbg("test_ctl csr");
  auto key = tls::Key::generate(drbg);
  ASSERT_TRUE(key.ok());
  auto csr = tls::makeCsr(*key, "dev-7", drbg);
  ASSERT_TRUE(csr.ok());
  const fs::path csr_file = write("dev-7.csr", *csr);
  const fs::path crt = root_ / "dev-7.crt";
  const CtlRun sign = run({"cert", "sign", csr_file.string(), "--out", crt.string()});
  ASSERT_EQ(sign.code, kExitOk) << sign.err;
  const std::string ca = run({"ca", "show"}).out;
  EXPECT_EQ(verifyPem(slurp(crt), ca), 0u);
  EXPECT_TRUE(fs::exists(crt.string() + ".der"));
  const auto doc = nlohmann::json::parse(run({"cert", "list", "--json"}).out);
  ASSERT_EQ(doc.size(), 1u);
  EXPECT_EQ(doc[0]["identity"], "dev-7");
  EXPECT_EQ(doc[0]["origin"], "csr");

  // From stdin, too.
  const CtlRun from_stdin = run({"cert", "sign", "-", "--out", (root_ / "stdin.crt").string()}, *csr);
  EXPECT_EQ(from_stdin.code, kExitOk) << from_stdin.err;

  // A tampered CSR: nothing signed, exit 65, and the message says why.
  std::string tampered = *csr;
  tampered[tampered.size() / 2] = tampered[tampered.size() / 2] == 'A' ? 'B' : 'A';
  const CtlRun bad = run({"cert", "sign", write("bad.csr", tampered).string(), "--out", (root_ / "bad.crt").string()});
  EXPECT_EQ(bad.code, kExitDataErr);
  EXPECT_NE(bad.err.find("nothing was signed"), std::string::npos) << bad.err;
  EXPECT_FALSE(fs::exists(root_ / "bad.crt"));
  // A CN that is not a valid identity.
  auto odd = tls::makeCsr(*key, "has space", drbg);
  ASSERT_TRUE(odd.ok());
  const CtlRun cn = run({"cert", "sign", write("odd.csr", *odd).string(), "--out", (root_ / "odd.crt").string()});
  EXPECT_EQ(cn.code, kExitDataErr);
  EXPECT_NE(cn.err.find("not a valid identity"), std::string::npos) << cn.err;
  EXPECT_EQ(run({"cert", "sign", write("junk.csr", "junk").string(), "--out", (root_ / "j.crt").string()}).code,
            kExitDataErr);
  EXPECT_EQ(nlohmann::json::parse(run({"cert", "list", "--json"}).out).size(), 2u);
}

TEST_F(ctlTest, CertRevokeBySerialOrIdentity) {
  ASSERT_EQ(run({"ca", "init"}).code, kExitOk);
  const fs::path out = root_ / "out";
  ASSERT_EQ(run({"cert", "issue", "dev-1", "--out", out.string()}).code, kExitOk);
  ASSERT_EQ(run({"cert", "issue", "dev-2", "--out", out.string()}).code, kExitOk);
  auto first = tls::parseCertificate(tls::bytesOf(slurp(out / "dev-1.crt")));
  ASSERT_TRUE(first.ok());
  // openssl prints serials upper case with colons; both spellings work.
  std::string colons;
  for (std::size_t i = 0; i < first->serial.size(); i += 2) {
    if (i > 0) colons += ':';
    colons += static_cast<char>(std::toupper(first->serial[i]));
    colons += static_cast<char>(std::toupper(first->serial[i + 1]));
  }
  const CtlRun by_serial = run({"cert", "revoke", colons});
  ASSERT_EQ(by_serial.code, kExitOk) << by_serial.err;
  EXPECT_NE(by_serial.out.find(first->serial), std::string::npos);
  const CtlRun again = run({"cert", "revoke", first->serial});
  EXPECT_EQ(again.code, kExitOk);
  EXPECT_NE(again.err.find("already revoked"), std::string::npos);
  const CtlRun by_id = run({"cert", "revoke", "dev-2"});
  ASSERT_EQ(by_id.code, kExitOk) << by_id.err;
  EXPECT_NE(by_id.out.find("revoked 1 certificate of dev-2"), std::string::npos) << by_id.out;
  const CtlRun unknown = run({"cert", "revoke", "nobody"});
  EXPECT_EQ(unknown.code, kExitFailed);
  EXPECT_NE(unknown.err.find("cert list"), std::string::npos);
  keystore::Keystore ks = keystore::Keystore::open(state_);
  EXPECT_EQ(ks.revokedCertificateSerials().size(), 2u);
  const CtlRun list = run({"cert", "list"});
  EXPECT_NE(list.out.find("revoked"), std::string::npos);
  EXPECT_EQ(list.out.find("active"), std::string::npos);
}

TEST_F(ctlTest, CertCsrMakesTheGatewaysKeyAndRequest) {
  std::ofstream(config_) << "[agent]\nname = \"gw-07\"\nstate_dir = \"" << state_.string() << "\"\n";
  const fs::path out = root_ / "gw";
  const CtlRun made = run({"cert", "csr", "--out", out.string()});
  ASSERT_EQ(made.code, kExitOk) << made.err;
  EXPECT_EQ(modeOf(out / "gw-07.key"), 0600u);
  auto checked = tls::checkCsr(tls::bytesOf(slurp(out / "gw-07.csr")));
  ASSERT_TRUE(checked.ok()) << checked.error();
  EXPECT_EQ(checked->common_name, "gw-07");
  EXPECT_EQ(run({"cert", "csr", "--out", out.string()}).code, kExitFailed);  // never overwrites
  EXPECT_EQ(run({"cert", "csr"}).code, kExitUsage);
}

TEST_F(ctlTest, KeysRotatePrintsTheNewKeyOnceAndKeepsTheOldOneForTheGrace) {
  ASSERT_EQ(run({"keys", "import", "-"}, "dev-1," + kKeyA + "\n").code, kExitOk);
  const CtlRun rot = run({"keys", "rotate", "dev-1", "--grace", "10m"});
  ASSERT_EQ(rot.code, kExitOk) << rot.err;
  std::smatch m;
  ASSERT_TRUE(std::regex_match(rot.out, m, std::regex("identity: dev-1\nhex: ([0-9a-f]{32})\nbase64: ([A-Za-z0-9+/=]+)\n")))
      << rot.out;
  const std::string hex = m[1];
  EXPECT_EQ(storedKeyHex("dev-1"), hex);
  EXPECT_NE(rot.err.find("keeps working until"), std::string::npos) << rot.err;
  EXPECT_EQ(rot.err.find(hex), std::string::npos);
  {
    keystore::Keystore ks = keystore::Keystore::open(state_);
    auto keys = ks.lookupKeys("dev-1");
    ASSERT_TRUE(keys.has_value());
    EXPECT_EQ(keys->generation, 2u);
    EXPECT_EQ(tls::hexEncode(keys->previous.span()), kKeyA);
  }
  const CtlRun list = run({"keys", "list", "--json"});
  const auto doc = nlohmann::json::parse(list.out);
  EXPECT_EQ(doc[0]["generation"], 2);
  EXPECT_TRUE(doc[0]["previous_key_until"].is_string());
  EXPECT_EQ(list.out.find(hex), std::string::npos);
  EXPECT_EQ(list.out.find(kKeyA), std::string::npos);

  // A chosen key from a file (never from argv), no grace.
  const CtlRun from = run({"keys", "rotate", "dev-1", "--grace", "0s", "--from", write("k.hex", kKeyB + "\n").string()});
  ASSERT_EQ(from.code, kExitOk) << from.err;
  EXPECT_EQ(from.out.find(kKeyB), std::string::npos);
  EXPECT_EQ(storedKeyHex("dev-1"), kKeyB);
  EXPECT_TRUE(nlohmann::json::parse(run({"keys", "list", "--json"}).out)[0]["previous_key_until"].is_null());

  EXPECT_EQ(run({"keys", "rotate", "nobody"}).code, kExitFailed);
  EXPECT_EQ(run({"keys", "rotate", "dev-1", "--grace", "31d"}).code, kExitUsage);
  EXPECT_EQ(run({"keys", "rotate", "dev-1", "--grace", "1500ms"}).code, kExitUsage);
  EXPECT_EQ(run({"keys", "rotate", "dev-1", "--from", "-"}, "abc\n").code, kExitDataErr);
  EXPECT_EQ(run({"keys", "rotate", "dev-1", "--from", "-", "--bytes", "32"}, kKeyA).code, kExitUsage);
  ASSERT_EQ(run({"keys", "revoke", "dev-1"}).code, kExitOk);
  EXPECT_EQ(run({"keys", "rotate", "dev-1"}).code, kExitFailed);
}

TEST_F(ctlTest, HelpListsTheNewCommands) {
  const CtlRun help = run({"--help"}, "", false);
  for (const char* words : {"keys rotate", "ca init", "ca show", "cert issue", "cert sign", "cert csr", "cert list",
                            "cert revoke", "ID.crt.der"}) {
    EXPECT_NE(help.out.find(words), std::string::npos) << words;
  }
}

TEST(ctlKeyImport, EntryLimit) {
  std::string text;
  for (std::size_t i = 0; i <= kMaxImportEntries; ++i) text += std::to_string(i) + "," + kKeyA + "\n";
  ASSERT_LE(text.size(), kMaxImportBytes);
  const auto r = parseKeyImport(text);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error->line, kMaxImportEntries + 1);
}

}  // namespace
}  // namespace coap_edge::ctl
