#include "cadre/workflow/definition.hpp"

#include <filesystem>
#include <fstream>
#include <set>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "temp_dir.hpp"

using cadre::json;
using namespace cadre::workflow;

namespace {

validation_context test_context() {
  validation_context ctx;
  ctx.tool_exists = [](const std::string& name) {
    static const std::set<std::string> tools = {"echo", "script", "fail",
                                                "sleep"};
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

definition parse_ok(const std::string& text,
                    const std::string& file = "test.yaml") {
  auto r = parse_text(text, file, test_context());
  EXPECT_TRUE(r.errors.empty()) << all_errors(r);
  EXPECT_TRUE(r.def.has_value());
  return r.def ? *r.def : definition{};
}

/// The diagnostic at `pointer` whose message contains `text`, or null.
const diagnostic* find_error(const parse_result& r, const std::string& pointer,
                             const std::string& text) {
  for (const auto& d : r.errors)
    if (d.pointer == pointer && d.message.find(text) != std::string::npos)
      return &d;
  return nullptr;
}

void expect_same_tasks(const definition& x, const definition& y) {
  ASSERT_EQ(x.tasks.size(), y.tasks.size());
  for (size_t i = 0; i < x.tasks.size(); ++i) {
    const auto& a = x.tasks[i];
    const auto& b = y.tasks[i];
    SCOPED_TRACE("task " + a.id);
    EXPECT_EQ(a.id, b.id);
    EXPECT_EQ(a.kind, b.kind);
    EXPECT_EQ(a.tool, b.tool);
    EXPECT_EQ(a.input, b.input);
    EXPECT_EQ(a.depends_on, b.depends_on);
    EXPECT_EQ(a.when, b.when);
    EXPECT_EQ(a.retry.max_attempts, b.retry.max_attempts);
    EXPECT_EQ(a.retry.initial_backoff_ms, b.retry.initial_backoff_ms);
    EXPECT_EQ(a.retry.multiplier, b.retry.multiplier);
    EXPECT_EQ(a.retry.max_backoff_ms, b.retry.max_backoff_ms);
    EXPECT_EQ(a.retry.jitter, b.retry.jitter);
    EXPECT_EQ(a.retry.retry_on, b.retry.retry_on);
    EXPECT_EQ(a.timeout_ms, b.timeout_ms);
    EXPECT_EQ(a.on_failure, b.on_failure);
    EXPECT_EQ(a.fallback, b.fallback);
    EXPECT_EQ(a.prompt, b.prompt);
    EXPECT_EQ(a.answer_schema, b.answer_schema);
    EXPECT_EQ(a.items, b.items);
    EXPECT_EQ(a.concurrency, b.concurrency);
    EXPECT_EQ(a.workflow, b.workflow);
    EXPECT_EQ(a.pointer, b.pointer);
  }
}

constexpr const char* sample_yaml = R"(name: sample
version: "2"
description: All the parts.
timeout: 1m
input_schema:
  type: object
  required: [n]
tasks:
  - id: start
    tool: echo
    input: {n: "{{ input.n }}", label: 'n is {{ input.n }}', flag: true}
  - id: fan
    kind: map
    items: "{{ input.list }}"
    concurrency: 3
    tool: script
    input:
      code: return args * 2
      args: "{{ item }}"
    depends_on: start
  - id: flaky
    tool: fail
    depends_on: [start]
    input: {times: 1}
    retry:
      max_attempts: 4
      backoff: 250ms
      multiplier: 1.5
      max_backoff: 10s
      jitter: 0
      retry_on: [tool_failed, timeout]
    timeout: 30s
    on_failure: fallback:rescue
  - id: rescue
    tool: echo
    input: {from: "{{ tasks.start.output.n }}"}
  - id: ask
    depends_on: [fan, flaky]
    when: tasks.fan.output[1] > 0
    prompt: "Go on with {{ #tasks.fan.output }} items?"
    answer_schema: {type: boolean}
    on_failure: continue
  - id: child
    depends_on: ask
    input: {x: 1}
    workflow:
      name: inner
      tasks:
        - id: one
          tool: echo
output: "{{ tasks.child.output }}"
)";

constexpr const char* sample_json = R"({
  "name": "sample",
  "version": "2",
  "description": "All the parts.",
  "timeout": "1m",
  "input_schema": {"type": "object", "required": ["n"]},
  "tasks": [
    {"id": "start", "tool": "echo",
     "input": {"n": "{{ input.n }}", "label": "n is {{ input.n }}",
               "flag": true}},
    {"id": "fan", "kind": "map", "items": "{{ input.list }}",
     "concurrency": 3, "tool": "script",
     "input": {"code": "return args * 2", "args": "{{ item }}"},
     "depends_on": "start"},
    {"id": "flaky", "tool": "fail", "depends_on": ["start"],
     "input": {"times": 1},
     "retry": {"max_attempts": 4, "backoff": "250ms", "multiplier": 1.5,
               "max_backoff": "10s", "jitter": 0,
               "retry_on": ["tool_failed", "timeout"]},
     "timeout": 30000,
     "on_failure": {"fallback": "rescue"}},
    {"id": "rescue", "tool": "echo",
     "input": {"from": "{{ tasks.start.output.n }}"}},
    {"id": "ask", "depends_on": ["fan", "flaky"],
     "when": "tasks.fan.output[1] > 0",
     "prompt": "Go on with {{ #tasks.fan.output }} items?",
     "answer_schema": {"type": "boolean"},
     "on_failure": "continue"},
    {"id": "child", "depends_on": "ask", "input": {"x": 1},
     "workflow": {"name": "inner",
                  "tasks": [{"id": "one", "tool": "echo"}]}}
  ],
  "output": "{{ tasks.child.output }}"
}
)";

} // namespace

