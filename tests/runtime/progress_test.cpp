// The progress printer that `cadre run` shows an execution with, on an
// embedded node and as a client of `cadre serve`.

#include <cstdio>
#include <string>
#include <thread>

#include <gtest/gtest.h>

#include "cadre/runtime/progress.hpp"

using namespace cadre;
using cadre::runtime::progress_printer;
using cadre::runtime::progress_style;

namespace {

event make_event(uint64_t seq, int64_t time_us, std::string type,
                 json payload) {
  return event{"e1", seq, time_us, std::move(type),
               json_value{std::move(payload)}};
}

std::string contents(std::FILE* f) {
  std::fflush(f);
  std::rewind(f);
  std::string out;
  char buf[256];
  while (auto n = std::fread(buf, 1, sizeof buf, f))
    out.append(buf, n);
  return out;
}

TEST(ProgressPrinter, HumanLinesCarryTaskDurations) {
  auto* human = std::tmpfile();
  auto* machine = std::tmpfile();
  ASSERT_TRUE(human && machine);
  {
    progress_printer p{progress_style::human, human, machine};
    p.print(make_event(1, 0, "execution_submitted", {{"workflow", "hello"}}));
    p.print(make_event(2, 1'000, "task_dispatched", {{"task", "greet"}}));
    p.print(make_event(3, 3'500, "task_completed", {{"task", "greet"}}));
    p.print(make_event(4, 4'000, "token", {{"text", "Act"}}));
    p.print(make_event(5, 5'000, "execution_completed", json::object()));
    p.flush();
  }
  EXPECT_EQ(contents(human), "  execution e1 of hello started\n"
                             "▶ greet             started\n"
                             "✓ greet             done  2.5 ms\n"
                             "✓ execution e1 completed\n");
  EXPECT_EQ(contents(machine), "");
  std::fclose(human);
  std::fclose(machine);
}

TEST(ProgressPrinter, JsonIsOneEventPerLine) {
  auto* human = std::tmpfile();
  auto* machine = std::tmpfile();
  ASSERT_TRUE(human && machine);
  {
    progress_printer p{progress_style::json, human, machine};
    p.print(make_event(2, 1'000, "task_dispatched", {{"task", "greet"}}));
    p.flush();
  }
  EXPECT_EQ(contents(machine),
            R"({"execution_id":"e1","payload":{"task":"greet"},"seq":2,)"
            R"("time_us":1000,"type":"task_dispatched"})"
            "\n");
  EXPECT_EQ(contents(human), "");
  std::fclose(human);
  std::fclose(machine);
}

} // namespace

// The CLI prints an execution's result once the sink printed its last
// event: the mark says how far that is, per execution.
TEST(ProgressMark, WaitsForTheSeqOfItsExecution) {
  runtime::progress_mark mark;
  EXPECT_FALSE(mark.wait("e1", 3, std::chrono::milliseconds{1}));
  mark.printed("e2", 9);
  EXPECT_FALSE(mark.wait("e1", 3, std::chrono::milliseconds{1}));
  std::thread sink{[&] { mark.printed("e1", 3); }};
  EXPECT_TRUE(mark.wait("e1", 3, std::chrono::seconds{60}));
  sink.join();
  mark.printed("e1", 2); // never moves back
  EXPECT_TRUE(mark.wait("e1", 3, std::chrono::milliseconds{1}));
}
