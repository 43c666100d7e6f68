// Agents on a real actor system and a real RocksDB store: the tool-calling
// loop, schema repair, failures, memory recovered from the log, replay and
// the response cache with zero provider calls, and agent workflow tasks.

#include <atomic>
#include <cstdio>
#include <chrono>
#include <functional>
#include <future>
#include <map>
#include <mutex>
#include <thread>

#include <caf/actor_system.hpp>
#include <caf/actor_system_config.hpp>
#include <caf/scoped_actor.hpp>
#include <caf/typed_event_based_actor.hpp>
#include <gtest/gtest.h>
#include <httplib.h>

#include "cadre/actors/metrics.hpp"
#include "cadre/actors/spawn.hpp"
#include "cadre/log/log.hpp"
#include "cadre/messages/register_types.hpp"
#include "cadre/persistence/event_store.hpp"
#include "cadre/tools/tool_registry.hpp"
#include "cadre/workflow/agent_machine.hpp"
#include "fake_llm_server.hpp"
#include "held_appends.hpp"
#include "llm_test_util.hpp"
#include "temp_dir.hpp"

using namespace cadre;
using namespace std::chrono_literals;

namespace {

// A model behind HTTP on loopback that counts the requests it gets: the
// first call of a turn asks for `echo`, a call after a tool result answers
// {"said": <the echo>}, and the bodies are kept for inspection.
class counting_llm_server {
public:
  counting_llm_server() {
    server_.Post("/chat", [this](const httplib::Request& rq,
                                 httplib::Response& rs) {
      ++hits_;
      auto req = json::parse(rq.body).get<llm_request>();
      {
        std::lock_guard<std::mutex> guard{mtx_};
        bodies_.push_back(json::parse(rq.body));
      }
      llm_response res;
      res.message.role = "assistant";
      const auto& last = req.messages.back();
      if (last.role == "tool") {
        res.message.content = json{{"said", json::parse(last.content)}}.dump();
        res.stop_reason = "stop";
      } else {
        llm_tool_call call;
        call.id = "c1";
        call.name = "echo";
        call.arguments = json_value{json{{"text", last.content}}};
        res.message.tool_calls.push_back(call);
        res.stop_reason = "tool_calls";
      }
      res.usage.input_tokens = 10;
      res.usage.output_tokens = 5;
      rs.set_content(json(res).dump(), "application/json");
    });
    port_ = server_.bind_to_any_port("127.0.0.1");
    thread_ = std::thread{[this] { server_.listen_after_bind(); }};
    while (!server_.is_running())
      std::this_thread::yield();
  }

  ~counting_llm_server() {
    server_.stop();
    thread_.join();
  }

  int hits() const {
    return hits_.load();
  }

  json body(size_t i) {
    std::lock_guard<std::mutex> guard{mtx_};
    return bodies_.at(i);
  }

  int port() const {
    return port_;
  }

private:
  httplib::Server server_;
  std::thread thread_;
  int port_ = 0;
  std::atomic<int> hits_{0};
  std::mutex mtx_;
  std::vector<json> bodies_;
};

// A test-only provider kind: posts the request to the counting server.
class http_test_provider final : public tools::llm::provider {
public:
  http_test_provider(tools::llm::profile p, int port)
    : profile_(std::move(p)), port_(port) {
  }
  const tools::llm::profile& settings() const override {
    return profile_;
  }
  expected<llm_response> complete(const llm_request& req,
                                  const tools::llm::call_context&) override {
    httplib::Client cli{"127.0.0.1", port_};
    auto r = cli.Post("/chat", json(req).dump(), "application/json");
    if (!r || r->status != 200)
      return make_error(errc::unavailable, "http_test: request failed");
    return json::parse(r->body).get<llm_response>();
  }

private:
  tools::llm::profile profile_;
  int port_;
};

// Puts an actor between the agents and the store (e.g. one that fails).
using store_wrapper
  = std::function<event_store_actor(caf::actor_system&, event_store_actor)>;

// Puts a store between the store actor and RocksDB (e.g. one that stalls).
using raw_wrapper = std::function<std::shared_ptr<persistence::event_store>(
  std::shared_ptr<persistence::event_store>)>;

class agent_node {
public:
  agent_node(const std::string& dir, actors::agents_options opts = {},
             store_wrapper wrap = {}, raw_wrapper wrap_raw = {}) {
    register_types(cfg_);
    cfg_.set("logger.verbosity", caf::atom("quiet"));
    sys_ = std::make_unique<caf::actor_system>(cfg_);
    tools::register_builtin_tools(registry_);
    auto store = persistence::event_store::open({dir, false});
    EXPECT_TRUE(store) << describe(store.error());
    raw_ = std::move(*store);
    if (wrap_raw)
      raw_ = wrap_raw(raw_);
    bus_ = actors::spawn_event_bus(*sys_);
    store_ = actors::spawn_event_store(*sys_, raw_, bus_);
    auto pools = std::make_shared<actors::tool_directory>();
    for (auto& name : registry_.names()) {
      auto pool = actors::spawn_tool_pool(*sys_, registry_, name,
                                          json_value{json::object()}, {4});
      EXPECT_TRUE(pool) << name;
      pools->add_local(name, *pool);
    }
    pools_ = pools;
    agents_store_ = wrap ? wrap(*sys_, store_) : store_;
    agents_ = actors::spawn_agents(*sys_, agents_store_, bus_, pools_,
                                   std::move(opts));
    executions_ = actors::spawn_executions(*sys_, store_, bus_, pools_,
                                           agents_, {});
  }

  ~agent_node() {
    caf::scoped_actor self{*sys_};
    auto stop = [&](const auto& h) {
      self->monitor(h);
      self->send_exit(h, caf::exit_reason::user_shutdown);
      self->receive([](const caf::down_msg&) {});
    };
    stop(executions_);
    stop(agents_);
    if (agents_store_ != store_)
      stop(agents_store_);
    for (auto& [name, pool] : pools_->local())
      stop(pool);
    stop(store_);
    stop(bus_);
  }

  expected<task_result> turn(agent_turn t) {
    expected<task_result> out{task_result{}};
    caf::scoped_actor self{*sys_};
    self->request(agents_, 60s, run_atom_v, std::move(t))
      .receive([&](task_result& r) { out = std::move(r); },
               [&](caf::error& err) { out = err; });
    return out;
  }

  // Sends every turn before waiting for any, so they arrive in order.
  std::vector<expected<task_result>> turns(std::vector<agent_turn> ts) {
    caf::scoped_actor self{*sys_};
    std::vector<decltype(self->request(agents_, 60s, run_atom_v,
                                       std::declval<agent_turn>()))>
      handles;
    for (auto& t : ts)
      handles.push_back(self->request(agents_, 60s, run_atom_v, std::move(t)));
    std::vector<expected<task_result>> out;
    for (auto& h : handles) {
      expected<task_result> r{task_result{}};
      h.receive([&](task_result& x) { r = std::move(x); },
                [&](caf::error& err) { r = err; });
      out.push_back(std::move(r));
    }
    return out;
  }

