// The pure parts of the HTTP ingress: request bodies, problem documents,
// server options, the execution view and SSE framing.

#include <gtest/gtest.h>

#include "cadre/messages/json_text.hpp"
#include "cadre/messages/error.hpp"
#include "cadre/workflow/definition.hpp"
#include "cadre/workflow/machine.hpp"
#include "cadre/workflow/replay.hpp"
#include "ingress/event_stream.hpp"
#include "ingress/execution_view.hpp"
#include "ingress/problem.hpp"
#include "ingress/request_body.hpp"
#include "ingress/server_options.hpp"

using namespace cadre;
using namespace cadre::runtime;

TEST(RequestBody, SyntaxErrorsCarryLineAndColumn) {
  auto r = parse_json_body("{\n  \"workflow\": \"x\",\n  \"input\": }");
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().status, 400);
  EXPECT_EQ(r.error().line, 3);
  EXPECT_EQ(r.error().column, 12);
}

TEST(RequestBody, RefusesNonUtf8WithItsPlace) {
  auto r = parse_json_body("{\"a\": \"caf\xe9\"}");
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().detail.find("byte 10"), std::string::npos)
    << r.error().detail;
  EXPECT_EQ(r.error().line, 1);
  EXPECT_EQ(r.error().column, 11);
}

TEST(RequestBody, BoundsNestingWithoutRecursing) {
  std::string deep = "{\"a\": " + std::string(600, '[')
                     + std::string(600, ']') + "}";
  auto r = parse_json_body(deep);
  ASSERT_FALSE(r);
  EXPECT_NE(r.error().detail.find("deeper than 512"), std::string::npos);
  // Brackets inside strings do not count.
  auto ok = parse_json_body("{\"a\": \"" + std::string(1000, '[') + "\"}");
  EXPECT_TRUE(ok);
  // The object and 511 arrays: 512 levels, the most accepted.
  EXPECT_TRUE(parse_json_body("{\"a\": " + std::string(511, '[')
                              + std::string(511, ']') + "}"));
}

TEST(RequestBody, SubmissionFieldsAreCheckedWithPointers) {
  auto named = submission_of(json{{"workflow", "hello"}, {"version", "2"}});
  ASSERT_TRUE(named);
  EXPECT_EQ(named->definition_id, "hello@2");
  EXPECT_EQ(named->input.get(), json::object());
  auto both = submission_of(
    json{{"workflow", "a"}, {"definition", json::object()}});
  ASSERT_FALSE(both);
  EXPECT_EQ(both.error().status, 400);
  auto unknown = submission_of(json{{"workflow", "a"}, {"inptu", 1}});
  ASSERT_FALSE(unknown);
  EXPECT_EQ(unknown.error().pointer, "/inptu");
  auto wrong = submission_of(json{{"workflow", 7}});
  ASSERT_FALSE(wrong);
  EXPECT_EQ(wrong.error().pointer, "/workflow");
  auto def = submission_of(json{{"definition", "not an object"}});
  ASSERT_FALSE(def);
  EXPECT_EQ(def.error().pointer, "/definition");
  auto key = submission_of(
    json{{"workflow", "a"}, {"idempotency_key", std::string(300, 'k')}});
  ASSERT_FALSE(key);
  EXPECT_EQ(key.error().pointer, "/idempotency_key");
}

TEST(RequestBody, AnswersAndToolCalls) {
  auto in = human_input_of("e1", json{{"task", "ask"}, {"value", false}});
  ASSERT_TRUE(in);
  EXPECT_EQ(in->execution_id, "e1");
  EXPECT_EQ(in->value.get(), json(false));
  EXPECT_FALSE(human_input_of("e1", json{{"task", "ask"}}));
  auto call = tool_call_of(json{{"input", {{"text", "hi"}}},
                                {"timeout_ms", 5000}});
  ASSERT_TRUE(call);
  EXPECT_EQ(call->timeout_ms, 5000);
  auto bad = tool_call_of(json{{"timeout_ms", -1}});
  ASSERT_FALSE(bad);
  EXPECT_EQ(bad.error().pointer, "/timeout_ms");
}

