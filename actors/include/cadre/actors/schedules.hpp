#pragma once

// The schedules actor: runs the node config's schedules (`cadre serve`).

#include <chrono>
#include <cstdint>
#include <functional>
#include <vector>

#include <caf/fwd.hpp>

#include "cadre/actors/deadlines.hpp"
#include "cadre/messages/interfaces.hpp"
#include "cadre/schedule/schedule.hpp"

namespace cadre::actors {

/// A schedule and the workflow its firings run.
struct scheduled_workflow {
  schedule::spec spec;
  /// The workflow document (parsed and validated) each firing submits.
  json_value definition;
};

/// How the schedules actor keeps time.
struct schedules_options {
  /// Now, in microseconds since the Unix epoch; tests move their own.
  /// Default: the system clock
  std::function<int64_t()> clock;
  /// The longest a timer waits before the actor looks at the clock again,
  /// so a jump of the system clock is noticed. Default: 60 s
  std::chrono::milliseconds max_wait = std::chrono::seconds{60};
  /// How long a schedule's append may go unanswered: then the actor ends
  /// with errc::unavailable, as on a failed append.
  /// Default: local_deadline (store.append_deadline)
  std::chrono::milliseconds append_deadline = local_deadline;
};

/// Spawns the schedules actor. For each schedule it folds its log
/// ("schedule:<name>"), decides what fell due while the node was down (the
/// missed policy), then fires on time: a firing is appended to the log
/// before its execution is submitted to `executions` under the firing's
/// key (schedule::firing_key), so a restart neither skips nor doubles a
/// firing. Timers are CAF's delayed messages, so no thread waits; every
/// request has a deadline. A failed append, one unanswered past
/// `opts.append_deadline`, or an unreadable log ends the actor with the
/// error, and its supervisor starts it again from the log.
schedules_actor spawn_schedules(caf::actor_system& sys,
                                event_store_actor store, event_bus_actor bus,
                                executions_actor executions,
                                std::vector<scheduled_workflow> schedules,
                                schedules_options opts);

} // namespace cadre::actors
