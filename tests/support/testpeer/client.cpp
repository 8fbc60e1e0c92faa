#include "client.h"

#include "common/log.h"

#include <algorithm>
#include <cstdio>
#include <cstdint>
#include <cstring>
#include <stdexcept>

namespace coap_edge::testpeer {
namespace {

constexpr std::string_view kLogTag = "testpeer";
constexpr auto kCancelLimit = std::chrono::seconds(5);

std::string str(const coap_str_const_t& s) { return std::string(reinterpret_cast<const char*>(s.s), s.length); }

coap_uri_t splitUri(const std::string& text, const char* what) {
  coap_uri_t uri{};
  if (coap_split_uri(reinterpret_cast<const std::uint8_t*>(text.data()), text.size(), &uri) != 0 ||
      (uri.scheme != COAP_URI_SCHEME_COAP && uri.scheme != COAP_URI_SCHEME_COAPS)) {
    throw std::runtime_error(std::string(what) + ": '" + text + "' is not a coap:// or coaps:// URI");
  }
  return uri;
}

void writeAll(std::FILE* f, const std::string& bytes) {
  if (!bytes.empty()) std::fwrite(bytes.data(), 1, bytes.size(), f);
  std::fflush(f);
}

}  // namespace

Client::Client(const ClientOptions& options, const Psk& psk)
    : options_(options), psk_identity_(psk.identity), psk_key_(psk.key) {
  const coap_uri_t target = splitUri(options_.uri, "URI");
  // Where the datagrams go: the resource's server, or the proxy with Proxy-Uri = URI.
  const coap_uri_t peer = options_.proxy.empty() ? target : splitUri(options_.proxy, "-P");
  const bool secure = peer.scheme == COAP_URI_SCHEME_COAPS;
  const bool x509 = !options_.certificate.empty();
  if (secure && !x509 && psk_identity_.empty()) {
    throw std::runtime_error("coaps needs --psk-identity and --psk-key, or --certificate, --private-key and --ca");
  }

  coap_str_const_t host{peer.host.length, peer.host.s};
  coap_addr_info_t* info = coap_resolve_address_info(&host, peer.port, peer.port, peer.port, peer.port, 0,
                                                     1 << peer.scheme, COAP_RESOLVE_TYPE_REMOTE);
  if (info == nullptr) throw std::runtime_error("cannot resolve " + str(host));
  coap_address_t dst = info->addr;
  coap_free_address_info(info);

  context_.reset(coap_new_context(nullptr));
  if (!context_) throw std::runtime_error("libcoap: cannot create a context");
  coap_context_set_app_data(context_.get(), this);
  coap_context_set_block_mode(context_.get(), COAP_BLOCK_USE_LIBCOAP | COAP_BLOCK_SINGLE_BODY);
  coap_context_set_max_block_size(context_.get(), 1024);
  coap_register_response_handler(context_.get(), &Client::onResponse);
  coap_register_nack_handler(context_.get(), &Client::onNack);
  coap_register_event_handler(context_.get(), &Client::onEvent);
  if (options_.linger_s > 0) addResources();

  if (secure && x509) {
    // The server's certificate must chain to --ca and be inside its validity.
    coap_dtls_pki_t pki = verifyingPemPki(options_.certificate, options_.private_key, options_.ca);
    // Mbed TLS refuses to verify a server certificate without a name to match it against
    // (libcoap's verify callback then lets a mismatch pass: a test device checks no name).
    server_name_ = options_.server_name.empty() ? str(peer.host) : options_.server_name;
    pki.client_sni = server_name_.data();
    session_.reset(coap_new_client_session_pki(context_.get(), nullptr, &dst, COAP_PROTO_DTLS, &pki));
  } else if (secure) {
    coap_dtls_cpsk_t setup{};
    setup.version = COAP_DTLS_CPSK_SETUP_VERSION;
    setup.psk_info.identity = {psk_identity_.size(), reinterpret_cast<const std::uint8_t*>(psk_identity_.data())};
    setup.psk_info.key = {psk_key_.size(), reinterpret_cast<const std::uint8_t*>(psk_key_.data())};
    session_.reset(coap_new_client_session_psk2(context_.get(), nullptr, &dst, COAP_PROTO_DTLS, &setup));
  } else {
    session_.reset(coap_new_client_session(context_.get(), nullptr, &dst, COAP_PROTO_UDP));
  }
  if (!session_) throw std::runtime_error("cannot open a session to " + str(host));
  if (options_.max_retransmit >= 0) {
    coap_session_set_max_retransmit(session_.get(), static_cast<std::uint16_t>(options_.max_retransmit));
  }
  if (options_.ack_timeout_s > 0) {
    const auto ms = static_cast<std::uint16_t>(options_.ack_timeout_s * 1000 + 0.5);  // at most 60,000
    coap_session_set_ack_timeout(session_.get(),
                                 coap_fixed_point_t{static_cast<std::uint16_t>(ms / 1000), static_cast<std::uint16_t>(ms % 1000)});
  }

  spec_.code = methodCode(options_.method);
  if (options_.proxy.empty()) {
    spec_.path = str(target.path);
    spec_.query = str(target.query);
  } else {
    spec_.proxy_uri = options_.uri;
  }
  spec_.payload = options_.payload;
  spec_.content_format = options_.content_format;
  spec_.accept = options_.accept;
  if (options_.observe_s > 0) spec_.observe = COAP_OBSERVE_ESTABLISH;
}

// What a gateway would serve to its upstream, for the role-reversal tests: /big with Block2
// (libcoap) and /tick, observable.
void Client::addResources() {
  big_.resize(options_.big_size);
  for (std::size_t i = 0; i < big_.size(); ++i) {
    big_[i] = i % 50 == 49 ? '\n' : static_cast<char>('a' + static_cast<int>(i % 26));
  }
  coap_resource_t* big = coap_resource_init(coap_make_str_const("big"), 0);
  coap_register_request_handler(big, COAP_REQUEST_GET, &Client::getBig);
  coap_add_resource(context_.get(), big);
  tick_ = coap_resource_init(coap_make_str_const("tick"), 0);
  coap_register_request_handler(tick_, COAP_REQUEST_GET, &Client::getTick);
  coap_resource_set_get_observable(tick_, 1);
  coap_add_resource(context_.get(), tick_);
}

void Client::getBig(coap_resource_t* resource, coap_session_t* session, const coap_pdu_t* request,
                    const coap_string_t* query, coap_pdu_t* response) noexcept {
  const Client* me = of(session);
  coap_pdu_set_code(response, COAP_RESPONSE_CODE_CONTENT);
  coap_add_data_large_response(resource, session, request, response, query, COAP_MEDIATYPE_TEXT_PLAIN, -1, 0,
                               me->big_.size(), reinterpret_cast<const std::uint8_t*>(me->big_.data()), nullptr,
                               nullptr);
}

void Client::getTick(coap_resource_t*, coap_session_t* session, const coap_pdu_t*, const coap_string_t*,
                     coap_pdu_t* response) noexcept {
  const std::string text = "tick " + std::to_string(of(session)->ticks_);
  coap_pdu_set_code(response, COAP_RESPONSE_CODE_CONTENT);
  std::uint8_t buf[4];
  coap_add_option(response, COAP_OPTION_CONTENT_FORMAT,
                  coap_encode_var_safe(buf, sizeof(buf), COAP_MEDIATYPE_TEXT_PLAIN), buf);
  coap_add_data(response, text.size(), reinterpret_cast<const std::uint8_t*>(text.data()));
}

void Client::linger(const volatile std::sig_atomic_t& stop) {
  const auto end = Clock::now() + std::chrono::duration_cast<Clock::duration>(
                                      std::chrono::duration<double>(options_.linger_s));
  auto next_tick = Clock::now() + std::chrono::milliseconds(500);
  while (stop == 0 && Clock::now() < end) {
    if (Clock::now() >= next_tick) {
      ++ticks_;
      coap_resource_notify_observers(tick_, nullptr);
      next_tick += std::chrono::milliseconds(500);
    }
    const auto until = std::min(end, next_tick);
    const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(until - Clock::now()).count();
    coap_io_process(context_.get(), static_cast<std::uint32_t>(std::clamp<long long>(ms, 1, 200)));
  }
}

Client::~Client() {
  session_.reset();  // before the context
  std::fill(psk_key_.begin(), psk_key_.end(), '\0');
}

Client* Client::of(coap_session_t* session) {
  return static_cast<Client*>(coap_context_get_app_data(coap_session_get_context(session)));
}

coap_response_t Client::onResponse(coap_session_t* session, const coap_pdu_t*, const coap_pdu_t* received,
                                   coap_mid_t) noexcept {
  try {
    of(session)->response(received);
  } catch (...) {
  }
  return COAP_RESPONSE_OK;
}

void Client::response(const coap_pdu_t* received) {
  if (!sameToken(received, token_)) return;
  const coap_pdu_code_t code = coap_pdu_get_code(received);
  const std::string body = bodyOf(received);
  if (cancelling_) {
    cancel_answered_ = true;
    return;
  }
  answered_ = true;
  if (COAP_RESPONSE_CLASS(code) != 2) {
    std::fprintf(stderr, "%s%s%s\n", codeText(code).c_str(), body.empty() ? "" : " ", body.c_str());
    finish(2);
    return;
  }
  if (options_.observe_s > 0) {
    writeAll(stdout, body + "\n");
    return;
  }
  writeAll(stdout, body);
  if (options_.print_code) std::fprintf(stderr, "%s\n", codeText(code).c_str());
  finish(0);
}

void Client::onNack(coap_session_t* session, const coap_pdu_t* sent, coap_nack_reason_t reason, coap_mid_t) noexcept {
  Client* me = of(session);
  // libcoap names the PDU it sent; a Block1/Block2 continuation has another token, so any
  // failure while nothing is finished ends the exchange.
  if (sent != nullptr && !sameToken(sent, me->token_) && me->answered_) return;
  if (me->cancelling_) {
    me->cancel_answered_ = true;
    return;
  }
  std::fprintf(stderr, "%s\n", nackText(reason));
  me->finish(4);
}

int Client::onEvent(coap_session_t* session, coap_event_t event) noexcept {
  if (event == COAP_EVENT_DTLS_ERROR || event == COAP_EVENT_SESSION_FAILED) {
    Client* me = of(session);
    if (me->exit_code_ < 0 && !me->cancelling_) {
      std::fprintf(stderr, "%s\n", event == COAP_EVENT_DTLS_ERROR ? "DTLS handshake failed" : "session failed");
      me->finish(4);
    }
  }
  return 0;
}

// Runs libcoap until `until`, a result, `done()` or a signal.
void Client::process(Clock::time_point until, const volatile std::sig_atomic_t& stop,
                     const std::function<bool()>& done) {
  while (stop == 0 && exit_code_ < 0 && !done()) {
    const auto now = Clock::now();
    if (now >= until) return;
    const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(until - now).count();
    coap_io_process(context_.get(), static_cast<std::uint32_t>(std::clamp<long long>(ms, 1, 200)));
  }
}

int Client::run(const volatile std::sig_atomic_t& stop) {
  const int rc = exchange(stop);
  if (options_.linger_s > 0 && stop == 0) linger(stop);
  return rc;
}

int Client::exchange(const volatile std::sig_atomic_t& stop) {
  const auto start = Clock::now();
  auto seconds = [](double s) {
    return std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(s));
  };
  const auto deadline = start + seconds(options_.timeout_s);
  auto token = sendRequest(session_.get(), spec_);
  if (!token) {
    std::fprintf(stderr, "cannot send the request\n");
    return 4;
  }
  token_ = *token;
  const bool observe = options_.observe_s > 0;
  // The first response must come within --timeout (with -s: or before -s is over).
  const auto observe_end = start + seconds(options_.observe_s);
  process(observe ? std::min(deadline, observe_end) : deadline, stop, [this] { return answered_; });
  if (exit_code_ >= 0) return exit_code_;
  if (stop != 0) return 0;
  if (!answered_) {
    if (!observe || Clock::now() >= deadline) {
      std::fprintf(stderr, "timeout after %g s\n", options_.timeout_s);
      return 3;
    }
    return 0;  // -s shorter than --timeout and nothing came: nothing to deregister
  }
  if (!observe) return 0;
  // Notifications until -s is over, then deregister (GET with Observe 1 and the same token,
  // sent by libcoap), bounded.
  process(observe_end, stop, [] { return false; });
  if (exit_code_ >= 0) return exit_code_;
  cancelling_ = true;
  coap_binary_t bin{token_.size(), token_.data()};
  if (coap_cancel_observe(session_.get(), &bin, COAP_MESSAGE_CON) != 0) {
    const volatile std::sig_atomic_t no_stop = 0;
    process(Clock::now() + std::min<Clock::duration>(kCancelLimit, seconds(options_.timeout_s)), no_stop,
            [this] { return cancel_answered_; });
    if (!cancel_answered_) CE_LOG_WARN("the deregistration was not answered");
  }
  return 0;
}

}  // namespace coap_edge::testpeer
