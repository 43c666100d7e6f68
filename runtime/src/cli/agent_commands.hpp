#pragma once

// `cadre agent ID`: an agent's memory view (workflow::agent_machine::view),
// from a local store (the fold of the agent's log, as the agent actor
// recovers it) or from `cadre serve` (GET /v1/agents/{agent_id}); both
// print it the same way. Private to runtime/.

#include <string>

#include "cadre/messages/error.hpp"
#include "cadre/messages/json_value.hpp"

namespace cadre::persistence {
class event_store;
} // namespace cadre::persistence

namespace cadre::runtime::cli {

/// The memory view of agent `id`: its log "agent:<id>" folded.
/// Errors: errc::not_found naming the id when it has no log (the agent
/// actor's own words); the store's read errors.
[[nodiscard]] expected<json>
agent_memory(const persistence::event_store& store, const std::string& id);

/// Prints a memory view: its JSON on one line, or compact text for a
/// person (counts, the summary, one line per held message, the active
/// turn).
void print_agent(const json& view, bool json_out);

/// `cadre agent ID` on a local store.
int cmd_agent(const persistence::event_store& store, const std::string& id,
              bool json_out);

} // namespace cadre::runtime::cli
