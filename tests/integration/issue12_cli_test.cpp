// Issue 12, small CLI defects: every one of these used to hang, exit 0, exit
// with CLI11's own code, report the wrong thing, or leave files behind.

#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "cadre_process.hpp"
#include "temp_dir.hpp"

using namespace cadre;

namespace {

constexpr std::chrono::seconds command_limit{60};

std::string all_text(const test::outcome& res) {
  std::string out;
  for (const auto& line : res.out)
    out += line + "\n";
  return out + res.err;
}

bool has(const std::string& text, const std::string& part) {
  return text.find(part) != std::string::npos;
}

/// A store with one finished execution.
std::string make_store(const test::temp_dir& tmp) {
  auto wf = tmp / "hello.yaml";
  std::ofstream{wf} << "name: hello\n"
                       "tasks:\n"
                       "  - {id: a, tool: echo, input: {x: 1}}\n";
  auto db = tmp / "db";
  auto res = test::run_to_end({"--db", db, "run", wf}, tmp / "err",
                              command_limit);
  EXPECT_TRUE(res && res->exit_code == 0);
  return db;
}

} // namespace

TEST(Issue12Cli, FollowingAnUnknownExecutionFailsInsteadOfWaiting) {
  test::temp_dir tmp;
  auto db = make_store(tmp);
  auto res = test::run_to_end({"--db", db, "events", "no-such-id", "--follow"},
                              tmp / "err", command_limit);
  ASSERT_TRUE(res) << "still waiting";
  EXPECT_EQ(res->exit_code, 1) << all_text(*res);
  EXPECT_TRUE(has(all_text(*res), "no execution no-such-id")) << all_text(*res);
}

TEST(Issue12Cli, UsageErrorsExitTwo) {
  test::temp_dir tmp;
  auto db = make_store(tmp);
  auto status = test::run_to_end({"--db", db, "executions", "--status",
                                  "bogus"},
                                 tmp / "err", command_limit);
  ASSERT_TRUE(status);
  EXPECT_EQ(status->exit_code, 2) << all_text(*status);
  EXPECT_TRUE(has(all_text(*status), "running, waiting, completed"))
    << all_text(*status);
  auto config = test::run_to_end({"--config", tmp / "missing.yaml",
                                  "executions"},
                                 tmp / "err", command_limit);
  ASSERT_TRUE(config);
  EXPECT_EQ(config->exit_code, 2) << all_text(*config);
  EXPECT_TRUE(has(all_text(*config), "missing.yaml")) << all_text(*config);
}

TEST(Issue12Cli, NumberOutOfRangeIsReportedAsSuchAtItsPlace) {
  test::temp_dir tmp;
  auto wf = tmp / "huge.yaml";
  std::ofstream{wf} << "name: huge\n"
                       "tasks:\n"
                       "  - id: m\n"
                       "    tool: echo\n"
                       "    items: input.list\n"
                       "    concurrency: 1e400\n"
                       "    input: {x: \"{{ item }}\"}\n";
  auto res = test::run_to_end({"validate", wf}, tmp / "err", command_limit);
  ASSERT_TRUE(res);
  EXPECT_EQ(res->exit_code, 2) << all_text(*res);
  auto text = all_text(*res);
  EXPECT_TRUE(has(text, "huge.yaml:6:18")) << text;
  EXPECT_TRUE(has(text, "1e400 is out of range")) << text;
  EXPECT_FALSE(has(text, "got null")) << text;
}

TEST(Issue12Cli, ReaderRemovesSecondaryDirsOfDeadProcesses) {
  test::temp_dir tmp;
  auto db = make_store(tmp);
  auto tmpdir = tmp / "tmpdir";
  std::filesystem::create_directories(tmpdir);
  // A pid that is certainly gone: a child that exited and was reaped.
  pid_t dead = ::fork();
  if (dead == 0)
    ::_exit(0);
  ASSERT_GT(dead, 0);
  ::waitpid(dead, nullptr, 0);
  auto stale = std::filesystem::path{tmpdir}
               / ("cadre-secondary-" + std::to_string(dead) + "-0");
  std::filesystem::create_directories(stale);
  std::ofstream{stale / "LOG"} << "left by a reader killed with SIGKILL\n";
  // One of a live process (this test) stays.
  auto live = std::filesystem::path{tmpdir}
              / ("cadre-secondary-" + std::to_string(::getpid()) + "-0");
  std::filesystem::create_directories(live);
  auto res = test::run_to_end({"--db", db, "executions"}, tmp / "err",
                              command_limit, {"TMPDIR=" + tmpdir});
  ASSERT_TRUE(res);
  EXPECT_EQ(res->exit_code, 0) << all_text(*res);
  EXPECT_FALSE(std::filesystem::exists(stale));
  EXPECT_TRUE(std::filesystem::exists(live));
}

// Under `ulimit -v` the node used to give up on a failed allocation but
// never exit. Now it stops at once with a message and exit code 4, so a
// supervisor restarts it.
TEST(Issue12Cli, FailedAllocationEndsTheProcessWithCodeFour) {
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
  GTEST_SKIP() << "the sanitizer's shadow memory is more address space than "
                  "the limit";
#endif
  test::temp_dir tmp;
  auto wf = tmp / "echo.yaml";
  std::ofstream{wf} << "name: e\n"
                       "tasks:\n"
                       "  - {id: a, tool: echo, input: {x: \"{{ input.x }}\"}}\n";
  // 150 MB of input, copied a few times on its way: more than the limit.
  std::ofstream{tmp / "big.json"}
    << "{\"x\": \"" << std::string(150'000'000, 'a') << "\"}";
  auto cmd = "ulimit -v 700000; exec timeout 120 " + std::string{CADRE_EXE}
             + " --db " + tmp / "db" + " run " + wf + " --input @"
             + tmp / "big.json" + " >/dev/null 2>" + tmp / "err";
  int status = std::system(cmd.c_str());
  ASSERT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 4) << test::read_file(tmp / "err");
  EXPECT_TRUE(has(test::read_file(tmp / "err"), "cadre: out of memory"))
    << test::read_file(tmp / "err");
}
