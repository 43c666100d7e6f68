// Map tasks whose items are agent turns or human tasks (docs/workflows.md,
// Map tasks): parsing and located errors, and the machine's decisions,
// keyed "task[i]", folded again from the log, recovered and restored.

#include <set>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "cadre/workflow/definition.hpp"
#include "cadre/workflow/machine.hpp"
#include "cadre/workflow/replay.hpp"

using namespace cadre;
using namespace cadre::workflow;

namespace {

validation_context node_context() {
  validation_context ctx;
  ctx.tool_exists = [](const std::string& name) {
    static const std::set<std::string> tools = {"echo", "script"};
    return tools.count(name) > 0;
  };
  ctx.agent_exists = [](const std::string&) { return false; };
  ctx.secret_exists = [](const std::string&) { return true; };
  return ctx;
}

bool has_error(const parse_result& r, const std::string& pointer,
               const std::string& text) {
  for (const auto& d : r.errors)
    if (d.pointer == pointer && d.message.find(text) != std::string::npos)
      return true;
  return false;
}

std::string all_errors(const parse_result& r) {
  std::string out;
  for (const auto& d : r.errors)
    out += "  " + d.to_string() + "\n";
  return out;
}

// Two failed things, analysed by an agent each, then decided by a person
// each, then counted.
json fan_doc(uint32_t ask_concurrency = 0) {
  json decide{{"id", "decide"},
              {"depends_on", "analyze"},
              {"items", "input.things"},
              {"prompt", {{"thing", "{{ item }}"},
                          {"report", "{{ tasks.analyze.output[index] }}"}}},
              {"answer_schema",
               {{"type", "object"},
                {"required", {"decision"}},
                {"properties",
                 {{"decision",
                   {{"type", "string"}, {"enum", {"clear", "skip"}}}}}}}}};
  if (ask_concurrency > 0)
    decide["concurrency"] = ask_concurrency;
  return json{
    {"name", "fan"},
    {"agents", {{"analyzer", {{"tools", {"echo"}}}}}},
    {"tasks",
     {{{"id", "analyze"},
       {"items", "input.things"},
       {"agent", "analyzer"},
       {"input", "Analyse {{ item }} ({{ index }})"}},
      decide,
      {{"id", "count"},
       {"depends_on", "decide"},
       {"tool", "echo"},
       {"input", {{"n", "{{ #tasks.decide.output }}"}}}}}}};
}

json usage(int in, int out) {
  return json{{"input_tokens", in}, {"output_tokens", out},
              {"cost_usd", 0.25},   {"llm_calls", 1},
              {"tool_calls", 0}};
}

// Appends a step's events to `log`.
void keep(std::vector<event>& log, const step& s) {
  log.insert(log.end(), s.events.begin(), s.events.end());
}

std::vector<std::string> keys_of(const std::vector<action>& actions,
                                 action::kind_t kind) {
  std::vector<std::string> out;
  for (const auto& a : actions)
    if (a.kind == kind)
      out.push_back(a.key);
  return out;
}

} // namespace

TEST(MapItems, AgentAndHumanItemsAreParsedWithTheirKind) {
  auto r = parse_document(fan_doc(), node_context());
  ASSERT_TRUE(r.errors.empty()) << all_errors(r);
  const auto& analyze = r.def->tasks[0];
  EXPECT_EQ(analyze.kind, task_kind::map);
  EXPECT_EQ(analyze.item_kind, task_kind::agent);
  EXPECT_EQ(analyze.unit_kind(), task_kind::agent);
  EXPECT_EQ(r.def->tasks[1].kind, task_kind::map);
  EXPECT_EQ(r.def->tasks[1].item_kind, task_kind::human);
  EXPECT_EQ(r.def->tasks[2].unit_kind(), task_kind::tool);
}

