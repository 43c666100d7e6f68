// The one timer an actor keeps for several deadlines (actors/src/
// one_timer.hpp): a timer is sent only for a deadline sooner than the one
// armed, and only the last timer sent counts when it fires.

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
