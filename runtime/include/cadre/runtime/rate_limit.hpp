#pragma once

// Per-caller request budgets for `cadre serve`: one token bucket per key
// (a token's name, or the client address when unauthenticated), answering
// 429 with Retry-After when a bucket is empty.

#include <chrono>
#include <cstddef>
#include <list>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>

namespace cadre::runtime {

/// Token buckets by key, in bounded memory. Thread-safe: every call takes
/// one mutex for a hash lookup and a few arithmetic operations. Time comes
/// from the caller, so tests need no clock.
class rate_limiter {
public:
  using clock = std::chrono::steady_clock;

  /// Each key may make `burst` requests at once and `per_second` on
  /// average; at most `max_keys` keys are remembered.
  /// REQUIRES: per_second > 0, burst >= 1, max_keys >= 1 (smaller values
  /// are raised to these bounds).
  rate_limiter(double per_second, double burst, size_t max_keys = 10000);

  rate_limiter(const rate_limiter&) = delete;
  rate_limiter& operator=(const rate_limiter&) = delete;

  /// Takes one token from the bucket of `key` at `now`: nullopt when the
  /// request may go ahead, else how long until a token is available (at
  /// least 1 ms; the caller rounds up to whole seconds for Retry-After).
  /// A new key starts with a full bucket. When `max_keys` are remembered,
  /// a new key first drops every key whose bucket has refilled (forgetting
  /// those loses nothing: a new bucket starts full), and only when there is
  /// none the least recently used key. That sweep costs O(max_keys), at
  /// most once per new key and only while the table is full.
  std::optional<std::chrono::milliseconds> try_acquire(std::string_view key,
                                                       clock::time_point now);

  /// How many keys are remembered.
  size_t size() const;

private:
  struct bucket {
    double tokens;
    clock::time_point last;
    std::list<const std::string*>::iterator lru;
  };

  // The tokens in `b` at `now`, capped at the burst.
  double level(const bucket& b, clock::time_point now) const noexcept;

  // REQUIRES: mtx_ held, buckets_ not empty.
  void make_room(clock::time_point now);

  const double rate_;
  const double burst_;
  const size_t max_keys_;
  mutable std::mutex mtx_;
  std::unordered_map<std::string, bucket> buckets_;
  // Keys of buckets_ (whose nodes never move), least recently used first.
  std::list<const std::string*> lru_;
};

} // namespace cadre::runtime
