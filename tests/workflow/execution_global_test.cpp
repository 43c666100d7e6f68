// Templates and conditions see `execution.id`, the execution's own id (so a
// message can say how to answer it), the same when the log is folded again.

#include <gtest/gtest.h>

#include "cadre/workflow/machine.hpp"
#include "cadre/workflow/replay.hpp"

using namespace cadre;
using namespace cadre::workflow;

TEST(ExecutionGlobal, TemplatesSeeTheExecutionsId) {
  json doc{{"name", "w"},
           {"tasks",
            {{{"id", "tell"},
              {"tool", "echo"},
              {"when", "execution.id ~= nil"},
              {"input",
               {{"id", "{{ execution.id }}"},
                {"text", "answer: cadre input {{ execution.id }} ask yes"},
                {"lua", "{{ string.upper(execution.id) }}"}}}}}}};
  machine m{"e7.node-a"};
  auto s = m.submit(doc, json::object(), "", 1);
  ASSERT_TRUE(s) << describe(s.error());
  ASSERT_EQ(s->actions.size(), 1u);
  EXPECT_EQ(s->actions[0].input,
            (json{{"id", "e7.node-a"},
                  {"text", "answer: cadre input e7.node-a ask yes"},
                  {"lua", "E7.NODE-A"}}));
  auto check = check_against(s->events);
  ASSERT_TRUE(check) << describe(check.error());
  EXPECT_TRUE(check->compatible());
}
