#include "keystore/grace.h"
#include "keystore/keystore.h"

#include <gtest/gtest.h>
#include <sqlite3.h>
#include <sys/stat.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <utility>
#include <vector>

namespace coap_edge::keystore {
namespace {

namespace fs = std::filesystem;
using tls::SecretBytes;

SecretBytes key(std::size_t n, std::uint8_t fill) { return SecretBytes(std::vector<std::uint8_t>(n, fill)); }

std::vector<std::uint8_t> bytesOf(std::span<const std::uint8_t> s) { return {s.begin(), s.end()}; }

unsigned modeOf(const fs::path& p) {
  struct stat st {};
  if (::stat(p.c_str(), &st) != 0) return 0xFFFFFFFFu;
  return st.st_mode & 07777u;
}

std::int64_t now() {
  return std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now().time_since_epoch()).count();
}

class keystoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string tmpl = (fs::temp_directory_path() / "coap-edge-keystore-XXXXXX").string();
    ASSERT_NE(::mkdtemp(tmpl.data()), nullptr);
    root_ = tmpl;
    state_ = root_ / "state" / "nested";
  }
  void TearDown() override { fs::remove_all(root_); }

  fs::path root_;
  fs::path state_;
};

TEST_F(keystoreTest, CreatesPrivateDirectoryAndFilesWhateverTheUmask) {
  const mode_t old = ::umask(0);  // the most permissive umask must not leak through
  {
    Keystore ks = Keystore::open(state_);
    EXPECT_EQ(ks.add("node-1", key(16, 1)), AddResult::ok);
    const fs::path db = state_ / "keystore.db";
    EXPECT_EQ(ks.path(), db);
    EXPECT_EQ(modeOf(state_), 0700u);
    EXPECT_EQ(modeOf(root_ / "state"), 0700u);
    EXPECT_EQ(modeOf(db), 0600u);
    ASSERT_TRUE(fs::exists(db.string() + "-wal"));
    EXPECT_EQ(modeOf(db.string() + "-wal"), 0600u);
    EXPECT_EQ(modeOf(db.string() + "-shm"), 0600u);
  }
  ::umask(old);
}

TEST_F(keystoreTest, TightensAWideExistingFile) {
  { (void)Keystore::open(state_); }
  const fs::path db = state_ / "keystore.db";
  ASSERT_EQ(::chmod(db.c_str(), 0644), 0);
  { (void)Keystore::open(state_); }
  EXPECT_EQ(modeOf(db), 0600u);
}

TEST_F(keystoreTest, OpenErrorsNameThePath) {
  const fs::path not_a_dir = root_ / "file";
  std::ofstream(not_a_dir) << "x";
  try {
    (void)Keystore::open(not_a_dir);
    FAIL() << "expected an exception";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find(not_a_dir.string()), std::string::npos) << e.what();
  }
  fs::create_directories(state_);
  std::ofstream(state_ / "keystore.db") << std::string(4096, 'g');  // not an SQLite file
  try {
    (void)Keystore::open(state_);
    FAIL() << "expected an exception";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find((state_ / "keystore.db").string()), std::string::npos) << e.what();
  }
}

TEST_F(keystoreTest, RefusesANewerSchema) {
  { (void)Keystore::open(state_); }
  sqlite3* db = nullptr;
  ASSERT_EQ(sqlite3_open((state_ / "keystore.db").c_str(), &db), SQLITE_OK);
  int version = -1;
  ASSERT_EQ(sqlite3_exec(
                db, "PRAGMA user_version",
                [](void* v, int, char** values, char**) {
                  *static_cast<int*>(v) = std::atoi(values[0]);
                  return 0;
                },
                &version, nullptr),
            SQLITE_OK);
  EXPECT_EQ(version, 2);
  ASSERT_EQ(sqlite3_exec(db, "PRAGMA user_version = 99", nullptr, nullptr, nullptr), SQLITE_OK);
  sqlite3_close(db);
  try {
    (void)Keystore::open(state_);
    FAIL() << "expected an exception";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find("newer"), std::string::npos) << e.what();
  }
}

