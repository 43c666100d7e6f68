#pragma once

// Calls an actor sent to pools on other nodes (docs/cluster.md#losing-a-node):
// which to send again when a pool's link breaks, which nodes a call was lost
// on, and whether an answer is the current one. Coordinators (task
// attempts) and agents (tool calls) keep one each. Private to actors/.

#include <cstdint>
#include <map>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include <caf/actor_addr.hpp>

namespace cadre::actors {

template <class Payload>
class remote_calls {
public:
  struct lost_call {
    std::string key;
    Payload payload;
    std::string node;
  };

  /// Records a call of `key` sent to `pool` on `node` and returns its token
  /// (never 0). `watch` is set when `pool` was not watched yet: the caller
  /// monitors it.
  uint64_t sent(const std::string& key, const caf::actor_addr& pool,
                const std::string& node, Payload payload, bool& watch) {
    watch = watched_.insert(pool).second;
    auto token = ++next_token_;
    calls_[key] = entry{std::move(payload), pool, node, token};
    return token;
  }

  /// Whether an answer for `key` is the current one: the remote call with
  /// `token`, or (token 0) a local call while no remote call of `key` is
  /// pending. A current remote call is forgotten.
  bool answered(const std::string& key, uint64_t token) {
    auto c = calls_.find(key);
    if (token == 0)
      return c == calls_.end();
    if (c == calls_.end() || c->second.token != token)
      return false;
    calls_.erase(c);
    return true;
  }

  /// The link to `pool` broke: its calls, forgotten, with their nodes
  /// avoided for their keys from now on.
  std::vector<lost_call> lost(const caf::actor_addr& pool) {
    watched_.erase(pool);
    std::vector<lost_call> out;
    for (auto i = calls_.begin(); i != calls_.end();) {
      if (i->second.pool != pool) {
        ++i;
        continue;
      }
      lost_on(i->first, i->second.node);
      out.push_back({i->first, std::move(i->second.payload), i->second.node});
      i = calls_.erase(i);
    }
    return out;
  }

  /// `key`'s call was lost on `node`: not chosen again for it.
  void lost_on(const std::string& key, const std::string& node) {
    avoid_[key].insert(node);
  }

  /// The nodes `key`'s call was lost on.
  std::set<std::string> avoid(const std::string& key) const {
    auto i = avoid_.find(key);
    return i == avoid_.end() ? std::set<std::string>{} : i->second;
  }

  /// `key` is done: the nodes it was lost on may be chosen again.
  void settled(const std::string& key) {
    avoid_.erase(key);
  }

private:
  struct entry {
    Payload payload;
    caf::actor_addr pool;
    std::string node;
    uint64_t token = 0;
  };

  std::map<std::string, entry> calls_;
  std::set<caf::actor_addr> watched_;
  std::map<std::string, std::set<std::string>> avoid_;
  uint64_t next_token_ = 0;
};

} // namespace cadre::actors
