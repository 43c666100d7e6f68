// Each built-in tool's settings (`tools.<name>`) are checked by the JSON
// Schema declared beside its factory: a bad value and an unknown key are
// refused before the factory runs, naming the key, and docs/tools.md lists
// every setting the schema has.

#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "cadre/lang/json_schema.hpp"
#include "cadre/tools/tool_registry.hpp"

using namespace cadre;
using namespace cadre::tools;

namespace {

tool_registry builtin() {
  tool_registry registry;
  register_builtin_tools(registry);
  return registry;
}

std::string refusal(const tool_registry& registry, const std::string& name,
                    const json& settings) {
  auto t = registry.create(name, json_value{settings});
  if (t)
    return "accepted";
  EXPECT_EQ(code_of(t.error()), errc::invalid_config) << name;
  return message_of(t.error());
}

} // namespace

TEST(ToolSettings, EveryBuiltinToolDeclaresAClosedSchema) {
  auto registry = builtin();
  for (const auto& name : registry.names()) {
    const auto& schema = registry.settings_schema(name);
    ASSERT_TRUE(schema.is_object()) << name;
    EXPECT_TRUE(json_schema::compile(schema)) << name;
    EXPECT_EQ(schema.value("type", ""), "object") << name;
    EXPECT_EQ(schema.value("additionalProperties", json(true)), false) << name;
    for (const auto& [key, sub] : schema.at("properties").items())
      EXPECT_TRUE(sub.contains("description")) << name << "." << key;
  }
}

TEST(ToolSettings, ABadSettingOfEachToolIsRefusedNamingTheKey) {
  auto registry = builtin();
  struct bad_case {
    std::string tool;
    json settings;
    std::string message;
  };
  const std::vector<bad_case> cases = {
    {"airflow", {{"page_size", 0}},
     "tools.airflow.page_size: must be an integer in [1, 10000]"},
    {"airflow", {{"connections", {{"prod", {{"max_retries", 11}}}}}},
     "tools.airflow.connections.prod.max_retries: must be an integer in "
     "[0, 10]"},
    {"chaos", {{"allow_abort", "yes"}},
     "tools.chaos.allow_abort: must be true or false"},
    {"echo", {{"verbose", true}},
     "tools.echo.verbose: unknown setting (known: enabled, max_queue, "
     "workers)"},
    {"fail", {{"times", 1}},
     "tools.fail.times: unknown setting (known: enabled, max_queue, "
     "workers)"},
    {"file", {{"max_read_bytes", 0}},
     "tools.file.max_read_bytes: must be an integer >= 1"},
    {"http", {{"fail_on_status", "sometimes"}},
     "tools.http.fail_on_status: must be one of never, server_errors, "
     "all_errors"},
    {"http", {{"allowed_hosts", {"example.com", ""}}},
     "tools.http.allowed_hosts[1]: must be a non-empty string"},
    {"notify", {{"headers", {{"X-A", "a\nb"}}}},
     "tools.notify.headers.X-A: must be a string without line breaks"},
    {"ocr", {{"dpi", 10}}, "tools.ocr.dpi: must be an integer in [50, 1200]"},
    {"ocr", {{"languages", json::array()}},
     "tools.ocr.languages: must have at least 1 item"},
    {"script", {{"memory_limit", "16M"}},
     "tools.script.memory_limit: must be an integer >= 262144"},
    {"search", {{"provider", "bing"}},
     "tools.search.provider: must be one of searxng, duckduckgo, none"},
    {"sleep", {{"max_ms", -1}}, "tools.sleep.max_ms: must be an integer >= 0"},
    {"sql", {{"databases", {{"main", {{"driver", "oracle"}}}}}},
     "tools.sql.databases.main.driver: must be one of sqlite, postgres"},
    {"validate", {{"cache_size", 100001}},
     "tools.validate.cache_size: must be an integer in [0, 100000]"},
  };
  for (const auto& c : cases)
    EXPECT_EQ(refusal(registry, c.tool, c.settings), c.message)
      << c.tool << " " << c.settings.dump();
}

TEST(ToolSettings, AnUnknownKeyIsNamedWithTheKnownOnes) {
  auto registry = builtin();
  for (const auto& name : registry.names()) {
    auto msg = refusal(registry, name, json{{"tiemout", 1}});
    EXPECT_EQ(msg.rfind("tools." + name + ".tiemout: unknown setting (known: ",
                        0),
              0u)
      << msg;
  }
  EXPECT_EQ(refusal(registry, "sql",
                    {{"databases", {{"main", {{"pasword", "x"}}}}}}),
            "tools.sql.databases.main.pasword: unknown setting (known: "
            "driver, path, read_only, url, url_env)");
  EXPECT_EQ(refusal(registry, "ocr", {{"psm", 3}}),
            "tools.ocr.psm: unknown setting (known: dpi, enabled, languages, "
            "max_input_bytes, max_pages, max_queue, pages_per_part, root, "
            "tessdata, workers)");
}

