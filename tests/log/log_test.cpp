// Operator logs: both formats written to a temporary file, the level
// filter, JSON lines that stay valid whatever the values hold, and the
// names parse_level and parse_format accept.

#include <cstdio>
#include <limits>
#include <string>
#include <vector>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "cadre/log/log.hpp"

using namespace cadre;
using nlohmann::json;

namespace {

/// Sends the process's log lines to a temporary file for one test, and
/// back to stderr at the default settings afterwards.
class LogTest : public ::testing::Test {
protected:
  void SetUp() override {
    file_ = std::tmpfile();
    ASSERT_NE(file_, nullptr);
  }

  void TearDown() override {
    log::init(log::level::warn, log::format::text, stderr);
    std::fclose(file_);
  }

  void init(log::level threshold, log::format fmt) {
    log::init(threshold, fmt, file_);
  }

  std::vector<std::string> lines() {
    std::fflush(file_);
    std::rewind(file_);
    std::vector<std::string> out;
    std::string line;
    for (int c = std::fgetc(file_); c != EOF; c = std::fgetc(file_)) {
      if (c == '\n') {
        out.push_back(std::move(line));
        line.clear();
      } else {
        line += static_cast<char>(c);
      }
    }
    EXPECT_TRUE(line.empty()) << "last line has no newline: " << line;
    return out;
  }

  std::FILE* file_ = nullptr;
};

// 2026-12-06T23:40:01.123Z: RFC 3339, milliseconds, UTC.
bool is_timestamp(const std::string& s) {
  if (s.size() != 24 || s[4] != '-' || s[7] != '-' || s[10] != 'T'
      || s[13] != ':' || s[16] != ':' || s[19] != '.' || s[23] != 'Z')
    return false;
  for (size_t i : {0, 1, 2, 3, 5, 6, 8, 9, 11, 12, 14, 15, 17, 18, 20, 21, 22})
    if (s[i] < '0' || s[i] > '9')
      return false;
  return true;
}

} // namespace

TEST_F(LogTest, TextLineHasTimeLevelMessageAndFields) {
  init(log::level::info, log::format::text);
  log::info("coordinator restarted",
            {{"execution", "e01"}, {"restarts", 2}, {"reason", "a b"}});
  auto out = lines();
  ASSERT_EQ(out.size(), 1u);
  ASSERT_GT(out[0].size(), 25u);
  EXPECT_TRUE(is_timestamp(out[0].substr(0, 24))) << out[0];
  EXPECT_EQ(out[0].substr(24),
            R"( INFO  coordinator restarted execution=e01 restarts=2 )"
            R"(reason="a b")");
}

TEST_F(LogTest, TextLineStaysOneLine) {
  init(log::level::info, log::format::text);
  log::warn("two\nlines", {{"value", "x\ny"}, {"empty", ""}});
  auto out = lines();
  ASSERT_EQ(out.size(), 1u);
  EXPECT_NE(out[0].find(R"(WARN  two\nlines value="x\ny" empty="")"),
            std::string::npos)
    << out[0];
}

TEST_F(LogTest, JsonLineHasTimeLevelMessageAndFields) {
  init(log::level::debug, log::format::json);
  log::debug("task retried", {{"actor", "coordinator"},
                              {"execution", "e01"},
                              {"task", "fetch"},
                              {"attempt", 2},
                              {"ratio", 0.5},
                              {"count", size_t{7}}});
  auto out = lines();
  ASSERT_EQ(out.size(), 1u);
  auto j = json::parse(out[0], nullptr, false);
  ASSERT_FALSE(j.is_discarded()) << out[0];
  EXPECT_TRUE(is_timestamp(j.value("time", ""))) << out[0];
  EXPECT_EQ(j["level"], "debug");
  EXPECT_EQ(j["msg"], "task retried");
  EXPECT_EQ(j["actor"], "coordinator");
  EXPECT_EQ(j["execution"], "e01");
  EXPECT_EQ(j["task"], "fetch");
  EXPECT_EQ(j["attempt"], 2);
  EXPECT_EQ(j["ratio"], 0.5);
  EXPECT_EQ(j["count"], 7);
}

