#pragma once
// SIGTERM, SIGINT and SIGHUP delivered through a signalfd to the event loop instead of async
// handlers; SIGPIPE ignored (a closed control socket must not kill the agent).

#include <optional>

namespace coap_edge::daemon {

class SignalFd {
 public:
  SignalFd();  ///< blocks the signals for this thread and opens the signalfd; throws on failure
  ~SignalFd();
  SignalFd(const SignalFd&) = delete;
  SignalFd& operator=(const SignalFd&) = delete;

  [[nodiscard]] int fd() const { return fd_; }
  /// The next pending signal number, or nullopt when none is left.
  [[nodiscard]] std::optional<int> next();

 private:
  int fd_ = -1;
};

}  // namespace coap_edge::daemon
