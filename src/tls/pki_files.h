#pragma once
// Startup checks of the gateway's X.509 files. libcoap's mbedTLS glue reads them only when a
// handshake starts, so without these checks a typo would surface as failing handshakes instead
// of a configuration error that names the line.

#include <filesystem>
#include <optional>
#include <string>

namespace coap_edge::tls {

enum class PkiFile { certificate, private_key, ca };

struct PkiProblem {
  PkiFile file;
  std::string message;
};

/// Checks that the certificate, key and CA parse, that the key belongs to the certificate, that
/// the key is EC (our suites are ECDHE-ECDSA) and that the certificate is inside its validity.
[[nodiscard]] std::optional<PkiProblem> checkPkiFiles(const std::filesystem::path& certificate,
                                                      const std::filesystem::path& private_key,
                                                      const std::filesystem::path& ca);

/// True if a private key file can be read by group or others (worth a warning).
[[nodiscard]] bool isGroupOrWorldReadable(const std::filesystem::path& file);

}  // namespace coap_edge::tls
