#include "resources.h"

#include "common/log.h"

#include <fmt/format.h>

#include <cmath>
#include <climits>
#include <memory>
#include <optional>
#include <string_view>

namespace coap_edge::simnode {
namespace {

constexpr std::string_view kLogTag = "simnode";
constexpr std::size_t kLedMax = 32;

void releaseString(coap_session_t*, void* p) { delete static_cast<std::string*>(p); }

// Every body goes through libcoap's large-data path, so anything past one PDU is sent with
// Block2 by libcoap itself; the copy lives until libcoap is done with it.
void respond(coap_resource_t* r, coap_session_t* s, const coap_pdu_t* request, coap_pdu_t* response,
             const coap_string_t* query, std::uint16_t content_format, int max_age, std::string body) {
  coap_pdu_set_code(response, COAP_RESPONSE_CODE_CONTENT);
  auto* copy = new std::string(std::move(body));
  if (coap_add_data_large_response(r, s, request, response, query, content_format, max_age, 0, copy->size(),
                                   reinterpret_cast<const std::uint8_t*>(copy->data()), releaseString, copy) == 0) {
    coap_pdu_set_code(response, COAP_RESPONSE_CODE_INTERNAL_ERROR);
  }
}

coap_resource_t* addResource(coap_context_t* context, const std::string& path, void* self,
                             std::initializer_list<std::pair<const char*, const char*>> attributes) {
  // libcoap copies the path and the attributes (no RELEASE flags).
  coap_str_const_t p{path.size(), reinterpret_cast<const std::uint8_t*>(path.data())};
  coap_resource_t* r = coap_resource_init(&p, 0);
  if (r == nullptr) throw std::bad_alloc();
  for (const auto& [name, value] : attributes) {
    coap_add_attr(r, coap_make_str_const(name), value != nullptr ? coap_make_str_const(value) : nullptr, 0);
  }
  coap_resource_set_userdata(r, self);
  coap_add_resource(context, r);
  return r;
}

// The links libcoap prints for /.well-known/core (all resources with their attributes; "obs"
// for observable ones), filtered by `query` if given.
std::optional<std::string> printLinks(coap_context_t* context, const coap_string_t* query) {
  unsigned char probe[1];
  size_t total = 0;
  if (coap_print_wellknown(context, probe, &total, UINT_MAX, query) & COAP_PRINT_STATUS_ERROR) return std::nullopt;
  std::string out(total, '\0');
  size_t len = total;
  if (total > 0 && (coap_print_wellknown(context, reinterpret_cast<unsigned char*>(out.data()), &len, 0, query) &
                    COAP_PRINT_STATUS_ERROR)) {
    return std::nullopt;
  }
  out.resize(std::min(len, total));
  return out;
}

bool g_log_requests = false;

void logRequest(const coap_pdu_t* req) {
  static constexpr const char* kMethods[] = {"?", "GET", "POST", "PUT", "DELETE", "FETCH", "PATCH", "IPATCH"};
  const unsigned code = coap_pdu_get_code(req);
  std::unique_ptr<coap_string_t, void (*)(coap_string_t*)> path(coap_get_uri_path(req), coap_delete_string);
  const coap_bin_const_t token = coap_pdu_get_token(req);
  std::string hex;
  for (size_t i = 0; i < token.length; ++i) hex += fmt::format("{:02x}", token.s[i]);
  std::string observe;
  coap_opt_iterator_t it;
  if (const coap_opt_t* o = coap_check_option(req, COAP_OPTION_OBSERVE, &it)) {
    observe = fmt::format(" observe={}", coap_decode_var_bytes(coap_opt_value(o), coap_opt_length(o)));
  }
  CE_LOG_NOTICE("request {} /{} token={}{}", code < 8 ? kMethods[code] : "?",
                path ? std::string_view(reinterpret_cast<const char*>(path->s), path->length) : std::string_view{}, hex,
                observe);
}

template <auto Body>
void guarded(coap_resource_t* r, coap_session_t* s, const coap_pdu_t* req, const coap_string_t* q,
             coap_pdu_t* resp) noexcept {
  try {
    if (g_log_requests) logRequest(req);
    Body(r, s, req, q, resp);
  } catch (...) {
    coap_pdu_set_code(resp, COAP_RESPONSE_CODE_INTERNAL_ERROR);
  }
}

}  // namespace

std::string bigPayload(std::size_t size) {
  std::string out(size, '\0');
  for (std::size_t i = 0; i < out.size(); ++i) {
    out[i] = i % 50 == 49 ? '\n' : static_cast<char>('a' + static_cast<int>(i % 26));
  }
  return out;
}

std::string temperatureText(unsigned step) { return fmt::format("{}.{}", 20 + (step % 100) / 10, step % 10); }

Resources::Resources(coap_context_t* context, const std::string& name, double temp_period_s, unsigned extra_resources,
                     std::size_t big_size, bool log_requests)
    : context_(context),
      period_(std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::duration<double>(temp_period_s))),
      next_change_(Clock::now() + period_),
      big_(bigPayload(big_size)) {
  g_log_requests = log_requests;
  const std::string title = "\"" + name + " temperature\"";
  temp_ = addResource(context, "sensors/temp", this,
                      {{"rt", "\"temperature\""}, {"if", "\"core.s\""}, {"ct", "0"}, {"title", title.c_str()}});
  coap_register_request_handler(temp_, COAP_REQUEST_GET, guarded<&Resources::getTemp>);
  coap_resource_set_get_observable(temp_, 1);

  led_ = addResource(context, "actuators/led", this, {{"rt", "\"light\""}, {"if", "\"core.a\""}, {"ct", "0"}});
  coap_register_request_handler(led_, COAP_REQUEST_GET, guarded<&Resources::getLed>);
  coap_register_request_handler(led_, COAP_REQUEST_PUT, guarded<&Resources::putLed>);
  coap_resource_set_get_observable(led_, 1);

  const std::string size = std::to_string(big_.size());
  coap_resource_t* big = addResource(context, "big", this, {{"rt", "\"blob\""}, {"ct", "0"}, {"sz", size.c_str()}});
  coap_register_request_handler(big, COAP_REQUEST_GET, guarded<&Resources::getBig>);

  for (unsigned i = 0; i < extra_resources; ++i) {
    coap_resource_t* r = addResource(context, "r/" + std::to_string(i), this, {{"rt", "\"load\""}, {"ct", "0"}});
    coap_register_request_handler(r, COAP_REQUEST_GET, guarded<&Resources::getLoad>);
  }

  // /.well-known/core through our own handler (COAP_RESOURCE_HANDLE_WELLKNOWN_CORE) only so that
  // its flags apply: libcoap then answers multicast for it alone (coap_mcast_per_resource) and
  // drops an empty 2.05 (a filter that matches nothing) and every error, after a random delay
  // within the Leisure (RFC 7252 §8.2, RFC 6690 §4.1).
  coap_mcast_per_resource(context);
  coap_resource_t* unknown = coap_resource_unknown_init2(
      nullptr, COAP_RESOURCE_HANDLE_WELLKNOWN_CORE | COAP_RESOURCE_FLAGS_HAS_MCAST_SUPPORT |
                   COAP_RESOURCE_FLAGS_LIB_ENA_MCAST_SUPPRESS_2_05);
  if (unknown == nullptr) throw std::bad_alloc();
  coap_resource_set_userdata(unknown, this);
  coap_register_request_handler(unknown, COAP_REQUEST_GET, guarded<&Resources::getUnknown>);
  coap_add_resource(context, unknown);
}

