#pragma once

// The workflow definition model (docs/workflows.md), its parser and
// validator.

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "cadre/messages/duration.hpp"
#include "cadre/messages/error.hpp"
#include "cadre/messages/json_value.hpp"

namespace cadre::workflow {

/// How a failed task attempt is retried.
struct retry_policy {
  /// Attempts in all, the first included. Default: 1 (no retry)
  uint32_t max_attempts = 1;
  /// Delay before the second attempt, in ms. Default: 1000
  int64_t initial_backoff_ms = 1000;
  /// Factor applied per further attempt. Default: 2.0
  double multiplier = 2.0;
  /// Upper bound of one delay, in ms. Default: 60000
  int64_t max_backoff_ms = 60000;
  /// Each delay is scaled by a random factor in [1 - jitter, 1 + jitter];
  /// the drawn delay is recorded as an event, so replay stays exact.
  /// Default: 0.1
  double jitter = 0.1;
  /// Error codes (errc names such as "tool_failed", "timeout",
  /// "worker_crashed") that are retried. Empty: every code except
  /// invalid_input and cancelled. Default: empty
  std::vector<std::string> retry_on;
};

enum class task_kind { tool, human, map, workflow, agent };

enum class failure_action {
  fail,     ///< the execution fails (default)
  proceed,  ///< the task counts as done with output null ("continue")
  fallback, ///< the task named by `fallback` runs; its output stands in
};

/// Where a node of the document was written (0 when unknown).
struct source_location {
  int line = 0;   ///< 1-based
  int column = 0; ///< 1-based
};

struct task_def {
  std::string id;
  task_kind kind = task_kind::tool;
  /// kind tool, and kind map (the tool run per item).
  std::string tool;
  /// Input template over `input`, `tasks.<id>.output` and (in a map) `item`
  /// and `index`.
  json input = json::object();
  std::vector<std::string> depends_on;
  /// Lua expression; the task is skipped (output null) when false.
  std::string when;
  retry_policy retry;
  /// Timeout of one attempt, in ms; 0: none.
  int64_t timeout_ms = 0;
  failure_action on_failure = failure_action::fail;
  /// Task id run instead when on_failure is fallback. The fallback task must
  /// not be reachable otherwise (it has no depends_on of its own).
  std::string fallback;
  /// kind human: what the person is asked (a template), and an optional JSON
  /// Schema the answer must satisfy.
  json prompt;
  json answer_schema;
  /// kind map: Lua expression yielding the list; at most `concurrency` items
  /// run at once (0: all).
  std::string items;
  uint32_t concurrency = 0;
  /// kind map: what runs per item, a tool (`tool`), an agent turn (`agent`),
  /// a person's answer (`prompt`) or a sub-workflow (`workflow`).
  task_kind item_kind = task_kind::tool;
  /// kind workflow, and kind map of sub-workflows: the sub-workflow's
  /// document (inline, already validated).
  json workflow;
  /// One of the workflow's `on_failure` tasks: it runs only once the
  /// execution has failed (docs/workflows.md#failure-hooks).
  bool hook = false;
  /// kind agent: the agent's name (the workflow's `agents:` or the node's).
  std::string agent;
  /// JSON pointer of this task in the document, e.g. "/tasks/2".
  std::string pointer;
  source_location where;
  /// JSON pointers, within `input`, of the strings that hold
  /// "{{ secrets.NAME }}" (kind tool and map only); the tool worker fills
  /// in the values there (set by validation).
  std::vector<std::string> secret_pointers;

  /// What one unit of the task runs: the item kind of a map, else the kind.
  task_kind unit_kind() const {
    return kind == task_kind::map ? item_kind : kind;
  }
};

/// A validated workflow definition. Tasks are in document order, the
/// workflow's `on_failure` tasks (`hook`) after them; every depends_on
/// names a task of this definition and the graph is acyclic.
struct definition {
  std::string name;
  std::string version = "1";
  std::string description;
  /// JSON Schema the submitted input must satisfy (null: anything).
  json input_schema;
  std::vector<task_def> tasks;
  /// Output template; null: an object of every task's output by id.
  json output;
  /// Execution timeout in ms; 0: none.
  int64_t timeout_ms = 0;
  /// Agents defined by the workflow, by name (checked agent specs, see
  /// agent_spec.hpp).
  std::map<std::string, json> agents;
  /// The document as written (stored in the log so replays never depend on
  /// the file again).
  json document;

  /// Index of task `id` in `tasks`, or -1.
  int index_of(const std::string& id) const;
};

/// One problem found in a document.
struct diagnostic {
  std::string file;
  source_location where;
  std::string pointer; ///< JSON pointer, "" for the document
  std::string message;

  /// "file:line:column: pointer: message", leaving out unknown parts.
  std::string to_string() const;
};

/// What validation needs to know about the node.
struct validation_context {
  /// True when a tool of that name is registered. Unset: any name passes.
  std::function<bool(const std::string&)> tool_exists;
  /// True when the node defines an agent of that name (config `agents:`).
  /// Unset: any name passes (the node checks when the task runs).
  std::function<bool(const std::string&)> agent_exists;
  /// True when the node defines a secret of that name (config `secrets:`).
  /// Unset: any name passes (the tool worker checks when the task runs).
  std::function<bool(const std::string&)> secret_exists;
};

/// The result of parsing: a definition when `errors` is empty.
struct parse_result {
  std::optional<definition> def;
  std::vector<diagnostic> errors;
};

/// Parses JSON or YAML text (JSON is read as YAML flow style, so both carry
/// line and column) and validates it. Collects every error, not just the
/// first: syntax, unknown keys, wrong types, unknown tools, unknown task
/// references, a dependency cycle (named by its path "a -> b -> a"), Lua
/// expressions that do not compile (with Lua's message).
parse_result parse_text(const std::string& text, const std::string& file,
                        const validation_context& ctx);

/// Reads `path` and calls parse_text. A missing file is one diagnostic.
parse_result parse_file(const std::string& path,
                        const validation_context& ctx);

/// Validates an already parsed document (a submission over the wire);
/// diagnostics carry JSON pointers but no line numbers.
parse_result parse_document(const json& doc, const validation_context& ctx);

/// parse_document for a document that must be valid (a recorded or
/// submitted one): errc::invalid_workflow listing every diagnostic.
[[nodiscard]] expected<definition> load_document(const json& doc);

/// "tool", "human", "map", "workflow" or "agent".
const char* kind_name(task_kind k);

/// Checks `value` against the JSON Schema `schema` (drafts 4, 6, 7).
/// Errors: errc::invalid_input listing each failure with its JSON pointer.
[[nodiscard]] expected<void> check_schema(const json& schema,
                                          const json& value,
                                          const std::string& what);

/// Parses a duration as every cadre format writes one (the one parser of
/// cadre/messages/duration.hpp).
using cadre::parse_duration;

} // namespace cadre::workflow
