// Maps of sub-workflows (docs/workflows.md, Map tasks) and the workflow's
// on_failure tasks (docs/workflows.md, Failure hooks): parsing and located
// errors, and the machine's decisions as values, folded again from the
// log, re-decided by replay, recovered and restored from snapshots.

#include <map>
#include <set>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "cadre/workflow/definition.hpp"
#include "cadre/workflow/machine.hpp"
#include "cadre/workflow/replay.hpp"
#include "snapshot_logs.hpp"

using namespace cadre;
using namespace cadre::workflow;

namespace {

validation_context node_context() {
  validation_context ctx;
  ctx.tool_exists = [](const std::string& name) {
    static const std::set<std::string> tools = {"echo", "script", "notify"};
    return tools.count(name) > 0;
  };
  return ctx;
}

std::string all_errors(const parse_result& r) {
  std::string out;
  for (const auto& d : r.errors)
    out += "  " + d.to_string() + "\n";
  return out;
}

bool has_error(const parse_result& r, const std::string& pointer,
               const std::string& text) {
  for (const auto& d : r.errors)
    if (d.pointer == pointer && d.message.find(text) != std::string::npos)
      return true;
  return false;
}

json doc_of(const std::string& yaml) {
  auto r = parse_text(yaml, "t.yaml", node_context());
  EXPECT_TRUE(r.def) << all_errors(r);
  return r.def ? r.def->document : json{};
}

// Each thing is one item running analyze -> ask -> act (act only for
// `clear`), as the Airflow monitor handles each failed task.
const char* const per_thing = R"(
name: fan
tasks:
  - id: handle
    items: input.things
    input: {thing: "{{ item }}", n: "{{ index }}"}
    workflow:
      name: per-thing
      tasks:
        - id: analyze
          tool: echo
          input: {text: "{{ input.thing }}"}
        - id: ask
          depends_on: analyze
          prompt: {thing: "{{ input.thing }}", n: "{{ input.n }}"}
          answer_schema:
            type: object
            required: [decision]
            properties: {decision: {type: string, enum: [clear, skip]}}
        - id: act
          depends_on: ask
          when: tasks.ask.output.decision == "clear"
          tool: echo
          input: {clear: "{{ input.thing }}"}
      output:
        thing: "{{ input.thing }}"
        decision: "{{ tasks.ask.output.decision }}"
        acted: "{{ tasks.act.output }}"
output: "{{ tasks.handle.output }}"
)";

const json things = json{{"things", {"a", "b"}}};

std::vector<std::string> keys_of(const std::vector<action>& actions,
                                 action::kind_t kind) {
  std::vector<std::string> out;
  for (const auto& a : actions)
    if (a.kind == kind)
      out.push_back(a.key);
  return out;
}

std::vector<std::string> types_of(const step& s) {
  std::vector<std::string> out;
  for (const auto& ev : s.events)
    out.push_back(ev.type + " " + ev.payload->value("task", std::string{}));
  return out;
}

// Every event the machine decided, in order.
struct recorder {
  machine m{"x1"};
  std::vector<event> log;
  // Where each step ended: a snapshot is only ever taken there.
  std::vector<size_t> ends;

  // The snapshot logs the steps brought (with machine::snapshot_every).
  std::vector<event> snapshots;

  step take(step s) {
    log.insert(log.end(), s.events.begin(), s.events.end());
    snapshots.insert(snapshots.end(), s.snapshots.begin(), s.snapshots.end());
    ends.push_back(log.size());
    return s;
  }
};

std::vector<std::string> waiting_keys(const machine& m) {
  std::vector<std::string> out;
  auto view = m.view();
  for (const auto& w : view["waiting"])
    out.push_back(w["task"].get<std::string>());
  return out;
}

TEST(NestedItems, AMapMayRunASubWorkflowPerItem) {
  auto r = parse_text(per_thing, "t.yaml", node_context());
  ASSERT_TRUE(r.def) << all_errors(r);
  const auto& td = r.def->tasks[0];
  EXPECT_EQ(td.kind, task_kind::map);
  EXPECT_EQ(td.item_kind, task_kind::workflow);
  EXPECT_EQ(td.workflow["name"], "per-thing");

  // The sub-workflow is validated like the outer one, at its place.
  auto bad = parse_text(R"(
name: fan
tasks:
  - id: handle
    items: input.things
    tool: echo
    workflow: {name: w, tasks: [{id: x, tool: ech}]}
)",
                        "t.yaml", node_context());
  ASSERT_FALSE(bad.def);
  EXPECT_TRUE(has_error(bad, "/tasks/0/workflow",
                        "'workflow' and 'tool' in one map task"))
    << all_errors(bad);
  EXPECT_TRUE(has_error(bad, "/tasks/0/workflow/tasks/0/tool",
                        "unknown tool 'ech'"))
    << all_errors(bad);
}

