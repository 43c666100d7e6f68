// The agent loop's decisions asserted directly, without an actor system:
// which call it asks for, what it records, when it answers, repairs a
// final answer or summarizes memory, and that its log folds back to the
// state it decided in.

#include <gtest/gtest.h>

#include "cadre/workflow/agent_machine.hpp"

using namespace cadre;
using namespace cadre::workflow;

namespace ev = agent_events;

namespace {

constexpr int64_t now = 1000;

agent_turn turn_of(const std::string& key, json spec,
                   json input = "What is the answer?") {
  agent_turn t;
  t.agent = "helper";
  t.spec = json_value{std::move(spec)};
  t.input = json_value{std::move(input)};
  t.execution_id = "e1";
  t.task_id = "ask";
  t.idempotency_key = key;
  t.deadline_us = 99;
  return t;
}

std::vector<std::string> types(const agent_step& s) {
  std::vector<std::string> out;
  for (const auto& e : s.events)
    out.push_back(e.type);
  return out;
}

llm_response text_reply(const std::string& text, uint64_t in = 10,
                        uint64_t out = 5) {
  llm_response r;
  r.message.role = "assistant";
  r.message.content = text;
  r.usage.input_tokens = in;
  r.usage.output_tokens = out;
  return r;
}

llm_tool_call call_of(const std::string& id, const std::string& name,
                      json args = json::object()) {
  llm_tool_call c;
  c.id = id;
  c.name = name;
  c.arguments = json_value{std::move(args)};
  return c;
}

llm_response tools_reply(std::vector<llm_tool_call> calls) {
  llm_response r;
  r.message.role = "assistant";
  r.message.tool_calls = std::move(calls);
  return r;
}

// Runs a step into `log` and returns it.
struct recorder {
  std::vector<event> log;
  agent_step operator()(agent_step s) {
    log.insert(log.end(), s.events.begin(), s.events.end());
    return s;
  }
};

// Starts turn `key` and its first call.
agent_step start_and_begin(agent_machine& m, recorder& rec,
                           const agent_turn& t) {
  auto s = m.start(t, now);
  EXPECT_TRUE(s) << (s ? "" : describe(s.error()));
  if (s)
    rec(std::move(*s));
  return rec(m.begin(now));
}

// Runs a plain question-and-answer turn.
void plain_turn(agent_machine& m, recorder& rec, const std::string& key,
                const json& spec, const std::string& prompt,
                const std::string& reply) {
  auto b = start_and_begin(m, rec, turn_of(key, spec, prompt));
  ASSERT_EQ(b.actions.size(), 1u);
  rec(m.model_replied(key, b.actions[0].call, text_reply(reply), false, now));
  ASSERT_NE(m.finished(key), nullptr);
}

// The payload of the first agent_turn_started in `log`.
json started_of(const std::vector<event>& log) {
  for (const auto& e : log)
    if (e.type == ev::turn_started)
      return e.payload.get();
  ADD_FAILURE() << "no agent_turn_started";
  return json{};
}

} // namespace

TEST(AgentMachine, APlainTurnCallsTheModelOnceAndAnswersItsText) {
  agent_machine m{"e1/helper"};
  recorder rec;
  json spec{{"system", "Be brief."}};
  auto s = m.start(turn_of("t1", spec), now);
  ASSERT_TRUE(s);
  // The agent's first turn records its spec, which the turn names.
  EXPECT_EQ(types(*s), (std::vector<std::string>{ev::spec, ev::turn_started,
                                                 ev::message}));
  EXPECT_TRUE(s->actions.empty()); // the first call comes from begin()
  EXPECT_EQ(s->events[0].execution_id, "agent:e1/helper");
  for (size_t i = 0; i < s->events.size(); ++i)
    EXPECT_EQ(s->events[i].seq, i + 1);
  rec(std::move(*s));
  ASSERT_NE(m.active(), nullptr);
  EXPECT_EQ(m.active()->deadline_us, 99);
  auto b = rec(m.begin(now));
  EXPECT_EQ(types(b), std::vector<std::string>{ev::llm_requested});
  ASSERT_EQ(b.actions.size(), 1u);
  const auto& a = b.actions[0];
  EXPECT_EQ(a.kind, agent_action::call_model);
  EXPECT_EQ(a.turn, "t1");
  EXPECT_EQ(a.call, 1u);
  // The call asks the log's last request.
  ASSERT_NE(m.last_request(), nullptr);
  const auto& req = *m.last_request();
  ASSERT_EQ(req.messages.size(), 2u);
  EXPECT_EQ(req.messages[0].role, "system");
  EXPECT_EQ(req.messages[0].content, "Be brief.");
  EXPECT_EQ(req.messages[1].role, "user");
  EXPECT_EQ(req.messages[1].content, "What is the answer?");
  EXPECT_EQ(req.agent, "helper");
  EXPECT_EQ(req.profile, "default");
  auto r = rec(m.model_replied("t1", 1, text_reply("42"), false, now));
  EXPECT_EQ(types(r), (std::vector<std::string>{ev::llm_responded,
                                                ev::turn_completed}));
  ASSERT_EQ(r.actions.size(), 1u);
  EXPECT_EQ(r.actions[0].kind, agent_action::answer);
  EXPECT_TRUE(r.actions[0].ok);
  EXPECT_EQ(r.actions[0].agent, "helper");
  EXPECT_EQ(m.active(), nullptr);
  auto* f = m.finished("t1");
  ASSERT_NE(f, nullptr);
  EXPECT_TRUE(f->ok);
  EXPECT_EQ(f->output, "42");
  EXPECT_EQ(f->usage["input_tokens"], 10);
  EXPECT_EQ(f->usage["output_tokens"], 5);
  EXPECT_EQ(f->usage["llm_calls"], 1);
  // Memory keeps the prompt and the answer.
  ASSERT_EQ(m.history().size(), 2u);
  EXPECT_EQ(m.history()[0].content, "What is the answer?");
  EXPECT_EQ(m.history()[1].content, "42");
  // Later replies to the finished turn are stale.
  EXPECT_TRUE(m.model_replied("t1", 1, text_reply("again"), false, now)
                .empty());
}

TEST(AgentMachine, ToolCallsAreRecordedThenRunAndTheirResultsGoBackInOrder) {
  agent_machine m{"a"};
  recorder rec;
  json spec{{"tools", {"echo", "clock"}}};
  m.know_tool(llm_tool_spec{"echo", "Echoes", json_value{json::object()}});
  auto b = start_and_begin(m, rec, turn_of("t", spec));
  // Only the tools known and allowed are offered.
  ASSERT_EQ(b.actions.size(), 1u);
  ASSERT_EQ(m.last_request()->tools.size(), 1u);
  EXPECT_EQ(m.last_request()->tools[0].name, "echo");
  auto r = rec(m.model_replied(
    "t", 1,
    tools_reply({call_of("c1", "echo", {{"x", 1}}), call_of("c2", "clock")}),
    false, now));
  EXPECT_EQ(types(r), (std::vector<std::string>{ev::llm_responded,
                                                ev::tool_called,
                                                ev::tool_called}));
  ASSERT_EQ(r.actions.size(), 1u);
  EXPECT_EQ(r.actions[0].kind, agent_action::call_tools);
  ASSERT_EQ(r.actions[0].tools.size(), 2u);
  EXPECT_EQ(r.actions[0].tools[0].id, "c1");
  EXPECT_EQ(r.actions[0].tools[1].id, "c2");
  // The second finishes first: recorded, no call yet.
  auto t2 = rec(m.tool_done("t", call_of("c2", "clock"),
                            expected<json>{make_error(errc::timeout, "slow")},
                            now));
  EXPECT_EQ(types(t2), std::vector<std::string>{ev::tool_result});
  EXPECT_TRUE(t2.actions.empty());
  EXPECT_EQ(t2.events[0].payload.get()["error"], "slow");
  // A result twice, or of a call never made, is ignored.
  EXPECT_TRUE(m.tool_done("t", call_of("c2", "clock"), json{1}, now).empty());
  EXPECT_TRUE(m.tool_done("t", call_of("c9", "echo"), json{1}, now).empty());
  auto t1 = rec(m.tool_done("t", call_of("c1", "echo"), json{{"x", 1}}, now));
  EXPECT_EQ(types(t1), (std::vector<std::string>{ev::tool_result,
                                                 ev::llm_requested}));
  ASSERT_EQ(t1.actions.size(), 1u);
  const auto& req = *m.last_request();
  EXPECT_EQ(t1.actions[0].call, 2u);
  // user, assistant (calls), then the results in call order.
  ASSERT_EQ(req.messages.size(), 4u);
  EXPECT_EQ(req.messages[2].role, "tool");
  EXPECT_EQ(req.messages[2].tool_call_id, "c1");
  EXPECT_EQ(req.messages[2].content, "{\"x\":1}");
  EXPECT_FALSE(req.messages[2].is_error);
  EXPECT_EQ(req.messages[3].tool_call_id, "c2");
  EXPECT_TRUE(req.messages[3].is_error);
  EXPECT_EQ(req.messages[3].content, "slow");
  rec(m.model_replied("t", 2, text_reply("ok"), false, now));
  ASSERT_NE(m.finished("t"), nullptr);
  EXPECT_EQ(m.finished("t")->usage["tool_calls"], 2);
  EXPECT_EQ(m.finished("t")->usage["llm_calls"], 2);
}

