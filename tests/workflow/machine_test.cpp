// workflow::machine's decisions asserted directly, without a coordinator:
// what it dispatches and in which order, when it retries and after what
// delay, what a timeout, a false condition or a final failure does, and
// when the execution completes. Each stimulus is a call; each decision is
// an event or an action in the step it returns.

#include <gtest/gtest.h>

#include <functional>
#include <set>

#include "cadre/workflow/machine.hpp"
#include "cadre/workflow/replay.hpp"

using namespace cadre;
using namespace cadre::workflow;

namespace {

json tool_task(const std::string& id, json more = json::object()) {
  json t{{"id", id}, {"tool", "echo"}, {"input", {{"from", id}}}};
  for (auto& [k, v] : more.items())
    t[k] = v;
  return t;
}

json doc_of(json tasks, json more = json::object()) {
  json d{{"name", "m"}, {"tasks", std::move(tasks)}};
  for (auto& [k, v] : more.items())
    d[k] = v;
  return d;
}

std::vector<std::string> types(const step& s) {
  std::vector<std::string> out;
  for (const auto& ev : s.events)
    out.push_back(ev.type);
  return out;
}

std::set<std::string> dispatched(const step& s) {
  std::set<std::string> out;
  for (const auto& a : s.actions)
    if (a.kind == action::dispatch)
      out.insert(a.key);
  return out;
}

const event* find_event(const step& s, const char* type) {
  for (const auto& ev : s.events)
    if (ev.type == type)
      return &ev;
  return nullptr;
}

step submit(machine& m, const json& doc, const json& input = json::object()) {
  auto s = m.submit(doc, input, "", 1000);
  EXPECT_TRUE(s) << (s ? "" : describe(s.error()));
  return s ? std::move(*s) : step{};
}

caf::error failure(errc code) {
  return make_error(code, "it broke");
}

} // namespace

TEST(Machine, DispatchesInDependencyOrder) {
  // a and b are roots; c needs both; d needs c.
  machine m{"e"};
  auto s = submit(m, doc_of({tool_task("a"), tool_task("b"),
                             tool_task("c", {{"depends_on", {"a", "b"}}}),
                             tool_task("d", {{"depends_on", "c"}})}));
  EXPECT_EQ(dispatched(s), (std::set<std::string>{"a", "b"}));
  EXPECT_EQ(m.unit_state("c"), "blocked");
  EXPECT_EQ(m.unit_state("d"), "blocked");
  // One dependency of c done: nothing new runs.
  auto sa = m.succeeded("a", 1, json{{"x", 1}}, 10, 2000);
  EXPECT_TRUE(sa.actions.empty());
  EXPECT_EQ(types(sa), std::vector<std::string>{events::completed});
  EXPECT_EQ(m.unit_state("c"), "blocked");
  // The other: c runs, d still waits.
  auto sb = m.succeeded("b", 1, json{{"x", 2}}, 10, 3000);
  EXPECT_EQ(dispatched(sb), std::set<std::string>{"c"});
  ASSERT_EQ(sb.actions.size(), 1u);
  EXPECT_EQ(sb.actions[0].attempt, 1u);
  EXPECT_EQ(sb.actions[0].tool, "echo");
  EXPECT_EQ(sb.actions[0].input, (json{{"from", "c"}}));
  EXPECT_FALSE(sb.index); // still running
  auto sc = m.succeeded("c", 1, json{{"x", 3}}, 10, 4000);
  EXPECT_EQ(dispatched(sc), std::set<std::string>{"d"});
  EXPECT_FALSE(m.finished());
}

TEST(Machine, CompletesWithEveryOutputWhenTheLastTaskSucceeds) {
  machine m{"e"};
  submit(m, doc_of({tool_task("a"), tool_task("b", {{"depends_on", "a"}})}));
  m.succeeded("a", 1, json{{"x", 1}}, 10, 2000);
  auto s = m.succeeded("b", 1, "done", 10, 3000);
  EXPECT_EQ(types(s), (std::vector<std::string>{events::completed,
                                                events::execution_completed}));
  EXPECT_TRUE(s.actions.empty());
  ASSERT_TRUE(s.index);
  EXPECT_EQ(s.index->status, "completed");
  EXPECT_TRUE(m.finished());
  EXPECT_EQ(s.events[1].payload.get()["output"],
            (json{{"a", {{"x", 1}}}, {"b", "done"}}));
  // Stimuli after the end decide nothing.
  EXPECT_TRUE(m.succeeded("b", 1, "again", 10, 4000).empty());
  EXPECT_TRUE(m.failed("b", 1, failure(errc::tool_failed), 0.5, 4000).empty());
  EXPECT_TRUE(m.execution_timed_out(4000).empty());
  EXPECT_TRUE(m.cancel("late", 4000).empty());
}

