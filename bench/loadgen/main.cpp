// coap-edge-loadgen: forks --workers processes (so that the generator is not the bottleneck and
// no mbedTLS state is shared between threads), collects their reports, prints one JSON object.
// Exit codes: 0 report printed; 1 no session established or a worker died; 2 usage/setup error.

#include "options.h"
#include "reports.h"
#include "worker.h"

#include <fmt/format.h>
#include <nlohmann/json.hpp>
#include <fcntl.h>
#include <poll.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <memory>
#include <vector>

namespace coap_edge::bench {
namespace {

using Clock = std::chrono::steady_clock;

struct Child {
  pid_t pid = -1;
  int from_child = -1;
  int to_child = -1;
};

/// Reads exactly `len` bytes before `deadline`; false on EOF, error or time out.
bool readAll(int fd, void* data, std::size_t len, Clock::time_point deadline) {
  auto* p = static_cast<char*>(data);
  while (len > 0) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
    if (left <= 0) return false;
    pollfd pfd{fd, POLLIN, 0};
    const int ready = ::poll(&pfd, 1, static_cast<int>(std::min<std::int64_t>(left, 1000)));
    if (ready < 0 && errno != EINTR) return false;
    if (ready <= 0) continue;
    const ssize_t n = ::read(fd, p, len);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    p += n;
    len -= static_cast<std::size_t>(n);
  }
  return true;
}

void stopChildren(std::vector<Child>& children) {
  for (auto& c : children) {
    if (c.to_child >= 0) ::close(c.to_child);
    c.to_child = -1;
  }
  // Closing the pipe ends a waiting worker; a busy one gets SIGTERM after a grace period.
  for (int i = 0; i < 50; ++i) {
    bool all = true;
    for (auto& c : children) {
      if (c.pid > 0 && ::waitpid(c.pid, nullptr, WNOHANG) == c.pid) c.pid = -1;
      all = all && c.pid <= 0;
    }
    if (all) return;
    ::usleep(100000);
  }
  for (auto& c : children) {
    if (c.pid > 0) {
      ::kill(c.pid, SIGKILL);
      ::waitpid(c.pid, nullptr, 0);
      c.pid = -1;
    }
  }
}

std::string setupFileLimit(const Options& o) {
  rlimit lim{};
  if (::getrlimit(RLIMIT_NOFILE, &lim) != 0) return {};
  const rlim_t need = o.sessions / o.workers + 64;
  if (lim.rlim_cur < need) {
    lim.rlim_cur = std::min(lim.rlim_max, std::max(need, lim.rlim_cur));
    ::setrlimit(RLIMIT_NOFILE, &lim);
  }
  if (lim.rlim_cur < need) {
    return fmt::format("{} sessions per worker need {} open files, the limit is {}: raise it or add --workers",
                       o.sessions / o.workers + 1, need, lim.rlim_cur);
  }
  return {};
}

double seconds(std::int64_t ns) { return static_cast<double>(ns) / 1e9; }

int run(const Options& o) {
  if (std::string error = setupFileLimit(o); !error.empty()) {
    fmt::print(stderr, "coap-edge-loadgen: {}\n", error);
    return 2;
  }
  std::signal(SIGPIPE, SIG_IGN);
  std::vector<Child> children(o.workers);
  const pid_t parent = ::getpid();
  for (std::uint32_t w = 0; w < o.workers; ++w) {
    int up[2];
    int down[2];
    if (::pipe2(up, O_CLOEXEC) != 0 || ::pipe2(down, O_CLOEXEC) != 0) {
      fmt::print(stderr, "coap-edge-loadgen: pipe: {}\n", std::strerror(errno));
      stopChildren(children);
      return 2;
    }
    std::fflush(nullptr);
    const pid_t pid = ::fork();
    if (pid == 0) {
      ::prctl(PR_SET_PDEATHSIG, SIGKILL);
      if (::getppid() != parent) ::_exit(1);
      ::close(up[0]);
      ::close(down[1]);
      for (std::uint32_t k = 0; k < w; ++k) {
        ::close(children[k].from_child);
        ::close(children[k].to_child);
      }
      const std::uint32_t share = o.sessions / o.workers + (w < o.sessions % o.workers ? 1 : 0);
      const std::uint32_t active = o.active / o.workers + (w < o.active % o.workers ? 1 : 0);
      const std::uint32_t concurrency = std::max<std::uint32_t>(1, o.handshake_concurrency / o.workers);
      ::_exit(runWorker(o, WorkerShare{share, active, concurrency, up[1], down[0]}));
    }
    ::close(up[1]);
    ::close(down[0]);
    children[w] = Child{pid, up[0], down[1]};
    if (pid < 0) {
      fmt::print(stderr, "coap-edge-loadgen: fork: {}\n", std::strerror(errno));
      stopChildren(children);
      return 2;
    }
  }

  // Phase 1: handshakes. Each worker bounds its own phase; the margin covers its slowest flight.
  const auto hs_deadline = Clock::now() + std::chrono::duration_cast<Clock::duration>(
                                              std::chrono::duration<double>(o.handshake_timeout_s + 15.0));
  HandshakeReport total;
  std::string first_failure;
  std::int64_t start_ns = INT64_MAX;
  std::int64_t end_ns = 0;
  for (std::uint32_t w = 0; w < o.workers; ++w) {
    HandshakeReport r;
    if (!readAll(children[w].from_child, &r, sizeof r, hs_deadline)) {
      fmt::print(stderr, "coap-edge-loadgen: worker {} died or hung during the handshakes\n", w);
      stopChildren(children);
      return 1;
    }
    if (r.setup_error[0] != '\0') {
      fmt::print(stderr, "coap-edge-loadgen: setup failed: {}\n", r.setup_error.data());
      stopChildren(children);
      return 2;
    }
    total.established += r.established;
    total.failures += r.failures;
    total.retransmissions += r.retransmissions;
    total.first_answers += r.first_answers;
    if (first_failure.empty()) first_failure = r.first_failure.data();
    if (total.cipher_suite[0] == '\0') total.cipher_suite = r.cipher_suite;
    start_ns = std::min(start_ns, r.start_ns);
    end_ns = std::max(end_ns, r.end_ns);
  }
  if (total.established == 0) {
    fmt::print(stderr,
               "coap-edge-loadgen: no DTLS session established with {}:{} ({} attempts; first failure: {}). "
               "Is the server running there, with this PSK identity and key (or certificate)?\n",
               o.host, o.port, total.failures, first_failure.empty() ? "none recorded" : first_failure);
    stopChildren(children);
    return 1;
  }
  if (o.first_request && total.first_answers < total.established) {
    fmt::print(stderr, "coap-edge-loadgen: {} of {} sessions had their first request answered\n", total.first_answers,
               total.established);
  }
  if (!o.ready_file.empty()) std::ofstream(o.ready_file) << total.established << "\n";

  // Phase 2: load, all workers at once.
  for (auto& c : children) {
    const char go = 'g';
    if (::write(c.to_child, &go, 1) != 1) {
      fmt::print(stderr, "coap-edge-loadgen: a worker exited before the load phase\n");
      stopChildren(children);
      return 1;
    }
  }
  const auto load_deadline = Clock::now() + std::chrono::duration_cast<Clock::duration>(
                                                std::chrono::duration<double>(o.duration_s + 15.0));
  auto load = std::make_unique<LoadReport>();
  for (std::uint32_t w = 0; w < o.workers; ++w) {
    auto r = std::make_unique<LoadReport>();
    if (!readAll(children[w].from_child, r.get(), sizeof *r, load_deadline)) {
      fmt::print(stderr, "coap-edge-loadgen: worker {} died or hung during the load phase\n", w);
      stopChildren(children);
      return 1;
    }
    load->completed += r->completed;
    load->retransmissions += r->retransmissions;
    load->timeouts += r->timeouts;
    load->resets += r->resets;
    load->client_errors += r->client_errors;
    load->server_errors += r->server_errors;
    load->dtls_errors += r->dtls_errors;
    load->sessions_lost += r->sessions_lost;
    load->send_drops += r->send_drops;
    load->empty_acks += r->empty_acks;
    load->response_bytes += r->response_bytes;
    load->cpu_us += r->cpu_us;
    load->latency.merge(r->latency);
  }
  stopChildren(children);

  const double hs_seconds = std::max(seconds(end_ns - start_ns), 1e-6);
  const auto& h = load->latency;
  const std::uint64_t errors = total.failures + load->timeouts + load->resets + load->client_errors +
                               load->server_errors + load->dtls_errors + load->sessions_lost;
  nlohmann::ordered_json report = {
      {"label", o.label},
      {"target", fmt::format("{}:{}{}", o.host, o.port, o.proxy_uri.empty() ? o.path : "")},
      {"proxy_uri", o.proxy_uri},
      {"unique_query", o.unique_query},
      {"mode", o.cert_file.empty() ? "psk" : "ecdhe-ecdsa"},
      {"cipher_suite", total.cipher_suite.data()},
      {"workers", o.workers},
      {"sessions_requested", o.sessions},
      {"sessions_established", total.established},
      {"handshake_seconds", hs_seconds},
      {"handshakes_per_second", static_cast<double>(total.established) / hs_seconds},
      {"handshake_retransmissions", total.retransmissions},
      {"first_requests_answered", o.first_request ? nlohmann::json(total.first_answers) : nlohmann::json()},
      {"active_sessions", o.active},
      {"outstanding_per_session", o.outstanding},
      {"duration_seconds", o.duration_s},
      {"requests_completed", load->completed},
      {"requests_per_second", static_cast<double>(load->completed) / o.duration_s},
      {"mean_response_bytes", load->completed == 0 ? 0.0
                                                   : static_cast<double>(load->response_bytes) /
                                                         static_cast<double>(load->completed)},
      {"latency_us",
       {{"p50", h.percentile(0.50)}, {"p99", h.percentile(0.99)}, {"p99_9", h.percentile(0.999)},
        {"max", h.max()}, {"mean", h.mean()}}},
      // How busy the generator itself was: near workers x 1.0 means it may be the bottleneck.
      {"generator_cpu_seconds_per_second", static_cast<double>(load->cpu_us) / 1e6 / o.duration_s},
      {"retransmissions", load->retransmissions},
      {"send_drops", load->send_drops},
      // Requests first answered by an empty ACK, the response following as a separate message
      // (which the generator acknowledges): two more datagrams each than a piggybacked response.
      {"separate_responses", load->empty_acks},
      {"errors",
       {{"total", errors},
        {"handshake_failures", total.failures},
        {"timeouts", load->timeouts},
        {"resets", load->resets},
        {"client_errors_4xx", load->client_errors},
        {"server_errors_5xx", load->server_errors},
        {"dtls", load->dtls_errors},
        {"sessions_lost", load->sessions_lost}}},
  };
  if (!first_failure.empty()) report["first_handshake_failure"] = first_failure;
  fmt::print("{}\n", report.dump(2));
  return 0;
}

}  // namespace
}  // namespace coap_edge::bench

int main(int argc, char** argv) {
  int exit_code = 0;
  const auto options = coap_edge::bench::parseOptions(argc, argv, exit_code);
  if (!options) return exit_code;
  try {
    return coap_edge::bench::run(*options);
  } catch (const std::exception& e) {
    fmt::print(stderr, "coap-edge-loadgen: {}\n", e.what());
    return 2;
  }
}