TEST(NestedItems, EachItemGoesOnAsSoonAsItsOwnPersonAnswers) {
  recorder rec;
  auto& m = rec.m;
  auto first = m.submit(doc_of(per_thing), things, "", 1000);
  ASSERT_TRUE(first);
  rec.take(*first);
  // Both items start their sub-workflow; their units are keyed under them.
  EXPECT_EQ(keys_of(first->actions, action::dispatch),
            (std::vector<std::string>{"handle[0]/analyze",
                                      "handle[1]/analyze"}));
  EXPECT_EQ(types_of(*first),
            (std::vector<std::string>{
              "execution_submitted ", "map_started handle",
              "task_dispatched handle", "task_dispatched handle[0]/analyze",
              "task_dispatched handle", "task_dispatched handle[1]/analyze"}));
  EXPECT_EQ(first->events[2].payload->value("workflow", ""), "per-thing");
  EXPECT_EQ(first->events[3].payload->at("input"),
            (json{{"text", "a"}}));

  auto asked = rec.take(m.succeeded("handle[0]/analyze", 1,
                                    json{{"text", "a"}}, 1, 2000));
  EXPECT_EQ(types_of(asked), (std::vector<std::string>{
                               "task_completed handle[0]/analyze",
                               "human_requested handle[0]/ask"}));
  EXPECT_EQ(asked.events[1].payload->at("prompt"),
            (json{{"thing", "a"}, {"n", 1}}));
  EXPECT_EQ(keys_of(asked.actions, action::waiting_human),
            (std::vector<std::string>{"handle[0]/ask"}));
  ASSERT_TRUE(asked.index);
  EXPECT_EQ(asked.index->status, "waiting");
  rec.take(m.succeeded("handle[1]/analyze", 1, json{{"text", "b"}}, 1, 2100));
  EXPECT_EQ(waiting_keys(m), (std::vector<std::string>{"handle[0]/ask",
                                                       "handle[1]/ask"}));
  auto w = m.view()["waiting"][0];
  EXPECT_EQ(w["answer_schema"]["required"], json::array({"decision"}));

  // Answered by its key; a wrong answer names it.
  auto refused = m.human_answer("handle[0]/ask", json{{"decision", "maybe"}},
                                2200);
  ASSERT_FALSE(refused);
  EXPECT_EQ(code_of(refused.error()), errc::invalid_input);
  EXPECT_NE(message_of(refused.error()).find("'handle[0]/ask'"),
            std::string::npos)
    << message_of(refused.error());
  EXPECT_EQ(code_of(m.human_answer("handle[0]/nope", json{}, 2200).error()),
            errc::not_found);
  EXPECT_EQ(code_of(m.human_answer("handle[5]/ask", json{}, 2200).error()),
            errc::conflict);

  // Item 0's `clear` acts at once, while item 1's question is open.
  auto answered = m.human_answer("handle[0]/ask", json{{"decision", "clear"}},
                                 2300);
  ASSERT_TRUE(answered);
  rec.take(*answered);
  EXPECT_EQ(keys_of(answered->actions, action::dispatch),
            (std::vector<std::string>{"handle[0]/act"}));
  EXPECT_EQ(answered->events.back().payload->at("input"),
            (json{{"clear", "a"}}));
  auto acted = rec.take(m.succeeded("handle[0]/act", 1,
                                    json{{"cleared", "a"}}, 1, 2400));
  EXPECT_EQ(types_of(acted),
            (std::vector<std::string>{"task_completed handle[0]/act",
                                      "task_completed handle"}));
  EXPECT_EQ(acted.events[1].payload->at("item"), 0);
  EXPECT_EQ(acted.events[1].payload->at("output"),
            (json{{"thing", "a"},
                  {"decision", "clear"},
                  {"acted", {{"cleared", "a"}}}}));
  EXPECT_EQ(m.unit_state("handle[0]"), "done");
  EXPECT_EQ(waiting_keys(m), (std::vector<std::string>{"handle[1]/ask"}));
  EXPECT_EQ(m.info().status, "waiting");
  // A late answer to the finished item is refused, not folded.
  EXPECT_EQ(code_of(m.human_answer("handle[0]/ask",
                                   json{{"decision", "skip"}}, 2450)
                      .error()),
            errc::conflict);

  auto skipped = m.human_answer("handle[1]/ask", json{{"decision", "skip"}},
                                2500);
  ASSERT_TRUE(skipped);
  rec.take(*skipped);
  EXPECT_TRUE(skipped->actions.empty());
  ASSERT_TRUE(m.finished());
  EXPECT_EQ(m.info().status, "completed");
  EXPECT_EQ(m.info().output.get(),
            (json{{{"thing", "a"},
                   {"decision", "clear"},
                   {"acted", {{"cleared", "a"}}}},
                  {{"thing", "b"}, {"decision", "skip"}, {"acted", nullptr}}}));

  // The log folds to the same state, and this build decides it again.
  auto folded = fold_log(rec.log);
  ASSERT_TRUE(folded);
  EXPECT_EQ(folded->view(), m.view());
  auto check = check_against(rec.log);
  ASSERT_TRUE(check);
  EXPECT_TRUE(check->compatible())
    << (check->first ? to_json(*check->first).dump() : "");
  // The item's sub-workflow shows in the view.
  auto item0 = m.view()["tasks"][0]["items"][0];
  EXPECT_EQ(item0["tasks"][2]["id"], "act");
  EXPECT_EQ(item0["tasks"][2]["state"], "done");
}

