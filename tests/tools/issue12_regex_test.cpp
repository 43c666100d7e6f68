// Issue 12, item 1: every regular expression of a JSON Schema (pattern,
// patternProperties, format) runs in linear time without deep recursion;
// std::regex crashed on a 60,000-character string and hung on ^(a+)+$.

#include <memory>
#include <string>

#include <gtest/gtest.h>

#include "cadre/lang/json_schema.hpp"
#include "cadre/lang/regex.hpp"
#include "cadre/tools/tool_registry.hpp"
#include "finishes.hpp"

using namespace cadre;
using namespace cadre::tools;
using cadre::test::finishes;

namespace {

json_schema compiled(const json& schema) {
  auto s = json_schema::compile(schema);
  if (!s) {
    ADD_FAILURE() << describe(s.error());
    return {};
  }
  return *s;
}

json string_property(const std::string& pattern) {
  return {{"type", "object"},
          {"properties",
           {{"code", {{"type", "string"}, {"pattern", pattern}}}}}};
}

std::unique_ptr<tool> make_validate() {
  tool_registry registry;
  register_builtin_tools(registry);
  auto t = registry.create("validate", json_value{});
  if (!t)
    ADD_FAILURE() << describe(t.error());
  return t ? std::move(*t) : nullptr;
}

} // namespace

