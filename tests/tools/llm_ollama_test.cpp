// The ollama provider against a loopback server speaking Ollama's native
// /api/chat as in its API docs: object arguments, NDJSON streaming ending
// with done, error lines inside a 200 stream (what every format shares is
// in llm_wire_test.cpp).

#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "cadre/tools/llm/provider.hpp"
#include "fake_llm_server.hpp"
#include "llm_test_util.hpp"

using namespace cadre;
using namespace cadre::test;
using namespace std::chrono_literals;

namespace {

const std::string path = "/api/chat";

/// A ChatResponse / ChatStreamEvent line.
json chat(json message, bool done, const std::string& done_reason = "") {
  json j{{"model", "llama3.2"},
         {"created_at", "2025-07-07T20:22:19.184789Z"},
         {"message", std::move(message)},
         {"done", done}};
  if (done) {
    if (!done_reason.empty())
      j["done_reason"] = done_reason;
    j["total_duration"] = 182242375;
    j["load_duration"] = 41295167;
    j["prompt_eval_count"] = 169;
    j["prompt_eval_duration"] = 24573166;
    j["eval_count"] = 15;
    j["eval_duration"] = 115959084;
  }
  return j;
}

json text(const std::string& content) {
  return json{{"role", "assistant"}, {"content", content}};
}

json weather_call(const std::string& city) {
  return json{{"function",
               {{"name", "get_weather"}, {"arguments", {{"city", city}}}}}};
}

struct fixture {
  fake_llm_server srv{path};
  tools::llm::profile prof = test_profile("ollama", srv.url());
  fixture() {
    // A local Ollama needs no key.
    prof.api_key_env.clear();
  }
};

} // namespace

TEST(LlmOllama, PlainReplySendsTheNativeShape) {
  fixture f;
  f.prof.settings = json{{"options", {{"num_ctx", 8192}}},
                         {"keep_alive", "5m"}};
  f.srv.push(json_reply(chat(text("Rayleigh scattering."), true, "stop")));
  auto req = weather_request();
  req.tools.clear();
  req.temperature = 0;
  req.max_tokens = 64;
  auto resp = make(f.prof)->complete(req, {});
  ASSERT_TRUE(resp) << describe(resp.error());
  EXPECT_EQ(resp->message.content, "Rayleigh scattering.");
  EXPECT_EQ(resp->stop_reason, "stop");
  EXPECT_EQ(resp->model, "llama3.2");
  EXPECT_EQ(resp->usage.input_tokens, 169u);
  EXPECT_EQ(resp->usage.output_tokens, 15u);
  EXPECT_DOUBLE_EQ(resp->usage.cost_usd, (169 * 2.0 + 15 * 10.0) / 1e6);
  auto ex = f.srv.exchanges();
  ASSERT_EQ(ex.size(), 1u);
  EXPECT_EQ(ex[0].header("Authorization"), "");
  const auto& body = ex[0].json;
  EXPECT_EQ(body["model"], "test-model");
  // Ollama streams by default: "stream": false must be explicit.
  EXPECT_EQ(body["stream"], false);
  EXPECT_EQ(body["messages"][0],
            (json{{"role", "system"}, {"content", "You are terse."}}));
  EXPECT_EQ(body["options"],
            (json{{"num_ctx", 8192}, {"temperature", 0.0}, {"num_predict", 64}}));
  EXPECT_EQ(body["keep_alive"], "5m");
  EXPECT_FALSE(body.contains("tools"));
}

TEST(LlmOllama, ToolRoundTripSendsObjectsAndToolNames) {
  fixture f;
  json msg = text("");
  msg["tool_calls"] = {weather_call("Tokyo"), weather_call("Osaka")};
  f.srv.push(json_reply(chat(msg, true, "stop")));
  auto req = tool_round_trip_request();
  req.messages[3].name.clear(); // found from the assistant's call
  auto resp = make(f.prof)->complete(req, {});
  ASSERT_TRUE(resp) << describe(resp.error());
  ASSERT_EQ(resp->message.tool_calls.size(), 2u);
  EXPECT_EQ(resp->message.tool_calls[0].name, "get_weather");
  EXPECT_EQ(resp->message.tool_calls[0].arguments.get(),
            (json{{"city", "Tokyo"}}));
  EXPECT_EQ(resp->message.tool_calls[1].arguments.get(),
            (json{{"city", "Osaka"}}));
  // No ids on the wire: made up, unique within the reply.
  EXPECT_FALSE(resp->message.tool_calls[0].id.empty());
  EXPECT_NE(resp->message.tool_calls[0].id, resp->message.tool_calls[1].id);
  // done_reason "stop" with calls is a tool-call turn.
  EXPECT_EQ(resp->stop_reason, "tool_calls");

  const auto body = f.srv.exchanges().at(0).json;
  ASSERT_EQ(body["tools"].size(), 1u);
  EXPECT_EQ(body["tools"][0],
            (json{{"type", "function"},
                  {"function",
                   {{"name", "get_weather"},
                    {"description", "Get the weather in a given city"},
                    {"parameters", weather_schema()}}}}));
  const auto& msgs = body["messages"];
  ASSERT_EQ(msgs.size(), 5u);
  const auto& call = msgs[2]["tool_calls"][0];
  EXPECT_EQ(call["function"]["name"], "get_weather");
  // Arguments travel as an object, not a string.
  EXPECT_EQ(call["function"]["arguments"], (json{{"city", "Paris"}}));
  EXPECT_EQ(msgs[3]["role"], "tool");
  EXPECT_EQ(msgs[3]["tool_name"], "get_weather");
  EXPECT_EQ(msgs[3]["content"], "18 degrees");
  EXPECT_EQ(msgs[3]["tool_call_id"], "call_1");
  EXPECT_EQ(msgs[4]["content"], "Error: station offline");
}