TEST(RequestBody, ForkFieldsAreCheckedWithPointers) {
  auto all = fork_of("e1", json{{"at", 4},
                                {"input", {{"n", 2}}},
                                {"definition", "name: x\ntasks: []\n"},
                                {"outputs", {{"a", 1}}},
                                {"rerun", json::array({"b"})},
                                {"answers", {{"ask", true}}},
                                {"dry_run", true}});
  ASSERT_TRUE(all) << all.error().detail;
  EXPECT_EQ(all->request.execution_id, "e1");
  EXPECT_EQ(all->request.at_seq, 4u);
  EXPECT_EQ(all->request.input_override.get(), (json{{"n", 2}}));
  EXPECT_TRUE(all->request.definition_override.is_null());
  EXPECT_TRUE(all->definition.is_string());
  EXPECT_EQ(all->request.outputs.get(), (json{{"a", 1}}));
  EXPECT_EQ(all->request.rerun, std::vector<std::string>{"b"});
  EXPECT_TRUE(all->request.dry_run);
  auto stored = fork_of("e1", json{{"workflow", "w"}, {"version", "2"}});
  ASSERT_TRUE(stored);
  EXPECT_EQ(stored->workflow, "w");
  EXPECT_EQ(stored->version, "2");
  EXPECT_TRUE(fork_of("e1", json::object()));
  const std::pair<json, const char*> bad[] = {
    {json{{"at", -1}}, "/at"},
    {json{{"at", "3"}}, "/at"},
    {json{{"definition", 7}}, "/definition"},
    {json{{"definition", ""}}, "/definition"},
    {json{{"definition", json::object()}, {"workflow", "w"}}, "/definition"},
    {json{{"version", "1"}}, "/version"},
    {json{{"outputs", json::array()}}, "/outputs"},
    {json{{"answers", "yes"}}, "/answers"},
    {json{{"rerun", "a"}}, "/rerun"},
    {json{{"rerun", json::array({"a", 3})}}, "/rerun/1"},
    {json{{"dry_run", "yes"}}, "/dry_run"},
    {json{{"outptus", json::object()}}, "/outptus"},
  };
  for (const auto& [body, pointer] : bad) {
    auto r = fork_of("e1", body);
    ASSERT_FALSE(r) << body.dump();
    EXPECT_EQ(r.error().status, 400) << body.dump();
    EXPECT_EQ(r.error().pointer, pointer) << body.dump();
  }
}

namespace {

// The problem a fork of `log` with `edits` is refused with.
problem fork_refusal(const std::vector<event>& log,
                     const workflow::fork_edits& edits,
                     const fork_request& req) {
  auto plan = workflow::plan_fork(log, 0, edits, "f1", 2);
  EXPECT_FALSE(plan);
  return plan ? problem{} : fork_problem_of(plan.error(), req);
}

} // namespace

