#pragma once

// The cluster's member list as a pure state machine: what this node has
// heard from the others, folded into member states, with the transitions
// as values. The member actor (actors/) feeds it joins, heartbeats, lost
// links and the clock, and acts on the transitions; tests drive it alone.

#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace cadre::cluster {

/// joining: known by address, not heard from yet. up: heard within
/// suspect_after. suspect: silent, or its link was lost; nothing new is
/// placed on it. down: silent past down_after; its work is re-dispatched.
/// left: it said goodbye.
enum class member_state { joining, up, suspect, down, left };

const char* to_string(member_state s);

struct member {
  std::string name;
  /// The member's start time (microseconds): a restart is a new member.
  uint64_t incarnation = 0;
  std::string address;
  member_state state = member_state::joining;
  /// When it was last heard from and since when it is in `state`.
  int64_t last_heard_us = 0;
  int64_t since_us = 0;
  /// When this incarnation was first heard from.
  int64_t first_heard_us = 0;
  bool self = false;
};

/// One member changing state (an event on the bus, a log line, a metric).
struct transition {
  std::string name;
  uint64_t incarnation = 0;
  std::string address;
  member_state from = member_state::joining;
  member_state to = member_state::joining;
  /// "heartbeat", "silent", "link_lost", "left", "restarted", "rejoined".
  std::string reason;
};

struct membership_options {
  /// A member silent this long is suspect. Default: 2 s
  int64_t suspect_after_ms = 2000;
  /// ... and down this long after it was last heard. Default: 5 s
  int64_t down_after_ms = 5000;
  /// Down and left members are forgotten after this long. Default: 10 min
  int64_t forget_after_ms = 600000;
};

class membership {
public:
  membership(std::string self, uint64_t incarnation, std::string address,
             membership_options opts = {});

  /// A member spoke (a join or a heartbeat). A newer incarnation replaces
  /// the old one (which goes down first, reason "restarted"). Returns
  /// false, changing nothing, for a stale incarnation or for this node.
  bool heard(const std::string& name, uint64_t incarnation,
             const std::string& address, int64_t now_us,
             std::vector<transition>& out);

  /// A member learned of from another member's list, not heard from yet.
  void learned(const std::string& name, const std::string& address,
               int64_t now_us);

  /// The link to a member broke (its proxies died): an up member becomes
  /// suspect at once; the clock decides when it is down.
  void link_lost(const std::string& name, uint64_t incarnation,
                 int64_t now_us, std::vector<transition>& out);

  /// A member leaves gracefully.
  void left(const std::string& name, uint64_t incarnation, int64_t now_us,
            std::vector<transition>& out);

  /// Time passed: silent members become suspect, then down; old down and
  /// left members are forgotten.
  void tick(int64_t now_us, std::vector<transition>& out);

  /// The member called `name`, or nullptr.
  const member* find(const std::string& name) const;

  /// Every member, this node included, by name.
  const std::map<std::string, member>& members() const {
    return members_;
  }

  /// Whether work may be placed on `name` (up, or this node).
  bool placeable(const std::string& name) const;

  const membership_options& options() const {
    return opts_;
  }

private:
  void move(member& m, member_state to, const std::string& reason,
            int64_t now_us, std::vector<transition>& out);

  std::string self_;
  membership_options opts_;
  std::map<std::string, member> members_;
};

} // namespace cadre::cluster
