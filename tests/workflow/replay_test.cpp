// Replay on recorded logs without an actor system: the state at any event
// equals the live machine's, a definition is checked against history, forks
// reuse what their edits do not reach, and diffs name what changed.

#include <deque>
#include <map>
#include <set>
#include <string>

#include <gtest/gtest.h>

#include "cadre/workflow/agent_machine.hpp"
#include "big_map_log.hpp"
#include "cadre/workflow/machine.hpp"
#include "cadre/workflow/replay.hpp"
#include "snapshot_logs.hpp"

using namespace cadre;
using namespace cadre::workflow;

namespace {

// A map, a retried task, a condition, a person and tasks that read each
// other's outputs.
json pipeline(const std::string& condition = "input.x == 'go'",
              const std::string& prompt = "ok {{ tasks.b.output.y }}?") {
  return json{
    {"name", "pipeline"},
    {"version", "1"},
    {"tasks",
     {{{"id", "a"}, {"tool", "echo"}, {"input", {{"x", "{{ input.x }}"}}}},
      {{"id", "b"},
       {"tool", "echo"},
       {"depends_on", "a"},
       {"input", {{"y", "{{ tasks.a.output.x }}"}}}},
      {{"id", "flaky"},
       {"tool", "flaky"},
       {"retry", {{"max_attempts", 3}, {"backoff", "10ms"}, {"jitter", 0.5}}},
       {"input", {{"z", 1}}}},
      {{"id", "each"},
       {"kind", "map"},
       {"items", "input.list"},
       {"tool", "echo"},
       {"input", {{"v", "{{ item }}"}}}},
      {{"id", "c"},
       {"tool", "echo"},
       {"depends_on", "b"},
       {"when", condition},
       {"input", {{"c", true}}}},
      {{"id", "h"},
       {"kind", "human"},
       {"depends_on", json::array({"c", "flaky", "each"})},
       {"prompt", prompt}},
      {{"id", "d"},
       {"tool", "echo"},
       {"depends_on", "h"},
       {"input", {{"answer", "{{ tasks.h.output }}"}}}}}}};
}

json pipeline_input() {
  return json{{"x", "go"}, {"list", {1, 2, 3}}};
}

// Runs a definition to its end against a pretend world: `echo` answers its
// input, `flaky` fails its first attempt, a person answers `answer`. Keeps
// the log and the live machine's state after every step.
struct recorded_run {
  std::vector<event> log;
  std::map<uint64_t, json> states; // last seq of a step -> view then
  std::map<std::string, int> calls; // tool -> dispatches answered
  std::vector<event> snapshots;     // the steps' snapshot logs
};

// Runs `todo` and what follows from it to the end of the execution.
void live(machine& m, std::deque<action> todo, recorded_run& run,
          const json& answer, int64_t now) {
  auto take = [&](step s) {
    for (auto& ev : s.events)
      run.log.push_back(ev);
    for (auto& a : s.actions)
      todo.push_back(a);
    for (auto& ev : s.snapshots)
      run.snapshots.push_back(ev);
    run.states[m.last_seq()] = m.view();
  };
  while (!todo.empty() && !m.finished()) {
    auto a = todo.front();
    todo.pop_front();
    now += 10;
    switch (a.kind) {
      case action::dispatch:
        ++run.calls[a.tool];
        // In an item's sub-workflow, only the item's first run flakes.
        if (a.tool == "flaky" && a.attempt == 1
            && a.key.find('@') == std::string::npos)
          take(m.failed(a.key, a.attempt,
                        make_error(errc::tool_failed, "flaked"), 0.25, now));
        else
          take(m.succeeded(a.key, a.attempt, a.input, 5, now));
        break;
      case action::retry_timer:
        take(m.retry_due(a.key, a.attempt, now));
        break;
      case action::waiting_human: {
        // A question of an item's run that failed meanwhile is closed.
        if (m.unit_state(a.key) != "waiting")
          break;
        auto s = m.human_answer(a.task_id, answer, now);
        EXPECT_TRUE(s) << describe(s.error());
        take(std::move(*s));
        break;
      }
      default:
        break;
    }
  }
  EXPECT_TRUE(m.finished());
}

recorded_run record(const json& doc, const json& input,
                    const json& answer = "yes", uint64_t snapshot_every = 0) {
  recorded_run run;
  machine m{"parent"};
  m.snapshot_every(snapshot_every);
  auto first = m.submit(doc, input, "key-1", 1000);
  EXPECT_TRUE(first) << describe(first.error());
  run.log = first->events;
  run.snapshots = first->snapshots;
  run.states[m.last_seq()] = m.view();
  live(m, {first->actions.begin(), first->actions.end()}, run, answer, 1000);
  return run;
}

// Goes on with a fork the way a recovered coordinator does.
recorded_run continue_fork(const fork_plan& plan) {
  recorded_run run;
  run.log = plan.events;
  auto m = fold_log(plan.events);
  EXPECT_TRUE(m) << describe(m.error());
  auto todo = m->recover(6000);
  live(*m, {todo.begin(), todo.end()}, run, "from the live fork", 6000);
  return run;
}

std::string status_of(const json& view, const std::string& task) {
  for (const auto& t : view["tasks"])
    if (t["id"] == task)
      return t["state"].get<std::string>();
  return "absent";
}

} // namespace

TEST(Replay, InspectAtEverySeqEqualsTheLiveState) {
  auto run = record(pipeline(), pipeline_input());
  ASSERT_GT(run.log.size(), 20u);
  EXPECT_EQ(run.log.back().type, "execution_completed");
  for (const auto& [seq, live] : run.states) {
    auto m = fold_log(run.log, seq);
    ASSERT_TRUE(m) << describe(m.error());
    EXPECT_EQ(m->view(), live) << "at seq " << seq;
  }
  // Between steps too: each prefix folds, and a task's state only moves on.
  auto mid = fold_log(run.log, 3);
  ASSERT_TRUE(mid);
  EXPECT_EQ(mid->view()["seq"], 3);
  auto past = fold_log(run.log, run.log.size() + 1);
  ASSERT_FALSE(past);
  EXPECT_EQ(code_of(past.error()), errc::not_found);
}

TEST(Replay, InspectShowsRetriesWaitsAndErrors) {
  auto run = record(pipeline(), pipeline_input());
  // After flaky's first failure: waiting for its retry, with the error.
  uint64_t failed_at = 0;
  uint64_t asked_at = 0;
  for (const auto& ev : run.log) {
    if (ev.type == "task_failed" && failed_at == 0)
      failed_at = ev.seq;
    if (ev.type == "human_requested")
      asked_at = ev.seq;
  }
  ASSERT_GT(failed_at, 0u);
  auto m = fold_log(run.log, failed_at);
  ASSERT_TRUE(m);
  auto v = m->view();
  EXPECT_EQ(status_of(v, "flaky"), "retry_wait");
  bool timer = false;
  for (const auto& t : v["timers"])
    timer = timer || t["task"] == "flaky";
  EXPECT_TRUE(timer) << v.dump();
  for (const auto& t : v["tasks"]) {
    if (t["id"] == "flaky") {
      EXPECT_EQ(t["error"]["code"], "tool_failed");
      EXPECT_EQ(t["error"]["message"], "flaked");
    }
  }
  auto w = fold_log(run.log, asked_at);
  ASSERT_TRUE(w);
  auto wv = w->view();
  EXPECT_EQ(wv["status"], "waiting");
  ASSERT_EQ(wv["waiting"].size(), 1u);
  EXPECT_EQ(wv["waiting"][0]["prompt"], "ok go?");
}

TEST(Replay, TheRecordedDefinitionIsCompatibleWithItsLog) {
  auto run = record(pipeline(), pipeline_input());
  auto same = check_against(run.log);
  ASSERT_TRUE(same) << describe(same.error());
  EXPECT_TRUE(same->compatible())
    << to_json(*same->first).dump(2);
  EXPECT_EQ(same->events, run.log.size());
}

TEST(Replay, AChangedConditionDivergesWhereItIsDecided) {
  auto run = record(pipeline(), pipeline_input());
  auto changed = pipeline("input.x == 'stop'");
  auto r = check_against(run.log, &changed);
  ASSERT_TRUE(r) << describe(r.error());
  ASSERT_FALSE(r->compatible());
  const auto& d = *r->first;
  // The recorded dispatch of c is where the new condition skips it.
  ASSERT_LE(d.seq, run.log.size());
  const auto& at = run.log[d.seq - 1];
  EXPECT_EQ(at.type, "task_dispatched");
  EXPECT_EQ(at.payload->value("task", ""), "c");
  EXPECT_EQ(d.got["type"], "task_skipped");
  EXPECT_NE(d.reason.find("task_skipped of c"), std::string::npos) << d.reason;
}

TEST(Replay, AChangedPromptAndARemovedTaskDiverge) {
  auto run = record(pipeline(), pipeline_input());
  auto prompt = pipeline("input.x == 'go'", "really {{ tasks.b.output.y }}?");
  auto r = check_against(run.log, &prompt);
  ASSERT_TRUE(r);
  ASSERT_FALSE(r->compatible());
  EXPECT_EQ(r->first->task, "h");
  EXPECT_EQ(r->first->got["payload"]["prompt"], "really go?");

  auto removed = pipeline();
  auto& tasks = removed["tasks"];
  tasks.erase(tasks.begin() + 6); // d
  auto q = check_against(run.log, &removed);
  ASSERT_TRUE(q);
  ASSERT_FALSE(q->compatible());
  EXPECT_EQ(q->first->task, "d");
}

TEST(Replay, AChangedAgentSpecDivergesAtTheTurn) {
  auto doc = [](const std::string& system) {
    return json{{"name", "w"},
                {"agents", {{"helper", {{"system", system}}}}},
                {"tasks", {{{"id", "ask"}, {"agent", "helper"},
                            {"input", "hi"}}}}};
  };
  machine m{"e"};
  auto s = m.submit(doc("be brief"), json::object(), "", 1);
  ASSERT_TRUE(s) << describe(s.error());
  std::vector<event> log = s->events;
  for (auto& ev : m.succeeded("ask", 1, "hello", 0, 2).events)
    log.push_back(ev);
  auto same = check_against(log);
  ASSERT_TRUE(same);
  EXPECT_TRUE(same->compatible());
  auto other = doc("be verbose");
  auto r = check_against(log, &other);
  ASSERT_TRUE(r);
  ASSERT_FALSE(r->compatible());
  EXPECT_EQ(r->first->task, "ask");
  EXPECT_NE(r->first->reason.find("agent helper"), std::string::npos);
}

TEST(Replay, AnUneditedForkReusesEverything) {
  auto run = record(pipeline(), pipeline_input());
  auto plan = plan_fork(run.log, 0, fork_edits{}, "child", 5000);
  ASSERT_TRUE(plan) << describe(plan.error());
  EXPECT_TRUE(plan->to_run.empty());
  EXPECT_TRUE(plan->waiting.empty());
  ASSERT_TRUE(plan->index);
  EXPECT_EQ(plan->index->status, "completed");
  EXPECT_EQ(plan->events.back().type, "execution_forked");
  // Everything but the marker is the parent's history again.
  std::vector<event> without_marker(plan->events.begin(),
                                    plan->events.end() - 1);
  auto d = diff_logs(run.log, without_marker);
  ASSERT_TRUE(d) << describe(d.error());
  EXPECT_TRUE(d->same()) << d->first_a.dump() << "\n" << d->first_b.dump();
  for (const auto& t : d->tasks)
    EXPECT_EQ(t["status"], "same") << t.dump();
}

