// Issue 12, items 3 and 4, as a user meets them with the `cadre` binary.
// Lua's pattern matcher ran inside one VM instruction, where the sandbox's
// hook never ran, so a backtracking pattern kept `cadre run`, a script task
// and `cadre tool script --timeout-ms` busy for hours; each now ends at its
// bound with limit_exceeded and the process exits. A self-referencing JSON
// Schema killed the process, and a task whose call kills the process was
// dispatched again at every start; now each re-dispatch is recorded first,
// and at the limit the task is parked (failed with crash_loop).

#include <sys/resource.h>

#include <fstream>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include <gtest/gtest.h>

#include "cadre/persistence/event_store.hpp"
#include "cadre_process.hpp"
#include "temp_dir.hpp"

using namespace cadre;

namespace {

/// Bound for any one command; without the fixes some run for hours.
constexpr std::chrono::seconds command_limit{60};

/// The node's default crash_loop_limit.
constexpr int crash_loop_limit = 3;

/// Backtracks through about 2000^6 steps.
const std::string catastrophic
  = "string.find(string.rep('a', 2000), string.rep('.-', 6) .. 'b')";

std::optional<test::outcome> run(const std::vector<std::string>& args,
                                 const std::string& err_file,
                                 bool may_die = false) {
  return test::run_to_end(args, err_file, command_limit, {}, may_die);
}

/// The one execution of the store at `db` and its events.
std::optional<std::pair<execution_info, std::vector<event>>>
only_execution(const std::string& db) {
  persistence::store_options opts;
  opts.dir = db;
  opts.read_only = true;
  auto store = persistence::event_store::open(opts);
  if (!store) {
    ADD_FAILURE() << describe(store.error());
    return std::nullopt;
  }
  auto list = (*store)->list({});
  if (!list || list->size() != 1) {
    ADD_FAILURE() << "expected one execution";
    return std::nullopt;
  }
  auto events = (*store)->read(list->front().id, 1, 0);
  if (!events) {
    ADD_FAILURE() << describe(events.error());
    return std::nullopt;
  }
  return std::make_pair(list->front(), std::move(*events));
}

/// The task_failed event of `task` in the store's one execution, which
/// failed.
json failure_of(const std::string& db, const std::string& task) {
  auto x = only_execution(db);
  if (!x)
    return nullptr;
  EXPECT_EQ(x->first.status, "failed");
  for (const auto& ev : x->second)
    if (ev.type == "task_failed" && ev.payload->value("task", "") == task)
      return ev.payload.get();
  ADD_FAILURE() << "no task_failed of " << task;
  return nullptr;
}

} // namespace

TEST(Issue12, ABacktrackingConditionEndsTheRunWithLimitExceeded) {
  test::temp_dir tmp;
  std::string wf = tmp / "when.yaml";
  std::ofstream{wf} << "name: when\n"
                       "timeout: 30s\n"
                       "tasks:\n"
                       "  - id: a\n"
                       "    tool: echo\n"
                       "    when: \"" + catastrophic + "\"\n";
  std::string db = tmp / "db";
  auto res = run({"--db", db, "run", wf}, tmp / "err");
  ASSERT_TRUE(res);
  EXPECT_NE(res->exit_code, -1);
  auto failed = failure_of(db, "a");
  EXPECT_EQ(failed.value("code", ""), "limit_exceeded") << failed.dump();
  EXPECT_NE(failed.value("message", "").find("/tasks/0/when: "),
            std::string::npos)
    << failed.dump();
  EXPECT_NE(failed.value("message", "").find("time limit exceeded (1000 ms)"),
            std::string::npos)
    << failed.dump();
}

TEST(Issue12, ABacktrackingScriptTaskEndsAndTheProcessExits) {
  test::temp_dir tmp;
  std::string wf = tmp / "script.yaml";
  std::ofstream{wf} << "name: script\n"
                       "tasks:\n"
                       "  - id: s\n"
                       "    tool: script\n"
                       "    timeout: 1s\n"
                       "    input: {code: \"return " + catastrophic + "\"}\n";
  std::string db = tmp / "db";
  auto res = run({"--db", db, "run", wf}, tmp / "err");
  ASSERT_TRUE(res);
  EXPECT_NE(res->exit_code, -1) << test::read_file(tmp / "err");
  auto failed = failure_of(db, "s");
  // The task's timeout ends it: the pool's deadline or the script's own,
  // whichever the coordinator hears first.
  auto code = failed.value("code", "");
  EXPECT_TRUE(code == "limit_exceeded" || code == "timeout") << failed.dump();
}

