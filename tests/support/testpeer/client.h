#pragma once
// Client mode: one request (or an observation) to a coap/coaps URI, optionally through a
// forward proxy (Proxy-Uri); libcoap does Block1/Block2 and separate responses.

#include "common/c_ptr.h"
#include "options.h"
#include "util.h"

#include <coap3/coap.h>

#include <chrono>
#include <csignal>
#include <functional>

namespace coap_edge::testpeer {

class Client {
 public:
  /// Throws std::runtime_error (a message for the user) when the URI or the session is bad.
  Client(const ClientOptions& options, const Psk& psk);
  ~Client();
  Client(const Client&) = delete;
  Client& operator=(const Client&) = delete;

  /// Sends and waits; returns the exit code (see README.md).
  int run(const volatile std::sig_atomic_t& stop);

 private:
  using Clock = std::chrono::steady_clock;
  static coap_response_t onResponse(coap_session_t* session, const coap_pdu_t* sent, const coap_pdu_t* received,
                                    coap_mid_t mid) noexcept;
  static void onNack(coap_session_t* session, const coap_pdu_t* sent, coap_nack_reason_t reason,
                     coap_mid_t mid) noexcept;
  static int onEvent(coap_session_t* session, coap_event_t event) noexcept;
  static Client* of(coap_session_t* session);
  static void getBig(coap_resource_t*, coap_session_t*, const coap_pdu_t*, const coap_string_t*, coap_pdu_t*) noexcept;
  static void getTick(coap_resource_t*, coap_session_t*, const coap_pdu_t*, const coap_string_t*, coap_pdu_t*) noexcept;
  void addResources();
  void linger(const volatile std::sig_atomic_t& stop);
  int exchange(const volatile std::sig_atomic_t& stop);
  void response(const coap_pdu_t* received);
  void finish(int code) {
    if (exit_code_ < 0) exit_code_ = code;
  }
  void process(Clock::time_point until, const volatile std::sig_atomic_t& stop, const std::function<bool()>& done);

  ClientOptions options_;
  std::string psk_identity_;
  std::string psk_key_;
  std::string server_name_;  ///< libcoap keeps a pointer to it during the handshake
  CPtr<coap_context_t, coap_free_context> context_;
  CPtr<coap_session_t, coap_session_release> session_;
  RequestSpec spec_;
  std::vector<std::uint8_t> token_;
  bool answered_ = false;       ///< the first response arrived
  bool cancel_answered_ = false;
  bool cancelling_ = false;
  int exit_code_ = -1;
  std::string big_;  ///< /big while lingering
  coap_resource_t* tick_ = nullptr;
  unsigned ticks_ = 0;
};

}  // namespace coap_edge::testpeer