TEST_F(keystoreTest, AddLookupRevokeList) {
  Keystore ks = Keystore::open(state_);
  const std::int64_t before = now();
  EXPECT_EQ(ks.add("node-1", key(16, 0x11)), AddResult::ok);
  EXPECT_EQ(ks.add("node-2", key(64, 0x22)), AddResult::ok);
  EXPECT_EQ(ks.add("node-1", key(16, 0x33)), AddResult::exists);
  EXPECT_EQ(ks.add("bad id", key(16, 0x33)), AddResult::invalid_identity);
  EXPECT_EQ(ks.add("node-3", key(15, 0x33)), AddResult::invalid_key);
  EXPECT_EQ(ks.add("node-3", key(65, 0x33)), AddResult::invalid_key);
  EXPECT_TRUE(ks.lastError().empty());

  auto psk = ks.lookupPsk("node-1");
  ASSERT_TRUE(psk.has_value());
  EXPECT_EQ(bytesOf(psk->span()), std::vector<std::uint8_t>(16, 0x11));  // not replaced by the dup
  ASSERT_TRUE(ks.lookupPsk("node-2").has_value());
  EXPECT_EQ(ks.lookupPsk("node-2")->size(), 64u);
  EXPECT_FALSE(ks.lookupPsk("node-3").has_value());
  EXPECT_FALSE(ks.lookupPsk("").has_value());
  EXPECT_FALSE(ks.lookupPsk(std::string(1000, 'a')).has_value());

  EXPECT_EQ(ks.revoke("node-1"), RevokeResult::ok);
  EXPECT_EQ(ks.revoke("node-1"), RevokeResult::already_revoked);
  EXPECT_EQ(ks.revoke("nobody"), RevokeResult::unknown);
  EXPECT_EQ(ks.revoke("not valid"), RevokeResult::unknown);
  EXPECT_FALSE(ks.lookupPsk("node-1").has_value());
  EXPECT_EQ(ks.add("node-1", key(16, 0x44)), AddResult::exists);  // a revoked name is not reused

  const auto all = ks.list();
  ASSERT_TRUE(ks.lastError().empty());
  ASSERT_EQ(all.size(), 2u);
  EXPECT_EQ(all[0].identity, "node-1");
  EXPECT_GE(all[0].created_at, before);
  EXPECT_LE(all[0].created_at, now());
  ASSERT_TRUE(all[0].revoked_at.has_value());
  EXPECT_GE(*all[0].revoked_at, all[0].created_at);
  EXPECT_EQ(all[1].identity, "node-2");
  EXPECT_FALSE(all[1].revoked_at.has_value());
  EXPECT_EQ(ks.revokedIdentities(), std::vector<std::string>{"node-1"});
}

std::vector<ImportEntry> batch(std::initializer_list<std::pair<const char*, std::size_t>> items) {
  std::vector<ImportEntry> out;
  std::uint8_t fill = 1;
  for (const auto& [id, n] : items) out.emplace_back(id, key(n, fill++));
  return out;
}

TEST_F(keystoreTest, ImportIsAllOrNothing) {
  Keystore ks = Keystore::open(state_);
  ASSERT_EQ(ks.add("existing", key(16, 9)), AddResult::ok);

  auto r = ks.importAll(batch({{"a", 16}, {"b", 32}, {"c", 8}, {"d", 16}}));
  EXPECT_EQ(r.error, ImportError::invalid_key);
  EXPECT_EQ(r.index, 2u);
  EXPECT_EQ(r.added, 0u);
  r = ks.importAll(batch({{"a", 16}, {"b,x", 16}}));
  EXPECT_EQ(r.error, ImportError::invalid_identity);
  EXPECT_EQ(r.index, 1u);
  r = ks.importAll(batch({{"a", 16}, {"b", 16}, {"a", 16}}));
  EXPECT_EQ(r.error, ImportError::duplicate_in_batch);
  EXPECT_EQ(r.index, 2u);
  r = ks.importAll(batch({{"a", 16}, {"b", 16}, {"existing", 16}}));
  EXPECT_EQ(r.error, ImportError::exists);
  EXPECT_EQ(r.index, 2u);
  // Nothing from the failed batches was kept, not even the entries before the bad one.
  EXPECT_EQ(ks.list().size(), 1u);
  EXPECT_FALSE(ks.lookupPsk("a").has_value());

  r = ks.importAll(batch({{"a", 16}, {"b", 64}}));
  EXPECT_TRUE(r.ok());
  EXPECT_EQ(r.added, 2u);
  EXPECT_EQ(ks.list().size(), 3u);
  EXPECT_EQ(bytesOf(ks.lookupPsk("b")->span()), std::vector<std::uint8_t>(64, 2));
  EXPECT_TRUE(ks.importAll({}).ok());
}

