// The JSON mapping of every message type, byte for byte: these texts are
// public formats (HTTP API bodies, events, `cadre ... --json`), so they were
// taken from the hand-written mapping before it became the one declared in
// each struct's inspect(), and must not change. The CAF binary form and
// deep_to_string of the same values are pinned too: the field names added to
// inspect() must not reach the wire.

#include <functional>
#include <string>
#include <vector>

#include <caf/binary_serializer.hpp>
#include <caf/deep_to_string.hpp>
#include <gtest/gtest.h>

#include "cadre/messages/agent.hpp"
#include "cadre/messages/event.hpp"
#include "cadre/messages/execution.hpp"
#include "cadre/messages/task.hpp"

using namespace cadre;

namespace {

const json payload = json::parse(R"({"text": "héllo", "n": -3, "f": 2.5,
                                     "list": [1, null, true]})");

llm_message full_message() {
  llm_message m;
  m.role = "assistant";
  m.content = "hi";
  m.tool_calls.push_back({"c1", "echo", json_value{json{{"x", 1}}}, "bad"});
  m.tool_calls.push_back({"c2", "sleep", json_value{}, ""});
  m.tool_call_id = "c0";
  m.name = "echo";
  m.is_error = true;
  return m;
}

llm_request full_request() {
  llm_request r;
  r.profile = "default";
  r.model = "m1";
  r.messages = {full_message(), llm_message{"user", "q", {}, "", "", false}};
  r.tools = {{"echo", "Echoes.", json_value{json{{"type", "object"}}}}};
  r.tool_choice = "auto";
  r.temperature = 0.25;
  r.max_tokens = 100;
  r.stream = true;
  r.agent = "a";
  r.turn = 3;
  return r;
}

/// A value, its JSON text, and its CAF forms.
struct golden {
  const char* name;
  std::function<json()> to;
  const char* text;
};

std::string hex(const std::vector<char>& bytes) {
  static const char* digits = "0123456789abcdef";
  std::string out;
  for (char c : bytes) {
    auto b = static_cast<unsigned char>(c);
    out += digits[b >> 4];
    out += digits[b & 15];
  }
  return out;
}

template <class T>
std::string binary(T x) {
  std::vector<char> buf;
  caf::binary_serializer sink{nullptr, buf};
  EXPECT_FALSE(sink(x));
  return hex(buf);
}

} // namespace

