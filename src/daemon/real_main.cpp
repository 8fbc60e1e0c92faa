// Command line of coap-edge-agent: options, logging set-up, --check-config, then the Agent.

#include "coap/runtime.h"
#include "common/log.h"
#include "config/config.h"
#include "daemon/agent.h"

#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <string_view>

namespace coap_edge::daemon {
namespace {

constexpr std::string_view kLogTag = "agent";
constexpr int kExUsage = 2;
constexpr int kExConfig = 78;

constexpr std::string_view kUsage =
    "usage: coap-edge-agent --config FILE [--check-config] [--log-target stderr|syslog]\n"
    "       coap-edge-agent --version\n"
    "\n"
    "  --config FILE      the agent's TOML configuration (see coap-edge-agent.toml(5))\n"
    "  --check-config     validate FILE (and the certificate files it names), then exit:\n"
    "                     0 if valid, 78 with 'file:line:col: message' otherwise\n"
    "  --log-target T     stderr (default; journald reads it under systemd) or syslog\n"
    "  --version          print the agent, libcoap and Mbed TLS versions\n"
    "\n"
    "Signals: SIGHUP reloads log level and limits (keys are read per handshake);\n"
    "SIGTERM closes every session and exits 0.\n";

struct Options {
  std::string config;
  bool check_only = false;
  bool version = false;
  bool help = false;
  log::Sink sink = log::Sink::stderr_stream;
};

// Returns an error message, or "" on success.
std::string parseOptions(int argc, char** argv, Options& o) {
  for (int i = 1; i < argc; ++i) {
    const std::string_view a = argv[i];
    auto value = [&](std::string_view name) -> std::optional<std::string_view> {
      if (i + 1 >= argc) return std::nullopt;
      (void)name;
      return std::string_view(argv[++i]);
    };
    if (a == "--config") {
      auto v = value(a);
      if (!v) return "--config needs a file";
      o.config = std::string(*v);
    } else if (a.starts_with("--config=")) {
      o.config = std::string(a.substr(9));
    } else if (a == "--check-config") {
      o.check_only = true;
    } else if (a == "--version") {
      o.version = true;
    } else if (a == "--help" || a == "-h") {
      o.help = true;
    } else if (a == "--log-target") {
      auto v = value(a);
      if (!v || (*v != "stderr" && *v != "syslog")) return "--log-target takes stderr or syslog";
      o.sink = *v == "syslog" ? log::Sink::syslog : log::Sink::stderr_stream;
    } else {
      return "unknown option '" + std::string(a) + "'";
    }
  }
  if (!o.version && !o.help && o.config.empty()) return "--config FILE is required";
  return "";
}

}  // namespace

int realMain(int argc, char** argv) {
  Options opts;
  if (std::string err = parseOptions(argc, argv, opts); !err.empty()) {
    std::cerr << "coap-edge-agent: " << err << "\n\n" << kUsage;
    return kExUsage;
  }
  if (opts.help) {
    std::cout << kUsage;
    return 0;
  }
  if (opts.version) {
    std::cout << "coap-edge-agent " << COAP_EDGE_VERSION << " (" << coap::Runtime::libcoapVersion() << ", "
              << coap::Runtime::tlsVersion() << ")\n";
    return 0;
  }

  auto loaded = config::loadFile(opts.config);
  if (!loaded.ok()) {
    std::cerr << loaded.error->str() << "\n";
    return kExConfig;
  }
  config::Config cfg = std::move(*loaded.config);
  if (opts.check_only) {
    if (auto problem = checkReferencedFiles(cfg)) {
      std::cerr << *problem << "\n";
      return kExConfig;
    }
    std::cout << opts.config << ": configuration OK\n";
    return 0;
  }

  log::init("coap-edge-agent", opts.sink, cfg.agent.log_level);
  try {
    coap::Runtime runtime(cfg.agent.log_level);
    CE_LOG_NOTICE("starting coap-edge-agent {} on {} and {}", COAP_EDGE_VERSION, coap::Runtime::libcoapVersion(),
                  coap::Runtime::tlsVersion());
    Agent agent(std::move(cfg));
    return agent.run();
  } catch (const StartupFailure& e) {
    std::cerr << "coap-edge-agent: " << e.what() << "\n";
    return e.exit_code;
  } catch (const std::exception& e) {
    std::cerr << "coap-edge-agent: " << e.what() << "\n";
    return 1;
  }
}

}  // namespace coap_edge::daemon
