#pragma once

// Internals shared by the parser, the validator and the schema checks.

#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "cadre/workflow/definition.hpp"
#include "cadre/yaml/reader.hpp"

namespace cadre::workflow::detail {

/// Where each node of a parsed text was written, by JSON pointer (values,
/// keys, and raw_numbers: the text of plain scalars read as numbers, so
/// `version: 1.10` stays "1.10").
struct locations : yaml::document {
  /// The location of `pointer`, or of its nearest ancestor that has one;
  /// with `key`, the location of its key when there is one.
  source_location find(const std::string& pointer, bool key = false) const;
};

/// Reads YAML (or JSON) text into a JSON document, recording locations.
/// Problems (syntax, duplicate keys, non-scalar keys) go to `errors`; the
/// result is null when the text cannot be read at all.
json read_yaml(const std::string& text, const std::string& file,
               locations& where, std::vector<diagnostic>& errors);

/// Validates a document and builds the definition. `where` may be null.
parse_result validate(const json& doc, const std::string& file,
                      const locations* where, const validation_context& ctx);

/// Returns why `schema` is not a usable JSON Schema, or nothing.
std::optional<std::string> schema_problem(const json& schema);

/// Appends "/token" to `pointer`, escaping '~' and '/'.
std::string child_pointer(const std::string& pointer, const std::string& token);

/// The one duration parser (cadre/messages/duration.hpp).
using cadre::parse_duration;

/// The candidate closest to `word` when it is close enough to be a likely
/// typo, or "".
std::string closest(const std::string& word,
                    const std::vector<std::string>& candidates);

} // namespace cadre::workflow::detail
