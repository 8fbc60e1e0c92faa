#include "coap/recent_responses.h"

#include <algorithm>

namespace coap_edge::coap {
namespace {

// Heap bytes of a string beyond the object itself (small strings live inside it).
std::size_t heapOf(const std::string& s) {
  return s.capacity() > std::string().capacity() ? s.capacity() + 1 : 0;
}

}  // namespace

const std::size_t RecentResponses::kStringBudget = RecentResponses::kMaxBytes - kMaxEntries * sizeof(Entry);

bool RecentResponsesBudget::take(std::size_t n) noexcept {
  if (used_ > limit_ || n > limit_ - used_) {
    ++refused_;
    return false;
  }
  used_ += n;
  return true;
}

void RecentResponsesBudget::give(std::size_t n) noexcept { used_ -= std::min(n, used_); }

RecentResponses::~RecentResponses() { clear(); }

RecentResponses::RecentResponses(RecentResponses&& other) noexcept
    : entries_(std::move(other.entries_)), heap_(other.heap_), budget_(other.budget_) {
  std::vector<Entry>().swap(other.entries_);
  other.heap_ = 0;
}

RecentResponses& RecentResponses::operator=(RecentResponses&& other) noexcept {
  if (this != &other) {
    clear();
    entries_ = std::move(other.entries_);
    heap_ = other.heap_;
    budget_ = other.budget_;
    std::vector<Entry>().swap(other.entries_);
    other.heap_ = 0;
  }
  return *this;
}

void RecentResponses::setBudget(RecentResponsesBudget* budget) noexcept {
  if (entries_.capacity() == 0) budget_ = budget;
}

void RecentResponses::eraseAt(std::size_t index) {
  static_assert(kMaxEntries * sizeof(Entry) < kMaxBytes / 2, "the slots leave room for the answers");
  const std::size_t before = bytes();
  heap_ -= entries_[index].heap;
  entries_.erase(entries_.begin() + static_cast<std::ptrdiff_t>(index));
  if (entries_.empty()) {
    // Give the vector's buffer back: an idle session keeps nothing.
    std::vector<Entry>().swap(entries_);
    heap_ = 0;
  }
  if (budget_ != nullptr) budget_->give(before - bytes());
}

void RecentResponses::expire(Clock::time_point now) {
  for (std::size_t i = 0; i < entries_.size();) {
    const auto lifetime = entries_[i].confirmable ? kExchangeLifetime : kNonLifetime;
    if (now - entries_[i].at >= lifetime) {
      eraseAt(i);
    } else {
      ++i;
    }
  }
}

const Response* RecentResponses::find(std::uint16_t mid, bool confirmable, std::string_view token,
                                      Clock::time_point now) {
  if (entries_.empty()) return nullptr;
  expire(now);
  for (const Entry& e : entries_) {
    if (e.mid == mid && e.confirmable == confirmable && e.token == token) return &e.response;
  }
  return nullptr;
}

bool RecentResponses::remember(std::uint16_t mid, bool confirmable, std::string_view token, const Response& answer,
                               Clock::time_point now) {
  for (std::size_t i = 0; i < entries_.size(); ++i) {
    if (entries_[i].mid == mid && entries_[i].confirmable == confirmable) {
      eraseAt(i);
      break;
    }
  }
  expire(now);
  if (answer.payload.size() + token.size() > kStringBudget) return false;  // not worth the copy
  Entry e{now, mid, confirmable, std::string(token), answer, 0};
  e.response.payload.shrink_to_fit();
  e.heap = heapOf(e.token) + heapOf(e.response.payload) + heapOf(e.response.location_path) +
           (e.response.etag ? heapOf(*e.response.etag) : 0);
  if (e.heap > kStringBudget) return false;
  while (!entries_.empty() && (entries_.size() >= kMaxEntries || heap_ + e.heap > kStringBudget)) eraseAt(0);
  // The vector grows 1, 2, 4 and never past kMaxEntries (evicted before): bytes() <= kMaxBytes.
  // The growth is made here, not by push_back, so that it is known before it is charged.
  std::size_t slots = entries_.capacity();
  if (entries_.size() == slots) slots = std::min(kMaxEntries, std::max<std::size_t>(1, 2 * slots));
  const std::size_t before = bytes();
  const std::size_t after = slots * sizeof(Entry) + heap_ + e.heap;
  if (budget_ != nullptr && after > before && !budget_->take(after - before)) return false;
  try {
    entries_.reserve(slots);
  } catch (...) {
    if (budget_ != nullptr && after > before) budget_->give(after - before);
    throw;
  }
  heap_ += e.heap;
  entries_.push_back(std::move(e));
  return true;
}

void RecentResponses::clear() noexcept {
  if (budget_ != nullptr) budget_->give(bytes());
  std::vector<Entry>().swap(entries_);
  heap_ = 0;
}

std::size_t RecentResponses::bytes() const noexcept { return entries_.capacity() * sizeof(Entry) + heap_; }

}  // namespace coap_edge::coap