TEST(Machine, AnOutputTemplateRendersTheTasksOutputs) {
  machine m{"e"};
  submit(m, doc_of({tool_task("a")},
                   {{"output", {{"answer", "{{ tasks.a.output.x }}"}}}}));
  auto s = m.succeeded("a", 1, json{{"x", 42}}, 10, 2000);
  auto* done = find_event(s, events::execution_completed);
  ASSERT_NE(done, nullptr);
  EXPECT_EQ(done->payload.get()["output"], (json{{"answer", 42}}));
}

TEST(Machine, TemplatesReadTheOutputsOfDependencies) {
  machine m{"e"};
  submit(m, doc_of({tool_task("a"),
                    tool_task("b", {{"depends_on", "a"},
                                    {"input", {{"y", "{{ tasks.a.output.x }}"},
                                               {"z", "{{ input.z }}"}}}})}),
         json{{"z", "zed"}});
  auto s = m.succeeded("a", 1, json{{"x", 7}}, 10, 2000);
  ASSERT_EQ(s.actions.size(), 1u);
  EXPECT_EQ(s.actions[0].input, (json{{"y", 7}, {"z", "zed"}}));
}

TEST(Machine, ARetryableFailureWaitsTheBackoffThenDispatchesTheNextAttempt) {
  machine m{"e"};
  submit(m, doc_of({tool_task(
    "a", {{"retry",
           {{"max_attempts", 3}, {"backoff", "1s"}, {"multiplier", 3},
            {"max_backoff", "2s"}, {"jitter", 0.5}}}})}));
  // Attempt 1 fails; draw 0.5 is no jitter: 1000 ms.
  auto f1 = m.failed("a", 1, failure(errc::tool_failed), 0.5, 2000);
  ASSERT_EQ(f1.events.size(), 1u);
  EXPECT_EQ(f1.events[0].type, events::failed);
  const auto& p = f1.events[0].payload.get();
  EXPECT_EQ(p["attempt"], 1);
  EXPECT_EQ(p["code"], "tool_failed");
  EXPECT_EQ(p["retry_in_ms"], 1000);
  EXPECT_EQ(p["draw"], 0.5);
  EXPECT_FALSE(p.contains("final"));
  ASSERT_EQ(f1.actions.size(), 1u);
  EXPECT_EQ(f1.actions[0].kind, action::retry_timer);
  EXPECT_EQ(f1.actions[0].key, "a");
  EXPECT_EQ(f1.actions[0].attempt, 1u);
  EXPECT_EQ(f1.actions[0].delay_ms, 1000);
  EXPECT_EQ(m.unit_state("a"), "retry_wait");
  // A late result of attempt 1, or a timer of another attempt: nothing.
  EXPECT_TRUE(m.succeeded("a", 1, "late", 10, 2500).empty());
  EXPECT_TRUE(m.retry_due("a", 2, 2500).empty());
  // The timer fires: attempt 2 runs with the same input.
  auto r2 = m.retry_due("a", 1, 3000);
  EXPECT_EQ(types(r2), std::vector<std::string>{events::dispatched});
  ASSERT_EQ(r2.actions.size(), 1u);
  EXPECT_EQ(r2.actions[0].kind, action::dispatch);
  EXPECT_EQ(r2.actions[0].attempt, 2u);
  EXPECT_EQ(r2.actions[0].input, (json{{"from", "a"}}));
  EXPECT_EQ(m.unit_state("a"), "running");
  // Attempt 2 fails: 1000 * 3 = 3000 ms, capped at max_backoff 2000, then
  // scaled by the jitter: draw 1.0 is the factor 1 + 0.5.
  auto f2 = m.failed("a", 2, failure(errc::timeout), 1.0, 4000);
  ASSERT_EQ(f2.actions.size(), 1u);
  EXPECT_EQ(f2.actions[0].delay_ms, 3000);
  EXPECT_EQ(f2.events[0].payload.get()["code"], "timeout");
  m.retry_due("a", 2, 5000);
  // Attempt 3 is the last: its failure is final and fails the execution.
  auto f3 = m.failed("a", 3, failure(errc::tool_failed), 0.0, 6000);
  EXPECT_EQ(types(f3), (std::vector<std::string>{events::failed,
                                                 events::execution_failed}));
  EXPECT_EQ(f3.events[0].payload.get()["final"], true);
  EXPECT_TRUE(f3.actions.empty());
  ASSERT_TRUE(f3.index);
  EXPECT_EQ(f3.index->status, "failed");
  const auto& ef = f3.events[1].payload.get();
  EXPECT_EQ(ef["code"], "tool_failed");
  EXPECT_EQ(ef["task"], "a");
  EXPECT_NE(ef["message"].get<std::string>().find("task a: it broke"),
            std::string::npos)
    << ef.dump();
}

