// The node as one supervision tree, on a real actor system and a real
// RocksDB store: the live tree, restarts reported as events, and recovery
// of executions when the actors running them are killed.

#include <atomic>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <map>
#include <mutex>
#include <thread>

#include <caf/actor_system.hpp>
#include <caf/event_based_actor.hpp>
#include <caf/scoped_actor.hpp>
#include <caf/typed_event_based_actor.hpp>
#include <gtest/gtest.h>

#include "cadre/messages/event.hpp"
#include "cadre/config/node_config.hpp"
#include "cadre/runtime/node.hpp"
#include "cadre/tools/tool_registry.hpp"
#include "agents_config.hpp"
#include "temp_dir.hpp"

using namespace cadre;
using namespace std::chrono_literals;

namespace {

std::unique_ptr<runtime::node> start_node(const std::string& dir,
                                          size_t workers = 4) {
  config::node_config cfg;
  cfg.store_dir = dir;
  cfg.default_workers = workers;
  auto n = runtime::node::start(cfg);
  EXPECT_TRUE(n) << describe(n.error());
  return n ? std::move(*n) : nullptr;
}

std::string submit(runtime::node& n, const json& doc, const json& input) {
  submit_request req;
  req.definition = json_value{doc};
  req.input = json_value{input};
  std::string id;
  caf::scoped_actor self{n.system()};
  self->request(n.executions(), caf::infinite, submit_atom_v, req)
    .receive([&](std::string& x) { id = std::move(x); },
             [&](caf::error& err) { ADD_FAILURE() << describe(err); });
  return id;
}

// Awaits through whichever executions actor is current: a request to one
// that is killed meanwhile is asked again of its successor.
execution_info await(runtime::node& n, const std::string& id) {
  execution_info out;
  for (int tries = 0; tries < 50 && !out.finished(); ++tries) {
    caf::scoped_actor self{n.system()};
    self->request(n.executions(), 120s, await_atom_v, id)
      .receive([&](execution_info& x) { out = std::move(x); },
               [&](caf::error& err) {
                 if (err != caf::sec::request_receiver_down)
                   ADD_FAILURE() << describe(err);
                 std::this_thread::sleep_for(20ms);
               });
  }
  return out;
}

std::vector<event> log_of(runtime::node& n, const std::string& id) {
  std::vector<event> out;
  caf::scoped_actor self{n.system()};
  self->request(n.store(), 60s, read_atom_v, id, uint64_t{1}, uint64_t{0})
    .receive([&](std::vector<event>& xs) { out = std::move(xs); },
             [&](caf::error& err) { ADD_FAILURE() << describe(err); });
  return out;
}

// Collects events published on the bus for every execution.
struct collected {
  std::mutex mtx;
  std::vector<event> events;

  std::vector<event> of_type(const std::string& type) {
    std::lock_guard<std::mutex> guard{mtx};
    std::vector<event> out;
    for (auto& ev : events)
      if (ev.type == type)
        out.push_back(ev);
    return out;
  }
};

event_sink_actor spawn_collector(caf::actor_system& sys,
                                 std::shared_ptr<collected> into) {
  return sys.spawn([into]() -> event_sink_actor::behavior_type {
    return {[into](event_atom, const std::vector<event>& evs) {
      std::lock_guard<std::mutex> guard{into->mtx};
      into->events.insert(into->events.end(), evs.begin(), evs.end());
    }};
  });
}

// Waits (bounded) until `pred` holds; the bound only guards against a hang.
template <class Pred>
bool eventually(Pred pred, std::chrono::seconds bound = 60s) {
  auto end = std::chrono::steady_clock::now() + bound;
  while (std::chrono::steady_clock::now() < end) {
    if (pred())
      return true;
    std::this_thread::sleep_for(5ms);
  }
  return pred();
}

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

const json* child(const json& tree, const std::string& id) {
  if (!tree.contains("children"))
    return nullptr;
  for (auto& c : tree["children"])
    if (c.value("id", "") == id)
      return &c;
  return nullptr;
}

// A chain of `n` sleeps of `ms` each; the output is the last step's.
json sleep_chain(int n, int ms) {
  json tasks = json::array();
  for (int i = 1; i <= n; ++i) {
    json t{{"id", "s" + std::to_string(i)},
           {"tool", "sleep"},
           {"input", {{"ms", ms}}}};
    if (i > 1)
      t["depends_on"] = "s" + std::to_string(i - 1);
    tasks.push_back(t);
  }
  return json{{"name", "chain"},
              {"version", "1"},
              {"tasks", tasks},
              {"output", "{{ tasks.s" + std::to_string(n) + ".output }}"}};
}

} // namespace

