#include <algorithm>
#include <atomic>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <sstream>
#include <thread>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "cadre/lang/json_schema.hpp"
#include "cadre/tools/tool_registry.hpp"
#include "temp_dir.hpp"
#include "tool_schema_check.hpp"

using namespace cadre;
using namespace cadre::tools;

namespace {

namespace fs = std::filesystem;

// Debian's json-schema-test-suite (scripts/setup.sh installs it).
const fs::path suite_dir = "/usr/share/json-schema-test-suite";

std::unique_ptr<tool> make_validate(json settings = nullptr) {
  tool_registry registry;
  register_builtin_tools(registry);
  auto t = registry.create("validate", json_value{std::move(settings)});
  if (!t)
    ADD_FAILURE() << describe(t.error());
  return t ? std::move(*t) : nullptr;
}

json run(tool& t, json input) {
  tool_context ctx;
  auto out = t.invoke(json_value{std::move(input)}, ctx);
  if (!out) {
    ADD_FAILURE() << describe(out.error());
    return nullptr;
  }
  return out->get();
}

std::string error_of(tool& t, json input) {
  tool_context ctx;
  auto out = t.invoke(json_value{std::move(input)}, ctx);
  if (out) {
    ADD_FAILURE() << "expected an error, got " << out->dump();
    return {};
  }
  EXPECT_EQ(code_of(out.error()), errc::invalid_input);
  return message_of(out.error());
}

/// The error of `out` at instance `pointer` with `keyword`, or null.
json find_error(const json& out, const std::string& pointer,
                const std::string& keyword) {
  for (const auto& e : out.at("errors"))
    if (e.at("pointer") == pointer && e.at("keyword") == keyword)
      return e;
  return nullptr;
}

struct suite_result {
  size_t passed = 0;
  size_t total = 0;
  std::vector<std::string> failures;
};

/// Runs every case of tests/draft<N>/<sub>*.json (and below, for
/// optional/) through the tool.
suite_result run_suite(int draft, const std::string& sub = "") {
  suite_result result;
  auto t = make_validate(json{{"remotes_dir", (suite_dir / "remotes")}});
  if (!t)
    return result;
  auto dir = suite_dir / "tests" / ("draft" + std::to_string(draft));
  std::vector<fs::path> files;
  auto add = [&](const fs::directory_entry& entry) {
    if (entry.is_regular_file() && entry.path().extension() == ".json")
      files.push_back(entry.path());
  };
  if (sub.empty())
    for (const auto& entry : fs::directory_iterator{dir})
      add(entry);
  else
    for (const auto& entry : fs::recursive_directory_iterator{dir / sub})
      add(entry);
  std::sort(files.begin(), files.end());
  for (const auto& file : files) {
    std::ifstream in{file};
    auto groups = json::parse(in);
    for (const auto& group : groups) {
      for (const auto& c : group.at("tests")) {
        ++result.total;
        auto where = fs::relative(file, dir).replace_extension().string()
                     + ": "
                     + group.at("description").get<std::string>() + ": "
                     + c.at("description").get<std::string>();
        tool_context ctx;
        auto out = t->invoke(json_value{json{{"schema", group.at("schema")},
                                             {"instance", c.at("data")},
                                             {"draft", draft}}},
                             ctx);
        if (!out) {
          result.failures.push_back(where + " (schema refused: "
                                    + message_of(out.error()) + ")");
          continue;
        }
        bool valid = out->get().at("valid").get<bool>();
        // A verdict of invalid always comes with at least one error.
        EXPECT_EQ(valid, out->get().at("errors").empty()) << where;
        if (valid == c.at("valid").get<bool>())
          ++result.passed;
        else
          result.failures.push_back(where + " (expected "
                                    + (valid ? "invalid" : "valid") + ")");
      }
    }
  }
  std::cout << "draft" << draft << (sub.empty() ? "" : " " + sub) << ": "
            << result.passed << "/"
            << result.total << " passed\n";
  for (const auto& f : result.failures)
    std::cout << "  failed: " << f << "\n";
  return result;
}

} // namespace

