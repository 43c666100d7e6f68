#pragma once

// Request bodies of the HTTP API: parsed with bounds (size is checked
// before the body is read; depth and UTF-8 here) into the message types,
// every refusal a problem that names the place. Pure: no server, no actors.

#include <optional>
#include <string>
#include <utility>
#include <variant>

#include "cadre/messages/execution.hpp"
#include "cadre/messages/json_value.hpp"
#include "ingress/problem.hpp"

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

} // namespace cadre::runtime