TEST(NestedItems, PagedSnapshotsOfItemsRunningSubWorkflowsHoldTheirState) {
  recorder rec;
  auto& m = rec.m;
  m.snapshot_every(1);
  rec.take(*m.submit(doc_of(per_thing), things, "", 1000));
  rec.take(m.succeeded("handle[0]/analyze", 1, json{{"text", "a"}}, 1, 2000));
  rec.take(m.succeeded("handle[1]/analyze", 1, json{{"text", "b"}}, 1, 2100));
  rec.take(*m.human_answer("handle[0]/ask", json{{"decision", "clear"}},
                           2300));
  rec.take(m.succeeded("handle[0]/act", 1, json{{"clear", "a"}}, 1, 2400));
  rec.take(*m.human_answer("handle[1]/ask", json{{"decision", "skip"}},
                           2500));
  ASSERT_TRUE(m.finished());
  test::snapshot_logs snaps{rec.snapshots};
  auto read = snaps.reader();
  auto whole = fold_log(rec.log);
  ASSERT_TRUE(whole);
  size_t roots = 0;
  for (const auto& [name, evs] : snaps.logs) {
    const auto& root = evs.front().payload.get();
    auto seq = root["seq"].get<uint64_t>();
    ++roots;
    // Taken at its multiple, or after the events of a sub-workflow that
    // passed it, never in their midst.
    auto restored = restore_snapshot("x1", root, read);
    ASSERT_TRUE(restored) << describe(restored.error());
    std::vector<event> head(rec.log.begin(),
                            rec.log.begin() + static_cast<long>(seq));
    EXPECT_EQ(restored->view(), fold_log(head)->view()) << "at " << seq;
    for (auto i = seq; i < rec.log.size(); ++i)
      ASSERT_TRUE(restored->apply(rec.log[i]));
    EXPECT_EQ(restored->view(), whole->view()) << "from " << seq;
  }
  EXPECT_GT(roots, rec.ends.size());
}

