#include "options.h"

#include <fmt/format.h>

#include <algorithm>
#include <charconv>
#include <cstdio>
#include <string_view>

namespace coap_edge::bench {
namespace {

constexpr std::string_view kUsage = R"(usage: coap-edge-loadgen [options]
Opens N DTLS 1.2 sessions (PSK, or ECDHE-ECDSA with --cert/--key) to a CoAP server, keeps K
confirmable GETs outstanding on each for a fixed time, and prints one JSON report on stdout.
  --host ADDR               server address, numeric (default 127.0.0.1)
  --port N                  server port (default 5684)
  --path /P                 resource to GET (default /.well-known/core)
  --proxy-uri URI           send Proxy-Uri URI (e.g. coap://127.0.0.1:5683/time) instead of
                            --path, to a forward proxy at --host/--port (at most 200 bytes)
  --unique-query            give every request its own query (Uri-Query n=..., or ?n=... on
                            the Proxy-Uri), unique within the run and kept on retransmissions,
                            so that no cache and no coalescing of identical requests answers it
  --psk-identity ID         PSK identity
  --psk-hex HEX             PSK in hex
  --cert F --key F          client certificate and key (PEM/DER): ECDHE-ECDSA instead of PSK
  --ca F                    verify the server's certificate against this CA (default: no check)
  --server-name NAME        host name checked in the server's certificate (with --ca)
  --sessions N              DTLS sessions (1..100000, default 10)
  --workers W               worker processes (1..64, default 2)
  --outstanding K           requests in flight per session (0..16, default 1; 0 = idle)
  --active A                only A of the sessions send requests, the rest stay established
                            and idle (default: all)
  --duration S              seconds of load after all handshakes (0.1..3600, default 5)
  --handshake-timeout S     bound on the handshake phase (1..600, default 30)
  --handshake-concurrency C handshakes in flight at once over all workers (1..10000, default 64)
  --ack-timeout-ms MS       first CoAP retransmission after MS (100..60000, default 2000)
  --ready-file F            create F once the sessions are established (memory measurements)
  --first-request           each session sends one GET and gets its answer before F is created
                            and the load starts (sessions that have talked, as devices do)
  --label TEXT              copied into the report
)";

template <typename T>
bool parseNumber(std::string_view text, T& out, T low, T high) {
  T value{};
  const auto* end = text.data() + text.size();
  const auto [ptr, ec] = std::from_chars(text.data(), end, value);
  if (ec != std::errc{} || ptr != end || value < low || value > high) return false;
  out = value;
  return true;
}

bool parseHex(std::string_view text, std::vector<unsigned char>& out) {
  if (text.empty() || text.size() % 2 != 0 || text.size() > 128) return false;
  out.clear();
  for (std::size_t i = 0; i < text.size(); i += 2) {
    unsigned value = 0;
    const auto [ptr, ec] = std::from_chars(text.data() + i, text.data() + i + 2, value, 16);
    if (ec != std::errc{} || ptr != text.data() + i + 2) return false;
    out.push_back(static_cast<unsigned char>(value));
  }
  return true;
}

}  // namespace

std::optional<Options> parseOptions(int argc, char** argv, int& exit_code) {
  Options o;
  exit_code = 2;
  auto fail = [](std::string_view message) {
    fmt::print(stderr, "coap-edge-loadgen: {}\n(see --help)\n", message);
    return std::nullopt;
  };
  for (int i = 1; i < argc; ++i) {
    const std::string_view flag = argv[i];
    if (flag == "--help" || flag == "-h") {
      fmt::print("{}", kUsage);
      exit_code = 0;
      return std::nullopt;
    }
    if (flag == "--unique-query") {
      o.unique_query = true;
      continue;
    }
    if (flag == "--first-request") {
      o.first_request = true;
      continue;
    }
    if (i + 1 >= argc) return fail(fmt::format("{} needs a value", flag));
    const std::string_view v = argv[++i];
    bool ok = true;
    if (flag == "--host") o.host = v;
    else if (flag == "--port") ok = parseNumber<std::uint16_t>(v, o.port, 1, 65535);
    else if (flag == "--path") {
      o.path = v;
      ok = !v.empty() && v.front() == '/' && v.size() < 200;
    }
    else if (flag == "--proxy-uri") {
      o.proxy_uri = v;
      // An absolute URI without a fragment (RFC 7252 §5.10.2); the proxy checks the rest.
      ok = v.size() <= 200 && v.find("://") != std::string_view::npos && v.find('#') == std::string_view::npos;
    }
    else if (flag == "--label") o.label = v;
    else if (flag == "--psk-identity") {
      o.psk_identity = v;
      ok = !v.empty() && v.size() <= 128;
    }
    else if (flag == "--psk-hex") ok = parseHex(v, o.psk);
    else if (flag == "--cert") o.cert_file = v;
    else if (flag == "--key") o.key_file = v;
    else if (flag == "--ca") o.ca_file = v;
    else if (flag == "--server-name") o.server_name = v;
    else if (flag == "--sessions") ok = parseNumber<std::uint32_t>(v, o.sessions, 1, 100000);
    else if (flag == "--workers") ok = parseNumber<std::uint32_t>(v, o.workers, 1, 64);
    else if (flag == "--outstanding") ok = parseNumber<std::uint32_t>(v, o.outstanding, 0, 16);
    else if (flag == "--active") ok = parseNumber<std::uint32_t>(v, o.active, 1, 100000);
    else if (flag == "--duration") ok = parseNumber<double>(v, o.duration_s, 0.1, 3600.0);
    else if (flag == "--handshake-timeout") ok = parseNumber<double>(v, o.handshake_timeout_s, 1.0, 600.0);
    else if (flag == "--handshake-concurrency") ok = parseNumber<std::uint32_t>(v, o.handshake_concurrency, 1, 10000);
    else if (flag == "--ack-timeout-ms") ok = parseNumber<std::uint32_t>(v, o.ack_timeout_ms, 100, 60000);
    else if (flag == "--ready-file") o.ready_file = v;
    else return fail(fmt::format("unknown option {}", flag));
    if (!ok) return fail(fmt::format("bad value for {}: '{}'", flag, v));
  }
  const bool cert_mode = !o.cert_file.empty() || !o.key_file.empty();
  if (cert_mode && (o.cert_file.empty() || o.key_file.empty())) return fail("--cert and --key go together");
  if (!cert_mode && (o.psk_identity.empty() || o.psk.empty())) {
    return fail("give --psk-identity and --psk-hex (PSK), or --cert and --key (ECDHE-ECDSA)");
  }
  o.workers = std::min(o.workers, o.sessions);
  if (o.active == 0 || o.active > o.sessions) o.active = o.sessions;
  exit_code = 0;
  return o;
}

}  // namespace coap_edge::bench
