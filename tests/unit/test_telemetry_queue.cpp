#include "relay/telemetry_queue.h"

#include <gtest/gtest.h>
#include <signal.h>
#include <sqlite3.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <random>
#include <string>
#include <thread>
#include <vector>

namespace coap_edge::relay {
namespace {

namespace fs = std::filesystem;
using WhenFull = QueueLimits::WhenFull;

constexpr std::int64_t kNow = 1'700'000'000'000;  // unix ms

unsigned modeOf(const fs::path& p) {
  struct stat st {};
  if (::stat(p.c_str(), &st) != 0) return 0xFFFFFFFFu;
  return st.st_mode & 07777u;
}

TelemetryValue value(std::string node, int i, std::size_t payload_bytes = 0, std::int64_t time_ms = kNow) {
  TelemetryValue v;
  v.node = std::move(node);
  v.path = "sensors/temp";
  v.time_ms = time_ms + i;
  v.content_format = 0;
  v.payload = std::to_string(i);
  if (payload_bytes > v.payload.size()) v.payload.append(payload_bytes - v.payload.size(), 'x');
  return v;
}

std::vector<std::string> payloads(const std::vector<QueuedValue>& values) {
  std::vector<std::string> out;
  for (const auto& v : values) out.push_back(v.payload);
  return out;
}

std::vector<std::uint64_t> seqsOf(const std::vector<QueuedValue>& values) {
  std::vector<std::uint64_t> out;
  for (const auto& v : values) out.push_back(v.seq);
  return out;
}

class telemetryQueueTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string tmpl = (fs::temp_directory_path() / "coap-edge-queue-XXXXXX").string();
    ASSERT_NE(::mkdtemp(tmpl.data()), nullptr);
    root_ = tmpl;
    file_ = root_ / "telemetry.db";
  }
  void TearDown() override { fs::remove_all(root_); }

  [[nodiscard]] TelemetryQueue open(QueueLimits limits = {}) const { return TelemetryQueue::open(file_, limits); }

  fs::path root_;
  fs::path file_;
};

TEST_F(telemetryQueueTest, KeepsOrderAndEveryFieldAcrossReopen) {
  std::vector<TelemetryValue> batch;
  for (int i = 0; i < 5; ++i) batch.push_back(value(i % 2 ? "lamp-1" : "meter-2", i));
  batch[3].content_format = 42;
  batch[3].payload = std::string("\x00\xff\x01", 3);  // binary, with a NUL
  batch[4].payload.clear();
  {
    TelemetryQueue q = open();
    const PushResult r = q.push(batch, kNow);
    ASSERT_TRUE(r.ok()) << r.error;
    EXPECT_EQ(r.stored, 5u);
    ASSERT_EQ(r.seqs.size(), 5u);
    for (std::size_t i = 1; i < r.seqs.size(); ++i) EXPECT_GT(r.seqs[i], r.seqs[i - 1]);
  }
  TelemetryQueue q = open();
  const auto got = q.peek(100, 1 << 20);
  ASSERT_EQ(got.size(), 5u);
  for (std::size_t i = 0; i < got.size(); ++i) {
    EXPECT_EQ(static_cast<const TelemetryValue&>(got[i]), batch[i]) << i;
  }
}

TEST_F(telemetryQueueTest, FileIsPrivateWhateverTheUmaskAndWalIsOn) {
  const mode_t old = ::umask(0);
  {
    TelemetryQueue q = open();
    ASSERT_TRUE(q.push({value("n", 1)}, kNow).ok());
    EXPECT_EQ(modeOf(file_), 0600u);
    ASSERT_TRUE(fs::exists(file_.string() + "-wal"));
    EXPECT_EQ(modeOf(file_.string() + "-wal"), 0600u);
  }
  ::umask(old);
  ASSERT_EQ(::chmod(file_.c_str(), 0644), 0);
  (void)open();
  EXPECT_EQ(modeOf(file_), 0600u);
}

