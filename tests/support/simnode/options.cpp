#include "options.h"

#include <getopt.h>
#include <netdb.h>
#include <unistd.h>

#include <cerrno>
#include <cmath>
#include <cstdlib>
#include <cstring>

namespace coap_edge::simnode {

const char* const kUsage =
    "usage: coap-edge-simnode [options]\n"
    "A simulated constrained CoAP node (plain coap over UDP) for tests and demos.\n"
    "\n"
    "  --listen ADDR:PORT     listen there (repeatable; A.B.C.D:P or [IPV6]:P); default\n"
    "                         [::]:5683, which is dual-stack (IPv4 and IPv6)\n"
    "  --name NAME            endpoint name (default: the host name)\n"
    "  --join IFNAME          join 224.0.1.187, ff02::fd and ff05::fd (All-CoAP-Nodes) on IFNAME\n"
    "                         and answer multicast GET /.well-known/core (repeatable); needs a\n"
    "                         wildcard listen address, and only one per port (a 0.0.0.0 and\n"
    "                         a [::] socket would both get IPv4 multicast and answer twice)\n"
    "  --leisure S            spread multicast responses over a random 0..S s (default 1, >= 1)\n"
    "  --temp-period S        /sensors/temp changes every S seconds (default 5)\n"
    "  --resources N          N extra resources /r/0 .. /r/N-1 (load tests; at most 10000)\n"
    "  --big-size N           bytes of /big (default 3000, at most 1000000)\n"
    "  --log-requests         log every request handled: method, path, token, Observe\n"
    "  --rd coaps://HOST:PORT register at this Resource Directory (RFC 9176), DTLS-PSK\n"
    "  --psk-identity ID      PSK identity for --rd\n"
    "  --psk-key-file FILE    PSK for --rd: one line of hex\n"
    "  --rd-ep EP             register as endpoint EP (default: --name)\n"
    "  --lifetime LT          registration lifetime in seconds (default 300; refreshed at 75%)\n"
    "  --sleep-every S        awake for S seconds, then sleep (with --sleep-for)\n"
    "  --sleep-for S          sleep S seconds: the node reads nothing from its sockets\n"
    "  --avahi                publish _coap._udp on the first listen port, TXT ep=NAME\n"
    "  -v, --verbose          libcoap logs too (twice: debug)\n"
    "  -h, --help             this text\n"
    "\n"
    "Resources: /sensors/temp (observable), /actuators/led (GET/PUT), /big (3000 bytes,\n"
    "Block2), /r/<i>. Logs one line per event on stderr. SIGTERM/SIGINT: leave the RD\n"
    "(DELETE), exit 0. Exit 1: bad arguments or setup; 2: the RD refused the registration or\n"
    "did not answer.\n";

namespace {

bool parseNumber(const char* text, double min, double max, double& out) {
  char* end = nullptr;
  errno = 0;
  const double v = std::strtod(text, &end);
  if (errno != 0 || end == text || *end != '\0' || !std::isfinite(v) || v < min || v > max) return false;
  out = v;
  return true;
}

bool parseUnsigned(const char* text, unsigned min, unsigned max, unsigned& out) {
  char* end = nullptr;
  errno = 0;
  const unsigned long v = std::strtoul(text, &end, 10);
  if (errno != 0 || end == text || *end != '\0' || text[0] == '-' || v < min || v > max) return false;
  out = static_cast<unsigned>(v);
  return true;
}

// Names go into link-format titles and the RD's ep= query unescaped.
bool validName(const std::string& name) {
  if (name.empty() || name.size() > 63) return false;
  for (char c : name) {
    const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
                    c == '_' || c == '-';
    if (!ok) return false;
  }
  return true;
}

enum Opt : int {
  kListen = 1000,
  kName,
  kJoin,
  kLeisure,
  kTempPeriod,
  kResources,
  kRd,
  kPskIdentity,
  kPskKeyFile,
  kRdEp,
  kLifetime,
  kSleepEvery,
  kSleepFor,
  kAvahi,
  kBigSize,
  kLogRequests,
};

}  // namespace

bool parseListenAddress(const std::string& text, ListenAddress& out) {
  std::string host, port;
  if (!text.empty() && text[0] == '[') {
    const auto close = text.find(']');
    if (close == std::string::npos || close + 1 >= text.size() || text[close + 1] != ':') return false;
    host = text.substr(1, close - 1);
    port = text.substr(close + 2);
  } else {
    const auto colon = text.rfind(':');
    if (colon == std::string::npos || text.find(':') != colon) return false;
    host = text.substr(0, colon);
    port = text.substr(colon + 1);
  }
  unsigned p = 0;
  if (host.empty() || !parseUnsigned(port.c_str(), 0, 65535, p)) return false;
  addrinfo hints{};
  hints.ai_flags = AI_NUMERICHOST | AI_NUMERICSERV | AI_PASSIVE;
  hints.ai_socktype = SOCK_DGRAM;
  hints.ai_family = text[0] == '[' ? AF_INET6 : AF_INET;
  addrinfo* res = nullptr;
  if (getaddrinfo(host.c_str(), port.c_str(), &hints, &res) != 0 || res == nullptr) return false;
  std::memcpy(&out.addr, res->ai_addr, res->ai_addrlen);
  out.size = res->ai_addrlen;
  out.text = text;
  freeaddrinfo(res);
  return true;
}

std::optional<Options> parseOptions(int argc, char** argv, std::string& error) {
  static const option kLong[] = {
      {"listen", required_argument, nullptr, kListen},
      {"name", required_argument, nullptr, kName},
      {"join", required_argument, nullptr, kJoin},
      {"leisure", required_argument, nullptr, kLeisure},
      {"temp-period", required_argument, nullptr, kTempPeriod},
      {"resources", required_argument, nullptr, kResources},
      {"rd", required_argument, nullptr, kRd},
      {"psk-identity", required_argument, nullptr, kPskIdentity},
      {"psk-key-file", required_argument, nullptr, kPskKeyFile},
      {"rd-ep", required_argument, nullptr, kRdEp},
      {"lifetime", required_argument, nullptr, kLifetime},
      {"sleep-every", required_argument, nullptr, kSleepEvery},
      {"sleep-for", required_argument, nullptr, kSleepFor},
      {"avahi", no_argument, nullptr, kAvahi},
      {"big-size", required_argument, nullptr, kBigSize},
      {"log-requests", no_argument, nullptr, kLogRequests},
      {"verbose", no_argument, nullptr, 'v'},
      {"help", no_argument, nullptr, 'h'},
      {nullptr, 0, nullptr, 0},
  };
  Options o;
  opterr = 0;
  optind = 1;
  int c = 0;
  while ((c = getopt_long(argc, argv, ":vh", kLong, nullptr)) != -1) {
    const std::string arg = optarg != nullptr ? optarg : "";
    switch (c) {
      case kListen: {
        ListenAddress l;
        if (!parseListenAddress(arg, l)) {
          error = "--listen: '" + arg + "' is not A.B.C.D:PORT or [IPV6]:PORT";
          return std::nullopt;
        }
        o.listen.push_back(l);
        break;
      }
      case kName:
        if (!validName(arg)) {
          error = "--name: 1 to 63 of A-Z a-z 0-9 . _ -";
          return std::nullopt;
        }
        o.name = arg;
        break;
      case kJoin:
        if (arg.empty() || arg.size() >= 16) {
          error = "--join: an interface name";
          return std::nullopt;
        }
        o.join.push_back(arg);
        break;
      case kLeisure:
        if (!parseNumber(arg.c_str(), 1.0, 60.0, o.leisure_s)) {
          error = "--leisure: seconds from 1 to 60";
          return std::nullopt;
        }
        break;
      case kTempPeriod:
        if (!parseNumber(arg.c_str(), 0.1, 86400.0, o.temp_period_s)) {
          error = "--temp-period: seconds from 0.1 to 86400";
          return std::nullopt;
        }
        break;
      case kResources:
        if (!parseUnsigned(arg.c_str(), 0, 10000, o.extra_resources)) {
          error = "--resources: 0 to 10000";
          return std::nullopt;
        }
        break;
      case kBigSize:
        if (!parseUnsigned(arg.c_str(), 1, 1000000, o.big_size)) {
          error = "--big-size: 1 to 1000000 bytes";
          return std::nullopt;
        }
        break;
      case kLogRequests:
        o.log_requests = true;
        break;
      case kRd:
        o.rd_uri = arg;
        break;
      case kPskIdentity:
        o.psk_identity = arg;
        break;
      case kPskKeyFile:
        o.psk_key_file = arg;
        break;
      case kRdEp:
        if (!validName(arg)) {
          error = "--rd-ep: 1 to 63 of A-Z a-z 0-9 . _ -";
          return std::nullopt;
        }
        o.rd_ep = arg;
        break;
      case kLifetime:
        if (!parseUnsigned(arg.c_str(), 4, 86400 * 7, o.lifetime_s)) {
          error = "--lifetime: seconds from 4 to 604800";
          return std::nullopt;
        }
        break;
      case kSleepEvery:
        if (!parseNumber(arg.c_str(), 0.1, 86400.0, o.sleep_every_s)) {
          error = "--sleep-every: seconds from 0.1 to 86400";
          return std::nullopt;
        }
        break;
      case kSleepFor:
        if (!parseNumber(arg.c_str(), 0.1, 86400.0, o.sleep_for_s)) {
          error = "--sleep-for: seconds from 0.1 to 86400";
          return std::nullopt;
        }
        break;
      case kAvahi:
        o.avahi = true;
        break;
      case 'v':
        ++o.verbose;
        break;
      case 'h':
        o.help = true;
        return o;
      case ':':
        error = std::string("option ") + argv[optind - 1] + " needs a value";
        return std::nullopt;
      default:
        error = std::string("unknown option ") + argv[optind - 1];
        return std::nullopt;
    }
  }
  if (optind < argc) {
    error = std::string("unexpected argument '") + argv[optind] + "'";
    return std::nullopt;
  }
  if ((o.sleep_every_s > 0) != (o.sleep_for_s > 0)) {
    error = "--sleep-every and --sleep-for go together";
    return std::nullopt;
  }
  if (!o.rd_uri.empty() && (o.psk_identity.empty() || o.psk_key_file.empty())) {
    error = "--rd needs --psk-identity and --psk-key-file";
    return std::nullopt;
  }
  if (o.rd_uri.empty() && !o.rd_ep.empty()) {
    error = "--rd-ep needs --rd";
    return std::nullopt;
  }
  if (o.name.empty()) {
    char host[256] = {};
    if (gethostname(host, sizeof(host) - 1) != 0 || host[0] == '\0') {
      error = "no --name and no host name";
      return std::nullopt;
    }
    o.name = host;
    if (!validName(o.name)) {
      error = "the host name '" + o.name + "' is not a valid endpoint name: give --name";
      return std::nullopt;
    }
  }
  if (o.rd_ep.empty()) o.rd_ep = o.name;
  if (o.listen.empty()) {
    // libcoap's IPv6 sockets are dual-stack: one [::] socket serves both families. A second
    // socket on 0.0.0.0 of the same port would join 224.0.1.187 too and answer it twice.
    ListenAddress l;
    parseListenAddress("[::]:5683", l);
    o.listen.push_back(l);
  }
  return o;
}

}  // namespace coap_edge::simnode
