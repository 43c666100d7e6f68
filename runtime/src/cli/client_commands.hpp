#pragma once

// The `cadre` commands that talk to `cadre serve` over its HTTP API when
// `--server URL` (or CADRE_SERVER) is given: run, executions, events,
// input, cancel, tools, tool, tree, schedules, inspect, agent, diff,
// export, import and fork, with the same output and exit codes as on an embedded
// node or a local store. Private to runtime/.

#include <cstdint>
#include <optional>
#include <string>

#include "replay_commands.hpp"

namespace cadre::runtime::cli {

/// A parsed command line, as far as the client versions of the commands
/// need it.
struct client_command {
  /// The subcommand: "run", "events", ...
  std::string name;
  /// --server; "" means CADRE_SERVER.
  std::string server;
  bool json_out = false;
  /// run, input: where to write the server's counters at the end.
  std::string metrics_file;
  /// run: the workflow file, --input and --idempotency-key; tool: --input;
  /// import: the bundle.
  std::string file;
  std::string input;
  std::string idempotency_key;
  /// executions --status.
  std::string status;
  /// events, input, cancel, inspect, diff, export: the execution (agent:
  /// the agent id); events
  /// --from and --follow; inspect --at; diff: the other execution.
  std::string id;
  uint64_t at = 0;
  std::string other;
  uint64_t from = 1;
  bool follow = false;
  /// input: the task and the answer (JSON or a bare string).
  std::string task;
  std::string value;
  /// tool: its name and --timeout-ms.
  std::string tool;
  int64_t timeout_ms = 0;
  /// fork: its flags.
  fork_flags fork;
};

/// The server to talk to: `flag` if not empty, else CADRE_SERVER; "" for
/// none (an embedded node).
std::string server_url(const std::string& flag);

/// Runs `cmd` on the server when there is one (server_url) and the command
/// has a client version; returns its exit code, or nullopt when the command
/// runs locally (no server, `validate`, `serve` and any other command
/// without a client version). The bearer token comes from CADRE_TOKEN.
std::optional<int> run_on_server(const client_command& cmd);

} // namespace cadre::runtime::cli
