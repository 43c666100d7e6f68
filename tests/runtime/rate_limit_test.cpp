// The token buckets behind 429 answers: burst, refill, Retry-After values and
// the bound on remembered keys, all at instants the test chooses.

#include <atomic>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "cadre/runtime/rate_limit.hpp"

using namespace cadre::runtime;
using namespace std::chrono_literals;
using std::chrono::milliseconds;

namespace {

const auto t0 = rate_limiter::clock::time_point{} + 1000s;

} // namespace

TEST(RateLimit, BurstThenRefusal) {
  rate_limiter limiter{1.0, 3.0};
  for (int i = 0; i < 3; ++i)
    EXPECT_EQ(limiter.try_acquire("ci", t0), std::nullopt) << i;
  EXPECT_EQ(limiter.try_acquire("ci", t0), milliseconds{1000});
}

TEST(RateLimit, RefillsAtTheRate) {
  rate_limiter limiter{2.0, 1.0};
  EXPECT_EQ(limiter.try_acquire("ci", t0), std::nullopt);
  EXPECT_EQ(limiter.try_acquire("ci", t0), milliseconds{500});
  EXPECT_EQ(limiter.try_acquire("ci", t0 + 200ms), milliseconds{300});
  EXPECT_EQ(limiter.try_acquire("ci", t0 + 499ms), milliseconds{1});
  EXPECT_EQ(limiter.try_acquire("ci", t0 + 500ms), std::nullopt);
  EXPECT_EQ(limiter.try_acquire("ci", t0 + 500ms), milliseconds{500});
}

TEST(RateLimit, RefillStopsAtTheBurst) {
  rate_limiter limiter{10.0, 2.0};
  EXPECT_EQ(limiter.try_acquire("ci", t0), std::nullopt);
  EXPECT_EQ(limiter.try_acquire("ci", t0), std::nullopt);
  auto later = t0 + 1h;
  EXPECT_EQ(limiter.try_acquire("ci", later), std::nullopt);
  EXPECT_EQ(limiter.try_acquire("ci", later), std::nullopt);
  EXPECT_EQ(limiter.try_acquire("ci", later), milliseconds{100});
}

TEST(RateLimit, RetryAfterRoundsUpToTheMillisecond) {
  rate_limiter thirds{3.0, 1.0};
  EXPECT_EQ(thirds.try_acquire("ci", t0), std::nullopt);
  EXPECT_EQ(thirds.try_acquire("ci", t0), milliseconds{334});
  // One request a minute: the wait is a minute, not an overflow.
  rate_limiter slow{1.0 / 60, 1.0};
  EXPECT_EQ(slow.try_acquire("ci", t0), std::nullopt);
  EXPECT_EQ(slow.try_acquire("ci", t0), milliseconds{60000});
  EXPECT_EQ(slow.try_acquire("ci", t0 + 59999ms), milliseconds{1});
}

TEST(RateLimit, RefusedRequestsSpendNothing) {
  rate_limiter limiter{1.0, 1.0};
  EXPECT_EQ(limiter.try_acquire("ci", t0), std::nullopt);
  for (int i = 0; i < 10; ++i)
    EXPECT_EQ(limiter.try_acquire("ci", t0 + 500ms), milliseconds{500});
  EXPECT_EQ(limiter.try_acquire("ci", t0 + 1s), std::nullopt);
}

TEST(RateLimit, KeysHaveTheirOwnBuckets) {
  rate_limiter limiter{1.0, 1.0};
  EXPECT_EQ(limiter.try_acquire("ci", t0), std::nullopt);
  EXPECT_NE(limiter.try_acquire("ci", t0), std::nullopt);
  EXPECT_EQ(limiter.try_acquire("10.0.0.7", t0), std::nullopt);
  EXPECT_EQ(limiter.size(), 2u);
}

