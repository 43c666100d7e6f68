// The progress printer that `cadre run` shows an execution with, on an
// embedded node and as a client of `cadre serve`.

#include <cstdio>
#include <string>
#include <vector>
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

event token(const std::string& agent_id, int call, const std::string& text,
            const std::string& task = "ask") {
  return event{"e1", 0, 0, "agent_token",
               json_value{json{{"agent", "researcher"},
                               {"agent_id", agent_id},
                               {"task", task},
                               {"call", call},
                               {"text", text}}}};
}

// Issue 13: a terminal shows what each agent is saying as its model streams.
TEST(TokenView, OneLinePerAgentWithItsTextSoFar) {
  runtime::token_view view;
  EXPECT_TRUE(view.add(token("e1/a", 1, "The weather")));
  EXPECT_TRUE(view.add(token("e1/b", 1, "Looking", "other")));
  EXPECT_TRUE(view.add(token("e1/a", 1, " in Paris\nis mild")));
  EXPECT_EQ(view.lines(80),
            (std::vector<std::string>{
              "  … researcher: The weather in Paris is mild",
              "  … researcher: Looking"}));
}

TEST(TokenView, LongTextKeepsItsNewestPartWithinTheWidth) {
  runtime::token_view view;
  view.add(token("e1/a", 1, "0123456789abcdefghij"));
  auto lines = view.lines(26);
  ASSERT_EQ(lines.size(), 1u);
  // "  … researcher: " is 16 characters; 10 are left.
  EXPECT_EQ(lines[0], "  … researcher: …bcdefghij");
}

TEST(TokenView, ControlCharactersFromTheModelNeverReachTheTerminal) {
  runtime::token_view view;
  view.add(token("e1/a", 1, "red\x1b[31m\tbell\a"));
  auto line = view.lines(80).at(0);
  EXPECT_EQ(line.find('\x1b'), std::string::npos) << line;
  EXPECT_EQ(line.find('\a'), std::string::npos) << line;
}

TEST(TokenView, ANewCallStartsOverAndTheReplyOrTaskEndEndsTheLine) {
  runtime::token_view view;
  view.add(token("e1/a", 1, "first"));
  view.add(token("e1/a", 2, "second"));
  EXPECT_EQ(view.lines(80),
            (std::vector<std::string>{"  … researcher: second"}));
  EXPECT_FALSE(view.add(make_event(5, 0, "task_completed", {{"task", "x"}})));
  EXPECT_TRUE(view.add(event{"agent:e1/a", 3, 0, "llm_responded",
                             json_value{json::object()}}));
  EXPECT_TRUE(view.empty());
  view.add(token("e1/a", 3, "third"));
  EXPECT_TRUE(view.add(make_event(6, 0, "task_failed", {{"task", "ask"}})));
  EXPECT_TRUE(view.empty());
  // A token of an ended call that arrives late draws no line again.
  EXPECT_FALSE(view.add(token("e1/a", 3, " late")));
  EXPECT_TRUE(view.empty());
}

// On a terminal the streaming lines sit below the task lines and are
// redrawn in place; a task line clears them first.
TEST(ProgressPrinter, StreamingTextIsRedrawnBelowTheTaskLines) {
  auto* human = std::tmpfile();
  ASSERT_TRUE(human);
  {
    progress_printer p{progress_style::human, human, stdout, 40};
    p.print(token("e1/a", 1, "Hi"));
    p.print(token("e1/a", 1, " there"));
    p.print(make_event(2, 1'000, "task_dispatched", {{"task", "next"}}));
  }
  EXPECT_EQ(contents(human), "  … researcher: Hi"
                             "\r\x1b[J  … researcher: Hi there"
                             "\r\x1b[J▶ next              started\n"
                             "  … researcher: Hi there"
                             "\r\x1b[J");
  std::fclose(human);
}

TEST(ProgressPrinter, WithoutATerminalStreamingTextIsNotShown) {
  auto* human = std::tmpfile();
  ASSERT_TRUE(human);
  {
    progress_printer p{progress_style::human, human, stdout};
    p.print(token("e1/a", 1, "Hi"));
  }
  EXPECT_EQ(contents(human), "");
  std::fclose(human);
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
