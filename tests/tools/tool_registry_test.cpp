#include <algorithm>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "cadre/tools/tool_registry.hpp"

using namespace cadre;
using namespace cadre::tools;

namespace {

/// A minimal tool, as an embedder would register one.
class constant_tool final : public tool {
public:
  explicit constant_tool(json value) : value_(std::move(value)) {
  }
  std::string name() const override {
    return "constant";
  }
  tool_description describe() const override {
    return {"constant", "Returns a fixed value.", json::object(),
            json::object()};
  }
  bool blocking() const override {
    return false;
  }
  expected<json_value> invoke(const json_value&, tool_context&) override {
    return json_value{value_};
  }

private:
  json value_;
};

expected<std::unique_ptr<tool>> make_constant_tool(const json_value& cfg) {
  if (cfg.is_null() || !cfg->contains("value"))
    return make_error(errc::invalid_config, "tools.constant.value: required");
  return std::unique_ptr<tool>{
    std::make_unique<constant_tool>(cfg->at("value"))};
}

expected<std::unique_ptr<tool>> make_null_tool(const json_value&) {
  return std::unique_ptr<tool>{};
}

} // namespace

TEST(ToolRegistry, RegistersEveryBuiltinTool) {
  tool_registry registry;
  register_builtin_tools(registry);
  const std::vector<std::string> expected_names{
    "airflow", "chaos",  "echo",   "fail",  "file", "http",
    "notify",  "ocr",    "script", "search", "sleep", "sql",
    "validate"};
  EXPECT_EQ(registry.names(), expected_names);
  for (const auto& name : expected_names) {
    EXPECT_TRUE(registry.contains(name)) << name;
    auto t = registry.create(name, json_value{});
    ASSERT_TRUE(t) << name << ": " << describe(t.error());
    ASSERT_NE(*t, nullptr) << name;
    EXPECT_EQ((*t)->name(), name);
    auto d = (*t)->describe();
    EXPECT_EQ(d.name, name);
    EXPECT_FALSE(d.description.empty()) << name;
    EXPECT_TRUE(d.input_schema.is_object()) << name;
    EXPECT_TRUE(d.output_schema.is_object()) << name;
  }
}

TEST(ToolRegistry, EmptyObjectSettingsMeanDefaults) {
  tool_registry registry;
  register_builtin_tools(registry);
  for (const auto& name : registry.names()) {
    auto t = registry.create(name, json_value{json::object()});
    EXPECT_TRUE(t) << name << ": " << describe(t.error());
  }
}

TEST(ToolRegistry, UnknownToolIsToolNotFound) {
  tool_registry registry;
  register_builtin_tools(registry);
  EXPECT_FALSE(registry.contains("ocr2"));
  auto t = registry.create("ocr2", json_value{});
  ASSERT_FALSE(t);
  EXPECT_EQ(code_of(t.error()), errc::tool_not_found);
  auto msg = message_of(t.error());
  EXPECT_NE(msg.find("'ocr2'"), std::string::npos) << msg;
  EXPECT_NE(msg.find("echo"), std::string::npos) << msg;
}

TEST(ToolRegistry, EmptyRegistryFindsNothing) {
  tool_registry registry;
  EXPECT_TRUE(registry.names().empty());
  auto t = registry.create("echo", json_value{});
  ASSERT_FALSE(t);
  EXPECT_EQ(code_of(t.error()), errc::tool_not_found);
}

TEST(ToolRegistry, FactoryErrorsNameTheKey) {
  tool_registry registry;
  register_builtin_tools(registry);
  struct bad_case {
    std::string tool;
    json settings;
    std::string message;
  };
  const bad_case cases[] = {
    {"sleep", json{{"max_ms", "soon"}},
     "tools.sleep.max_ms: must be an integer >= 0"},
    {"chaos", json{{"max_ms", -1}},
     "tools.chaos.max_ms: must be an integer >= 0"},
    {"script", json{{"instruction_limit", 0}},
     "tools.script.instruction_limit: must be an integer >= 1"},
    {"script", json{{"memory_limit", "16M"}},
     "tools.script.memory_limit: must be an integer >= 262144"},
    {"fail", json::array(), "tools.fail: must be an object"},
    {"echo", json("x"), "tools.echo: must be an object"},
  };
  for (const auto& c : cases) {
    auto t = registry.create(c.tool, json_value{c.settings});
    ASSERT_FALSE(t) << c.tool << " " << c.settings.dump();
    EXPECT_EQ(code_of(t.error()), errc::invalid_config);
    EXPECT_EQ(message_of(t.error()), c.message);
  }
}

