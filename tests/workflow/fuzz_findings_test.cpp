// Inputs the fuzzers found wrong (docs/testing.md); each also lies in
// fuzz/corpus/, replayed by FuzzCorpusTest.

#include <string>

#include <gtest/gtest.h>

#include "cadre/messages/error.hpp"
#include "cadre/workflow/machine.hpp"

using namespace cadre::workflow;

namespace {

cadre::json huge_index_workflow() {
  return cadre::json{
    {"name", "w"},
    {"tasks",
     {{{"id", "a"},
       {"tool", "echo"},
       {"when", "input.list[99999999999999999999]"}},
      {{"id", "b"},
       {"tool", "echo"},
       {"input", {{"text", "{{ input.list[99999999999999999999] }}"}}}}}}};
}

} // namespace

// An index past int64 in a path such as input.list[N] threw
// std::out_of_range out of the machine (and ended the node); it is no
// element, as in Lua.
TEST(FuzzFindings, APathIndexPastInt64IsNoElement) {
  machine m{"e1"};
  auto s = m.submit(huge_index_workflow(),
                    cadre::json{{"list", {1, 2, 3}}}, "", 1);
  ASSERT_TRUE(s) << cadre::describe(s.error());
  EXPECT_EQ(m.unit_state("a"), "skipped");
  ASSERT_EQ(s->actions.size(), 1u);
  EXPECT_EQ(s->actions[0].key, "b");
  EXPECT_EQ(s->actions[0].input, (cadre::json{{"text", nullptr}}));
}

// A key that is not "task" or "task[N]" (a peer's answer names it) is no
// map item, rather than an exception.
TEST(FuzzFindings, SplitKeyOfAMalformedItemIsNoItem) {
  EXPECT_EQ(split_key("a[3]"), std::make_pair(std::string{"a"}, 3));
  EXPECT_EQ(split_key("a"), std::make_pair(std::string{"a"}, -1));
  for (std::string key : {"a[]", "a[x]", "a[99999999999999999999]", "a[-1]",
                          "[]", "a[1 ]"})
    EXPECT_EQ(split_key(key).second, -1) << key;
}
