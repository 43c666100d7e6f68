#pragma once

// Factory functions for cadre's actors. The node (runtime/) wires them into
// its supervision tree; tests spawn them alone.

#include <chrono>
#include <cstddef>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include <caf/fwd.hpp>

#include "cadre/actors/deadlines.hpp"
#include "cadre/actors/member_directory.hpp"
#include "cadre/actors/tool_directory.hpp"
#include "cadre/messages/interfaces.hpp"
#include "cadre/tools/llm/provider.hpp"

namespace cadre::persistence {
class event_store;
} // namespace cadre::persistence

namespace cadre::tools {
class secret_store;
class tool_registry;
} // namespace cadre::tools

namespace cadre::actors {

class metric_registry;

/// How a tool pool runs its workers.
struct pool_options {
  /// Workers, i.e. calls of this tool that run at once. Default: 2
  size_t workers = 2;
  /// Calls waiting for a free worker; a call past it fails at once with
  /// errc::overloaded (a task retries it per its policy). Large enough for
  /// a workflow's whole fan-out, small enough to bound memory.
  /// Default: 65536
  size_t max_queue = 65536;
  /// The node's secrets: filled into the strings of a call's input that
  /// its workflow marked (task_request::secret_pointers), and redacted
  /// from every error and output a worker returns. Default: none
  std::shared_ptr<const tools::secret_store> secrets;
};


/// Spawns the event store actor. It runs detached (its own thread), so
/// RocksDB writes and fsync never block CAF's scheduler threads. Appends that
/// arrive together are written as one group; each is acknowledged after the
/// write returned. Appended events are then published on `bus`.
event_store_actor
spawn_event_store(caf::actor_system& sys,
                  std::shared_ptr<persistence::event_store> store,
                  event_bus_actor bus);

/// Spawns the event bus.
event_bus_actor spawn_event_bus(caf::actor_system& sys);

/// Spawns the pool of tool `name`: `opts.workers` workers, each holding its
/// own instance made by the registry's factory with `settings`. Workers of
/// blocking tools are detached actors. A worker that throws or dies fails
/// only its call (errc::worker_crashed) and is replaced by a fresh one; a
/// call past its deadline is failed with errc::timeout and its worker is
/// abandoned (cancel flag set) and replaced.
/// Errors: the factory's error (e.g. a bad setting).
[[nodiscard]] caf::expected<tool_pool_actor>
spawn_tool_pool(caf::actor_system& sys, const tools::tool_registry& registry,
                const std::string& name, const json_value& settings,
                pool_options opts);

/// How executions run.
struct executions_options {
  /// Restarts of one coordinator within `restart_window_ms` before its
  /// execution is left unfinished (for `cadre resume`). Default: 5
  size_t max_restarts = 5;
  /// Default: 10000
  int64_t restart_window_ms = 10000;
  /// Where task outcomes are counted (cadre_tasks_total{outcome}).
  /// Default: none (not counted)
  std::shared_ptr<metric_registry> metrics;
  /// Appended to every new execution id (".<node name>" in a cluster), so
  /// any node can tell which one owns an execution. Default: none
  std::string id_suffix;
  /// A snapshot of the state every this many events (0: none).
  /// Default: 1000
  uint64_t snapshot_every = 1000;
  /// Starts that may dispatch one running attempt again before it is
  /// parked with crash_loop (workflow::machine::resume); 0: no limit.
  /// Default: 3
  uint32_t crash_loop_limit = 3;
  /// How long an append to the store (a coordinator's, a fork's) may go
  /// unanswered: then a coordinator stops (restarted from its log) and its
  /// waiting requests, or the fork, fail with errc::unavailable.
  /// Default: local_deadline (store.append_deadline)
  std::chrono::milliseconds append_deadline = local_deadline;
  /// The names of the node's secrets, so a submission that names another
  /// is refused at its place. Default: none (any name passes; the tool
  /// worker checks when the task runs)
  std::shared_ptr<const std::vector<std::string>> secret_names;
  /// The cluster's members as this node's member sees them: a request for
  /// an execution another node owns (its id ends in ".<that node>") goes
  /// to that node's executions actor and its answer comes back through
  /// this one. Default: none (every execution is this node's)
  std::shared_ptr<const member_directory> owners;
};

/// Spawns the executions actor: the entry point for submissions and the
/// supervisor of one coordinator per running execution. A crashed
/// coordinator is restarted from its log; messages for it wait meanwhile.
executions_actor
spawn_executions(caf::actor_system& sys, event_store_actor store,
                 event_bus_actor bus,
                 std::shared_ptr<const tool_directory> tools,
                 executions_options opts);

/// The same, running agent tasks on `agents`.
executions_actor
spawn_executions(caf::actor_system& sys, event_store_actor store,
                 event_bus_actor bus,
                 std::shared_ptr<const tool_directory> tools,
                 agents_actor agents, executions_options opts);

/// Makes the provider of a profile; tests put a provider of their own here.
using provider_factory
  = std::function<expected<std::unique_ptr<tools::llm::provider>>(
    const tools::llm::profile&)>;

/// How agents run (docs/agents.md).
struct agents_options {
  /// LLM profiles by name. A missing "default" is a scripted profile
  /// without a script. Default: none
  std::map<std::string, tools::llm::profile> profiles;
  /// Agents of the node config by name (agent specs as JSON). Default: none
  json agents = json::object();
  /// Answer an LLM request identical to one answered before from the
  /// response cache (log "llmcache:<hash>") instead of the provider.
  /// Default: false
  bool cache = false;
  /// Default: tools::llm::make_provider
  provider_factory make_provider;
  /// Restarts of one agent within `restart_window_ms` before its turns
  /// fail with errc::unavailable. Default: 5 in 10000 ms
  size_t max_restarts = 5;
  int64_t restart_window_ms = 10000;
  /// Turns waiting for one agent id while it runs another; past it a turn
  /// fails with errc::overloaded. Default: 1024
  size_t max_queued_turns = 1024;
  /// Finished turns of one agent id whose answer it keeps, for a turn
  /// asked for again (docs/agents.md#replay-and-resume); the keys of the
  /// 16 times as many before them are kept to refuse those turns.
  /// Default: 1024 (workflow::default_max_finished_turns)
  size_t max_finished_turns = 1024;
  /// An agent without turns for this long stops (its memory stays in its
  /// log). Default: 60 s
  std::chrono::milliseconds idle_timeout = std::chrono::seconds{60};
  /// An agent whose append goes unanswered this long stops with
  /// errc::unavailable and restarts from its log.
  /// Default: local_deadline (store.append_deadline)
  std::chrono::milliseconds append_deadline = local_deadline;
  /// Where LLM calls, tokens, cost, turns and tool calls are counted
  /// (docs/metrics.md). Default: none (not counted)
  std::shared_ptr<metric_registry> metrics;
};

/// Spawns the agents actor: the entry point for agent turns and the
/// supervisor of one agent actor per agent id. An agent appends every LLM
/// request and reply and every tool call and result to its log before
/// acting on it, recovers its memory from the log when it starts, and
/// resumes an unfinished turn without repeating what the log records.
/// LLM calls run in a detached worker per agent; tool calls go to `tools`
/// in parallel. A crashed agent is restarted and its turns re-sent.
agents_actor spawn_agents(caf::actor_system& sys, event_store_actor store,
                          event_bus_actor bus,
                          std::shared_ptr<const tool_directory> tools,
                          agents_options opts);

} // namespace cadre::actors
