// Helpers shared by every ctl command: messages, argument parsing, config and keystore access.
#include "ctl/commands.h"
#include "ctl/ctl.h"

#include <fmt/format.h>

#include <algorithm>
#include <ctime>
#include <ostream>
#include <stdexcept>

namespace coap_edge::ctl {

int fail(Invocation& inv, int code, std::string_view message) {
  // Every line carries the prefix, so multi-line messages still grep as ours.
  while (!message.empty()) {
    const auto nl = message.find('\n');
    inv.err << "coap-edge-ctl: " << message.substr(0, nl) << '\n';
    message = nl == std::string_view::npos ? std::string_view{} : message.substr(nl + 1);
  }
  return code;
}

bool ParsedArgs::has(std::string_view name) const {
  return std::any_of(options.begin(), options.end(), [name](const auto& o) { return o.first == name; });
}

std::optional<std::string_view> ParsedArgs::value(std::string_view name) const {
  for (auto it = options.rbegin(); it != options.rend(); ++it) {
    if (it->first == name) return it->second;
  }
  return std::nullopt;
}

std::optional<ParsedArgs> parseArgs(Invocation& inv, std::initializer_list<std::string_view> option_specs,
                                    std::size_t positional_count) {
  const auto usageError = [&inv](std::string_view why) {
    (void)fail(inv, kExitUsage,
               fmt::format("{}\nusage: coap-edge-ctl --config FILE {} {}", why, inv.command.words, inv.command.syntax));
    return std::nullopt;
  };
  ParsedArgs parsed;
  bool options_done = false;
  for (std::size_t i = 0; i < inv.args.size(); ++i) {
    const std::string_view a = inv.args[i];
    if (options_done || a == "-" || !a.starts_with("-")) {
      parsed.positional.push_back(a);
      continue;
    }
    if (a == "--") {
      options_done = true;
      continue;
    }
    const auto eq = a.find('=');
    const std::string_view name = a.substr(0, eq);
    bool known = false;
    for (const std::string_view spec : option_specs) {
      const bool takes_value = spec.ends_with('=');
      if (spec.substr(0, spec.size() - (takes_value ? 1 : 0)) != name) continue;
      known = true;
      if (!takes_value) {
        if (eq != std::string_view::npos) return usageError(fmt::format("option {} takes no value", name));
        parsed.options.emplace_back(name, std::string_view{});
      } else if (eq != std::string_view::npos) {
        parsed.options.emplace_back(name, a.substr(eq + 1));
      } else if (i + 1 < inv.args.size()) {
        parsed.options.emplace_back(name, inv.args[++i]);
      } else {
        return usageError(fmt::format("option {} needs a value", name));
      }
    }
    if (!known) return usageError(fmt::format("unknown option '{}' for '{}'", name, inv.command.words));
  }
  if (parsed.positional.size() < positional_count) return usageError("missing argument");
  if (parsed.positional.size() > positional_count) {
    return usageError(fmt::format("unexpected argument '{}'", parsed.positional[positional_count]));
  }
  return parsed;
}

std::optional<config::Config> loadConfig(Invocation& inv, int& exit_code) {
  if (!inv.config_file) {
    exit_code = fail(inv, kExitUsage, "--config FILE is required (the agent's configuration, for its state_dir)");
    return std::nullopt;
  }
  config::LoadResult loaded = config::loadFile(*inv.config_file);
  if (!loaded.ok()) {
    const std::string message =
        loaded.error ? loaded.error->str() : fmt::format("{}: cannot load", inv.config_file->string());
    exit_code = fail(inv, kExitConfig, message);
    return std::nullopt;
  }
  return std::move(loaded.config);
}

std::optional<keystore::Keystore> openKeystore(Invocation& inv, const config::Config& cfg, int& exit_code) {
  try {
    return keystore::Keystore::open(cfg.agent.state_dir.value);
  } catch (const std::runtime_error& e) {
    exit_code = fail(inv, kExitFailed, e.what());
    return std::nullopt;
  }
}

std::string isoTime(std::int64_t unix_seconds) {
  const auto t = static_cast<std::time_t>(unix_seconds);
  std::tm tm{};
  if (::gmtime_r(&t, &tm) == nullptr) return fmt::format("@{}", unix_seconds);
  char text[32] = {};
  const std::size_t n = std::strftime(text, sizeof text, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return n == 0 ? fmt::format("@{}", unix_seconds) : std::string(text, n);
}

}  // namespace coap_edge::ctl
