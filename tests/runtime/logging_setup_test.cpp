// Log settings: the config's `log` section, then CADRE_LOG_LEVEL and
// CADRE_LOG_FORMAT, then the flags; every bad value is an error naming
// where it came from.

#include <cstdlib>
#include <optional>
#include <string>

#include <gtest/gtest.h>

#include "logging_setup.hpp"

using namespace cadre;

namespace {

/// Unsets the log variables for one test and restores them afterwards.
class LoggingSetupTest : public ::testing::Test {
protected:
  void SetUp() override {
    for (auto* name : vars_) {
      if (auto* v = std::getenv(name))
        saved_[index(name)] = v;
      ::unsetenv(name);
    }
  }

  void TearDown() override {
    for (auto* name : vars_) {
      if (auto& v = saved_[index(name)])
        ::setenv(name, v->c_str(), 1);
      else
        ::unsetenv(name);
    }
  }

  static size_t index(const char* name) {
    return std::string{name} == vars_[0] ? 0 : 1;
  }

  static constexpr const char* vars_[] = {"CADRE_LOG_LEVEL",
                                          "CADRE_LOG_FORMAT"};
  std::optional<std::string> saved_[2];
};

config::node_config with_log(json section) {
  config::node_config cfg;
  cfg.log = std::move(section);
  return cfg;
}

std::string error_of(const expected<runtime::log_settings>& s) {
  return s ? "no error" : message_of(s.error());
}

} // namespace

TEST_F(LoggingSetupTest, DefaultsWithoutAnySetting) {
  auto s = runtime::log_settings_of(config::node_config{}, {});
  ASSERT_TRUE(s) << error_of(s);
  EXPECT_EQ(s->level, log::level::warn);
  EXPECT_EQ(s->format, log::format::text);
  runtime::log_settings serve{log::level::info, log::format::text};
  auto t = runtime::log_settings_of(config::node_config{}, {}, serve);
  ASSERT_TRUE(t) << error_of(t);
  EXPECT_EQ(t->level, log::level::info);
}

TEST_F(LoggingSetupTest, ConfigThenEnvironmentThenFlags) {
  auto cfg = with_log(json{{"level", "debug"}, {"format", "json"}});
  auto s = runtime::log_settings_of(cfg, {});
  ASSERT_TRUE(s) << error_of(s);
  EXPECT_EQ(s->level, log::level::debug);
  EXPECT_EQ(s->format, log::format::json);
  ::setenv("CADRE_LOG_LEVEL", "error", 1);
  ::setenv("CADRE_LOG_FORMAT", "", 1); // empty counts as unset
  s = runtime::log_settings_of(cfg, {});
  ASSERT_TRUE(s) << error_of(s);
  EXPECT_EQ(s->level, log::level::error);
  EXPECT_EQ(s->format, log::format::json);
  s = runtime::log_settings_of(cfg, {"trace", "text"});
  ASSERT_TRUE(s) << error_of(s);
  EXPECT_EQ(s->level, log::level::trace);
  EXPECT_EQ(s->format, log::format::text);
}

TEST_F(LoggingSetupTest, ErrorsNameTheKeyVariableOrFlag) {
  EXPECT_EQ(error_of(runtime::log_settings_of(
              with_log(json{{"level", "verbose"}}), {})),
            "log.level: unknown level 'verbose' (known: trace, debug, info, "
            "warn, error, off)");
  EXPECT_EQ(error_of(runtime::log_settings_of(
              with_log(json{{"format", "xml"}}), {})),
            "log.format: unknown format 'xml' (known: text, json)");
  EXPECT_EQ(error_of(runtime::log_settings_of(with_log(json{{"level", 3}}),
                                              {})),
            "log.level: expected a string");
  EXPECT_EQ(error_of(runtime::log_settings_of(
              with_log(json{{"levle", "info"}}), {})),
            "log.levle: unknown key (known: level, format)");
  EXPECT_EQ(error_of(runtime::log_settings_of(config::node_config{},
                                              {"", "yaml"})),
            "--log-format: unknown format 'yaml' (known: text, json)");
  ::setenv("CADRE_LOG_LEVEL", "loud", 1);
  auto s = runtime::log_settings_of(config::node_config{}, {"info", ""});
  ASSERT_FALSE(s);
  EXPECT_EQ(code_of(s.error()), errc::invalid_config);
  EXPECT_EQ(message_of(s.error()),
            "CADRE_LOG_LEVEL: unknown level 'loud' (known: trace, debug, "
            "info, warn, error, off)");
}
