#pragma once

// Which node owns what it owns, as this node's member sees the cluster: the
// executions actor of each member and its state. The member actor keeps it
// current; the executions actor asks it to send a request for another
// node's execution to its owner (docs/cluster.md#losing-a-node).

#include <map>
#include <mutex>
#include <optional>
#include <string>

#include "cadre/messages/interfaces.hpp"

namespace cadre::actors {

class member_directory {
public:
  struct entry {
    /// The member's executions actor; may be remote, empty when unknown.
    executions_actor executions;
    /// Its state as in docs/cluster.md#membership ("up", "suspect", ...).
    std::string state;
  };

  /// What `node` is now.
  void set(const std::string& node, entry e) {
    std::lock_guard<std::mutex> guard{mtx_};
    members_[node] = std::move(e);
  }

  std::optional<entry> find(const std::string& node) const {
    std::lock_guard<std::mutex> guard{mtx_};
    auto i = members_.find(node);
    if (i == members_.end())
      return std::nullopt;
    return i->second;
  }

  /// A new member actor hears the cluster afresh.
  void clear() {
    std::lock_guard<std::mutex> guard{mtx_};
    members_.clear();
  }

private:
  mutable std::mutex mtx_;
  std::map<std::string, entry> members_;
};

} // namespace cadre::actors
