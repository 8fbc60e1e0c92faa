#include "upstream.h"

#include "common/log.h"

#include <fmt/format.h>

#include <algorithm>
#include <cstring>
#include <map>
#include <optional>
#include <stdexcept>

namespace coap_edge::testpeer {
namespace {

constexpr std::string_view kLogTag = "testpeer";
constexpr auto kRequestLimit = std::chrono::seconds(30);
constexpr auto kCancelLimit = std::chrono::seconds(5);

std::string addressText(const coap_address_t* addr) {
  if (addr == nullptr) return "?";
  unsigned char buf[INET6_ADDRSTRLEN + 16] = {};
  const size_t n = coap_print_addr(addr, buf, sizeof(buf));
  return std::string(reinterpret_cast<const char*>(buf), n);
}

std::string jsonString(std::string_view text) {
  std::string out = "\"";
  for (char ch : text) {
    const auto c = static_cast<unsigned char>(ch);
    if (ch == '"' || ch == '\\') {
      out += '\\';
      out += ch;
    } else if (c < 0x20 || c >= 0x7f) {
      out += fmt::format("\\u{:04x}", c);
    } else {
      out += ch;
    }
  }
  return out + "\"";
}

std::string upper(std::string s) {
  for (char& c : s) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  return s;
}

const char* methodName(coap_pdu_code_t code) {
  switch (code) {
    case COAP_REQUEST_CODE_POST:
      return "POST";
    case COAP_REQUEST_CODE_PUT:
      return "PUT";
    case COAP_REQUEST_CODE_DELETE:
      return "DELETE";
    default:
      return "?";
  }
}

// RFC 9176 §5.3: lt defaults to 90000 s (25 h); at most 2^32-1 (a 32-bit value in practice).
constexpr unsigned long kRdDefaultLifetime = 90000;
constexpr unsigned long kRdMaxLifetime = 4294967295UL;

int fromHexDigit(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// "ep=a%2Db&lt=10" -> {"ep": "a-b", "lt": "10"}; nullopt for a broken %-escape.
std::optional<std::map<std::string, std::string>> queryParams(const coap_string_t* query) {
  std::map<std::string, std::string> out;
  if (query == nullptr) return out;
  const std::string_view text(reinterpret_cast<const char*>(query->s), query->length);
  std::size_t start = 0;
  while (start <= text.size()) {
    const std::size_t amp = std::min(text.find('&', start), text.size());
    const std::string_view item = text.substr(start, amp - start);
    const std::size_t eq = item.find('=');
    std::string value;
    const std::string_view raw = eq == std::string_view::npos ? std::string_view() : item.substr(eq + 1);
    for (std::size_t i = 0; i < raw.size(); ++i) {
      if (raw[i] != '%') {
        value.push_back(raw[i]);
        continue;
      }
      if (i + 2 >= raw.size() || fromHexDigit(raw[i + 1]) < 0 || fromHexDigit(raw[i + 2]) < 0) return std::nullopt;
      value.push_back(static_cast<char>(fromHexDigit(raw[i + 1]) * 16 + fromHexDigit(raw[i + 2])));
      i += 2;
    }
    if (!item.empty()) out[std::string(item.substr(0, eq))] = value;
    start = amp + 1;
  }
  return out;
}

// lt as RFC 9176 has it: decimal seconds, 1 to 2^32-1.
std::optional<unsigned long> parseLifetime(const std::string& text) {
  if (text.empty() || text.size() > 10 || text.find_first_not_of("0123456789") != std::string::npos) return std::nullopt;
  const unsigned long long v = std::stoull(text);
  if (v < 1 || v > kRdMaxLifetime) return std::nullopt;
  return static_cast<unsigned long>(v);
}

void diagnostic(coap_pdu_t* response, coap_pdu_code_t code, std::string_view text) {
  coap_pdu_set_code(response, code);
  coap_add_data(response, text.size(), reinterpret_cast<const std::uint8_t*>(text.data()));
}

}  // namespace

Upstream::Upstream(const UpstreamOptions& options, const Psk& psk)
    : options_(options), psk_identity_(psk.identity), psk_key_(psk.key) {
  coap_address_t listen;
  if (!parseAddress(options_.listen, listen)) {
    throw std::runtime_error("--listen: '" + options_.listen + "' is not A.B.C.D:PORT or [IPV6]:PORT");
  }
  if (!options_.out.empty()) {
    out_file_.reset(std::fopen(options_.out.c_str(), "a"));
    if (!out_file_) throw std::runtime_error("cannot open " + options_.out);
    out_ = out_file_.get();
  }
  if (!options_.telemetry_log.empty()) {
    telemetry_log_.reset(std::fopen(options_.telemetry_log.c_str(), "a"));
    if (!telemetry_log_) throw std::runtime_error("cannot open " + options_.telemetry_log);
  }
  for (const auto& r : options_.requests) queue_.push_back(r);

  context_.reset(coap_new_context(nullptr));
  if (!context_) throw std::runtime_error("libcoap: cannot create a context");
  coap_context_set_app_data(context_.get(), this);
  coap_context_set_block_mode(context_.get(), COAP_BLOCK_USE_LIBCOAP | COAP_BLOCK_SINGLE_BODY);
  coap_register_response_handler(context_.get(), &Upstream::onResponse);
  coap_register_nack_handler(context_.get(), &Upstream::onNack);
  coap_register_event_handler(context_.get(), &Upstream::onEvent);

  if (!psk_identity_.empty()) {
    key_bin_ = {psk_key_.size(), reinterpret_cast<const std::uint8_t*>(psk_key_.data())};
    coap_dtls_spsk_t setup{};
    setup.version = COAP_DTLS_SPSK_SETUP_VERSION;
    setup.validate_id_call_back = &Upstream::onIdentity;
    setup.id_call_back_arg = this;
    setup.psk_info.key = key_bin_;
    if (coap_context_set_psk2(context_.get(), &setup) == 0) throw std::runtime_error("libcoap: cannot set the PSK");
  }
  if (!options_.certificate.empty()) {
    // Like a real service: the gateway's client certificate must chain to --ca and be valid now.
    coap_dtls_pki_t pki = verifyingPemPki(options_.certificate, options_.private_key, options_.ca);
    if (coap_context_set_pki(context_.get(), &pki) == 0) throw std::runtime_error("libcoap: cannot set up X.509");
  }

  coap_endpoint_t* ep = coap_new_endpoint(context_.get(), &listen, COAP_PROTO_DTLS);
  if (ep == nullptr) throw std::runtime_error("cannot listen on " + options_.listen);
  const char* shown = coap_endpoint_str(ep);
  CE_LOG_INFO("listening on {}", shown != nullptr ? shown : options_.listen);

  // Every path lands on the "unknown" resource: libcoap has no wildcard paths, and the
  // handler takes anything under /telemetry. Block1 bodies arrive whole (SINGLE_BODY).
  coap_resource_t* any = coap_resource_unknown_init2(&Upstream::onTelemetry, 0);
  coap_register_request_handler(any, COAP_REQUEST_POST, &Upstream::onTelemetry);
  // Only with --rd: otherwise libcoap answers a DELETE of an unknown path 2.02 (RFC 7252
  // §5.8.4), as before.
  if (options_.rd) coap_register_request_handler(any, COAP_REQUEST_DELETE, &Upstream::onTelemetry);
  coap_add_resource(context_.get(), any);
}

Upstream::~Upstream() {
  gateway_.reset();
  context_.reset();
  std::fill(psk_key_.begin(), psk_key_.end(), '\0');
}

Upstream* Upstream::of(coap_session_t* session) {
  return static_cast<Upstream*>(coap_context_get_app_data(coap_session_get_context(session)));
}

void Upstream::line(const std::string& text) {
  std::fputs((text + "\n").c_str(), out_);
  std::fflush(out_);
}

const coap_bin_const_t* Upstream::onIdentity(coap_bin_const_t* identity, coap_session_t* session, void* arg) noexcept {
  auto* me = static_cast<Upstream*>(arg);
  const std::string_view got(reinterpret_cast<const char*>(identity->s), identity->length);
  if (got != me->psk_identity_) {
    CE_LOG_WARN("session from {} refused: unknown identity {}", addressText(coap_session_get_addr_remote(session)),
                log::printable(got));
    return nullptr;
  }
  return &me->key_bin_;
}

int Upstream::onEvent(coap_session_t* session, coap_event_t event) noexcept {
  try {
    Upstream* me = of(session);
    const bool server = coap_session_get_type(session) == COAP_SESSION_TYPE_SERVER;
    if (event == COAP_EVENT_DTLS_CONNECTED && server) {
      const coap_bin_const_t* id = coap_session_get_psk_identity(session);
      CE_LOG_INFO("session from {} established (identity {})", addressText(coap_session_get_addr_remote(session)),
                  id != nullptr && id->length > 0
                      ? log::printable(std::string_view(reinterpret_cast<const char*>(id->s), id->length))
                      : std::string("X.509"));
      me->gatewayUp(session);
    } else if ((event == COAP_EVENT_DTLS_CLOSED || event == COAP_EVENT_SERVER_SESSION_DEL) && server) {
      if (event == COAP_EVENT_DTLS_CLOSED) {
        CE_LOG_INFO("session from {} closed", addressText(coap_session_get_addr_remote(session)));
      }
      if (me->gateway_.get() == session) {
        // Whatever was in flight will not be answered on this session; a later session takes
        // up the remaining requests. Released in run(), not inside libcoap's callback.
        if (me->phase_ == Phase::requests) {
          me->line("REQ " + upper(me->current_.method) + " " + me->current_.path + " -> ERROR session closed");
        }
        if (me->phase_ != Phase::done) me->phase_ = Phase::waiting;
        me->drop_gateway_ = true;
      }
    } else if (event == COAP_EVENT_DTLS_ERROR) {
      CE_LOG_WARN("DTLS error with {}", addressText(coap_session_get_addr_remote(session)));
    }
  } catch (...) {
  }
  return 0;
}

void Upstream::onTelemetry(coap_resource_t*, coap_session_t* session, const coap_pdu_t* request,
                           const coap_string_t* query, coap_pdu_t* response) noexcept {
  try {
    of(session)->telemetry(session, request, query, response);
  } catch (...) {
    coap_pdu_set_code(response, COAP_RESPONSE_CODE_INTERNAL_ERROR);
  }
}

void Upstream::telemetry(coap_session_t* session, const coap_pdu_t* request, const coap_string_t* query,
                         coap_pdu_t* response) {
  // A request before the DTLS_CONNECTED event (should not happen) also opens the way back.
  if (!gateway_ && coap_session_get_type(session) == COAP_SESSION_TYPE_SERVER) gatewayUp(session);
  coap_string_t* uri_path = coap_get_uri_path(request);
  std::string path = "/";
  if (uri_path != nullptr) {
    path += std::string(reinterpret_cast<const char*>(uri_path->s), uri_path->length);
    coap_delete_string(uri_path);
  }
  const coap_pdu_code_t method = coap_pdu_get_code(request);
  if (options_.rd && (path == "/rd" || path.rfind("/rd/", 0) == 0)) {
    rd(path, request, query, response);
    return;
  }
  if ((path != "/telemetry" && path.rfind("/telemetry/", 0) != 0) || method == COAP_REQUEST_CODE_DELETE) {
    CE_LOG_INFO("request {} {}: 4.04", methodName(method), log::printable(path));
    coap_pdu_set_code(response, COAP_RESPONSE_CODE_NOT_FOUND);
    return;
  }
  const std::string body = bodyOf(request);
  int cf = -1;
  coap_opt_iterator_t it;
  if (coap_opt_t* opt = coap_check_option(request, COAP_OPTION_CONTENT_FORMAT, &it)) {
    cf = static_cast<int>(coap_decode_var_bytes(coap_opt_value(opt), coap_opt_length(opt)));
  }
  ++telemetry_seen_;
  if (telemetry_seen_ <= options_.drop_telemetry) {
    // libcoap always acknowledges a CON (an empty ACK at least), so "no answer at all" cannot be
    // had from a handler: the first N get 5.03 with Max-Age 1 instead, and are not logged.
    CE_LOG_INFO("telemetry {} {} ({} bytes) refused 5.03 ({} of {})",
                method == COAP_REQUEST_CODE_POST ? "POST" : "PUT", log::printable(path), body.size(), telemetry_seen_,
                options_.drop_telemetry);
    std::uint8_t buf[4];
    coap_add_option(response, COAP_OPTION_MAXAGE, coap_encode_var_safe(buf, sizeof(buf), 1), buf);
    coap_pdu_set_code(response, COAP_RESPONSE_CODE_SERVICE_UNAVAILABLE);
    return;
  }
  if (telemetry_log_) {
    const std::string entry = fmt::format("{{\"path\":{},\"cf\":{},\"payload_hex\":\"{}\"}}\n", jsonString(path),
                                          cf >= 0 ? std::to_string(cf) : "null", hexOf(body));
    std::fputs(entry.c_str(), telemetry_log_.get());
    std::fflush(telemetry_log_.get());
  }
  CE_LOG_INFO("telemetry {} {} ({} bytes)", method == COAP_REQUEST_CODE_POST ? "POST" : "PUT", log::printable(path),
              body.size());
  coap_pdu_set_code(response, COAP_RESPONSE_CODE_CHANGED);
}

// The RD's registration interface, RFC 9176: POST /rd?ep=..&lt=.. creates (§5.3), POST rd/<n>
// renews and, with a payload, replaces the links (§5.3.1; lt may change, ep may not), DELETE
// rd/<n> removes (§5.3.2). One log line per operation. Lookups (§6) are not served.
void Upstream::rd(const std::string& path, const coap_pdu_t* request, const coap_string_t* query,
                  coap_pdu_t* response) {
  expireRegistrations();
  const coap_pdu_code_t method = coap_pdu_get_code(request);
  const auto params = queryParams(query);
  if (!params) {
    CE_LOG_INFO("rd {} {}: 4.00 bad query", methodName(method), log::printable(path));
    diagnostic(response, COAP_RESPONSE_CODE_BAD_REQUEST, "bad %-escape in the query");
    return;
  }
  std::optional<unsigned long> lifetime;
  if (const auto lt = params->find("lt"); lt != params->end()) {
    lifetime = parseLifetime(lt->second);
    if (!lifetime) {
      CE_LOG_INFO("rd {} {}: 4.00 lt={}", methodName(method), log::printable(path), log::printable(lt->second));
      diagnostic(response, COAP_RESPONSE_CODE_BAD_REQUEST, "lt: 1 to 4294967295");
      return;
    }
  }
  const std::string body = bodyOf(request);
  const auto now = Clock::now();
  if (path == "/rd") {
    const auto ep = params->find("ep");
    if (method != COAP_REQUEST_CODE_POST || ep == params->end() || ep->second.empty()) {
      CE_LOG_INFO("rd {} /rd: {}", methodName(method), method != COAP_REQUEST_CODE_POST ? "4.05" : "4.00 no ep");
      if (method != COAP_REQUEST_CODE_POST) {
        coap_pdu_set_code(response, COAP_RESPONSE_CODE_NOT_ALLOWED);
      } else {
        diagnostic(response, COAP_RESPONSE_CODE_BAD_REQUEST, "ep missing");
      }
      return;
    }
    // §5.3: a second registration of the same ep replaces the first.
    std::string replaced;
    for (auto it = registrations_.begin(); it != registrations_.end(); ++it) {
      if (it->second.ep == ep->second) {
        replaced = fmt::format(" replaces=rd/{}", it->first);
        registrations_.erase(it);
        break;
      }
    }
    const unsigned n = next_registration_++;
    Registration& r = registrations_[n];
    r.ep = ep->second;
    r.lifetime_s = lifetime.value_or(kRdDefaultLifetime);
    r.expires = now + std::chrono::seconds(r.lifetime_s);
    r.bytes = body.size();
    CE_LOG_INFO("rd register ep={} lt={} location=rd/{} ({} bytes){}", log::printable(r.ep), r.lifetime_s, n,
                body.size(), replaced);
    const std::string number = std::to_string(n);
    coap_add_option(response, COAP_OPTION_LOCATION_PATH, 2, reinterpret_cast<const std::uint8_t*>("rd"));
    coap_add_option(response, COAP_OPTION_LOCATION_PATH, number.size(),
                    reinterpret_cast<const std::uint8_t*>(number.data()));
    coap_pdu_set_code(response, COAP_RESPONSE_CODE_CREATED);
    return;
  }
  // rd/<n>
  const std::string tail = path.substr(4);
  std::map<unsigned, Registration>::iterator it = registrations_.end();
  if (!tail.empty() && tail.size() <= 9 && tail.find_first_not_of("0123456789") == std::string::npos) {
    it = registrations_.find(static_cast<unsigned>(std::stoul(tail)));
  }
  const std::string location = path.substr(1);
  if (it == registrations_.end()) {
    CE_LOG_INFO("rd {} location={}: 4.04 unknown", methodName(method), log::printable(location));
    coap_pdu_set_code(response, COAP_RESPONSE_CODE_NOT_FOUND);
    return;
  }
  if (method == COAP_REQUEST_CODE_DELETE) {
    CE_LOG_INFO("rd delete location={} ep={}", log::printable(location), log::printable(it->second.ep));
    registrations_.erase(it);
    coap_pdu_set_code(response, COAP_RESPONSE_CODE_DELETED);
    return;
  }
  if (method != COAP_REQUEST_CODE_POST) {
    CE_LOG_INFO("rd {} location={}: 4.05", methodName(method), log::printable(location));
    coap_pdu_set_code(response, COAP_RESPONSE_CODE_NOT_ALLOWED);
    return;
  }
  if (params->count("ep") != 0) {
    CE_LOG_INFO("rd update location={}: 4.00 ep cannot change", log::printable(location));
    diagnostic(response, COAP_RESPONSE_CODE_BAD_REQUEST, "ep cannot change");
    return;
  }
  Registration& r = it->second;
  if (lifetime) r.lifetime_s = *lifetime;
  r.expires = now + std::chrono::seconds(r.lifetime_s);
  if (body.empty()) {
    CE_LOG_INFO("rd refresh location={} lt={}", log::printable(location), r.lifetime_s);
  } else {
    r.bytes = body.size();
    CE_LOG_INFO("rd update location={} lt={} ({} bytes)", log::printable(location), r.lifetime_s, body.size());
  }
  coap_pdu_set_code(response, COAP_RESPONSE_CODE_CHANGED);
}

// §5.3: a registration whose lifetime ran out without a refresh is gone.
void Upstream::expireRegistrations() {
  const auto now = Clock::now();
  for (auto it = registrations_.begin(); it != registrations_.end();) {
    if (now < it->second.expires) {
      ++it;
      continue;
    }
    CE_LOG_INFO("rd expired location=rd/{} ep={} lt={}", it->first, log::printable(it->second.ep), it->second.lifetime_s);
    it = registrations_.erase(it);
  }
}

void Upstream::gatewayUp(coap_session_t* session) {
  if (gateway_.get() == session && !drop_gateway_) return;
  if (phase_ != Phase::waiting) return;  // one session at a time does the role reversal
  drop_gateway_ = false;
  gateway_.reset(coap_session_reference(session));
  if (queue_.empty() && options_.observe_path.empty()) return;
  next();
}

void Upstream::next() {
  RequestSpec spec;
  std::string label;
  if (!queue_.empty()) {
    current_ = queue_.front();
    queue_.pop_front();
    phase_ = Phase::requests;
    spec.code = methodCode(current_.method);
    const auto q = current_.path.find('?');
    spec.path = current_.path.substr(0, q);
    if (q != std::string::npos) spec.query = current_.path.substr(q + 1);
    if (!current_.payload.empty()) spec.payload = current_.payload;
    label = "REQ " + upper(current_.method) + " " + current_.path;
  } else if (!options_.observe_path.empty() && phase_ != Phase::observing) {
    phase_ = Phase::observing;
    current_ = UpstreamRequest{"get", options_.observe_path, ""};
    const auto q = current_.path.find('?');
    spec.path = current_.path.substr(0, q);
    if (q != std::string::npos) spec.query = current_.path.substr(q + 1);
    spec.observe = COAP_OBSERVE_ESTABLISH;
    notifications_ = 0;
    observe_end_ = Clock::now() + std::chrono::duration_cast<Clock::duration>(
                                      std::chrono::duration<double>(options_.observe_s));
    label = "OBSERVE " + current_.path;
  } else {
    phase_ = Phase::done;
    CE_LOG_INFO("requests to the gateway done");
    return;
  }
  CE_LOG_INFO("sending {} to the gateway", label);
  request_deadline_ = Clock::now() + kRequestLimit;
  auto token = sendRequest(gateway_.get(), spec);
  if (!token) {
    line(label + " -> ERROR cannot send");
    next();
    return;
  }
  token_ = *token;
}

coap_response_t Upstream::onResponse(coap_session_t* session, const coap_pdu_t*, const coap_pdu_t* received,
                                     coap_mid_t) noexcept {
  try {
    of(session)->response(received);
  } catch (...) {
  }
  return COAP_RESPONSE_OK;
}

void Upstream::response(const coap_pdu_t* received) {
  if (!sameToken(received, token_)) return;
  const coap_pdu_code_t code = coap_pdu_get_code(received);
  const std::string body = bodyOf(received);
  const std::string shown = textOrHex(body);
  if (phase_ == Phase::requests) {
    line(fmt::format("REQ {} {} -> {} {}{}{}", upper(current_.method), current_.path, codeText(code), body.size(),
                     body.empty() ? "" : " ", shown));
    next();
  } else if (phase_ == Phase::observing) {
    if (notifications_ == 0) line(fmt::format("OBSERVE {} -> {}", current_.path, codeText(code)));
    if (COAP_RESPONSE_CLASS(code) != 2) {
      phase_ = Phase::done;
      return;
    }
    ++notifications_;
    line("NOTIFY " + shown);
  } else if (phase_ == Phase::cancelling) {
    line(fmt::format("OBSERVE {} done ({} notifications)", current_.path, notifications_));
    phase_ = Phase::done;
  }
}

void Upstream::onNack(coap_session_t* session, const coap_pdu_t* sent, coap_nack_reason_t reason,
                      coap_mid_t) noexcept {
  try {
    Upstream* me = of(session);
    if (session != me->gateway_.get() || me->phase_ == Phase::waiting || me->phase_ == Phase::done) return;
    if (sent != nullptr && !sameToken(sent, me->token_)) return;
    me->failed(sent, nackText(reason));
  } catch (...) {
  }
}

void Upstream::failed(const coap_pdu_t*, const std::string& why) {
  if (phase_ == Phase::requests) {
    line("REQ " + upper(current_.method) + " " + current_.path + " -> ERROR " + why);
    next();
  } else if (phase_ == Phase::observing || phase_ == Phase::cancelling) {
    line("OBSERVE " + current_.path + " -> ERROR " + why);
    phase_ = Phase::done;
  }
}

int Upstream::run(const volatile std::sig_atomic_t& stop) {
  const auto end = Clock::now() + std::chrono::duration_cast<Clock::duration>(
                                      std::chrono::duration<double>(options_.exit_after_s));
  while (stop == 0) {
    if (drop_gateway_) {
      drop_gateway_ = false;
      gateway_.reset();
    }
    if (options_.rd) expireRegistrations();
    const auto now = Clock::now();
    if (now >= end) {
      CE_LOG_INFO("exit after {} s", options_.exit_after_s);
      break;
    }
    if ((phase_ == Phase::requests || phase_ == Phase::cancelling) && now >= request_deadline_) {
      failed(nullptr, "no answer within " + std::to_string(kRequestLimit.count()) + " s");
    } else if (phase_ == Phase::observing && now >= observe_end_) {
      phase_ = Phase::cancelling;
      request_deadline_ = now + kCancelLimit;
      coap_binary_t bin{token_.size(), token_.data()};
      if (coap_cancel_observe(gateway_.get(), &bin, COAP_MESSAGE_CON) == 0) {
        line(fmt::format("OBSERVE {} done ({} notifications)", current_.path, notifications_));
        phase_ = Phase::done;
      }
    }
    const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(end - now).count();
    coap_io_process(context_.get(), static_cast<std::uint32_t>(std::clamp<long long>(ms, 1, 200)));
  }
  CE_LOG_INFO("stopping");
  return 0;
}

}  // namespace coap_edge::testpeer