TEST(AgentMachine, CallsOfToolsWithoutSideEffectsMayGoBeforeTheirRecord) {
  agent_machine m{"a"};
  recorder rec;
  json spec{{"tools", {"echo", "http", "clock"}}};
  m.know_tool(llm_tool_spec{"echo", "Echoes", json_value{json::object()}},
              false);
  m.know_tool(llm_tool_spec{"http", "Sends", json_value{json::object()}});
  start_and_begin(m, rec, turn_of("t", spec));
  auto before = rec.log.size();
  auto r = rec(m.model_replied("t", 1,
                               tools_reply({call_of("c1", "echo"),
                                            call_of("c2", "http"),
                                            call_of("c3", "clock")}),
                               false, now));
  // Every call is recorded in the step, as before; only when each may go
  // differs: echo at once, http and the unknown clock once it is on disk.
  EXPECT_EQ(types(r), (std::vector<std::string>{ev::llm_responded,
                                                ev::tool_called,
                                                ev::tool_called,
                                                ev::tool_called}));
  ASSERT_EQ(r.actions.size(), 2u);
  EXPECT_EQ(r.actions[0].kind, agent_action::call_tools);
  EXPECT_TRUE(r.actions[0].early);
  ASSERT_EQ(r.actions[0].tools.size(), 1u);
  EXPECT_EQ(r.actions[0].tools[0].id, "c1");
  EXPECT_EQ(r.actions[1].kind, agent_action::call_tools);
  EXPECT_FALSE(r.actions[1].early);
  ASSERT_EQ(r.actions[1].tools.size(), 2u);
  EXPECT_EQ(r.actions[1].tools[0].id, "c2");
  EXPECT_EQ(r.actions[1].tools[1].id, "c3");
  {
    // A crash before the step's append: the log stops at the model call,
    // which runs again and asks for the calls again, echo again early.
    agent_machine again{"a"};
    again.know_tool(llm_tool_spec{"echo", "", json_value{json::object()}},
                    false);
    for (size_t i = 0; i < before; ++i)
      again.apply(rec.log[i]);
    auto resumed = again.resume(now);
    EXPECT_TRUE(resumed.events.empty());
    ASSERT_EQ(resumed.actions.size(), 1u);
    EXPECT_EQ(resumed.actions[0].kind, agent_action::call_model);
    auto re = again.model_replied("t", 1,
                                  tools_reply({call_of("c1", "echo")}), false,
                                  now);
    ASSERT_EQ(re.actions.size(), 1u);
    EXPECT_TRUE(re.actions[0].early);
  }
  {
    // A crash after it: every unanswered call goes again from the log.
    agent_machine again{"a"};
    for (const auto& e : rec.log)
      again.apply(e);
    auto resumed = again.resume(now);
    ASSERT_EQ(resumed.actions.size(), 1u);
    EXPECT_EQ(resumed.actions[0].tools.size(), 3u);
  }
  // A tool that says it has side effects after all is no longer early.
  m.know_tool(llm_tool_spec{"echo", "Echoes", json_value{json::object()}});
  rec(m.tool_done("t", call_of("c1", "echo"), json{1}, now));
  rec(m.tool_done("t", call_of("c2", "http"), json{2}, now));
  auto last = rec(m.tool_done("t", call_of("c3", "clock"), json{3}, now));
  ASSERT_EQ(last.actions.size(), 1u);
  auto again = rec(m.model_replied(
    "t", 2, tools_reply({call_of("c4", "echo")}), false, now));
  ASSERT_EQ(again.actions.size(), 1u);
  EXPECT_FALSE(again.actions[0].early);
}

TEST(AgentMachine, MissingOrRepeatedToolCallIdsAreMadeUnique) {
  agent_machine m{"a"};
  recorder rec;
  start_and_begin(m, rec, turn_of("t", json{{"tools", {"echo"}}}));
  auto r = m.model_replied(
    "t", 1,
    tools_reply({call_of("", "echo"), call_of("x", "echo"),
                 call_of("x", "echo")}),
    false, now);
  ASSERT_EQ(r.actions.size(), 1u);
  const auto& calls = r.actions[0].tools;
  ASSERT_EQ(calls.size(), 3u);
  EXPECT_EQ(calls[0].id, "call_1_1");
  EXPECT_EQ(calls[1].id, "x");
  EXPECT_EQ(calls[2].id, "call_1_3");
}

TEST(AgentMachine, ToolCallsPastMaxIterationsFailTheTurn) {
  agent_machine m{"a"};
  recorder rec;
  start_and_begin(m, rec,
                  turn_of("t", json{{"tools", {"echo"}},
                                    {"max_iterations", 1}}));
  auto r = m.model_replied("t", 1, tools_reply({call_of("c", "echo")}), false,
                           now);
  EXPECT_EQ(types(r), (std::vector<std::string>{ev::llm_responded,
                                                ev::turn_failed}));
  ASSERT_EQ(r.actions.size(), 1u);
  EXPECT_EQ(r.actions[0].kind, agent_action::answer);
  EXPECT_FALSE(r.actions[0].ok);
  auto* f = m.finished("t");
  ASSERT_NE(f, nullptr);
  EXPECT_EQ(f->code, errc::tool_failed);
  EXPECT_EQ(f->message,
            "agent helper (task ask): no final answer after max_iterations "
            "(1) LLM calls; the model still calls tools");
}

TEST(AgentMachine, AFinalAnswerIsCheckedAgainstTheOutputSchemaWithOneRepair) {
  json schema{{"type", "object"},
              {"required", {"n"}},
              {"properties", {{"n", {{"type", "integer"}}}}}};
  {
    // Prose before a fenced block that matches: accepted.
    agent_machine m{"a"};
    recorder rec;
    start_and_begin(m, rec, turn_of("t", json{{"output_schema", schema}}));
    rec(m.model_replied("t", 1,
                        text_reply("Here it is:\n```json\n{\"n\": 3}\n```"),
                        false, now));
    ASSERT_NE(m.finished("t"), nullptr);
    EXPECT_EQ(m.finished("t")->output, (json{{"n", 3}}));
  }
  agent_machine m{"a"};
  recorder rec;
  start_and_begin(m, rec, turn_of("t", json{{"output_schema", schema}}));
  auto r = rec(m.model_replied("t", 1, text_reply("three"), false, now));
  EXPECT_EQ(types(r), (std::vector<std::string>{ev::llm_responded,
                                                ev::message,
                                                ev::llm_requested}));
  EXPECT_EQ(r.events[1].payload.get()["repair"], true);
  ASSERT_EQ(r.actions.size(), 1u);
  EXPECT_EQ(r.actions[0].kind, agent_action::call_model);
  EXPECT_EQ(r.actions[0].call, 2u);
  const auto& fix = m.last_request()->messages.back();
  EXPECT_EQ(fix.role, "user");
  EXPECT_NE(fix.content.find("the answer is not JSON"), std::string::npos);
  EXPECT_TRUE(m.active()->repaired);
  // A second mismatch fails, quoting the answer.
  auto f = rec(m.model_replied("t", 2, text_reply("{\"n\": \"x\"}"), false,
                               now));
  EXPECT_EQ(types(f), (std::vector<std::string>{ev::llm_responded,
                                                ev::turn_failed}));
  auto* done = m.finished("t");
  ASSERT_NE(done, nullptr);
  EXPECT_EQ(done->code, errc::invalid_input);
  EXPECT_NE(done->message.find("after a repair turn"), std::string::npos);
  EXPECT_NE(done->message.find("the answer was: '{\"n\": \"x\"}'"),
            std::string::npos)
    << done->message;
}

