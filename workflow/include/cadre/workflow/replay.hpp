#pragma once

// Replay debugging on recorded logs (docs/replay.md): the state at any event,
// a definition checked against history, forks that reuse what still applies,
// and the difference between two executions. Pure functions over events and
// `machine`, the same fold the coordinator runs; no actors, no store.

#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "cadre/messages/error.hpp"
#include "cadre/messages/event.hpp"
#include "cadre/messages/json_value.hpp"
#include "cadre/workflow/machine.hpp"

namespace cadre::workflow {

/// Folds the events of `log` up to and including `seq` (0: all of them).
/// Errors: the fold's (errc::conflict, errc::codec_error), and
/// errc::not_found when `log` is empty or `seq` is past its end.
[[nodiscard]] expected<machine> fold_log(const std::vector<event>& log,
                                         uint64_t seq = 0);

/// The agent logs ("agent:<id>") an execution's turns wrote: those its
/// completions name, and those its running agent tasks write to.
std::vector<std::string> agent_logs_of(const std::vector<event>& log);

/// The same from a machine's state (e.g. one restored from a snapshot).
std::vector<std::string> agent_logs_of(const machine& m);

/// Every log besides its own that an execution uses, so that an export
/// carries it and a fork of it reads it: agent_logs_of(log), and for a fork
/// the logs written with it (named in its execution_forked event: its
/// branches of its parent's agent logs and its recorded replies).
std::vector<std::string> logs_of(const std::vector<event>& log);

/// A fork's ancestors, nearest first (its parent, the parent's parent...),
/// from its execution_forked event; empty for an execution that is no fork.
std::vector<std::string> fork_lineage(const std::vector<event>& log);

/// agent_logs_of(log), or with `listed` logs_of(log), fed the log's events
/// in order as they are read, so a reader need not hold the log whole.
class agent_log_names {
public:
  explicit agent_log_names(bool listed = false) : listed_(listed) {
  }

  void add(const event& ev);

  /// The agent logs of the events added so far, in the order first named;
  /// with `listed`, then the logs a fork's marker names.
  std::vector<std::string> names() const;

private:
  std::optional<definition> def_;
  bool listed_ = false;
  bool forked_ = false; // past a fork's marker: its own turns follow
  std::vector<std::string> names_;
  std::vector<std::string> fork_logs_;
};

/// Snapshots: the coordinator writes the state after event n, a multiple of
/// store.snapshot_every (machine::paged_snapshot, taken as the machine
/// decides that event), as log snapshot_log(id, n), in the same atomic
/// write as the step's events. Its event 1 is the root: format 2 refers to
/// parts in this log and in earlier ones; format 1 (older stores, named by
/// n / every instead) is the whole state (machine::snapshot()). A root's
/// `seq` says which state it holds. Naming by the multiple keeps names
/// unique when the setting changes under unfinished executions.
std::string snapshot_log(const std::string& id, uint64_t n);

/// The snapshot logs to look at, newest first, for the state at `target`
/// with store.snapshot_every `every`: the 64 multiples of `every` up to
/// `target`, then the names older stores gave them (n / every). Any root
/// found whose `seq` is at most `target` is a state to start from.
std::vector<std::string> snapshot_candidates(const std::string& id,
                                             uint64_t target, uint64_t every);

/// Reads `count` events of log `name` from seq `from`.
using range_reader = std::function<expected<std::vector<event>>(
  const std::string& name, uint64_t from, uint64_t count)>;

/// The machine of snapshot root `root` (event 1 of a snapshot log of
/// execution `id`, either format) with the parts of a paged one read
/// through `read`. Errors: the restore's (errc::codec_error), the
/// reader's.
[[nodiscard]] expected<machine> restore_snapshot(const std::string& id,
                                                 const json& root,
                                                 const range_reader& read);

/// The machine of paged root `root` from `parts`: for each range
/// machine::snapshot_parts(root) names, its k and the events read there.
[[nodiscard]] expected<machine>
restore_paged(const std::string& id, const json& root,
              const std::vector<std::pair<uint64_t, std::vector<event>>>& parts);

/// Folds `log` (the events after the snapshot's seq, in order) onto the
/// machine restored from `snap`, up to `seq` (0: all). Errors: restore's
/// and the fold's.
[[nodiscard]] expected<machine> fold_from(const std::string& id,
                                          const json& snap,
                                          const std::vector<event>& log,
                                          uint64_t seq = 0);

/// Walks a log back and forth (`cadre replay` on a terminal): the state
/// after any event is folded from the current position when it is at or
/// before the asked one, else from a snapshot kept in memory. Snapshots
/// are taken at multiples of `every` as the walk passes them, and at most
/// max_kept are kept however far it goes: those within near_multiples
/// multiples of the position, and far_snapshots more at multiples of a
/// stride that doubles whenever they would be more. So a step back costs
/// at most `every` folds near where the walk is, and a step past the kept
/// ones refolds at most a stride once and keeps the multiples around the
/// new position, so the next steps back are cheap again. The events are
/// read a chunk of `every` at a time as the walk reaches them, never the
/// whole log.
class stepper {
public:
  /// Reads up to `max` events of the log from seq `from` (seqs dense from 1).
  using reader
    = std::function<expected<std::vector<event>>(uint64_t from, uint64_t max)>;