  expected<json> memory(const std::string& id) {
    expected<json> out{json{}};
    caf::scoped_actor self{*sys_};
    self->request(agents_, 60s, get_atom_v, id)
      .receive([&](json_value& v) { out = v.get(); },
               [&](caf::error& err) { out = err; });
    return out;
  }

  std::vector<event> log(const std::string& id) {
    auto evs = raw_->read(id, 1, 0);
    EXPECT_TRUE(evs);
    return evs ? *evs : std::vector<event>{};
  }

  /// Every event of logs whose name starts with `prefix`.
  std::vector<event> logs_with(const std::string& prefix) {
    std::vector<event> out;
    EXPECT_TRUE(raw_->scan([&](const event& ev) {
      if (ev.execution_id.rfind(prefix, 0) == 0)
        out.push_back(ev);
    }));
    return out;
  }

  void append(std::vector<event> evs) {
    std::vector<append_request> reqs{append_request{std::move(evs), {}, {}}};
    for (auto& r : raw_->append_group(reqs))
      EXPECT_TRUE(r) << describe(r.error());
  }

  execution_info run(const json& doc, const json& input = json::object()) {
    submit_request req;
    req.definition = json_value{doc};
    req.input = json_value{input};
    execution_info out;
    caf::scoped_actor self{*sys_};
    std::string id;
    self->request(executions_, 60s, submit_atom_v, req)
      .receive([&](std::string& x) { id = x; },
               [&](caf::error& err) { ADD_FAILURE() << describe(err); });
    if (id.empty())
      return out;
    self->request(executions_, 60s, await_atom_v, id)
      .receive([&](execution_info& x) { out = std::move(x); },
               [&](caf::error& err) { ADD_FAILURE() << describe(err); });
    return out;
  }

private:
  caf::actor_system_config cfg_;
  std::unique_ptr<caf::actor_system> sys_;
  tools::tool_registry registry_;
  std::shared_ptr<persistence::event_store> raw_;
  event_bus_actor bus_;
  event_store_actor store_;
  event_store_actor agents_store_;
  std::shared_ptr<const actors::tool_directory> pools_;
  agents_actor agents_;
  executions_actor executions_;
};

// The store, except that reads of agent logs fail while `failing` is set:
// an agent that cannot read its log stops with an error, a crash. `reads`
// (unless null) counts the reads of agent logs: one for each agent started.
event_store_actor::behavior_type
failing_agent_reads(event_store_actor::pointer self, event_store_actor real,
                    std::shared_ptr<std::atomic<bool>> failing,
                    std::shared_ptr<std::atomic<int>> reads) {
  return {
    [=](append_atom, append_request& r) {
      return self->delegate(real, append_atom_v, std::move(r));
    },
    [=](read_atom, std::string& id, uint64_t first,
        uint64_t n) -> caf::result<std::vector<event>> {
      if (reads && id.rfind("agent:", 0) == 0)
        ++*reads;
      if (*failing && id.rfind("agent:", 0) == 0)
        return make_error(errc::unavailable, "test: agent log unreadable");
      return self->delegate(real, read_atom_v, std::move(id), first, n);
    },
    [=](get_atom, read_atom, std::string& id) {
      return self->delegate(real, get_atom_v, read_atom_v, std::move(id));
    },
    [=](list_atom, execution_filter& f) {
      return self->delegate(real, list_atom_v, std::move(f));
    },
    [=](get_atom, std::string& id) {
      return self->delegate(real, get_atom_v, std::move(id));
    },
    [=](get_atom, submit_atom, std::string& key) {
      return self->delegate(real, get_atom_v, submit_atom_v, std::move(key));
    },
    [=](put_atom, definition_record& d) {
      return self->delegate(real, put_atom_v, std::move(d));
    },
    [=](get_atom, std::string& name, std::string& version) {
      return self->delegate(real, get_atom_v, std::move(name),
                            std::move(version));
    },
    [=](list_atom, put_atom, std::string& name) {
      return self->delegate(real, list_atom_v, put_atom_v, std::move(name));
    },
    [=](delete_atom, std::string& name) {
      return self->delegate(real, delete_atom_v, std::move(name));
    },
    [=](delete_atom, read_atom, std::string& name) {
      return self->delegate(real, delete_atom_v, read_atom_v, std::move(name));
    },
  };
}

// Agents options whose every provider asks `server`.
actors::agents_options asking(const counting_llm_server& server) {
  actors::agents_options o;
  auto port = server.port();
  o.make_provider = [port](const tools::llm::profile& p)
    -> expected<std::unique_ptr<tools::llm::provider>> {
    return std::unique_ptr<tools::llm::provider>{
      new http_test_provider(p, port)};
  };
  return o;
}

const json answer_schema = json::parse(R"js({
  "type": "object",
  "properties": {"echoed": {"type": "string"}, "n": {"type": "integer"}},
  "required": ["echoed", "n"]})js");

json researcher(json script, json extra = json::object()) {
  json spec{{"tools", {"echo", "script"}},
            {"output_schema", answer_schema},
            {"script", std::move(script)}};
  spec.update(extra);
  return spec;
}

const json two_tools = json::parse(R"js([
  {"turn": 1, "reply": {"text": "calling", "tool_calls": [
     {"name": "echo", "arguments": {"text": "{{ last_user | text }}"}},
     {"name": "script", "arguments": {"code": "return 6 * 7"}}],
     "usage": {"input_tokens": 100, "output_tokens": 20}}},
  {"match": "", "reply": {"text": "{\"echoed\": {{ tool.echo.text }}, \"n\": {{ tool.script }}}",
     "usage": {"input_tokens": 150, "output_tokens": 10}}}
])js");

agent_turn make_turn(const std::string& agent, json spec, json input,
                     const std::string& execution = "e1",
                     const std::string& task = "t") {
  agent_turn t;
  t.agent = agent;
  t.spec = json_value{std::move(spec)};
  t.input = json_value{std::move(input)};
  t.execution_id = execution;
  t.task_id = task;
  t.idempotency_key = execution + "/" + task + "/1";
  return t;
}

std::vector<std::string> types_of(const std::vector<event>& evs) {
  std::vector<std::string> out;
  for (auto& ev : evs)
    out.push_back(ev.type);
  return out;
}

size_t count_of(const std::vector<event>& evs, const std::string& type) {
  size_t n = 0;
  for (auto& ev : evs)
    n += ev.type == type ? 1 : 0;
  return n;
}

// The whole requests an agent log recorded, in order: a request after the
// log's first is recorded as what changed, and readers rebuild it.
std::vector<json> requests_of(const std::vector<event>& log) {
  std::vector<json> out;
  workflow::agent_request_log requests;
  for (const auto& ev : log)
    if (const auto* r = requests.apply(ev))
      out.push_back(*r);
    else if (ev.type == "llm_requested")
      ADD_FAILURE() << "request " << ev.seq << " does not read";
  return out;
}

} // namespace

