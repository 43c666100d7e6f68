// JSON mapping of the message types: the shapes seen over HTTP and in logs.

#include "cadre/messages/event.hpp"
#include "cadre/messages/execution.hpp"
#include "cadre/messages/task.hpp"
#include "json_opt.hpp"

namespace cadre {

using detail::opt;

void to_json(json& j, const submit_request& x) {
  j = json{{"definition", x.definition.get()},
           {"definition_id", x.definition_id},
           {"input", x.input.get()},
           {"idempotency_key", x.idempotency_key},
           {"source", x.source}};
}

void from_json(const json& j, submit_request& x) {
  opt(j, "definition", x.definition);
  opt(j, "definition_id", x.definition_id);
  opt(j, "input", x.input);
  opt(j, "idempotency_key", x.idempotency_key);
  opt(j, "source", x.source);
}

void to_json(json& j, const human_input& x) {
  j = json{{"execution_id", x.execution_id},
           {"task_id", x.task_id},
           {"value", x.value.get()}};
}

void from_json(const json& j, human_input& x) {
  j.at("execution_id").get_to(x.execution_id);
  j.at("task_id").get_to(x.task_id);
  opt(j, "value", x.value);
}

void to_json(json& j, const fork_request& x) {
  j = json{{"execution_id", x.execution_id},
           {"at_seq", x.at_seq},
           {"input_override", x.input_override.get()},
           {"definition_override", x.definition_override.get()},
           {"outputs", x.outputs.get()},
           {"rerun", x.rerun},
           {"answers", x.answers.get()},
           {"dry_run", x.dry_run}};
}

void from_json(const json& j, fork_request& x) {
  j.at("execution_id").get_to(x.execution_id);
  opt(j, "at_seq", x.at_seq);
  opt(j, "input_override", x.input_override);
  opt(j, "definition_override", x.definition_override);
  opt(j, "outputs", x.outputs);
  opt(j, "rerun", x.rerun);
  opt(j, "answers", x.answers);
  opt(j, "dry_run", x.dry_run);
}

void to_json(json& j, const execution_info& x) {
  j = json{{"id", x.id},
           {"workflow", x.workflow},
           {"version", x.version},
           {"status", x.status},
           {"created_us", x.created_us},
           {"updated_us", x.updated_us},
           {"last_seq", x.last_seq},
           {"output", x.output.get()},
           {"error", x.error}};
}

void from_json(const json& j, execution_info& x) {
  j.at("id").get_to(x.id);
  opt(j, "workflow", x.workflow);
  opt(j, "version", x.version);
  opt(j, "status", x.status);
  opt(j, "created_us", x.created_us);
  opt(j, "updated_us", x.updated_us);
  opt(j, "last_seq", x.last_seq);
  opt(j, "output", x.output);
  opt(j, "error", x.error);
}

void to_json(json& j, const execution_filter& x) {
  j = json{{"status", x.status}, {"workflow", x.workflow}, {"limit", x.limit}};
}

void from_json(const json& j, execution_filter& x) {
  opt(j, "status", x.status);
  opt(j, "workflow", x.workflow);
  opt(j, "limit", x.limit);
}

void to_json(json& j, const definition_record& x) {
  j = json{{"name", x.name},
           {"version", x.version},
           {"document", x.document.get()}};
}

void from_json(const json& j, definition_record& x) {
  j.at("name").get_to(x.name);
  opt(j, "version", x.version);
  opt(j, "document", x.document);
}

void to_json(json& j, const task_request& x) {
  j = json{{"execution_id", x.execution_id},
           {"task_id", x.task_id},
           {"attempt", x.attempt},
           {"tool", x.tool},
           {"input", x.input.get()},
           {"deadline_us", x.deadline_us},
           {"idempotency_key", x.idempotency_key}};
  if (!x.secret_pointers.empty())
    j["secret_pointers"] = x.secret_pointers;
}

void from_json(const json& j, task_request& x) {
  opt(j, "execution_id", x.execution_id);
  opt(j, "task_id", x.task_id);
  opt(j, "attempt", x.attempt);
  j.at("tool").get_to(x.tool);
  opt(j, "input", x.input);
  opt(j, "deadline_us", x.deadline_us);
  opt(j, "idempotency_key", x.idempotency_key);
  opt(j, "secret_pointers", x.secret_pointers);
}

void to_json(json& j, const task_result& x) {
  j = json{{"output", x.output.get()},
           {"usage", x.usage.get()},
           {"duration_us", x.duration_us}};
}

void from_json(const json& j, task_result& x) {
  opt(j, "output", x.output);
  opt(j, "usage", x.usage);
  opt(j, "duration_us", x.duration_us);
}

void to_json(json& j, const event& x) {
  j = json{{"execution_id", x.execution_id},
           {"seq", x.seq},
           {"time_us", x.time_us},
           {"type", x.type},
           {"payload", x.payload.get()}};
}

void from_json(const json& j, event& x) {
  j.at("execution_id").get_to(x.execution_id);
  j.at("seq").get_to(x.seq);
  opt(j, "time_us", x.time_us);
  j.at("type").get_to(x.type);
  opt(j, "payload", x.payload);
}

} // namespace cadre
