#pragma once

// The one type-ID block of cadre: every message type and every atom, and the
// range of type IDs it reserves (docs/embedding.md#type-ids).

#include <string>
#include <vector>

#include <caf/atom.hpp>
#include <caf/type_id.hpp>

#include "cadre/messages/agent.hpp"
#include "cadre/messages/cluster.hpp"
#include "cadre/messages/error.hpp"
#include "cadre/messages/event.hpp"
#include "cadre/messages/execution.hpp"
#include "cadre/messages/json_value.hpp"
#include "cadre/messages/task.hpp"

namespace cadre {

/// First type ID of cadre's block. CAF's own modules end below
/// caf::first_custom_type_id (200), and a CAF program written after CAF's
/// examples starts its block right there, so cadre keeps 1000 IDs above it
/// free for such programs and starts at 1200. CAF 0.17 serializes by type
/// name, so the IDs appear neither in the event log nor on the wire.
constexpr caf::type_id_t first_type_id = caf::first_custom_type_id + 1000;

/// IDs reserved for cadre's block, its growth included.
constexpr caf::type_id_t reserved_type_ids = 1000;

/// The first type ID after cadre's reserved range (2200): where a program
/// that embeds cadre starts its own block,
/// `CAF_BEGIN_TYPE_ID_BLOCK(my_app, cadre::first_free_type_id)`.
constexpr caf::type_id_t first_free_type_id
  = first_type_id + reserved_type_ids;

} // namespace cadre