Resources* Resources::self(coap_resource_t* r) { return static_cast<Resources*>(coap_resource_get_userdata(r)); }

void Resources::tick(Clock::time_point now) {
  if (now < next_change_) return;
  ++step_;
  // After a long sleep the value moves once, not once per missed period.
  while (next_change_ <= now) next_change_ += period_;
  coap_resource_notify_observers(temp_, nullptr);
  CE_LOG_DEBUG("temperature {}", temperatureText(step_));
}

std::string Resources::linkFormat() const { return printLinks(context_, nullptr).value_or(""); }

void Resources::getTemp(coap_resource_t* r, coap_session_t* s, const coap_pdu_t* req, const coap_string_t* q,
                        coap_pdu_t* resp) {
  const Resources* me = self(r);
  const auto max_age = std::chrono::duration_cast<std::chrono::duration<double>>(me->period_).count();
  respond(r, s, req, resp, q, COAP_MEDIATYPE_TEXT_PLAIN, static_cast<int>(std::ceil(max_age)),
          temperatureText(me->step_));
}

void Resources::getLed(coap_resource_t* r, coap_session_t* s, const coap_pdu_t* req, const coap_string_t* q,
                       coap_pdu_t* resp) {
  respond(r, s, req, resp, q, COAP_MEDIATYPE_TEXT_PLAIN, -1, self(r)->led_value_);
}