TEST(Replay, AForkKnowsItsParentAndWhatItRunsAgainAcrossSnapshots) {
  auto run = record(pipeline(), pipeline_input());
  fork_edits edits;
  edits.rerun.insert("b");
  auto plan = plan_fork(run.log, 0, edits, "child", 5000);
  ASSERT_TRUE(plan) << describe(plan.error());
  auto m = fold_log(plan->events);
  ASSERT_TRUE(m) << describe(m.error());
  EXPECT_EQ(m->forked_from(), run.log.front().execution_id);
  EXPECT_TRUE(m->fork_reruns("b"));
  EXPECT_FALSE(m->fork_reruns("other"));
  auto back = machine::restore("child", m->snapshot());
  ASSERT_TRUE(back) << describe(back.error());
  EXPECT_EQ(back->forked_from(), m->forked_from());
  EXPECT_TRUE(back->fork_reruns("b"));
  // The parent is no fork.
  auto parent = fold_log(run.log);
  ASSERT_TRUE(parent);
  EXPECT_TRUE(parent->forked_from().empty());
}

TEST(Replay, AForkRerunsOnlyWhatItsEditReaches) {
  auto run = record(pipeline(), pipeline_input());
  uint64_t asked_at = 0;
  for (const auto& ev : run.log)
    if (ev.type == "human_requested")
      asked_at = ev.seq;
  fork_edits edits;
  edits.outputs["a"] = json{{"x", "stop"}};
  auto plan = plan_fork(run.log, asked_at, edits, "child", 5000);
  ASSERT_TRUE(plan) << describe(plan.error());
  // b reads a's output, so it runs again; flaky and the map items do not.
  ASSERT_EQ(plan->to_run.size(), 1u);
  EXPECT_EQ(plan->to_run[0].first, "b");
  EXPECT_EQ(plan->to_run[0].second, "echo");
  EXPECT_EQ(plan->edited, std::vector<std::string>{"a"});
  std::set<std::string> reused(plan->reused.begin(), plan->reused.end());
  EXPECT_TRUE(reused.count("flaky"));
  EXPECT_TRUE(reused.count("each[0]"));
  EXPECT_FALSE(reused.count("b"));
  // c, h and d wait for b.
  std::set<std::string> undecided(plan->undecided.begin(),
                                  plan->undecided.end());
  EXPECT_TRUE(undecided.count("c"));
  EXPECT_TRUE(undecided.count("d"));
  // The fork's log folds, with b running and a's output replaced.
  auto m = fold_log(plan->events);
  ASSERT_TRUE(m) << describe(m.error());
  auto view = m->view();
  EXPECT_EQ(status_of(view, "b"), "running");
  for (const auto& t : view["tasks"]) {
    if (t["id"] == "a") {
      EXPECT_EQ(t["output"], (json{{"x", "stop"}}));
    }
  }
  // What the live fork re-dispatches is b alone.
  auto actions = m->recover(6000);
  size_t dispatches = 0;
  for (const auto& a : actions)
    if (a.kind == action::dispatch) {
      ++dispatches;
      EXPECT_EQ(a.key, "b");
      EXPECT_EQ(a.input, (json{{"y", "stop"}}));
    }
  EXPECT_EQ(dispatches, 1u);
  EXPECT_EQ(plan->events.back().payload->at("edits")["outputs"]["a"]["x"],
            "stop");
}

TEST(Replay, AForkBeforeAResultRunsItAgainAndAnswersCanBeEdited) {
  auto run = record(pipeline(), pipeline_input());
  // At seq 3 nothing has finished: every dispatched task runs again.
  auto early = plan_fork(run.log, 3, fork_edits{}, "early", 5000);
  ASSERT_TRUE(early) << describe(early.error());
  EXPECT_TRUE(early->reused.empty());
  EXPECT_FALSE(early->to_run.empty());

  fork_edits edits;
  edits.answers["h"] = "no";
  auto answered = plan_fork(run.log, 0, edits, "answered", 5000);
  ASSERT_TRUE(answered) << describe(answered.error());
  ASSERT_EQ(answered->to_run.size(), 1u);
  EXPECT_EQ(answered->to_run[0].first, "d");

  fork_edits rerun;
  rerun.rerun.insert("flaky");
  auto again = plan_fork(run.log, 0, rerun, "again", 5000);
  ASSERT_TRUE(again);
  ASSERT_EQ(again->to_run.size(), 1u);
  EXPECT_EQ(again->to_run[0].first, "flaky");

  fork_edits bad;
  bad.outputs["nope"] = 1;
  auto refused = plan_fork(run.log, 0, bad, "bad", 5000);
  ASSERT_FALSE(refused);
  EXPECT_EQ(code_of(refused.error()), errc::invalid_input);
  EXPECT_NE(message_of(refused.error()).find("'nope'"), std::string::npos);
}

TEST(Replay, DiffNamesTheFirstDivergenceAndEachTask) {
  auto a = record(pipeline(), pipeline_input(), "yes");
  auto b = record(pipeline(), pipeline_input(), "no");
  auto same = diff_logs(a.log, a.log);
  ASSERT_TRUE(same);
  EXPECT_TRUE(same->same());
  auto d = diff_logs(a.log, b.log);
  ASSERT_TRUE(d) << describe(d.error());
  ASSERT_FALSE(d->same());
  EXPECT_EQ(d->first_a["payload"]["output"], "yes");
  EXPECT_EQ(d->first_b["payload"]["output"], "no");
  std::map<std::string, json> by_task;
  for (const auto& t : d->tasks)
    by_task[t["task"].get<std::string>()] = t;
  EXPECT_EQ(by_task["a"]["status"], "same");
  EXPECT_EQ(by_task["h"]["status"], "different");
  EXPECT_EQ(by_task["d"]["status"], "different");
  EXPECT_EQ(by_task["d"]["changes"][0]["pointer"], "/output/answer");
}

TEST(Replay, JsonChangesEscapePointers) {
  auto c = json_changes(json{{"a/b", 1}, {"k", {1, 2}}},
                        json{{"a/b", 2}, {"k", {1}}, {"n", true}});
  ASSERT_EQ(c.size(), 3u);
  EXPECT_EQ(c[0]["pointer"], "/a~1b");
  EXPECT_EQ(c[1]["pointer"], "/k/1");
  EXPECT_FALSE(c[1].contains("b"));
  EXPECT_EQ(c[2]["pointer"], "/n");
}

TEST(Replay, AForksEditsHoldForTasksThatRunAfterIt) {
  auto run = record(pipeline(), pipeline_input());
  fork_edits edits;
  edits.outputs["d"] = json{{"answer", "edited"}};
  edits.answers["h"] = "no";
  auto plan = plan_fork(run.log, 3, edits, "child", 5000);
  ASSERT_TRUE(plan) << describe(plan.error());
  auto child = continue_fork(*plan);
  ASSERT_EQ(child.log.back().type, "execution_completed");
  const auto& out = child.log.back().payload->at("output");
  EXPECT_EQ(out["d"], (json{{"answer", "edited"}}));
  EXPECT_EQ(out["h"], "no");
  // d never reached its tool: its one dispatch is the fork's edit.
  size_t d_completions = 0;
  for (const auto& ev : child.log)
    if (ev.type == "task_completed" && ev.payload->value("task", "") == "d") {
      ++d_completions;
      EXPECT_EQ(ev.payload->value("by", ""), "fork");
    }
  EXPECT_EQ(d_completions, 1u);
  EXPECT_EQ(child.calls.count("flaky") ? child.calls["flaky"] : 0, 2);
  // The fork's own log replays with its recorded definition.
  auto same = check_against(child.log);
  ASSERT_TRUE(same) << describe(same.error());
  EXPECT_TRUE(same->compatible()) << to_json(*same->first).dump(2);
  // The parent is untouched: a fork is a new log.
  EXPECT_EQ(run.log.front().execution_id, "parent");
  EXPECT_EQ(child.log.front().execution_id, "child");
}

TEST(Replay, AForkRefusesAnAnswerItsSchemaRejects) {
  auto doc = pipeline();
  doc["tasks"][5]["answer_schema"] = json{{"type", "string"},
                                          {"enum", {"yes", "no"}}};
  auto run = record(doc, pipeline_input());
  fork_edits edits;
  edits.answers["h"] = "maybe";
  auto plan = plan_fork(run.log, 0, edits, "child", 5000);
  ASSERT_FALSE(plan);
  EXPECT_EQ(code_of(plan.error()), errc::invalid_input);
  EXPECT_NE(message_of(plan.error()).find("--answer h"), std::string::npos)
    << message_of(plan.error());
}

TEST(Replay, ASnapshotRestoresTheStateAtEverySeq) {
  auto run = record(pipeline(), pipeline_input());
  auto whole = fold_log(run.log);
  ASSERT_TRUE(whole);
  for (uint64_t seq = 1; seq <= run.log.size(); ++seq) {
    auto m = fold_log(run.log, seq);
    ASSERT_TRUE(m);
    // Through JSON text, as the store keeps it.
    auto snap = json::parse(m->snapshot().dump());
    auto r = machine::restore("parent", snap);
    ASSERT_TRUE(r) << describe(r.error());
    EXPECT_EQ(r->view(), m->view()) << "at seq " << seq;
    EXPECT_EQ(r->recover(9000).size(), m->recover(9000).size());
    std::vector<event> rest(run.log.begin() + static_cast<long>(seq),
                            run.log.end());
    auto on = fold_from("parent", snap, rest);
    ASSERT_TRUE(on) << describe(on.error());
    EXPECT_EQ(on->view(), whole->view()) << "from seq " << seq;
  }
}

TEST(Replay, ARestoredMachineDecidesAsTheOriginal) {
  auto run = record(pipeline(), pipeline_input());
  uint64_t asked_at = 0;
  for (const auto& ev : run.log)
    if (ev.type == "human_requested")
      asked_at = ev.seq;
  auto m = fold_log(run.log, asked_at);
  ASSERT_TRUE(m);
  auto r = machine::restore("parent", m->snapshot());
  ASSERT_TRUE(r);
  auto a = m->human_answer("h", "yes", 7000);
  auto b = r->human_answer("h", "yes", 7000);
  ASSERT_TRUE(a);
  ASSERT_TRUE(b);
  ASSERT_EQ(a->events.size(), b->events.size());
  for (size_t i = 0; i < a->events.size(); ++i) {
    EXPECT_EQ(a->events[i].type, b->events[i].type);
    EXPECT_EQ(a->events[i].payload, b->events[i].payload);
  }
  // Another execution's snapshot or another format is refused.
  EXPECT_FALSE(machine::restore("other", m->snapshot()));
  auto old = m->snapshot();
  old["format"] = 99;
  auto refused = machine::restore("parent", old);
  ASSERT_FALSE(refused);
  EXPECT_EQ(code_of(refused.error()), errc::codec_error);
}

