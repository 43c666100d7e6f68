#include "lua/stdlib.hpp"

#include "lua/stdlib_lua.hpp" // generated from stdlib.lua

namespace cadre::tools::detail {

std::string_view lua_stdlib_source() {
  return embedded::lua_stdlib;
}

} // namespace cadre::tools::detail
