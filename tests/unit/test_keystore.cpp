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
  EXPECT_EQ(version, 1);
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

}  // namespace
}  // namespace coap_edge::keystore
