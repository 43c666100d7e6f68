#include <caf/actor_system.hpp>
#include <caf/typed_event_based_actor.hpp>

#include "cadre/actors/spawn.hpp"
#include "cadre/persistence/event_store.hpp"
#include "cadre/workflow/machine.hpp"

namespace cadre::actors {

namespace {

// The store's own interface plus the flush it sends itself.
using store_impl_actor
  = event_store_actor::extend<caf::reacts_to<flush_atom>>;

struct event_store_state {
  static inline const char* name = "cadre.event_store";
  // Not an aggregate: CAF would try to build it from the actor pointer.
  event_store_state() = default;
  std::shared_ptr<persistence::event_store> store;
  event_bus_actor bus;
  std::vector<append_request> pending;
  std::vector<caf::typed_response_promise<uint64_t>> promises;
  bool flush_queued = false;
};

template <class T>
caf::result<T> reply(expected<T>&& x) {
  if (x)
    return std::move(*x);
  return std::move(x.error());
}

store_impl_actor::behavior_type
event_store_impl(store_impl_actor::stateful_pointer<event_store_state> self,
                 std::shared_ptr<persistence::event_store> store,
                 event_bus_actor bus) {
  self->state.store = std::move(store);
  self->state.bus = std::move(bus);
  return {
    [=](append_atom, append_request& req) -> caf::result<uint64_t> {
      auto& st = self->state;
      // Group commit: the flush goes behind every append already queued, so
      // all of them are written by one WriteBatch.
      st.pending.emplace_back(std::move(req));
      st.promises.emplace_back(self->make_response_promise<uint64_t>());
      if (!st.flush_queued) {
        st.flush_queued = true;
        self->send(self, flush_atom_v);
      }
      return st.promises.back();
    },
    [=](flush_atom) {
      auto& st = self->state;
      st.flush_queued = false;
      auto group = std::move(st.pending);
      auto promises = std::move(st.promises);
      st.pending.clear();
      st.promises.clear();
      auto results = st.store->append_group(group);
      std::vector<event> published;
      if (st.bus) {
        size_t n = 0;
        for (const auto& req : group)
          n += req.events.size();
        published.reserve(n);
      }
      for (size_t i = 0; i < group.size(); ++i) {
        if (results[i]) {
          promises[i].deliver(*results[i]);
          if (st.bus)
            for (auto& ev : group[i].events)
              // A snapshot is a copy of state for readers of the store,
              // not news for subscribers.
              if (ev.type != workflow::events::snapshot
                  && ev.type != workflow::events::snapshot_part)
                published.emplace_back(std::move(ev));
        } else {
          promises[i].deliver(results[i].error());
        }
      }
      if (!published.empty())
        self->send(st.bus, publish_atom_v, std::move(published));
    },
    [=](read_atom, const std::string& id, uint64_t from,
        uint64_t max) -> caf::result<std::vector<event>> {
      return reply(self->state.store->read(id, from, max));
    },
    [=](get_atom, read_atom, const std::string& id) -> caf::result<uint64_t> {
      return reply(self->state.store->last_seq(id));
    },
    [=](list_atom, const execution_filter& filter)
      -> caf::result<std::vector<execution_info>> {
      return reply(self->state.store->list(filter));
    },
    [=](get_atom, const std::string& id) -> caf::result<execution_info> {
      return reply(self->state.store->get(id));
    },
    [=](get_atom, submit_atom,
        const std::string& key) -> caf::result<std::string> {
      return reply(self->state.store->find_by_idempotency_key(key));
    },
    [=](put_atom, const definition_record& def) -> caf::result<bool> {
      if (auto r = self->state.store->put_definition(def); !r)
        return r.error();
      return true;
    },
    [=](get_atom, const std::string& name,
        const std::string& version) -> caf::result<definition_record> {
      return reply(self->state.store->get_definition(name, version));
    },
    [=](list_atom, put_atom, const std::string& name)
      -> caf::result<std::vector<definition_record>> {
      return reply(self->state.store->list_definitions(name));
    },
    [=](delete_atom, const std::string& name) -> caf::result<uint64_t> {
      auto r = self->state.store->delete_definition(name);
      if (!r)
        return r.error();
      return static_cast<uint64_t>(*r);
    },
    [=](delete_atom, read_atom,
        const std::string& name) -> caf::result<uint64_t> {
      return reply(self->state.store->erase_unindexed(name));
    },
  };
}

} // namespace

event_store_actor
spawn_event_store(caf::actor_system& sys,
                  std::shared_ptr<persistence::event_store> store,
                  event_bus_actor bus) {
  return sys.spawn<caf::detached>(event_store_impl, std::move(store),
                                  std::move(bus));
}

} // namespace cadre::actors
