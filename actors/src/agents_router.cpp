// The agents actor: the entry point for agent turns. It checks a turn's
// spec, picks the agent id its memory_scope names, and routes the turn to
// that agent's actor (agent.cpp), which it starts, watches and restarts
// (dynamic_children, the one restart mechanism for children made on demand);
// a turn whose agent died is sent again to its successor.

#include <chrono>
#include <memory>

#include <caf/actor_system.hpp>
#include <caf/typed_event_based_actor.hpp>

#include "agent.hpp"
#include "agent_metrics.hpp"
#include "cadre/actors/deadlines.hpp"
#include "cadre/actors/dynamic_children.hpp"
#include "cadre/actors/spawn.hpp"
#include "cadre/actors/supervisor.hpp"
#include "cadre/log/log.hpp"
#include "cadre/workflow/agent_machine.hpp"
#include "cadre/workflow/agent_spec.hpp"

namespace cadre::actors {

namespace {

struct agents_state {
  static inline const char* name = "cadre.agents";
  agents_state() = default;
  event_store_actor store;
  event_bus_actor bus;
  std::shared_ptr<const tool_directory> tools;
  std::shared_ptr<const agents_options> opts;
  // The agents, one per agent id; made in agents_impl once opts are known.
  std::unique_ptr<dynamic_children<agent_actor>> children;
};

using agents_self = agents_actor::stateful_pointer<agents_state>;

agent_actor agent_of(agents_self self, const std::string& id) {
  auto& st = self->state;
  auto handle = st.children->get(id);
  if (!handle) {
    handle = spawn_agent(self->system(), id, st.store, st.bus, st.tools,
                         st.opts);
    self->monitor(handle);
    st.children->started(id, handle);
  }
  return handle;
}

// A turn whose agent died waits for its successor, which resumes it from
// the log; a turn for an agent given up is refused until the window passes.
void route(agents_self self, std::string id, agent_turn turn,
           caf::typed_response_promise<task_result> promise, int tries) {
  auto& st = self->state;
  if (!st.children->allows(id, self->clock().now())) {
    log::warn("agent keeps crashing; turn refused",
              {{"actor", "agents"}, {"agent", turn.agent}, {"agent_id", id},
               {"execution", turn.execution_id}, {"task", turn.task_id},
               {"restarts", st.children->restarts(id)}});
    promise.deliver(make_error(errc::unavailable,
                               "agent " + id + " keeps crashing; its turns "
                                               "wait in its log"));
    return;
  }
  auto handle = agent_of(self, id);
  // caf::infinite: a turn is bounded by its task's deadline and the
  // agent's max_iterations, each call inside it by its own timeout.
  self->request(handle, caf::infinite, run_atom_v, turn)
    .then([=](task_result& r) mutable { promise.deliver(std::move(r)); },
          [=](caf::error& err) mutable {
            if (err == caf::sec::request_receiver_down && tries > 0)
              self->state.children->await_successor(id, handle, [=] {
                route(self, id, turn, promise, tries - 1);
              });
            else
              promise.deliver(std::move(err));
          });
}

// The memory of agent `id`. An agent that stopped (idle, or crashed) with
// the question in its mailbox leaves it to its successor, as a turn does.
void ask_agent(agents_self self, std::string id,
               caf::typed_response_promise<json_value> promise, int tries) {
  auto handle = agent_of(self, id);
  self->request(handle, local_deadline, get_atom_v)
    .then([=](json_value& v) mutable { promise.deliver(std::move(v)); },
          [=](caf::error& err) mutable {
            if (err == caf::sec::request_receiver_down && tries > 0)
              self->state.children->await_successor(id, handle, [=] {
                ask_agent(self, id, promise, tries - 1);
              });
            else
              promise.deliver(std::move(err));
          });
}

// An agent not running is started only when it has a log: a question about
// an unknown id (any client may ask) leaves no actor behind for
// idle_timeout, and writes no log.
void ask_memory(agents_self self, std::string id,
                caf::typed_response_promise<json_value> promise) {
  if (self->state.children->get(id)) {
    ask_agent(self, std::move(id), std::move(promise), 5);
    return;
  }
  self->request(self->state.store, local_deadline, get_atom_v, read_atom_v,
                workflow::agent_log_of(id))
    .then(
      [=](uint64_t last) mutable {
        if (last == 0)
          promise.deliver(make_error(errc::not_found,
                                     "agent " + id + " has no log"));
        else
          ask_agent(self, id, promise, 5);
      },
      [=](caf::error& err) mutable { promise.deliver(std::move(err)); });
}

// Agents restart lazily: the next turn (or one waiting) starts the
// successor, unless the agent is given up.
void on_agent_down(agents_self self, const caf::down_msg& msg) {
  auto& st = self->state;
  auto down = st.children->on_down(msg, self->clock().now());
  if (!down)
    return;
  if (down->exit != child_exit::normal) {
    restart_report r;
    r.supervisor = "agents";
    r.child = "agent " + down->id;
    r.reason = describe(msg.reason);
    r.restarts = down->restarts;
    r.group = {down->id};
    if (down->exit == child_exit::restart)
      log::info("agent restarted", {{"actor", "agents"},
                                    {"agent_id", down->id},
                                    {"restarts", down->restarts},
                                    {"reason", r.reason}});
    else
      log::warn("agent keeps crashing; its turns are refused until the "
                "restart window has passed",
                {{"actor", "agents"}, {"agent_id", down->id},
                 {"restarts", down->restarts},
                 {"window_ms", st.opts->restart_window_ms},
                 {"reason", r.reason}});
    self->send(st.bus, publish_atom_v,
               std::vector<event>{restart_event(r)});
  }
  for (auto& f : down->waiting)
    f();
}

agents_actor::behavior_type
agents_impl(agents_self self, event_store_actor store, event_bus_actor bus,
            std::shared_ptr<const tool_directory> tools,
            std::shared_ptr<const agents_options> opts) {
  auto& st = self->state;
  st.store = std::move(store);
  st.bus = std::move(bus);
  st.tools = std::move(tools);
  st.opts = std::move(opts);
  st.children = std::make_unique<dynamic_children<agent_actor>>(
    st.opts->max_restarts,
    std::chrono::milliseconds{st.opts->restart_window_ms});
  self->set_down_handler(
    [=](const caf::down_msg& msg) { on_agent_down(self, msg); });
  return {
    [=](run_atom, agent_turn& turn) -> caf::result<task_result> {
      auto& st = self->state;
      if (turn.spec.is_null()) {
        auto i = st.opts->agents.find(turn.agent);
        if (i == st.opts->agents.end())
          return make_error(errc::not_found,
                            "agent '" + turn.agent
                              + "' is not defined (in the workflow's "
                                "'agents:' or the node config's)");
        turn.spec = json_value{*i};
      }
      workflow::agent_spec spec;
      workflow::agent_check check;
      auto dir = st.tools;
      check.tool_exists = [dir](const std::string& n) {
        return dir && dir->has(n);
      };
      auto problems = workflow::parse_agent_spec(turn.agent, turn.spec.get(),
                                                 spec, check);
      if (!problems.empty()) {
        std::string msg = "agent " + turn.agent + ":";
        for (auto& p : problems)
          msg += " " + (p.pointer.empty() ? "/" : p.pointer) + ": "
                 + p.message + ";";
        msg.pop_back();
        return make_error(errc::invalid_config, msg);
      }
      auto id = workflow::agent_id_of(spec, turn.execution_id, turn.task_id,
                                      !turn.fork_of.empty());
      auto promise = self->make_response_promise<task_result>();
      route(self, id, std::move(turn), promise, 5);
      return promise;
    },
    [=](get_atom, const std::string& id) -> caf::result<json_value> {
      auto promise = self->make_response_promise<json_value>();
      ask_memory(self, id, promise);
      return promise;
    },
  };
}

} // namespace

agents_actor spawn_agents(caf::actor_system& sys, event_store_actor store,
                          event_bus_actor bus,
                          std::shared_ptr<const tool_directory> tools,
                          agents_options opts) {
  if (auto& m = opts.metrics)
    declare_agent_metrics(*m);
  return sys.spawn(agents_impl, std::move(store), std::move(bus),
                   std::move(tools),
                   std::make_shared<const agents_options>(std::move(opts)));
}

} // namespace cadre::actors