TEST(AgentMachine, AFailedModelCallFailsTheTurnWithItsCode) {
  {
    agent_machine m{"a"};
    recorder rec;
    start_and_begin(m, rec, turn_of("t", json::object()));
    // Another call number is stale.
    EXPECT_TRUE(
      m.model_failed("t", 2, make_error(errc::timeout, "x"), now).empty());
    auto s = m.model_failed("t", 1, make_error(errc::timeout, "too slow"),
                            now);
    EXPECT_EQ(types(s), std::vector<std::string>{ev::turn_failed});
    ASSERT_NE(m.finished("t"), nullptr);
    EXPECT_EQ(m.finished("t")->code, errc::timeout);
    EXPECT_EQ(m.finished("t")->message,
              "agent helper (task ask): LLM call 1 failed: too slow");
  }
  agent_machine m{"a"};
  recorder rec;
  start_and_begin(m, rec, turn_of("t", json::object()));
  // An error outside cadre's codes (CAF's own) reads as unavailable.
  m.model_failed("t", 1, caf::make_error(caf::sec::request_timeout), now);
  ASSERT_NE(m.finished("t"), nullptr);
  EXPECT_EQ(m.finished("t")->code, errc::unavailable);
}

TEST(AgentMachine, ASpecThatDoesNotReadIsRefusedWithItsPlace) {
  agent_machine m{"a"};
  auto s = m.start(turn_of("t", json{{"max_iterations", 0}}), now);
  ASSERT_FALSE(s);
  EXPECT_EQ(code_of(s.error()), errc::invalid_config);
  EXPECT_NE(message_of(s.error()).find("agent helper/max_iterations"),
            std::string::npos)
    << message_of(s.error());
  EXPECT_EQ(m.active(), nullptr);
  EXPECT_EQ(m.last_seq(), 0u);
}

TEST(AgentMachine, TheMemoryWindowKeepsTheNewestMessages) {
  agent_machine m{"a"};
  recorder rec;
  json spec{{"memory", {{"window", 2}}}};
  plain_turn(m, rec, "t1", spec, "one", "1");
  plain_turn(m, rec, "t2", spec, "two", "2");
  auto b = start_and_begin(m, rec, turn_of("t3", spec, "three"));
  ASSERT_EQ(b.actions.size(), 1u);
  const auto& msgs = m.last_request()->messages;
  ASSERT_EQ(msgs.size(), 3u);
  EXPECT_EQ(msgs[0].content, "two");
  EXPECT_EQ(msgs[1].content, "2");
  EXPECT_EQ(msgs[2].content, "three");
}

TEST(AgentMachine, SummaryMemoryAsksForASummaryFirstThenSendsIt) {
  agent_machine m{"a"};
  recorder rec;
  json spec{{"memory", {{"window", 2}, {"policy", "summary"}, {"keep", 1}}}};
  plain_turn(m, rec, "t1", spec, "one", "1");
  plain_turn(m, rec, "t2", spec, "two", "2");
  // Four unsummarized messages, over the window of 2: all but the newest
  // (keep 1) are summarized first.
  auto s = m.start(turn_of("t3", spec, "three"), now);
  ASSERT_TRUE(s);
  rec(std::move(*s));
  auto b = rec(m.begin(now));
  EXPECT_EQ(types(b), std::vector<std::string>{ev::summary_requested});
  ASSERT_EQ(b.actions.size(), 1u);
  EXPECT_EQ(b.actions[0].kind, agent_action::call_summary);
  EXPECT_EQ(b.events[0].payload.get()["from"], 0);
  EXPECT_EQ(b.events[0].payload.get()["to"], 3);
  const auto& ask = b.actions[0].request.messages.back().content;
  EXPECT_NE(ask.find("[user] one\n[assistant] 1\n[user] two"),
            std::string::npos)
    << ask;
  EXPECT_EQ(ask.find("[assistant] 2"), std::string::npos) << ask;
  auto r = rec(m.summary_replied("t3", text_reply("They counted."), false,
                                 now));
  EXPECT_EQ(types(r), (std::vector<std::string>{ev::summarized,
                                                ev::llm_requested}));
  ASSERT_EQ(r.actions.size(), 1u);
  const auto& msgs = m.last_request()->messages;
  ASSERT_EQ(msgs.size(), 3u);
  EXPECT_EQ(msgs[0].role, "system");
  EXPECT_NE(msgs[0].content.find("They counted."), std::string::npos);
  EXPECT_EQ(msgs[1].content, "2");
  EXPECT_EQ(msgs[2].content, "three");
  // The summary's tokens count in the turn.
  rec(m.model_replied("t3", 1, text_reply("3"), false, now));
  EXPECT_EQ(m.finished("t3")->usage["llm_calls"], 2);
  EXPECT_EQ(m.view()["summary"], "They counted.");
  EXPECT_EQ(m.view()["summarized"], 3);
}

TEST(AgentMachine, AFailedSummaryGoesOnWithTheWindow) {
  agent_machine m{"a"};
  recorder rec;
  json spec{{"memory", {{"window", 2}, {"policy", "summary"}, {"keep", 1}}}};
  plain_turn(m, rec, "t1", spec, "one", "1");
  plain_turn(m, rec, "t2", spec, "two", "2");
  start_and_begin(m, rec, turn_of("t3", spec, "three"));
  auto r = m.summary_failed("t3", "no model", now);
  EXPECT_EQ(types(r), (std::vector<std::string>{ev::summary_failed,
                                                ev::llm_requested}));
  ASSERT_EQ(r.actions.size(), 1u);
  const auto& msgs = m.last_request()->messages;
  ASSERT_EQ(msgs.size(), 3u);
  EXPECT_EQ(msgs[0].content, "two");
  // Answered once: a late reply is stale.
  EXPECT_TRUE(m.summary_replied("t3", text_reply("late"), false, now).empty());
}

TEST(AgentMachine, ResumeContinuesWhereTheLogStops) {
  // A turn with two tool calls, one answered, cut off there.
  agent_machine m{"a"};
  recorder rec;
  json spec{{"tools", {"echo"}}};
  start_and_begin(m, rec, turn_of("t", spec));
  rec(m.model_replied("t", 1,
                      tools_reply({call_of("c1", "echo"),
                                   call_of("c2", "echo")}),
                      false, now));
  rec(m.tool_done("t", call_of("c1", "echo"), json{1}, now));
  {
    // Folded again, the open call is sent again; nothing new is recorded.
    agent_machine again{"a"};
    for (const auto& e : rec.log)
      again.apply(e);
    EXPECT_EQ(again.view(), m.view());
    auto r = again.resume(now);
    EXPECT_TRUE(r.events.empty());
    ASSERT_EQ(r.actions.size(), 1u);
    EXPECT_EQ(r.actions[0].kind, agent_action::call_tools);
    ASSERT_EQ(r.actions[0].tools.size(), 1u);
    EXPECT_EQ(r.actions[0].tools[0].id, "c2");
  }
  rec(m.tool_done("t", call_of("c2", "echo"), json{2}, now));
  {
    // The model call in flight runs again, with its number and request.
    agent_machine again{"a"};
    for (const auto& e : rec.log)
      again.apply(e);
    auto r = again.resume(now);
    EXPECT_TRUE(r.events.empty());
    ASSERT_EQ(r.actions.size(), 1u);
    EXPECT_EQ(r.actions[0].kind, agent_action::call_model);
    EXPECT_EQ(r.actions[0].call, 2u);
    EXPECT_EQ(again.last_request()->messages.size(), 4u);
  }
  // The reply recorded, the end not: the final answer is decided again.
  llm_response last = text_reply("done");
  auto replied = m.model_replied("t", 2, last, false, now);
  ASSERT_EQ(replied.events.size(), 2u);
  rec.log.push_back(replied.events[0]); // llm_responded only
  agent_machine again{"a"};
  for (const auto& e : rec.log)
    again.apply(e);
  auto r = again.resume(now);
  EXPECT_EQ(types(r), std::vector<std::string>{ev::turn_completed});
  ASSERT_NE(again.finished("t"), nullptr);
  EXPECT_EQ(again.finished("t")->output, "done");
}

