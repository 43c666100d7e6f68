// Tools as the providers get them: every built-in tool's input schema,
// offered to a model, keeps to the rules OpenAI and Anthropic check (an
// object at the top, no top-level combinator), and what a rewrite loses is
// said in the description.

#include <set>
#include <string>

#include <gtest/gtest.h>

#include "cadre/tools/tool.hpp"
#include "cadre/tools/tool_registry.hpp"
#include "llm/llm_support.hpp"

using namespace cadre;
using namespace cadre::tools;

namespace {

// What OpenAI (function parameters) and Anthropic (input_schema) refuse at
// the top of a tool's schema.
std::string provider_rule_broken(const json& schema) {
  if (!schema.is_object())
    return "not an object";
  if (schema.value("type", json{}) != "object")
    return "type is not \"object\"";
  for (const char* k : {"oneOf", "anyOf", "allOf", "enum", "not"})
    if (schema.contains(k))
      return std::string{"top-level "} + k;
  if (!schema.contains("properties") || !schema["properties"].is_object())
    return "no properties object";
  return {};
}

llm_tool_spec spec_of(const std::string& name, json parameters) {
  llm_tool_spec t;
  t.name = name;
  t.description = "a tool";
  t.parameters = json_value{std::move(parameters)};
  return t;
}

} // namespace

TEST(OfferedTools, EveryBuiltInToolKeepsToTheProvidersRules) {
  tool_registry registry;
  register_builtin_tools(registry);
  for (const auto& name : registry.names()) {
    auto t = registry.create(name, json_value{json::object()});
    ASSERT_TRUE(t) << name;
    auto d = (*t)->describe();
    auto offered = llm::detail::offer(spec_of(name, d.input_schema));
    EXPECT_EQ(provider_rule_broken(offered.parameters), "")
      << name << ": " << offered.parameters.dump();
    // Nothing a tool declares is dropped silently.
    if (d.input_schema.contains("properties")) {
      for (auto& [k, v] : d.input_schema["properties"].items()) {
        EXPECT_TRUE(offered.parameters["properties"].contains(k))
          << name << "/" << k;
      }
    }
  }
}

TEST(OfferedTools, ASchemaWithoutTypeBecomesAnObject) {
  auto t = llm::detail::offer(
    spec_of("echo", json{{"description", "anything"}}));
  EXPECT_EQ(t.parameters["type"], "object");
  EXPECT_TRUE(t.parameters["properties"].is_object());
  auto none = llm::detail::offer(spec_of("x", nullptr));
  EXPECT_EQ(provider_rule_broken(none.parameters), "");
}

TEST(OfferedTools, TopLevelOneOfIsMergedAndNamedInTheDescription) {
  json schema = json::parse(R"js({"oneOf": [
    {"type": "object", "properties": {"path": {"type": "string"}},
     "required": ["path", "lang"]},
    {"type": "object", "properties": {"data": {"type": "string"}},
     "required": ["data", "lang"]}],
    "properties": {"lang": {"type": "string"}}})js");
  auto t = llm::detail::offer(spec_of("ocr", schema));
  EXPECT_EQ(provider_rule_broken(t.parameters), "") << t.parameters.dump();
  for (const char* k : {"path", "data", "lang"})
    EXPECT_TRUE(t.parameters["properties"].contains(k)) << k;
  // Only what every form requires stays required.
  EXPECT_EQ(t.parameters["required"], json::array({"lang"}));
  EXPECT_NE(t.description.find("one of these forms"), std::string::npos);
  EXPECT_NE(t.description.find("\"path\""), std::string::npos);
  EXPECT_EQ(t.description.rfind("a tool", 0), 0u);
}