TEST_F(telemetryQueueTest, OpenErrorsNameTheFile) {
  const fs::path missing = root_ / "no-such-dir" / "q.db";
  try {
    (void)TelemetryQueue::open(missing, {});
    FAIL() << "expected an exception";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find(missing.string()), std::string::npos) << e.what();
  }
  // Someone else's SQLite file (say, the keystore by a typo) is refused and left untouched.
  const fs::path other = root_ / "other.db";
  sqlite3* db = nullptr;
  ASSERT_EQ(sqlite3_open(other.c_str(), &db), SQLITE_OK);
  ASSERT_EQ(sqlite3_exec(db, "CREATE TABLE identities (x); PRAGMA user_version = 2", nullptr, nullptr, nullptr),
            SQLITE_OK);
  sqlite3_close(db);
  try {
    (void)TelemetryQueue::open(other, {});
    FAIL() << "expected an exception";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find("not a coap-edge telemetry queue"), std::string::npos) << e.what();
  }
  // Not a database at all.
  std::ofstream(root_ / "junk.db") << std::string(4096, 'j');
  EXPECT_THROW((void)TelemetryQueue::open(root_ / "junk.db", {}), std::runtime_error);
}

TEST_F(telemetryQueueTest, PeekIsOldestFirstAndBoundedButNeverStuck) {
  TelemetryQueue q = open();
  std::vector<TelemetryValue> batch;
  for (int i = 0; i < 10; ++i) batch.push_back(value("n", i, 10));  // 1 + 12 + 10 = 23 bytes each
  ASSERT_TRUE(q.push(batch, kNow).ok());
  EXPECT_EQ(payloads(q.peek(3, 1 << 20)), (std::vector<std::string>{"0xxxxxxxxx", "1xxxxxxxxx", "2xxxxxxxxx"}));
  EXPECT_EQ(q.peek(100, 23 * 4).size(), 4u);
  EXPECT_EQ(q.peek(100, 23 * 4 + 22).size(), 4u);
  // A byte budget smaller than the first value still yields it: an oversize value cannot block.
  EXPECT_EQ(q.peek(100, 1).size(), 1u);
  EXPECT_TRUE(q.peek(0, 1 << 20).empty());
  EXPECT_EQ(q.stats().depth, 10u);  // peek removes nothing
}

TEST_F(telemetryQueueTest, AckRemovesExactlyTheAcked) {
  TelemetryQueue q = open();
  std::vector<TelemetryValue> batch;
  for (int i = 0; i < 6; ++i) batch.push_back(value("n", i));
  const PushResult r = q.push(batch, kNow);
  ASSERT_TRUE(r.ok());
  // Out of order, with a duplicate and unknown seqs: only the known ones go.
  ASSERT_TRUE(q.ack({r.seqs[4], r.seqs[1], r.seqs[1], 999999, 0}));
  EXPECT_EQ(payloads(q.peek(100, 1 << 20)), (std::vector<std::string>{"0", "2", "3", "5"}));
  const auto s = q.stats();
  EXPECT_EQ(s.depth, 4u);
  EXPECT_EQ(s.acked, 2u);
  EXPECT_EQ(s.bytes, 4u * (1 + 12 + 1));
  ASSERT_TRUE(q.ack({}));
}

TEST_F(telemetryQueueTest, SeqIsNeverReusedSoAStaleAckCannotRemoveANewValue) {
  std::uint64_t old_seq = 0;
  {
    TelemetryQueue q = open();
    const PushResult r = q.push({value("n", 1)}, kNow);
    old_seq = r.seqs[0];
    ASSERT_TRUE(q.ack(r.seqs));
    EXPECT_EQ(q.stats().depth, 0u);
  }
  TelemetryQueue q = open();  // empty queue, reopened: the counter still goes on
  const PushResult r = q.push({value("n", 2)}, kNow);
  EXPECT_GT(r.seqs[0], old_seq);
  ASSERT_TRUE(q.ack({old_seq}));  // the upstream repeats an old ack
  EXPECT_EQ(q.stats().depth, 1u);
}

