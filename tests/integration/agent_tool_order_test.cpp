// When an agent's tool call may run against when it is on disk, in the
// `cadre` binary (docs/agents.md#tool-calls-and-durability): a tool with
// side effects (http) runs only once its `tool_called` is durable; one
// without (search) may run before, and a SIGKILL while it runs leaves a log
// that `cadre resume` finishes, the search made again.

#include <chrono>
#include <condition_variable>
#include <functional>
#include <fstream>
#include <map>
#include <mutex>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "agent_log_counts.hpp"
#include "cadre/persistence/event_store.hpp"
#include "cadre_process.hpp"
#include "loopback_server.hpp"
#include "temp_dir.hpp"

using namespace cadre;
using namespace std::chrono_literals;

namespace {

// The log "agent:<execution>/worker" of the one execution in `db`, as far
// as it is on disk now (the store opened read-only beside the writer).
std::vector<event> agent_log(const std::string& db) {
  persistence::store_options opts;
  opts.dir = db;
  opts.read_only = true;
  auto store = persistence::event_store::open(opts);
  if (!store)
    return {};
  auto list = (*store)->list({});
  if (!list || list->empty())
    return {};
  auto evs = (*store)->read("agent:" + list->front().id + "/worker", 1, 0);
  return evs ? *evs : std::vector<event>{};
}

std::string the_only_status(const std::string& db, json& output) {
  persistence::store_options opts;
  opts.dir = db;
  opts.read_only = true;
  auto store = persistence::event_store::open(opts);
  if (!store)
    return describe(store.error());
  auto list = (*store)->list({});
  if (!list || list->size() != 1)
    return "not one execution";
  output = list->front().output.get();
  return list->front().status;
}

} // namespace

TEST(AgentToolOrder, AToolWithSideEffectsRunsOnlyOnceItsCallIsOnDisk) {
  test::temp_dir dir;
  auto db = dir / "db";
  std::mutex mx;
  std::vector<std::map<std::string, int>> at_call;
  test::loopback_server srv;
  srv.server().Post("/hook", [&](const httplib::Request&,
                                 httplib::Response& res) {
    // What the log holds while the tool runs.
    auto seen = test::recorded_calls(agent_log(db));
    {
      std::lock_guard<std::mutex> guard{mx};
      at_call.push_back(std::move(seen));
    }
    res.set_content("{\"ok\": true}", "application/json");
  });
  srv.start();
  std::ofstream{dir / "cadre.yaml"} << "tools:\n"
                                       "  http:\n"
                                       "    allow_private: true\n";
  std::ofstream{dir / "agent.yaml"}
    << "name: hook\n"
       "agents:\n"
       "  worker:\n"
       "    tools: [http]\n"
       "    script:\n"
       "      - turn: 1\n"
       "        reply:\n"
       "          tool_calls:\n"
       "            - {name: http, arguments: {url: \""
    << srv.url("/hook")
    << "\", method: POST, json: {n: 1}}}\n"
       "      - turn: 2\n"
       "        reply: {text: \"{{ tool.http.status }}\"}\n"
       "tasks:\n"
       "  - id: think\n"
       "    agent: worker\n"
       "    input: post it\n"
       "output: \"{{ tasks.think.output }}\"\n";
  auto res = test::run_to_end({"--db", db, "--config", dir / "cadre.yaml",
                               "run", dir / "agent.yaml"},
                              dir / "err.txt", 60s);
  ASSERT_TRUE(res);
  ASSERT_EQ(res->exit_code, 0) << res->err;
  std::lock_guard<std::mutex> guard{mx};
  ASSERT_EQ(at_call.size(), 1u);
  EXPECT_EQ(at_call[0]["tool_called call_1_1"], 1)
    << "the http call ran before its tool_called was on disk";
  EXPECT_EQ(at_call[0].count("tool_result call_1_1"), 0u);
  json output;
  EXPECT_EQ(the_only_status(db, output), "completed");
  EXPECT_EQ(output, "200");
}