TEST(Replay, AForkBranchesTheParentsAgentMemoryAtReusedTurns) {
  auto ev = [](const std::string& log, uint64_t seq, const std::string& turn,
               int64_t time = 1, const char* type = "agent_message") {
    return event{log, seq, time, type,
                 json_value{json{{"turn", turn}, {"message", "m"}}}};
  };
  std::vector<event> log{ev("agent:p/helper", 1, "p/ask/1"),
                         ev("agent:p/helper", 2, "p/ask/1"),
                         ev("agent:p/helper", 3, "p/later/1"),
                         ev("agent:p/helper", 4, "p/ask/2")};
  auto copy = branch_agent_log(log, "p", "f", {"ask"}, 100);
  ASSERT_EQ(copy.size(), 3u);
  for (size_t i = 0; i < copy.size(); ++i) {
    EXPECT_EQ(copy[i].execution_id, "agent:f/helper");
    EXPECT_EQ(copy[i].seq, i + 1);
  }
  EXPECT_EQ(copy[2].payload->value("turn", ""), "p/ask/2");
}

TEST(Replay, AForkBranchesASharedAgentLogAtTheForkPoint) {
  auto ev = [](uint64_t seq, const std::string& turn, int64_t time,
               const char* type = "agent_message") {
    return event{"agent:helper", seq, time, type,
                 json_value{json{{"turn", turn}}}};
  };
  // Memory scope `agent`: one log for every execution's turns.
  std::vector<event> shared{ev(1, "o/x/1", 10), ev(2, "o/x/1", 20,
                                                     "agent_turn_completed"),
                            ev(3, "p/ask/1", 30),
                            ev(4, "p/ask/1", 40, "agent_turn_completed"),
                            ev(5, "q/y/1", 50), // still running at the cut
                            ev(6, "p/redo/1", 60),
                            ev(7, "p/redo/1", 70, "agent_turn_completed"),
                            ev(8, "q/y/1", 80, "agent_turn_completed"),
                            ev(9, "r/z/1", 90),
                            ev(10, "r/z/1", 95, "agent_turn_completed")};
  auto copy = branch_agent_log(shared, "p", "f", {"ask"}, 75);
  std::vector<std::string> turns;
  for (size_t i = 0; i < copy.size(); ++i) {
    EXPECT_EQ(copy[i].execution_id, "agent:f/helper");
    EXPECT_EQ(copy[i].seq, i + 1);
    turns.push_back(copy[i].payload->value("turn", ""));
  }
  // Another execution's turn that had ended, the parent's reused turn; not
  // the parent's re-run turn, nor turns unfinished or begun after the cut.
  EXPECT_EQ(turns, (std::vector<std::string>{"o/x/1", "o/x/1", "p/ask/1",
                                             "p/ask/1"}));
  // Another log is not the parent's to branch.
  for (const char* name : {"llmcache:1", "agent:grandparent/helper"}) {
    std::vector<event> other{event{name, 1, 1, "agent_message",
                                   json_value{json{{"turn", "o/x/1"}}}}};
    EXPECT_TRUE(branch_agent_log(other, "p", "f", {"ask"}, 75).empty());
  }
}

// In the format logs had before specs were recorded apart: each
// agent_turn_started holds its spec; such logs still fork.
TEST(Replay, AForksRecordedRepliesAreThoseTheParentsTurnsGot) {
  auto ev = [](const std::string& log, uint64_t seq, const char* type,
               json payload) {
    return event{log, seq, 1, type, json_value{std::move(payload)}};
  };
  json spec{{"system", "s"}, {"script", "hi"}};
  json req{{"model", "m"}, {"messages", json::array()}};
  json res{{"message", {{"role", "assistant"}, {"content", "hello"}}}};
  std::vector<event> shared{
    ev("agent:helper", 1, "agent_turn_started",
       {{"turn", "o/x/1"}, {"agent", "helper"}, {"spec", spec}}),
    ev("agent:helper", 2, "llm_requested",
       {{"turn", "o/x/1"}, {"call", 1}, {"request", req}}),
    ev("agent:helper", 3, "llm_responded",
       {{"turn", "o/x/1"}, {"call", 1}, {"response", res}}),
    ev("agent:helper", 4, "agent_turn_started",
       {{"turn", "p/ask/1"}, {"agent", "helper"}, {"spec", spec}}),
    ev("agent:helper", 5, "llm_requested",
       {{"turn", "p/ask/1"}, {"call", 1}, {"request", req}}),
    ev("agent:helper", 6, "llm_responded",
       {{"turn", "p/ask/1"}, {"call", 1}, {"response", res}}),
    // Asked, never answered: nothing to reuse.
    ev("agent:helper", 7, "llm_requested",
       {{"turn", "p/ask/1"}, {"call", 2}, {"request", req}})};
  std::vector<event> own{
    ev("agent:p/helper", 1, "agent_turn_started",
       {{"turn", "p/b/1"}, {"agent", "helper"}, {"spec", spec}}),
    ev("agent:p/helper", 2, "llm_requested",
       {{"turn", "p/b/1"}, {"call", 1}, {"request", req}}),
    ev("agent:p/helper", 3, "llm_responded",
       {{"turn", "p/b/1"}, {"call", 1}, {"response", res}})};
  auto got = fork_replies({shared, own}, "p", "f", 7);
  // The same request and reply twice is kept once; another execution's
  // calls in the shared log are not the parent's.
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0].execution_id, fork_replies_log("f"));
  EXPECT_EQ(got[0].seq, 1u);
  EXPECT_EQ(got[0].type, "llm_recorded");
  EXPECT_EQ(got[0].payload.get(),
            (json{{"request", req}, {"script", "hi"}, {"response", res}}));
}

// A log of this build records each distinct spec once (agent_spec) and its
// turns name it: a fork's branch takes the specs its kept turns name, so a
// turn resumed or re-read in the fork still has its spec, and the fork's
// recorded replies carry the script the named spec holds.
TEST(Replay, AForkTakesTheSpecsItsKeptTurnsName) {
  json a{{"system", "a"}, {"script", "one"}};
  json b{{"system", "b"}, {"script", "two"}};
  json req{{"model", "m"}, {"messages", json::array()}};
  json res{{"message", {{"role", "assistant"}, {"content", "hello"}}}};
  auto ev = [](uint64_t seq, const char* type, json payload) {
    return event{"agent:p/helper", seq, 1, type,
                 json_value{std::move(payload)}};
  };
  std::vector<event> log{
    ev(1, "agent_spec", {{"spec_id", 1}, {"agent", "helper"}, {"spec", a}}),
    ev(2, "agent_turn_started",
       {{"turn", "p/ask/1"}, {"agent", "helper"}, {"spec_id", 1}}),
    ev(3, "llm_requested", {{"turn", "p/ask/1"}, {"call", 1},
                            {"request", req}}),
    ev(4, "llm_responded", {{"turn", "p/ask/1"}, {"call", 1},
                            {"response", res}}),
    ev(5, "agent_spec", {{"spec_id", 2}, {"agent", "helper"}, {"spec", b}}),
    ev(6, "agent_turn_started",
       {{"turn", "p/later/1"}, {"agent", "helper"}, {"spec_id", 2}}),
    ev(7, "agent_turn_started",
       {{"turn", "p/more/1"}, {"agent", "helper"}, {"spec_id", 1}}),
    ev(8, "llm_requested", {{"turn", "p/more/1"}, {"call", 1},
                            {"request", {{"n", 2}}}}),
    ev(9, "llm_responded", {{"turn", "p/more/1"}, {"call", 1},
                            {"response", res}})};
  // Keeping `ask` and `more` (spec 1), not `later` (spec 2).
  auto copy = branch_agent_log(log, "p", "f", {"ask", "more"}, 100);
  std::vector<std::string> types;
  for (const auto& e : copy)
    types.push_back(e.type);
  EXPECT_EQ(types, (std::vector<std::string>{
                     "agent_spec", "agent_turn_started", "llm_requested",
                     "llm_responded", "agent_turn_started", "llm_requested",
                     "llm_responded"}));
  EXPECT_EQ(copy[0].payload.get()["spec"], a);
  for (size_t i = 0; i < copy.size(); ++i)
    EXPECT_EQ(copy[i].seq, i + 1);
  // The turns of the branch find their spec in it.
  agent_spec_table specs;
  for (const auto& e : copy)
    specs.apply(e);
  const json* found = specs.of(copy[1].payload.get());
  ASSERT_NE(found, nullptr);
  EXPECT_EQ(*found, a);
  // Keeping only `later` takes spec 2 alone.
  auto later = branch_agent_log(log, "p", "f", {"later"}, 100);
  ASSERT_EQ(later.size(), 2u);
  EXPECT_EQ(later[0].payload.get()["spec"], b);
  EXPECT_EQ(later[1].payload.get()["spec_id"], 2);
  // Each reply recorded for the fork carries its turn's script.
  auto got = fork_replies({log}, "p", "f", 7);
  ASSERT_EQ(got.size(), 2u);
  EXPECT_EQ(got[0].payload.get()["script"], "one");
  EXPECT_EQ(got[1].payload.get()["script"], "one");
  EXPECT_EQ(got[1].payload.get()["request"], (json{{"n", 2}}));
}

// A request recorded as what changed since the log's previous one: a
// fork's branch that leaves a turn out records the next request again
// relative to its own previous one, so the branch and the fork's recorded
// replies rebuild the very requests the parent's turns asked.
TEST(Replay, AForksBranchRebuildsRequestsRecordedAsChanges) {
  agent_machine m{"p/helper"};
  std::vector<event> log;
  std::map<std::string, llm_request> asked;
  json spec{{"system", "s"}, {"script", "hi"}};
  for (const char* key : {"a", "b", "c"}) {
    agent_turn t;
    t.agent = "helper";
    t.spec = json_value{spec};
    t.input = json_value{json(std::string{"q "} + key)};
    t.execution_id = "p";
    t.task_id = key;
    t.idempotency_key = std::string{"p/"} + key + "/1";
    auto s = m.start(t, 1);
    ASSERT_TRUE(s);
    log.insert(log.end(), s->events.begin(), s->events.end());
    auto b = m.begin(1);
    ASSERT_EQ(b.actions.size(), 1u);
    asked[t.idempotency_key] = *m.last_request();
    log.insert(log.end(), b.events.begin(), b.events.end());
    llm_response res;
    res.message.role = "assistant";
    res.message.content = std::string{"answer "} + key;
    auto r = m.model_replied(t.idempotency_key, 1, res, false, 1);
    log.insert(log.end(), r.events.begin(), r.events.end());
  }
  auto whole_requests = [](const std::vector<event>& evs) {
    std::map<std::string, json> out;
    agent_request_log requests;
    for (const auto& e : evs)
      if (const auto* r = requests.apply(e))
        out[e.payload.get().value("turn", "")] = *r;
      else if (e.type == agent_events::llm_requested)
        ADD_FAILURE() << e.payload.get();
    return out;
  };
  // `b` left out: c's request was recorded relative to b's.
  auto branch = branch_agent_log(log, "p", "f", {"a", "c"}, 100);
  auto rebuilt = whole_requests(branch);
  ASSERT_EQ(rebuilt.size(), 2u);
  EXPECT_EQ(rebuilt["p/a/1"], json(asked["p/a/1"]));
  EXPECT_EQ(rebuilt["p/c/1"], json(asked["p/c/1"]));
  for (const auto& e : branch) {
    if (e.type == agent_events::llm_requested
        && e.payload.get()["turn"] == "p/c/1") {
      EXPECT_TRUE(e.payload.get().contains("delta")) << e.payload.get();
    }
  }
  // The recorded replies carry each request whole.
  auto got = fork_replies({log}, "p", "f", 7);
  ASSERT_EQ(got.size(), 3u);
  EXPECT_EQ(got[2].payload.get()["request"], json(asked["p/c/1"]));
}

