// JSON Schema checks with valijson (header-only).

// Without this valijson prints and aborts on a schema it cannot read.
#define VALIJSON_USE_EXCEPTIONS 1

#include <algorithm>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include <valijson/adapters/nlohmann_json_adapter.hpp>
#include <valijson/schema.hpp>
#include <valijson/schema_parser.hpp>
#include <valijson/validation_results.hpp>
#include <valijson/validator.hpp>

#include "cadre/workflow/definition.hpp"
#include "document.hpp"

namespace cadre::workflow {

namespace {

valijson::SchemaParser::Version version_of(const json& schema) {
  if (schema.is_object())
    if (auto it = schema.find("$schema");
        it != schema.end() && it->is_string()) {
      const auto& uri = it->get_ref<const std::string&>();
      if (uri.find("draft-04") != std::string::npos)
        return valijson::SchemaParser::kDraft4;
      if (uri.find("draft-03") != std::string::npos)
        return valijson::SchemaParser::kDraft3;
    }
  return valijson::SchemaParser::kDraft7;
}

/// Compiles `schema`; returns a problem on failure.
std::string compile(const json& schema, valijson::Schema& out) {
  if (!schema.is_object())
    return "a JSON Schema must be an object or a boolean, got "
           + std::string{schema.type_name()};
  try {
    valijson::SchemaParser parser{version_of(schema)};
    valijson::adapters::NlohmannJsonAdapter adapter{schema};
    parser.populateSchema(adapter, out);
  } catch (const std::exception& e) {
    return std::string{"not a usable JSON Schema: "} + e.what();
  }
  return {};
}

/// valijson's context ("<root>", "[name]", "[0]") as a JSON pointer.
std::string pointer_of(const std::vector<std::string>& context) {
  std::string out;
  for (const auto& part : context) {
    if (part == "<root>")
      continue;
    auto token = part;
    if (token.size() >= 2 && token.front() == '[' && token.back() == ']')
      token = token.substr(1, token.size() - 2);
    out = detail::child_pointer(out, token);
  }
  return out;
}

/// Messages that only say "something below failed".
bool is_summary(const std::string& text) {
  static constexpr const char* prefixes[] = {
    "Failed to validate item #",
    "Failed to validate against schema associated with property name",
    "Failed to validate against schema associated with pattern",
    "Failed to validate against additional properties schema",
  };
  for (auto p : prefixes)
    if (text.rfind(p, 0) == 0)
      return true;
  return false;
}

bool below(const std::string& deeper, const std::string& pointer) {
  return deeper.size() > pointer.size()
         && deeper.compare(0, pointer.size(), pointer) == 0
         && deeper[pointer.size()] == '/';
}

} // namespace

namespace detail {

std::optional<std::string> schema_problem(const json& schema) {
  if (schema.is_null() || schema.is_boolean())
    return std::nullopt;
  valijson::Schema compiled;
  if (auto problem = compile(schema, compiled); !problem.empty())
    return problem;
  return std::nullopt;
}

} // namespace detail

expected<void> check_schema(const json& schema, const json& value,
                            const std::string& what) {
  if (schema.is_null() || (schema.is_boolean() && schema.get<bool>()))
    return {};
  if (schema.is_boolean())
    return make_error(errc::invalid_input,
                      what + ": the schema is false, so no value is valid");
  valijson::Schema compiled;
  if (auto problem = compile(schema, compiled); !problem.empty())
    return make_error(errc::invalid_input, what + ": schema: " + problem);
  valijson::Validator validator;
  valijson::ValidationResults results;
  valijson::adapters::NlohmannJsonAdapter target{value};
  bool ok = false;
  try {
    ok = validator.validate(compiled, target, &results);
  } catch (const std::exception& e) {
    return make_error(errc::invalid_input,
                      what + ": validation failed: " + e.what());
  }
  if (ok)
    return {};
  std::vector<std::pair<std::string, std::string>> failures;
  for (const auto& e : results)
    failures.emplace_back(pointer_of(e.context), e.description);
  std::vector<std::string> lines;
  std::set<std::string> seen;
  for (const auto& [pointer, text] : failures) {
    if (is_summary(text)
        && std::any_of(failures.begin(), failures.end(),
                       [&, &p = pointer](const auto& other) {
                         return below(other.first, p);
                       }))
      continue;
    auto line = (pointer.empty() ? std::string{"/"} : pointer) + ": " + text;
    if (text.rfind("Value type not permitted", 0) == 0) {
      if (line.back() == '.')
        line.pop_back();
      std::string got = value.type_name();
      try {
        got = value.at(json::json_pointer{pointer}).type_name();
      } catch (const std::exception&) {
        // keep the type of the whole value
      }
      line += " (got " + got + ")";
    }
    if (seen.insert(line).second)
      lines.push_back(std::move(line));
  }
  std::string message = what + ": does not match its schema: ";
  for (size_t i = 0; i < lines.size(); ++i)
    message += (i == 0 ? "" : "; ") + lines[i];
  return make_error(errc::invalid_input, std::move(message));
}

} // namespace cadre::workflow
