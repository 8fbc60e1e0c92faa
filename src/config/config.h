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
  /// [downstream] receive_buffer_bytes: SO_RCVBUF of every listen and plain_listen socket, so
  /// that a burst of datagrams while the agent waits for a core is queued, not dropped (each
  /// drop costs its client a 2-3 s retransmission). 0 leaves the kernel's default (208 KiB on
  /// Debian); the kernel caps a request at net.core.rmem_max.
  std::uint32_t receive_buffer_bytes = kDefaultReceiveBufferBytes;
  static constexpr std::uint32_t kDefaultReceiveBufferBytes = 1024 * 1024;
  static constexpr std::uint32_t kMinReceiveBufferBytes = 64 * 1024;
  static constexpr std::uint32_t kMaxReceiveBufferBytes = 64 * 1024 * 1024;
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
  /// [limits] duplicate_max_bytes: what all sessions may keep together to answer duplicate
  /// requests (RFC 7252 §4.5), 0..1 GiB; 0 keeps nothing (duplicates are served again).
  std::uint64_t duplicate_max_bytes = 4 * 1024 * 1024;
  /// [limits] per_identity = { rate, burst }: requests per second of each authenticated
  /// identity. Absent: unlimited.
  std::optional<policy::RateSpec> per_identity;
  /// [limits] handshakes_per_address = { rate, burst }: DTLS handshakes per second from one
  /// source IP address (any port). Absent: unlimited.
  std::optional<policy::RateSpec> handshakes_per_address;
  /// [limits] per_node = { rate, burst }: requests per second the relay forwards to each node
  /// (protects constrained nodes; served from cache or coalesced where possible). Absent: unlimited.
  std::optional<policy::RateSpec> per_node;
  /// [[limits.override]] in file order; the first that matches an identity applies.
  std::vector<LimitOverride> overrides;
  /// The per_identity rate for `identity`: its first matching override, else per_identity.
  [[nodiscard]] std::optional<policy::RateSpec> perIdentityFor(std::string_view identity) const;
};

/// [[relay.credentials]]: the gateway's own DTLS-PSK credential for nodes that speak only coaps
/// (a node that holds a session with the gateway is asked back over that session instead).
struct NodeCredential {
  Position where;                              ///< the [[relay.credentials]] table
  std::vector<policy::IdentityPattern> nodes;  ///< node ids, or globs like "sensor-*"
  std::string psk_identity;                    ///< the identity the gateway presents
  /// The key in hex on one line; read by checkNodeCredentialFiles() and the agent.
  Located<std::filesystem::path> psk_key_file;
};

/// [relay]: how requests to nodes (/nodes/{id}/...) are carried out.
struct RelaySection {
  /// [relay] timeout: one exchange with a node, retransmissions and block-wise transfers
  /// included, 1s..5m.
  std::chrono::milliseconds request_timeout{std::chrono::seconds(10)};
  /// [relay] cache_max_bytes: response cache size, 0 = no cache, at most 1 GiB.
  std::uint64_t cache_max_bytes = 1024 * 1024;
  std::uint32_t max_in_flight = 256;  ///< [relay] max_in_flight: requests to nodes at once, 1..100000
  bool observe = true;                ///< [relay] observe: relay Observe (RFC 7641) to nodes
  /// [[relay.credentials]] in file order; the first entry whose nodes match a node id applies.
  std::vector<NodeCredential> credentials;
};

/// [upstream] uri, parsed: "coaps://host[:port]" with nothing after the authority but "/".
struct UpstreamUri {
  std::string host;         ///< a DNS name, or a numeric address (IPv6 without brackets)
  std::uint16_t port = 5684;
  bool ip_literal = false;  ///< host is a numeric IPv4 or IPv6 address
  std::string text;         ///< as written, for messages
};

/// [upstream] registration: how nodes appear at the upstream Resource Directory (RFC 9176).
enum class RdRegistrationMode : std::uint8_t {
  per_node,  ///< "per-node": one RD endpoint per node (ep = node id)
  gateway,   ///< "gateway": one endpoint (ep = [agent] name) listing every node under /nodes/{id}
};

/// [upstream] telemetry_format: the content format of telemetry POSTs (RFC 8428).
enum class TelemetryFormat : std::uint8_t { senml_cbor, senml_json };
/// [upstream] queue_when_full: which values a full queue gives up.
enum class QueueWhenFull : std::uint8_t { drop_oldest, drop_newest };
/// [upstream] queue_sync: SQLite's synchronous pragma for the queue ("full" survives power loss).
enum class QueueSync : std::uint8_t { full, normal };