TEST(JsonMapping, EveryMessageTypeWritesItsPublishedText) {
  std::vector<golden> cases = {
    {"submit_request{}", [] { return json(submit_request{}); },
     R"({"definition":null,"definition_id":"","idempotency_key":"","input":null,"source":""})"},
    {"submit_request",
     [] {
       return json(submit_request{json_value{json{{"name", "wf"}}}, "wf@2",
                                  json_value{payload}, "k", "wf.yaml"});
     },
     R"({"definition":{"name":"wf"},"definition_id":"wf@2","idempotency_key":"k","input":{"f":2.5,"list":[1,null,true],"n":-3,"text":"héllo"},"source":"wf.yaml"})"},
    {"human_input",
     [] { return json(human_input{"e1", "approve", json_value{true}}); },
     R"({"execution_id":"e1","task_id":"approve","value":true})"},
    {"fork_request{}", [] { return json(fork_request{}); },
     R"({"answers":null,"at_seq":0,"definition_override":null,"dry_run":false,"execution_id":"","input_override":null,"outputs":null,"rerun":[]})"},
    {"fork_request",
     [] {
       fork_request x{"e1", 17, json_value{payload}, json_value{json{{"a", 1}}}};
       x.outputs = json_value{json{{"fetch", {{"ok", true}}}}};
       x.rerun = {"t1", "t2"};
       x.answers = json_value{json{{"approve", false}}};
       x.dry_run = true;
       return json(x);
     },
     R"({"answers":{"approve":false},"at_seq":17,"definition_override":{"a":1},"dry_run":true,"execution_id":"e1","input_override":{"f":2.5,"list":[1,null,true],"n":-3,"text":"héllo"},"outputs":{"fetch":{"ok":true}},"rerun":["t1","t2"]})"},
    {"execution_info",
     [] {
       return json(execution_info{"e1", "wf", "2", "waiting", 100, 200, 7,
                                  json_value{payload}, "err"});
     },
     R"({"created_us":100,"error":"err","id":"e1","last_seq":7,"output":{"f":2.5,"list":[1,null,true],"n":-3,"text":"héllo"},"status":"waiting","updated_us":200,"version":"2","workflow":"wf"})"},
    {"execution_filter",
     [] { return json(execution_filter{"running", "wf", 5}); },
     R"({"limit":5,"status":"running","workflow":"wf"})"},
    {"definition_record",
     [] { return json(definition_record{"wf", "1.10", json_value{1}}); },
     R"({"document":1,"name":"wf","version":"1.10"})"},
    {"task_request{}", [] { return json(task_request{}); },
     R"({"attempt":1,"deadline_us":0,"execution_id":"","idempotency_key":"","input":null,"task_id":"","tool":""})"},
    {"task_request",
     [] {
       return json(task_request{"e1", "fetch[3]", 2, "http",
                                json_value{payload}, 123456, "e1/fetch[3]/2",
                                {"/headers/auth"}});
     },
     R"({"attempt":2,"deadline_us":123456,"execution_id":"e1","idempotency_key":"e1/fetch[3]/2","input":{"f":2.5,"list":[1,null,true],"n":-3,"text":"héllo"},"secret_pointers":["/headers/auth"],"task_id":"fetch[3]","tool":"http"})"},
    {"task_result",
     [] {
       return json(task_result{json_value{payload},
                               json_value{json{{"tokens", 12}}}, 99});
     },
     R"({"duration_us":99,"output":{"f":2.5,"list":[1,null,true],"n":-3,"text":"héllo"},"usage":{"tokens":12}})"},
    {"event",
     [] {
       return json(event{"e1", 42, 1700000000000000, "task_completed",
                         json_value{payload}});
     },
     R"({"execution_id":"e1","payload":{"f":2.5,"list":[1,null,true],"n":-3,"text":"héllo"},"seq":42,"time_us":1700000000000000,"type":"task_completed"})"},
    {"llm_tool_call{}", [] { return json(llm_tool_call{}); },
     R"({"arguments":null,"id":"","name":""})"},
    {"llm_message{}", [] { return json(llm_message{}); },
     R"({"content":"","role":""})"},
    {"llm_message", [] { return json(full_message()); },
     R"({"content":"hi","is_error":true,"name":"echo","role":"assistant","tool_call_id":"c0","tool_calls":[{"arguments":{"x":1},"arguments_error":"bad","id":"c1","name":"echo"},{"arguments":null,"id":"c2","name":"sleep"}]})"},
    {"llm_tool_spec{}", [] { return json(llm_tool_spec{}); },
     R"({"description":"","name":"","parameters":null})"},
    {"llm_usage", [] { return json(llm_usage{10, 20, 0.5}); },
     R"({"cost_usd":0.5,"input_tokens":10,"output_tokens":20})"},
    {"llm_request{}", [] { return json(llm_request{}); },
     R"({"messages":[],"model":"","profile":""})"},
    {"llm_request", [] { return json(full_request()); },
     R"({"agent":"a","max_tokens":100,"messages":[{"content":"hi","is_error":true,"name":"echo","role":"assistant","tool_call_id":"c0","tool_calls":[{"arguments":{"x":1},"arguments_error":"bad","id":"c1","name":"echo"},{"arguments":null,"id":"c2","name":"sleep"}]},{"content":"q","role":"user"}],"model":"m1","profile":"default","stream":true,"temperature":0.25,"tool_choice":"auto","tools":[{"description":"Echoes.","name":"echo","parameters":{"type":"object"}}],"turn":3})"},
    {"llm_request (temperature 0, below 0)",
     [] {
       llm_request r;
       r.temperature = 0;
       json j = r;
       r.temperature = -0.5;
       return json{j, json(r)};
     },
     R"([{"messages":[],"model":"","profile":"","temperature":0.0},{"messages":[],"model":"","profile":""}])"},
    {"llm_response",
     [] {
       llm_response r;
       r.message = full_message();
       r.stop_reason = "tool_calls";
       r.usage = {1, 2, 0.125};
       r.model = "m2";
       r.duration_us = 77;
       return json(r);
     },
     R"({"duration_us":77,"message":{"content":"hi","is_error":true,"name":"echo","role":"assistant","tool_call_id":"c0","tool_calls":[{"arguments":{"x":1},"arguments_error":"bad","id":"c1","name":"echo"},{"arguments":null,"id":"c2","name":"sleep"}]},"model":"m2","stop_reason":"tool_calls","usage":{"cost_usd":0.125,"input_tokens":1,"output_tokens":2}})"},
  };
  for (const auto& c : cases)
    EXPECT_EQ(c.to().dump(), c.text) << c.name;
}

