// DnsSd: the gateway's own service in one entry group, renamed on collisions the way Avahi's
// client-publish-service example does (avahi_alternative_service_name: "gw-01" -> "gw-01 #2").

#include <avahi-common/alternative.h>
#include <avahi-common/error.h>

#include "common/log.h"
#include "discovery/dns_sd_impl.h"

namespace coap_edge::discovery {
namespace {

constexpr std::string_view kLogTag = "dns-sd";
// Local collisions (another client of the same daemon holds the name) are renamed at once; a
// bound keeps a pathological daemon from spinning us.
constexpr int kMaxLocalRenames = 16;

}  // namespace

void DnsSd::Impl::ensurePublished() {
  if (!settings_.publication || !client_ || phase_ != Phase::running) return;
  std::vector<std::pair<std::string, int>> interfaces;
  const bool complete = interfaceIndexes(interfaces);
  if (!complete && !retry_timer_.armed()) retry_timer_.arm(settings_.retry_interval);
  if (group_ && !avahi_entry_group_is_empty(group_.get()) && interfaces == published_on_) return;
  if (interfaces.empty()) return;  // none of the configured interfaces is present yet
  if (!group_) {
    group_.reset(avahi_entry_group_new(client_.get(), &Impl::onGroupState, this));
    if (!group_) {
      CE_LOG_WARN("cannot create an entry group: {}", avahi_strerror(avahi_client_errno(client_.get())));
      if (!retry_timer_.armed()) retry_timer_.arm(settings_.retry_interval);
      return;
    }
  } else {
    avahi_entry_group_reset(group_.get());
    published_ = false;
  }
  published_on_.clear();
  for (int attempt = 0; attempt <= kMaxLocalRenames; ++attempt) {
    const int rc = addPublication(interfaces);
    if (rc == AVAHI_OK) break;
    avahi_entry_group_reset(group_.get());
    if (rc != AVAHI_ERR_COLLISION || attempt == kMaxLocalRenames) {
      CE_LOG_WARN("cannot publish \"{}\": {}; retrying in {} ms", log::printable(publish_name_), avahi_strerror(rc),
                  settings_.retry_interval.count());
      if (!retry_timer_.armed()) retry_timer_.arm(settings_.retry_interval);
      return;
    }
    ++counters.publish_collisions;
    rename();
  }
  if (const int rc = avahi_entry_group_commit(group_.get()); rc != AVAHI_OK) {
    CE_LOG_WARN("cannot publish \"{}\": {}", log::printable(publish_name_), avahi_strerror(rc));
    avahi_entry_group_reset(group_.get());
    if (!retry_timer_.armed()) retry_timer_.arm(settings_.retry_interval);
    return;
  }
  published_on_ = std::move(interfaces);
}

int DnsSd::Impl::addPublication(const std::vector<std::pair<std::string, int>>& interfaces) {
  const DnsSdPublication& pub = *settings_.publication;
  AvahiStringListPtr txt;
  for (const auto& [key, value] : pub.txt) {
    AvahiStringList* next = avahi_string_list_add_pair(txt.get(), key.c_str(), value.c_str());
    if (next == nullptr) return AVAHI_ERR_NO_MEMORY;
    (void)txt.release();  // the list grows at its head: the new head owns the rest
    txt.reset(next);
  }
  for (const auto& [ifname, ifindex] : interfaces) {
    const int rc = avahi_entry_group_add_service_strlst(group_.get(), ifindex, AVAHI_PROTO_UNSPEC, AvahiPublishFlags{},
                                                        publish_name_.c_str(), pub.type.c_str(), nullptr, nullptr,
                                                        pub.port, txt.get());
    if (rc != AVAHI_OK) return rc;
  }
  return AVAHI_OK;
}

void DnsSd::Impl::withdrawPublication() {
  if (group_) avahi_entry_group_reset(group_.get());
  published_ = false;
  published_on_.clear();
}

void DnsSd::Impl::rename() {
  AvahiStringPtr alternative(avahi_alternative_service_name(publish_name_.c_str()));
  if (!alternative) throw std::bad_alloc();
  CE_LOG_NOTICE("service name \"{}\" is taken; publishing as \"{}\"", log::printable(publish_name_),
                log::printable(alternative.get()));
  publish_name_ = alternative.get();
  releaseOwnEntries();
}

void DnsSd::Impl::onGroupState(AvahiEntryGroup* g, AvahiEntryGroupState state, void* userdata) noexcept {
  auto* self = static_cast<Impl*>(userdata);
  try {
    self->handleGroupState(g, state);
  } catch (const std::exception& e) {
    CE_LOG_ERROR("entry group state {}: {}", static_cast<int>(state), e.what());
  } catch (...) {
    CE_LOG_ERROR("entry group state {}: unknown exception", static_cast<int>(state));
  }
}

void DnsSd::Impl::handleGroupState(AvahiEntryGroup* g, AvahiEntryGroupState state) {
  // avahi_entry_group_new reports UNCOMMITED before group_ holds it; later states come from
  // the loop, for group_.
  switch (state) {
    case AVAHI_ENTRY_GROUP_ESTABLISHED:
      published_ = true;
      CE_LOG_NOTICE("published \"{}\" ({} port {})", log::printable(publish_name_), settings_.publication->type,
                    settings_.publication->port);
      return;
    case AVAHI_ENTRY_GROUP_COLLISION:
      // Another host on the link holds the name: take the next one and publish again.
      ++counters.publish_collisions;
      rename();
      avahi_entry_group_reset(g);
      published_ = false;
      published_on_.clear();
      ensurePublished();
      return;
    case AVAHI_ENTRY_GROUP_FAILURE:
      CE_LOG_WARN("publishing \"{}\" failed: {}; retrying in {} ms", log::printable(publish_name_),
                  avahi_strerror(avahi_client_errno(avahi_entry_group_get_client(g))),
                  settings_.retry_interval.count());
      avahi_entry_group_reset(g);
      published_ = false;
      published_on_.clear();
      if (!retry_timer_.armed()) retry_timer_.arm(settings_.retry_interval);
      return;
    case AVAHI_ENTRY_GROUP_UNCOMMITED:
    case AVAHI_ENTRY_GROUP_REGISTERING:
      return;
  }
}

}  // namespace coap_edge::discovery