TEST(RequestBody, ForkProblemsNameTheBodyFields) {
  // Real refusals of plan_fork, whose messages name the CLI's flags.
  json doc{{"name", "f"},
           {"input_schema",
            {{"type", "object"},
             {"properties", {{"n", {{"type", "integer"}}}}}}},
           {"tasks",
            {{{"id", "a"}, {"tool", "echo"}, {"input", {{"x", 1}}}},
             {{"id", "ask"},
              {"kind", "human"},
              {"prompt", "ok?"},
              {"answer_schema", {{"type", "boolean"}}}}}}};
  workflow::machine m{"p1"};
  auto first = m.submit(doc, json{{"n", 1}}, "", 1);
  ASSERT_TRUE(first);
  auto refused = [&](const workflow::fork_edits& edits,
                     const fork_request& req = {}) {
    return fork_refusal(first->events, edits, req);
  };
  workflow::fork_edits outputs;
  outputs.outputs["nope"] = 1;
  auto p = refused(outputs);
  EXPECT_EQ(p.status, 422);
  EXPECT_EQ(p.pointer, "/outputs/nope");
  EXPECT_EQ(p.detail, "outputs: the workflow has no task 'nope'");
  workflow::fork_edits rerun;
  rerun.rerun = {"zz"};
  fork_request req;
  req.rerun = {"a", "zz"};
  p = refused(rerun, req);
  EXPECT_EQ(p.pointer, "/rerun/1");
  EXPECT_EQ(p.detail, "rerun: the workflow has no task 'zz'");
  workflow::fork_edits not_human;
  not_human.answers["a"] = true;
  p = refused(not_human);
  EXPECT_EQ(p.pointer, "/answers/a");
  EXPECT_EQ(p.detail.rfind("answers: task 'a'", 0), 0u) << p.detail;
  workflow::fork_edits wrong_answer;
  wrong_answer.answers["ask"] = "yes";
  p = refused(wrong_answer);
  EXPECT_EQ(p.pointer, "/answers/ask");
  EXPECT_EQ(p.detail.rfind("answers/ask: does not match", 0), 0u)
    << p.detail;
  workflow::fork_edits input;
  input.input = json{{"n", "x"}};
  p = refused(input);
  EXPECT_EQ(p.status, 422);
  EXPECT_EQ(p.pointer, "/input/n");
  auto past = workflow::plan_fork(first->events, 99, {}, "f1", 2);
  ASSERT_FALSE(past);
  p = fork_problem_of(past.error(), {});
  EXPECT_EQ(p.status, 404);
  EXPECT_NE(p.detail.find("has " + std::to_string(first->events.size())
                          + " events"),
            std::string::npos)
    << p.detail;
}

TEST(RequestBody, ForkProblemsOfMapItemsNameTheItemsKey) {
  json doc{{"name", "f"},
           {"tasks",
            {{{"id", "a"}, {"tool", "echo"}, {"input", {{"x", 1}}}},
             {{"id", "decide"},
              {"kind", "map"},
              {"items", "input.jobs"},
              {"prompt", "retry {{ item }}?"}}}}};
  workflow::machine m{"p1"};
  auto first = m.submit(doc, json{{"jobs", {"x", "y"}}}, "", 1);
  ASSERT_TRUE(first);
  auto refused = [&](const workflow::fork_edits& edits,
                     const fork_request& req = {}) {
    return fork_refusal(first->events, edits, req);
  };
  workflow::fork_edits answer;
  answer.answers["decide[2]"] = "no";
  auto p = refused(answer);
  EXPECT_EQ(p.status, 422);
  EXPECT_EQ(p.pointer, "/answers/decide[2]");
  EXPECT_NE(p.detail.find("map 'decide' has 2 items (0 to 1)"),
            std::string::npos)
    << p.detail;
  workflow::fork_edits rerun;
  rerun.rerun = {"decide[7]"};
  fork_request req;
  req.rerun = {"a", "decide[7]"};
  p = refused(rerun, req);
  EXPECT_EQ(p.pointer, "/rerun/1");
  workflow::fork_edits no_map;
  no_map.outputs["a[0]"] = 1;
  p = refused(no_map);
  EXPECT_EQ(p.pointer, "/outputs/a[0]");
  EXPECT_EQ(p.detail, "outputs: task 'a[0]' names an item, but 'a' is not "
                      "a map task");
}