namespace {

/// Reads `text` as T and writes it again.
template <class T>
std::string reread(const char* text) {
  return json(json::parse(text).get<T>()).dump();
}

template <class T>
bool refused(const char* text) {
  try {
    (void) json::parse(text).get<T>();
    return false;
  } catch (const json::exception&) {
    return true;
  }
}

} // namespace

TEST(JsonMapping, ReadingLeavesAbsentAndNullFieldsAtTheirDefaults) {
  EXPECT_EQ(reread<submit_request>(R"({"input":{"a":1},"source":null})"),
            R"({"definition":null,"definition_id":"","idempotency_key":"","input":{"a":1},"source":""})");
  EXPECT_EQ(reread<human_input>(R"({"execution_id":"e","task_id":"t"})"),
            R"({"execution_id":"e","task_id":"t","value":null})");
  EXPECT_EQ(reread<fork_request>(R"({"execution_id":"e","rerun":null,"dry_run":true})"),
            R"({"answers":null,"at_seq":0,"definition_override":null,"dry_run":true,"execution_id":"e","input_override":null,"outputs":null,"rerun":[]})");
  EXPECT_EQ(reread<execution_info>(R"({"id":"e","last_seq":3})"),
            R"({"created_us":0,"error":"","id":"e","last_seq":3,"output":null,"status":"","updated_us":0,"version":"","workflow":""})");
  EXPECT_EQ(reread<execution_filter>("{}"),
            R"({"limit":0,"status":"","workflow":""})");
  EXPECT_EQ(reread<definition_record>(R"({"name":"wf"})"),
            R"({"document":null,"name":"wf","version":""})");
  EXPECT_EQ(reread<task_request>(R"({"tool":"echo","attempt":null})"),
            R"({"attempt":1,"deadline_us":0,"execution_id":"","idempotency_key":"","input":null,"task_id":"","tool":"echo"})");
  EXPECT_EQ(reread<task_result>("{}"),
            R"({"duration_us":0,"output":null,"usage":null})");
  EXPECT_EQ(reread<event>(R"({"execution_id":"e","seq":1,"type":"x"})"),
            R"({"execution_id":"e","payload":null,"seq":1,"time_us":0,"type":"x"})");
  EXPECT_EQ(reread<llm_message>(R"({"tool_calls":[{"id":"c"}],"is_error":null})"),
            R"({"content":"","role":"","tool_calls":[{"arguments":null,"id":"c","name":""}]})");
  EXPECT_EQ(reread<llm_request>(R"({"temperature":0.5,"turn":2})"),
            R"({"messages":[],"model":"","profile":"","temperature":0.5,"turn":2})");
  EXPECT_EQ(reread<llm_response>(R"({"usage":{"input_tokens":4}})"),
            R"({"duration_us":0,"message":{"content":"","role":""},"model":"","stop_reason":"","usage":{"cost_usd":0.0,"input_tokens":4,"output_tokens":0}})");
  EXPECT_EQ(reread<llm_tool_spec>(R"({"name":"n"})"),
            R"({"description":"","name":"n","parameters":null})");
  EXPECT_EQ(reread<llm_usage>("{}"),
            R"({"cost_usd":0.0,"input_tokens":0,"output_tokens":0})");
}

