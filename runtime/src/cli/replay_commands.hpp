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

/// The machine after event `at` (0: the last) of execution `id`, restored
/// from the newest snapshot at or before it when there is one. Errors:
/// errc::not_found (no such execution or event), the store's, the fold's.
[[nodiscard]] expected<workflow::machine>
machine_at(persistence::event_store& store, const std::string& id,
           uint64_t at, uint64_t snapshot_every);

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

/// An exported bundle, read back: the execution's log and the agent logs.
struct bundle {
  std::string execution;
  std::vector<std::pair<std::string, std::vector<event>>> logs;

  const std::vector<event>* log(const std::string& name) const;
};

/// Reads a bundle; errors name the file and line.
[[nodiscard]] expected<bundle> read_bundle(std::istream& in,
                                           const std::string& name);

/// Writes the bundle of execution `id`. Errors: not_found, the store's.
[[nodiscard]] expected<void> write_bundle(persistence::event_store& store,
                                          const std::string& id,
                                          std::ostream& out);

/// `cadre import FILE`.
int cmd_import(node& n, const std::string& file, bool json_out);

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
