// Issue 12: hostile workflow text is refused with a located error, never a
// crash, a hang or unbounded memory.

#include <set>
#include <string>

#include <gtest/gtest.h>

#include "cadre/workflow/definition.hpp"
#include "cadre/workflow/machine.hpp"
#include "cadre/workflow/replay.hpp"
#include "finishes.hpp"

using cadre::test::finishes;
using namespace cadre::workflow;

namespace {

validation_context test_context() {
  validation_context ctx;
  ctx.tool_exists = [](const std::string& name) { return name == "echo"; };
  return ctx;
}

/// A workflow whose `input` holds nine levels of nine aliases each: 717
/// bytes that expand to 9^9 strings (a "billion laughs").
std::string alias_bomb() {
  std::string text = "name: bomb\n"
                     "x0: &a0 [lol, lol, lol, lol, lol, lol, lol, lol, lol]\n";
  for (int level = 1; level < 9; ++level) {
    auto prev = "*a" + std::to_string(level - 1);
    text += "x" + std::to_string(level) + ": &a" + std::to_string(level)
            + " [";
    for (int i = 0; i < 9; ++i)
      text += (i ? ", " : "") + prev;
    text += "]\n";
  }
  text += "tasks:\n  - {id: t, tool: echo, input: *a8}\n";
  return text;
}

const diagnostic* find_error(const parse_result& r, const std::string& text) {
  for (const auto& d : r.errors)
    if (d.message.find(text) != std::string::npos)
      return &d;
  return nullptr;
}

} // namespace

TEST(Issue12, YamlAliasBombIsRefusedWithItsPlace) {
  auto text = alias_bomb();
  parse_result r;
  ASSERT_TRUE(finishes(
    [&] { r = parse_text(text, "bomb.yaml", test_context()); }));
  EXPECT_FALSE(r.def);
  auto* d = find_error(r, "values once its aliases are expanded");
  ASSERT_NE(d, nullptr);
  EXPECT_EQ(d->file, "bomb.yaml");
  EXPECT_GT(d->where.line, 0);
  EXPECT_GT(d->where.column, 0);
  EXPECT_EQ(d->to_string().rfind("bomb.yaml:", 0), 0u) << d->to_string();
}

TEST(Issue12, AliasesWithinTheBoundsStillWork) {
  auto r = parse_text("name: ok\n"
                      "defaults: &d {text: hi}\n"
                      "tasks:\n"
                      "  - {id: a, tool: echo, input: *d}\n"
                      "  - {id: b, tool: echo, input: *d}\n",
                      "ok.yaml", test_context());
  // `defaults` is not a workflow key; the aliases themselves are fine.
  ASSERT_EQ(r.errors.size(), 1u);
  EXPECT_EQ(r.errors[0].pointer, "/defaults");
}