TEST_F(keystoreTest, SecondConnectionRevokingIsSeenWithoutReopening) {
  Keystore agent = Keystore::open(state_);
  ASSERT_EQ(agent.add("node-1", key(16, 1)), AddResult::ok);
  const std::uint64_t c0 = agent.changeCounter();
  EXPECT_EQ(agent.changeCounter(), c0);  // own commits and plain polling do not move it

  Keystore ctl = Keystore::open(state_);  // as coap-edge-ctl would, from another process
  ASSERT_TRUE(agent.lookupPsk("node-1").has_value());
  EXPECT_EQ(agent.changeCounter(), c0);
  ASSERT_EQ(ctl.revoke("node-1"), RevokeResult::ok);
  const std::uint64_t c1 = agent.changeCounter();
  EXPECT_NE(c1, c0);
  EXPECT_FALSE(agent.lookupPsk("node-1").has_value());
  EXPECT_EQ(agent.revokedIdentities(), std::vector<std::string>{"node-1"});

  ASSERT_EQ(ctl.add("node-2", key(32, 2)), AddResult::ok);
  EXPECT_NE(agent.changeCounter(), c1);
  EXPECT_TRUE(agent.lookupPsk("node-2").has_value());
}

TEST_F(keystoreTest, PersistsAcrossReopenAndMove) {
  {
    Keystore ks = Keystore::open(state_);
    ASSERT_EQ(ks.add("node-1", key(32, 0x5a)), AddResult::ok);
    ASSERT_EQ(ks.add("node-2", key(16, 0x01)), AddResult::ok);
    ASSERT_EQ(ks.revoke("node-2"), RevokeResult::ok);
  }
  Keystore first = Keystore::open(state_);
  Keystore ks = std::move(first);
  auto psk = ks.lookupPsk("node-1");
  ASSERT_TRUE(psk.has_value());
  EXPECT_EQ(bytesOf(psk->span()), std::vector<std::uint8_t>(32, 0x5a));
  EXPECT_FALSE(ks.lookupPsk("node-2").has_value());
  EXPECT_EQ(ks.revoke("node-2"), RevokeResult::already_revoked);
}

TEST(keystoreIdentity, Rules) {
  for (const char* ok : {"a", "node-1", "Node_1.site/room@x", "~!#$%&'()*+-./:;<=>?@[\\]^_`{|}"}) {
    EXPECT_TRUE(isValidIdentity(ok)) << ok;
    EXPECT_EQ(identityProblem(ok), "") << ok;
  }
  EXPECT_TRUE(isValidIdentity(std::string(128, 'x')));
  for (const std::string& bad : {std::string(), std::string(129, 'x'), std::string("a b"), std::string("a,b"),
                                std::string("a\"b"), std::string("a\tb"), std::string("a\nb"), std::string("\x7f"),
                                std::string("caf\xc3\xa9"), std::string("a\0b", 3)}) {
    EXPECT_FALSE(isValidIdentity(bad)) << bad;
    EXPECT_NE(identityProblem(bad), "") << bad;
  }
  EXPECT_NE(identityProblem("a,b").find("','"), std::string::npos);
  EXPECT_NE(identityProblem(std::string(129, 'x')).find("128"), std::string::npos);
  EXPECT_TRUE(isValidKeyLength(16));
  EXPECT_TRUE(isValidKeyLength(64));
  EXPECT_FALSE(isValidKeyLength(15));
  EXPECT_FALSE(isValidKeyLength(65));
}


