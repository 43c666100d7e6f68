// The standard library of the Lua sandbox (lang/src/lua/stdlib.lua): each
// function with normal and bad input, its limits and its determinism.

#include <memory>
#include <string>
#include <utility>

#include <gtest/gtest.h>

#include "cadre/lang/lua_sandbox.hpp"

using cadre::errc;
using cadre::json;
using cadre::tools::lua_sandbox;
using cadre::tools::sandbox_options;

namespace {

std::unique_ptr<lua_sandbox> make_sandbox(sandbox_options opts = {}) {
  auto sb = lua_sandbox::create(opts);
  EXPECT_TRUE(sb) << cadre::describe(sb.error());
  return sb ? std::move(*sb) : nullptr;
}

/// A chunk and what it must return.
struct ok_case {
  std::string code;
  json want;
};

/// A chunk and a text its error message must contain.
struct error_case {
  std::string code;
  std::string message;
};

void expect_results(lua_sandbox& sb, std::initializer_list<ok_case> cases,
                    const json& env = json::object()) {
  for (const auto& c : cases) {
    auto v = sb.run(c.code, env);
    if (!v) {
      ADD_FAILURE() << c.code << "\n  failed: " << cadre::describe(v.error());
      continue;
    }
    EXPECT_EQ(*v, c.want) << c.code;
  }
}

void expect_errors(lua_sandbox& sb, std::initializer_list<error_case> cases,
                   const json& env = json::object()) {
  for (const auto& c : cases) {
    auto v = sb.run(c.code, env);
    if (v) {
      ADD_FAILURE() << c.code << "\n  gave " << v->dump();
      continue;
    }
    // A bound that was hit has a code of its own.
    auto want = c.message.find("limit exceeded") != std::string::npos
                  ? errc::limit_exceeded
                  : errc::script_error;
    EXPECT_EQ(cadre::code_of(v.error()), want) << c.code;
    auto msg = cadre::message_of(v.error());
    EXPECT_NE(msg.find(c.message), std::string::npos)
      << c.code << "\n  message: " << msg << "\n  expected: " << c.message;
  }
}

} // namespace

// -- json ---------------------------------------------------------------------

TEST(LuaStdlib, JsonEncodeWritesCompactJsonWithSortedKeys) {
  auto sb = make_sandbox();
  expect_results(
    *sb,
    {
      {"return json.encode(1)", "1"},
      {"return json.encode(-1.5)", "-1.5"},
      {"return json.encode(2.0)", "2.0"},
      {"return json.encode(0.1)", "0.1"},
      {"return json.encode(true)", "true"},
      {"return json.encode(nil)", "null"},
      {"return json.encode(json.null)", "null"},
      {R"(return json.encode("a\"b\\c\n\1é"))",
       R"("a\"b\\c\n\u0001é")"},
      {"return json.encode({b = 1, a = {true, json.null}, c = 'x'})",
       R"({"a":[true,null],"b":1,"c":"x"})"},
      {"return json.encode({[3] = 'c', [1] = 'a'})", R"({"1":"a","3":"c"})"},
      {"return json.encode({})", "{}"},
      {"return json.encode(json.array())", "[]"},
      {"return json.encode(json.object({1, 2}))", R"({"1":1,"2":2})"},
      {"return json.encode({1, {x = 1}}, {indent = 2})",
       "[\n  1,\n  {\n    \"x\": 1\n  }\n]"},
      {"return json.encode(args)",
       R"({"empty_list":[],"empty_object":{},"n":3})"},
    },
    {{"args", {{"n", 3}, {"empty_list", json::array()},
               {"empty_object", json::object()}}}});
}

TEST(LuaStdlib, JsonEncodeRefusesValuesWithoutJsonForm) {
  auto sb = make_sandbox();
  expect_errors(
    *sb,
    {
      {"return json.encode(print or type)",
       "json.encode: a function has no JSON form"},
      {"return json.encode({a = {b = {1, 0/0}}})",
       "json.encode: a number that is not finite at /a/b/1"},
      {"return json.encode({s = '\\255'})",
       "json.encode: a string that is not valid UTF-8 at /s"},
      {"return json.encode({[true] = 1})",
       "json.encode: a table key of type boolean"},
      {"local t = {} t.self = t return json.encode(t)",
       "json.encode: tables nested deeper than 200 levels (a cycle?)"},
      {"return json.encode(1, {indent = -1})",
       "json.encode: indent must be an integer from 0 to 16"},
    });
}

