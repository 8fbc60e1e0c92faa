#pragma once
// Registration of the node at a Resource Directory (RFC 9176) over coaps with a PSK: POST
// /rd?ep=EP&lt=LT with the node's links (Content-Format 40), refresh (empty POST to the
// location) at 75 % of the lifetime, register again when the refresh gets 4.04, DELETE on leave.

#include "common/c_ptr.h"

#include <coap3/coap.h>

#include <chrono>
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

namespace coap_edge::simnode {

struct RdSettings {
  std::string uri;  ///< coaps://HOST:PORT[/PATH], PATH default "rd"
  std::string psk_identity;
  std::string psk_key_file;  ///< one line of hex
  std::string endpoint;      ///< ep= of the registration
  unsigned lifetime_s = 300;
};

class RdClient {
 public:
  using Clock = std::chrono::steady_clock;

  /// `links` yields the registration payload (the node's resources in link format).
  RdClient(coap_context_t* context, RdSettings settings, std::function<std::string()> links);
  ~RdClient();
  RdClient(const RdClient&) = delete;
  RdClient& operator=(const RdClient&) = delete;

  /// Reads the key, resolves the RD and sends the first registration. "" or an error message.
  [[nodiscard]] std::string start();
  /// Sends a due refresh or registration; fails a request that got no answer in time.
  void tick(Clock::time_point now);
  [[nodiscard]] Clock::time_point nextEvent() const;
  /// Sends DELETE for the registration if there is one; done() says when it is over.
  void leave();
  /// Nothing outstanding (after leave(): the DELETE got its answer or failed).
  [[nodiscard]] bool idle() const { return state_ != State::waiting; }
  /// Set when the first registration was refused or never answered: the process must exit.
  [[nodiscard]] const std::string& fatalError() const { return fatal_; }
  [[nodiscard]] const std::string& location() const { return location_; }

  // From the context's handlers (node.cpp dispatches them here).
  void onResponse(const coap_pdu_t* received);
  void onNack(const coap_pdu_t* sent, coap_nack_reason_t reason);

 private:
  enum class State { idle, waiting };
  enum class Request { none, registration, refresh, removal };

  bool ensureSession();
  void send(Request what);
  void failed(const std::string& why);
  [[nodiscard]] bool ours(const coap_pdu_t* pdu) const;

  coap_context_t* context_;
  RdSettings settings_;
  std::function<std::string()> links_;
  std::vector<std::uint8_t> key_;
  coap_address_t server_{};
  std::string rd_path_ = "rd";
  CPtr<coap_session_t, coap_session_release> session_;

  State state_ = State::idle;
  Request pending_ = Request::none;
  std::vector<std::uint8_t> token_;
  Clock::time_point deadline_{};       ///< of the pending request
  Clock::time_point next_attempt_{};   ///< refresh or re-registration due
  bool registered_once_ = false;
  bool leaving_ = false;
  bool drop_session_ = false;
  std::string location_;  ///< "/rd/3"
  std::string fatal_;
};

/// Hex (one line, whitespace around it ignored) to bytes; empty on a malformed line.
std::vector<std::uint8_t> parseHexKey(const std::string& text);

}  // namespace coap_edge::simnode
