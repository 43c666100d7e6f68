#include "cadre/lang/lua_sandbox.hpp"

#include <atomic>
#include <chrono>
#include <string>
#include <utility>
#include <vector>

#include <gtest/gtest.h>

using cadre::errc;
using cadre::json;
using cadre::tools::lua_sandbox;
using cadre::tools::sandbox_options;

namespace {

std::unique_ptr<lua_sandbox> make_sandbox(sandbox_options opts = {}) {
  auto sb = lua_sandbox::create(opts);
  EXPECT_TRUE(sb) << cadre::describe(sb.error());
  return std::move(*sb);
}

json eval_ok(lua_sandbox& sb, const std::string& expr, const json& env = {}) {
  auto v = sb.eval(expr, env);
  EXPECT_TRUE(v) << expr << ": " << cadre::describe(v.error());
  return v ? *v : json("<error>");
}

std::string eval_error(lua_sandbox& sb, const std::string& expr,
                       const json& env = {}, errc want = errc::script_error) {
  auto v = sb.eval(expr, env);
  EXPECT_FALSE(v) << expr << " gave " << (v ? v->dump() : "");
  if (v)
    return {};
  EXPECT_EQ(cadre::code_of(v.error()), want) << expr;
  return cadre::message_of(v.error());
}

std::string run_error(lua_sandbox& sb, const std::string& code,
                      const json& env = {}, errc want = errc::script_error) {
  auto v = sb.run(code, env);
  EXPECT_FALSE(v) << code << " gave " << (v ? v->dump() : "");
  if (v)
    return {};
  EXPECT_EQ(cadre::code_of(v.error()), want) << code;
  return cadre::message_of(v.error());
}

} // namespace

TEST(LuaSandbox, EvaluatesArithmetic) {
  auto sb = make_sandbox();
  EXPECT_EQ(eval_ok(*sb, "1 + 2 * 3"), json(7));
  EXPECT_EQ(eval_ok(*sb, "7 // 2"), json(3));
  EXPECT_EQ(eval_ok(*sb, "7 / 2"), json(3.5));
  EXPECT_EQ(eval_ok(*sb, "'a' .. 'b'"), json("ab"));
  EXPECT_EQ(eval_ok(*sb, "2 > 1 and 'yes' or 'no'"), json("yes"));
  EXPECT_EQ(eval_ok(*sb, "math.max(3, 9, 4)"), json(9));
  EXPECT_EQ(eval_ok(*sb, "string.upper('abc')"), json("ABC"));
  EXPECT_EQ(eval_ok(*sb, "('x'):rep(3)"), json("xxx"));
  EXPECT_EQ(eval_ok(*sb, "nil"), json(nullptr));
}

TEST(LuaSandbox, IntegersStayIntegers) {
  auto sb = make_sandbox();
  auto v = eval_ok(*sb, "input.n", {{"input", {{"n", 42}}}});
  EXPECT_TRUE(v.is_number_integer());
  EXPECT_EQ(v, json(42));
  auto f = eval_ok(*sb, "input.x", {{"input", {{"x", 1.5}}}});
  EXPECT_TRUE(f.is_number_float());
}

TEST(LuaSandbox, SeesInputTasksAndItem) {
  auto sb = make_sandbox();
  json env = {
    {"input", {{"name", "ada"}, {"n", 2}}},
    {"tasks", {{"fetch", {{"output", {{"size", 10}}}}}}},
    {"item", "x"},
    {"index", 3},
  };
  EXPECT_EQ(eval_ok(*sb, "input.name", env), json("ada"));
  EXPECT_EQ(eval_ok(*sb, "tasks.fetch.output.size * input.n", env), json(20));
  EXPECT_EQ(eval_ok(*sb, "item .. index", env), json("x3"));
}