TEST(Replay, AStepperGivesTheStateAtEverySeqAndStepsBackCheaply) {
  auto run = record(pipeline(), pipeline_input());
  const uint64_t n = run.log.size();
  const uint64_t every = 4;
  stepper walk{run.log, every};
  // Forward, one fold per step.
  for (uint64_t seq = 1; seq <= n; ++seq) {
    auto v = walk.view_at(seq);
    ASSERT_TRUE(v) << describe(v.error());
    EXPECT_EQ(*v, fold_log(run.log, seq)->view()) << "at seq " << seq;
  }
  EXPECT_EQ(walk.folded(), n);
  // Back to the start: each step restores a kept snapshot and folds fewer
  // than `every` events, where refolding the prefix would fold n*(n-1)/2.
  auto before = walk.folded();
  for (uint64_t seq = n - 1; seq >= 1; --seq) {
    auto v = walk.view_at(seq);
    ASSERT_TRUE(v) << describe(v.error());
    EXPECT_EQ(*v, fold_log(run.log, seq)->view()) << "back at seq " << seq;
  }
  EXPECT_LE(walk.folded() - before, (n - 1) * every);
  // Jumps either way, and seqs outside the log.
  for (uint64_t seq : {n, uint64_t{3}, n / 2, uint64_t{1}, n - 2}) {
    auto v = walk.view_at(seq);
    ASSERT_TRUE(v) << describe(v.error());
    EXPECT_EQ(*v, fold_log(run.log, seq)->view()) << "jump to " << seq;
  }
  EXPECT_EQ(code_of(walk.view_at(0).error()), errc::not_found);
  EXPECT_EQ(code_of(walk.view_at(n + 1).error()), errc::not_found);
}

// The pipeline over a map of `items` items: a log of about 2 * items events.
json long_input(int items) {
  auto in = pipeline_input();
  in["list"] = json::array();
  for (int i = 0; i < items; ++i)
    in["list"].push_back(i);
  return in;
}

TEST(Replay, AStepperKeepsBoundedSnapshotsHoweverFarItWalks) {
  auto run = record(pipeline(), long_input(300));
  const uint64_t n = run.log.size();
  const uint64_t every = 2;
  ASSERT_GT(n / every, 4 * stepper::max_kept);
  stepper walk{run.log, every};
  machine fold{"parent"};
  for (uint64_t seq = 1; seq <= n; ++seq) {
    auto v = walk.view_at(seq);
    ASSERT_TRUE(v) << describe(v.error());
    ASSERT_TRUE(fold.apply(run.log[seq - 1]));
    ASSERT_EQ(*v, fold.view()) << "at seq " << seq;
    ASSERT_LE(walk.kept(), stepper::max_kept) << "at seq " << seq;
  }
  EXPECT_EQ(walk.folded(), n);
  // Back to the start one event at a time: memory stays bounded and a step
  // back costs a few folds, where refolding the prefix would fold
  // n*(n-1)/2.
  auto before = walk.folded();
  for (uint64_t seq = n - 1; seq >= 1; --seq) {
    auto v = walk.view_at(seq);
    ASSERT_TRUE(v) << describe(v.error());
    ASSERT_LE(walk.kept(), stepper::max_kept) << "back at seq " << seq;
    if (seq % 97 == 0) {
      EXPECT_EQ(*v, fold_log(run.log, seq)->view()) << "back at seq " << seq;
    }
  }
  EXPECT_LE(walk.folded() - before, (n - 1) * 4 * every);
  // Jumps either way.
  for (uint64_t seq : {n / 3, n, uint64_t{5}, n / 2, n - 1, uint64_t{1}}) {
    auto v = walk.view_at(seq);
    ASSERT_TRUE(v) << describe(v.error());
    EXPECT_EQ(*v, fold_log(run.log, seq)->view()) << "jump to " << seq;
    EXPECT_LE(walk.kept(), stepper::max_kept);
  }
}

TEST(Replay, PagedSnapshotsHoldTheStateAtTheirSeqAndWriteWhatChanged) {
  // A snapshot at every event, so every seq (inside the steps that
  // dispatch the 300 items too) is checked.
  auto run = record(pipeline(), long_input(300), "yes", 1);
  const uint64_t n = run.log.size();
  test::snapshot_logs snaps{run.snapshots};
  auto& logs = snaps.logs;
  size_t parts = 0;
  for (const auto& ev : run.snapshots)
    parts += ev.type == events::snapshot_part ? 1 : 0;
  ASSERT_EQ(logs.size(), n);
  // What a snapshot writes is what changed: a part or two an event, where
  // the whole state is 7 tasks and 2 pages of items.
  EXPECT_LT(parts, 2 * n);
  auto read = snaps.reader();
  machine fold{"parent"};
  for (uint64_t seq = 1; seq <= n; ++seq) {
    ASSERT_TRUE(fold.apply(run.log[seq - 1]));
    const auto& snap = logs[snapshot_log("parent", seq)];
    ASSERT_FALSE(snap.empty());
    ASSERT_EQ(snap.front().type, events::snapshot);
    const auto& root = snap.front().payload.get();
    EXPECT_EQ(root["format"], 2);
    EXPECT_EQ(root["seq"], seq);
    auto m = restore_snapshot("parent", root, read);
    ASSERT_TRUE(m) << describe(m.error());
    ASSERT_EQ(m->snapshot(), fold.snapshot()) << "at seq " << seq;
    // Restored, it goes on writing only what changes: nothing yet.
    EXPECT_EQ(m->paged_snapshot(n + seq, 0).size(), 1u);
  }
  // The whole state of older stores (format 1) still restores.
  auto old = restore_snapshot("parent", fold.snapshot(), read);
  ASSERT_TRUE(old) << describe(old.error());
  EXPECT_EQ(old->view(), fold.view());
  // A missing part is an error, not a wrong state.
  auto root = logs[snapshot_log("parent", n)].front().payload.get();
  logs.erase(snapshot_log("parent", 1));
  auto lost = restore_snapshot("parent", root, read);
  ASSERT_FALSE(lost);
  EXPECT_EQ(code_of(lost.error()), errc::codec_error);
}

TEST(Replay, ChangingSnapshotEveryUnderAnUnfinishedExecutionNamesEachSnapshotOnce) {
  // Snapshots every 2 events up to a step's end in the middle of the run,
  // where the node restarts with store.snapshot_every 5: the snapshots
  // after it must not name a log the ones before it wrote (that step's
  // write would fail and stop the execution).
  auto before = record(pipeline(), long_input(300), "yes", 2);
  auto mid = before.states.lower_bound(before.log.size() / 2)->first;
  std::set<std::string> names;
  for (const auto& ev : before.snapshots)
    if (ev.type == events::snapshot
        && ev.payload.get()["seq"].get<uint64_t>() <= mid)
      names.insert(ev.execution_id);
  ASSERT_GT(names.size(), 10u);
  auto m = fold_log(before.log, mid);
  ASSERT_TRUE(m) << describe(m.error());
  m->snapshot_every(5);
  recorded_run after;
  auto resumed = m->resume(5000, 3);
  after.log = resumed.events;
  after.snapshots = resumed.snapshots;
  live(*m, {resumed.actions.begin(), resumed.actions.end()}, after, "yes",
       5000);
  size_t roots = 0;
  for (const auto& ev : after.snapshots) {
    if (ev.type != events::snapshot)
      continue;
    ++roots;
    EXPECT_TRUE(names.insert(ev.execution_id).second)
      << ev.execution_id << " written twice";
  }
  EXPECT_GT(roots, 10u);
  // A reader looking for the newest state finds one written after the
  // restart, and it is the state the log folds to.
  std::vector<event> whole(before.log.begin(),
                           before.log.begin() + static_cast<long>(mid));
  whole.insert(whole.end(), after.log.begin(), after.log.end());
  ASSERT_EQ(whole.size(), m->last_seq());
  test::snapshot_logs snaps{after.snapshots};
  auto read = snaps.reader();
  for (const auto& name : snapshot_candidates("parent", m->last_seq(), 5)) {
    auto i = snaps.logs.find(name);
    if (i == snaps.logs.end())
      continue;
    const auto& root = i->second.front().payload.get();
    auto seq = root["seq"].get<uint64_t>();
    EXPECT_GT(seq, mid);
    auto restored = restore_snapshot("parent", root, read);
    ASSERT_TRUE(restored) << describe(restored.error());
    EXPECT_EQ(restored->view(), fold_log(whole, seq)->view());
    return;
  }
  ADD_FAILURE() << "no snapshot found after the restart";
}

TEST(Replay, AStepperReadsTheLogAChunkAtATimeAsItWalks) {
  auto run = record(pipeline(), pipeline_input());
  const uint64_t n = run.log.size();
  const uint64_t every = 4;
  ASSERT_GT(n, 3 * every);
  uint64_t largest = 0;
  uint64_t furthest = 0;
  stepper walk{[&](uint64_t from, uint64_t max) -> expected<std::vector<event>> {
                 largest = std::max(largest, max);
                 auto end = std::min<uint64_t>(from - 1 + max, n);
                 furthest = std::max(furthest, end);
                 return std::vector<event>(
                   run.log.begin() + static_cast<long>(from - 1),
                   run.log.begin() + static_cast<long>(end));
               },
               n, every};
  // The state at an early event reads no further than that event's chunk.
  auto v = walk.view_at(every + 1);
  ASSERT_TRUE(v) << describe(v.error());
  EXPECT_EQ(*v, fold_log(run.log, every + 1)->view());
  EXPECT_EQ(furthest, 2 * every);
  EXPECT_EQ(largest, every);
  auto ev = walk.event_at(n);
  ASSERT_TRUE(ev) << describe(ev.error());
  EXPECT_EQ((*ev)->seq, n);
  EXPECT_EQ((*ev)->type, run.log.back().type);
  EXPECT_EQ(largest, every);
  // Back to the beginning after the end.
  v = walk.view_at(2);
  ASSERT_TRUE(v) << describe(v.error());
  EXPECT_EQ(*v, fold_log(run.log, 2)->view());
  EXPECT_EQ(code_of(walk.event_at(n + 1).error()), errc::not_found);
}

TEST(Replay, RecoveryFindsItsLogCompatibleFromEverySnapshot) {
  auto run = record(pipeline(), pipeline_input());
  auto whole = check_recovery("parent", json{}, run.log);
  ASSERT_TRUE(whole) << describe(whole.error());
  EXPECT_TRUE(whole->compatible()) << to_json(*whole->first).dump();
  // From a snapshot at the end of each step, as the coordinator writes them.
  for (const auto& [seq, state] : run.states) {
    auto m = fold_log(run.log, seq);
    ASSERT_TRUE(m);
    auto snap = json::parse(m->snapshot().dump());
    std::vector<event> rest(run.log.begin() + static_cast<long>(seq),
                            run.log.end());
    auto r = check_recovery("parent", snap, rest);
    ASSERT_TRUE(r) << describe(r.error());
    EXPECT_TRUE(r->compatible())
      << "from seq " << seq << ": " << to_json(*r->first).dump();
    EXPECT_EQ(r->events, rest.size());
  }
}