TEST(WorkflowParser, YamlAndJsonGiveEqualDefinitions) {
  auto y = parse_ok(sample_yaml, "sample.yaml");
  auto j = parse_ok(sample_json, "sample.json");
  EXPECT_EQ(y.name, "sample");
  EXPECT_EQ(y.name, j.name);
  EXPECT_EQ(y.version, "2");
  EXPECT_EQ(y.version, j.version);
  EXPECT_EQ(y.description, j.description);
  EXPECT_EQ(y.input_schema, j.input_schema);
  EXPECT_EQ(y.timeout_ms, 60000);
  EXPECT_EQ(y.timeout_ms, j.timeout_ms);
  EXPECT_EQ(y.output, j.output);
  expect_same_tasks(y, j);
  // The documents differ only where the JSON spells a value differently.
  auto yd = y.document;
  auto jd = j.document;
  jd["tasks"][1]["depends_on"] = "start";
  yd["tasks"][2]["timeout"] = 30000;
  yd["tasks"][2]["on_failure"] = json{{"fallback", "rescue"}};
  EXPECT_EQ(yd, jd);
}

TEST(WorkflowParser, ReadsEveryField) {
  auto d = parse_ok(sample_yaml);
  ASSERT_EQ(d.tasks.size(), 6u);
  EXPECT_EQ(d.index_of("flaky"), 2);
  EXPECT_EQ(d.index_of("nope"), -1);
  const auto& start = d.tasks[0];
  EXPECT_EQ(start.kind, task_kind::tool);
  EXPECT_EQ(start.input,
            json({{"n", "{{ input.n }}"},
                  {"label", "n is {{ input.n }}"},
                  {"flag", true}}));
  EXPECT_EQ(start.pointer, "/tasks/0");
  EXPECT_EQ(start.where.line, 9);
  EXPECT_EQ(start.where.column, 5);
  const auto& fan = d.tasks[1];
  EXPECT_EQ(fan.kind, task_kind::map);
  EXPECT_EQ(fan.items, "input.list");
  EXPECT_EQ(fan.concurrency, 3u);
  EXPECT_EQ(fan.depends_on, std::vector<std::string>{"start"});
  const auto& flaky = d.tasks[2];
  EXPECT_EQ(flaky.retry.max_attempts, 4u);
  EXPECT_EQ(flaky.retry.initial_backoff_ms, 250);
  EXPECT_DOUBLE_EQ(flaky.retry.multiplier, 1.5);
  EXPECT_EQ(flaky.retry.max_backoff_ms, 10000);
  EXPECT_DOUBLE_EQ(flaky.retry.jitter, 0.0);
  EXPECT_EQ(flaky.retry.retry_on,
            (std::vector<std::string>{"tool_failed", "timeout"}));
  EXPECT_EQ(flaky.timeout_ms, 30000);
  EXPECT_EQ(flaky.on_failure, failure_action::fallback);
  EXPECT_EQ(flaky.fallback, "rescue");
  const auto& ask = d.tasks[4];
  EXPECT_EQ(ask.kind, task_kind::human); // inferred from prompt
  EXPECT_EQ(ask.on_failure, failure_action::proceed);
  EXPECT_EQ(ask.answer_schema, json({{"type", "boolean"}}));
  const auto& child = d.tasks[5];
  EXPECT_EQ(child.kind, task_kind::workflow); // inferred from workflow
  EXPECT_EQ(child.workflow["name"], "inner");
  EXPECT_EQ(d.output, json("{{ tasks.child.output }}"));
}

