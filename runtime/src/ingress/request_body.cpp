#include "ingress/request_body.hpp"

#include <algorithm>
#include <set>

#include <caf/error.hpp>

#include "cadre/messages/json_text.hpp"
#include "cadre/messages/utf8.hpp"
#include "cadre/workflow/definition.hpp"

namespace cadre::runtime {

namespace {

problem bad_request(std::string detail, std::string pointer = "") {
  auto p = make_problem(400, "bad_request", std::move(detail));
  p.pointer = std::move(pointer);
  return p;
}

std::optional<problem> unknown_fields(const json& body,
                                      const std::set<std::string>& known) {
  for (auto& [key, v] : body.items()) {
    (void) v;
    if (!known.count(key)) {
      std::string list;
      for (auto& k : known)
        list += (list.empty() ? "" : ", ") + k;
      return bad_request("unknown field '" + key + "' (known: " + list + ")",
                         "/" + key);
    }
  }
  return std::nullopt;
}

std::optional<problem> expect_string(const json& body, const char* key,
                                     bool required) {
  auto i = body.find(key);
  if (i == body.end())
    return required ? std::optional<problem>{bad_request(
             std::string{"missing field '"} + key + "'", "")}
                    : std::nullopt;
  if (!i->is_string() || i->get_ref<const std::string&>().empty())
    return bad_request(std::string{key} + ": expected a non-empty string, got "
                         + i->type_name(),
                       std::string{"/"} + key);
  return std::nullopt;
}

} // namespace

std::optional<problem> check_text(const std::string& text) {
  auto at = invalid_utf8_at(text);
  if (at == std::string::npos)
    return std::nullopt;
  auto [line, column] = line_column(text, at);
  auto p = bad_request("the body is not UTF-8: byte " + std::to_string(at)
                       + " (line " + std::to_string(line) + ", column "
                       + std::to_string(column) + ")");
  p.line = line;
  p.column = column;
  return p;
}

std::optional<problem> check_json_text(const std::string& text) {
  if (auto bad = check_text(text))
    return bad;
  if (auto at = too_deep_at(text, max_json_depth);
      at != std::string_view::npos) {
    auto [line, column] = line_column(text, at);
    auto p = bad_request("the body nests deeper than "
                         + std::to_string(max_json_depth) + " levels");
    p.line = line;
    p.column = column;
    return p;
  }
  return std::nullopt;
}

body_result<json> parse_json_body(const std::string& text) {
  if (text.empty())
    return bad_request("the body is empty; expected a JSON object");
  json_text_error where;
  auto doc = parse_json(text, &where);
  if (!doc) {
    auto p = where.reason == "not valid UTF-8"
               ? *check_text(text)
               : bad_request((where.reason.rfind("nested deeper", 0) == 0
                                ? "the body "
                                : "the body is not valid JSON: ")
                             + where.reason);
    p.line = where.line;
    p.column = where.column;
    return p;
  }
  if (!doc->is_object())
    return bad_request(std::string{"expected a JSON object, got "}
                       + doc->type_name());
  return std::move(*doc);
}

body_result<submit_request> submission_of(const json& body) {
  if (auto bad = unknown_fields(
        body, {"workflow", "version", "definition", "input",
               "idempotency_key"}))
    return *bad;
  submit_request req;
  bool by_name = body.contains("workflow");
  bool inline_def = body.contains("definition");
  if (by_name == inline_def)
    return bad_request("give either 'workflow' (a stored workflow's name) or "
                       "'definition' (a workflow document)");
  if (by_name) {
    if (auto bad = expect_string(body, "workflow", true))
      return *bad;
    if (auto bad = expect_string(body, "version", false))
      return *bad;
    req.definition_id = body["workflow"].get<std::string>();
    if (body.contains("version"))
      req.definition_id += "@" + body["version"].get<std::string>();
  } else {
    if (body.contains("version"))
      return bad_request("'version' goes with 'workflow', not with "
                         "'definition'",
                         "/version");
    if (!body["definition"].is_object())
      return bad_request(std::string{"definition: expected a workflow "
                                     "document (an object), got "}
                           + body["definition"].type_name(),
                         "/definition");
    req.definition = json_value{body["definition"]};
  }
  req.input = json_value{body.value("input", json::object())};
  if (auto bad = expect_string(body, "idempotency_key", false))
    return *bad;
  if (body.contains("idempotency_key")) {
    req.idempotency_key = body["idempotency_key"].get<std::string>();
    if (req.idempotency_key.size() > 256)
      return bad_request("idempotency_key: at most 256 characters",
                         "/idempotency_key");
  }
  req.source = "request body";
  return req;
}

body_result<human_input> human_input_of(const std::string& id,
                                        const json& body) {
  if (auto bad = unknown_fields(body, {"task", "value"}))
    return *bad;
  if (auto bad = expect_string(body, "task", true))
    return *bad;
  if (!body.contains("value"))
    return bad_request("missing field 'value' (the answer)");
  return human_input{id, body["task"].get<std::string>(),
                     json_value{body["value"]}};
}

body_result<tool_call_body> tool_call_of(const json& body) {
  if (auto bad = unknown_fields(body, {"input", "timeout_ms"}))
    return *bad;
  tool_call_body out;
  if (body.contains("input"))
    out.input = body["input"];
  if (body.contains("timeout_ms")) {
    const auto& t = body["timeout_ms"];
    if (!t.is_number_integer() || t.get<int64_t>() <= 0
        || t.get<int64_t>() > 3'600'000)
      return bad_request("timeout_ms: expected an integer from 1 to 3600000",
                         "/timeout_ms");
    out.timeout_ms = t.get<int64_t>();
  }
  return out;
}

body_result<fork_body> fork_of(const std::string& id, const json& body) {
  if (auto bad = unknown_fields(body, {"at", "input", "definition",
                                       "workflow", "version", "outputs",
                                       "rerun", "answers", "dry_run"}))
    return *bad;
  fork_body out;
  auto& req = out.request;
  req.execution_id = id;
  if (body.contains("at")) {
    const auto& at = body["at"];
    if (!at.is_number_integer()
        || (!at.is_number_unsigned() && at.get<int64_t>() < 0))
      return bad_request(std::string{"at: expected the sequence number of "
                                     "an event (a non-negative integer), "
                                     "got "}
                           + at.dump().substr(0, 40),
                         "/at");
    req.at_seq = at.get<uint64_t>();
  }
  if (body.contains("input"))
    req.input_override = json_value{body["input"]};
  if (body.contains("workflow")) {
    if (body.contains("definition"))
      return bad_request("give 'workflow' (a stored workflow's name) or "
                         "'definition' (a workflow document or its YAML "
                         "text), not both",
                         "/definition");
    if (auto bad = expect_string(body, "workflow", true))
      return *bad;
    if (auto bad = expect_string(body, "version", false))
      return *bad;
    out.workflow = body["workflow"].get<std::string>();
    out.version = body.value("version", std::string{});
  } else if (body.contains("version")) {
    return bad_request("'version' goes with 'workflow'", "/version");
  } else if (body.contains("definition")) {
    const auto& d = body["definition"];
    if (!d.is_object() && !(d.is_string() && !d.get<std::string>().empty()))
      return bad_request(std::string{"definition: expected a workflow "
                                     "document (an object) or its YAML or "
                                     "JSON text, got "}
                           + d.type_name(),
                         "/definition");
    out.definition = d;
  }
  for (const char* key : {"outputs", "answers"}) {
    if (!body.contains(key))
      continue;
    if (!body[key].is_object())
      return bad_request(std::string{key}
                           + ": expected an object {task id: value}, got "
                           + body[key].type_name(),
                         std::string{"/"} + key);
    (std::string{key} == "outputs" ? req.outputs : req.answers)
      = json_value{body[key]};
  }
  if (body.contains("rerun")) {
    const auto& r = body["rerun"];
    if (!r.is_array())
      return bad_request(std::string{"rerun: expected an array of task ids, "
                                     "got "}
                           + r.type_name(),
                         "/rerun");
    for (size_t i = 0; i < r.size(); ++i) {
      if (!r[i].is_string() || r[i].get<std::string>().empty())
        return bad_request("rerun: expected task ids (non-empty strings)",
                           "/rerun/" + std::to_string(i));
      req.rerun.push_back(r[i].get<std::string>());
    }
  }
  if (body.contains("dry_run")) {
    if (!body["dry_run"].is_boolean())
      return bad_request(std::string{"dry_run: expected a boolean, got "}
                           + body["dry_run"].type_name(),
                         "/dry_run");
    req.dry_run = body["dry_run"].get<bool>();
  }
  return out;
}

problem fork_problem_of(const caf::error& err, const fork_request& req) {
  if (code_of(err) != errc::invalid_input)
    return problem_of(err, "/input");
  auto msg = message_of(err);
  // The flags of `cadre fork` that plan_fork's messages start with.
  static const std::pair<const char*, const char*> fields[] = {
    {"--set", "outputs"}, {"--rerun", "rerun"}, {"--answer", "answers"}};
  for (const auto& [flag, field] : fields) {
    std::string prefix = flag;
    if (msg.rfind(prefix, 0) != 0)
      continue;
    auto rest = msg.substr(prefix.size());
    // "--answer T: ..." names the task after the flag; the others quote it
    // ("--set: the workflow has no task 'T'").
    std::string task;
    std::string detail = field;
    if (!rest.empty() && rest[0] == ' ') {
      task = rest.substr(1, rest.find(':') - 1);
      detail += "/" + rest.substr(1);
    } else {
      if (auto q = rest.find(" '"); q != std::string::npos)
        task = rest.substr(q + 2, rest.find('\'', q + 2) - q - 2);
      detail += rest;
    }
    for (size_t at; (at = detail.find("--rerun ")) != std::string::npos;)
      detail.replace(at, 8, "rerun ");
    auto p = make_problem(422, "invalid_input", detail);
    p.pointer = std::string{"/"} + field;
    if (prefix == "--rerun") {
      auto i = std::find(req.rerun.begin(), req.rerun.end(), task);
      if (i != req.rerun.end())
        p.pointer += "/" + std::to_string(i - req.rerun.begin());
    } else if (!task.empty()) {
      p.pointer = (json::json_pointer{p.pointer} / task).to_string();
    }
    return p;
  }
  return problem_of(err, "/input");
}

problem workflow_problem(const std::vector<workflow::diagnostic>& errors,
                         const std::string& what,
                         const std::string& pointer_base, bool lines_in_body) {
  auto p = make_problem(422, "invalid_workflow",
                        "the " + what + " has "
                          + std::to_string(errors.size()) + " error"
                          + (errors.size() == 1 ? "" : "s"));
  json list = json::array();
  for (const auto& d : errors) {
    json e{{"pointer", pointer_base + d.pointer}, {"message", d.message}};
    if (d.where.line > 0) {
      e["line"] = d.where.line;
      e["column"] = d.where.column;
    }
    list.push_back(std::move(e));
  }
  if (!errors.empty()) {
    auto first = errors.front();
    first.pointer = pointer_base + first.pointer;
    p.detail += "; first: " + first.to_string();
    p.pointer = first.pointer;
    if (lines_in_body && first.where.line > 0) {
      p.line = first.where.line;
      p.column = first.where.column;
    }
  }
  p.extra["errors"] = std::move(list);
  return p;
}

} // namespace cadre::runtime