  /// A walk over a log of `last` events read through `read`.
  stepper(reader read, uint64_t last, uint64_t every = 256);

  /// A walk over a log in memory, which must outlive it.
  explicit stepper(const std::vector<event>& log, uint64_t every = 256);

  /// The machine's view after event `seq` (1 .. size()). Errors: the
  /// fold's, the reader's, and errc::not_found for a seq outside the log.
  expected<json> view_at(uint64_t seq);

  /// What event `seq` (1 .. size()) changed, as change_feed::add records
  /// it: the event folded onto the state after seq - 1, reached as view_at
  /// reaches a state (from the position or a kept snapshot). `cadre replay`
  /// on a terminal shows it at each step, forward, back or jump. Errors:
  /// view_at's.
  [[nodiscard]] expected<json> changes_at(uint64_t seq);

  /// Event `seq` (1 .. size()), valid until the next call. Errors: the
  /// reader's, errc::not_found for a seq outside the log, errc::codec_error
  /// for a log whose seqs are not dense.
  expected<const event*> event_at(uint64_t seq);

  /// The log's events.
  uint64_t size() const {
    return last_;
  }

  /// Events folded so far, over every call (what the walk cost).
  uint64_t folded() const {
    return folded_;
  }

  /// Snapshots kept around the position, and elsewhere, at most.
  static constexpr uint64_t near_multiples = 8;
  static constexpr uint64_t far_snapshots = 32;
  static constexpr size_t max_kept = 2 * near_multiples + 1 + far_snapshots;

  /// The snapshots kept in memory now (at most max_kept).
  size_t kept() const {
    return snapshots_.size();
  }

private:
  // Keeps the snapshot at `seq`, then drops what max_kept allows no
  // longer, the walk being at `around`.
  void keep(uint64_t seq, json snap, uint64_t around);

  // Brings the position to the state after event `seq` (0: before any).
  expected<void> seek(uint64_t seq);

  // Folds the event after the position, the walk heading for `around`;
  // with `record`, returns what it changed (change_feed::add), else null.
  expected<json> advance(uint64_t around, bool record);

  reader read_;
  uint64_t last_;
  uint64_t every_;
  std::vector<event> chunk_; // the events read last, from chunk_from_
  uint64_t chunk_from_ = 0;
  std::string id_; // the execution's, from the events read
  std::map<uint64_t, json> snapshots_; // seq -> machine::snapshot()
  uint64_t stride_;                     // of the far ones, a multiple of every_
  std::optional<machine> current_;
  uint64_t current_seq_ = 0;
  uint64_t folded_ = 0;
};

/// What each event of a log changes (`cadre replay` piped), fed the events
/// in order as they are read: the units (tasks and map items) whose state
/// the event changed and the execution's status. A record costs what its
/// event changes (a map's start: its items), not the size of the state.
class change_feed {
public:
  /// The walk of execution `id`'s log.
  explicit change_feed(std::string id);

  /// Folds the next event and returns its record: {seq, type, task (the
  /// payload's, if any), changes: [{task: "T" or "T[i]", from, to}, ...,
  /// {execution, from}]}: units in the order of their keys, then the
  /// status. A unit that appears blocked is not a change; one that
  /// appears otherwise comes `from` "". Errors: the fold's.
  [[nodiscard]] expected<json> add(const event& ev);

