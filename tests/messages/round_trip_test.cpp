// Every message type survives CAF's binary serializer and the JSON mapping
// unchanged: what crosses the network and what goes over HTTP is the same.

#include <caf/actor_system.hpp>
#include <caf/actor_system_config.hpp>
#include <caf/binary_deserializer.hpp>
#include <caf/binary_serializer.hpp>
#include <caf/deep_to_string.hpp>
#include <gtest/gtest.h>

#include "cadre/messages/register_types.hpp"
#include "cadre/messages/type_ids.hpp"

using namespace cadre;

namespace {

template <class T>
T binary_round_trip(T x) {
  std::vector<char> buf;
  caf::binary_serializer sink{nullptr, buf};
  auto err = sink(x);
  EXPECT_FALSE(err) << describe(err);
  T y;
  caf::binary_deserializer source{nullptr, buf};
  err = source(y);
  EXPECT_FALSE(err) << describe(err);
  return y;
}

template <class T>
T json_round_trip(const T& x) {
  json j = x;
  return json::parse(j.dump()).get<T>();
}

const json payload = json::parse(R"({"text": "héllo", "n": -3, "f": 2.5,
  "list": [1, null, true, {"deep": ["x"]}], "empty": {}})");

submit_request sample_submit() {
  return {json_value{json{{"name", "wf"}, {"tasks", json::array()}}},
          "wf@2", json_value{payload}, "key-1", "wf.yaml"};
}

execution_info sample_info() {
  return {"e1", "wf", "2", "waiting", 100, 200, 7, json_value{payload}, "err"};
}

task_request sample_task() {
  return {"e1", "fetch[3]", 2, "http", json_value{payload}, 123456,
          "e1/fetch[3]/2"};
}

event sample_event() {
  return {"e1", 42, 1700000000000000, "task_completed", json_value{payload}};
}

} // namespace

TEST(RoundTrip, SubmitRequest) {
  auto x = sample_submit();
  for (const auto& y : {binary_round_trip(x), json_round_trip(x)}) {
    EXPECT_EQ(y.definition, x.definition);
    EXPECT_EQ(y.definition_id, x.definition_id);
    EXPECT_EQ(y.input, x.input);
    EXPECT_EQ(y.idempotency_key, x.idempotency_key);
    EXPECT_EQ(y.source, x.source);
  }
}

TEST(RoundTrip, HumanInput) {
  human_input x{"e1", "approve", json_value{json{{"ok", true}}}};
  for (const auto& y : {binary_round_trip(x), json_round_trip(x)}) {
    EXPECT_EQ(y.execution_id, x.execution_id);
    EXPECT_EQ(y.task_id, x.task_id);
    EXPECT_EQ(y.value, x.value);
  }
}

TEST(RoundTrip, ForkRequest) {
  fork_request x{"e1", 17, json_value{payload}, json_value{}};
  x.outputs = json_value{json{{"fetch", {{"ok", true}}}}};
  x.rerun = {"summarize"};
  x.answers = json_value{json{{"approve", false}}};
  x.dry_run = true;
  for (const auto& y : {binary_round_trip(x), json_round_trip(x)}) {
    EXPECT_EQ(y.execution_id, x.execution_id);
    EXPECT_EQ(y.at_seq, x.at_seq);
    EXPECT_EQ(y.input_override, x.input_override);
    EXPECT_TRUE(y.definition_override.is_null());
    EXPECT_EQ(y.outputs, x.outputs);
    EXPECT_EQ(y.rerun, x.rerun);
    EXPECT_EQ(y.answers, x.answers);
    EXPECT_TRUE(y.dry_run);
  }
}

TEST(RoundTrip, ExecutionInfoAndFilter) {
  auto x = sample_info();
  for (const auto& y : {binary_round_trip(x), json_round_trip(x)}) {
    EXPECT_EQ(y.id, x.id);
    EXPECT_EQ(y.workflow, x.workflow);
    EXPECT_EQ(y.version, x.version);
    EXPECT_EQ(y.status, x.status);
    EXPECT_EQ(y.created_us, x.created_us);
    EXPECT_EQ(y.updated_us, x.updated_us);
    EXPECT_EQ(y.last_seq, x.last_seq);
    EXPECT_EQ(y.output, x.output);
    EXPECT_EQ(y.error, x.error);
  }
  execution_filter f{"failed", "wf", 10};
  for (const auto& g : {binary_round_trip(f), json_round_trip(f)}) {
    EXPECT_EQ(g.status, f.status);
    EXPECT_EQ(g.workflow, f.workflow);
    EXPECT_EQ(g.limit, f.limit);
  }
}

TEST(RoundTrip, DefinitionRecord) {
  definition_record x{"wf", "1.10", json_value{payload}};
  for (const auto& y : {binary_round_trip(x), json_round_trip(x)}) {
    EXPECT_EQ(y.name, x.name);
    EXPECT_EQ(y.version, x.version);
    EXPECT_EQ(y.document, x.document);
  }
}

