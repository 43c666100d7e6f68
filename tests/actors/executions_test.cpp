// End-to-end tests of the executions actor, coordinators and tool pools on
// a real actor system and a real RocksDB store in a temporary directory.

#include <chrono>
#include <functional>
#include <map>
#include <thread>

#include <caf/actor_system.hpp>
#include <caf/actor_system_config.hpp>
#include <caf/scoped_actor.hpp>
#include <caf/send.hpp>
#include <caf/typed_event_based_actor.hpp>
#include <gtest/gtest.h>

#include "cadre/actors/spawn.hpp"
#include "cadre/messages/register_types.hpp"
#include "cadre/persistence/event_store.hpp"
#include "cadre/tools/tool_registry.hpp"
#include "cadre/workflow/machine.hpp"
#include "held_appends.hpp"
#include "temp_dir.hpp"

using namespace cadre;
using namespace std::chrono_literals;

namespace {

// Puts a store between the store actor and RocksDB (e.g. one that stalls).
using raw_wrapper = std::function<std::shared_ptr<persistence::event_store>(
  std::shared_ptr<persistence::event_store>)>;

// A node's actors without runtime/: store, bus, pools, executions.
class mini_node {
public:
  explicit mini_node(const std::string& dir,
                     actors::executions_options eopts = {},
                     raw_wrapper wrap_raw = {}) {
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
    directory_ = pools;
    executions_
      = actors::spawn_executions(*sys_, store_, bus_, pools_, std::move(eopts));
  }

  // Another node's executions actor in this actor system, on a store of its
  // own and sharing the pools: handles are location-transparent.
  executions_actor add_executions(const std::string& dir,
                                  actors::executions_options eopts) {
    auto store = persistence::event_store::open({dir, false});
    EXPECT_TRUE(store) << describe(store.error());
    peer_raw_.push_back(std::move(*store));
    auto bus = actors::spawn_event_bus(*sys_);
    auto st = actors::spawn_event_store(*sys_, peer_raw_.back(), bus);
    auto ex = actors::spawn_executions(*sys_, st, bus, pools_, std::move(eopts));
    peers_.push_back(caf::actor_cast<caf::actor>(ex));
    peers_.push_back(caf::actor_cast<caf::actor>(st));
    peers_.push_back(caf::actor_cast<caf::actor>(bus));
    return ex;
  }

  ~mini_node() {
    caf::scoped_actor self{*sys_};
    auto stop = [&](const auto& h) {
      self->monitor(h);
      self->send_exit(h, caf::exit_reason::user_shutdown);
      self->receive([](const caf::down_msg&) {});
    };
    for (auto& peer : peers_)
      stop(peer);
    stop(executions_);
    for (auto& [name, pool] : pools_->local())
      stop(pool);
    stop(store_);
    stop(bus_);
  }

  expected<std::string> submit(const json& doc, const json& input = {},
                               const std::string& key = {}) {
    submit_request req;
    req.definition = json_value{doc};
    req.input = json_value{input};
    req.idempotency_key = key;
    expected<std::string> out{std::string{}};
    caf::scoped_actor self{*sys_};
    self->request(executions_, caf::infinite, submit_atom_v, req)
      .receive([&](std::string& id) { out = id; },
               [&](caf::error& err) { out = err; });
    return out;
  }

  // Sends every submission before waiting for any answer.
  std::vector<expected<std::string>>
  submit_together(const json& doc, const std::vector<json>& inputs,
                  const std::string& key) {
    caf::scoped_actor self{*sys_};
    std::vector<decltype(self->request(executions_, 60s, submit_atom_v,
                                       submit_request{}))>
      handles;
    for (const auto& in : inputs) {
      submit_request req;
      req.definition = json_value{doc};
      req.input = json_value{in};
      req.idempotency_key = key;
      handles.push_back(self->request(executions_, 60s, submit_atom_v, req));
    }
    std::vector<expected<std::string>> out;
    for (auto& h : handles) {
      expected<std::string> r{std::string{}};
      h.receive([&](std::string& id) { r = id; },
                [&](caf::error& err) { r = err; });
      out.push_back(std::move(r));
    }
    return out;
  }

  execution_info await(const std::string& id) {
    execution_info out;
    caf::scoped_actor self{*sys_};
    self->request(executions_, 60s, await_atom_v, id)
      .receive([&](execution_info& x) { out = std::move(x); },
               [&](caf::error& err) {
                 ADD_FAILURE() << describe(err);
               });
    return out;
  }

  execution_info status(const std::string& id) {
    execution_info out;
    caf::scoped_actor self{*sys_};
    self->request(executions_, 60s, status_atom_v, id)
      .receive([&](execution_info& x) { out = std::move(x); },
               [&](caf::error& err) { ADD_FAILURE() << describe(err); });
    return out;
  }

  // -> the sequence number of the event that recorded the answer.
  expected<uint64_t> input(const std::string& id, const std::string& task,
                           const json& value) {
    expected<uint64_t> out{uint64_t{0}};
    caf::scoped_actor self{*sys_};
    self
      ->request(executions_, 60s, input_atom_v,
                human_input{id, task, json_value{value}})
      .receive([&](uint64_t x) { out = x; },
               [&](caf::error& err) { out = err; });
    return out;
  }

