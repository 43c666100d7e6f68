#pragma once

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "cadre/tools/tool.hpp"

namespace cadre::tools {

/// Maps tool names to factories. Filled once at start-up, then read-only, so
/// concurrent reads are safe.
class tool_registry {
public:
  /// Registers (or replaces) a factory.
  void add(std::string name, tool_factory factory);

  /// Registers the factory of a tool that is not built in (an embedder's).
  /// Errors: errc::invalid_config when `name` is empty, not a tool name
  /// (letters, digits, '_', '-'), already registered, or `factory` is empty.
  [[nodiscard]] expected<void> add_extra(std::string name,
                                         tool_factory factory);

  bool contains(const std::string& name) const;

  /// The factory of `name`, or an empty one when none is registered.
  tool_factory factory(const std::string& name) const;

  /// Registered names in order.
  std::vector<std::string> names() const;

  /// Creates a tool. Errors: errc::tool_not_found, or the factory's error.
  [[nodiscard]] expected<std::unique_ptr<tool>>
  create(const std::string& name, const json_value& settings) const;

private:
  std::map<std::string, tool_factory> factories_;
};

/// Adds every built-in tool (tools/src/builtin_tools.def) to `registry`.
void register_builtin_tools(tool_registry& registry);

} // namespace cadre::tools