TEST(AgentMachine, AStartedTurnWithoutACallResumesWithItsFirstCall) {
  agent_machine m{"a"};
  auto s = m.start(turn_of("t", json::object()), now);
  ASSERT_TRUE(s);
  agent_machine again{"a"};
  for (const auto& e : s->events)
    again.apply(e);
  auto r = again.resume(now);
  EXPECT_EQ(types(r), std::vector<std::string>{ev::llm_requested});
  ASSERT_EQ(r.actions.size(), 1u);
  EXPECT_EQ(r.actions[0].call, 1u);
  // The deadline is not in the log: the request sent again brings it.
  EXPECT_EQ(again.active()->deadline_us, 0);
  again.set_deadline("t", 5);
  EXPECT_EQ(again.active()->deadline_us, 5);
}

TEST(AgentMachine, TheLogOfSeveralTurnsFoldsToTheSameMemory) {
  agent_machine m{"a"};
  recorder rec;
  json spec{{"tools", {"echo"}}};
  plain_turn(m, rec, "t1", spec, "one", "1");
  start_and_begin(m, rec, turn_of("t2", spec, "two"));
  rec(m.model_replied("t2", 1, tools_reply({call_of("c", "echo")}), false,
                      now));
  rec(m.tool_done("t2", call_of("c", "echo"), json{"e"}, now));
  rec(m.model_replied("t2", 2, text_reply("2"), false, now));
  agent_machine again{"a"};
  for (const auto& e : rec.log)
    again.apply(e);
  EXPECT_EQ(again.view(), m.view());
  EXPECT_EQ(again.last_seq(), rec.log.size());
  EXPECT_EQ(m.view()["turns"], 2);
  EXPECT_EQ(m.history().size(), 4u);
}

TEST(AgentMachine, ToolCallsOutsideTheAgentsToolsOrWithBadArgumentsAreRefused) {
  agent_spec spec;
  spec.tools = {"echo"};
  auto code = [&](const llm_tool_call& c, bool routed, bool lost) {
    auto e = refuse_tool_call(spec, c, routed, lost);
    return e ? code_of(*e) : errc::ok;
  };
  EXPECT_EQ(code(call_of("c", "echo"), true, false), errc::ok);
  EXPECT_EQ(code(call_of("c", "shell"), true, false), errc::tool_not_found);
  EXPECT_EQ(code(call_of("c", "echo"), false, false), errc::tool_not_found);
  EXPECT_EQ(code(call_of("c", "echo"), false, true), errc::unavailable);
  EXPECT_EQ(code(call_of("c", "echo", json::array()), true, false),
            errc::invalid_input);
  auto broken = call_of("c", "echo");
  broken.arguments_error = "arguments are not JSON: '{x'";
  auto e = refuse_tool_call(spec, broken, true, false);
  ASSERT_TRUE(e);
  EXPECT_EQ(code_of(*e), errc::invalid_input);
  EXPECT_NE(message_of(*e).find("arguments are not JSON: '{x'"),
            std::string::npos);
}

TEST(AgentMachine, AnswerJsonTakesTheWholeTextOrTheFirstBlockThatParses) {
  EXPECT_EQ(answer_json("{\"a\": 1}"), (json{{"a", 1}}));
  EXPECT_EQ(answer_json("So:\n```\nnot json\n```\n```json\n[1]\n```"),
            json::array({1}));
  EXPECT_TRUE(answer_json("no json here").is_discarded());
  EXPECT_TRUE(answer_json("```json\n{unclosed").is_discarded());
}

TEST(AgentMachine, AForksTurnRecordsWhatItReusesAndMarksAReusedReply) {
  agent_machine m{"f1/helper"};
  recorder rec;
  auto t = turn_of("f1/ask/1", json{{"system", "Be brief."}});
  t.execution_id = "f1";
  t.fork_of = "p1";
  t.replies = "replies:f1";
  auto b = start_and_begin(m, rec, t);
  ASSERT_EQ(b.actions.size(), 1u);
  auto started = started_of(rec.log);
  EXPECT_EQ(started["fork_of"], "p1");
  EXPECT_EQ(started["replies"], "replies:f1");
  auto r = rec(m.model_replied("f1/ask/1", 1, text_reply("42"), false, now,
                               true));
  ASSERT_FALSE(r.events.empty());
  EXPECT_EQ(r.events[0].type, ev::llm_responded);
  EXPECT_EQ(r.events[0].payload->value("reused", false), true);
  EXPECT_FALSE(r.events[0].payload->contains("cached"));
  // A machine folded from the log knows them too (a resumed turn reuses).
  agent_machine again{"f1/helper"};
  again.apply(rec.log[0]);
  again.apply(rec.log[1]);
  ASSERT_NE(again.active(), nullptr);
  EXPECT_EQ(again.active()->fork_of, "p1");
  EXPECT_EQ(again.active()->replies, "replies:f1");
  // An ordinary turn records neither.
  agent_machine plain{"e1/helper"};
  recorder prec;
  start_and_begin(plain, prec, turn_of("e1/ask/1", json::object()));
  EXPECT_FALSE(started_of(prec.log).contains("fork_of"));
  EXPECT_FALSE(started_of(prec.log).contains("replies"));
}

// The machine folds its own events from the typed values it decided with
// (no JSON read-back); the log must fold to the very same turn, or a
// resumed or forked turn would send a different request.
TEST(AgentMachine, ItsOwnFoldOfATurnEqualsTheFoldOfItsLog) {
  agent_machine m{"a"};
  recorder rec;
  json spec{{"system", "Be brief."},
            {"tools", {"echo"}},
            {"temperature", 0.5},
            {"max_tokens", 64},
            {"script", json::array({json{{"reply", {{"text", "x"}}}}})}};
  llm_tool_spec echo;
  echo.name = "echo";
  echo.description = "Echoes.";
  echo.parameters = json_value{json{{"type", "object"}}};
  m.know_tool(echo);
  plain_turn(m, rec, "t1", spec, "one", "1");
  auto same = [&](const char* where) {
    agent_machine again{"a"};
    again.know_tool(echo);
    for (const auto& e : rec.log)
      again.apply(e);
    SCOPED_TRACE(where);
    EXPECT_EQ(again.view(), m.view());
    ASSERT_NE(m.active(), nullptr);
    ASSERT_NE(again.active(), nullptr);
    const auto& a = *m.active();
    const auto& b = *again.active();
    ASSERT_NE(m.last_request(), nullptr);
    ASSERT_NE(again.last_request(), nullptr);
    EXPECT_EQ(json(*m.last_request()), json(*again.last_request()));
    EXPECT_EQ(a.spec.name, b.spec.name);
    EXPECT_EQ(a.spec.system, b.spec.system);
    EXPECT_EQ(a.spec.tools, b.spec.tools);
    EXPECT_EQ(a.spec.script, b.spec.script);
    EXPECT_EQ(a.spec.temperature, b.spec.temperature);
    EXPECT_EQ(a.spec.max_tokens, b.spec.max_tokens);
    EXPECT_EQ(json(a.messages), json(b.messages));
    EXPECT_EQ(json(a.tool_calls), json(b.tool_calls));
    EXPECT_EQ(a.usage, b.usage);
    EXPECT_EQ(a.calls, b.calls);
    EXPECT_EQ(a.llm_pending, b.llm_pending);
  };
  start_and_begin(m, rec, turn_of("t2", spec, "two"));
  same("first call asked");
  auto reply = tools_reply({call_of("", "echo", json{{"text", "hi"}})});
  reply.usage.input_tokens = 7;
  reply.usage.cost_usd = 0.25;
  rec(m.model_replied("t2", 1, reply, false, now));
  same("tool calls recorded");
  rec(m.tool_done("t2", m.active()->tool_calls[0], json{{"text", "hi"}},
                  now));
  same("second call asked");
}