TEST(Machine, TheJitterDrawSpansItsRange) {
  auto delay = [](double draw) {
    machine m{"e"};
    submit(m, doc_of({tool_task(
      "a", {{"retry", {{"max_attempts", 2}, {"backoff", 1000},
                       {"jitter", 0.2}}}})}));
    auto s = m.failed("a", 1, failure(errc::tool_failed), draw, 2000);
    EXPECT_EQ(s.actions.size(), 1u);
    return s.actions.empty() ? int64_t{-1} : s.actions[0].delay_ms;
  };
  EXPECT_EQ(delay(0.0), 800);
  EXPECT_EQ(delay(0.5), 1000);
  EXPECT_EQ(delay(0.75), 1100);
}

TEST(Machine, CodesOutsideRetryOnAndInvalidInputAreNotRetried) {
  {
    machine m{"e"};
    submit(m, doc_of({tool_task(
      "a", {{"retry", {{"max_attempts", 3}, {"retry_on", {"timeout"}}}}})}));
    auto s = m.failed("a", 1, failure(errc::tool_failed), 0.5, 2000);
    EXPECT_EQ(types(s), (std::vector<std::string>{events::failed,
                                                  events::execution_failed}));
  }
  {
    machine m{"e"};
    submit(m, doc_of({tool_task("a", {{"retry", 3}})}));
    // No retry_on: every code but invalid_input, cancelled and crash_loop.
    auto s = m.failed("a", 1, failure(errc::invalid_input), 0.5, 2000);
    EXPECT_TRUE(m.finished());
    EXPECT_TRUE(s.actions.empty());
  }
  {
    machine m{"e"};
    submit(m, doc_of({tool_task("a", {{"retry", 3}})}));
    // An error of CAF's system category is a crashed worker, retried.
    auto s = m.failed("a", 1, caf::make_error(caf::sec::request_receiver_down),
                      0.5, 2000);
    ASSERT_EQ(s.actions.size(), 1u);
    EXPECT_EQ(s.actions[0].kind, action::retry_timer);
    EXPECT_EQ(s.events[0].payload.get()["code"], "worker_crashed");
  }
}

TEST(Machine, TimeoutsAreActionsAndTheExecutionTimerFailsIt) {
  machine m{"e"};
  auto s = submit(m, doc_of({tool_task("a", {{"timeout", "30s"}}),
                             tool_task("b", {{"depends_on", "a"}})},
                            {{"timeout", "5m"}}));
  // The execution's timer and the attempt's own timeout.
  const action* timer = nullptr;
  const action* run = nullptr;
  for (const auto& a : s.actions) {
    if (a.kind == action::execution_timer)
      timer = &a;
    if (a.kind == action::dispatch)
      run = &a;
  }
  ASSERT_NE(timer, nullptr);
  EXPECT_EQ(timer->delay_ms, 300000);
  ASSERT_NE(run, nullptr);
  EXPECT_EQ(run->timeout_ms, 30000);
  auto t = m.execution_timed_out(2000);
  EXPECT_EQ(types(t), std::vector<std::string>{events::execution_failed});
  EXPECT_EQ(t.events[0].payload.get()["code"], "timeout");
  ASSERT_TRUE(t.index);
  EXPECT_EQ(t.index->status, "failed");
  // The attempt's answer after the end is stale.
  EXPECT_TRUE(m.succeeded("a", 1, "late", 10, 3000).empty());
  EXPECT_EQ(m.unit_state("b"), "blocked");
}

TEST(Machine, RecoverRearmsTheExecutionTimerWithWhatIsLeft) {
  machine m{"e"};
  submit(m, doc_of({tool_task("a")}, {{"timeout", "10s"}}));
  // 4 s after the submission (at 1000 us), 6 s are left.
  auto acts = m.recover(1000 + 4000000);
  bool found = false;
  for (const auto& a : acts)
    if (a.kind == action::execution_timer) {
      found = true;
      EXPECT_EQ(a.delay_ms, 6000);
    }
  EXPECT_TRUE(found);
}

TEST(Machine, AFalseConditionSkipsTheTaskAndItsDependentsStillRun) {
  machine m{"e"};
  auto s = submit(m, doc_of({tool_task("a"),
                             tool_task("b", {{"depends_on", "a"},
                                             {"when", "tasks.a.output.go"}}),
                             tool_task("c", {{"depends_on", "b"}})}));
  EXPECT_EQ(dispatched(s), std::set<std::string>{"a"});
  auto sa = m.succeeded("a", 1, json{{"go", false}}, 10, 2000);
  EXPECT_EQ(types(sa), (std::vector<std::string>{events::completed,
                                                 events::skipped,
                                                 events::dispatched}));
  EXPECT_EQ(dispatched(sa), std::set<std::string>{"c"});
  EXPECT_EQ(m.unit_state("b"), "skipped");
  auto sc = m.succeeded("c", 1, "ok", 10, 3000);
  auto* done = find_event(sc, events::execution_completed);
  ASSERT_NE(done, nullptr);
  // A skipped task's output is null.
  EXPECT_TRUE(done->payload.get()["output"]["b"].is_null());
}

