#include "cadre/runtime/node.hpp"

#include <caf/actor_system.hpp>
#include <caf/actor_system_config.hpp>
#include <caf/scoped_actor.hpp>

#include "cadre/actors/spawn.hpp"
#include "cadre/messages/register_types.hpp"
#include "cadre/persistence/event_store.hpp"
#include "cadre/tools/tool_registry.hpp"

namespace cadre::runtime {

struct node::impl {
  config::node_config cfg;
  std::unique_ptr<caf::actor_system_config> sys_cfg;
  std::unique_ptr<caf::actor_system> sys;
  tools::tool_registry registry;
  std::shared_ptr<persistence::event_store> raw_store;
  std::shared_ptr<actors::tool_directory> pools;
  event_bus_actor bus;
  event_store_actor store;
  executions_actor executions;
  std::vector<std::string> resumed;

  ~impl() {
    if (!sys)
      return;
    // Stop in reverse start order: entry point, pools, store, bus.
    auto stop = [&](const auto& handle) {
      if (!handle)
        return;
      caf::scoped_actor self{*sys};
      self->monitor(handle);
      self->send_exit(handle, caf::exit_reason::user_shutdown);
      self->receive([](const caf::down_msg&) {});
    };
    stop(executions);
    if (pools)
      for (auto& [name, pool] : *pools)
        stop(pool);
    stop(store);
    stop(bus);
    // Detached actors' threads end only when the last handle is gone.
    executions = nullptr;
    pools.reset();
    store = nullptr;
    bus = nullptr;
    sys.reset();
  }
};

node::node(std::unique_ptr<impl> ptr) : impl_(std::move(ptr)) {
}

node::~node() = default;

expected<std::unique_ptr<node>> node::start(const config::node_config& cfg) {
  auto st = std::make_unique<impl>();
  st->cfg = cfg;
  tools::register_builtin_tools(st->registry);
  auto store = persistence::event_store::open(
    persistence::store_options{cfg.store_dir, cfg.store_sync});
  if (!store)
    return store.error();
  st->raw_store = std::move(*store);
  st->sys_cfg = std::make_unique<caf::actor_system_config>();
  register_types(*st->sys_cfg);
  if (cfg.scheduler_threads > 0)
    st->sys_cfg->set("scheduler.max-threads", cfg.scheduler_threads);
  st->sys_cfg->set("logger.verbosity", caf::atom("quiet"));
  st->sys = std::make_unique<caf::actor_system>(*st->sys_cfg);
  auto& sys = *st->sys;
  st->bus = actors::spawn_event_bus(sys);
  st->store = actors::spawn_event_store(sys, st->raw_store, st->bus);
  st->pools = std::make_shared<actors::tool_directory>();
  for (const auto& name : st->registry.names()) {
    actors::pool_options opts;
    opts.workers = cfg.default_workers;
    json settings = json::object();
    if (auto i = cfg.tools.find(name); i != cfg.tools.end()) {
      if (i->second.workers > 0)
        opts.workers = i->second.workers;
      settings = i->second.settings;
    }
    auto pool = actors::spawn_tool_pool(sys, st->registry, name,
                                        json_value{settings}, opts);
    if (!pool)
      return make_error(errc::invalid_config,
                        "tools." + name + ": " + message_of(pool.error()));
    st->pools->emplace(name, std::move(*pool));
  }
  actors::executions_options eopts;
  eopts.max_restarts = cfg.max_restarts;
  eopts.restart_window_ms = cfg.restart_window_ms;
  st->executions = actors::spawn_executions(sys, st->store, st->bus,
                                            st->pools, eopts);
  caf::scoped_actor self{sys};
  caf::error failure;
  self->request(st->executions, caf::infinite, resume_atom_v)
    .receive([&](std::vector<std::string>& ids) { st->resumed = ids; },
             [&](caf::error& err) { failure = std::move(err); });
  if (failure)
    return failure;
  return std::unique_ptr<node>{new node(std::move(st))};
}

caf::actor_system& node::system() {
  return *impl_->sys;
}

executions_actor node::executions() const {
  return impl_->executions;
}

event_bus_actor node::bus() const {
  return impl_->bus;
}

event_store_actor node::store() const {
  return impl_->store;
}

const tools::tool_registry& node::registry() const {
  return impl_->registry;
}

std::vector<std::string> node::tool_names() const {
  std::vector<std::string> out;
  for (auto& [name, pool] : *impl_->pools)
    out.push_back(name);
  return out;
}

json node::describe_tools() {
  json out = json::array();
  caf::scoped_actor self{*impl_->sys};
  for (auto& [name, pool] : *impl_->pools)
    self->request(pool, caf::infinite, describe_atom_v)
      .receive([&](json_value& d) { out.push_back(d.get()); },
               [&](caf::error& err) {
                 out.push_back(json{{"name", name}, {"error", describe(err)}});
               });
  return out;
}

json node::tree() {
  json pools = json::array();
  for (auto& [name, pool] : *impl_->pools)
    pools.push_back(json{{"id", "pool." + name}, {"type", "supervisor"}});
  return json{{"name", "node"},
              {"children",
               json::array({json{{"id", "event_bus"}, {"type", "worker"}},
                            json{{"id", "event_store"}, {"type", "worker"}},
                            json{{"id", "tools"}, {"children", pools}},
                            json{{"id", "executions"},
                                 {"type", "supervisor"}}})}};
}

const std::vector<std::string>& node::resumed() const {
  return impl_->resumed;
}

} // namespace cadre::runtime