// --- schema 2: migration, rotation, certificates --------------------------------------------

int userVersion(const fs::path& file) {
  sqlite3* db = nullptr;
  EXPECT_EQ(sqlite3_open(file.c_str(), &db), SQLITE_OK);
  int version = -1;
  sqlite3_exec(
      db, "PRAGMA user_version",
      [](void* v, int, char** values, char**) {
        *static_cast<int*>(v) = std::atoi(values[0]);
        return 0;
      },
      &version, nullptr);
  sqlite3_close(db);
  return version;
}

TEST_F(keystoreTest, MigratesASchema1DatabaseInPlace) {
  // A keystore exactly as the first release wrote it (schema 1), with a live and a revoked key.
  fs::create_directories(state_);
  const fs::path file = state_ / "keystore.db";
  sqlite3* db = nullptr;
  ASSERT_EQ(sqlite3_open(file.c_str(), &db), SQLITE_OK);
  ASSERT_EQ(sqlite3_exec(db,
                         "PRAGMA journal_mode = WAL;"
                         "CREATE TABLE identities ("
                         "  identity   TEXT PRIMARY KEY NOT NULL,"
                         "  psk        BLOB NOT NULL CHECK (typeof(psk) = 'blob' AND length(psk) BETWEEN 16 AND 64),"
                         "  created_at INTEGER NOT NULL,"
                         "  revoked_at INTEGER"
                         ") WITHOUT ROWID;"
                         "INSERT INTO identities VALUES ('old-1', zeroblob(16), 1700000000, NULL);"
                         "INSERT INTO identities VALUES ('old-2', randomblob(32), 1700000001, 1700000002);"
                         "PRAGMA user_version = 1;",
                         nullptr, nullptr, nullptr),
            SQLITE_OK);
  sqlite3_close(db);
  ::chmod(file.c_str(), 0600);

  {
    Keystore ks = Keystore::open(state_);
    auto keys = ks.lookupKeys("old-1");
    ASSERT_TRUE(keys.has_value());
    EXPECT_EQ(bytesOf(keys->current.span()), std::vector<std::uint8_t>(16, 0));
    EXPECT_EQ(keys->generation, 1u);
    EXPECT_TRUE(keys->previous.empty());
    EXPECT_FALSE(ks.lookupKeys("old-2").has_value());
    const auto all = ks.list();
    ASSERT_EQ(all.size(), 2u);
    EXPECT_EQ(all[0].created_at, 1700000000);
    EXPECT_EQ(all[0].generation, 1u);
    EXPECT_FALSE(all[0].grace_until.has_value());
    EXPECT_EQ(all[1].revoked_at, 1700000002);
    // The new tables and columns work on the upgraded file.
    EXPECT_EQ(ks.rotate("old-1", key(16, 7), std::chrono::seconds(60)).result, RotateResult::ok);
    EXPECT_EQ(ks.recordCertificate({"0a", "old-1", "client", "issued", 1, 2, 3, {}}), CertAddResult::ok);
    EXPECT_TRUE(ks.rotations().size() == 1 && ks.lastError().empty());
  }
  EXPECT_EQ(userVersion(file), 2);
  Keystore again = Keystore::open(state_);  // a second open finds nothing to do
  EXPECT_EQ(again.listCertificates().size(), 1u);
}