// Regression guards: the pass counts measured for valijson 1.0 on Debian's
// json-schema-test-suite; docs/tools.md lists each case that still fails.
TEST(ValidateTool, TestSuiteDraft4) {
  auto r = run_suite(4);
  EXPECT_GT(r.total, 0u);
  EXPECT_GE(r.passed, 320u) << "draft4: " << r.passed << "/" << r.total;
}

TEST(ValidateTool, TestSuiteDraft6) {
  auto r = run_suite(6);
  EXPECT_GT(r.total, 0u);
  EXPECT_GE(r.passed, 405u) << "draft6: " << r.passed << "/" << r.total;
}

TEST(ValidateTool, TestSuiteDraft7) {
  auto r = run_suite(7);
  EXPECT_GT(r.total, 0u);
  EXPECT_GE(r.passed, 423u) << "draft7: " << r.passed << "/" << r.total;
}

// The optional tests (formats, big numbers, ECMAScript regexes): measured
// and guarded the same way; what fails is listed in docs/tools.md.
TEST(ValidateTool, TestSuiteOptionalDraft4) {
  auto r = run_suite(4, "optional");
  EXPECT_GE(r.passed, 34u) << "draft4 optional: " << r.passed << "/"
                          << r.total;
}

TEST(ValidateTool, TestSuiteOptionalDraft6) {
  auto r = run_suite(6, "optional");
  EXPECT_GE(r.passed, 62u) << "draft6 optional: " << r.passed << "/"
                          << r.total;
}

TEST(ValidateTool, TestSuiteOptionalDraft7) {
  auto r = run_suite(7, "optional");
  EXPECT_GE(r.passed, 91u) << "draft7 optional: " << r.passed << "/"
                          << r.total;
}

TEST(ValidateTool, ValidInstanceHasNoErrors) {
  auto t = make_validate();
  ASSERT_NE(t, nullptr);
  auto out = run(*t, {{"schema", {{"type", "integer"}, {"minimum", 1}}},
                      {"instance", 3}});
  EXPECT_EQ(out, (json{{"valid", true}, {"errors", json::array()}}));
}

TEST(ValidateTool, ReportsEveryErrorWithPointerKeywordAndSchemaPointer) {
  auto t = make_validate();
  ASSERT_NE(t, nullptr);
  json schema = {
    {"type", "object"},
    {"properties",
     {{"name", {{"type", "string"}, {"minLength", 2}}},
      {"age", {{"type", "integer"}, {"maximum", 150}}},
      {"tags", {{"type", "array"}, {"items", {{"type", "string"}}}}},
      {"kind", {{"enum", {"a", "b"}}}}}},
    {"required", {"name", "email"}},
    {"additionalProperties", false},
  };
  json instance = {{"name", "x"},
                   {"age", 200},
                   {"tags", {"ok", 3, "fine", true}},
                   {"kind", "c"},
                   {"extra", 1}};
  auto out = run(*t, {{"schema", schema}, {"instance", instance}});
  ASSERT_FALSE(out.is_null());
  EXPECT_FALSE(out.at("valid").get<bool>());
  struct expect {
    const char* pointer;
    const char* keyword;
    const char* schema_pointer;
  };
  for (auto e : {expect{"/name", "minLength", "/properties/name/minLength"},
                 expect{"/age", "maximum", "/properties/age/maximum"},
                 expect{"/tags/1", "type", "/properties/tags/items/type"},
                 expect{"/tags/3", "type", "/properties/tags/items/type"},
                 expect{"/kind", "enum", "/properties/kind/enum"},
                 expect{"", "required", "/required"},
                 expect{"", "additionalProperties",
                        "/additionalProperties"}}) {
    auto err = find_error(out, e.pointer, e.keyword);
    ASSERT_FALSE(err.is_null())
      << e.pointer << " " << e.keyword << " in " << out.dump(2);
    EXPECT_EQ(err.at("schema_pointer"), e.schema_pointer) << err.dump();
    EXPECT_FALSE(err.at("message").get<std::string>().empty());
  }
  EXPECT_EQ(out.at("errors").size(), 7u) << out.dump(2);
  auto age = find_error(out, "/age", "maximum");
  EXPECT_NE(age.at("message").get<std::string>().find("150"),
            std::string::npos)
    << age.dump();
  auto tag = find_error(out, "/tags/1", "type");
  EXPECT_NE(tag.at("message").get<std::string>().find("got integer"),
            std::string::npos)
    << tag.dump();
}

