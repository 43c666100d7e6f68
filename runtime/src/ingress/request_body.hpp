#pragma once

// Request bodies of the HTTP API: parsed with bounds (size as the body is
// read, read_body in server_impl.hpp; depth and UTF-8 here) into the
// message types, every refusal a problem that names the place. Pure: no
// server, no actors.

#include <optional>
#include <string>
#include <utility>
#include <variant>
#include <vector>

#include "cadre/messages/execution.hpp"
#include "cadre/messages/json_value.hpp"
#include "ingress/problem.hpp"

namespace cadre::workflow {
struct diagnostic;
} // namespace cadre::workflow

namespace cadre::runtime {

/// A value or the problem that stopped it.
template <class T>
class body_result {
public:
  body_result(T value) : x_(std::move(value)) {
  }
  body_result(problem p) : x_(std::move(p)) {
  }
  explicit operator bool() const {
    return x_.index() == 0;
  }
  T& operator*() {
    return std::get<0>(x_);
  }
  T* operator->() {
    return &std::get<0>(x_);
  }
  const problem& error() const {
    return std::get<1>(x_);
  }

private:
  std::variant<T, problem> x_;
};

/// A 400 problem when `text` is not UTF-8 (naming the byte offset, line and
/// column).
std::optional<problem> check_text(const std::string& text);

/// A 400 problem when `text` (JSON or NDJSON) is not UTF-8 or nests deeper
/// than max_json_depth (naming the line and column).
std::optional<problem> check_json_text(const std::string& text);

/// Parses a JSON body: UTF-8, nesting at most max_json_depth
/// (cadre/messages/json_text.hpp), syntax (with line and column).
body_result<json> parse_json_body(const std::string& text);

/// POST /v1/executions: {workflow, version?} or {definition}, input?,
/// idempotency_key?. Unknown fields and wrong types are 400 with a pointer.
body_result<submit_request> submission_of(const json& body);

/// POST /v1/executions/{id}/input: {task, value}.
body_result<human_input> human_input_of(const std::string& id,
                                        const json& body);

struct tool_call_body {
  json input = json::object();
  int64_t timeout_ms = 0;
};

/// POST /v1/tools/{name}/invoke: {input, timeout_ms?}.
body_result<tool_call_body> tool_call_of(const json& body);

/// POST /v1/executions/{id}/fork: {at?, input?, definition? | workflow?
/// (with version?), outputs?, rerun?, answers?, dry_run?}. Unknown fields
/// and wrong types are 400 with a pointer.
struct fork_body {
  /// The request, but for its definition_override.
  fork_request request;
  /// `definition` as given: a workflow document, or its YAML or JSON text;
  /// null when absent.
  json definition;
  /// `workflow`: a stored workflow instead, with `version` ("": the
  /// latest); "" when absent.
  std::string workflow;
  std::string version;
};

body_result<fork_body> fork_of(const std::string& id, const json& body);

/// The problem for a fork the executions actor refused. Its plan names
/// the edits as the CLI's flags do (`--set`, `--rerun`, `--answer`); the
/// problem names the body's fields instead and points at them
/// (`/outputs/T`, `/rerun/I`, `/answers/T`, `/input/...`); `req` is the
/// request refused, for the index into its `rerun`.
problem fork_problem_of(const caf::error& err, const fork_request& req);

/// 422 /problems/invalid_workflow for a workflow document with `errors`:
/// `detail` counts them ("the <what> has 2 errors") and quotes the first,
/// `errors` lists each {pointer, message, line?, column?} with its pointer
/// under `pointer_base`; `pointer` (and with `lines_in_body`, `line` and
/// `column`) are the first's.
problem workflow_problem(const std::vector<workflow::diagnostic>& errors,
                         const std::string& what,
                         const std::string& pointer_base, bool lines_in_body);

} // namespace cadre::runtime
