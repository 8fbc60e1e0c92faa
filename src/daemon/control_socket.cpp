#include "daemon/control_socket.h"

#include "common/log.h"

#include <fcntl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <stdexcept>
#include <vector>

namespace coap_edge::daemon {
namespace {

constexpr std::string_view kLogTag = "control";
constexpr std::size_t kMaxRequest = 256;
constexpr std::size_t kMaxConnections = 16;
constexpr std::chrono::seconds kConnectionDeadline{5};

sockaddr_un addressOf(const std::filesystem::path& path) {
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  const std::string p = path.string();
  if (p.size() >= sizeof(addr.sun_path)) {
    throw std::runtime_error("control socket path '" + p + "' is longer than " +
                             std::to_string(sizeof(addr.sun_path) - 1) + " bytes: use a shorter state_dir");
  }
  std::memcpy(addr.sun_path, p.c_str(), p.size() + 1);
  return addr;
}

// True if an agent answers on `path` (then we must not steal its socket).
bool someoneListens(const sockaddr_un& addr) {
  const int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return false;
  const bool live = connect(fd, reinterpret_cast<const sockaddr*>(&addr), sizeof(addr)) == 0;
  close(fd);
  return live;
}

}  // namespace

ControlSocket::ControlSocket(EventLoop& loop, std::filesystem::path path, Handler handler)
    : loop_(loop), path_(std::move(path)), handler_(std::move(handler)) {
  const sockaddr_un addr = addressOf(path_);
  if (std::filesystem::exists(std::filesystem::symlink_status(path_))) {
    if (someoneListens(addr)) {
      throw std::runtime_error("another coap-edge-agent is running with this state_dir (" + path_.string() + ")");
    }
    std::filesystem::remove(path_);
  }
  listen_fd_ = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (listen_fd_ < 0) throw std::runtime_error(std::string("control socket: ") + std::strerror(errno));
  if (bind(listen_fd_, reinterpret_cast<const sockaddr*>(&addr), sizeof(addr)) != 0 || listen(listen_fd_, 8) != 0) {
    const int err = errno;
    close(listen_fd_);
    throw std::runtime_error("cannot create control socket '" + path_.string() + "': " + std::strerror(err));
  }
  // Owner and group (the service user's group: operators in it may run coap-edge-ctl status).
  chmod(path_.c_str(), 0660);
  loop_.watch(listen_fd_, [this] { onAccept(); });
  timer_ = loop_.addTimer(std::chrono::seconds(1), [this] { expire(); });
}

ControlSocket::~ControlSocket() {
  std::vector<int> fds;
  for (const auto& [fd, c] : connections_) fds.push_back(fd);
  for (int fd : fds) drop(fd);
  loop_.cancelTimer(timer_);
  loop_.unwatch(listen_fd_);
  close(listen_fd_);
  std::error_code ec;
  std::filesystem::remove(path_, ec);
}

void ControlSocket::onAccept() {
  while (true) {
    const int fd = accept4(listen_fd_, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd < 0) return;  // EAGAIN: drained
    if (connections_.size() >= kMaxConnections) {
      close(fd);
      CE_LOG_WARN("too many control connections; refusing one");
      continue;
    }
    connections_[fd].deadline = std::chrono::steady_clock::now() + kConnectionDeadline;
    loop_.watch(fd, [this, fd] { onReadable(fd); });
  }
}

void ControlSocket::onReadable(int fd) {
  auto it = connections_.find(fd);
  if (it == connections_.end()) return;
  Connection& c = it->second;
  char buf[256];
  const ssize_t n = read(fd, buf, sizeof(buf));
  if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR)) {
    drop(fd);
    return;
  }
  if (n < 0) return;
  c.in.append(buf, static_cast<std::size_t>(n));
  const auto nl = c.in.find('\n');
  if (nl == std::string::npos) {
    if (c.in.size() > kMaxRequest) drop(fd);
    return;
  }
  const std::string request = c.in.substr(0, nl);
  try {
    c.out = handler_(request);
  } catch (const std::exception& e) {
    c.out = std::string("{\"error\":\"internal error\"}\n");
    CE_LOG_ERROR("control request failed: {}", e.what());
  }
  loop_.watch(fd, [this, fd] { onWritable(fd); }, true);
}

void ControlSocket::onWritable(int fd) {
  auto it = connections_.find(fd);
  if (it == connections_.end()) return;
  Connection& c = it->second;
  const ssize_t n = write(fd, c.out.data() + c.written, c.out.size() - c.written);
  if (n < 0 && (errno == EAGAIN || errno == EINTR)) return;
  if (n <= 0) {
    drop(fd);
    return;
  }
  c.written += static_cast<std::size_t>(n);
  if (c.written == c.out.size()) drop(fd);
}

void ControlSocket::drop(int fd) {
  loop_.unwatch(fd);
  close(fd);
  connections_.erase(fd);
}

void ControlSocket::expire() {
  const auto now = std::chrono::steady_clock::now();
  std::vector<int> late;
  for (const auto& [fd, c] : connections_) {
    if (now > c.deadline) late.push_back(fd);
  }
  for (int fd : late) drop(fd);
}

}  // namespace coap_edge::daemon
