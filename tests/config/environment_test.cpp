// CADRE_* variables over a node config: the LLM variables set or override
// the `default` LLM profile, and every bad value is an error naming its
// variable.

#include <cstdlib>
#include <fstream>
#include <map>
#include <optional>
#include <string>

#include <gtest/gtest.h>

#include "cadre/config/node_config.hpp"
#include "temp_dir.hpp"

using namespace cadre;

namespace {

const char* const llm_vars[] = {"CADRE_LLM_KIND", "CADRE_LLM_BASE_URL",
                                "CADRE_LLM_MODEL", "CADRE_LLM_API_KEY_ENV",
                                "CADRE_LLM_TIMEOUT"};

/// Sets variables for one test and restores the LLM ones (unset before it
/// unless the machine had them) afterwards.
class env_guard {
public:
  env_guard() {
    for (auto* name : llm_vars) {
      if (auto* v = std::getenv(name))
        saved_[name] = v;
      ::unsetenv(name);
    }
  }
  ~env_guard() {
    for (auto* name : llm_vars) {
      if (auto i = saved_.find(name); i != saved_.end())
        ::setenv(name, i->second.c_str(), 1);
      else
        ::unsetenv(name);
    }
  }
  env_guard(const env_guard&) = delete;
  env_guard& operator=(const env_guard&) = delete;

  void set(const char* name, const std::string& value) {
    ::setenv(name, value.c_str(), 1);
  }

private:
  std::map<std::string, std::string> saved_;
};

config::node_config from_yaml(const test::temp_dir& dir,
                              const std::string& text) {
  auto path = dir / "cadre.yaml";
  std::ofstream{path} << text;
  auto cfg = config::load_file(path);
  EXPECT_TRUE(cfg) << describe(cfg.error());
  return cfg ? *cfg : config::node_config{};
}

/// The error's message, or "" when `r` holds a config.
std::string error_of(const expected<config::node_config>& r) {
  return r ? std::string{} : describe(r.error());
}

} // namespace

TEST(ConfigEnvironment, WithoutLlmVariablesTheLlmSectionIsUnchanged) {
  env_guard env;
  test::temp_dir dir;
  auto cfg = from_yaml(dir, "llm:\n  profiles:\n    default:\n"
                            "      kind: scripted\n      turns: []\n");
  auto before = cfg.llm;
  auto out = config::apply_environment(cfg);
  ASSERT_TRUE(out) << describe(out.error());
  EXPECT_EQ(out->llm, before);
  auto bare = config::apply_environment(config::node_config{});
  ASSERT_TRUE(bare);
  EXPECT_EQ(bare->llm, json::object());
}

TEST(ConfigEnvironment, LlmVariablesMakeTheDefaultProfile) {
  env_guard env;
  env.set("CADRE_LLM_KIND", "openai");
  env.set("CADRE_LLM_BASE_URL", "http://127.0.0.1:8000/v1");
  env.set("CADRE_LLM_MODEL", "Qwen/Qwen2.5-7B-Instruct");
  env.set("CADRE_LLM_API_KEY_ENV", "VLLM_API_KEY");
  env.set("CADRE_LLM_TIMEOUT", "90s");
  auto out = config::apply_environment(config::node_config{});
  ASSERT_TRUE(out) << describe(out.error());
  EXPECT_EQ(out->llm["profiles"]["default"],
            (json{{"kind", "openai"},
                  {"base_url", "http://127.0.0.1:8000/v1"},
                  {"model", "Qwen/Qwen2.5-7B-Instruct"},
                  {"api_key_env", "VLLM_API_KEY"},
                  {"timeout", "90s"}}));
}

TEST(ConfigEnvironment, TimeoutInDigitsIsMilliseconds) {
  env_guard env;
  env.set("CADRE_LLM_KIND", "ollama");
  env.set("CADRE_LLM_TIMEOUT", "300000");
  auto out = config::apply_environment(config::node_config{});
  ASSERT_TRUE(out) << describe(out.error());
  EXPECT_EQ(out->llm["profiles"]["default"]["timeout"], 300000);
}

