// The anthropic provider against a loopback server speaking the Messages
// API as the SDK types describe it: headers, system field, tool_use and
// tool_result blocks, SSE events with input_json_delta split mid-JSON,
// ping and error events (what every format shares is in
// llm_wire_test.cpp).

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

const std::string path = "/v1/messages";

/// A Message.
json message(json content, const std::string& stop_reason) {
  return json{{"id", "msg_01"},
              {"type", "message"},
              {"role", "assistant"},
              {"model", "claude-test-20250101"},
              {"content", std::move(content)},
              {"stop_reason", stop_reason},
              {"stop_sequence", nullptr},
              {"usage",
               {{"input_tokens", 25},
                {"output_tokens", 40},
                {"cache_creation_input_tokens", 0},
                {"cache_read_input_tokens", 5}}}};
}

json text_block(const std::string& t) {
  return json{{"type", "text"}, {"text", t}};
}

/// An ErrorResponse.
json error_body(const std::string& type, const std::string& msg) {
  return json{{"type", "error"},
              {"error", {{"type", type}, {"message", msg}}},
              {"request_id", "req_011"}};
}

/// One SSE event: `event:` name and `data:` payload of the same type.
std::string event(const json& payload) {
  return "event: " + payload["type"].get<std::string>() + "\ndata: "
         + payload.dump() + "\n\n";
}

std::string message_start() {
  return event({{"type", "message_start"},
                {"message",
                 {{"id", "msg_1"},
                  {"type", "message"},
                  {"role", "assistant"},
                  {"model", "claude-test-20250101"},
                  {"content", json::array()},
                  {"stop_reason", nullptr},
                  {"stop_sequence", nullptr},
                  {"usage", {{"input_tokens", 25}, {"output_tokens", 1}}}}}});
}

std::string block_start(int index, json block) {
  return event({{"type", "content_block_start"},
                {"index", index},
                {"content_block", std::move(block)}});
}

std::string block_delta(int index, json delta) {
  return event({{"type", "content_block_delta"},
                {"index", index},
                {"delta", std::move(delta)}});
}

std::string block_stop(int index) {
  return event({{"type", "content_block_stop"}, {"index", index}});
}

std::string message_delta(const std::string& stop_reason, int output) {
  return event({{"type", "message_delta"},
                {"delta", {{"stop_reason", stop_reason},
                           {"stop_sequence", nullptr}}},
                {"usage", {{"output_tokens", output}}}});
}

std::string message_stop() {
  return event({{"type", "message_stop"}});
}

struct fixture {
  fake_llm_server srv{path};
  tools::llm::profile prof = test_profile("anthropic", srv.url());
};

} // namespace

TEST(LlmAnthropic, PlainReplySendsHeadersSystemAndMaxTokens) {
  fixture f;
  f.prof.settings = json{{"max_tokens", 512}};
  f.srv.push(json_reply(message({text_block("Sunny.")}, "end_turn")));
  auto req = weather_request();
  req.tools.clear();
  req.temperature = 0.5;
  auto resp = make(f.prof)->complete(req, {});
  ASSERT_TRUE(resp) << describe(resp.error());
  EXPECT_EQ(resp->message.content, "Sunny.");
  EXPECT_EQ(resp->stop_reason, "stop");
  EXPECT_EQ(resp->model, "claude-test-20250101");
  // Input counts cached tokens too.
  EXPECT_EQ(resp->usage.input_tokens, 30u);
  EXPECT_EQ(resp->usage.output_tokens, 40u);
  EXPECT_DOUBLE_EQ(resp->usage.cost_usd, (30 * 2.0 + 40 * 10.0) / 1e6);
  auto ex = f.srv.exchanges();
  ASSERT_EQ(ex.size(), 1u);
  EXPECT_EQ(ex[0].path, path);
  EXPECT_EQ(ex[0].header("x-api-key"), secret_key);
  EXPECT_EQ(ex[0].header("anthropic-version"), "2023-06-01");
  EXPECT_EQ(ex[0].header("Authorization"), "");
  const auto& body = ex[0].json;
  EXPECT_EQ(body["model"], "test-model");
  EXPECT_EQ(body["max_tokens"], 512);
  EXPECT_EQ(body["system"], "You are terse.");
  EXPECT_DOUBLE_EQ(body["temperature"].get<double>(), 0.5);
  // No system role among the messages.
  ASSERT_EQ(body["messages"].size(), 1u);
  EXPECT_EQ(body["messages"][0],
            (json{{"role", "user"},
                  {"content", {text_block("What is the weather in Paris?")}}}));
  expect_no_secret_recorded(req, *resp);
}