TEST_F(keystoreTest, RotationKeepsThePreviousKeyForTheGracePeriodOnly) {
  std::int64_t t = 1800000000;
  Keystore ks = Keystore::open(state_, [&t] { return t; });
  ASSERT_EQ(ks.add("node-1", key(16, 0x01)), AddResult::ok);
  EXPECT_EQ(ks.rotate("nobody", key(16, 2), std::chrono::seconds(60)).result, RotateResult::unknown);
  EXPECT_EQ(ks.rotate("node-1", key(15, 2), std::chrono::seconds(60)).result, RotateResult::invalid_key);

  const Rotation r = ks.rotate("node-1", key(32, 0x02), std::chrono::seconds(60));
  ASSERT_EQ(r.result, RotateResult::ok);
  EXPECT_EQ(r.generation, 2u);
  EXPECT_EQ(r.grace_until, t + 60);
  EXPECT_FALSE(r.dropped_previous);
  auto keys = ks.lookupKeys("node-1");
  ASSERT_TRUE(keys.has_value());
  EXPECT_EQ(bytesOf(keys->current.span()), std::vector<std::uint8_t>(32, 0x02));
  EXPECT_EQ(bytesOf(keys->previous.span()), std::vector<std::uint8_t>(16, 0x01));
  EXPECT_EQ(keys->generation, 2u);
  EXPECT_EQ(keys->grace_until, t + 60);
  EXPECT_EQ(bytesOf(ks.lookupPsk("node-1")->span()), std::vector<std::uint8_t>(32, 0x02));
  ASSERT_EQ(ks.rotations().size(), 1u);
  EXPECT_EQ(ks.rotations()[0].grace_until, t + 60);
  EXPECT_EQ(ks.list()[0].grace_until, t + 60);
  EXPECT_EQ(ks.purgeExpiredKeys(), 0u);  // not yet

  t += 59;
  EXPECT_FALSE(ks.lookupKeys("node-1")->previous.empty());
  t += 1;  // the grace ends at grace_until: the old key is refused from then on, purged or not
  keys = ks.lookupKeys("node-1");
  EXPECT_TRUE(keys->previous.empty());
  EXPECT_EQ(keys->generation, 2u);
  EXPECT_EQ(ks.rotations()[0].grace_until, t);  // still stored, until purged
  EXPECT_EQ(ks.purgeExpiredKeys(), 1u);
  EXPECT_FALSE(ks.rotations()[0].grace_until.has_value());
  EXPECT_EQ(ks.rotations()[0].generation, 2u);
  EXPECT_FALSE(ks.list()[0].grace_until.has_value());
  EXPECT_EQ(ks.purgeExpiredKeys(), 0u);

  // Rotating again within a grace period drops the older key at once.
  ASSERT_EQ(ks.rotate("node-1", key(16, 0x03), std::chrono::seconds(600)).result, RotateResult::ok);
  const Rotation again = ks.rotate("node-1", key(16, 0x04), std::chrono::seconds(600));
  EXPECT_TRUE(again.dropped_previous);
  EXPECT_EQ(again.generation, 4u);
  keys = ks.lookupKeys("node-1");
  EXPECT_EQ(bytesOf(keys->previous.span()), std::vector<std::uint8_t>(16, 0x03));
  // Grace 0: no previous key at all.
  const Rotation now_only = ks.rotate("node-1", key(16, 0x05), std::chrono::seconds(0));
  EXPECT_EQ(now_only.grace_until, t);
  EXPECT_TRUE(ks.lookupKeys("node-1")->previous.empty());
  EXPECT_FALSE(ks.rotations()[0].grace_until.has_value());
  // Revoked identities cannot rotate, and their keys are gone for the handshake.
  ASSERT_EQ(ks.revoke("node-1"), RevokeResult::ok);
  EXPECT_EQ(ks.rotate("node-1", key(16, 6), std::chrono::seconds(60)).result, RotateResult::revoked);
  EXPECT_FALSE(ks.lookupKeys("node-1").has_value());
  EXPECT_TRUE(ks.rotations().empty());
}

