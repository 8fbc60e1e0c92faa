#pragma once
// Publishes the node as _coap._udp (TXT ep=NAME) through the system avahi-daemon, on Avahi's
// threaded poll: a test tool may own a library thread, the agent may not. If the daemon cannot
// be reached the node logs it and goes on unpublished.

#include "common/c_ptr.h"

#include <avahi-client/client.h>
#include <avahi-client/publish.h>
#include <avahi-common/thread-watch.h>

#include <cstdint>
#include <string>

namespace coap_edge::simnode {

class AvahiPublisher {
 public:
  AvahiPublisher(std::string name, std::uint16_t port, std::string endpoint);
  ~AvahiPublisher();
  AvahiPublisher(const AvahiPublisher&) = delete;
  AvahiPublisher& operator=(const AvahiPublisher&) = delete;

 private:
  static void onClient(AvahiClient* client, AvahiClientState state, void* self) noexcept;
  static void onGroup(AvahiEntryGroup* group, AvahiEntryGroupState state, void* self) noexcept;
  void publish(AvahiClient* client);

  CPtr<AvahiThreadedPoll, avahi_threaded_poll_free> poll_;
  CPtr<AvahiClient, avahi_client_free> client_;  ///< frees its entry group too
  AvahiEntryGroup* group_ = nullptr;              ///< owned by client_
  std::string name_;
  std::uint16_t port_;
  std::string txt_;
  bool started_ = false;
};

}  // namespace coap_edge::simnode
