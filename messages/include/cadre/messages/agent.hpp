#pragma once

// Agents: provider-neutral LLM requests and replies. An agent records each
// as an event, so a replay reads them back instead of calling the provider.

#include <cstdint>
#include <string>
#include <vector>

#include <caf/meta/type_name.hpp>

#include "cadre/messages/json_field.hpp"
#include "cadre/messages/json_value.hpp"

namespace cadre {

/// A tool call requested by a model.
struct llm_tool_call {
  /// The provider's id (OpenAI "call_...", Anthropic "toolu_..."); made up
  /// when the provider has none (Ollama), unique within the reply.
  std::string id;
  std::string name;
  /// The arguments as a JSON object (OpenAI's argument string is parsed).
  json_value arguments;
  /// Set when the model's arguments were not a JSON object (then
  /// `arguments` is {}): what is wrong, quoting them. The agent answers the
  /// call with it as a tool error, so the model can correct itself.
  std::string arguments_error;
};

template <class Inspector>
auto inspect(Inspector& f, llm_tool_call& x) {
  using namespace meta;
  return f(caf::meta::type_name("llm_tool_call"),
           field("id"), x.id,
           field("name"), x.name,
           field("arguments"), x.arguments,
           field("arguments_error", omit_empty), x.arguments_error);
}

/// One message of a conversation.
struct llm_message {
  /// "system", "user", "assistant" or "tool".
  std::string role;
  /// Text; may be empty for an assistant message that only calls tools.
  std::string content;
  /// Assistant messages: the calls the model asks for, in order.
  std::vector<llm_tool_call> tool_calls;
  /// Tool messages: the id of the call this answers, and the tool's name.
  std::string tool_call_id;
  std::string name;
  /// Tool messages: the call failed and `content` says why.
  bool is_error = false;
};

template <class Inspector>
auto inspect(Inspector& f, llm_message& x) {
  using namespace meta;
  return f(caf::meta::type_name("llm_message"),
           field("role"), x.role,
           field("content"), x.content,
           field("tool_calls", omit_empty), x.tool_calls,
           field("tool_call_id", omit_empty), x.tool_call_id,
           field("name", omit_empty), x.name,
           field("is_error", omit_empty), x.is_error);
}

/// A tool offered to a model: its name, what it does, and the JSON Schema
/// of its arguments.
struct llm_tool_spec {
  std::string name;
  std::string description;
  json_value parameters;
};

template <class Inspector>
auto inspect(Inspector& f, llm_tool_spec& x) {
  using namespace meta;
  return f(caf::meta::type_name("llm_tool_spec"),
           field("name"), x.name,
           field("description"), x.description,
           field("parameters"), x.parameters);
}

/// Tokens of one call and what they cost (from the profile's prices).
struct llm_usage {
  uint64_t input_tokens = 0;
  uint64_t output_tokens = 0;
  double cost_usd = 0;
};

template <class Inspector>
auto inspect(Inspector& f, llm_usage& x) {
  using namespace meta;
  return f(caf::meta::type_name("llm_usage"),
           field("input_tokens"), x.input_tokens,
           field("output_tokens"), x.output_tokens,
           field("cost_usd"), x.cost_usd);
}

/// One call of a model.
struct llm_request {
  /// The provider profile (config `llm.profiles.<name>`).
  std::string profile;
  /// Empty: the profile's model.
  std::string model;
  std::vector<llm_message> messages;
  std::vector<llm_tool_spec> tools;
  /// "" (provider default), "auto", "none", "required", or a tool's name.
  std::string tool_choice;
  /// Negative: the provider's default.
  double temperature = -1;
  /// 0: the provider's default (Anthropic requires one: the profile's).
  uint32_t max_tokens = 0;
  /// Stream the reply (text pieces reach the caller as they arrive).
  bool stream = false;
  /// Who asks, for logs and for the scripted provider's matching.
  std::string agent;
  uint32_t turn = 0;
};

template <class Inspector>
auto inspect(Inspector& f, llm_request& x) {
  using namespace meta;
  return f(caf::meta::type_name("llm_request"),
           field("profile"), x.profile,
           field("model"), x.model,
           field("messages"), x.messages,
           field("tools", omit_empty), x.tools,
           field("tool_choice", omit_empty), x.tool_choice,
           field("temperature", omit_negative), x.temperature,
           field("max_tokens", omit_empty), x.max_tokens,
           field("stream", omit_empty), x.stream,
           field("agent", omit_empty), x.agent,
           field("turn", omit_empty), x.turn);
}

/// A model's reply.
struct llm_response {
  /// role "assistant": text and/or tool calls.
  llm_message message;
  /// Normalized: "stop", "tool_calls", "length" or "content_filter".
  std::string stop_reason;
  llm_usage usage;
  /// The model that answered, as the provider reports it.
  std::string model;
  int64_t duration_us = 0;
};

template <class Inspector>
auto inspect(Inspector& f, llm_response& x) {
  using namespace meta;
  return f(caf::meta::type_name("llm_response"),
           field("message"), x.message,
           field("stop_reason"), x.stop_reason,
           field("usage"), x.usage,
           field("model"), x.model,
           field("duration_us"), x.duration_us);
}

/// One turn of an agent: a prompt to answer on behalf of a task. The
/// agent records the turn in its log under `idempotency_key`, so the same
/// turn sent again (after a crash of either side) resumes or replays it
/// instead of starting over. The answer is a task_result whose output is
/// the final answer and whose usage holds tokens, cost and the agent's log.
struct agent_turn {
  /// The agent's definition name (workflow `agents:` or node config).
  std::string agent;
  /// The agent's definition as JSON; null: the node config's `agents.<agent>`.
  json_value spec;
  /// The prompt: a string, or any JSON (sent to the model as JSON text).
  json_value input;
  std::string execution_id;
  std::string task_id;
  uint32_t attempt = 1;
  /// "execution/task/attempt": names the turn in the agent's log.
  std::string idempotency_key;
  /// Wall-clock deadline in microseconds since the epoch; 0: none.
  int64_t deadline_us = 0;
  /// The parent execution when execution_id is a fork: memory scope
  /// `agent` then continues the fork's own branch (docs/replay.md#fork).
  std::string fork_of;
  /// The log of a fork's recorded model replies ("replies:<fork>") whose
  /// request, compared in full, the turn's calls reuse; empty: none.
  std::string replies;
};

template <class Inspector>
auto inspect(Inspector& f, agent_turn& x) {
  return f(caf::meta::type_name("agent_turn"), x.agent, x.spec, x.input,
           x.execution_id, x.task_id, x.attempt, x.idempotency_key,
           x.deadline_us, x.fork_of, x.replies);
}

void to_json(json& j, const llm_tool_call& x);
void from_json(const json& j, llm_tool_call& x);
void to_json(json& j, const llm_message& x);
void from_json(const json& j, llm_message& x);
void to_json(json& j, const llm_tool_spec& x);
void from_json(const json& j, llm_tool_spec& x);
void to_json(json& j, const llm_usage& x);
void from_json(const json& j, llm_usage& x);
void to_json(json& j, const llm_request& x);
void from_json(const json& j, llm_request& x);
void to_json(json& j, const llm_response& x);
void from_json(const json& j, llm_response& x);

} // namespace cadre