/// [upstream]: the authenticated DTLS session the gateway opens to its upstream service. Over it
/// the gateway registers its nodes, pushes telemetry and answers requests for /nodes/... (role
/// reversal). Exactly one credential: PSK (psk_identity + psk_key_file) or X.509 (certificate +
/// private_key + ca). Relative paths are resolved against the configuration file's directory.
struct UpstreamSection {
  Position where;             ///< the [upstream] header, for errors about the whole section
  Located<UpstreamUri> uri;   ///< [upstream] uri (required)
  /// [upstream] identity: the ACL identity of requests the upstream sends over this session.
  std::string identity = "upstream";
  std::optional<std::string> psk_identity;                       ///< [upstream] psk_identity
  /// [upstream] psk_key_file: the key in hex on one line. Only named here; checkUpstreamFiles()
  /// and readPskKeyFile() read it.
  std::optional<Located<std::filesystem::path>> psk_key_file;
  std::optional<Located<std::filesystem::path>> certificate;     ///< [upstream] certificate (client)
  std::optional<Located<std::filesystem::path>> private_key;     ///< [upstream] private_key
  std::optional<Located<std::filesystem::path>> ca;              ///< [upstream] ca: the server's CA
  /// [upstream] server_name: the name checked against the server's certificate (and sent as
  /// SNI). Absent: the uri's host; required when that is an IP literal (X.509 only).
  std::optional<std::string> server_name;
  /// [upstream] keepalive: CoAP ping after this long idle; 0 = off, else 5s..1h.
  std::chrono::milliseconds keepalive{std::chrono::seconds(30)};
  /// [upstream] reconnect_min / reconnect_max: backoff between connection attempts.
  std::chrono::milliseconds reconnect_min{std::chrono::seconds(1)};
  std::chrono::milliseconds reconnect_max{std::chrono::minutes(5)};
  RdRegistrationMode registration = RdRegistrationMode::per_node;  ///< [upstream] registration
  /// [upstream] rd_path: the RD's registration interface, segments without leading '/'.
  std::string rd_path = "rd";
  std::chrono::seconds lifetime{std::chrono::hours(1)};  ///< [upstream] lifetime (RD lt), 60s..7d
  /// [upstream] telemetry_path: where values are POSTed, "/..." with "{node}" standing for the
  /// node id. Absent: no telemetry push (and no telemetry_* / queue_* keys).
  std::optional<Located<std::string>> telemetry_path;
  TelemetryFormat telemetry_format = TelemetryFormat::senml_cbor;  ///< [upstream] telemetry_format
  std::uint32_t telemetry_batch = 64;  ///< [upstream] telemetry_batch: values per POST, 1..1000
  /// [upstream] telemetry_interval: a batch is sent at most this often, 100ms..1h.
  std::chrono::milliseconds telemetry_interval{std::chrono::seconds(1)};
  /// [upstream] queue_max_bytes: bound of state_dir/telemetry.db, 4096..4 GiB.
  std::uint64_t queue_max_bytes = 16 * 1024 * 1024;
  /// [upstream] queue_max_age: older values are dropped, 1m..365d.
  std::chrono::milliseconds queue_max_age{std::chrono::hours(7 * 24)};
  QueueWhenFull queue_when_full = QueueWhenFull::drop_oldest;  ///< [upstream] queue_when_full
  QueueSync queue_sync = QueueSync::full;                      ///< [upstream] queue_sync

  [[nodiscard]] bool x509() const { return certificate.has_value(); }
  /// The name the server's certificate must carry: server_name, else the uri's host.
  [[nodiscard]] const std::string& serverName() const { return server_name ? *server_name : uri.value.host; }
  /// telemetry_path with every "{node}" replaced by `node`; "" without telemetry_path.
  [[nodiscard]] std::string telemetryPathFor(std::string_view node) const;
};

struct Config {
  std::filesystem::path file;  ///< the file this was read from (as given)
  AgentSection agent;
  DownstreamSection downstream;
  DiscoverySection discovery;
  LimitsSection limits;
  RelaySection relay;
  /// [upstream]; absent = local only.
  std::optional<UpstreamSection> upstream;
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

/// "coaps://host[:port]" (see UpstreamUri): coaps only, host a DNS name, IPv4 address or
/// "[IPv6]", port 1..65535 (default 5684), no userinfo, path, query or fragment. On failure,
/// `why` (if given) says what is wrong, without repeating `text`.
[[nodiscard]] std::optional<UpstreamUri> parseUpstreamUri(std::string_view text, std::string* why = nullptr);

/// A PSK read from a key file: hex on one line (a final newline allowed), 16..64 bytes like the
/// keystore's keys. `error` says what is wrong without showing any of the file's content.
struct PskKeyFile {
  std::vector<std::uint8_t> key;
  std::string error;
  [[nodiscard]] bool ok() const { return error.empty(); }
};
[[nodiscard]] PskKeyFile readPskKeyFile(const std::filesystem::path& path);

/// What --check-config checks of [upstream] beyond parsing: the PSK key file is present,
/// readable and a valid key. Reads files (unlike parse()); the X.509 files are the agent's to
/// check, with the tls part. nullopt when fine or without [upstream].
[[nodiscard]] std::optional<Error> checkUpstreamFiles(const Config& config);

/// The same check for every [[relay.credentials]] psk_key_file; nullopt when all are fine.
[[nodiscard]] std::optional<Error> checkNodeCredentialFiles(const Config& config);

/// Default coaps listen addresses used when [downstream] listen is absent or empty.
[[nodiscard]] std::vector<SocketAddress> defaultListen();

}  // namespace coap_edge::config
