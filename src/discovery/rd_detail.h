#pragma once
// Internals shared by the Resource Directory's source files; not part of its interface.

#include "discovery/resource_directory.h"

#include <string>
#include <string_view>
#include <utility>

namespace coap_edge::discovery::rd_detail {

inline RdReply reply(RdStatus status, std::string payload = {}) {
  RdReply r;
  r.status = status;
  r.payload = std::move(payload);
  return r;
}

inline RdReply badRequest(std::string why) { return reply(RdStatus::bad_request, std::move(why)); }

/// The registration resource's path as it appears in links: "/rd/" + the id as one segment.
std::string registrationPath(std::string_view id);

}  // namespace coap_edge::discovery::rd_detail
