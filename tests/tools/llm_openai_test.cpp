// The openai provider against a loopback server speaking Chat Completions
// as in the OpenAI spec: plain and tool-call replies, SSE streaming with
// tool-call pieces split mid-JSON, and its own errors and deadlines (what
// every format shares is in llm_wire_test.cpp).

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

const std::string path = "/v1/chat/completions";

/// A CreateChatCompletionResponse with one choice.
json completion(json message, const std::string& finish,
                uint64_t prompt = 12, uint64_t completion_tokens = 5) {
  return json{{"id", "chatcmpl-abc123"},
              {"object", "chat.completion"},
              {"created", 1699896916},
              {"model", "test-model-0613"},
              {"choices",
               {{{"index", 0},
                 {"message", std::move(message)},
                 {"logprobs", nullptr},
                 {"finish_reason", finish}}}},
              {"usage",
               {{"prompt_tokens", prompt},
                {"completion_tokens", completion_tokens},
                {"total_tokens", prompt + completion_tokens}}}};
}

json text_message(const std::string& text) {
  return json{{"role", "assistant"}, {"content", text}, {"refusal", nullptr}};
}

/// An ErrorResponse.
json error_body(const std::string& message, const std::string& type,
                json code = nullptr) {
  return json{{"error",
               {{"message", message},
                {"type", type},
                {"param", nullptr},
                {"code", std::move(code)}}}};
}

/// One CreateChatCompletionStreamResponse chunk as an SSE event.
std::string chunk(json delta, json finish = nullptr, bool usage_null = true) {
  json c{{"id", "chatcmpl-123"},
         {"object", "chat.completion.chunk"},
         {"created", 1694268190},
         {"model", "test-model-0613"},
         {"system_fingerprint", "fp_44709d6fcb"},
         {"choices",
          {{{"index", 0},
            {"delta", std::move(delta)},
            {"logprobs", nullptr},
            {"finish_reason", std::move(finish)}}}}};
  if (usage_null)
    c["usage"] = nullptr;
  return "data: " + c.dump() + "\n\n";
}

std::string usage_chunk(uint64_t prompt, uint64_t completion_tokens) {
  json c{{"id", "chatcmpl-123"},
         {"object", "chat.completion.chunk"},
         {"created", 1694268190},
         {"model", "test-model-0613"},
         {"choices", json::array()},
         {"usage",
          {{"prompt_tokens", prompt},
           {"completion_tokens", completion_tokens},
           {"total_tokens", prompt + completion_tokens}}}};
  return "data: " + c.dump() + "\n\n";
}

json call_piece(int index, json fn, const std::string& id = "") {
  json c{{"index", index}, {"function", std::move(fn)}};
  if (!id.empty()) {
    c["id"] = id;
    c["type"] = "function";
  }
  return json{{"tool_calls", {c}}};
}

struct fixture {
  fake_llm_server srv{path};
  tools::llm::profile prof = test_profile("openai", srv.url("/v1"));
};

} // namespace

TEST(LlmOpenai, PlainReplySendsTheSpecFieldsAndParsesUsage) {
  fixture f;
  f.srv.push(json_reply(completion(text_message("Sunny, 21 C."), "stop")));
  auto prov = make(f.prof);
  auto req = weather_request();
  req.tools.clear();
  req.tool_choice = "auto"; // dropped: servers refuse it without tools
  req.temperature = 0.2;
  req.max_tokens = 100;
  auto resp = prov->complete(req, {});
  ASSERT_TRUE(resp) << describe(resp.error());
  EXPECT_EQ(resp->message.role, "assistant");
  EXPECT_EQ(resp->message.content, "Sunny, 21 C.");
  EXPECT_TRUE(resp->message.tool_calls.empty());
  EXPECT_EQ(resp->stop_reason, "stop");
  EXPECT_EQ(resp->model, "test-model-0613");
  EXPECT_EQ(resp->usage.input_tokens, 12u);
  EXPECT_EQ(resp->usage.output_tokens, 5u);
  EXPECT_DOUBLE_EQ(resp->usage.cost_usd, (12 * 2.0 + 5 * 10.0) / 1e6);
  auto ex = f.srv.exchanges();
  ASSERT_EQ(ex.size(), 1u);
  EXPECT_EQ(ex[0].path, path);
  EXPECT_EQ(ex[0].header("Authorization"), std::string{"Bearer "} + secret_key);
  EXPECT_EQ(ex[0].header("Content-Type"), "application/json");
  const auto& body = ex[0].json;
  EXPECT_EQ(body["model"], "test-model");
  ASSERT_EQ(body["messages"].size(), 2u);
  EXPECT_EQ(body["messages"][0],
            (json{{"role", "system"}, {"content", "You are terse."}}));
  EXPECT_EQ(body["messages"][1]["role"], "user");
  EXPECT_DOUBLE_EQ(body["temperature"].get<double>(), 0.2);
  // Not api.openai.com: the name compatible servers read.
  EXPECT_EQ(body["max_tokens"], 100);
  EXPECT_FALSE(body.contains("max_completion_tokens"));
  EXPECT_FALSE(body.contains("stream"));
  EXPECT_FALSE(body.contains("tools"));
  EXPECT_FALSE(body.contains("tool_choice"));
  expect_no_secret_recorded(req, *resp);
}