TEST(LlmAnthropic, ToolRoundTripMergesToolResultsIntoOneUserTurn) {
  fixture f;
  f.srv.push(json_reply(message(
    {text_block("Checking."),
     {{"type", "tool_use"},
      {"id", "toolu_01A"},
      {"name", "get_weather"},
      {"input", {{"city", "Nice"}}}}},
    "tool_use")));
  auto req = tool_round_trip_request();
  req.tool_choice = "required";
  req.max_tokens = 99;
  auto resp = make(f.prof)->complete(req, {});
  ASSERT_TRUE(resp) << describe(resp.error());
  EXPECT_EQ(resp->message.content, "Checking.");
  ASSERT_EQ(resp->message.tool_calls.size(), 1u);
  EXPECT_EQ(resp->message.tool_calls[0].id, "toolu_01A");
  EXPECT_EQ(resp->message.tool_calls[0].arguments.get(),
            (json{{"city", "Nice"}}));
  EXPECT_EQ(resp->stop_reason, "tool_calls");

  const auto body = f.srv.exchanges().at(0).json;
  EXPECT_EQ(body["max_tokens"], 99);
  EXPECT_EQ(body["tools"],
            (json{{{"name", "get_weather"},
                   {"description", "Get the weather in a given city"},
                   {"input_schema", weather_schema()}}}));
  EXPECT_EQ(body["tool_choice"], (json{{"type", "any"}}));
  const auto& msgs = body["messages"];
  ASSERT_EQ(msgs.size(), 3u);
  EXPECT_EQ(msgs[1]["role"], "assistant");
  EXPECT_EQ(msgs[1]["content"],
            (json{{{"type", "tool_use"},
                   {"id", "call_1"},
                   {"name", "get_weather"},
                   {"input", {{"city", "Paris"}}}},
                  {{"type", "tool_use"},
                   {"id", "call_2"},
                   {"name", "get_weather"},
                   {"input", {{"city", "Lyon"}}}}}));
  EXPECT_EQ(msgs[2]["role"], "user");
  EXPECT_EQ(msgs[2]["content"],
            (json{{{"type", "tool_result"},
                   {"tool_use_id", "call_1"},
                   {"content", "18 degrees"}},
                  {{"type", "tool_result"},
                   {"tool_use_id", "call_2"},
                   {"content", "station offline"},
                   {"is_error", true}}}));
}

TEST(LlmAnthropic, NamedToolChoiceIsATypeToolObject) {
  fixture f;
  f.srv.push(json_reply(message({text_block("ok")}, "end_turn")));
  auto req = weather_request();
  req.tool_choice = "get_weather";
  ASSERT_TRUE(make(f.prof)->complete(req, {}));
  EXPECT_EQ(f.srv.exchanges().at(0).json["tool_choice"],
            (json{{"type", "tool"}, {"name", "get_weather"}}));
}