TEST(Issue12, PatternOnALongStringDoesNotCrash) {
  auto schema = compiled(string_property("^[A-Z0-9-]+$"));
  std::string code(60'000, 'A');
  EXPECT_TRUE(schema.validate({{"code", code}}).empty());
  auto errors = schema.validate({{"code", code + "a"}});
  ASSERT_EQ(errors.size(), 1u);
  EXPECT_EQ(errors[0].pointer, "/code");
  EXPECT_EQ(errors[0].keyword, "pattern");
  EXPECT_EQ(errors[0].schema_pointer, "/properties/code/pattern");
  EXPECT_FALSE(schema.accepts({{"code", code + "a"}}));
}

TEST(Issue12, DotStarOnALongStringDoesNotCrash) {
  auto schema = compiled(string_property(".*"));
  EXPECT_TRUE(schema.validate({{"code", std::string(200'000, 'x')}}).empty());
}

TEST(Issue12, NestedQuantifiersFinish) {
  auto schema = compiled(string_property("^(a+)+$"));
  std::string text(30, 'a');
  text += "!";
  std::vector<schema_error> errors;
  ASSERT_TRUE(finishes([&] { errors = schema.validate({{"code", text}}); }));
  ASSERT_EQ(errors.size(), 1u);
  EXPECT_EQ(errors[0].keyword, "pattern");
  EXPECT_TRUE(schema.validate({{"code", std::string(30, 'a')}}).empty());
}

TEST(Issue12, LookaroundAndBackreferencesAreSchemaErrorsWithTheirPlace) {
  for (std::string pattern : {"^(?=a)", "(?<!b)c", "(a)\\1"}) {
    std::string at;
    auto s = json_schema::compile(string_property(pattern), {}, &at);
    ASSERT_FALSE(s) << pattern;
    EXPECT_EQ(code_of(s.error()), errc::invalid_input);
    EXPECT_EQ(at, "/properties/code/pattern") << pattern;
    auto what = message_of(s.error());
    EXPECT_NE(what.find(json(pattern).dump()), std::string::npos) << what;
    EXPECT_NE(what.find("lookaround and backreferences are not supported"),
              std::string::npos)
      << what;
  }
  auto t = make_validate();
  ASSERT_TRUE(t);
  tool_context ctx;
  auto out = t->invoke(
    json_value{json{{"schema", string_property("^(?!x)")},
                    {"instance", {{"code", "y"}}}}},
    ctx);
  ASSERT_FALSE(out);
  EXPECT_EQ(message_of(out.error()).rfind(
              "tool validate: /schema/properties/code/pattern: pattern "
              "\"^(?!x)\"",
              0),
            0u)
    << message_of(out.error());
}

TEST(Issue12, PatternPropertiesRunOnTheLinearEngine) {
  json schema_doc = {{"type", "object"},
                     {"properties", {{"id", {{"type", "string"}}}}},
                     {"patternProperties",
                      {{"^x-[a-z]+$", {{"type", "integer"}}},
                       {"^(a+)+$", {{"type", "boolean"}}}}},
                     {"additionalProperties", false}};
  auto schema = compiled(schema_doc);
  EXPECT_TRUE(schema.validate({{"id", "a"}, {"x-b", 1}, {"aaa", true}})
                .empty());
  auto errors = schema.validate({{"x-b", "s"}});
  ASSERT_EQ(errors.size(), 1u);
  EXPECT_EQ(errors[0].pointer, "/x-b");
  EXPECT_EQ(errors[0].keyword, "type");
  EXPECT_EQ(errors[0].schema_pointer, "/patternProperties/^x-[a-z]+$/type");
  errors = schema.validate({{"other", 1}});
  ASSERT_EQ(errors.size(), 1u);
  EXPECT_EQ(errors[0].keyword, "additionalProperties");
  // A long name matched by a pattern, and the catastrophic one on a name.
  std::string long_name = "x-" + std::string(60'000, 'q');
  EXPECT_TRUE(schema.validate({{long_name, 7}}).empty());
  std::string evil(30, 'a');
  evil += "!";
  ASSERT_TRUE(finishes([&] { errors = schema.validate({{evil, 1}}); }));
  ASSERT_EQ(errors.size(), 1u);
  EXPECT_EQ(errors[0].keyword, "additionalProperties");
  // A key RE2 refuses is located at the key.
  std::string at;
  auto bad = json_schema::compile(
    {{"patternProperties", {{"a/(?=b)", {{"type", "integer"}}}}}}, {}, &at);
  ASSERT_FALSE(bad);
  EXPECT_EQ(at, "/patternProperties/a~1(?=b)");
}

TEST(Issue12, PropertyNamesPatternOnALongName) {
  auto schema = compiled({{"propertyNames", {{"pattern", "^[a-z]+$"}}}});
  EXPECT_TRUE(schema.accepts({{std::string(60'000, 'a'), 1}}));
  EXPECT_FALSE(schema.accepts({{std::string(60'000, 'a') + "1", 1}}));
}

TEST(Issue12, DateFormatsOnALongStringDoNotCrash) {
  auto date = compiled({{"format", "date"}});
  EXPECT_TRUE(date.accepts(std::string(60'000, '2') + "-02-28"));
  EXPECT_FALSE(date.accepts(std::string(60'000, '2') + "-02-30"));
  EXPECT_FALSE(date.accepts(std::string(60'000, '2')));
  auto date_time = compiled({{"format", "date-time"}});
  EXPECT_TRUE(date_time.accepts("2024-04-30T16:52:45+02:00"));
  EXPECT_FALSE(date_time.accepts("2024-04-31T16:52:45Z"));
  EXPECT_FALSE(date_time.accepts(std::string(60'000, '1') + "T"));
  auto time = compiled({{"format", "time"}});
  EXPECT_TRUE(time.accepts("16:52:45.5Z"));
  EXPECT_FALSE(time.accepts("16:52:45" + std::string(60'000, '0')));
  // Formats apply to strings only.
  EXPECT_TRUE(date.accepts(42));
}

TEST(Issue12, RegexRefusesWhatIsNotLinear) {
  EXPECT_TRUE(regex::compile("^[a-z]+$"));
  auto bad = regex::compile("(?=x)");
  ASSERT_FALSE(bad);
  EXPECT_EQ(code_of(bad.error()), errc::invalid_input);
  auto re = regex::compile("b+");
  ASSERT_TRUE(re);
  EXPECT_TRUE(re->search("abba"));
  EXPECT_FALSE(re->full_match("abba"));
  EXPECT_TRUE(re->full_match("bb"));
  EXPECT_EQ(re->pattern(), "b+");
  EXPECT_FALSE(regex{}.search(""));
}

TEST(Issue12, LongUrisAreRefusedBeforeValijsonMatchesThem) {
  // valijson's parser matched these with std::regex (SIGSEGV).
  std::string urn = "urn:ab:" + std::string(100'000, 'a');
  for (auto key : {"$id", "$ref"}) {
    std::string at;
    auto s = json_schema::compile(
      {{"$id", "http://x/y"}, {"properties", {{"a", {{key, urn}}}}}}, {},
      &at);
    ASSERT_FALSE(s) << key;
    EXPECT_EQ(at, std::string{"/properties/a/"} + key);
    EXPECT_NE(message_of(s.error()).find("longer than 2048 bytes"),
              std::string::npos);
  }
  // A long JSON pointer after '#' is not a URI valijson matches.
  std::string name(5'000, 'n');
  EXPECT_TRUE(json_schema::compile(
    {{"definitions", {{name, {{"type", "integer"}}}}},
     {"$ref", "#/definitions/" + name}}));
}
