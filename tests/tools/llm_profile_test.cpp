// LLM profiles from config (parse_profile, make_provider, cost_of) and the
// NDJSON framing of the ollama provider (SSE: sse_parser_test.cpp).

#include <string>
#include <utility>
#include <vector>

#include <gtest/gtest.h>

#include "cadre/tools/llm/provider.hpp"
#include "llm/llm_support.hpp"
#include "llm_test_util.hpp"

using namespace cadre;
using namespace cadre::test;
using namespace std::chrono_literals;
using tools::llm::parse_profile;

TEST(LlmProfile, ReadsEveryCommonKeyAndKeepsTheRestAsSettings) {
  auto p = parse_profile("local", json{{"kind", "openai"},
                                       {"base_url", "http://10.0.0.5:8000/v1"},
                                       {"model", "qwen2.5"},
                                       {"api_key_env", "VLLM_KEY"},
                                       {"connect_timeout", "2s"},
                                       {"timeout", "1m30s"},
                                       {"max_attempts", 2},
                                       {"price_input_per_mtok", 0.5},
                                       {"price_output_per_mtok", 1.5},
                                       {"max_tokens_field", "max_tokens"}});
  ASSERT_TRUE(p) << describe(p.error());
  EXPECT_EQ(p->name, "local");
  EXPECT_EQ(p->kind, "openai");
  EXPECT_EQ(p->base_url, "http://10.0.0.5:8000/v1");
  EXPECT_EQ(p->model, "qwen2.5");
  EXPECT_EQ(p->api_key_env, "VLLM_KEY");
  EXPECT_EQ(p->connect_timeout, 2s);
  EXPECT_EQ(p->timeout, 90s);
  EXPECT_EQ(p->max_attempts, 2u);
  EXPECT_DOUBLE_EQ(p->price_input_per_mtok, 0.5);
  EXPECT_EQ(p->settings, (json{{"max_tokens_field", "max_tokens"}}));
  EXPECT_DOUBLE_EQ(tools::llm::cost_of(*p, 2'000'000, 1'000'000), 2.5);
  EXPECT_TRUE(tools::llm::make_provider(*p));
}

TEST(LlmProfile, DurationsTakeUnitsOrMilliseconds) {
  const std::pair<json, std::chrono::milliseconds> rows[] = {
    {"250ms", 250ms}, {"30s", 30s}, {"2m", 120s}, {"1h", 3600s},
    {1500, 1500ms},   {"1.5s", 1500ms}};
  for (const auto& [value, expected] : rows) {
    SCOPED_TRACE(value.dump());
    auto p = parse_profile("x", json{{"kind", "ollama"}, {"timeout", value}});
    ASSERT_TRUE(p) << describe(p.error());
    EXPECT_EQ(p->timeout, expected);
  }
}

TEST(LlmProfile, DefaultsComeFromTheKind) {
  auto p = parse_profile("d", json{{"kind", "anthropic"}});
  ASSERT_TRUE(p);
  EXPECT_EQ(p->base_url, "https://api.anthropic.com");
  EXPECT_EQ(p->timeout, 120s);
  EXPECT_EQ(p->max_attempts, 4u);
  auto o = parse_profile("d", json{{"kind", "ollama"}});
  ASSERT_TRUE(o);
  EXPECT_EQ(o->base_url, "http://127.0.0.1:11434");
}