TEST(Machine, ATrueConditionRunsTheTask) {
  machine m{"e"};
  submit(m, doc_of({tool_task("a"),
                    tool_task("b", {{"depends_on", "a"},
                                    {"when", "tasks.a.output.go"}})}));
  auto sa = m.succeeded("a", 1, json{{"go", true}}, 10, 2000);
  EXPECT_EQ(dispatched(sa), std::set<std::string>{"b"});
}

TEST(Machine, AConditionThatFailsToEvaluateFailsTheTaskWithItsPlace) {
  machine m{"e"};
  submit(m, doc_of({tool_task("a"),
                    tool_task("b", {{"depends_on", "a"},
                                    {"when", "tasks.a.output.missing + 1 > 0"}})}));
  auto sa = m.succeeded("a", 1, json{{"x", 1}}, 10, 2000);
  auto* f = find_event(sa, events::failed);
  ASSERT_NE(f, nullptr);
  EXPECT_EQ(f->payload.get()["final"], true);
  EXPECT_NE(f->payload.get()["message"].get<std::string>().find(
              "/tasks/1/when"),
            std::string::npos)
    << f->payload.get().dump();
  EXPECT_TRUE(m.finished());
}

TEST(Machine, AFinalFailureFailsTheExecutionAndNothingElseRuns) {
  machine m{"e"};
  submit(m, doc_of({tool_task("a"), tool_task("b"),
                    tool_task("c", {{"depends_on", "a"}})}));
  auto f = m.failed("a", 1, failure(errc::tool_failed), 0.5, 2000);
  EXPECT_TRUE(dispatched(f).empty());
  EXPECT_TRUE(m.finished());
  EXPECT_EQ(m.info().status, "failed");
  // b's answer is stale now; c never ran.
  EXPECT_TRUE(m.succeeded("b", 1, "ok", 10, 3000).empty());
  EXPECT_EQ(m.unit_state("c"), "blocked");
}

TEST(Machine, OnFailureContinueLetsDependentsRunWithANullOutput) {
  machine m{"e"};
  submit(m, doc_of({tool_task("a", {{"on_failure", "continue"}}),
                    tool_task("b", {{"depends_on", "a"},
                                    {"input",
                                     {{"got", "{{ tasks.a.output }}"}}}})}));
  auto f = m.failed("a", 1, failure(errc::tool_failed), 0.5, 2000);
  EXPECT_EQ(dispatched(f), std::set<std::string>{"b"});
  ASSERT_EQ(f.actions.size(), 1u);
  EXPECT_TRUE(f.actions[0].input["got"].is_null());
  EXPECT_FALSE(m.finished());
  auto s = m.succeeded("b", 1, "ok", 10, 3000);
  ASSERT_TRUE(s.index);
  EXPECT_EQ(s.index->status, "completed");
}

TEST(Machine, OnFailureFallbackRunsTheFallbackWhoseOutputStandsIn) {
  machine m{"e"};
  auto s = submit(
    m, doc_of({tool_task("a", {{"on_failure", {{"fallback", "plan_b"}}}}),
               tool_task("plan_b"),
               tool_task("c", {{"depends_on", "a"},
                               {"input", {{"got", "{{ tasks.a.output }}"}}}})}));
  // The fallback runs only on failure.
  EXPECT_EQ(dispatched(s), std::set<std::string>{"a"});
  auto f = m.failed("a", 1, failure(errc::tool_failed), 0.5, 2000);
  EXPECT_EQ(types(f), (std::vector<std::string>{events::failed,
                                                events::fallback_started,
                                                events::dispatched}));
  EXPECT_EQ(dispatched(f), std::set<std::string>{"plan_b"});
  auto b = m.succeeded("plan_b", 1, "from b", 10, 3000);
  EXPECT_EQ(dispatched(b), std::set<std::string>{"c"});
  ASSERT_EQ(b.actions.size(), 1u);
  EXPECT_EQ(b.actions[0].input["got"], "from b");
  auto done = m.succeeded("c", 1, "ok", 10, 4000);
  auto* ec = find_event(done, events::execution_completed);
  ASSERT_NE(ec, nullptr);
  EXPECT_EQ(ec->payload.get()["output"]["a"], "from b");
  EXPECT_FALSE(ec->payload.get()["output"].contains("plan_b"));
}

