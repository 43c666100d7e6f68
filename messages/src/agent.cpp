// JSON mapping of the agent messages: the shapes of LLM events in the log.
// Empty and default fields are left out, so recorded turns stay small.

#include "cadre/messages/agent.hpp"
#include "json_opt.hpp"

namespace cadre {

using detail::opt;

void to_json(json& j, const llm_tool_call& x) {
  j = json{{"id", x.id}, {"name", x.name}, {"arguments", x.arguments.get()}};
  if (!x.arguments_error.empty())
    j["arguments_error"] = x.arguments_error;
}

void from_json(const json& j, llm_tool_call& x) {
  opt(j, "id", x.id);
  opt(j, "name", x.name);
  opt(j, "arguments", x.arguments);
  opt(j, "arguments_error", x.arguments_error);
}

void to_json(json& j, const llm_message& x) {
  j = json{{"role", x.role}, {"content", x.content}};
  if (!x.tool_calls.empty())
    j["tool_calls"] = x.tool_calls;
  if (!x.tool_call_id.empty())
    j["tool_call_id"] = x.tool_call_id;
  if (!x.name.empty())
    j["name"] = x.name;
  if (x.is_error)
    j["is_error"] = true;
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
  j = json{{"name", x.name},
           {"description", x.description},
           {"parameters", x.parameters.get()}};
}

void from_json(const json& j, llm_tool_spec& x) {
  opt(j, "name", x.name);
  opt(j, "description", x.description);
  opt(j, "parameters", x.parameters);
}

void to_json(json& j, const llm_usage& x) {
  j = json{{"input_tokens", x.input_tokens},
           {"output_tokens", x.output_tokens},
           {"cost_usd", x.cost_usd}};
}

void from_json(const json& j, llm_usage& x) {
  opt(j, "input_tokens", x.input_tokens);
  opt(j, "output_tokens", x.output_tokens);
  opt(j, "cost_usd", x.cost_usd);
}

void to_json(json& j, const llm_request& x) {
  j = json{{"profile", x.profile},
           {"model", x.model},
           {"messages", x.messages}};
  if (!x.tools.empty())
    j["tools"] = x.tools;
  if (!x.tool_choice.empty())
    j["tool_choice"] = x.tool_choice;
  if (x.temperature >= 0)
    j["temperature"] = x.temperature;
  if (x.max_tokens > 0)
    j["max_tokens"] = x.max_tokens;
  if (x.stream)
    j["stream"] = true;
  if (!x.agent.empty())
    j["agent"] = x.agent;
  if (x.turn > 0)
    j["turn"] = x.turn;
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
  j = json{{"message", x.message},
           {"stop_reason", x.stop_reason},
           {"usage", x.usage},
           {"model", x.model},
           {"duration_us", x.duration_us}};
}

void from_json(const json& j, llm_response& x) {
  opt(j, "message", x.message);
  opt(j, "stop_reason", x.stop_reason);
  opt(j, "usage", x.usage);
  opt(j, "model", x.model);
  opt(j, "duration_us", x.duration_us);
}

} // namespace cadre
