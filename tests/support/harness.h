#pragma once
// Integration-test harness: temporary directories, free loopback ports, a test PKI made with the
// openssl CLI at test time (no key is ever committed), and the real coap-edge-agent started as a
// child process that reports readiness through the systemd notify protocol.

#include "process.h"

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>

namespace coap_edge::test {

class TempDir {
 public:
  TempDir();
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  [[nodiscard]] const std::filesystem::path& path() const { return path_; }
  [[nodiscard]] std::filesystem::path operator/(const std::string& name) const { return path_ / name; }

 private:
  std::filesystem::path path_;
};

/// A UDP port on 127.0.0.1 that was free a moment ago (bind to port 0, read it, close).
std::uint16_t freeUdpPort();
/// True if `host:port` (numeric IPv4) can be bound right now.
bool udpPortFree(const std::string& host, std::uint16_t port);

void writeFile(const std::filesystem::path& file, const std::string& text);
std::string readFile(const std::filesystem::path& file);

/// How often `needle` occurs in `text` (log lines, link-format bodies).
std::size_t countOf(const std::string& text, const std::string& needle);

/// Lower-case hex of the bytes of `text` (printable test keys -> `keys import` CSV).
std::string hexOf(const std::string& text);

/// Paths of the binaries under test (set by CMake).
std::string agentBinary();
std::string ctlBinary();
std::string simnodeBinary();
std::string testpeerBinary();

/// A test PKI under `dir`: CA, gateway certificate for 127.0.0.1, and device certificates that
/// must be accepted (dev-1) or refused (another CA, expired, self-signed). EC P-256 throughout.
struct TestPki {
  std::filesystem::path ca_crt, ca_key;
  std::filesystem::path gw_crt, gw_key;
  std::filesystem::path dev_crt, dev_key;          ///< CN=dev-1, from our CA
  std::filesystem::path foreign_crt, foreign_key;  ///< CN=dev-1, from another CA
  std::filesystem::path expired_crt, expired_key;  ///< CN=dev-old, our CA, validity in the past
  std::filesystem::path self_crt, self_key;        ///< CN=dev-self, self-signed
};
TestPki makeTestPki(const std::filesystem::path& dir);

/// The real agent, started with a config file written from `config_text`.
class AgentUnderTest {
 public:
  /// Starts the agent and waits (bounded) for READY=1 on its NOTIFY_SOCKET. With `netns` (a
  /// NetnsLab host's namespace) it runs there; NOTIFY_SOCKET is a path, so it reaches us anyway.
  AgentUnderTest(const TempDir& dir, const std::string& config_text,
                 const std::map<std::string, std::string>& extra_env = {}, const std::string& netns = "");
  ~AgentUnderTest();
  AgentUnderTest(const AgentUnderTest&) = delete;
  AgentUnderTest& operator=(const AgentUnderTest&) = delete;

  [[nodiscard]] bool ready() const { return ready_; }
  [[nodiscard]] std::string log() const;
  [[nodiscard]] const std::filesystem::path& configFile() const { return config_; }
  void signal(int sig) { child_->signal(sig); }
  [[nodiscard]] pid_t pid() const { return child_->pid(); }
  /// Waits for the next notify message containing `what` (e.g. "READY=1") for at most `limit`.
  bool waitNotify(const std::string& what, std::chrono::milliseconds limit);
  /// Waits (bounded) until the agent's log contains `needle`; true if it does.
  bool waitForLog(const std::string& needle, std::chrono::milliseconds limit = std::chrono::seconds(10)) const;
  /// SIGTERM, then the exit code (nullopt if it did not exit within `limit`).
  std::optional<int> stop(std::chrono::milliseconds limit = std::chrono::seconds(10));

 private:
  std::filesystem::path config_, log_, notify_path_;
  int notify_fd_ = -1;
  std::unique_ptr<Child> child_;
  bool ready_ = false;
};

}  // namespace coap_edge::test
