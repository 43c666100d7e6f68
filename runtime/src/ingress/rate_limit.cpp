#include "cadre/runtime/rate_limit.hpp"

#include <algorithm>
#include <cmath>

namespace cadre::runtime {

rate_limiter::rate_limiter(double per_second, double burst, size_t max_keys)
  : rate_(per_second > 1e-9 ? per_second : 1e-9),
    burst_(burst >= 1.0 ? burst : 1.0),
    max_keys_(max_keys > 0 ? max_keys : 1) {
  // nop
}

double rate_limiter::level(const bucket& b,
                           clock::time_point now) const noexcept {
  // A time before the last one (a caller's clocks taken out of order)
  // counts as no time at all.
  auto elapsed = std::chrono::duration<double>(now - b.last).count();
  return std::min(burst_, b.tokens + std::max(0.0, elapsed) * rate_);
}

void rate_limiter::make_room(clock::time_point now) {
  for (auto i = buckets_.begin(); i != buckets_.end();) {
    if (level(i->second, now) >= burst_) {
      lru_.erase(i->second.lru);
      i = buckets_.erase(i);
    } else {
      ++i;
    }
  }
  if (buckets_.size() >= max_keys_) {
    auto victim = buckets_.find(*lru_.front());
    lru_.pop_front();
    buckets_.erase(victim);
  }
}

std::optional<std::chrono::milliseconds>
rate_limiter::try_acquire(std::string_view key, clock::time_point now) {
  std::lock_guard<std::mutex> guard{mtx_};
  auto i = buckets_.find(std::string{key});
  if (i == buckets_.end()) {
    if (buckets_.size() >= max_keys_)
      make_room(now);
    i = buckets_.emplace(std::string{key}, bucket{burst_, now, {}}).first;
    i->second.lru = lru_.insert(lru_.end(), &i->first);
  } else {
    auto& b = i->second;
    b.tokens = level(b, now);
    b.last = std::max(b.last, now);
    // A refused request counts as use too: forgetting a key that keeps
    // knocking would hand it a full bucket.
    lru_.splice(lru_.end(), lru_, b.lru);
  }
  auto& b = i->second;
  if (b.tokens >= 1.0) {
    b.tokens -= 1.0;
    return std::nullopt;
  }
  // Less the nanosecond a double may add, so an exact 300 ms stays 300.
  auto ms = std::ceil((1.0 - b.tokens) / rate_ * 1000.0 - 1e-6);
  return std::chrono::milliseconds{std::max<int64_t>(
    1, static_cast<int64_t>(ms))};
}

size_t rate_limiter::size() const {
  std::lock_guard<std::mutex> guard{mtx_};
  return buckets_.size();
}

} // namespace cadre::runtime
