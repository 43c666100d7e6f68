#pragma once

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "cadre/tools/tool.hpp"

namespace cadre::tools {

class json_schema;

/// Maps tool names to factories and to the JSON Schemas of their settings.
/// Filled once at start-up, then read-only, so concurrent reads are safe.
class tool_registry {
public:
  /// Registers (or replaces) a factory. `settings_schema` is the JSON
  /// Schema of the tool's settings (`tools.<name>` less the pool's keys
  /// `workers`, `max_queue` and `enabled`), declared beside the tool; the
  /// factory only ever sees settings it accepts. Null: not checked.
  /// A schema that does not compile is a bug: it throws std::logic_error.
  void add(std::string name, tool_factory factory,
           const json& settings_schema = nullptr);

  /// Registers the factory of a tool that is not built in (an embedder's).
  /// Errors: errc::invalid_config when `name` is empty, not a tool name
  /// (letters, digits, '_', '-'), already registered, or `factory` is empty.
  [[nodiscard]] expected<void> add_extra(std::string name,
                                         tool_factory factory);

  bool contains(const std::string& name) const;

  /// The factory of `name`, checking the settings first as create() does,
  /// or an empty one when none is registered.
  tool_factory factory(const std::string& name) const;

  /// The JSON Schema of the settings of `name` (null: none declared).
  const json& settings_schema(const std::string& name) const;

  /// Checks `settings` against the settings schema of `name` (null
  /// settings: an empty object). Errors: errc::invalid_config naming each
  /// failing key, "tools.<name>.<key>: <what>; ...", an unknown key as
  /// "tools.<name>.<key>: unknown setting (known: ...)".
  [[nodiscard]] expected<void> check_settings(const std::string& name,
                                              const json& settings) const;

  /// Registered names in order.
  std::vector<std::string> names() const;

  /// Creates a tool. Errors: errc::tool_not_found, check_settings' error,
  /// or the factory's error.
  [[nodiscard]] expected<std::unique_ptr<tool>>
  create(const std::string& name, const json_value& settings) const;

private:
  struct entry {
    /// The registered factory behind the settings check.
    tool_factory factory;
    json schema;
    std::shared_ptr<const json_schema> compiled;
  };

  [[nodiscard]] static expected<void>
  check(const std::string& name, const entry& e, const json& settings);

  std::map<std::string, entry> entries_;
};

/// Adds every built-in tool (tools/src/builtin_tools.def) to `registry`.
void register_builtin_tools(tool_registry& registry);

} // namespace cadre::tools