TEST(JsonMapping, RequiredKeysAreRequired) {
  EXPECT_TRUE(refused<human_input>(R"({"task_id":"t"})"));
  EXPECT_TRUE(refused<human_input>(R"({"execution_id":"e"})"));
  EXPECT_TRUE(refused<fork_request>("{}"));
  EXPECT_TRUE(refused<execution_info>("{}"));
  EXPECT_TRUE(refused<definition_record>("{}"));
  EXPECT_TRUE(refused<task_request>("{}"));
  EXPECT_TRUE(refused<event>(R"({"execution_id":"e","seq":1})"));
  EXPECT_TRUE(refused<event>(R"({"execution_id":"e","type":"x"})"));
  // A required key that is null is refused too (it is not absent).
  EXPECT_TRUE(refused<task_request>(R"({"tool":null})"));
  // A field of the wrong type is refused, not defaulted.
  EXPECT_TRUE(refused<execution_filter>(R"({"limit":"5"})"));
  EXPECT_FALSE(refused<submit_request>("{}"));
  EXPECT_FALSE(refused<llm_request>("{}"));
}

TEST(JsonMapping, TheFieldNamesStayOffTheWire) {
  llm_response response;
  response.message = full_message();
  response.usage = {1, 2, 0.125};
  std::vector<std::pair<std::string, std::string>> cases = {
    {"llm_message", binary(full_message())},
    {"llm_request", binary(full_request())},
    {"llm_response", binary(response)},
    {"task_request",
     binary(task_request{"e1", "t", 2, "http", json_value{1}, 3, "k", {"/a"}})},
    {"task_result", binary(task_result{json_value{1}, json_value{}, 9})},
    {"event", binary(event{"e1", 42, 7, "x", json_value{true}})},
    {"submit_request",
     binary(submit_request{json_value{}, "wf", json_value{2}, "k", "s"})},
    {"human_input", binary(human_input{"e", "t", json_value{3}})},
    {"fork_request", binary(fork_request{"e", 4, {}, {}, {}, {"r"}, {}, true})},
    {"execution_info",
     binary(execution_info{"e", "w", "v", "s", 1, 2, 3, json_value{}, "x"})},
    {"execution_filter", binary(execution_filter{"s", "w", 5})},
    {"definition_record", binary(definition_record{"n", "v", json_value{}})},
    {"llm_tool_spec", binary(llm_tool_spec{"n", "d", json_value{}})},
    {"llm_usage", binary(llm_usage{1, 2, 0.5})},
  };
  const std::vector<std::pair<std::string, std::string>> expected = {
    {"llm_message",
       "09617373697374616e7402686902026331046563686f04a16178010362616402"
       "633205736c65657001f600026330046563686f01"},
    {"llm_request",
       "0764656661756c74026d310209617373697374616e7402686902026331046563"
       "686f04a16178010362616402633205736c65657001f600026330046563686f01"
       "047573657201710000000001046563686f074563686f65732e0da16474797065"
       "666f626a656374046175746f3fd00000000000000000006401016100000003"},
    {"llm_response",
       "09617373697374616e7402686902026331046563686f04a16178010362616402"
       "633205736c65657001f600026330046563686f01000000000000000001000000"
       "00000000023fc0000000000000000000000000000000"},
    {"task_request",
       "026531017400000002046874747001010000000000000003016b01022f61"},
    {"task_result",
       "010101f60000000000000009"},
    {"event",
       "026531000000000000002a0000000000000007017801f5"},
    {"submit_request",
       "01f60277660102016b0173"},
    {"human_input",
       "016501740103"},
    {"fork_request",
       "0165000000000000000401f601f601f601017201f601"},
    {"execution_info",
       "0165017701760173000000000000000100000000000000020000000000000003"
       "01f60178"},
    {"execution_filter",
       "0173017700000005"},
    {"definition_record",
       "016e017601f6"},
    {"llm_tool_spec",
       "016e016401f6"},
    {"llm_usage",
       "000000000000000100000000000000023fe0000000000000"},
  };
  EXPECT_EQ(cases, expected);
  EXPECT_EQ(caf::deep_to_string(full_message()),
            "llm_message(\"assistant\", \"hi\", [llm_tool_call(\"c1\", "
            "\"echo\", {\"x\":1}, \"bad\"), llm_tool_call(\"c2\", \"sleep\", "
            "null, \"\")], \"c0\", \"echo\", true)");
}