TEST(Node, RunsEveryActorUnderOneLiveTree) {
  test::temp_dir dir;
  auto n = start_node(dir.str());
  ASSERT_NE(n, nullptr);
  auto tree = n->tree();
  EXPECT_EQ(tree.value("name", ""), "node");
  EXPECT_EQ(tree.value("strategy", ""), "rest_for_one");
  std::vector<std::string> order;
  for (auto& c : tree["children"])
    order.push_back(c.value("id", ""));
  EXPECT_EQ(order, (std::vector<std::string>{"event_bus", "event_store",
                                             "tools", "agents",
                                             "executions"}));
  auto* agents = child(tree, "agents");
  ASSERT_NE(agents, nullptr);
  EXPECT_EQ(agents->value("status", ""), "running") << agents->dump();
  EXPECT_TRUE(n->agents());
  auto* tools = child(tree, "tools");
  ASSERT_NE(tools, nullptr);
  EXPECT_EQ(tools->value("type", ""), "supervisor");
  std::vector<std::string> pools;
  for (auto& c : (*tools)["children"]) {
    pools.push_back(c.value("id", ""));
    EXPECT_EQ(c.value("status", ""), "running") << c.dump();
  }
  EXPECT_EQ(pools, n->tool_names());
  EXPECT_FALSE(pools.empty());
}

TEST(Node, BadAgentConfigFailsTheStartNamingTheKey) {
  test::temp_dir dir;
  config::node_config cfg;
  cfg.store_dir = dir.str();
  cfg.agents = json{{"writer", {{"tools", {"echo", "ech"}}}}};
  auto n = runtime::node::start(cfg);
  ASSERT_FALSE(n);
  EXPECT_NE(describe(n.error()).find("agents.writer/tools/1: unknown tool "
                                     "'ech'"),
            std::string::npos)
    << describe(n.error());
  cfg.agents = json::object();
  cfg.llm = json{{"profiles", {{"s", {{"kind", "scripted"},
                                      {"turns", "nope"}}}}}};
  auto m = runtime::node::start(cfg);
  ASSERT_FALSE(m);
  EXPECT_NE(describe(m.error()).find("llm.profiles.s.settings.turns"),
            std::string::npos)
    << describe(m.error());
}

TEST(Node, BadToolSettingsFailTheStartNamingTheKey) {
  test::temp_dir dir;
  config::node_config cfg;
  cfg.store_dir = dir.str();
  cfg.tools["sleep"].settings = json{{"max_ms", "long"}};
  auto n = runtime::node::start(cfg);
  ASSERT_FALSE(n);
  EXPECT_NE(describe(n.error()).find("tools.sleep.max_ms"), std::string::npos)
    << describe(n.error());
}

// The config file's tool settings are checked against each tool's schema
// before the node starts anything, and the refusal names the file and key.
TEST(Node, BadToolSettingsInTheConfigFileFailTheStartNamingFileAndKey) {
  test::temp_dir dir;
  auto file = dir / "cadre.yaml";
  // The refusal of a node started with `tools` as its tools section.
  auto refusal = [&](const std::string& tools) -> std::string {
    std::ofstream{file} << "store: {dir: " << (dir / "store")
                        << "}\ntools:\n" << tools;
    auto cfg = config::load_file(file);
    EXPECT_TRUE(cfg) << describe(cfg.error());
    if (!cfg)
      return {};
    auto n = runtime::node::start(*cfg);
    EXPECT_FALSE(n);
    if (n)
      return "started";
    EXPECT_EQ(code_of(n.error()), errc::invalid_config);
    return message_of(n.error());
  };
  // Sections in name order: http first.
  EXPECT_EQ(refusal("  ocr:\n    workers: 1\n    dpi: 10\n"
                    "  http:\n    timeout: 5\n"),
            file + ": tools.http.timeout: unknown setting (known: "
                   "allow_link_local, allow_private, allowed_hosts, "
                   "connect_timeout_ms, enabled, fail_on_status, "
                   "max_attempts, max_queue, max_redirects, "
                   "max_response_bytes, retry_base_ms, retry_max_ms, "
                   "timeout_ms, workers)");
  EXPECT_EQ(refusal("  ocr:\n    workers: 1\n    dpi: 10\n"),
            file + ": tools.ocr.dpi: must be an integer in [50, 1200]");
  // The pool's keys, by the schema common to every tool's section.
  EXPECT_EQ(refusal("  ocr:\n    workers: 0\n"
                    "  echo: {max_queue: many, enabled: 1}\n"),
            file + ": tools.echo.enabled: must be true or false; "
                   "tools.echo.max_queue: must be an integer >= 1");
  EXPECT_EQ(refusal("  ocr:\n    workers: 0\n"),
            file + ": tools.ocr.workers: must be an integer >= 1");
}

