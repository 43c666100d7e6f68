#pragma once

// One agent actor per agent id (agent.cpp): the adapter of
// workflow::agent_machine, which it feeds its log and the answers of
// models and tools, and whose steps it appends before acting on them. The
// agents actor (agents_router.cpp) starts them. Private to actors/.

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>

#include <caf/fwd.hpp>

#include "cadre/actors/spawn.hpp"
#include "cadre/messages/interfaces.hpp"

namespace cadre::actors {

/// The wall clock in microseconds since the epoch, as events record it.
inline int64_t agent_now_us() {
  using namespace std::chrono;
  return duration_cast<microseconds>(system_clock::now().time_since_epoch())
    .count();
}

using agent_actor = caf::typed_actor<
  caf::replies_to<run_atom, agent_turn>::with<task_result>,
  caf::replies_to<get_atom>::with<json_value>,
  caf::reacts_to<timer_atom, uint64_t>>;

/// Starts the actor of agent `id`: it folds its log "agent:<id>", resumes
/// an unfinished turn, and stops after `opts->idle_timeout` without turns.
agent_actor spawn_agent(caf::actor_system& sys, std::string id,
                        event_store_actor store, event_bus_actor bus,
                        std::shared_ptr<const tool_directory> tools,
                        std::shared_ptr<const agents_options> opts);

} // namespace cadre::actors