TEST(NestedItems, RecoveryResumesTheUnitsInFlightOnlyFromEverySnapshot) {
  recorder rec;
  auto& m = rec.m;
  rec.take(*m.submit(doc_of(per_thing), things, "", 1000));
  rec.take(m.succeeded("handle[0]/analyze", 1, json{{"text", "a"}}, 1, 2000));
  rec.take(m.succeeded("handle[1]/analyze", 1, json{{"text", "b"}}, 1, 2100));
  rec.take(*m.human_answer("handle[0]/ask", json{{"decision", "clear"}},
                           2300));
  // The node dies with handle[0]/act running and handle[1]/ask open.
  auto folded = fold_log(rec.log);
  ASSERT_TRUE(folded);
  auto resumed = folded->resume(3000, 3);
  EXPECT_EQ(keys_of(resumed.actions, action::dispatch),
            (std::vector<std::string>{"handle[0]/act"}));
  EXPECT_EQ(keys_of(resumed.actions, action::waiting_human),
            (std::vector<std::string>{"handle[1]/ask"}));
  ASSERT_EQ(resumed.events.size(), 1u);
  EXPECT_EQ(resumed.events[0].type, events::redispatched);
  EXPECT_EQ(resumed.events[0].payload->at("task"), "handle[0]/act");
  EXPECT_EQ(resumed.events[0].payload->at("starts"), 1);
  // Nothing else is asked again or re-run: the analyses stay done.
  EXPECT_EQ(folded->unit_state("handle[0]/analyze"), "done");
  // The same from a snapshot at the end of every step, and the check a
  // recovering coordinator makes finds the log its own.
  auto whole_log = fold_log(rec.log);
  ASSERT_TRUE(whole_log);
  for (auto k : rec.ends) {
    std::vector<event> head(rec.log.begin(), rec.log.begin() + k);
    auto at = fold_log(head);
    ASSERT_TRUE(at);
    auto restored = machine::restore("x1", at->snapshot());
    ASSERT_TRUE(restored) << describe(restored.error());
    EXPECT_EQ(restored->view(), at->view()) << "at " << k;
    std::vector<event> rest(rec.log.begin() + k, rec.log.end());
    auto whole = fold_from("x1", at->snapshot(), rest);
    ASSERT_TRUE(whole);
    EXPECT_EQ(whole->view(), whole_log->view()) << "from " << k;
    auto check = check_recovery("x1", at->snapshot(), rest);
    ASSERT_TRUE(check);
    EXPECT_TRUE(check->compatible())
      << "from " << k << ": "
      << (check->first ? to_json(*check->first).dump() : "");
  }
  // A crash loop inside an item's sub-workflow parks that unit, which
  // fails the item and the map.
  auto looping = fold_log(rec.log);
  ASSERT_TRUE(looping);
  std::vector<event> log = rec.log;
  for (int start = 0; start < 3; ++start) {
    auto s = looping->resume(4000 + start, 3);
    log.insert(log.end(), s.events.begin(), s.events.end());
  }
  auto parked = looping->resume(5000, 3);
  ASSERT_TRUE(looping->finished());
  EXPECT_EQ(looping->info().status, "failed");
  EXPECT_NE(looping->info().error.find("crash loop"), std::string::npos)
    << looping->info().error;
  EXPECT_EQ(parked.events[0].payload->at("task"), "handle[0]/act");
  EXPECT_EQ(parked.events[0].payload->at("code"), "crash_loop");
}

TEST(NestedItems, AnItemRetriesItsSubWorkflowAfterItsTimeoutAndConcurrencyHolds) {
  auto doc = doc_of(R"(
name: slow
tasks:
  - id: handle
    items: input.things
    concurrency: 1
    timeout: 5s
    retry: {max_attempts: 2, backoff: 100ms, jitter: 0}
    input: {thing: "{{ item }}"}
    workflow:
      name: one
      tasks:
        - {id: work, tool: echo, input: {text: "{{ input.thing }}"}}
      output: "{{ tasks.work.output.text }}"
)");
  recorder rec;
  auto& m = rec.m;
  auto first = m.submit(doc, things, "", 1000);
  ASSERT_TRUE(first);
  rec.take(*first);
  // One item at a time, with its deadline.
  EXPECT_EQ(keys_of(first->actions, action::dispatch),
            (std::vector<std::string>{"handle[0]/work"}));
  ASSERT_EQ(keys_of(first->actions, action::deadline_timer),
            (std::vector<std::string>{"handle[0]"}));
  for (const auto& a : first->actions)
    if (a.kind == action::deadline_timer) {
      EXPECT_EQ(a.delay_ms, 5000);
      EXPECT_EQ(a.attempt, 1u);
    }
  auto late = rec.take(m.deadline_due("handle[0]", 1, 6000));
  ASSERT_EQ(late.events.size(), 1u);
  EXPECT_EQ(late.events[0].type, events::failed);
  EXPECT_EQ(late.events[0].payload->at("code"), "timeout");
  EXPECT_EQ(late.events[0].payload->at("retry_in_ms"), 100);
  // Attempt 2 runs the sub-workflow afresh, keyed apart from attempt 1.
  auto again = rec.take(m.retry_due("handle[0]", 1, 6100));
  EXPECT_EQ(keys_of(again.actions, action::dispatch),
            (std::vector<std::string>{"handle[0]@2/work"}));
  // Attempt 1's late result and deadline change nothing.
  EXPECT_TRUE(m.succeeded("handle[0]/work", 1, json{{"text", "a"}}, 1, 6200)
                .empty());
  EXPECT_TRUE(m.deadline_due("handle[0]", 1, 6200).empty());
  auto done = rec.take(m.succeeded("handle[0]@2/work", 1, json{{"text", "a"}},
                                   1, 6300));
  // Item 1 starts only now (concurrency 1).
  EXPECT_EQ(keys_of(done.actions, action::dispatch),
            (std::vector<std::string>{"handle[1]/work"}));
  rec.take(m.succeeded("handle[1]/work", 1, json{{"text", "b"}}, 1, 6400));
  ASSERT_TRUE(m.finished());
  EXPECT_EQ(m.info().output.get(),
            (json{{"handle", json::array({"a", "b"})}}));
  auto check = check_against(rec.log);
  ASSERT_TRUE(check);
  EXPECT_TRUE(check->compatible())
    << (check->first ? to_json(*check->first).dump() : "");
}

