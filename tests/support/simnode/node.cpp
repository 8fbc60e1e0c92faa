#include "node.h"

#include "common/log.h"

#include <net/if.h>
#include <netinet/in.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <string>
#include <stdexcept>
#include <thread>

namespace coap_edge::simnode {
namespace {

constexpr std::string_view kLogTag = "simnode";
constexpr const char* kGroups[] = {"224.0.1.187", "ff02::fd", "ff05::fd"};
constexpr auto kLeaveLimit = std::chrono::seconds(5);
using Clock = std::chrono::steady_clock;

std::chrono::nanoseconds seconds(double s) {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::duration<double>(s));
}

// At least 1 ms: 0 means "wait forever" to coap_io_process().
std::uint32_t waitMs(Clock::time_point now, Clock::time_point until) {
  const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(until - now).count();
  return static_cast<std::uint32_t>(std::clamp<long long>(ms, 1, 1000));
}

}  // namespace

Node::Node(Options options) : options_(std::move(options)) {
  context_.reset(coap_new_context(nullptr));
  if (!context_) throw std::runtime_error("libcoap: cannot create a context");
  coap_context_set_app_data(context_.get(), this);
  coap_context_set_block_mode(context_.get(), COAP_BLOCK_USE_LIBCOAP | COAP_BLOCK_SINGLE_BODY);
  coap_register_event_handler(context_.get(), &Node::onEvent);
  coap_register_response_handler(context_.get(), &Node::onResponse);
  coap_register_nack_handler(context_.get(), &Node::onNack);

  resources_ = std::make_unique<Resources>(context_.get(), options_.name, options_.temp_period_s,
                                           options_.extra_resources, options_.big_size, options_.log_requests);
  listen();
  joinGroups();
  if (options_.avahi) avahi_ = std::make_unique<AvahiPublisher>(options_.name, first_port_, options_.name);
  if (!options_.rd_uri.empty()) {
    rd_ = std::make_unique<RdClient>(
        context_.get(),
        RdSettings{options_.rd_uri, options_.psk_identity, options_.psk_key_file, options_.rd_ep, options_.lifetime_s},
        [this] { return resources_->linkFormat(); });
    if (std::string err = rd_->start(); !err.empty()) throw std::runtime_error(err);
  }
  CE_LOG_INFO("node {} ready ({} extra resources)", options_.name, options_.extra_resources);
}

Node::~Node() = default;

void Node::listen() {
  for (const auto& l : options_.listen) {
    coap_address_t addr;
    coap_address_init(&addr);
    std::memcpy(&addr.addr, &l.addr, l.size);
    addr.size = l.size;
    coap_endpoint_t* ep = coap_new_endpoint(context_.get(), &addr, COAP_PROTO_UDP);
    if (ep == nullptr) throw std::runtime_error("cannot listen on " + l.text);
    const char* shown = coap_endpoint_str(ep);
    CE_LOG_INFO("listening on {}", shown != nullptr ? shown : l.text);
    // The bound port (also for "port 0"), from libcoap's "ADDR:PORT UDP", for Avahi.
    if (first_port_ == 0 && shown != nullptr) {
      const std::string text = shown;
      const auto colon = text.rfind(':', text.find(' '));
      if (colon != std::string::npos) first_port_ = static_cast<std::uint16_t>(std::atoi(text.c_str() + colon + 1));
    }
  }
}

void Node::joinGroups() {
  for (const auto& ifname : options_.join) {
    if (if_nametoindex(ifname.c_str()) == 0) throw std::runtime_error("--join " + ifname + ": no such interface");
    for (const char* group : kGroups) {
      // libcoap tries every endpoint and returns the last result: with sockets of both families
      // the one that cannot take the group's family reports a failure although the other joined.
      if (coap_join_mcast_group_intf(context_.get(), group, ifname.c_str()) == 0) {
        CE_LOG_INFO("joined {} on {}", group, ifname);
      } else {
        CE_LOG_WARN("joining {} on {} failed on at least one socket", group, ifname);
      }
    }
  }
}

Node* Node::of(coap_session_t* session) {
  return static_cast<Node*>(coap_context_get_app_data(coap_session_get_context(session)));
}

int Node::onEvent(coap_session_t* session, coap_event_t event) noexcept {
  try {
    if (event == COAP_EVENT_SERVER_SESSION_NEW) {
      // libcoap delays each answer to a multicast request by a random share of this session's
      // Leisure; the RFC's default (5 s) is meant for large groups.
      const double l = of(session)->options_.leisure_s;
      const auto whole = static_cast<std::uint16_t>(std::floor(l));
      const auto ms = static_cast<std::uint16_t>(std::lround((l - whole) * 1000.0) % 1000);
      coap_session_set_default_leisure(session, coap_fixed_point_t{whole, ms});
    }
  } catch (...) {
  }
  return 0;
}

coap_response_t Node::onResponse(coap_session_t* session, const coap_pdu_t*, const coap_pdu_t* received,
                                 coap_mid_t) noexcept {
  try {
    Node* me = of(session);
    if (me->rd_) me->rd_->onResponse(received);
  } catch (...) {
  }
  return COAP_RESPONSE_OK;
}

void Node::onNack(coap_session_t* session, const coap_pdu_t* sent, coap_nack_reason_t reason, coap_mid_t) noexcept {
  try {
    Node* me = of(session);
    if (me->rd_) me->rd_->onNack(sent, reason);
  } catch (...) {
  }
}

int Node::run(const volatile std::sig_atomic_t& stop) {
  const bool sleepy = options_.sleep_every_s > 0;
  bool asleep = false;
  auto phase_end = Clock::now() + seconds(options_.sleep_every_s);
  while (stop == 0) {
    auto now = Clock::now();
    if (sleepy && now >= phase_end) {
      asleep = !asleep;
      phase_end = now + seconds(asleep ? options_.sleep_for_s : options_.sleep_every_s);
      if (asleep) {
        CE_LOG_INFO("sleeping for {} s", options_.sleep_for_s);
      } else {
        CE_LOG_INFO("awake for {} s", options_.sleep_every_s);
      }
    }
    if (asleep) {
      // Deaf: libcoap is not called, so nothing is read from the sockets (the kernel may still
      // queue a few datagrams, answered late on waking, as a real radio's buffer would not).
      std::this_thread::sleep_for(std::min<Clock::duration>(phase_end - now, std::chrono::milliseconds(100)));
      continue;
    }
    resources_->tick(now);
    auto until = std::min(resources_->nextChange(), now + std::chrono::seconds(1));
    if (sleepy) until = std::min(until, phase_end);
    if (rd_) {
      rd_->tick(now);
      if (!rd_->fatalError().empty()) {
        CE_LOG_ERROR("{}", rd_->fatalError());
        return 2;
      }
      until = std::min(until, rd_->nextEvent());
    }
    coap_io_process(context_.get(), waitMs(now, until));
    if (rd_ && !rd_->fatalError().empty()) {
      CE_LOG_ERROR("{}", rd_->fatalError());
      return 2;
    }
  }
  CE_LOG_INFO("stopping");
  leaveRd();
  return 0;
}

void Node::leaveRd() {
  if (!rd_) return;
  rd_->leave();
  const auto deadline = Clock::now() + kLeaveLimit;
  while (!rd_->idle() && Clock::now() < deadline) {
    coap_io_process(context_.get(), waitMs(Clock::now(), deadline));
  }
}

}  // namespace coap_edge::simnode
