#include "cadre/cluster/membership.hpp"

#include <utility>

namespace cadre::cluster {

const char* to_string(member_state s) {
  switch (s) {
    case member_state::joining:
      return "joining";
    case member_state::up:
      return "up";
    case member_state::suspect:
      return "suspect";
    case member_state::down:
      return "down";
    case member_state::left:
      return "left";
  }
  return "unknown";
}

membership::membership(std::string self, uint64_t incarnation,
                       std::string address, membership_options opts)
  : self_(std::move(self)), opts_(opts) {
  member me;
  me.name = self_;
  me.incarnation = incarnation;
  me.address = std::move(address);
  me.state = member_state::up;
  me.self = true;
  members_.emplace(self_, std::move(me));
}

void membership::move(member& m, member_state to, const std::string& reason,
                      int64_t now_us, std::vector<transition>& out) {
  if (m.state == to)
    return;
  out.push_back(transition{m.name, m.incarnation, m.address, m.state, to,
                           reason});
  m.state = to;
  m.since_us = now_us;
}

bool membership::heard(const std::string& name, uint64_t incarnation,
                       const std::string& address, int64_t now_us,
                       std::vector<transition>& out) {
  if (name == self_)
    return false;
  auto i = members_.find(name);
  if (i == members_.end()) {
    member m;
    m.name = name;
    m.incarnation = incarnation;
    m.address = address;
    m.since_us = now_us;
    m.first_heard_us = now_us;
    m.last_heard_us = now_us;
    i = members_.emplace(name, std::move(m)).first;
    move(i->second, member_state::up, "joined", now_us, out);
    return true;
  }
  auto& m = i->second;
  if (m.incarnation != 0 && incarnation < m.incarnation)
    return false;
  bool restarted = m.incarnation != 0 && incarnation > m.incarnation;
  if (restarted) {
    // The old incarnation is gone for good: its work moves elsewhere
    // before the new one counts as up.
    move(m, member_state::down, "restarted", now_us, out);
    m.first_heard_us = now_us;
  }
  if (m.incarnation == 0)
    m.first_heard_us = now_us;
  m.incarnation = incarnation;
  if (!address.empty())
    m.address = address;
  m.last_heard_us = now_us;
  if (m.state == member_state::left)
    return false;
  auto reason = restarted                          ? "restarted"
                : m.state == member_state::joining ? "joined"
                : m.state == member_state::suspect ? "heartbeat"
                                                   : "rejoined";
  move(m, member_state::up, reason, now_us, out);
  return true;
}

void membership::learned(const std::string& name, const std::string& address,
                         int64_t now_us) {
  if (name == self_ || members_.count(name) > 0)
    return;
  member m;
  m.name = name;
  m.address = address;
  m.since_us = now_us;
  members_.emplace(name, std::move(m));
}

void membership::link_lost(const std::string& name, uint64_t incarnation,
                           int64_t now_us, std::vector<transition>& out) {
  auto i = members_.find(name);
  if (i == members_.end() || i->second.self
      || i->second.incarnation != incarnation)
    return;
  if (i->second.state == member_state::up)
    move(i->second, member_state::suspect, "link_lost", now_us, out);
}

void membership::left(const std::string& name, uint64_t incarnation,
                      int64_t now_us, std::vector<transition>& out) {
  auto i = members_.find(name);
  if (i == members_.end() || i->second.self
      || i->second.incarnation != incarnation)
    return;
  move(i->second, member_state::left, "left", now_us, out);
}

void membership::tick(int64_t now_us, std::vector<transition>& out) {
  auto suspect_us = opts_.suspect_after_ms * 1000;
  auto down_us = opts_.down_after_ms * 1000;
  auto forget_us = opts_.forget_after_ms * 1000;
  for (auto i = members_.begin(); i != members_.end();) {
    auto& m = i->second;
    if (m.self) {
      ++i;
      continue;
    }
    auto silent = now_us - m.last_heard_us;
    if (m.state == member_state::up && silent >= suspect_us)
      move(m, member_state::suspect, "silent", now_us, out);
    if (m.state == member_state::suspect && silent >= down_us)
      move(m, member_state::down, "silent", now_us, out);
    // A learned address that never answered is forgotten too.
    bool gone = m.state == member_state::down
                || m.state == member_state::left
                || m.state == member_state::joining;
    if (gone && now_us - m.since_us >= forget_us) {
      i = members_.erase(i);
      continue;
    }
    ++i;
  }
}

const member* membership::find(const std::string& name) const {
  auto i = members_.find(name);
  return i == members_.end() ? nullptr : &i->second;
}

bool membership::placeable(const std::string& name) const {
  auto* m = find(name);
  return m && (m->self || m->state == member_state::up);
}

} // namespace cadre::cluster