TEST(ToolRegistry, AddsAndReplacesCustomFactories) {
  tool_registry registry;
  register_builtin_tools(registry);
  registry.add("constant", &make_constant_tool);
  EXPECT_TRUE(registry.contains("constant"));
  auto bad = registry.create("constant", json_value{});
  ASSERT_FALSE(bad);
  EXPECT_EQ(message_of(bad.error()), "tools.constant.value: required");
  auto t = registry.create("constant", json_value{json{{"value", 42}}});
  ASSERT_TRUE(t) << describe(t.error());
  tool_context ctx;
  auto out = (*t)->invoke(json_value{}, ctx);
  ASSERT_TRUE(out);
  EXPECT_EQ(out->get(), json(42));
  // Replacing a name keeps one entry.
  auto before = registry.names().size();
  registry.add("echo", &make_constant_tool);
  EXPECT_EQ(registry.names().size(), before);
  EXPECT_FALSE(registry.create("echo", json_value{}));
}

TEST(ToolRegistry, FactoryLookupCallsTheRegisteredFunction) {
  tool_registry registry;
  register_builtin_tools(registry);
  EXPECT_EQ(registry.factory("ocr2"), nullptr);
  registry.add("constant", &make_constant_tool);
  auto constant = registry.factory("constant");
  ASSERT_NE(constant, nullptr);
  auto bad = constant(json_value{});
  ASSERT_FALSE(bad);
  EXPECT_EQ(message_of(bad.error()), "tools.constant.value: required");
  auto made = constant(json_value{json{{"value", 1}}});
  ASSERT_TRUE(made) << describe(made.error());
  EXPECT_EQ((*made)->name(), "constant");
  auto echo = registry.factory("echo");
  ASSERT_NE(echo, nullptr);
  auto t = echo(json_value{});
  ASSERT_TRUE(t) << describe(t.error());
  EXPECT_EQ((*t)->name(), "echo");
}

TEST(ToolRegistry, FactoryReturningNoToolIsAnInternalError) {
  tool_registry registry;
  registry.add("null", &make_null_tool);
  auto t = registry.create("null", json_value{});
  ASSERT_FALSE(t);
  EXPECT_EQ(code_of(t.error()), errc::internal);
}

TEST(ToolRegistry, ExtraToolFromACapturingLambdaIsCreatedWithItsState) {
  tool_registry registry;
  register_builtin_tools(registry);
  json fixed = {{"answer", 42}};
  auto added = registry.add_extra(
    "constant", [fixed](const json_value&) -> expected<std::unique_ptr<tool>> {
      return std::unique_ptr<tool>{std::make_unique<constant_tool>(fixed)};
    });
  ASSERT_TRUE(added) << describe(added.error());
  auto t = registry.create("constant", json_value{});
  ASSERT_TRUE(t) << describe(t.error());
  tool_context ctx;
  auto out = (*t)->invoke(json_value{}, ctx);
  ASSERT_TRUE(out) << describe(out.error());
  EXPECT_EQ(out->get(), fixed);
}

