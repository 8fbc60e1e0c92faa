#pragma once
// The agent's local control socket (<state_dir>/agent.sock, mode 0660): coap-edge-ctl sends one
// request line ("status") and reads one JSON document back. Served on the event loop without
// blocking: bounded request size, bounded connections, a deadline per connection.

#include "daemon/event_loop.h"

#include <chrono>
#include <filesystem>
#include <functional>
#include <string>
#include <string_view>
#include <unordered_map>

namespace coap_edge::daemon {

class ControlSocket {
 public:
  /// Returns the whole response for one request line (without its newline).
  using Handler = std::function<std::string(std::string_view request)>;

  /// Binds `path`; a stale socket left by a crashed agent is replaced, a live one (another agent
  /// on the same state directory) is an error. Throws std::runtime_error with a clear message.
  ControlSocket(EventLoop& loop, std::filesystem::path path, Handler handler);
  ~ControlSocket();
  ControlSocket(const ControlSocket&) = delete;
  ControlSocket& operator=(const ControlSocket&) = delete;

  [[nodiscard]] const std::filesystem::path& path() const { return path_; }

 private:
  struct Connection {
    std::string in;
    std::string out;
    std::size_t written = 0;
    std::chrono::steady_clock::time_point deadline;
  };
  void onAccept();
  void onReadable(int fd);
  void onWritable(int fd);
  void drop(int fd);
  void expire();

  EventLoop& loop_;
  std::filesystem::path path_;
  Handler handler_;
  int listen_fd_ = -1;
  int timer_ = -1;
  std::unordered_map<int, Connection> connections_;
};

}  // namespace coap_edge::daemon
