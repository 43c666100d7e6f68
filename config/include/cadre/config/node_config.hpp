#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "cadre/messages/error.hpp"
#include "cadre/messages/json_value.hpp"
#include "cadre/schedule/schedule.hpp"

namespace cadre::config {

/// Settings of one tool: its section `tools.<name>`, the pool's keys
/// (`workers`, `max_queue`, `enabled`) included, checked by the tool's
/// settings schema when the node starts (tools::tool_registry).
struct tool_config {
  json settings = json::object();
};

/// Where a named secret's value is read from (`secrets.<name>`): exactly
/// one of an environment variable and a file. runtime/ reads it when the
/// node starts; the value never enters the config.
struct secret_source {
  /// Name of the environment variable. Default: ""
  std::string env;
  /// Path of the file (relative to the config file's directory); one
  /// trailing newline is dropped. Default: ""
  std::string file;
};

/// Everything a node is configured with (docs/operations.md). Defaults are
/// the embedded ones; a file, then CADRE_* variables, then flags override.
struct node_config {
  /// The config file the settings were read from, which errors found later
  /// (a tool's settings at node start) name. Default: "" (none)
  std::string source;
  /// Event store directory. Default: ".cadre"
  std::string store_dir = ".cadre";
  /// fsync each group commit. Default: false (wal mode)
  bool store_sync = false;
  /// A snapshot of an execution's state every this many events, so
  /// inspect and recovery read at most that many past one
  /// (docs/replay.md#snapshots); 0: none. Default: 1000
  uint64_t snapshot_every = 1000;
  /// How long an append to the store may go unanswered before the writer
  /// gives up on it (a coordinator, an agent or the schedules actor stops
  /// and restarts from its log; a fork fails): `store.append_deadline`.
  /// Default: 60000 (actors::local_deadline)
  int64_t append_deadline_ms = 60000;
  /// Workers per tool pool when a tool sets none. Default: 2
  size_t default_workers = 2;
  /// Per-tool settings by tool name.
  std::map<std::string, tool_config> tools;
  /// Coordinator restarts within the window before an execution is left
  /// for `cadre resume`. Default: 5 in 10000 ms
  size_t max_restarts = 5;
  int64_t restart_window_ms = 10000;
  /// Starts of the node that may dispatch one running attempt again before
  /// it is parked as failed with crash_loop; 0: no limit. Default: 3
  uint32_t crash_loop_limit = 3;
  /// CAF scheduler threads; 0: CAF's default (one per core, at least 4).
  /// Default: 0
  size_t scheduler_threads = 0;
  /// Times an idle scheduler thread polls for work before it sleeps (CAF's
  /// `work-stealing.aggressive-poll-attempts`): a short spin after work, as
  /// Erlang's schedulers busy-wait, spares waking a sleeping thread for the
  /// next message (docs/operations.md#scheduler). Default: 5000
  size_t scheduler_spin_polls = 5000;
  /// The `llm` section as JSON: `profiles` (LLM provider profiles by
  /// name), `cache` (answer identical requests from the response
  /// cache) and `max_finished_turns` (finished turns an agent keeps the
  /// answer of). Read by runtime/. Default: {}
  json llm = json::object();
  /// The `agents` section as JSON: agent specs by name (docs/agents.md).
  /// Default: {}
  json agents = json::object();
  /// The `server` section as JSON (`cadre serve`: listen address, tokens,
  /// limits; docs/operations.md). Read by runtime/. Default: {}
  json server = json::object();
  /// The `cluster` section as JSON (listen address, seeds, failure
  /// detector; docs/cluster.md). Read by runtime/. Default: {}
  json cluster = json::object();
  /// The `log` section as JSON (`level`, `format`). Read by runtime/.
  /// Default: {}
  json log = json::object();
  /// The `schedules` section: workflows `cadre serve` runs on a schedule
  /// (docs/operations.md#schedules), each checked as it is read; a relative
  /// `workflow` path is resolved against the config file's directory.
  /// Default: none
  std::vector<schedule::spec> schedules;
  /// The `secrets` section: named secrets that tool inputs refer to as
  /// "{{ secrets.NAME }}" (docs/operations.md#secrets). Default: none
  std::map<std::string, secret_source> secrets;
};

/// Reads a YAML config file over the defaults. Errors name the file, line
/// and key, e.g. "cadre.yaml:4:3: store.sync: expected true or false".
[[nodiscard]] expected<node_config> load_file(const std::string& path,
                                              node_config base = {});

/// Applies CADRE_STORE_DIR, CADRE_STORE_SYNC, CADRE_WORKERS,
/// CADRE_SCHEDULER_THREADS and the LLM variables CADRE_LLM_KIND (anthropic,
/// ollama, openai or scripted), CADRE_LLM_BASE_URL, CADRE_LLM_MODEL,
/// CADRE_LLM_API_KEY_ENV (the name of the variable holding the key) and
/// CADRE_LLM_TIMEOUT, which set or override `llm.profiles.default`: a kind
/// other than the file's replaces that profile, the others override its
/// keys. An empty LLM variable counts as unset. Errors name the variable,
/// e.g. "CADRE_LLM_KIND: unknown provider 'opnai' (known: ...)".
[[nodiscard]] expected<node_config> apply_environment(node_config cfg);

} // namespace cadre::config
