#pragma once

// Shared bits of the LLM provider tests: a recognizable API key in an
// environment variable, a profile with short limits aimed at a fake
// server, a weather-tool conversation, and checks that the key never leaks.

#include <chrono>
#include <cstdlib>
#include <memory>
#include <string>

#include <gtest/gtest.h>

#include "cadre/messages/agent.hpp"
#include "cadre/messages/error.hpp"
#include "cadre/tools/llm/provider.hpp"

namespace cadre::test {

/// The key the tests put in the environment; it must never show up in an
/// error, an output or a recorded request.
inline constexpr const char* secret_key = "sk-cadre-test-SECRET-7f3a9e";
inline constexpr const char* secret_env = "CADRE_TEST_LLM_KEY";

inline void set_secret_key() {
  ::setenv(secret_env, secret_key, 1);
}

/// A profile of `kind` at `base_url` with short timeouts, 3 attempts and
/// prices, its key in secret_env.
inline tools::llm::profile test_profile(const std::string& kind,
                                        const std::string& base_url) {
  set_secret_key();
  tools::llm::profile p;
  p.name = "test";
  p.kind = kind;
  p.base_url = base_url;
  p.model = "test-model";
  p.api_key_env = secret_env;
  p.connect_timeout = std::chrono::seconds{2};
  p.timeout = std::chrono::seconds{5};
  p.max_attempts = 3;
  p.price_input_per_mtok = 2.0;
  p.price_output_per_mtok = 10.0;
  return p;
}

inline std::unique_ptr<tools::llm::provider>
make(const tools::llm::profile& p) {
  auto prov = tools::llm::make_provider(p);
  if (!prov) {
    ADD_FAILURE() << describe(prov.error());
    return nullptr;
  }
  return std::move(*prov);
}

/// The JSON Schema of the weather tool's arguments.
inline json weather_schema() {
  return json{{"type", "object"},
              {"properties",
               {{"city",
                 {{"type", "string"},
                  {"description", "The city to get the weather for"}}}}},
              {"required", {"city"}}};
}

/// A system prompt, a user question, and the weather tool.
inline llm_request weather_request() {
  llm_request req;
  req.profile = "test";
  req.messages.push_back({"system", "You are terse.", {}, "", "", false});
  req.messages.push_back(
    {"user", "What is the weather in Paris?", {}, "", "", false});
  req.tools.push_back({"get_weather", "Get the weather in a given city",
                       json_value{weather_schema()}});
  return req;
}

/// weather_request() after the model called the tool twice (once
/// failing) and the results came back.
inline llm_request tool_round_trip_request() {
  auto req = weather_request();
  llm_message call;
  call.role = "assistant";
  call.tool_calls.push_back(
    {"call_1", "get_weather", json_value{json{{"city", "Paris"}}}});
  call.tool_calls.push_back(
    {"call_2", "get_weather", json_value{json{{"city", "Lyon"}}}});
  req.messages.push_back(call);
  req.messages.push_back({"tool", "18 degrees", {}, "call_1", "get_weather",
                          false});
  req.messages.push_back({"tool", "station offline", {}, "call_2",
                          "get_weather", true});
  return req;
}

inline bool contains(const std::string& haystack, const std::string& needle) {
  return haystack.find(needle) != std::string::npos;
}

/// Asserts that the key appears nowhere in `text`.
#define EXPECT_NO_SECRET(text)                                                 \
  EXPECT_FALSE(::cadre::test::contains((text), ::cadre::test::secret_key))     \
    << "the API key leaked into: " << (text)

/// Checks an error's code and that its message names `needle` and not the
/// key.
inline void expect_error(const caf::error& err, errc code,
                         const std::string& needle = "") {
  auto text = describe(err);
  EXPECT_EQ(code_of(err), code) << text;
  if (!needle.empty()) {
    EXPECT_TRUE(contains(text, needle)) << text;
  }
  EXPECT_NO_SECRET(text);
}

/// Checks that the recorded forms of a request and its reply carry no key.
inline void expect_no_secret_recorded(const llm_request& req,
                                      const llm_response& resp) {
  json j = req;
  EXPECT_NO_SECRET(j.dump());
  json k = resp;
  EXPECT_NO_SECRET(k.dump());
}

} // namespace cadre::test
