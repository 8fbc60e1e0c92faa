// `coap-edge-ctl cert ...`: device and gateway certificates from the local CA (issue, sign a
// device's CSR), the gateway's own key and CSR for an upstream CA, and the record of issued
// certificates in the keystore (list, revoke). Every certificate issued or signed is recorded
// before the command reports success, so that it can be revoked.
#include "ctl/ca_store.h"
#include "ctl/ctl.h"
#include "ctl/files.h"

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <istream>
#include <ostream>

namespace coap_edge::ctl {
namespace {

constexpr int kDeviceDays = 365;

// The identity names files (DIR/ID.crt): it must be a valid identity and a plain file name.
std::optional<std::string_view> fileIdentity(Invocation& inv, std::string_view id, int& code) {
  if (const std::string problem = keystore::identityProblem(id); !problem.empty()) {
    code = fail(inv, kExitUsage, problem);
    return std::nullopt;
  }
  if (id.find('/') != std::string_view::npos) {
    code = fail(inv, kExitUsage, "an identity with '/' cannot name the output files; use another identity");
    return std::nullopt;
  }
  return id;
}

// A certificate for a revoked identity would be refused by the agent anyway: say so now.
bool identityRevoked(keystore::Keystore& ks, std::string_view identity) {
  for (const auto& r : ks.revokedIdentities()) {
    if (r == identity) return true;
  }
  return false;
}

keystore::CertificateInfo recordOf(const tls::Certificate& c, std::string_view profile, std::string_view origin) {
  keystore::CertificateInfo info;
  info.serial = c.serial;
  info.identity = c.common_name;
  info.profile = profile;
  info.origin = origin;
  info.not_before = c.not_before;
  info.not_after = c.not_after;
  info.issued_at = unixNow();
  return info;
}

int recordFailure(Invocation& inv, keystore::Keystore& ks, keystore::CertAddResult r) {
  return fail(inv, kExitFailed, fmt::format("cannot record the certificate in the keystore ({}{}{}); nothing was "
                                            "written",
                                            keystore::toString(r), ks.lastError().empty() ? "" : ": ",
                                            ks.lastError()));
}

void printIssued(Invocation& inv, const tls::Certificate& c) {
  inv.out << "  serial: " << c.serial << "\n  valid: " << isoTime(c.not_before) << " to " << isoTime(c.not_after)
          << '\n';
}

std::string statusOf(const keystore::CertificateInfo& c, std::int64_t now) {
  if (c.revoked_at) return "revoked";
  return c.not_after <= now ? "expired" : "active";
}

}  // namespace

int certIssue(Invocation& inv) {
  const auto args = parseArgs(inv, {"--out=", "--days=", "--server", "--san="}, 1);
  if (!args) return kExitUsage;
  int code = kExitOk;
  const auto id = fileIdentity(inv, args->positional[0], code);
  if (!id) return code;
  const auto out_dir = args->value("--out");
  if (!out_dir || out_dir->empty()) return fail(inv, kExitUsage, "--out DIR is required (where ID.crt and ID.key go)");
  const bool server = args->has("--server");
  tls::CertificateSpec spec;
  spec.common_name = std::string(*id);
  spec.profile = server ? tls::Profile::server : tls::Profile::client;
  for (const auto& [name, value] : args->options) {
    if (name == "--san") spec.alt_names.emplace_back(value);
  }
  if (!server && !spec.alt_names.empty()) return fail(inv, kExitUsage, "--san goes with --server (gateway certificates)");
  const auto days = daysOption(inv, *args, kDeviceDays, code);
  if (!days) return code;
  spec.days = *days;
  const auto cfg = loadConfig(inv, code);
  if (!cfg) return code;
  auto ks = openKeystore(inv, *cfg, code);
  if (!ks) return code;
  if (identityRevoked(*ks, *id)) {
    return fail(inv, kExitFailed, fmt::format("identity '{}' is revoked in the keystore; the agent would refuse its "
                                              "certificate. Use a new identity",
                                              *id));
  }
  const std::filesystem::path dir{std::string(*out_dir)};
  const std::string base = std::string(*id);
  const std::filesystem::path crt = dir / (base + ".crt");
  const std::filesystem::path crt_der = dir / (base + ".crt.der");
  const std::filesystem::path key = dir / (base + ".key");
  const std::filesystem::path key_der = dir / (base + ".key.der");
  if (const auto existing = firstExisting({crt, crt_der, key, key_der})) {
    return fail(inv, kExitFailed, fmt::format("{} exists; refusing to overwrite it (choose another --out)",
                                              existing->string()));
  }
  tls::Drbg drbg("coap-edge-ctl cert issue");
  auto ca = loadCa(inv, *cfg, drbg, code);
  if (!ca) return code;

  auto subject_key = tls::Key::generate(drbg);
  if (!subject_key) return fail(inv, kExitFailed, subject_key.error());
  auto cert = ca->issue(*subject_key, spec, drbg, unixNow());
  if (!cert) return fail(inv, kExitFailed, "cannot issue the certificate: " + cert.error());
  auto key_pem = subject_key->privatePem();
  auto key_bin = subject_key->privateDer();
  if (!key_pem || !key_bin) return fail(inv, kExitFailed, "cannot encode the private key");

  if (auto e = makePrivateDirectory(dir)) return fail(inv, kExitFailed, *e);
  NewFiles files;
  for (const auto& [file, bytes, mode] :
       {std::tuple{key, key_pem->span(), kKeyMode}, std::tuple{key_der, key_bin->span(), kKeyMode},
        std::tuple{crt, tls::bytesOf(cert->pem), kCertMode},
        std::tuple{crt_der, std::span<const std::uint8_t>(cert->der), kCertMode}}) {
    if (auto e = files.write(file, bytes, mode)) return fail(inv, kExitFailed, *e + "; nothing was kept");
  }
  if (const auto r = ks->recordCertificate(recordOf(*cert, server ? "server" : "client", "issued"));
      r != keystore::CertAddResult::ok) {
    return recordFailure(inv, *ks, r);
  }
  files.commit();
  inv.out << "issued a " << (server ? "gateway (serverAuth)" : "device (clientAuth)") << " certificate for "
          << *id << '\n';
  printIssued(inv, *cert);
  inv.out << "  certificate: " << crt.string() << " (PEM), " << crt_der.string() << " (DER)\n"
          << "  private key: " << key.string() << " (PEM), " << key_der.string() << " (DER), mode 0600\n";
  return kExitOk;
}

int certSign(Invocation& inv) {
  const auto args = parseArgs(inv, {"--out=", "--days="}, 1);
  if (!args) return kExitUsage;
  int code = kExitOk;
  const auto out = args->value("--out");
  if (!out || out->empty()) return fail(inv, kExitUsage, "--out FILE is required (the certificate, PEM)");
  const auto days = daysOption(inv, *args, kDeviceDays, code);
  if (!days) return code;
  const auto cfg = loadConfig(inv, code);
  if (!cfg) return code;

  const std::string_view source = args->positional[0];
  const std::string shown = source == "-" ? "<stdin>" : std::string(source);
  std::string text;
  if (source == "-") {
    text.assign(tls::kMaxCsrBytes + 1, '\0');
    inv.in.read(text.data(), static_cast<std::streamsize>(text.size()));
    if (inv.in.bad()) return fail(inv, kExitFailed, "cannot read stdin");
    text.resize(static_cast<std::size_t>(inv.in.gcount()));
  } else if (auto e = readSmallFile(std::filesystem::path(std::string(source)), tls::kMaxCsrBytes + 1, text)) {
    return fail(inv, kExitFailed, *e);
  }
  auto csr = tls::checkCsr(tls::bytesOf(text));
  if (!csr) return fail(inv, kExitDataErr, fmt::format("{}: {}; nothing was signed", shown, csr.error()));
  if (const std::string problem = keystore::identityProblem(csr->common_name); !problem.empty()) {
    return fail(inv, kExitDataErr,
                fmt::format("{}: the CSR's CN is not a valid identity: {}; nothing was signed", shown, problem));
  }
  const std::filesystem::path crt{std::string(*out)};
  const std::filesystem::path crt_der{crt.string() + ".der"};
  if (const auto existing = firstExisting({crt, crt_der})) {
    return fail(inv, kExitFailed, fmt::format("{} exists; refusing to overwrite it", existing->string()));
  }
  auto ks = openKeystore(inv, *cfg, code);
  if (!ks) return code;
  if (identityRevoked(*ks, csr->common_name)) {
    return fail(inv, kExitFailed, fmt::format("identity '{}' is revoked in the keystore; the agent would refuse its "
                                              "certificate. Nothing was signed",
                                              csr->common_name));
  }
  tls::Drbg drbg("coap-edge-ctl cert sign");
  auto ca = loadCa(inv, *cfg, drbg, code);
  if (!ca) return code;
  tls::CertificateSpec spec;
  spec.common_name = csr->common_name;
  spec.days = *days;
  auto cert = ca->issue(csr->public_key, spec, drbg, unixNow());
  if (!cert) return fail(inv, kExitFailed, "cannot sign: " + cert.error());

  NewFiles files;
  if (auto e = files.write(crt, tls::bytesOf(cert->pem), kCertMode)) return fail(inv, kExitFailed, *e);
  if (auto e = files.write(crt_der, cert->der, kCertMode)) return fail(inv, kExitFailed, *e);
  if (const auto r = ks->recordCertificate(recordOf(*cert, "client", "csr")); r != keystore::CertAddResult::ok) {
    return recordFailure(inv, *ks, r);
  }
  files.commit();
  inv.out << "signed a device (clientAuth) certificate for " << cert->common_name << '\n';
  printIssued(inv, *cert);
  inv.out << "  certificate: " << crt.string() << " (PEM), " << crt_der.string() << " (DER)\n";
  return kExitOk;
}

int certCsr(Invocation& inv) {
  const auto args = parseArgs(inv, {"--out="}, 0);
  if (!args) return kExitUsage;
  int code = kExitOk;
  const auto out_dir = args->value("--out");
  if (!out_dir || out_dir->empty()) return fail(inv, kExitUsage, "--out DIR is required (where NAME.key and NAME.csr go)");
  const auto cfg = loadConfig(inv, code);
  if (!cfg) return code;
  const std::string& name = cfg->agent.name;
  if (const std::string problem = keystore::identityProblem(name); !problem.empty() || name.find('/') != std::string::npos) {
    return fail(inv, kExitConfig, fmt::format("{}: [agent] name cannot be the CSR's CN: {}", inv.config_file->string(),
                                              problem.empty() ? "it contains '/'" : problem));
  }
  const std::filesystem::path dir{std::string(*out_dir)};
  const std::filesystem::path key = dir / (name + ".key");
  const std::filesystem::path csr_file = dir / (name + ".csr");
  if (const auto existing = firstExisting({key, csr_file})) {
    return fail(inv, kExitFailed, fmt::format("{} exists; refusing to overwrite it", existing->string()));
  }
  tls::Drbg drbg("coap-edge-ctl cert csr");
  auto gw_key = tls::Key::generate(drbg);
  if (!gw_key) return fail(inv, kExitFailed, gw_key.error());
  auto csr = tls::makeCsr(*gw_key, name, drbg);
  if (!csr) return fail(inv, kExitFailed, csr.error());
  auto key_pem = gw_key->privatePem();
  if (!key_pem) return fail(inv, kExitFailed, key_pem.error());
  if (auto e = makePrivateDirectory(dir)) return fail(inv, kExitFailed, *e);
  NewFiles files;
  if (auto e = files.write(key, key_pem->span(), kKeyMode)) return fail(inv, kExitFailed, *e);
  if (auto e = files.write(csr_file, tls::bytesOf(*csr), kCertMode)) return fail(inv, kExitFailed, *e);
  files.commit();
  inv.out << "made the gateway's key and CSR (CN=" << name << ")\n"
          << "  private key: " << key.string() << " (PEM, mode 0600)\n"
          << "  request: " << csr_file.string() << " (PEM): have the upstream CA sign it\n";
  return kExitOk;
}

int certList(Invocation& inv) {
  const auto args = parseArgs(inv, {"--json"}, 0);
  if (!args) return kExitUsage;
  int code = kExitOk;
  const auto cfg = loadConfig(inv, code);
  if (!cfg) return code;
  auto ks = openKeystore(inv, *cfg, code);
  if (!ks) return code;
  const auto certs = ks->listCertificates();
  if (!ks->lastError().empty()) return fail(inv, kExitFailed, fmt::format("cannot list: {}", ks->lastError()));
  const std::int64_t now = unixNow();
  if (args->has("--json")) {
    nlohmann::ordered_json doc = nlohmann::ordered_json::array();
    for (const auto& c : certs) {
      doc.push_back({{"serial", c.serial},
                     {"identity", c.identity},
                     {"profile", c.profile},
                     {"origin", c.origin},
                     {"not_before", isoTime(c.not_before)},
                     {"not_after", isoTime(c.not_after)},
                     {"issued", isoTime(c.issued_at)},
                     {"status", statusOf(c, now)},
                     {"revoked", c.revoked_at ? nlohmann::ordered_json(isoTime(*c.revoked_at)) : nullptr}});
    }
    inv.out << doc.dump(2) << '\n';
    return kExitOk;
  }
  std::size_t width = std::string_view("IDENTITY").size();
  for (const auto& c : certs) width = std::max(width, c.identity.size());
  inv.out << fmt::format("{:<32}  {:<{}}  {:<7}  {:<6}  {:<20}  {:<7}  {}\n", "SERIAL", "IDENTITY", width, "PROFILE",
                         "ORIGIN", "NOT AFTER", "STATUS", "REVOKED");
  for (const auto& c : certs) {
    inv.out << fmt::format("{:<32}  {:<{}}  {:<7}  {:<6}  {:<20}  {:<7}  {}\n", c.serial, c.identity, width, c.profile,
                           c.origin, isoTime(c.not_after), statusOf(c, now),
                           c.revoked_at ? isoTime(*c.revoked_at) : "-");
  }
  return kExitOk;
}

int certRevoke(Invocation& inv) {
  const auto args = parseArgs(inv, {}, 1);
  if (!args) return kExitUsage;
  int code = kExitOk;
  const std::string_view what = args->positional[0];
  const auto cfg = loadConfig(inv, code);
  if (!cfg) return code;
  auto ks = openKeystore(inv, *cfg, code);
  if (!ks) return code;
  constexpr std::string_view kAfter = "a running agent refuses it and closes its sessions within 2 s";
  // A serial first (exactly as recorded), then an identity: hex-looking identities still work
  // when no certificate has that serial.
  if (const auto serial = keystore::normalizeSerial(what)) {
    switch (ks->revokeCertificate(*serial)) {
      case keystore::RevokeResult::ok:
        inv.out << "revoked certificate " << *serial << "; " << kAfter << '\n';
        return kExitOk;
      case keystore::RevokeResult::already_revoked:
        return fail(inv, kExitOk, fmt::format("certificate {} was already revoked", *serial));
      case keystore::RevokeResult::storage_error:
        return fail(inv, kExitFailed, fmt::format("cannot revoke: {}", ks->lastError()));
      case keystore::RevokeResult::unknown:
        break;
    }
  }
  if (keystore::isValidIdentity(what)) {
    const keystore::BulkRevoke r = ks->revokeCertificatesOf(what);
    switch (r.result) {
      case keystore::RevokeResult::ok:
        inv.out << "revoked " << r.revoked << (r.revoked == 1 ? " certificate" : " certificates") << " of " << what
                << "; " << kAfter << '\n';
        return kExitOk;
      case keystore::RevokeResult::already_revoked:
        return fail(inv, kExitOk, fmt::format("every certificate of '{}' was already revoked", what));
      case keystore::RevokeResult::storage_error:
        return fail(inv, kExitFailed, fmt::format("cannot revoke: {}", ks->lastError()));
      case keystore::RevokeResult::unknown:
        break;
    }
  }
  return fail(inv, kExitFailed, fmt::format("no certificate has the serial or identity '{}'; 'coap-edge-ctl cert "
                                            "list' shows them",
                                            log::printable(what)));
}

}  // namespace coap_edge::ctl
