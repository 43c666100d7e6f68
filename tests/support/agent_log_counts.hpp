#pragma once

// How often an agent's log records each model call, tool call and turn
// end, for tests that kill an agent and check what its log repeats.

#include <map>
#include <string>
#include <vector>

#include "cadre/messages/event.hpp"

namespace cadre::test {

/// "llm_requested N" / "llm_responded N" by call number, "tool_called ID" /
/// "tool_result ID" by call id, and "agent_turn_started" /
/// "agent_turn_completed", each with the times `log` holds it.
inline std::map<std::string, int>
recorded_calls(const std::vector<event>& log) {
  std::map<std::string, int> seen;
  for (const auto& ev : log) {
    const auto& p = ev.payload.get();
    if (ev.type == "llm_requested" || ev.type == "llm_responded")
      ++seen[ev.type + " " + std::to_string(p.value("call", 0))];
    if (ev.type == "tool_called" || ev.type == "tool_result")
      ++seen[ev.type + " " + p.value("id", std::string{})];
    if (ev.type == "agent_turn_started" || ev.type == "agent_turn_completed")
      ++seen[ev.type];
  }
  return seen;
}

} // namespace cadre::test
