#pragma once

// The node's member of the cluster (docs/cluster.md): joins the seeds,
// keeps the member list (cluster::membership) from joins, heartbeats and
// lost links, and keeps the tool directory current with what each member
// offers.

#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include <caf/fwd.hpp>

#include "cadre/actors/member_directory.hpp"
#include "cadre/actors/tool_directory.hpp"
#include "cadre/cluster/membership.hpp"
#include "cadre/messages/interfaces.hpp"

namespace cadre::actors {

class metric_registry;

struct member_options {
  /// Unique in the cluster.
  std::string name;
  /// This start of the node (microseconds since the epoch).
  uint64_t incarnation = 0;
  /// host:port others reach this node's cluster listener at.
  std::string address;
  /// This node's HTTP API, told to the others. Default: none
  std::string url;
  /// host:port of members to join; this node's own address is skipped.
  std::vector<std::string> seeds;
  /// How often members hear from each other. Default: 500 ms
  std::chrono::milliseconds heartbeat_interval{500};
  /// Backoff of a failed connection to a seed or lost member.
  /// Default: 500 ms doubling to 10 s
  std::chrono::milliseconds retry_min{500};
  std::chrono::milliseconds retry_max{10000};
  cluster::membership_options membership;
  /// Updated with what the members offer; its local pools are offered.
  std::shared_ptr<tool_directory> directory;
  /// CAF's middleman actor (caf::io::middleman::actor_handle()), through
  /// which the member connects to others.
  caf::actor connector;
  /// Updated with each member's executions actor and state, so requests
  /// for another node's execution reach its owner. Default: none
  std::shared_ptr<member_directory> owners;
  executions_actor executions;
  event_bus_actor bus;
  std::vector<std::string> agents;
  std::vector<std::string> profiles;
  /// Counts transitions (cadre_cluster_transitions_total{to}). Default: none
  std::shared_ptr<metric_registry> metrics;
};

/// Spawns the member. It publishes membership changes on `bus` as node
/// events (execution id ""): member_up, member_suspect, member_down,
/// member_left.
member_actor spawn_member(caf::actor_system& sys, member_options opts);

} // namespace cadre::actors
