// Key material never leaves the keystore: not in the agent's log at the most verbose level,
// not in coap-edge-ctl's diagnostics, not on any command line, not in other files.

#include "coap_clients.h"

#include <gtest/gtest.h>

#include <dirent.h>

#include <thread>

namespace coap_edge::test {
namespace {

using namespace std::chrono_literals;

constexpr const char* kKey = "Zq7-very-secret-psk-bytes";  // printable: Debian's clients take -k as text


std::string allCommandLines() {
  std::string all;
  DIR* proc = opendir("/proc");
  if (proc == nullptr) return all;
  while (dirent* e = readdir(proc)) {
    if (e->d_name[0] < '0' || e->d_name[0] > '9') continue;
    all += readFile(std::string("/proc/") + e->d_name + "/cmdline") + "\n";
  }
  closedir(proc);
  return all;
}

TEST(Secrets, NeverInLogsArgvOrFilesAtDebugLevel) {
  TempDir dir;
  const auto port = freeUdpPort();
  const std::string config = baseConfig(dir, port);
  std::string debug_config = config;
  debug_config.replace(debug_config.find("log_level = \"info\""), 18, "log_level = \"debug\"");
  AgentUnderTest agent(dir, debug_config);
  ASSERT_TRUE(agent.ready()) << agent.log();

  const auto imp = ctl(agent.configFile(), {"keys", "import", "-"}, "dev-s," + hexOf(kKey) + "\n");
  ASSERT_EQ(imp.exit_code, 0) << imp.err;
  // A generated key: ctl prints it once on stdout, and nowhere else.
  const auto added = ctl(agent.configFile(), {"keys", "add", "dev-gen"});
  ASSERT_EQ(added.exit_code, 0) << added.err;
  const auto hex_pos = added.out.find("hex: ");
  ASSERT_NE(hex_pos, std::string::npos) << added.out;
  const std::string generated_hex = added.out.substr(hex_pos + 5, 32);

  // A good handshake, a failed one, and a revocation, all logged at debug level.
  Child observer({kOpensslClient, "-B", "20", "-s", "20", "-u", "dev-s", "-k", kKey, coapsUri(port, "status")}, {},
                 (dir / "obs.err").string(), (dir / "obs.out").string());
  ASSERT_TRUE(agent.waitForLog("session established: 'dev-s'")) << agent.log();
  const std::string argv_snapshot = allCommandLines();
  pskGet(kGnutlsClient, port, "dev-gen", "wrong-key-wrong-key-1", ".well-known/core", 2);
  const auto listed = ctl(agent.configFile(), {"keys", "list", "--json"});
  ASSERT_EQ(ctl(agent.configFile(), {"keys", "revoke", "dev-s"}).exit_code, 0);
  observer.wait(10s);
  ASSERT_TRUE(agent.stop().has_value());

  const std::string log = agent.log();
  ASSERT_NE(log.find("debug"), std::string::npos) << "the agent did not log at debug level";
  for (const std::string& secret : {std::string(kKey), hexOf(kKey), generated_hex}) {
    EXPECT_EQ(log.find(secret), std::string::npos) << "key material in the agent's log";
    EXPECT_EQ(imp.err.find(secret), std::string::npos);
    EXPECT_EQ(listed.out.find(secret), std::string::npos) << "keys list shows a key";
    EXPECT_EQ(added.err.find(secret), std::string::npos);
  }
  // The only processes holding the key on their command line are the test's own clients (Debian's
  // 4.3.1 client has no other way to take a PSK); never the agent or coap-edge-ctl.
  for (const auto& line : {agentBinary(), ctlBinary()}) {
    const auto at = argv_snapshot.find(line);
    if (at == std::string::npos) continue;
    const auto end = argv_snapshot.find('\n', at);
    EXPECT_EQ(argv_snapshot.substr(at, end - at).find(kKey), std::string::npos);
  }
  // Files in the state directory other than the keystore do not contain keys.
  for (const auto& entry : std::filesystem::directory_iterator(dir / "state")) {
    if (entry.path().filename().string().starts_with("keystore.db")) continue;
    const std::string content = readFile(entry.path());
    EXPECT_EQ(content.find(kKey), std::string::npos) << entry.path();
  }
}

}  // namespace
}  // namespace coap_edge::test
