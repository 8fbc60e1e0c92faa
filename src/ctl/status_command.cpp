// `coap-edge-ctl status`: asks the running agent over its control socket
// (<state_dir>/agent.sock) and prints what it says, for people or (--json) for scripts.

#include "ctl/commands.h"

#include <fmt/format.h>
#include <nlohmann/json.hpp>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <ostream>

namespace coap_edge::ctl {
namespace {

// Sends one request line and reads the answer until the agent closes; bounded by a 5 s timeout.
std::optional<std::string> ask(const std::filesystem::path& socket_path, std::string_view request, std::string& why) {
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  const std::string p = socket_path.string();
  if (p.size() >= sizeof(addr.sun_path)) {
    why = "socket path too long: " + p;
    return std::nullopt;
  }
  std::memcpy(addr.sun_path, p.c_str(), p.size() + 1);
  const int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    why = std::strerror(errno);
    return std::nullopt;
  }
  timeval tv{5, 0};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
  if (connect(fd, reinterpret_cast<const sockaddr*>(&addr), sizeof(addr)) != 0) {
    const int err = errno;
    close(fd);
    why = (err == ENOENT || err == ECONNREFUSED)
              ? "the agent is not running (no agent listening on " + p + "); start it with systemctl start coap-edge-agent"
              : "cannot reach the agent at " + p + ": " + std::strerror(err);
    return std::nullopt;
  }
  const std::string line = std::string(request) + "\n";
  if (write(fd, line.data(), line.size()) != static_cast<ssize_t>(line.size())) {
    why = std::string("cannot talk to the agent: ") + std::strerror(errno);
    close(fd);
    return std::nullopt;
  }
  std::string answer;
  char buf[4096];
  while (true) {
    const ssize_t n = read(fd, buf, sizeof(buf));
    if (n > 0) {
      answer.append(buf, static_cast<std::size_t>(n));
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      why = "the agent did not answer within 5 s";
      close(fd);
      return std::nullopt;
    }
    break;
  }
  close(fd);
  return answer;
}

std::string ageText(std::int64_t s) {
  if (s < 120) return fmt::format("{}s", s);
  if (s < 7200) return fmt::format("{}m", s / 60);
  return fmt::format("{}h{:02}m", s / 3600, (s % 3600) / 60);
}

}  // namespace