  /// The state after the events added so far.
  const machine& state() const {
    return m_;
  }

private:
  machine m_;
};

/// One event as the comparison sees it: type and payload.
json event_json(const event& ev);

/// The first recorded event where a definition decides differently.
struct divergence {
  uint64_t seq = 0;   ///< the recorded event at which the decisions part
  std::string task;   ///< its task ("task" or "task[item]"), if any
  std::string reason; ///< one line: what differs
  json expected;      ///< the recorded event ({type, payload}), or null
  json got;           ///< what the definition decides there, or null
};

json to_json(const divergence& d);

/// The outcome of replaying a log through a definition's decisions.
struct replay_check {
  uint64_t events = 0; ///< recorded events checked
  std::optional<divergence> first;

  bool compatible() const {
    return !first;
  }
};

/// Re-runs the recorded `log` through the decisions of the definition
/// document `doc` (the recorded one when null), feeding it the recorded
/// results, answers, timers and cancellations, without calling any tool or
/// model. An agent task whose agent spec differs from the recorded one
/// diverges at its dispatch (its model requests would differ). Errors:
/// errc::invalid_workflow for a `doc` that does not parse,
/// errc::codec_error for a log that does not fold.
[[nodiscard]] expected<replay_check> check_against(const std::vector<event>& log,
                                                   const json* doc = nullptr);

/// Walks a recorded log from its first event, calling `fn` on each event
/// in order until it returns false (e.g. runtime::log_reader::each over a
/// store, a chunk at a time). Errors: the reader's and fn's.
using log_walk = std::function<expected<void>(
  const std::function<expected<bool>(const event&)>& fn)>;

/// check_against on a log as it is read: memory holds the state and the
/// decisions of one step, never the log, and the walk stops at the first
/// divergence. A fork's edits decide from its first event but its marker
/// comes after the history it took over: a fork that diverges at a result
/// its edits gave (or just before it) is walked on to its marker, then
/// again with its edits.
[[nodiscard]] expected<replay_check> check_against(const log_walk& walk,
                                                   const json* doc = nullptr);

/// The check of a recovering coordinator (non-determinism detection): the
/// events read at recovery re-run through this build's decisions of the
/// recorded definition. `log` is the whole log when `snap` is null, else
/// the events after the snapshot `snap` (machine::snapshot()) it restored.
/// A divergence means the log was written by decisions this build no
/// longer makes (an upgrade changed them, or the log was altered). Errors:
/// check_against's, and restore's.
[[nodiscard]] expected<replay_check> check_recovery(const std::string& id,
                                                    const json& snap,
                                                    const std::vector<event>& log);

/// What a fork changes (docs/replay.md#fork). A key names a task, or an
/// item of a map task as "task[i]" (from 0).
struct fork_edits {
  std::optional<json> input;      ///< a new workflow input
  std::optional<json> definition; ///< a new definition document
  std::map<std::string, json> outputs; ///< key -> result to use instead
  std::set<std::string> rerun;         ///< keys that run again
  std::map<std::string, json> answers; ///< human task or item -> answer