TEST(WorkflowParser, ScalarsFollowYamlCoreSchema) {
  auto d = parse_ok(R"(name: types
version: 1.10
tasks:
  - id: a
    tool: echo
    input:
      int: 42
      neg: -7
      hex: 0x1f
      float: 2.5
      exp: 1e3
      yes: true
      no: False
      nothing: ~
      empty:
      quoted_int: "42"
      quoted_null: 'null'
      word: yes
      tagged: !!str 12
)");
  EXPECT_EQ(d.version, "1.10");
  const auto& in = d.tasks.at(0).input;
  EXPECT_TRUE(in["int"].is_number_integer());
  EXPECT_EQ(in["int"], 42);
  EXPECT_EQ(in["neg"], -7);
  EXPECT_EQ(in["hex"], 31);
  EXPECT_TRUE(in["float"].is_number_float());
  EXPECT_EQ(in["exp"], 1000.0);
  EXPECT_EQ(in["yes"], true);
  EXPECT_EQ(in["no"], false);
  EXPECT_TRUE(in["nothing"].is_null());
  EXPECT_TRUE(in["empty"].is_null());
  EXPECT_EQ(in["quoted_int"], "42");
  EXPECT_EQ(in["quoted_null"], "null");
  EXPECT_EQ(in["word"], "yes");
  EXPECT_EQ(in["tagged"], "12");
}

