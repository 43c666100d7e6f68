#pragma once

// An OTP-style supervisor: starts children from specs, watches them with
// monitors, restarts them by strategy, escalates when restarts come too fast,
// stops them in reverse start order. Callers reach a child through the
// handle the supervisor hands out (start_child, or the start function's
// registry); children made on demand per id with their own crash record use
// dynamic_children instead. See docs/supervision.md.

#include <chrono>
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include <caf/actor.hpp>
#include <caf/actor_cast.hpp>
#include <caf/fwd.hpp>
#include <caf/replies_to.hpp>
#include <caf/typed_actor.hpp>

#include "cadre/actors/restart_intensity.hpp"

#include "cadre/messages/fwd.hpp"
#include "cadre/messages/type_ids.hpp"

namespace cadre::actors {

/// What a supervisor answers.
using supervisor_actor = caf::typed_actor<
  // (child id, args) -> the new child. simple_one_for_one only: starts a
  // child from the template spec. Errors: conflict (id in use), invalid_input
  // (not a pool), unavailable (shutting down), or the start function's error.
  caf::replies_to<start_child_atom, std::string, json_value>::with<
    caf::actor>,
  // (child id) -> true once the child has stopped (its shutdown spec applies)
  // and its spec is removed. Errors: not_found.
  caf::replies_to<terminate_atom, std::string>::with<bool>,
  // -> {name, strategy, max_restarts, period_ms, restarts, children: [{id,
  //    type, restart, restarts, alive, status, children?, strategy?}]};
  //    nested supervisors are asked in turn, so this is the whole subtree.
  caf::replies_to<which_children_atom>::with<json_value>,
  // -> {specs, active, supervisors, workers, restarts}
  caf::replies_to<count_children_atom>::with<json_value>,
  // -> true, then the supervisor stops its children in reverse start order
  //    and exits normally (a permanent parent would restart it: to remove a
  //    nested supervisor, terminate it through its parent).
  caf::replies_to<stop_atom>::with<bool>>;

/// When a child is restarted.
enum class restart_policy : uint8_t {
  permanent, ///< always
  transient, ///< only after an abnormal exit (not normal, not user_shutdown)
  temporary, ///< never; its spec is dropped when it exits
};

/// What a child is; used for the tree and the default shutdown.
enum class child_type : uint8_t { worker, supervisor };

/// Which children are restarted when one fails.
enum class restart_strategy : uint8_t {
  one_for_one,        ///< only the failed child
  one_for_all,        ///< all children (the others are stopped first)
  rest_for_one,       ///< the failed child and those started after it
  simple_one_for_one, ///< a dynamic pool of children made from one template
};

std::string to_string(restart_policy x);
std::string to_string(child_type x);
std::string to_string(restart_strategy x);

/// Shutdown value: send exit_reason::kill at once.
inline constexpr std::chrono::milliseconds brutal_kill{0};

/// Shutdown value: send exit_reason::user_shutdown and wait for as long as it
/// takes (the default for child supervisors, which stop their own subtree).
inline constexpr std::chrono::milliseconds infinity
  = std::chrono::milliseconds::max();

/// What a start function gets.
struct start_context {
  /// Spawn the child here.
  caf::actor_system& system;
  /// The child's id (for a pool child: the id given to start_child).
  std::string id;
  /// The args given to start_child; null for static children.
  json_value args;
  /// The supervisor starting the child.
  caf::actor supervisor;
  /// How often this child has been restarted before (0 on the first start).
  uint64_t restarts = 0;
};

/// Spawns one incarnation of a child and returns it. The supervisor monitors
/// it; the function must not link it to anything that outlives it. An error
/// (or an exception) counts as a failed start.
using start_function
  = std::function<caf::expected<caf::actor>(const start_context&)>;

/// How to start, restart and stop one child.
struct child_spec {
  /// Unique among the supervisor's children; for a pool template, the name
  /// of the template.
  std::string id;
  /// Spawns the child. Required.
  start_function start;
  /// Default: permanent
  restart_policy restart = restart_policy::permanent;
  /// How long the child may take to stop after exit_reason::user_shutdown
  /// before it is killed; brutal_kill or infinity. Default: 5 s
  std::chrono::milliseconds shutdown = std::chrono::seconds{5};
  /// Default: worker
  child_type type = child_type::worker;
};

/// Exponential delay before a restart: initial, 2*initial, 4*initial, ... up
/// to max. The doubling starts over once the child has run a full intensity
/// period without failing.
struct backoff_options {
  /// 0 disables backoff (restart at once). Default: 0
  std::chrono::milliseconds initial{0};
  /// Default: 30 s
  std::chrono::milliseconds max = std::chrono::seconds{30};
};

/// One restart decision, reported through supervisor_options::on_restart.
struct restart_report {
  /// supervisor_options::name
  std::string supervisor;
  /// The child that failed.
  std::string child;
  /// Why it failed: its exit reason, or the start function's error.
  std::string reason;
  /// The child's restart count, this restart included.
  uint64_t restarts = 0;
  /// Every child restarted because of this failure, in start order (the
  /// failed one included); more than one for one_for_all and rest_for_one.
  std::vector<std::string> group;
  /// The backoff before the restart.
  std::chrono::milliseconds delay{0};
};

/// The node event for one restart decision ("supervisor_restart", published
/// on the bus under the empty execution id), for supervisors and the
/// dynamic children of the agents and executions actors alike.
event restart_event(const restart_report& r);

/// How a supervisor behaves.
struct supervisor_options {
  /// Names the supervisor in reports, errors and the tree.
  /// Default: "supervisor"
  std::string name = "supervisor";
  /// Default: one_for_one
  restart_strategy strategy = restart_strategy::one_for_one;
  /// Restart intensity: more than max_restarts restarts within period make
  /// the supervisor stop all children (reverse start order) and exit with
  /// errc::worker_crashed naming the child, so that its own supervisor
  /// decides. 0 = escalate on the first failure. Default: 3
  uint32_t max_restarts = 3;
  /// Default: 5 s
  std::chrono::milliseconds period = std::chrono::seconds{5};
  /// Default: no backoff
  backoff_options backoff;
  /// Called in the supervisor's context for every restart decision; keep it
  /// short and thread-safe (e.g. anon_send to the event bus). Default: none
  std::function<void(const restart_report&)> on_restart;
  /// Write an operator log line (cadre/log) per restart, escalation, kill
  /// and failed start. Default: true
  bool log = true;
  /// How long which_children waits for a nested supervisor. Default: 5 s
  std::chrono::milliseconds tree_timeout = std::chrono::seconds{5};
};

/// Spawns a supervisor that starts `children` in order. For
/// simple_one_for_one, `children` is exactly one template spec and the pool
/// starts empty. If a child fails to start, the supervisor stops those
/// already started (reverse order) and exits with an error naming the child;
/// monitor it to find out.
supervisor_actor spawn_supervisor(caf::actor_system& sys,
                                  supervisor_options opts,
                                  std::vector<child_spec> children);

/// A spec that starts a nested supervisor (type supervisor, shutdown
/// infinity, permanent). An empty opts.name becomes `id`.
child_spec supervisor_child(std::string id, supervisor_options opts,
                            std::vector<child_spec> children);

/// Makes an exception thrown by one of `self`'s handlers print the actor's
/// name and what() to stderr and end the actor with sec::runtime_error
/// (context: what()), an abnormal exit its supervisor restarts. A request
/// being handled gets that error as its answer.
void install_exception_handler(caf::scheduled_actor* self);

/// Renders a which_children tree as indented text, one line per node:
///   node (one_for_one, restarts 0)
///    |- store worker permanent running restarts=0
///    |- tools supervisor permanent running restarts=1 (one_for_one)
///    |   |- ocr worker permanent running restarts=1
std::string render_tree(const json_value& tree);

} // namespace cadre::actors