int status(Invocation& inv) {
  auto args = parseArgs(inv, {"--json"}, 0);
  if (!args) return 2;
  int code = 0;
  auto cfg = loadConfig(inv, code);
  if (!cfg) return code;
  std::string why;
  auto answer = ask(cfg->agent.state_dir.value / "agent.sock", "status", why);
  if (!answer) return fail(inv, 1, why);
  nlohmann::json doc = nlohmann::json::parse(*answer, nullptr, false);
  if (doc.is_discarded() || !doc.is_object()) return fail(inv, 1, "the agent's answer is not valid JSON");
  if (args->has("--json")) {
    inv.out << doc.dump(2) << '\n';
    return 0;
  }
  const auto& s = doc["sessions"];
  inv.out << fmt::format("agent {} ({}), up {}\n", doc.value("agent", "?"), doc.value("version", "?"),
                         ageText(doc.value("uptime_s", std::int64_t{0})));
  inv.out << fmt::format("stack: {}, {}\n", doc.value("libcoap", "?"), doc.value("tls_library", "?"));
  inv.out << fmt::format("sessions: {} established ({} psk, {} x509, {} plain)\n", s.value("established", 0),
                         s.value("psk", 0), s.value("x509", 0), s.value("plain", 0));
  inv.out << fmt::format("keys: {} active, {} revoked\n", doc["keys"].value("active", 0),
                         doc["keys"].value("revoked", 0));
  if (doc.contains("nodes")) {
    const auto& n = doc["nodes"];
    const auto& by = n["by_source"];
    const auto& d = doc["discovery"];
    inv.out << fmt::format("nodes: {} ({} by multicast, {} by DNS-SD, {} in the RD; {} KB), {} RD registrations, "
                           "DNS-SD {}\n",
                           n.value("count", 0), by.value("multicast", 0), by.value("dns_sd", 0), by.value("rd", 0),
                           n.value("memory_bytes", 0) / 1024, doc["rd"].value("registrations", 0),
                           d["dns_sd"].value("state", "?"));
  }
  if (doc.contains("acl")) {
    const auto& a = doc["acl"];
    inv.out << fmt::format("acl: {} allowed, {} forbidden, {} unauthenticated\n", a.value("allowed", 0),
                           a.value("forbidden", 0), a.value("unauthenticated", 0));
  }
  if (doc.contains("handshakes")) {
    const auto& h = doc["handshakes"];
    inv.out << fmt::format("handshakes: {} ok, {} unknown identity, {} bad key, {} bad certificate, {} timed out, "
                           "{} other DTLS error, {} rate limited, {} at max_sessions, {} refused after handshake\n",
                           h.value("ok", 0), h.value("unknown_identity", 0), h.value("bad_key", 0),
                           h.value("bad_certificate", 0), h.value("timeout", 0), h.value("dtls_error", 0),
                           h.value("rate_limited", 0), h.value("max_sessions", 0), h.value("refused", 0));
  }
  if (doc.contains("requests") && doc["requests"].is_object()) {
    std::string line;
    for (const auto& [method, by_class] : doc["requests"].items()) {
      line += fmt::format("{}{} {} 2xx/{} 4xx/{} 5xx/{} none", line.empty() ? "" : ", ", method,
                          by_class.value("2xx", 0), by_class.value("4xx", 0), by_class.value("5xx", 0),
                          by_class.value("none", 0));
    }
    inv.out << fmt::format("requests: {}\n", line.empty() ? "none yet" : line);
  }
  if (doc.contains("duplicates") && doc["duplicates"].is_object()) {
    const auto& d = doc["duplicates"];
    inv.out << fmt::format("duplicates: {} answered again without serving them ({} of {} bytes kept)\n",
                           d.value("answered", 0), d.value("memory_bytes", 0), d.value("memory_limit", 0));
    if (d.value("not_kept", 0) > 0) {
      inv.out << fmt::format("duplicates: {} answers not kept: duplicate_max_bytes was spent\n", d.value("not_kept", 0));
    }
  }
  if (doc.contains("limits")) {
    const auto& pi = doc["limits"]["per_identity"];
    const auto& ha = doc["limits"]["handshakes_per_address"];
    inv.out << fmt::format("limits: per identity {} rejected (4.29), {} dropped (NON), {} buckets; handshakes per "
                           "address {} refused, {} buckets\n",
                           pi.value("rejected", 0), pi.value("dropped", 0), pi.value("buckets", 0),
                           ha.value("refused", 0), ha.value("buckets", 0));
  }
  if (doc.contains("relay")) {
    const auto& r = doc["relay"];
    const auto& c = r["cache"];
    const auto& o = r["observe"];
    inv.out << fmt::format("relay: {} requests, {} to nodes ({} in flight), {} cache hits ({} entries, {} KB), {} "
                           "coalesced, {} timed out, {} bad gateway, {} busy, {} node limited; forward proxy {} "
                           "served, {} refused; observe: {} relations, {} observers, {} notifications; coaps to "
                           "nodes: {} sessions, {} failed\n",
                           r.value("requests", 0), r.value("forwarded", 0), r.value("in_flight", 0),
                           c.value("hits", 0), c.value("entries", 0), c.value("bytes", 0) / 1024,
                           r.value("coalesced", 0), r.value("timeouts", 0), r.value("bad_gateway", 0),
                           r.value("busy", 0), doc["limits"]["per_node"].value("rejected", 0),
                           r["forward_proxy"].value("requests", 0), r["forward_proxy"].value("refused", 0),
                           o.value("relations", 0), o.value("observers", 0), o.value("notifications", 0),
                           r.contains("coaps") ? r["coaps"].value("sessions", 0) : 0,
                           r.contains("coaps") ? r["coaps"].value("failures", 0) : 0);
  }
  if (doc.contains("upstream") && doc["upstream"].value("state", "off") != "off") {
    const auto& u = doc["upstream"];
    inv.out << fmt::format("upstream: {}{}, {} sessions established, {} failures, {} requests served, {} RD "
                           "registrations{}\n",
                           u.value("state", "?"), u.value("address", "").empty() ? "" : " to " + u.value("address", ""),
                           u.value("established", 0), u.value("failures", 0), u.value("requests_served", 0),
                           u["rd"].value("registrations", 0),
                           u.value("last_error", "").empty() ? "" : " (last error: " + u.value("last_error", "") + ")");
    if (u.contains("telemetry")) {
      const auto& t = u["telemetry"];
      const auto& q = t["queue"];
      inv.out << fmt::format("telemetry: {} values sent in {} POSTs ({} failed); queue {} values, {} KB, oldest {}, "
                             "{} dropped when full, {} expired\n",
                             t.value("values_sent", 0), t.value("posts", 0), t.value("post_failures", 0),
                             q.value("depth", 0), q.value("bytes", 0) / 1024,
                             q["oldest_age_s"].is_number() ? ageText(q["oldest_age_s"].get<std::int64_t>()) : "-",
                             q.value("dropped_full", 0) + q.value("refused_full", 0), q.value("expired", 0));
    }
  }
  const auto& list = doc["session_list"];
  if (list.is_array() && !list.empty()) {
    inv.out << fmt::format("\n{:<32} {:<5} {:<40} {}\n", "IDENTITY", "AUTH", "PEER", "AGE");
    for (const auto& e : list) {
      inv.out << fmt::format("{:<32} {:<5} {:<40} {}\n", e.value("identity", ""), e.value("auth", ""),
                             e.value("peer", ""), ageText(e.value("age_s", std::int64_t{0})));
    }
  }
  return 0;
}

}  // namespace coap_edge::ctl