namespace {

struct error_case {
  const char* name;
  const char* text;
  const char* pointer;
  int line;
  int column;
  const char* message;
};

const error_case error_cases[] = {
  {"UnknownTool",
   "name: w\n"
   "tasks:\n"
   "  - id: a\n"
   "    tool: nope\n",
   "/tasks/0/tool", 4, 11, "unknown tool 'nope'"},
  {"UnknownTopLevelKey",
   "name: w\n"
   "taks: []\n"
   "tasks:\n"
   "  - id: a\n"
   "    tool: echo\n",
   "/taks", 2, 1, "unknown key 'taks' in the workflow; did you mean 'tasks'?"},
  {"UnknownTaskKey",
   "name: w\n"
   "tasks:\n"
   "  - id: a\n"
   "    tool: echo\n"
   "    depend_on: b\n",
   "/tasks/0/depend_on", 5, 5, "did you mean 'depends_on'?"},
  {"RetryKeyAtTaskLevel",
   "name: w\n"
   "tasks:\n"
   "  - id: a\n"
   "    tool: echo\n"
   "    backoff: 1s\n",
   "/tasks/0/backoff", 5, 5, "belongs under 'retry'"},
  {"UnknownDependency",
   "name: w\n"
   "tasks:\n"
   "  - id: a\n"
   "    tool: echo\n"
   "  - id: b\n"
   "    tool: echo\n"
   "    depends_on: [a, c]\n",
   "/tasks/1/depends_on/1", 7, 21, "unknown task 'c' in depends_on"},
  {"DuplicateId",
   "name: w\n"
   "tasks:\n"
   "  - id: a\n"
   "    tool: echo\n"
   "  - id: a\n"
   "    tool: echo\n",
   "/tasks/1/id", 5, 9, "duplicate task id 'a' (first at line 3)"},
  {"BadId",
   "name: w\n"
   "tasks:\n"
   "  - id: 9lives\n"
   "    tool: echo\n",
   "/tasks/0/id", 3, 9, "must start with a letter"},
  {"Cycle",
   "name: w\n"
   "tasks:\n"
   "  - id: a\n"
   "    tool: echo\n"
   "    depends_on: c\n"
   "  - id: b\n"
   "    tool: echo\n"
   "    depends_on: a\n"
   "  - id: c\n"
   "    tool: echo\n"
   "    depends_on: b\n",
   "/tasks/0/depends_on", 5, 17, "dependency cycle: a -> c -> b -> a"},
  {"SelfDependency",
   "name: w\n"
   "tasks:\n"
   "  - id: a\n"
   "    tool: echo\n"
   "    depends_on: [a]\n",
   "/tasks/0/depends_on/0", 5, 18, "dependency cycle: a -> a"},
  {"WhenDoesNotCompile",
   "name: w\n"
   "tasks:\n"
   "  - id: a\n"
   "    tool: echo\n"
   "    when: input.x ==\n",
   "/tasks/0/when", 5, 11, "unexpected symbol near ')'"},
  {"ItemsDoesNotCompile",
   "name: w\n"
   "tasks:\n"
   "  - id: m\n"
   "    kind: map\n"
   "    tool: echo\n"
   "    items: input.list[\n",
   "/tasks/0/items", 6, 12, "does not compile"},
  {"TemplateDoesNotCompile",
   "name: w\n"
   "tasks:\n"
   "  - id: a\n"
   "    tool: echo\n"
   "    input:\n"
   "      url: \"{{ input.x + }}\"\n",
   "/tasks/0/input/url", 6, 12, "unexpected symbol"},
  {"UnclosedTemplate",
   "name: w\n"
   "tasks:\n"
   "  - id: a\n"
   "    tool: echo\n"
   "    input: {u: 'x {{ input.x'}\n",
   "/tasks/0/input/u", 5, 16, "not closed"},
  {"ReferenceNotUpstream",
   "name: w\n"
   "tasks:\n"
   "  - id: a\n"
   "    tool: echo\n"
   "  - id: b\n"
   "    tool: echo\n"
   "    input: \"{{ tasks.a.output }}\"\n",
   "/tasks/1/input", 7, 12, "task 'a' is not upstream of 'b'"},
  {"ReferenceUnknown",
   "name: w\n"
   "tasks:\n"
   "  - id: alpha\n"
   "    tool: echo\n"
   "  - id: b\n"
   "    tool: echo\n"
   "    depends_on: alpha\n"
   "    when: tasks[\"alpah\"].output\n",
   "/tasks/1/when", 8, 11, "unknown task 'alpah'"},
  {"ReferenceWithDash",
   "name: w\n"
   "tasks:\n"
   "  - id: get-data\n"
   "    tool: echo\n"
   "  - id: b\n"
   "    tool: echo\n"
   "    depends_on: get-data\n"
   "    input: {x: \"{{ tasks.get-data.output }}\"}\n",
   "/tasks/1/input/x", 8, 16, "write tasks[\"get-data\"]"},
  {"ReferenceToSelf",
   "name: w\n"
   "tasks:\n"
   "  - id: a\n"
   "    tool: echo\n"
   "    input: \"{{ tasks.a.output }}\"\n",
   "/tasks/0/input", 5, 12, "reads its own output"},
  {"OutputReferenceUnknown",
   "name: w\n"
   "tasks:\n"
   "  - id: a\n"
   "    tool: echo\n"
   "output: {r: \"{{ tasks.b.output }}\"}\n",
   "/output/r", 5, 13, "unknown task 'b'"},
  {"HumanNeedsPrompt",
   "name: w\n"
   "tasks:\n"
   "  - id: h\n"
   "    kind: human\n",
   "/tasks/0", 3, 5, "a human task needs 'prompt'"},
  {"MapNeedsItems",
   "name: w\n"
   "tasks:\n"
   "  - id: m\n"
   "    kind: map\n"
   "    tool: echo\n",
   "/tasks/0", 3, 5, "a map task needs 'items'"},
  {"ToolTaskNeedsTool",
   "name: w\n"
   "tasks:\n"
   "  - id: t\n"
   "    input: {}\n",
   "/tasks/0", 3, 5, "a tool task needs 'tool'"},
  {"KeyOfAnotherKind",
   "name: w\n"
   "tasks:\n"
   "  - id: t\n"
   "    kind: tool\n"
   "    tool: echo\n"
   "    prompt: hi\n",
   "/tasks/0/prompt", 6, 5, "'prompt' does not apply to a tool task"},
  {"UnknownKind",
   "name: w\n"
   "tasks:\n"
   "  - id: t\n"
   "    kind: tol\n"
   "    tool: echo\n",
   "/tasks/0/kind", 4, 11, "did you mean 'tool'?"},
  {"FallbackDependedOn",
   "name: w\n"
   "tasks:\n"
   "  - id: a\n"
   "    tool: echo\n"
   "    on_failure: fallback:b\n"
   "  - id: b\n"
   "    tool: echo\n"
   "  - id: c\n"
   "    tool: echo\n"
   "    depends_on: b\n",
   "/tasks/2/depends_on", 10, 17, "the fallback of 'a'"},
  {"FallbackUnknown",
   "name: w\n"
   "tasks:\n"
   "  - id: a\n"
   "    tool: echo\n"
   "    on_failure: {fallback: z}\n",
   "/tasks/0/on_failure/fallback", 5, 28, "unknown fallback task 'z'"},
  {"FallbackWithDependencies",
   "name: w\n"
   "tasks:\n"
   "  - id: a\n"
   "    tool: echo\n"
   "    on_failure: fallback:b\n"
   "  - id: b\n"
   "    tool: echo\n"
   "    depends_on: a\n",
   "/tasks/0/on_failure", 5, 17, "must not have depends_on"},
  {"BadOnFailure",
   "name: w\n"
   "tasks:\n"
   "  - id: a\n"
   "    tool: echo\n"
   "    on_failure: contine\n",
   "/tasks/0/on_failure", 5, 17, "did you mean 'continue'?"},
  {"BadDuration",
   "name: w\n"
   "tasks:\n"
   "  - id: a\n"
   "    tool: echo\n"
   "    timeout: 5 minutes\n",
   "/tasks/0/timeout", 5, 14, "not a duration"},
  {"UnknownRetryCode",
   "name: w\n"
   "tasks:\n"
   "  - id: a\n"
   "    tool: echo\n"
   "    retry:\n"
   "      retry_on: [tool_faild]\n",
   "/tasks/0/retry/retry_on/0", 6, 18, "did you mean 'tool_failed'?"},
  {"BadMaxAttempts",
   "name: w\n"
   "tasks:\n"
   "  - id: a\n"
   "    tool: echo\n"
   "    retry: {max_attempts: 0}\n",
   "/tasks/0/retry/max_attempts", 5, 27, "'max_attempts' must be"},
  {"MissingName",
   "tasks:\n"
   "  - id: a\n"
   "    tool: echo\n",
   "", 1, 1, "the workflow has no 'name'"},
  {"EmptyTasks",
   "name: w\n"
   "tasks: []\n",
   "/tasks", 2, 8, "at least one task"},
  {"BadInputSchema",
   "name: w\n"
   "input_schema: {type: object, properties: 3}\n"
   "tasks:\n"
   "  - id: a\n"
   "    tool: echo\n",
   "/input_schema", 2, 15, "'input_schema'"},
  {"DuplicateKey",
   "name: w\n"
   "tasks:\n"
   "  - id: a\n"
   "    tool: echo\n"
   "    tool: script\n",
   "/tasks/0/tool", 5, 5, "duplicate key 'tool' (first at line 4)"},
  {"SubWorkflowError",
   "name: w\n"
   "tasks:\n"
   "  - id: sub\n"
   "    workflow:\n"
   "      name: inner\n"
   "      tasks:\n"
   "        - id: x\n"
   "          tool: missing\n",
   "/tasks/0/workflow/tasks/0/tool", 8, 17, "unknown tool 'missing'"},
  {"JsonText",
   "{\n"
   "  \"name\": \"w\",\n"
   "  \"tasks\": [\n"
   "    {\"id\": \"a\", \"tool\": \"nope\"}\n"
   "  ]\n"
   "}\n",
   "/tasks/0/tool", 4, 25, "unknown tool 'nope'"},
};

class ErrorCase : public ::testing::TestWithParam<error_case> {};

} // namespace

