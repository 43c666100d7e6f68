// The one timer an actor keeps for several deadlines (actors/src/
// one_timer.hpp): a timer is sent only for a deadline sooner than the one
// armed, and only the last timer sent counts when it fires.

#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "one_timer.hpp"

using cadre::actors::one_timer;

TEST(OneTimer, SendsATimerOnlyForASoonerDeadline) {
  one_timer<int> t;
  auto first = t.arm(100);
  ASSERT_TRUE(first);
  EXPECT_FALSE(t.arm(100));
  EXPECT_FALSE(t.arm(160));
  auto sooner = t.arm(40);
  ASSERT_TRUE(sooner);
  EXPECT_NE(*first, *sooner);
}

TEST(OneTimer, OnlyTheLastTimerSentCountsAndOnce) {
  one_timer<int> t;
  auto first = t.arm(100);
  auto sooner = t.arm(40);
  ASSERT_TRUE(first && sooner);
  EXPECT_FALSE(t.fired(*first));
  EXPECT_TRUE(t.fired(*sooner));
  EXPECT_FALSE(t.fired(*sooner));
  // Fired: nothing is armed, so a later deadline gets a timer again.
  auto again = t.arm(160);
  ASSERT_TRUE(again);
  EXPECT_TRUE(t.fired(*again));
}

using cadre::actors::in_flight;

TEST(OneTimer, InFlightRequestsExpireOldestFirstAndLateAnswersAreNone) {
  in_flight<int, std::string> f;
  EXPECT_FALSE(f.arm(50));
  auto a = f.add(10, "a");
  auto b = f.add(20, "b");
  auto c = f.add(30, "c");
  // One timer, for the oldest: due at 10 + 50.
  auto first = f.arm(50);
  ASSERT_TRUE(first);
  EXPECT_EQ(first->second, 60);
  EXPECT_FALSE(f.arm(50));
  // a is answered; its timer fires and finds b not yet due; the next timer
  // is for b.
  EXPECT_EQ(f.answered(a), "a");
  EXPECT_TRUE(f.fired(first->first, 60, 50).empty());
  auto second = f.arm(50);
  ASSERT_TRUE(second);
  EXPECT_EQ(second->second, 70);
  // At 70, b expired; c, due at 80, is still in flight.
  EXPECT_EQ(f.fired(second->first, 70, 50), std::vector<std::string>{"b"});
  // b's answer comes after it expired: ignored.
  EXPECT_FALSE(f.answered(b));
  auto third = f.arm(50);
  ASSERT_TRUE(third);
  EXPECT_EQ(third->second, 80);
  EXPECT_EQ(f.answered(c), "c");
  // Nothing in flight when the timer fires: nothing expires, none is armed.
  EXPECT_TRUE(f.fired(third->first, 80, 50).empty());
  EXPECT_FALSE(f.arm(50));
}

TEST(OneTimer, InFlightIgnoresATimerReplacedByASoonerOne) {
  in_flight<int, std::string> f;
  f.add(10, "a");
  auto late = f.arm(100);
  auto sooner = f.arm(20);
  ASSERT_TRUE(late && sooner);
  EXPECT_TRUE(f.fired(late->first, 110, 100).empty());
  EXPECT_EQ(f.fired(sooner->first, 30, 20), std::vector<std::string>{"a"});
}