// A spec is large and the same for most turns: the log holds each distinct
// spec once (agent_spec), and every turn names its spec by id.
TEST(AgentMachine, EachDistinctSpecIsRecordedOnceAndTurnsNameIt) {
  agent_machine m{"a"};
  recorder rec;
  json one{{"system", "Be brief."}};
  json two{{"system", "Be thorough."}};
  plain_turn(m, rec, "t1", one, "q1", "1");
  plain_turn(m, rec, "t2", one, "q2", "2");
  plain_turn(m, rec, "t3", two, "q3", "3");
  plain_turn(m, rec, "t4", one, "q4", "4");
  std::vector<json> specs;
  std::vector<json> named;
  for (const auto& e : rec.log) {
    const auto& p = e.payload.get();
    if (e.type == ev::spec)
      specs.push_back(p);
    if (e.type == ev::turn_started) {
      EXPECT_FALSE(p.contains("spec")) << p;
      named.push_back(p.value("spec_id", json{}));
    }
  }
  ASSERT_EQ(specs.size(), 2u);
  EXPECT_EQ(specs[0], (json{{"spec_id", 1}, {"agent", "helper"},
                            {"spec", one}}));
  EXPECT_EQ(specs[1], (json{{"spec_id", 2}, {"agent", "helper"},
                            {"spec", two}}));
  EXPECT_EQ(named, (std::vector<json>{1, 1, 2, 1}));
  // Folded again (a restarted agent), a turn started next knows the specs:
  // it records none anew, and its request has the named spec's prompt.
  agent_machine again{"a"};
  for (const auto& e : rec.log)
    again.apply(e);
  EXPECT_EQ(again.view(), m.view());
  auto s = again.start(turn_of("t5", two, "q5"), now);
  ASSERT_TRUE(s);
  EXPECT_EQ(types(*s), (std::vector<std::string>{ev::turn_started,
                                                 ev::message}));
  EXPECT_EQ(s->events[0].payload.get()["spec_id"], 2);
  auto b = again.begin(now);
  ASSERT_EQ(b.actions.size(), 1u);
  EXPECT_EQ(again.last_request()->messages[0].content, "Be thorough.");
}

// An agent whose turns each run a different spec (a prompt made from the
// task's input) holds only the specs it ran last: one it dropped is
// recorded again under a new id when a turn runs it again, one it holds is
// named again, and the log folded again resolves every turn's spec.
TEST(AgentMachine, ItHoldsOnlyTheSpecsItRanLast) {
  agent_machine m{"a"};
  recorder rec;
  auto spec_of = [](size_t k) {
    return json{{"system", "Prompt " + std::to_string(k)}};
  };
  size_t n = 2 * max_held_specs + 5;
  for (size_t k = 0; k < n; ++k) {
    plain_turn(m, rec, "t" + std::to_string(k), spec_of(k), "q", "a");
    EXPECT_LE(m.held_specs(), max_held_specs) << "after turn " << k;
  }
  auto spec_events = [&] {
    std::vector<json> out;
    for (const auto& e : rec.log)
      if (e.type == ev::spec)
        out.push_back(e.payload.get());
    return out;
  };
  ASSERT_EQ(spec_events().size(), n);
  // The last spec run is held: its next turn names it.
  plain_turn(m, rec, "again-last", spec_of(n - 1), "q", "a");
  ASSERT_EQ(spec_events().size(), n);
  // The first was dropped: recorded again, under an id no spec had.
  auto b = start_and_begin(m, rec, turn_of("again-first", spec_of(0), "q"));
  ASSERT_EQ(b.actions.size(), 1u);
  auto specs = spec_events();
  ASSERT_EQ(specs.size(), n + 1);
  EXPECT_EQ(specs.back()["spec_id"], n + 1);
  EXPECT_EQ(specs.back()["spec"], spec_of(0));
  // Folded again with that turn in flight, the turn has its spec, and so
  // did every turn before it.
  agent_machine again{"a"};
  for (const auto& e : rec.log) {
    again.apply(e);
    if (e.type == ev::turn_started) {
      auto id = e.payload.get()["spec_id"].get<size_t>();
      auto want = id <= n ? spec_of(id - 1) : spec_of(0);
      ASSERT_NE(again.active(), nullptr);
      EXPECT_EQ(again.active()->spec.system, want["system"]) << id;
    }
  }
  EXPECT_EQ(again.view(), m.view());
  ASSERT_NE(again.active(), nullptr);
  EXPECT_EQ(again.active()->key, "again-first");
  EXPECT_EQ(again.active()->spec.system, "Prompt 0");
}

// A log written before specs were recorded apart holds the spec in each
// agent_turn_started: it still folds, and a turn cut off in it resumes
// with its spec.
TEST(AgentMachine, AnOldLogWithTheSpecInEveryTurnStillFoldsAndResumes) {
  auto ev_of = [](uint64_t seq, const char* type, json payload) {
    return event{"agent:a", seq, 1, type, json_value{std::move(payload)}};
  };
  json spec{{"system", "Old and wise."}};
  llm_message user;
  user.role = "user";
  user.content = "q";
  std::vector<event> old{
    ev_of(1, ev::turn_started,
          {{"turn", "t1"}, {"agent", "helper"}, {"spec", spec},
           {"execution", "e1"}, {"task", "ask"}, {"attempt", 1},
           {"input", "q"}}),
    ev_of(2, ev::message, {{"turn", "t1"}, {"message", user}})};
  agent_machine m{"a"};
  for (const auto& e : old)
    m.apply(e);
  ASSERT_NE(m.active(), nullptr);
  EXPECT_EQ(m.active()->spec.system, "Old and wise.");
  auto r = m.resume(now);
  ASSERT_EQ(r.actions.size(), 1u);
  EXPECT_EQ(r.actions[0].kind, agent_action::call_model);
  EXPECT_EQ(m.last_request()->messages[0].content, "Old and wise.");
  // The turn finishes; the next one records its spec in the new form.
  EXPECT_EQ(types(m.model_replied("t1", 1, text_reply("a"), false, now)),
            (std::vector<std::string>{ev::llm_responded, ev::turn_completed}));
  auto s = m.start(turn_of("t2", spec, "q2"), now);
  ASSERT_TRUE(s);
  EXPECT_EQ(types(*s), (std::vector<std::string>{ev::spec, ev::turn_started,
                                                 ev::message}));
  EXPECT_EQ(s->events[0].seq, 6u);
}

namespace {

// The whole requests `log` records, in order, as every reader rebuilds
// them.
std::vector<llm_request> requests_in(const std::vector<event>& log) {
  std::vector<llm_request> out;
  agent_request_log requests;
  for (const auto& e : log)
    if (const auto* r = requests.apply(e))
      out.push_back(*r);
    else if (e.type == ev::llm_requested)
      ADD_FAILURE() << "request " << e.seq << " does not read: "
                    << e.payload.get();
  return out;
}

std::vector<json> payloads_of(const std::vector<event>& log,
                              const char* type) {
  std::vector<json> out;
  for (const auto& e : log)
    if (e.type == type)
      out.push_back(e.payload.get());
  return out;
}

llm_message message_of(const std::string& role, const std::string& text) {
  llm_message m;
  m.role = role;
  m.content = text;
  return m;
}

} // namespace

