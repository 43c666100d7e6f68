#pragma once

// An agent's definition (docs/agents.md): which model it talks to, what it
// is told, which tools it may call, how its answer is checked and how much
// of its memory it sees. Defined in a workflow's `agents:` section or in the
// node config's `agents:`.

#include <cstdint>
#include <functional>
#include <string>
#include <utility>
#include <vector>

#include "cadre/messages/json_value.hpp"

namespace cadre::workflow {

struct agent_spec {
  std::string name;
  std::string description;
  /// LLM profile (config `llm.profiles.<name>`). Default: "default"
  std::string provider = "default";
  /// Empty: the profile's model.
  std::string model;
  /// The system prompt. Default: none
  std::string system;
  /// Registered tools the model may call.
  std::vector<std::string> tools;
  /// LLM calls per turn before the turn fails (a schema repair call comes
  /// on top). Default: 8
  uint32_t max_iterations = 8;
  /// JSON Schema of the final answer; null: free text. When set the answer
  /// must be JSON matching it (one repair call on a mismatch).
  json output_schema;
  /// Whose memory a turn continues: "task" (a fresh conversation per
  /// task), "execution" (the agent's turns in one execution) or "agent"
  /// (every turn of this agent, across executions). Default: "execution"
  std::string memory_scope = "execution";
  /// Messages of earlier turns (prompts and final answers) sent along.
  /// Default: 20
  uint32_t memory_window = 20;
  /// What happens to messages older than the window: "window" drops them
  /// from the request (the log keeps them); "summary" folds them into a
  /// model-written summary sent ahead of the window. Default: "window"
  std::string memory_policy = "window";
  /// With "summary": messages kept verbatim after a summary is made (the
  /// newest ones); a summary is made when more than `memory_window`
  /// unsummarized messages have gathered. Default: memory_window / 2
  uint32_t memory_keep = 10;
  /// Negative: the provider's default.
  double temperature = -1;
  /// 0: the provider's default.
  uint32_t max_tokens = 0;
  /// Stream text pieces to the event bus. Default: true
  bool stream = true;
  /// For a scripted profile: the script for this agent (a file path, a list
  /// of entries, or {turns: [...]}) in place of the profile's. Default: null
  json script;
};

/// One problem: the JSON pointer below the spec (e.g. "/tools/1") and what.
struct spec_problem {
  std::string pointer;
  std::string message;
};

/// What checking a spec needs to know about the node.
struct agent_check {
  /// True when a tool of that name is registered. Unset: any name passes.
  std::function<bool(const std::string&)> tool_exists;
};

/// Reads an agent spec; collects every problem instead of stopping at the
/// first. `out` is filled as far as it could be read.
std::vector<spec_problem> parse_agent_spec(const std::string& name,
                                           const json& doc, agent_spec& out,
                                           const agent_check& ctx = {});

/// The agent id, and so the log "agent:<id>", a turn continues:
/// by memory_scope, "<execution>/<task>", "<execution>/<agent>" or "<agent>".
/// In a fork (`forked`), scope `agent` continues the fork's own branch of
/// the shared log, "<execution>/<agent>": a fork never writes the log its
/// parent's agent shares with other executions (docs/replay.md#fork).
std::string agent_id_of(const agent_spec& spec, const std::string& execution,
                        const std::string& task, bool forked = false);

} // namespace cadre::workflow
