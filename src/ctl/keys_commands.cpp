// `coap-edge-ctl keys ...`: PSK identities in the keystore. A key is printed exactly once, by
// `keys add`, after it has been stored; no other output or message contains key material.
#include "ctl/commands.h"
#include "ctl/ctl.h"
#include "ctl/key_import.h"
#include "tls/random.h"

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <cerrno>
#include <cstring>
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

}  // namespace

int keysAdd(Invocation& inv) {
  const auto args = parseArgs(inv, {"--bytes="}, 1);
  if (!args) return kExitUsage;
  int code = kExitOk;
  const auto id = validIdentityArg(inv, args->positional[0], code);
  if (!id) return code;
  std::size_t bytes = 16;
  if (const auto v = args->value("--bytes")) {
    if (*v == "16") {
      bytes = 16;
    } else if (*v == "32") {
      bytes = 32;
    } else {
      return fail(inv, kExitUsage, fmt::format("--bytes must be 16 or 32, not '{}'", *v));
    }
  }
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

  if (args->has("--json")) {
    nlohmann::ordered_json doc = nlohmann::ordered_json::array();
    for (const auto& info : identities) {
      doc.push_back({{"identity", info.identity},
                     {"created", isoTime(info.created_at)},
                     {"status", info.revoked_at ? "revoked" : "active"},
                     {"revoked", info.revoked_at ? nlohmann::ordered_json(isoTime(*info.revoked_at)) : nullptr}});
    }
    inv.out << doc.dump(2) << '\n';
    return kExitOk;
  }
  std::size_t width = std::string_view("IDENTITY").size();
  for (const auto& info : identities) width = std::max(width, info.identity.size());
  inv.out << fmt::format("{:<{}}  {:<20}  {:<7}  {}\n", "IDENTITY", width, "CREATED", "STATUS", "REVOKED");
  for (const auto& info : identities) {
    inv.out << fmt::format("{:<{}}  {:<20}  {:<7}  {}\n", info.identity, width, isoTime(info.created_at),
                           info.revoked_at ? "revoked" : "active", info.revoked_at ? isoTime(*info.revoked_at) : "-");
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
