#pragma once
// Debian's libcoap 4.3.1 example clients as real, independent DTLS peers: coap-client-gnutls
// (GnuTLS) and coap-client-openssl (OpenSSL). They take a PSK as a string (-k), not hex, so the
// tests provision printable keys.

#include "harness.h"

#include <cstdint>
#include <string>
#include <vector>

namespace coap_edge::test {

inline constexpr const char* kGnutlsClient = "coap-client-gnutls";
inline constexpr const char* kOpensslClient = "coap-client-openssl";

inline std::string coapsUri(std::uint16_t port, const std::string& path) {
  return "coaps://127.0.0.1:" + std::to_string(port) + "/" + path;
}

/// GET over DTLS-PSK; `wait_s` bounds the client's own wait (-B).
inline RunResult pskGet(const std::string& client, std::uint16_t port, const std::string& identity,
                        const std::string& key, const std::string& path, int wait_s = 5) {
  return run({client, "-B", std::to_string(wait_s), "-u", identity, "-k", key, coapsUri(port, path)},
             std::chrono::seconds(wait_s + 10));
}

/// GET over DTLS with a client certificate; the server is verified against `ca`.
inline RunResult certGet(const std::string& client, std::uint16_t port, const std::string& crt,
                         const std::string& key, const std::string& ca, const std::string& path, int wait_s = 5) {
  return run({client, "-B", std::to_string(wait_s), "-c", crt, "-j", key, "-C", ca, coapsUri(port, path)},
             std::chrono::seconds(wait_s + 10));
}

/// The access rule tests run with unless they say otherwise: the agent denies everything but
/// /.well-known/core by default, and the interop tests read /status as any authenticated peer.
inline constexpr const char* kStatusForEveryone = "[[acl]]\nidentity = \"*\"\nallow = [\"GET /status\"]\n";

/// The agent's config for tests: one coaps endpoint on `port`, state under `dir`, `acl` last
/// (so `extra_downstream` keys still land in [downstream], and appended sections stay valid).
inline std::string baseConfig(const TempDir& dir, std::uint16_t port, const std::string& extra_downstream = "",
                              const std::string& acl = kStatusForEveryone) {
  return "[agent]\nname = \"gw-test\"\nstate_dir = \"" + (dir / "state").string() +
         "\"\nlog_level = \"info\"\n[downstream]\nlisten = [\"127.0.0.1:" + std::to_string(port) + "\"]\n" +
         extra_downstream + acl;
}

/// Runs coap-edge-ctl against the agent's config.
inline RunResult ctl(const std::filesystem::path& config, const std::vector<std::string>& args,
                     const std::string& input = "") {
  std::vector<std::string> argv{ctlBinary(), "--config", config.string()};
  argv.insert(argv.end(), args.begin(), args.end());
  return run(argv, std::chrono::seconds(30), input);
}

}  // namespace coap_edge::test
