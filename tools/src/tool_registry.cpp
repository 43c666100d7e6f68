#include "cadre/tools/tool_registry.hpp"

#include <algorithm>
#include <cctype>
#include <utility>

namespace cadre::tools {

void tool_registry::add(std::string name, tool_factory factory) {
  factories_[std::move(name)] = std::move(factory);
}

expected<void> tool_registry::add_extra(std::string name,
                                        tool_factory factory) {
  // LLM providers take tool names of at most 64 such characters.
  auto name_char = [](unsigned char c) {
    return std::isalnum(c) || c == '_' || c == '-';
  };
  if (name.empty() || name.size() > 64
      || !std::all_of(name.begin(), name.end(), name_char))
    return make_error(errc::invalid_config,
                      "tool name '" + name
                        + "': use 1 to 64 letters, digits, '_' or '-'");
  if (contains(name))
    return make_error(errc::invalid_config,
                      "tool '" + name + "' is already registered");
  if (!factory)
    return make_error(errc::invalid_config,
                      "tool '" + name + "' was given no factory");
  factories_[std::move(name)] = std::move(factory);
  return {};
}

bool tool_registry::contains(const std::string& name) const {
  return factories_.count(name) != 0;
}

tool_factory tool_registry::factory(const std::string& name) const {
  auto i = factories_.find(name);
  return i == factories_.end() ? tool_factory{} : i->second;
}

std::vector<std::string> tool_registry::names() const {
  std::vector<std::string> out;
  out.reserve(factories_.size());
  for (const auto& entry : factories_)
    out.push_back(entry.first);
  return out;
}

expected<std::unique_ptr<tool>>
tool_registry::create(const std::string& name,
                      const json_value& settings) const {
  auto i = factories_.find(name);
  if (i == factories_.end()) {
    std::string known;
    for (const auto& entry : factories_) {
      if (!known.empty())
        known += ", ";
      known += entry.first;
    }
    return make_error(errc::tool_not_found,
                      "tool '" + name + "' is not registered (known: "
                        + (known.empty() ? std::string{"none"} : known) + ")");
  }
  if (i->second == nullptr)
    return make_error(errc::internal,
                      "tool '" + name + "' was registered without a factory");
  auto result = i->second(settings);
  if (result && *result == nullptr)
    return make_error(errc::internal,
                      "the factory of tool '" + name + "' returned no tool");
  return result;
}

} // namespace cadre::tools
