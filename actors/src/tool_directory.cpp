#include "cadre/actors/tool_directory.hpp"

#include <utility>

namespace cadre::actors {

tool_directory::tool_directory(std::map<std::string, tool_pool_actor> local)
  : local_(std::move(local)) {
}

std::optional<tool_directory::route>
tool_directory::pick(const std::string& tool,
                     const std::set<std::string>& avoid) const {
  std::lock_guard<std::mutex> guard{mtx_};
  if (auto i = local_.find(tool); i != local_.end())
    return route{i->second, std::string{}};
  remote_offer* best = nullptr;
  const std::string* best_node = nullptr;
  // Load per worker, compared without division: a.load * b.workers.
  auto lighter = [](const remote_offer& a, const remote_offer& b) {
    auto aw = std::max<uint64_t>(a.workers, 1);
    auto bw = std::max<uint64_t>(b.workers, 1);
    return uint64_t{a.load} * bw < uint64_t{b.load} * aw;
  };
  for (auto& [node, entry] : remote_) {
    if (!entry.placeable || avoid.count(node) > 0)
      continue;
    for (auto& o : entry.offers)
      if (o.tool == tool && o.pool && (!best || lighter(o, *best))) {
        best = &o;
        best_node = &node;
      }
  }
  if (!best)
    return std::nullopt;
  ++best->load;
  return route{best->pool, *best_node};
}

bool tool_directory::has(const std::string& tool) const {
  std::lock_guard<std::mutex> guard{mtx_};
  if (local_.count(tool) > 0)
    return true;
  for (auto& [node, entry] : remote_)
    for (auto& o : entry.offers)
      if (o.tool == tool)
        return true;
  return false;
}

std::vector<std::string> tool_directory::names() const {
  std::set<std::string> all;
  {
    std::lock_guard<std::mutex> guard{mtx_};
    for (auto& [name, pool] : local_)
      all.insert(name);
    for (auto& [node, entry] : remote_)
      for (auto& o : entry.offers)
        all.insert(o.tool);
  }
  return {all.begin(), all.end()};
}

std::map<std::string, tool_pool_actor> tool_directory::local() const {
  std::lock_guard<std::mutex> guard{mtx_};
  return local_;
}

void tool_directory::add_local(const std::string& tool,
                               tool_pool_actor pool) {
  std::lock_guard<std::mutex> guard{mtx_};
  local_[tool] = std::move(pool);
}

void tool_directory::offer(const std::string& node,
                           std::vector<remote_offer> offers) {
  std::lock_guard<std::mutex> guard{mtx_};
  remote_[node].offers = std::move(offers);
}

void tool_directory::set_placeable(const std::string& node, bool placeable) {
  std::lock_guard<std::mutex> guard{mtx_};
  if (auto i = remote_.find(node); i != remote_.end())
    i->second.placeable = placeable;
}

void tool_directory::withdraw(const std::string& node) {
  std::lock_guard<std::mutex> guard{mtx_};
  remote_.erase(node);
}

} // namespace cadre::actors