TEST(LlmProfile, BadValuesNameTheirKey) {
  const std::pair<json, std::string> rows[] = {
    {json{{"kind", 3}}, "llm.profiles.p.kind"},
    {json{{"kind", "openai"}, {"timeout", "soon"}}, "llm.profiles.p.timeout"},
    {json{{"kind", "openai"}, {"timeout", "0s"}}, "llm.profiles.p.timeout"},
    {json{{"kind", "openai"}, {"connect_timeout", -1}},
     "llm.profiles.p.connect_timeout"},
    {json{{"kind", "openai"}, {"max_attempts", 0}},
     "llm.profiles.p.max_attempts"},
    {json{{"kind", "openai"}, {"price_input_per_mtok", "cheap"}},
     "llm.profiles.p.price_input_per_mtok"},
    {json{{"kind", "openai"}, {"base_url", "ftp://x"}},
     "llm.profiles.p.base_url"},
    {json::array(), "llm.profiles.p"},
  };
  for (const auto& [section, key] : rows) {
    SCOPED_TRACE(section.dump());
    auto p = parse_profile("p", section);
    ASSERT_FALSE(p);
    expect_error(p.error(), errc::invalid_config, key);
  }
}

TEST(LlmProfile, AKeyPastedAsTheVariableNameIsRefusedWithoutEchoingIt) {
  auto p = parse_profile("p", json{{"kind", "openai"},
                                   {"api_key_env", secret_key}});
  ASSERT_FALSE(p);
  expect_error(p.error(), errc::invalid_config, "llm.profiles.p.api_key_env");
}

TEST(LlmProfile, UnknownKindListsTheKnownOnes) {
  auto p = parse_profile("p", json{{"kind", "gemini"}});
  ASSERT_TRUE(p);
  auto prov = tools::llm::make_provider(*p);
  ASSERT_FALSE(prov);
  expect_error(prov.error(), errc::invalid_config, "openai");
  EXPECT_TRUE(contains(describe(prov.error()), "llm.profiles.p.kind"));
}

TEST(LlmProfile, KindSettingsAreChecked) {
  const std::pair<json, std::string> rows[] = {
    {json{{"kind", "openai"}, {"max_tokens_feld", "x"}},
     "llm.profiles.p.max_tokens_feld"},
    {json{{"kind", "openai"}, {"max_tokens_field", "tokens"}},
     "llm.profiles.p.max_tokens_field"},
    {json{{"kind", "ollama"}, {"options", 3}}, "llm.profiles.p.options"},
    {json{{"kind", "anthropic"}, {"api_key_env", "K"}, {"max_tokens", 0}},
     "llm.profiles.p.max_tokens"},
  };
  for (const auto& [section, key] : rows) {
    SCOPED_TRACE(section.dump());
    auto p = parse_profile("p", section);
    ASSERT_TRUE(p) << describe(p.error());
    auto prov = tools::llm::make_provider(*p);
    ASSERT_FALSE(prov);
    expect_error(prov.error(), errc::invalid_config, key);
  }
}

TEST(LlmProfile, MissingModelIsAConfigError) {
  set_secret_key();
  auto p = parse_profile("p", json{{"kind", "openai"},
                                   {"base_url", "http://127.0.0.1:9/v1"}});
  ASSERT_TRUE(p);
  auto prov = tools::llm::make_provider(*p);
  ASSERT_TRUE(prov);
  auto resp = (*prov)->complete(weather_request(), {});
  ASSERT_FALSE(resp);
  expect_error(resp.error(), errc::invalid_config, "llm.profiles.p.model");
}

TEST(LlmStreamFraming, NdjsonLinesSurviveAnySplit) {
  const std::string stream = "{\"a\":1}\n\n{\"b\":2}\r\n{\"c\":3}";
  const std::vector<std::string> expected = {"{\"a\":1}", "{\"b\":2}",
                                             "{\"c\":3}"};
  for (size_t size = 1; size <= stream.size(); ++size) {
    SCOPED_TRACE(size);
    std::vector<std::string> got;
    tools::llm::detail::line_splitter s{[&](std::string_view line) {
      got.emplace_back(line);
      return true;
    }};
    for (size_t i = 0; i < stream.size(); i += size)
      ASSERT_TRUE(s.feed(std::string_view{stream}.substr(i, size)));
    ASSERT_TRUE(s.finish());
    EXPECT_EQ(got, expected);
  }
}
