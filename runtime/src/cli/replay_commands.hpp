#pragma once

// The replay commands of the CLI (docs/replay.md): inspect, replay, test,
// diff, export, import and fork. Reading commands work on a read-only
// store; import and fork on a node. Private to runtime/.

#include <cstdint>
#include <iosfwd>
#include <string>
#include <vector>

#include "cadre/messages/error.hpp"
#include "cadre/messages/event.hpp"
#include "cadre/messages/execution.hpp"
#include "cadre/messages/json_value.hpp"
#include "cadre/workflow/machine.hpp"

namespace cadre::persistence {
class event_store;
} // namespace cadre::persistence

namespace cadre::runtime {
class node;
} // namespace cadre::runtime

namespace cadre::runtime::cli {

/// `cadre inspect ID [--at SEQ]`, from the newest snapshot at or before
/// the event when the store has one (store.snapshot_every).
int cmd_inspect(persistence::event_store& store, const std::string& id,
                uint64_t at, uint64_t snapshot_every, bool json_out);

/// `cadre replay ID [--against FILE]`: steps through the log (interactive
/// on a terminal) or checks it against another definition.
int cmd_replay(persistence::event_store& store, const std::string& id,
               const std::string& against, bool json_out);

/// `cadre test TARGET... [--workflows FILE...]`: every recorded execution
/// (an id in the store, an exported bundle, or a directory of bundles)
/// against the definition of its workflow among `workflows` (its recorded
/// one otherwise). `store` may be null when no target is an id.
int cmd_test(persistence::event_store* store,
             const std::vector<std::string>& targets,
             const std::vector<std::string>& workflows, bool json_out);

/// `cadre diff A B`.
int cmd_diff(persistence::event_store& store, const std::string& a,
             const std::string& b, bool json_out);

/// `cadre export ID`: the bundle as NDJSON on `out`.
int cmd_export(persistence::event_store& store, const std::string& id,
               std::ostream& out);

/// `cadre import FILE`.
int cmd_import(node& n, const std::string& file, bool json_out);

/// The exit code of a replay command that failed with `err`: exit_usage
/// for what the command line named wrong (an unknown execution or event,
/// a bad edit, file or token), exit_failed otherwise.
int replay_exit(const caf::error& err);

/// Prints `cadre inspect`'s state (execution_state): JSON, or a row per
/// task.
void print_inspect(const json& state, bool json_out);

/// Prints `cadre diff` (execution_diff): JSON, or lines.
void print_diff(const json& diff, bool json_out);

/// Prints what `cadre import` did (import_bundle's answer): JSON, or a
/// line.
void print_import(const json& result, bool json_out);

/// What `cadre fork` was asked.
struct fork_flags {
  std::string id;
  uint64_t at = 0;
  std::string input;      ///< JSON or @file
  std::string definition; ///< a workflow file
  std::vector<std::string> set;    ///< tasks.T.output=JSON
  std::vector<std::string> rerun;  ///< task ids
  std::vector<std::string> answer; ///< T=VALUE
  bool dry_run = false;
};

/// The request `cadre fork` sends; errc::invalid_input naming the flag.
[[nodiscard]] expected<fork_request> fork_request_of(const fork_flags& flags);

/// Prints a fork's plan (the executions actor's reply): JSON, or lines.
void print_fork_plan(const json& plan, bool json_out);

} // namespace cadre::runtime::cli