TEST(ValidateTool, SchemaPointerFollowsLocalRefs) {
  auto t = make_validate();
  ASSERT_NE(t, nullptr);
  json schema = {
    {"definitions",
     {{"positive", {{"type", "number"}, {"exclusiveMinimum", 0}}}}},
    {"properties",
     {{"a", {{"$ref", "#/definitions/positive"}}},
      {"b", {{"allOf", {{{"$ref", "#/definitions/positive"}},
                        {{"maximum", 5}}}}}}}},
  };
  auto out = run(*t, {{"schema", schema},
                      {"instance", {{"a", 0}, {"b", 9}}}});
  ASSERT_FALSE(out.is_null());
  auto a = find_error(out, "/a", "exclusiveMinimum");
  ASSERT_FALSE(a.is_null()) << out.dump(2);
  EXPECT_EQ(a.at("schema_pointer"), "/definitions/positive/exclusiveMinimum");
  auto b = find_error(out, "/b", "maximum");
  ASSERT_FALSE(b.is_null()) << out.dump(2);
  EXPECT_EQ(b.at("schema_pointer"), "/properties/b/allOf/1/maximum");
}

TEST(ValidateTool, CombinatorsAndFalseSchemasAreErrorsToo) {
  auto t = make_validate();
  ASSERT_NE(t, nullptr);
  auto any = run(*t, {{"schema", {{"anyOf", {{{"type", "string"}},
                                             {{"minimum", 10}}}}}},
                      {"instance", 3}});
  ASSERT_FALSE(any.is_null());
  auto e = find_error(any, "", "anyOf");
  ASSERT_FALSE(e.is_null()) << any.dump(2);
  EXPECT_EQ(e.at("schema_pointer"), "/anyOf");
  auto no = run(*t, {{"schema", false}, {"instance", 1}});
  ASSERT_FALSE(no.is_null());
  EXPECT_FALSE(no.at("valid").get<bool>());
  EXPECT_FALSE(find_error(no, "", "false").is_null()) << no.dump(2);
  auto names = run(*t, {{"schema", {{"propertyNames", {{"maxLength", 3}}}}},
                        {"instance", {{"long_name", 1}}}});
  ASSERT_FALSE(names.is_null());
  EXPECT_FALSE(names.at("valid").get<bool>());
  auto p = find_error(names, "", "propertyNames");
  ASSERT_FALSE(p.is_null()) << names.dump(2);
  EXPECT_EQ(p.at("schema_pointer"), "/propertyNames");
}

TEST(ValidateTool, InvalidSchemaIsAnInputErrorNamingWhere) {
  auto t = make_validate();
  ASSERT_NE(t, nullptr);
  auto msg = error_of(*t, {{"schema", {{"properties",
                                        {{"a", {{"type", "strnig"}}}}}}},
                           {"instance", 1}});
  EXPECT_EQ(msg.rfind("tool validate: /schema/properties/a/type: ", 0), 0u)
    << msg;
  msg = error_of(*t, {{"schema", {{"minLength", "three"}}}, {"instance", 1}});
  EXPECT_EQ(msg.rfind("tool validate: /schema/minLength: ", 0), 0u) << msg;
  msg = error_of(*t, {{"schema", 42}, {"instance", 1}});
  EXPECT_EQ(msg.rfind("tool validate: /schema: ", 0), 0u) << msg;
  msg = error_of(*t, {{"schema", {{"$ref", "#/definitions/missing"}}},
                      {"instance", 1}});
  EXPECT_EQ(msg.rfind("tool validate: /schema: ", 0), 0u) << msg;
}