TEST_F(keystoreTest, PurgedKeysAreOverwrittenInTheFile) {
  std::int64_t t = 1800000000;
  const std::vector<std::uint8_t> old_key{'O', 'L', 'D', '-', 'K', 'E', 'Y', '-', 'M', 'A', 'R', 'K', 'E', 'R', '-', '1'};
  {
    Keystore ks = Keystore::open(state_, [&t] { return t; });
    ASSERT_EQ(ks.add("node-1", SecretBytes(old_key)), AddResult::ok);
    ASSERT_EQ(ks.rotate("node-1", key(16, 0x02), std::chrono::seconds(10)).result, RotateResult::ok);
    t += 10;
    ASSERT_EQ(ks.purgeExpiredKeys(), 1u);
  }  // the last connection checkpoints and removes the WAL
  for (const char* name : {"keystore.db", "keystore.db-wal"}) {
    std::ifstream in(state_ / name, std::ios::binary | std::ios::ate);
    std::string bytes(static_cast<std::size_t>(std::max<std::streamoff>(in.tellg(), 0)), '\0');
    in.seekg(0);
    in.read(bytes.data(), static_cast<std::streamsize>(bytes.size()));
    EXPECT_EQ(bytes.find(std::string(old_key.begin(), old_key.end())), std::string::npos) << name;
  }
}

TEST_F(keystoreTest, PurgeNeverWaitsForAnotherWriter) {
  std::int64_t t = 1800000000;
  Keystore ks = Keystore::open(state_, [&t] { return t; });
  ASSERT_EQ(ks.add("node-1", key(16, 1)), AddResult::ok);
  ASSERT_EQ(ks.rotate("node-1", key(16, 2), std::chrono::seconds(5)).result, RotateResult::ok);
  t += 5;
  sqlite3* other = nullptr;
  ASSERT_EQ(sqlite3_open((state_ / "keystore.db").c_str(), &other), SQLITE_OK);
  ASSERT_EQ(sqlite3_exec(other, "BEGIN IMMEDIATE", nullptr, nullptr, nullptr), SQLITE_OK);
  const auto started = std::chrono::steady_clock::now();
  EXPECT_FALSE(ks.purgeExpiredKeys().has_value());
  EXPECT_LT(std::chrono::steady_clock::now() - started, std::chrono::milliseconds(500));
  ASSERT_EQ(sqlite3_exec(other, "ROLLBACK", nullptr, nullptr, nullptr), SQLITE_OK);
  sqlite3_close(other);
  EXPECT_EQ(ks.purgeExpiredKeys(), 1u);
  // The usual timeout is back for everything else.
  EXPECT_EQ(ks.add("node-2", key(16, 3)), AddResult::ok);
}

TEST_F(keystoreTest, CertificatesAreRecordedListedAndRevoked) {
  std::int64_t t = 1800000000;
  Keystore ks = Keystore::open(state_, [&t] { return t; });
  const CertificateInfo a{"5a01", "dev-1", "client", "issued", 10, 20, 15, {}};
  const CertificateInfo b{"6b02", "dev-1", "client", "csr", 10, 20, 16, {}};
  const CertificateInfo c{"7c03", "gw", "server", "issued", 10, 20, 17, {}};
  EXPECT_EQ(ks.recordCertificate(a), CertAddResult::ok);
  EXPECT_EQ(ks.recordCertificate(b), CertAddResult::ok);
  EXPECT_EQ(ks.recordCertificate(c), CertAddResult::ok);
  EXPECT_EQ(ks.recordCertificate(a), CertAddResult::exists);
  EXPECT_EQ(ks.recordCertificate({"5A01", "dev-2", "client", "issued", 1, 2, 3, {}}), CertAddResult::invalid);
  EXPECT_EQ(ks.recordCertificate({"0005", "dev-2", "client", "issued", 1, 2, 3, {}}), CertAddResult::invalid);
  EXPECT_EQ(ks.recordCertificate({"05", "bad id", "client", "issued", 1, 2, 3, {}}), CertAddResult::invalid);
  EXPECT_EQ(ks.recordCertificate({"05", "dev-2", "root", "issued", 1, 2, 3, {}}), CertAddResult::invalid);

  auto all = ks.listCertificates();
  ASSERT_EQ(all.size(), 3u);
  EXPECT_EQ(all[0].serial, "5a01");
  EXPECT_EQ(all[1].origin, "csr");
  EXPECT_EQ(all[2].profile, "server");
  EXPECT_TRUE(ks.revokedCertificateSerials().empty());

  EXPECT_EQ(ks.revokeCertificate("7c03"), RevokeResult::ok);
  EXPECT_EQ(ks.revokeCertificate("7c03"), RevokeResult::already_revoked);
  EXPECT_EQ(ks.revokeCertificate("ffff"), RevokeResult::unknown);
  EXPECT_EQ(ks.revokedCertificateSerials(), std::vector<std::string>{"7c03"});

  const BulkRevoke bulk = ks.revokeCertificatesOf("dev-1");
  EXPECT_EQ(bulk.result, RevokeResult::ok);
  EXPECT_EQ(bulk.revoked, 2u);
  EXPECT_EQ(ks.revokeCertificatesOf("dev-1").result, RevokeResult::already_revoked);
  EXPECT_EQ(ks.revokeCertificatesOf("nobody").result, RevokeResult::unknown);
  EXPECT_EQ(ks.revokedCertificateSerials(), (std::vector<std::string>{"5a01", "6b02", "7c03"}));
  all = ks.listCertificates();
  for (const auto& cert : all) EXPECT_EQ(cert.revoked_at, t) << cert.serial;

  // Another connection (the agent) sees the revocation without reopening.
  Keystore agent = Keystore::open(state_);
  EXPECT_EQ(agent.revokedCertificateSerials().size(), 3u);
}