// A workflow whose `work` fails, with a failure hook that tells someone.
const char* const hooked = R"(
name: hooked
tasks:
  - {id: work, tool: echo, input: {text: go}}
  - {id: other, tool: echo, input: {text: go}}
  - {id: after, depends_on: work, tool: echo, input: {text: after}}
on_failure:
  - id: tell
    tool: notify
    input:
      text: "{{ execution.id }} failed at {{ failure.task }}: {{ failure.code }}: {{ failure.message }}"
)";

TEST(FailureHooks, ParsedAsTasksThatRunOnlyAfterAFailure) {
  auto r = parse_text(hooked, "t.yaml", node_context());
  ASSERT_TRUE(r.def) << all_errors(r);
  ASSERT_EQ(r.def->tasks.size(), 4u);
  EXPECT_TRUE(r.def->tasks[3].hook);
  EXPECT_EQ(r.def->tasks[3].id, "tell");
  EXPECT_FALSE(r.def->tasks[0].hook);

  auto bad = parse_text(R"(
name: hooked
tasks:
  - {id: work, tool: echo}
  - {id: after, depends_on: tell, tool: echo}
on_failure:
  - {id: tell, tool: notify, depends_on: work}
  - {id: ask, prompt: "why?"}
  - {id: work, tool: echo, on_failure: continue}
)",
                        "t.yaml", node_context());
  ASSERT_FALSE(bad.def);
  EXPECT_TRUE(has_error(bad, "/tasks/1/depends_on",
                        "'tell' is an on_failure task"))
    << all_errors(bad);
  EXPECT_TRUE(has_error(bad, "/on_failure/0/depends_on",
                        "an on_failure task has no depends_on"))
    << all_errors(bad);
  EXPECT_TRUE(has_error(bad, "/on_failure/1",
                        "an on_failure task is a tool or an agent task"))
    << all_errors(bad);
  EXPECT_TRUE(has_error(bad, "/on_failure/2/id", "duplicate task id 'work'"))
    << all_errors(bad);
  EXPECT_TRUE(has_error(bad, "/on_failure/2/on_failure", "takes no"))
    << all_errors(bad);
  EXPECT_FALSE(parse_text("name: x\ntasks: [{id: a, tool: echo}]\n"
                          "on_failure: {id: t, tool: echo}\n",
                          "t.yaml", node_context())
                 .def);
}

