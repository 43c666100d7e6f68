#include "cadre/actors/cluster_member.hpp"

#include <algorithm>
#include <chrono>
#include <map>
#include <set>
#include <utility>

#include <caf/actor_system.hpp>
#include <caf/event_based_actor.hpp>
#include <caf/node_id.hpp>
#include <caf/sec.hpp>
#include <caf/typed_event_based_actor.hpp>

#include "cadre/actors/deadlines.hpp"
#include "cadre/actors/metrics.hpp"
#include "cadre/log/log.hpp"
#include "cadre/messages/event.hpp"

namespace cadre::actors {

namespace {

// The member's interface plus what it sends itself: the clock, and the
// outcome of a connection attempt (address, ok).
using member_impl_actor = member_actor::extend<
  caf::reacts_to<timer_atom>, caf::reacts_to<seed_atom, std::string>>;

// A connection attempt or a join that takes longer than this failed.
constexpr auto connect_deadline = std::chrono::seconds{3};

int64_t now_us() {
  using namespace std::chrono;
  return duration_cast<microseconds>(system_clock::now().time_since_epoch())
    .count();
}

// A pool of an address-less member (an outside CAF program) relayed by
// this node: no other node can connect to such a member, so this node
// offers its pools in its place and forwards each call over its own link.
struct relay {
  caf::actor target;
  tool_pool_actor handle;
};

// Forwards calls to `target` with the caller's deadline and answers them
// itself: the member may be reachable from this node only. Ends when the
// target or `member` goes away; callers watching it then send their calls
// again elsewhere, as for a lost node.
tool_pool_actor::behavior_type relay_impl(tool_pool_actor::pointer self,
                                          tool_pool_actor target,
                                          caf::actor member) {
  self->monitor(target);
  self->monitor(member);
  self->set_down_handler([=](caf::down_msg&) { self->quit(); });
  return {
    [=](run_atom, task_request& req) -> caf::result<task_result> {
      auto rp = self->make_response_promise<task_result>();
      caf::duration timeout{remote_tool_backstop};
      if (req.deadline_us > 0) {
        // The target enforces the deadline; this is a backstop.
        auto left_ms = std::max<int64_t>(0, (req.deadline_us - now_us()) / 1000);
        timeout = caf::duration{std::chrono::milliseconds{left_ms + 2000}};
      }
      self->request(target, timeout, run_atom_v, std::move(req))
        .then([=](task_result& r) mutable { rp.deliver(std::move(r)); },
              [=](caf::error& err) mutable { rp.deliver(std::move(err)); });
      return rp;
    },
    [=](describe_atom) -> caf::result<json_value> {
      auto rp = self->make_response_promise<json_value>();
      self->request(target, connect_deadline, describe_atom_v)
        .then([=](json_value& d) mutable { rp.deliver(std::move(d)); },
              [=](caf::error& err) mutable { rp.deliver(std::move(err)); });
      return rp;
    },
  };
}

// Where a connection is (re)tried and when next.
struct address_state {
  bool pending = false;
  int64_t next_try_us = 0;
  std::chrono::milliseconds backoff{0};
  uint32_t failures = 0;
};

struct member_state {
  static inline const char* name = "cadre.member";
  member_state() = default;
  member_options opts;
  std::unique_ptr<cluster::membership> members;
  // What each member last said about itself (handles included).
  std::map<std::string, node_info> infos;
  // Member handles watched for a lost link, by address, with the member's
  // name and incarnation.
  std::map<caf::actor_addr, std::pair<std::string, uint64_t>> watched;
  std::map<std::string, address_state> addresses;
  // Relays of address-less members' pools: member name -> tool -> relay.
  std::map<std::string, std::map<std::string, relay>> relays;
  // The local pools' load, refreshed each heartbeat.
  std::map<std::string, std::pair<uint32_t, uint32_t>> pool_load;
  int64_t started_us = 0;
  bool leaving = false;
};

using member_self = member_impl_actor::stateful_pointer<member_state>;

node_info self_info(member_self self) {
  auto& st = self->state;
  node_info me;
  me.name = st.opts.name;
  me.incarnation = st.opts.incarnation;
  me.address = st.opts.address;
  me.member = caf::actor_cast<caf::actor>(self);
  me.executions = caf::actor_cast<caf::actor>(st.opts.executions);
  me.bus = caf::actor_cast<caf::actor>(st.opts.bus);
  me.agents = st.opts.agents;
  me.profiles = st.opts.profiles;
  me.leaving = st.leaving ? 1 : 0;
  me.url = st.opts.url;
  if (st.opts.directory)
    for (auto& [tool, pool] : st.opts.directory->local()) {
      tool_offer o;
      o.name = tool;
      o.pool = caf::actor_cast<caf::actor>(pool);
      if (auto l = st.pool_load.find(tool); l != st.pool_load.end()) {
        o.workers = l->second.first;
        o.load = l->second.second;
      }
      me.load += o.load;
      me.tools.push_back(std::move(o));
    }
  // An address-less member's pools, for the members that cannot reach it;
  // their load is its own, not this node's.
  for (auto& [member, tools] : st.relays) {
    auto i = st.infos.find(member);
    if (i == st.infos.end() || i->second.leaving != 0
        || !st.members->placeable(member))
      continue;
    for (auto& o : i->second.tools)
      if (auto r = tools.find(o.name); r != tools.end()) {
        auto offer = o;
        offer.pool = caf::actor_cast<caf::actor>(r->second.handle);
        offer.relayed_from = member;
        me.tools.push_back(std::move(offer));
      }
  }
  return me;
}

void drop_relays(member_self self, const std::string& member) {
  auto& st = self->state;
  auto i = st.relays.find(member);
  if (i == st.relays.end())
    return;
  for (auto& [tool, r] : i->second)
    self->send_exit(r.handle, caf::exit_reason::user_shutdown);
  st.relays.erase(i);
}

// Keeps one relay per pool an address-less member offers; a pool whose
// handle changed (the program restarted it) gets a new relay.
void sync_relays(member_self self, const node_info& info) {
  auto& st = self->state;
  auto& current = st.relays[info.name];
  std::map<std::string, relay> next;
  for (auto& o : info.tools) {
    if (!o.pool)
      continue;
    auto i = current.find(o.name);
    if (i != current.end() && i->second.target == o.pool) {
      next.emplace(o.name, std::move(i->second));
      current.erase(i);
      continue;
    }
    auto handle = self->spawn(relay_impl, caf::actor_cast<tool_pool_actor>(o.pool),
                              caf::actor_cast<caf::actor>(self));
    next.emplace(o.name, relay{o.pool, std::move(handle)});
  }
  for (auto& [tool, r] : current)
    self->send_exit(r.handle, caf::exit_reason::user_shutdown);
  current = std::move(next);
}

void publish(member_self self, const cluster::transition& t) {
  auto& st = self->state;
  const auto* to = cluster::to_string(t.to);
  auto lvl = t.to == cluster::member_state::suspect
                || t.to == cluster::member_state::down
              ? log::level::warn
              : log::level::info;
  log::write(lvl, "cluster member " + std::string{to},
             {{"actor", "member"},
              {"node", t.name},
              {"address", t.address},
              {"incarnation", t.incarnation},
              {"from", cluster::to_string(t.from)},
              {"to", to},
              {"reason", t.reason}});
  if (st.opts.metrics)
    st.opts.metrics->add("cadre_cluster_transitions_total", {{"to", to}}, 1);
  if (!st.opts.bus)
    return;
  event ev;
  ev.time_us = now_us();
  ev.type = std::string{"member_"} + to;
  ev.payload = json_value{json{{"node", t.name},
                               {"address", t.address},
                               {"incarnation", t.incarnation},
                               {"from", cluster::to_string(t.from)},
                               {"reason", t.reason},
                               {"observer", st.opts.name}}};
  self->send(st.opts.bus, publish_atom_v, std::vector<event>{std::move(ev)});
}

// Tells the executions actor what `name` is now: where its executions go.
void sync_owner(member_self self, const std::string& name) {
  auto& st = self->state;
  if (!st.opts.owners)
    return;
  member_directory::entry e;
  if (auto i = st.infos.find(name); i != st.infos.end())
    e.executions = caf::actor_cast<executions_actor>(i->second.executions);
  auto* m = st.members->find(name);
  e.state = m ? cluster::to_string(m->state) : "unknown to this node";
  st.opts.owners->set(name, std::move(e));
}

// Acts on the member list's transitions: placement follows them.
void apply_transitions(member_self self, const std::vector<cluster::transition>& out) {
  auto& st = self->state;
  for (auto& t : out) {
    if (st.opts.directory) {
      switch (t.to) {
        case cluster::member_state::up:
          st.opts.directory->set_placeable(t.name, true);
          break;
        case cluster::member_state::suspect:
        case cluster::member_state::joining:
          st.opts.directory->set_placeable(t.name, false);
          break;
        case cluster::member_state::down:
        case cluster::member_state::left:
          st.opts.directory->withdraw(t.name);
          break;
      }
    }
    if (t.to == cluster::member_state::down
        || t.to == cluster::member_state::left)
      drop_relays(self, t.name);
    sync_owner(self, t.name);
    publish(self, t);
  }
}

void try_connect(member_self self, const std::string& address);

// A member spoke for itself: a join, a join's answer, or a heartbeat.
void heard_from(member_self self, node_info info) {
  auto& st = self->state;
  if (info.name.empty() || info.name == st.opts.name)
    return;
  std::vector<cluster::transition> out;
  auto now = now_us();
  if (!st.members->heard(info.name, info.incarnation, info.address, now,
                         out)) {
    apply_transitions(self, out);
    return;
  }
  if (info.member) {
    auto addr = info.member.address();
    if (st.watched.count(addr) == 0) {
      self->monitor(info.member);
      st.watched[addr] = {info.name, info.incarnation};
    }
  }
  if (auto a = st.addresses.find(info.address); a != st.addresses.end()) {
    a->second.failures = 0;
    a->second.backoff = std::chrono::milliseconds{0};
  }
  if (st.opts.directory) {
    std::vector<tool_directory::remote_offer> offers;
    for (auto& o : info.tools)
      offers.push_back({o.name, caf::actor_cast<tool_pool_actor>(o.pool),
                        o.workers, o.load});
    st.opts.directory->offer(info.name, std::move(offers));
    // A leaving member finishes what it runs but takes nothing new.
    st.opts.directory->set_placeable(info.name, info.leaving == 0);
  }
  if (info.address.empty())
    sync_relays(self, info);
  auto name = info.name;
  st.infos[name] = std::move(info);
  apply_transitions(self, out);
  sync_owner(self, name);
}

// Another member's list: names and addresses to connect to ourselves
// (a full mesh: CAF 0.17 routes through third nodes badly).
void learned_of(member_self self, const node_info& info) {
  auto& st = self->state;
  if (info.name == st.opts.name || info.address.empty())
    return;
  auto* known = st.members->find(info.name);
  if (known && known->state == cluster::member_state::up
      && known->incarnation >= info.incarnation)
    return;
  st.members->learned(info.name, info.address, now_us());
  try_connect(self, info.address);
}

bool split_address(const std::string& address, std::string& host,
                   uint16_t& port) {
  auto colon = address.rfind(':');
  if (colon == std::string::npos || colon == 0)
    return false;
  host = address.substr(0, colon);
  if (host.size() > 2 && host.front() == '[' && host.back() == ']')
    host = host.substr(1, host.size() - 2);
  try {
    auto p = std::stoul(address.substr(colon + 1));
    if (p == 0 || p > 65535)
      return false;
    port = static_cast<uint16_t>(p);
  } catch (...) {
    return false;
  }
  return true;
}

void connect_failed(member_self self, const std::string& address,
                    const std::string& why) {
  auto& st = self->state;
  auto& a = st.addresses[address];
  a.pending = false;
  ++a.failures;
  a.backoff = a.backoff.count() == 0
                ? st.opts.retry_min
                : std::min(a.backoff * 2, st.opts.retry_max);
  a.next_try_us = now_us() + a.backoff.count() * 1000;
  // The first failures are expected while a cluster starts; a seed that
  // stays away is worth a warning now and then.
  if (a.failures == 1 || a.failures % 10 == 0)
    log::warn("cannot reach cluster member; retrying",
              {{"actor", "member"}, {"address", address},
               {"attempts", a.failures}, {"retry_in_ms", a.backoff.count()},
               {"reason", why}});
}

// Connects to the member published at `address` and joins it.
void try_connect(member_self self, const std::string& address) {
  auto& st = self->state;
  if (address.empty() || address == st.opts.address || !st.opts.connector)
    return;
  auto& a = st.addresses[address];
  if (a.pending || a.next_try_us > now_us())
    return;
  std::string host;
  uint16_t port = 0;
  if (!split_address(address, host, port)) {
    a.next_try_us = INT64_MAX;
    log::error("not a cluster address (HOST:PORT)",
               {{"actor", "member"}, {"address", address}});
    return;
  }
  a.pending = true;
  self
    ->request(st.opts.connector, connect_deadline, caf::connect_atom_v, host,
              port)
    .then(
      [=](caf::node_id& nid, caf::strong_actor_ptr& ptr,
          std::set<std::string>&) {
        if (nid == self->home_system().node()) {
          // A seed list names every node, this one too.
          self->state.addresses[address].pending = false;
          self->state.addresses[address].next_try_us = INT64_MAX;
          return;
        }
        if (!ptr) {
          connect_failed(self, address, "no cadre member is published there");
          return;
        }
        auto peer = caf::actor_cast<member_actor>(ptr);
        self->request(peer, connect_deadline, join_atom_v, self_info(self))
          .then(
            [=](std::vector<node_info>& list) {
              auto& a = self->state.addresses[address];
              a.pending = false;
              // A seed written differently from the address its node
              // advertises stays "unlinked": joined again at most this
              // often, not at every heartbeat.
              a.next_try_us = now_us() + self->state.opts.retry_max.count()
                                           * 1000;
              if (list.empty())
                return;
              // The first entry is the peer itself; the others it knows.
              heard_from(self, list.front());
              for (size_t i = 1; i < list.size(); ++i)
                learned_of(self, list[i]);
            },
            [=](caf::error& err) {
              connect_failed(self, address, to_string(err));
            });
      },
      [=](caf::error& err) {
        if (err == caf::sec::incompatible_application_ids)
          connect_failed(self, address,
                         "refused at the handshake: it belongs to another "
                         "cluster (cluster.name) or runs another protocol "
                         "version");
        else
          connect_failed(self, address, to_string(err));
      });
}

// Asks the local pools for their load; the next heartbeat carries it.
void refresh_load(member_self self) {
  auto& st = self->state;
  if (!st.opts.directory)
    return;
  for (auto& [tool, pool] : st.opts.directory->local()) {
    auto name = tool;
    self->request(pool, local_deadline, describe_atom_v)
      .then(
        [=](json_value& d) {
          const auto& j = d.get();
          auto workers = j.value("workers", uint64_t{0});
          auto load = j.value("busy", uint64_t{0}) + j.value("queued", uint64_t{0});
          self->state.pool_load[name]
            = {static_cast<uint32_t>(workers), static_cast<uint32_t>(load)};
        },
        [](caf::error&) {});
  }
}

void on_tick(member_self self) {
  auto& st = self->state;
  auto now = now_us();
  refresh_load(self);
  auto me = self_info(self);
  std::set<std::string> linked_addresses;
  for (auto& [addr, who] : st.watched) {
    auto* m = st.members->find(who.first);
    if (!m || m->incarnation != who.second)
      continue;
    linked_addresses.insert(m->address);
    if (auto i = st.infos.find(who.first); i != st.infos.end()
        && i->second.member)
      self->send(caf::actor_cast<member_actor>(i->second.member),
                 heartbeat_atom_v, me);
  }
  // Seeds and members whose link is gone are tried again (with backoff):
  // a node that was frozen or partitioned rejoins this way.
  for (auto& seed : st.opts.seeds)
    if (linked_addresses.count(seed) == 0)
      try_connect(self, seed);
  for (auto& [name, m] : st.members->members())
    if (!m.self && m.state != cluster::member_state::left
        && linked_addresses.count(m.address) == 0)
      try_connect(self, m.address);
  std::vector<cluster::transition> out;
  st.members->tick(now, out);
  for (auto& t : out)
    if (t.to == cluster::member_state::down
        || t.to == cluster::member_state::left)
      st.infos.erase(t.name);
  apply_transitions(self, out);
  self->delayed_send(self, st.opts.heartbeat_interval, timer_atom_v);
}

json nodes_view(member_self self) {
  auto& st = self->state;
  auto now = now_us();
  json out = json::array();
  for (auto& [name, m] : st.members->members()) {
    json node{{"name", name},
              {"address", m.address},
              {"state", cluster::to_string(m.state)},
              {"incarnation", m.incarnation},
              {"self", m.self}};
    node_info info;
    if (m.self)
      info = self_info(self);
    else if (auto i = st.infos.find(name); i != st.infos.end())
      info = i->second;
    json tools = json::array();
    for (auto& o : info.tools) {
      json t{{"name", o.name}, {"workers", o.workers}, {"load", o.load}};
      if (!o.relayed_from.empty())
        t["relayed_from"] = o.relayed_from;
      tools.push_back(std::move(t));
    }
    node["tools"] = std::move(tools);
    node["agents"] = info.agents;
    node["profiles"] = info.profiles;
    node["load"] = info.load;
    node["leaving"] = info.leaving != 0;
    node["url"] = info.url;
    auto since = m.self ? st.started_us : m.first_heard_us;
    node["uptime_s"] = since > 0 ? (now - since) / 1000000 : 0;
    if (!m.self)
      node["last_heard_ms"] = m.last_heard_us > 0
                                ? (now - m.last_heard_us) / 1000
                                : -1;
    out.push_back(std::move(node));
  }
  return out;
}

member_impl_actor::behavior_type member_impl(member_self self,
                                             member_options opts) {
  auto& st = self->state;
  st.opts = std::move(opts);
  st.started_us = now_us();
  st.members = std::make_unique<cluster::membership>(
    st.opts.name, st.opts.incarnation, st.opts.address, st.opts.membership);
  if (st.opts.owners)
    st.opts.owners->clear();
  self->set_down_handler([=](caf::down_msg& dm) {
    auto& st = self->state;
    auto i = st.watched.find(dm.source);
    if (i == st.watched.end())
      return;
    auto [name, incarnation] = i->second;
    st.watched.erase(i);
    std::vector<cluster::transition> out;
    st.members->link_lost(name, incarnation, now_us(), out);
    apply_transitions(self, out);
  });
  self->send(self, timer_atom_v);
  return {
    [=](join_atom, node_info& peer) -> std::vector<node_info> {
      auto peer_copy = peer;
      heard_from(self, std::move(peer));
      std::vector<node_info> out{self_info(self)};
      for (auto& [name, info] : self->state.infos)
        if (name != peer_copy.name
            && self->state.members->placeable(name))
          out.push_back(info);
      return out;
    },
    [=](heartbeat_atom, node_info& peer) { heard_from(self, std::move(peer)); },
    [=](leave_atom, const std::string& name, uint64_t incarnation) {
      auto& st = self->state;
      std::vector<cluster::transition> out;
      st.members->left(name, incarnation, now_us(), out);
      st.infos.erase(name);
      apply_transitions(self, out);
    },
    [=](get_atom, nodes_atom) { return json_value{nodes_view(self)}; },
    [=](get_atom) { return self_info(self); },
    [=](leave_atom) {
      auto& st = self->state;
      st.leaving = true;
      for (auto& [name, info] : st.infos)
        if (info.member)
          self->send(caf::actor_cast<member_actor>(info.member), leave_atom_v,
                     st.opts.name, st.opts.incarnation);
      log::info("leaving the cluster",
                {{"actor", "member"}, {"node", st.opts.name},
                 {"members_told", st.infos.size()}});
      return true;
    },
    [=](put_atom, std::string& url) { self->state.opts.url = std::move(url); },
    [=](timer_atom) { on_tick(self); },
    [=](seed_atom, const std::string& address) {
      try_connect(self, address);
    },
  };
}

} // namespace

member_actor spawn_member(caf::actor_system& sys, member_options opts) {
  return caf::actor_cast<member_actor>(
    sys.spawn(member_impl, std::move(opts)));
}

} // namespace cadre::actors