  std::vector<std::string> resume() {
    std::vector<std::string> out;
    caf::scoped_actor self{*sys_};
    self->request(executions_, 60s, resume_atom_v)
      .receive([&](std::vector<std::string>& x) { out = std::move(x); },
               [&](caf::error& err) { ADD_FAILURE() << describe(err); });
    return out;
  }

  caf::actor_system& system() {
    return *sys_;
  }

  // Writes events straight into the store, as another build would have.
  void append(const std::vector<event>& events,
              const std::vector<execution_info>& index) {
    append_request req;
    req.events = events;
    req.index = index;
    auto r = raw_->append(req);
    ASSERT_TRUE(r) << describe(r.error());
  }

  executions_actor executions() const {
    return executions_;
  }

  // Serves tool `name` with `pool` instead of its own.
  void replace_pool(const std::string& name, tool_pool_actor pool) {
    caf::anon_send_exit(directory_->local().at(name),
                        caf::exit_reason::user_shutdown);
    directory_->add_local(name, std::move(pool));
  }

  // Every execution, as the store actor knows it.
  std::vector<execution_info> list() {
    std::vector<execution_info> out;
    caf::scoped_actor self{*sys_};
    self->request(store_, 60s, list_atom_v, execution_filter{})
      .receive([&](std::vector<execution_info>& x) { out = std::move(x); },
               [&](caf::error& err) { ADD_FAILURE() << describe(err); });
    return out;
  }

  std::vector<event> events(const std::string& id) {
    auto evs = raw_->read(id, 1, 0);
    EXPECT_TRUE(evs);
    return evs ? *evs : std::vector<event>{};
  }

private:
  caf::actor_system_config cfg_;
  std::unique_ptr<caf::actor_system> sys_;
  tools::tool_registry registry_;
  std::shared_ptr<persistence::event_store> raw_;
  event_bus_actor bus_;
  event_store_actor store_;
  std::shared_ptr<const actors::tool_directory> pools_;
  std::shared_ptr<actors::tool_directory> directory_; // pools_, to change
  executions_actor executions_;
  std::vector<std::shared_ptr<persistence::event_store>> peer_raw_;
  std::vector<caf::actor> peers_;
};

// A node on a store whose appends can be held up (a stalled disk), with an
// append deadline of 200 ms. Members end in reverse: the store is released
// before the node stops.
struct held_node {
  explicit held_node(const std::string& dir)
    : n{dir, options(), [this](std::shared_ptr<persistence::event_store> real) {
          disk = std::make_shared<test::held_appends>(real);
          return disk;
        }} {
  }
  static actors::executions_options options() {
    actors::executions_options o;
    o.append_deadline = 200ms;
    return o;
  }
  std::shared_ptr<test::held_appends> disk;
  mini_node n;
  test::release_at_end release{disk};
};

// Counts task_completed events per task key.
std::map<std::string, int> completions(const std::vector<event>& evs) {
  std::map<std::string, int> out;
  for (auto& ev : evs)
    if (ev.type == "task_completed") {
      auto key = ev.payload->value("task", std::string{});
      if (ev.payload->contains("item"))
        key += "[" + std::to_string((*ev.payload)["item"].get<int>()) + "]";
      ++out[key];
    }
  return out;
}

int count_type(const std::vector<event>& evs, const std::string& type) {
  int n = 0;
  for (auto& ev : evs)
    n += ev.type == type ? 1 : 0;
  return n;
}

} // namespace

TEST(Executions, ChainWithConditionCompletesWithTemplatedOutput) {
  test::temp_dir dir;
  mini_node n{dir.str()};
  auto doc = json::parse(R"({
    "name": "chain", "version": 1,
    "tasks": [
      {"id": "a", "tool": "echo", "input": {"v": "{{ input.x }}"}},
      {"id": "b", "tool": "script", "depends_on": ["a"],
       "input": {"code": "return args.v * 2", "args": {"v": "{{ tasks.a.output.v }}"}}},
      {"id": "never", "tool": "echo", "depends_on": ["b"],
       "when": "tasks.b.output > 100", "input": {"x": 1}}
    ],
    "output": {"doubled": "{{ tasks.b.output }}", "skipped": "{{ tasks.never.output }}"}
  })");
  auto id = n.submit(doc, json{{"x", 21}});
  ASSERT_TRUE(id) << describe(id.error());
  auto info = n.await(*id);
  EXPECT_EQ(info.status, "completed") << info.error;
  EXPECT_EQ(info.output.get(), json::parse(R"({"doubled": 42, "skipped": null})"));
  auto evs = n.events(*id);
  for (size_t i = 0; i < evs.size(); ++i)
    EXPECT_EQ(evs[i].seq, i + 1);
  EXPECT_EQ(count_type(evs, "task_skipped"), 1);
}

