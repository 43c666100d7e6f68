#pragma once

// The execution state machine: a pure fold of an execution's events plus the
// decisions that turn stimuli (results, timers, input) into new events. No
// actor code and no clock: the coordinator passes `now` and random draws in,
// and both end up in the events, so a replay folds to the same state.

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "cadre/messages/error.hpp"
#include "cadre/messages/event.hpp"
#include "cadre/messages/execution.hpp"
#include "cadre/messages/json_value.hpp"
#include "cadre/workflow/definition.hpp"

namespace cadre::tools {
class lua_sandbox;
} // namespace cadre::tools

namespace cadre::workflow {

/// Event type names of an execution log (docs/event-log.md).
namespace events {
inline constexpr const char* submitted = "execution_submitted";
inline constexpr const char* dispatched = "task_dispatched";
/// A running attempt sent again, unchanged: `cause` "node_restart" at a
/// start of the node (machine::resume, counted in `starts`), or
/// "node_lost" when the node running it was lost (machine::redispatch,
/// docs/cluster.md#losing-a-node).
inline constexpr const char* redispatched = "task_redispatched";
inline constexpr const char* completed = "task_completed";
inline constexpr const char* failed = "task_failed";
inline constexpr const char* skipped = "task_skipped";
inline constexpr const char* map_started = "map_started";
inline constexpr const char* fallback_started = "fallback_started";
inline constexpr const char* human_requested = "human_requested";
inline constexpr const char* execution_completed = "execution_completed";
inline constexpr const char* execution_failed = "execution_failed";
/// The execution failed and its `on_failure` tasks start; the failure
/// ({task, code, message}) waits in this event until they are done, then
/// execution_failed records it (docs/workflows.md#failure-hooks).
inline constexpr const char* on_failure_started = "on_failure_started";
inline constexpr const char* execution_cancelled = "execution_cancelled";
/// The one event of a snapshot log (workflow::snapshot_log).
inline constexpr const char* snapshot = "snapshot";
/// The other events of a paged snapshot's log: parts of the state its
/// root and later roots refer to (machine::paged_snapshot).
inline constexpr const char* snapshot_part = "snapshot_part";
/// A fork's marker after the history it took over (docs/replay.md).
inline constexpr const char* forked = "execution_forked";
} // namespace events

/// Something the coordinator does once the events of its step are durable.
struct action {
  enum kind_t {
    dispatch,        ///< send a task_request to the pool of `tool`
    retry_timer,     ///< after delay_ms, call machine::retry_due(key)
    execution_timer, ///< after delay_ms, call machine::execution_timed_out
    waiting_human,   ///< a person is asked; nothing to send
    run_agent,       ///< run one turn of agent `agent` with `input`
    /// after delay_ms, call machine::deadline_due(key, attempt): the
    /// deadline of a unit running a sub-workflow (its `timeout`, or the
    /// sub-workflow's own)
    deadline_timer,
  };
  kind_t kind = dispatch;
  /// "task" or "task[item]"; a unit of a sub-workflow is "task/inner" or
  /// "task[item]/inner" ("task[item]@attempt/inner" past attempt 1)
  std::string key;
  std::string task_id;
  int item = -1;
  uint32_t attempt = 1;
  std::string tool;
  /// run_agent: the agent's name, and its spec when the workflow defines
  /// it (null: the node's).
  std::string agent;
  json input;
  /// dispatch: where `input` holds secret references (task_def).
  std::vector<std::string> secret_pointers;
  /// run_agent: the agent's spec (see `agent`).
  json document;
  int64_t timeout_ms = 0;
  int64_t delay_ms = 0;
};

/// A decision of a replay-only machine (machine::replay_only) that was
/// folded without building its event: a tool unit's dispatch or a map
/// item's completion, as the fields its payload would hold. A replay
/// compares it with the recorded event field by field
/// (machine::decided_as) and builds it only to show a divergence
/// (machine::event_of): most of a replay's decisions are these.
struct unbuilt_decision {
  enum kind_t { dispatch, completion };
  kind_t kind = dispatch;
  /// Its place among the step's decisions: how many of step::events
  /// were decided before it.
  size_t at = 0;
  uint64_t seq = 0;
  int task = -1; ///< index in the definition's tasks
  int item = -1;
  uint32_t attempt = 1;
  json value; ///< dispatch: the input; completion: the output
  json usage; ///< completion: the agent's usage (null: none)
};

/// New events (already folded into the machine) and what to do after they
/// are on disk.
struct step {
  std::vector<event> events;
  /// Replay only: decisions folded without their events, in order with
  /// `events` (see unbuilt_decision::at). Always empty for a live machine.
  std::vector<unbuilt_decision> unbuilt;
  std::vector<action> actions;
  /// Set when the execution's status (or output) changed.
  std::optional<execution_info> index;
  /// The logs of the snapshots taken as the step's events reached
  /// multiples of machine::snapshot_every (their own log names, seq 1..):
  /// written in the same atomic write as `events`.
  std::vector<event> snapshots;