TEST(Agent, CallsTwoToolsInParallelThenAnswersWithSchemaValidJson) {
  test::temp_dir dir;
  agent_node node{dir.str()};
  auto res = node.turn(make_turn("researcher", researcher(two_tools), "hi"));
  ASSERT_TRUE(res) << describe(res.error());
  EXPECT_EQ(res->output.get(), (json{{"echoed", "hi"}, {"n", 42}}));
  const auto& usage = res->usage.get();
  EXPECT_EQ(usage["input_tokens"], 250);
  EXPECT_EQ(usage["output_tokens"], 30);
  EXPECT_EQ(usage["llm_calls"], 2);
  EXPECT_EQ(usage["tool_calls"], 2);
  EXPECT_EQ(usage["agent_log"], "agent:e1/researcher");
  // Both calls are recorded (and sent) before either result is in.
  auto log = node.log("agent:e1/researcher");
  auto types = types_of(log);
  std::vector<std::string> expected_types
    = {"agent_spec",    "agent_turn_started", "agent_message",
       "llm_requested", "llm_responded",      "tool_called",
       "tool_called",   "tool_result",        "tool_result",
       "llm_requested", "llm_responded",      "agent_turn_completed"};
  EXPECT_EQ(types, expected_types);
  // The model was offered both tools with their input schemas.
  auto req = log[3].payload->at("request");
  ASSERT_EQ(req["tools"].size(), 2u);
  EXPECT_EQ(req["tools"][0]["name"], "echo");
  EXPECT_TRUE(req["tools"][0]["parameters"].is_object());
}

// Operators see each turn, model call (latency, tokens) and tool call with
// the agent id and execution, and never the prompt at info.
TEST(Agent, LogsTurnsModelAndToolCallsWithoutThePrompt) {
  auto* file = std::tmpfile();
  ASSERT_NE(file, nullptr);
  log::init(log::level::info, log::format::json, file);
  {
    test::temp_dir dir;
    agent_node node{dir.str()};
    auto res = node.turn(make_turn("researcher", researcher(two_tools),
                                   "PROMPT-TEXT-must-not-leak"));
    ASSERT_TRUE(res) << describe(res.error());
  }
  log::init(log::level::warn, log::format::text, stderr);
  std::rewind(file);
  std::vector<json> lines;
  std::string all;
  char buf[4096];
  std::string line;
  while (std::fgets(buf, sizeof(buf), file)) {
    line += buf;
    if (line.back() != '\n')
      continue;
    all += line;
    lines.push_back(json::parse(line));
    line.clear();
  }
  std::fclose(file);
  EXPECT_EQ(all.find("PROMPT-TEXT-must-not-leak"), std::string::npos) << all;
  auto with_msg = [&](const std::string& msg) {
    std::vector<json> out;
    for (auto& l : lines)
      if (l.value("msg", "") == msg)
        out.push_back(l);
    return out;
  };
  auto started = with_msg("agent turn started");
  ASSERT_EQ(started.size(), 1u) << all;
  EXPECT_EQ(started[0]["agent_id"], "e1/researcher");
  EXPECT_EQ(started[0]["execution"], "e1");
  EXPECT_EQ(started[0]["task"], "t");
  auto calls = with_msg("model call");
  ASSERT_EQ(calls.size(), 2u) << all;
  EXPECT_EQ(calls[0]["actor"], "agent");
  EXPECT_EQ(calls[0]["agent"], "researcher");
  EXPECT_EQ(calls[0]["agent_id"], "e1/researcher");
  EXPECT_EQ(calls[0]["execution"], "e1");
  EXPECT_EQ(calls[0]["input_tokens"], 100);
  EXPECT_EQ(calls[0]["output_tokens"], 20);
  EXPECT_EQ(calls[1]["input_tokens"], 150);
  EXPECT_TRUE(calls[0]["latency_ms"].is_number());
  auto tools = with_msg("agent tool call");
  ASSERT_EQ(tools.size(), 2u) << all;
  for (auto& t : tools) {
    EXPECT_EQ(t["outcome"], "ok");
    EXPECT_EQ(t["agent_id"], "e1/researcher");
    EXPECT_EQ(t["execution"], "e1");
    EXPECT_TRUE(t["latency_ms"].is_number());
  }
  auto done = with_msg("agent turn completed");
  ASSERT_EQ(done.size(), 1u) << all;
  EXPECT_EQ(done[0]["agent_id"], "e1/researcher");
  EXPECT_EQ(done[0]["execution"], "e1");
  EXPECT_EQ(done[0]["level"], "info");
}

TEST(Agent, SchemaMismatchIsRepairedOnce) {
  test::temp_dir dir;
  agent_node node{dir.str()};
  auto script = json::parse(R"js([
    {"match": "does not match", "reply": {"text": "{\"echoed\": \"x\", \"n\": 1}"}},
    {"default": true, "reply": {"text": "{\"echoed\": 5}"}}])js");
  auto res = node.turn(make_turn("r", researcher(script), "q"));
  ASSERT_TRUE(res) << describe(res.error());
  EXPECT_EQ(res->output.get(), (json{{"echoed", "x"}, {"n", 1}}));
  auto log = node.log("agent:e1/r");
  EXPECT_EQ(count_of(log, "llm_requested"), 2u);
  size_t repairs = 0;
  for (auto& ev : log)
    if (ev.type == "agent_message" && ev.payload->value("repair", false)) {
      ++repairs;
      auto text = ev.payload->at("message").at("content").get<std::string>();
      EXPECT_NE(text.find("/echoed"), std::string::npos) << text;
    }
  EXPECT_EQ(repairs, 1u);
}

TEST(Agent, SecondSchemaMismatchFailsClearly) {
  test::temp_dir dir;
  agent_node node{dir.str()};
  auto script = json::parse(R"js([
    {"default": true, "reply": {"text": "not json at all"}}])js");
  auto res = node.turn(make_turn("r", researcher(script), "q"));
  ASSERT_FALSE(res);
  EXPECT_EQ(code_of(res.error()), errc::invalid_input);
  auto msg = message_of(res.error());
  EXPECT_NE(msg.find("agent r"), std::string::npos) << msg;
  EXPECT_NE(msg.find("after a repair"), std::string::npos) << msg;
  // The answer itself is quoted, so a person sees what the model said.
  EXPECT_NE(msg.find("'not json at all'"), std::string::npos) << msg;
  auto log = node.log("agent:e1/r");
  EXPECT_EQ(count_of(log, "llm_requested"), 2u);
  EXPECT_EQ(log.back().type, "agent_turn_failed");
}

TEST(Agent, MaxIterationsFailsClearly) {
  test::temp_dir dir;
  agent_node node{dir.str()};
  auto script = json::parse(R"js([{"default": true, "reply": {
    "tool_calls": [{"name": "echo", "arguments": {"text": "again"}}]}}])js");
  auto res = node.turn(make_turn(
    "loop", researcher(script, json{{"max_iterations", 3}}), "q"));
  ASSERT_FALSE(res);
  auto msg = message_of(res.error());
  EXPECT_NE(msg.find("max_iterations (3)"), std::string::npos) << msg;
  EXPECT_EQ(count_of(node.log("agent:e1/loop"), "llm_requested"), 3u);
}