// The file's default profile was written for another protocol (a script
// of the scripted model): none of its keys survives a new kind.
TEST(ConfigEnvironment, AnotherKindReplacesTheFilesDefaultProfile) {
  env_guard env;
  test::temp_dir dir;
  auto cfg = from_yaml(dir, "llm:\n"
                            "  cache: true\n"
                            "  profiles:\n"
                            "    default:\n"
                            "      kind: scripted\n"
                            "      script: examples/scripts/x.yaml\n"
                            "    local:\n"
                            "      kind: ollama\n"
                            "      model: llama3.2\n");
  env.set("CADRE_LLM_KIND", "anthropic");
  env.set("CADRE_LLM_MODEL", "claude-sonnet-4-5");
  env.set("CADRE_LLM_API_KEY_ENV", "ANTHROPIC_API_KEY");
  auto out = config::apply_environment(cfg);
  ASSERT_TRUE(out) << describe(out.error());
  EXPECT_EQ(out->llm["profiles"]["default"],
            (json{{"kind", "anthropic"},
                  {"model", "claude-sonnet-4-5"},
                  {"api_key_env", "ANTHROPIC_API_KEY"}}));
  // Other profiles and keys are the file's.
  EXPECT_EQ(out->llm["profiles"]["local"],
            (json{{"kind", "ollama"}, {"model", "llama3.2"}}));
  EXPECT_EQ(out->llm["cache"], true);
}

TEST(ConfigEnvironment, SameKindOrNoKindOverridesSingleKeys) {
  env_guard env;
  test::temp_dir dir;
  auto cfg = from_yaml(dir, "llm:\n"
                            "  profiles:\n"
                            "    default:\n"
                            "      kind: openai\n"
                            "      model: gpt-4o-mini\n"
                            "      api_key_env: OPENAI_API_KEY\n"
                            "      price_input_per_mtok: 0.15\n");
  env.set("CADRE_LLM_MODEL", "gpt-4.1-mini");
  auto out = config::apply_environment(cfg);
  ASSERT_TRUE(out) << describe(out.error());
  EXPECT_EQ(out->llm["profiles"]["default"],
            (json{{"kind", "openai"},
                  {"model", "gpt-4.1-mini"},
                  {"api_key_env", "OPENAI_API_KEY"},
                  {"price_input_per_mtok", 0.15}}));
  env.set("CADRE_LLM_KIND", "openai");
  env.set("CADRE_LLM_TIMEOUT", "2m");
  auto same = config::apply_environment(cfg);
  ASSERT_TRUE(same) << describe(same.error());
  EXPECT_EQ(same->llm["profiles"]["default"]["price_input_per_mtok"], 0.15);
  EXPECT_EQ(same->llm["profiles"]["default"]["timeout"], "2m");
}

TEST(ConfigEnvironment, EmptyLlmVariablesCountAsUnset) {
  env_guard env;
  for (auto* name : llm_vars)
    env.set(name, "");
  auto out = config::apply_environment(config::node_config{});
  ASSERT_TRUE(out) << describe(out.error());
  EXPECT_EQ(out->llm, json::object());
}

TEST(ConfigEnvironment, UnknownKindNamesTheVariableAndTheKnownKinds) {
  env_guard env;
  env.set("CADRE_LLM_KIND", "opnai");
  auto out = config::apply_environment(config::node_config{});
  ASSERT_FALSE(out);
  EXPECT_EQ(out.error().code(), static_cast<uint8_t>(errc::invalid_config));
  EXPECT_NE(error_of(out).find("CADRE_LLM_KIND: unknown provider 'opnai' "
                               "(known: anthropic, ollama, openai, "
                               "scripted)"),
            std::string::npos)
    << error_of(out);
}

