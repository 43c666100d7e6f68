#pragma once

// Task dispatch: a coordinator asks a tool pool to run one attempt of a task.

#include <cstdint>
#include <string>
#include <vector>

#include <caf/meta/type_name.hpp>

#include "cadre/messages/json_field.hpp"
#include "cadre/messages/json_value.hpp"

namespace cadre {

/// One attempt of one task, sent to the pool of `tool`.
struct task_request {
  std::string execution_id;
  std::string task_id;
  uint32_t attempt = 1;
  std::string tool;
  json_value input;
  /// Wall-clock deadline in microseconds since the epoch; 0: none.
  int64_t deadline_us = 0;
  /// "execution/task/attempt": stable across re-dispatch after recovery, so
  /// tools with side effects can deduplicate.
  std::string idempotency_key;
  /// JSON pointers of the input strings that hold "{{ secrets.NAME }}"
  /// written in the workflow; the tool worker fills in the values there
  /// and nowhere else (a reference arriving as data stays text).
  std::vector<std::string> secret_pointers;
};

template <class Inspector>
auto inspect(Inspector& f, task_request& x) {
  using namespace meta;
  return f(caf::meta::type_name("task_request"),
           field("execution_id"), x.execution_id,
           field("task_id"), x.task_id,
           field("attempt"), x.attempt,
           field("tool", required), x.tool,
           field("input"), x.input,
           field("deadline_us"), x.deadline_us,
           field("idempotency_key"), x.idempotency_key,
           field("secret_pointers", omit_empty), x.secret_pointers);
}

/// The successful outcome of a task attempt. Failures travel as caf::error.
struct task_result {
  json_value output;
  /// Tool-reported usage (tokens, bytes, rows...), free-form.
  json_value usage;
  int64_t duration_us = 0;
};

template <class Inspector>
auto inspect(Inspector& f, task_result& x) {
  using namespace meta;
  return f(caf::meta::type_name("task_result"),
           field("output"), x.output,
           field("usage"), x.usage,
           field("duration_us"), x.duration_us);
}

void to_json(json& j, const task_request& x);
void from_json(const json& j, task_request& x);
void to_json(json& j, const task_result& x);
void from_json(const json& j, task_result& x);

} // namespace cadre