TEST(MapItems, WhatRunsPerItemIsCheckedWithLocatedErrors) {
  auto r = parse_text(R"yaml(
name: bad
tasks:
  - id: both
    items: input.xs
    tool: echo
    agent: helper
  - id: none
    kind: map
    items: input.xs
  - id: ask
    items: input.xs
    prompt: "{{ item }}?"
    input: {x: 1}
  - id: schema
    items: input.xs
    tool: echo
    answer_schema: {type: object}
  - id: nobody
    items: input.xs
    agent: nobody
  - id: secret
    items: input.xs
    agent: helper
    input: "{{ secrets.token }}"
agents:
  helper: {tools: [echo]}
)yaml",
                      "bad.yaml", node_context());
  ASSERT_FALSE(r.def);
  EXPECT_TRUE(has_error(r, "/tasks/0/agent",
                        "each item runs one of 'tool', 'agent', 'prompt' or 'workflow'"))
    << all_errors(r);
  EXPECT_TRUE(has_error(r, "/tasks/1", "needs 'tool', 'agent', 'prompt' or 'workflow'"))
    << all_errors(r);
  EXPECT_TRUE(has_error(r, "/tasks/2/input", "map of human tasks"))
    << all_errors(r);
  EXPECT_TRUE(has_error(r, "/tasks/3/answer_schema",
                        "applies to a map of human tasks"))
    << all_errors(r);
  EXPECT_TRUE(has_error(r, "/tasks/4/agent", "unknown agent 'nobody'"))
    << all_errors(r);
  // An agent's prompt is recorded and sent to a model: no secret in it.
  bool secret = false;
  for (const auto& d : r.errors)
    secret = secret || d.pointer.rfind("/tasks/5/input", 0) == 0;
  EXPECT_TRUE(secret) << all_errors(r);
  for (const auto& d : r.errors)
    EXPECT_GT(d.where.line, 0) << d.to_string();
}

TEST(MapItems, AgentItemsAreTurnsKeyedByItemWithTheirUsageSummed) {
  std::vector<event> log;
  machine m{"e1"};
  auto s = m.submit(fan_doc(), json{{"things", {"a", "b"}}}, "", 1);
  ASSERT_TRUE(s) << describe(s.error());
  keep(log, *s);
  ASSERT_EQ(keys_of(s->actions, action::run_agent),
            (std::vector<std::string>{"analyze[0]", "analyze[1]"}));
  EXPECT_EQ(s->actions[0].agent, "analyzer");
  EXPECT_EQ(s->actions[0].document, (json{{"tools", {"echo"}}}));
  EXPECT_EQ(s->actions[0].input, json("Analyse a (1)"));
  EXPECT_EQ(s->actions[1].input, json("Analyse b (2)"));
  EXPECT_EQ(s->actions[1].item, 1);

  auto first = m.succeeded("analyze[1]", 1, json("report b"), 0, 2,
                           usage(10, 2));
  keep(log, first);
  ASSERT_EQ(first.events.size(), 1u);
  EXPECT_EQ(first.events[0].payload->at("usage"), usage(10, 2));

  // Folded again from the log: the first item's turn is still to run, and
  // only it (the same key and attempt, so the same idempotency key).
  auto folded = fold_log(log);
  ASSERT_TRUE(folded) << describe(folded.error());
  auto again = folded->recover(3);
  ASSERT_EQ(keys_of(again, action::run_agent),
            (std::vector<std::string>{"analyze[0]"}));
  EXPECT_EQ(again[0].input, json("Analyse a (1)"));
  EXPECT_EQ(again[0].document, (json{{"tools", {"echo"}}}));
  // And from a snapshot.
  auto restored = machine::restore("e1", m.snapshot());
  ASSERT_TRUE(restored) << describe(restored.error());
  EXPECT_EQ(keys_of(restored->recover(3), action::run_agent),
            (std::vector<std::string>{"analyze[0]"}));

  auto second = m.succeeded("analyze[0]", 1, json("report a"), 0, 3,
                            usage(5, 1));
  keep(log, second);
  // The map completes with both reports in item order and the turns'
  // usage summed; the person is asked per item.
  const event* map_done = nullptr;
  for (const auto& ev : second.events)
    if (ev.type == "task_completed" && ev.payload->value("task", "")
                                           == "analyze"
        && !ev.payload->contains("item"))
      map_done = &ev;
  ASSERT_NE(map_done, nullptr);
  EXPECT_EQ(map_done->payload->at("output"), json({"report a", "report b"}));
  EXPECT_EQ(map_done->payload->at("usage")["input_tokens"], 15);
  EXPECT_EQ(map_done->payload->at("usage")["llm_calls"], 2);
  EXPECT_EQ(map_done->payload->at("usage")["cost_usd"], 0.5);
  EXPECT_EQ(m.view()["usage"]["output_tokens"], 3);
}

