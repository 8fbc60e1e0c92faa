// coap-edge-testpeer: a libcoap 4.3.5 client and a stand-in upstream for the integration tests
// (see README.md beside this file). Not installed.

#include "client.h"
#include "common/log.h"
#include "options.h"
#include "upstream.h"

#include <coap3/coap.h>

#include <csignal>
#include <cstdio>
#include <exception>

namespace {

constexpr std::string_view kLogTag = "testpeer";
volatile std::sig_atomic_t g_stop = 0;

void onSignal(int) { g_stop = 1; }

}  // namespace

int main(int argc, char** argv) {
  using namespace coap_edge;
  std::string error;
  const auto options = testpeer::parseOptions(argc, argv, error);
  if (!options) {
    std::fprintf(stderr, "coap-edge-testpeer: %s\n\n%s", error.c_str(), testpeer::kUsage);
    return 1;
  }
  if (options->help) {
    std::fputs(testpeer::kUsage, stdout);
    return 0;
  }
  const bool client = options->mode == testpeer::Mode::client;
  // The client's stderr is for the response code: only warnings unless -v.
  const auto level = options->verbose > 0 ? log::Level::debug : client ? log::Level::warning : log::Level::info;
  log::init("coap-edge-testpeer", log::Sink::stderr_stream, level);
  // No SA_RESTART: a signal ends libcoap's wait (epoll) at once.
  struct sigaction sa {};
  sa.sa_handler = onSignal;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGTERM, &sa, nullptr);
  sigaction(SIGINT, &sa, nullptr);
  std::signal(SIGPIPE, SIG_IGN);

  coap_startup();
  coap_set_log_level(options->verbose >= 2 ? COAP_LOG_DEBUG : options->verbose == 1 ? COAP_LOG_INFO : COAP_LOG_ERR);
  int rc = 0;
  try {
    if (client) {
      testpeer::Client peer(options->client, options->psk);
      rc = peer.run(g_stop);
    } else {
      testpeer::Upstream peer(options->upstream, options->psk);
      rc = peer.run(g_stop);
    }
  } catch (const std::exception& e) {
    CE_LOG_ERROR("{}", e.what());
    rc = 1;
  }
  coap_cleanup();
  return rc;
}