TEST(ToolSettings, EveryProblemIsSaidAtOnce) {
  auto registry = builtin();
  EXPECT_EQ(refusal(registry, "sleep", {{"max_ms", "x"}, {"max", 1}}),
            "tools.sleep.max_ms: must be an integer >= 0; "
            "tools.sleep.max: unknown setting (known: enabled, max_ms, "
            "max_queue, workers)");
}

// The pool's keys are declared once, by pool_settings_schema(), and checked
// with every tool's own settings, in the same located form.
TEST(ToolSettings, ThePoolKeysOfEveryToolAreCheckedByTheCommonSchema) {
  auto registry = builtin();
  for (const auto& name : registry.names()) {
    EXPECT_EQ(refusal(registry, name, {{"workers", 0}}),
              "tools." + name + ".workers: must be an integer >= 1");
    EXPECT_EQ(refusal(registry, name, {{"max_queue", "many"}}),
              "tools." + name + ".max_queue: must be an integer >= 1");
    EXPECT_EQ(refusal(registry, name, {{"enabled", "yes"}}),
              "tools." + name + ".enabled: must be true or false");
    auto ok = registry.check_settings(
      name, json{{"workers", 4}, {"max_queue", 9}, {"enabled", false}});
    EXPECT_TRUE(ok) << describe(ok.error());
  }
  EXPECT_EQ(refusal(registry, "sleep", {{"workers", -1}, {"max_ms", "x"}}),
            "tools.sleep.max_ms: must be an integer >= 0; "
            "tools.sleep.workers: must be an integer >= 1");
  auto pool = pool_settings_of(json{{"workers", 4}, {"max_queue", 9},
                                    {"enabled", false}, {"max_ms", 5}});
  EXPECT_EQ(pool.workers, 4u);
  EXPECT_EQ(pool.max_queue, 9u);
  EXPECT_FALSE(pool.enabled);
  auto defaults = pool_settings_of(json{{"workers", nullptr}});
  EXPECT_EQ(defaults.workers, 0u);
  EXPECT_EQ(defaults.max_queue, 0u);
  EXPECT_TRUE(defaults.enabled);
}

TEST(ToolSettings, TheFactorySeesNoPoolKeys) {
  tool_registry registry;
  json seen;
  registry.add(
    "probe",
    [&seen](const json_value& settings) -> expected<std::unique_ptr<tool>> {
      seen = settings.get();
      return make_error(errc::invalid_config, "seen");
    },
    json{{"type", "object"},
         {"properties", {{"depth", {{"type", "integer"}}}}},
         {"additionalProperties", false}});
  (void) registry.create("probe", json_value{json{{"depth", 2},
                                                  {"workers", 3},
                                                  {"enabled", true}}});
  EXPECT_EQ(seen, (json{{"depth", 2}}));
  (void) registry.factory("probe")(json_value{json{{"max_queue", 7}}});
  EXPECT_EQ(seen, json::object());
}

TEST(ToolSettings, ANullSettingMeansItsDefault) {
  auto registry = builtin();
  EXPECT_EQ(refusal(registry, "sleep", {{"max_ms", nullptr}}), "accepted");
  EXPECT_EQ(refusal(registry, "file", {{"root", nullptr}}), "accepted");
}

TEST(ToolSettings, TheCheckGuardsTheFactoryHandedToPools) {
  auto registry = builtin();
  auto factory = registry.factory("sleep");
  ASSERT_TRUE(factory);
  auto t = factory(json_value{json{{"max_ms", "soon"}}});
  ASSERT_FALSE(t);
  EXPECT_EQ(message_of(t.error()),
            "tools.sleep.max_ms: must be an integer >= 0");
}

TEST(ToolSettings, DocsNameEverySettingOfEveryTool) {
  std::ifstream in{std::string{CADRE_SOURCE_DIR} + "/docs/tools.md"};
  ASSERT_TRUE(in);
  std::stringstream text;
  text << in.rdbuf();
  auto doc = text.str();
  auto section = [&](const std::string& name) {
    auto begin = doc.find("\n## " + name + "\n");
    EXPECT_NE(begin, std::string::npos) << name;
    auto end = doc.find("\n## ", begin + 1);
    return doc.substr(begin, end - begin);
  };
  auto registry = builtin();
  const auto http = section("http");
  const auto& net = registry.settings_schema("http").at("properties");
  for (const auto& name : registry.names()) {
    auto own = section(name);
    for (const auto& [key, sub] :
         registry.settings_schema(name).at("properties").items()) {
      // notify and search take http's network keys, documented there.
      bool shared = name != "http" && net.contains(key)
                    && own.find("network keys") != std::string::npos
                    && http.find("| `" + key + "` |") != std::string::npos;
      EXPECT_TRUE(shared || own.find("`" + key + "`") != std::string::npos)
        << "docs/tools.md, ## " << name << ": setting `" << key
        << "` is not named";
    }
  }
}