  bool empty() const {
    return events.empty() && unbuilt.empty() && actions.empty();
  }
};

/// An execution's state. Not thread-safe: one coordinator owns it.
class machine {
public:
  explicit machine(std::string execution_id);
  ~machine();
  machine(machine&&) noexcept;
  machine& operator=(machine&&) noexcept;

  /// Folds one event (in sequence order). Errors: errc::conflict for a seq
  /// out of order, errc::codec_error for a malformed payload.
  [[nodiscard]] expected<void> apply(const event& ev);

  /// Starts the execution: records the submission and the first dispatches.
  /// `doc` must be a definition that parse_document accepts.
  [[nodiscard]] expected<step> submit(const json& doc, const json& input,
                                      const std::string& idempotency_key,
                                      int64_t now_us);

  /// A task attempt succeeded. Stale results (an older attempt, a finished
  /// task or execution) yield an empty step. A non-null `usage` (an
  /// agent's tokens and cost) is recorded with the completion and summed
  /// into the execution's.
  step succeeded(const std::string& key, uint32_t attempt, const json& output,
                 int64_t duration_us, int64_t now_us,
                 const json& usage = nullptr);

  /// A task attempt failed with `err`. `draw` in [0, 1) picks the jitter.
  step failed(const std::string& key, uint32_t attempt, const caf::error& err,
              double draw, int64_t now_us);

  /// The node running attempt `attempt` of `key` was lost (`cause`, e.g.
  /// "node_lost", naming `node`): the same attempt, with the same input and
  /// idempotency key, is dispatched again. Counted as a retry in the log
  /// (task_redispatched), not against the task's max_attempts: the attempt
  /// never finished. Empty when the attempt is no longer running.
  step redispatch(const std::string& key, uint32_t attempt,
                  const std::string& cause, const std::string& node,
                  int64_t now_us);

  /// The retry timer of `key` fired.
  step retry_due(const std::string& key, uint32_t attempt, int64_t now_us);

  /// The execution timeout fired.
  step execution_timed_out(int64_t now_us);

  /// The deadline of attempt `attempt` of the unit `key` running a
  /// sub-workflow fired (action::deadline_timer): the attempt fails with
  /// code timeout, and retry decides. Stale deadlines yield an empty step.
  step deadline_due(const std::string& key, uint32_t attempt, int64_t now_us);

  /// A person answered human task `task_id` ("task", "task[i]" for an
  /// item of a map of human tasks, "task/inner" or "task[i]/inner" for a
  /// human task of a sub-workflow). Errors: errc::not_found (no such task),
  /// errc::conflict (not waiting), errc::invalid_input (the answer does
  /// not match answer_schema).
  [[nodiscard]] expected<step> human_answer(const std::string& task_id,
                                            const json& value,
                                            int64_t now_us);

  /// Cancels the execution (an empty step if it already finished).
  step cancel(const std::string& reason, int64_t now_us);

  /// After folding a log: the actions for work that was in flight
  /// (dispatched but not finished, pending retry timers, the execution
  /// timer). Re-dispatches keep their attempt and idempotency key.
  std::vector<action> recover(int64_t now_us) const;

  /// What a coordinator does at a start: recover()'s actions, each
  /// re-dispatch recorded first as task_redispatched (so it is durable
  /// before the task runs). An attempt that was re-dispatched at
  /// `crash_loop_limit` starts already and never got an outcome (the node
  /// died while running it each time) is not dispatched again: it fails
  /// for good with code crash_loop (parked), so one task that crashes the
  /// process cannot crash every later start. 0: no limit.
  step resume(int64_t now_us, uint32_t crash_loop_limit);

  const std::string& id() const;
  uint64_t last_seq() const;
  bool started() const;
  bool finished() const;
  /// The status the index entry shows (info().status, without copying the
  /// output).
  const std::string& status() const;
  /// The index entry as of the last folded event.
  execution_info info() const;
  const definition* def() const;

  /// Counts of completion events per key (for tests and checks).
  size_t completed_tasks() const;

  /// The state as JSON (what `cadre inspect` shows; docs/replay.md): the
  /// status, input and output, every task with its state, attempt, input,
  /// output or error (map items too), pending timers and human tasks.
  json view() const;

  /// How big the state is, in tasks and map items: what a snapshot costs.
  size_t state_units() const;

  /// The fold's whole state as JSON, to start another machine from
  /// (restore) without folding the events up to last_seq() again.
  json snapshot() const;

