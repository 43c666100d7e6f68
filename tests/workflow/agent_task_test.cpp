// The `agent` task kind and the workflow's `agents:` section: parsing, and
// located errors for unknown agents, unknown tools and bad schemas.

#include <set>
#include <string>

#include <gtest/gtest.h>

#include "cadre/workflow/agent_spec.hpp"
#include "cadre/workflow/definition.hpp"
#include "cadre/workflow/machine.hpp"

using namespace cadre;
using namespace cadre::workflow;

namespace {

validation_context node_context() {
  validation_context ctx;
  ctx.tool_exists = [](const std::string& name) {
    static const std::set<std::string> tools = {"echo", "script"};
    return tools.count(name) > 0;
  };
  ctx.agent_exists = [](const std::string& name) {
    return name == "from_config";
  };
  return ctx;
}

const diagnostic* find_error(const parse_result& r, const std::string& pointer,
                             const std::string& text) {
  for (const auto& d : r.errors)
    if (d.pointer == pointer && d.message.find(text) != std::string::npos)
      return &d;
  return nullptr;
}

std::string all_errors(const parse_result& r) {
  std::string out;
  for (const auto& d : r.errors)
    out += "  " + d.to_string() + "\n";
  return out;
}

} // namespace

TEST(AgentTask, ParsesAgentsAndInfersTheKind) {
  auto r = parse_text(R"yaml(
name: a
agents:
  helper:
    tools: [echo]
    system: be brief
    output_schema: {type: object}
    memory: {scope: task, window: 4}
tasks:
  - id: ask
    agent: helper
    input: "{{ input.q }}"
  - id: other
    kind: agent
    agent: from_config
    depends_on: ask
)yaml",
                      "a.yaml", node_context());
  ASSERT_TRUE(r.errors.empty()) << all_errors(r);
  ASSERT_EQ(r.def->tasks.size(), 2u);
  EXPECT_EQ(r.def->tasks[0].kind, task_kind::agent);
  EXPECT_EQ(r.def->tasks[0].agent, "helper");
  EXPECT_EQ(r.def->agents.count("helper"), 1u);
  agent_spec spec;
  EXPECT_TRUE(parse_agent_spec("helper", r.def->agents["helper"], spec).empty());
  EXPECT_EQ(spec.memory_scope, "task");
  EXPECT_EQ(spec.memory_window, 4u);
  EXPECT_EQ(spec.memory_policy, "window");
  EXPECT_EQ(spec.memory_keep, 2u); // half the window when not given
  EXPECT_EQ(agent_id_of(spec, "e1", "ask"), "e1/ask");
}

TEST(AgentTask, SummaryMemoryIsCheckedWithItsKeys) {
  agent_spec spec;
  EXPECT_TRUE(parse_agent_spec("a",
                               json{{"memory",
                                     {{"policy", "summary"},
                                      {"window", 8},
                                      {"keep", 3}}}},
                               spec)
                .empty());
  EXPECT_EQ(spec.memory_policy, "summary");
  EXPECT_EQ(spec.memory_keep, 3u);
  auto problems = parse_agent_spec(
    "a", json{{"memory", {{"policy", "forget"}, {"window", 4}, {"keep", 5}}}},
    spec);
  ASSERT_EQ(problems.size(), 2u);
  EXPECT_EQ(problems[0].pointer, "/memory/policy");
  EXPECT_NE(problems[0].message.find("window or summary, got forget"),
            std::string::npos);
  EXPECT_EQ(problems[1].pointer, "/memory/keep");
  EXPECT_NE(problems[1].message.find("must not exceed 'window' (4)"),
            std::string::npos);
}

TEST(AgentTask, ErrorsAreLocated) {
  auto r = parse_text(R"yaml(
name: a
agents:
  helper:
    tools: [echo, ech]
    output_schema: {type: objekt}
    max_iterations: 0
    memroy: {}
tasks:
  - id: ask
    agent: helpr
  - id: two
    kind: agent
    tool: echo
)yaml",
                      "a.yaml", node_context());
  ASSERT_FALSE(r.def);
  auto* tool = find_error(r, "/agents/helper/tools/1", "unknown tool 'ech'");
  ASSERT_NE(tool, nullptr) << all_errors(r);
  EXPECT_EQ(tool->where.line, 5);
  EXPECT_NE(find_error(r, "/agents/helper/output_schema", "output_schema"),
            nullptr)
    << all_errors(r);
  EXPECT_NE(find_error(r, "/agents/helper/max_iterations", "from 1"), nullptr)
    << all_errors(r);
  EXPECT_NE(find_error(r, "/agents/helper/memroy", "did you mean 'memory'"),
            nullptr)
    << all_errors(r);
  auto* agent = find_error(r, "/tasks/0/agent", "unknown agent 'helpr'");
  ASSERT_NE(agent, nullptr) << all_errors(r);
  EXPECT_NE(agent->message.find("did you mean 'helper'"), std::string::npos);
  EXPECT_EQ(agent->where.line, 11);
  EXPECT_NE(find_error(r, "/tasks/1/tool", "does not apply to a agent task"),
            nullptr)
    << all_errors(r);
  EXPECT_NE(find_error(r, "/tasks/1", "needs 'agent'"), nullptr)
    << all_errors(r);
}

TEST(AgentTask, MachineDispatchesATurnAndSumsUsage) {
  json doc{{"name", "w"},
           {"agents", {{"h", {{"tools", {"echo"}}}}}},
           {"tasks", {{{"id", "ask"}, {"agent", "h"}, {"input", "hi"}}}}};
  machine m{"e1"};
  auto s = m.submit(doc, json::object(), "", 1);
  ASSERT_TRUE(s) << describe(s.error());
  ASSERT_EQ(s->actions.size(), 1u);
  EXPECT_EQ(s->actions[0].kind, action::run_agent);
  EXPECT_EQ(s->actions[0].agent, "h");
  EXPECT_EQ(s->actions[0].document, (json{{"tools", {"echo"}}}));
  EXPECT_EQ(s->events.back().payload->value("agent", ""), "h");
  json usage{{"input_tokens", 7}, {"output_tokens", 3}, {"cost_usd", 0.5},
             {"llm_calls", 2}, {"tool_calls", 1}};
  auto done = m.succeeded("ask", 1, json{{"a", 1}}, 0, 2, usage);
  ASSERT_FALSE(done.events.empty());
  EXPECT_EQ(done.events.front().payload->at("usage"), usage);
  auto& last = done.events.back();
  EXPECT_EQ(last.type, "execution_completed");
  EXPECT_EQ(last.payload->at("usage")["input_tokens"], 7);
  EXPECT_EQ(last.payload->at("usage")["cost_usd"], 0.5);
  // A replay of the log folds to the same state.
  machine r{"e1"};
  for (auto& ev : s->events)
    ASSERT_TRUE(r.apply(ev));
  auto again = r.recover(3);
  ASSERT_EQ(again.size(), 1u);
  EXPECT_EQ(again[0].kind, action::run_agent);
}
