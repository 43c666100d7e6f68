#pragma once

// Cluster membership: what a node tells the others about itself
// (docs/cluster.md).

#include <cstdint>
#include <string>
#include <vector>

#include <caf/actor.hpp>
#include <caf/meta/type_name.hpp>

#include "cadre/messages/json_value.hpp"

namespace cadre {

/// One tool pool a node offers to the cluster. `pool` answers the
/// tool_pool_actor interface; a handle may be remote.
struct tool_offer {
  std::string name;
  caf::actor pool;
  uint32_t workers = 0;
  /// Calls running or waiting in the pool when the offer was made.
  uint32_t load = 0;
  /// The address-less member (an outside CAF program) whose pool `pool`
  /// relays; empty when the offering node runs the pool itself.
  std::string relayed_from;
};

template <class Inspector>
auto inspect(Inspector& f, tool_offer& x) {
  return f(caf::meta::type_name("tool_offer"), x.name, x.pool, x.workers,
           x.load, x.relayed_from);
}

/// A node as it describes itself in joins and heartbeats. Handles are
/// typed by their interfaces.hpp names and may be remote.
struct node_info {
  /// Unique in the cluster (`--node-name`).
  std::string name;
  /// The node's start time in microseconds: a restarted node is a new
  /// member, and a stale incarnation's messages are ignored.
  uint64_t incarnation = 0;
  /// host:port of its cluster listener.
  std::string address;
  /// Its member actor (member_actor).
  caf::actor member;
  /// Its entry point for executions (executions_actor) and its event bus
  /// (event_bus_actor), for programs that integrate at the message level.
  caf::actor executions;
  caf::actor bus;
  std::vector<tool_offer> tools;
  /// Agent names of its config and LLM profile names.
  std::vector<std::string> agents;
  std::vector<std::string> profiles;
  /// Calls running or waiting in all of its pools.
  uint64_t load = 0;
  /// 1 when it is leaving (SIGTERM): others place nothing new on it.
  uint8_t leaving = 0;
  /// Its HTTP API (`cadre serve`), where requests for the executions it
  /// owns are sent; empty when it serves none.
  std::string url;
};

template <class Inspector>
auto inspect(Inspector& f, node_info& x) {
  return f(caf::meta::type_name("node_info"), x.name, x.incarnation,
           x.address, x.member, x.executions, x.bus, x.tools, x.agents,
           x.profiles, x.load, x.leaving, x.url);
}

} // namespace cadre
