#pragma once

// YAML documents as JSON, for the tools (and their tests) that read YAML
// files: the scripted LLM provider's scripts, OpenAPI documents. Private to
// tools/; yaml-cpp stays behind the .cpp.

#include <string>

#include "cadre/messages/error.hpp"
#include "cadre/messages/json_value.hpp"

namespace cadre::tools::detail {

/// Reads the YAML file `path` (JSON is YAML flow style) as JSON, with the
/// YAML 1.2 core schema's plain scalars (true, false, null, ~, integers,
/// finite floats); quoted scalars stay strings.
/// Errors (errc::invalid_input): "cannot read '<path>'", or
/// "<path>:<line>:<column>: <what>" for a syntax error.
[[nodiscard]] expected<json> read_yaml_file(const std::string& path);

} // namespace cadre::tools::detail