TEST(Issue12, ToolScriptHonoursTimeoutMs) {
  test::temp_dir tmp;
  json input{{"code", "return " + catastrophic}};
  auto res = run({"tool", "script", "--timeout-ms", "2000", "--input",
                  input.dump()},
                 tmp / "err");
  ASSERT_TRUE(res);
  EXPECT_NE(res->exit_code, -1);
  EXPECT_NE(res->exit_code, 0);
  auto err = test::read_file(tmp / "err");
  EXPECT_NE(err.find("limit_exceeded"), std::string::npos) << err;
  EXPECT_NE(err.find("tool script: /code: time limit exceeded"),
            std::string::npos)
    << err;
}

TEST(Issue12, ASelfReferencingSchemaIsASchemaError) {
  test::temp_dir tmp;
  auto res = run({"tool", "validate", "--input",
                  R"({"schema": {"$ref": "#"}, "instance": 1})"},
                 tmp / "err");
  ASSERT_TRUE(res);
  EXPECT_NE(res->exit_code, -1) << "the process died";
  EXPECT_NE(res->exit_code, 0);
  auto err = test::read_file(tmp / "err");
  EXPECT_NE(err.find("invalid_input"), std::string::npos) << err;
  EXPECT_NE(err.find("/schema/$ref"), std::string::npos) << err;
}

TEST(Issue12, ATaskThatKillsTheNodeIsParkedAfterTheLimit) {
  // The aborts below should not leave core files behind.
  struct rlimit no_core {};
  setrlimit(RLIMIT_CORE, &no_core);
  test::temp_dir tmp;
  std::string db = tmp / "db";
  std::string config = tmp / "cadre.yaml";
  std::ofstream{config} << "tools:\n  chaos:\n    allow_abort: true\n";
  std::string boom = tmp / "boom.yaml";
  std::ofstream{boom} << "name: boom\n"
                         "tasks:\n"
                         "  - {id: first, tool: echo, input: {n: 1}}\n"
                         "  - id: boom\n"
                         "    depends_on: first\n"
                         "    tool: chaos\n"
                         "    input: {mode: abort}\n";
  std::string err = tmp / "err";
  auto first = run({"--config", config, "--db", db, "run", boom}, err, true);
  ASSERT_TRUE(first);
  ASSERT_EQ(first->exit_code, -1)
    << "the run should have died with the task: " << test::read_file(err);

  // Every start dispatches the task again and dies with it, up to the
  // limit; the next start parks it and ends normally.
  int crashed_starts = 0;
  std::optional<test::outcome> parked;
  for (int i = 0; i < crash_loop_limit + 3 && !parked; ++i) {
    auto res = run({"--config", config, "--db", db, "resume"}, err, true);
    ASSERT_TRUE(res);
    if (res->exit_code == -1)
      ++crashed_starts;
    else
      parked = std::move(res);
  }
  ASSERT_TRUE(parked) << "every start crashed: " << test::read_file(err);
  EXPECT_EQ(crashed_starts, crash_loop_limit);

  auto x = only_execution(db);
  ASSERT_TRUE(x);
  EXPECT_EQ(x->first.status, "failed");
  EXPECT_NE(x->first.error.find("task boom"), std::string::npos)
    << x->first.error;
  int redispatched = 0;
  int parked_failures = 0;
  for (const auto& ev : x->second) {
    const auto& p = ev.payload.get();
    if (ev.type == "task_redispatched" && p.value("task", "") == "boom")
      ++redispatched;
    if (ev.type == "task_failed" && p.value("task", "") == "boom") {
      EXPECT_EQ(p.value("code", ""), "crash_loop") << p.dump();
      EXPECT_TRUE(p.value("final", false)) << p.dump();
      EXPECT_NE(p.value("message", "").find("not dispatched again"),
                std::string::npos)
        << p.dump();
      ++parked_failures;
    }
  }
  EXPECT_EQ(redispatched, crash_loop_limit);
  EXPECT_EQ(parked_failures, 1);

  // The node works on that store again.
  std::string fine = tmp / "fine.yaml";
  std::ofstream{fine} << "name: fine\ntasks:\n  - {id: a, tool: echo}\n";
  auto next = run({"--config", config, "--db", db, "run", fine}, err);
  ASSERT_TRUE(next);
  EXPECT_EQ(next->exit_code, 0) << test::read_file(err);
}
