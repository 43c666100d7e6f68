// An agent workflow in the `cadre` binary is killed with SIGKILL in the
// middle of its conversation; `cadre resume` finishes it with its memory,
// and the agent's log shows no recorded LLM call or tool call repeated.

#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <fcntl.h>
#include <fstream>
#include <map>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "cadre/persistence/event_store.hpp"
#include "temp_dir.hpp"

extern char** environ;

using namespace cadre;
using namespace std::chrono_literals;

namespace {

pid_t spawn_cadre(const std::vector<std::string>& args,
                  const std::string& log_file) {
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_addopen(&fa, STDOUT_FILENO, log_file.c_str(),
                                   O_WRONLY | O_CREAT | O_APPEND, 0644);
  posix_spawn_file_actions_addopen(&fa, STDERR_FILENO, log_file.c_str(),
                                   O_WRONLY | O_CREAT | O_APPEND, 0644);
  std::vector<char*> argv{const_cast<char*>(CADRE_EXE)};
  for (const auto& a : args)
    argv.push_back(const_cast<char*>(a.c_str()));
  argv.push_back(nullptr);
  pid_t pid = -1;
  if (posix_spawn(&pid, CADRE_EXE, &fa, nullptr, argv.data(), environ) != 0)
    pid = -1;
  posix_spawn_file_actions_destroy(&fa);
  return pid;
}

// Waits for `pid` up to `limit`; kills it past that. Returns the exit code,
// or -1.
int wait_exit(pid_t pid, std::chrono::seconds limit) {
  auto end = std::chrono::steady_clock::now() + limit;
  int status = 0;
  while (waitpid(pid, &status, WNOHANG) == 0) {
    if (std::chrono::steady_clock::now() > end) {
      ::kill(pid, SIGKILL);
      waitpid(pid, &status, 0);
      return -1;
    }
    std::this_thread::sleep_for(10ms);
  }
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

std::string slurp(const std::string& path) {
  std::ifstream in{path};
  return {std::istreambuf_iterator<char>{in}, {}};
}

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
  auto out = dir / "out.txt";
  auto pid = spawn_cadre({"--db", db, "run", wf}, out);
  ASSERT_GT(pid, 0);
  // Kill once the log holds a tool result but not the answer: the agent is
  // mid-conversation (waiting for the slow second model call or the sleep).
  std::string agent_log;
  bool killed = false;
  auto end = std::chrono::steady_clock::now() + 60s;
  while (!killed && std::chrono::steady_clock::now() < end) {
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
      ::kill(pid, SIGKILL);
      killed = true;
    }
  }
  waitpid(pid, nullptr, 0);
  ASSERT_TRUE(killed) << slurp(out);
  auto rpid = spawn_cadre({"--db", db, "resume"}, out);
  ASSERT_GT(rpid, 0);
  ASSERT_EQ(wait_exit(rpid, std::chrono::seconds{60}), 0) << slurp(out);
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
  std::map<std::string, int> seen;
  for (auto& ev : *evs) {
    const auto& p = ev.payload.get();
    if (ev.type == "llm_requested" || ev.type == "llm_responded")
      ++seen[ev.type + " " + std::to_string(p.value("call", 0))];
    if (ev.type == "tool_called" || ev.type == "tool_result")
      ++seen[ev.type + " " + p.value("id", std::string{})];
    if (ev.type == "agent_turn_started" || ev.type == "agent_turn_completed")
      ++seen[ev.type];
  }
  for (auto& [what, n] : seen)
    EXPECT_EQ(n, 1) << what << " is recorded " << n << " times";
  EXPECT_EQ(seen.count("llm_responded 3"), 1u);
  EXPECT_EQ(seen.count("agent_turn_completed"), 1u);
  EXPECT_EQ(seen.size(), 2u + 3 * 2 + 3 * 2);
}