TEST(FailureHooks, RunOnceWithTheFailureThenTheExecutionFails) {
  recorder rec;
  auto& m = rec.m;
  auto first = m.submit(doc_of(hooked), json::object(), "", 1000);
  ASSERT_TRUE(first);
  rec.take(*first);
  EXPECT_EQ(keys_of(first->actions, action::dispatch),
            (std::vector<std::string>{"work", "other"}));
  auto failed = rec.take(m.failed(
    "work", 1, make_error(errc::tool_failed, "boom"), 0.5, 2000));
  EXPECT_EQ(types_of(failed),
            (std::vector<std::string>{"task_failed work",
                                      "on_failure_started work",
                                      "task_dispatched tell"}));
  EXPECT_EQ(failed.events[1].payload.get(),
            (json{{"task", "work"},
                  {"code", "tool_failed"},
                  {"message", "task work: boom"}}));
  EXPECT_EQ(failed.events[2].payload->at("input"),
            (json{{"text", "x1 failed at work: tool_failed: task work: boom"}}));
  EXPECT_EQ(keys_of(failed.actions, action::dispatch),
            (std::vector<std::string>{"tell"}));
  // Not finished while the hook runs; the other tasks' results no longer
  // count, and nothing else starts.
  EXPECT_FALSE(m.finished());
  EXPECT_EQ(m.info().status, "running");
  EXPECT_TRUE(m.succeeded("other", 1, json{{"text", "go"}}, 1, 2100).empty());
  EXPECT_TRUE(m.execution_timed_out(2100).empty());
  EXPECT_EQ(m.view()["failure"]["task"], "work");
  // Recovered meanwhile: only the hook is in flight.
  auto mid = fold_log(rec.log);
  ASSERT_TRUE(mid);
  EXPECT_EQ(keys_of(mid->recover(2200), action::dispatch),
            (std::vector<std::string>{"tell"}));

  auto told = rec.take(m.succeeded("tell", 1, json{{"sent", true}}, 1, 2300));
  EXPECT_EQ(types_of(told),
            (std::vector<std::string>{"task_completed tell",
                                      "execution_failed work"}));
  EXPECT_EQ(told.events[1].payload.get(),
            (json{{"task", "work"},
                  {"code", "tool_failed"},
                  {"message", "task work: boom"}}));
  ASSERT_TRUE(m.finished());
  EXPECT_EQ(m.info().status, "failed");
  EXPECT_EQ(m.info().error, "task work: boom");
  ASSERT_TRUE(told.index);
  EXPECT_EQ(told.index->status, "failed");
  auto check = check_against(rec.log);
  ASSERT_TRUE(check);
  EXPECT_TRUE(check->compatible())
    << (check->first ? to_json(*check->first).dump() : "");
}

TEST(FailureHooks, AHooksOwnFailureIsRecordedNotLooped) {
  recorder rec;
  auto& m = rec.m;
  rec.take(*m.submit(doc_of(hooked), json::object(), "", 1000));
  // The execution's timeout is a failure too (no task).
  auto timed_out = rec.take(m.execution_timed_out(2000));
  ASSERT_GE(timed_out.events.size(), 1u);
  EXPECT_EQ(timed_out.events[0].type, events::on_failure_started);
  EXPECT_EQ(timed_out.events[0].payload->at("code"), "timeout");
  EXPECT_FALSE(timed_out.events[0].payload->contains("task"));
  auto hook_failed = rec.take(m.failed(
    "tell", 1, make_error(errc::unavailable, "no webhook"), 0.5, 2100));
  EXPECT_EQ(types_of(hook_failed),
            (std::vector<std::string>{"task_failed tell",
                                      "execution_failed "}));
  const auto& p = hook_failed.events[1].payload.get();
  EXPECT_EQ(p.at("code"), "timeout");
  EXPECT_EQ(p.at("on_failure_failed"), json::array({"tell"}));
  ASSERT_TRUE(m.finished());
  EXPECT_EQ(m.info().status, "failed");
  auto check = check_against(rec.log);
  ASSERT_TRUE(check);
  EXPECT_TRUE(check->compatible())
    << (check->first ? to_json(*check->first).dump() : "");
}