TEST(LlmOpenai, MaxCompletionTokensWhenConfigured) {
  fixture f;
  f.prof.settings = json{{"max_tokens_field", "max_completion_tokens"}};
  f.srv.push(json_reply(completion(text_message("ok"), "length")));
  auto req = weather_request();
  req.max_tokens = 7;
  auto resp = make(f.prof)->complete(req, {});
  ASSERT_TRUE(resp) << describe(resp.error());
  EXPECT_EQ(resp->stop_reason, "length");
  auto body = f.srv.exchanges().at(0).json;
  EXPECT_EQ(body["max_completion_tokens"], 7);
  EXPECT_FALSE(body.contains("max_tokens"));
}

TEST(LlmOpenai, ToolRoundTripSendsToolsCallsAndResultsInSpecShape) {
  fixture f;
  json reply_msg{
    {"role", "assistant"},
    {"content", nullptr},
    {"refusal", nullptr},
    {"tool_calls",
     {{{"id", "call_abc123"},
       {"type", "function"},
       {"function",
        {{"name", "get_weather"},
         {"arguments", "{\n\"city\": \"Boston, MA\"\n}"}}}}}}};
  f.srv.push(json_reply(completion(reply_msg, "tool_calls", 82, 17)));
  auto req = tool_round_trip_request();
  req.tool_choice = "get_weather";
  auto resp = make(f.prof)->complete(req, {});
  ASSERT_TRUE(resp) << describe(resp.error());
  ASSERT_EQ(resp->message.tool_calls.size(), 1u);
  EXPECT_EQ(resp->message.tool_calls[0].id, "call_abc123");
  EXPECT_EQ(resp->message.tool_calls[0].name, "get_weather");
  EXPECT_EQ(resp->message.tool_calls[0].arguments.get(),
            (json{{"city", "Boston, MA"}}));
  EXPECT_EQ(resp->stop_reason, "tool_calls");
  EXPECT_TRUE(resp->message.content.empty());

  const auto body = f.srv.exchanges().at(0).json;
  ASSERT_EQ(body["tools"].size(), 1u);
  EXPECT_EQ(body["tools"][0],
            (json{{"type", "function"},
                  {"function",
                   {{"name", "get_weather"},
                    {"description", "Get the weather in a given city"},
                    {"parameters", weather_schema()}}}}));
  EXPECT_EQ(body["tool_choice"],
            (json{{"type", "function"},
                  {"function", {{"name", "get_weather"}}}}));
  const auto& msgs = body["messages"];
  ASSERT_EQ(msgs.size(), 5u);
  EXPECT_EQ(msgs[2]["role"], "assistant");
  EXPECT_TRUE(msgs[2]["content"].is_null());
  ASSERT_EQ(msgs[2]["tool_calls"].size(), 2u);
  const auto& c0 = msgs[2]["tool_calls"][0];
  EXPECT_EQ(c0["id"], "call_1");
  EXPECT_EQ(c0["type"], "function");
  EXPECT_EQ(c0["function"]["name"], "get_weather");
  // Arguments travel as a JSON string.
  ASSERT_TRUE(c0["function"]["arguments"].is_string());
  EXPECT_EQ(json::parse(c0["function"]["arguments"].get<std::string>()),
            (json{{"city", "Paris"}}));
  EXPECT_EQ(msgs[3], (json{{"role", "tool"},
                           {"tool_call_id", "call_1"},
                           {"content", "18 degrees"}}));
  EXPECT_EQ(msgs[4]["tool_call_id"], "call_2");
  EXPECT_EQ(msgs[4]["content"], "Error: station offline");
}

TEST(LlmOpenai, ToolChoiceKeywordsPassAsStrings) {
  fixture f;
  f.srv.push(json_reply(completion(text_message("no"), "stop")));
  auto req = weather_request();
  req.tool_choice = "required";
  ASSERT_TRUE(make(f.prof)->complete(req, {}));
  EXPECT_EQ(f.srv.exchanges().at(0).json["tool_choice"], "required");
}