// Models often write a sentence before the JSON; the block is the answer.
TEST(Agent, AnswerWithProseBeforeAJsonBlockIsAccepted) {
  test::temp_dir dir;
  agent_node node{dir.str()};
  auto script = json::parse(R"js([{"default": true, "reply": {"text":
    "Here is the result:\n```json\n{\"echoed\": \"x\", \"n\": 1}\n```\nDone."}}])js");
  auto res = node.turn(make_turn("p", researcher(script), "q"));
  ASSERT_TRUE(res) << describe(res.error());
  EXPECT_EQ(res->output.get(), (json{{"echoed", "x"}, {"n", 1}}));
  EXPECT_EQ(count_of(node.log("agent:e1/p"), "llm_requested"), 1u);
}

// Small local models send broken arguments often: the call's result says
// why and the model tries again, instead of the whole turn failing.
TEST(Agent, MalformedToolArgumentsGoBackToTheModelAsThatCallsError) {
  test::temp_dir dir;
  test::fake_llm_server srv{"/v1/chat/completions"};
  auto completion = [](json message, const char* finish) {
    return json{{"id", "c"},
                {"object", "chat.completion"},
                {"model", "m"},
                {"choices",
                 {{{"index", 0},
                   {"message", std::move(message)},
                   {"finish_reason", finish}}}},
                {"usage", {{"prompt_tokens", 3}, {"completion_tokens", 2}}}};
  };
  json broken{{"role", "assistant"},
              {"content", nullptr},
              {"tool_calls",
               {{{"id", "call_1"},
                 {"type", "function"},
                 {"function",
                  {{"name", "echo"}, {"arguments", "{\"text\": \"Par"}}}}}}};
  srv.push(test::json_reply(completion(broken, "tool_calls")));
  srv.push(test::json_reply(
    completion(json{{"role", "assistant"}, {"content", "fixed"}}, "stop")));
  actors::agents_options opts;
  auto url = srv.url("/v1");
  opts.make_provider = [url](const tools::llm::profile&) {
    return tools::llm::make_provider(test::test_profile("openai", url));
  };
  agent_node node{dir.str(), opts};
  auto res = node.turn(make_turn(
    "small", json{{"tools", {"echo"}}, {"stream", false}}, "q"));
  ASSERT_TRUE(res) << describe(res.error());
  EXPECT_EQ(res->output.get(), "fixed");
  auto asked = srv.exchanges();
  ASSERT_EQ(asked.size(), 2u);
  json tool_message;
  for (const auto& m : asked[1].json["messages"])
    if (m.value("role", "") == "tool")
      tool_message = m;
  auto content = tool_message.value("content", std::string{});
  EXPECT_NE(content.find("not valid JSON"), std::string::npos) << content;
  EXPECT_NE(content.find("{\"text\": \"Par"), std::string::npos) << content;
  EXPECT_EQ(tool_message.value("tool_call_id", ""), "call_1");
}

// A model that never gets its arguments right still ends at max_iterations.
TEST(Agent, MalformedToolArgumentsCountAgainstMaxIterations) {
  test::temp_dir dir;
  agent_node node{dir.str()};
  auto script = json::parse(R"js([{"default": true, "reply": {
    "tool_calls": [{"name": "echo", "arguments": "{oops"}]}}])js");
  auto res = node.turn(make_turn(
    "broken", json{{"tools", {"echo"}}, {"script", script},
                   {"max_iterations", 2}}, "q"));
  ASSERT_FALSE(res);
  auto msg = message_of(res.error());
  EXPECT_NE(msg.find("max_iterations (2)"), std::string::npos) << msg;
  size_t argument_errors = 0;
  for (auto& ev : node.log("agent:e1/broken"))
    if (ev.type == "tool_result"
        && ev.payload->value("error", "").find("not valid JSON: '{oops'")
             != std::string::npos)
      ++argument_errors;
  EXPECT_EQ(argument_errors, 1u);
}

// Issue 13: an agent refused for crashing too often takes turns again once
// its crashes have left the restart window, without waiting for a crash or
// a node restart.
TEST(Agent, AgentOverTheRestartIntensityTakesTurnsAgainAfterTheWindow) {
  test::temp_dir dir;
  auto failing = std::make_shared<std::atomic<bool>>(true);
  actors::agents_options opts;
  opts.max_restarts = 1;
  opts.restart_window_ms = 2000;
  agent_node node{dir.str(), opts,
                  [failing](caf::actor_system& sys, event_store_actor real) {
                    return sys.spawn(failing_agent_reads, real, failing,
                                     std::shared_ptr<std::atomic<int>>{});
                  }};
  json spec{{"script", json::parse(R"js([{"default": true,
              "reply": {"text": "ok"}}])js")}};
  EXPECT_FALSE(node.turn(make_turn("a", spec, "q")));
  auto refused = node.turn(make_turn("a", spec, "q", "e1", "t2"));
  ASSERT_FALSE(refused);
  EXPECT_EQ(code_of(refused.error()), errc::unavailable)
    << describe(refused.error());
  *failing = false;
  // Waiting for the window to pass, not measuring anything.
  std::this_thread::sleep_for(2500ms);
  auto res = node.turn(make_turn("a", spec, "q", "e1", "t3"));
  ASSERT_TRUE(res) << describe(res.error());
  EXPECT_EQ(res->output.get(), "ok");
}

// An agent without turns stops after idle_timeout, though its last append
// left a longer deadline armed (an append's, local_deadline): asking its
// memory afterwards starts a new agent, which reads its log again.
TEST(Agent, IdleAgentStopsAfterIdleTimeout) {
  test::temp_dir dir;
  auto failing = std::make_shared<std::atomic<bool>>(false);
  auto reads = std::make_shared<std::atomic<int>>(0);
  actors::agents_options opts;
  opts.idle_timeout = 200ms;
  agent_node node{dir.str(), opts,
                  [=](caf::actor_system& sys, event_store_actor real) {
                    return sys.spawn(failing_agent_reads, real, failing,
                                     reads);
                  }};
  json spec{{"script", json::parse(R"js([{"default": true,
              "reply": {"text": "ok"}}])js")}};
  ASSERT_TRUE(node.turn(make_turn("a", spec, "q")));
  ASSERT_TRUE(node.turn(make_turn("a", spec, "q", "e1", "t2")));
  EXPECT_EQ(*reads, 1);
  // Polling until a new agent was started, far beyond idle_timeout but well
  // below local_deadline (60 s): a wait, not a measurement.
  for (int i = 0; i < 300 && *reads < 2; ++i) {
    std::this_thread::sleep_for(100ms);
    auto memory = node.memory("e1/a");
    ASSERT_TRUE(memory) << describe(memory.error());
  }
  EXPECT_EQ(*reads, 2);
}

