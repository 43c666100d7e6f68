#pragma once

#include <caf/fwd.hpp>

namespace cadre {

/// Registers cadre's message types and error category with a config. Call it
/// once before creating the actor system (also in other CAF programs that
/// talk to cadre).
void register_types(caf::actor_system_config& cfg);

} // namespace cadre