TEST(LuaSandbox, ArraysAreOneBased) {
  auto sb = make_sandbox();
  json env = {{"input", {{"list", {10, 20, 30}}}}};
  EXPECT_EQ(eval_ok(*sb, "input.list[1]", env), json(10));
  EXPECT_EQ(eval_ok(*sb, "#input.list", env), json(3));
  EXPECT_EQ(eval_ok(*sb, "{input.list[3], input.list[1]}", env),
            json({30, 10}));
  EXPECT_EQ(eval_ok(*sb, "input.list", env), json({10, 20, 30}));
}

TEST(LuaSandbox, TablesMapBackToArraysAndObjects) {
  auto sb = make_sandbox();
  EXPECT_EQ(eval_ok(*sb, "{}"), json::object());
  EXPECT_EQ(eval_ok(*sb, "{a = 1, b = {true, false}}"),
            json({{"a", 1}, {"b", {true, false}}}));
  // Not exactly 1..n: an object with the keys as text.
  EXPECT_EQ(eval_ok(*sb, "{[1] = 'a', [3] = 'c'}"),
            json({{"1", "a"}, {"3", "c"}}));
}

TEST(LuaSandbox, NullRoundTrips) {
  auto sb = make_sandbox();
  json env = {{"input", {{"v", nullptr}, {"list", {1, nullptr, 3}}}}};
  EXPECT_EQ(eval_ok(*sb, "input.v", env), json(nullptr));
  EXPECT_EQ(eval_ok(*sb, "input.v == json.null", env), json(true));
  EXPECT_EQ(eval_ok(*sb, "input.list", env), json({1, nullptr, 3}));
  EXPECT_EQ(eval_ok(*sb, "{x = json.null}"), json({{"x", nullptr}}));
}

TEST(LuaSandbox, UnsafeFunctionsAreAbsent) {
  auto sb = make_sandbox();
  for (const char* name :
       {"os", "io", "require", "load", "loadfile", "dofile", "debug",
        "package", "collectgarbage", "print", "string.dump", "math.random",
        "math.randomseed"})
    EXPECT_EQ(eval_ok(*sb, std::string{name} + " == nil"), json(true))
      << name;
  EXPECT_EQ(eval_ok(*sb, "getmetatable('')"), json(false));
}

TEST(LuaSandbox, SharedTablesAreReadOnly) {
  auto sb = make_sandbox();
  EXPECT_NE(run_error(*sb, "string.upper = nil").find("read-only"),
            std::string::npos);
  EXPECT_NE(run_error(*sb, "rawset(math, 'pi', 3)").find("read-only"),
            std::string::npos);
  // A global set by one evaluation is gone in the next.
  auto v = sb->run("leak = 1 return leak", {});
  ASSERT_TRUE(v);
  EXPECT_EQ(*v, json(1));
  EXPECT_EQ(eval_ok(*sb, "leak"), json(nullptr));
}

TEST(LuaSandbox, GcMetamethodsAreRefused) {
  auto sb = make_sandbox();
  EXPECT_NE(run_error(*sb, "setmetatable({}, {__gc = function() end})")
              .find("__gc"),
            std::string::npos);
}

TEST(LuaSandbox, PairsVisitsKeysInOrder) {
  auto sb = make_sandbox();
  auto v = sb->run(
    "local out = {} "
    "for k, v in pairs(args) do out[#out + 1] = k end "
    "return table.concat(out, ',')",
    {{"args", {{"zeta", 1}, {"alpha", 2}, {"mid", 3}, {"beta", 4}}}});
  ASSERT_TRUE(v) << cadre::describe(v.error());
  EXPECT_EQ(*v, json("alpha,beta,mid,zeta"));
}