TEST(MapItems, HumanItemsAreAskedAndAnsweredEachByKey) {
  std::vector<event> log;
  machine m{"e1"};
  auto s = m.submit(fan_doc(), json{{"things", {"a", "b"}}}, "", 1);
  ASSERT_TRUE(s);
  keep(log, *s);
  keep(log, m.succeeded("analyze[0]", 1, json("report a"), 0, 2));
  auto asked = m.succeeded("analyze[1]", 1, json("report b"), 0, 3);
  keep(log, asked);
  EXPECT_EQ(keys_of(asked.actions, action::waiting_human),
            (std::vector<std::string>{"decide[0]", "decide[1]"}));
  std::vector<json> prompts;
  for (const auto& ev : asked.events)
    if (ev.type == "human_requested") {
      EXPECT_EQ(ev.payload->at("task"), "decide");
      prompts.push_back(ev.payload->at("prompt"));
    }
  ASSERT_EQ(prompts.size(), 2u);
  EXPECT_EQ(prompts[1], (json{{"thing", "b"}, {"report", "report b"}}));
  EXPECT_EQ(m.info().status, "waiting");
  auto view = m.view();
  ASSERT_EQ(view["waiting"].size(), 2u) << view.dump();
  EXPECT_EQ(view["waiting"][0]["task"], "decide[0]");
  EXPECT_EQ(view["waiting"][0]["prompt"]["thing"], "a");
  EXPECT_TRUE(view["waiting"][0].contains("answer_schema"));

  // The map itself is not answered; an answer must match the schema.
  auto whole = m.human_answer("decide", json{{"decision", "skip"}}, 4);
  ASSERT_FALSE(whole);
  EXPECT_EQ(code_of(whole.error()), errc::conflict);
  EXPECT_NE(message_of(whole.error()).find("decide[0]"), std::string::npos);
  auto bad = m.human_answer("decide[1]", json{{"decision", "retry"}}, 4);
  ASSERT_FALSE(bad);
  EXPECT_EQ(code_of(bad.error()), errc::invalid_input);
  auto none = m.human_answer("decide[2]", json{{"decision", "skip"}}, 4);
  ASSERT_FALSE(none);
  EXPECT_EQ(code_of(none.error()), errc::not_found);

  auto one = m.human_answer("decide[1]", json{{"decision", "skip"}}, 5);
  ASSERT_TRUE(one) << describe(one.error());
  keep(log, *one);
  ASSERT_EQ(one->events.size(), 1u);
  EXPECT_EQ(one->events[0].payload->value("by", ""), "human");
  EXPECT_EQ(one->events[0].payload->value("item", -1), 1);
  EXPECT_EQ(m.info().status, "waiting");
  auto twice = m.human_answer("decide[1]", json{{"decision", "skip"}}, 5);
  ASSERT_FALSE(twice);
  EXPECT_EQ(code_of(twice.error()), errc::conflict);

  // Folded again (a restart): only decide[0] still asks.
  auto folded = fold_log(log);
  ASSERT_TRUE(folded);
  EXPECT_EQ(keys_of(folded->recover(6), action::waiting_human),
            (std::vector<std::string>{"decide[0]"}));
  EXPECT_EQ(folded->info().status, "waiting");
  auto restored = machine::restore("e1", m.snapshot());
  ASSERT_TRUE(restored);
  EXPECT_EQ(restored->view()["waiting"], m.view()["waiting"]);

  auto last = folded->human_answer("decide[0]", json{{"decision", "clear"}},
                                   7);
  ASSERT_TRUE(last) << describe(last.error());
  keep(log, *last);
  EXPECT_EQ(folded->info().status, "running");
  ASSERT_EQ(keys_of(last->actions, action::dispatch),
            (std::vector<std::string>{"count"}));
  EXPECT_EQ(last->actions[0].input, (json{{"n", 2}}));
  EXPECT_EQ(folded->view()["tasks"][1]["output"],
            json({{{"decision", "clear"}}, {{"decision", "skip"}}}));

  // The recorded history replays through the same definition.
  auto check = check_against(log);
  ASSERT_TRUE(check) << describe(check.error());
  EXPECT_TRUE(check->compatible())
    << (check->first ? check->first->reason : "");
}

