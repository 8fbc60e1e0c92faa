// The neighbour table read from the real kernel over rtnetlink: the machine's own table, and a
// peer's MAC for its IPv4 and IPv6 addresses in two network namespaces the test creates and
// removes. Integration (not unit): it needs the real kernel and root, which the arm64 unit
// tests under qemu-user do not have (qemu translates no rtnetlink neighbour dumps).

#include "discovery/neighbors.h"
#include "process.h"
#include <arpa/inet.h>
#include <fcntl.h>
#include <fmt/format.h>
#include <gtest/gtest.h>
#include <linux/neighbour.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <net/if.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <initializer_list>
#include <map>
#include <regex>
#include <string>
#include <vector>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <map>
#include <regex>
#include <string>
#include <vector>

namespace coap_edge::discovery {
namespace {

TEST(NeighborTableRead, ReadsTheHostTable) {
  const NeighborTable table = NeighborTable::read();
  EXPECT_EQ(table.error(), "");
  for (const NeighborEntry& e : table.entries()) {
    EXPECT_TRUE(e.family == AF_INET || e.family == AF_INET6);
    EXPECT_FALSE(e.link_address.empty());
  }
}

// ---------------------------------------------------------------- real kernel, two namespaces

test::RunResult runChecked(const std::vector<std::string>& argv) {
  test::RunResult r = test::run(argv, std::chrono::seconds(15));
  std::string line;
  for (const std::string& arg : argv) line += arg + " ";
  EXPECT_EQ(r.exit_code, 0) << line << "\n" << r.out << r.err;
  return r;
}

/// Runs NeighborTable::read() in namespace `ns` in a forked child and returns, for each host,
/// the answer ("-" for none), plus "size" and "error".
std::map<std::string, std::string> lookupInNamespace(const std::string& ns, const std::vector<std::string>& hosts) {
  int out[2];
  if (pipe2(out, O_CLOEXEC) != 0) return {};
  const pid_t pid = fork();
  if (pid < 0) return {};
  if (pid == 0) {
    close(out[0]);
    std::string report;
    const int ns_fd = open(("/run/netns/" + ns).c_str(), O_RDONLY | O_CLOEXEC);
    if (ns_fd < 0 || setns(ns_fd, CLONE_NEWNET) != 0) {
      report = fmt::format("error\tsetns: {}\n", std::strerror(errno));
    } else {
      const NeighborTable table = NeighborTable::read();
      report = fmt::format("size\t{}\nerror\t{}\n", table.size(), table.error());
      for (const std::string& host : hosts) {
        report += fmt::format("{}\t{}\n", host, table.linkAddress(host).value_or("-"));
      }
    }
    std::size_t written = 0;
    while (written < report.size()) {
      const ssize_t n = write(out[1], report.data() + written, report.size() - written);
      if (n <= 0) break;
      written += static_cast<std::size_t>(n);
    }
    _exit(0);
  }
  close(out[1]);
  std::string text;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (std::chrono::steady_clock::now() < deadline) {
    pollfd pfd{out[0], POLLIN, 0};
    if (poll(&pfd, 1, 1000) <= 0) continue;
    char buf[4096];
    const ssize_t n = read(out[0], buf, sizeof buf);
    if (n <= 0) break;
    text.append(buf, static_cast<std::size_t>(n));
  }
  close(out[0]);
  kill(pid, SIGKILL);  // no-op once it has exited; ends a child stuck past the deadline
  waitpid(pid, nullptr, 0);

  std::map<std::string, std::string> answers;
  std::size_t start = 0;
  while (start < text.size()) {
    const std::size_t end = std::min(text.find('\n', start), text.size());
    const std::string line = text.substr(start, end - start);
    if (const auto tab = line.find('\t'); tab != std::string::npos) answers[line.substr(0, tab)] = line.substr(tab + 1);
    start = end + 1;
  }
  return answers;
}

class NeighborTableInNamespace : public ::testing::Test {
 protected:
  void SetUp() override {
    if (geteuid() != 0) GTEST_SKIP() << "needs root to create network namespaces";
    const int pid = getpid();
    ns_a_ = fmt::format("coap-edge-neigh-a-{}", pid);
    ns_b_ = fmt::format("coap-edge-neigh-b-{}", pid);
    if_a_ = fmt::format("cena{}", pid);
    if_b_ = fmt::format("cenb{}", pid);
    created_ = true;
    runChecked({"ip", "netns", "add", ns_a_});
    runChecked({"ip", "netns", "add", ns_b_});
    runChecked({"ip", "-n", ns_a_, "link", "add", if_a_, "type", "veth", "peer", "name", if_b_, "netns", ns_b_});
    // Fixed link-local addresses without DAD: nothing waits for duplicate detection.
    for (const auto& [ns, dev, v4, v6, ll] :
         {std::tuple{ns_a_, if_a_, "10.253.7.1/24", "fd00:ce:7::1/64", "fe80::ce:1/64"},
          std::tuple{ns_b_, if_b_, "10.253.7.2/24", "fd00:ce:7::2/64", "fe80::ce:2/64"}}) {
      runChecked({"ip", "-n", ns, "link", "set", "dev", dev, "addrgenmode", "none"});
      runChecked({"ip", "-n", ns, "addr", "add", v4, "dev", dev});
      runChecked({"ip", "-n", ns, "addr", "add", v6, "dev", dev, "nodad"});
      runChecked({"ip", "-n", ns, "addr", "add", ll, "dev", dev, "nodad"});
      runChecked({"ip", "-n", ns, "link", "set", "dev", dev, "up"});
    }
  }