  /// A machine in the state `snap` (made by snapshot()). Errors:
  /// errc::codec_error for a snapshot of another format or execution, or
  /// one that does not read.
  [[nodiscard]] static expected<machine> restore(const std::string& id,
                                                 const json& snap);

  /// Paged snapshots as the machine decides (docs/replay.md#snapshots):
  /// with `every` > 0, a decided event whose seq is a multiple of `every`
  /// brings paged_snapshot(seq) along in its step's `snapshots`
  /// (an event a sub-workflow decided past a multiple: at the end of it).
  void snapshot_every(uint64_t every);

  /// The state after last_seq() as the log snapshot_log(id(), n), `n` the
  /// multiple of `every` it was taken for (at most last_seq()): event 1
  /// (type "snapshot") is the root, format 2, which refers to the parts
  /// of the state ({definition, input}, each task's own unit, its map
  /// items a page of 256 at a time) as [n', seq] events of snapshot logs;
  /// events 2.. (type "snapshot_part") are the parts changed since the
  /// previous paged snapshot (all of them the first time, and after a
  /// restore from anything but a paged snapshot). So a snapshot costs what
  /// changed, and reading one reads the state once.
  std::vector<event> paged_snapshot(uint64_t n, int64_t now_us);

  /// Where a paged snapshot's parts are: `count` events of
  /// snapshot_log(id, k) from seq `from`.
  struct part_range {
    uint64_t k = 0;
    uint64_t from = 0;
    uint64_t count = 0;
  };

  /// The parts the root `root` (format 2) refers to, as few ranges as
  /// they make. Errors: errc::codec_error for a root that does not read.
  [[nodiscard]] static expected<std::vector<part_range>>
  snapshot_parts(const json& root);

  /// A machine in the state of paged snapshot `root`, its parts looked up
  /// by `part(k, seq)` (null: missing); it goes on writing only the parts
  /// that change. Errors: errc::codec_error for another format or
  /// execution, a missing part, or one that does not read.
  [[nodiscard]] static expected<machine>
  restore(const std::string& id, const json& root,
          const std::function<const json*(uint64_t, uint64_t)>& part);

  /// A fork's edits, {outputs: {key: result}, answers: {key: answer}}, keyed
  /// by task or map item ("task[i]"): from now on a unit named there
  /// completes with that result when it would be dispatched (a human task
  /// when it would ask), recorded as
  /// `task_completed` with `by: "fork"`. Folding `execution_forked` does
  /// this too (docs/replay.md#fork).
  void use_fork_edits(const json& edits);

  /// Decisions from now on record their events and build no actions (what
  /// replay --against needs: it runs nothing), which spares copying every
  /// dispatched input into an action. A tool unit's dispatch and a map
  /// item's completion are folded without building their events: they
  /// come as step::unbuilt (this machine's own, not a sub-workflow's).
  void replay_only();

  /// Whether recorded event `rec` is the event `d` (a decision of this
  /// machine's last step) would be: its type and its whole payload,
  /// compared field by field as event_of(d) would compare, without
  /// building it.
  bool decided_as(const unbuilt_decision& d, const event& rec) const;

  /// The event of decision `d` (a divergence shows it).
  event event_of(const unbuilt_decision& d) const;

  /// A fork's parent (from its execution_forked event); empty otherwise.
  const std::string& forked_from() const;
  /// Whether the fork's edits run unit `key` again (`--rerun`): see
  /// reruns().
  bool fork_reruns(const std::string& key) const;

  /// The state of unit `key` ("task" or "task[item]"): blocked, running,
  /// retry_wait, waiting, done, failed or skipped; empty when unknown.
  std::string unit_state(const std::string& key) const;

  /// Opaque: the fold's data, defined in machine.cpp.
  struct state;

private:
  std::unique_ptr<state> st_;
};

/// Splits "task[3]" into ("task", 3); "task" gives ("task", -1).
std::pair<std::string, int> split_key(const std::string& key);

/// Splits the key of a run of a sub-workflow, "task[3]@2" (attempt 2 of
/// the unit "task[3]"), into ("task[3]", 2); without "@" the attempt is 1,
/// and 0 when what follows "@" is no number.
std::pair<std::string, uint32_t> split_run(const std::string& segment);

/// Whether a fork's `--rerun` keys run unit `key` again: it is named
/// itself, or a unit it runs under is: its map task ("task" for
/// "task[i]"), or the task, item or run of a sub-workflow it is a unit of
/// ("task", "task[i]" or "task[i]@2" for "task[i]@2/inner").
bool reruns(const std::set<std::string>& rerun, const std::string& key);

} // namespace cadre::workflow