TEST(RequestBody, WorkflowProblemsListEveryErrorUnderTheirPointer) {
  auto parsed = workflow::parse_text(
    "name: x\ntasks:\n  - id: a\n    tool: 7\n  - id: a\n    tool: echo\n",
    "definition", workflow::validation_context{});
  ASSERT_FALSE(parsed.errors.empty());
  auto p = workflow_problem(parsed.errors, "definition", "/definition", false);
  EXPECT_EQ(p.status, 422);
  EXPECT_EQ(p.type, "invalid_workflow");
  EXPECT_EQ(p.pointer.rfind("/definition/tasks/", 0), 0u) << p.pointer;
  EXPECT_EQ(p.line, 0) << "lines of an embedded text are not the body's";
  ASSERT_EQ(p.extra["errors"].size(), parsed.errors.size());
  EXPECT_GT(p.extra["errors"][0]["line"].get<int>(), 0);
  auto body = workflow_problem(parsed.errors, "workflow", "", true);
  EXPECT_GT(body.line, 0);
  EXPECT_EQ(body.detail.rfind("the workflow has " + std::to_string(
                                parsed.errors.size()), 0),
            0u)
    << body.detail;
}

TEST(RequestBody, NdjsonTextIsBoundedLikeJson) {
  EXPECT_FALSE(check_json_text("{\"a\": 1}\n{\"b\": [2]}\n"));
  auto deep = check_json_text("{}\n" + std::string(max_json_depth + 1, '['));
  ASSERT_TRUE(deep);
  EXPECT_EQ(deep->status, 400);
  EXPECT_EQ(deep->line, 2);
  auto bytes = check_json_text("{}\n\"caf\xe9\"");
  ASSERT_TRUE(bytes);
  EXPECT_EQ(bytes->line, 2);
}

TEST(Problem, ErrorCodesPickStatusTypeAndPointer) {
  auto p = problem_of(make_error(errc::invalid_input,
                                 "input: does not match its schema: /count: "
                                 "expected integer"),
                      "/input");
  EXPECT_EQ(p.status, 422);
  EXPECT_EQ(p.type, "invalid_input");
  EXPECT_EQ(p.pointer, "/input/count");
  EXPECT_EQ(problem_of(make_error(errc::not_found, "x")).status, 404);
  EXPECT_EQ(problem_of(make_error(errc::conflict, "x")).status, 409);
  EXPECT_EQ(problem_of(make_error(errc::unauthorized, "x")).status, 401);
  EXPECT_EQ(problem_of(make_error(errc::forbidden, "x")).status, 403);
  auto limited = problem_of(make_error(errc::rate_limited, "x"));
  EXPECT_EQ(limited.status, 429);
  EXPECT_GT(limited.retry_after_s, 0);
  auto full = problem_of(make_error(errc::overloaded, "x"));
  EXPECT_EQ(full.status, 503);
  EXPECT_EQ(full.type, "overloaded");
  EXPECT_EQ(problem_of(caf::make_error(caf::sec::request_timeout)).status,
            503);
  // A store that refused (damaged, disk full) is no bug: not 500 internal.
  auto storage = problem_of(make_error(errc::storage_error, "disk full"));
  EXPECT_EQ(storage.status, 503);
  EXPECT_EQ(storage.type, "storage_error");
  EXPECT_EQ(storage.to_json("r")["title"], "Storage error");
  auto doc = make_problem(404, "not_found", "no route").to_json("r-1");
  EXPECT_EQ(doc["type"], "/problems/not_found");
  EXPECT_EQ(doc["title"], "Not found");
  EXPECT_EQ(doc["request_id"], "r-1");
  EXPECT_FALSE(doc.contains("pointer"));
}

