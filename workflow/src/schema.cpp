// JSON Schema checks of workflow inputs and answers, on the one validator
// of the codebase (cadre/lang/json_schema.hpp).

#include <optional>
#include <string>

#include "cadre/lang/json_schema.hpp"
#include "cadre/workflow/definition.hpp"
#include "document.hpp"

namespace cadre::workflow {

namespace {

/// Compiles `schema`; returns a problem ("<pointer>: <what>") on failure.
std::optional<std::string> compile(const json& schema,
                                   tools::json_schema& out) {
  std::string at;
  auto compiled = tools::json_schema::compile(schema, {}, &at);
  if (!compiled)
    return (at.empty() ? std::string{} : at + ": ")
           + message_of(compiled.error());
  out = std::move(*compiled);
  return std::nullopt;
}

} // namespace

namespace detail {

std::optional<std::string> schema_problem(const json& schema) {
  if (schema.is_null() || schema.is_boolean())
    return std::nullopt;
  tools::json_schema compiled;
  return compile(schema, compiled);
}

} // namespace detail

expected<void> check_schema(const json& schema, const json& value,
                            const std::string& what) {
  if (schema.is_null() || (schema.is_boolean() && schema.get<bool>()))
    return {};
  if (schema.is_boolean())
    return make_error(errc::invalid_input,
                      what + ": the schema is false, so no value is valid");
  tools::json_schema compiled;
  if (auto problem = compile(schema, compiled))
    return make_error(errc::invalid_input, what + ": schema: " + *problem);
  auto errors = compiled.validate(value);
  if (errors.empty())
    return {};
  return make_error(errc::invalid_input,
                    what + ": does not match its schema: "
                      + tools::to_string(errors));
}

} // namespace cadre::workflow