TEST(LlmOllama, ToolChoiceNoneOffersNoTools) {
  fixture f;
  f.srv.push(json_reply(chat(text("fine"), true, "stop")));
  auto req = weather_request();
  req.tool_choice = "none";
  ASSERT_TRUE(make(f.prof)->complete(req, {}));
  EXPECT_FALSE(f.srv.exchanges().at(0).json.contains("tools"));
}

TEST(LlmOllama, StreamingReadsNdjsonCutAnywhere) {
  fixture f;
  json call_msg = text("");
  call_msg["tool_calls"] = {weather_call("Tokyo")};
  std::string nd = chat(text("The"), false).dump() + "\n"
                   + chat(text(" weather"), false).dump() + "\n"
                   + chat(call_msg, false).dump() + "\n"
                   + chat(text(""), true, "stop").dump() + "\n";
  f.srv.push(stream_reply(cut(nd, 9), "application/x-ndjson"));
  auto req = weather_request();
  req.stream = true;
  std::vector<std::string> pieces;
  tools::llm::call_context ctx;
  ctx.on_text = [&](std::string_view t) { pieces.emplace_back(t); };
  auto resp = make(f.prof)->complete(req, ctx);
  ASSERT_TRUE(resp) << describe(resp.error());
  EXPECT_EQ(resp->message.content, "The weather");
  EXPECT_EQ(pieces, (std::vector<std::string>{"The", " weather"}));
  ASSERT_EQ(resp->message.tool_calls.size(), 1u);
  EXPECT_EQ(resp->message.tool_calls[0].arguments.get(),
            (json{{"city", "Tokyo"}}));
  EXPECT_EQ(resp->stop_reason, "tool_calls");
  EXPECT_EQ(resp->usage.input_tokens, 169u);
  EXPECT_EQ(resp->usage.output_tokens, 15u);
  EXPECT_EQ(f.srv.exchanges().at(0).json["stream"], true);
}

TEST(LlmOllama, LengthIsReported) {
  fixture f;
  f.srv.push(json_reply(chat(text("trunc"), true, "length")));
  auto resp = make(f.prof)->complete(weather_request(), {});
  ASSERT_TRUE(resp) << describe(resp.error());
  EXPECT_EQ(resp->stop_reason, "length");
}

TEST(LlmOllama, ErrorLineInsideA200StreamIsAnError) {
  fixture f;
  f.srv.push(stream_reply(
    {chat(text(" Yes"), false).dump() + "\n",
     chat(text("."), false).dump() + "\n",
     R"({"error":"an error was encountered while running the model"})"
     "\n"},
    "application/x-ndjson"));
  auto req = weather_request();
  req.stream = true;
  auto resp = make(f.prof)->complete(req, {});
  ASSERT_FALSE(resp);
  expect_error(resp.error(), errc::unavailable, "while running the model");
}

TEST(LlmOllama, StreamEndingWithoutDoneIsMalformed) {
  fixture f;
  f.srv.push(stream_reply({chat(text("half"), false).dump() + "\n"},
                          "application/x-ndjson"));
  auto req = weather_request();
  req.stream = true;
  auto resp = make(f.prof)->complete(req, {});
  ASSERT_FALSE(resp);
  expect_error(resp.error(), errc::tool_failed, "done");
}

// The agent hands the problem back to the model: not an error of the reply.
TEST(LlmOllama, ArgumentsThatAreNotAnObjectAreTheCallsError) {
  fixture f;
  json msg = text("");
  msg["tool_calls"] = {
    {{"function", {{"name", "get_weather"}, {"arguments", {1, 2}}}}}};
  f.srv.push(json_reply(chat(msg, true, "stop")));
  auto resp = make(f.prof)->complete(weather_request(), {});
  ASSERT_TRUE(resp) << describe(resp.error());
  ASSERT_EQ(resp->message.tool_calls.size(), 1u);
  const auto& err = resp->message.tool_calls[0].arguments_error;
  EXPECT_NE(err.find("not a JSON object: '[1,2]'"), std::string::npos) << err;
}

