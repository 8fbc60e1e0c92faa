// `coap-edge-ctl keys ...`: PSK identities in the keystore. A key is printed exactly once, by
// `keys add` or `keys rotate`, after it has been stored; no other output or message contains
// key material.
#include "config/config.h"
#include "ctl/commands.h"
#include "ctl/ctl.h"
#include "ctl/files.h"
#include "ctl/key_import.h"
#include "tls/random.h"

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <ctime>
#include <fstream>
#include <istream>
#include <ostream>
#include <stdexcept>

namespace coap_edge::ctl {
namespace {

// Wipes secret text on every path out of a handler.
struct WipeOnExit {
  std::string& text;
  ~WipeOnExit() { tls::wipe(text); }
};

// Reads at most kMaxImportBytes + 1 bytes: enough for the parser to say "too large" without
// reading all of /dev/zero.
bool readBounded(std::istream& in, std::string& text) {
  text.assign(kMaxImportBytes + 1, '\0');
  in.read(text.data(), static_cast<std::streamsize>(text.size()));
  if (in.bad()) return false;
  text.resize(static_cast<std::size_t>(in.gcount()));
  return true;
}

std::optional<std::string_view> validIdentityArg(Invocation& inv, std::string_view id, int& code) {
  if (const std::string problem = keystore::identityProblem(id); !problem.empty()) {
    code = fail(inv, kExitUsage, problem);
    return std::nullopt;
  }
  return id;
}

std::optional<std::size_t> keyBytesOption(Invocation& inv, const ParsedArgs& args, int& code) {
  const auto v = args.value("--bytes");
  if (!v || *v == "16") return 16;
  if (*v == "32") return 32;
  code = fail(inv, kExitUsage, fmt::format("--bytes must be 16 or 32, not '{}'", *v));
  return std::nullopt;
}

// The longest grace period `keys rotate` accepts: the old key is a liability, not a fallback.
constexpr std::chrono::hours kMaxGrace{24 * 30};

// A key for `keys rotate --from`: one line of hex (16 to 64 bytes) from FILE or stdin.
std::optional<tls::SecretBytes> readKeyHex(Invocation& inv, std::string_view from, int& code) {
  const std::string source = from == "-" ? "<stdin>" : std::string(from);
  std::string text;
  const WipeOnExit wipe_text{text};
  if (from == "-") {
    text.assign(4096, '\0');
    inv.in.read(text.data(), static_cast<std::streamsize>(text.size()));
    if (inv.in.bad()) {
      code = fail(inv, kExitFailed, "cannot read stdin");
      return std::nullopt;
    }
    text.resize(static_cast<std::size_t>(inv.in.gcount()));
  } else {
    tls::SecretBytes raw;
    if (auto e = readSecretFile(std::filesystem::path(std::string(from)), 4095, raw)) {
      code = fail(inv, kExitFailed, *e);
      return std::nullopt;
    }
    text.assign(reinterpret_cast<const char*>(raw.span().data()), raw.size());
  }
  std::string_view hex = text;
  while (!hex.empty() && (hex.back() == '\n' || hex.back() == '\r' || hex.back() == ' ' || hex.back() == '\t')) {
    hex.remove_suffix(1);
  }
  while (!hex.empty() && (hex.front() == ' ' || hex.front() == '\t')) hex.remove_prefix(1);
  auto key = tls::hexDecodeSecret(hex);
  if (!key || !keystore::isValidKeyLength(key->size())) {
    code = fail(inv, kExitDataErr,
                fmt::format("{}: expected one line with the key in hex, {} to {} bytes", source, keystore::kMinKeyBytes,
                            keystore::kMaxKeyBytes));
    return std::nullopt;
  }
  return key;
}

}  // namespace

int keysAdd(Invocation& inv) {
  const auto args = parseArgs(inv, {"--bytes="}, 1);
  if (!args) return kExitUsage;
  int code = kExitOk;
  const auto id = validIdentityArg(inv, args->positional[0], code);
  if (!id) return code;
  const auto key_bytes = keyBytesOption(inv, *args, code);
  if (!key_bytes) return code;
  const std::size_t bytes = *key_bytes;
  const auto cfg = loadConfig(inv, code);
  if (!cfg) return code;
  auto ks = openKeystore(inv, *cfg, code);
  if (!ks) return code;

  tls::Drbg drbg("coap-edge-ctl keys add");
  tls::SecretBytes key = drbg.randomSecret(bytes);
  std::string hex = tls::hexEncode(key.span());
  std::string b64 = tls::base64Encode(key.span());
  const WipeOnExit wipe_hex{hex};
  const WipeOnExit wipe_b64{b64};

  switch (ks->add(*id, std::move(key))) {
    case keystore::AddResult::ok:
      break;
    case keystore::AddResult::exists:
      return fail(inv, kExitFailed,
                  fmt::format("identity '{}' already exists (keys are shown only when created); to give that "
                              "device a new key, revoke '{}' and add a new identity",
                              *id, *id));
    case keystore::AddResult::invalid_identity:
    case keystore::AddResult::invalid_key:
      return fail(inv, kExitUsage, "invalid identity or key");  // checked above; kept for completeness
    case keystore::AddResult::storage_error:
      return fail(inv, kExitFailed, fmt::format("cannot store identity '{}': {}", *id, ks->lastError()));
  }
  inv.out << "identity: " << *id << "\nhex: " << hex << "\nbase64: " << b64 << '\n';
  inv.out.flush();
  if (!inv.out) {
    return fail(inv, kExitFailed,
                fmt::format("identity '{}' was stored but its key could not be written out; revoke it and add "
                            "another identity",
                            *id));
  }
  (void)fail(inv, kExitOk, "store this key now: it is not shown again");
  return kExitOk;
}

int keysRotate(Invocation& inv) {
  const auto args = parseArgs(inv, {"--grace=", "--bytes=", "--from="}, 1);
  if (!args) return kExitUsage;
  int code = kExitOk;
  const auto id = validIdentityArg(inv, args->positional[0], code);
  if (!id) return code;
  const auto key_bytes = keyBytesOption(inv, *args, code);
  if (!key_bytes) return code;
  if (args->has("--from") && args->has("--bytes")) return fail(inv, kExitUsage, "--from and --bytes exclude each other");
  std::chrono::seconds grace{3600};
  if (const auto v = args->value("--grace")) {
    const auto d = config::parseDuration(*v);
    if (!d || *d > kMaxGrace || d->count() % 1000 != 0) {
      return fail(inv, kExitUsage,
                  fmt::format("--grace must be whole seconds up to 30 days, like 0s, 90s, 15m, 1h or 7d; not '{}'", *v));
    }
    grace = std::chrono::duration_cast<std::chrono::seconds>(*d);
  }
  const auto cfg = loadConfig(inv, code);
  if (!cfg) return code;

  tls::SecretBytes key;
  const bool generated = !args->has("--from");
  if (generated) {
    tls::Drbg drbg("coap-edge-ctl keys rotate");
    key = drbg.randomSecret(*key_bytes);
  } else {
    auto read = readKeyHex(inv, *args->value("--from"), code);
    if (!read) return code;
    key = std::move(*read);
  }
  std::string hex = generated ? tls::hexEncode(key.span()) : std::string();
  std::string b64 = generated ? tls::base64Encode(key.span()) : std::string();
  const WipeOnExit wipe_hex{hex};
  const WipeOnExit wipe_b64{b64};

  auto ks = openKeystore(inv, *cfg, code);
  if (!ks) return code;
  const keystore::Rotation r = ks->rotate(*id, std::move(key), grace);
  switch (r.result) {
    case keystore::RotateResult::ok:
      break;
    case keystore::RotateResult::unknown:
      return fail(inv, kExitFailed,
                  fmt::format("unknown identity '{}'; 'coap-edge-ctl keys list' shows the known ones", *id));
    case keystore::RotateResult::revoked:
      return fail(inv, kExitFailed, fmt::format("identity '{}' is revoked; revoked identities get no new key", *id));
    case keystore::RotateResult::invalid_key:
      return fail(inv, kExitUsage, "invalid key length");
    case keystore::RotateResult::storage_error:
      return fail(inv, kExitFailed, fmt::format("cannot rotate '{}': {}", *id, ks->lastError()));
  }
  if (generated) {
    inv.out << "identity: " << *id << "\nhex: " << hex << "\nbase64: " << b64 << '\n';
    inv.out.flush();
    if (!inv.out) {
      return fail(inv, kExitFailed,
                  fmt::format("'{}' was rotated but its new key could not be written out; rotate it again", *id));
    }
  } else {
    const std::string_view from = *args->value("--from");
    inv.out << "identity: " << *id << "\nrotated to the key from " << (from == "-" ? "<stdin>" : from) << '\n';
  }
  if (r.dropped_previous) {
    (void)fail(inv, kExitOk, "the key before the previous one was still in its grace period: it stopped working now");
  }
  if (grace.count() == 0) {
    (void)fail(inv, kExitOk, "no grace period: the old key stopped working; a running agent closes its sessions "
                             "within 2 s");
  } else {
    (void)fail(inv, kExitOk,
               fmt::format("the old key keeps working until {} (generation {} is new); then a running agent "
                           "closes the sessions that use it",
                           isoTime(r.grace_until), r.generation));
  }
  if (generated) (void)fail(inv, kExitOk, "store this key now: it is not shown again");
  return kExitOk;
}

int keysImport(Invocation& inv) {
  const auto args = parseArgs(inv, {}, 1);
  if (!args) return kExitUsage;
  int code = kExitOk;
  const auto cfg = loadConfig(inv, code);
  if (!cfg) return code;

  const std::string_view file = args->positional[0];
  const std::string source = file == "-" ? "<stdin>" : std::string(file);
  std::string text;
  const WipeOnExit wipe_text{text};
  if (file == "-") {
    if (!readBounded(inv.in, text)) return fail(inv, kExitFailed, "cannot read stdin");
  } else {
    std::error_code ec;
    if (std::filesystem::is_directory(std::filesystem::path(file), ec)) {
      return fail(inv, kExitFailed, fmt::format("{}: is a directory", source));
    }
    std::ifstream stream{std::filesystem::path(file), std::ios::binary};
    if (!stream) return fail(inv, kExitFailed, fmt::format("{}: cannot open: {}", source, std::strerror(errno)));
    if (!readBounded(stream, text)) return fail(inv, kExitFailed, fmt::format("{}: cannot read", source));
  }

  KeyImport parsed = parseKeyImport(text);
  tls::wipe(text);
  if (!parsed.ok()) {
    return fail(inv, kExitDataErr, parsed.error->describe(source) + "\nnothing was imported");
  }
  auto ks = openKeystore(inv, *cfg, code);
  if (!ks) return code;

  std::vector<keystore::ImportEntry> entries;
  entries.reserve(parsed.entries.size());
  for (auto& e : parsed.entries) entries.emplace_back(e.identity, std::move(e.key));
  const keystore::ImportResult result = ks->importAll(std::move(entries));
  if (!result.ok()) {
    const std::string& identity = parsed.entries[result.index].identity;
    std::string message;
    int exit_code = kExitDataErr;
    switch (result.error) {
      case keystore::ImportError::exists:
        message = fmt::format("identity '{}' already exists in the keystore; remove it from the input", identity);
        exit_code = kExitFailed;
        break;
      case keystore::ImportError::storage_error:
        message = fmt::format("cannot store: {}", ks->lastError());
        exit_code = kExitFailed;
        break;
      default:
        message = std::string(keystore::toString(result.error));
        break;
    }
    return fail(inv, exit_code, parsed.problemAt(result.index, message).describe(source) + "\nnothing was imported");
  }
  inv.out << "imported " << result.added << (result.added == 1 ? " identity" : " identities") << " from " << source
          << '\n';
  return kExitOk;
}

int keysList(Invocation& inv) {
  const auto args = parseArgs(inv, {"--json"}, 0);
  if (!args) return kExitUsage;
  int code = kExitOk;
  const auto cfg = loadConfig(inv, code);
  if (!cfg) return code;
  auto ks = openKeystore(inv, *cfg, code);
  if (!ks) return code;
  const auto identities = ks->list();
  if (!ks->lastError().empty()) return fail(inv, kExitFailed, fmt::format("cannot list: {}", ks->lastError()));

  const auto in_grace = [now = static_cast<std::int64_t>(std::time(nullptr))](const keystore::IdentityInfo& info) {
    return info.grace_until && !info.revoked_at && *info.grace_until > now;
  };
  if (args->has("--json")) {
    nlohmann::ordered_json doc = nlohmann::ordered_json::array();
    for (const auto& info : identities) {
      doc.push_back({{"identity", info.identity},
                     {"created", isoTime(info.created_at)},
                     {"status", info.revoked_at ? "revoked" : "active"},
                     {"revoked", info.revoked_at ? nlohmann::ordered_json(isoTime(*info.revoked_at)) : nullptr},
                     {"generation", info.generation},
                     {"previous_key_until",
                      in_grace(info) ? nlohmann::ordered_json(isoTime(*info.grace_until)) : nullptr}});
    }
    inv.out << doc.dump(2) << '\n';
    return kExitOk;
  }
  std::size_t width = std::string_view("IDENTITY").size();
  for (const auto& info : identities) width = std::max(width, info.identity.size());
  inv.out << fmt::format("{:<{}}  {:<20}  {:<7}  {:<20}  {:<3}  {}\n", "IDENTITY", width, "CREATED", "STATUS",
                         "REVOKED", "GEN", "PREVIOUS KEY UNTIL");
  for (const auto& info : identities) {
    inv.out << fmt::format("{:<{}}  {:<20}  {:<7}  {:<20}  {:<3}  {}\n", info.identity, width,
                           isoTime(info.created_at), info.revoked_at ? "revoked" : "active",
                           info.revoked_at ? isoTime(*info.revoked_at) : "-", info.generation,
                           in_grace(info) ? isoTime(*info.grace_until) : "-");
  }
  return kExitOk;
}

int keysRevoke(Invocation& inv) {
  const auto args = parseArgs(inv, {}, 1);
  if (!args) return kExitUsage;
  int code = kExitOk;
  const auto id = validIdentityArg(inv, args->positional[0], code);
  if (!id) return code;
  const auto cfg = loadConfig(inv, code);
  if (!cfg) return code;
  auto ks = openKeystore(inv, *cfg, code);
  if (!ks) return code;
  switch (ks->revoke(*id)) {
    case keystore::RevokeResult::ok:
      inv.out << "revoked " << *id << "; a running agent closes its sessions within 2 s\n";
      return kExitOk;
    case keystore::RevokeResult::already_revoked:
      return fail(inv, kExitOk, fmt::format("identity '{}' was already revoked", *id));
    case keystore::RevokeResult::unknown:
      return fail(inv, kExitFailed,
                  fmt::format("unknown identity '{}'; 'coap-edge-ctl keys list' shows the known ones", *id));
    case keystore::RevokeResult::storage_error:
      return fail(inv, kExitFailed, fmt::format("cannot revoke '{}': {}", *id, ks->lastError()));
  }
  return kExitFailed;
}

}  // namespace coap_edge::ctl
