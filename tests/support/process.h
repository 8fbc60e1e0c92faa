#pragma once
// Running real programs from tests: coap-client-gnutls/-openssl, openssl, coap-edge-ctl and the
// agent itself. Every wait is bounded; a child still running at its deadline is killed.

#include <chrono>
#include <map>
#include <optional>
#include <string>
#include <sys/types.h>
#include <vector>

namespace coap_edge::test {

struct RunResult {
  int exit_code = -1;  ///< -1 if killed by a signal or by the deadline
  bool timed_out = false;
  std::string out;
  std::string err;
};

/// Runs argv[0] (looked up in PATH) with `input` on stdin, waits at most `limit`.
RunResult run(const std::vector<std::string>& argv, std::chrono::milliseconds limit = std::chrono::seconds(30),
              const std::string& input = "", const std::map<std::string, std::string>& env = {});

/// A child left running in the background; killed (SIGKILL) on destruction if still alive.
class Child {
 public:
  Child(const std::vector<std::string>& argv, const std::map<std::string, std::string>& env = {},
        const std::string& stderr_file = "", const std::string& stdout_file = "");
  ~Child();
  Child(const Child&) = delete;
  Child& operator=(const Child&) = delete;

  [[nodiscard]] pid_t pid() const { return pid_; }
  void signal(int sig) const;
  /// Waits for the exit for at most `limit`; returns the exit code (-1 for a signal) or nullopt.
  std::optional<int> wait(std::chrono::milliseconds limit);
  [[nodiscard]] bool running();

 private:
  pid_t pid_ = -1;
  std::optional<int> status_;
};

}  // namespace coap_edge::test