TEST(RoundTrip, TaskRequestAndResult) {
  auto x = sample_task();
  for (const auto& y : {binary_round_trip(x), json_round_trip(x)}) {
    EXPECT_EQ(y.execution_id, x.execution_id);
    EXPECT_EQ(y.task_id, x.task_id);
    EXPECT_EQ(y.attempt, x.attempt);
    EXPECT_EQ(y.tool, x.tool);
    EXPECT_EQ(y.input, x.input);
    EXPECT_EQ(y.deadline_us, x.deadline_us);
    EXPECT_EQ(y.idempotency_key, x.idempotency_key);
  }
  task_result r{json_value{payload}, json_value{json{{"tokens", 12}}}, 99};
  for (const auto& s : {binary_round_trip(r), json_round_trip(r)}) {
    EXPECT_EQ(s.output, r.output);
    EXPECT_EQ(s.usage, r.usage);
    EXPECT_EQ(s.duration_us, r.duration_us);
  }
}

TEST(RoundTrip, EventAndAppendRequest) {
  auto x = sample_event();
  for (const auto& y : {binary_round_trip(x), json_round_trip(x)}) {
    EXPECT_EQ(y.execution_id, x.execution_id);
    EXPECT_EQ(y.seq, x.seq);
    EXPECT_EQ(y.time_us, x.time_us);
    EXPECT_EQ(y.type, x.type);
    EXPECT_EQ(y.payload, x.payload);
  }
  append_request a{{x, x}, {sample_info()}, "key-9"};
  auto b = binary_round_trip(a);
  ASSERT_EQ(b.events.size(), 2u);
  EXPECT_EQ(b.events[1].payload, x.payload);
  ASSERT_EQ(b.index.size(), 1u);
  EXPECT_EQ(b.index[0].status, "waiting");
  EXPECT_EQ(b.idempotency_key, "key-9");
}

TEST(RoundTrip, JsonValueKeepsIntegersAndNull) {
  json_value big{json{{"n", int64_t{9007199254740993}}, {"u", nullptr}}};
  auto y = binary_round_trip(big);
  EXPECT_EQ((*y)["n"].get<int64_t>(), int64_t{9007199254740993});
  EXPECT_TRUE((*y)["u"].is_null());
  EXPECT_TRUE(binary_round_trip(json_value{}).is_null());
}

TEST(RoundTrip, MalformedCborIsAnErrorNotACrash) {
  std::vector<char> buf;
  caf::binary_serializer sink{nullptr, buf};
  std::string garbage = "\xff\x00\x13";
  ASSERT_FALSE(sink(garbage));
  json_value y;
  caf::binary_deserializer source{nullptr, buf};
  EXPECT_TRUE(source(y));
  EXPECT_TRUE(y.is_null());
}

TEST(Errors, NamesAndMessagesSurvive) {
  auto err = make_error(errc::tool_not_found, "tool 'ocr2' is not registered");
  EXPECT_EQ(code_of(err), errc::tool_not_found);
  EXPECT_EQ(message_of(err), "tool 'ocr2' is not registered");
  EXPECT_EQ(describe(err),
            "cadre: tool_not_found: tool 'ocr2' is not registered");
  // An error's context is a message: decoding it needs the type registry of
  // an actor system, as on a receiving node.
  caf::actor_system_config cfg;
  register_types(cfg);
  caf::actor_system sys{cfg};
  std::vector<char> buf;
  caf::binary_serializer sink{sys, buf};
  ASSERT_FALSE(sink(err));
  caf::error back;
  caf::binary_deserializer source{sys, buf};
  ASSERT_FALSE(source(back));
  EXPECT_EQ(code_of(back), errc::tool_not_found);
  EXPECT_EQ(message_of(back), "tool 'ocr2' is not registered");
  for (int i = 0; i <= static_cast<int>(errc::result_too_large); ++i) {
    errc parsed;
    ASSERT_TRUE(from_string(to_string(static_cast<errc>(i)), parsed));
    EXPECT_EQ(static_cast<int>(parsed), i);
  }
}

TEST(RoundTrip, AgentTurnKeepsItsForkFields) {
  agent_turn x;
  x.agent = "analyst";
  x.spec = json_value{json{{"system", "s"}}};
  x.input = json_value{payload};
  x.execution_id = "f1";
  x.task_id = "explain";
  x.attempt = 2;
  x.idempotency_key = "f1/explain/2";
  x.deadline_us = 99;
  x.fork_of = "p1";
  x.replies = "replies:f1";
  auto y = binary_round_trip(x);
  EXPECT_EQ(y.agent, x.agent);
  EXPECT_EQ(y.spec, x.spec);
  EXPECT_EQ(y.input, x.input);
  EXPECT_EQ(y.idempotency_key, x.idempotency_key);
  EXPECT_EQ(y.deadline_us, x.deadline_us);
  EXPECT_EQ(y.fork_of, "p1");
  EXPECT_EQ(y.replies, "replies:f1");
}
