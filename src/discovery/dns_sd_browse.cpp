// DnsSd: service browsers per (type, interface), and resolution of what they find into
// DnsSdService, with a bounded number of resolvers in flight and of services tracked.

#include <avahi-common/address.h>
#include <avahi-common/error.h>
#include <net/if.h>

#include <algorithm>

#include "common/log.h"
#include "discovery/dns_sd_impl.h"

namespace coap_edge::discovery {
namespace {

constexpr std::string_view kLogTag = "dns-sd";
constexpr std::size_t kMaxTxtEntries = 64;

std::string interfaceName(int ifindex) {
  char buf[IF_NAMESIZE] = {};
  if (ifindex > 0 && if_indextoname(static_cast<unsigned>(ifindex), buf) != nullptr) return buf;
  return std::to_string(ifindex);
}

std::string numericAddress(const AvahiAddress& address, const std::string& ifname) {
  char buf[AVAHI_ADDRESS_STR_MAX] = {};
  if (avahi_address_snprint(buf, sizeof(buf), &address) == nullptr) return {};
  std::string out = buf;
  // A link-local IPv6 address is only usable with its zone (RFC 4007): the interface seen on.
  const auto& a6 = address.data.ipv6.address;
  if (address.proto == AVAHI_PROTO_INET6 && a6[0] == 0xfe && (a6[1] & 0xc0) == 0x80) out += "%" + ifname;
  return out;
}

std::map<std::string, std::string> txtRecords(AvahiStringList* txt) {
  std::map<std::string, std::string> out;
  std::size_t n = 0;
  for (AvahiStringList* l = txt; l != nullptr && n < kMaxTxtEntries; l = avahi_string_list_get_next(l), ++n) {
    const std::string_view entry(reinterpret_cast<const char*>(avahi_string_list_get_text(l)),
                                 avahi_string_list_get_size(l));
    const auto eq = entry.find('=');
    const std::string_view key = entry.substr(0, eq);
    if (key.empty()) continue;  // RFC 6763 §6.4: no key, ignore
    out.emplace(key, eq == std::string_view::npos ? std::string_view{} : entry.substr(eq + 1));
  }
  return out;
}

}  // namespace

void DnsSd::Impl::ensureBrowsers() {
  if (!client_ || phase_ != Phase::running) return;
  std::vector<std::pair<std::string, int>> interfaces;
  bool complete = interfaceIndexes(interfaces);
  for (const auto& type : settings_.service_types) {
    for (const auto& interface : interfaces) {
      const auto& [ifname, ifindex] = interface;
      // (clang 14 cannot capture structured bindings)
      const bool exists = std::any_of(browsers_.begin(), browsers_.end(), [&](const Browser& b) {
        return b.type == type && b.interface == interface.first && b.ifindex == interface.second;
      });
      if (exists) continue;
      Browser& b = browsers_.emplace_back();
      b.owner = this;
      b.type = type;
      b.interface = ifname;
      b.ifindex = ifindex;
      b.handle.reset(avahi_service_browser_new(client_.get(), ifindex, AVAHI_PROTO_UNSPEC, type.c_str(), nullptr,
                                               AvahiLookupFlags{}, &Impl::onBrowse, &b));
      if (!b.handle) {
        CE_LOG_WARN("cannot browse for {} on {}: {}", log::printable(type), ifname.empty() ? "all interfaces" : ifname,
                    avahi_strerror(avahi_client_errno(client_.get())));
        browsers_.pop_back();
        complete = false;
      }
    }
  }
  if (!complete && !retry_timer_.armed()) retry_timer_.arm(settings_.retry_interval);
}

void DnsSd::Impl::onBrowse(AvahiServiceBrowser*, AvahiIfIndex ifindex, AvahiProtocol protocol,
                           AvahiBrowserEvent event, const char* name, const char* type, const char* domain,
                           AvahiLookupResultFlags flags, void* userdata) noexcept {
  auto* browser = static_cast<Browser*>(userdata);
  try {
    browser->owner->handleBrowse(*browser, ifindex, protocol, event, name, type, domain, flags);
  } catch (const std::exception& e) {
    CE_LOG_ERROR("browse event: {}", e.what());
  } catch (...) {
    CE_LOG_ERROR("browse event: unknown exception");
  }
}

void DnsSd::Impl::handleBrowse(Browser& browser, AvahiIfIndex ifindex, AvahiProtocol protocol, AvahiBrowserEvent event,
                               const char* name, const char* type, const char* domain, AvahiLookupResultFlags flags) {
  switch (event) {
    case AVAHI_BROWSER_NEW: {
      if (name == nullptr || type == nullptr) return;
      // Our own publication is not a node. The flag is a snapshot: while our entry group probes
      // a name that another host holds, that host's service is flagged ours too, so the entry is
      // kept (unresolved) and released when we rename (releaseOwnEntries).
      const bool own = (flags & AVAHI_LOOKUP_RESULT_OUR_OWN) != 0;
      Key key{ifindex, type, name};
      auto it = entries_.find(key);
      if (it != entries_.end()) {
        // The same instance over the other IP protocol; retry a resolution that failed.
        Entry& entry = it->second;
        entry.protocols.insert(protocol);
        if (!own) entry.own = false;
        if (!entry.found && !entry.resolver && !entry.queued) entry.resolve_protocol = protocol;
        queueResolve(entry);
        return;
      }
      if (entries_.size() >= settings_.max_services) {
        ++counters.services_dropped;
        if (!dropped_warned_)
          CE_LOG_WARN("tracking {} services already (max_services); ignoring more", entries_.size());
        dropped_warned_ = true;
        return;
      }
      Entry& entry = entries_[key];
      entry.owner = this;
      entry.key = std::move(key);
      entry.domain = domain != nullptr ? domain : "local";
      entry.protocols.insert(protocol);
      entry.resolve_protocol = protocol;
      entry.own = own;
      queueResolve(entry);
      return;
    }
    case AVAHI_BROWSER_REMOVE: {
      if (name == nullptr || type == nullptr) return;
      auto it = entries_.find(Key{ifindex, type, name});
      if (it == entries_.end()) return;
      it->second.protocols.erase(protocol);
      if (it->second.protocols.empty()) removeEntry(it, true);
      return;
    }
    case AVAHI_BROWSER_FAILURE:
      browserFailed(browser);
      return;
    case AVAHI_BROWSER_CACHE_EXHAUSTED:
    case AVAHI_BROWSER_ALL_FOR_NOW:
      return;
  }
}

void DnsSd::Impl::browserFailed(Browser& browser) {
  CE_LOG_WARN("browsing for {} on {} failed: {}; retrying in {} ms", log::printable(browser.type),
              browser.interface.empty() ? "all interfaces" : browser.interface,
              client_ ? avahi_strerror(avahi_client_errno(client_.get())) : "no client",
              settings_.retry_interval.count());
  for (auto it = entries_.begin(); it != entries_.end();) {
    auto next = std::next(it);
    if (it->first.type == browser.type && (browser.ifindex == AVAHI_IF_UNSPEC || it->first.ifindex == browser.ifindex))
      removeEntry(it, true);
    it = next;
  }
  // Freeing a browser from its own callback is allowed; nothing touches it afterwards.
  browsers_.remove_if([&](const Browser& b) { return &b == &browser; });
  if (!retry_timer_.armed()) retry_timer_.arm(settings_.retry_interval);
}

void DnsSd::Impl::removeEntry(std::map<Key, Entry>::iterator it, bool report) {
  Entry& entry = it->second;
  if (entry.resolver) {
    entry.resolver.reset();
    --resolving_;
  }
  if (entry.queued) {
    resolve_queue_.erase(std::remove(resolve_queue_.begin(), resolve_queue_.end(), entry.key), resolve_queue_.end());
  }
  std::optional<DnsSdService> found = std::move(entry.found);
  entries_.erase(it);
  if (entries_.size() < settings_.max_services) dropped_warned_ = false;
  if (report && found) reportLost(*found);
  startResolves();  // a resolver slot may have come free
}

void DnsSd::Impl::queueResolve(Entry& entry) {
  if (entry.own || entry.found || entry.resolver || entry.queued) return;
  entry.queued = true;
  resolve_queue_.push_back(entry.key);
  startResolves();
}

void DnsSd::Impl::releaseOwnEntries() {
  for (auto& [key, entry] : entries_) {
    if (!entry.own) continue;
    if (settings_.publication && key.type == settings_.publication->type && key.name == publish_name_) continue;
    entry.own = false;
    queueResolve(entry);
  }
}

void DnsSd::Impl::startResolves() {
  while (client_ && resolving_ < settings_.max_resolvers && !resolve_queue_.empty()) {
    const Key key = std::move(resolve_queue_.front());
    resolve_queue_.pop_front();
    auto it = entries_.find(key);
    if (it == entries_.end() || !it->second.queued) continue;
    Entry& entry = it->second;
    entry.queued = false;
    entry.resolver.reset(avahi_service_resolver_new(client_.get(), key.ifindex, entry.resolve_protocol,
                                                    key.name.c_str(), key.type.c_str(), entry.domain.c_str(),
                                                    entry.resolve_protocol, AvahiLookupFlags{}, &Impl::onResolve,
                                                    &entry));
    if (!entry.resolver) {
      ++counters.resolve_failures;
      CE_LOG_DEBUG("cannot resolve \"{}\": {}", log::printable(key.name),
                   avahi_strerror(avahi_client_errno(client_.get())));
      continue;
    }
    ++resolving_;
  }
}

void DnsSd::Impl::onResolve(AvahiServiceResolver*, AvahiIfIndex ifindex, AvahiProtocol, AvahiResolverEvent event,
                            const char*, const char*, const char*, const char* host_name, const AvahiAddress* address,
                            uint16_t port, AvahiStringList* txt, AvahiLookupResultFlags, void* userdata) noexcept {
  auto* entry = static_cast<Entry*>(userdata);
  try {
    entry->owner->handleResolve(*entry, ifindex, event, host_name, address, port, txt);
  } catch (const std::exception& e) {
    CE_LOG_ERROR("resolve event: {}", e.what());
  } catch (...) {
    CE_LOG_ERROR("resolve event: unknown exception");
  }
}

void DnsSd::Impl::handleResolve(Entry& entry, AvahiIfIndex ifindex, AvahiResolverEvent event, const char* host_name,
                                const AvahiAddress* address, uint16_t port, AvahiStringList* txt) {
  std::optional<DnsSdService> service;
  if (event == AVAHI_RESOLVER_FOUND && address != nullptr) {
    DnsSdService s;
    s.instance = entry.key.name;
    s.type = entry.key.type;
    s.interface = interfaceName(ifindex);
    s.host_name = host_name != nullptr ? host_name : "";
    s.address = numericAddress(*address, s.interface);
    s.port = port;
    s.txt = txtRecords(txt);
    s.secure = s.type == "_coaps._udp";
    service = std::move(s);
  } else {
    ++counters.resolve_failures;
    CE_LOG_DEBUG("cannot resolve \"{}\" ({}): {}", log::printable(entry.key.name), entry.key.type,
                 client_ ? avahi_strerror(avahi_client_errno(client_.get())) : "no client");
  }
  // One answer is all we ask for: free the resolver (allowed from its own callback, after the
  // copy above) and give its slot to the next in the queue.
  entry.resolver.reset();
  --resolving_;
  if (service && !entry.found) {
    entry.found = *service;
    reportFound(*service);
  }
  startResolves();
}

}  // namespace coap_edge::discovery