TEST(RateLimit, AnEarlierInstantAddsNoTokens) {
  rate_limiter limiter{1.0, 1.0};
  EXPECT_EQ(limiter.try_acquire("ci", t0), std::nullopt);
  EXPECT_EQ(limiter.try_acquire("ci", t0 - 10s), milliseconds{1000});
  EXPECT_EQ(limiter.try_acquire("ci", t0 + 1s), std::nullopt);
}

TEST(RateLimit, BadSettingsAreRaisedToTheBounds) {
  rate_limiter limiter{0.0, 0.0, 0};
  EXPECT_EQ(limiter.try_acquire("ci", t0), std::nullopt);
  auto wait = limiter.try_acquire("ci", t0);
  ASSERT_TRUE(wait);
  EXPECT_GT(*wait, 1h);
  EXPECT_EQ(limiter.try_acquire("other", t0), std::nullopt);
  EXPECT_EQ(limiter.size(), 1u);
}

TEST(RateLimit, EvictsRefilledKeysFirst) {
  rate_limiter limiter{1.0, 2.0, 3};
  for (auto key : {"a", "b", "c"})
    EXPECT_EQ(limiter.try_acquire(key, t0), std::nullopt);
  // b spends again, so at t0 + 1 s only a and c are full.
  EXPECT_EQ(limiter.try_acquire("b", t0 + 500ms), std::nullopt);
  EXPECT_EQ(limiter.try_acquire("d", t0 + 1s), std::nullopt);
  EXPECT_EQ(limiter.size(), 2u);
  // b was kept with its one token left.
  EXPECT_EQ(limiter.try_acquire("b", t0 + 1s), std::nullopt);
  EXPECT_EQ(limiter.try_acquire("b", t0 + 1s), milliseconds{1000});
}

TEST(RateLimit, EvictsTheLeastRecentlyUsedWhenNoneHasRefilled) {
  rate_limiter limiter{1.0, 1.0, 3};
  EXPECT_EQ(limiter.try_acquire("a", t0), std::nullopt);
  EXPECT_EQ(limiter.try_acquire("b", t0 + 100ms), std::nullopt);
  EXPECT_EQ(limiter.try_acquire("c", t0 + 200ms), std::nullopt);
  // A refused request is a use: a stays, b is now the oldest.
  EXPECT_EQ(limiter.try_acquire("a", t0 + 300ms), milliseconds{700});
  EXPECT_EQ(limiter.try_acquire("d", t0 + 400ms), std::nullopt);
  EXPECT_EQ(limiter.size(), 3u);
  EXPECT_EQ(limiter.try_acquire("a", t0 + 400ms), milliseconds{600});
  EXPECT_EQ(limiter.try_acquire("c", t0 + 400ms), milliseconds{800});
  // Remembered, b would wait 700 ms; forgotten, it starts full.
  EXPECT_EQ(limiter.try_acquire("b", t0 + 400ms), std::nullopt);
  EXPECT_EQ(limiter.size(), 3u);
}

TEST(RateLimit, RemembersAtMostMaxKeys) {
  rate_limiter limiter{1.0, 5.0, 100};
  for (int i = 0; i < 10000; ++i) {
    // Every key spends a token, so none is idle: each new one evicts.
    EXPECT_EQ(limiter.try_acquire("10.0." + std::to_string(i), t0),
              std::nullopt);
    ASSERT_LE(limiter.size(), 100u) << i;
  }
  EXPECT_EQ(limiter.size(), 100u);
  // Once they have refilled, one new key sweeps them all out.
  EXPECT_EQ(limiter.try_acquire("late", t0 + 1h), std::nullopt);
  EXPECT_EQ(limiter.size(), 1u);
}

TEST(RateLimit, ConcurrentCallersShareOneBudget) {
  rate_limiter limiter{1e-6, 100.0};
  std::atomic<int> allowed{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t)
    threads.emplace_back([&] {
      for (int i = 0; i < 1000; ++i)
        if (!limiter.try_acquire("shared", t0))
          ++allowed;
    });
  for (auto& th : threads)
    th.join();
  EXPECT_EQ(allowed.load(), 100);
}