TEST(ConfigEnvironment, AKeyInPlaceOfItsVariableNameIsRefusedUnechoed) {
  env_guard env;
  env.set("CADRE_LLM_KIND", "openai");
  env.set("CADRE_LLM_API_KEY_ENV", "sk-proj-SECRET-123");
  auto out = config::apply_environment(config::node_config{});
  ASSERT_FALSE(out);
  auto msg = error_of(out);
  EXPECT_NE(msg.find("CADRE_LLM_API_KEY_ENV: must be the name of the "
                     "environment variable"),
            std::string::npos)
    << msg;
  EXPECT_EQ(msg.find("SECRET"), std::string::npos) << msg;
}

TEST(ConfigEnvironment, BadBaseUrlAndTimeoutNameTheirVariables) {
  {
    env_guard env;
    env.set("CADRE_LLM_KIND", "ollama");
    env.set("CADRE_LLM_BASE_URL", "127.0.0.1:11434");
    auto out = config::apply_environment(config::node_config{});
    ASSERT_FALSE(out);
    EXPECT_NE(error_of(out).find("CADRE_LLM_BASE_URL: must start with "
                                 "http:// or https://"),
              std::string::npos)
      << error_of(out);
  }
  for (auto bad :
       {"soon", "0", "0s", "10 seconds", "5d", "99999999999999999999"}) {
    env_guard env;
    env.set("CADRE_LLM_KIND", "ollama");
    env.set("CADRE_LLM_TIMEOUT", bad);
    auto out = config::apply_environment(config::node_config{});
    ASSERT_FALSE(out) << bad;
    EXPECT_NE(error_of(out).find("CADRE_LLM_TIMEOUT: expected a positive "
                                 "duration"),
              std::string::npos)
      << error_of(out);
    EXPECT_NE(error_of(out).find(std::string{"got '"} + bad + "'"),
              std::string::npos)
      << error_of(out);
  }
}

// Without a kind from the variable or the file there is no protocol to
// talk to the model with.
TEST(ConfigEnvironment, ModelWithoutAnyKindNamesTheMissingVariable) {
  env_guard env;
  env.set("CADRE_LLM_MODEL", "llama3.2");
  auto out = config::apply_environment(config::node_config{});
  ASSERT_FALSE(out);
  EXPECT_NE(error_of(out).find("CADRE_LLM_MODEL: set CADRE_LLM_KIND too"),
            std::string::npos)
    << error_of(out);
}

TEST(ConfigEnvironment, OtherVariablesStillApply) {
  env_guard env;
  ::setenv("CADRE_WORKERS", "7", 1);
  auto out = config::apply_environment(config::node_config{});
  ::unsetenv("CADRE_WORKERS");
  ASSERT_TRUE(out) << describe(out.error());
  EXPECT_EQ(out->default_workers, 7u);
  ::setenv("CADRE_WORKERS", "many", 1);
  auto bad = config::apply_environment(config::node_config{});
  ::unsetenv("CADRE_WORKERS");
  ASSERT_FALSE(bad);
  EXPECT_NE(error_of(bad).find("CADRE_WORKERS: expected an integer"),
            std::string::npos)
    << error_of(bad);
}

TEST(ConfigEnvironment, SchedulerSpinPollsComeFromTheEnvironmentAndZeroIsRefused) {
  ::setenv("CADRE_SCHEDULER_SPIN_POLLS", "100", 1);
  auto out = config::apply_environment(config::node_config{});
  ::setenv("CADRE_SCHEDULER_SPIN_POLLS", "0", 1);
  auto zero = config::apply_environment(config::node_config{});
  ::unsetenv("CADRE_SCHEDULER_SPIN_POLLS");
  ASSERT_TRUE(out) << describe(out.error());
  EXPECT_EQ(out->scheduler_spin_polls, 100u);
  EXPECT_EQ(error_of(zero),
            "cadre: invalid_config: CADRE_SCHEDULER_SPIN_POLLS: expected an "
            "integer >= 1, got 0");
}