TEST(Executions, RetryingTaskSucceedsAfterRecordedFailures) {
  test::temp_dir dir;
  mini_node n{dir.str()};
  auto doc = json::parse(R"({
    "name": "retry",
    "tasks": [
      {"id": "flaky", "tool": "fail", "input": {"times": 2},
       "retry": {"max_attempts": 4, "backoff": "5ms", "jitter": 0.5}}
    ],
    "output": "{{ tasks.flaky.output.attempt }}"
  })");
  auto id = n.submit(doc);
  ASSERT_TRUE(id) << describe(id.error());
  auto info = n.await(*id);
  EXPECT_EQ(info.status, "completed") << info.error;
  EXPECT_EQ(info.output.get(), json(3));
  auto evs = n.events(*id);
  EXPECT_EQ(count_type(evs, "task_failed"), 2);
  EXPECT_EQ(count_type(evs, "task_completed"), 1);
  for (auto& ev : evs) {
    if (ev.type == "task_failed") {
      EXPECT_TRUE(ev.payload->contains("retry_in_ms"));
    }
  }
}

TEST(Executions, RetriesExhaustedFailTheExecutionWithTheToolError) {
  test::temp_dir dir;
  mini_node n{dir.str()};
  auto doc = json::parse(R"({
    "name": "doomed",
    "tasks": [
      {"id": "bad", "tool": "fail", "input": {"times": 9, "message": "upstream down"},
       "retry": {"max_attempts": 2, "backoff": "1ms"}}
    ]
  })");
  auto id = n.submit(doc);
  ASSERT_TRUE(id);
  auto info = n.await(*id);
  EXPECT_EQ(info.status, "failed");
  EXPECT_NE(info.error.find("upstream down"), std::string::npos) << info.error;
  EXPECT_NE(info.error.find("bad"), std::string::npos) << info.error;
}

TEST(Executions, MapGathersResultsInOrderUnderConcurrencyLimit) {
  test::temp_dir dir;
  mini_node n{dir.str()};
  auto doc = json::parse(R"({
    "name": "fan",
    "tasks": [
      {"id": "sq", "kind": "map", "items": "input.xs", "concurrency": 3,
       "tool": "script", "input": {"code": "return args * args", "args": "{{ item }}"}}
    ],
    "output": "{{ tasks.sq.output }}"
  })");
  json xs = json::array();
  json expect = json::array();
  for (int i = 1; i <= 25; ++i) {
    xs.push_back(i);
    expect.push_back(i * i);
  }
  auto id = n.submit(doc, json{{"xs", xs}});
  ASSERT_TRUE(id) << describe(id.error());
  auto info = n.await(*id);
  EXPECT_EQ(info.status, "completed") << info.error;
  EXPECT_EQ(info.output.get(), expect);
  auto per_key = completions(n.events(*id));
  EXPECT_EQ(per_key.size(), 26u); // 25 items and the map task
  for (auto& [key, count] : per_key)
    EXPECT_EQ(count, 1) << key;
}

TEST(Executions, HumanTaskWaitsDurablyThenContinuesWithTheAnswer) {
  test::temp_dir dir;
  std::string id;
  auto doc = json::parse(R"({
    "name": "approve",
    "tasks": [
      {"id": "ask", "kind": "human", "prompt": "ship {{ input.what }}?"},
      {"id": "go", "tool": "echo", "depends_on": ["ask"],
       "when": "tasks.ask.output.ok", "input": {"shipped": "{{ input.what }}"}}
    ],
    "output": "{{ tasks.go.output }}"
  })");
  {
    mini_node n{dir.str()};
    auto sub = n.submit(doc, json{{"what", "v1"}});
    ASSERT_TRUE(sub);
    id = *sub;
    execution_info st;
    for (int i = 0; i < 200 && st.status != "waiting"; ++i) {
      st = n.status(id);
      std::this_thread::sleep_for(5ms);
    }
    EXPECT_EQ(st.status, "waiting");
    auto bad = n.input(id, "nope", json{{"ok", true}});
    EXPECT_FALSE(bad);
  }
  // A new node on the same store: the answer resumes the execution.
  mini_node n{dir.str()};
  auto ok = n.input(id, "ask", json{{"ok", true}});
  ASSERT_TRUE(ok) << describe(ok.error());
  // The answer is acknowledged with its own event's place in the log:
  // after the submission, the dispatch and the human request.
  EXPECT_GE(*ok, 3u);
  auto info = n.await(id);
  EXPECT_EQ(info.status, "completed") << info.error;
  EXPECT_EQ(info.output.get(), json::parse(R"({"shipped": "v1"})"));
}

