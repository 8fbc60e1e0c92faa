#include "ctl/ctl.h"

#include "ctl/commands.h"

#include <fmt/format.h>

#include <algorithm>
#include <array>
#include <exception>
#include <iostream>
#include <string>
#include <vector>

namespace coap_edge::ctl {
namespace {

constexpr std::string_view kProgram = "coap-edge-ctl";

// Command words -> handler. Longest match wins, so "cert issue" and "cert" can coexist later.
constexpr std::array kCommands = {
    Command{"keys add", "ID [--bytes 16|32]",
            "create a random PSK for ID and print it once (hex and base64)", keysAdd},
    Command{"keys import", "FILE|-",
            "import PSKs from FILE or stdin ('-'), all or nothing: CSV lines 'identity,key_hex'\n"
            "(optional header line, blank lines and # comments allowed) or a JSON array of\n"
            "{\"identity\": \"...\", \"key_hex\": \"...\"}; keys are 16 to 64 bytes",
            keysImport},
    Command{"keys list", "[--json]", "identities, created (UTC), status, revoked; never keys", keysList},
    Command{"keys revoke", "ID", "revoke ID; the running agent closes its sessions within 2 s", keysRevoke},
    Command{"keys rotate", "ID [--grace 1h] [--bytes 16|32 | --from FILE|-]",
            "give ID a new random key, printed once (hex and base64), or the hex key read from FILE\n"
            "or stdin; the old key keeps working for the grace period (0s..30d, default 1h), then\n"
            "the running agent deletes it and closes the sessions that use it. During the grace the\n"
            "agent offers each device the key it last used; a device that switched keys gets in on\n"
            "its second handshake",
            keysRotate},
    Command{"ca init", "[--days N]",
            "create the local device CA (EC P-256, default 3650 days) in <state_dir>/ca: ca.crt and\n"
            "ca.key (mode 0600); never overwrites an existing CA",
            caInit},
    Command{"ca show", "", "print the CA certificate (PEM) on stdout", caShow},
    Command{"cert issue", "ID --out DIR [--days N] [--server [--san NAME|IP]...]",
            "new key and certificate for ID (CN = ID, default 365 days) signed by the local CA:\n"
            "DIR/ID.crt, DIR/ID.key (PEM) and DIR/ID.crt.der, DIR/ID.key.der (DER); keys mode 0600.\n"
            "A device certificate (clientAuth) by default; --server makes the gateway's own\n"
            "(serverAuth) with subjectAltName entries from --san (default: DNS name ID)",
            certIssue},
    Command{"cert sign", "CSR|- --out FILE [--days N]",
            "check a device's CSR (PEM or DER: signature, EC P-256 key, CN = a valid identity) and\n"
            "sign it as a device certificate: FILE (PEM) and FILE.der",
            certSign},
    Command{"cert csr", "--out DIR",
            "make the gateway's own key and CSR (CN = [agent] name) for an upstream CA:\n"
            "DIR/NAME.key (mode 0600) and DIR/NAME.csr",
            certCsr},
    Command{"cert list", "[--json]",
            "certificates issued or signed here: serial, identity, profile, origin, expiry, status", certList},
    Command{"cert revoke", "SERIAL|ID",
            "revoke one certificate by serial (hex, ':' allowed), or every certificate of identity ID;\n"
            "the running agent refuses it and closes its sessions within 2 s",
            certRevoke},
    Command{"status", "[--json]",
            "ask the running agent (over <state_dir>/agent.sock) for its sessions (identity, peer,\n"
            "age), key counts and counters; fails with exit 1 when the agent is not running",
            status},
};

void printHelp(std::ostream& out) {
  out << "Usage: " << kProgram << " --config FILE COMMAND [ARGS]\n\n"
      << "Provisioning and administration for coap-edge-agent. State lives in the agent's state\n"
      << "directory ([agent] state_dir in FILE); run as the agent's user so files keep their owner.\n\n"
      << "Commands:\n";
  for (const auto& cmd : kCommands) {
    out << "  " << cmd.words << ' ' << cmd.syntax << '\n';
    for (std::string_view rest = cmd.summary; !rest.empty();) {
      const auto nl = rest.find('\n');
      out << "      " << rest.substr(0, nl) << '\n';
      rest = nl == std::string_view::npos ? std::string_view{} : rest.substr(nl + 1);
    }
  }
  out << "\nOptions:\n"
      << "  --config FILE   the agent's configuration file (TOML); required by every command\n"
      << "  -h, --help      show this help\n"
      << "  --version       show the version\n\n"
      << "Keys are read from files or stdin, never from the command line. A key is shown only by\n"
      << "'keys add' or 'keys rotate', once; revoked identities stay listed and cannot be reused.\n"
      << "Private keys written by 'cert issue' and 'cert csr' are created mode 0600, never over an\n"
      << "existing file.\n\n"
      << "Exit status:\n"
      << "  0   success (also revoking an identity or certificate that is already revoked)\n"
      << "  1   the operation failed: identity exists, unknown identity or serial, no CA yet, a CA\n"
      << "      or output file already exists, keystore or file unusable\n"
      << "  2   usage error: unknown command or option, missing argument, invalid identity\n"
      << "  65  bad input data: 'keys import' (the message names the line or array index), a CSR\n"
      << "      that 'cert sign' refuses, a key file for 'keys rotate --from'\n"
      << "  78  configuration error (file:line:col: message)\n";
}

// Longest table entry whose words are the leading positional arguments.
const Command* findCommand(std::span<const std::string_view> words, std::size_t& consumed) {
  const Command* best = nullptr;
  for (const auto& cmd : kCommands) {
    std::size_t n = 0;
    std::string_view rest = cmd.words;
    bool match = true;
    while (!rest.empty()) {
      const auto space = rest.find(' ');
      const std::string_view word = rest.substr(0, space);
      rest = space == std::string_view::npos ? std::string_view{} : rest.substr(space + 1);
      if (n >= words.size() || words[n] != word) {
        match = false;
        break;
      }
      ++n;
    }
    if (match && (best == nullptr || n > consumed)) {
      best = &cmd;
      consumed = n;
    }
  }
  return best;
}

int usage(std::ostream& err, std::string_view message) {
  err << kProgram << ": " << message << "\n" << kProgram << ": try '" << kProgram << " --help'\n";
  return kExitUsage;
}

int dispatch(std::span<const std::string_view> args, std::istream& in, std::ostream& out, std::ostream& err) {
  std::optional<std::filesystem::path> config_file;
  std::vector<std::string_view> rest;
  bool help = false;
  bool version = false;
  // Global options may stand anywhere, so `keys list --config f` works as well as the
  // documented order; "--" ends option processing (an identity could start with "--").
  bool options_done = false;
  for (std::size_t i = 0; i < args.size(); ++i) {
    const std::string_view a = args[i];
    if (options_done) {
      rest.push_back(a);
    } else if (a == "--") {
      options_done = true;
      rest.push_back(a);
    } else if (a == "--help" || a == "-h") {
      help = true;
    } else if (a == "--version") {
      version = true;
    } else if (a == "--config") {
      if (i + 1 >= args.size()) return usage(err, "--config needs a file name");
      config_file = std::filesystem::path(args[++i]);
    } else if (a.starts_with("--config=")) {
      config_file = std::filesystem::path(a.substr(9));
    } else {
      rest.push_back(a);
    }
  }
  if (help) {
    printHelp(out);
    return kExitOk;
  }
  if (version) {
    out << kProgram << ' ' << COAP_EDGE_VERSION << '\n';
    return kExitOk;
  }
  if (rest.empty()) return usage(err, "no command given");
  std::size_t consumed = 0;
  const Command* cmd = findCommand(rest, consumed);
  if (cmd == nullptr) {
    std::string words(rest[0]);
    if (rest.size() > 1 && !rest[1].starts_with("-")) words += fmt::format(" {}", rest[1]);
    return usage(err, fmt::format("unknown command '{}'", words));
  }
  Invocation inv{*cmd, std::move(config_file), {rest.begin() + static_cast<std::ptrdiff_t>(consumed), rest.end()},
                 in, out, err};
  return cmd->run(inv);
}

}  // namespace

int runCtl(std::span<const std::string_view> args, std::istream& in, std::ostream& out, std::ostream& err) noexcept {
  try {
    return dispatch(args, in, out, err);
  } catch (const std::exception& e) {
    try {
      err << kProgram << ": " << e.what() << '\n';
    } catch (...) {
    }
    return kExitFailed;
  } catch (...) {
    return kExitFailed;
  }
}

int realMain(int argc, char** argv) noexcept {
  try {
    log::init(kProgram, log::Sink::stderr_stream, log::Level::warning);
    std::vector<std::string_view> args;
    for (int i = 1; i < argc; ++i) args.emplace_back(argv[i]);
    return runCtl(args, std::cin, std::cout, std::cerr);
  } catch (...) {
    return kExitFailed;
  }
}

}  // namespace coap_edge::ctl
