#pragma once
// The resources of the simulated node, on libcoap's resource API: /sensors/temp (observable,
// changes every period), /actuators/led (GET/PUT, value kept), /big (Block2), /r/<i> (load), and
// the node's own /.well-known/core handler, which lets libcoap drop empty answers to multicast.

#include <coap3/coap.h>

#include <chrono>
#include <string>

namespace coap_edge::simnode {

/// `size` bytes (default 3000): 'a'..'z' repeating by position, with '\n' at every position i
/// where i % 50 == 49.
std::string bigPayload(std::size_t size = 3000);

/// The temperature after `step` changes, as the resource shows it ("20.0", "20.1", ... "29.9").
std::string temperatureText(unsigned step);

class Resources {
 public:
  using Clock = std::chrono::steady_clock;

  /// Adds every resource to `context` (which owns them from then on). `name` goes into the
  /// title of /sensors/temp, so that answers to a multicast discovery tell the nodes apart.
  /// With `log_requests`, every handler run logs "request GET /path token=HEX observe=N": the
  /// tests count what reached the node. libcoap runs the GET handler again for each
  /// notification, with the observer's token: distinct tokens with observe=0 are registrations.
  Resources(coap_context_t* context, const std::string& name, double temp_period_s, unsigned extra_resources,
            std::size_t big_size = 3000, bool log_requests = false);
  Resources(const Resources&) = delete;
  Resources& operator=(const Resources&) = delete;

  /// Advances the temperature if its period is over and notifies its observers.
  void tick(Clock::time_point now);
  [[nodiscard]] Clock::time_point nextChange() const { return next_change_; }
  /// The node's links in CoRE Link Format (what /.well-known/core shows without a filter).
  [[nodiscard]] std::string linkFormat() const;

 private:
  static Resources* self(coap_resource_t* r);
  static void getTemp(coap_resource_t*, coap_session_t*, const coap_pdu_t*, const coap_string_t*, coap_pdu_t*);
  static void getLed(coap_resource_t*, coap_session_t*, const coap_pdu_t*, const coap_string_t*, coap_pdu_t*);
  static void putLed(coap_resource_t*, coap_session_t*, const coap_pdu_t*, const coap_string_t*, coap_pdu_t*);
  static void getBig(coap_resource_t*, coap_session_t*, const coap_pdu_t*, const coap_string_t*, coap_pdu_t*);
  static void getLoad(coap_resource_t*, coap_session_t*, const coap_pdu_t*, const coap_string_t*, coap_pdu_t*);
  static void getUnknown(coap_resource_t*, coap_session_t*, const coap_pdu_t*, const coap_string_t*, coap_pdu_t*);

  coap_context_t* context_;
  coap_resource_t* temp_ = nullptr;
  coap_resource_t* led_ = nullptr;
  std::chrono::nanoseconds period_;
  Clock::time_point next_change_;
  unsigned step_ = 0;
  std::string led_value_ = "off";
  std::string big_;
};

}  // namespace coap_edge::simnode
