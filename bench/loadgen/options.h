#pragma once
// Command line of coap-edge-loadgen. Every quantity is bounded so that one run is bounded in time,
// memory and file descriptors whatever it is given.

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace coap_edge::bench {

struct Options {
  std::string host = "127.0.0.1";  ///< numeric IPv4 or IPv6 address
  std::uint16_t port = 5684;
  std::string path = "/.well-known/core";
  std::string proxy_uri;      ///< set: requests carry this Proxy-Uri instead of Uri-Path (forward proxy)
  bool unique_query = false;  ///< every request gets its own query, so no cache or coalescing answers it
  std::string label;  ///< copied into the JSON report

  std::string psk_identity;
  std::vector<unsigned char> psk;  ///< from --psk-hex
  std::string cert_file, key_file, ca_file, server_name;  ///< ECDHE-ECDSA when cert_file is set

  std::uint32_t sessions = 10;
  std::uint32_t workers = 2;      ///< processes; each owns sessions/workers sessions
  std::uint32_t outstanding = 1;  ///< confirmable GETs in flight per session; 0 = idle sessions
  std::uint32_t active = 0;       ///< sessions that send requests (0 = all); the rest stay idle
  double duration_s = 5.0;
  double handshake_timeout_s = 30.0;
  std::uint32_t handshake_concurrency = 64;  ///< below libcoap's 100 half-open sessions
  std::uint32_t ack_timeout_ms = 2000;       ///< RFC 7252 ACK_TIMEOUT (no random factor)
  bool first_request = false;  ///< one answered GET per session before --ready-file and the load
  std::string ready_file;                    ///< created once every session is established
};

/// Parses argv; on error or --help returns nullopt after printing to stderr/stdout, with
/// `exit_code` set (2 for a usage error, 0 for --help).
std::optional<Options> parseOptions(int argc, char** argv, int& exit_code);

}  // namespace coap_edge::bench