// Issue 12: {"$ref": "#"} made valijson recurse until the process died;
// a model could send it through an agent and crash every later start.
TEST(ValidateTool, RefCyclesAreSchemaErrorsNamingTheRef) {
  auto t = make_validate();
  ASSERT_NE(t, nullptr);
  struct cycle_case {
    json schema;
    std::string pointer;
  };
  const cycle_case cases[] = {
    {{{"$ref", "#"}}, "/schema/$ref"},
    {{{"definitions", {{"a", {{"$ref", "#/definitions/b"}}},
                       {"b", {{"$ref", "#/definitions/a"}}}}},
      {"$ref", "#/definitions/a"}},
     "/schema/definitions/"},
    {{{"allOf", {{{"$ref", "#"}}}}}, "/schema/allOf/0/$ref"},
    {{{"properties",
       {{"x", {{"anyOf", {{{"$ref", "#/properties/x"}}}}}}}}},
     "/schema/properties/x/anyOf/0/$ref"},
    {{{"$id", "http://example.com/root.json"},
      {"not", {{"$ref", "http://example.com/root.json"}}}},
     "/schema/not/$ref"},
  };
  for (const auto& c : cases) {
    auto msg = error_of(*t, {{"schema", c.schema}, {"instance", 1}});
    EXPECT_EQ(msg.rfind("tool validate: " + c.pointer, 0), 0u)
      << c.schema.dump() << ": " << msg;
    EXPECT_NE(msg.find("cycle"), std::string::npos) << msg;
  }
  // Recursion that moves on in the instance stays allowed.
  auto out = run(*t, {{"schema", {{"type", "object"},
                                  {"properties", {{"next", {{"$ref", "#"}}}}}}},
                      {"instance", {{"next", {{"next", json::object()}}}}}});
  EXPECT_EQ(out.value("valid", false), true) << out.dump();
}

// Issue 12: a cycle through remote documents crashed like a local one; it is
// refused the same way, naming the remote $ref that closes it.
TEST(ValidateTool, RefCyclesThroughRemoteDocumentsAreSchemaErrors) {
  test::temp_dir remotes;
  auto put = [&](const std::string& name, const json& doc) {
    std::ofstream{remotes / name} << doc.dump();
  };
  put("a.json", {{"$ref", "b.json"}});
  put("b.json", {{"$ref", "a.json"}});
  put("self.json", {{"allOf", {{{"$ref", "#"}}}}});
  put("loop.json", {{"not", {{"$ref", "http://h/loop.json"}}}});
  put("tree.json", {{"type", "object"},
                    {"properties", {{"next", {{"$ref", "tree.json"}}}}}});
  auto t = make_validate(json{{"remotes_dir", remotes.str()}});
  ASSERT_NE(t, nullptr);
  struct cycle_case {
    json schema;
    std::string closing; // the remote $ref named
  };
  const cycle_case cases[] = {
    {{{"$ref", "http://h/a.json"}},
     "remote $ref 'http://h/b.json': /$ref: $ref \"http://h/a.json\""},
    {{{"$ref", "http://h/self.json"}},
     "remote $ref 'http://h/self.json': /allOf/0/$ref: $ref \"#\""},
    {{{"$ref", "http://h/loop.json"}},
     "remote $ref 'http://h/loop.json': /not/$ref: $ref "
     "\"http://h/loop.json\""},
  };
  for (const auto& c : cases) {
    auto msg = error_of(*t, {{"schema", c.schema}, {"instance", 1}});
    EXPECT_EQ(msg.rfind("tool validate: /schema/$ref: " + c.closing, 0), 0u)
      << c.schema.dump() << ": " << msg;
    EXPECT_NE(msg.find("(a cycle)"), std::string::npos) << msg;
  }
  // Recursion through a remote document that moves on stays allowed.
  auto out = run(*t, {{"schema", {{"$ref", "http://h/tree.json"}}},
                      {"instance", {{"next", {{"next", 3}}}}}});
  EXPECT_EQ(out.value("valid", true), false) << out.dump();
  out = run(*t, {{"schema", {{"$ref", "http://h/tree.json"}}},
                 {"instance", {{"next", json::object()}}}});
  EXPECT_EQ(out.value("valid", false), true) << out.dump();
}

