#pragma once

#include <map>
#include <memory>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "cadre/tools/tool.hpp"

namespace cadre::tools {

class json_schema;

/// The keys of a `tools.<name>` section that configure the tool's pool, not
/// the tool: declared once, by pool_settings_schema(), for every tool.
struct pool_settings {
  /// Workers of the pool; 0: the node's `tools.workers`. Default: 0
  size_t workers = 0;
  /// Calls waiting for a worker before new ones are refused; 0: the pool's
  /// default. Default: 0
  size_t max_queue = 0;
  /// False: this node runs no pool of the tool. Default: true
  bool enabled = true;
};

/// The JSON Schema of the pool's keys (`workers`, `max_queue`, `enabled`),
/// whose properties the registry adds to every tool's settings schema.
const json& pool_settings_schema();

/// The pool's keys of a `tools.<name>` section that check_settings accepted.
pool_settings pool_settings_of(const json& section);

/// A tool of an embedding program: its factory and the JSON Schema of its
/// settings (`tools.<name>` less the pool's keys). A null schema accepts any
/// settings and leaves their check to the factory, as before schemas were
/// declared, so a program written then keeps starting with its config.
struct extra_tool {
  extra_tool() = default;

  /// From anything a tool_factory is made of (a function, a lambda, null),
  /// so `extra_tools["x"] = factory;` reads as it did.
  template <class F, class = std::enable_if_t<
                       std::is_constructible_v<tool_factory, F>>>
  extra_tool(F f, json schema = nullptr)
    : factory(std::move(f)), settings_schema(std::move(schema)) {
  }

  tool_factory factory;
  json settings_schema;
};

/// Maps tool names to factories and to the JSON Schemas of their settings.
/// Filled once at start-up, then read-only, so concurrent reads are safe.
class tool_registry {
public:
  /// Registers (or replaces) a factory. `settings_schema` is the JSON
  /// Schema of the tool's settings (`tools.<name>` less the pool's keys),
  /// declared beside the tool, an object schema; the pool's keys are added
  /// to its properties. The factory only ever sees settings it accepts,
  /// without the pool's keys. Null: any settings (the pool's keys checked).
  /// A schema that does not compile is a bug: it throws std::logic_error.
  void add(std::string name, tool_factory factory,
           const json& settings_schema = nullptr);

  /// Registers a tool that is not built in (an embedder's), checked like a
  /// built-in one by its settings schema (null: any settings).
  /// Errors: errc::invalid_config when `name` is empty, not a tool name
  /// (letters, digits, '_', '-'), already registered, the factory is
  /// empty, or the schema does not compile or declares a pool key.
  [[nodiscard]] expected<void> add_extra(std::string name, extra_tool tool);

  bool contains(const std::string& name) const;

  /// The factory of `name`, checking the settings first as create() does,
  /// or an empty one when none is registered.
  tool_factory factory(const std::string& name) const;

  /// The JSON Schema of the settings of `name` as declared, without the
  /// pool's keys (null: none declared).
  const json& settings_schema(const std::string& name) const;

  /// Checks a `tools.<name>` section (null: an empty object) against the
  /// settings schema of `name` with the pool's keys. Errors:
  /// errc::invalid_config naming each failing key, "tools.<name>.<key>:
  /// <what>; ...", an unknown key as "tools.<name>.<key>: unknown setting
  /// (known: ...)".
  [[nodiscard]] expected<void> check_settings(const std::string& name,
                                              const json& settings) const;

  /// Registered names in order.
  std::vector<std::string> names() const;

  /// Creates a tool from its `tools.<name>` section (the factory gets it
  /// without the pool's keys). Errors: errc::tool_not_found,
  /// check_settings' error, or the factory's error.
  [[nodiscard]] expected<std::unique_ptr<tool>>
  create(const std::string& name, const json_value& settings) const;

private:
  struct entry {
    /// The registered factory behind the settings check.
    tool_factory factory;
    /// As declared; `combined` adds the pool's keys and is what checks.
    json schema;
    json combined;
    std::shared_ptr<const json_schema> compiled;
  };

  [[nodiscard]] static expected<entry>
  make_entry(const std::string& name, tool_factory factory,
             const json& settings_schema);

  /// The factory of `e`, called with the section less the pool's keys.
  [[nodiscard]] static expected<std::unique_ptr<tool>>
  call(const entry& e, const json_value& section);

  [[nodiscard]] static expected<void>
  check(const std::string& name, const entry& e, const json& settings);

  std::map<std::string, entry> entries_;
};

/// Adds every built-in tool (tools/src/builtin_tools.def) to `registry`.
void register_builtin_tools(tool_registry& registry);

} // namespace cadre::tools