TEST(Machine, AMapRunsAtMostItsConcurrencyAndCollectsOutputsInOrder) {
  machine m{"e"};
  auto s = submit(m, doc_of({json{{"id", "each"},
                                  {"tool", "echo"},
                                  {"kind", "map"}, {"items", "{{ input.list }}"},
                                  {"concurrency", 2},
                                  {"input", {{"n", "{{ item }}"}}}}}),
                  json{{"list", {10, 20, 30}}});
  EXPECT_EQ(dispatched(s), (std::set<std::string>{"each[0]", "each[1]"}));
  // Item 1 finishes first; item 2 takes its place.
  auto s1 = m.succeeded("each[1]", 1, 21, 10, 2000);
  EXPECT_EQ(dispatched(s1), std::set<std::string>{"each[2]"});
  ASSERT_EQ(s1.actions.size(), 1u);
  EXPECT_EQ(s1.actions[0].input, (json{{"n", 30}}));
  m.succeeded("each[2]", 1, 31, 10, 3000);
  auto s0 = m.succeeded("each[0]", 1, 11, 10, 4000);
  auto* done = find_event(s0, events::execution_completed);
  ASSERT_NE(done, nullptr);
  EXPECT_EQ(done->payload.get()["output"]["each"], json::array({11, 21, 31}));
}

TEST(Machine, OneMapItemsFinalFailureFailsTheMapTask) {
  machine m{"e"};
  submit(m, doc_of({json{{"id", "each"},
                         {"tool", "echo"},
                         {"kind", "map"}, {"items", "{{ input.list }}"},
                         {"input", {{"n", "{{ item }}"}}}}}),
         json{{"list", {1, 2}}});
  auto f = m.failed("each[1]", 1, failure(errc::tool_failed), 0.5, 2000);
  EXPECT_EQ(types(f), (std::vector<std::string>{events::failed, events::failed,
                                                events::execution_failed}));
  EXPECT_EQ(f.events[0].payload.get()["item"], 1);
  EXPECT_NE(f.events[1].payload.get()["message"].get<std::string>().find(
              "item 1: it broke"),
            std::string::npos);
  EXPECT_TRUE(m.succeeded("each[0]", 1, 1, 10, 3000).empty());
}

TEST(Machine, AHumanTaskWaitsForItsAnswerWhichItsSchemaChecks) {
  machine m{"e"};
  auto s = submit(
    m, doc_of({json{{"id", "ask"},
                    {"kind", "human"},
                    {"prompt", "ok?"},
                    {"answer_schema", {{"type", "boolean"}}}},
               tool_task("after", {{"depends_on", "ask"}})}));
  ASSERT_EQ(s.actions.size(), 1u);
  EXPECT_EQ(s.actions[0].kind, action::waiting_human);
  EXPECT_EQ(m.unit_state("ask"), "waiting");
  auto bad = m.human_answer("ask", "yes", 2000);
  ASSERT_FALSE(bad);
  EXPECT_EQ(code_of(bad.error()), errc::invalid_input);
  EXPECT_EQ(code_of(m.human_answer("nobody", true, 2000).error()),
            errc::not_found);
  auto good = m.human_answer("ask", true, 3000);
  ASSERT_TRUE(good);
  EXPECT_EQ(dispatched(*good), std::set<std::string>{"after"});
  // Asked once, answered once.
  EXPECT_EQ(code_of(m.human_answer("ask", false, 4000).error()),
            errc::conflict);
}

TEST(Machine, CancelEndsTheExecutionOnce) {
  machine m{"e"};
  submit(m, doc_of({tool_task("a")}));
  auto c = m.cancel("stop", 2000);
  EXPECT_EQ(types(c), std::vector<std::string>{events::execution_cancelled});
  ASSERT_TRUE(c.index);
  EXPECT_EQ(c.index->status, "cancelled");
  EXPECT_TRUE(m.cancel("again", 3000).empty());
  EXPECT_TRUE(m.succeeded("a", 1, "late", 10, 3000).empty());
}

TEST(Machine, StaleAndUnknownResultsDecideNothing) {
  machine m{"e"};
  submit(m, doc_of({tool_task("a")}));
  EXPECT_TRUE(m.succeeded("a", 2, "other attempt", 10, 2000).empty());
  EXPECT_TRUE(m.succeeded("nope", 1, "no task", 10, 2000).empty());
  EXPECT_TRUE(
    m.failed("a", 2, failure(errc::tool_failed), 0.5, 2000).empty());
  EXPECT_TRUE(m.retry_due("a", 1, 2000).empty()); // not waiting
  EXPECT_EQ(m.unit_state("a"), "running");
}

TEST(Machine, EveryDecisionFoldsBackToTheSameState) {
  // What the machine decided, folded from its events alone, is the state
  // it holds: the log is the truth a restart reads.
  machine m{"e"};
  std::vector<event> log;
  auto add = [&](const step& s) {
    log.insert(log.end(), s.events.begin(), s.events.end());
  };
  add(submit(m, doc_of({tool_task("a", {{"retry", 2}}),
                        tool_task("b", {{"depends_on", "a"},
                                        {"when", "false"}}),
                        tool_task("c", {{"depends_on", "b"}})})));
  add(m.failed("a", 1, failure(errc::timeout), 0.3, 2000));
  add(m.retry_due("a", 1, 3000));
  add(m.succeeded("a", 2, "ok", 10, 4000));
  add(m.succeeded("c", 1, "ok", 10, 5000));
  ASSERT_TRUE(m.finished());
  auto folded = fold_log(log);
  ASSERT_TRUE(folded) << describe(folded.error());
  EXPECT_EQ(folded->view(), m.view());
  EXPECT_EQ(folded->info().status, "completed");
}

