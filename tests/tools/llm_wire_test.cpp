// What every HTTP provider does alike, over its own wire format (OpenAI
// Chat Completions, Anthropic Messages, Ollama's native chat): retries of
// 429 and 5xx, the error of each failing status, a refused key that is
// never quoted, malformed bodies, timeouts, unknown settings and an
// unreachable server. What differs per format is in llm_<kind>_test.cpp.

#include <functional>
#include <ostream>
#include <string>

#include <gtest/gtest.h>

#include "cadre/tools/llm/provider.hpp"
#include "fake_llm_server.hpp"
#include "llm_test_util.hpp"

using namespace cadre;
using namespace cadre::test;
using namespace std::chrono_literals;

namespace {

/// A wire format as its server speaks it.
struct wire {
  std::string kind;
  /// The path the server answers on, and the base_url suffix before it.
  std::string path;
  std::string base_suffix;
  /// Whether a local server of this kind works without a key.
  bool key_optional;
  /// The header that carries the key, and its value for secret_key.
  std::string key_header;
  std::string key_value;
  /// A whole non-streamed reply that says `text`.
  std::function<json(const std::string& text)> text_reply;
  /// The format's error body.
  std::function<json(const std::string& type, const std::string& message)>
    error_body;
};

void PrintTo(const wire& w, std::ostream* os) {
  *os << w.kind;
}

const wire openai{
  "openai", "/v1/chat/completions", "/v1", true, "Authorization",
  std::string{"Bearer "} + secret_key,
  [](const std::string& text) {
    return json{{"id", "chatcmpl-abc123"},
                {"object", "chat.completion"},
                {"model", "test-model-0613"},
                {"choices",
                 {{{"index", 0},
                   {"message", {{"role", "assistant"}, {"content", text}}},
                   {"finish_reason", "stop"}}}},
                {"usage", {{"prompt_tokens", 12}, {"completion_tokens", 5}}}};
  },
  [](const std::string& type, const std::string& message) {
    return json{{"error",
                 {{"message", message},
                  {"type", type},
                  {"param", nullptr},
                  {"code", nullptr}}}};
  }};

const wire anthropic{
  "anthropic", "/v1/messages", "", false, "x-api-key", secret_key,
  [](const std::string& text) {
    return json{{"id", "msg_01"},
                {"type", "message"},
                {"role", "assistant"},
                {"model", "claude-test-20250101"},
                {"content", {{{"type", "text"}, {"text", text}}}},
                {"stop_reason", "end_turn"},
                {"usage", {{"input_tokens", 25}, {"output_tokens", 40}}}};
  },
  [](const std::string& type, const std::string& message) {
    return json{{"type", "error"},
                {"error", {{"type", type}, {"message", message}}},
                {"request_id", "req_011"}};
  }};

const wire ollama{
  "ollama", "/api/chat", "", true, "Authorization",
  std::string{"Bearer "} + secret_key,
  [](const std::string& text) {
    return json{{"model", "llama3.2"},
                {"created_at", "2025-07-07T20:22:19.184789Z"},
                {"message", {{"role", "assistant"}, {"content", text}}},
                {"done", true},
                {"done_reason", "stop"},
                {"prompt_eval_count", 169},
                {"eval_count", 15}};
  },
  // Ollama's errors are a bare string.
  [](const std::string&, const std::string& message) {
    return json{{"error", message}};
  }};

class LlmWire : public ::testing::TestWithParam<wire> {
protected:
  const wire& w = GetParam();
  fake_llm_server srv{w.path};
  tools::llm::profile prof = test_profile(w.kind, srv.url(w.base_suffix));

  llm_reply error_reply(int status, const std::string& type,
                        const std::string& message) {
    auto r = json_reply(w.error_body(type, message), status);
    r.headers.emplace_back("Retry-After", "0");
    return r;
  }
};

} // namespace

TEST_P(LlmWire, RetriesA429HonouringRetryAfter) {
  srv.push(error_reply(429, "rate_limit_error", "Slow down"));
  srv.push(json_reply(w.text_reply("after retry")));
  auto resp = make(prof)->complete(weather_request(), {});
  ASSERT_TRUE(resp) << describe(resp.error());
  EXPECT_EQ(resp->message.content, "after retry");
  EXPECT_EQ(srv.exchanges().size(), 2u);
}

TEST_P(LlmWire, RetriesEachServerError) {
  // 529 is Anthropic's "overloaded".
  for (int status : {500, 502, 503, 529}) {
    fake_llm_server s{w.path};
    auto p = test_profile(w.kind, s.url(w.base_suffix));
    s.push(error_reply(status, "api_error", "boom"));
    s.push(json_reply(w.text_reply("recovered")));
    auto resp = make(p)->complete(weather_request(), {});
    ASSERT_TRUE(resp) << status << ": " << describe(resp.error());
    EXPECT_EQ(resp->message.content, "recovered");
    EXPECT_EQ(s.exchanges().size(), 2u) << status;
  }
}

TEST_P(LlmWire, PersistentServerErrorFailsAfterMaxAttempts) {
  srv.push(error_reply(503, "overloaded_error", "The engine is overloaded"));
  auto resp = make(prof)->complete(weather_request(), {});
  ASSERT_FALSE(resp);
  expect_error(resp.error(), errc::unavailable, "HTTP 503");
  EXPECT_TRUE(contains(describe(resp.error()), "after 3 attempts"));
  EXPECT_TRUE(contains(describe(resp.error()), "overloaded"));
  EXPECT_EQ(srv.exchanges().size(), 3u);
}

