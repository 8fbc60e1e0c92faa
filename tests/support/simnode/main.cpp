// coap-edge-simnode: a simulated constrained CoAP node for the integration tests and demos
// (see README.md beside this file). Not installed.

#include "common/log.h"
#include "node.h"
#include "options.h"

#include <coap3/coap.h>

#include <csignal>
#include <cstdio>
#include <exception>

namespace {

constexpr std::string_view kLogTag = "simnode";
volatile std::sig_atomic_t g_stop = 0;

void onSignal(int) { g_stop = 1; }

}  // namespace

int main(int argc, char** argv) {
  using namespace coap_edge;
  std::string error;
  const auto options = simnode::parseOptions(argc, argv, error);
  if (!options) {
    std::fprintf(stderr, "coap-edge-simnode: %s\n\n%s", error.c_str(), simnode::kUsage);
    return 1;
  }
  if (options->help) {
    std::fputs(simnode::kUsage, stdout);
    return 0;
  }
  log::init("coap-edge-simnode", log::Sink::stderr_stream, options->verbose > 0 ? log::Level::debug : log::Level::info);
  // No SA_RESTART: a signal ends libcoap's wait (epoll) at once.
  struct sigaction sa {};
  sa.sa_handler = onSignal;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGTERM, &sa, nullptr);
  sigaction(SIGINT, &sa, nullptr);
  std::signal(SIGPIPE, SIG_IGN);

  coap_startup();
  coap_set_log_level(options->verbose >= 2 ? COAP_LOG_DEBUG : options->verbose == 1 ? COAP_LOG_INFO : COAP_LOG_WARN);
  int rc = 0;
  try {
    simnode::Node node(*options);
    rc = node.run(g_stop);
  } catch (const std::exception& e) {
    CE_LOG_ERROR("{}", e.what());
    rc = 1;
  }
  coap_cleanup();
  return rc;
}
