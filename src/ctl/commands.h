#pragma once
// Internal to ctl: what a command handler receives, the command table entry, and helpers
// shared by the handlers. New command groups (ca, cert, status) add a handler file and rows
// to the table in ctl.cpp.

#include "config/config.h"
#include "keystore/keystore.h"

#include <filesystem>
#include <initializer_list>
#include <iosfwd>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace coap_edge::ctl {

struct Command;

struct Invocation {
  const Command& command;
  std::optional<std::filesystem::path> config_file;  ///< --config
  std::vector<std::string_view> args;                ///< what follows the command words
  std::istream& in;
  std::ostream& out;
  std::ostream& err;
};

using Handler = int (*)(Invocation&);

struct Command {
  std::string_view words;    ///< "keys add"
  std::string_view syntax;   ///< "ID [--bytes 16|32]"
  std::string_view summary;  ///< one line for --help
  Handler run;
};

/// Prints "coap-edge-ctl: <message>" on err. @returns code.
int fail(Invocation& inv, int code, std::string_view message);

/// Options and positionals of one command. An option spec is "--name" (flag) or "--name=" (takes
/// a value, given as "--name V" or "--name=V").
struct ParsedArgs {
  std::vector<std::string_view> positional;
  std::vector<std::pair<std::string_view, std::string_view>> options;  ///< name (no '='), value
  [[nodiscard]] bool has(std::string_view name) const;
  [[nodiscard]] std::optional<std::string_view> value(std::string_view name) const;
};
/// @returns nullopt after printing a usage error when args do not fit.
[[nodiscard]] std::optional<ParsedArgs> parseArgs(Invocation& inv, std::initializer_list<std::string_view> option_specs,
                                                  std::size_t positional_count);

/// Loads --config; on failure prints why and sets exit_code (2 without --config, 78 invalid).
[[nodiscard]] std::optional<config::Config> loadConfig(Invocation& inv, int& exit_code);
/// Opens the keystore in the configured state_dir; on failure prints why and sets exit_code 1.
[[nodiscard]] std::optional<keystore::Keystore> openKeystore(Invocation& inv, const config::Config& cfg,
                                                             int& exit_code);

/// "2024-05-01T12:00:00Z".
[[nodiscard]] std::string isoTime(std::int64_t unix_seconds);

// The keys group (keys_commands.cpp).
int keysAdd(Invocation& inv);
int keysImport(Invocation& inv);
int keysList(Invocation& inv);
int keysRevoke(Invocation& inv);
int keysRotate(Invocation& inv);

// The local device CA and certificates (ca_commands.cpp, cert_commands.cpp).
int caInit(Invocation& inv);
int caShow(Invocation& inv);
int certIssue(Invocation& inv);
int certSign(Invocation& inv);
int certCsr(Invocation& inv);
int certList(Invocation& inv);
int certRevoke(Invocation& inv);

// Talking to the running agent (status_command.cpp).
int status(Invocation& inv);

}  // namespace coap_edge::ctl
