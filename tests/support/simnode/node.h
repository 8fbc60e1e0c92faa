#pragma once
// The simulated node: one libcoap context with its endpoints, multicast groups, resources,
// optional RD registration and Avahi publication, and the loop that runs them (with sleeps).

#include "avahi_publisher.h"
#include "common/c_ptr.h"
#include "options.h"
#include "registration.h"
#include "resources.h"

#include <coap3/coap.h>

#include <csignal>
#include <memory>

namespace coap_edge::simnode {

class Node {
 public:
  /// Sets up everything; throws std::runtime_error with a message for the user on failure.
  explicit Node(Options options);
  ~Node();
  Node(const Node&) = delete;
  Node& operator=(const Node&) = delete;

  /// Runs until `stop` is set (then leaves the RD, bounded) or the registration fails fatally.
  /// Returns the exit code.
  int run(const volatile std::sig_atomic_t& stop);

 private:
  static int onEvent(coap_session_t* session, coap_event_t event) noexcept;
  static coap_response_t onResponse(coap_session_t* session, const coap_pdu_t* sent, const coap_pdu_t* received,
                                    coap_mid_t mid) noexcept;
  static void onNack(coap_session_t* session, const coap_pdu_t* sent, coap_nack_reason_t reason,
                     coap_mid_t mid) noexcept;
  static Node* of(coap_session_t* session);
  void listen();
  void joinGroups();
  void leaveRd();

  Options options_;
  CPtr<coap_context_t, coap_free_context> context_;
  std::unique_ptr<Resources> resources_;
  std::unique_ptr<RdClient> rd_;
  std::unique_ptr<AvahiPublisher> avahi_;
  std::uint16_t first_port_ = 0;
};

}  // namespace coap_edge::simnode