// -- a replay's unbuilt decisions (machine::replay_only) --------------------

namespace {

// A tool task and a map of three tool items, both roots.
json unbuilt_doc() {
  return doc_of({tool_task("a"),
                 json{{"id", "m"},
                      {"kind", "map"},
                      {"items", "input.items"},
                      {"tool", "echo"},
                      {"input", json{{"n", "{{ item }}"}}}}});
}

const json unbuilt_input = json{{"items", json::array({10, 11, 12})}};

// A step's decisions in order, the unbuilt ones built (machine::event_of).
std::vector<event> decisions(const machine& m, const step& s) {
  std::vector<event> out;
  size_t u = 0;
  for (size_t i = 0; i <= s.events.size(); ++i) {
    for (; u < s.unbuilt.size() && s.unbuilt[u].at == i; ++u)
      out.push_back(m.event_of(s.unbuilt[u]));
    if (i < s.events.size())
      out.push_back(s.events[i]);
  }
  return out;
}

void expect_same_events(const std::vector<event>& got,
                        const std::vector<event>& want) {
  ASSERT_EQ(got.size(), want.size());
  for (size_t i = 0; i < got.size(); ++i) {
    EXPECT_EQ(got[i].seq, want[i].seq);
    EXPECT_EQ(got[i].type, want[i].type);
    EXPECT_EQ(got[i].payload.get(), want[i].payload.get()) << i;
  }
}

// The log of a map of `n` echo items, run by a live machine.
std::vector<event> map_log(size_t n) {
  json items = json::array();
  for (size_t i = 0; i < n; ++i)
    items.push_back(i);
  machine m{"e"};
  auto s = submit(m, doc_of({json{{"id", "m"},
                                  {"kind", "map"},
                                  {"items", "input.items"},
                                  {"tool", "echo"},
                                  {"input", "{{ item }}"}}}),
                  json{{"items", items}});
  std::vector<event> log = s.events;
  int64_t now = 2000;
  for (const auto& a : s.actions) {
    auto r = m.succeeded(a.key, a.attempt, a.input, 10, now++);
    log.insert(log.end(), r.events.begin(), r.events.end());
  }
  EXPECT_TRUE(m.finished());
  return log;
}

json doc_in(const std::vector<event>& log) {
  return log.front().payload->at("definition");
}

} // namespace

TEST(Machine, AReplayFoldsToolDispatchesAndItemCompletionsWithoutBuildingThem) {
  machine live{"e"};
  machine replay{"e"};
  replay.replay_only();
  auto l = submit(live, unbuilt_doc(), unbuilt_input);
  auto r = submit(replay, unbuilt_doc(), unbuilt_input);
  // submitted and map_started built; a's dispatch and the items' unbuilt.
  EXPECT_EQ(types(r), (std::vector<std::string>{events::submitted,
                                                events::map_started}));
  ASSERT_EQ(r.unbuilt.size(), 4u);
  EXPECT_TRUE(r.actions.empty());
  // In the live machine's order, each one the event it records.
  expect_same_events(decisions(replay, r), l.events);
  for (const auto& d : r.unbuilt)
    EXPECT_TRUE(replay.decided_as(d, l.events[d.seq - 1])) << d.seq;
  // An item's completion (with an agent's usage), and a task's: the task's
  // is built as before.
  json usage{{"input_tokens", 3}};
  auto lc = live.succeeded("m[1]", 1, json{{"echo", 11}}, 10, 2000, usage);
  auto rc = replay.succeeded("m[1]", 1, json{{"echo", 11}}, 10, 2000, usage);
  ASSERT_EQ(rc.unbuilt.size(), 1u);
  EXPECT_TRUE(rc.events.empty());
  EXPECT_EQ(rc.unbuilt[0].kind, unbuilt_decision::completion);
  expect_same_events(decisions(replay, rc), lc.events);
  EXPECT_TRUE(replay.decided_as(rc.unbuilt[0], lc.events[0]));
  auto la = live.succeeded("a", 1, "done", 10, 2100);
  auto ra = replay.succeeded("a", 1, "done", 10, 2100);
  EXPECT_TRUE(ra.unbuilt.empty());
  expect_same_events(decisions(replay, ra), la.events);
  // Folded without their events, the state is the one the events fold to.
  EXPECT_EQ(replay.view(), live.view());
  for (const char* key : {"a", "m", "m[0]", "m[1]", "m[2]"})
    EXPECT_EQ(replay.unit_state(key), live.unit_state(key)) << key;
  // The last items complete the map and the execution, built.
  for (const char* key : {"m[0]", "m[2]"}) {
    auto lx = live.succeeded(key, 1, key, 10, 2200);
    auto rx = replay.succeeded(key, 1, key, 10, 2200);
    expect_same_events(decisions(replay, rx), lx.events);
  }
  EXPECT_TRUE(replay.finished());
  EXPECT_EQ(replay.view(), live.view());
  EXPECT_EQ(replay.info().output, live.info().output);
}