// A call mostly resends the memory window the previous call sent: the
// log's first request is recorded whole, each later one as what changed
// (ranges of the previous request's messages, and its new messages), and
// the log rebuilds every request the model was asked.
TEST(AgentMachine, ARequestIsRecordedAsWhatChangedSinceTheLogsPreviousOne) {
  agent_machine m{"a"};
  recorder rec;
  json spec{{"system", "Be brief."}, {"tools", {"echo"}},
            {"memory", {{"window", 2}}}};
  llm_tool_spec echo;
  echo.name = "echo";
  echo.description = "Echoes.";
  echo.parameters = json_value{json{{"type", "object"}}};
  m.know_tool(echo);
  std::vector<llm_request> asked;
  auto keep = [&](const agent_step& s) {
    for (const auto& a : s.actions)
      if (a.kind == agent_action::call_model)
        asked.push_back(*m.last_request());
  };
  // Three plain turns (the window of 2 slides at the third), then a turn
  // with a tool call: its second call adds the reply and the result.
  for (int n = 1; n <= 3; ++n) {
    auto key = "t" + std::to_string(n);
    auto b = start_and_begin(m, rec, turn_of(key, spec, "q" + key));
    keep(b);
    rec(m.model_replied(key, 1, text_reply("a" + key), false, now));
  }
  keep(start_and_begin(m, rec, turn_of("t4", spec, "qt4")));
  rec(m.model_replied("t4", 1,
                      tools_reply({call_of("c1", "echo", json{{"x", 1}})}),
                      false, now));
  keep(rec(m.tool_done("t4", call_of("c1", "echo"), json{{"x", 1}}, now)));
  ASSERT_EQ(asked.size(), 5u);
  auto payloads = payloads_of(rec.log, ev::llm_requested);
  ASSERT_EQ(payloads.size(), 5u);
  EXPECT_TRUE(payloads[0].contains("request")) << payloads[0];
  EXPECT_FALSE(payloads[0].contains("delta")) << payloads[0];
  for (size_t i = 1; i < payloads.size(); ++i) {
    EXPECT_FALSE(payloads[i].contains("request")) << payloads[i];
    EXPECT_TRUE(payloads[i].contains("delta")) << payloads[i];
  }
  // Turn 3: the system prompt kept, the two oldest messages out of the
  // window, the rest kept, turn 2's answer and turn 3's prompt new.
  EXPECT_EQ(payloads[2]["delta"]["messages"],
            json::parse(R"([[0, 1], [3, 4],
              {"role": "assistant", "content": "at2"},
              {"role": "user", "content": "qt3"}])"));
  // The second call of turn 4: everything kept, the reply and the result
  // new, its call number changed; the tools and the rest are the same.
  const auto& d = payloads[4]["delta"];
  ASSERT_EQ(d["messages"].size(), 3u) << d;
  EXPECT_EQ(d["messages"][0], json::array({0, 4})) << d;
  EXPECT_EQ(d["messages"][2]["role"], "tool") << d;
  EXPECT_EQ(d["turn"], 2) << d;
  EXPECT_FALSE(d.contains("tools")) << d;
  EXPECT_FALSE(d.contains("profile")) << d;
  // Each request rebuilds to the very one the model was asked, and a
  // restarted machine resumes the call in flight with it.
  auto rebuilt = requests_in(rec.log);
  ASSERT_EQ(rebuilt.size(), asked.size());
  for (size_t i = 0; i < asked.size(); ++i)
    EXPECT_EQ(json(rebuilt[i]), json(asked[i])) << i;
  agent_machine again{"a"};
  again.know_tool(echo);
  for (const auto& e : rec.log)
    again.apply(e);
  auto r = again.resume(now);
  ASSERT_EQ(r.actions.size(), 1u);
  EXPECT_EQ(r.actions[0].kind, agent_action::call_model);
  EXPECT_EQ(json(*again.last_request()), json(asked.back()));
  // Its next request is recorded relative to what it folded.
  rec(again.model_replied("t4", 2, text_reply("done"), false, now));
  auto next = start_and_begin(again, rec, turn_of("t5", spec, "qt5"));
  ASSERT_EQ(next.actions.size(), 1u);
  rebuilt = requests_in(rec.log);
  ASSERT_EQ(rebuilt.size(), 6u);
  EXPECT_EQ(json(rebuilt.back()), json(*again.last_request()));
}

// Every field of a request, changed alone, is carried by the change and
// rebuilt; an unchanged request records no message again.
TEST(AgentMachine, EveryFieldOfARequestSurvivesItsRecordedChange) {
  llm_request base;
  base.profile = "p";
  base.model = "m";
  base.messages = {message_of("system", "s"), message_of("user", "u")};
  llm_tool_spec t;
  t.name = "echo";
  t.parameters = json_value{json{{"type", "object"}}};
  base.tools = {t};
  base.tool_choice = "auto";
  base.temperature = 0.5;
  base.max_tokens = 10;
  base.stream = true;
  base.agent = "a";
  base.turn = 1;
  std::vector<llm_request> variants(11, base);
  variants[0].profile = "q";
  variants[1].model = "";
  variants[2].tools.clear();
  variants[3].tools[0].parameters = json_value{json{{"type", "string"}}};
  variants[4].tool_choice = "";
  variants[5].temperature = -1;
  variants[6].max_tokens = 0;
  variants[7].stream = false;
  variants[8].agent = "b";
  variants[9].turn = 2;
  variants[10].messages[1].tool_calls = {call_of("c", "echo")};
  for (size_t i = 0; i < variants.size(); ++i) {
    agent_request_log writer;
    std::vector<event> log;
    for (const auto* r : {&base, &variants[i], &base, &base})
      log.push_back(event{"agent:a", log.size() + 1, now, ev::llm_requested,
                          json_value{writer.record("t", 1, *r)}});
    auto rebuilt = requests_in(log);
    ASSERT_EQ(rebuilt.size(), 4u);
    EXPECT_EQ(json(rebuilt[1]), json(variants[i])) << i;
    EXPECT_EQ(json(rebuilt[2]), json(base)) << i;
    EXPECT_EQ(log[3].payload.get()["delta"],
              (json{{"messages", json::array({json::array({0, 2})})}}))
      << i;
  }
}

// A change recorded relative to a request that does not read does not read
// either (never a request rebuilt from the wrong one), up to the next one
// recorded whole; a turn whose call in flight does not read fails, saying
// so, instead of asking the model something else.
TEST(AgentMachine, ARecordedRequestThatDoesNotReadIsNeverGuessed) {
  llm_request a;
  a.messages = {message_of("user", "one")};
  llm_request b = a;
  b.messages.push_back(message_of("assistant", "two"));
  agent_request_log writer;
  auto whole = writer.record("t", 1, a);
  auto delta = writer.record("t", 2, b);
  auto ev_of = [](uint64_t seq, json payload) {
    return event{"agent:a", seq, 1, ev::llm_requested,
                 json_value{std::move(payload)}};
  };
  {
    // A change with no request before it, or out of the previous range.
    agent_request_log reader;
    EXPECT_EQ(reader.apply(ev_of(1, delta)), nullptr);
    json wide = delta;
    wide["delta"]["messages"][0] = json::array({0, 5});
    agent_request_log other;
    ASSERT_NE(other.apply(ev_of(1, whole)), nullptr);
    EXPECT_EQ(other.apply(ev_of(2, wide)), nullptr);
    EXPECT_EQ(other.apply(ev_of(3, delta)), nullptr);
    ASSERT_NE(other.apply(ev_of(4, whole)), nullptr);
    ASSERT_NE(other.apply(ev_of(5, delta)), nullptr);
    EXPECT_EQ(json(*other.last()), json(b));
  }
  // A turn whose pending call's request does not read.
  agent_machine m{"a"};
  recorder rec;
  start_and_begin(m, rec, turn_of("t", json::object()));
  auto& requested = rec.log.back();
  ASSERT_EQ(requested.type, ev::llm_requested);
  json broken = requested.payload.get();
  broken["request"] = json{{"messages", 3}};
  requested.payload = json_value{broken};
  agent_machine again{"a"};
  for (const auto& e : rec.log)
    again.apply(e);
  auto r = again.resume(now);
  EXPECT_EQ(types(r), std::vector<std::string>{ev::turn_failed});
  ASSERT_NE(again.finished("t"), nullptr);
  EXPECT_EQ(again.finished("t")->code, errc::invalid_input);
  EXPECT_NE(again.finished("t")->message.find(
              "the recorded request of LLM call 1 in agent:a does not read"),
            std::string::npos)
    << again.finished("t")->message;
}

