#pragma once
// Command line of coap-edge-testpeer (see --help and README.md beside this file).

#include <optional>
#include <string>
#include <vector>

namespace coap_edge::testpeer {

enum class Mode { client, upstream };

struct Psk {
  std::string identity;
  std::string key;  ///< raw bytes (from --psk-key text or --psk-key-hex)
};

struct ClientOptions {
  std::string method;  ///< get|put|post|delete|fetch (lower case)
  std::string uri;     ///< coap:// or coaps:// URI of the resource
  std::string proxy;   ///< -P: send to this URI with Proxy-Uri = uri
  std::optional<std::string> payload;
  int content_format = -1;  ///< -t
  int accept = -1;          ///< -A
  double observe_s = 0;     ///< -s: observe for this long (0: no Observe)
  double timeout_s = 10;
  bool print_code = false;
  double linger_s = 0;         ///< keep the session this long after the result, serving /big and /tick
  unsigned big_size = 5000;    ///< bytes of /big while lingering
  /// CON retransmissions (RFC 7252 MAX_RETRANSMIT, libcoap's default 4) and the first
  /// ACK_TIMEOUT in seconds (default 2): a device on a lossy link retries more.
  int max_retransmit = -1;
  double ack_timeout_s = 0;
  /// X.509 instead of PSK: our certificate and key, and the CA the server's must chain to.
  std::string certificate;
  std::string private_key;
  std::string ca;
  /// The name the server's certificate must carry (and SNI); default the URI's host.
  std::string server_name;
};

struct UpstreamRequest {
  std::string method;
  std::string path;  ///< "/a/b?q=1"
  std::string payload;
};

struct UpstreamOptions {
  std::string listen;  ///< ADDR:PORT, numeric, IPv6 in brackets
  std::string telemetry_log;
  unsigned drop_telemetry = 0;
  bool rd = false;  ///< --rd: a minimal Resource Directory at /rd (RFC 9176)
  std::vector<UpstreamRequest> requests;
  std::string observe_path;
  double observe_s = 10;
  std::string out;  ///< "" = stdout
  double exit_after_s = 60;
  /// X.509 instead of (or besides) PSK: our certificate and key, and the CA that the gateway's
  /// client certificate must chain to (PEM files; all three or none).
  std::string certificate;
  std::string private_key;
  std::string ca;
};

struct Options {
  Mode mode = Mode::client;
  Psk psk;
  ClientOptions client;
  UpstreamOptions upstream;
  int verbose = 0;
  bool help = false;
};

/// Parses argv; on error returns nullopt and sets `error`.
std::optional<Options> parseOptions(int argc, char** argv, std::string& error);

extern const char* const kUsage;

}  // namespace coap_edge::testpeer