TEST(Machine, AnUnbuiltDecisionAgreesOnlyWithItsWholeEvent) {
  machine replay{"e"};
  replay.replay_only();
  auto r = submit(replay, unbuilt_doc(), unbuilt_input);
  auto c = replay.succeeded("m[2]", 1, json{{"echo", 12}}, 10, 2000,
                            json{{"cost_usd", 0.5}});
  ASSERT_EQ(r.unbuilt.size(), 4u);
  ASSERT_EQ(c.unbuilt.size(), 1u);
  // a's dispatch (no item), an item's dispatch, an item's completion.
  for (const auto* d : {&r.unbuilt[0], &r.unbuilt[2], &c.unbuilt[0]}) {
    auto same = replay.event_of(*d);
    ASSERT_TRUE(replay.decided_as(*d, same));
    const auto& payload = same.payload.get();
    auto with = [&](json p, const std::string& type) {
      auto ev = same;
      ev.type = type;
      ev.payload = json_value{std::move(p)};
      return replay.decided_as(*d, ev);
    };
    EXPECT_FALSE(with(payload, d->kind == unbuilt_decision::dispatch
                                 ? events::completed
                                 : events::dispatched));
    EXPECT_FALSE(with(json::array({payload}), same.type));
    auto extra = payload;
    extra["by"] = "tool";
    EXPECT_FALSE(with(extra, same.type));
    // Every field: another value, another type, or none at all.
    for (const auto& [key, value] : payload.items()) {
      for (const json& other :
           {json{"other"}, json{7}, json{nullptr}, json{{"n", value}}}) {
        auto changed = payload;
        changed[key] = other;
        EXPECT_FALSE(with(changed, same.type)) << key << " " << other;
      }
      auto missing = payload;
      missing.erase(key);
      EXPECT_FALSE(with(missing, same.type)) << key;
      // The same count of keys, one of them another.
      missing["zz"] = value;
      EXPECT_FALSE(with(missing, same.type)) << key;
    }
  }
  // A completion without usage agrees with no usage only.
  auto n = replay.succeeded("m[0]", 1, 10, 10, 2100);
  ASSERT_EQ(n.unbuilt.size(), 1u);
  auto plain = replay.event_of(n.unbuilt[0]);
  EXPECT_FALSE(plain.payload->contains("usage"));
  auto with_null = plain.payload.get();
  with_null["usage"] = nullptr;
  EXPECT_FALSE(replay.decided_as(n.unbuilt[0],
                                 event{"e", plain.seq, 0, plain.type,
                                       json_value{with_null}}));
}

TEST(Machine, AReplayFindsADivergenceAtAnUnbuiltDispatch) {
  auto log = map_log(20);
  // Another input for every item: the first item's dispatch (seq 3).
  auto doc = doc_in(log);
  doc["tasks"][0]["input"] = json{{"n", "{{ item }}"}};
  auto r = check_against(log, &doc);
  ASSERT_TRUE(r) << describe(r.error());
  ASSERT_FALSE(r->compatible());
  EXPECT_EQ(r->first->seq, 3u);
  EXPECT_EQ(r->first->task, "m[0]");
  EXPECT_EQ(r->first->reason, "recorded task_dispatched of m[0] (attempt 1), "
                              "the definition decides it with another input");
  EXPECT_EQ(r->first->expected, event_json(log[2]));
  EXPECT_EQ(r->first->got,
            (json{{"type", events::dispatched},
                  {"payload", {{"task", "m"}, {"item", 0}, {"attempt", 1},
                               {"tool", "echo"}, {"input", {{"n", 0}}}}}}));
  // Another tool: the same place, the tool named.
  doc = doc_in(log);
  doc["tasks"][0]["tool"] = "upper";
  r = check_against(log, &doc);
  ASSERT_TRUE(r && !r->compatible());
  EXPECT_EQ(r->first->seq, 3u);
  EXPECT_EQ(r->first->reason, "recorded task_dispatched of m[0] (attempt 1), "
                              "the definition decides it with another tool");
  EXPECT_EQ(r->first->got["payload"]["tool"], "upper");
  // A recorded dispatch in the middle of the step that differs (m[10] at
  // seq 13): the ten before it agree.
  auto tampered = log;
  auto p = tampered[12].payload.get();
  ASSERT_EQ(p.at("item"), 10);
  p["input"] = 99;
  tampered[12].payload = json_value{p};
  r = check_against(tampered);
  ASSERT_TRUE(r && !r->compatible());
  EXPECT_EQ(r->first->seq, 13u);
  EXPECT_EQ(r->first->task, "m[10]");
  EXPECT_EQ(r->first->expected, event_json(tampered[12]));
  EXPECT_EQ(r->first->got, event_json(log[12]));
  // A log that ends before the items' dispatches: the first one the
  // definition decides past its end, built to show it.
  std::vector<event> cut(log.begin(), log.begin() + 2);
  r = check_against(cut);
  ASSERT_TRUE(r && !r->compatible());
  EXPECT_EQ(r->first->seq, 3u);
  EXPECT_EQ(r->first->task, "m[0]");
  EXPECT_EQ(r->first->reason, "the definition decides task_dispatched of m[0] "
                              "(attempt 1) after the end of the recorded log");
  EXPECT_TRUE(r->first->expected.is_null());
  EXPECT_EQ(r->first->got, event_json(log[2]));
  // The same definition: compatible, every event checked.
  auto same = check_against(log);
  ASSERT_TRUE(same) << describe(same.error());
  EXPECT_TRUE(same->compatible());
  EXPECT_EQ(same->events, log.size());
}

