#pragma once
// The agent's configuration: one TOML file (DESIGN.md "Interfaces"). Parsing is pure (no file
// system access beyond reading the file itself) so that the same code runs under libFuzzer.
// Unknown keys are errors; every error names file:line:col.

#include "common/log.h"
#include "policy/acl.h"
#include "policy/rate_limit.h"

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace coap_edge::config {

/// A place in the configuration file (1-based; 0 = unknown).
struct Position {
  std::uint32_t line = 0;
  std::uint32_t column = 0;
};

/// A value together with where it was written, so that later checks (a certificate that cannot
/// be read, a port already in use) can still point at the line that caused them.
template <typename T>
struct Located {
  T value{};
  Position where{};
};

/// "host:port" as written: IPv4 "a.b.c.d:p", IPv6 "[addr]:p" (brackets required), port 0..65535.
struct SocketAddress {
  std::string host;  ///< numeric address, IPv6 without brackets
  std::uint16_t port = 0;
  std::string text;  ///< as written, for messages
};

struct AgentSection {
  std::string name = "coap-edge";                             ///< [agent] name
  Located<std::filesystem::path> state_dir{"/var/lib/coap-edge", {}};  ///< [agent] state_dir
  log::Level log_level = log::Level::info;                    ///< [agent] log_level
  /// [agent] metrics_file: Prometheus text file for node_exporter's textfile collector
  /// (e.g. "/var/lib/prometheus/node-exporter/coap-edge.prom"); absent = not written.
  std::optional<Located<std::filesystem::path>> metrics_file;
  /// [agent] metrics_interval: how often metrics_file is rewritten, 1s..1h.
  std::chrono::milliseconds metrics_interval{std::chrono::seconds(5)};
};

struct DownstreamSection {
  /// [downstream] listen: coaps endpoints. Absent or empty: 127.0.0.1:5684 and [::1]:5684
  /// (secure by default: nothing is exposed until the operator says so).
  std::vector<Located<SocketAddress>> listen;
  /// [downstream] plain_listen: coap (no DTLS) endpoints; default none.
  std::vector<Located<SocketAddress>> plain_listen;
  /// [downstream] certificate, private_key, ca: all three or none; relative paths are resolved
  /// against the directory of the configuration file.
  std::optional<Located<std::filesystem::path>> certificate;
  std::optional<Located<std::filesystem::path>> private_key;
  std::optional<Located<std::filesystem::path>> ca;
  bool psk = true;  ///< [downstream] psk: accept PSK handshakes (keys from the keystore)
  std::chrono::milliseconds idle_timeout{std::chrono::minutes(5)};  ///< [downstream] idle_timeout
  /// [downstream] dtls_retransmit_min / dtls_retransmit_max: the DTLS handshake retransmission
  /// timer starts at min and doubles up to max, where the handshake gives up. The defaults are
  /// RFC 7925 §11's for constrained (802.15.4-class) links: 9 s, backing off to 60 s.
  std::chrono::milliseconds dtls_retransmit_min{std::chrono::seconds(9)};
  std::chrono::milliseconds dtls_retransmit_max{std::chrono::seconds(60)};
  /// [downstream] dtls_half_open_timeout: a session still in handshake that has heard nothing
  /// from its peer for this long may be dropped to make room for a new handshake. Longer than
  /// the largest retransmission timeout, so a slow peer is not cut off between two flights.
  std::chrono::milliseconds dtls_half_open_timeout{std::chrono::minutes(2)};
  [[nodiscard]] bool x509() const { return certificate.has_value(); }
};

/// [discovery]: how nodes are found. Without the section nothing is probed or browsed; the
/// Resource Directory is still served (nodes that register themselves need nothing else).
struct DiscoverySection {
  /// [discovery] interfaces: where to probe multicast and browse mDNS ("eth0", "wpan0").
  std::vector<Located<std::string>> interfaces;
  bool multicast = true;  ///< [discovery] multicast: GET /.well-known/core to All-CoAP-Nodes
  bool dns_sd = true;     ///< [discovery] dns_sd: browse _coap._udp/_coaps._udp, publish the gateway
  std::chrono::milliseconds interval{std::chrono::seconds(60)};  ///< [discovery] interval, 1s..1d
  /// [discovery] leisure: how long answers to one multicast probe are gathered (RFC 7252 §8.2).
  std::chrono::milliseconds leisure{std::chrono::seconds(5)};
  /// [discovery] rt: only nodes with a resource of this type answer the probe (?rt=...).
  std::optional<std::string> rt;
  /// [discovery] node_ttl: a node found by multicast that stops answering is dropped after
  /// this; default 3 × interval.
  std::optional<std::chrono::milliseconds> node_ttl;
  bool publish = true;  ///< [discovery] publish: announce the gateway as _coaps._udp (with dns_sd)
  bool resource_directory = true;  ///< [discovery] resource_directory: serve /rd (RFC 9176)
  std::uint32_t max_nodes = 1024;  ///< [discovery] max_nodes, 1..100000
  [[nodiscard]] std::chrono::milliseconds nodeTtl() const { return node_ttl.value_or(3 * interval); }
};

/// [[limits.override]]: a different per_identity rate for an identity (or glob) or a group.
struct LimitOverride {
  std::string label;  ///< for logs: `identity "x"` or `group "g"`
  std::vector<policy::IdentityPattern> who;
  policy::RateSpec per_identity;
};

struct LimitsSection {
  std::uint32_t max_sessions = 10000;  ///< [limits] max_sessions, 1..1000000
  /// [limits] max_handshakes: DTLS handshakes in flight at once (libcoap), 1..100000.
  std::uint32_t max_handshakes = 100;
  /// [limits] per_identity = { rate, burst }: requests per second of each authenticated
  /// identity. Absent: unlimited.
  std::optional<policy::RateSpec> per_identity;
  /// [limits] handshakes_per_address = { rate, burst }: DTLS handshakes per second from one
  /// source IP address (any port). Absent: unlimited.
  std::optional<policy::RateSpec> handshakes_per_address;
  /// [[limits.override]] in file order; the first that matches an identity applies.
  std::vector<LimitOverride> overrides;
  /// The per_identity rate for `identity`: its first matching override, else per_identity.
  [[nodiscard]] std::optional<policy::RateSpec> perIdentityFor(std::string_view identity) const;
};

struct Config {
  std::filesystem::path file;  ///< the file this was read from (as given)
  AgentSection agent;
  DownstreamSection downstream;
  DiscoverySection discovery;
  LimitsSection limits;
  /// [[acl]] entries and [groups], compiled (policy/acl.h). Without entries: the built-in
  /// rules only (GET /.well-known/core for everyone, a device's own /nodes/X/** and RD
  /// endpoint); everything else is denied.
  policy::Policy acl;
};

struct Error {
  std::string file;
  Position where;
  std::string message;
  /// "file:line:col: message" (or "file: message" without a position).
  [[nodiscard]] std::string str() const;
};

struct LoadResult {
  std::optional<Config> config;
  std::optional<Error> error;
  [[nodiscard]] bool ok() const { return config.has_value(); }
};

/// Reads and validates a configuration file. Never throws.
[[nodiscard]] LoadResult loadFile(const std::filesystem::path& path);

/// Parses configuration text; `source` names the file in errors and anchors relative paths.
/// Never throws (the fuzz target relies on that).
[[nodiscard]] LoadResult parse(std::string_view text, const std::filesystem::path& source);

/// "250ms", "30s", "5m", "1h", "1d" (one integer and one unit). Used by the parser and by ctl.
[[nodiscard]] std::optional<std::chrono::milliseconds> parseDuration(std::string_view text);

/// "127.0.0.1:5684", "[::1]:5684" (see SocketAddress). Host names are refused: there is no DNS
/// lookup at startup. On failure, `why` (if given) says what is wrong, without repeating `text`.
[[nodiscard]] std::optional<SocketAddress> parseSocketAddress(std::string_view text, std::string* why = nullptr);

/// Default coaps listen addresses used when [downstream] listen is absent or empty.
[[nodiscard]] std::vector<SocketAddress> defaultListen();

}  // namespace coap_edge::config