TEST_P(ErrorCase, ReportsLocationAndPointer) {
  const auto& c = GetParam();
  auto r = parse_text(c.text, "w.yaml", test_context());
  EXPECT_FALSE(r.def.has_value());
  auto* d = find_error(r, c.pointer, c.message);
  ASSERT_NE(d, nullptr) << "no error at '" << c.pointer << "' containing '"
                        << c.message << "'; got:\n"
                        << all_errors(r);
  EXPECT_EQ(d->file, "w.yaml");
  EXPECT_EQ(d->where.line, c.line) << d->to_string();
  EXPECT_EQ(d->where.column, c.column) << d->to_string();
}

INSTANTIATE_TEST_SUITE_P(WorkflowParser, ErrorCase,
                         ::testing::ValuesIn(error_cases),
                         [](const auto& info) {
                           return std::string{info.param.name};
                         });

TEST(WorkflowParser, SyntaxErrorHasLocation) {
  auto r = parse_text("name: w\ntasks: [\n  - id: a\n", "bad.yaml",
                      test_context());
  ASSERT_EQ(r.errors.size(), 1u) << all_errors(r);
  EXPECT_GT(r.errors[0].where.line, 0);
  EXPECT_NE(r.errors[0].message.find("syntax error"), std::string::npos);
  EXPECT_EQ(r.errors[0].to_string().rfind("bad.yaml:", 0), 0u);
}

TEST(WorkflowParser, EmptyAndNonMappingDocuments) {
  auto r = parse_text("", "e.yaml", test_context());
  ASSERT_EQ(r.errors.size(), 1u);
  EXPECT_NE(r.errors[0].message.find("empty"), std::string::npos);
  r = parse_text("- a\n- b\n", "l.yaml", test_context());
  ASSERT_EQ(r.errors.size(), 1u) << all_errors(r);
  EXPECT_NE(r.errors[0].message.find("must be a mapping"), std::string::npos);
}

