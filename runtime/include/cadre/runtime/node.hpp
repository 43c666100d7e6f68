#pragma once

#include <map>
#include <memory>
#include <string>
#include <vector>

#include <caf/fwd.hpp>

#include "cadre/actors/supervisor.hpp"
#include "cadre/config/node_config.hpp"
#include "cadre/runtime/cluster_options.hpp"
#include "cadre/messages/interfaces.hpp"
#include "cadre/tools/tool_registry.hpp"

namespace cadre::tools {
class tool_registry;
} // namespace cadre::tools

namespace cadre::actors {
class metric_registry;
} // namespace cadre::actors

namespace cadre::runtime {

/// How a node starts.
struct start_options {
  /// Resume every unfinished execution in the store. `cadre serve` and
  /// `cadre resume` do; an embedded command runs (and recovers on demand)
  /// only the executions it touches, so it never repeats the side effects
  /// of unrelated executions. Default: true
  bool resume_all = true;
  /// What the store's holder file names as the process holding the store,
  /// e.g. "cadre run"; see store_holder.hpp. Default: "cadre"
  std::string holder = "cadre";
  /// The server's URL for the holder file, when there is one. Default: ""
  std::string url;
  /// Run the config's schedules (`cadre serve`); an embedded command never
  /// fires them. Their workflows are read and checked at start.
  /// Default: false
  bool schedules = false;
  /// Join a cluster (`cadre serve --cluster-listen`); disabled: a node
  /// alone, without CAF's network layer. Default: disabled
  cluster_options cluster;
  /// Tools of the embedding program, by name, registered beside the
  /// built-in ones (tools/src/builtin_tools.def): each gets a pool and its
  /// `tools.<name>` settings from the config, checked by its settings
  /// schema when one is given, and workflows and agents call it like a
  /// built-in tool (docs/embedding.md#adding-a-tool-in-process).
  /// A name that is built in or not a tool name, or a schema that does not
  /// compile, fails the start with errc::invalid_config. Default: none
  std::map<std::string, tools::extra_tool> extra_tools;
};

/// A running cadre node: the actor system, the event store and every actor
/// of the node's tree. Destroying it stops the node (ordered shutdown).
///
/// Thread safety: the accessors may be called from any thread.
class node {
public:
  ~node();

  /// Opens the store, spawns the node's actors and, with
  /// `opts.resume_all`, resumes every unfinished execution in the store.
  /// Errors: errc::storage_error (store; naming the process that holds it
  /// when another one does), errc::invalid_config (a tool's settings, a
  /// schedule's workflow), each naming what failed.
  [[nodiscard]] static expected<std::unique_ptr<node>>
  start(const config::node_config& cfg, start_options opts = {});

  caf::actor_system& system();
  executions_actor executions() const;
  event_bus_actor bus() const;
  event_store_actor store() const;
  /// The node's counters (LLM calls, tokens and cost, agent turns and tool
  /// calls; docs/metrics.md).
  actors::metric_registry& metrics() const;
  /// The agents actor (turns, and each agent's memory by agent id).
  agents_actor agents() const;
  /// The schedules actor; invalid unless the node runs schedules
  /// (start_options::schedules and at least one configured).
  schedules_actor schedules() const;
  /// The node's member of the cluster; invalid without a cluster.
  member_actor member() const;
  /// The cluster's members as this node sees them (GET /v1/nodes): name,
  /// address, state, incarnation, self, tools, agents, profiles, load,
  /// uptime_s, last_heard_ms. Without a cluster: this node alone.
  json nodes();
  /// The URL of this node's HTTP API once it is bound: the other members
  /// send requests for this node's executions there.
  void advertise_url(const std::string& url);
  /// This node's name in the cluster; "" without a cluster.
  const std::string& node_name() const;
  /// Tells the other members this node leaves (before a graceful stop);
  /// waits at most a few seconds. Nothing without a cluster.
  void leave_cluster();
  /// The root of the node's supervision tree.
  actors::supervisor_actor root() const;
  const tools::tool_registry& registry() const;
  /// The pool of tool `name`, or an invalid handle.
  tool_pool_actor pool(const std::string& name) const;
  /// Names of the tools this node can call: its own and, in a cluster,
  /// those other members offer.
  std::vector<std::string> tool_names() const;
  /// {name, description, input_schema, output_schema, blocking, workers...}
  /// per tool.
  json describe_tools();
  /// The node's live supervision tree as JSON (see
  /// actors::supervisor_actor's which_children).
  json tree();
  /// Executions resumed at start.
  const std::vector<std::string>& resumed() const;
  /// The config the node was started with.
  const config::node_config& config() const;
  /// True while the supervision tree runs (the root and the executions
  /// actor are alive).
  bool running() const;

  struct impl;

private:
  explicit node(std::unique_ptr<impl> ptr);
  std::unique_ptr<impl> impl_;
};

} // namespace cadre::runtime
