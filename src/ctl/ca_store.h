#pragma once
// Internal to ctl: where the local device CA lives (<state_dir>/ca/ca.crt and ca.key, the key
// 0600) and loading it for `cert issue` and `cert sign`.

#include "ctl/commands.h"
#include "tls/certificates.h"

#include <filesystem>
#include <optional>

namespace coap_edge::ctl {

struct CaPaths {
  std::filesystem::path dir;   ///< <state_dir>/ca (0700)
  std::filesystem::path cert;  ///< ca.crt (PEM, 0644)
  std::filesystem::path key;   ///< ca.key (PEM, 0600)
};

[[nodiscard]] CaPaths caPaths(const config::Config& cfg);

/// Loads the CA; on failure prints what to do ("no CA yet: run coap-edge-ctl ca init") and sets
/// exit_code 1.
[[nodiscard]] std::optional<tls::CertificateAuthority> loadCa(Invocation& inv, const config::Config& cfg,
                                                              tls::Drbg& drbg, int& exit_code);

/// --days N (1..36500), or `fallback` when absent; on a bad value prints why and sets exit_code 2.
[[nodiscard]] std::optional<int> daysOption(Invocation& inv, const ParsedArgs& args, int fallback, int& exit_code);

/// Unix seconds now.
[[nodiscard]] std::int64_t unixNow();

}  // namespace coap_edge::ctl