TEST(LuaSandbox, InfiniteLoopHitsInstructionLimit) {
  auto sb = make_sandbox({.instruction_limit = 100'000});
  auto msg = run_error(*sb, "while true do end", {}, errc::limit_exceeded);
  EXPECT_NE(msg.find("instruction limit exceeded"), std::string::npos) << msg;
  // A pcall in the script does not swallow the limit.
  msg = run_error(*sb,
                  "while true do pcall(function() while true do end end) "
                  "end",
                  {}, errc::limit_exceeded);
  EXPECT_NE(msg.find("instruction limit exceeded"), std::string::npos) << msg;
  // The sandbox stays usable.
  EXPECT_EQ(eval_ok(*sb, "1 + 1"), json(2));
}

TEST(LuaSandbox, MemoryBombHitsMemoryLimit) {
  auto sb = make_sandbox({.memory_limit = 4u << 20});
  auto msg = run_error(*sb, "local s = 'x' while true do s = s .. s end", {},
                       errc::limit_exceeded);
  EXPECT_NE(msg.find("memory limit exceeded"), std::string::npos) << msg;
  msg = eval_error(*sb, "string.rep('x', 64 * 1024 * 1024)", {},
                   errc::limit_exceeded);
  EXPECT_NE(msg.find("memory limit exceeded"), std::string::npos) << msg;
  EXPECT_EQ(eval_ok(*sb, "#string.rep('x', 1000)"), json(1000));
}

TEST(LuaSandbox, SyntaxErrorCarriesLuaMessage) {
  auto sb = make_sandbox();
  auto msg = eval_error(*sb, "input.x +");
  EXPECT_NE(msg.find("unexpected symbol near ')'"), std::string::npos) << msg;
  auto checked = sb->check_expression("input.x +");
  ASSERT_FALSE(checked);
  EXPECT_NE(cadre::message_of(checked.error()).find("unexpected symbol"),
            std::string::npos);
  EXPECT_TRUE(sb->check_expression("input.x + 1"));
  EXPECT_TRUE(sb->check_expression("input.x -- a comment"));
  EXPECT_FALSE(sb->check_expression("x = 1"));
  EXPECT_TRUE(sb->check_chunk("local x = 1 return x"));
  EXPECT_FALSE(sb->check_chunk("local = 1"));
}

TEST(LuaSandbox, ACompileOnlySandboxChecksAsAFullOneAndRefusesToEvaluate) {
  // The validator's sandbox: it must accept and refuse exactly what a
  // full one does, with the same messages.
  sandbox_options opts;
  opts.compile_only = true;
  auto only = make_sandbox(opts);
  auto full = make_sandbox();
  for (std::string expr :
       {"input.x + 1", "input.x +", "x = 1", "string.upper(input.s)",
        "tasks.a.output.items[1]", "(", "'unterminated", "a --[[ b"}) {
    auto x = only->check_expression(expr);
    auto y = full->check_expression(expr);
    ASSERT_EQ(bool(x), bool(y)) << expr;
    if (!x) {
      EXPECT_EQ(cadre::message_of(x.error()), cadre::message_of(y.error()));
    }
  }
  for (std::string code : {"local x = 1 return x", "local = 1"}) {
    auto x = only->check_chunk(code);
    ASSERT_EQ(bool(x), bool(full->check_chunk(code))) << code;
  }
  eval_error(*only, "1 + 1", {}, errc::invalid_config);
  run_error(*only, "return 1", {}, errc::invalid_config);
  auto rendered = only->render(json{{"a", "{{ 1 }}"}}, json::object());
  ASSERT_FALSE(rendered);
  EXPECT_EQ(cadre::code_of(rendered.error()), errc::invalid_config);
}

TEST(LuaSandbox, RuntimeErrorCarriesLuaMessage) {
  auto sb = make_sandbox();
  auto msg = eval_error(*sb, "nothing.field");
  EXPECT_NE(msg.find("attempt to index a nil value"), std::string::npos)
    << msg;
  msg = run_error(*sb, "error('boom')");
  EXPECT_NE(msg.find("boom"), std::string::npos) << msg;
}

TEST(LuaSandbox, ValuesWithoutJsonFormAreErrors) {
  auto sb = make_sandbox();
  auto msg = eval_error(*sb, "{a = {type}}");
  EXPECT_NE(msg.find("has no JSON form"), std::string::npos) << msg;
  msg = eval_error(*sb, "{a = {function() end}}");
  EXPECT_NE(msg.find("/a/0"), std::string::npos) << msg;
  EXPECT_NE(msg.find("function"), std::string::npos) << msg;
  msg = eval_error(*sb, "1/0");
  EXPECT_NE(msg.find("not finite"), std::string::npos) << msg;
}

TEST(LuaSandbox, RunReturnsNullWhenNothingIsReturned) {
  auto sb = make_sandbox();
  auto v = sb->run("local x = args.a", {{"args", {{"a", 1}}}});
  ASSERT_TRUE(v);
  EXPECT_EQ(*v, json(nullptr));
  v = sb->run("return args.a + 1", {{"args", {{"a", 1}}}});
  ASSERT_TRUE(v);
  EXPECT_EQ(*v, json(2));
}

TEST(LuaSandbox, ManyEvaluationsReuseTheState) {
  auto sb = make_sandbox({.memory_limit = 2u << 20});
  for (int i = 0; i < 2000; ++i) {
    json env = {{"input", {{"i", i}, {"pad", std::string(200, 'p')}}}};
    auto v = sb->eval("input.i * 2 + " + std::to_string(i % 700), env);
    ASSERT_TRUE(v) << cadre::describe(v.error());
    ASSERT_EQ(*v, json(i * 2 + i % 700));
  }
}

TEST(RenderTemplate, WholeStringKeepsType) {
  auto sb = make_sandbox();
  json env = {{"input", {{"n", 3}, {"list", {1, 2}}, {"ok", true}}}};
  json tmpl = {{"n", "{{ input.n }}"},
               {"list", "{{input.list}}"},
               {"ok", "{{ input.ok }}"},
               {"none", "{{ input.missing }}"},
               {"plain", "no braces"},
               {"num", 5}};
  auto v = cadre::tools::render_template(*sb, tmpl, env);
  ASSERT_TRUE(v) << cadre::describe(v.error());
  EXPECT_EQ(*v, json({{"n", 3},
                      {"list", {1, 2}},
                      {"ok", true},
                      {"none", nullptr},
                      {"plain", "no braces"},
                      {"num", 5}}));
}

TEST(RenderTemplate, InterpolationStringifies) {
  auto sb = make_sandbox();
  json env = {{"input", {{"name", "ada"}, {"n", 3}, {"x", 1.5}}}};
  json tmpl = json::array({"hello {{ input.name }}!",
                           "n={{ input.n }}, x={{ input.x }}",
                           "{{ input.missing }} and {{ true }}",
                           "list: {{ {1, 2} }}"});
  auto v = cadre::tools::render_template(*sb, tmpl, env);
  ASSERT_TRUE(v) << cadre::describe(v.error());
  EXPECT_EQ(*v, json({"hello ada!", "n=3, x=1.5", "null and true",
                      "list: [1,2]"}));
}

TEST(RenderTemplate, ErrorNamesPointer) {
  auto sb = make_sandbox();
  json tmpl = {{"a", {{"b", json::array({"ok", "{{ nothing.x }}"})}}}};
  auto v = cadre::tools::render_template(*sb, tmpl, json::object());
  ASSERT_FALSE(v);
  auto msg = cadre::message_of(v.error());
  EXPECT_NE(msg.find("/a/b/1"), std::string::npos) << msg;
  EXPECT_NE(msg.find("attempt to index a nil value"), std::string::npos)
    << msg;
  v = cadre::tools::render_template(*sb, json{{"u", "x {{ 1 "}}, {});
  ASSERT_FALSE(v);
  EXPECT_NE(cadre::message_of(v.error()).find("/u"), std::string::npos);
}

TEST(RenderTemplate, VisitsEveryExpressionWithPointer) {
  json tmpl = {{"a", "{{ input.x }}"},
               {"b", json::array({"x {{ tasks.t.output }} y {{ 1 }}"})},
               {"c", 3}};
  std::vector<std::pair<std::string, std::string>> seen;
  cadre::tools::for_each_template_expression(
    tmpl, [&](const std::string& ptr, const std::string& expr) {
      seen.emplace_back(ptr, expr);
    });
  std::vector<std::pair<std::string, std::string>> want = {
    {"/a", "input.x"}, {"/b/0", "tasks.t.output"}, {"/b/0", "1"}};
  EXPECT_EQ(seen, want);
}

TEST(LuaSandbox, IsDeterministicAcrossSandboxes) {
  auto a = make_sandbox();
  auto b = make_sandbox();
  json env = {{"args", {{"k3", 1}, {"k1", 2}, {"k2", 3}}}};
  std::string code = "local s = '' for k, v in pairs(args) do "
                     "s = s .. k .. '=' .. v .. ';' end return s";
  auto x = a->run(code, env);
  auto y = b->run(code, env);
  ASSERT_TRUE(x && y);
  EXPECT_EQ(*x, *y);
  EXPECT_EQ(*x, json("k1=2;k2=3;k3=1;"));
}

TEST(LuaSandbox, DeepRecursionIsAnError) {
  auto sb = make_sandbox();
  // The Lua stack outgrows the memory limit first.
  auto msg = run_error(*sb, "local function f(n) return f(n + 1) + 1 end "
                            "return f(1)",
                       {}, errc::limit_exceeded);
  EXPECT_NE(msg.find("memory limit exceeded"), std::string::npos) << msg;
  msg = run_error(*sb, "error({code = 1})");
  EXPECT_NE(msg.find("table value"), std::string::npos) << msg;
  EXPECT_EQ(eval_ok(*sb, "2 + 2"), json(4));
}

TEST(LuaSandbox, RejectsGlobalsThatAreNotAnObject) {
  auto sb = make_sandbox();
  auto v = sb->eval("1", json::array({1}));
  ASSERT_FALSE(v);
  EXPECT_EQ(cadre::code_of(v.error()), errc::script_error);
  EXPECT_EQ(eval_ok(*sb, "1", nullptr), json(1));
}

TEST(LuaSandbox, EmptyArraysAndObjectsKeepTheirKind) {
  auto sb = make_sandbox();
  json env = {{"input", {{"list", json::array()}, {"obj", json::object()},
                         {"nested", {{"a", json::array()}}}}}};
  EXPECT_EQ(eval_ok(*sb, "input.list", env), json::array());
  EXPECT_EQ(eval_ok(*sb, "input.obj", env), json::object());
  EXPECT_EQ(eval_ok(*sb, "input", env), env["input"]);
  // An object whose keys happen to be 1..n stays an object.
  auto v = sb->run("args[1] = 'x' return args",
                   {{"args", json::object()}});
  ASSERT_TRUE(v) << cadre::describe(v.error());
  EXPECT_EQ(*v, json({{"1", "x"}}));
  // Tables made by the script follow the 1..n rule, unless marked.
  EXPECT_EQ(eval_ok(*sb, "{}"), json::object());
  EXPECT_EQ(eval_ok(*sb, "json.array()"), json::array());
  EXPECT_EQ(eval_ok(*sb, "json.object({'a'})"), json({{"1", "a"}}));
}

// Issue 12: Lua's pattern matcher runs inside one VM instruction, where the
// instruction hook does not run; a backtracking pattern kept a node busy for
// hours. Each pattern function now ends at the time limit.
TEST(LuaSandbox, BacktrackingPatternsEndAtTheTimeLimit) {
  auto sb = make_sandbox({.time_limit = std::chrono::milliseconds{100}});
  const std::string subject = "string.rep('a', 2000)";
  const std::string pattern = "string.rep('.-', 6) .. 'b'";
  const std::string runs[] = {
    "return string.find(" + subject + ", " + pattern + ")",
    "return string.match(" + subject + ", " + pattern + ")",
    "for m in string.gmatch(" + subject + ", " + pattern + ") do end",
    "return string.gsub(" + subject + ", " + pattern + ", 'x')",
    "local s = " + subject + " return s:find(" + pattern + ")",
    // cadre's library calls the same matcher.
    "return string.match_all(" + subject + ", " + pattern + ")",
    // A pcall does not swallow the limit.
    "while true do pcall(string.find, " + subject + ", " + pattern
      + ") end",
    "pcall(string.find, " + subject + ", " + pattern + ") return 1",
  };
  for (const auto& code : runs) {
    auto msg = run_error(*sb, code, {}, errc::limit_exceeded);
    EXPECT_NE(msg.find("time limit exceeded (100 ms)"), std::string::npos)
      << code << ": " << msg;
  }
  // A plain search over a large text is bounded too.
  auto msg = run_error(*sb,
                       "local s = string.rep('a', 1 << 22) "
                       "local p = string.rep('a', 1 << 21) .. 'b' "
                       "while true do string.find(s, p, 1, true) end",
                       {}, errc::limit_exceeded);
  EXPECT_NE(msg.find("time limit exceeded"), std::string::npos) << msg;
  // Conditions and template expressions (eval) end the same way.
  msg = eval_error(*sb, "string.find(" + subject + ", " + pattern + ")", {},
                   errc::limit_exceeded);
  EXPECT_NE(msg.find("time limit exceeded"), std::string::npos) << msg;
  // The sandbox stays usable, and ordinary patterns still work.
  EXPECT_EQ(eval_ok(*sb, "string.find('hello world', 'o w')"), json(5));
  EXPECT_EQ(eval_ok(*sb, "('key=value'):match('(%w+)=(%w+)')"), json("key"));
  EXPECT_EQ(eval_ok(*sb, "select(2, string.gsub('a b c', '%s', ''))"),
            json(2));
}

TEST(LuaSandbox, TemplatesEndAtTheTimeLimitNamingTheString) {
  auto sb = make_sandbox({.time_limit = std::chrono::milliseconds{100}});
  auto v = sb->render(
    json{{"url", "{{ string.find(string.rep('a', 2000), "
                 "string.rep('.-', 6) .. 'b') }}"}},
    json::object());
  ASSERT_FALSE(v);
  EXPECT_EQ(cadre::code_of(v.error()), errc::limit_exceeded);
  auto msg = cadre::message_of(v.error());
  EXPECT_NE(msg.find("template /url: "), std::string::npos) << msg;
  EXPECT_NE(msg.find("time limit exceeded"), std::string::npos) << msg;
}

TEST(LuaSandbox, CallBoundsEndAnEvaluationEarly) {
  auto sb = make_sandbox({.time_limit = std::chrono::hours{1}});
  // A deadline earlier than the time limit (e.g. the task's).
  cadre::tools::call_bounds soon;
  soon.deadline = std::chrono::steady_clock::now()
                  + std::chrono::milliseconds{50};
  auto v = sb->run("while true do end", json::object(), soon);
  ASSERT_FALSE(v);
  EXPECT_EQ(cadre::code_of(v.error()), errc::limit_exceeded);
  // A deadline that has passed also stops the pattern matcher.
  cadre::tools::call_bounds past;
  past.deadline = std::chrono::steady_clock::now();
  v = sb->run("return string.find(string.rep('a', 2000), "
              "string.rep('.-', 6) .. 'b')",
              json::object(), past);
  ASSERT_FALSE(v);
  EXPECT_EQ(cadre::code_of(v.error()), errc::limit_exceeded);
  // A cancel flag ends it as cancelled.
  std::atomic<bool> cancelled{true};
  cadre::tools::call_bounds cancel;
  cancel.cancelled = &cancelled;
  v = sb->run("while true do end", json::object(), cancel);
  ASSERT_FALSE(v);
  EXPECT_EQ(cadre::code_of(v.error()), errc::cancelled);
  // The bounds were for that call only.
  EXPECT_EQ(eval_ok(*sb, "1 + 1"), json(2));
}
