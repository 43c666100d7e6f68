#pragma once

// Typed actor handles: what each of cadre's actors answers. Sending a message
// that is not listed here is a compile error.

#include <cstdint>
#include <string>
#include <vector>

#include <caf/actor.hpp>
#include <caf/replies_to.hpp>
#include <caf/typed_actor.hpp>

#include "cadre/messages/json_value.hpp"
#include "cadre/messages/type_ids.hpp"

namespace cadre {

/// The durable log. Appends are group-committed and acknowledged only after
/// RocksDB's write returned (and fsync'd, in sync mode).
using event_store_actor = caf::typed_actor<
  // -> the last sequence number written for the first event's execution.
  caf::replies_to<append_atom, append_request>::with<uint64_t>,
  // (execution id, first seq, max count; 0 = all) -> events in seq order.
  caf::replies_to<read_atom, std::string, uint64_t, uint64_t>::with<
    std::vector<event>>,
  // (execution id) -> its last sequence number, 0 when it has no events.
  caf::replies_to<get_atom, read_atom, std::string>::with<uint64_t>,
  caf::replies_to<list_atom, execution_filter>::with<
    std::vector<execution_info>>,
  caf::replies_to<get_atom, std::string>::with<execution_info>,
  // Idempotency key -> execution id, or "" when the key is unknown.
  caf::replies_to<get_atom, submit_atom, std::string>::with<std::string>,
  caf::replies_to<put_atom, definition_record>::with<bool>,
  // (name, version; empty = latest) -> the definition.
  caf::replies_to<get_atom, std::string, std::string>::with<
    definition_record>,
  // (list_atom, put_atom, name; "" = all) -> name and version of each
  // stored definition, documents left null.
  caf::replies_to<list_atom, put_atom, std::string>::with<
    std::vector<definition_record>>,
  // (name) -> how many versions were removed.
  caf::replies_to<delete_atom, std::string>::with<uint64_t>,
  // (log name) -> how many events were removed: the log of a failed
  // import (event_store::erase_unindexed; never an indexed execution).
  caf::replies_to<delete_atom, read_atom, std::string>::with<uint64_t>>;

/// Receives published events.
using event_sink_actor
  = caf::typed_actor<caf::reacts_to<event_atom, std::vector<event>>>;

/// Fans events out to subscribers, per execution id or ("") for all.
using event_bus_actor = caf::typed_actor<
  caf::reacts_to<subscribe_atom, std::string, event_sink_actor>,
  caf::reacts_to<unsub_atom, std::string, event_sink_actor>,
  caf::reacts_to<publish_atom, std::vector<event>>>;

/// The pool of workers of one tool.
using tool_pool_actor = caf::typed_actor<
  caf::replies_to<run_atom, task_request>::with<task_result>,
  // -> {name, description, input_schema, output_schema, blocking, splits,
  // side_effects, workers, busy, queued, ...}
  caf::replies_to<describe_atom>::with<json_value>>;

/// Whether the tool a pool's describe answer `described` is about has side
/// effects: its `side_effects`, true unless it is false, so that a pool
/// that does not say (a node of an earlier version) or says something else
/// counts as changing something outside. What agents and fork plans read.
inline bool described_side_effects(const json& described) {
  auto it = described.find("side_effects");
  return it == described.end() || !it->is_boolean() || it->get<bool>();
}

/// The node's agents: one actor per agent id, each with its memory
/// recovered from its log ("agent:<agent id>").
using agents_actor = caf::typed_actor<
  // Runs (or resumes, or replays) one turn -> the final answer, usage.
  caf::replies_to<run_atom, agent_turn>::with<task_result>,
  // (agent id) -> {agent_id, log, messages, turns}: the memory as folded
  // from the log. Errors: not_found when the agent has no log.
  caf::replies_to<get_atom, std::string>::with<json_value>>;

/// One execution's coordinator.
using coordinator_actor = caf::typed_actor<
  // Starts a new execution; answers its id once the submission is durable.
  caf::replies_to<submit_atom, submit_request>::with<std::string>,
  // Input and cancel answer the sequence number of the event that recorded
  // them, once it is durable.
  caf::replies_to<input_atom, std::string, json_value>::with<uint64_t>,
  caf::replies_to<cancel_atom>::with<uint64_t>,
  caf::replies_to<status_atom>::with<execution_info>,
  // Answers once the execution has finished.
  caf::replies_to<await_atom>::with<execution_info>>;

/// The node's entry point for executions: owns the coordinators.
using executions_actor = caf::typed_actor<
  caf::replies_to<submit_atom, submit_request>::with<std::string>,
  // -> the sequence number of the event recording the answer, once it is
  // durable. Errors: conflict (already answered, or finished), not_found
  // (no such execution or waiting task), invalid_input (schema mismatch).
  caf::replies_to<input_atom, human_input>::with<uint64_t>,
  caf::replies_to<cancel_atom, std::string>::with<bool>,
  caf::replies_to<status_atom, std::string>::with<execution_info>,
  caf::replies_to<await_atom, std::string>::with<execution_info>,
  // -> the fork's plan ({id, parent, at, reused, edited, to_run, waiting,
  // undecided, status}); with dry_run nothing is written. Errors:
  // not_found (no such execution or event), invalid_input (an edit).
  caf::replies_to<fork_atom, fork_request>::with<json_value>,
  // Starts a coordinator for every unfinished execution in the store.
  caf::replies_to<resume_atom>::with<std::vector<std::string>>,
  // (execution id) -> its running coordinator (a coordinator_actor), for
  // programs that talk to it directly. Errors: not_found when the execution
  // has no running coordinator.
  caf::replies_to<get_atom, std::string>::with<caf::actor>>;

/// The node's schedules (`cadre serve`, docs/operations.md#schedules):
/// fires each configured workflow on time, recording each firing in the
/// schedule's log ("schedule:<name>") before it submits the execution.
using schedules_actor = caf::typed_actor<
  // The events of executions it waits for (it is an event_sink_actor).
  caf::reacts_to<event_atom, std::vector<event>>,
  // -> [{name, workflow, every_ms | cron, missed, overlap, next_due_us,
  // last, queued?, ...}]: each schedule as it stands (schedule::machine::
  // view), in name order.
  caf::replies_to<list_atom>::with<json_value>>;

/// A node's member of the cluster (docs/cluster.md), published on its
/// cluster listener: peers and outside CAF programs connect to that port
/// and get this handle.
using member_actor = caf::typed_actor<
  // A node announces itself -> every member this node has heard from,
  // itself first (handles included).
  caf::replies_to<join_atom, node_info>::with<std::vector<node_info>>,
  // A member's periodic word: its load and what it offers.
  caf::reacts_to<heartbeat_atom, node_info>,
  // (name, incarnation): that member leaves gracefully.
  caf::reacts_to<leave_atom, std::string, uint64_t>,
  // -> [{name, address, state, incarnation, self, tools, agents, profiles,
  // load, uptime_s, last_heard_ms}]: the member list as this node sees it.
  caf::replies_to<get_atom, nodes_atom>::with<json_value>,
  // -> this node's own node_info: its entry points (executions actor,
  // event bus) for programs that integrate at the message level.
  caf::replies_to<get_atom>::with<node_info>,
  // This node leaves: the others are told, nothing new is placed on it.
  caf::replies_to<leave_atom>::with<bool>,
  // Sets the URL of this node's HTTP API, told to the others.
  caf::reacts_to<put_atom, std::string>>;

} // namespace cadre