TEST(Executions, FailureHandlersContinueOrFallBack) {
  test::temp_dir dir;
  mini_node n{dir.str()};
  auto doc = json::parse(R"({
    "name": "handlers",
    "tasks": [
      {"id": "soft", "tool": "fail", "input": {"times": 5}, "on_failure": "continue"},
      {"id": "hard", "tool": "fail", "input": {"times": 5}, "on_failure": "fallback:plan_b"},
      {"id": "plan_b", "tool": "echo", "input": {"from": "plan_b"}},
      {"id": "after", "tool": "echo", "depends_on": ["soft", "hard"],
       "input": {"soft": "{{ tasks.soft.output }}", "hard": "{{ tasks.hard.output }}"}}
    ],
    "output": "{{ tasks.after.output }}"
  })");
  auto id = n.submit(doc);
  ASSERT_TRUE(id) << describe(id.error());
  auto info = n.await(*id);
  EXPECT_EQ(info.status, "completed") << info.error;
  EXPECT_EQ(info.output.get(),
            json::parse(R"({"soft": null, "hard": {"from": "plan_b"}})"));
}

TEST(Executions, IdempotencyKeyYieldsOneExecution) {
  test::temp_dir dir;
  mini_node n{dir.str()};
  auto doc = json::parse(R"({"name": "once", "tasks": [
    {"id": "a", "tool": "echo", "input": {}}]})");
  auto first = n.submit(doc, {}, "order-17");
  ASSERT_TRUE(first);
  n.await(*first);
  auto second = n.submit(doc, {}, "order-17");
  ASSERT_TRUE(second);
  EXPECT_EQ(*first, *second);
}

// Issue 13 item 8: submissions under one key that arrive together name one
// execution; the key with another input is a conflict naming the key.
TEST(Executions, OneIdempotencyKeyArrivingTogetherNamesOneExecution) {
  test::temp_dir dir;
  mini_node n{dir.str()};
  auto doc = json::parse(R"({"name": "once", "tasks": [
    {"id": "a", "tool": "echo", "input": {}}]})");
  auto results = n.submit_together(doc, {json{{"x", 1}}, json{{"x", 1}},
                                         json{{"x", 2}}},
                                   "order-18");
  ASSERT_EQ(results.size(), 3u);
  ASSERT_TRUE(results[0]) << describe(results[0].error());
  ASSERT_TRUE(results[1]) << describe(results[1].error());
  EXPECT_EQ(*results[0], *results[1]);
  ASSERT_FALSE(results[2]);
  EXPECT_EQ(code_of(results[2].error()), errc::conflict);
  EXPECT_NE(message_of(results[2].error()).find("order-18"),
            std::string::npos)
    << message_of(results[2].error());
  n.await(*results[0]);
  auto later = n.submit(doc, json{{"x", 2}}, "order-18");
  ASSERT_FALSE(later);
  EXPECT_EQ(code_of(later.error()), errc::conflict);
  EXPECT_NE(message_of(later.error()).find("order-18"), std::string::npos);
}

TEST(Executions, InvalidSubmissionIsRejectedWithLocatedErrors) {
  test::temp_dir dir;
  mini_node n{dir.str()};
  auto doc = json::parse(R"({"name": "bad", "tasks": [
    {"id": "a", "tool": "no_such_tool"},
    {"id": "b", "tool": "echo", "depends_on": ["ghost"]}]})");
  auto id = n.submit(doc);
  ASSERT_FALSE(id);
  EXPECT_EQ(code_of(id.error()), errc::invalid_workflow);
  auto msg = message_of(id.error());
  EXPECT_NE(msg.find("no_such_tool"), std::string::npos) << msg;
  EXPECT_NE(msg.find("ghost"), std::string::npos) << msg;
}

TEST(Executions, InputSchemaIsCheckedOnSubmit) {
  test::temp_dir dir;
  mini_node n{dir.str()};
  auto doc = json::parse(R"({"name": "typed",
    "input_schema": {"type": "object", "required": ["n"],
                     "properties": {"n": {"type": "integer"}}},
    "tasks": [{"id": "a", "tool": "echo", "input": {}}]})");
  auto id = n.submit(doc, json{{"n", "seven"}});
  ASSERT_FALSE(id);
  EXPECT_EQ(code_of(id.error()), errc::invalid_input);
  EXPECT_NE(message_of(id.error()).find("/n"), std::string::npos)
    << message_of(id.error());
}

TEST(Executions, NodeRestartResumesInFlightWorkWithoutRepeatingCompletions) {
  test::temp_dir dir;
  std::string id;
  auto doc = json::parse(R"({"name": "slow", "tasks": [
    {"id": "quick", "tool": "echo", "input": {"n": 1}},
    {"id": "nap", "kind": "map", "items": "input.xs", "concurrency": 4,
     "tool": "sleep", "input": {"ms": "{{ item }}"}, "depends_on": ["quick"]}],
    "output": "{{ tasks.nap.output }}"})");
  json xs = json::array();
  for (int i = 0; i < 12; ++i)
    xs.push_back(20);
  {
    mini_node n{dir.str()};
    auto sub = n.submit(doc, json{{"xs", xs}});
    ASSERT_TRUE(sub);
    id = *sub;
    std::this_thread::sleep_for(30ms);
    // The node stops mid-run; in-flight sleeps are abandoned.
  }
  mini_node n{dir.str()};
  auto resumed = n.resume();
  EXPECT_EQ(resumed, std::vector<std::string>{id});
  auto info = n.await(id);
  EXPECT_EQ(info.status, "completed") << info.error;
  EXPECT_EQ(info.output->size(), 12u);
  for (auto& [key, count] : completions(n.events(id)))
    EXPECT_EQ(count, 1) << key;
}