TEST(ServerOptions, KeysAreReadAndBadOnesNamed) {
  auto opts = parse_server_options(json::parse(R"({
    "listen": "0.0.0.0:9000", "drain_timeout": "2s", "threads": 8,
    "sse": {"queue": 16, "keepalive": 500}, "rate_limit": {"per_second": 5},
    "cors_origins": ["https://a.example"]})"));
  ASSERT_TRUE(opts) << describe(opts.error());
  EXPECT_EQ(opts->host, "0.0.0.0");
  EXPECT_EQ(opts->port, 9000);
  EXPECT_FALSE(opts->loopback());
  EXPECT_EQ(opts->drain_timeout.count(), 2000);
  EXPECT_EQ(opts->sse_queue, 16u);
  EXPECT_EQ(opts->sse_keepalive.count(), 500);
  EXPECT_EQ(opts->rate_burst, 10.0);
  auto bad = [](const char* text) {
    auto r = parse_server_options(json::parse(text));
    return r ? std::string{} : message_of(r.error());
  };
  EXPECT_EQ(bad(R"({"listen": "8700"})").rfind("server.listen:", 0), 0u);
  EXPECT_EQ(bad(R"({"threads": 1})").rfind("server.threads:", 0), 0u);
  EXPECT_EQ(bad(R"({"sse": {"queu": 1}})").rfind("server.sse.queu:", 0), 0u);
  EXPECT_EQ(bad(R"({"tls": {"cert_file": "c"}})").rfind("server.tls:", 0),
            0u);
  EXPECT_EQ(bad(R"({"drain_timeout": "soon"})")
              .rfind("server.drain_timeout:", 0),
            0u);
  EXPECT_EQ(bad(R"({"lisen": "x"})").rfind("server.lisen: unknown key", 0),
            0u);
  server_options v6;
  EXPECT_EQ(parse_listen("[::1]:0", v6), "");
  EXPECT_EQ(v6.host, "::1");
  EXPECT_TRUE(v6.loopback());
  EXPECT_EQ(v6.url(), "http://[::1]:0");
}

TEST(ExecutionView, FoldsTasksUsageAndWaitingHumans) {
  execution_info info;
  info.id = "e1";
  info.status = "waiting";
  auto def = json::parse(R"({"name": "w", "tasks": [
    {"id": "fetch", "tool": "echo"},
    {"id": "ask", "kind": "human", "prompt": "ok?",
     "answer_schema": {"type": "boolean"}},
    {"id": "never", "tool": "echo"}]})");
  auto ev = [](uint64_t seq, int64_t t, std::string type, json p) {
    return event{"e1", seq, t, std::move(type), json_value{std::move(p)}};
  };
  std::vector<event> evs{
    ev(1, 1000, "execution_submitted",
       {{"workflow", "w"}, {"definition", def}, {"input", {{"n", 1}}}}),
    ev(2, 1000, "task_dispatched", {{"task", "fetch"}, {"attempt", 1}}),
    ev(3, 2000, "task_failed",
       {{"task", "fetch"}, {"attempt", 1}, {"message", "flaky"},
        {"retry_in_ms", 10}}),
    ev(4, 3000, "task_dispatched", {{"task", "fetch"}, {"attempt", 2}}),
    ev(5, 5000, "task_completed",
       {{"task", "fetch"}, {"attempt", 2}, {"output", "x"},
        {"usage", {{"input_tokens", 7}, {"cost_usd", 0.5}}}}),
    ev(6, 6000, "human_requested", {{"task", "ask"}, {"prompt", "ok?"}}),
  };
  auto v = execution_view(info, evs);
  EXPECT_EQ(v["input"]["n"], 1);
  EXPECT_EQ(v["tasks"]["fetch"]["state"], "completed");
  EXPECT_EQ(v["tasks"]["fetch"]["attempts"], 2);
  EXPECT_EQ(v["tasks"]["fetch"]["output"], "x");
  EXPECT_DOUBLE_EQ(v["tasks"]["fetch"]["duration_ms"].get<double>(), 4.0);
  EXPECT_EQ(v["tasks"]["never"]["state"], "pending");
  EXPECT_EQ(v["tasks"]["ask"]["state"], "waiting");
  EXPECT_EQ(v["usage"]["input_tokens"], 7);
  EXPECT_DOUBLE_EQ(v["usage"]["cost_usd"].get<double>(), 0.5);
  ASSERT_EQ(v["waiting"].size(), 1u);
  EXPECT_EQ(v["waiting"][0]["task"], "ask");
  EXPECT_EQ(v["waiting"][0]["answer_schema"]["type"], "boolean");
}

