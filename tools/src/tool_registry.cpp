#include "cadre/tools/tool_registry.hpp"

#include <utility>

namespace cadre::tools {

void tool_registry::add(std::string name, tool_factory factory) {
  factories_[std::move(name)] = factory;
}

bool tool_registry::contains(const std::string& name) const {
  return factories_.count(name) != 0;
}

tool_factory tool_registry::factory(const std::string& name) const {
  auto i = factories_.find(name);
  return i == factories_.end() ? nullptr : i->second;
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
