#pragma once

// The one type-ID block of cadre: every message type and every atom.

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

CAF_BEGIN_TYPE_ID_BLOCK(cadre, caf::first_custom_type_id)

  CAF_ADD_TYPE_ID(cadre, (cadre::json_value))
  CAF_ADD_TYPE_ID(cadre, (cadre::submit_request))
  CAF_ADD_TYPE_ID(cadre, (cadre::human_input))
  CAF_ADD_TYPE_ID(cadre, (cadre::fork_request))
  CAF_ADD_TYPE_ID(cadre, (cadre::execution_info))
  CAF_ADD_TYPE_ID(cadre, (cadre::execution_filter))
  CAF_ADD_TYPE_ID(cadre, (cadre::definition_record))
  CAF_ADD_TYPE_ID(cadre, (cadre::task_request))
  CAF_ADD_TYPE_ID(cadre, (cadre::task_result))
  CAF_ADD_TYPE_ID(cadre, (cadre::event))
  CAF_ADD_TYPE_ID(cadre, (cadre::append_request))
  CAF_ADD_TYPE_ID(cadre, (std::vector<cadre::event>))
  CAF_ADD_TYPE_ID(cadre, (std::vector<cadre::execution_info>))
  CAF_ADD_TYPE_ID(cadre, (std::vector<std::string>))
  CAF_ADD_TYPE_ID(cadre, (cadre::llm_request))
  CAF_ADD_TYPE_ID(cadre, (cadre::llm_response))
  CAF_ADD_TYPE_ID(cadre, (std::vector<cadre::json_value>))
  CAF_ADD_TYPE_ID(cadre, (cadre::agent_turn))
  CAF_ADD_TYPE_ID(cadre, (std::vector<cadre::definition_record>))

  // Execution control.
  CAF_ADD_ATOM(cadre, cadre, submit_atom, "submit")
  CAF_ADD_ATOM(cadre, cadre, cancel_atom, "cancel")
  CAF_ADD_ATOM(cadre, cadre, input_atom, "input")
  CAF_ADD_ATOM(cadre, cadre, status_atom, "status")
  CAF_ADD_ATOM(cadre, cadre, fork_atom, "fork")
  CAF_ADD_ATOM(cadre, cadre, resume_atom, "resume")
  CAF_ADD_ATOM(cadre, cadre, await_atom, "await")
  // Task dispatch and tools.
  CAF_ADD_ATOM(cadre, cadre, run_atom, "run")
  CAF_ADD_ATOM(cadre, cadre, describe_atom, "describe")
  // A pool's workers: one call split into parts, the parts' outputs joined.
  CAF_ADD_ATOM(cadre, cadre, split_atom, "split")
  CAF_ADD_ATOM(cadre, cadre, join_atom, "join")
  // Event store.
  CAF_ADD_ATOM(cadre, cadre, append_atom, "append")
  CAF_ADD_ATOM(cadre, cadre, read_atom, "read")
  CAF_ADD_ATOM(cadre, cadre, list_atom, "list")
  CAF_ADD_ATOM(cadre, cadre, get_atom, "get")
  CAF_ADD_ATOM(cadre, cadre, put_atom, "put")
  CAF_ADD_ATOM(cadre, cadre, flush_atom, "flush")
  // Event bus.
  CAF_ADD_ATOM(cadre, cadre, subscribe_atom, "subscribe")
  CAF_ADD_ATOM(cadre, cadre, unsub_atom, "unsub")
  CAF_ADD_ATOM(cadre, cadre, publish_atom, "publish")
  CAF_ADD_ATOM(cadre, cadre, event_atom, "event")
  // Internal timers and supervision.
  CAF_ADD_ATOM(cadre, cadre, timer_atom, "timer")
  CAF_ADD_ATOM(cadre, cadre, tree_atom, "tree")
  CAF_ADD_ATOM(cadre, cadre, stop_atom, "stop")
  // Supervisors (actors/supervisor.hpp).
  CAF_ADD_ATOM(cadre, cadre, forward_atom, "forward")
  CAF_ADD_ATOM(cadre, cadre, start_child_atom, "startchild")
  CAF_ADD_ATOM(cadre, cadre, terminate_atom, "terminate")
  CAF_ADD_ATOM(cadre, cadre, which_children_atom, "whichchild")
  CAF_ADD_ATOM(cadre, cadre, count_children_atom, "countchild")
  CAF_ADD_ATOM(cadre, cadre, restart_atom, "restart")
  CAF_ADD_ATOM(cadre, cadre, delete_atom, "delete")

  // Cluster membership (docs/cluster.md). Added last: IDs already given
  // keep their values.
  CAF_ADD_TYPE_ID(cadre, (cadre::tool_offer))
  CAF_ADD_TYPE_ID(cadre, (cadre::node_info))
  CAF_ADD_TYPE_ID(cadre, (std::vector<cadre::node_info>))
  CAF_ADD_ATOM(cadre, cadre, heartbeat_atom, "heartbeat")
  CAF_ADD_ATOM(cadre, cadre, leave_atom, "leave")
  CAF_ADD_ATOM(cadre, cadre, nodes_atom, "nodes")
  CAF_ADD_ATOM(cadre, cadre, seed_atom, "seed")

CAF_END_TYPE_ID_BLOCK(cadre)
