// A program that embeds a node adds its own tool in-process
// (start_options::extra_tools): workflows call it like a built-in tool, it
// gets its config section, checked by the settings schema it declares, and
// names that clash or are malformed stop the start with an error naming the
// tool.

#include <algorithm>
#include <atomic>
#include <cctype>
#include <chrono>
#include <fstream>
#include <memory>

#include <caf/actor_system.hpp>
#include <caf/scoped_actor.hpp>
#include <gtest/gtest.h>

#include "cadre/messages/type_ids.hpp"
#include "cadre/runtime/node.hpp"
#include "temp_dir.hpp"

using namespace cadre;
using namespace std::chrono_literals;

namespace {

// The embedder's tool: upper-cases `text`, with the suffix from its settings,
// and counts its calls in an object of the embedding program.
class shout_tool final : public tools::tool {
public:
  shout_tool(std::string suffix, std::shared_ptr<std::atomic<int>> calls)
    : suffix_(std::move(suffix)), calls_(std::move(calls)) {
  }

  std::string name() const override {
    return "shout";
  }

  tools::tool_description describe() const override {
    return {"shout", "Upper-cases a text.",
            json{{"type", "object"},
                 {"properties", {{"text", {{"type", "string"}}}}},
                 {"required", {"text"}}},
            json{{"type", "object"}}};
  }

  bool blocking() const override {
    return false;
  }

  expected<json_value> invoke(const json_value& input,
                              tools::tool_context&) override {
    auto text = input->value("text", std::string{});
    std::transform(text.begin(), text.end(), text.begin(), [](unsigned char c) {
      return static_cast<char>(std::toupper(c));
    });
    ++*calls_;
    return json_value{json{{"text", text + suffix_}}};
  }

private:
  std::string suffix_;
  std::shared_ptr<std::atomic<int>> calls_;
};

tools::tool_factory
shout_factory(std::shared_ptr<std::atomic<int>> calls) {
  return [calls](const json_value& settings)
           -> expected<std::unique_ptr<tools::tool>> {
    std::string suffix = "!";
    if (settings->is_object())
      suffix = settings->value("suffix", suffix);
    return std::unique_ptr<tools::tool>{
      std::make_unique<shout_tool>(suffix, calls)};
  };
}

// The JSON Schema of shout's settings, as the embedder declares it.
json shout_settings_schema() {
  return json{{"type", "object"},
              {"properties",
               {{"suffix",
                 {{"type", "string"}, {"maxLength", 3},
                  {"description", "Appended to every answer."}}}}},
              {"additionalProperties", false}};
}

json shouting_workflow() {
  return json{{"name", "shouting"},
              {"version", "1"},
              {"tasks",
               {{{"id", "loud"},
                 {"tool", "shout"},
                 {"input", {{"text", "{{ input.text }}"}}}}}},
              {"output", "{{ tasks.loud.output.text }}"}};
}

// Runs the shouting workflow on `node` with `text` to its end.
execution_info shout_through(runtime::node& node, const std::string& text) {
  submit_request req;
  req.definition = json_value{shouting_workflow()};
  req.input = json_value{json{{"text", text}}};
  caf::scoped_actor self{node.system()};
  std::string id;
  self->request(node.executions(), 60s, submit_atom_v, req)
    .receive([&](std::string& x) { id = std::move(x); },
             [&](caf::error& err) { ADD_FAILURE() << describe(err); });
  execution_info info;
  self->request(node.executions(), 120s, await_atom_v, id)
    .receive([&](execution_info& x) { info = std::move(x); },
             [&](caf::error& err) { ADD_FAILURE() << describe(err); });
  return info;
}

} // namespace