TEST(Executions, CancelStopsAWaitingExecution) {
  test::temp_dir dir;
  mini_node n{dir.str()};
  auto doc = json::parse(R"({"name": "stoppable", "tasks": [
    {"id": "ask", "kind": "human", "prompt": "go?"},
    {"id": "after", "tool": "echo", "depends_on": ["ask"], "input": {}}]})");
  auto id = n.submit(doc);
  ASSERT_TRUE(id);
  caf::scoped_actor self{n.system()};
  bool cancelled = false;
  self->request(n.executions(), 60s, cancel_atom_v, *id)
    .receive([&](bool x) { cancelled = x; },
             [&](caf::error& err) { ADD_FAILURE() << describe(err); });
  EXPECT_TRUE(cancelled);
  auto info = n.await(*id);
  EXPECT_EQ(info.status, "cancelled");
  auto evs = n.events(*id);
  EXPECT_EQ(evs.back().type, "execution_cancelled");
  EXPECT_EQ(count_type(evs, "task_completed"), 0);
}

TEST(Executions, ExecutionTimeoutFailsTheExecution) {
  test::temp_dir dir;
  mini_node n{dir.str()};
  auto doc = json::parse(R"({"name": "late", "timeout": "50ms", "tasks": [
    {"id": "nap", "tool": "sleep", "input": {"ms": 5000}}]})");
  auto id = n.submit(doc);
  ASSERT_TRUE(id);
  auto info = n.await(*id);
  EXPECT_EQ(info.status, "failed");
  EXPECT_NE(info.error.find("timed out"), std::string::npos) << info.error;
}

TEST(Executions, TaskTimeoutIsARetryableFailure) {
  test::temp_dir dir;
  mini_node n{dir.str()};
  auto doc = json::parse(R"({"name": "slowpoke", "tasks": [
    {"id": "nap", "tool": "sleep", "input": {"ms": 5000}, "timeout": "30ms",
     "retry": {"max_attempts": 2, "backoff": "1ms"}}]})");
  auto id = n.submit(doc);
  ASSERT_TRUE(id);
  auto info = n.await(*id);
  EXPECT_EQ(info.status, "failed");
  auto evs = n.events(*id);
  ASSERT_EQ(count_type(evs, "task_failed"), 2);
  for (auto& ev : evs) {
    if (ev.type == "task_failed") {
      EXPECT_EQ(ev.payload->value("code", std::string{}), "timeout");
    }
  }
}

// A sub-workflow task runs inside its execution: its units are the
// execution's, keyed under the task.
TEST(Executions, SubWorkflowTaskRunsInsideItsExecution) {
  test::temp_dir dir;
  mini_node n{dir.str()};
  auto doc = json::parse(R"({"name": "parent", "tasks": [
    {"id": "child", "kind": "workflow", "input": {"x": "{{ input.x }}"},
     "workflow": {"name": "kid", "tasks": [
       {"id": "inc", "tool": "script",
        "input": {"code": "return args + 1", "args": "{{ input.x }}"}}],
       "output": "{{ tasks.inc.output }}"}}],
    "output": "{{ tasks.child.output }}"})");
  auto id = n.submit(doc, json{{"x", 41}});
  ASSERT_TRUE(id) << describe(id.error());
  auto info = n.await(*id);
  EXPECT_EQ(info.status, "completed") << info.error;
  EXPECT_EQ(info.output.get(), json(42));
  auto done = completions(n.events(*id));
  EXPECT_EQ(done["child/inc"], 1);
  EXPECT_EQ(done["child"], 1);
}