TEST_F(telemetryQueueTest, DropOldestKeepsTheNewestAndCountsWhatWent) {
  QueueLimits limits;
  limits.max_bytes = 5 * 23;
  limits.when_full = WhenFull::drop_oldest;
  TelemetryQueue q = open(limits);
  std::vector<TelemetryValue> first;
  for (int i = 0; i < 4; ++i) first.push_back(value(i % 2 ? "a" : "b", i, 10));
  ASSERT_TRUE(q.push(first, kNow).ok());
  std::vector<TelemetryValue> second;
  for (int i = 4; i < 7; ++i) second.push_back(value("a", i, 10));
  const PushResult r = q.push(second, kNow);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r.stored, 3u);
  EXPECT_EQ(r.dropped_oldest, 2u);
  EXPECT_EQ(r.refused, 0u);
  const auto got = q.peek(100, 1 << 20);
  EXPECT_EQ(payloads(got), (std::vector<std::string>{"2xxxxxxxxx", "3xxxxxxxxx", "4xxxxxxxxx", "5xxxxxxxxx",
                                                     "6xxxxxxxxx"}));
  const auto s = q.stats();
  EXPECT_EQ(s.depth, 5u);
  EXPECT_EQ(s.bytes, 5u * 23);
  EXPECT_EQ(s.dropped_full, 2u);
  EXPECT_EQ(s.pushed, 7u);

  // A batch larger than the whole queue keeps its own newest values.
  std::vector<TelemetryValue> big;
  for (int i = 10; i < 17; ++i) big.push_back(value("c", i, 10));
  const PushResult r2 = q.push(big, kNow);
  EXPECT_EQ(r2.stored, 5u);
  EXPECT_EQ(r2.dropped_oldest, 5u + 2u);  // the 5 queued and the batch's own 2 oldest
  EXPECT_EQ(r2.seqs[0], 0u);
  EXPECT_EQ(r2.seqs[1], 0u);
  EXPECT_NE(r2.seqs[2], 0u);
  EXPECT_EQ(payloads(q.peek(100, 1 << 20)).front(), "12xxxxxxxx");
}

TEST_F(telemetryQueueTest, DropNewestRefusesFromTheFirstThatDoesNotFit) {
  QueueLimits limits;
  limits.max_bytes = 3 * 23 + 14;  // value 4 alone would still fit
  limits.when_full = WhenFull::drop_newest;
  TelemetryQueue q = open(limits);
  std::vector<TelemetryValue> batch;
  for (int i = 0; i < 3; ++i) batch.push_back(value("n", i, 10));
  batch.push_back(value("n", 3, 10));
  batch.push_back(value("n", 4, 0));  // 14 bytes, small: would fit, but must not skip value 3
  const PushResult r = q.push(batch, kNow);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r.stored, 3u);
  EXPECT_EQ(r.refused, 2u);
  EXPECT_EQ(r.seqs[3], 0u);
  EXPECT_EQ(r.seqs[4], 0u);
  EXPECT_EQ(payloads(q.peek(100, 1 << 20)), (std::vector<std::string>{"0xxxxxxxxx", "1xxxxxxxxx", "2xxxxxxxxx"}));
  EXPECT_EQ(q.stats().refused_full, 2u);
  EXPECT_EQ(q.stats().dropped_full, 0u);
  // Room again after an ack.
  ASSERT_TRUE(q.ack({q.peek(1, 1 << 20).front().seq}));
  EXPECT_EQ(q.push({value("n", 9, 10)}, kNow).stored, 1u);
}

TEST_F(telemetryQueueTest, AValueLargerThanTheQueueIsRefusedInBothModes) {
  for (const WhenFull mode : {WhenFull::drop_oldest, WhenFull::drop_newest}) {
    fs::remove(file_);
    QueueLimits limits;
    limits.max_bytes = 100;
    limits.when_full = mode;
    TelemetryQueue q = open(limits);
    const PushResult r = q.push({value("n", 1), value("n", 2, 200), value("n", 3)}, kNow);
    ASSERT_TRUE(r.ok());
    EXPECT_EQ(r.stored, 2u);
    EXPECT_EQ(r.refused, 1u);
    EXPECT_EQ(r.dropped_oldest, 0u);
    EXPECT_EQ(payloads(q.peek(10, 1000)), (std::vector<std::string>{"1", "3"}));
    EXPECT_EQ(q.stats().refused_full, 1u);
  }
}

