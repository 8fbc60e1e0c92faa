#include "options.h"

#include "util.h"

#include <getopt.h>

#include <cerrno>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <sstream>

namespace coap_edge::testpeer {

const char* const kUsage =
    "usage: coap-edge-testpeer client [options] METHOD URI\n"
    "       coap-edge-testpeer upstream --listen ADDR:PORT --psk-identity ID --psk-key KEY [options]\n"
    "       coap-edge-testpeer upstream --listen ADDR:PORT --certificate F --private-key F --ca F [options]\n"
    "A libcoap 4.3.5 test peer for coap-edge's integration tests (see README.md).\n"
    "\n"
    "client: METHOD is get|put|post|delete|fetch; URI is coap:// or coaps://HOST:PORT/PATH?QUERY\n"
    "  -e TEXT                payload\n"
    "  -f FILE                payload from FILE\n"
    "  -t CF                  Content-Format number\n"
    "  -A CF                  Accept\n"
    "  -s S                   observe for S seconds: print each notification's payload on a line,\n"
    "                         then deregister\n"
    "  -P URI                 send to this coap(s):// proxy with Proxy-Uri = URI\n"
    "  --timeout S            overall bound (default 10); exit 3 when reached\n"
    "  --print-code           print C.DD to stderr on success too\n"
    "  --linger S             then keep the session S more seconds, answering the peer's requests:\n"
    "                         GET /big (--big-size bytes, Block2) and /tick (observable, 0.5 s)\n"
    "  --big-size N           bytes of /big (default 5000, at most 1000000)\n"
    "  --max-retransmit N     CON retransmissions (0..20, default 4)\n"
    "  --ack-timeout S        first CON retransmission after S seconds (0.5..60, default 2)\n"
    "  --certificate FILE     coaps with X.509 instead of PSK: our certificate (PEM), with\n"
    "  --private-key FILE     its key and the CA the server's certificate must chain to\n"
    "  --ca FILE\n"
    "  --server-name NAME     with --certificate: SNI and the name given to Mbed TLS (default\n"
    "                         the URI's host; libcoap does not refuse a mismatch)\n"
    "\n"
    "upstream: a DTLS server (PSK and/or X.509) that takes telemetry and sends requests back over\n"
    "the session\n"
    "  --listen ADDR:PORT     A.B.C.D:P or [IPV6]:P (numeric; port 0 picks one, see the log)\n"
    "  --telemetry-log FILE   one JSON line per POST/PUT under /telemetry\n"
    "  --drop-telemetry N     answer the first N telemetry requests 5.03 (Max-Age 1)\n"
    "  --rd                   a minimal Resource Directory at /rd (register, refresh, delete)\n"
    "  --request \"M PATH [PAYLOAD]\"  send to the gateway once its session is up (repeatable)\n"
    "  --observe PATH         then observe PATH on the gateway ...\n"
    "  --observe-seconds S    ... for S seconds (default 10)\n"
    "  --out FILE             REQ/NOTIFY lines there (default stdout)\n"
    "  --exit-after S         exit 0 after S seconds (default 60)\n"
    "  --certificate FILE     X.509: our certificate (PEM) ...\n"
    "  --private-key FILE     ... its key (PEM) ...\n"
    "  --ca FILE              ... and the CA the client's certificate must chain to (verified,\n"
    "                         expiry included)\n"
    "\n"
    "both:\n"
    "  --psk-identity ID      DTLS PSK identity\n"
    "  --psk-key KEY          DTLS PSK as text\n"
    "  --psk-key-hex HEX      DTLS PSK as hex\n"
    "  -v, --verbose          libcoap logs too (twice: debug)\n"
    "  -h, --help             this text\n"
    "\n"
    "Exit codes: 0 success (2.xx), 1 bad arguments or setup, 2 a non-2.xx response (C.DD and\n"
    "the diagnostic payload on stderr), 3 timeout, 4 no response (reset, DTLS failure, ICMP).\n";

namespace {

bool parseNumber(const char* text, double min, double max, double& out) {
  char* end = nullptr;
  errno = 0;
  const double v = std::strtod(text, &end);
  if (errno != 0 || end == text || *end != '\0' || !std::isfinite(v) || v < min || v > max) return false;
  out = v;
  return true;
}

bool parseInt(const char* text, long min, long max, long& out) {
  char* end = nullptr;
  errno = 0;
  const long v = std::strtol(text, &end, 10);
  if (errno != 0 || end == text || *end != '\0' || v < min || v > max) return false;
  out = v;
  return true;
}

bool validMethod(const std::string& m) {
  return m == "get" || m == "put" || m == "post" || m == "delete" || m == "fetch";
}

std::string lower(std::string s) {
  for (char& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

enum Opt : int {
  kPskIdentity = 1000,
  kPskKey,
  kPskKeyHex,
  kTimeout,
  kPrintCode,
  kListen,
  kTelemetryLog,
  kDropTelemetry,
  kRequest,
  kObserve,
  kObserveSeconds,
  kOut,
  kExitAfter,
  kLinger,
  kBigSize,
  kCertificate,
  kPrivateKey,
  kCa,
  kRd,
  kMaxRetransmit,
  kAckTimeout,
  kServerName,
};

}  // namespace

std::optional<Options> parseOptions(int argc, char** argv, std::string& error) {
  static const option kLong[] = {
      {"psk-identity", required_argument, nullptr, kPskIdentity},
      {"psk-key", required_argument, nullptr, kPskKey},
      {"psk-key-hex", required_argument, nullptr, kPskKeyHex},
      {"timeout", required_argument, nullptr, kTimeout},
      {"print-code", no_argument, nullptr, kPrintCode},
      {"listen", required_argument, nullptr, kListen},
      {"telemetry-log", required_argument, nullptr, kTelemetryLog},
      {"drop-telemetry", required_argument, nullptr, kDropTelemetry},
      {"request", required_argument, nullptr, kRequest},
      {"observe", required_argument, nullptr, kObserve},
      {"observe-seconds", required_argument, nullptr, kObserveSeconds},
      {"out", required_argument, nullptr, kOut},
      {"exit-after", required_argument, nullptr, kExitAfter},
      {"linger", required_argument, nullptr, kLinger},
      {"big-size", required_argument, nullptr, kBigSize},
      {"certificate", required_argument, nullptr, kCertificate},
      {"private-key", required_argument, nullptr, kPrivateKey},
      {"ca", required_argument, nullptr, kCa},
      {"rd", no_argument, nullptr, kRd},
      {"max-retransmit", required_argument, nullptr, kMaxRetransmit},
      {"ack-timeout", required_argument, nullptr, kAckTimeout},
      {"server-name", required_argument, nullptr, kServerName},
      {"verbose", no_argument, nullptr, 'v'},
      {"help", no_argument, nullptr, 'h'},
      {nullptr, 0, nullptr, 0},
  };
  Options o;
  if (argc < 2) {
    error = "no mode: client or upstream";
    return std::nullopt;
  }
  const std::string mode = argv[1];
  if (mode == "-h" || mode == "--help") {
    o.help = true;
    return o;
  }
  if (mode == "client") {
    o.mode = Mode::client;
  } else if (mode == "upstream") {
    o.mode = Mode::upstream;
  } else {
    error = "unknown mode '" + mode + "': client or upstream";
    return std::nullopt;
  }
  const bool client = o.mode == Mode::client;
  auto onlyFor = [&](bool for_client, const char* name) {
    if (for_client == client) return true;
    error = std::string(name) + " is for " + (for_client ? "client" : "upstream") + " mode";
    return false;
  };
  bool have_key = false;
  opterr = 0;
  optind = 1;
  int c = 0;
  // argv + 1: getopt starts after the mode word.
  while ((c = getopt_long(argc - 1, argv + 1, ":e:f:t:A:s:P:vh", kLong, nullptr)) != -1) {
    const std::string arg = optarg != nullptr ? optarg : "";
    long n = 0;
    switch (c) {
      case 'e':
        if (!onlyFor(true, "-e")) return std::nullopt;
        o.client.payload = arg;
        break;
      case 'f': {
        if (!onlyFor(true, "-f")) return std::nullopt;
        std::ifstream in(arg, std::ios::binary);
        std::stringstream text;
        text << in.rdbuf();
        if (!in) {
          error = "-f: cannot read " + arg;
          return std::nullopt;
        }
        o.client.payload = text.str();
        break;
      }
      case 't':
      case 'A':
        if (!onlyFor(true, c == 't' ? "-t" : "-A")) return std::nullopt;
        if (!parseInt(arg.c_str(), 0, 65535, n)) {
          error = std::string(c == 't' ? "-t" : "-A") + ": a content format number 0..65535";
          return std::nullopt;
        }
        (c == 't' ? o.client.content_format : o.client.accept) = static_cast<int>(n);
        break;
      case 's':
        if (!onlyFor(true, "-s") || !parseNumber(arg.c_str(), 0.1, 86400, o.client.observe_s)) {
          if (error.empty()) error = "-s: seconds from 0.1 to 86400";
          return std::nullopt;
        }
        break;
      case 'P':
        if (!onlyFor(true, "-P")) return std::nullopt;
        o.client.proxy = arg;
        break;
      case kTimeout:
        if (!onlyFor(true, "--timeout") || !parseNumber(arg.c_str(), 0.1, 86400, o.client.timeout_s)) {
          if (error.empty()) error = "--timeout: seconds from 0.1 to 86400";
          return std::nullopt;
        }
        break;
      case kLinger:
        if (!onlyFor(true, "--linger") || !parseNumber(arg.c_str(), 0.1, 86400, o.client.linger_s)) {
          if (error.empty()) error = "--linger: seconds from 0.1 to 86400";
          return std::nullopt;
        }
        break;
      case kBigSize:
        if (!onlyFor(true, "--big-size") || !parseInt(arg.c_str(), 1, 1000000, n)) {
          if (error.empty()) error = "--big-size: 1 to 1000000 bytes";
          return std::nullopt;
        }
        o.client.big_size = static_cast<unsigned>(n);
        break;
      case kPrintCode:
        if (!onlyFor(true, "--print-code")) return std::nullopt;
        o.client.print_code = true;
        break;
      case kPskIdentity:
        o.psk.identity = arg;
        break;
      case kPskKey:
        o.psk.key = arg;
        have_key = true;
        break;
      case kPskKeyHex: {
        const auto bytes = parseHex(arg);
        if (!bytes) {
          error = "--psk-key-hex: an even number of hex digits";
          return std::nullopt;
        }
        o.psk.key = *bytes;
        have_key = true;
        break;
      }
      case kListen:
        if (!onlyFor(false, "--listen")) return std::nullopt;
        o.upstream.listen = arg;
        break;
      case kTelemetryLog:
        if (!onlyFor(false, "--telemetry-log")) return std::nullopt;
        o.upstream.telemetry_log = arg;
        break;
      case kDropTelemetry:
        if (!onlyFor(false, "--drop-telemetry") || !parseInt(arg.c_str(), 0, 1000000, n)) {
          if (error.empty()) error = "--drop-telemetry: 0 to 1000000";
          return std::nullopt;
        }
        o.upstream.drop_telemetry = static_cast<unsigned>(n);
        break;
      case kRd:
        if (!onlyFor(false, "--rd")) return std::nullopt;
        o.upstream.rd = true;
        break;
      case kRequest: {
        if (!onlyFor(false, "--request")) return std::nullopt;
        UpstreamRequest r;
        const auto sp1 = arg.find(' ');
        r.method = lower(arg.substr(0, sp1));
        if (sp1 != std::string::npos) {
          const auto sp2 = arg.find(' ', sp1 + 1);
          r.path = arg.substr(sp1 + 1, sp2 == std::string::npos ? std::string::npos : sp2 - sp1 - 1);
          if (sp2 != std::string::npos) r.payload = arg.substr(sp2 + 1);
        }
        if (!validMethod(r.method) || r.path.empty() || r.path[0] != '/') {
          error = "--request: \"METHOD /PATH [PAYLOAD]\" with METHOD get|put|post|delete|fetch";
          return std::nullopt;
        }
        o.upstream.requests.push_back(r);
        break;
      }
      case kObserve:
        if (!onlyFor(false, "--observe")) return std::nullopt;
        if (arg.empty() || arg[0] != '/') {
          error = "--observe: a /PATH";
          return std::nullopt;
        }
        o.upstream.observe_path = arg;
        break;
      case kObserveSeconds:
        if (!onlyFor(false, "--observe-seconds") || !parseNumber(arg.c_str(), 0.1, 86400, o.upstream.observe_s)) {
          if (error.empty()) error = "--observe-seconds: seconds from 0.1 to 86400";
          return std::nullopt;
        }
        break;
      case kOut:
        if (!onlyFor(false, "--out")) return std::nullopt;
        o.upstream.out = arg;
        break;
      case kExitAfter:
        if (!onlyFor(false, "--exit-after") || !parseNumber(arg.c_str(), 0.1, 86400, o.upstream.exit_after_s)) {
          if (error.empty()) error = "--exit-after: seconds from 0.1 to 86400";
          return std::nullopt;
        }
        break;
      case kCertificate:
        (client ? o.client.certificate : o.upstream.certificate) = arg;
        break;
      case kPrivateKey:
        (client ? o.client.private_key : o.upstream.private_key) = arg;
        break;
      case kCa:
        (client ? o.client.ca : o.upstream.ca) = arg;
        break;
      case kMaxRetransmit: {
        long count = 0;
        if (!onlyFor(true, "--max-retransmit") || !parseInt(arg.c_str(), 0, 20, count)) {
          if (error.empty()) error = "--max-retransmit: 0 to 20";
          return std::nullopt;
        }
        o.client.max_retransmit = static_cast<int>(count);
        break;
      }
      case kServerName:
        if (!onlyFor(true, "--server-name")) return std::nullopt;
        o.client.server_name = arg;
        break;
      case kAckTimeout:
        if (!onlyFor(true, "--ack-timeout") || !parseNumber(arg.c_str(), 0.5, 60, o.client.ack_timeout_s)) {
          if (error.empty()) error = "--ack-timeout: seconds from 0.5 to 60";
          return std::nullopt;
        }
        break;
      case 'v':
        ++o.verbose;
        break;
      case 'h':
        o.help = true;
        return o;
      case ':':
        error = std::string("option ") + argv[optind] + " needs a value";
        return std::nullopt;
      default:
        error = std::string("unknown option ") + argv[optind];
        return std::nullopt;
    }
  }
  const int first = optind + 1;  // back to argv's numbering
  if (!o.psk.identity.empty() != have_key) {
    error = "--psk-identity and --psk-key (or --psk-key-hex) go together";
    return std::nullopt;
  }
  if (client) {
    if (argc - first != 2) {
      error = "client mode needs METHOD and URI";
      return std::nullopt;
    }
    o.client.method = lower(argv[first]);
    o.client.uri = argv[first + 1];
    if (!validMethod(o.client.method)) {
      error = "METHOD: get, put, post, delete or fetch";
      return std::nullopt;
    }
    if (o.client.observe_s > 0 && o.client.method != "get" && o.client.method != "fetch") {
      error = "-s goes with get or fetch";
      return std::nullopt;
    }
    const int client_pki = !o.client.certificate.empty() + !o.client.private_key.empty() + !o.client.ca.empty();
    if (client_pki != 0 && client_pki != 3) {
      error = "--certificate, --private-key and --ca go together";
      return std::nullopt;
    }
    return o;
  }
  if (first < argc) {
    error = std::string("unexpected argument '") + argv[first] + "'";
    return std::nullopt;
  }
  const int pki_files = !o.upstream.certificate.empty() + !o.upstream.private_key.empty() + !o.upstream.ca.empty();
  if (pki_files != 0 && pki_files != 3) {
    error = "--certificate, --private-key and --ca go together";
    return std::nullopt;
  }
  if (o.upstream.listen.empty() || (o.psk.identity.empty() && pki_files == 0)) {
    error = "upstream mode needs --listen, and --psk-identity with --psk-key or --certificate, --private-key "
            "and --ca";
    return std::nullopt;
  }
  return o;
}

}  // namespace coap_edge::testpeer
