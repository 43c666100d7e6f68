#include "cadre/cluster/membership.hpp"

#include <gtest/gtest.h>

using namespace cadre::cluster;

namespace {

constexpr int64_t ms = 1000;

membership make() {
  membership_options opts;
  opts.suspect_after_ms = 2000;
  opts.down_after_ms = 5000;
  opts.forget_after_ms = 60000;
  return membership{"a", 1, "127.0.0.1:7001", opts};
}

} // namespace

TEST(Membership, AJoiningNodeIsUpAndSilenceMakesItSuspectThenDown) {
  auto m = make();
  std::vector<transition> out;
  ASSERT_TRUE(m.heard("b", 10, "127.0.0.1:7002", 0, out));
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(out[0].to, member_state::up);
  EXPECT_EQ(out[0].reason, "joined");
  out.clear();
  m.tick(1999 * ms, out);
  EXPECT_TRUE(out.empty());
  EXPECT_TRUE(m.placeable("b"));
  m.tick(2000 * ms, out);
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(out[0].from, member_state::up);
  EXPECT_EQ(out[0].to, member_state::suspect);
  EXPECT_EQ(out[0].reason, "silent");
  EXPECT_FALSE(m.placeable("b"));
  out.clear();
  m.tick(5000 * ms, out);
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(out[0].to, member_state::down);
  EXPECT_EQ(m.find("b")->state, member_state::down);
}

TEST(Membership, AHeartbeatBringsASuspectOrDownMemberBack) {
  auto m = make();
  std::vector<transition> out;
  m.heard("b", 10, "x:1", 0, out);
  m.tick(6000 * ms, out);
  EXPECT_EQ(m.find("b")->state, member_state::down);
  out.clear();
  // A frozen process that resumes (SIGCONT) keeps its incarnation.
  ASSERT_TRUE(m.heard("b", 10, "x:1", 7000 * ms, out));
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(out[0].from, member_state::down);
  EXPECT_EQ(out[0].to, member_state::up);
  EXPECT_EQ(out[0].reason, "rejoined");
}

TEST(Membership, ALostLinkMakesAnUpMemberSuspectAtOnce) {
  auto m = make();
  std::vector<transition> out;
  m.heard("b", 10, "x:1", 0, out);
  out.clear();
  m.link_lost("b", 9, 100 * ms, out);
  EXPECT_TRUE(out.empty()) << "another incarnation's link";
  m.link_lost("b", 10, 100 * ms, out);
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(out[0].to, member_state::suspect);
  EXPECT_EQ(out[0].reason, "link_lost");
  out.clear();
  // Down counts from when it was last heard, not from the lost link.
  m.tick(5000 * ms, out);
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(out[0].to, member_state::down);
}

TEST(Membership, ARestartedNodeIsANewMemberAndItsOldSelfGoesDownFirst) {
  auto m = make();
  std::vector<transition> out;
  m.heard("b", 10, "x:1", 0, out);
  out.clear();
  ASSERT_TRUE(m.heard("b", 20, "x:1", 100 * ms, out));
  ASSERT_EQ(out.size(), 2u);
  EXPECT_EQ(out[0].incarnation, 10u);
  EXPECT_EQ(out[0].to, member_state::down);
  EXPECT_EQ(out[0].reason, "restarted");
  EXPECT_EQ(out[1].incarnation, 20u);
  EXPECT_EQ(out[1].to, member_state::up);
  out.clear();
  // The old incarnation's late words change nothing.
  EXPECT_FALSE(m.heard("b", 10, "x:1", 200 * ms, out));
  EXPECT_TRUE(out.empty());
  EXPECT_EQ(m.find("b")->incarnation, 20u);
}

TEST(Membership, ALeavingMemberIsLeftAndForgottenLater) {
  auto m = make();
  std::vector<transition> out;
  m.heard("b", 10, "x:1", 0, out);
  out.clear();
  m.left("b", 10, 100 * ms, out);
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(out[0].to, member_state::left);
  EXPECT_FALSE(m.placeable("b"));
  out.clear();
  // A heartbeat already on its way does not bring it back.
  EXPECT_FALSE(m.heard("b", 10, "x:1", 150 * ms, out));
  EXPECT_EQ(m.find("b")->state, member_state::left);
  m.tick(100 * ms + 60000 * ms, out);
  EXPECT_EQ(m.find("b"), nullptr);
}

TEST(Membership, ItselfIsAlwaysUpAndNeverHeard) {
  auto m = make();
  std::vector<transition> out;
  EXPECT_FALSE(m.heard("a", 99, "y:2", 0, out));
  m.tick(1000000 * ms, out);
  EXPECT_TRUE(out.empty());
  ASSERT_NE(m.find("a"), nullptr);
  EXPECT_TRUE(m.find("a")->self);
  EXPECT_EQ(m.find("a")->state, member_state::up);
  EXPECT_TRUE(m.placeable("a"));
}

TEST(Membership, ALearnedMemberIsJoiningUntilItSpeaks) {
  auto m = make();
  std::vector<transition> out;
  m.learned("c", "x:3", 0);
  ASSERT_NE(m.find("c"), nullptr);
  EXPECT_EQ(m.find("c")->state, member_state::joining);
  EXPECT_FALSE(m.placeable("c"));
  ASSERT_TRUE(m.heard("c", 5, "x:3", 10 * ms, out));
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(out[0].from, member_state::joining);
  EXPECT_EQ(out[0].to, member_state::up);
}
