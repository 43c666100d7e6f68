#include <memory>

#include "cadre/tools/tool.hpp"
#include "cadre/tools/tool_registry.hpp"

namespace cadre::tools {

// First expansion: the factories and the JSON Schemas of their settings,
// defined in src/<name>/<name>_tool.cpp.
#define CADRE_TOOL(name)                                                       \
  [[nodiscard]] expected<std::unique_ptr<tool>> make_##name##_tool(            \
    const json_value& settings);                                               \
  json name##_settings_schema();
#include "builtin_tools.def"
#undef CADRE_TOOL

void register_builtin_tools(tool_registry& registry) {
  // Second expansion: one registration per line of the list.
#define CADRE_TOOL(name)                                                       \
  registry.add(#name, &make_##name##_tool, name##_settings_schema());
#include "builtin_tools.def"
#undef CADRE_TOOL
}

} // namespace cadre::tools
