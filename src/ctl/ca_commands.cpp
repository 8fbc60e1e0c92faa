// `coap-edge-ctl ca init|show`: the local device CA in <state_dir>/ca. The CA key never leaves
// that directory and is never overwritten: a new CA means every device certificate changes.
#include "ctl/ca_store.h"
#include "ctl/ctl.h"
#include "ctl/files.h"

#include <fmt/format.h>

#include <charconv>
#include <chrono>
#include <ostream>

namespace coap_edge::ctl {
namespace {

constexpr int kCaDays = 3650;
constexpr std::size_t kMaxPemBytes = 64 * 1024;

}  // namespace

CaPaths caPaths(const config::Config& cfg) {
  CaPaths p;
  p.dir = cfg.agent.state_dir.value / "ca";
  p.cert = p.dir / "ca.crt";
  p.key = p.dir / "ca.key";
  return p;
}

std::int64_t unixNow() {
  return std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now().time_since_epoch()).count();
}

std::optional<int> daysOption(Invocation& inv, const ParsedArgs& args, int fallback, int& exit_code) {
  const auto v = args.value("--days");
  if (!v) return fallback;
  int days = 0;
  const auto [end, ec] = std::from_chars(v->data(), v->data() + v->size(), days);
  if (ec != std::errc{} || end != v->data() + v->size() || days < 1 || days > tls::kMaxDays) {
    exit_code = fail(inv, kExitUsage, fmt::format("--days must be a whole number from 1 to {}, not '{}'",
                                                  tls::kMaxDays, *v));
    return std::nullopt;
  }
  return days;
}

std::optional<tls::CertificateAuthority> loadCa(Invocation& inv, const config::Config& cfg, tls::Drbg& drbg,
                                                int& exit_code) {
  const CaPaths paths = caPaths(cfg);
  if (!firstExisting({paths.cert, paths.key})) {
    exit_code = fail(inv, kExitFailed, fmt::format("no CA yet: run coap-edge-ctl --config {} ca init",
                                                   inv.config_file ? inv.config_file->string() : "FILE"));
    return std::nullopt;
  }
  std::string cert;
  tls::SecretBytes key;
  if (auto e = readSmallFile(paths.cert, kMaxPemBytes, cert)) {
    exit_code = fail(inv, kExitFailed, *e);
    return std::nullopt;
  }
  if (auto e = readSecretFile(paths.key, kMaxPemBytes, key)) {
    exit_code = fail(inv, kExitFailed, *e);
    return std::nullopt;
  }
  auto ca = tls::CertificateAuthority::load(tls::bytesOf(cert), key.span(), drbg);
  if (!ca) {
    exit_code = fail(inv, kExitFailed, fmt::format("the CA in {} is unusable: {}", paths.dir.string(), ca.error()));
    return std::nullopt;
  }
  if (ca->certificate().not_after <= unixNow()) {
    exit_code = fail(inv, kExitFailed,
                     fmt::format("the CA certificate {} expired on {}; certificates it signs would be refused",
                                 paths.cert.string(), isoTime(ca->certificate().not_after)));
    return std::nullopt;
  }
  return std::move(*ca);
}

int caInit(Invocation& inv) {
  const auto args = parseArgs(inv, {"--days="}, 0);
  if (!args) return kExitUsage;
  int code = kExitOk;
  const auto days = daysOption(inv, *args, kCaDays, code);
  if (!days) return code;
  const auto cfg = loadConfig(inv, code);
  if (!cfg) return code;
  const CaPaths paths = caPaths(*cfg);
  if (const auto existing = firstExisting({paths.cert, paths.key})) {
    return fail(inv, kExitFailed,
                fmt::format("a CA already exists ({}); it is never overwritten: every certificate it issued "
                            "depends on it. To start over, move {} away first",
                            existing->string(), paths.dir.string()));
  }
  if (auto e = makePrivateDirectory(paths.dir)) return fail(inv, kExitFailed, *e);

  tls::Drbg drbg("coap-edge-ctl ca init");
  const std::string name = "coap-edge CA " + cfg->agent.name;
  auto ca = tls::CertificateAuthority::create(name, *days, drbg, unixNow());
  if (!ca) return fail(inv, kExitFailed, "cannot create the CA: " + ca.error());
  auto key_pem = ca->key().privatePem();
  if (!key_pem) return fail(inv, kExitFailed, "cannot create the CA: " + key_pem.error());

  NewFiles files;
  if (auto e = files.write(paths.key, key_pem->span(), kKeyMode)) return fail(inv, kExitFailed, *e);
  if (auto e = files.write(paths.cert, tls::bytesOf(ca->certificate().pem), kCertMode)) {
    return fail(inv, kExitFailed, *e);
  }
  files.commit();
  const auto& c = ca->certificate();
  inv.out << "created the device CA '" << name << "'\n"
          << "  certificate: " << paths.cert.string() << " (serial " << c.serial << ", valid until "
          << isoTime(c.not_after) << ")\n"
          << "  private key: " << paths.key.string() << " (mode 0600; back it up offline)\n"
          << "set [downstream] ca = \"" << paths.cert.string() << "\" so that the agent accepts its certificates\n";
  return kExitOk;
}

int caShow(Invocation& inv) {
  const auto args = parseArgs(inv, {}, 0);
  if (!args) return kExitUsage;
  int code = kExitOk;
  const auto cfg = loadConfig(inv, code);
  if (!cfg) return code;
  const CaPaths paths = caPaths(*cfg);
  if (!firstExisting({paths.cert})) {
    return fail(inv, kExitFailed, fmt::format("no CA yet: run coap-edge-ctl --config {} ca init",
                                              inv.config_file ? inv.config_file->string() : "FILE"));
  }
  std::string pem;
  if (auto e = readSmallFile(paths.cert, kMaxPemBytes, pem)) return fail(inv, kExitFailed, *e);
  auto cert = tls::parseCertificate(tls::bytesOf(pem));
  if (!cert) return fail(inv, kExitFailed, fmt::format("{}: {}", paths.cert.string(), cert.error()));
  inv.out << cert->pem;
  return kExitOk;
}

}  // namespace coap_edge::ctl