TEST(LlmOpenai, MalformedArgumentStringIsTheCallsErrorQuotingIt) {
  fixture f;
  json reply_msg{{"role", "assistant"},
                 {"content", nullptr},
                 {"refusal", nullptr},
                 {"tool_calls",
                  {{{"id", "call_1"},
                    {"type", "function"},
                    {"function",
                     {{"name", "get_weather"},
                      {"arguments", "{\"city\": \"Par"}}}}}}};
  f.srv.push(json_reply(completion(reply_msg, "tool_calls")));
  auto resp = make(f.prof)->complete(weather_request(), {});
  ASSERT_TRUE(resp) << describe(resp.error());
  ASSERT_EQ(resp->message.tool_calls.size(), 1u);
  const auto& call = resp->message.tool_calls[0];
  EXPECT_EQ(call.arguments.get(), json::object());
  EXPECT_TRUE(contains(call.arguments_error, "get_weather"))
    << call.arguments_error;
  EXPECT_TRUE(contains(call.arguments_error, "{\"city\": \"Par"))
    << call.arguments_error;
}

TEST(LlmOpenai, StreamingAssemblesTextAndToolCallPiecesSplitMidJson) {
  fixture f;
  std::string sse;
  sse += chunk({{"role", "assistant"}, {"content", ""}});
  sse += chunk({{"content", "Let me "}});
  sse += ": keep-alive comment\n\n";
  sse += chunk({{"content", "check."}});
  sse += chunk(call_piece(0, {{"name", "get_weather"}, {"arguments", ""}},
                          "call_A"));
  sse += chunk(call_piece(0, {{"arguments", "{\"ci"}}));
  sse += chunk(call_piece(0, {{"arguments", "ty\": \"Pa"}}));
  sse += chunk(call_piece(1, {{"name", "get_weather"},
                              {"arguments", "{\"city\":\"Lyon\"}"}},
                          "call_B"));
  sse += chunk(call_piece(0, {{"arguments", "ris\"}"}}));
  sse += chunk(json::object(), "tool_calls");
  sse += usage_chunk(40, 22);
  sse += "data: [DONE]\n\n";
  // Network pieces that cut lines and JSON anywhere, with CRLF endings.
  std::string crlf;
  for (char c : sse) {
    if (c == '\n')
      crlf += '\r';
    crlf += c;
  }
  f.srv.push(stream_reply(cut(crlf, 7), "text/event-stream"));
  auto req = weather_request();
  req.stream = true;
  std::vector<std::string> pieces;
  tools::llm::call_context ctx;
  ctx.on_text = [&](std::string_view t) { pieces.emplace_back(t); };
  auto resp = make(f.prof)->complete(req, ctx);
  ASSERT_TRUE(resp) << describe(resp.error());
  EXPECT_EQ(resp->message.content, "Let me check.");
  EXPECT_EQ(pieces, (std::vector<std::string>{"Let me ", "check."}));
  ASSERT_EQ(resp->message.tool_calls.size(), 2u);
  EXPECT_EQ(resp->message.tool_calls[0].id, "call_A");
  EXPECT_EQ(resp->message.tool_calls[0].arguments.get(),
            (json{{"city", "Paris"}}));
  EXPECT_EQ(resp->message.tool_calls[1].id, "call_B");
  EXPECT_EQ(resp->message.tool_calls[1].arguments.get(),
            (json{{"city", "Lyon"}}));
  EXPECT_EQ(resp->stop_reason, "tool_calls");
  EXPECT_EQ(resp->usage.input_tokens, 40u);
  EXPECT_EQ(resp->usage.output_tokens, 22u);
  const auto body = f.srv.exchanges().at(0).json;
  EXPECT_EQ(body["stream"], true);
  EXPECT_EQ(body["stream_options"], (json{{"include_usage", true}}));
}

TEST(LlmOpenai, StreamWithoutDoneOrFinishIsMalformed) {
  fixture f;
  f.srv.push(stream_reply({chunk({{"content", "cut sho"}})},
                          "text/event-stream"));
  auto req = weather_request();
  req.stream = true;
  auto resp = make(f.prof)->complete(req, {});
  ASSERT_FALSE(resp);
  expect_error(resp.error(), errc::tool_failed, "ended before");
}

