#pragma once

// `cadre schedules`: the node config's schedules with their next and last
// firing, read from the store (embedded) or from `cadre serve`
// (GET /v1/schedules), printed the same way. Private to runtime/.

#include "cadre/config/node_config.hpp"
#include "cadre/messages/json_value.hpp"

namespace cadre::persistence {
class event_store;
} // namespace cadre::persistence

namespace cadre::runtime::cli {

/// Prints schedules as GET /v1/schedules lists them: with `json_out` the
/// array on one line, else a table (times in UTC).
void print_schedules(const json& list, bool json_out);

/// `cadre schedules` without a server: each schedule of `cfg` folded from
/// its log in `store` (null: no store yet, so no history), with the status
/// of its last execution. Returns the exit code.
int cmd_schedules(const persistence::event_store* store,
                  const config::node_config& cfg, bool json_out);

} // namespace cadre::runtime::cli