TEST(Executions, RequestsForAnotherNodesExecutionGoToItsOwner) {
  test::temp_dir dir;
  actors::executions_options a_opts;
  a_opts.id_suffix = ".a";
  mini_node node{dir / "a", a_opts};
  auto id = node.submit(json{{"name", "greet"},
                             {"version", 1},
                             {"tasks",
                              {{{"id", "hi"},
                                {"tool", "echo"},
                                {"input", {{"text", "{{ input.who }}"}}}}}},
                             {"output", "{{ tasks.hi.output.text }}"}},
                        json{{"who", "Ada"}});
  ASSERT_TRUE(id) << describe(id.error());
  ASSERT_EQ(id->substr(id->size() - 2), ".a");
  ASSERT_EQ(node.await(*id).status, "completed");

  auto owners = std::make_shared<actors::member_directory>();
  actors::executions_options b_opts;
  b_opts.id_suffix = ".b";
  b_opts.owners = owners;
  auto b = node.add_executions(dir / "b", b_opts);
  caf::scoped_actor self{node.system()};
  auto status_on_b = [&](const std::string& x) {
    expected<execution_info> out{execution_info{}};
    self->request(b, 60s, status_atom_v, x)
      .receive([&](execution_info& info) { out = std::move(info); },
               [&](caf::error& err) { out = err; });
    return out;
  };

  // An owner b has not heard of, then one that is not up: refused, naming
  // the owner and its state.
  auto unknown = status_on_b(*id);
  ASSERT_FALSE(unknown);
  EXPECT_EQ(code_of(unknown.error()), errc::unavailable);
  EXPECT_NE(describe(unknown.error()).find("owned by node a, which is unknown"),
            std::string::npos)
    << describe(unknown.error());
  owners->set("a", {node.executions(), "suspect"});
  auto suspect = status_on_b(*id);
  ASSERT_FALSE(suspect);
  EXPECT_NE(describe(suspect.error()).find("which is suspect"),
            std::string::npos);

  // Up: b answers with a's answers, for status, await and input (a's own
  // error passes through unchanged).
  owners->set("a", {node.executions(), "up"});
  auto info = status_on_b(*id);
  ASSERT_TRUE(info) << describe(info.error());
  EXPECT_EQ(info->id, *id);
  EXPECT_EQ(info->status, "completed");
  EXPECT_EQ(info->output.get(), json("Ada"));
  self->request(b, 60s, await_atom_v, *id)
    .receive([&](execution_info& x) { EXPECT_EQ(x.status, "completed"); },
             [&](caf::error& err) { ADD_FAILURE() << describe(err); });
  self->request(b, 60s, input_atom_v, human_input{*id, "hi", json_value{1}})
    .receive([&](uint64_t) { ADD_FAILURE() << "an answer to a finished run"; },
             [&](caf::error& err) {
               EXPECT_EQ(code_of(err), errc::conflict) << describe(err);
             });

  // b's own executions and ids without a node stay b's.
  auto own = status_on_b("e0000000000000000000.b");
  ASSERT_FALSE(own);
  EXPECT_EQ(code_of(own.error()), errc::not_found) << describe(own.error());
}

TEST(Executions, ALogThisBuildWouldNotHaveWrittenIsNotResumedButCanBeCancelled) {
  test::temp_dir dir;
  mini_node n{dir.str()};
  // A log as a build with other decisions would have written it: the
  // person was asked with a prompt made from another result of a.
  auto doc = json{{"name", "ask"},
                  {"version", 1},
                  {"tasks",
                   {{{"id", "a"}, {"tool", "echo"}, {"input", {{"x", 1}}}},
                    {{"id", "h"},
                     {"kind", "human"},
                     {"depends_on", "a"},
                     {"prompt", "x is {{ tasks.a.output.x }}?"}}}}};
  const std::string id = "e-altered";
  workflow::machine m{id};
  auto first = m.submit(doc, json::object(), "", 1000);
  ASSERT_TRUE(first) << describe(first.error());
  auto second = m.succeeded("a", 1, json{{"x", 1}}, 5, 2000);
  std::vector<event> log = first->events;
  log.insert(log.end(), second.events.begin(), second.events.end());
  uint64_t asked = 0;
  for (auto& ev : log)
    if (ev.type == "task_completed") {
      auto p = ev.payload.get();
      p["output"] = json{{"x", 2}};
      ev.payload = json_value{p};
    } else if (ev.type == "human_requested") {
      asked = ev.seq;
    }
  ASSERT_GT(asked, 0u);
  std::vector<execution_info> index;
  for (auto* s : {&*first, &second})
    if (s->index)
      index.push_back(*s->index);
  n.append(log, index);

  caf::scoped_actor self{n.system()};
  auto refusal = [](const caf::error& err) {
    return code_of(err) == errc::conflict ? describe(err)
                                          : "other: " + describe(err);
  };
  // An answer starts its coordinator from the log, which refuses it and
  // names the event where the decisions part.
  std::string why = "answered";
  self->request(n.executions(), 60s, input_atom_v,
                human_input{id, "h", json_value{"yes"}})
    .receive([](uint64_t) {}, [&](caf::error& err) { why = refusal(err); });
  EXPECT_NE(why.find("is not resumed: its log no longer matches this "
                     "build's decisions at event "
                     + std::to_string(asked) + " (h)"),
            std::string::npos)
    << why;
  // The coordinator stays, answering the refusal.
  why = "answered";
  self->request(n.executions(), 60s, status_atom_v, id)
    .receive([](execution_info&) {},
             [&](caf::error& err) { why = refusal(err); });
  EXPECT_NE(why.find("is not resumed"), std::string::npos) << why;
  why = "answered";
  self->request(n.executions(), 60s, await_atom_v, id)
    .receive([](execution_info&) {},
             [&](caf::error& err) { why = refusal(err); });
  EXPECT_NE(why.find("is not resumed"), std::string::npos) << why;
  // Nothing was written: the log is as it was.
  EXPECT_EQ(n.events(id).size(), log.size());
  // Cancelling ends it.
  self->request(n.executions(), 60s, cancel_atom_v, id)
    .receive([&](bool done) { EXPECT_TRUE(done); },
             [&](caf::error& err) { ADD_FAILURE() << describe(err); });
  EXPECT_EQ(n.events(id).back().type, "execution_cancelled");
}

