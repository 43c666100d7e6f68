// A task attempt lost with its node is sent again unchanged: recorded as
// task_redispatched, folded and replayed like any other stimulus.

#include <gtest/gtest.h>

#include "cadre/workflow/machine.hpp"
#include "cadre/workflow/replay.hpp"

using namespace cadre;
using namespace cadre::workflow;

namespace {

json two_steps() {
  return json{{"name", "two"},
              {"tasks",
               {{{"id", "a"}, {"tool", "echo"}, {"input", {{"x", 1}}}},
                {{"id", "b"},
                 {"tool", "echo"},
                 {"depends_on", "a"},
                 {"input", {{"y", "{{ tasks.a.output.x }}"}}}}}}};
}

void append(std::vector<event>& log, const step& s) {
  log.insert(log.end(), s.events.begin(), s.events.end());
}

} // namespace

TEST(Redispatch, TheLostAttemptIsSentAgainWithItsInputAndAttempt) {
  machine m{"e1"};
  std::vector<event> log;
  auto s = m.submit(two_steps(), json::object(), "", 1000);
  ASSERT_TRUE(s);
  append(log, *s);
  ASSERT_EQ(s->actions.size(), 1u);
  auto first = s->actions[0];
  ASSERT_EQ(first.kind, action::dispatch);
  auto r = m.redispatch("a", 1, "node_lost", "b", 2000);
  ASSERT_EQ(r.events.size(), 1u);
  EXPECT_EQ(r.events[0].type, events::redispatched);
  const auto& p = r.events[0].payload.get();
  EXPECT_EQ(p["task"], "a");
  EXPECT_EQ(p["attempt"], 1);
  EXPECT_EQ(p["cause"], "node_lost");
  EXPECT_EQ(p["node"], "b");
  ASSERT_EQ(r.actions.size(), 1u);
  EXPECT_EQ(r.actions[0].kind, action::dispatch);
  EXPECT_EQ(r.actions[0].attempt, 1u);
  EXPECT_EQ(r.actions[0].tool, "echo");
  EXPECT_EQ(r.actions[0].input, first.input);
  append(log, r);
  EXPECT_EQ(m.unit_state("a"), "running");
  // Another attempt, or a task not running, is not re-sent.
  EXPECT_TRUE(m.redispatch("a", 2, "node_lost", "b", 2100).events.empty());
  EXPECT_TRUE(m.redispatch("b", 1, "node_lost", "b", 2100).events.empty());
  auto done = m.succeeded("a", 1, json{{"x", 1}}, 10, 3000);
  append(log, done);
  // One completion, and the attempt did not count as a failure.
  auto tasks = m.view()["tasks"];
  ASSERT_TRUE(tasks.is_array());
  for (auto& t : tasks)
    if (t.value("id", "") == "a") {
      EXPECT_EQ(t.value("attempt", 0), 1) << t.dump();
    }
  EXPECT_TRUE(m.redispatch("a", 1, "node_lost", "b", 3100).events.empty());
  auto last = m.succeeded("b", 1, json{{"y", 1}}, 10, 4000);
  append(log, last);
  ASSERT_TRUE(m.finished());
  // The log folds to the same state and replays without a divergence.
  auto folded = fold_log(log);
  ASSERT_TRUE(folded) << describe(folded.error());
  EXPECT_EQ(folded->view(), m.view());
  auto doc = two_steps();
  auto check = check_against(log, &doc);
  ASSERT_TRUE(check) << describe(check.error());
  EXPECT_TRUE(check->compatible())
    << check->first->reason << " at " << check->first->seq;
}