TEST(WorkflowParser, ReportsSeveralErrorsAtOnce) {
  auto r = parse_text("name: w\n"
                      "tasks:\n"
                      "  - id: a\n"
                      "    tool: nope\n"
                      "    when: 1 +\n"
                      "  - id: a\n"
                      "    tool: echo\n"
                      "    depends_on: [zz]\n"
                      "    timeout: soon\n",
                      "many.yaml", test_context());
  EXPECT_FALSE(r.def.has_value());
  EXPECT_NE(find_error(r, "/tasks/0/tool", "unknown tool"), nullptr);
  EXPECT_NE(find_error(r, "/tasks/0/when", "does not compile"), nullptr);
  EXPECT_NE(find_error(r, "/tasks/1/id", "duplicate task id"), nullptr);
  EXPECT_NE(find_error(r, "/tasks/1/depends_on/0", "unknown task 'zz'"),
            nullptr);
  EXPECT_NE(find_error(r, "/tasks/1/timeout", "not a duration"), nullptr);
  EXPECT_EQ(r.errors.size(), 5u) << all_errors(r);
  // In document order.
  for (size_t i = 1; i < r.errors.size(); ++i)
    EXPECT_LE(r.errors[i - 1].where.line, r.errors[i].where.line);
}

TEST(WorkflowParser, CyclePathText) {
  auto r = parse_text("name: w\n"
                      "tasks:\n"
                      "  - {id: x, tool: echo}\n"
                      "  - {id: a, tool: echo, depends_on: [x, b]}\n"
                      "  - {id: b, tool: echo, depends_on: c}\n"
                      "  - {id: c, tool: echo, depends_on: [a]}\n",
                      "c.yaml", test_context());
  ASSERT_EQ(r.errors.size(), 1u) << all_errors(r);
  EXPECT_EQ(r.errors[0].message,
            "dependency cycle: a -> b -> c -> a (each task depends on the "
            "next)");
  EXPECT_EQ(r.errors[0].pointer, "/tasks/1/depends_on/1");
  EXPECT_EQ(r.errors[0].to_string(),
            "c.yaml:4:41: /tasks/1/depends_on/1: dependency cycle: a -> b "
            "-> c -> a (each task depends on the next)");
}

TEST(WorkflowParser, Durations) {
  struct item {
    json value;
    int64_t ms;
  };
  const item items[] = {
    {250, 250},       {"250ms", 250},       {"30s", 30000},
    {"5m", 300000},   {"1h", 3600000},      {"1h30m", 5400000},
    {"1.5s", 1500},   {"2m 10s", 130000},   {"1500", 1500},
    {2.6, 3},         {0, 0},
  };
  for (const auto& it : items) {
    json doc = {{"name", "d"},
                {"timeout", it.value},
                {"tasks",
                 {{{"id", "a"}, {"tool", "echo"}, {"timeout", it.value}}}}};
    auto r = parse_document(doc, test_context());
    ASSERT_TRUE(r.def) << it.value.dump() << "\n" << all_errors(r);
    EXPECT_EQ(r.def->timeout_ms, it.ms) << it.value.dump();
    EXPECT_EQ(r.def->tasks[0].timeout_ms, it.ms) << it.value.dump();
  }
  for (const json& bad : {json("5 minutes"), json("1x"), json(-1),
                          json("ms"), json(true), json("1..5s")}) {
    json doc = {{"name", "d"},
                {"tasks", {{{"id", "a"}, {"tool", "echo"}, {"timeout", bad}}}}};
    auto r = parse_document(doc, test_context());
    EXPECT_FALSE(r.def) << bad.dump();
    EXPECT_NE(find_error(r, "/tasks/0/timeout", "'timeout'"), nullptr)
      << bad.dump() << "\n"
      << all_errors(r);
  }
}

TEST(WorkflowParser, OnFailureForms) {
  auto d = parse_ok("name: w\n"
                    "tasks:\n"
                    "  - {id: a, tool: echo, on_failure: fail}\n"
                    "  - {id: b, tool: echo, on_failure: continue}\n"
                    "  - {id: c, tool: echo, on_failure: 'fallback: fb1'}\n"
                    "  - {id: d, tool: echo, on_failure: {fallback: fb2}}\n"
                    "  - {id: e, tool: echo}\n"
                    "  - {id: fb1, tool: echo}\n"
                    "  - {id: fb2, tool: echo}\n");
  ASSERT_EQ(d.tasks.size(), 7u);
  EXPECT_EQ(d.tasks[0].on_failure, failure_action::fail);
  EXPECT_EQ(d.tasks[1].on_failure, failure_action::proceed);
  EXPECT_EQ(d.tasks[2].on_failure, failure_action::fallback);
  EXPECT_EQ(d.tasks[2].fallback, "fb1");
  EXPECT_EQ(d.tasks[3].on_failure, failure_action::fallback);
  EXPECT_EQ(d.tasks[3].fallback, "fb2");
  EXPECT_EQ(d.tasks[4].on_failure, failure_action::fail);
  EXPECT_TRUE(d.tasks[4].fallback.empty());
}