// Items running a sub-workflow each (docs/workflows.md, "A sub-workflow per
// item"): each item acts right after its own person's answer, the answers
// name the nested question, and a node restart in the middle of the map
// runs nothing again that completed.
TEST(Executions, MapOfSubWorkflowsGoesOnPerItemAcrossARestart) {
  test::temp_dir dir;
  auto doc = json::parse(R"({"name": "fan", "tasks": [
    {"id": "handle", "items": "input.things", "input": {"thing": "{{ item }}"},
     "workflow": {"name": "one", "tasks": [
       {"id": "work", "tool": "echo", "input": {"thing": "{{ input.thing }}"}},
       {"id": "ask", "depends_on": "work", "prompt": "act on {{ input.thing }}?",
        "answer_schema": {"type": "object", "required": ["act"]}},
       {"id": "act", "depends_on": "ask", "when": "tasks.ask.output.act",
        "tool": "echo", "input": {"acted": "{{ input.thing }}"}}],
      "output": "{{ tasks.act.output }}"}}],
    "output": "{{ tasks.handle.output }}"})");
  std::string id;
  auto asked = [](const std::vector<event>& evs) {
    return count_type(evs, "human_requested");
  };
  {
    mini_node n{dir.str()};
    auto sub = n.submit(doc, json{{"things", {"a", "b"}}});
    ASSERT_TRUE(sub) << describe(sub.error());
    id = *sub;
    for (int i = 0; i < 2000 && asked(n.events(id)) < 2; ++i)
      std::this_thread::sleep_for(5ms);
    ASSERT_EQ(asked(n.events(id)), 2);
    EXPECT_EQ(n.status(id).status, "waiting");
    EXPECT_FALSE(n.input(id, "handle[0]/nope", json{{"act", true}}));
    ASSERT_TRUE(n.input(id, "handle[0]/ask", json{{"act", true}}));
    // Item 0 acts and completes while item 1 still waits.
    for (int i = 0; i < 2000 && completions(n.events(id))["handle[0]"] == 0;
         ++i)
      std::this_thread::sleep_for(5ms);
    auto done = completions(n.events(id));
    EXPECT_EQ(done["handle[0]/act"], 1);
    EXPECT_EQ(done["handle[0]"], 1);
    EXPECT_EQ(n.status(id).status, "waiting");
  }
  // A new node on the same store: the other answer resumes the execution.
  mini_node n{dir.str()};
  ASSERT_TRUE(n.input(id, "handle[1]/ask", json{{"act", false}}));
  auto info = n.await(id);
  EXPECT_EQ(info.status, "completed") << info.error;
  EXPECT_EQ(info.output.get(),
            (json{{{"acted", "a"}}, nullptr}));
  auto evs = n.events(id);
  for (auto& [key, count] : completions(evs))
    EXPECT_EQ(count, 1) << key;
  EXPECT_EQ(count_type(evs, "task_redispatched"), 0);
}

// An item's `timeout` bounds its whole sub-workflow, and the workflow's
// on_failure task runs once the execution failed.
TEST(Executions, AnItemsDeadlineFailsItAndTheFailureHookRuns) {
  test::temp_dir dir;
  mini_node n{dir.str()};
  auto doc = json::parse(R"({"name": "slow", "tasks": [
    {"id": "handle", "items": "input.things", "timeout": "50ms",
     "retry": {"max_attempts": 2, "backoff": "1ms"},
     "workflow": {"name": "one", "tasks": [
       {"id": "nap", "tool": "sleep", "input": {"ms": 5000}}]}}],
    "on_failure": [{"id": "alert", "tool": "echo",
      "input": {"text": "{{ execution.id }}: {{ failure.code }}: {{ failure.message }}"}}]})");
  auto id = n.submit(doc, json{{"things", {1}}});
  ASSERT_TRUE(id) << describe(id.error());
  auto info = n.await(*id);
  EXPECT_EQ(info.status, "failed");
  EXPECT_NE(info.error.find("task handle: item 0: task handle[0]"),
            std::string::npos)
    << info.error;
  auto evs = n.events(*id);
  int timeouts = 0;
  json alert;
  for (auto& ev : evs) {
    const auto& p = ev.payload.get();
    if (ev.type == "task_failed" && p.value("task", "") == "handle"
        && p.contains("item") && p.value("code", "") == "timeout")
      ++timeouts;
    if (ev.type == "task_completed" && p.value("task", "") == "alert")
      alert = p["output"];
  }
  EXPECT_EQ(timeouts, 2);
  EXPECT_EQ(count_type(evs, "on_failure_started"), 1);
  EXPECT_EQ(alert.value("text", ""),
            *id + ": timeout: " + info.error);
  EXPECT_EQ(evs.back().type, "execution_failed");
}

