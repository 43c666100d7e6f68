// echo: returns its input unchanged. Used for no-op tasks in tests and
// benchmarks, so invoke only copies a shared pointer.

#include <memory>

#include "cadre/tools/tool.hpp"
#include "tool_support.hpp"

namespace cadre::tools {

namespace {

class echo_tool final : public tool {
public:
  std::string name() const override {
    return "echo";
  }

  tool_description describe() const override {
    return {
      "echo",
      "Returns its input unchanged (a no-op task).",
      json::object({{"description", "Any JSON value."}}),
      json::object({{"description", "The input, unchanged."}}),
    };
  }

  // Returns its input: nothing outside changes.
  bool side_effects() const override {
    return false;
  }

  bool blocking() const override {
    return false;
  }

  expected<json_value> invoke(const json_value& input, tool_context&) override {
    // json_value shares its document: this copy costs a refcount.
    return input;
  }
};

} // namespace

json echo_settings_schema() {
  return detail::settings_schema(json::object());
}

expected<std::unique_ptr<tool>> make_echo_tool(const json_value&) {
  return std::unique_ptr<tool>{std::make_unique<echo_tool>()};
}

} // namespace cadre::tools
