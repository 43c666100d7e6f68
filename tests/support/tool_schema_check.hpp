#pragma once

// Issue 13 item 7: a tool's published input schema and the inputs the tool
// accepts are one statement. These checks run both on the same inputs.

#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "cadre/lang/json_schema.hpp"
#include "cadre/tools/tool.hpp"

namespace cadre::test {

/// An input the schema refuses, and the JSON pointer its error names ("/"
/// for the whole input).
struct refused_input {
  json input;
  std::string pointer;
};

/// Each input is refused by the published schema, and by the tool with
/// errc::invalid_input and the schema's error located at the pointer.
inline void expect_refused_by_schema(tools::tool& t,
                                     const std::vector<refused_input>& cases) {
  auto schema = tools::json_schema::compile(t.describe().input_schema);
  ASSERT_TRUE(schema) << describe(schema.error());
  for (const auto& c : cases) {
    EXPECT_FALSE(schema->accepts(c.input))
      << c.input.dump() << ": the published schema accepts it";
    tools::tool_context ctx;
    auto out = t.invoke(json_value{c.input}, ctx);
    ASSERT_FALSE(out) << c.input.dump() << ": the tool accepts it";
    EXPECT_EQ(code_of(out.error()), errc::invalid_input) << c.input.dump();
    auto prefix = "tool " + t.name() + ": " + c.pointer + ": ";
    EXPECT_EQ(message_of(out.error()).rfind(prefix, 0), 0u)
      << c.input.dump() << ": " << message_of(out.error()) << " (expected "
      << prefix << "...)";
  }
}

/// Each input is accepted by the published schema and not refused by the
/// tool as invalid input.
inline void expect_accepted_by_both(tools::tool& t,
                                    const std::vector<json>& inputs) {
  auto schema = tools::json_schema::compile(t.describe().input_schema);
  ASSERT_TRUE(schema) << describe(schema.error());
  for (const auto& in : inputs) {
    EXPECT_TRUE(schema->accepts(in))
      << in.dump() << ": the published schema refuses it";
    tools::tool_context ctx;
    auto out = t.invoke(json_value{in}, ctx);
    if (!out) {
      EXPECT_NE(code_of(out.error()), errc::invalid_input)
        << in.dump() << ": " << describe(out.error());
    }
  }
}

} // namespace cadre::test