TEST(LuaStdlib, JsonDecodeReadsEveryKindOfValue) {
  auto sb = make_sandbox();
  expect_results(
    *sb,
    {
      {R"(return json.decode('{"a": [1, 2.5, -3e2, true, false, null], )"
       R"("b": {"c": "d"}, "e": [], "f": {}}'))",
       json::parse(R"({"a": [1, 2.5, -300.0, true, false, null],
                       "b": {"c": "d"}, "e": [], "f": {}})")},
      {R"(return math.type(json.decode("42")))", "integer"},
      {R"(return math.type(json.decode("42.0")))", "float"},
      {R"(return json.decode([["\u00e9\ud83d\ude00 \"\\\/\b\f\n\r\t"]]))",
       "\xc3\xa9\xf0\x9f\x98\x80 \"\\/\b\f\n\r\t"},
      {R"(return json.decode(" null ") == json.null)", true},
      {R"(return #json.decode("[1, 2, 3]"))", 3},
      {R"(return json.decode('{"a": null}').a == json.null)", true},
      // Decoding and encoding again gives the same text.
      {R"(local s = '{"a":[],"b":{},"c":[1,{"d":null}],"e":"x"}')"
       R"( return json.encode(json.decode(s)) == s)",
       true},
    });
}

TEST(LuaStdlib, JsonDecodeErrorsGiveThePosition) {
  auto sb = make_sandbox();
  expect_errors(
    *sb,
    {
      {R"(return json.decode('{"a": 1,}'))",
       "json.decode: object key (a string in double quotes) expected at "
       "line 1, column 9 (byte 9)"},
      {R"(return json.decode('[1, 2'))",
       "json.decode: unexpected end of text at line 1, column 6"},
      {R"(return json.decode('{\n  "a": tru\n}'))",
       "json.decode: unexpected character 't' at line 2, column 8"},
      {R"(return json.decode(''))", "json.decode: unexpected end of text"},
      {R"(return json.decode('01'))", "json.decode: leading zero in number"},
      {R"(return json.decode('1.'))", "digit expected after '.'"},
      {R"(return json.decode('"a\1"'))",
       "json.decode: control character in string"},
      {R"(return json.decode([["\x"]]))", "json.decode: bad escape in string"},
      {R"(return json.decode([["\ud800"]]))",
       "json.decode: \\u escape of a lone surrogate"},
      {R"(return json.decode('"abc'))", "json.decode: unterminated string"},
      {R"(return json.decode('[1] x'))",
       "json.decode: unexpected text after the value at line 1, column 5"},
      {R"(return json.decode('"\255"'))",
       "json.decode: invalid UTF-8 at line 1, column 2"},
      {R"(return json.decode(string.rep("[", 300)))",
       "json.decode: values nested deeper than 200 levels"},
      {R"(return json.decode(5))",
       "bad argument #1 to 'json.decode' (string expected, got number)"},
      // Raised at the caller: the message names the script's line.
      {"local x = 1\nlocal v = json.decode('{')\nreturn v",
       "script:2: json.decode: unexpected end of text"},
    });
}

TEST(LuaStdlib, JsonMarkersDecideWhatEmptyTablesBecome) {
  auto sb = make_sandbox();
  json env = {{"args", {{"list", json::array()}, {"obj", json::object()},
                        {"full", {1, 2}}}}};
  expect_results(
    *sb,
    {
      {"return args.list", json::array()},
      {"return args.obj", json::object()},
      {"local t = args.full table.remove(t) table.remove(t) return t",
       json::array()},
      {"return json.array()", json::array()},
      {"return json.object()", json::object()},
      {"return json.array({1, 2})", json{1, 2}},
      {"return json.object({'a'})", json{{"1", "a"}}},
      {"return {json.type(args.list), json.type(args.obj), json.type({}), "
       "json.type({1}), json.type(json.null), json.type(nil), json.type(1), "
       "json.type('s'), json.type(true)}",
       json{"array", "object", "object", "array", "null", "null", "number",
            "string", "boolean"}},
    },
    env);
  expect_errors(*sb, {{"return json.array(1)",
                       "bad argument #1 to 'json.array' (table expected, got "
                       "number)"}});
}

// -- string -------------------------------------------------------------------

TEST(LuaStdlib, StringHelpers) {
  auto sb = make_sandbox();
  expect_results(
    *sb,
    {
      {"return string.split('a,b,,c', ',')", json{"a", "b", "", "c"}},
      {"return ('a, b'):split(', ')", json{"a", "b"}},
      {"return string.split('  a  b\\tc\\n ')", json{"a", "b", "c"}},
      {"return string.split('')", json::array()},
      {"return string.split('x', ',')", json{"x"}},
      {"return string.split('a.b', '.')", json{"a", "b"}},
      {"return string.split('a1b22c', '%d+', true)", json{"a", "b", "c"}},
      {"return ('  hi there \\n'):trim()", "hi there"},
      {"return string.trim(' \\t ')", ""},
      {"return ('  x  '):ltrim() .. '|' .. ('  x  '):rtrim() .. '|'",
       "x  |  x|"},
      {"return {('hello'):starts_with('he'), ('hello'):starts_with('lo'), "
       "('hello'):ends_with('lo'), ('hello'):ends_with(''), "
       "('a.b'):contains('.'), ('ab'):contains('.')}",
       json{true, false, true, true, true, false}},
      {"return ('a.b.c'):replace('.', '%')", "a%b%c"},
      {"return ('a.b.c'):replace('.', '', 1)", "ab.c"},
      {"return ('100%'):replace('%', ' percent')", "100 percent"},
      {"return {('7'):pad_left(3, '0'), ('é'):pad_right(3, '*'), "
       "('long'):pad_left(2), ('x'):pad_right(3)}",
       json{"007", "\xc3\xa9**", "long", "x  "}},
      {"return string.join({'a', 1, 2.5, true}, '-')", "a-1-2.5-true"},
      {"return string.join({})", ""},
      {"return string.lines('one\\r\\ntwo\\n\\nthree\\n')",
       json{"one", "two", "", "three"}},
      {"return string.lines('')", json::array()},
      {"return {string.ulen('h\\u{e9}llo'), #'h\\u{e9}llo'}", json{5, 6}},
      {"return ('Total: 10, Tax: 2'):match_all('(%a+): (%d+)')",
       json::array({json::array({"Total", "10"}), json::array({"Tax", "2"})})},
      {"return ('a1b22c333'):match_all('%d+')", json{"1", "22", "333"}},
      {"return ('k=v; x=y'):match_all('(%w+)=')", json{"k", "x"}},
      {"return ('aaa'):match_all('^a')", json{"a"}},
      {"return ('abc'):match_all('%d')", json::array()},
    });
}

TEST(LuaStdlib, StringHelpersRefuseBadArguments) {
  auto sb = make_sandbox();
  expect_errors(
    *sb,
    {
      {"local x = string.split(nil, ',')",
       "script:1: bad argument #1 to 'string.split' (string expected, got "
       "nil)"},
      {"local x = string.split('a', '')",
       "script:1: string.split: the separator is empty"},
      {"local x = string.split('a', '%s*', true)",
       "string.split: the separator pattern matches the empty string"},
      {"local x = string.trim({})",
       "bad argument #1 to 'string.trim' (string expected, got table)"},
      {"local x = ('a'):starts_with(1)",
       "bad argument #2 to 'string.starts_with' (string expected, got "
       "number)"},
      {"local x = ('a'):replace('', 'b')",
       "string.replace: the text to replace is empty"},
      {"local x = ('a'):pad_left('3')",
       "bad argument #2 to 'string.pad_left' (integer expected, got "
       "string)"},
      {"local x = ('a'):pad_left(3, 'ab')",
       "string.pad_left: the fill must be one character, got 'ab'"},
      {"local x = string.join({'a', {}}, ',')",
       "string.join: item 2 is a table, not a string"},
      {"local x = string.join({a = 1})",
       "string.join: argument #1 is not a list"},
      {"local x = string.ulen('\\255')",
       "string.ulen: invalid UTF-8 at byte 1"},
      {"local x = ('a'):match_all('%')", "malformed pattern"},
    });
}

// -- number -------------------------------------------------------------------

TEST(LuaStdlib, NumberParseReadsAmountsWithSeparatorsAndCurrencies) {
  auto sb = make_sandbox();
  struct parse_case {
    const char* text;
    json want;
  };
  const parse_case cases[] = {
    {"$1,234.50", 1234.5},
    {"1,234", 1234},
    {"1,234,567", 1234567},
    {"1.234.567", 1234567},
    {"1.234,50 €", 1234.5},
    {"€1.234,50", 1234.5},
    {"1 234,50", 1234.5},
    {"1'234.50 CHF", 1234.5},
    {"1,5", 1.5},
    {"0,500", 0.5},
    {"1.5", 1.5},
    {".5", 0.5},
    {"42", 42},
    {"  USD 12.00 ", 12.0},
    {"-$5", -5},
    {"$-5", -5},
    {"5-", -5},
    {"(1,234.00)", -1234.0},
    {"+7", 7},
    {"12%", 12},
    {"£ 3", 3},
    // Not numbers: nil.
    {"", nullptr},
    {"abc", nullptr},
    {"Total 5", nullptr},
    {"12 apples 5", nullptr},
    {"1,2345", 1.2345},
    {"1,23,4", nullptr},
    {"--5", nullptr},
    {"5.", nullptr},
    {"1.234,567.8", nullptr},
  };
  for (const auto& c : cases) {
    auto v = sb->run("return number.parse(args.s) or json.null",
                     {{"args", {{"s", c.text}}}});
    ASSERT_TRUE(v) << c.text << ": " << cadre::describe(v.error());
    EXPECT_EQ(*v, c.want) << "number.parse('" << c.text << "')";
  }
  expect_results(
    *sb,
    {
      {"return number.parse('1.234', {decimal = ','})", 1234},
      {"return number.parse('1,234', {decimal = ','})", 1.234},
      {"return number.parse('1,234', {decimal = '.'})", 1234},
      {"return number.parse(7.5)", 7.5},
    });
  expect_errors(
    *sb,
    {
      {"local x = number.parse({})",
       "bad argument #1 to 'number.parse' (string expected, got table)"},
      {"local x = number.parse('1', {decimal = ';'})",
       "number.parse: opts.decimal must be '.' or ','"},
    });
}

TEST(LuaStdlib, NumberRoundAndFormat) {
  auto sb = make_sandbox();
  expect_results(
    *sb,
    {
      {"return number.round(1.005, 2)", 1.01},
      {"return number.round(2.675, 2)", 2.68},
      {"return number.round(3.14159, 3)", 3.142},
      {"return number.round(2.5)", 3},
      {"return number.round(-2.5)", -3},
      {"return math.type(number.round(2.4))", "integer"},
      {"return number.round(1234, -2)", 1200},
      {"return number.round(7, 2)", 7},
      {"return number.format(1234567.891, 2)", "1,234,567.89"},
      {"return number.format(1234.5)", "1,235"},
      {"return number.format(999)", "999"},
      {"return number.format(-1234.5, 1)", "-1,234.5"},
      {"return number.format(-0.001, 2)", "0.00"},
      {"return number.format(1234.5, 2, {thousands = '.', decimal = ','})",
       "1.234,50"},
    });
  expect_errors(
    *sb,
    {
      {"local x = number.round('1')",
       "bad argument #1 to 'number.round' (number expected, got string)"},
      {"local x = number.round(1, 1.5)",
       "bad argument #2 to 'number.round' (integer expected, got number)"},
      {"local x = number.round(1, 99)",
       "number.round: decimals must be from -15 to 15"},
      {"local x = number.round(1/0)", "number.round: the number is not finite"},
      {"local x = number.format(1, -1)",
       "number.format: decimals must be from 0 to 15"},
    });
}

// -- date ---------------------------------------------------------------------

TEST(LuaStdlib, DateParseReadsCommonFormats) {
  auto sb = make_sandbox();
  struct parse_case {
    const char* text;
    const char* order;
    json want;
  };
  const parse_case cases[] = {
    {"2024-03-15", nullptr, "2024-03-15"},
    {"2024/3/5", nullptr, "2024-03-05"},
    {"2024-03-15T10:30:00Z", nullptr, "2024-03-15"},
    {"20240315", nullptr, "2024-03-15"},
    {"15/03/2024", nullptr, "2024-03-15"},
    {"15.03.2024", nullptr, "2024-03-15"},
    {"15-03-24", nullptr, "2024-03-15"},
    {"03/15/2024", nullptr, "2024-03-15"},
    {"03/04/2024", nullptr, "2024-04-03"},
    {"03/04/2024", "mdy", "2024-03-04"},
    {"15/03/2024", "mdy", "2024-03-15"},
    {"March 15, 2024", nullptr, "2024-03-15"},
    {"Mar. 15 2024", nullptr, "2024-03-15"},
    {"15 Mar 2024", nullptr, "2024-03-15"},
    {"15-MAR-99", nullptr, "1999-03-15"},
    {"15th March 2024", nullptr, "2024-03-15"},
    {"Friday, March 15th, 2024", nullptr, "2024-03-15"},
    {"Sept 1 2024", nullptr, "2024-09-01"},
    {"2024 Mar 15", nullptr, "2024-03-15"},
    {"29 February 2024", nullptr, "2024-02-29"},
    {"  15 March 2024  ", nullptr, "2024-03-15"},
  };
  for (const auto& c : cases) {
    json args = {{"s", c.text}};
    if (c.order != nullptr)
      args["order"] = c.order;
    auto v = sb->run("return date.parse(args.s, args.order)",
                     {{"args", args}});
    ASSERT_TRUE(v) << c.text << ": " << cadre::describe(v.error());
    EXPECT_EQ(*v, c.want) << "date.parse('" << c.text << "')";
  }
  // Not a date: nil and the reason.
  expect_results(
    *sb,
    {
      {"return {date.parse('2024-02-30')}",
       {{"2", "'2024-02-30' is not a valid date (no day 30 in February "
              "2024)"}}},
      {"return {date.parse('29 Feb 2023')}",
       {{"2", "'29 Feb 2023' is not a valid date (no day 29 in February "
              "2023)"}}},
      {"return {date.parse('hello')}",
       {{"2", "'hello' is not a date in a known format"}}},
      {"return {date.parse('13/13/2024')}",
       {{"2", "'13/13/2024' is not a valid date (no day 13 in month 13 "
              "2024)"}}},
      {"return date.parse('2024-03-15 junk') == nil", true},
      {"return date.parse('15 Foo 2024') == nil", true},
    });
  expect_errors(
    *sb,
    {
      {"local x = date.parse(20240315)",
       "bad argument #1 to 'date.parse' (string expected, got number)"},
      {"local x = date.parse('1/2/2024', 'ymd')",
       "date.parse: order must be 'dmy' or 'mdy'"},
    });
}

TEST(LuaStdlib, DateArithmeticAndFormatting) {
  auto sb = make_sandbox();
  expect_results(
    *sb,
    {
      {"return date.format('2024-03-15', '%A %e %B %Y')",
       "Friday 15 March 2024"},
      {"return date.format('2024-03-05', '%a %b %d/%m/%y, day %j, wd %u, "
       "100%%')",
       "Tue Mar 05/03/24, day 065, wd 2, 100%"},
      {"return date.format('2024-12-31', '%j')", "366"},
      {"return date.add_days('2024-02-28', 1)", "2024-02-29"},
      {"return date.add_days('2024-02-28', 2)", "2024-03-01"},
      {"return date.add_days('2024-12-31', 1)", "2025-01-01"},
      {"return date.add_days('2024-03-15', -365)", "2023-03-16"},
      {"return date.add_days('2024-03-15', 30.0)", "2024-04-14"},
      {"return date.add_months('2024-01-31', 1)", "2024-02-29"},
      {"return date.add_months('2024-03-31', -13)", "2023-02-28"},
      {"return date.add_months('2024-11-15', 3)", "2025-02-15"},
      {"return date.diff_days('2024-03-01', '2024-03-15')", 14},
      {"return date.diff_days('2024-03-15', '2024-03-01')", -14},
      {"return date.diff_days('2023-01-01', '2024-01-01')", 365},
      {"return date.diff_days('0001-01-01', '2025-01-01')", 739251},
      {"return {date.weekday('2024-03-15'), date.weekday('2000-01-01'), "
       "date.weekday('1970-01-01'), date.weekday('2024-03-17')}",
       json{5, 6, 4, 7}},
      {"return {date.is_valid('2024-02-29'), date.is_valid('2023-02-29'), "
       "date.is_valid('2024-3-1'), date.is_valid(5)}",
       json{true, false, false, false}},
    });
  // Day by day over a century boundary, the functions agree.
  auto roomy = make_sandbox({.instruction_limit = 10'000'000});
  expect_results(*roomy, {{"local d = '1899-12-25' for i = 1, 1000 do "
                           "local n = date.add_days(d, 1) "
                           "assert(date.diff_days(d, n) == 1) "
                           "assert(date.weekday(n) == "
                           "date.weekday(d) % 7 + 1) "
                           "assert(date.parse(date.format(n, '%d %B %Y')) "
                           "== n) "
                           "d = n end return d",
                           "1902-09-21"}});
  expect_errors(
    *sb,
    {
      {"local x = date.add_days('2024-13-01', 1)",
       "script:1: date.add_days: '2024-13-01' is not a date (YYYY-MM-DD)"},
      {"local x = date.add_days('15/03/2024', 1)",
       "date.add_days: '15/03/2024' is not a date (YYYY-MM-DD)"},
      {"local x = date.add_days('2024-01-01', 'x')",
       "bad argument #2 to 'date.add_days' (integer expected, got string)"},
      {"local x = date.add_days('9999-12-31', 1)",
       "date.add_days: the result is outside the years 1 to 9999"},
      {"local x = date.format('2024-03-15', '%Q')",
       "date.format: unknown format code '%Q'"},
      {"local x = date.format('2024-03-15', '100%')",
       "date.format: unknown format code a lone '%'"},
      {"local x = date.diff_days('2024-01-01', nil)",
       "bad argument #2 to 'date.diff_days' (string expected, got nil)"},
      {"local x = date.weekday('2024-02-30')",
       "date.weekday: '2024-02-30' is not a date (YYYY-MM-DD)"},
    });
}

TEST(LuaStdlib, HasNoClock) {
  auto sb = make_sandbox();
  expect_results(*sb, {{"return date.now == nil and date.today == nil and "
                        "date.time == nil and os == nil and io == nil",
                        true}});
}

// -- table --------------------------------------------------------------------

TEST(LuaStdlib, TableHelpers) {
  auto sb = make_sandbox();
  json env = {{"args",
               {{"items",
                 {{{"name", "pen"}, {"kind", "office"}, {"price", 2}},
                  {{"name", "desk"}, {"kind", "furniture"}, {"price", 150}},
                  {{"name", "clip"}, {"kind", "office"}, {"price", 0.5}},
                  {{"name", "lamp"}, {"kind", "furniture"}, {"price", 2}}}},
                {"empty", json::array()}}}};
  expect_results(
    *sb,
    {
      {"return table.map({1, 2, 3}, function(v, i) return v * 10 + i end)",
       json{11, 22, 33}},
      {"return table.map({a = 1, b = 2}, function(v, k) return k .. v end)",
       json{{"a", "a1"}, {"b", "b2"}}},
      {"return table.map({1, 2}, function() return nil end)",
       json{nullptr, nullptr}},
      {"return table.map(args.empty, function(v) return v end)",
       json::array()},
      {"return table.filter({1, 2, 3, 4}, function(v) return v % 2 == 0 end)",
       json{2, 4}},
      {"return table.filter({1, 3}, function(v) return v % 2 == 0 end)",
       json::array()},
      {"return table.filter({a = 1, b = 2}, function(v) return v > 1 end)",
       json{{"b", 2}}},
      {"return table.keys({b = 1, a = 2, c = 3})", json{"a", "b", "c"}},
      {"return table.values({b = 1, a = 2, c = 3})", json{2, 1, 3}},
      {"return table.keys({})", json::array()},
      {"return table.map(table.sort_by(args.items, 'price'), "
       "function(i) return i.name end)",
       json{"clip", "pen", "lamp", "desk"}},
      {"return table.map(table.sort_by(args.items, 'price', true), "
       "function(i) return i.name end)",
       json{"desk", "pen", "lamp", "clip"}},
      {"return table.map(table.sort_by(args.items, function(i) "
       "return #i.name end), function(i) return i.name end)",
       json{"pen", "desk", "clip", "lamp"}},
      {"return table.sort_by({{k = 2}, {}, {k = 1}}, 'k')",
       json{{{"k", 1}}, {{"k", 2}}, json::object()}},
      {"return table.sort_by({'b', 'a', 'c'}, function(v) return v end)",
       json{"a", "b", "c"}},
      {"local g = table.group_by(args.items, 'kind') "
       "return {table.keys(g), #g.office, g.furniture[1].name}",
       json{{"furniture", "office"}, 2, "desk"}},
      {"return table.keys(table.group_by({{n = 1}, {n = 2}, {}}, 'n'))",
       json{"1", "2", "null"}},
      {"return table.group_by(args.empty, 'kind')", json::object()},
      {"return table.sum(args.items, 'price')", 154.5},
      {"return table.sum({1, 2, 3})", 6},
      {"return table.sum({})", 0},
      {"return {table.min({3, 1, 2}), table.max({3, 1, 2}), "
       "table.min({'b', 'a'})}",
       json{1, 3, "a"}},
      {"return table.min(args.items, 'price').name", "clip"},
      {"return table.max(args.items, 'price').name", "desk"},
      {"return table.max(args.items, function(i) return #i.name end).name",
       "desk"},
      {"return table.min({}) == nil", true},
      {"return {table.contains({1, 2}, 2), table.contains({1, 2}, '2'), "
       "table.contains({a = 'x'}, 'x')}",
       json{true, false, true}},
    },
    env);
  expect_errors(
    *sb,
    {
      {"local x = table.map({1}, 'f')",
       "script:1: bad argument #2 to 'table.map' (function expected, got "
       "string)"},
      {"local x = table.filter(nil, print or type)",
       "bad argument #1 to 'table.filter' (table expected, got nil)"},
      {"local x = table.sort_by({a = 1}, 'k')",
       "bad argument #1 to 'table.sort_by' (list expected, got an object)"},
      {"local x = table.sort_by({1, 2}, 'k')",
       "script:1: table.sort_by: item 1 is a number, not a table with the "
       "field 'k'"},
      {"local x = table.sort_by({{k = 1}, {k = 'a'}}, 'k')",
       "table.sort_by: cannot compare numbers with strings (item 2)"},
      {"local x = table.sort_by({{k = {}}}, 'k')",
       "table.sort_by: the key of item 1 is a table, not a number or string"},
      {"local x = table.sort_by({1}, true)",
       "bad argument #2 to 'table.sort_by' (field name or function expected, "
       "got boolean)"},
      {"local x = table.group_by({{k = {}}}, 'k')",
       "table.group_by: the key of item 1 is a table"},
      {"local x = table.sum({1, 'x'})",
       "script:1: table.sum: the value of item 2 is a string, not a number"},
      {"local x = table.sum({{p = 1}, {}}, 'p')",
       "table.sum: the key of item 2 is nil, not a number"},
      {"local x = table.min({1, json.null})",
       "table.min: item 2 is json.null, not a number or string"},
      {"local x = table.max({1, 'a'})",
       "table.max: cannot compare numbers with strings (item 2)"},
      {"local x = table.keys('abc')",
       "bad argument #1 to 'table.keys' (table expected, got string)"},
      // An error in the callback keeps its own line.
      {"local x = table.map({1}, function(v)\n error('bad item') end)",
       "script:2: bad item"},
    });
}

// -- limits, sandbox and determinism -----------------------------------------

TEST(LuaStdlib, LibraryCodeCountsAgainstTheInstructionLimit) {
  auto sb = make_sandbox({.instruction_limit = 100'000});
  json list = json::array();
  for (int i = 0; i < 50'000; ++i)
    list.push_back(i);
  json env = {{"args", {{"text", list.dump()}, {"list", list}}}};
  expect_errors(
    *sb,
    {
      {"return #json.decode(args.text)", "instruction limit exceeded"},
      // pcall around the library cannot swallow the limit either.
      {"while true do pcall(json.decode, args.text) end",
       "instruction limit exceeded"},
      {"return #table.map(args.list, function(v) return v end)",
       "instruction limit exceeded"},
    },
    env);
  // The same calls fit a larger limit, and the sandbox stays usable.
  auto roomy = make_sandbox({.instruction_limit = 20'000'000});
  expect_results(*roomy,
                 {{"return #json.decode(args.text)", 50'000},
                  {"return #table.map(args.list, function(v) return v end)",
                   50'000}},
                 env);
  expect_results(*sb, {{"return json.encode({1})", "[1]"}});
}

TEST(LuaStdlib, LibraryCodeCountsAgainstTheMemoryLimit) {
  auto sb = make_sandbox({.memory_limit = 1u << 20});
  expect_errors(
    *sb,
    {
      {"local t = {} for i = 1, 100 do t[i] = string.rep('x', 1000) end "
       "local s = json.encode(t) "
       "for i = 1, 20 do s = json.encode({s, s}) end return #s",
       "memory limit exceeded"},
      {"return ('x'):pad_left(1 << 30)", "memory limit exceeded"},
    });
  expect_results(*sb, {{"return #json.encode({string.rep('x', 1000)})",
                        1004}});
}

TEST(LuaStdlib, LibraryTablesAreReadOnly) {
  auto sb = make_sandbox();
  expect_errors(
    *sb,
    {
      {"string.split = nil", "'string' is read-only"},
      {"table.map = function() end", "'table' is read-only"},
      {"number.parse = nil", "'number' is read-only"},
      {"date.parse = nil", "'date' is read-only"},
      {"json.decode = nil", "'json' is read-only"},
      {"rawset(date, 'now', function() return 0 end)",
       "rawset: the table is read-only"},
      {"getmetatable(json.array()).__index = {}",
       "json markers are read-only"},
      {"rawset(getmetatable(json.object()), '__index', {})",
       "rawset: the table is read-only"},
      {"setmetatable(getmetatable(json.array()), {})",
       "script:1: cannot change a protected metatable"},
    });
  // Nothing an evaluation tried above changed the library for the next one.
  expect_results(*sb, {{"return {type(string.split), type(date.parse), "
                        "getmetatable('')}",
                        json{"function", "function", false}}});
}

TEST(LuaStdlib, UnsafeFunctionsStayAbsent) {
  auto sb = make_sandbox();
  for (const char* name :
       {"os", "io", "require", "load", "loadfile", "dofile", "debug",
        "package", "collectgarbage", "string.dump", "math.random"}) {
    auto v = sb->eval(std::string{name} + " == nil", {});
    ASSERT_TRUE(v) << name;
    EXPECT_EQ(*v, json(true)) << name;
  }
  // Errors of the script's callbacks pass through the library unchanged,
  // non-string ones included.
  expect_errors(*sb, {{"table.map({1}, function() error({code = 1}) end)",
                       "(error object is a table value)"}});
}

TEST(LuaStdlib, SameInputGivesTheSameOutput) {
  std::string code = R"lua(
    local g = table.group_by(args.rows, "k")
    local out = {}
    for k, rows in pairs(g) do
      out[#out + 1] = k .. "=" .. table.sum(rows, "v")
    end
    return {
      groups = out,
      keys = table.keys(args.obj),
      text = json.encode(args),
      date = date.add_days(args.day, 40),
      n = number.parse(args.amount),
    }
  )lua";
  json env = {{"args",
               {{"rows",
                 {{{"k", "b"}, {"v", 1}},
                  {{"k", "a"}, {"v", 2}},
                  {{"k", "c"}, {"v", 3}},
                  {{"k", "a"}, {"v", 4}}}},
                {"obj", {{"z", 1}, {"y", 2}, {"x", 3}, {"w", 4}}},
                {"day", "2024-02-10"},
                {"amount", "$1,234.50"}}}};
  auto a = make_sandbox();
  auto b = make_sandbox();
  auto x = a->run(code, env);
  ASSERT_TRUE(x) << cadre::describe(x.error());
  for (int i = 0; i < 3; ++i) {
    auto y = (i % 2 == 0 ? b : a)->run(code, env);
    ASSERT_TRUE(y) << cadre::describe(y.error());
    EXPECT_EQ(*x, *y);
  }
  EXPECT_EQ((*x)["groups"], (json{"a=6", "b=1", "c=3"}));
  EXPECT_EQ((*x)["keys"], (json{"w", "x", "y", "z"}));
  EXPECT_EQ((*x)["date"], "2024-03-21");
  EXPECT_EQ((*x)["n"], 1234.5);
  EXPECT_EQ(json::parse((*x)["text"].get<std::string>()), env["args"]);
}

TEST(LuaStdlib, TemplatesCanUseTheLibrary) {
  auto sb = make_sandbox();
  json env = {{"input", {{"due", "15/03/2024"}, {"total", "$1,234.50"},
                         {"tags", {"b", "a"}}}}};
  json tmpl = {
    {"due", "{{ date.parse(input.due) }}"},
    {"total", "{{ number.parse(input.total) }}"},
    {"text", "Due {{ date.format(date.parse(input.due), '%e %B %Y') }}: "
             "{{ number.format(number.parse(input.total), 2) }}"},
    {"tags", "{{ string.join(table.sort_by(input.tags, "
             "function(t) return t end), ', ') }}"},
  };
  auto v = cadre::tools::render_template(*sb, tmpl, env);
  ASSERT_TRUE(v) << cadre::describe(v.error());
  EXPECT_EQ(*v, (json{{"due", "2024-03-15"},
                      {"total", 1234.5},
                      {"text", "Due 15 March 2024: 1,234.50"},
                      {"tags", "a, b"}}));
}