TEST(LlmAnthropic, StreamingAssemblesBlocksFromEventsSplitMidJson) {
  fixture f;
  std::string sse = message_start()
                    + block_start(0, {{"type", "text"}, {"text", ""}})
                    + event({{"type", "ping"}})
                    + block_delta(0, {{"type", "text_delta"},
                                      {"text", "Let me "}})
                    + block_delta(0, {{"type", "text_delta"},
                                      {"text", "look."}})
                    + block_stop(0)
                    + block_start(1, {{"type", "tool_use"},
                                      {"id", "toolu_1"},
                                      {"name", "get_weather"},
                                      {"input", json::object()}})
                    + block_delta(1, {{"type", "input_json_delta"},
                                      {"partial_json", ""}})
                    + block_delta(1, {{"type", "input_json_delta"},
                                      {"partial_json", "{\"city\": \"Par"}})
                    + block_delta(1, {{"type", "input_json_delta"},
                                      {"partial_json", "is\"}"}})
                    + block_stop(1)
                    + block_start(2, {{"type", "tool_use"},
                                      {"id", "toolu_2"},
                                      {"name", "get_weather"},
                                      {"input", json::object()}})
                    + block_stop(2) + message_delta("tool_use", 40)
                    + event({{"type", "future_event"}, {"x", 1}})
                    + message_stop();
  f.srv.push(stream_reply(cut(sse, 11), "text/event-stream"));
  auto req = weather_request();
  req.stream = true;
  std::vector<std::string> pieces;
  tools::llm::call_context ctx;
  ctx.on_text = [&](std::string_view t) { pieces.emplace_back(t); };
  auto resp = make(f.prof)->complete(req, ctx);
  ASSERT_TRUE(resp) << describe(resp.error());
  EXPECT_EQ(resp->message.content, "Let me look.");
  EXPECT_EQ(pieces, (std::vector<std::string>{"Let me ", "look."}));
  ASSERT_EQ(resp->message.tool_calls.size(), 2u);
  EXPECT_EQ(resp->message.tool_calls[0].id, "toolu_1");
  EXPECT_EQ(resp->message.tool_calls[0].arguments.get(),
            (json{{"city", "Paris"}}));
  // No input_json_delta at all: an empty input.
  EXPECT_EQ(resp->message.tool_calls[1].arguments.get(), json::object());
  EXPECT_EQ(resp->stop_reason, "tool_calls");
  EXPECT_EQ(resp->usage.input_tokens, 25u);
  EXPECT_EQ(resp->usage.output_tokens, 40u);
  EXPECT_EQ(f.srv.exchanges().at(0).json["stream"], true);
}

TEST(LlmAnthropic, MalformedPartialJsonIsTheCallsErrorQuotingIt) {
  fixture f;
  std::string sse = message_start()
                    + block_start(0, {{"type", "tool_use"},
                                      {"id", "toolu_1"},
                                      {"name", "get_weather"},
                                      {"input", json::object()}})
                    + block_delta(0, {{"type", "input_json_delta"},
                                      {"partial_json", "{\"city\": Par"}})
                    + block_stop(0) + message_delta("tool_use", 3)
                    + message_stop();
  f.srv.push(stream_reply({sse}, "text/event-stream"));
  auto req = weather_request();
  req.stream = true;
  auto resp = make(f.prof)->complete(req, {});
  ASSERT_TRUE(resp) << describe(resp.error());
  ASSERT_EQ(resp->message.tool_calls.size(), 1u);
  const auto& call = resp->message.tool_calls[0];
  EXPECT_EQ(call.arguments.get(), json::object());
  EXPECT_NE(call.arguments_error.find("not valid JSON: '{\"city\": Par'"),
            std::string::npos)
    << call.arguments_error;
}

TEST(LlmAnthropic, ErrorEventInsideA200StreamIsAnError) {
  fixture f;
  std::string sse = message_start()
                    + block_start(0, {{"type", "text"}, {"text", ""}})
                    + block_delta(0, {{"type", "text_delta"}, {"text", "Hi"}})
                    + event({{"type", "error"},
                             {"error",
                              {{"type", "overloaded_error"},
                               {"message", "Overloaded"}}}});
  f.srv.push(stream_reply({sse}, "text/event-stream"));
  auto req = weather_request();
  req.stream = true;
  auto resp = make(f.prof)->complete(req, {});
  ASSERT_FALSE(resp);
  expect_error(resp.error(), errc::unavailable, "overloaded_error");
}

TEST(LlmAnthropic, StreamWithoutMessageStopIsMalformed) {
  fixture f;
  f.srv.push(stream_reply({message_start()}, "text/event-stream"));
  auto req = weather_request();
  req.stream = true;
  auto resp = make(f.prof)->complete(req, {});
  ASSERT_FALSE(resp);
  expect_error(resp.error(), errc::tool_failed, "message_stop");
}

TEST(LlmAnthropic, PromptTooLongIsInvalidInput) {
  fixture f;
  f.srv.push(json_reply(error_body("invalid_request_error",
                                   "prompt is too long: 210000 tokens > "
                                   "200000 maximum"),
                        400));
  auto resp = make(f.prof)->complete(weather_request(), {});
  ASSERT_FALSE(resp);
  expect_error(resp.error(), errc::invalid_input, "prompt is too long");
}

