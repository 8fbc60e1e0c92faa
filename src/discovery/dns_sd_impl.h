#pragma once
// DnsSd's state, shared by its files: dns_sd.cpp (client lifecycle), dns_sd_browse.cpp (browse
// and resolve), dns_sd_publish.cpp (the entry group). Only DnsSd includes this.

#include <deque>
#include <list>
#include <map>
#include <set>
#include <string>
#include <tuple>

#include "common/log.h"
#include "discovery/avahi_handles.h"
#include "discovery/dns_sd.h"

namespace coap_edge::discovery {

class DnsSd::Impl {
 public:
  Impl(const AvahiPoll* poll, DnsSdSettings settings, FoundCallback on_found, LostCallback on_lost);
  ~Impl();

  [[nodiscard]] std::string_view state() const;
  DnsSdCounters counters;
  [[nodiscard]] std::vector<DnsSdService> services() const;
  [[nodiscard]] std::optional<std::string> publishedName() const;
  [[nodiscard]] bool published() const { return published_; }

  // One browsed instance on one interface; Avahi reports it once per IP protocol it was seen on.
  struct Key {
    int ifindex = 0;
    std::string type;
    std::string name;
    friend auto operator<=>(const Key&, const Key&) = default;
  };
  struct Entry {
    Impl* owner = nullptr;
    Key key;
    std::string domain;
    std::set<AvahiProtocol> protocols;  // seen on; lost when the last goes
    AvahiProtocol resolve_protocol = AVAHI_PROTO_UNSPEC;
    AvahiServiceResolverPtr resolver;   // in flight
    bool queued = false;
    bool own = false;                   // our publication (as far as we know): never resolved
    std::optional<DnsSdService> found;  // reported
  };
  struct Browser {
    Impl* owner = nullptr;
    std::string type;
    std::string interface;  // "" = all
    int ifindex = AVAHI_IF_UNSPEC;
    AvahiServiceBrowserPtr handle;
  };

  // Trampolines: every Avahi callback enters here, nothing escapes into C.
  static void onClientState(AvahiClient* c, AvahiClientState state, void* userdata) noexcept;
  static void onBrowse(AvahiServiceBrowser* b, AvahiIfIndex ifindex, AvahiProtocol protocol, AvahiBrowserEvent event,
                       const char* name, const char* type, const char* domain, AvahiLookupResultFlags flags,
                       void* userdata) noexcept;
  static void onResolve(AvahiServiceResolver* r, AvahiIfIndex ifindex, AvahiProtocol protocol, AvahiResolverEvent event,
                        const char* name, const char* type, const char* domain, const char* host_name,
                        const AvahiAddress* address, uint16_t port, AvahiStringList* txt,
                        AvahiLookupResultFlags flags, void* userdata) noexcept;
  static void onGroupState(AvahiEntryGroup* g, AvahiEntryGroupState state, void* userdata) noexcept;

 private:
  enum class Phase { failed, connecting, running };

  // dns_sd.cpp
  void createClient();
  void handleClientState(AvahiClient* c, AvahiClientState state);
  void reconnect();
  void dropEverything(bool report);
  void retry();
  void setPhase(Phase phase, std::string message, log::Level level);
  void reportFound(const DnsSdService& service);
  void reportLost(const DnsSdService& service);

  // dns_sd_browse.cpp
  void ensureBrowsers();
  void handleBrowse(Browser& browser, AvahiIfIndex ifindex, AvahiProtocol protocol, AvahiBrowserEvent event,
                    const char* name, const char* type, const char* domain, AvahiLookupResultFlags flags);
  void browserFailed(Browser& browser);
  void removeEntry(std::map<Key, Entry>::iterator it, bool report);
  void queueResolve(Entry& entry);
  void releaseOwnEntries();  // after a rename: what looked like ours under the old name is not
  void startResolves();
  void handleResolve(Entry& entry, AvahiIfIndex ifindex, AvahiResolverEvent event, const char* host_name,
                     const AvahiAddress* address, uint16_t port, AvahiStringList* txt);

  // dns_sd_publish.cpp
  void ensurePublished();
  [[nodiscard]] int addPublication(const std::vector<std::pair<std::string, int>>& interfaces);
  void withdrawPublication();
  void handleGroupState(AvahiEntryGroup* g, AvahiEntryGroupState state);
  void rename();

  // The configured interfaces present now (name, index), or one AVAHI_IF_UNSPEC entry for "all";
  // false if one is missing (warned once; the caller retries).
  bool interfaceIndexes(std::vector<std::pair<std::string, int>>& out);

  const AvahiPoll* poll_;
  DnsSdSettings settings_;
  FoundCallback on_found_;
  LostCallback on_lost_;

  Phase phase_ = Phase::connecting;
  std::string last_logged_;
  bool was_running_ = false;         // a reconnect counts only after the first time
  bool awaiting_reconnect_ = false;  // lost a running daemon, not back yet
  bool constructing_ = false;  // inside avahi_client_new: its callback comes before it returns
  std::optional<AvahiClientState> early_state_;
  bool dropped_warned_ = false;
  std::set<std::string> missing_warned_;

  std::string publish_name_;
  bool published_ = false;
  std::vector<std::pair<std::string, int>> published_on_;  // interfaces in the group now

  // Declaration order is teardown order reversed: every child handle (resolvers in entries_,
  // browsers_, group_) must go before the client that avahi_client_free would free them with.
  PollTimer retry_timer_;
  PollTimer reconnect_timer_;
  AvahiClientPtr client_;
  AvahiEntryGroupPtr group_;
  std::list<Browser> browsers_;
  std::map<Key, Entry> entries_;
  std::deque<Key> resolve_queue_;
  std::size_t resolving_ = 0;
};

}  // namespace coap_edge::discovery