TEST(Replay, RecoveryRefusesALogItsDecisionsNoLongerMatch) {
  auto run = record(pipeline(), pipeline_input());
  // Task a's recorded result changed after b was dispatched with the old
  // one: the decision recorded for b is not the one this build makes.
  auto log = run.log;
  uint64_t b_dispatch = 0;
  for (auto& ev : log) {
    const auto& p = ev.payload.get();
    if (ev.type == "task_completed" && p.value("task", "") == "a")
      ev.payload = json_value{[&] {
        auto q = p;
        q["output"] = json{{"x", "altered"}};
        return q;
      }()};
    if (ev.type == "task_dispatched" && p.value("task", "") == "b")
      b_dispatch = ev.seq;
  }
  ASSERT_GT(b_dispatch, 0u);
  auto r = check_recovery("parent", json{}, log);
  ASSERT_TRUE(r) << describe(r.error());
  ASSERT_FALSE(r->compatible());
  EXPECT_EQ(r->first->seq, b_dispatch) << to_json(*r->first).dump();
  EXPECT_EQ(r->first->task, "b");
  // The same from a snapshot at the end of the first step, before a
  // completed.
  auto first_step = run.states.begin()->first;
  ASSERT_LT(first_step, b_dispatch);
  auto m = fold_log(log, first_step);
  ASSERT_TRUE(m);
  std::vector<event> rest(log.begin() + static_cast<long>(first_step),
                          log.end());
  auto from_snap = check_recovery("parent", m->snapshot(), rest);
  ASSERT_TRUE(from_snap) << describe(from_snap.error());
  ASSERT_FALSE(from_snap->compatible());
  EXPECT_EQ(from_snap->first->seq, b_dispatch);
}

namespace {

bool has(const std::vector<std::string>& xs, const std::string& x) {
  return std::find(xs.begin(), xs.end(), x) != xs.end();
}

// The output of task `task` in a view.
json output_of(const json& view, const std::string& task) {
  for (const auto& t : view["tasks"])
    if (t["id"] == task)
      return t.value("output", json{});
  return nullptr;
}

} // namespace

TEST(Replay, AForkSetsOneItemOfAMapAndKeepsTheOthers) {
  auto run = record(pipeline(), pipeline_input());
  fork_edits edits;
  edits.outputs["each[1]"] = json{{"v", 20}};
  auto plan = plan_fork(run.log, 0, edits, "child", 5000);
  ASSERT_TRUE(plan) << describe(plan.error());
  EXPECT_EQ(plan->edited, std::vector<std::string>{"each[1]"});
  EXPECT_TRUE(has(plan->reused, "each[0]"));
  EXPECT_TRUE(has(plan->reused, "each[2]"));
  EXPECT_FALSE(has(plan->reused, "each[1]"));
  // Nothing reads the map's output but the person's dependency: nothing
  // runs again.
  EXPECT_TRUE(plan->to_run.empty());
  auto m = fold_log(plan->events);
  ASSERT_TRUE(m) << describe(m.error());
  EXPECT_EQ(output_of(m->view(), "each"),
            (json::array({{{"v", 1}}, {{"v", 20}}, {{"v", 3}}})));
  // The item is recorded as dispatched and completed by the fork.
  bool by_fork = false;
  for (const auto& ev : plan->events)
    if (ev.type == "task_completed" && ev.payload->value("item", -1) == 1)
      by_fork = ev.payload->value("by", "") == "fork";
  EXPECT_TRUE(by_fork);
  // The fork's log is what its definition and edits decide (replay
  // --against, and the check of a recovering coordinator).
  auto log = continue_fork(*plan).log;
  auto check = check_against(log);
  ASSERT_TRUE(check) << describe(check.error());
  EXPECT_TRUE(check->compatible()) << to_json(*check->first).dump();
  // A person's task takes an answer, not a result.
  fork_edits person;
  person.outputs["h"] = "no";
  auto refused = plan_fork(run.log, 0, person, "child2", 5000);
  ASSERT_FALSE(refused);
  EXPECT_NE(message_of(refused.error()).find("give the answer with --answer "
                                             "h=VALUE"),
            std::string::npos)
    << message_of(refused.error());
}

TEST(Replay, AForkRerunsOneItemOfAMapAndWhatReadsTheMap) {
  json doc = pipeline();
  // A task that reads the map's output.
  doc["tasks"].push_back(json{{"id", "sum"},
                              {"tool", "echo"},
                              {"depends_on", "each"},
                              {"input", {{"all", "{{ tasks.each.output }}"}}}});
  auto run = record(doc, pipeline_input());
  fork_edits edits;
  edits.rerun.insert("each[2]");
  auto plan = plan_fork(run.log, 0, edits, "child", 5000);
  ASSERT_TRUE(plan) << describe(plan.error());
  ASSERT_EQ(plan->to_run.size(), 1u);
  EXPECT_EQ(plan->to_run[0], (std::pair<std::string, std::string>{"each[2]",
                                                                  "echo"}));
  EXPECT_TRUE(has(plan->reused, "each[0]"));
  EXPECT_TRUE(has(plan->reused, "each[1]"));
  EXPECT_TRUE(has(plan->undecided, "sum"));
  auto m = fold_log(plan->events);
  ASSERT_TRUE(m);
  EXPECT_TRUE(m->fork_reruns("each[2]"));
  EXPECT_FALSE(m->fork_reruns("each[0]"));
  // Live, of the map only that item runs (the recovered fork dispatches
  // it again), then what waited for the map.
  auto rest = continue_fork(*plan);
  std::vector<std::string> live_items;
  for (size_t i = plan->events.size(); i < rest.log.size(); ++i)
    if (rest.log[i].type == "task_completed"
        && rest.log[i].payload->value("task", "") == "each"
        && rest.log[i].payload->contains("item"))
      live_items.push_back(
        "each[" + std::to_string(rest.log[i].payload->value("item", -1))
        + "]");
  EXPECT_EQ(live_items, std::vector<std::string>{"each[2]"});
  // Setting an item changes the map's output: `sum` runs again.
  fork_edits set;
  set.outputs["each[0]"] = json{{"v", 10}};
  auto changed = plan_fork(run.log, 0, set, "child2", 5000);
  ASSERT_TRUE(changed) << describe(changed.error());
  ASSERT_EQ(changed->to_run.size(), 1u);
  EXPECT_EQ(changed->to_run[0].first, "sum");
  // Rerunning the whole map runs every item.
  fork_edits all;
  all.rerun.insert("each");
  auto every = plan_fork(run.log, 0, all, "child3", 5000);
  ASSERT_TRUE(every);
  EXPECT_EQ(every->to_run.size(), 3u);
}

TEST(Replay, AForkAnswersOneItemOfAMapOfHumanTasks) {
  json doc{{"name", "decide"},
           {"version", "1"},
           {"tasks",
            {{{"id", "decide"},
              {"kind", "map"},
              {"items", "input.jobs"},
              {"prompt", "Retry {{ item }}?"},
              {"answer_schema", {{"type", "string"}}}},
             {{"id", "act"},
              {"tool", "echo"},
              {"depends_on", "decide"},
              {"input", {{"d", "{{ tasks.decide.output }}"}}}}}}};
  json input{{"jobs", {"a", "b"}}};
  // The recorded run: both items answered "yes".
  machine m{"parent"};
  auto first = m.submit(doc, input, "k", 1000);
  ASSERT_TRUE(first) << describe(first.error());
  std::vector<event> log = first->events;
  for (const char* key : {"decide[0]", "decide[1]"}) {
    auto s = m.human_answer(key, "yes", 1100);
    ASSERT_TRUE(s) << describe(s.error());
    log.insert(log.end(), s->events.begin(), s->events.end());
    for (const auto& a : s->actions)
      if (a.kind == action::dispatch) {
        auto done = m.succeeded(a.key, a.attempt, a.input, 1, 1200);
        log.insert(log.end(), done.events.begin(), done.events.end());
      }
  }
  ASSERT_TRUE(m.finished());
  fork_edits edits;
  edits.answers["decide[1]"] = "no";
  auto plan = plan_fork(log, 0, edits, "child", 5000);
  ASSERT_TRUE(plan) << describe(plan.error());
  EXPECT_EQ(plan->edited, std::vector<std::string>{"decide[1]"});
  EXPECT_TRUE(has(plan->reused, "decide[0]"));
  EXPECT_TRUE(plan->waiting.empty());
  ASSERT_EQ(plan->to_run.size(), 1u);
  EXPECT_EQ(plan->to_run[0].first, "act");
  auto f = fold_log(plan->events);
  ASSERT_TRUE(f);
  EXPECT_EQ(output_of(f->view(), "decide"), json::array({"yes", "no"}));
  // Asking one item again leaves the other answered.
  fork_edits again;
  again.rerun.insert("decide[0]");
  auto asks = plan_fork(log, 0, again, "child2", 5000);
  ASSERT_TRUE(asks) << describe(asks.error());
  EXPECT_EQ(asks->waiting, std::vector<std::string>{"decide[0]"});
  EXPECT_TRUE(has(asks->reused, "decide[1]"));
  // Refused, with the flag and the key: an answer its schema rejects, the
  // map's own id, an item past the end.
  struct refusal {
    fork_edits edits;
    std::string says;
  };
  std::vector<refusal> refusals(3);
  refusals[0].edits.answers["decide[0]"] = 7;
  refusals[0].says = "--answer decide[0]";
  refusals[1].edits.answers["decide"] = "no";
  refusals[1].says = "answer one item, 'decide[0]'";
  refusals[2].edits.answers["decide[2]"] = "no";
  refusals[2].says = "--answer decide[2]: names item 2, but map 'decide' "
                     "has 2 items (0 to 1)";
  for (const auto& r : refusals) {
    auto bad = plan_fork(log, 0, r.edits, "bad", 5000);
    ASSERT_FALSE(bad) << r.says;
    EXPECT_EQ(code_of(bad.error()), errc::invalid_input);
    EXPECT_NE(message_of(bad.error()).find(r.says), std::string::npos)
      << message_of(bad.error());
  }
}

TEST(Replay, AForkRefusesAnItemOfNoMapOrPastTheMapsEnd) {
  auto run = record(pipeline(), pipeline_input());
  struct refusal {
    fork_edits edits;
    std::string says;
  };
  std::vector<refusal> refusals(5);
  refusals[0].edits.outputs["each[3]"] = 1;
  refusals[0].says = "--set: task 'each[3]' names item 3, but map 'each' "
                     "has 3 items (0 to 2)";
  refusals[1].edits.rerun.insert("each[9]");
  refusals[1].says = "--rerun: task 'each[9]' names item 9";
  refusals[2].edits.outputs["b[0]"] = 1;
  refusals[2].says = "--set: task 'b[0]' names an item, but 'b' is not a "
                     "map task";
  refusals[3].edits.rerun.insert("nope[0]");
  refusals[3].says = "--rerun: the workflow has no task 'nope[0]'";
  refusals[4].edits.answers["each[0]"] = "x";
  refusals[4].says = "--answer: task 'each[0]' is not a human task";
  for (const auto& r : refusals) {
    auto bad = plan_fork(run.log, 0, r.edits, "bad", 5000);
    ASSERT_FALSE(bad) << r.says;
    EXPECT_EQ(code_of(bad.error()), errc::invalid_input);
    EXPECT_NE(message_of(bad.error()).find(r.says), std::string::npos)
      << message_of(bad.error());
  }
  // A map that neither has expanded yet (forked before it started, an
  // input that stops it) cannot be named by item.
  json empty_run = pipeline_input();
  empty_run["list"] = json::array();
  auto none = record(pipeline(), empty_run);
  fork_edits edits;
  edits.rerun.insert("each[0]");
  auto bad = plan_fork(none.log, 0, edits, "bad", 5000);
  ASSERT_FALSE(bad);
  EXPECT_NE(message_of(bad.error()).find("has 0 items"), std::string::npos)
    << message_of(bad.error());
}

