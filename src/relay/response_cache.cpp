#include "relay/response_cache.h"

#include <algorithm>
#include <charconv>
#include <iterator>
#include <limits>

namespace coap_edge::relay {
namespace {

void appendField(std::string& out, std::string_view value) {
  out += std::to_string(value.size());
  out += ':';
  out += value;
}

// An absent option is an empty field; a present one is never empty (decimal digits), so the two
// cannot be confused.
void appendOption(std::string& out, std::optional<std::uint16_t> value) {
  appendField(out, value ? std::to_string(*value) : std::string());
}

/// Reads one field of `key` at `pos`; moves `pos` past it. False if `key` is not well formed there.
bool skipField(std::string_view key, std::size_t& pos) {
  const std::size_t colon = key.find(':', pos);
  if (colon == std::string_view::npos || colon == pos) return false;
  std::size_t len = 0;
  const auto [end, ec] = std::from_chars(key.data() + pos, key.data() + colon, len);
  if (ec != std::errc() || end != key.data() + colon) return false;
  if (len > key.size() - colon - 1) return false;
  pos = colon + 1 + len;
  return true;
}

/// Length of the node id + Uri-Path prefix of a cacheKey() key, if it is one.
std::optional<std::size_t> uriPrefixLength(std::string_view key) {
  std::size_t pos = 0;
  if (!skipField(key, pos) || !skipField(key, pos)) return std::nullopt;
  return pos;
}

std::string uriPrefix(std::string_view node_id, std::string_view path) {
  std::string out;
  appendField(out, node_id);
  appendField(out, path);
  return out;
}

/// RFC 7252 §5.6 and §5.9: 2.05 is cacheable; 4.xx and 5.xx are cacheable (for their Max-Age);
/// 2.01/2.02/2.04 are not, and 2.03 only refreshes an entry (revalidated()).
bool cacheableCode(coap::Code code) {
  const auto value = static_cast<unsigned>(code);
  return code == coap::Code::content || (value >= 400 && value < 600);
}

/// now + seconds, saturating at the clock's end rather than overflowing (Max-Age goes to 2^32-1 s).
Clock::time_point addSeconds(Clock::time_point now, std::uint32_t seconds) {
  const auto room = Clock::time_point::max() - now;
  const auto add = std::chrono::duration_cast<Clock::duration>(std::chrono::seconds(seconds));
  return add >= room ? Clock::time_point::max() : now + add;
}

std::uint32_t secondsLeft(Clock::time_point expires, Clock::time_point now) {
  const auto left = std::chrono::duration_cast<std::chrono::seconds>(expires - now).count();  // truncates: down
  return static_cast<std::uint32_t>(
      std::clamp<std::int64_t>(left, 0, std::numeric_limits<std::uint32_t>::max()));
}

}  // namespace

std::string cacheKey(std::string_view node_id, coap::Method method, std::string_view path, std::string_view query,
                     std::optional<std::uint16_t> accept, std::optional<std::uint16_t> content_format,
                     std::string_view fetch_body) {
  if (method != coap::Method::get && method != coap::Method::fetch) return {};
  std::string key;
  key.reserve(node_id.size() + path.size() + query.size() + fetch_body.size() + 32);
  appendField(key, node_id);  // node id and path first: the URI prefix the index uses
  appendField(key, path);
  appendField(key, std::to_string(static_cast<unsigned>(method)));
  appendField(key, query);
  appendOption(key, accept);
  if (method == coap::Method::fetch) {
    appendOption(key, content_format);
    appendField(key, fetch_body);
  }
  return key;
}

ResponseCache::ResponseCache(CacheLimits limits) : limits_(limits) {}

Lookup ResponseCache::lookup(std::string_view key, bool requester_secure, Clock::time_point now) {
  const auto found = index_.find(key);
  if (found == index_.end()) {
    ++stats_.misses;
    return {};
  }
  const auto it = found->second;
  if (it->secure && !requester_secure) {
    // Not ours to hand out, but still good for secure requesters: keep it, and keep its LRU place.
    ++stats_.misses;
    return {};
  }
  if (now < it->expires) {
    lru_.splice(lru_.begin(), lru_, it);
    ++stats_.hits;
    return {Lookup::fresh, &it->response, secondsLeft(it->expires, now)};
  }
  if (it->response.etag) {
    lru_.splice(lru_.begin(), lru_, it);  // about to be revalidated: in use
    ++stats_.stale;
    return {Lookup::stale, &it->response, 0};
  }
  erase(it);  // nothing to revalidate with: useless
  ++stats_.expired;
  ++stats_.misses;
  return {};
}

bool ResponseCache::store(std::string_view key, const CachedResponse& r, std::optional<std::uint32_t> max_age,
                          bool secure, Clock::time_point now) {
  if (!cacheableCode(r.code)) return false;
  const auto prefix = uriPrefixLength(key);
  if (!prefix) return false;
  const std::uint32_t age = max_age.value_or(kDefaultMaxAge);
  const std::size_t bytes = key.size() + r.payload.size() + (r.etag ? r.etag->size() : 0) + kEntryOverhead;
  // The old entry is superseded whether or not the new response can be kept.
  if (const auto old = index_.find(key); old != index_.end()) erase(old->second);
  if (age == 0 || bytes > limits_.max_entry_bytes || bytes > limits_.max_bytes || limits_.max_entries == 0) {
    return false;
  }

  lru_.push_front(Entry{std::string(key), r, addSeconds(now, age), secure, bytes, {}, {}});
  const auto it = lru_.begin();
  const std::string_view stored_key(it->key);
  index_.emplace(stored_key, it);
  auto uri = uris_.find(stored_key.substr(0, *prefix));
  if (uri == uris_.end()) {
    uri = uris_.emplace(std::string(stored_key.substr(0, *prefix)), std::list<List::iterator>{}).first;
  }
  uri->second.push_back(it);
  it->uri = uri;
  it->uri_pos = std::prev(uri->second.end());
  bytes_ += bytes;
  ++stats_.stored;

  // The new entry is at the front and fits on its own, so this never evicts it.
  while (lru_.size() > 1 && (bytes_ > limits_.max_bytes || lru_.size() > limits_.max_entries)) {
    erase(std::prev(lru_.end()));
    ++stats_.evicted;
  }
  return true;
}

bool ResponseCache::revalidated(std::string_view key, std::optional<std::uint32_t> max_age, Clock::time_point now) {
  const auto found = index_.find(key);
  if (found == index_.end() || !found->second->response.etag) return false;
  const auto it = found->second;
  it->expires = addSeconds(now, max_age.value_or(kDefaultMaxAge));  // 0: now, i.e. still stale
  lru_.splice(lru_.begin(), lru_, it);
  ++stats_.revalidated;
  return true;
}

std::size_t ResponseCache::invalidate(std::string_view node_id, std::string_view path) {
  const auto uri = uris_.find(uriPrefix(node_id, path));
  if (uri == uris_.end()) return 0;
  const std::size_t n = eraseUri(uri);
  stats_.invalidated += n;
  return n;
}

std::size_t ResponseCache::invalidateNode(std::string_view node_id) {
  // Length-prefixed node id: a URI prefix starting with it belongs to exactly this node, and the
  // ordered map keeps all of them adjacent.
  std::string node_prefix;
  appendField(node_prefix, node_id);
  std::size_t n = 0;
  for (auto uri = uris_.lower_bound(node_prefix); uri != uris_.end() && uri->first.starts_with(node_prefix);) {
    n += eraseUri(uri++);  // advance first: eraseUri drops the group
  }
  stats_.invalidated += n;
  return n;
}

ResponseCache::Stats ResponseCache::stats() const {
  Stats s = stats_;
  s.entries = lru_.size();
  s.bytes = bytes_;
  return s;
}

void ResponseCache::erase(List::iterator it) {
  it->uri->second.erase(it->uri_pos);
  if (it->uri->second.empty()) uris_.erase(it->uri);
  index_.erase(std::string_view(it->key));
  bytes_ -= it->bytes;
  lru_.erase(it);
}

std::size_t ResponseCache::eraseUri(Uris::iterator uri) {
  const std::size_t n = uri->second.size();
  // Each erase unlinks the front; the last one also drops the group, after which `uri` is not used.
  for (std::size_t i = 0; i < n; ++i) erase(uri->second.front());
  return n;
}

}  // namespace coap_edge::relay