TEST(ExtraTools, WorkflowRunsAnEmbeddersToolLikeABuiltInOne) {
  test::temp_dir dir;
  config::node_config cfg;
  cfg.store_dir = dir.str();
  cfg.default_workers = 2;
  cfg.tools["shout"].settings = json{{"suffix", "!!"}};
  auto calls = std::make_shared<std::atomic<int>>(0);
  runtime::start_options opts;
  opts.extra_tools["shout"] = shout_factory(calls);
  auto n = runtime::node::start(cfg, opts);
  ASSERT_TRUE(n) << describe(n.error());
  auto& node = **n;
  auto names = node.tool_names();
  EXPECT_NE(std::find(names.begin(), names.end(), "shout"), names.end());
  EXPECT_NE(std::find(names.begin(), names.end(), "echo"), names.end());
  ASSERT_TRUE(node.pool("shout"));

  auto info = shout_through(node, "hello");
  EXPECT_EQ(info.status, "completed") << info.error;
  EXPECT_EQ(*info.output, json("HELLO!!"));
  EXPECT_EQ(calls->load(), 1);
}

TEST(ExtraTools, AToolsSettingsSchemaChecksItsConfigSectionAtStart) {
  test::temp_dir dir;
  auto file = dir / "cadre.yaml";
  auto calls = std::make_shared<std::atomic<int>>(0);
  auto start = [&](const std::string& shout) {
    std::ofstream{file} << "store: {dir: " << (dir / "store")
                        << "}\ntools:\n  shout: " << shout << "\n";
    auto cfg = config::load_file(file);
    EXPECT_TRUE(cfg) << describe(cfg.error());
    runtime::start_options opts;
    opts.extra_tools["shout"] = {shout_factory(calls), shout_settings_schema()};
    return runtime::node::start(*cfg, opts);
  };
  auto n = start("{sufix: '?'}");
  ASSERT_FALSE(n);
  EXPECT_EQ(code_of(n.error()), errc::invalid_config);
  EXPECT_EQ(message_of(n.error()),
            file + ": tools.shout.sufix: unknown setting (known: enabled, "
                   "max_queue, suffix, workers)");
  n = start("{suffix: 7, workers: 0}");
  ASSERT_FALSE(n);
  EXPECT_EQ(message_of(n.error()),
            file + ": tools.shout.suffix: must be a string; "
                   "tools.shout.workers: must be an integer >= 1");
  EXPECT_EQ(calls->load(), 0);
  n = start("{suffix: '?', workers: 1}");
  ASSERT_TRUE(n) << describe(n.error());
  auto& node = **n;
  auto info = shout_through(node, "hey");
  EXPECT_EQ(info.status, "completed") << info.error;
  EXPECT_EQ(*info.output, json("HEY?"));
}

TEST(ExtraTools, NameOfABuiltInToolStopsTheStart) {
  test::temp_dir dir;
  config::node_config cfg;
  cfg.store_dir = dir.str();
  runtime::start_options opts;
  opts.extra_tools["echo"]
    = shout_factory(std::make_shared<std::atomic<int>>(0));
  auto n = runtime::node::start(cfg, opts);
  ASSERT_FALSE(n);
  EXPECT_EQ(code_of(n.error()), errc::invalid_config);
  EXPECT_NE(describe(n.error()).find("'echo' is already registered"),
            std::string::npos)
    << describe(n.error());
}

TEST(ExtraTools, MalformedNameOrMissingFactoryStopsTheStart) {
  const std::pair<std::string, std::string> cases[] = {
    {"two words", "tool name 'two words'"},
    {"", "tool name ''"},
    {"fine_name", "'fine_name' was given no factory"},
  };
  for (auto& [name, message] : cases) {
    test::temp_dir dir;
    config::node_config cfg;
    cfg.store_dir = dir.str();
    runtime::start_options opts;
    if (name != "fine_name")
      opts.extra_tools[name]
        = shout_factory(std::make_shared<std::atomic<int>>(0));
    else
      opts.extra_tools[name] = nullptr;
    auto n = runtime::node::start(cfg, opts);
    ASSERT_FALSE(n) << name;
    EXPECT_NE(describe(n.error()).find(message), std::string::npos)
      << describe(n.error());
  }
}