// Asking the memory of an id without a log answers not_found naming it,
// writes no log, and starts no agent (which would stay for idle_timeout):
// no agent reads a log.
TEST(Agent, AnIdWithoutALogIsNotFoundAndKeepsNoAgent) {
  test::temp_dir dir;
  auto failing = std::make_shared<std::atomic<bool>>(false);
  auto reads = std::make_shared<std::atomic<int>>(0);
  actors::agents_options opts;
  opts.idle_timeout = std::chrono::hours{1};
  agent_node node{dir.str(), opts,
                  [=](caf::actor_system& sys, event_store_actor real) {
                    return sys.spawn(failing_agent_reads, real, failing,
                                     reads);
                  }};
  for (int i = 0; i < 3; ++i) {
    auto memory = node.memory("e1/nobody");
    ASSERT_FALSE(memory);
    EXPECT_EQ(code_of(memory.error()), errc::not_found);
    EXPECT_EQ(message_of(memory.error()), "agent e1/nobody has no log");
  }
  EXPECT_EQ(*reads, 0);
  EXPECT_TRUE(node.log("agent:e1/nobody").empty());
  // An agent with a log stays (until idle_timeout) and answers from memory.
  json spec{{"script", json::parse(R"js([{"default": true,
              "reply": {"text": "ok"}}])js")}};
  ASSERT_TRUE(node.turn(make_turn("a", spec, "q")));
  auto before = reads->load();
  for (int i = 0; i < 2; ++i) {
    auto memory = node.memory("e1/a");
    ASSERT_TRUE(memory) << describe(memory.error());
    EXPECT_EQ((*memory)["turns"], 1);
  }
  EXPECT_EQ(*reads, before);
}

// A store stuck on an append (a stalled disk) past append_deadline stops
// the agent with an error naming the append and the deadline; the agent
// restarts from its log, and once the store answers again the turn, sent
// again to the successor, completes: nothing hangs, nothing is lost.
TEST(Agent, AnAppendUnansweredPastItsDeadlineRestartsTheAgent) {
  auto* file = std::tmpfile();
  ASSERT_NE(file, nullptr);
  log::init(log::level::info, log::format::json, file);
  test::temp_dir dir;
  auto failing = std::make_shared<std::atomic<bool>>(false);
  auto reads = std::make_shared<std::atomic<int>>(0);
  std::shared_ptr<test::held_appends> disk;
  actors::agents_options opts;
  opts.append_deadline = 200ms;
  json spec{{"script", json::parse(R"js([{"default": true,
              "reply": {"text": "ok"}}])js")}};
  expected<task_result> res{task_result{}};
  {
    agent_node node{dir.str(), opts,
                    [=](caf::actor_system& sys, event_store_actor real) {
                      return sys.spawn(failing_agent_reads, real, failing,
                                       reads);
                    },
                    [&](std::shared_ptr<persistence::event_store> real) {
                      disk = std::make_shared<test::held_appends>(real);
                      return disk;
                    }};
    test::release_at_end release{disk};
    disk->hold();
    auto turn = std::async(std::launch::async, [&] {
      return node.turn(make_turn("a", spec, "q"));
    });
    ASSERT_TRUE(disk->wait_held());
    // The successor reads its log: the first agent stopped. Polling with
    // a bound far beyond the deadline: a wait, not a measurement.
    for (int i = 0; i < 600 && *reads < 2; ++i)
      std::this_thread::sleep_for(100ms);
    EXPECT_GE(*reads, 2);
    disk->release();
    ASSERT_EQ(turn.wait_for(120s), std::future_status::ready);
    res = turn.get();
  }
  log::init(log::level::warn, log::format::text, stderr);
  ASSERT_TRUE(res) << describe(res.error());
  EXPECT_EQ(res->output.get(), "ok");
  std::rewind(file);
  std::string all;
  char buf[4096];
  while (std::fgets(buf, sizeof(buf), file))
    all += buf;
  std::fclose(file);
  auto restarted = all.find("\"agent restarted\"");
  ASSERT_NE(restarted, std::string::npos) << all;
  auto line = all.substr(restarted, all.find('\n', restarted) - restarted);
  EXPECT_NE(line.find("the event store did not answer an append within 200 "
                      "ms (store.append_deadline)"),
            std::string::npos)
    << line;
}

TEST(Agent, BadSpecsAndUnknownAgentsAreClearErrors) {
  test::temp_dir dir;
  agent_node node{dir.str()};
  auto unknown = make_turn("ghost", nullptr, "q");
  auto res = node.turn(unknown);
  ASSERT_FALSE(res);
  EXPECT_EQ(code_of(res.error()), errc::not_found);
  EXPECT_NE(message_of(res.error()).find("'ghost' is not defined"),
            std::string::npos);
  auto bad = node.turn(make_turn("b", json{{"tools", {"ech"}}}, "q"));
  ASSERT_FALSE(bad);
  EXPECT_EQ(code_of(bad.error()), errc::invalid_config);
  EXPECT_NE(message_of(bad.error()).find("/tools/0: unknown tool 'ech'"),
            std::string::npos)
    << message_of(bad.error());
  auto nomatch = node.turn(make_turn(
    "quiet", json{{"script", json::array({json{{"agent", "other"},
                                                {"reply", {{"text", "x"}}}}})}},
    "q"));
  ASSERT_FALSE(nomatch);
  EXPECT_NE(message_of(nomatch.error()).find("agent 'quiet' turn 1"),
            std::string::npos)
    << message_of(nomatch.error());
}

// Replay and memory without the provider: the turn answered once is
// answered again from the log by a new agents actor, with no HTTP request;
// the next turn sees the earlier prompt and answer, recovered from the log.
TEST(Agent, ReplaysFromTheLogWithZeroHttpRequests) {
  test::temp_dir dir;
  counting_llm_server server;
  auto opts = [&] {
    auto o = asking(server);
    tools::llm::profile p;
    p.name = "remote";
    p.kind = "http_test";
    o.profiles["remote"] = p;
    return o;
  };
  json spec{{"provider", "remote"}, {"tools", {"echo"}}};
  json first;
  {
    agent_node node{dir.str(), opts()};
    auto res = node.turn(make_turn("mem", spec, "remember me"));
    ASSERT_TRUE(res) << describe(res.error());
    first = res->output.get();
    EXPECT_EQ(server.hits(), 2);
  }
  {
    agent_node node{dir.str(), opts()};
    auto again = node.turn(make_turn("mem", spec, "remember me"));
    ASSERT_TRUE(again) << describe(again.error());
    EXPECT_EQ(again->output.get(), first);
    EXPECT_EQ(server.hits(), 2) << "a recorded turn called the model again";
    auto mem = node.memory("e1/mem");
    ASSERT_TRUE(mem) << describe(mem.error());
    ASSERT_EQ((*mem)["messages"].size(), 2u);
    EXPECT_EQ((*mem)["messages"][0]["content"], "remember me");
    // A new turn of the same agent id continues its memory.
    auto next = node.turn(make_turn("mem", spec, "and now?", "e1", "t2"));
    ASSERT_TRUE(next) << describe(next.error());
    EXPECT_EQ(server.hits(), 4);
    auto body = server.body(2);
    auto msgs = body["messages"];
    ASSERT_GE(msgs.size(), 3u);
    EXPECT_EQ(msgs[0]["content"], "remember me");
    EXPECT_EQ(msgs[1]["role"], "assistant");
    EXPECT_EQ(msgs[2]["content"], "and now?");
  }
}