// Every node config under examples/ passes its tools' settings schemas.
TEST(Node, EveryExampleConfigsToolSettingsPass) {
  tools::tool_registry registry;
  tools::register_builtin_tools(registry);
  size_t seen = 0;
  for (const auto& entry : std::filesystem::recursive_directory_iterator{
         std::string{CADRE_SOURCE_DIR} + "/examples"}) {
    if (entry.path().filename() != "cadre.yaml")
      continue;
    ++seen;
    auto cfg = config::load_file(entry.path().string());
    ASSERT_TRUE(cfg) << describe(cfg.error());
    for (const auto& [name, tool] : cfg->tools) {
      EXPECT_TRUE(registry.contains(name)) << entry.path() << ": " << name;
      auto ok = registry.check_settings(name, tool.settings);
      EXPECT_TRUE(ok) << entry.path() << ": " << describe(ok.error());
    }
  }
  EXPECT_GE(seen, 2u);
}

TEST(Node, SchedulesRunOnlyWhenAskedForAndUnderTheTree) {
  test::temp_dir dir;
  auto file = dir / "hello.yaml";
  std::ofstream{file} << "name: hello\ntasks:\n  - {id: a, tool: echo}\n";
  config::node_config cfg;
  cfg.store_dir = dir / "db";
  schedule::spec s;
  s.name = "hourly";
  s.workflow = file;
  s.every_ms = 3'600'000;
  cfg.schedules.push_back(s);
  auto children = [](runtime::node& n) {
    std::vector<std::string> ids;
    auto tree = n.tree();
    for (auto& c : tree["children"])
      ids.push_back(c.value("id", ""));
    return ids;
  };
  {
    // An embedded command's node: no schedules.
    auto n = runtime::node::start(cfg);
    ASSERT_TRUE(n) << describe(n.error());
    EXPECT_FALSE((*n)->schedules());
    auto ids = children(**n);
    ASSERT_FALSE(ids.empty());
    EXPECT_EQ(ids.back(), "executions");
  }
  runtime::start_options opts;
  opts.schedules = true;
  auto n = runtime::node::start(cfg, opts);
  ASSERT_TRUE(n) << describe(n.error());
  auto ids = children(**n);
  ASSERT_FALSE(ids.empty());
  EXPECT_EQ(ids.back(), "schedules");
  ASSERT_TRUE((*n)->schedules());
  caf::scoped_actor self{(*n)->system()};
  json list;
  self->request((*n)->schedules(), 60s, list_atom_v)
    .receive([&](json_value& x) { list = x.get(); },
             [&](caf::error& err) { ADD_FAILURE() << describe(err); });
  ASSERT_EQ(list.size(), 1u);
  EXPECT_EQ(list[0]["name"], "hourly");
  EXPECT_EQ(list[0]["every"], "1h");
}

TEST(Node, AScheduleThatCouldNeverRunFailsTheStart) {
  test::temp_dir dir;
  auto file = dir / "typed.yaml";
  std::ofstream{file} << "name: typed\n"
                         "input_schema: {type: object, required: [n]}\n"
                         "tasks:\n  - {id: a, tool: echo}\n";
  config::node_config cfg;
  cfg.store_dir = dir / "db";
  schedule::spec s;
  s.name = "typed";
  s.workflow = file;
  s.every_ms = 60'000;
  s.origin = "cadre.yaml:3:5";
  cfg.schedules.push_back(s);
  runtime::start_options opts;
  opts.schedules = true;
  auto n = runtime::node::start(cfg, opts);
  ASSERT_FALSE(n);
  EXPECT_EQ(code_of(n.error()), errc::invalid_config);
  EXPECT_NE(message_of(n.error()).find("cadre.yaml:3:5: schedule typed: "
                                       "input: does not match"),
            std::string::npos)
    << describe(n.error());
  cfg.schedules[0].workflow = dir / "missing.yaml";
  n = runtime::node::start(cfg, opts);
  ASSERT_FALSE(n);
  EXPECT_NE(message_of(n.error()).find("schedule typed: workflow "
                                       + (dir / "missing.yaml")
                                       + " is not valid"),
            std::string::npos)
    << describe(n.error());
}