// A later call of a turn extends the turn's previous request with what the
// turn added (the reply, the tools' results, a repair prompt) instead of
// building it whole: it asks and records exactly what a machine that folded
// the log and built the request whole does, and a tool whose offer changed
// in between is sent as it is now.
TEST(AgentMachine, ALaterCallOfATurnAsksAndRecordsWhatARestartedMachineWould) {
  json schema{{"type", "object"},
              {"required", {"n"}},
              {"properties", {{"n", {{"type", "integer"}}}}}};
  json spec{{"system", "Be brief."},
            {"tools", {"echo"}},
            {"output_schema", schema}};
  llm_tool_spec echo;
  echo.name = "echo";
  echo.description = "Echoes.";
  echo.parameters = json_value{json{{"type", "object"}}};
  agent_machine m{"a"};
  m.know_tool(echo);
  recorder rec;
  std::vector<llm_request> asked;
  auto keep = [&](const agent_step& s) {
    for (const auto& a : s.actions)
      if (a.kind == agent_action::call_model)
        asked.push_back(*m.last_request());
    return s;
  };
  plain_turn(m, rec, "t1", spec, "q1", R"({"n": 1})");
  keep(start_and_begin(m, rec, turn_of("t2", spec, "q2")));
  rec(m.model_replied("t2", 1,
                      tools_reply({call_of("c1", "echo", json{{"x", 1}}),
                                   call_of("c2", "echo", json{{"x", 2}})}),
                      false, now));
  rec(m.tool_done("t2", call_of("c2", "echo"), json{{"x", 2}}, now));
  keep(rec(m.tool_done("t2", call_of("c1", "echo"), json{{"x", 1}}, now)));
  rec(m.model_replied("t2", 2,
                      tools_reply({call_of("c3", "echo", json{{"x", 3}})}),
                      false, now));
  // The pools tell a changed offer meanwhile: the next request carries it.
  auto told = echo;
  told.description = "Echoes its input.";
  m.know_tool(told);
  keep(rec(m.tool_done("t2", call_of("c3", "echo"), "oops", now)));
  EXPECT_EQ(asked.back().tools.at(0).description, "Echoes its input.");
  keep(rec(m.model_replied("t2", 3, text_reply("three"), false, now)));
  rec(m.model_replied("t2", 4, text_reply(R"({"n": 3})"), false, now));
  ASSERT_NE(m.finished("t2"), nullptr);
  EXPECT_TRUE(m.finished("t2")->ok);
  ASSERT_EQ(asked.size(), 4u);
  // Each request of turn t2, asked again by a machine that folded the log
  // up to it and resumed.
  size_t n = 0;
  for (size_t i = 0; i < rec.log.size(); ++i) {
    if (rec.log[i].type != ev::llm_requested
        || rec.log[i].payload.get()["turn"] != "t2")
      continue;
    SCOPED_TRACE("call " + std::to_string(n + 1));
    agent_machine again{"a"};
    again.know_tool(n < 2 ? echo : told);
    for (size_t j = 0; j < i; ++j)
      again.apply(rec.log[j]);
    auto r = again.resume(now);
    ASSERT_FALSE(r.events.empty());
    EXPECT_EQ(r.events[0].type, ev::llm_requested);
    EXPECT_EQ(r.events[0].seq, rec.log[i].seq);
    EXPECT_EQ(r.events[0].payload.get(), rec.log[i].payload.get());
    ASSERT_NE(again.last_request(), nullptr);
    EXPECT_EQ(json(*again.last_request()), json(asked[n]));
    ++n;
  }
  EXPECT_EQ(n, asked.size());
  auto rebuilt = requests_in(rec.log);
  ASSERT_EQ(rebuilt.size(), 5u);
  for (size_t i = 0; i < asked.size(); ++i)
    EXPECT_EQ(json(rebuilt[i + 1]), json(asked[i])) << i;
}

// A turn's usage is recorded with the value types it always had: counts a
// turn never added to as the integer 0 of zero_agent_usage(), added ones
// unsigned, the cost a double; so its log reads as before.
TEST(AgentMachine, TheRecordedUsageKeepsTheTypesOfItsValues) {
  json spec{{"tools", {"echo"}}};
  agent_machine m{"a"};
  recorder rec;
  auto usage_of = [&](const std::string& turn) {
    for (const auto& e : rec.log)
      if (e.type == ev::turn_completed && e.payload.get()["turn"] == turn)
        return e.payload.get()["usage"];
    ADD_FAILURE() << "no agent_turn_completed of " << turn;
    return json{};
  };
  plain_turn(m, rec, "t1", spec, "q1", "a1");
  auto plain = usage_of("t1");
  EXPECT_EQ(plain, (json{{"input_tokens", 10u}, {"output_tokens", 5u},
                         {"cost_usd", 0.0}, {"llm_calls", 1u},
                         {"tool_calls", 0}}));
  EXPECT_TRUE(plain["llm_calls"].is_number_unsigned());
  EXPECT_TRUE(plain["input_tokens"].is_number_unsigned());
  EXPECT_TRUE(plain["cost_usd"].is_number_float());
  EXPECT_TRUE(plain["tool_calls"].is_number_integer());
  EXPECT_FALSE(plain["tool_calls"].is_number_unsigned());
  start_and_begin(m, rec, turn_of("t2", spec, "q2"));
  auto reply = tools_reply({call_of("c1", "echo")});
  reply.usage.cost_usd = 0.25;
  rec(m.model_replied("t2", 1, reply, false, now));
  rec(m.tool_done("t2", call_of("c1", "echo"), json::object(), now));
  auto last = text_reply("done", 1, 2);
  last.usage.cost_usd = 0.5;
  rec(m.model_replied("t2", 2, last, false, now));
  auto tool = usage_of("t2");
  EXPECT_EQ(tool, (json{{"input_tokens", 1u}, {"output_tokens", 2u},
                        {"cost_usd", 0.75}, {"llm_calls", 2u},
                        {"tool_calls", 1u}}));
  EXPECT_TRUE(tool["tool_calls"].is_number_unsigned());
  EXPECT_EQ(m.finished("t2")->usage, tool);
}

TEST(AgentMachine, FinishedTurnsPastTheDefaultBoundAreNotKept) {
  // Before the bound every finished turn's answer stayed in memory for the
  // agent's life.
  agent_machine m{"a"};
  recorder rec;
  json spec = json::object();
  auto n = default_max_finished_turns + 3;
  for (size_t i = 1; i <= n; ++i)
    plain_turn(m, rec, "t" + std::to_string(i), spec, "Q", "A");
  for (size_t i = 1; i <= 3; ++i)
    EXPECT_EQ(m.finished("t" + std::to_string(i)), nullptr) << i;
  EXPECT_NE(m.finished("t4"), nullptr);
  EXPECT_NE(m.finished("t" + std::to_string(n)), nullptr);
  EXPECT_EQ(m.view()["turns"], n);
}

TEST(AgentMachine, ItKeepsTheLastFinishedTurnsAndKnowsTheForgottenOnes) {
  agent_machine m{"a", 2};
  recorder rec;
  json spec = json::object();
  for (int i = 1; i <= 4; ++i)
    plain_turn(m, rec, "t" + std::to_string(i), spec, "Q" + std::to_string(i),
               "A" + std::to_string(i));
  // A failed turn is kept like a completed one.
  auto b = start_and_begin(m, rec, turn_of("t5", spec));
  rec(m.model_failed("t5", b.actions.at(0).call,
                     make_error(errc::timeout, "slow"), now));
  auto check = [](const agent_machine& x) {
    EXPECT_EQ(x.finished("t1"), nullptr);
    EXPECT_EQ(x.finished("t3"), nullptr);
    ASSERT_NE(x.finished("t4"), nullptr);
    EXPECT_EQ(x.finished("t4")->output, "A4");
    ASSERT_NE(x.finished("t5"), nullptr);
    EXPECT_FALSE(x.finished("t5")->ok);
    EXPECT_EQ(x.finished("t5")->code, errc::timeout);
    for (auto* k : {"t1", "t2", "t3"})
      EXPECT_TRUE(x.forgotten(k)) << k;
    for (auto* k : {"t4", "t5", "t6", "never"})
      EXPECT_FALSE(x.forgotten(k)) << k;
    EXPECT_EQ(x.finished_turns(), 5u);
    // Memory is not the answers: every turn's prompt and answer stay.
    EXPECT_EQ(x.history().size(), 8u);
  };
  check(m);
  // Folding the log again (an agent's recovery) keeps the same bound.
  agent_machine again{"a", 2};
  for (const auto& e : rec.log)
    again.apply(e);
  check(again);
  EXPECT_EQ(again.view(), m.view());
}