TEST(Agent, ResponseCacheAnswersIdenticalRequests) {
  test::temp_dir dir;
  counting_llm_server server;
  auto o = asking(server);
  o.cache = true;
  agent_node node{dir.str(), o};
  // scope task: two executions, two agents, identical requests.
  json spec{{"tools", {"echo"}}, {"memory", {{"scope", "task"}}}};
  auto a = node.turn(make_turn("c", spec, "same", "e1"));
  ASSERT_TRUE(a) << describe(a.error());
  EXPECT_EQ(server.hits(), 2);
  auto b = node.turn(make_turn("c", spec, "same", "e2"));
  ASSERT_TRUE(b) << describe(b.error());
  EXPECT_EQ(b->output.get(), a->output.get());
  EXPECT_EQ(server.hits(), 2);
  size_t cached = 0;
  for (auto& ev : node.log("agent:e2/t"))
    if (ev.type == "llm_responded" && ev.payload->value("cached", false))
      ++cached;
  EXPECT_EQ(cached, 2u);
}

// The hash only finds a cache entry: an entry under the same hash for
// another request (a collision, or an entry from before the request was
// stored) is a miss, and the model is asked.
TEST(Agent, ResponseCacheComparesTheWholeRequest) {
  counting_llm_server server;
  auto o = asking(server);
  o.cache = true;
  json spec{{"tools", {"echo"}}, {"memory", {{"scope", "task"}}}};
  std::vector<event> entries;
  json first;
  {
    test::temp_dir dir;
    agent_node node{dir.str(), o};
    auto a = node.turn(make_turn("c", spec, "same", "e1"));
    ASSERT_TRUE(a) << describe(a.error());
    first = a->output.get();
    entries = node.logs_with("llmcache:");
  }
  ASSERT_EQ(entries.size(), 2u);
  EXPECT_TRUE(entries[0].payload->contains("request"));
  auto calls = server.hits();
  test::temp_dir dir;
  agent_node node{dir.str(), o};
  // The same log names: one holds another request's answer, the other an
  // answer alone (as entries were written before the request was stored).
  for (size_t i = 0; i < entries.size(); ++i) {
    json forged = entries[i].payload.get();
    forged["request"]["messages"][0]["content"] = "another request";
    forged["response"]["message"]["content"] = "forged";
    entries[i].payload
      = json_value{i == 0 ? forged : json{forged["response"]}};
  }
  node.append(entries);
  auto b = node.turn(make_turn("c", spec, "same", "e2"));
  ASSERT_TRUE(b) << describe(b.error());
  EXPECT_EQ(b->output.get(), first);
  EXPECT_EQ(server.hits(), calls + 2);
  for (auto& ev : node.log("agent:e2/t")) {
    if (ev.type == "llm_responded") {
      EXPECT_FALSE(ev.payload->value("cached", false));
    }
  }
}

// A failed tool call goes back to the model as that call's result, marked
// as an error once: the providers add their own marking ("Error: ..." for
// OpenAI and Ollama, is_error for Anthropic), so the text carries none.
TEST(Agent, AFailedToolResultReachesTheModelWithoutAPrefix) {
  test::temp_dir dir;
  agent_node node{dir.str()};
  json script = json::parse(R"js([
    {"turn": 1, "reply": {"text": "trying", "tool_calls": [
       {"name": "fail", "arguments": {"message": "station offline"}}]}},
    {"match": "", "reply": {"text": "it failed"}}])js");
  json spec{{"tools", {"fail"}}, {"script", script}};
  auto res = node.turn(make_turn("f", spec, "go"));
  ASSERT_TRUE(res) << describe(res.error());
  json tool_message;
  for (const auto& req : requests_of(node.log("agent:e1/f")))
    for (const auto& m : req["messages"])
      if (m.value("role", "") == "tool")
        tool_message = m;
  ASSERT_TRUE(tool_message.is_object());
  EXPECT_TRUE(tool_message.value("is_error", false)) << tool_message.dump();
  auto content = tool_message.value("content", std::string{});
  EXPECT_NE(content.find("station offline"), std::string::npos) << content;
  EXPECT_NE(content.rfind("error: ", 0), 0u) << content;
}

TEST(Agent, WorkflowAgentTaskRecordsUsagePerTaskAndExecution) {
  test::temp_dir dir;
  agent_node node{dir.str()};
  json doc{{"name", "wf"},
           {"agents", {{"researcher", researcher(two_tools)}}},
           {"tasks",
            {{{"id", "ask"},
              {"agent", "researcher"},
              {"input", "{{ input.q }}"}}}},
           {"output", "{{ tasks.ask.output }}"}};
  auto info = node.run(doc, json{{"q", "hello"}});
  ASSERT_EQ(info.status, "completed") << info.error;
  EXPECT_EQ(info.output.get(), (json{{"echoed", "hello"}, {"n", 42}}));
  auto log = node.log(info.id);
  ASSERT_FALSE(log.empty());
  bool task_usage = false;
  for (auto& ev : log)
    if (ev.type == "task_completed" && ev.payload->contains("usage"))
      task_usage = ev.payload->at("usage")["input_tokens"] == 250;
  EXPECT_TRUE(task_usage);
  EXPECT_EQ(log.back().type, "execution_completed");
  EXPECT_EQ(log.back().payload->at("usage")["output_tokens"], 30);
}

namespace {

// Answers each turn with "answer <prompt>"; a summary request (recognized by
// its opening line) is answered with SUMMARY-A, or SUMMARY-B once a summary
// exists.
const json summarizing_script = json::parse(R"js([
  {"match": "Summary so far:\nSUMMARY-A", "reply": {"text": "SUMMARY-B",
     "usage": {"input_tokens": 7, "output_tokens": 3}}},
  {"match": "^Summarize the agent's conversation", "reply": {"text": "SUMMARY-A",
     "usage": {"input_tokens": 7, "output_tokens": 3}}},
  {"default": true, "reply": {"text": "answer {{ last_user | text }}"}}
])js");

json summarizing_spec(json script = summarizing_script) {
  return json{{"system", "Be brief."},
              {"memory",
               {{"scope", "agent"},
                {"policy", "summary"},
                {"window", 4},
                {"keep", 2}}},
              {"script", std::move(script)}};
}

expected<task_result> ask(agent_node& node, const json& spec, int n) {
  auto q = "q" + std::to_string(n);
  return node.turn(make_turn("keeper", spec, q, "e", q));
}

std::vector<event> of_type(const std::vector<event>& evs,
                           const std::string& type) {
  std::vector<event> out;
  for (const auto& ev : evs)
    if (ev.type == type)
      out.push_back(ev);
  return out;
}

} // namespace