TEST(Node, KilledExecutionsActorIsRestartedAndItsRunFinishes) {
  test::temp_dir dir;
  auto n = start_node(dir.str());
  ASSERT_NE(n, nullptr);
  auto seen = std::make_shared<collected>();
  auto sink = spawn_collector(n->system(), seen);
  caf::anon_send(n->bus(), subscribe_atom_v, std::string{}, sink);
  auto id = submit(*n, sleep_chain(6, 30), json::object());
  ASSERT_FALSE(id.empty());
  ASSERT_TRUE(eventually([&] {
    return completions(log_of(*n, id)).count("s2") > 0;
  }));
  auto old = n->executions();
  caf::anon_send_exit(old, caf::exit_reason::kill);
  ASSERT_TRUE(eventually([&] { return n->executions() != old; }));
  auto info = await(*n, id);
  EXPECT_EQ(info.status, "completed");
  for (auto& [task, count] : completions(log_of(*n, id)))
    EXPECT_EQ(count, 1) << task;
  EXPECT_EQ(completions(log_of(*n, id)).size(), 6u);
  // The restart is a node event, and a count in the tree.
  ASSERT_TRUE(eventually([&] {
    return !seen->of_type("supervisor_restart").empty();
  }));
  auto restart = seen->of_type("supervisor_restart").front();
  EXPECT_EQ(restart.payload->value("supervisor", ""), "node");
  EXPECT_EQ(restart.payload->value("child", ""), "executions");
  EXPECT_EQ(restart.payload->value("restarts", 0), 1);
  auto tree = n->tree();
  auto* entry = child(tree, "executions");
  ASSERT_NE(entry, nullptr);
  EXPECT_EQ(entry->value("restarts", 0), 1);
  caf::anon_send(n->bus(), unsub_atom_v, std::string{}, sink);
}

TEST(Node, CoordinatorKilledMidRunRecoversFromItsLog) {
  test::temp_dir dir;
  auto n = start_node(dir.str());
  ASSERT_NE(n, nullptr);
  auto seen = std::make_shared<collected>();
  auto sink = spawn_collector(n->system(), seen);
  caf::anon_send(n->bus(), subscribe_atom_v, std::string{}, sink);
  auto id = submit(*n, sleep_chain(8, 25), json::object());
  ASSERT_FALSE(id.empty());
  ASSERT_TRUE(eventually([&] {
    return completions(log_of(*n, id)).count("s3") > 0;
  }));
  caf::actor coordinator;
  {
    caf::scoped_actor self{n->system()};
    self->request(n->executions(), 60s, get_atom_v, id)
      .receive([&](caf::actor& x) { coordinator = std::move(x); },
               [&](caf::error& err) { ADD_FAILURE() << describe(err); });
  }
  ASSERT_TRUE(coordinator);
  caf::anon_send_exit(coordinator, caf::exit_reason::kill);
  auto info = await(*n, id);
  EXPECT_EQ(info.status, "completed");
  auto done = completions(log_of(*n, id));
  EXPECT_EQ(done.size(), 8u);
  for (auto& [task, count] : done)
    EXPECT_EQ(count, 1) << task;
  ASSERT_TRUE(eventually([&] {
    for (auto& ev : seen->of_type("supervisor_restart"))
      if (ev.payload->value("child", "") == "coordinator " + id)
        return true;
    return false;
  }));
  caf::anon_send(n->bus(), unsub_atom_v, std::string{}, sink);
}

// A task's timeout covers its wait for a free worker too. Under a sanitizer
// on a loaded machine that wait alone can pass 300 ms, failing attempts that
// neither crashed nor hung, so the sanitizers' runs give each attempt longer.
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
constexpr const char* chaos_timeout = "1500ms";
#else
constexpr const char* chaos_timeout = "300ms";
#endif

