#pragma once
// Command line of coap-edge-simnode (see --help and README.md beside this file).

#include <sys/socket.h>

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace coap_edge::simnode {

struct ListenAddress {
  std::string text;  ///< as given, for the log
  sockaddr_storage addr{};
  socklen_t size = 0;
};

struct Options {
  std::vector<ListenAddress> listen;  ///< default [::]:5683 (dual-stack)
  std::string name;                   ///< endpoint name, default the host name
  std::vector<std::string> join;      ///< interfaces to join the All-CoAP-Nodes groups on
  double leisure_s = 1.0;             ///< multicast response spread (RFC 7252 §8.2 Leisure), >= 1
  double temp_period_s = 5.0;
  unsigned extra_resources = 0;
  unsigned big_size = 3000;  ///< bytes of /big
  bool log_requests = false; ///< one log line per request handled (tests count node traffic)
  // Resource Directory (RFC 9176) over coaps with a PSK.
  std::string rd_uri;
  std::string psk_identity;
  std::string psk_key_file;
  std::string rd_ep;  ///< endpoint name to register; default `name`
  unsigned lifetime_s = 300;
  // Sleepy node: awake for sleep_every_s, then deaf for sleep_for_s, and again.
  double sleep_every_s = 0;
  double sleep_for_s = 0;
  bool avahi = false;
  int verbose = 0;  ///< 1: libcoap info, 2: libcoap debug
  bool help = false;
};

/// Parses argv; on error returns nullopt and sets `error`.
std::optional<Options> parseOptions(int argc, char** argv, std::string& error);
/// Parses "A.B.C.D:PORT" or "[IPV6]:PORT" (numeric only); false if it is neither.
bool parseListenAddress(const std::string& text, ListenAddress& out);

extern const char* const kUsage;

}  // namespace coap_edge::simnode
