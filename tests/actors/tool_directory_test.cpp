// Placement: this node's pool first, else the least-loaded capable member
// that is up and was not lost for this call.

#include <map>
#include <string>

#include <gtest/gtest.h>

#include <caf/typed_event_based_actor.hpp>

#include "cadre/actors/tool_directory.hpp"
#include "caf_test_fixture.hpp"

using namespace cadre;
using actors::tool_directory;

namespace {

tool_pool_actor::behavior_type idle_pool() {
  return {
    [](run_atom, task_request&) -> task_result { return {}; },
    [](describe_atom) { return json_value{json::object()}; },
  };
}

class ToolDirectory : public ::testing::Test,
                      public test::caf_test_fixture {
protected:
  tool_pool_actor pool() {
    return sys.spawn(idle_pool);
  }
};

} // namespace

TEST_F(ToolDirectory, ALocalPoolIsChosenBeforeAnyRemoteOne) {
  auto local = pool();
  tool_directory dir{{{"echo", local}}};
  dir.offer("b", {{"echo", pool(), 4, 0}});
  auto r = dir.pick("echo");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->pool, local);
  EXPECT_TRUE(r->node.empty());
}

TEST_F(ToolDirectory, TheLeastLoadedMemberPerWorkerIsChosen) {
  tool_directory dir;
  auto busy = pool();
  auto light = pool();
  // 3 calls on 4 workers is lighter than 1 call on 1 worker.
  dir.offer("b", {{"ocr", busy, 1, 1}});
  dir.offer("c", {{"ocr", light, 4, 3}});
  auto r = dir.pick("ocr");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->node, "c");
  EXPECT_EQ(r->pool, light);
  EXPECT_TRUE(dir.has("ocr"));
  EXPECT_FALSE(dir.has("sql"));
  EXPECT_FALSE(dir.pick("sql"));
}

TEST_F(ToolDirectory, SuspectLostAndWithdrawnMembersAreNotChosen) {
  tool_directory dir;
  dir.offer("b", {{"ocr", pool(), 1, 0}});
  dir.offer("c", {{"ocr", pool(), 1, 5}});
  EXPECT_EQ(dir.pick("ocr")->node, "b");
  // Lost for this call: the next best.
  EXPECT_EQ(dir.pick("ocr", {"b"})->node, "c");
  EXPECT_FALSE(dir.pick("ocr", {"b", "c"}));
  dir.set_placeable("b", false);
  EXPECT_EQ(dir.pick("ocr")->node, "c");
  dir.set_placeable("b", true);
  EXPECT_EQ(dir.pick("ocr")->node, "b");
  dir.withdraw("b");
  dir.withdraw("c");
  EXPECT_FALSE(dir.pick("ocr"));
  EXPECT_FALSE(dir.has("ocr"));
  EXPECT_TRUE(dir.names().empty());
}

TEST_F(ToolDirectory, CallsPlacedBetweenHeartbeatsSpreadOverEqualMembers) {
  tool_directory dir;
  dir.offer("b", {{"echo", pool(), 2, 0}});
  dir.offer("c", {{"echo", pool(), 2, 0}});
  std::map<std::string, int> placed;
  for (int i = 0; i < 8; ++i)
    ++placed[dir.pick("echo")->node];
  EXPECT_EQ(placed["b"], 4);
  EXPECT_EQ(placed["c"], 4);
  // A heartbeat's report replaces the count.
  dir.offer("b", {{"echo", pool(), 2, 0}});
  EXPECT_EQ(dir.pick("echo")->node, "b");
}