TEST(WorkflowParser, FallbackMayReadWhatItsTaskCould) {
  parse_ok("name: w\n"
           "tasks:\n"
           "  - {id: a, tool: echo}\n"
           "  - {id: b, tool: echo, depends_on: a, on_failure: fallback:c}\n"
           "  - {id: c, tool: echo, input: '{{ tasks.a.output }}'}\n");
  auto r = parse_text("name: w\n"
                      "tasks:\n"
                      "  - {id: a, tool: echo, on_failure: fallback:c}\n"
                      "  - {id: b, tool: echo, on_failure: fallback:c}\n"
                      "  - {id: c, tool: echo}\n",
                      "w.yaml", test_context());
  EXPECT_NE(find_error(r, "/tasks/1/on_failure", "already the fallback of"),
            nullptr)
    << all_errors(r);
  r = parse_text("name: w\n"
                 "tasks:\n"
                 "  - {id: a, tool: echo, on_failure: fallback:b}\n"
                 "  - {id: b, tool: echo, on_failure: fallback:a}\n",
                 "w.yaml", test_context());
  EXPECT_NE(find_error(r, "/tasks/0/on_failure", "fallback cycle: a -> b -> a"),
            nullptr)
    << all_errors(r);
}

TEST(WorkflowParser, TransitiveDependenciesAreUpstream) {
  parse_ok("name: w\n"
           "tasks:\n"
           "  - {id: a, tool: echo}\n"
           "  - {id: b, tool: echo, depends_on: a}\n"
           "  - id: c\n"
           "    tool: echo\n"
           "    depends_on: b\n"
           "    when: tasks.a.output ~= nil and tasks['b'].output ~= nil\n"
           "    input: {x: 'a={{ tasks.a.output }}'}\n"
           "output: '{{ tasks.c.output }}'\n");
}

TEST(WorkflowParser, UnknownToolsPassWithoutContext) {
  auto r = parse_text("name: w\ntasks:\n  - {id: a, tool: anything}\n", "",
                      validation_context{});
  EXPECT_TRUE(r.def) << all_errors(r);
}

TEST(WorkflowParser, ParseDocumentHasPointersButNoLines) {
  json doc = {{"name", "w"},
              {"tasks", {{{"id", "a"}, {"tool", "nope"}}}}};
  auto r = parse_document(doc, test_context());
  ASSERT_EQ(r.errors.size(), 1u);
  EXPECT_EQ(r.errors[0].pointer, "/tasks/0/tool");
  EXPECT_EQ(r.errors[0].where.line, 0);
  EXPECT_EQ(r.errors[0].to_string(),
            "/tasks/0/tool: unknown tool 'nope' (no tool of that name is "
            "registered)");
  doc["tasks"][0]["tool"] = "echo";
  r = parse_document(doc, test_context());
  ASSERT_TRUE(r.def);
  EXPECT_EQ(r.def->document, doc);
}

TEST(WorkflowParser, ParseFile) {
  cadre::test::temp_dir dir;
  auto path = (dir.path() / "w.yaml").string();
  {
    std::ofstream out{path};
    out << "name: w\ntasks:\n  - {id: a, tool: echo}\n";
  }
  auto r = parse_file(path, test_context());
  EXPECT_TRUE(r.def) << all_errors(r);
  r = parse_file((dir.path() / "missing.yaml").string(), test_context());
  ASSERT_EQ(r.errors.size(), 1u);
  EXPECT_NE(r.errors[0].message.find("cannot open"), std::string::npos);
}

TEST(Diagnostic, ToStringLeavesOutUnknownParts) {
  diagnostic d{"f.yaml", {3, 7}, "/tasks/0", "bad"};
  EXPECT_EQ(d.to_string(), "f.yaml:3:7: /tasks/0: bad");
  d.pointer.clear();
  EXPECT_EQ(d.to_string(), "f.yaml:3:7: bad");
  d.where = {};
  EXPECT_EQ(d.to_string(), "f.yaml: bad");
  d.file.clear();
  EXPECT_EQ(d.to_string(), "bad");
}

