#pragma once

// Execution control: submit, human input, cancel, fork, status.

#include <cstdint>
#include <string>
#include <vector>

#include <caf/meta/type_name.hpp>

#include "cadre/messages/json_field.hpp"
#include "cadre/messages/json_value.hpp"

namespace cadre {

/// Starts an execution of a workflow definition.
struct submit_request {
  /// The definition itself (a parsed workflow document). Null when
  /// `definition_id` names a stored one.
  json_value definition;
  /// "name" or "name@version" of a stored definition, or empty.
  std::string definition_id;
  /// The execution's input, checked against the definition's input schema.
  json_value input;
  /// Two submissions with the same non-empty key yield one execution.
  std::string idempotency_key;
  /// Where the definition came from (file path), for messages only.
  std::string source;
};

template <class Inspector>
auto inspect(Inspector& f, submit_request& x) {
  using namespace meta;
  return f(caf::meta::type_name("submit_request"),
           field("definition"), x.definition,
           field("definition_id"), x.definition_id,
           field("input"), x.input,
           field("idempotency_key"), x.idempotency_key,
           field("source"), x.source);
}

/// A person's answer to a waiting `human` task.
struct human_input {
  std::string execution_id;
  std::string task_id;
  json_value value;
};

template <class Inspector>
auto inspect(Inspector& f, human_input& x) {
  using namespace meta;
  return f(caf::meta::type_name("human_input"),
           field("execution_id", required), x.execution_id,
           field("task_id", required), x.task_id,
           field("value"), x.value);
}

/// Starts a new execution from the history of another up to event `at_seq`
/// (0: its last), reusing every recorded result the edits do not reach
/// (docs/replay.md#fork).
struct fork_request {
  std::string execution_id;
  uint64_t at_seq = 0;
  /// Replaces the input (when not null).
  json_value input_override;
  /// Replaces the definition (when not null).
  json_value definition_override;
  /// {task id: output}: results used instead of the recorded ones.
  json_value outputs;
  /// Task ids that run again although their inputs are unchanged.
  std::vector<std::string> rerun;
  /// {human task id: answer}: answers used instead of the recorded ones.
  json_value answers;
  /// Only plan: say what would be reused and what would run.
  bool dry_run = false;
};

template <class Inspector>
auto inspect(Inspector& f, fork_request& x) {
  using namespace meta;
  return f(caf::meta::type_name("fork_request"),
           field("execution_id", required), x.execution_id,
           field("at_seq"), x.at_seq,
           field("input_override"), x.input_override,
           field("definition_override"), x.definition_override,
           field("outputs"), x.outputs,
           field("rerun"), x.rerun,
           field("answers"), x.answers,
           field("dry_run"), x.dry_run);
}

/// Status of an execution as kept by the execution index.
/// Values: "running", "waiting" (for a person), "completed", "failed",
/// "cancelled".
struct execution_info {
  std::string id;
  std::string workflow;
  std::string version;
  std::string status;
  int64_t created_us = 0;
  int64_t updated_us = 0;
  uint64_t last_seq = 0;
  json_value output;
  std::string error;

  bool finished() const {
    return status == "completed" || status == "failed"
           || status == "cancelled";
  }
};

template <class Inspector>
auto inspect(Inspector& f, execution_info& x) {
  using namespace meta;
  return f(caf::meta::type_name("execution_info"),
           field("id", required), x.id,
           field("workflow"), x.workflow,
           field("version"), x.version,
           field("status"), x.status,
           field("created_us"), x.created_us,
           field("updated_us"), x.updated_us,
           field("last_seq"), x.last_seq,
           field("output"), x.output,
           field("error"), x.error);
}

/// Selects executions from the index; empty fields match everything.
struct execution_filter {
  std::string status;
  std::string workflow;
  uint32_t limit = 0; ///< 0: no limit
};

template <class Inspector>
auto inspect(Inspector& f, execution_filter& x) {
  using namespace meta;
  return f(caf::meta::type_name("execution_filter"),
           field("status"), x.status,
           field("workflow"), x.workflow,
           field("limit"), x.limit);
}

/// A stored workflow definition, keyed by name and version.
struct definition_record {
  std::string name;
  std::string version;
  json_value document;
};

template <class Inspector>
auto inspect(Inspector& f, definition_record& x) {
  using namespace meta;
  return f(caf::meta::type_name("definition_record"),
           field("name", required), x.name,
           field("version"), x.version,
           field("document"), x.document);
}

void to_json(json& j, const submit_request& x);
void from_json(const json& j, submit_request& x);
void to_json(json& j, const human_input& x);
void from_json(const json& j, human_input& x);
void to_json(json& j, const fork_request& x);
void from_json(const json& j, fork_request& x);
void to_json(json& j, const execution_info& x);
void from_json(const json& j, execution_info& x);
void to_json(json& j, const execution_filter& x);
void from_json(const json& j, execution_filter& x);
void to_json(json& j, const definition_record& x);
void from_json(const json& j, definition_record& x);

} // namespace cadre