TEST(Replay, AForkOfAForkBranchesItsParentsMemoryAndNotTheGrandparents) {
  auto ev = [](const std::string& log, uint64_t seq, const std::string& turn,
               int64_t time, const char* type = "agent_message") {
    return event{log, seq, time, type, json_value{json{{"turn", turn}}}};
  };
  // Fork f1 of p took over p's turn of `ask` and the turn of another
  // execution `o` (memory scope `agent`), then ran `redo` and `later`.
  std::vector<event> f1_branch{
    ev("agent:f1/helper", 1, "o/x/1", 10),
    ev("agent:f1/helper", 2, "o/x/1", 20, "agent_turn_completed"),
    ev("agent:f1/helper", 3, "p/ask/1", 30),
    ev("agent:f1/helper", 4, "p/ask/1", 40, "agent_turn_completed"),
    ev("agent:f1/helper", 5, "f1/redo/1", 100),
    ev("agent:f1/helper", 6, "f1/redo/1", 110, "agent_turn_completed"),
    ev("agent:f1/helper", 7, "f1/later/1", 120),
    ev("agent:f1/helper", 8, "f1/later/1", 130, "agent_turn_completed")};
  auto turns_of = [](const std::vector<event>& log) {
    std::vector<std::string> out;
    for (const auto& e : log) {
      EXPECT_EQ(e.execution_id, "agent:f2/helper");
      out.push_back(e.payload->value("turn", ""));
    }
    return out;
  };
  std::vector<std::string> p_lineage{"p"};
  // f2 forks f1 after `redo`, reusing `ask` and `redo`: what f1 had then.
  auto kept = branch_agent_log(f1_branch, "f1", "f2", {"ask", "redo"}, 115,
                               p_lineage);
  EXPECT_EQ(turns_of(kept),
            (std::vector<std::string>{"o/x/1", "o/x/1", "p/ask/1", "p/ask/1",
                                      "f1/redo/1", "f1/redo/1"}));
  // f2 runs `ask` again: the turn f1 took over from p is not memory.
  auto rerun = branch_agent_log(f1_branch, "f1", "f2", {"redo"}, 115,
                                p_lineage);
  EXPECT_EQ(turns_of(rerun),
            (std::vector<std::string>{"o/x/1", "o/x/1", "f1/redo/1",
                                      "f1/redo/1"}));
  // The log the agent shares is f1's memory only through f1's branch: p's
  // later turns there are not f2's to see.
  std::vector<event> shared{ev("agent:helper", 1, "p/ask/1", 30),
                            ev("agent:helper", 2, "p/ask/1", 40,
                               "agent_turn_completed"),
                            ev("agent:helper", 3, "p/redo/1", 50),
                            ev("agent:helper", 4, "p/redo/1", 60,
                               "agent_turn_completed")};
  EXPECT_TRUE(
    branch_agent_log(shared, "f1", "f2", {"ask", "redo"}, 115, p_lineage)
      .empty());
  // A fork's lineage: its parent, then the parent's.
  auto run = record(pipeline(), pipeline_input());
  auto f1 = plan_fork(run.log, 3, fork_edits{}, "f1", 5000);
  ASSERT_TRUE(f1);
  auto f1_log = continue_fork(*f1).log;
  EXPECT_EQ(fork_lineage(f1_log), std::vector<std::string>{"parent"});
  auto f2 = plan_fork(f1_log, 0, fork_edits{}, "f2", 7000);
  ASSERT_TRUE(f2);
  EXPECT_EQ(fork_lineage(f2->events),
            (std::vector<std::string>{"f1", "parent"}));
  EXPECT_TRUE(fork_lineage(run.log).empty());
}

TEST(Replay, AForkOfAForkReusesTheRepliesItsParentCouldReuse) {
  json spec{{"system", "s"}, {"script", "hi"}};
  json req{{"model", "m"}, {"messages", json::array({"q"})}};
  json res{{"message", {{"role", "assistant"}, {"content", "a"}}}};
  auto ev = [](const std::string& log, uint64_t seq, const char* type,
               json payload) {
    return event{log, seq, 1, type, json_value{std::move(payload)}};
  };
  json recorded{{"request", {{"model", "m"}}}, {"script", "hi"},
                {"response", res}};
  // f1's recorded replies (from p), and f1's branch of a shared log with
  // another execution's call in it.
  std::vector<event> replies{ev("replies:f1", 1, "llm_recorded", recorded)};
  std::vector<event> branch{
    ev("agent:f1/helper", 1, "agent_turn_started",
       {{"turn", "o/x/1"}, {"agent", "helper"}, {"spec", spec}}),
    ev("agent:f1/helper", 2, "llm_requested",
       {{"turn", "o/x/1"}, {"call", 1}, {"request", req}}),
    ev("agent:f1/helper", 3, "llm_responded",
       {{"turn", "o/x/1"}, {"call", 1}, {"response", res}}),
    ev("agent:f1/helper", 4, "agent_turn_started",
       {{"turn", "f1/b/1"}, {"agent", "helper"}, {"spec", spec}}),
    ev("agent:f1/helper", 5, "llm_requested",
       {{"turn", "f1/b/1"}, {"call", 1}, {"request", json{{"n", 2}}}}),
    ev("agent:f1/helper", 6, "llm_responded",
       {{"turn", "f1/b/1"}, {"call", 1}, {"response", res}})};
  auto got = fork_replies({replies, branch}, "f1", "f2", 9, {"p"});
  ASSERT_EQ(got.size(), 2u);
  EXPECT_EQ(got[0].payload.get(), recorded);
  EXPECT_EQ(got[1].payload.get()["request"], (json{{"n", 2}}));
  for (const auto& e : got)
    EXPECT_EQ(e.execution_id, "replies:f2");
}

TEST(Replay, AForkNamesTheLogsItWritesSoThatAnExportCarriesThem) {
  auto run = record(pipeline(), pipeline_input());
  auto plan = plan_fork(run.log, 0, fork_edits{}, "f1", 5000);
  ASSERT_TRUE(plan);
  json spec{{"system", "s"}};
  json res{{"message", {{"role", "assistant"}, {"content", "a"}}}};
  auto ev = [](uint64_t seq, const char* type, json payload) {
    return event{"agent:parent/helper", seq, 1, type,
                 json_value{std::move(payload)}};
  };
  std::vector<event> agent{
    ev(1, "agent_turn_started",
       {{"turn", "parent/a/1"}, {"agent", "helper"}, {"spec", spec}}),
    ev(2, "llm_requested",
       {{"turn", "parent/a/1"}, {"call", 1}, {"request", {{"n", 1}}}}),
    ev(3, "llm_responded",
       {{"turn", "parent/a/1"}, {"call", 1}, {"response", res}})};
  auto others = fork_logs(*plan, run.log, 0, {agent}, 6000);
  std::set<std::string> written;
  for (const auto& e : others)
    written.insert(e.execution_id);
  EXPECT_EQ(written, (std::set<std::string>{"agent:f1/helper", "replies:f1"}));
  const auto& marker = plan->events.back();
  EXPECT_EQ(marker.payload.get()["logs"],
            json::array({"agent:f1/helper", "replies:f1"}));
  EXPECT_EQ(marker.payload.get()["lineage"], json::array({"parent"}));
  auto used = logs_of(plan->events);
  EXPECT_TRUE(has(used, "agent:f1/helper"));
  EXPECT_TRUE(has(used, "replies:f1"));
  // A fork recorded before its logs were named still exports its replies.
  auto old = plan->events;
  json p = old.back().payload.get();
  p.erase("logs");
  old.back().payload = json_value{p};
  EXPECT_TRUE(has(logs_of(old), "replies:f1"));
  EXPECT_FALSE(has(logs_of(run.log), "replies:parent"));
}

// -- edits of units inside sub-workflows ---------------------------------------

namespace {

// One incident per job, as the Airflow monitor handles each failed task:
// analyze -> tell and decide -> act, in the item's sub-workflow; job b's
// first run fails at `check` and the item runs again (incident[1]@2/...).
json incidents() {
  validation_context ctx;
  ctx.tool_exists = [](const std::string& name) {
    return name == "echo" || name == "flaky";
  };
  auto r = parse_text(R"(
name: incidents
version: "1"
tasks:
  - id: incident
    items: input.jobs
    input: {job: "{{ item }}"}
    retry: {max_attempts: 2, backoff: 10ms}
    workflow:
      name: one-incident
      tasks:
        - {id: analyze, tool: echo, input: {cause: "{{ input.job }} broke"}}
        - id: check
          depends_on: analyze
          when: input.job == "b"
          tool: flaky
          input: {job: "{{ input.job }}"}
        - {id: tell, depends_on: analyze, tool: echo, input: {text: "{{ tasks.analyze.output.cause }}"}}
        - {id: decide, depends_on: analyze, prompt: "Retry {{ input.job }}?"}
        - id: act
          depends_on: [decide, check]
          tool: echo
          input: {do: "{{ tasks.decide.output }}", why: "{{ tasks.analyze.output.cause }}"}
      output: {job: "{{ input.job }}", did: "{{ tasks.act.output }}"}
  - id: report
    depends_on: incident
    tool: echo
    input: {all: "{{ tasks.incident.output }}"}
)",
                      "incidents.yaml", ctx);
  EXPECT_TRUE(r.def) << (r.errors.empty() ? "" : r.errors[0].to_string());
  return r.def ? r.def->document : json{};
}

const json two_jobs{{"jobs", {"a", "b"}}};

// The units dispatched (or asked) in `log` from index `from` on.
std::vector<std::string> dispatched_from(const std::vector<event>& log,
                                         size_t from) {
  std::vector<std::string> out;
  for (size_t i = from; i < log.size(); ++i)
    if (log[i].type == "task_dispatched" || log[i].type == "human_requested") {
      auto key = log[i].payload->value("task", "");
      if (log[i].payload->contains("item"))
        key += "[" + std::to_string(log[i].payload->value("item", -1)) + "]";
      out.push_back(key);
    }
  return out;
}

// The fork's log is what its definition and edits decide (replay
// --against, and the check of a recovering coordinator).
void expect_decided_by_definition(const std::vector<event>& log) {
  auto check = check_against(log);
  ASSERT_TRUE(check) << describe(check.error());
  EXPECT_TRUE(check->compatible()) << to_json(*check->first).dump();
}

using runs = std::vector<std::pair<std::string, std::string>>;

uint64_t seq_of(const std::vector<event>& log, const std::string& type,
                const std::string& task) {
  for (const auto& ev : log)
    if (ev.type == type && ev.payload->value("task", "") == task)
      return ev.seq;
  ADD_FAILURE() << "no " << type << " of " << task;
  return 0;
}

} // namespace

