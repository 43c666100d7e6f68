#pragma once

#include <chrono>
#include <memory>
#include <string>

#include "cadre/actors/deadlines.hpp"
#include "cadre/actors/spawn.hpp"

namespace cadre::actors {

class metric_registry;

/// How a coordinator starts: with a submission (`submit` message) or by
/// folding the existing log of its execution.
enum class coordinator_mode { fresh, recover };

struct coordinator_args {
  std::string id;
  coordinator_mode mode = coordinator_mode::fresh;
  event_store_actor store;
  std::shared_ptr<const tool_directory> tools;
  /// Runs agent tasks; null: they fail with errc::unavailable.
  agents_actor agents;
  /// Counts task outcomes (cadre_tasks_total); null: not counted.
  std::shared_ptr<metric_registry> metrics;
  /// A snapshot every this many events (workflow::snapshot_log); 0: none.
  uint64_t snapshot_every = 0;
  /// Starts of the node that may dispatch one running attempt again before
  /// it is parked as failed with errc::crash_loop (machine::resume); 0: no
  /// limit. Default: 3
  uint32_t crash_loop_limit = 3;
  /// An append unanswered this long stops the coordinator (restarted from
  /// its log); its waiting requests fail with errc::unavailable.
  /// Default: local_deadline
  std::chrono::milliseconds append_deadline = local_deadline;
};

/// Spawns a coordinator as a child of `parent_self` (monitored by the
/// caller). One per execution: it owns the execution's log, persists each
/// decision's events before acting on them, and quits once the execution
/// finished.
coordinator_actor spawn_coordinator(caf::local_actor* parent_self,
                                    coordinator_args args);

} // namespace cadre::actors
