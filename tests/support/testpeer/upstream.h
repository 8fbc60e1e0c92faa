#pragma once
// Upstream mode: the server the gateway connects to over DTLS (PSK and/or X.509). It takes
// telemetry (POST or PUT under /telemetry, Block1 reassembled by libcoap) into a JSON-lines log
// and, once the gateway's session is up, sends requests and an observation back over that same
// session. With --rd it is also a minimal Resource Directory (RFC 9176 §5.3, §5.3.1, §5.3.2)
// that keeps its registrations' lifetimes, so that a test sees whether the gateway refreshes in
// time.

#include "common/c_ptr.h"
#include "options.h"
#include "util.h"

#include <coap3/coap.h>

#include <chrono>
#include <csignal>
#include <cstdio>
#include <deque>
#include <map>
#include <string>

namespace coap_edge::testpeer {

class Upstream {
 public:
  /// Throws std::runtime_error (a message for the user) on a bad address or setup failure.
  Upstream(const UpstreamOptions& options, const Psk& psk);
  ~Upstream();
  Upstream(const Upstream&) = delete;
  Upstream& operator=(const Upstream&) = delete;

  /// Runs until `stop` or --exit-after; returns the exit code.
  int run(const volatile std::sig_atomic_t& stop);

 private:
  using Clock = std::chrono::steady_clock;
  enum class Phase { waiting, requests, observing, cancelling, done };

  static coap_response_t onResponse(coap_session_t* session, const coap_pdu_t* sent, const coap_pdu_t* received,
                                    coap_mid_t mid) noexcept;
  static void onNack(coap_session_t* session, const coap_pdu_t* sent, coap_nack_reason_t reason,
                     coap_mid_t mid) noexcept;
  static int onEvent(coap_session_t* session, coap_event_t event) noexcept;
  static const coap_bin_const_t* onIdentity(coap_bin_const_t* identity, coap_session_t* session, void* arg) noexcept;
  static void onTelemetry(coap_resource_t* resource, coap_session_t* session, const coap_pdu_t* request,
                          const coap_string_t* query, coap_pdu_t* response) noexcept;
  static Upstream* of(coap_session_t* session);

  void telemetry(coap_session_t* session, const coap_pdu_t* request, const coap_string_t* query,
                 coap_pdu_t* response);
  void rd(const std::string& path, const coap_pdu_t* request, const coap_string_t* query, coap_pdu_t* response);
  void expireRegistrations();
  void gatewayUp(coap_session_t* session);
  void response(const coap_pdu_t* received);
  void failed(const coap_pdu_t* sent, const std::string& why);
  void next();  ///< sends the next --request, then the observation
  void line(const std::string& text);

  UpstreamOptions options_;
  std::string psk_identity_;
  std::string psk_key_;
  coap_bin_const_t key_bin_{};
  CPtr<coap_context_t, coap_free_context> context_;
  CPtr<std::FILE, std::fclose> out_file_;
  std::FILE* out_ = stdout;
  CPtr<std::FILE, std::fclose> telemetry_log_;
  unsigned telemetry_seen_ = 0;

  // --rd: registrations by the number in their location rd/<n>.
  struct Registration {
    std::string ep;
    unsigned long lifetime_s = 0;
    Clock::time_point expires{};
    std::size_t bytes = 0;  ///< of the link-format payload
  };
  std::map<unsigned, Registration> registrations_;
  unsigned next_registration_ = 1;

  // Role reversal: requests to the gateway over its own session (held while in use).
  CPtr<coap_session_t, coap_session_release> gateway_;
  bool drop_gateway_ = false;  ///< the session closed: release it outside the callback
  Phase phase_ = Phase::waiting;
  std::deque<UpstreamRequest> queue_;
  UpstreamRequest current_;
  std::vector<std::uint8_t> token_;
  Clock::time_point request_deadline_{};
  Clock::time_point observe_end_{};
  unsigned notifications_ = 0;
};

}  // namespace coap_edge::testpeer