TEST(AgentMachine, TheKeysOfForgottenTurnsAreBoundedToo) {
  // One answer kept, and the keys of the forgotten_turns_factor turns
  // before it: the oldest key goes as well.
  agent_machine m{"a", 1};
  recorder rec;
  json spec = json::object();
  auto n = forgotten_turns_factor + 2;
  for (size_t i = 1; i <= n; ++i)
    plain_turn(m, rec, "t" + std::to_string(i), spec, "Q", "A");
  EXPECT_FALSE(m.forgotten("t1"));
  EXPECT_EQ(m.finished("t1"), nullptr);
  for (size_t i = 2; i < n; ++i)
    EXPECT_TRUE(m.forgotten("t" + std::to_string(i))) << i;
  EXPECT_NE(m.finished("t" + std::to_string(n)), nullptr);
  // The same after a fold of the whole log.
  agent_machine again{"a", 1};
  for (const auto& e : rec.log)
    again.apply(e);
  EXPECT_FALSE(again.forgotten("t1"));
  EXPECT_TRUE(again.forgotten("t2"));
  EXPECT_TRUE(again.forgotten("t" + std::to_string(n - 1)));
}

namespace {

// Runs a turn of memory policy summary: its summary, when one is due,
// answered (`summary_ok`) or failed, then its model call.
void summary_turn(agent_machine& m, recorder& rec, const std::string& key,
                  const json& spec, bool summary_ok) {
  auto b = start_and_begin(m, rec, turn_of(key, spec, "Q " + key));
  ASSERT_EQ(b.actions.size(), 1u);
  auto call = b.actions[0].call;
  if (b.actions[0].kind == agent_action::call_summary) {
    auto r = summary_ok
               ? rec(m.summary_replied(key, text_reply("S " + key), false,
                                       now))
               : rec(m.summary_failed(key, "no model", now));
    ASSERT_EQ(r.actions.size(), 1u);
    call = r.actions[0].call;
  }
  rec(m.model_replied(key, call, text_reply("A " + key), false, now));
  ASSERT_NE(m.finished(key), nullptr);
}

// Folds `log` into a new machine, and asserts it holds what `m` holds and
// takes its next turn `next` exactly as `m` (a copy) does.
void same_after_fold(agent_machine m, const std::vector<event>& log,
                     const agent_turn& next) {
  agent_machine again{"a"};
  for (const auto& e : log)
    again.apply(e);
  EXPECT_EQ(again.view(), m.view());
  auto steps = [&](agent_machine& x) {
    std::vector<event> out;
    auto s = x.start(next, now);
    EXPECT_TRUE(s);
    if (s)
      out = s->events;
    auto b = x.begin(now);
    out.insert(out.end(), b.events.begin(), b.events.end());
    return out;
  };
  auto mine = steps(m);
  auto folded = steps(again);
  ASSERT_EQ(mine.size(), folded.size());
  for (size_t i = 0; i < mine.size(); ++i) {
    EXPECT_EQ(mine[i].type, folded[i].type) << i;
    EXPECT_EQ(mine[i].payload.get(), folded[i].payload.get()) << i;
  }
}

} // namespace

TEST(AgentMachine, ItHoldsOnlyTheWindowAndTheLastTurnsOfALongHistory) {
  // Before the bound every turn's prompt and answer stayed in memory for
  // the agent's life, and a fold of its log rebuilt them all.
  agent_machine m{"a"};
  recorder rec;
  json spec{{"memory", {{"window", 2}}}};
  size_t n = 200;
  for (size_t i = 1; i <= n; ++i)
    plain_turn(m, rec, "t" + std::to_string(i), spec,
               "Q" + std::to_string(i), "A" + std::to_string(i));
  // The window (2) needs less than the turns the view shows.
  ASSERT_EQ(m.history().size(), 2 * memory_view_turns);
  EXPECT_EQ(m.history().front().content,
            "Q" + std::to_string(n - memory_view_turns + 1));
  EXPECT_EQ(m.history().back().content, "A" + std::to_string(n));
  EXPECT_EQ(m.earlier_messages(), 2 * (n - memory_view_turns));
  auto v = m.view();
  EXPECT_EQ(v["messages"].size(), 2 * memory_view_turns);
  EXPECT_EQ(v["earlier_turns"], n - memory_view_turns);
  EXPECT_EQ(v["earlier_messages"], 2 * (n - memory_view_turns));
  EXPECT_EQ(v["turns"], n);
  same_after_fold(m, rec.log, turn_of("next", spec, "Q next"));
  // The request is still the window and the prompt.
  start_and_begin(m, rec, turn_of("next", spec, "Q next"));
  const auto& msgs = m.last_request()->messages;
  ASSERT_EQ(msgs.size(), 3u);
  EXPECT_EQ(msgs[0].content, "Q" + std::to_string(n));
  EXPECT_EQ(msgs[1].content, "A" + std::to_string(n));
  EXPECT_EQ(msgs[2].content, "Q next");
}

TEST(AgentMachine, AWideWindowIsHeldWholeAndNoMore) {
  agent_machine m{"a"};
  recorder rec;
  json spec{{"memory", {{"window", 51}}}};
  for (int i = 1; i <= 100; ++i)
    plain_turn(m, rec, "t" + std::to_string(i), spec, "Q", "A");
  // Whole turns: the 51 newest messages take 26 turns.
  EXPECT_EQ(m.history().size(), 52u);
  EXPECT_EQ(m.earlier_messages(), 148u);
  start_and_begin(m, rec, turn_of("next", spec, "Q next"));
  EXPECT_EQ(m.last_request()->messages.size(), 52u);
}

TEST(AgentMachine, SummaryMemoryHoldsTheUnsummarizedTailUpToItsBound) {
  agent_machine m{"a"};
  recorder rec;
  json spec{{"memory", {{"window", 20}, {"policy", "summary"}, {"keep", 10}}}};
  size_t turn = 0;
  auto run = [&](size_t count, bool summary_ok) {
    for (size_t i = 0; i < count; ++i)
      summary_turn(m, rec, "t" + std::to_string(++turn), spec, summary_ok);
  };
  // Summaries made: at most the window and a turn is unsummarized.
  run(60, true);
  EXPECT_LE(m.history().size(), 20u + 2);
  EXPECT_GT(m.earlier_messages(), 0u);
  auto summarized = m.view()["summarized"].get<size_t>();
  EXPECT_GE(summarized, m.earlier_messages());
  same_after_fold(m, rec.log, turn_of("probe1", spec, "Q probe"));
  // Summaries failing: the unsummarized tail grows to twice the window and
  // a turn (42 messages), then no further.
  run(60, false);
  EXPECT_LE(m.history().size(), 2u * 20 + 2 + 1);
  EXPECT_GE(m.history().size(), 2u * 20 + 2);
  // A summary made again folds what is held but the newest `keep`.
  auto earlier = m.earlier_messages();
  auto held = m.history().size();
  summary_turn(m, rec, "t" + std::to_string(++turn), spec, true);
  json asked;
  for (const auto& e : rec.log)
    if (e.type == ev::summary_requested)
      asked = e.payload.get();
  EXPECT_EQ(asked["from"], earlier);
  EXPECT_EQ(asked["to"], earlier + held - 10);
  same_after_fold(m, rec.log, turn_of("probe2", spec, "Q probe"));
}