TEST(Agent, SummaryMemoryFoldsOldTurnsIntoAModelWrittenSummary) {
  test::temp_dir dir;
  auto spec = summarizing_spec();
  {
    agent_node node{dir.str()};
    for (int n = 1; n <= 6; ++n) {
      auto res = ask(node, spec, n);
      ASSERT_TRUE(res) << n << ": " << describe(res.error());
      EXPECT_EQ(res->output.get(), "answer q" + std::to_string(n));
    }
    auto log = node.log("agent:keeper");
    // Turn 4 found 6 unsummarized messages (> window 4) and folded all but
    // the newest 2; turn 6 folded the next 4 into the existing summary.
    auto made = of_type(log, "memory_summarized");
    ASSERT_EQ(made.size(), 2u);
    EXPECT_EQ(made[0].payload->at("from"), 0);
    EXPECT_EQ(made[0].payload->at("to"), 4);
    EXPECT_EQ(made[0].payload->at("summary"), "SUMMARY-A");
    EXPECT_EQ(made[1].payload->at("from"), 4);
    EXPECT_EQ(made[1].payload->at("to"), 8);
    EXPECT_EQ(made[1].payload->at("summary"), "SUMMARY-B");
    // The second summary request carried the first summary and the
    // messages it had not covered, in order.
    auto asked = of_type(log, "memory_summary_requested");
    ASSERT_EQ(asked.size(), 2u);
    auto text = asked[1].payload->at("request")["messages"][1]["content"]
                  .get<std::string>();
    EXPECT_NE(text.find("Summary so far:\nSUMMARY-A"), std::string::npos);
    EXPECT_NE(text.find("[user] q3\n[assistant] answer q3\n[user] q4"),
              std::string::npos)
      << text;
    EXPECT_EQ(text.find("q1"), std::string::npos) << text;
    // Turn 6's model call: the summary in the system prompt, then only the
    // unsummarized messages (turn 5's), then the turn's own prompt.
    auto requests = requests_of(log);
    ASSERT_EQ(requests.size(), 6u);
    auto msgs = requests.back()["messages"];
    ASSERT_EQ(msgs.size(), 4u) << msgs.dump();
    EXPECT_EQ(msgs[0]["role"], "system");
    EXPECT_EQ(msgs[0]["content"],
              "Be brief.\n\nSummary of the earlier conversation:\nSUMMARY-B");
    EXPECT_EQ(msgs[1]["content"], "q5");
    EXPECT_EQ(msgs[2]["content"], "answer q5");
    EXPECT_EQ(msgs[3]["content"], "q6");
    // The summary call's usage counts toward its turn.
    auto turns = of_type(log, "agent_turn_completed");
    ASSERT_EQ(turns.size(), 6u);
    EXPECT_EQ(turns[3].payload->at("usage")["llm_calls"], 2);
    EXPECT_EQ(turns[2].payload->at("usage")["llm_calls"], 1);
  }
  // A restarted node has the summary from the log, without asking a model.
  agent_node node{dir.str()};
  auto mem = node.memory("keeper");
  ASSERT_TRUE(mem) << describe(mem.error());
  EXPECT_EQ((*mem)["summary"], "SUMMARY-B");
  EXPECT_EQ((*mem)["summarized"], 8);
  ASSERT_TRUE(ask(node, spec, 7));
  auto requests = requests_of(node.log("agent:keeper"));
  ASSERT_FALSE(requests.empty());
  auto msgs = requests.back()["messages"];
  EXPECT_NE(msgs[0]["content"].get<std::string>().find("SUMMARY-B"),
            std::string::npos);
}

TEST(Agent, FailedSummaryFallsBackToTheWindowAndTheTurnGoesOn) {
  test::temp_dir dir;
  agent_node node{dir.str()};
  auto script = json::parse(R"js([
    {"match": "^Summarize the agent's conversation",
     "reply": {"error": "unavailable: summarizer down"}},
    {"default": true, "reply": {"text": "answer {{ last_user | text }}"}}
  ])js");
  auto spec = summarizing_spec(script);
  for (int n = 1; n <= 4; ++n) {
    auto res = ask(node, spec, n);
    ASSERT_TRUE(res) << n << ": " << describe(res.error());
  }
  auto log = node.log("agent:keeper");
  auto failed = of_type(log, "memory_summary_failed");
  ASSERT_EQ(failed.size(), 1u);
  EXPECT_NE(failed[0].payload->at("message").get<std::string>().find(
              "summarizer down"),
            std::string::npos);
  EXPECT_TRUE(of_type(log, "memory_summarized").empty());
  // Turn 4 sent the newest `window` messages, as the window policy would.
  auto msgs = requests_of(log).back()["messages"];
  ASSERT_EQ(msgs.size(), 6u) << msgs.dump();
  EXPECT_EQ(msgs[0]["content"], "Be brief.");
  EXPECT_EQ(msgs[1]["content"], "q2");
}

TEST(Agent, CountsCallsTokensCostTurnsAndToolCallsAsMetrics) {
  test::temp_dir dir;
  actors::agents_options opts;
  tools::llm::profile priced;
  priced.name = "priced";
  priced.price_input_per_mtok = 2;
  priced.price_output_per_mtok = 10;
  opts.profiles["priced"] = priced;
  auto m = std::make_shared<actors::metric_registry>();
  opts.metrics = m;
  agent_node node{dir.str(), opts};
  auto spec = researcher(two_tools, json{{"provider", "priced"}});
  ASSERT_TRUE(node.turn(make_turn("researcher", spec, "hi")));
  actors::metric_labels call{{"agent", "researcher"},
                             {"profile", "priced"},
                             {"model", "scripted"}};
  auto ok = call;
  ok.emplace_back("outcome", "ok");
  EXPECT_EQ(m->value("cadre_llm_calls_total", ok), 2);
  EXPECT_EQ(m->value("cadre_llm_input_tokens_total", call), 250);
  EXPECT_EQ(m->value("cadre_llm_output_tokens_total", call), 30);
  EXPECT_NEAR(m->value("cadre_llm_cost_usd_total", call),
              (250 * 2 + 30 * 10) / 1e6, 1e-12);
  EXPECT_EQ(m->value("cadre_agent_turns_total",
                     {{"agent", "researcher"}, {"outcome", "completed"}}),
            1);
  EXPECT_EQ(m->value("cadre_agent_tool_calls_total",
                     {{"agent", "researcher"}, {"tool", "echo"},
                      {"outcome", "ok"}}),
            1);
  // A failed turn is counted as such, and so is its failed model call.
  auto broken = json::parse(R"js([{"default": true,
    "reply": {"error": "unavailable: model down"}}])js");
  EXPECT_FALSE(node.turn(make_turn("researcher",
                                   researcher(broken,
                                              json{{"provider", "priced"}}),
                                   "hi", "e2")));
  auto failed = call;
  failed[2].second = "";
  failed.emplace_back("outcome", "error");
  EXPECT_EQ(m->value("cadre_llm_calls_total", failed), 1);
  EXPECT_EQ(m->value("cadre_agent_turns_total",
                     {{"agent", "researcher"}, {"outcome", "failed"}}),
            1);
  auto text = m->prometheus();
  EXPECT_NE(text.find("# TYPE cadre_llm_cost_usd_total counter\n"),
            std::string::npos);
  EXPECT_NE(text.find("cadre_llm_input_tokens_total{agent=\"researcher\","
                      "profile=\"priced\",model=\"scripted\"} 250\n"),
            std::string::npos)
    << text;
}