// The block is not named `cadre`: CAF would declare caf::id_block::cadre,
// and inside an embedder's CAF_BEGIN_TYPE_ID_BLOCK that name hides the
// namespace, so `cadre::first_free_type_id` would not compile there.
CAF_BEGIN_TYPE_ID_BLOCK(cadre_messages, cadre::first_type_id)

  CAF_ADD_TYPE_ID(cadre_messages, (cadre::json_value))
  CAF_ADD_TYPE_ID(cadre_messages, (cadre::submit_request))
  CAF_ADD_TYPE_ID(cadre_messages, (cadre::human_input))
  CAF_ADD_TYPE_ID(cadre_messages, (cadre::fork_request))
  CAF_ADD_TYPE_ID(cadre_messages, (cadre::execution_info))
  CAF_ADD_TYPE_ID(cadre_messages, (cadre::execution_filter))
  CAF_ADD_TYPE_ID(cadre_messages, (cadre::definition_record))
  CAF_ADD_TYPE_ID(cadre_messages, (cadre::task_request))
  CAF_ADD_TYPE_ID(cadre_messages, (cadre::task_result))
  CAF_ADD_TYPE_ID(cadre_messages, (cadre::event))
  CAF_ADD_TYPE_ID(cadre_messages, (cadre::append_request))
  CAF_ADD_TYPE_ID(cadre_messages, (std::vector<cadre::event>))
  CAF_ADD_TYPE_ID(cadre_messages, (std::vector<cadre::execution_info>))
  CAF_ADD_TYPE_ID(cadre_messages, (std::vector<std::string>))
  CAF_ADD_TYPE_ID(cadre_messages, (cadre::llm_request))
  CAF_ADD_TYPE_ID(cadre_messages, (cadre::llm_response))
  CAF_ADD_TYPE_ID(cadre_messages, (std::vector<cadre::json_value>))
  CAF_ADD_TYPE_ID(cadre_messages, (cadre::agent_turn))
  CAF_ADD_TYPE_ID(cadre_messages, (std::vector<cadre::definition_record>))

  // Atoms are values in CAF 0.17: one whose text equals an atom of CAF's is
  // that atom. Such texts (get, put, flush, ...) keep CAF's name and sense,
  // and none is "sys", which every CAF actor answers itself
  // (tests/messages/type_ids_test.cpp, docs/embedding.md#atoms).

  // Execution control.
  CAF_ADD_ATOM(cadre_messages, cadre, submit_atom, "submit")
  CAF_ADD_ATOM(cadre_messages, cadre, cancel_atom, "cancel")
  CAF_ADD_ATOM(cadre_messages, cadre, input_atom, "input")
  CAF_ADD_ATOM(cadre_messages, cadre, status_atom, "status")
  CAF_ADD_ATOM(cadre_messages, cadre, fork_atom, "fork")
  CAF_ADD_ATOM(cadre_messages, cadre, resume_atom, "resume")
  CAF_ADD_ATOM(cadre_messages, cadre, await_atom, "await")
  // Task dispatch and tools.
  CAF_ADD_ATOM(cadre_messages, cadre, run_atom, "run")
  CAF_ADD_ATOM(cadre_messages, cadre, describe_atom, "describe")
  // A pool's workers: one call split into parts, the parts' outputs joined.
  CAF_ADD_ATOM(cadre_messages, cadre, split_atom, "split")
  CAF_ADD_ATOM(cadre_messages, cadre, join_atom, "join")
  // A worker's word to its pool that a call delegated to it ended.
  CAF_ADD_ATOM(cadre_messages, cadre, done_atom, "done")
  // Event store.
  CAF_ADD_ATOM(cadre_messages, cadre, append_atom, "append")
  CAF_ADD_ATOM(cadre_messages, cadre, read_atom, "read")
  CAF_ADD_ATOM(cadre_messages, cadre, list_atom, "list")
  CAF_ADD_ATOM(cadre_messages, cadre, get_atom, "get")
  CAF_ADD_ATOM(cadre_messages, cadre, put_atom, "put")
  CAF_ADD_ATOM(cadre_messages, cadre, flush_atom, "flush")
  // Event bus.
  CAF_ADD_ATOM(cadre_messages, cadre, subscribe_atom, "subscribe")
  CAF_ADD_ATOM(cadre_messages, cadre, unsub_atom, "unsub")
  CAF_ADD_ATOM(cadre_messages, cadre, publish_atom, "publish")
  CAF_ADD_ATOM(cadre_messages, cadre, event_atom, "event")
  // Internal timers and supervision.
  CAF_ADD_ATOM(cadre_messages, cadre, timer_atom, "timer")
  CAF_ADD_ATOM(cadre_messages, cadre, tree_atom, "tree")
  CAF_ADD_ATOM(cadre_messages, cadre, stop_atom, "stop")
  // Supervisors (actors/supervisor.hpp).
  CAF_ADD_ATOM(cadre_messages, cadre, start_child_atom, "startchild")
  CAF_ADD_ATOM(cadre_messages, cadre, terminate_atom, "terminate")
  CAF_ADD_ATOM(cadre_messages, cadre, which_children_atom, "whichchild")
  CAF_ADD_ATOM(cadre_messages, cadre, count_children_atom, "countchild")
  CAF_ADD_ATOM(cadre_messages, cadre, restart_atom, "restart")
  CAF_ADD_ATOM(cadre_messages, cadre, delete_atom, "delete")

  // Cluster membership (docs/cluster.md).
  CAF_ADD_TYPE_ID(cadre_messages, (cadre::tool_offer))
  CAF_ADD_TYPE_ID(cadre_messages, (cadre::node_info))
  CAF_ADD_TYPE_ID(cadre_messages, (std::vector<cadre::node_info>))
  CAF_ADD_ATOM(cadre_messages, cadre, heartbeat_atom, "heartbeat")
  CAF_ADD_ATOM(cadre_messages, cadre, leave_atom, "leave")
  CAF_ADD_ATOM(cadre_messages, cadre, nodes_atom, "nodes")
  CAF_ADD_ATOM(cadre_messages, cadre, seed_atom, "seed")

CAF_END_TYPE_ID_BLOCK(cadre_messages)

static_assert(caf::id_block::cadre_messages::end <= cadre::first_free_type_id,
              "cadre's type-ID block outgrew its reserved range: raise "
              "cadre::reserved_type_ids, which moves first_free_type_id "
              "(an incompatible change for embedders, docs/embedding.md)");
