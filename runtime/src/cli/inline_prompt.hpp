#pragma once

// The inline answer of `cadre run` on a terminal: when the execution waits
// for a person, the open human tasks are asked right there, and each answer,
// checked against the task's answer_schema, goes the way of `cadre input`.
// The asking is apart from the node (streams in, streams out) so it is tested
// without one. Private to runtime/.

#include <iosfwd>
#include <optional>
#include <string>
#include <vector>

#include "cadre/messages/json_value.hpp"

namespace cadre::runtime::cli {

/// A human task (or an item of a map of them) waiting for its answer, as
/// machine::view() lists it under "waiting".
struct open_question {
  std::string task; ///< "task" or "task[i]"
  json prompt;
  json answer_schema; ///< null: any answer
};

/// The open questions of a machine view (its "waiting" list).
std::vector<open_question> open_questions(const json& view);

/// Shows `q` on `out` and reads its answer from `in`: one field at a time
/// for an object schema of plain properties (a numbered choice for an
/// enum, free text for a string, y/n for a boolean, a number), else one
/// line of JSON (a bare word is a string). An answer the schema refuses is
/// shown with the schema's message and asked again. nullopt: `in` ended
/// (the person left; the task stays open).
std::optional<json> ask_inline(const open_question& q, std::istream& in,
                               std::ostream& out);

/// True when `cadre run` may ask inline: stdin and stdout are terminals
/// and the output is not --json.
bool can_ask_inline(bool json_out);

} // namespace cadre::runtime::cli
