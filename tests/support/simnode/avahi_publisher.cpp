#include "avahi_publisher.h"

#include "common/log.h"

#include <avahi-common/alternative.h>
#include <avahi-common/error.h>
#include <avahi-common/malloc.h>

namespace coap_edge::simnode {
namespace {

constexpr std::string_view kLogTag = "simnode";

}  // namespace

AvahiPublisher::AvahiPublisher(std::string name, std::uint16_t port, std::string endpoint)
    : name_(std::move(name)), port_(port), txt_("ep=" + endpoint) {
  poll_.reset(avahi_threaded_poll_new());
  if (!poll_) {
    CE_LOG_WARN("avahi: cannot create a poll; not publishing");
    return;
  }
  int error = 0;
  // The first state callback comes from inside avahi_client_new(), before client_ is set.
  client_.reset(avahi_client_new(avahi_threaded_poll_get(poll_.get()), AvahiClientFlags{}, &AvahiPublisher::onClient,
                                 this, &error));
  if (!client_) {
    CE_LOG_WARN("avahi: daemon not reachable ({}); not publishing", avahi_strerror(error));
    return;
  }
  if (avahi_threaded_poll_start(poll_.get()) < 0) {
    CE_LOG_WARN("avahi: cannot start its thread; not publishing");
    return;
  }
  started_ = true;
}

AvahiPublisher::~AvahiPublisher() {
  // The thread goes first, so that no callback runs while the client is freed.
  if (started_) avahi_threaded_poll_stop(poll_.get());
  client_.reset();
}

void AvahiPublisher::onClient(AvahiClient* client, AvahiClientState state, void* self) noexcept {
  auto* me = static_cast<AvahiPublisher*>(self);
  try {
    switch (state) {
      case AVAHI_CLIENT_S_RUNNING:
        me->publish(client);
        break;
      case AVAHI_CLIENT_S_COLLISION:
      case AVAHI_CLIENT_S_REGISTERING:
        // The host name changes: withdraw, and publish again when the client runs again.
        if (me->group_ != nullptr) avahi_entry_group_reset(me->group_);
        break;
      case AVAHI_CLIENT_FAILURE:
        CE_LOG_WARN("avahi: client failed ({}); no longer published", avahi_strerror(avahi_client_errno(client)));
        break;
      case AVAHI_CLIENT_CONNECTING:
        break;
    }
  } catch (...) {
  }
}

void AvahiPublisher::onGroup(AvahiEntryGroup* group, AvahiEntryGroupState state, void* self) noexcept {
  auto* me = static_cast<AvahiPublisher*>(self);
  try {
    switch (state) {
      case AVAHI_ENTRY_GROUP_ESTABLISHED:
        CE_LOG_INFO("avahi: published {} as _coap._udp port {} ({})", me->name_, me->port_, me->txt_);
        break;
      case AVAHI_ENTRY_GROUP_COLLISION: {
        char* alt = avahi_alternative_service_name(me->name_.c_str());
        CE_LOG_WARN("avahi: service name {} taken; trying {}", me->name_, alt != nullptr ? alt : "?");
        if (alt != nullptr) {
          me->name_ = alt;
          avahi_free(alt);
        }
        me->publish(avahi_entry_group_get_client(group));
        break;
      }
      case AVAHI_ENTRY_GROUP_FAILURE:
        CE_LOG_WARN("avahi: publishing failed ({})",
                    avahi_strerror(avahi_client_errno(avahi_entry_group_get_client(group))));
        break;
      case AVAHI_ENTRY_GROUP_UNCOMMITED:
      case AVAHI_ENTRY_GROUP_REGISTERING:
        break;
    }
  } catch (...) {
  }
}

void AvahiPublisher::publish(AvahiClient* client) {
  if (group_ == nullptr) {
    group_ = avahi_entry_group_new(client, &AvahiPublisher::onGroup, this);
    if (group_ == nullptr) {
      CE_LOG_WARN("avahi: cannot create an entry group ({})", avahi_strerror(avahi_client_errno(client)));
      return;
    }
  }
  avahi_entry_group_reset(group_);
  const int rc = avahi_entry_group_add_service(group_, AVAHI_IF_UNSPEC, AVAHI_PROTO_UNSPEC, AvahiPublishFlags{},
                                               name_.c_str(), "_coap._udp", nullptr, nullptr, port_, txt_.c_str(),
                                               nullptr);
  if (rc < 0 || avahi_entry_group_commit(group_) < 0) {
    CE_LOG_WARN("avahi: cannot publish {} ({})", name_, avahi_strerror(rc < 0 ? rc : avahi_client_errno(client)));
  }
}

}  // namespace coap_edge::simnode
