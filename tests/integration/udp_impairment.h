#pragma once
// A UDP relay on loopback that impairs what passes through it the way tc netem does (loss,
// duplication, reordering, delay), in both directions, for kernels without sch_netem. Clients
// send to port(); each client address gets its own socket towards the target, so the target
// sees one peer per client. Runs on its own thread until destroyed; every wait is bounded.

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <array>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <random>
#include <stdexcept>
#include <thread>
#include <tuple>
#include <vector>

namespace coap_edge::test {

struct Impairment {
  double loss = 0.20;       ///< probability a datagram is dropped
  double duplicate = 0.05;  ///< probability it is sent twice
  double reorder = 0.25;    ///< probability it skips the delay (overtakes those queued)
  std::chrono::milliseconds delay{20};
  /// Deterministic loss on top of the random kind: true drops the datagram. Runs on the relay's
  /// thread; `to_client` tells the direction (target -> client).
  std::function<bool(bool to_client, const std::uint8_t* data, std::size_t size)> drop;
};

class ImpairedUdpRelay {
 public:
  ImpairedUdpRelay(std::uint16_t target_port, Impairment how, std::uint32_t seed = 7) : how_(how), rng_(seed) {
    target_ = loopback(target_port);
    front_ = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    const sockaddr_in any = loopback(0);
    if (front_ < 0 || bind(front_, reinterpret_cast<const sockaddr*>(&any), sizeof(any)) != 0) {
      if (front_ >= 0) close(front_);
      throw std::runtime_error("relay socket");
    }
    sockaddr_in a{};
    socklen_t n = sizeof(a);
    getsockname(front_, reinterpret_cast<sockaddr*>(&a), &n);
    port_ = ntohs(a.sin_port);
    thread_ = std::thread([this] { loop(); });
  }
  ~ImpairedUdpRelay() {
    stop_ = true;
    thread_.join();
    for (const auto& [client, fd] : back_) close(fd);
    close(front_);
  }
  ImpairedUdpRelay(const ImpairedUdpRelay&) = delete;
  ImpairedUdpRelay& operator=(const ImpairedUdpRelay&) = delete;

  [[nodiscard]] std::uint16_t port() const { return port_; }
  /// NAT rebinding: from now on each client's datagrams reach the target from a new source
  /// port (a fresh socket); what the target sends to the old port is lost.
  void rebind() { rebind_ = true; }

 private:
  using Clock = std::chrono::steady_clock;
  using Key = std::tuple<std::uint32_t, std::uint16_t>;  // client address, port (network order)
  struct Pending {
    Clock::time_point due;
    int fd;                   ///< socket to send on
    sockaddr_in to;           ///< destination (the client, or the target)
    std::vector<std::uint8_t> data;
  };

  static sockaddr_in loopback(std::uint16_t port) {
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    return a;
  }

  bool chance(double p) { return std::uniform_real_distribution<double>(0.0, 1.0)(rng_) < p; }

  void impair(int fd, const sockaddr_in& to, const std::uint8_t* d, std::size_t n, bool to_client) {
    if (how_.drop && how_.drop(to_client, d, n)) return;
    if (chance(how_.loss)) return;
    const auto due = chance(how_.reorder) ? Clock::now() : Clock::now() + how_.delay;
    const int copies = chance(how_.duplicate) ? 2 : 1;
    for (int i = 0; i < copies && queue_.size() < 4096; ++i) queue_.push_back({due, fd, to, {d, d + n}});
  }

  int backFor(const sockaddr_in& client) {
    const Key key{client.sin_addr.s_addr, client.sin_port};
    if (auto it = back_.find(key); it != back_.end()) return it->second;
    const int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0) return -1;
    back_[key] = fd;
    clients_[fd] = client;
    return fd;
  }

  void rebindAll() {
    for (auto& [key, fd] : back_) {
      const int fresh = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
      if (fresh < 0) continue;
      clients_[fresh] = clients_[fd];
      clients_.erase(fd);
      close(fd);
      fd = fresh;
    }
  }

  void loop() {
    std::array<std::uint8_t, 4096> buf{};
    while (!stop_) {
      if (rebind_.exchange(false)) rebindAll();
      // Due datagrams first, in due order (reordered ones are due at once).
      const auto now = Clock::now();
      for (std::size_t i = 0; i < queue_.size();) {
        if (queue_[i].due <= now) {
          const auto& p = queue_[i];
          (void)sendto(p.fd, p.data.data(), p.data.size(), 0, reinterpret_cast<const sockaddr*>(&p.to), sizeof(p.to));
          queue_.erase(queue_.begin() + static_cast<std::ptrdiff_t>(i));
        } else {
          ++i;
        }
      }
      std::vector<pollfd> fds{{front_, POLLIN, 0}};
      for (const auto& [fd, client] : clients_) fds.push_back({fd, POLLIN, 0});
      if (poll(fds.data(), fds.size(), 5) <= 0) continue;
      for (const auto& p : fds) {
        if ((p.revents & POLLIN) == 0) continue;
        sockaddr_in from{};
        socklen_t len = sizeof(from);
        const ssize_t n = recvfrom(p.fd, buf.data(), buf.size(), 0, reinterpret_cast<sockaddr*>(&from), &len);
        if (n <= 0) continue;
        if (p.fd == front_) {
          const int back = backFor(from);
          if (back >= 0) impair(back, target_, buf.data(), static_cast<std::size_t>(n), false);
        } else {
          impair(front_, clients_[p.fd], buf.data(), static_cast<std::size_t>(n), true);
        }
      }
    }
  }

  Impairment how_;
  std::mt19937 rng_;
  sockaddr_in target_{};
  int front_ = -1;
  std::uint16_t port_ = 0;
  std::map<Key, int> back_;
  std::map<int, sockaddr_in> clients_;
  std::vector<Pending> queue_;
  std::atomic<bool> stop_{false};
  std::atomic<bool> rebind_{false};
  std::thread thread_;
};

}  // namespace coap_edge::test