TEST(MapItems, ConcurrencyAsksOnePersonAtATime) {
  machine m{"e1"};
  auto s = m.submit(fan_doc(1), json{{"things", {"a", "b"}}}, "", 1);
  ASSERT_TRUE(s);
  (void) m.succeeded("analyze[0]", 1, json("ra"), 0, 2);
  auto asked = m.succeeded("analyze[1]", 1, json("rb"), 0, 3);
  EXPECT_EQ(keys_of(asked.actions, action::waiting_human),
            (std::vector<std::string>{"decide[0]"}));
  auto next = m.human_answer("decide[0]", json{{"decision", "skip"}}, 4);
  ASSERT_TRUE(next);
  EXPECT_EQ(keys_of(next->actions, action::waiting_human),
            (std::vector<std::string>{"decide[1]"}));
}

TEST(MapItems, AnItemWhosePromptFailsEndsTheWaitOfTheOthers) {
  // Item 0 is asked; item 1's prompt does not render, which fails the map
  // (on_failure: continue): item 0 no longer holds the execution waiting,
  // and its late answer is refused.
  json doc{{"name", "ask"},
           {"tasks",
            {{{"id", "decide"},
              {"items", "input.things"},
              {"concurrency", 0},
              {"prompt", "{{ string.upper(item) }}?"},
              {"on_failure", "continue"}},
             {{"id", "after"},
              {"depends_on", "decide"},
              {"tool", "echo"},
              {"input", {{"x", 1}}}}}}};
  machine m{"e1"};
  auto s = m.submit(doc, json{{"things", {"a", {{"not", "text"}}}}}, "", 1);
  ASSERT_TRUE(s) << describe(s.error());
  EXPECT_EQ(keys_of(s->actions, action::waiting_human),
            (std::vector<std::string>{"decide[0]"}));
  EXPECT_EQ(keys_of(s->actions, action::dispatch),
            (std::vector<std::string>{"after"}));
  EXPECT_EQ(m.info().status, "running");
  EXPECT_TRUE(m.view()["waiting"].empty()) << m.view().dump();
  auto late = m.human_answer("decide[0]", json("yes"), 2);
  ASSERT_FALSE(late);
  EXPECT_EQ(code_of(late.error()), errc::conflict);
  // The same after a restart.
  std::vector<event> log = s->events;
  auto folded = fold_log(log);
  ASSERT_TRUE(folded);
  EXPECT_EQ(folded->info().status, "running");
  EXPECT_TRUE(keys_of(folded->recover(3), action::waiting_human).empty());
}

TEST(MapItems, AnEmptyLuaTableIsNoItems) {
  // `{}` from Lua is an empty object in JSON; as items it is an empty list.
  json doc{{"name", "w"},
           {"tasks",
            {{{"id", "ask"},
              {"items", "(function() local out = {} return out end)()"},
              {"prompt", "{{ item }}?"}},
             {{"id", "each"},
              {"items", "{}"},
              {"tool", "echo"},
              {"input", "{{ item }}"}}}}};
  machine m{"e1"};
  auto s = m.submit(doc, json::object(), "", 1);
  ASSERT_TRUE(s) << describe(s.error());
  EXPECT_EQ(m.info().status, "completed") << m.view().dump();
  EXPECT_EQ(m.view()["tasks"][0]["output"], json::array());
  EXPECT_EQ(m.view()["tasks"][1]["output"], json::array());
}