  void TearDown() override {
    if (!created_) return;
    test::run({"ip", "netns", "del", ns_a_}, std::chrono::seconds(15));  // takes the veth pair along
    test::run({"ip", "netns", "del", ns_b_}, std::chrono::seconds(15));
  }

  std::string peerMac() {
    const test::RunResult r = runChecked({"ip", "-n", ns_b_, "link", "show", "dev", if_b_});
    std::smatch m;
    if (!std::regex_search(r.out, m, std::regex("link/ether ([0-9a-f:]{17})"))) return "";
    return m[1];
  }

  void ping(const std::vector<std::string>& args) {
    std::vector<std::string> argv{"ip", "netns", "exec", ns_a_, "ping", "-c1", "-W3"};
    argv.insert(argv.end(), args.begin(), args.end());
    runChecked(argv);
  }

  std::string ns_a_, ns_b_, if_a_, if_b_;
  bool created_ = false;
};

TEST_F(NeighborTableInNamespace, PeerMacForItsIPv4AndIPv6Addresses) {
  ASSERT_FALSE(HasFailure());
  const std::string mac = peerMac();
  ASSERT_FALSE(mac.empty());
  ping({"10.253.7.2"});
  ping({"-6", "fd00:ce:7::2"});
  ping({"-6", "fe80::ce:2%" + if_a_});
  ASSERT_FALSE(HasFailure());

  const std::vector<std::string> hosts{"10.253.7.2", "::ffff:10.253.7.2", "fd00:ce:7::2", "fe80::ce:2%" + if_a_,
                                       "fe80::ce:2", "fe80::ce:2%lo",     "10.253.7.3",   "fd00:ce:7::3"};
  auto answers = lookupInNamespace(ns_a_, hosts);
  EXPECT_EQ(answers["error"], "");
  EXPECT_GE(std::stoul(answers.count("size") != 0 ? answers["size"] : "0"), 3U);
  EXPECT_EQ(answers["10.253.7.2"], mac);
  EXPECT_EQ(answers["::ffff:10.253.7.2"], mac);
  EXPECT_EQ(answers["fd00:ce:7::2"], mac);
  EXPECT_EQ(answers["fe80::ce:2%" + if_a_], mac);
  EXPECT_EQ(answers["fe80::ce:2"], mac);  // only one link knows it
  EXPECT_EQ(answers["fe80::ce:2%lo"], "-");
  EXPECT_EQ(answers["10.253.7.3"], "-");   // never contacted
  EXPECT_EQ(answers["fd00:ce:7::3"], "-");
}

}  // namespace
}  // namespace coap_edge::discovery