TEST(Replay, AForkSetsAUnitOfAnItemsSubWorkflowAndRunsOnlyWhatReadsIt) {
  auto run = record(incidents(), two_jobs);
  ASSERT_EQ(run.log.back().type, "execution_completed");
  fork_edits edits;
  edits.outputs["incident[0]/analyze"] = json{{"cause", "a was cancelled"}};
  auto plan = plan_fork(run.log, 0, edits, "child", 5000);
  ASSERT_TRUE(plan) << describe(plan.error());
  EXPECT_EQ(plan->edited, std::vector<std::string>{"incident[0]/analyze"});
  // What reads the result runs again, in that item's sub-workflow only;
  // the question's prompt does not read it, so its answer is reused.
  EXPECT_EQ(plan->to_run,
            (runs{{"incident[0]/tell", "echo"},
                  {"incident[0]/act", "echo"}}));
  for (const char* kept : {"incident[0]/decide", "incident[1]/analyze",
                           "incident[1]/check", "incident[1]@2/analyze",
                           "incident[1]@2/check", "incident[1]@2/tell",
                           "incident[1]@2/decide", "incident[1]@2/act"})
    EXPECT_TRUE(has(plan->reused, kept)) << kept;
  EXPECT_FALSE(has(plan->reused, "incident[0]/analyze"));
  EXPECT_EQ(plan->undecided, std::vector<std::string>{"report"});
  // Live, the fork runs those two, then the item ends and `report` runs.
  auto rest = continue_fork(*plan);
  EXPECT_EQ(dispatched_from(rest.log, plan->events.size()),
            (std::vector<std::string>{"report"}));
  EXPECT_EQ(rest.calls["echo"], 3);
  EXPECT_EQ(rest.calls.count("flaky"), 0u);
  auto m = fold_log(rest.log);
  ASSERT_TRUE(m);
  auto all = output_of(m->view(), "report")["all"];
  EXPECT_EQ(all[0]["did"]["why"], "a was cancelled") << all.dump();
  EXPECT_EQ(all[0]["did"]["do"], "yes");
  EXPECT_EQ(all[1]["did"]["why"], "b broke");
  expect_decided_by_definition(rest.log);
}

TEST(Replay, AForkRerunsAUnitOfAnItemsLatestRunAndKeepsTheRest) {
  auto run = record(incidents(), two_jobs);
  fork_edits edits;
  edits.rerun.insert("incident[1]@2/tell");
  auto plan = plan_fork(run.log, 0, edits, "child", 5000);
  ASSERT_TRUE(plan) << describe(plan.error());
  EXPECT_EQ(plan->to_run,
            (runs{{"incident[1]@2/tell", "echo"}}));
  EXPECT_TRUE(has(plan->reused, "incident[1]@2/act"));
  EXPECT_TRUE(has(plan->reused, "incident[0]/tell"));
  EXPECT_EQ(plan->undecided, std::vector<std::string>{"report"});
  auto f = fold_log(plan->events);
  ASSERT_TRUE(f);
  EXPECT_TRUE(f->fork_reruns("incident[1]@2/tell"));
  EXPECT_FALSE(f->fork_reruns("incident[1]/tell"));
  EXPECT_FALSE(f->fork_reruns("incident[0]/tell"));
  auto rest = continue_fork(*plan);
  EXPECT_EQ(rest.calls["echo"], 2); // that unit, then report
  auto m = fold_log(rest.log);
  ASSERT_TRUE(m);
  auto parent = fold_log(run.log);
  ASSERT_TRUE(parent);
  EXPECT_EQ(m->view()["output"], parent->view()["output"]);
  // An answer to a question of an item's sub-workflow.
  fork_edits answer;
  answer.answers["incident[1]@2/decide"] = "no";
  auto answered = plan_fork(run.log, 0, answer, "child2", 5000);
  ASSERT_TRUE(answered) << describe(answered.error());
  EXPECT_EQ(answered->edited,
            std::vector<std::string>{"incident[1]@2/decide"});
  EXPECT_EQ(answered->to_run,
            (runs{{"incident[1]@2/act", "echo"}}));
  EXPECT_TRUE(answered->waiting.empty());
  auto after = continue_fork(*answered);
  auto out = fold_log(after.log);
  ASSERT_TRUE(out);
  EXPECT_EQ(output_of(out->view(), "report")["all"][1]["did"]["do"], "no");
  expect_decided_by_definition(after.log);
}

TEST(Replay, AForkRerunOfAnItemOrAMapOfSubWorkflowsRunsTheirUnits) {
  auto run = record(incidents(), two_jobs);
  fork_edits item;
  item.rerun.insert("incident[0]");
  auto plan = plan_fork(run.log, 0, item, "child", 5000);
  ASSERT_TRUE(plan) << describe(plan.error());
  EXPECT_EQ(plan->to_run,
            (runs{{"incident[0]/analyze", "echo"}}));
  EXPECT_EQ(plan->undecided,
            (std::vector<std::string>{"incident[0]/check", "incident[0]/tell",
                                      "incident[0]/decide", "incident[0]/act",
                                      "report"}));
  EXPECT_TRUE(has(plan->reused, "incident[1]@2/act"));
  auto f = fold_log(plan->events);
  ASSERT_TRUE(f);
  EXPECT_TRUE(f->fork_reruns("incident[0]/decide"));
  EXPECT_FALSE(f->fork_reruns("incident[1]/decide"));
  fork_edits map;
  map.rerun.insert("incident");
  auto every = plan_fork(run.log, 0, map, "child2", 5000);
  ASSERT_TRUE(every) << describe(every.error());
  EXPECT_EQ(every->to_run,
            (runs{{"incident[0]/analyze", "echo"},
                  {"incident[1]/analyze", "echo"}}));
}

TEST(Replay, AForkSetsAUnitOfASubWorkflowTask) {
  json doc{{"name", "one"},
           {"version", "1"},
           {"tasks",
            {{{"id", "child"},
              {"input", {{"x", "{{ input.x }}"}}},
              {"workflow",
               {{"name", "inner"},
                {"tasks",
                 {{{"id", "first"},
                   {"tool", "echo"},
                   {"input", {{"n", "{{ input.x }}"}}}},
                  {{"id", "second"},
                   {"tool", "echo"},
                   {"depends_on", "first"},
                   {"input", {{"m", "{{ tasks.first.output.n }}"}}}}}},
                {"output", "{{ tasks.second.output }}"}}}}}},
           {"output", "{{ tasks.child.output }}"}};
  auto run = record(doc, json{{"x", 1}});
  fork_edits edits;
  edits.outputs["child/first"] = json{{"n", 5}};
  auto plan = plan_fork(run.log, 0, edits, "f", 5000);
  ASSERT_TRUE(plan) << describe(plan.error());
  EXPECT_EQ(plan->to_run,
            (runs{{"child/second", "echo"}}));
  auto rest = continue_fork(*plan);
  auto m = fold_log(rest.log);
  ASSERT_TRUE(m);
  EXPECT_EQ(m->view()["output"], json({{"m", 5}}));
  // Running the task again runs its sub-workflow's units again.
  fork_edits again;
  again.rerun.insert("child");
  auto all = plan_fork(run.log, 0, again, "h", 5000);
  ASSERT_TRUE(all) << describe(all.error());
  EXPECT_EQ(all->to_run, (runs{{"child/first", "echo"}}));
  EXPECT_EQ(all->undecided, std::vector<std::string>{"child/second"});
  // Its edits hold across a snapshot of the fork's state.
  auto early = plan_fork(run.log, seq_of(run.log, "task_dispatched", "child"),
                         edits, "g", 5000);
  ASSERT_TRUE(early) << describe(early.error());
  auto snap = fold_log(early->events);
  ASSERT_TRUE(snap);
  auto restored = machine::restore("g", snap->snapshot());
  ASSERT_TRUE(restored) << describe(restored.error());
  EXPECT_EQ(restored->snapshot(), snap->snapshot());
}

TEST(Replay, AForkRefusesNestedUnitsThatAreNotThereNamingWhatIs) {
  auto run = record(incidents(), two_jobs);
  auto end = std::to_string(run.log.back().seq);
  struct refusal {
    fork_edits edits;
    std::string says;
  };
  std::vector<refusal> refusals(10);
  refusals[0].edits.rerun.insert("incident[0]/nope");
  refusals[0].says = "--rerun: 'incident[0]/nope': the sub-workflow of "
                     "'incident[0]' has no task 'nope' (its tasks: analyze, "
                     "check, tell, decide, act)";
  refusals[1].edits.rerun.insert("incident/tell");
  refusals[1].says = "'incident' is a map of sub-workflows; name the item "
                     "whose unit it is, 'incident[0]/tell'";
  refusals[2].edits.outputs["report/x"] = 1;
  refusals[2].says = "--set: 'report/x': 'report' runs no sub-workflow (it "
                     "is a tool task)";
  refusals[3].edits.rerun.insert("incident[1]/tell");
  refusals[3].says = "--rerun: 'incident[1]/tell': names attempt 1 of "
                     "'incident[1]', which had run again by the fork point "
                     "(event " + end + "): name its latest, "
                     "'incident[1]@2/tell'";
  refusals[4].edits.rerun.insert("incident[0]@2/tell");
  refusals[4].says = "'incident[0]' had run 1 attempt by the fork point "
                     "(event " + end + "): name its latest, "
                     "'incident[0]/tell'";
  refusals[5].edits.rerun.insert("incident[0]@1/tell");
  refusals[5].says = "attempt 1 is named without '@': 'incident[0]/tell'";
  refusals[6].edits.outputs["incident[0]/decide"] = "no";
  refusals[6].says = "--set: 'incident[0]/decide' is answered by a person; "
                     "give the answer with --answer incident[0]/decide=VALUE";
  refusals[7].edits.answers["incident[0]/tell"] = "x";
  refusals[7].says = "--answer: task 'incident[0]/tell' is not a human task";
  refusals[8].edits.rerun.insert("incident[5]/tell");
  refusals[8].says = "'incident[5]' had not started by the fork point";
  refusals[9].edits.rerun.insert("incident[0]/check");
  refusals[9].says = "--rerun: 'incident[0]/check': that unit had not run "
                     "by the fork point (event " + end + "); under "
                     "'incident[0]' had: act, analyze, decide, tell";
  for (const auto& r : refusals) {
    auto bad = plan_fork(run.log, 0, r.edits, "bad", 5000);
    ASSERT_FALSE(bad) << r.says;
    EXPECT_EQ(code_of(bad.error()), errc::invalid_input);
    EXPECT_NE(message_of(bad.error()).find(r.says), std::string::npos)
      << message_of(bad.error());
  }
  // Before the fork point a unit that ran later had not run.
  auto at = seq_of(run.log, "task_completed", "incident[0]/analyze");
  fork_edits early;
  early.rerun.insert("incident[0]/act");
  auto bad = plan_fork(run.log, at, early, "bad", 5000);
  ASSERT_FALSE(bad);
  EXPECT_NE(message_of(bad.error()).find("that unit had not run by the fork "
                                         "point (event "
                                         + std::to_string(at) + ")"),
            std::string::npos)
    << message_of(bad.error());
}

