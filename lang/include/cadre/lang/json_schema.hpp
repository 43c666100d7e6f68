#pragma once

#include <memory>
#include <string>
#include <vector>

#include "cadre/messages/error.hpp"
#include "cadre/messages/json_value.hpp"

namespace cadre::tools {

/// One way an instance fails its schema.
struct schema_error {
  /// JSON pointer into the instance ("" is the whole instance).
  std::string pointer;
  /// The schema keyword that failed, e.g. "required", "type", "maximum";
  /// "false" when the schema at that place is the boolean false.
  std::string keyword;
  /// JSON pointer into the schema, to the failing keyword when it could be
  /// located (after following local $refs), else to its subschema.
  std::string schema_pointer;
  /// What is wrong, for a person.
  std::string message;
};

/// Options for compiling a schema.
struct schema_options {
  /// JSON Schema draft: 4, 6 or 7; 0 reads "$schema" and falls back to 7.
  /// Default: 0
  int draft = 0;
  /// Directory that serves remote $refs: "http://host/a/b.json" is read
  /// from "<remotes_dir>/a/b.json". Empty: only the drafts' meta-schemas
  /// resolve; other remote refs are an error. Default: ""
  std::string remotes_dir;
};

/// A compiled JSON Schema (drafts 4, 6 and 7, on valijson). Immutable once
/// compiled; validate() may be called from any thread.
class json_schema {
public:
  /// Compiles `schema`. The schema is first checked against its draft's
  /// meta-schema, so a wrong schema is reported with a pointer into it.
  /// Errors: errc::invalid_input saying what is wrong; `problem_at`, when
  /// given, receives the JSON pointer into the schema where it is wrong
  /// ("" for the whole schema). A remote $ref that cannot be read (only
  /// the drafts' meta-schemas and `remotes_dir` are served) names its URI.
  [[nodiscard]] static expected<json_schema>
  compile(const json& schema, const schema_options& opts = {},
          std::string* problem_at = nullptr);

  /// Returns every failure of `instance` (empty when it is valid).
  std::vector<schema_error> validate(const json& instance) const;

  /// True when `instance` is valid; stops at the first failure.
  bool accepts(const json& instance) const;

  /// The draft the schema was compiled as (4, 6 or 7).
  int draft() const;

  /// An empty schema, which accepts everything.
  json_schema() = default;

  /// Opaque compiled state, shared by copies.
  struct impl;

private:
  explicit json_schema(std::shared_ptr<const impl> ptr);

  std::shared_ptr<const impl> impl_;
};

/// The draft named by the "$schema" of `schema` (4, 6 or 7), or 0 when it
/// has none or names another draft.
int draft_of(const json& schema);

/// "/a/b: message; /c: message" with "/" for the whole instance.
std::string to_string(const std::vector<schema_error>& errors);

} // namespace cadre::tools