TEST(ExecutionView, ListsEachOpenItemOfAMapOfHumanTasks) {
  // Items 0 and 2 ask, item 0 is answered; the agent items' usage counts
  // once (it is in the map's completion too); prompts may be objects.
  execution_info info;
  info.id = "e1";
  info.status = "waiting";
  auto def = json::parse(R"({"name": "w", "tasks": [
    {"id": "think", "items": "input.xs", "agent": "a", "input": "{{ item }}"},
    {"id": "ask", "items": "input.xs", "prompt": {"q": "{{ item }}?"},
     "answer_schema": {"type": "boolean"}, "depends_on": "think"}]})");
  auto ev = [](uint64_t seq, std::string type, json p) {
    return event{"e1", seq, 1000, std::move(type), json_value{std::move(p)}};
  };
  json used{{"input_tokens", 5}, {"output_tokens", 1}, {"cost_usd", 0.25}};
  std::vector<event> evs{
    ev(1, "execution_submitted", {{"definition", def}}),
    ev(2, "map_started", {{"task", "think"}, {"items", {1}}}),
    ev(3, "task_completed",
       {{"task", "think"}, {"item", 0}, {"output", "x"}, {"usage", used}}),
    ev(4, "task_completed", {{"task", "think"}, {"output", {"x"}},
                             {"usage", used}}),
    ev(5, "map_started", {{"task", "ask"}, {"items", {1, 2, 3}}}),
    ev(6, "human_requested",
       {{"task", "ask"}, {"item", 0}, {"prompt", {{"q", "1?"}}}}),
    ev(7, "human_requested",
       {{"task", "ask"}, {"item", 2}, {"prompt", {{"q", "3?"}}}}),
    ev(8, "task_completed",
       {{"task", "ask"}, {"item", 0}, {"output", true}, {"by", "human"}}),
  };
  auto v = execution_view(info, evs);
  EXPECT_EQ(v["usage"]["input_tokens"], 5);
  EXPECT_EQ(v["tasks"]["ask"]["state"], "running");
  ASSERT_EQ(v["waiting"].size(), 1u) << v["waiting"].dump();
  EXPECT_EQ(v["waiting"][0]["task"], "ask[2]");
  EXPECT_EQ(v["waiting"][0]["prompt"], (json{{"q", "3?"}}));
  EXPECT_EQ(v["waiting"][0]["answer_schema"]["type"], "boolean");
  // The map's end closes what it still asked.
  evs.push_back(ev(9, "task_failed", {{"task", "ask"}, {"final", true},
                                     {"message", "item 1: bad prompt"}}));
  EXPECT_TRUE(execution_view(info, evs)["waiting"].empty());
}

TEST(ExecutionView, ListsTheQuestionsOfItemsSubWorkflowsByTheirKeys) {
  // Items 0 and 1 run a sub-workflow each; both ask, item 0's attempt
  // fails (its question closes), item 1's stays open with its schema.
  execution_info info;
  info.id = "e1";
  info.status = "waiting";
  auto def = json::parse(R"({"name": "w", "tasks": [
    {"id": "each", "items": "input.xs", "input": {"x": "{{ item }}"},
     "workflow": {"name": "one", "tasks": [
       {"id": "ask", "prompt": "{{ input.x }}?",
        "answer_schema": {"type": "boolean"}}]}}]})");
  auto ev = [](uint64_t seq, std::string type, json p) {
    return event{"e1", seq, 1000, std::move(type), json_value{std::move(p)}};
  };
  std::vector<event> evs{
    ev(1, "execution_submitted", {{"definition", def}}),
    ev(2, "map_started", {{"task", "each"}, {"items", {1, 2}}}),
    ev(3, "task_dispatched", {{"task", "each"}, {"item", 0}, {"attempt", 1}}),
    ev(4, "human_requested", {{"task", "each[0]/ask"}, {"prompt", "1?"}}),
    ev(5, "task_dispatched", {{"task", "each"}, {"item", 1}, {"attempt", 1}}),
    ev(6, "human_requested", {{"task", "each[1]/ask"}, {"prompt", "2?"}}),
  };
  auto v = execution_view(info, evs);
  ASSERT_EQ(v["waiting"].size(), 2u) << v["waiting"].dump();
  EXPECT_EQ(v["waiting"][1]["task"], "each[1]/ask");
  EXPECT_EQ(v["waiting"][1]["prompt"], "2?");
  EXPECT_EQ(v["waiting"][1]["answer_schema"]["type"], "boolean");
  evs.push_back(ev(7, "task_failed", {{"task", "each"}, {"item", 0},
                                      {"code", "timeout"}, {"retry_in_ms", 5}}));
  v = execution_view(info, evs);
  ASSERT_EQ(v["waiting"].size(), 1u) << v["waiting"].dump();
  EXPECT_EQ(v["waiting"][0]["task"], "each[1]/ask");
  EXPECT_EQ(v["tasks"]["each[0]/ask"]["state"], "closed");
  // The map's end closes the rest.
  evs.push_back(ev(8, "task_failed", {{"task", "each"}, {"final", true},
                                      {"message", "item 0: timed out"}}));
  EXPECT_TRUE(execution_view(info, evs)["waiting"].empty());
}

