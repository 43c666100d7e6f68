// JSON mapping of the agent messages: the shapes of LLM events in the log.
// Empty and default fields are left out, so recorded turns stay small.

#include "cadre/messages/agent.hpp"
#include "json_opt.hpp"

namespace cadre {

using detail::opt;

namespace {

// Objects are built key by key: nlohmann's initializer lists copy each
// value through temporary arrays, and a request holds a whole conversation.
json::object_t& object_of(json& j) {
  j = json::object();
  return *j.get_ptr<json::object_t*>();
}

} // namespace

void to_json(json& j, const llm_tool_call& x) {
  auto& o = object_of(j);
  o.emplace("id", x.id);
  o.emplace("name", x.name);
  o.emplace("arguments", x.arguments.get());
  if (!x.arguments_error.empty())
    o.emplace("arguments_error", x.arguments_error);
}

void from_json(const json& j, llm_tool_call& x) {
  opt(j, "id", x.id);
  opt(j, "name", x.name);
  opt(j, "arguments", x.arguments);
  opt(j, "arguments_error", x.arguments_error);
}

void to_json(json& j, const llm_message& x) {
  auto& o = object_of(j);
  o.emplace("role", x.role);
  o.emplace("content", x.content);
  if (!x.tool_calls.empty())
    o.emplace("tool_calls", x.tool_calls);
  if (!x.tool_call_id.empty())
    o.emplace("tool_call_id", x.tool_call_id);
  if (!x.name.empty())
    o.emplace("name", x.name);
  if (x.is_error)
    o.emplace("is_error", true);
}

void from_json(const json& j, llm_message& x) {
  opt(j, "role", x.role);
  opt(j, "content", x.content);
  opt(j, "tool_calls", x.tool_calls);
  opt(j, "tool_call_id", x.tool_call_id);
  opt(j, "name", x.name);
  opt(j, "is_error", x.is_error);
}

void to_json(json& j, const llm_tool_spec& x) {
  auto& o = object_of(j);
  o.emplace("name", x.name);
  o.emplace("description", x.description);
  o.emplace("parameters", x.parameters.get());
}

void from_json(const json& j, llm_tool_spec& x) {
  opt(j, "name", x.name);
  opt(j, "description", x.description);
  opt(j, "parameters", x.parameters);
}

void to_json(json& j, const llm_usage& x) {
  auto& o = object_of(j);
  o.emplace("input_tokens", x.input_tokens);
  o.emplace("output_tokens", x.output_tokens);
  o.emplace("cost_usd", x.cost_usd);
}

void from_json(const json& j, llm_usage& x) {
  opt(j, "input_tokens", x.input_tokens);
  opt(j, "output_tokens", x.output_tokens);
  opt(j, "cost_usd", x.cost_usd);
}

void to_json(json& j, const llm_request& x) {
  auto& o = object_of(j);
  o.emplace("profile", x.profile);
  o.emplace("model", x.model);
  json messages = json::array();
  auto& list = *messages.get_ptr<json::array_t*>();
  list.reserve(x.messages.size());
  for (const auto& m : x.messages)
    list.emplace_back(m);
  o.emplace("messages", std::move(messages));
  if (!x.tools.empty())
    o.emplace("tools", x.tools);
  if (!x.tool_choice.empty())
    o.emplace("tool_choice", x.tool_choice);
  if (x.temperature >= 0)
    o.emplace("temperature", x.temperature);
  if (x.max_tokens > 0)
    o.emplace("max_tokens", x.max_tokens);
  if (x.stream)
    o.emplace("stream", true);
  if (!x.agent.empty())
    o.emplace("agent", x.agent);
  if (x.turn > 0)
    o.emplace("turn", x.turn);
}

void from_json(const json& j, llm_request& x) {
  opt(j, "profile", x.profile);
  opt(j, "model", x.model);
  opt(j, "messages", x.messages);
  opt(j, "tools", x.tools);
  opt(j, "tool_choice", x.tool_choice);
  opt(j, "temperature", x.temperature);
  opt(j, "max_tokens", x.max_tokens);
  opt(j, "stream", x.stream);
  opt(j, "agent", x.agent);
  opt(j, "turn", x.turn);
}

void to_json(json& j, const llm_response& x) {
  auto& o = object_of(j);
  o.emplace("message", x.message);
  o.emplace("stop_reason", x.stop_reason);
  o.emplace("usage", x.usage);
  o.emplace("model", x.model);
  o.emplace("duration_us", x.duration_us);
}

void from_json(const json& j, llm_response& x) {
  opt(j, "message", x.message);
  opt(j, "stop_reason", x.stop_reason);
  opt(j, "usage", x.usage);
  opt(j, "model", x.model);
  opt(j, "duration_us", x.duration_us);
}

} // namespace cadre
