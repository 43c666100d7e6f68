#include <chrono>
#include <string>

#include <gtest/gtest.h>

#include "cadre/tools/tool_registry.hpp"
#include "tool_schema_check.hpp"

using namespace cadre;
using namespace cadre::tools;

namespace {

std::unique_ptr<tool> make_script(json settings = nullptr) {
  tool_registry registry;
  register_builtin_tools(registry);
  auto t = registry.create("script", json_value{std::move(settings)});
  if (!t)
    ADD_FAILURE() << describe(t.error());
  return t ? std::move(*t) : nullptr;
}

expected<json_value> run(tool& t, json input) {
  tool_context ctx;
  ctx.execution_id = "e1";
  ctx.task_id = "t1";
  ctx.attempt = 2;
  ctx.idempotency_key = "e1/t1/2";
  return t.invoke(json_value{std::move(input)}, ctx);
}

} // namespace

TEST(ScriptTool, ReturnsTheChunkValueComputedFromArgs) {
  auto script = make_script();
  ASSERT_NE(script, nullptr);
  auto out = run(*script, json{{"code", "return args.x + 1"},
                               {"args", {{"x", 41}}}});
  ASSERT_TRUE(out) << describe(out.error());
  EXPECT_EQ(out->get(), json(42));
}

TEST(ScriptTool, ReturnsTablesAsJson) {
  auto script = make_script();
  ASSERT_NE(script, nullptr);
  auto out = run(*script,
                 json{{"code", "local doubled = {}\n"
                               "for i, v in ipairs(args.items) do\n"
                               "  doubled[i] = v * 2\n"
                               "end\n"
                               "return {name = args.name, doubled = doubled,"
                               " nested = {ok = true}}"},
                      {"args", {{"name", "n"}, {"items", {1, 2, 3}}}}});
  ASSERT_TRUE(out) << describe(out.error());
  EXPECT_EQ(out->get(), (json{{"name", "n"},
                              {"doubled", {2, 4, 6}},
                              {"nested", {{"ok", true}}}}));
}

TEST(ScriptTool, SeesTheTaskContext) {
  auto script = make_script();
  ASSERT_NE(script, nullptr);
  auto out = run(*script, json{{"code", "return {ctx.execution_id, "
                                        "ctx.task_id, ctx.attempt}"}});
  ASSERT_TRUE(out) << describe(out.error());
  EXPECT_EQ(out->get(), (json{"e1", "t1", 2}));
}

TEST(ScriptTool, ChunkWithoutReturnGivesNull) {
  auto script = make_script();
  ASSERT_NE(script, nullptr);
  auto out = run(*script, json{{"code", "local x = 1"}});
  ASSERT_TRUE(out) << describe(out.error());
  EXPECT_TRUE(out->is_null());
}

TEST(ScriptTool, LuaErrorsAreScriptErrorsNamingTheCode) {
  auto script = make_script();
  ASSERT_NE(script, nullptr);
  for (auto code : {"error('boom')", "return (", "return nil + 1",
                    "return os.exit(1)", "return io.open('/etc/passwd')",
                    "return require('os')"}) {
    auto out = run(*script, json{{"code", code}});
    ASSERT_FALSE(out) << code;
    EXPECT_EQ(code_of(out.error()), errc::script_error) << code;
    auto msg = message_of(out.error());
    EXPECT_EQ(msg.rfind("tool script: /code: ", 0), 0u) << msg;
  }
  auto out = run(*script, json{{"code", "error('boom')"}});
  ASSERT_FALSE(out);
  EXPECT_NE(message_of(out.error()).find("boom"), std::string::npos);
}