// Drafts 6 and 7: "integer" is any number with a zero fractional part (so
// tools accept 2.0 from Lua as their schemas say); draft 4 keeps floats out.
TEST(ValidateTool, IntegralFloatsAreIntegersFromDraftSix) {
  auto t = make_validate();
  ASSERT_NE(t, nullptr);
  json schema = {{"type", "object"},
                 {"properties", {{"n", {{"type", "integer"},
                                        {"maximum", 3}}}}}};
  for (int draft : {6, 7}) {
    auto out = run(*t, {{"schema", schema}, {"instance", {{"n", 2.0}}},
                        {"draft", draft}});
    EXPECT_EQ(out.value("valid", false), true) << draft << out.dump();
    out = run(*t, {{"schema", schema}, {"instance", {{"n", 2.5}}},
                   {"draft", draft}});
    EXPECT_EQ(out.value("valid", true), false) << draft << out.dump();
    out = run(*t, {{"schema", schema}, {"instance", {{"n", 4.0}}},
                   {"draft", draft}});
    EXPECT_EQ(out.value("valid", true), false) << draft << out.dump();
  }
  auto out = run(*t, {{"schema", schema}, {"instance", {{"n", 2.0}}},
                      {"draft", 4}});
  EXPECT_EQ(out.value("valid", true), false) << out.dump();
}

// Found by fuzz_json_schema: valijson reads a $ref that is neither
// "#..." nor an absolute URI as the root of the schema itself, so "http:/n"
// (no "//"), "a.json" or "" without a base recursed until the stack
// overflowed.
TEST(ValidateTool, RefsWithoutABaseAreSchemaErrorsNamingTheRef) {
  auto t = make_validate();
  ASSERT_NE(t, nullptr);
  const std::pair<json, std::string> cases[] = {
    {{{"$ref", "http:/n"}}, "/schema/$ref"},
    {{{"$ref", ""}}, "/schema/$ref"},
    {{{"$ref", "urn:x"}}, "/schema/$ref"},
    {{{"properties", {{"a", {{"$ref", "a.json#/definitions/x"}}}}}},
     "/schema/properties/a/$ref"},
  };
  for (const auto& [schema, pointer] : cases) {
    auto msg = error_of(*t, {{"schema", schema}, {"instance", {{"a", 1}}}});
    EXPECT_EQ(msg.rfind("tool validate: " + pointer, 0), 0u)
      << schema.dump() << ": " << msg;
    EXPECT_NE(msg.find("no $id gives it a base"), std::string::npos) << msg;
  }
  // With a base, a relative ref names a remote document, refused as such.
  auto msg = error_of(*t, {{"schema", {{"$id", "http://example.com/s.json"},
                                       {"$ref", "a.json"}}},
                           {"instance", 1}});
  EXPECT_NE(msg.find("http://example.com/a.json"), std::string::npos) << msg;
}

