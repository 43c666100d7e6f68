#pragma once

#include <cstdio>
#include <string>

#include <caf/fwd.hpp>

#include "cadre/messages/interfaces.hpp"

namespace cadre::runtime {

/// How `cadre run` shows an execution while it runs.
enum class progress_style {
  human, ///< one compact line per task state change, to stderr
  json,  ///< one JSON event per line, to stdout
  quiet,
};

/// Spawns a sink that prints the events it receives in `style`.
event_sink_actor spawn_progress(caf::actor_system& sys, progress_style style);

/// One line for a person describing `ev`, or "" when the event is not worth
/// a line (e.g. a single map item starting).
std::string describe_event(const event& ev);

} // namespace cadre::runtime