TEST(CheckSchema, AcceptsMatchingValues) {
  json schema = {{"type", "object"},
                 {"properties", {{"n", {{"type", "integer"}}}}},
                 {"required", {"n"}}};
  EXPECT_TRUE(check_schema(schema, json{{"n", 3}}, "input"));
  EXPECT_TRUE(check_schema(nullptr, json{{"anything", 1}}, "input"));
  EXPECT_TRUE(check_schema(true, 5, "input"));
  EXPECT_FALSE(check_schema(false, 5, "input"));
}

TEST(CheckSchema, ListsEveryFailureWithPointer) {
  json schema = {
    {"type", "object"},
    {"properties",
     {{"n", {{"type", "integer"}}},
      {"tags", {{"type", "array"}, {"items", {{"type", "string"}}}}},
      {"inner",
       {{"type", "object"},
        {"properties", {{"level", {{"minimum", 1}}}}}}}}},
    {"required", {"name"}},
  };
  json value = {{"n", "x"},
                {"tags", {"a", 3}},
                {"inner", {{"level", 0}}}};
  auto ok = check_schema(schema, value, "input of w");
  ASSERT_FALSE(ok);
  EXPECT_EQ(cadre::code_of(ok.error()), cadre::errc::invalid_input);
  auto msg = cadre::message_of(ok.error());
  EXPECT_EQ(msg.rfind("input of w: ", 0), 0u) << msg;
  EXPECT_NE(msg.find("/n: "), std::string::npos) << msg;
  EXPECT_NE(msg.find("(got string)"), std::string::npos) << msg;
  EXPECT_NE(msg.find("/tags/1: "), std::string::npos) << msg;
  EXPECT_NE(msg.find("/inner/level: "), std::string::npos) << msg;
  EXPECT_NE(msg.find("/: Missing required property 'name'"),
            std::string::npos)
    << msg;
  // Summaries such as "Failed to validate item #1" are left out.
  EXPECT_EQ(msg.find("Failed to validate"), std::string::npos) << msg;
}

TEST(CheckSchema, BadSchemaIsAnError) {
  auto ok = check_schema(json{{"type", "object"}, {"properties", 3}}, 1, "x");
  ASSERT_FALSE(ok);
  EXPECT_NE(cadre::message_of(ok.error()).find("schema"), std::string::npos);
}

TEST(Examples, ValidExamplesParse) {
  for (const char* name : {"hello.yaml", "fanout.yaml"}) {
    auto path = std::string{CADRE_SOURCE_DIR} + "/examples/" + name;
    auto r = parse_file(path, test_context());
    EXPECT_TRUE(r.def) << path << "\n" << all_errors(r);
  }
}

TEST(Examples, EveryExampleParsesOrFailsOnPurpose) {
  for (const auto& entry : std::filesystem::directory_iterator(
         std::filesystem::path{CADRE_SOURCE_DIR} / "examples")) {
    if (entry.path().extension() != ".yaml")
      continue;
    auto r = parse_file(entry.path().string(), test_context());
    bool meant_invalid = entry.path().filename().string().find("invalid")
                         != std::string::npos;
    EXPECT_EQ(r.def.has_value(), !meant_invalid)
      << entry.path() << "\n"
      << all_errors(r);
  }
}

TEST(Examples, InvalidExampleShowsEachKindOfError) {
  auto path = std::string{CADRE_SOURCE_DIR} + "/examples/invalid.yaml";
  auto r = parse_file(path, test_context());
  ASSERT_FALSE(r.def);
  const std::pair<const char*, const char*> expected[] = {
    {"/tasks/0/tool", "unknown tool 'ech'"},
    {"/tasks/0/input/url", "does not compile"},
    {"/tasks/1/depends_on/1", "did you mean 'fetch'?"},
    {"/tasks/1/retries", "did you mean 'retry'?"},
    {"/tasks/1/input/args", "is not upstream of 'parse'"},
    {"/tasks/2/timeout", "not a duration"},
    {"/tasks/2/depends_on", "dependency cycle: store -> check -> store"},
    {"/tasks/1/depends_on/0", "the fallback of 'check'"},
    {"/tasks/4/id", "duplicate task id 'fetch'"},
    {"/tasks/4", "a human task needs 'prompt'"},
    {"/tasks/4/tool", "does not apply to a human task"},
  };
  for (const auto& [pointer, text] : expected)
    EXPECT_NE(find_error(r, pointer, text), nullptr)
      << pointer << ": " << text << "\n"
      << all_errors(r);
  for (const auto& d : r.errors) {
    EXPECT_EQ(d.file, path);
    EXPECT_GT(d.where.line, 0) << d.to_string();
  }
}