TEST(EventStream, FramingAndTheBoundedQueue) {
  EXPECT_EQ(sse_message("7", "task_completed", "{\"a\":1}"),
            "id: 7\nevent: task_completed\ndata: {\"a\":1}\n\n");
  EXPECT_EQ(sse_message("", "end", "a\nb"), "event: end\ndata: a\ndata: b\n\n");
  event tok{"e1", 0, 1, "agent_token",
            json_value{json{{"text", "Hi"}, {"agent", "w"}}}};
  auto framed = sse_of(tok, false);
  EXPECT_EQ(framed.rfind("event: token\n", 0), 0u) << framed;
  EXPECT_EQ(framed.find("id:"), std::string::npos);
  event persisted{"e1", 4, 1, "task_completed", json_value{json::object()}};
  EXPECT_EQ(sse_of(persisted, true).rfind("id: e1:4\n", 0), 0u);
  int overflows = 0;
  stream_queue q{3, [&] { ++overflows; }};
  q.push({persisted, persisted});
  std::vector<event> out;
  EXPECT_EQ(q.pop(out, std::chrono::milliseconds{0}),
            stream_queue::wake::events);
  EXPECT_EQ(out.size(), 2u);
  q.push({persisted, persisted});
  q.push({persisted, persisted}); // 4 waiting > 3
  EXPECT_EQ(overflows, 1);
  q.push({persisted});
  EXPECT_EQ(overflows, 1);
  out.clear();
  EXPECT_EQ(q.pop(out, std::chrono::milliseconds{0}),
            stream_queue::wake::overflowed);
  EXPECT_TRUE(out.empty());
  // A stream subscribed to every execution before it knew its own keeps
  // only that one's events once told.
  event other{"e2", 1, 1, "task_completed", json_value{json::object()}};
  stream_queue early{8};
  early.push({other, persisted});
  early.only("e1");
  early.push({other, tok});
  out.clear();
  EXPECT_EQ(early.pop(out, std::chrono::milliseconds{0}),
            stream_queue::wake::events);
  ASSERT_EQ(out.size(), 2u);
  EXPECT_EQ(out[0].execution_id, "e1");
  EXPECT_EQ(out[1].type, "agent_token");
  // A burst larger than the bound reaches a client that keeps up.
  stream_queue burst{3};
  burst.push({persisted, persisted, persisted, persisted, persisted});
  out.clear();
  EXPECT_EQ(burst.pop(out, std::chrono::milliseconds{0}),
            stream_queue::wake::events);
  EXPECT_EQ(out.size(), 5u);
  stream_queue closing{8};
  closing.close("shutdown");
  EXPECT_EQ(closing.pop(out, std::chrono::milliseconds{0}),
            stream_queue::wake::closed);
  EXPECT_EQ(closing.close_reason(), "shutdown");
}