TEST(AgentToolOrder, APureToolKilledBeforeItsRecordRunsAgainOnResume) {
  test::temp_dir dir;
  auto db = dir / "db";
  // The first search is held until the process is killed; the next ones
  // answer at once.
  std::mutex mx;
  std::condition_variable cv;
  int searches = 0;
  bool released = false;
  std::map<std::string, int> at_first;
  test::loopback_server srv;
  // Declared after the server, so it runs first: a held search returns
  // even when an assertion ends the test early.
  struct release_at_exit {
    std::function<void()> fn;
    ~release_at_exit() {
      fn();
    }
  } release{[&] {
    {
      std::lock_guard<std::mutex> guard{mx};
      released = true;
    }
    cv.notify_all();
  }};
  srv.server().Get("/search", [&](const httplib::Request&,
                                  httplib::Response& res) {
    std::unique_lock<std::mutex> guard{mx};
    if (++searches == 1) {
      at_first = test::recorded_calls(agent_log(db));
      cv.notify_all();
      cv.wait_for(guard, 60s, [&] { return released; });
    }
    res.set_content(R"({"results": [{"title": "t", "url": "https://x.test/",
                        "content": "c"}]})",
                    "application/json");
  });
  srv.start();
  std::ofstream{dir / "cadre.yaml"} << "tools:\n"
                                       "  search:\n"
                                       "    provider: searxng\n"
                                       "    url: "
                                    << srv.url("") << "\n"
                                    << "    allow_private: true\n";
  // No delay_ms: a model that never blocks, whose calls cost nothing to
  // make again, so the step that asks for the search may wait for it.
  std::ofstream{dir / "agent.yaml"}
    << "name: look\n"
       "agents:\n"
       "  worker:\n"
       "    tools: [search]\n"
       "    script:\n"
       "      - turn: 1\n"
       "        reply:\n"
       "          tool_calls:\n"
       "            - {name: search, arguments: {query: cadre}}\n"
       "      - turn: 2\n"
       "        reply: {text: \"{{ tool.search.available }}\"}\n"
       "tasks:\n"
       "  - id: think\n"
       "    agent: worker\n"
       "    input: look it up\n"
       "output: \"{{ tasks.think.output }}\"\n";
  test::cadre_process run{{"--db", db, "--config", dir / "cadre.yaml", "run",
                           dir / "agent.yaml"},
                          dir / "err.txt"};
  ASSERT_TRUE(run.ok()) << run.what();
  {
    std::unique_lock<std::mutex> guard{mx};
    auto until = std::chrono::steady_clock::now() + 60s;
    while (searches == 0 && std::chrono::steady_clock::now() < until) {
      guard.unlock();
      run.read_all(test::clock_type::now()); // never a full pipe
      guard.lock();
      cv.wait_for(guard, 50ms, [&] { return searches > 0; });
    }
    ASSERT_EQ(searches, 1) << run.stderr_text();
  }
  // The search runs and its call is not on disk yet: killed here, nothing
  // outside changed and the log does not know of the call.
  run.kill_now();
  release.fn();
  {
    std::lock_guard<std::mutex> guard{mx};
    EXPECT_EQ(at_first.count("tool_called call_1_1"), 0u)
      << "the search waited for its tool_called to be on disk";
    EXPECT_EQ(at_first.count("agent_turn_completed"), 0u);
  }
  auto before = test::recorded_calls(agent_log(db));
  EXPECT_EQ(before.count("tool_called call_1_1"), 0u);
  auto resumed = test::run_to_end({"--db", db, "--config",
                                   dir / "cadre.yaml", "resume"},
                                  dir / "resume.err", 60s);
  ASSERT_TRUE(resumed);
  ASSERT_EQ(resumed->exit_code, 0) << resumed->err;
  json output;
  EXPECT_EQ(the_only_status(db, output), "completed");
  EXPECT_EQ(output, "true") << "the search's result reached the answer";
  {
    std::lock_guard<std::mutex> guard{mx};
    EXPECT_EQ(searches, 2) << "the search is made again on resume";
  }
  // Each call and result is recorded once, the search's with its call.
  auto seen = test::recorded_calls(agent_log(db));
  for (auto& [what, n] : seen)
    EXPECT_EQ(n, 1) << what << " is recorded " << n << " times";
  EXPECT_EQ(seen.count("tool_called call_1_1"), 1u);
  EXPECT_EQ(seen.count("tool_result call_1_1"), 1u);
  EXPECT_EQ(seen.count("llm_responded 2"), 1u);
  EXPECT_EQ(seen.count("agent_turn_completed"), 1u);
}