TEST(FailureHooks, AnItemsSubWorkflowHookCoversTheItemsFailure) {
  auto doc = doc_of(R"(
name: fan
tasks:
  - id: handle
    items: input.things
    input: {thing: "{{ item }}"}
    workflow:
      name: one
      tasks:
        - {id: work, tool: echo, input: {text: "{{ input.thing }}"}}
      on_failure:
        - id: tell
          tool: notify
          input: {text: "{{ input.thing }}: {{ failure.message }}"}
on_failure:
  - {id: page, tool: notify, input: {text: "{{ failure.message }}"}}
)");
  recorder rec;
  auto& m = rec.m;
  rec.take(*m.submit(doc, json{{"things", {"a"}}}, "", 1000));
  auto failed = rec.take(m.failed(
    "handle[0]/work", 1, make_error(errc::tool_failed, "boom"), 0.5, 2000));
  EXPECT_EQ(types_of(failed),
            (std::vector<std::string>{"task_failed handle[0]/work",
                                      "on_failure_started handle[0]/work",
                                      "task_dispatched handle[0]/tell"}));
  EXPECT_EQ(failed.events[2].payload->at("input"),
            (json{{"text", "a: task work: boom"}}));
  auto told = rec.take(m.succeeded("handle[0]/tell", 1, json{}, 1, 2100));
  // The item fails once its hook is done, the map with it, and the
  // execution's own hook runs.
  EXPECT_EQ(types_of(told),
            (std::vector<std::string>{"task_completed handle[0]/tell",
                                      "task_failed handle", "task_failed handle",
                                      "on_failure_started handle",
                                      "task_dispatched page"}));
  EXPECT_EQ(told.events.back().payload->at("input"),
            (json{{"text", "task handle: item 0: task work: boom"}}));
  rec.take(m.succeeded("page", 1, json{}, 1, 2200));
  EXPECT_EQ(m.info().status, "failed");
  auto folded = fold_log(rec.log);
  ASSERT_TRUE(folded);
  EXPECT_EQ(folded->view(), m.view());
  auto check = check_against(rec.log);
  ASSERT_TRUE(check);
  EXPECT_TRUE(check->compatible())
    << (check->first ? to_json(*check->first).dump() : "");
}

} // namespace

namespace {

// A sub-workflow task is the same mechanism without items: its units and
// questions are keyed under the task.
TEST(NestedItems, ASubWorkflowTaskRunsInsideTheExecution) {
  recorder rec;
  auto& m = rec.m;
  auto first = m.submit(doc_of(R"(
name: one
tasks:
  - id: child
    input: {x: "{{ input.x }}"}
    workflow:
      name: inner
      tasks:
        - {id: ask, prompt: "double {{ input.x }}?", answer_schema: {type: boolean}}
        - {id: twice, depends_on: ask, tool: echo, input: {n: "{{ input.x * 2 }}"}}
      output: "{{ tasks.twice.output.n }}"
output: "{{ tasks.child.output }}"
)"),
                        json{{"x", 21}}, "", 1000);
  ASSERT_TRUE(first);
  rec.take(*first);
  EXPECT_EQ(keys_of(first->actions, action::waiting_human),
            (std::vector<std::string>{"child/ask"}));
  EXPECT_EQ(waiting_keys(m), (std::vector<std::string>{"child/ask"}));
  EXPECT_EQ(m.info().status, "waiting");
  auto answered = m.human_answer("child/ask", true, 2000);
  ASSERT_TRUE(answered);
  rec.take(*answered);
  EXPECT_EQ(keys_of(answered->actions, action::dispatch),
            (std::vector<std::string>{"child/twice"}));
  rec.take(m.succeeded("child/twice", 1, json{{"n", 42}}, 1, 3000));
  ASSERT_TRUE(m.finished());
  EXPECT_EQ(m.info().output.get(), json(42));
  auto check = check_against(rec.log);
  ASSERT_TRUE(check);
  EXPECT_TRUE(check->compatible())
    << (check->first ? to_json(*check->first).dump() : "");
}

TEST(NestedItems, TheAirflowMonitorRunsOneSubWorkflowPerFailedTask) {
  auto r = parse_file(std::string{CADRE_SOURCE_DIR}
                        + "/examples/airflow-monitor/monitor.yaml",
                      validation_context{});
  ASSERT_TRUE(r.def) << all_errors(r);
  auto i = r.def->index_of("incident");
  ASSERT_GE(i, 0);
  const auto& incident = r.def->tasks[static_cast<size_t>(i)];
  EXPECT_EQ(incident.item_kind, task_kind::workflow);
  auto inner = load_document(incident.workflow);
  ASSERT_TRUE(inner) << describe(inner.error());
  EXPECT_GE(inner->index_of("decide"), 0);
  EXPECT_EQ(inner->agents.count("analyzer"), 1u);
  auto alert = r.def->index_of("alert");
  ASSERT_GE(alert, 0);
  EXPECT_TRUE(r.def->tasks[static_cast<size_t>(alert)].hook);
  EXPECT_EQ(r.def->tasks[static_cast<size_t>(alert)].tool, "notify");
}

} // namespace
