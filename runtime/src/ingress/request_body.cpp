#include "ingress/request_body.hpp"

#include <set>

#include "cadre/messages/json_text.hpp"
#include "cadre/messages/utf8.hpp"

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

} // namespace cadre::runtime