TEST(Agent, TurnsPastTheQueueBoundAreRefusedOverloaded) {
  test::temp_dir dir;
  actors::agents_options opts;
  opts.max_queued_turns = 1;
  agent_node n{dir.str(), opts};
  // The first turn sits in a slow tool call while the others arrive.
  auto spec = json::parse(R"js({"tools": ["sleep"], "script": [
    {"turn": 1, "reply": {"tool_calls": [
       {"name": "sleep", "arguments": {"ms": 1500}}]}},
    {"match": "", "reply": {"text": "done"}}]})js");
  auto first = std::async(std::launch::async, [&] {
    return n.turn(make_turn("slow", spec, "one", "e1", "t1"));
  });
  // Until the first turn's model call is on record: the turn is running
  // (its sleep, a tool without side effects, may go before its
  // tool_called is on disk, so that is no sign).
  bool running = false;
  for (int i = 0; i < 3000 && !running; ++i) {
    for (auto& ev : n.log("agent:e1/slow"))
      running = running || ev.type == "llm_requested";
    if (!running)
      std::this_thread::sleep_for(5ms);
  }
  ASSERT_TRUE(running);
  // The second waits in the queue, so the queue is full for the third.
  auto rest = n.turns({make_turn("slow", spec, "two", "e1", "t2"),
                       make_turn("slow", spec, "three", "e1", "t3")});
  ASSERT_EQ(rest.size(), 2u);
  EXPECT_TRUE(rest[0]) << describe(rest[0].error());
  ASSERT_FALSE(rest[1]);
  EXPECT_EQ(code_of(rest[1].error()), errc::overloaded)
    << describe(rest[1].error());
  EXPECT_TRUE(first.get());
}

// A turn asked for again is answered from the answers an agent keeps, its
// last llm.max_finished_turns; an older one is refused, naming it, and does
// not run again: live and after a restart folds the log.
TEST(Agent, ATurnAskedAgainPastTheKeptAnswersIsRefusedNotRunAgain) {
  test::temp_dir dir;
  actors::agents_options opts;
  opts.max_finished_turns = 2;
  auto spec = json::parse(R"js({"script": [
    {"match": "", "reply": {"text": "done"}}]})js");
  auto started = [&](agent_node& n) {
    return count_of(n.log("agent:e1/bounded"), "agent_turn_started");
  };
  auto check = [&](agent_node& n) {
    auto kept = n.turn(make_turn("bounded", spec, "four", "e1", "t4"));
    ASSERT_TRUE(kept) << describe(kept.error());
    EXPECT_EQ(kept->output.get(), "done");
    auto old = n.turn(make_turn("bounded", spec, "one", "e1", "t1"));
    ASSERT_FALSE(old);
    EXPECT_EQ(code_of(old.error()), errc::not_found) << describe(old.error());
    EXPECT_NE(message_of(old.error()).find("turn 'e1/t1/1'"),
              std::string::npos)
      << message_of(old.error());
    EXPECT_NE(message_of(old.error()).find("llm.max_finished_turns"),
              std::string::npos);
    EXPECT_EQ(started(n), 4u) << "a turn ran again";
  };
  {
    agent_node n{dir.str(), opts};
    for (auto* t : {"t1", "t2", "t3", "t4"}) {
      auto r = n.turn(make_turn("bounded", spec, t, "e1", t));
      ASSERT_TRUE(r) << describe(r.error());
    }
    check(n);
    auto mem = n.memory("e1/bounded");
    ASSERT_TRUE(mem) << describe(mem.error());
    EXPECT_EQ((*mem)["turns"], 4);
  }
  agent_node n{dir.str(), opts};
  check(n);
}

// Wraps the scripted provider, saying whether it may block as told, and
// notes the thread of every call.
class thread_noting_provider final : public tools::llm::provider {
public:
  thread_noting_provider(std::unique_ptr<tools::llm::provider> inner,
                         bool blocks,
                         std::shared_ptr<std::vector<std::thread::id>> seen,
                         std::shared_ptr<std::mutex> mx)
    : inner_(std::move(inner)), blocks_(blocks), seen_(std::move(seen)),
      mx_(std::move(mx)) {
  }

  const tools::llm::profile& settings() const override {
    return inner_->settings();
  }

  bool may_block() const override {
    return blocks_;
  }

  expected<llm_response> complete(const llm_request& req,
                                  const tools::llm::call_context& cc)
    override {
    {
      std::lock_guard<std::mutex> guard{*mx_};
      seen_->push_back(std::this_thread::get_id());
    }
    return inner_->complete(req, cc);
  }

private:
  std::unique_ptr<tools::llm::provider> inner_;
  bool blocks_;
  std::shared_ptr<std::vector<std::thread::id>> seen_;
  std::shared_ptr<std::mutex> mx_;
};

// A provider that may block runs only on the agent's LLM worker (one
// thread of its own), never on CAF's scheduler threads; one that says it
// never blocks is made and first called there, then called by the agent
// itself. Either way every turn's events are on disk when it is answered.
TEST(Agent, OnlyAProviderThatNeverBlocksLeavesTheLlmWorker) {
  for (bool blocks : {true, false}) {
    SCOPED_TRACE(blocks ? "may block" : "never blocks");
    auto seen = std::make_shared<std::vector<std::thread::id>>();
    auto mx = std::make_shared<std::mutex>();
    actors::agents_options opts;
    opts.make_provider = [=](const tools::llm::profile& p)
      -> expected<std::unique_ptr<tools::llm::provider>> {
      auto inner = tools::llm::make_provider(p);
      if (!inner)
        return inner.error();
      return std::unique_ptr<tools::llm::provider>{new thread_noting_provider(
        std::move(*inner), blocks, seen, mx)};
    };
    test::temp_dir dir;
    agent_node node{dir.str(), opts};
    auto spec = json{{"script", json::array({json{
                                  {"reply", json{{"text", "done"}}}}})}};
    for (int i = 0; i < 3; ++i) {
      auto task = "t" + std::to_string(i);
      auto res = node.turn(make_turn("a", spec, "q", "e1", task));
      ASSERT_TRUE(res) << describe(res.error());
      EXPECT_EQ(res->output.get(), "done");
      // Answered: the turn's five events are in the log already, after the
      // spec the first turn recorded.
      auto log = node.log("agent:e1/a");
      EXPECT_EQ(log.size(), 1u + 5u * static_cast<size_t>(i + 1));
      EXPECT_EQ(log.back().type, "agent_turn_completed");
    }
    std::lock_guard<std::mutex> guard{*mx};
    ASSERT_EQ(seen->size(), 3u);
    if (blocks) {
      EXPECT_EQ((*seen)[1], (*seen)[0]);
      EXPECT_EQ((*seen)[2], (*seen)[0]);
    } else {
      EXPECT_NE((*seen)[1], (*seen)[0]);
      EXPECT_NE((*seen)[2], (*seen)[0]);
    }
  }
}
