#pragma once

// Where a call of each tool goes: this node's pools and the pools other
// members of the cluster offer (docs/cluster.md#placement). The member
// actor keeps it current; coordinators and agents ask it at each dispatch.

#include <cstdint>
#include <map>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "cadre/messages/interfaces.hpp"

namespace cadre::actors {

class tool_directory {
public:
  /// Where one call goes. `node` is empty for this node's own pool.
  struct route {
    tool_pool_actor pool;
    std::string node;
  };

  /// A pool another member offers.
  struct remote_offer {
    std::string tool;
    tool_pool_actor pool;
    uint32_t workers = 0;
    /// Calls running or waiting there as last reported.
    uint32_t load = 0;
  };

  tool_directory() = default;
  explicit tool_directory(std::map<std::string, tool_pool_actor> local);

  /// This node's pool when it has one, else the capable member with the
  /// least load per worker that is placeable and not in `avoid` (its load
  /// as last reported plus the calls placed there since).
  std::optional<route> pick(const std::string& tool,
                            const std::set<std::string>& avoid = {}) const;

  /// Whether some node (this one included) offers `tool`.
  bool has(const std::string& tool) const;

  /// Adds this node's pool of `tool`.
  void add_local(const std::string& tool, tool_pool_actor pool);

  /// Every tool some node offers.
  std::vector<std::string> names() const;

  /// This node's pools.
  std::map<std::string, tool_pool_actor> local() const;

  /// Replaces what `node` offers (its latest heartbeat).
  void offer(const std::string& node, std::vector<remote_offer> offers);

  /// Whether work may be placed on `node` (up members only).
  void set_placeable(const std::string& node, bool placeable);

  /// Forgets `node` (down or left).
  void withdraw(const std::string& node);

private:
  struct node_offers {
    std::vector<remote_offer> offers;
    bool placeable = true;
  };

  mutable std::mutex mtx_;
  std::map<std::string, tool_pool_actor> local_;
  // Mutable: a pick counts its call into the chosen offer's load until the
  // member's next heartbeat replaces it, so calls placed between two
  // heartbeats spread over equal members instead of all going to one.
  mutable std::map<std::string, node_offers> remote_;
};

} // namespace cadre::actors