void Resources::putLed(coap_resource_t* r, coap_session_t*, const coap_pdu_t* req, const coap_string_t*,
                       coap_pdu_t* resp) {
  size_t len = 0, offset = 0, total = 0;
  const std::uint8_t* data = nullptr;
  if (coap_get_data_large(req, &len, &data, &offset, &total) == 0 || len == 0) {
    coap_pdu_set_code(resp, COAP_RESPONSE_CODE_BAD_REQUEST);
    return;
  }
  if (total > kLedMax) {
    coap_pdu_set_code(resp, COAP_RESPONSE_CODE_REQUEST_TOO_LARGE);
    return;
  }
  std::string value(reinterpret_cast<const char*>(data), len);
  for (char c : value) {
    if (c < 0x20 || c > 0x7e) {
      coap_pdu_set_code(resp, COAP_RESPONSE_CODE_BAD_REQUEST);
      return;
    }
  }
  Resources* me = self(r);
  if (value != me->led_value_) {
    me->led_value_ = std::move(value);
    coap_resource_notify_observers(r, nullptr);
  }
  CE_LOG_INFO("led set to {}", me->led_value_);
  coap_pdu_set_code(resp, COAP_RESPONSE_CODE_CHANGED);
}

void Resources::getBig(coap_resource_t* r, coap_session_t* s, const coap_pdu_t* req, const coap_string_t* q,
                       coap_pdu_t* resp) {
  respond(r, s, req, resp, q, COAP_MEDIATYPE_TEXT_PLAIN, -1, self(r)->big_);
}

void Resources::getLoad(coap_resource_t* r, coap_session_t* s, const coap_pdu_t* req, const coap_string_t* q,
                        coap_pdu_t* resp) {
  const coap_str_const_t* path = coap_resource_get_uri_path(r);
  respond(r, s, req, resp, q, COAP_MEDIATYPE_TEXT_PLAIN, -1,
          std::string(reinterpret_cast<const char*>(path->s), path->length));
}

void Resources::getUnknown(coap_resource_t* r, coap_session_t* s, const coap_pdu_t* req, const coap_string_t* q,
                           coap_pdu_t* resp) {
  std::unique_ptr<coap_string_t, void (*)(coap_string_t*)> path(coap_get_uri_path(req), coap_delete_string);
  const std::string_view wkc = ".well-known/core";
  if (!path || std::string_view(reinterpret_cast<const char*>(path->s), path->length) != wkc) {
    coap_pdu_set_code(resp, COAP_RESPONSE_CODE_NOT_FOUND);
    return;
  }
  const std::optional<std::string> links = printLinks(self(r)->context_, q);
  if (!links) {
    coap_pdu_set_code(resp, COAP_RESPONSE_CODE_INTERNAL_ERROR);
    return;
  }
  if (links->empty()) {
    // No payload at all, so that libcoap can tell the empty answer (suppressed on multicast).
    std::uint8_t buf[4];
    coap_add_option(resp, COAP_OPTION_CONTENT_FORMAT,
                    coap_encode_var_safe(buf, sizeof(buf), COAP_MEDIATYPE_APPLICATION_LINK_FORMAT), buf);
    coap_pdu_set_code(resp, COAP_RESPONSE_CODE_CONTENT);
    return;
  }
  respond(r, s, req, resp, q, COAP_MEDIATYPE_APPLICATION_LINK_FORMAT, -1, *links);
}

}  // namespace coap_edge::simnode