TEST(keystoreSerial, Normalization) {
  EXPECT_EQ(normalizeSerial("5A:0F:01"), "5a0f01");
  EXPECT_EQ(normalizeSerial("00:8f"), "8f");
  EXPECT_EQ(normalizeSerial("0008f"), "8f");
  EXPECT_EQ(normalizeSerial("f"), "0f");
  EXPECT_EQ(normalizeSerial("00"), "00");
  EXPECT_EQ(normalizeSerial(std::string(40, 'a')), std::string(40, 'a'));
  EXPECT_FALSE(normalizeSerial(std::string(42, 'a')).has_value());
  EXPECT_FALSE(normalizeSerial("").has_value());
  EXPECT_FALSE(normalizeSerial(":").has_value());
  EXPECT_FALSE(normalizeSerial("dev-1").has_value());
  EXPECT_FALSE(normalizeSerial("12 34").has_value());
}

TEST(keystoreGrace, OffersThePreviousKeyFirstThenFollowsOutcomes) {
  GraceKeyChooser chooser;
  // Nothing known: the key every device held when the rotation happened.
  EXPECT_EQ(chooser.choose("dev", 2, 1), 1u);
  // The previous key failed: the device has the new one; offer it next.
  chooser.record("dev", 1, false);
  EXPECT_EQ(chooser.choose("dev", 2, 1), 2u);
  // The new key worked: keep offering it.
  chooser.record("dev", 2, true);
  EXPECT_EQ(chooser.choose("dev", 2, 1), 2u);
  // The new key failed (a second device with the old key, or an attacker): try the old one next.
  chooser.record("dev", 2, false);
  EXPECT_EQ(chooser.choose("dev", 2, 1), 1u);
  chooser.record("dev", 1, true);
  EXPECT_EQ(chooser.choose("dev", 2, 1), 1u);
  // Outcomes about generations that are no longer the pair in question are ignored.
  EXPECT_EQ(chooser.choose("dev", 4, 3), 3u);
  // Identities are independent; pruning forgets.
  EXPECT_EQ(chooser.choose("other", 2, 1), 1u);
  chooser.record("other", 1, false);
  EXPECT_EQ(chooser.size(), 2u);
  chooser.prune([](const std::string& id) { return id == "other"; });
  EXPECT_EQ(chooser.size(), 1u);
  EXPECT_EQ(chooser.choose("dev", 2, 1), 1u);
  EXPECT_EQ(chooser.choose("other", 2, 1), 2u);
}

}  // namespace
}  // namespace coap_edge::keystore
