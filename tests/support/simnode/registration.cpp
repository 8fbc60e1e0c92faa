#include "registration.h"

#include "common/log.h"

#include <fmt/format.h>

#include <algorithm>
#include <fstream>
#include <sstream>

namespace coap_edge::simnode {
namespace {

constexpr std::string_view kLogTag = "simnode";
// libcoap gives up on a CON after ~45 s; a DTLS handshake that never completes may take longer.
constexpr auto kRequestLimit = std::chrono::seconds(30);
constexpr auto kRetryAfterFailure = std::chrono::seconds(10);

std::string codeText(coap_pdu_code_t code) {
  const unsigned c = static_cast<unsigned>(code);
  return fmt::format("{}.{:02}", c >> 5, c & 0x1f);
}

const char* nackText(coap_nack_reason_t reason) {
  switch (reason) {
    case COAP_NACK_TOO_MANY_RETRIES:
      return "no answer (too many retransmissions)";
    case COAP_NACK_NOT_DELIVERABLE:
      return "not deliverable";
    case COAP_NACK_RST:
      return "reset by the RD";
    case COAP_NACK_TLS_FAILED:
      return "DTLS handshake failed";
    case COAP_NACK_ICMP_ISSUE:
      return "ICMP error (nothing listens there?)";
    case COAP_NACK_BAD_RESPONSE:
      return "bad response";
    case COAP_NACK_TLS_LAYER_FAILED:
      return "DTLS layer failed";
    default:
      return "failed";
  }
}

void releaseString(coap_session_t*, void* p) { delete static_cast<std::string*>(p); }

void addPath(const std::string& path, coap_option_num_t number, coap_optlist_t** chain) {
  coap_path_into_optlist(reinterpret_cast<const std::uint8_t*>(path.data()), path.size(), number, chain);
}

}  // namespace

std::vector<std::uint8_t> parseHexKey(const std::string& text) {
  const auto first = text.find_first_not_of(" \t\r\n");
  if (first == std::string::npos) return {};
  const auto last = text.find_last_not_of(" \t\r\n");
  const std::string hex = text.substr(first, last - first + 1);
  if (hex.size() % 2 != 0 || hex.size() > 128) return {};
  std::vector<std::uint8_t> out;
  for (std::size_t i = 0; i < hex.size(); i += 2) {
    auto nibble = [](char c) -> int {
      if (c >= '0' && c <= '9') return c - '0';
      if (c >= 'a' && c <= 'f') return c - 'a' + 10;
      if (c >= 'A' && c <= 'F') return c - 'A' + 10;
      return -1;
    };
    const int hi = nibble(hex[i]);
    const int lo = nibble(hex[i + 1]);
    if (hi < 0 || lo < 0) return {};
    out.push_back(static_cast<std::uint8_t>(hi * 16 + lo));
  }
  return out;
}

RdClient::RdClient(coap_context_t* context, RdSettings settings, std::function<std::string()> links)
    : context_(context), settings_(std::move(settings)), links_(std::move(links)) {}

RdClient::~RdClient() { std::fill(key_.begin(), key_.end(), std::uint8_t{0}); }

std::string RdClient::start() {
  std::ifstream in(settings_.psk_key_file);
  std::stringstream text;
  text << in.rdbuf();
  if (!in) return "cannot read the PSK file " + settings_.psk_key_file;
  key_ = parseHexKey(text.str());
  if (key_.empty()) return "the PSK file " + settings_.psk_key_file + " does not hold one line of hex";

  coap_uri_t uri{};
  if (coap_split_uri(reinterpret_cast<const std::uint8_t*>(settings_.uri.data()), settings_.uri.size(), &uri) != 0 ||
      uri.scheme != COAP_URI_SCHEME_COAPS) {
    return "--rd: '" + settings_.uri + "' is not a coaps:// URI";
  }
  if (uri.path.length > 0) rd_path_.assign(reinterpret_cast<const char*>(uri.path.s), uri.path.length);
  coap_str_const_t host{uri.host.length, uri.host.s};
  coap_addr_info_t* info = coap_resolve_address_info(&host, uri.port, uri.port, uri.port, uri.port, 0,
                                                     1 << COAP_URI_SCHEME_COAPS, COAP_RESOLVE_TYPE_REMOTE);
  if (info == nullptr) return "--rd: cannot resolve " + std::string(reinterpret_cast<const char*>(host.s), host.length);
  server_ = info->addr;
  coap_free_address_info(info);
  next_attempt_ = Clock::now();
  send(Request::registration);
  return fatal_;
}

bool RdClient::ensureSession() {
  if (drop_session_) session_.reset();
  drop_session_ = false;
  if (session_ && coap_session_get_state(session_.get()) != COAP_SESSION_STATE_NONE) return true;
  session_.reset();
  coap_dtls_cpsk_t setup{};
  setup.version = COAP_DTLS_CPSK_SETUP_VERSION;
  setup.psk_info.identity = {settings_.psk_identity.size(),
                             reinterpret_cast<const std::uint8_t*>(settings_.psk_identity.data())};
  setup.psk_info.key = {key_.size(), key_.data()};
  session_.reset(coap_new_client_session_psk2(context_, nullptr, &server_, COAP_PROTO_DTLS, &setup));
  return session_ != nullptr;
}

void RdClient::send(Request what) {
  if (!ensureSession()) {
    failed("cannot open a DTLS session to " + settings_.uri);
    return;
  }
  const coap_pdu_code_t code = what == Request::removal ? COAP_REQUEST_CODE_DELETE : COAP_REQUEST_CODE_POST;
  coap_pdu_t* pdu = coap_pdu_init(COAP_MESSAGE_CON, code, coap_new_message_id(session_.get()),
                                  coap_session_max_pdu_size(session_.get()));
  if (pdu == nullptr) {
    failed("out of memory");
    return;
  }
  std::uint8_t token[8];
  size_t token_len = 0;
  coap_session_new_token(session_.get(), &token_len, token);
  coap_add_token(pdu, token_len, token);
  token_.assign(token, token + token_len);

  coap_optlist_t* options = nullptr;
  if (what == Request::registration) {
    addPath(rd_path_, COAP_OPTION_URI_PATH, &options);
    const std::string query = "ep=" + settings_.endpoint + "&lt=" + std::to_string(settings_.lifetime_s);
    coap_query_into_optlist(reinterpret_cast<const std::uint8_t*>(query.data()), query.size(), COAP_OPTION_URI_QUERY,
                            &options);
    std::uint8_t buf[4];
    coap_insert_optlist(&options,
                        coap_new_optlist(COAP_OPTION_CONTENT_FORMAT,
                                         coap_encode_var_safe(buf, sizeof(buf), COAP_MEDIATYPE_APPLICATION_LINK_FORMAT),
                                         buf));
  } else {
    addPath(location_, COAP_OPTION_URI_PATH, &options);
  }
  coap_add_optlist_pdu(pdu, &options);
  coap_delete_optlist(options);
  if (what == Request::registration) {
    // Past one PDU (many --resources) libcoap sends it with Block1.
    auto* body = new std::string(links_());
    if (coap_add_data_large_request(session_.get(), pdu, body->size(), reinterpret_cast<const std::uint8_t*>(body->data()),
                                    releaseString, body) == 0) {
      coap_delete_pdu(pdu);
      failed("cannot add the registration payload");
      return;
    }
  }
  state_ = State::waiting;
  pending_ = what;
  deadline_ = Clock::now() + kRequestLimit;
  if (coap_send(session_.get(), pdu) == COAP_INVALID_MID) failed("cannot send to " + settings_.uri);
}

bool RdClient::ours(const coap_pdu_t* pdu) const {
  if (state_ != State::waiting || pdu == nullptr) return false;
  const coap_bin_const_t t = coap_pdu_get_token(pdu);
  return t.length == token_.size() && std::equal(token_.begin(), token_.end(), t.s);
}

void RdClient::onResponse(const coap_pdu_t* received) {
  if (!ours(received)) return;
  const coap_pdu_code_t code = coap_pdu_get_code(received);
  const Request what = pending_;
  state_ = State::idle;
  pending_ = Request::none;
  size_t len = 0, offset = 0, total = 0;
  const std::uint8_t* data = nullptr;
  std::string diagnostic;
  if (coap_get_data_large(received, &len, &data, &offset, &total) != 0 && len > 0) {
    diagnostic = log::printable(std::string_view(reinterpret_cast<const char*>(data), len), 200);
  }
  const auto refresh_in = std::chrono::milliseconds(static_cast<long>(settings_.lifetime_s) * 750);

  if (what == Request::removal) {
    CE_LOG_INFO("left the RD: DELETE {} got {}", location_, codeText(code));
    location_.clear();
    return;
  }
  if (what == Request::registration && code == COAP_RESPONSE_CODE_CREATED) {
    std::string location;
    coap_opt_iterator_t it;
    coap_option_iterator_init(received, &it, COAP_OPT_ALL);
    while (coap_opt_t* opt = coap_option_next(&it)) {
      if (it.number != COAP_OPTION_LOCATION_PATH) continue;
      location += "/" + std::string(reinterpret_cast<const char*>(coap_opt_value(opt)), coap_opt_length(opt));
    }
    if (location.empty()) {
      failed("the RD answered 2.01 without a Location-Path");
      return;
    }
    location_ = log::printable(location, 200);
    registered_once_ = true;
    next_attempt_ = Clock::now() + refresh_in;
    CE_LOG_INFO("registered at {} as ep {}: location {} (lifetime {} s)", settings_.uri, settings_.endpoint, location_,
                settings_.lifetime_s);
    return;
  }
  if (what == Request::refresh && code == COAP_RESPONSE_CODE_CHANGED) {
    next_attempt_ = Clock::now() + refresh_in;
    CE_LOG_INFO("refreshed registration {}", location_);
    return;
  }
  if (what == Request::refresh && code == COAP_RESPONSE_CODE_NOT_FOUND) {
    CE_LOG_WARN("registration {} is gone (4.04): registering again", location_);
    location_.clear();
    send(Request::registration);
    return;
  }
  failed(fmt::format("{} refused: {}{}{}", what == Request::refresh ? "refresh" : "registration", codeText(code),
                     diagnostic.empty() ? "" : " ", diagnostic));
}

void RdClient::onNack(const coap_pdu_t* sent, coap_nack_reason_t reason) {
  if (!ours(sent)) return;
  state_ = State::idle;
  pending_ = Request::none;
  // A failed DTLS session is not reused: the next attempt handshakes anew. Not released here,
  // inside libcoap's callback for that very session.
  drop_session_ = true;
  failed(nackText(reason));
}

void RdClient::failed(const std::string& why) {
  state_ = State::idle;
  pending_ = Request::none;
  if (leaving_) {
    CE_LOG_WARN("could not leave the RD: {}", why);
    return;
  }
  if (!registered_once_) {
    // A node that was refused (wrong endpoint name, unknown key) must say so and stop.
    fatal_ = "registration at " + settings_.uri + " as ep " + settings_.endpoint + " failed: " + why;
    return;
  }
  CE_LOG_WARN("RD request failed: {}; trying again in {} s", why, kRetryAfterFailure.count());
  location_.clear();
  next_attempt_ = Clock::now() + kRetryAfterFailure;
}

void RdClient::tick(Clock::time_point now) {
  if (!fatal_.empty() || leaving_) return;
  if (state_ == State::waiting) {
    if (now >= deadline_) {
      session_.reset();
      failed("no answer within " + std::to_string(kRequestLimit.count()) + " s");
    }
    return;
  }
  if (now < next_attempt_) return;
  send(location_.empty() ? Request::registration : Request::refresh);
}

RdClient::Clock::time_point RdClient::nextEvent() const {
  return state_ == State::waiting ? deadline_ : next_attempt_;
}

void RdClient::leave() {
  leaving_ = true;
  if (state_ == State::waiting) {
    // An answer still due to an earlier request cannot be told apart from the DELETE's: drop it.
    state_ = State::idle;
    pending_ = Request::none;
  }
  if (location_.empty() || !session_) return;
  send(Request::removal);
}

}  // namespace coap_edge::simnode