TEST(ValidateTool, DraftComesFromInputThenSchemaThenSeven) {
  auto t = make_validate();
  ASSERT_NE(t, nullptr);
  // Draft 4 spells an exclusive maximum as a boolean; 6 and 7 as a number.
  json d4 = {{"maximum", 10}, {"exclusiveMaximum", true}};
  auto out = run(*t, {{"schema", d4}, {"instance", 10}, {"draft", 4}});
  ASSERT_FALSE(out.is_null());
  EXPECT_FALSE(out.at("valid").get<bool>());
  EXPECT_FALSE(find_error(out, "", "maximum").is_null()) << out.dump(2);
  auto msg = error_of(*t, {{"schema", d4}, {"instance", 10}});
  EXPECT_NE(msg.find("/schema/exclusiveMaximum"), std::string::npos) << msg;
  EXPECT_NE(msg.find("draft-7"), std::string::npos) << msg;
  d4["$schema"] = "http://json-schema.org/draft-04/schema#";
  out = run(*t, {{"schema", d4}, {"instance", 10}});
  ASSERT_FALSE(out.is_null());
  EXPECT_FALSE(out.at("valid").get<bool>());
  json d7 = {{"exclusiveMaximum", 10}};
  out = run(*t, {{"schema", d7}, {"instance", 10}, {"draft", 6}});
  ASSERT_FALSE(out.is_null());
  auto e = find_error(out, "", "exclusiveMaximum");
  ASSERT_FALSE(e.is_null()) << out.dump(2);
  EXPECT_EQ(e.at("schema_pointer"), "/exclusiveMaximum");
  msg = error_of(*t, {{"schema", d7}, {"instance", 10}, {"draft", 4}});
  EXPECT_NE(msg.find("draft-4"), std::string::npos) << msg;
  EXPECT_NE(msg.find("/exclusiveMaximum: "), std::string::npos) << msg;
  msg = error_of(*t, {{"schema", d7}, {"instance", 10}, {"draft", 5}});
  EXPECT_EQ(msg.rfind("tool validate: /draft: ", 0), 0u) << msg;
}

TEST(ValidateTool, RemoteRefsAreRefusedUnlessServedFromADirectory) {
  auto t = make_validate();
  ASSERT_NE(t, nullptr);
  json schema = {{"$ref", "http://localhost:1234/integer.json"}};
  auto msg = error_of(*t, {{"schema", schema}, {"instance", 1}});
  EXPECT_EQ(msg.rfind("tool validate: /schema: remote $ref "
                      "'http://localhost:1234/integer.json'",
                      0),
            0u)
    << msg;
  EXPECT_NE(msg.find("tools.validate.remotes_dir"), std::string::npos)
    << msg;
  auto served = make_validate(json{{"remotes_dir", suite_dir / "remotes"}});
  ASSERT_NE(served, nullptr);
  auto out = run(*served, {{"schema", schema}, {"instance", "x"}});
  ASSERT_FALSE(out.is_null());
  EXPECT_FALSE(out.at("valid").get<bool>());
  msg = error_of(*served,
                 {{"schema", {{"$ref", "http://h/../../../etc/passwd"}}},
                  {"instance", 1}});
  EXPECT_NE(msg.find("leaves the remotes directory"), std::string::npos)
    << msg;
  // The drafts' meta-schemas resolve without any directory.
  out = run(*t, {{"schema",
                  {{"$ref", "http://json-schema.org/draft-07/schema#"}}},
                 {"instance", {{"type", 12}}}});
  ASSERT_FALSE(out.is_null());
  EXPECT_FALSE(out.at("valid").get<bool>());
}

TEST(ValidateTool, CachedSchemasGiveTheSameAnswers) {
  auto t = make_validate(json{{"cache_size", 1}});
  ASSERT_NE(t, nullptr);
  json small = {{"maximum", 5}};
  json big = {{"minimum", 5}};
  // With room for one schema, alternating evicts on every call.
  for (int round = 0; round < 3; ++round) {
    EXPECT_FALSE(run(*t, {{"schema", small}, {"instance", 9}})
                   .at("valid")
                   .get<bool>());
    EXPECT_TRUE(run(*t, {{"schema", big}, {"instance", 9}})
                  .at("valid")
                  .get<bool>());
    // The draft is part of the key: the same text, another meaning.
    json excl = {{"maximum", 5}, {"exclusiveMaximum", true}};
    EXPECT_FALSE(run(*t, {{"schema", excl}, {"instance", 5}, {"draft", 4}})
                   .at("valid")
                   .get<bool>());
    error_of(*t, {{"schema", excl}, {"instance", 5}, {"draft", 7}});
  }
}