TEST(ScriptTool, InstructionLimitStopsEndlessLoops) {
  auto script = make_script(json{{"instruction_limit", 10'000}});
  ASSERT_NE(script, nullptr);
  auto out = run(*script, json{{"code", "while true do end"}});
  ASSERT_FALSE(out);
  EXPECT_EQ(code_of(out.error()), errc::limit_exceeded);
  // The sandbox stays usable after a limit was hit.
  auto next = run(*script, json{{"code", "return 1"}});
  ASSERT_TRUE(next) << describe(next.error());
  EXPECT_EQ(next->get(), json(1));
}

// A call may take its whole time limit, so it never runs on a scheduler
// thread (issue 12: as many such calls as cores stalled the node).
TEST(ScriptTool, AlwaysRunsOffTheScheduler) {
  auto script = make_script();
  ASSERT_NE(script, nullptr);
  EXPECT_TRUE(script->blocking());
}

// Issue 12: a backtracking pattern ignored the call's timeout.
TEST(ScriptTool, BacktrackingPatternEndsAtTheCallDeadline) {
  auto script = make_script(json{{"time_limit", "1h"}});
  ASSERT_NE(script, nullptr);
  tool_context ctx;
  ctx.deadline_us = std::chrono::duration_cast<std::chrono::microseconds>(
                      std::chrono::system_clock::now().time_since_epoch())
                      .count()
                    + 100'000;
  auto out = script->invoke(
    json_value{json{{"code", "return string.find(string.rep('a', 2000), "
                             "string.rep('.-', 6) .. 'b')"}}},
    ctx);
  ASSERT_FALSE(out);
  EXPECT_EQ(code_of(out.error()), errc::limit_exceeded);
  auto msg = message_of(out.error());
  EXPECT_NE(msg.find("tool script: /code: time limit exceeded"),
            std::string::npos)
    << msg;
}

TEST(ScriptTool, TimeLimitSettingBoundsACall) {
  auto script = make_script(json{{"time_limit", "100ms"}});
  ASSERT_NE(script, nullptr);
  auto out = run(*script, json{{"code", "return string.find(string.rep('a', "
                                        "2000), string.rep('.-', 6) .. 'b')"}});
  ASSERT_FALSE(out);
  EXPECT_EQ(code_of(out.error()), errc::limit_exceeded);
  EXPECT_NE(message_of(out.error()).find("time limit exceeded (100 ms)"),
            std::string::npos)
    << message_of(out.error());
  auto bad = [] {
    tool_registry registry;
    register_builtin_tools(registry);
    return registry.create("script", json_value{json{{"time_limit", "soon"}}});
  }();
  ASSERT_FALSE(bad);
  EXPECT_NE(message_of(bad.error()).find("time_limit"), std::string::npos)
    << message_of(bad.error());
}

// Issue 13 item 7: the input is checked by the published schema (empty
// code was allowed by the tool and refused by the schema).
TEST(ScriptTool, BadInputIsRefusedByTheSchemaNamingThePointer) {
  auto script = make_script();
  ASSERT_NE(script, nullptr);
  test::expect_refused_by_schema(*script, {
    {json::object(), "/"},
    {json{{"code", 12}}, "/code"},
    {json{{"code", ""}}, "/code"},
    {json{{"code", "return 1"}, {"arg", 1}}, "/"},
    {json("return 1"), "/"},
  });
  test::expect_accepted_by_both(*script, {json{{"code", "return 1"}},
                                          json{{"code", "return args"},
                                               {"args", {1, 2}}}});
}

TEST(ScriptTool, DescribesCodeAsRequired) {
  auto script = make_script();
  ASSERT_NE(script, nullptr);
  auto d = script->describe();
  EXPECT_EQ(d.name, "script");
  EXPECT_EQ(d.input_schema["required"], json::array({"code"}));
  EXPECT_EQ(d.input_schema["properties"]["code"]["type"], "string");
}

namespace {

/// The example of docs/tools.md: fields of an invoice from OCR text.
constexpr const char* invoice_code = R"lua(
local text = args.text
local lines = text:lines()

-- The rest of the first line that starts with `label:`, trimmed.
local function field(label)
  for _, line in ipairs(lines) do
    local value = line:match("^%s*" .. label .. "%s*:%s*(.-)%s*$")
    if value then return value end
  end
end

local total = field("Total")
local issued = field("Date")
-- A nil value would drop its key: json.null keeps it as null.
return {
  vendor = lines[1]:trim(),
  number = field("Invoice No") or json.null,
  date = issued and date.parse(issued) or json.null,
  total = total and number.parse(total) or json.null,
}
)lua";

} // namespace

TEST(ScriptTool, ParsesAnInvoiceFromOcrText) {
  auto script = make_script();
  ASSERT_NE(script, nullptr);
  auto out = run(*script,
                 json{{"code", invoice_code},
                      {"args",
                       {{"text", "ACME Supplies Ltd.\n"
                                 "Invoice No: INV-2024-0042\n"
                                 "Date: March 15, 2024\n"
                                 "Widget A   2 x $100.00\n"
                                 "Total: $1,234.50\n"}}}});
  ASSERT_TRUE(out) << describe(out.error());
  EXPECT_EQ(out->get(), (json{{"vendor", "ACME Supplies Ltd."},
                              {"number", "INV-2024-0042"},
                              {"date", "2024-03-15"},
                              {"total", 1234.5}}));
  // A field missing from the text is null, not an error.
  out = run(*script, json{{"code", invoice_code},
                          {"args", {{"text", "Scan\nDate: 15/03/2024"}}}});
  ASSERT_TRUE(out) << describe(out.error());
  EXPECT_EQ(out->get(), (json{{"vendor", "Scan"},
                              {"number", nullptr},
                              {"date", "2024-03-15"},
                              {"total", nullptr}}));
}

TEST(ScriptTool, LibraryErrorsNameTheScriptLine) {
  auto script = make_script();
  ASSERT_NE(script, nullptr);
  auto out = run(*script, json{{"code", "local s = args\n"
                                        "local v = json.decode(s)\n"
                                        "return v"},
                               {"args", "{\"a\": }"}});
  ASSERT_FALSE(out);
  EXPECT_EQ(code_of(out.error()), errc::script_error);
  EXPECT_EQ(message_of(out.error()),
            "tool script: /code: script:2: json.decode: unexpected "
            "character '}' at line 1, column 7 (byte 7)");
  out = run(*script, json{{"code", "local d = date.add_days(args, 1)"},
                          {"args", "15/03/2024"}});
  ASSERT_FALSE(out);
  EXPECT_EQ(message_of(out.error()),
            "tool script: /code: script:1: date.add_days: '15/03/2024' is "
            "not a date (YYYY-MM-DD)");
}

TEST(ScriptTool, TodayComesInAsInputAndTheResultIsDeterministic) {
  auto script = make_script();
  ASSERT_NE(script, nullptr);
  json input = {{"code", "return {days_left = date.diff_days(args.today, "
                         "args.due), weekday = date.format(args.due, '%A'), "
                         "amounts = table.map(args.amounts, function(a) "
                         "return number.parse(a) end)}"},
                {"args",
                 {{"today", "2024-03-01"},
                  {"due", "2024-03-15"},
                  {"amounts", {"$1,234.50", "€ 99", "n/a"}}}}};
  auto first = run(*script, input);
  ASSERT_TRUE(first) << describe(first.error());
  EXPECT_EQ(first->get(), (json{{"days_left", 14},
                                {"weekday", "Friday"},
                                {"amounts", {1234.5, 99, nullptr}}}));
  auto other = make_script();
  ASSERT_NE(other, nullptr);
  for (int i = 0; i < 3; ++i) {
    auto again = run(i % 2 == 0 ? *script : *other, input);
    ASSERT_TRUE(again) << describe(again.error());
    EXPECT_EQ(again->get(), first->get());
  }
}

TEST(ScriptTool, SandboxEscapesAreStillRefused) {
  auto script = make_script();
  ASSERT_NE(script, nullptr);
  for (auto code :
       {"return load('return 1')()", "return string.dump(print)",
        "return require('io')", "return dofile('/etc/passwd')",
        "return os.time()", "return io.read()", "return debug.getinfo(1)",
        "return collectgarbage('count')", "date.now = function() end",
        "string.split = nil",
        "return getmetatable('').__index.split"}) {
    auto out = run(*script, json{{"code", code}});
    ASSERT_FALSE(out) << code;
    EXPECT_EQ(code_of(out.error()), errc::script_error) << code;
  }
}