  bool empty() const {
    return !input && !definition && outputs.empty() && rerun.empty()
           && answers.empty();
  }
};

json to_json(const fork_edits& e);

/// A fork's beginning: the events of the new execution up to where it goes
/// on live, and what it reused.
struct fork_plan {
  std::vector<event> events;       ///< seq 1.., the last is execution_forked
  std::vector<std::string> reused; ///< keys whose recorded result was kept
  std::vector<std::string> edited; ///< keys given a result or answer by edits
  /// Keys that run again when the fork goes live, with their tool (or
  /// "agent:NAME", "workflow"); later tasks that depend on them run after.
  std::vector<std::pair<std::string, std::string>> to_run;
  std::vector<std::string> waiting;   ///< human tasks that will ask again
  std::vector<std::string> undecided; ///< tasks that wait for those
  std::optional<execution_info> index;
};

/// Plans a fork of `parent` (its whole recorded log) at event `at`: a new
/// execution `id` that is submitted with the parent's (or the edited) input
/// and definition and is fed, for every task whose rendered input is the
/// one the parent dispatched at or before `at`, the parent's recorded
/// result; edits replace results and answers or force re-runs (of a task,
/// or of one item of a map: the other items keep their results). The
/// marker names the fork's ancestors (`lineage`). All events get the time
/// `now_us`. Errors: errc::not_found (`at` past the log),
/// errc::invalid_input (an edit names no task of the definition, an item
/// of a task that is no map or past the map's items, an answer that does
/// not match its schema, an input that does not), and the fold's.
[[nodiscard]] expected<fork_plan> plan_fork(const std::vector<event>& parent,
                                            uint64_t at, const fork_edits& edits,
                                            const std::string& id,
                                            int64_t now_us);

/// A fork's branch of an agent log its parent used (docs/replay.md#fork):
/// the parent's own log ("agent:<parent>/...", memory scope `execution` or
/// `task`) becomes "agent:<fork>/...", a log the agent shares across
/// executions (scope `agent`, "agent:<name>") becomes "agent:<fork>/<name>".
/// It keeps the events of the parent's turns of `reused` keys (any attempt)
/// and of other executions' turns that had ended by `cut_us` (the time of
/// the fork-point event), renumbered from 1, so an agent turn that runs
/// again in the fork remembers what the agent knew at the fork point, and
/// the fork never writes a log its parent's agents use. A parent that is a
/// fork itself (`ancestors`: its fork_lineage) has its memory in its own
/// branches: a shared log is not branched again, and the turns its branch
/// took over from its ancestors count as the parent's own.
std::vector<event> branch_agent_log(const std::vector<event>& agent_log,
                                    const std::string& parent,
                                    const std::string& fork,
                                    const std::vector<std::string>& reused,
                                    int64_t cut_us,
                                    const std::vector<std::string>& ancestors
                                    = {});

/// The log of the model replies a fork's agent turns may reuse.
std::string fork_replies_log(const std::string& fork);

/// The events of fork_replies_log(fork): one "llm_recorded" {request,
/// script, response} per model call the parent's turns (and its
/// `ancestors`' turns) got an answer to in `logs` (the logs logs_of(parent)
/// names; in a shared one only those turns), and the parent's own recorded
/// replies when it is a fork, without repeats. An agent turn of the fork
/// whose request (with its agent's script) equals one of them in full takes
/// the recorded reply instead of asking the model.
std::vector<event> fork_replies(const std::vector<std::vector<event>>& logs,
                                const std::string& parent,
                                const std::string& fork, int64_t now_us,
                                const std::vector<std::string>& ancestors
                                = {});

/// The logs a fork writes in the same atomic batch as its own: its branches
/// of its parent's agent logs and its recorded replies, from `read` (the
/// logs logs_of(parent) names, as read), for a fork of `parent` at `at`.
/// Names them in the plan's execution_forked event (`logs`), so that an
/// export of the fork carries them.
std::vector<event> fork_logs(fork_plan& plan, const std::vector<event>& parent,
                             uint64_t at,
                             const std::vector<std::vector<event>>& read,
                             int64_t now_us);

/// The differences between two executions (docs/replay.md#diff).
struct execution_diff {
  /// The first seq whose events differ (type or payload; times and ids
  /// aside), or 0 when the logs are the same.
  uint64_t first_divergent_seq = 0;
  json first_a; ///< {type, payload} of A there, or null (A ended)
  json first_b;
  /// Per task id: {task, status: same|different|only_a|only_b, changes:
  /// [{pointer, a, b}] for `different`}.
  json tasks = json::array();
  json usage_a; ///< the executions' summed usage (null without agents)
  json usage_b;

  bool same() const {
    return first_divergent_seq == 0;
  }
};

/// Compares two recorded logs. Errors: the fold's, and errc::not_found for
/// an empty one.
[[nodiscard]] expected<execution_diff> diff_logs(const std::vector<event>& a,
                                                 const std::vector<event>& b);

/// diff_logs fed the two logs as they are read, a pair of events at a time
/// (`cadre diff` on a store): memory holds the two folds, not the logs.
class log_differ {
public:
  /// A diff of executions `a` and `b`.
  log_differ(const std::string& a, const std::string& b);

  /// The next event of A and of B, null for a log that has ended. Errors:
  /// the fold's.
  [[nodiscard]] expected<void> add(const event* a, const event* b);

  /// The difference of the events added so far.
  execution_diff finish() const;

private:
  machine a_;
  machine b_;
  uint64_t added_ = 0;
  execution_diff first_; // first_divergent_seq, first_a, first_b
};

/// The leaves where `a` and `b` differ, as [{pointer, a, b}] (a missing
/// side is absent from its entry). At most `limit` entries.
json json_changes(const json& a, const json& b, size_t limit = 100);

} // namespace cadre::workflow
