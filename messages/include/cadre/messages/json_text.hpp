#pragma once

// JSON text in and out, for text that came from outside (files, --input,
// answers, tool outputs, model replies, HTTP bodies) and for text that may
// hold stored data: the one place that bounds nesting, checks UTF-8 and
// writes JSON without aborting.

#include <cstddef>
#include <string>
#include <string_view>
#include <utility>

#include "cadre/messages/error.hpp"
#include "cadre/messages/json_value.hpp"

namespace cadre {

/// Deepest nesting of arrays and objects read from JSON text. Parsing,
/// copying, writing and validating a document recurse once per level, so
/// a deeper one (100,000 levels fit in 200 KB) would overflow the stack.
/// The event store reads twice as deep, for the levels that events and
/// templates add around such a value.
constexpr size_t max_json_depth = 512;

/// Why text is not acceptable JSON, and where.
struct json_text_error {
  /// Byte offset of the problem.
  size_t offset = 0;
  /// 1-based line and column (in bytes) of the problem.
  int line = 0;
  int column = 0;
  /// What is wrong: "not valid UTF-8", "nested deeper than 512 levels", or
  /// the parser's syntax error.
  std::string reason;

  /// "line L, column C: reason".
  std::string to_string() const;
};

/// Parses JSON text from outside: checks that it is UTF-8 and nests at most
/// `max_depth` levels (one linear scan), then parses it.
/// Errors: errc::invalid_input with json_text_error::to_string() as its
/// message; `where`, when given, receives the details.
[[nodiscard]] expected<json> parse_json(std::string_view text,
                                        json_text_error* where = nullptr,
                                        size_t max_depth = max_json_depth);

/// parse_json without the details: the document, or a discarded value
/// (`is_discarded()`) when the text is not acceptable JSON.
json try_parse_json(std::string_view text);

/// The offset at which `text` (JSON, strings skipped) opens its
/// `max_depth + 1`-th level, or std::string_view::npos.
size_t too_deep_at(std::string_view text, size_t max_depth) noexcept;

/// The 1-based line and column (in bytes) of byte `offset` of `text`.
std::pair<int, int> line_column(std::string_view text,
                                size_t offset) noexcept;

/// `doc` as JSON text (compact, or indented by `indent` spaces). Never
/// throws for bytes that are not UTF-8 (nlohmann's dump does, and aborts
/// a command): they become U+FFFD, so data already in a store can always
/// be shown. Use it for every document that may hold stored or outside
/// data.
std::string dump_json(const json& doc, int indent = -1);

/// The same for a json_value.
inline std::string dump_json(const json_value& doc, int indent = -1) {
  return dump_json(doc.get(), indent);
}

} // namespace cadre