TEST(Machine, AReplayFindsADivergenceAtAnUnbuiltItemCompletion) {
  auto log = map_log(5);
  // submitted, map_started, 5 dispatches, then m[0]'s completion at seq 8.
  ASSERT_EQ(log[7].type, events::completed);
  ASSERT_EQ(log[7].payload->at("item"), 0);
  // A recorded completion with a field this build does not decide.
  auto tampered = log;
  auto p = tampered[7].payload.get();
  p["duration_us"] = 10;
  tampered[7].payload = json_value{p};
  auto r = check_against(tampered);
  ASSERT_TRUE(r) << describe(r.error());
  ASSERT_FALSE(r->compatible());
  EXPECT_EQ(r->first->seq, 8u);
  EXPECT_EQ(r->first->task, "m[0]");
  EXPECT_EQ(r->first->reason,
            "recorded task_completed of m[0] (attempt 1), the definition "
            "decides it with another duration_us");
  EXPECT_EQ(r->first->expected, event_json(tampered[7]));
  EXPECT_EQ(r->first->got, event_json(log[7]));
  // A recorded usage of null is not the absent usage it decides.
  tampered = log;
  p = tampered[9].payload.get();
  p["usage"] = nullptr;
  tampered[9].payload = json_value{p};
  r = check_against(tampered);
  ASSERT_TRUE(r && !r->compatible());
  EXPECT_EQ(r->first->seq, 10u);
  EXPECT_EQ(r->first->got, event_json(log[9]));
}

TEST(Machine, AReplayComparesSubmissionsAndFailuresButForWhatDiffersByConstruction) {
  machine m{"e"};
  auto s = submit(m, doc_of({tool_task("a", {{"retry", 2}})}));
  std::vector<event> log = s.events;
  for (auto&& step : {m.failed("a", 1, failure(errc::timeout), 0.3, 2000),
                      m.retry_due("a", 1, 3000),
                      m.succeeded("a", 2, "ok", 10, 4000)})
    log.insert(log.end(), step.events.begin(), step.events.end());
  ASSERT_TRUE(m.finished());
  // submitted, dispatched, failed (seq 3), dispatched, completed, done.
  ASSERT_EQ(log[2].type, events::failed);
  auto with = [&log](size_t i, const std::function<void(json&)>& change) {
    auto copy = log;
    auto p = copy[i].payload.get();
    change(p);
    copy[i].payload = json_value{p};
    auto r = check_against(copy);
    EXPECT_TRUE(r) << describe(r.error());
    return r ? *r : replay_check{};
  };
  EXPECT_TRUE(with(0, [](json&) {}).compatible());
  // The submission's definition, name, version and key are not decided.
  EXPECT_TRUE(with(0, [](json& p) {
                p["idempotency_key"] = "other";
                p["workflow"] = "renamed";
                p["version"] = 9;
              }).compatible());
  // Anything else in it is.
  auto r = with(0, [](json& p) { p["priority"] = 1; });
  ASSERT_FALSE(r.compatible());
  EXPECT_EQ(r.first->seq, 1u);
  EXPECT_EQ(r.first->reason, "recorded execution_submitted, the definition "
                             "decides it with another priority");
  // A failure recorded before draws were: its delay is not compared.
  EXPECT_TRUE(with(2, [](json& p) {
                p.erase("draw");
                p["retry_in_ms"] = 12345;
              }).compatible());
  // With its draw, the delay is; and a field it does not decide, always.
  r = with(2, [](json& p) { p["retry_in_ms"] = 12345; });
  ASSERT_FALSE(r.compatible());
  EXPECT_EQ(r.first->seq, 3u);
  EXPECT_EQ(r.first->reason, "recorded task_failed of a (attempt 1), the "
                             "definition decides it with another retry_in_ms");
  r = with(2, [](json& p) {
    p.erase("draw");
    p["final"] = true;
  });
  ASSERT_FALSE(r.compatible());
  EXPECT_EQ(r.first->seq, 3u);
}