TEST(Node, FiveHundredTasksCompleteWhenThirtyPercentOfCallsCrashOrHang) {
  test::temp_dir dir;
  auto n = start_node(dir.str(), 8);
  ASSERT_NE(n, nullptr);
  // Each attempt of each item crashes its worker (20%) or hangs past the
  // task timeout (10%), chosen by a hash of its idempotency key; 15
  // attempts make a lost item (0.3^15 per item) practically impossible.
  json doc{
    {"name", "chaos"},
    {"version", "1"},
    {"tasks",
     json::array(
       {json{{"id", "work"},
             {"kind", "map"},
             {"items", "input.items"},
             {"concurrency", 50},
             {"tool", "chaos"},
             {"timeout", chaos_timeout},
             {"retry",
              {{"max_attempts", 15},
               {"backoff", "5ms"},
               {"max_backoff", "20ms"},
               {"retry_on", json::array({"worker_crashed", "timeout"})}}},
             {"input",
              {{"crash_rate", 0.2},
               {"hang_rate", 0.1},
               {"ms", 60000},
               {"value", "{{ item }}"}}}},
        json{{"id", "total"},
             {"depends_on", "work"},
             {"tool", "script"},
             {"input",
              {{"code", "local s = 0\n"
                        "for _, r in ipairs(args) do s = s + r.value end\n"
                        "return {sum = s, n = #args}"},
               {"args", "{{ tasks.work.output }}"}}}}})},
    {"output", "{{ tasks.total.output }}"}};
  json items = json::array();
  int64_t expected_sum = 0;
  for (int i = 1; i <= 500; ++i) {
    items.push_back(i);
    expected_sum += i;
  }
  auto id = submit(*n, doc, json{{"items", items}});
  ASSERT_FALSE(id.empty());
  auto info = await(*n, id);
  ASSERT_EQ(info.status, "completed") << info.error;
  auto evs = log_of(*n, id);
  int crashed = 0;
  int timed_out = 0;
  for (auto& ev : evs)
    if (ev.type == "task_failed") {
      auto code = ev.payload->value("code", "");
      crashed += code == "worker_crashed";
      timed_out += code == "timeout";
    }
  // The chaos really happened, and every item completed exactly once.
  EXPECT_GT(crashed, 50);
  EXPECT_GT(timed_out, 20);
  auto done = completions(evs);
  for (int i = 0; i < 500; ++i)
    EXPECT_EQ(done["work[" + std::to_string(i) + "]"], 1) << i;
  auto out = info.output.get();
  EXPECT_EQ(out.value("n", 0), 500);
  EXPECT_EQ(out.value("sum", int64_t{0}), expected_sum);
}

// store.append_deadline is the agents' append deadline (the node gives the
// executions and schedules actors the same, beside their other options).
TEST(Node, TheStoreAppendDeadlineIsTheAgentsAppendDeadline) {
  config::node_config cfg;
  cfg.append_deadline_ms = 250;
  tools::tool_registry registry;
  auto opts = runtime::agents_options_of(cfg, registry);
  ASSERT_TRUE(opts) << describe(opts.error());
  EXPECT_EQ(opts->append_deadline, 250ms);
}

// llm.max_finished_turns bounds the answers each agent keeps; a value that
// is not a whole number from 1 is refused with its key.
TEST(Node, LlmMaxFinishedTurnsIsTheAgentsBoundOfKeptAnswers) {
  tools::tool_registry registry;
  config::node_config cfg;
  auto opts = runtime::agents_options_of(cfg, registry);
  ASSERT_TRUE(opts) << describe(opts.error());
  EXPECT_EQ(opts->max_finished_turns, 1024u);
  cfg.llm = json{{"max_finished_turns", 50}};
  opts = runtime::agents_options_of(cfg, registry);
  ASSERT_TRUE(opts) << describe(opts.error());
  EXPECT_EQ(opts->max_finished_turns, 50u);
  for (auto bad : {json(0), json(-3), json("many"), json(2.5)}) {
    cfg.llm = json{{"max_finished_turns", bad}};
    auto refused = runtime::agents_options_of(cfg, registry);
    ASSERT_FALSE(refused) << bad;
    EXPECT_EQ(code_of(refused.error()), errc::invalid_config);
    EXPECT_NE(message_of(refused.error()).find("llm.max_finished_turns"),
              std::string::npos)
      << message_of(refused.error());
  }
}
