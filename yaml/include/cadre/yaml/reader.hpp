#pragma once

#include <cstddef>
#include <string>
#include <unordered_map>
#include <vector>

#include "cadre/messages/error.hpp"
#include "cadre/messages/json_value.hpp"

namespace cadre::yaml {

/// A place in the text: 1-based line and column; 0 when unknown.
struct position {
  int line = 0;
  int column = 0;
};

/// Bounds on what one document may become. Aliases count each time they
/// are used, so a few hundred bytes of nested aliases (a "billion laughs")
/// stop at these bounds instead of exhausting memory.
struct read_options {
  /// Deepest nesting of mappings and sequences. (yaml-cpp's own parser
  /// refuses somewhat past 500 levels, as "nested too deeply".)
  /// Default: 256
  size_t max_depth = 256;
  /// Most values (scalars, mappings and sequences) of the document once
  /// every alias is expanded. Default: 250,000
  size_t max_values = 250'000;
  /// Most bytes of keys and scalars once every alias is expanded.
  /// Default: 32 MiB
  size_t max_bytes = 32u << 20;
};

/// Something wrong in the text, with its place.
struct problem {
  position at;
  /// JSON pointer of the value concerned ("" for the whole document).
  std::string pointer;
  std::string message;
};

/// A YAML document read as JSON, with where each value was written.
struct document {
  /// The document; null when the text holds none (or an empty one) or
  /// could not be read.
  json value;
  /// Pointer -> start of the value.
  std::unordered_map<std::string, position> values;
  /// Pointer -> start of its key in the enclosing mapping.
  std::unordered_map<std::string, position> keys;
  /// Pointer -> the text as written, for plain scalars read as numbers
  /// (so `version: 1.10` can stay "1.10").
  std::unordered_map<std::string, std::string> raw_numbers;
  /// What is wrong; the value is partial (or null) when not empty.
  std::vector<problem> problems;
  /// The text holds no document, or an empty one.
  bool empty = true;
  /// Where a second document (after `---`) starts; line 0 when none. Only
  /// the first is read.
  position second_document;

  /// The place of `pointer`, or of its nearest ancestor that has one; with
  /// `key`, the place of its key when there is one.
  position find(const std::string& pointer, bool key = false) const;
};

/// Reads YAML 1.2 (JSON too, as YAML flow style) with the core schema for
/// plain scalars: `~`, `null` and empty are null; true/false (also True,
/// TRUE, ...) booleans; 42, -7, 0x1f, 0o17 integers; 2.5, 1e3 floats;
/// everything else, every quoted and block scalar and `!!str` a string.
/// Refuses (as problems, with places): syntax errors, duplicate keys, keys
/// that are not scalars, unsupported tags, nesting deeper than
/// `max_depth`, and documents that expand past `max_values` or
/// `max_bytes`. Thread-safe; does not throw.
document read(const std::string& text, const read_options& opts = {});

/// Reads the file `path` with read() and gives its document, or
/// errc::invalid_input: "cannot read '<path>'", or "<path>:<line>:<column>:
/// <what>" for the first problem.
[[nodiscard]] expected<json> read_file(const std::string& path,
                                       const read_options& opts = {});

/// "/a/b" + "c" -> "/a/b/c", escaping '~' and '/' in the token.
std::string child_pointer(const std::string& pointer,
                          const std::string& token);

} // namespace cadre::yaml