TEST_P(LlmWire, RejectedKeyIsAConfigErrorThatNeverQuotesTheKey) {
  // Providers echo the key they got in their 401 message.
  srv.push(json_reply(w.error_body("authentication_error",
                                   std::string{"Incorrect API key provided: "}
                                     + secret_key),
                      401));
  auto resp = make(prof)->complete(weather_request(), {});
  ASSERT_FALSE(resp);
  expect_error(resp.error(), errc::invalid_config, secret_env);
  EXPECT_TRUE(contains(describe(resp.error()), "llm profile 'test'"));
  auto ex = srv.exchanges();
  ASSERT_EQ(ex.size(), 1u);
  EXPECT_EQ(ex[0].header(w.key_header), w.key_value);
}

TEST_P(LlmWire, UnknownModelIsAConfigErrorNamingIt) {
  srv.push(json_reply(w.error_body("not_found_error",
                                   "model \"test-model\" not found"),
                      404));
  auto resp = make(prof)->complete(weather_request(), {});
  ASSERT_FALSE(resp);
  expect_error(resp.error(), errc::invalid_config, "model 'test-model'");
  EXPECT_TRUE(contains(describe(resp.error()), "not found"));
}

TEST_P(LlmWire, RequestTheProviderRejectsIsInvalidInput) {
  srv.push(json_reply(w.error_body("invalid_request_error",
                                   "messages: field required"),
                      400));
  auto resp = make(prof)->complete(weather_request(), {});
  ASSERT_FALSE(resp);
  expect_error(resp.error(), errc::invalid_input, "field required");
  EXPECT_EQ(srv.exchanges().size(), 1u);
}

TEST_P(LlmWire, MalformedJsonIsToolFailedWithAQuote) {
  llm_reply r;
  r.pieces = {"<html>Bad gateway</html>"};
  r.content_type = "text/html";
  srv.push(r);
  auto resp = make(prof)->complete(weather_request(), {});
  ASSERT_FALSE(resp);
  expect_error(resp.error(), errc::tool_failed, "Bad gateway");
}

TEST_P(LlmWire, CutJsonIsToolFailedWithAQuote) {
  llm_reply r;
  r.pieces = {"{\"id\": \"reply-1\", \"model\": [tru"};
  srv.push(r);
  auto resp = make(prof)->complete(weather_request(), {});
  ASSERT_FALSE(resp);
  expect_error(resp.error(), errc::tool_failed, "reply-1");
}

TEST_P(LlmWire, SlowReplyTimesOut) {
  llm_reply r;
  r.stall = true;
  srv.push(r);
  prof.timeout = 300ms;
  auto resp = make(prof)->complete(weather_request(), {});
  ASSERT_FALSE(resp);
  expect_error(resp.error(), errc::timeout, "llm.profiles.test.timeout");
  EXPECT_EQ(srv.exchanges().size(), 1u);
}

TEST_P(LlmWire, UnsetKeyVariableIsAConfigErrorAndSendsNothing) {
  prof.api_key_env = "CADRE_TEST_LLM_KEY_UNSET";
  ::unsetenv("CADRE_TEST_LLM_KEY_UNSET");
  auto resp = make(prof)->complete(weather_request(), {});
  ASSERT_FALSE(resp);
  expect_error(resp.error(), errc::invalid_config, "CADRE_TEST_LLM_KEY_UNSET");
  EXPECT_TRUE(srv.exchanges().empty());
}

TEST_P(LlmWire, NoKeyVariableSendsNoKeyOrIsRefused) {
  prof.api_key_env.clear();
  if (!w.key_optional) {
    auto made = tools::llm::make_provider(prof);
    ASSERT_FALSE(made);
    expect_error(made.error(), errc::invalid_config,
                 "llm.profiles.test.api_key_env");
    return;
  }
  srv.push(json_reply(w.text_reply("local")));
  auto resp = make(prof)->complete(weather_request(), {});
  ASSERT_TRUE(resp) << describe(resp.error());
  EXPECT_EQ(srv.exchanges().at(0).header(w.key_header), "");
}

TEST_P(LlmWire, UnknownSettingIsRefusedByName) {
  prof.settings = json{{"num_ctxx", 4096}};
  auto made = tools::llm::make_provider(prof);
  ASSERT_FALSE(made);
  expect_error(made.error(), errc::invalid_config,
               "llm.profiles.test.num_ctxx");
}

TEST_P(LlmWire, UnreachableServerIsUnavailableAfterRetries) {
  std::string url;
  {
    // A port that was just free: nothing listens there any more.
    loopback_server gone;
    gone.start();
    url = gone.url(w.base_suffix);
  }
  auto p = test_profile(w.kind, url);
  p.max_attempts = 2;
  auto resp = make(p)->complete(weather_request(), {});
  ASSERT_FALSE(resp);
  expect_error(resp.error(), errc::unavailable, "after 2 attempts");
}

INSTANTIATE_TEST_SUITE_P(Formats, LlmWire,
                         ::testing::Values(openai, anthropic, ollama),
                         [](const ::testing::TestParamInfo<wire>& info) {
                           return info.param.kind;
                         });
