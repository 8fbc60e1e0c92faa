#pragma once
// One worker process: its share of the sessions on one epoll, driven through two phases that the
// parent starts: handshakes (bounded concurrency), then load (K CON GETs per session) for the
// configured duration. Talks to the parent with HandshakeReport/LoadReport over pipes.

#include "options.h"

#include <cstdint>

namespace coap_edge::bench {

struct WorkerShare {
  std::uint32_t sessions;
  std::uint32_t active;  ///< the first `active` sessions send requests
  std::uint32_t handshake_concurrency;
  int to_parent;    ///< write end
  int from_parent;  ///< read end: one byte starts the load phase
};

/// Runs the worker to completion; the process exit code.
int runWorker(const Options& options, const WorkerShare& share) noexcept;

}  // namespace coap_edge::bench
