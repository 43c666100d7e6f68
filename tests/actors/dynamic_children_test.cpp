// The one restart mechanism for children made on demand (the agents' and
// the coordinators'): per-child intensity, a child given up while its
// siblings go on, the lockout's end, and requests waiting for a successor.
// Time is passed in; the actors are only there to have handles.

#include "cadre/actors/dynamic_children.hpp"

#include <string>
#include <vector>

#include <caf/event_based_actor.hpp>
#include <gtest/gtest.h>

#include "caf_test_fixture.hpp"
#include "cadre/messages/error.hpp"

namespace {

using namespace std::chrono_literals;
using cadre::actors::child_exit;
using children = cadre::actors::dynamic_children<caf::actor>;
using time_point = children::time_point;

class DynamicChildren : public ::testing::Test,
                        public cadre::test::caf_test_fixture {
protected:
  caf::actor spawn_child() {
    return sys.spawn([](caf::event_based_actor*) -> caf::behavior {
      return {[](int x) { return x; }};
    });
  }

  static caf::down_msg crash(const caf::actor& who) {
    return caf::down_msg{who.address(),
                         cadre::make_error(cadre::errc::internal, "crash")};
  }

  time_point t0 = time_point{} + 1h;
};

TEST_F(DynamicChildren, AChildCrashingPastTheIntensityIsGivenUpAndOthersGoOn) {
  children kids{2, 1000ms};
  auto a = spawn_child();
  auto b = spawn_child();
  kids.started("a", a);
  kids.started("b", b);
  // a crashes three times within the window; restarts 1 and 2 are allowed.
  for (int i = 0; i < 2; ++i) {
    auto down = kids.on_down(crash(kids.get("a")), t0 + i * 10ms);
    ASSERT_TRUE(down);
    EXPECT_EQ(down->id, "a");
    EXPECT_EQ(down->exit, child_exit::restart);
    EXPECT_EQ(down->restarts, static_cast<size_t>(i + 1));
    EXPECT_FALSE(kids.get("a"));
    kids.started("a", spawn_child());
  }
  auto last = kids.on_down(crash(kids.get("a")), t0 + 20ms);
  ASSERT_TRUE(last);
  EXPECT_EQ(last->exit, child_exit::given_up);
  EXPECT_FALSE(kids.allows("a", t0 + 30ms));
  // b is untouched: running, allowed, and its own crash is a plain restart.
  EXPECT_EQ(kids.get("b"), b);
  EXPECT_TRUE(kids.allows("b", t0 + 30ms));
  auto other = kids.on_down(crash(b), t0 + 40ms);
  ASSERT_TRUE(other);
  EXPECT_EQ(other->exit, child_exit::restart);
  EXPECT_EQ(other->restarts, 1u);
}

TEST_F(DynamicChildren, ALockoutEndsWhenTheWindowPasses) {
  children kids{1, 1000ms};
  kids.started("a", spawn_child());
  ASSERT_EQ(kids.on_down(crash(kids.get("a")), t0)->exit, child_exit::restart);
  kids.started("a", spawn_child());
  ASSERT_EQ(kids.on_down(crash(kids.get("a")), t0 + 100ms)->exit,
            child_exit::given_up);
  EXPECT_FALSE(kids.allows("a", t0 + 1000ms));
  // No crash, no message: the passing of the window alone ends it.
  EXPECT_TRUE(kids.allows("a", t0 + 1101ms));
  EXPECT_EQ(kids.restarts("a"), 0u);
  kids.started("a", spawn_child());
  EXPECT_EQ(kids.on_down(crash(kids.get("a")), t0 + 1200ms)->exit,
            child_exit::restart);
}

TEST_F(DynamicChildren, RequestsForADeadChildWaitForItsDownMessage) {
  children kids{3, 1000ms};
  auto first = spawn_child();
  kids.started("a", first);
  std::vector<std::string> ran;
  kids.await_successor("a", first, [&] { ran.push_back("one"); });
  kids.await_successor("a", first, [&] { ran.push_back("two"); });
  EXPECT_TRUE(ran.empty());
  auto down = kids.on_down(crash(first), t0);
  ASSERT_TRUE(down);
  ASSERT_EQ(down->waiting.size(), 2u);
  kids.started("a", spawn_child());
  for (auto& f : down->waiting)
    f();
  EXPECT_EQ(ran, (std::vector<std::string>{"one", "two"}));
  // A request that learns of the death after the successor is up runs again
  // at once instead of waiting for a down message already handled.
  kids.await_successor("a", first, [&] { ran.push_back("late"); });
  EXPECT_EQ(ran.back(), "late");
}

TEST_F(DynamicChildren, ANormalExitForgetsAndStrangersAreIgnored) {
  children kids{1, 1000ms};
  auto a = spawn_child();
  kids.started("a", a);
  auto down = kids.on_down(caf::down_msg{a.address(), caf::exit_reason::normal},
                           t0);
  ASSERT_TRUE(down);
  EXPECT_EQ(down->exit, child_exit::normal);
  EXPECT_FALSE(kids.known("a"));
  EXPECT_FALSE(kids.on_down(crash(spawn_child()), t0));
  EXPECT_FALSE(kids.on_down(crash(a), t0)); // its down was handled already
}

} // namespace