TEST(ValidateTool, ErrorsAreCappedAndCounted) {
  auto t = make_validate(json{{"max_errors", 2}});
  ASSERT_NE(t, nullptr);
  auto out = run(*t, {{"schema", {{"items", {{"type", "string"}}}}},
                      {"instance", {1, 2, 3, 4, 5}}});
  ASSERT_FALSE(out.is_null());
  EXPECT_EQ(out.at("errors").size(), 2u);
  EXPECT_EQ(out.at("truncated"), 3);
}

// Issue 13 item 7: the input is checked by the published schema (a null
// draft was taken by the tool and refused by the schema).
TEST(ValidateTool, BadInputIsRefusedByTheSchemaNamingThePointer) {
  auto t = make_validate();
  ASSERT_NE(t, nullptr);
  test::expect_refused_by_schema(*t, {
    {{{"instance", 1}}, "/"},
    {{{"schema", true}}, "/"},
    {json::array(), "/"},
    {{{"schema", true}, {"instance", 1}, {"x", 1}}, "/"},
    {{{"schema", 3}, {"instance", 1}}, "/schema"},
    {{{"schema", true}, {"instance", 1}, {"draft", 5}}, "/draft"},
    {{{"schema", true}, {"instance", 1}, {"draft", nullptr}}, "/draft"},
  });
  test::expect_accepted_by_both(*t, {
    {{"schema", true}, {"instance", 1}},
    {{"schema", json::object()}, {"instance", nullptr}, {"draft", 4}},
  });
  // null means "no instance"? No: null is a JSON value like any other.
  auto out = run(*t, {{"schema", {{"type", "null"}}}, {"instance", nullptr}});
  EXPECT_TRUE(out.at("valid").get<bool>());
}

TEST(ValidateTool, BadSettingsNameTheKey) {
  tool_registry registry;
  register_builtin_tools(registry);
  auto t = registry.create("validate", json_value{json{{"cache_size", -1}}});
  ASSERT_FALSE(t);
  EXPECT_EQ(code_of(t.error()), errc::invalid_config);
  EXPECT_EQ(message_of(t.error()).rfind("tools.validate.cache_size: ", 0),
            0u);
  t = registry.create("validate", json_value{json{{"remotes_dir", 1}}});
  ASSERT_FALSE(t);
  EXPECT_EQ(message_of(t.error()).rfind("tools.validate.remotes_dir: ", 0),
            0u);
  t = registry.create("validate", json_value{json{{"nope", 1}}});
  ASSERT_FALSE(t);
  EXPECT_EQ(message_of(t.error()).rfind("tools.validate.nope: ", 0), 0u);
}

TEST(JsonSchema, CompiledSchemaIsSharedAcrossThreads) {
  auto s = json_schema::compile({{"type", "array"},
                                 {"items", {{"pattern", "^a+$"}}}});
  ASSERT_TRUE(s) << describe(s.error());
  std::vector<std::thread> threads;
  std::atomic<int> wrong{0};
  for (int i = 0; i < 4; ++i)
    threads.emplace_back([&] {
      for (int n = 0; n < 200; ++n) {
        if (!s->accepts(json{"a", "aa"}))
          ++wrong;
        if (s->validate(json{"a", "b"}).size() != 1)
          ++wrong;
      }
    });
  for (auto& th : threads)
    th.join();
  EXPECT_EQ(wrong.load(), 0);
}

TEST(JsonSchema, EveryBuiltinToolDescribesItselfWithValidSchemas) {
  tool_registry registry;
  register_builtin_tools(registry);
  for (const auto& name : registry.names()) {
    auto t = registry.create(name, json_value{});
    ASSERT_TRUE(t) << name << ": " << describe(t.error());
    auto d = (*t)->describe();
    for (const auto* schema : {&d.input_schema, &d.output_schema}) {
      std::string at;
      auto c = json_schema::compile(*schema, {}, &at);
      EXPECT_TRUE(c) << name << ": " << at << ": "
                     << (c ? "" : message_of(c.error()));
    }
  }
}