TEST(Issue12, DeepYamlNestingIsRefusedWithItsPlace) {
  for (int depth : {600, 100'000}) {
    std::string text = "name: deep\ntasks:\n  - {id: a, tool: echo, input: ";
    text += std::string(depth, '[') + std::string(depth, ']') + "}\n";
    parse_result r;
    ASSERT_TRUE(finishes(
      [&] { r = parse_text(text, "deep.yaml", test_context()); }));
    EXPECT_FALSE(r.def) << depth;
    ASSERT_FALSE(r.errors.empty()) << depth;
    EXPECT_GT(r.errors[0].where.line, 0) << depth;
  }
  // Block style nests through indentation: the reader's bound of 256.
  std::string text = "name: deep\ntasks:\n  - id: a\n    tool: echo\n"
                     "    input:\n";
  for (int level = 0; level < 300; ++level)
    text += std::string(6 + level, ' ') + "k:\n";
  auto r = parse_text(text, "deep.yaml", test_context());
  auto* d = find_error(r, "nested deeper than 256 levels");
  ASSERT_NE(d, nullptr) << (r.errors.empty() ? "" : r.errors[0].message);
  EXPECT_GT(d->where.line, 256);
}

TEST(Issue12, UnsupportedPatternInInputSchemaIsALocatedError) {
  auto r = parse_text("name: p\n"
                      "input_schema:\n"
                      "  type: object\n"
                      "  properties:\n"
                      "    code: {type: string, pattern: \"^(?=A)\"}\n"
                      "tasks:\n"
                      "  - {id: a, tool: echo}\n",
                      "p.yaml", test_context());
  ASSERT_FALSE(r.def);
  auto* d = find_error(r, "lookaround and backreferences are not supported");
  ASSERT_NE(d, nullptr);
  EXPECT_EQ(d->pointer, "/input_schema");
  EXPECT_NE(d->message.find("/properties/code/pattern"), std::string::npos)
    << d->message;
  EXPECT_EQ(d->where.line, 3);
}

TEST(Issue12, TextThatIsNotUtf8IsALocatedError) {
  auto r = parse_text("name: u\n"
                      "tasks:\n"
                      "  - {id: a, tool: echo, input: {text: \"\xc3\x28 "
                      "{{ 1 }}\"}}\n",
                      "u.yaml", test_context());
  ASSERT_FALSE(r.def);
  auto* d = find_error(r, "not valid UTF-8");
  ASSERT_NE(d, nullptr);
  EXPECT_EQ(d->pointer, "/tasks/0/input/text");
  EXPECT_EQ(d->where.line, 3);
  // Over HTTP a workflow arrives as JSON, checked when its body is parsed.
}

namespace {

/// "a" kills the node (as far as the machine knows; its failure lets "b"
/// run), "side" runs beside it and finishes.
cadre::json crash_loop_workflow() {
  return cadre::json{
    {"name", "w"},
    {"tasks",
     {{{"id", "a"}, {"tool", "chaos"}, {"on_failure", "continue"}},
      {{"id", "side"}, {"tool", "echo"}},
      {{"id", "b"}, {"tool", "echo"}, {"depends_on", "a"}}}}};
}

size_t dispatches_of(const step& s, const std::string& key) {
  size_t n = 0;
  for (const auto& a : s.actions)
    n += a.kind == action::dispatch && a.key == key ? 1 : 0;
  return n;
}

} // namespace

// Issue 12: a task whose call kills the process was dispatched again at
// every start, so every start crashed. Each re-dispatch is now recorded,
// and at the limit the attempt is parked (failed for good, crash_loop).
TEST(Issue12, ATaskThatNeverEndsAcrossStartsIsParkedAtTheLimit) {
  machine m{"e1"};
  auto s = m.submit(crash_loop_workflow(), cadre::json::object(), "", 1);
  ASSERT_TRUE(s) << cadre::describe(s.error());
  std::vector<cadre::event> log = s->events;
  // "side" finishes; "a" never does: each start (a fold of the log, then
  // resume) dispatches it again until the limit.
  auto done = m.succeeded("side", 1, cadre::json{{"ok", true}}, 0, 2);
  log.insert(log.end(), done.events.begin(), done.events.end());
  constexpr uint32_t limit = 2;
  for (uint32_t start = 1; start <= limit + 1; ++start) {
    auto folded = fold_log(log);
    ASSERT_TRUE(folded) << cadre::describe(folded.error());
    auto r = folded->resume(10 + start, limit);
    log.insert(log.end(), r.events.begin(), r.events.end());
    if (start <= limit) {
      EXPECT_EQ(dispatches_of(r, "a"), 1u) << "start " << start;
      ASSERT_EQ(r.events.size(), 1u);
      EXPECT_EQ(r.events[0].type, events::redispatched);
      EXPECT_EQ(r.events[0].payload->value("starts", 0), int(start));
      continue;
    }
    // The start past the limit parks "a" and goes on without it.
    EXPECT_EQ(dispatches_of(r, "a"), 0u);
    EXPECT_EQ(dispatches_of(r, "b"), 1u);
    ASSERT_FALSE(r.events.empty());
    const auto& failed = r.events[0];
    EXPECT_EQ(failed.type, events::failed);
    EXPECT_EQ(failed.payload->value("task", ""), "a");
    EXPECT_EQ(failed.payload->value("code", ""), "crash_loop");
    EXPECT_TRUE(failed.payload->value("final", false));
    EXPECT_EQ(folded->unit_state("a"), "failed");
  }
  // The log replays against its definition without a divergence, and a
  // snapshot keeps the count.
  auto check = check_against(log);
  ASSERT_TRUE(check) << cadre::describe(check.error());
  EXPECT_FALSE(check->first) << to_json(*check->first).dump();
}

TEST(Issue12, AnOutcomeOrANewAttemptStartsTheCountAgain) {
  machine m{"e1"};
  auto s = m.submit(crash_loop_workflow(), cadre::json::object(), "", 1);
  ASSERT_TRUE(s);
  auto first = m.resume(2, 1);
  EXPECT_EQ(dispatches_of(first, "a"), 1u);
  // A snapshot taken now restores the count: the next start parks "a".
  auto restored = machine::restore("e1", m.snapshot());
  ASSERT_TRUE(restored) << cadre::describe(restored.error());
  auto parked = restored->resume(3, 1);
  EXPECT_EQ(dispatches_of(parked, "a"), 0u);
  EXPECT_EQ(restored->unit_state("a"), "failed");
  // Without a limit the task is dispatched at every start.
  auto unlimited = m.resume(3, 0);
  EXPECT_EQ(dispatches_of(unlimited, "a"), 1u);
}