// An embedder's tool declares the schema of its settings: they are checked
// before its factory runs, in the form the built-in tools' are.
TEST(ToolRegistry, ExtraToolWithASettingsSchemaIsCheckedLikeABuiltinOne) {
  tool_registry registry;
  register_builtin_tools(registry);
  int calls = 0;
  json schema{{"type", "object"},
              {"properties",
               {{"value", {{"type", "integer"}, {"minimum", 1},
                           {"maximum", 9}}}}},
              {"required", {"value"}},
              {"additionalProperties", false}};
  auto added = registry.add_extra(
    "constant",
    {[&calls](const json_value& cfg) {
       ++calls;
       return make_constant_tool(cfg);
     },
     schema});
  ASSERT_TRUE(added) << describe(added.error());
  EXPECT_EQ(registry.settings_schema("constant"), schema);
  auto bad = registry.create("constant", json_value{json{{"value", 12}}});
  ASSERT_FALSE(bad);
  EXPECT_EQ(code_of(bad.error()), errc::invalid_config);
  EXPECT_EQ(message_of(bad.error()),
            "tools.constant.value: must be an integer in [1, 9]");
  auto typo = registry.check_settings("constant",
                                      json{{"value", 1}, {"valeu", 2}});
  ASSERT_FALSE(typo);
  EXPECT_EQ(message_of(typo.error()),
            "tools.constant.valeu: unknown setting (known: enabled, "
            "max_queue, value, workers)");
  auto pool = registry.check_settings("constant", json{{"value", 1},
                                                       {"workers", 0}});
  ASSERT_FALSE(pool);
  EXPECT_EQ(message_of(pool.error()),
            "tools.constant.workers: must be an integer >= 1");
  EXPECT_EQ(calls, 0);
  auto good = registry.create("constant",
                              json_value{json{{"value", 3}, {"workers", 2}}});
  ASSERT_TRUE(good) << describe(good.error());
  EXPECT_EQ(calls, 1);
}

// A tool registered without a schema (a program written before schemas
// could be declared) takes any settings of its own; the pool's keys are
// still checked.
TEST(ToolRegistry, ExtraToolWithoutASchemaTakesAnySettingsButBadPoolKeys) {
  tool_registry registry;
  ASSERT_TRUE(registry.add_extra("constant", &make_constant_tool));
  EXPECT_TRUE(registry.settings_schema("constant").is_null());
  auto t = registry.create("constant",
                           json_value{json{{"value", 1}, {"anything", 2}}});
  ASSERT_TRUE(t) << describe(t.error());
  auto pool = registry.check_settings("constant", json{{"enabled", 1}});
  ASSERT_FALSE(pool);
  EXPECT_EQ(message_of(pool.error()),
            "tools.constant.enabled: must be true or false");
}

TEST(ToolRegistry, ExtraToolWithABadSchemaIsRefused) {
  tool_registry registry;
  const std::pair<json, std::string> cases[] = {
    {json{{"type", "object"},
          {"properties", {{"workers", {{"type", "string"}}}}}},
     "tool constant: the settings schema declares 'workers', a key of the "
     "tool's pool"},
    {json{{"type", "object"}, {"minProperties", "two"}},
     "tool constant: the settings schema does not compile"},
    {json::array(), "tool constant: the settings schema is not a JSON object"},
  };
  for (const auto& [schema, message] : cases) {
    auto added = registry.add_extra("constant", {&make_constant_tool, schema});
    ASSERT_FALSE(added) << schema;
    EXPECT_EQ(code_of(added.error()), errc::invalid_config);
    EXPECT_EQ(message_of(added.error()).rfind(message, 0), 0u)
      << message_of(added.error());
    EXPECT_FALSE(registry.contains("constant"));
  }
}

TEST(ToolRegistry, ExtraToolIsRefusedForATakenNameABadNameOrNoFactory) {
  tool_registry registry;
  register_builtin_tools(registry);
  auto before = registry.names();
  struct bad_case {
    std::string name;
    tool_factory factory;
    std::string message;
  };
  const bad_case cases[] = {
    {"echo", &make_constant_tool, "tool 'echo' is already registered"},
    {"", &make_constant_tool, "tool name '': use 1 to 64"},
    {"a/b", &make_constant_tool, "tool name 'a/b'"},
    {std::string(65, 'x'), &make_constant_tool, "use 1 to 64"},
    {"constant", nullptr, "tool 'constant' was given no factory"},
  };
  for (const auto& c : cases) {
    auto added = registry.add_extra(c.name, c.factory);
    ASSERT_FALSE(added) << c.name;
    EXPECT_EQ(code_of(added.error()), errc::invalid_config) << c.name;
    EXPECT_NE(message_of(added.error()).find(c.message), std::string::npos)
      << message_of(added.error());
  }
  EXPECT_EQ(registry.names(), before);
  auto echo = registry.create("echo", json_value{});
  ASSERT_TRUE(echo);
  EXPECT_EQ((*echo)->name(), "echo");
}
