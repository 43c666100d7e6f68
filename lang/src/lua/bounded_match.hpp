#pragma once

struct lua_State;

namespace cadre::tools::detail {

/// Sets find, match, gmatch and gsub in the table at `index` (the string
/// library) to Lua 5.4's own, except that their matcher calls
/// check_match_budget as it works, so a pattern that backtracks for hours
/// ends at the sandbox's bounds.
void replace_pattern_functions(lua_State* L, int index);

/// Raises a Lua error when the evaluation running in `L` is over its time
/// bound or cancelled; returns otherwise. Defined by the sandbox
/// (lua_sandbox.cpp).
void check_match_budget(lua_State* L);

} // namespace cadre::tools::detail
