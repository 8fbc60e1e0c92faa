// The agent as an operator runs it: --version, --check-config, systemd notifications, SIGHUP
// reload without dropping sessions, SIGTERM drain with exit 0, secure default listeners.

#include "coap_clients.h"

#include <gtest/gtest.h>

#include <csignal>
#include <thread>

namespace coap_edge::test {
namespace {

using namespace std::chrono_literals;

TEST(AgentCli, VersionNamesTheStackItRunsOn) {
  const auto r = run({agentBinary(), "--version"});
  EXPECT_EQ(r.exit_code, 0);
  EXPECT_NE(r.out.find("libcoap 4.3.5"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("Mbed TLS 3.6.7"), std::string::npos) << r.out;
}

TEST(AgentCli, CheckConfigAcceptsAValidFile) {
  TempDir dir;
  writeFile(dir / "ok.toml", baseConfig(dir, 5684));
  const auto r = run({agentBinary(), "--config", (dir / "ok.toml").string(), "--check-config"});
  EXPECT_EQ(r.exit_code, 0) << r.err;
}

TEST(AgentCli, CheckConfigNamesFileLineAndColumnOfATypo) {
  TempDir dir;
  const auto file = dir / "typo.toml";
  writeFile(file, "[agent]\nname = \"gw\"\n[downstream]\nlistn = [\"127.0.0.1:5684\"]\n");
  const auto r = run({agentBinary(), "--config", file.string(), "--check-config"});
  EXPECT_EQ(r.exit_code, 78);
  EXPECT_NE(r.err.find(file.string() + ":4:1: "), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("listn"), std::string::npos) << r.err;
}

TEST(AgentCli, CheckConfigRejectsACertificateThatDoesNotLoad) {
  TempDir dir;
  const auto file = dir / "x509.toml";
  writeFile(dir / "garbage.pem", "not a certificate\n");
  writeFile(file, baseConfig(dir, 5684, "certificate = \"garbage.pem\"\nprivate_key = \"garbage.pem\"\nca = \"garbage.pem\"\n"));
  const auto r = run({agentBinary(), "--config", file.string(), "--check-config"});
  EXPECT_EQ(r.exit_code, 78);
  EXPECT_NE(r.err.find(file.string() + ":7:15: cannot load certificate"), std::string::npos) << r.err;
}

TEST(AgentCli, StartupWithAnUnusableListenAddressExits78AndNamesTheLine) {
  TempDir dir;
  const auto file = dir / "bad.toml";
  // 192.0.2.1 (TEST-NET-1) is not configured here: bind fails with EADDRNOTAVAIL, nothing is sent.
  writeFile(file, "[agent]\nstate_dir = \"" + (dir / "state").string() + "\"\n[downstream]\nlisten = [\"192.0.2.1:5684\"]\n");
  const auto r = run({agentBinary(), "--config", file.string()}, 15s);
  EXPECT_EQ(r.exit_code, 78) << r.err;
  EXPECT_NE(r.err.find(file.string() + ":4:11: cannot listen on 192.0.2.1:5684"), std::string::npos) << r.err;
}

TEST(AgentLifecycle, WithoutListenAddressesItBindsLoopbackOnly) {
  TempDir dir;
  const std::string config = "[agent]\nstate_dir = \"" + (dir / "state").string() + "\"\n";
  if (!udpPortFree("127.0.0.1", 5684)) {
    // Something else (a developer's agent) holds the default port: the agent must say so and
    // stop, not run without an endpoint.
    writeFile(dir / "agent.toml", config);
    const auto r = run({agentBinary(), "--config", (dir / "agent.toml").string()}, 15s);
    EXPECT_EQ(r.exit_code, 78) << r.err;
    EXPECT_NE(r.err.find("cannot listen on 127.0.0.1:5684 (coaps): Address already in use"), std::string::npos)
        << r.err;
    return;
  }
  AgentUnderTest agent(dir, config);
  ASSERT_TRUE(agent.ready()) << agent.log();
  const auto log = agent.log();
  EXPECT_NE(log.find("ready on 127.0.0.1:5684"), std::string::npos) << log;
  EXPECT_EQ(log.find("0.0.0.0"), std::string::npos) << log;
}

TEST(AgentLifecycle, BothWildcardFamiliesOnOnePortAsInTheDesignExample) {
  TempDir dir;
  const auto port = std::to_string(freeUdpPort());
  // DESIGN.md's listen = ["0.0.0.0:5684", "[::]:5684"]: one agent on both families.
  AgentUnderTest agent(dir, "[agent]\nstate_dir = \"" + (dir / "state").string() + "\"\n[downstream]\nlisten = [\"0.0.0.0:" +
                                port + "\", \"[::]:" + port + "\"]\n[[acl]]\nidentity = \"*\"\nallow = [\"GET /status\"]\n");
  ASSERT_TRUE(agent.ready()) << agent.log();
  ASSERT_EQ(ctl(agent.configFile(), {"keys", "import", "-"}, "dev-w," + hexOf("dev-w-secret-key-1") + "\n").exit_code, 0);
  const auto r = pskGet(kGnutlsClient, static_cast<std::uint16_t>(std::stoi(port)), "dev-w", "dev-w-secret-key-1", "status");
  EXPECT_NE(r.out.find("\"psk\":1"), std::string::npos) << r.out << r.err << agent.log();
}

TEST(AgentLifecycle, SigtermDrainsAndExitsZero) {
  TempDir dir;
  AgentUnderTest agent(dir, baseConfig(dir, freeUdpPort()));
  ASSERT_TRUE(agent.ready()) << agent.log();
  agent.signal(SIGTERM);
  EXPECT_TRUE(agent.waitNotify("STOPPING=1", 5s));
  EXPECT_EQ(agent.stop(), std::optional<int>(0)) << agent.log();
  EXPECT_NE(agent.log().find("stopped"), std::string::npos);
}

TEST(AgentLifecycle, FeedsTheSystemdWatchdog) {
  TempDir dir;
  // What systemd sets for WatchdogSec=0.4s: the agent must ping at least every 0.4 s.
  AgentUnderTest agent(dir, baseConfig(dir, freeUdpPort()), {{"WATCHDOG_USEC", "400000"}});
  ASSERT_TRUE(agent.ready()) << agent.log();
  EXPECT_TRUE(agent.waitNotify("WATCHDOG=1", 2s));
  EXPECT_TRUE(agent.waitNotify("WATCHDOG=1", 2s));
}

TEST(AgentLifecycle, SighupReloadsLimitsWithoutDroppingSessions) {
  TempDir dir;
  const auto port = freeUdpPort();
  AgentUnderTest agent(dir, baseConfig(dir, port));
  ASSERT_TRUE(agent.ready()) << agent.log();
  ASSERT_EQ(ctl(agent.configFile(), {"keys", "import", "-"}, "dev-1,6465762d312d7365637265742d6b6579\n").exit_code, 0);

  Child observer({kOpensslClient, "-B", "20", "-s", "20", "-u", "dev-1", "-k", "dev-1-secret-key", coapsUri(port, "status")},
                 {}, (dir / "obs.err").string(), (dir / "obs.out").string());
  ASSERT_TRUE(agent.waitForLog("session established: 'dev-1'")) << agent.log();

  // A reload with a changed limit, then one with a broken file: both keep the session.
  writeFile(agent.configFile(), baseConfig(dir, port) + "[limits]\nmax_sessions = 50\n");
  agent.signal(SIGHUP);
  EXPECT_TRUE(agent.waitNotify("RELOADING=1", 5s));
  EXPECT_TRUE(agent.waitNotify("READY=1", 5s));
  writeFile(agent.configFile(), "[agent\nbroken");
  agent.signal(SIGHUP);
  EXPECT_TRUE(agent.waitNotify("READY=1", 5s));
  const auto log = agent.log();
  EXPECT_NE(log.find("reloaded"), std::string::npos) << log;
  EXPECT_NE(log.find("reload failed, keeping the running configuration: " + agent.configFile().string() + ":1:"),
            std::string::npos)
      << log;
  EXPECT_EQ(log.find("ended"), std::string::npos) << log;
  EXPECT_TRUE(observer.running()) << "the observing client lost its session on reload";
}

TEST(AgentLifecycle, CtlStatusShowsLiveSessionsAndSaysWhenTheAgentIsDown) {
  TempDir dir;
  const auto port = freeUdpPort();
  writeFile(dir / "agent.toml", baseConfig(dir, port));
  const auto down = ctl(dir / "agent.toml", {"status"});
  EXPECT_EQ(down.exit_code, 1);
  EXPECT_NE(down.err.find("the agent is not running"), std::string::npos) << down.err;

  AgentUnderTest agent(dir, baseConfig(dir, port));
  ASSERT_TRUE(agent.ready()) << agent.log();
  ASSERT_EQ(ctl(agent.configFile(), {"keys", "import", "-"}, "dev-9,6465762d392d7365637265742d6b6579\n").exit_code, 0);
  Child observer({kGnutlsClient, "-B", "20", "-s", "20", "-u", "dev-9", "-k", "dev-9-secret-key", coapsUri(port, "status")},
                 {}, (dir / "obs.err").string(), (dir / "obs.out").string());
  ASSERT_TRUE(agent.waitForLog("session established: 'dev-9'")) << agent.log();
  const auto human = ctl(agent.configFile(), {"status"});
  EXPECT_EQ(human.exit_code, 0) << human.err;
  EXPECT_NE(human.out.find("1 established (1 psk"), std::string::npos) << human.out;
  EXPECT_NE(human.out.find("dev-9"), std::string::npos) << human.out;
  EXPECT_NE(human.out.find("keys: 1 active, 0 revoked"), std::string::npos) << human.out;
  const auto json = ctl(agent.configFile(), {"status", "--json"});
  EXPECT_EQ(json.exit_code, 0);
  EXPECT_NE(json.out.find("\"identity\": \"dev-9\""), std::string::npos) << json.out;
  EXPECT_NE(json.out.find("\"auth\": \"psk\""), std::string::npos) << json.out;
}

TEST(AgentLifecycle, SecondAgentOnTheSameStateDirOrPortIsRefused) {
  TempDir dir;
  const auto port = freeUdpPort();
  AgentUnderTest first(dir, baseConfig(dir, port));
  ASSERT_TRUE(first.ready()) << first.log();

  // Same state directory: refused before it touches the network.
  const auto same_state = run({agentBinary(), "--config", first.configFile().string()}, 15s);
  EXPECT_EQ(same_state.exit_code, 1);
  EXPECT_NE(same_state.err.find("another coap-edge-agent is running with this state_dir"), std::string::npos)
      << same_state.err;

  // Another state directory but the same port: refused instead of silently sharing the port.
  TempDir other;
  writeFile(other / "agent.toml", baseConfig(other, port));
  const auto same_port = run({agentBinary(), "--config", (other / "agent.toml").string()}, 15s);
  EXPECT_EQ(same_port.exit_code, 78);
  EXPECT_NE(same_port.err.find("cannot listen on 127.0.0.1:" + std::to_string(port) + " (coaps): Address already in use"),
            std::string::npos)
      << same_port.err;
  EXPECT_TRUE(first.ready());
}

}  // namespace
}  // namespace coap_edge::test
