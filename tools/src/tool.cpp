#include "cadre/tools/tool.hpp"

#include "cadre/lang/secrets.hpp"

namespace cadre::tools {

// Out of line so the vtable has one home: this translation unit.
tool::~tool() = default;

std::string tool_context::redact(std::string text) const {
  return secrets ? secrets->redact(std::move(text)) : text;
}

bool tool::side_effects() const {
  return true;
}

bool tool::splits() const {
  return false;
}

expected<std::vector<json_value>> tool::split(const json_value&,
                                              tool_context&) {
  return std::vector<json_value>{};
}

expected<json_value> tool::join(const json_value&, std::vector<json_value>) {
  return make_error(errc::internal,
                    "tool " + name() + ": split a call but cannot join it");
}

} // namespace cadre::tools
