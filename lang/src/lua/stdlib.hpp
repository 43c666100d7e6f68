#pragma once

// The standard library of the Lua sandbox (json, string, table, number and
// date helpers), as Lua source compiled once per sandbox state. Private to
// lang/.

#include <string_view>

namespace cadre::tools::detail {

/// Lua source of the library. Run as a chunk with the arguments (globals,
/// json.null, sorted pairs, a function that makes a table read-only for
/// rawset); it extends `string` and `table` in place and returns a table
/// {json, number, date, array_mt, object_mt}.
std::string_view lua_stdlib_source();

} // namespace cadre::tools::detail
