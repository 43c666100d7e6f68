// An agent workflow in the `cadre` binary is killed with SIGKILL in the
// middle of its conversation; `cadre resume` finishes it with its memory,
// and the agent's log shows no recorded LLM call or tool call repeated.

#include <signal.h>

#include <chrono>
#include <fstream>
#include <map>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "agent_log_counts.hpp"
#include "cadre/persistence/event_store.hpp"
#include "cadre_process.hpp"
#include "temp_dir.hpp"

using namespace cadre;
using namespace std::chrono_literals;

namespace {

// Call 1 asks for echo and a slow sleep at once; call 2 (a slow model)
// asks for script; call 3 answers from all three results, so the answer
// proves the memory of the calls before the kill.
const char* workflow = R"yaml(
name: agent-crash
agents:
  worker:
    tools: [echo, sleep, script]
    output_schema:
      type: object
      required: [echo, slept, n]
    script:
      - turn: 1
        reply:
          tool_calls:
            - {name: echo, arguments: {text: "{{ last_user | text }}"}}
            - {name: sleep, arguments: {ms: 300}}
      - turn: 2
        reply:
          delay_ms: 1500
          tool_calls:
            - {name: script, arguments: {code: "return 7"}}
      - turn: 3
        reply:
          text: '{"echo": {{ tool.echo.text }}, "slept": {{ tool.sleep.slept_ms }}, "n": {{ tool.script }}}'
tasks:
  - id: think
    agent: worker
    input: remember this
output: "{{ tasks.think.output }}"
)yaml";

} // namespace

TEST(AgentKill, ResumedConversationRepeatsNoRecordedCall) {
  test::temp_dir dir;
  auto wf = dir / "agent.yaml";
  std::ofstream{wf} << workflow;
  auto db = dir / "db";
  auto err = dir / "err.txt";
  test::cadre_process run{{"--db", db, "run", wf}, err};
  ASSERT_TRUE(run.ok()) << run.what();
  // Kill once the log holds a tool result but not the answer: the agent is
  // mid-conversation (waiting for the slow second model call or the sleep).
  std::string agent_log;
  bool killed = false;
  auto end = test::clock_type::now() + 60s;
  while (!killed && test::clock_type::now() < end) {
    // Drain stdout so the run never blocks on a full pipe.
    run.read_all(test::clock_type::now());
    std::this_thread::sleep_for(5ms);
    persistence::store_options opts;
    opts.dir = db;
    opts.read_only = true;
    auto store = persistence::event_store::open(opts);
    if (!store)
      continue;
    auto list = (*store)->list({});
    if (!list || list->empty())
      continue;
    agent_log = "agent:" + list->front().id + "/worker";
    auto evs = (*store)->read(agent_log, 1, 0);
    if (!evs)
      continue;
    bool result = false;
    for (auto& ev : *evs) {
      ASSERT_NE(ev.type, "agent_turn_completed")
        << "the turn finished before the kill; the window is too small";
      result = result || ev.type == "tool_result";
    }
    if (result) {
      run.kill_now();
      killed = true;
    }
  }
  ASSERT_TRUE(killed) << run.stderr_text();
  auto resumed = test::run_to_end({"--db", db, "resume"}, dir / "resume.err",
                                  60s);
  ASSERT_TRUE(resumed);
  ASSERT_EQ(resumed->exit_code, 0) << resumed->err;
  persistence::store_options opts;
  opts.dir = db;
  opts.read_only = true;
  auto store = persistence::event_store::open(opts);
  ASSERT_TRUE(store) << describe(store.error());
  auto list = (*store)->list({});
  ASSERT_TRUE(list);
  ASSERT_EQ(list->size(), 1u);
  EXPECT_EQ(list->front().status, "completed") << list->front().error;
  EXPECT_EQ(list->front().output.get(),
            (json{{"echo", "remember this"}, {"slept", 300}, {"n", 7}}));
  auto evs = (*store)->read(agent_log, 1, 0);
  ASSERT_TRUE(evs);
  auto seen = test::recorded_calls(*evs);
  for (auto& [what, n] : seen)
    EXPECT_EQ(n, 1) << what << " is recorded " << n << " times";
  EXPECT_EQ(seen.count("llm_responded 3"), 1u);
  EXPECT_EQ(seen.count("agent_turn_completed"), 1u);
  EXPECT_EQ(seen.size(), 2u + 3 * 2 + 3 * 2);
}