TEST(LlmOpenai, ErrorChunkInsideA200StreamIsAnError) {
  fixture f;
  f.srv.push(stream_reply(
    {chunk({{"content", "Hel"}}),
     "data: "
       + error_body("The server had an error while processing your request",
                    "server_error")
           .dump()
       + "\n\n",
     chunk({{"content", "lo"}}, "stop"), "data: [DONE]\n\n"},
    "text/event-stream"));
  auto req = weather_request();
  req.stream = true;
  auto resp = make(f.prof)->complete(req, {});
  ASSERT_FALSE(resp);
  expect_error(resp.error(), errc::unavailable, "while processing");
}

TEST(LlmOpenai, ReplyWithoutChoicesIsMalformed) {
  fixture f;
  f.srv.push(json_reply({{"id", "x"}, {"object", "chat.completion"}}));
  auto resp = make(f.prof)->complete(weather_request(), {});
  ASSERT_FALSE(resp);
  expect_error(resp.error(), errc::tool_failed, "choices");
}

TEST(LlmOpenai, StreamThatStopsFlowingTimesOut) {
  fixture f;
  auto r = stream_reply({chunk({{"content", "Hel"}})}, "text/event-stream");
  r.stall_after = true;
  f.srv.push(r);
  f.prof.timeout = 300ms;
  auto req = weather_request();
  req.stream = true;
  std::string seen;
  tools::llm::call_context ctx;
  ctx.on_text = [&](std::string_view t) { seen += t; };
  auto resp = make(f.prof)->complete(req, ctx);
  ASSERT_FALSE(resp);
  expect_error(resp.error(), errc::timeout);
  EXPECT_EQ(seen, "Hel");
  // Part of the reply was delivered: no second attempt.
  EXPECT_EQ(f.srv.exchanges().size(), 1u);
}

TEST(LlmOpenai, CallDeadlineBoundsTheWait) {
  fixture f;
  llm_reply r;
  r.stall = true;
  f.srv.push(r);
  tools::llm::call_context ctx;
  ctx.deadline_us = std::chrono::duration_cast<std::chrono::microseconds>(
                      (std::chrono::system_clock::now() + 300ms)
                        .time_since_epoch())
                      .count();
  auto resp = make(f.prof)->complete(weather_request(), ctx);
  ASSERT_FALSE(resp);
  expect_error(resp.error(), errc::timeout, "deadline");
}

// Issue 12: a non-JSON 5xx body was cut to 200 characters before the key
// was scrubbed, so a key crossing the cut left its start in the error (and
// from there in the event log and on stdout).
TEST(LlmOpenai, KeyAcrossTheCutOfANonJsonErrorBodyLeavesNoTrace) {
  fixture f;
  llm_reply r;
  r.status = 502;
  r.content_type = "text/html";
  r.pieces = {std::string(190, 'x') + secret_key + std::string(100, 'y')};
  r.headers.emplace_back("Retry-After", "0");
  f.srv.push(r);
  auto resp = make(f.prof)->complete(weather_request(), {});
  ASSERT_FALSE(resp);
  auto text = describe(resp.error());
  expect_error(resp.error(), errc::unavailable, "HTTP 502");
  EXPECT_FALSE(contains(text, std::string{secret_key}.substr(0, 8))) << text;
  EXPECT_TRUE(contains(text, "[redacted]")) << text;
}

TEST(LlmOpenai, ContextOverflowIsInvalidInput) {
  fixture f;
  f.srv.push(json_reply(
    error_body("This model's maximum context length is 8192 tokens. However, "
               "your messages resulted in 9000 tokens.",
               "invalid_request_error", "context_length_exceeded"),
    400));
  auto resp = make(f.prof)->complete(weather_request(), {});
  ASSERT_FALSE(resp);
  expect_error(resp.error(), errc::invalid_input, "context window");
}

TEST(LlmOpenai, BadRequestIsRefusedBeforeSendingWithItsPointer) {
  fixture f;
  auto req = weather_request();
  req.messages.push_back({"tool", "18", {}, "", "", false});
  auto resp = make(f.prof)->complete(req, {});
  ASSERT_FALSE(resp);
  expect_error(resp.error(), errc::invalid_input, "/messages/2/tool_call_id");
  EXPECT_TRUE(f.srv.exchanges().empty());
}

TEST(LlmOpenai, CancelledCallStops) {
  fixture f;
  llm_reply r;
  r.stall = true;
  f.srv.push(r);
  tools::llm::call_context ctx;
  ctx.cancel_flag->store(true);
  auto resp = make(f.prof)->complete(weather_request(), ctx);
  ASSERT_FALSE(resp);
  expect_error(resp.error(), errc::cancelled);
}