TEST_F(LogTest, JsonLinesStayValidWithHostileValues) {
  init(log::level::trace, log::format::json);
  const std::string hostile[] = {
    R"(say "hi")", "line\nbreak\r\n", std::string{"\xff\xfe bytes"},
    std::string{"nul\0inside", 10}, "back\\slash", "tab\tand\x01",
    "{\"not\": \"an object\"}", "\xe2\x82", "caf\xc3\xa9"};
  for (const auto& v : hostile)
    log::error(v, {{"value", v}, {v, "as a key"}});
  auto out = lines();
  ASSERT_EQ(out.size(), std::size(hostile));
  for (size_t i = 0; i < out.size(); ++i) {
    auto j = json::parse(out[i], nullptr, false);
    ASSERT_FALSE(j.is_discarded()) << out[i];
    EXPECT_EQ(j["level"], "error");
    EXPECT_TRUE(j["msg"].is_string());
    EXPECT_TRUE(j["value"].is_string());
  }
  // Valid UTF-8 passes through; an invalid byte becomes U+FFFD.
  EXPECT_EQ(json::parse(out[0])["value"], R"(say "hi")");
  EXPECT_EQ(json::parse(out[1])["value"], "line\nbreak\r\n");
  EXPECT_EQ(json::parse(out[2])["value"], "\xef\xbf\xbd\xef\xbf\xbd bytes");
  EXPECT_EQ(json::parse(out[8])["value"], "caf\xc3\xa9");
}

TEST_F(LogTest, ReservedKeysDoNotShadowTheLine) {
  init(log::level::info, log::format::json);
  log::info("real", {{"msg", "fake"}, {"level", "debug"}, {"time", "0"}});
  auto j = json::parse(lines().at(0));
  EXPECT_EQ(j["msg"], "real");
  EXPECT_EQ(j["level"], "info");
  EXPECT_EQ(j["msg_"], "fake");
  EXPECT_EQ(j["level_"], "debug");
  EXPECT_EQ(j["time_"], "0");
}

TEST_F(LogTest, LevelsBelowTheThresholdAreDropped) {
  init(log::level::warn, log::format::text);
  EXPECT_FALSE(log::enabled(log::level::info));
  EXPECT_TRUE(log::enabled(log::level::warn));
  EXPECT_TRUE(log::enabled(log::level::error));
  EXPECT_FALSE(log::enabled(log::level::off));
  log::trace("t");
  log::debug("d");
  log::info("i");
  log::warn("w");
  log::error("e");
  auto out = lines();
  ASSERT_EQ(out.size(), 2u);
  EXPECT_NE(out[0].find("WARN  w"), std::string::npos) << out[0];
  EXPECT_NE(out[1].find("ERROR e"), std::string::npos) << out[1];
}

TEST_F(LogTest, OffWritesNothing) {
  init(log::level::off, log::format::json);
  EXPECT_FALSE(log::enabled(log::level::error));
  log::error("e");
  EXPECT_TRUE(lines().empty());
}

TEST_F(LogTest, NonFiniteNumbersBecomeStrings) {
  init(log::level::info, log::format::json);
  log::info("n", {{"inf", std::numeric_limits<double>::infinity()}});
  auto j = json::parse(lines().at(0));
  EXPECT_TRUE(j["inf"].is_string());
}

TEST(LogNames, ParseLevelAndFormat) {
  struct row {
    const char* name;
    log::level want;
  };
  for (auto [name, want] : {row{"trace", log::level::trace},
                            row{"debug", log::level::debug},
                            row{"info", log::level::info},
                            row{"warn", log::level::warn},
                            row{"error", log::level::error},
                            row{"off", log::level::off}}) {
    auto got = log::parse_level(name);
    ASSERT_TRUE(got) << name;
    EXPECT_EQ(*got, want);
    EXPECT_EQ(log::to_string(want), name);
  }
  EXPECT_EQ(*log::parse_format("text"), log::format::text);
  EXPECT_EQ(*log::parse_format("json"), log::format::json);
}

TEST(LogNames, UnknownNamesListTheKnownOnes) {
  for (const char* bad : {"verbose", "", "INFO", "warning"}) {
    auto got = log::parse_level(bad);
    ASSERT_FALSE(got) << bad;
    EXPECT_EQ(code_of(got.error()), errc::invalid_config);
    EXPECT_EQ(message_of(got.error()),
              "unknown level '" + std::string{bad}
                + "' (known: trace, debug, info, warn, error, off)");
  }
  auto fmt = log::parse_format("xml");
  ASSERT_FALSE(fmt);
  EXPECT_EQ(message_of(fmt.error()),
            "unknown format 'xml' (known: text, json)");
}

TEST(LogRedact, ReplacesEverySecret) {
  EXPECT_EQ(log::redact("key sk-123 and sk-123 and tok",
                        {"sk-123", "", "tok"}),
            "key [redacted] and [redacted] and [redacted]");
  EXPECT_EQ(log::redact("nothing here", {"secret"}), "nothing here");
}