TEST_F(telemetryQueueTest, ExpireDropsOnlyValuesPastMaxAge) {
  QueueLimits limits;
  limits.max_age = std::chrono::seconds(60);
  TelemetryQueue q = open(limits);
  const PushResult r = q.push({value("n", 0, 0, kNow - 61'000), value("n", 0, 0, kNow - 60'000),
                               value("n", 0, 0, kNow - 1'000), value("n", 0, 0, kNow)},
                              kNow);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(q.stats().oldest_ms, kNow - 61'000);
  EXPECT_EQ(q.expire(kNow), 1u);  // exactly 60 s old is not older than max_age
  EXPECT_EQ(q.stats().oldest_ms, kNow - 60'000);
  EXPECT_EQ(q.expire(kNow + 1), 1u);
  EXPECT_EQ(q.expire(kNow + 1), 0u);
  const auto s = q.stats();
  EXPECT_EQ(s.expired, 2u);
  EXPECT_EQ(s.depth, 2u);
  EXPECT_EQ(q.expire(kNow + 3'600'000), 2u);
  EXPECT_EQ(q.stats().oldest_ms, std::nullopt);
  EXPECT_EQ(q.stats().bytes, 0u);
}

TEST_F(telemetryQueueTest, WhenFullExpiredValuesGoBeforeValidOnes) {
  QueueLimits limits;
  limits.max_bytes = 3 * 14;
  limits.max_age = std::chrono::seconds(60);
  TelemetryQueue q = open(limits);
  ASSERT_TRUE(q.push({value("n", 1, 0, kNow), value("n", 2, 0, kNow - 120'000), value("n", 3, 0, kNow)}, kNow).ok());
  const PushResult r = q.push({value("n", 4, 0, kNow)}, kNow);
  EXPECT_EQ(r.dropped_oldest, 0u);
  EXPECT_EQ(payloads(q.peek(10, 1000)), (std::vector<std::string>{"1", "3", "4"}));
  EXPECT_EQ(q.stats().expired, 1u);
}

TEST_F(telemetryQueueTest, StatsAreRightAfterReopen) {
  std::uint64_t bytes = 0;
  {
    TelemetryQueue q = open();
    std::vector<TelemetryValue> batch;
    for (int i = 0; i < 50; ++i) batch.push_back(value("node-" + std::to_string(i % 3), i, static_cast<std::size_t>(i)));
    ASSERT_TRUE(q.push(batch, kNow).ok());
    ASSERT_TRUE(q.ack({q.peek(1, 1 << 20).front().seq}));
    bytes = q.stats().bytes;
  }
  TelemetryQueue q = open();
  const auto s = q.stats();
  EXPECT_EQ(s.depth, 49u);
  EXPECT_EQ(s.bytes, bytes);
  EXPECT_EQ(s.oldest_ms, kNow + 1);
  EXPECT_EQ(s.pushed, 0u);  // counters are since open
  std::uint64_t sum = 0;
  for (const auto& v : q.peek(1000, 1 << 20)) sum += v.node.size() + v.path.size() + v.payload.size();
  EXPECT_EQ(sum, bytes);
}

TEST_F(telemetryQueueTest, MovedQueueKeepsWorking) {
  TelemetryQueue a = open();
  ASSERT_TRUE(a.push({value("n", 1)}, kNow).ok());
  TelemetryQueue b = std::move(a);
  ASSERT_TRUE(b.push({value("n", 2)}, kNow).ok());
  EXPECT_EQ(b.stats().depth, 2u);
}

TEST_F(telemetryQueueTest, StorageErrorsAreValuesAndCounted) {
  TelemetryQueue q = open();
  ASSERT_TRUE(q.push({value("n", 1)}, kNow).ok());
  // Another connection holds the write lock past busy_timeout: the push fails, nothing changes.
  sqlite3* other = nullptr;
  ASSERT_EQ(sqlite3_open(file_.c_str(), &other), SQLITE_OK);
  ASSERT_EQ(sqlite3_exec(other, "BEGIN IMMEDIATE", nullptr, nullptr, nullptr), SQLITE_OK);
  const PushResult r = q.push({value("n", 2)}, kNow);
  EXPECT_FALSE(r.ok());
  EXPECT_EQ(r.stored, 0u);
  EXPECT_EQ(r.seqs, (std::vector<std::uint64_t>{0}));
  EXPECT_FALSE(q.ack({1}));
  const auto s = q.stats();
  EXPECT_EQ(s.errors, 2u);
  EXPECT_EQ(s.depth, 1u);
  EXPECT_FALSE(q.lastError().empty());
  sqlite3_exec(other, "ROLLBACK", nullptr, nullptr, nullptr);
  sqlite3_close(other);
  EXPECT_TRUE(q.push({value("n", 3)}, kNow).ok());
  EXPECT_EQ(payloads(q.peek(10, 1000)), (std::vector<std::string>{"1", "3"}));
}

// Writes all of `bytes` or dies: the child has nothing better to do.
void writeAll(int fd, const void* bytes, std::size_t n) {
  const auto* p = static_cast<const char*>(bytes);
  while (n > 0) {
    const ssize_t w = ::write(fd, p, n);
    if (w <= 0) ::_exit(3);
    p += w;
    n -= static_cast<std::size_t>(w);
  }
}

// kill -9 at a random point while a child pushes: every value whose commit the child saw
// (push() returned) is in the file after reopening, in order, and nothing was made up.
TEST_F(telemetryQueueTest, SurvivesKill9WithEveryCommittedValueInOrder) {
  std::random_device rd;
  std::mt19937 rng(rd());
  for (int round = 0; round < 3; ++round) {
    fs::remove(file_);
    fs::remove(file_.string() + "-wal");
    fs::remove(file_.string() + "-shm");
    int fds[2];
    ASSERT_EQ(::pipe(fds), 0);
    const pid_t child = ::fork();
    ASSERT_GE(child, 0);
    if (child == 0) {
      ::close(fds[0]);
      try {
        QueueLimits limits;
        limits.synchronous_full = (round % 2) == 0;
        TelemetryQueue q = TelemetryQueue::open(file_, limits);
        for (int i = 0; i < 100000; ++i) {
          std::vector<TelemetryValue> batch{value("n" + std::to_string(i % 4), 2 * i), value("m", 2 * i + 1)};
          const PushResult r = q.push(batch, kNow);
          if (!r.ok()) ::_exit(2);
          writeAll(fds[1], r.seqs.data(), r.seqs.size() * sizeof(std::uint64_t));
        }
      } catch (...) {
        ::_exit(4);
      }
      ::_exit(0);
    }
    ::close(fds[1]);
    // Read what the child reports for a random while, then kill it without warning.
    std::vector<std::uint64_t> committed;
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(50 + rng() % 400);
    std::uint64_t seq = 0;
    std::size_t have = 0;
    while (std::chrono::steady_clock::now() < deadline) {
      const ssize_t n = ::read(fds[0], reinterpret_cast<char*>(&seq) + have, sizeof seq - have);
      if (n <= 0) break;
      have += static_cast<std::size_t>(n);
      if (have == sizeof seq) {
        committed.push_back(seq);
        have = 0;
      }
    }
    ASSERT_EQ(::kill(child, SIGKILL), 0);
    int status = 0;
    ASSERT_EQ(::waitpid(child, &status, 0), child);
    // Reports already in the pipe were committed too.
    for (ssize_t n; (n = ::read(fds[0], reinterpret_cast<char*>(&seq) + have, sizeof seq - have)) > 0;) {
      have += static_cast<std::size_t>(n);
      if (have == sizeof seq) {
        committed.push_back(seq);
        have = 0;
      }
    }
    ::close(fds[0]);
    ASSERT_TRUE(WIFSIGNALED(status)) << "child ended by itself, status " << status;
    ASSERT_FALSE(committed.empty()) << "the child committed nothing before the kill";

    TelemetryQueue q = open();
    const auto got = q.peek(1'000'000, std::size_t{1} << 30);
    ASSERT_GE(got.size(), committed.size());
    const auto seqs = seqsOf(got);
    // Every committed seq is there, at the place its push gave it, and the values are the ones
    // that were pushed (payload i for seq i: the child pushed 2 values per batch from seq 1).
    for (std::size_t i = 0; i < committed.size(); ++i) ASSERT_EQ(seqs[i], committed[i]) << i;
    for (std::size_t i = 0; i < got.size(); ++i) {
      ASSERT_EQ(got[i].seq, i + 1);
      ASSERT_EQ(got[i].payload, std::to_string(i));
    }
    EXPECT_EQ(q.stats().depth, got.size());
  }
}

}  // namespace
}  // namespace coap_edge::relay
