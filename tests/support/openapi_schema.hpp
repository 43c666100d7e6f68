#pragma once

// OpenAPI 3 documents (YAML, as published) read as JSON Schemas, for test
// servers that validate request bodies and for tests that check responses
// against the spec. OpenAPI's schema objects are JSON Schema with a few
// additions: `nullable: true` becomes an anyOf with null and `prefixItems`
// becomes draft 7's tuple `items`; `$ref`s into #/components/schemas
// resolve because the converted components travel with each schema.

#include <stdexcept>
#include <string>
#include <utility>

#include <nlohmann/json.hpp>

#include "cadre/messages/error.hpp"
#include "cadre/lang/json_schema.hpp"
#include "cadre/yaml/reader.hpp"

namespace cadre::test {

/// The OpenAPI schema object `x` as a draft 7 JSON Schema.
inline nlohmann::json openapi_to_json_schema(const nlohmann::json& x) {
  using nlohmann::json;
  if (x.is_array()) {
    json out = json::array();
    for (const auto& v : x)
      out.push_back(openapi_to_json_schema(v));
    return out;
  }
  if (!x.is_object())
    return x;
  json out = json::object();
  for (const auto& [key, value] : x.items()) {
    if (key == "nullable")
      continue;
    // Values that are data, not schemas.
    if (key == "default" || key == "example" || key == "enum"
        || key == "const" || key == "required") {
      out[key] = value;
      continue;
    }
    if (key == "properties") {
      json props = json::object();
      for (const auto& [name, schema] : value.items())
        props[name] = openapi_to_json_schema(schema);
      out[key] = std::move(props);
      continue;
    }
    if (key == "prefixItems") {
      out["items"] = openapi_to_json_schema(value);
      continue;
    }
    out[key] = openapi_to_json_schema(value);
  }
  if (x.value("nullable", false))
    return json{{"anyOf", json::array({json{{"type", "null"}}, out})}};
  return out;
}

/// One OpenAPI document.
class openapi_document {
public:
  /// Reads `path`; throws std::runtime_error when it cannot (a test
  /// without its spec cannot run).
  static openapi_document load(const std::string& path) {
    auto doc = yaml::read_file(path);
    if (!doc)
      throw std::runtime_error("openapi_document: " + message_of(doc.error()));
    return openapi_document{std::move(*doc)};
  }

  const nlohmann::json& doc() const noexcept {
    return doc_;
  }

  /// The JSON Schema of `#/components/schemas/<name>`.
  nlohmann::json component_schema(const std::string& name) const {
    return with_components(
      {{"$ref", "#/components/schemas/" + name}});
  }

  /// The JSON Schema of the `application/json` body of the response
  /// `status` of `method` (lower case, "get") on `path` (the template,
  /// "/api/v2/dags/{dag_id}"); throws when the spec has none.
  nlohmann::json response_schema(const std::string& path,
                                 const std::string& method,
                                 int status) const {
    const auto& responses = doc_.at("paths").at(path).at(method).at(
      "responses");
    const auto& schema = responses.at(std::to_string(status))
                           .at("content")
                           .at("application/json")
                           .at("schema");
    return with_components(openapi_to_json_schema(schema));
  }

  /// Compiles a schema made by component_schema or response_schema.
  static tools::json_schema compile(const nlohmann::json& schema) {
    auto compiled = tools::json_schema::compile(schema, {7, {}});
    if (!compiled)
      throw std::runtime_error("openapi_document: "
                               + message_of(compiled.error()));
    return std::move(*compiled);
  }

private:
  explicit openapi_document(nlohmann::json doc) : doc_(std::move(doc)) {
    components_ = nlohmann::json::object();
    if (auto c = doc_.find("components"); c != doc_.end())
      if (auto s = c->find("schemas"); s != c->end())
        for (const auto& [name, schema] : s->items())
          components_[name] = openapi_to_json_schema(schema);
  }

  /// `schema` with the converted components beside it, so that its $refs
  /// resolve ($ref siblings are ignored, so it goes under allOf).
  nlohmann::json with_components(nlohmann::json schema) const {
    return {{"allOf", nlohmann::json::array({std::move(schema)})},
            {"components", {{"schemas", components_}}}};
  }

  nlohmann::json doc_;
  nlohmann::json components_;
};

} // namespace cadre::test
