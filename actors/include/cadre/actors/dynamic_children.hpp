#pragma once

// The one restart mechanism for children made on demand, one per id (an
// agent per agent id, a coordinator per execution): the owning actor spawns
// and monitors them, this value keeps their handles, judges each crash with
// restart_intensity and holds the requests that found a child dead until its
// successor is up. A plain value owned by one actor; time is passed in, so
// it is tested without an actor system. See docs/supervision.md.
//
// Why not a supervisor pool: a pool escalates (stops every child) when one
// child crashes too often, while here one child is given up and its siblings
// go on; and a pool's forwarding is dynamically typed, while these children
// are typed actors whose requests each carry their own deadline.

#include <chrono>
#include <cstddef>
#include <functional>
#include <optional>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include <caf/actor_addr.hpp>
#include <caf/error.hpp>
#include <caf/exit_reason.hpp>
#include <caf/send.hpp>
#include <caf/system_messages.hpp>

#include "cadre/actors/restart_intensity.hpp"

namespace cadre::actors {

/// What became of a child whose down message arrived.
enum class child_exit {
  normal,   ///< it ended normally; its entry is gone
  restart,  ///< crashed within the intensity: start its successor
  given_up, ///< crashed once too often: no successor until the window passes
};

template <class Handle>
class dynamic_children {
public:
  using time_point = restart_intensity::time_point;
  using callback = std::function<void()>;

  struct down_result {
    std::string id;
    child_exit exit = child_exit::normal;
    /// Restarts within the window, this crash included.
    size_t restarts = 0;
    /// Requests that waited for this child's successor: run them after the
    /// successor is started (or the child given up); each sees the outcome.
    std::vector<callback> waiting;
  };

  dynamic_children(size_t max_restarts, std::chrono::milliseconds window)
    : max_(max_restarts), window_(window) {
    // nop
  }

  dynamic_children(const dynamic_children&) = delete;
  dynamic_children& operator=(const dynamic_children&) = delete;

  /// Children end with their owner (their logs keep their state).
  ~dynamic_children() {
    for (auto& kvp : entries_)
      if (kvp.second.handle)
        caf::anon_send_exit(kvp.second.handle,
                            caf::exit_reason::user_shutdown);
  }

  /// The running child `id`, or an invalid handle.
  Handle get(const std::string& id) const {
    auto i = entries_.find(id);
    return i == entries_.end() ? Handle{} : i->second.handle;
  }

  /// Whether `id` has an entry (running, or given up within the window).
  bool known(const std::string& id) const {
    return entries_.count(id) > 0;
  }

  /// Records a freshly spawned (and monitored) child `id`.
  void started(const std::string& id, Handle handle) {
    auto& e = entry(id);
    by_addr_[handle.address()] = id;
    e.handle = std::move(handle);
  }

  /// Whether `id` may run at `now`: false while its crashes within the
  /// window exceed the intensity. The lockout ends as soon as the window has
  /// passed, whether or not anything else happens to the child.
  bool allows(const std::string& id, time_point now) {
    auto i = entries_.find(id);
    return i == entries_.end() || i->second.crashes.allows(now);
  }

  /// A request to `dead` failed because the child died: run `again` once
  /// its down message is handled, or now if `dead` was already replaced.
  void await_successor(const std::string& id, const Handle& dead,
                       callback again) {
    auto i = entries_.find(id);
    if (i != entries_.end() && i->second.handle == dead)
      i->second.waiting.push_back(std::move(again));
    else
      again();
  }

  /// Judges a down message at `now`; nothing for a stranger. A normal exit
  /// forgets the child; a crash keeps its entry (its crash record) with no
  /// handle, and the owner starts the successor on restart.
  std::optional<down_result> on_down(const caf::down_msg& msg,
                                     time_point now) {
    auto a = by_addr_.find(msg.source);
    if (a == by_addr_.end())
      return std::nullopt;
    down_result out;
    out.id = std::move(a->second);
    by_addr_.erase(a);
    auto i = entries_.find(out.id);
    if (i == entries_.end())
      return std::nullopt;
    auto& e = i->second;
    e.handle = Handle{};
    out.waiting = std::move(e.waiting);
    e.waiting.clear();
    if (!msg.reason || msg.reason == caf::exit_reason::normal) {
      entries_.erase(i);
      return out;
    }
    out.exit = e.crashes.record(now) ? child_exit::restart
                                     : child_exit::given_up;
    out.restarts = e.crashes.recent();
    return out;
  }

  /// Forgets `id` and its crash record.
  void forget(const std::string& id) {
    entries_.erase(id);
  }

  /// Restarts of `id` within the window, as of the last judgement.
  size_t restarts(const std::string& id) const {
    auto i = entries_.find(id);
    return i == entries_.end() ? 0 : i->second.crashes.recent();
  }

private:
  struct entry_type {
    Handle handle;
    restart_intensity crashes;
    std::vector<callback> waiting;
  };

  entry_type& entry(const std::string& id) {
    return entries_
      .try_emplace(id, entry_type{Handle{}, restart_intensity{max_, window_},
                                  {}})
      .first->second;
  }

  size_t max_;
  std::chrono::milliseconds window_;
  std::unordered_map<std::string, entry_type> entries_;
  std::unordered_map<caf::actor_addr, std::string> by_addr_;
};

} // namespace cadre::actors
