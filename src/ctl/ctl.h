#pragma once
// coap-edge-ctl: provisioning and administration of the agent's state (DESIGN.md "Interfaces").
// All command logic runs through runCtl() so that tests drive it in-process with their own
// streams; main.cpp only adapts argv.

#include <iosfwd>
#include <span>
#include <string_view>

namespace coap_edge::ctl {

/// Exit codes (sysexits.h values where one fits), documented in --help.
enum ExitCode : int {
  kExitOk = 0,
  kExitFailed = 1,    ///< the operation could not be done (identity exists, unknown identity, I/O)
  kExitUsage = 2,     ///< bad command line
  kExitDataErr = 65,  ///< EX_DATAERR: bad import input
  kExitConfig = 78,   ///< EX_CONFIG: the configuration file is invalid
};

/// Runs one command. Never throws.
/// @param[in] args  the command line without the program name, e.g. {"--config", "f", "keys", "list"}.
/// @param[in] in    read by `keys import -`.
/// @param[out] out  results (keys printed once by `keys add`, listings).
/// @param[out] err  diagnostics, each line prefixed "coap-edge-ctl: ".
/// @returns an ExitCode.
[[nodiscard]] int runCtl(std::span<const std::string_view> args, std::istream& in, std::ostream& out,
                         std::ostream& err) noexcept;

/// main(): sets up logging to stderr and calls runCtl with the process's streams.
[[nodiscard]] int realMain(int argc, char** argv) noexcept;

}  // namespace coap_edge::ctl