namespace {

// What a view diff shows between two states (what `cadre replay` printed
// per event before it fed a change_feed): every task and map item whose
// state changed, by key, then the status.
json view_changes(const json& before, const json& after) {
  auto states = [](const json& view) {
    std::map<std::string, std::string> out;
    for (const auto& t : view["tasks"]) {
      auto id = t["id"].get<std::string>();
      out[id] = t["state"].get<std::string>();
      if (t.contains("items"))
        for (size_t i = 0; i < t["items"].size(); ++i)
          out[id + "[" + std::to_string(i) + "]"]
            = t["items"][i]["state"].get<std::string>();
    }
    return out;
  };
  json out = json::array();
  auto was = states(before);
  for (const auto& [key, now] : states(after)) {
    auto i = was.find(key);
    if (i == was.end() ? now != "blocked" : i->second != now)
      out.push_back(json{{"task", key},
                         {"from", i == was.end() ? "" : i->second},
                         {"to", now}});
  }
  if (before["status"] != after["status"])
    out.push_back(json{{"execution", after["status"]},
                       {"from", before["status"]}});
  return out;
}

using test::big_map_log;

} // namespace

TEST(Replay, AChangeFeedRecordsWhatAViewDiffShowsAtEveryEvent) {
  std::vector<std::vector<event>> logs;
  logs.push_back(record(pipeline(), pipeline_input()).log);
  logs.push_back(record(pipeline("input.x == 'stop'"), pipeline_input()).log);
  {
    // A fork: its marker and the units its edits complete.
    auto run = record(pipeline(), pipeline_input());
    fork_edits edits;
    edits.outputs["each[1]"] = json{{"v", "edited"}};
    edits.answers["h"] = "no";
    auto plan = plan_fork(run.log, 3, edits, "child", 5000);
    ASSERT_TRUE(plan) << describe(plan.error());
    logs.push_back(continue_fork(*plan).log);
  }
  logs.push_back(big_map_log(300));
  for (const auto& log : logs) {
    change_feed feed{log.front().execution_id};
    machine m{log.front().execution_id};
    json before{{"tasks", json::array()}, {"status", "none"}};
    for (const auto& ev : log) {
      auto rec = feed.add(ev);
      ASSERT_TRUE(rec) << describe(rec.error());
      ASSERT_TRUE(m.apply(ev));
      auto after = m.view();
      EXPECT_EQ((*rec)["changes"], view_changes(before, after))
        << log.front().execution_id << " event " << ev.seq << " " << ev.type;
      EXPECT_EQ((*rec)["seq"], ev.seq);
      EXPECT_EQ((*rec)["type"], ev.type);
      EXPECT_EQ(rec->value("task", json{}), ev.payload->value("task", json{}));
      before = std::move(after);
    }
    EXPECT_EQ(feed.state().view(), m.view());
  }
}

TEST(Replay, AChangeFeedOnABigMapRecordsEachItemAsItMoves) {
  // 50,000 items: a view per event would build 50,000 items 100,004 times.
  const size_t n = 50000;
  auto log = big_map_log(n);
  ASSERT_EQ(log.size(), 2 * n + 4);
  change_feed feed{"fan"};
  size_t item_moves = 0;
  for (const auto& ev : log) {
    auto rec = feed.add(ev);
    ASSERT_TRUE(rec) << describe(rec.error());
    const auto& changes = (*rec)["changes"];
    const auto& p = ev.payload.get();
    if (ev.type == "task_dispatched" || (ev.type == "task_completed"
                                         && p.contains("item"))) {
      auto key = "map[" + std::to_string(p["item"].get<int>()) + "]";
      ASSERT_EQ(changes.size(), 1u) << ev.seq;
      EXPECT_EQ(changes[0]["task"], key);
      EXPECT_EQ(changes[0]["from"],
                ev.type == "task_dispatched" ? "blocked" : "running");
      EXPECT_EQ(changes[0]["to"],
                ev.type == "task_dispatched" ? "running" : "done");
      ++item_moves;
    } else if (ev.type == "map_started") {
      // 50,000 items appear blocked: not news; the map runs.
      EXPECT_EQ(changes, json::parse(R"([{"task":"map","from":"blocked",
                                          "to":"running"}])"));
    } else if (ev.type == "task_completed") {
      EXPECT_EQ(changes, json::parse(R"([{"task":"map","from":"running",
                                          "to":"done"}])"));
    } else if (ev.type == "execution_completed") {
      EXPECT_EQ(changes, json::parse(R"([{"execution":"completed",
                                          "from":"running"}])"));
    } else {
      EXPECT_EQ(ev.type, "execution_submitted");
      EXPECT_EQ(changes, json::parse(R"([{"execution":"running",
                                          "from":"none"}])"));
    }
  }
  EXPECT_EQ(item_moves, 2 * n);
}

TEST(Replay, AStepperShowsWhatEachEventChangedAsTheChangeFeedDoes) {
  // `cadre replay` on a terminal and piped say the same of every event,
  // however the terminal reached it: forward, back, or by a jump.
  std::vector<std::vector<event>> logs;
  logs.push_back(record(pipeline(), pipeline_input()).log);
  logs.push_back(big_map_log(300));
  for (const auto& log : logs) {
    const uint64_t n = log.size();
    change_feed feed{log.front().execution_id};
    std::vector<json> piped{json{}};
    for (const auto& ev : log) {
      auto rec = feed.add(ev);
      ASSERT_TRUE(rec) << describe(rec.error());
      piped.push_back(std::move(*rec));
    }
    const uint64_t every = 8;
    stepper walk{log, every};
    // Forward: one fold per step.
    for (uint64_t seq = 1; seq <= n; ++seq) {
      auto r = walk.changes_at(seq);
      ASSERT_TRUE(r) << describe(r.error());
      ASSERT_EQ(*r, piped[seq]) << "at " << seq;
    }
    EXPECT_EQ(walk.folded(), n);
    // Back: from a kept snapshot, at most an interval of folds a step.
    auto before = walk.folded();
    for (uint64_t seq = n - 1; seq >= 1; --seq) {
      auto r = walk.changes_at(seq);
      ASSERT_TRUE(r) << describe(r.error());
      ASSERT_EQ(*r, piped[seq]) << "back at " << seq;
    }
    EXPECT_LE(walk.folded() - before, (n - 1) * every);
    // Jumps either way, and a step back then forward again.
    for (uint64_t seq : {n, uint64_t{3}, n / 2, uint64_t{1}, n - 2,
                         n / 2 + 1, n / 2, n / 2 + 1}) {
      auto r = walk.changes_at(seq);
      ASSERT_TRUE(r) << describe(r.error());
      EXPECT_EQ(*r, piped[seq]) << "jump to " << seq;
    }
    // The state a step leaves is the one after its event.
    auto v = walk.view_at(n / 2);
    ASSERT_TRUE(v) << describe(v.error());
    EXPECT_EQ(*v, fold_log(log, n / 2)->view());
    EXPECT_EQ(code_of(walk.changes_at(0).error()), errc::not_found);
    EXPECT_EQ(code_of(walk.changes_at(n + 1).error()), errc::not_found);
  }
}

TEST(Replay, ACheckReadsTheLogAsItIsWalkedAndStopsAtTheDivergence) {
  auto run = record(pipeline(), pipeline_input());
  // Walked: the same outcomes as the log in memory.
  size_t given = 0;
  auto walk = [&](const std::vector<event>& log) {
    return log_walk{
      [&given, &log](const std::function<expected<bool>(const event&)>& fn)
        -> expected<void> {
        for (const auto& ev : log) {
          ++given;
          auto more = fn(ev);
          if (!more)
            return more.error();
          if (!*more)
            break;
        }
        return {};
      }};
  };
  auto same = check_against(walk(run.log));
  ASSERT_TRUE(same) << describe(same.error());
  EXPECT_TRUE(same->compatible());
  EXPECT_EQ(same->events, run.log.size());
  EXPECT_EQ(given, run.log.size());
  // A changed condition: the walk stops at the event that diverges.
  auto changed = pipeline("input.x == 'stop'");
  given = 0;
  auto r = check_against(walk(run.log), &changed);
  ASSERT_TRUE(r) << describe(r.error());
  ASSERT_FALSE(r->compatible());
  auto in_memory = check_against(run.log, &changed);
  ASSERT_TRUE(in_memory);
  EXPECT_EQ(to_json(*r->first), to_json(*in_memory->first));
  EXPECT_LE(given, r->first->seq + 1); // and one more: no fork's edit
  // A fork with edits: walked again with them only once it diverged
  // without them, and compatible.
  fork_edits edits;
  edits.outputs["d"] = json{{"answer", "edited"}};
  auto plan = plan_fork(run.log, 3, edits, "child", 5000);
  ASSERT_TRUE(plan) << describe(plan.error());
  auto child = continue_fork(*plan);
  given = 0;
  auto fork = check_against(walk(child.log));
  ASSERT_TRUE(fork) << describe(fork.error());
  EXPECT_TRUE(fork->compatible()) << to_json(*fork->first).dump(2);
  EXPECT_LE(given, 2 * child.log.size());
  // A fork whose edit a changed definition no longer takes diverges.
  auto other = pipeline();
  other["tasks"][6]["input"] = json{{"answer", "changed"}};
  auto diverged = check_against(walk(child.log), &other);
  ASSERT_TRUE(diverged) << describe(diverged.error());
  EXPECT_FALSE(diverged->compatible());
}

TEST(Replay, ACheckOfABigMapHoldsOneStepNotTheLog) {
  auto log = big_map_log(2000);
  auto r = check_against(log);
  ASSERT_TRUE(r) << describe(r.error());
  EXPECT_TRUE(r->compatible());
  EXPECT_EQ(r->events, log.size());
  // A log cut short: the decisions left over are past its end.
  std::vector<event> cut(log.begin(), log.begin() + 10);
  auto c = check_against(cut);
  ASSERT_TRUE(c) << describe(c.error());
  ASSERT_FALSE(c->compatible());
  EXPECT_EQ(c->first->seq, 11u);
  EXPECT_EQ(c->first->got["type"], "task_dispatched");
  EXPECT_EQ(c->first->task, "map[8]");
}

TEST(Replay, AForkThatSetsAnAgentsResultIsCompatibleWithItsDefinition) {
  // The edited agent task is recorded as a dispatch of no agent: a check
  // without the fork's edits diverges one event before its `by: "fork"`.
  json doc{{"name", "w"},
           {"agents", {{"helper", {{"system", "be brief"}}}}},
           {"tasks", {{{"id", "ask"}, {"agent", "helper"}, {"input", "hi"}},
                      {{"id", "then"}, {"tool", "echo"}, {"depends_on", "ask"},
                       {"input", "{{ tasks.ask.output }}"}}}}};
  machine m{"e"};
  auto s = m.submit(doc, json::object(), "", 1);
  ASSERT_TRUE(s) << describe(s.error());
  std::vector<event> log = s->events;
  for (auto& ev : m.succeeded("ask", 1, "hello", 0, 2).events)
    log.push_back(ev);
  for (auto& ev : m.succeeded("then", 1, "hello", 0, 3).events)
    log.push_back(ev);
  fork_edits edits;
  edits.outputs["ask"] = "edited";
  auto plan = plan_fork(log, 1, edits, "f", 10);
  ASSERT_TRUE(plan) << describe(plan.error());
  auto child = continue_fork(*plan);
  auto r = check_against(child.log);
  ASSERT_TRUE(r) << describe(r.error());
  EXPECT_TRUE(r->compatible()) << to_json(*r->first).dump(2);
}