// A store stuck on the coordinator's append (a stalled disk) past
// append_deadline: the submission fails with an error naming the append and
// the deadline, and the coordinator stops. Once the store answers, the
// append it was stuck on is there, and the coordinator, restarted from the
// log, runs the execution: nothing hangs, nothing is lost.
TEST(Executions, ACoordinatorsAppendUnansweredPastItsDeadlineFailsTheSubmission) {
  test::temp_dir dir;
  held_node h{dir.str()};
  auto& n = h.n;
  auto& disk = h.disk;
  disk->hold();
  submit_request req;
  req.definition = json_value{json::parse(R"({"name": "held", "tasks": [
    {"id": "say", "tool": "echo", "input": {"text": "hi"}}]})")};
  expected<std::string> id{std::string{}};
  caf::scoped_actor self{n.system()};
  // Bounded far beyond the deadline: a wait, not a measurement.
  self->request(n.executions(), 60s, submit_atom_v, req)
    .receive([&](std::string& x) { id = x; },
             [&](caf::error& err) { id = err; });
  ASSERT_FALSE(id);
  EXPECT_EQ(code_of(id.error()), errc::unavailable) << describe(id.error());
  EXPECT_EQ(message_of(id.error()),
            "the event store did not answer an append within 200 ms "
            "(store.append_deadline)");
  disk->release();
  // The store actor answers after the append it was stuck on.
  auto all = n.list();
  ASSERT_EQ(all.size(), 1u);
  auto info = n.await(all[0].id);
  EXPECT_EQ(info.status, "completed") << info.error;
}

// A store stuck on a fork's append past append_deadline: the fork fails
// with an error naming the append and the deadline, and the executions
// actor goes on answering.
TEST(Executions, AForksAppendUnansweredPastItsDeadlineFailsTheFork) {
  test::temp_dir dir;
  held_node h{dir.str()};
  auto& n = h.n;
  auto& disk = h.disk;
  auto parent = n.submit(json::parse(R"({"name": "forked", "tasks": [
    {"id": "say", "tool": "echo", "input": {"text": "hi"}}]})"));
  ASSERT_TRUE(parent) << describe(parent.error());
  ASSERT_EQ(n.await(*parent).status, "completed");
  disk->hold();
  fork_request req;
  req.execution_id = *parent;
  req.rerun = {"say"};
  expected<json_value> forked{json_value{}};
  caf::scoped_actor self{n.system()};
  // Bounded far beyond the deadline: a wait, not a measurement.
  self->request(n.executions(), 60s, fork_atom_v, req)
    .receive([&](json_value& x) { forked = std::move(x); },
             [&](caf::error& err) { forked = err; });
  ASSERT_FALSE(forked) << forked->get().dump();
  EXPECT_EQ(code_of(forked.error()), errc::unavailable)
    << describe(forked.error());
  EXPECT_EQ(message_of(forked.error()),
            "the event store did not answer an append within 200 ms "
            "(store.append_deadline)");
  disk->release();
  EXPECT_EQ(n.status(*parent).status, "completed");
}

// A pool that runs as echo does but says `side_effects: null` when asked
// to describe itself (not a boolean: a node of another build). A fork plan
// counts its tool as having side effects, as it does a pool that does not
// say, and is answered; reading the field as a boolean threw in the
// executions actor.
tool_pool_actor::behavior_type unclear_echo() {
  return {
    [](run_atom, task_request& req) -> task_result {
      task_result out;
      out.output = req.input;
      return out;
    },
    [](describe_atom) {
      return json_value{json{{"name", "echo"}, {"side_effects", nullptr}}};
    },
  };
}

TEST(Executions, AForkPlanCountsAPoolsUnclearSideEffectsAsSome) {
  test::temp_dir dir;
  mini_node n{dir.str()};
  n.replace_pool("echo", n.system().spawn(unclear_echo));
  auto parent = n.submit(json::parse(R"({"name": "forked", "tasks": [
    {"id": "say", "tool": "echo", "input": {"text": "hi"}}]})"));
  ASSERT_TRUE(parent) << describe(parent.error());
  ASSERT_EQ(n.await(*parent).status, "completed");
  fork_request req;
  req.execution_id = *parent;
  req.rerun = {"say"};
  req.dry_run = true;
  expected<json_value> plan{json_value{}};
  caf::scoped_actor self{n.system()};
  self->request(n.executions(), 60s, fork_atom_v, req)
    .receive([&](json_value& x) { plan = std::move(x); },
             [&](caf::error& err) { plan = err; });
  ASSERT_TRUE(plan) << describe(plan.error());
  const auto to_run = plan->get().value("to_run", json::array());
  ASSERT_EQ(to_run.size(), 1u) << plan->get().dump();
  EXPECT_EQ(to_run[0]["runs"], "echo");
  EXPECT_EQ(to_run[0]["side_effects"], true) << plan->get().dump();
}

TEST(Executions, APoolsDescribeSaysItsSideEffects) {
  EXPECT_FALSE(described_side_effects(json{{"side_effects", false}}));
  EXPECT_TRUE(described_side_effects(json{{"side_effects", true}}));
  // Not said, or not said as a boolean: some.
  EXPECT_TRUE(described_side_effects(json{{"name", "echo"}}));
  EXPECT_TRUE(described_side_effects(json{{"side_effects", nullptr}}));
  EXPECT_TRUE(described_side_effects(json{{"side_effects", "no"}}));
  EXPECT_TRUE(described_side_effects(json{}));
}
