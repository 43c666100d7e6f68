#include <algorithm>
#include <iterator>
#include <unordered_map>

#include <caf/actor_system.hpp>
#include <caf/typed_event_based_actor.hpp>

#include "cadre/actors/spawn.hpp"

namespace cadre::actors {

namespace {

struct event_bus_state {
  static inline const char* name = "cadre.event_bus";
  // Not an aggregate: CAF would try to build it from the actor pointer.
  event_bus_state() = default;
  // Execution id ("" for all) -> subscribers.
  std::unordered_map<std::string, std::vector<event_sink_actor>> subs;
  size_t total = 0;
};

event_bus_actor::behavior_type
event_bus_impl(event_bus_actor::stateful_pointer<event_bus_state> self) {
  // Keys without subscribers go, so streams of many executions leave no
  // entries behind.
  self->set_down_handler([=](const caf::down_msg& msg) {
    auto& subs = self->state.subs;
    for (auto i = subs.begin(); i != subs.end();) {
      auto& list = i->second;
      list.erase(std::remove_if(list.begin(), list.end(),
                                [&](const event_sink_actor& x) {
                                  return x.address() == msg.source;
                                }),
                 list.end());
      i = list.empty() ? subs.erase(i) : std::next(i);
    }
  });
  return {
    [=](subscribe_atom, const std::string& execution_id,
        const event_sink_actor& sink) {
      self->monitor(sink);
      self->state.subs[execution_id].push_back(sink);
    },
    [=](unsub_atom, const std::string& execution_id,
        const event_sink_actor& sink) {
      auto i = self->state.subs.find(execution_id);
      if (i == self->state.subs.end())
        return;
      auto& list = i->second;
      list.erase(std::remove(list.begin(), list.end(), sink), list.end());
      if (list.empty())
        self->state.subs.erase(i);
    },
    [=](publish_atom, std::vector<event>& events) {
      auto& subs = self->state.subs;
      if (subs.empty())
        return;
      auto all = subs.find("");
      bool by_execution = subs.size() > (all != subs.end() ? 1u : 0u);
      if (all != subs.end()) {
        // The payloads are shared; the last sink takes the vector itself
        // when no per-execution subscriber needs it.
        auto& sinks = all->second;
        for (size_t i = 0; i < sinks.size(); ++i)
          if (i + 1 == sinks.size() && !by_execution)
            self->send(sinks[i], event_atom_v, std::move(events));
          else
            self->send(sinks[i], event_atom_v, events);
      }
      if (!by_execution)
        return;
      // Per-execution subscribers get only their execution's events.
      std::unordered_map<std::string, std::vector<event>> by_id;
      for (auto& ev : events)
        if (subs.count(ev.execution_id))
          by_id[ev.execution_id].push_back(ev);
      for (auto& [id, evs] : by_id)
        for (auto& sink : subs[id])
          self->send(sink, event_atom_v, evs);
    },
  };
}

} // namespace

event_bus_actor spawn_event_bus(caf::actor_system& sys) {
  return sys.spawn(event_bus_impl);
}

} // namespace cadre::actors
