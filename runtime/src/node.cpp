#include "cadre/runtime/node.hpp"

#include <chrono>
#include <map>
#include <mutex>
#include <utility>

#include <unistd.h>

#include <caf/actor_system.hpp>
#include <caf/actor_system_config.hpp>
#include <caf/scoped_actor.hpp>

#include "cadre/actors/metrics.hpp"
#include "cadre/actors/schedules.hpp"
#include "cadre/actors/spawn.hpp"
#include "cadre/actors/supervisor.hpp"
#include "cadre/log/log.hpp"
#include "cadre/messages/event.hpp"
#include "cadre/messages/register_types.hpp"
#include "cadre/persistence/event_store.hpp"
#include "cadre/tools/tool_registry.hpp"
#include "agents_config.hpp"
#include "schedules_config.hpp"
#include "secrets_config.hpp"
#include "store_holder.hpp"

namespace cadre::runtime {

namespace {

int64_t now_us() {
  using namespace std::chrono;
  return duration_cast<microseconds>(system_clock::now().time_since_epoch())
    .count();
}

} // namespace

// The current incarnation of each of the node's actors. Start functions
// write it (from the supervisors' threads); accessors and later siblings
// read it. A restart replaces an entry, and because the root is rest_for_one,
// every actor that captured an old handle is restarted after it.
struct live_handles {
  mutable std::mutex mtx;
  event_bus_actor bus;
  event_store_actor store;
  std::map<std::string, tool_pool_actor> pools;
  agents_actor agents;
  executions_actor executions;
  schedules_actor schedules;

  template <class T>
  T get(T live_handles::*member) const {
    std::lock_guard<std::mutex> guard{mtx};
    return this->*member;
  }
};

struct node::impl {
  config::node_config cfg;
  std::unique_ptr<caf::actor_system_config> sys_cfg;
  std::unique_ptr<caf::actor_system> sys;
  tools::tool_registry registry;
  std::shared_ptr<const tools::secret_store> secrets;
  std::shared_ptr<persistence::event_store> raw_store;
  std::shared_ptr<live_handles> live = std::make_shared<live_handles>();
  actors::agents_options agent_opts;
  // What the schedules actor runs (start_options::schedules).
  std::vector<actors::scheduled_workflow> schedules;
  std::shared_ptr<actors::metric_registry> metrics;
  actors::supervisor_actor root;
  std::vector<std::string> resumed;
  start_options opts;

  ~impl() {
    if (raw_store)
      clear_holder(cfg.store_dir);
    if (!sys)
      return;
    if (root) {
      // The root stops its children in reverse start order (schedules,
      // executions, agents, tools, store, bus), each within its shutdown
      // timeout.
      log::info("node stopping", {{"actor", "node"}, {"store", cfg.store_dir}});
      caf::scoped_actor self{*sys};
      self->monitor(root);
      self->send(root, stop_atom_v);
      self->receive([](const caf::down_msg&) {});
      log::info("node stopped",
                {{"actor", "node"}, {"store", cfg.store_dir}});
    }
    // Detached actors' threads end only when the last handle is gone.
    root = nullptr;
    {
      std::lock_guard<std::mutex> guard{live->mtx};
      live->schedules = nullptr;
      live->executions = nullptr;
      live->agents = nullptr;
      live->pools.clear();
      live->store = nullptr;
      live->bus = nullptr;
    }
    sys.reset();
  }

  caf::expected<caf::actor> start_tools(caf::actor_system& sys);
  std::vector<actors::child_spec> root_specs();
  std::function<void(const actors::restart_report&)> root_restart_hook();
};

// The tools supervisor starts asynchronously, after the root has gone on to
// start the executions actor, which needs every pool's handle. So the root's
// start function for "tools" spawns the pools itself, and the supervisor's
// children adopt them on their first start (later starts spawn afresh).
caf::expected<caf::actor> node::impl::start_tools(caf::actor_system& sys) {
  struct slot {
    std::mutex mtx;
    tool_pool_actor prespawned;
  };
  std::vector<actors::child_spec> specs;
  std::map<std::string, tool_pool_actor> pools;
  for (const auto& name : registry.names()) {
    actors::pool_options opts;
    opts.workers = cfg.default_workers;
    opts.secrets = secrets;
    json settings = json::object();
    if (auto i = cfg.tools.find(name); i != cfg.tools.end()) {
      if (i->second.workers > 0)
        opts.workers = i->second.workers;
      if (i->second.max_queue > 0)
        opts.max_queue = i->second.max_queue;
      settings = i->second.settings;
    }
    auto spawn = [this, name, opts, settings = json_value{settings}](
                   caf::actor_system& sys) -> caf::expected<tool_pool_actor> {
      auto pool = actors::spawn_tool_pool(sys, registry, name, settings, opts);
      if (!pool)
        return pool.error();
      return pool;
    };
    auto first = spawn(sys);
    if (!first) {
      for (auto& [done, hdl] : pools)
        caf::anon_send_exit(hdl, caf::exit_reason::user_shutdown);
      return first.error();
    }
    pools[name] = *first;
    auto adopted = std::make_shared<slot>();
    adopted->prespawned = *first;
    actors::child_spec spec;
    spec.id = name;
    spec.start = [this, name, spawn, adopted](const actors::start_context& ctx)
      -> caf::expected<caf::actor> {
      tool_pool_actor pool;
      {
        std::lock_guard<std::mutex> guard{adopted->mtx};
        pool = std::exchange(adopted->prespawned, tool_pool_actor{});
      }
      if (!pool) {
        auto fresh = spawn(ctx.system);
        if (!fresh)
          return fresh.error();
        pool = *fresh;
      }
      std::lock_guard<std::mutex> guard{live->mtx};
      live->pools[name] = pool;
      return caf::actor_cast<caf::actor>(pool);
    };
    specs.push_back(std::move(spec));
  }
  {
    std::lock_guard<std::mutex> guard{live->mtx};
    live->pools = pools;
  }
  actors::supervisor_options opts;
  opts.name = "tools";
  // A pool replaces its own workers; a pool that dies is a bug, so it
  // escalates at once and the root restarts the tools and the executions
  // that hold their handles (rest_for_one).
  opts.strategy = actors::restart_strategy::one_for_all;
  opts.max_restarts = 0;
  opts.on_restart = root_restart_hook();
  return caf::actor_cast<caf::actor>(
    actors::spawn_supervisor(sys, std::move(opts), std::move(specs)));
}

std::vector<actors::child_spec> node::impl::root_specs() {
  std::vector<actors::child_spec> specs;
  actors::child_spec bus;
  bus.id = "event_bus";
  bus.start = [this](const actors::start_context& ctx)
    -> caf::expected<caf::actor> {
    auto hdl = actors::spawn_event_bus(ctx.system);
    std::lock_guard<std::mutex> guard{live->mtx};
    live->bus = hdl;
    return caf::actor_cast<caf::actor>(hdl);
  };
  specs.push_back(std::move(bus));
  actors::child_spec store;
  store.id = "event_store";
  // Pending group commits finish before the store stops.
  store.shutdown = std::chrono::seconds{30};
  store.start = [this](const actors::start_context& ctx)
    -> caf::expected<caf::actor> {
    auto hdl = actors::spawn_event_store(ctx.system, raw_store,
                                         live->get(&live_handles::bus));
    std::lock_guard<std::mutex> guard{live->mtx};
    live->store = hdl;
    return caf::actor_cast<caf::actor>(hdl);
  };
  specs.push_back(std::move(store));
  actors::child_spec tools;
  tools.id = "tools";
  tools.type = actors::child_type::supervisor;
  tools.shutdown = actors::infinity;
  tools.start = [this](const actors::start_context& ctx) {
    return start_tools(ctx.system);
  };
  specs.push_back(std::move(tools));
  actors::child_spec agents;
  agents.id = "agents";
  // It supervises its agents itself (restart from their logs), like
  // executions its coordinators.
  agents.shutdown = std::chrono::seconds{30};
  agents.start = [this](const actors::start_context& ctx)
    -> caf::expected<caf::actor> {
    std::shared_ptr<const actors::tool_directory> pools;
    event_store_actor store_hdl;
    event_bus_actor bus_hdl;
    {
      std::lock_guard<std::mutex> guard{live->mtx};
      pools = std::make_shared<const actors::tool_directory>(
        live->pools.begin(), live->pools.end());
      store_hdl = live->store;
      bus_hdl = live->bus;
    }
    auto hdl = actors::spawn_agents(ctx.system, store_hdl, bus_hdl,
                                    std::move(pools), agent_opts);
    std::lock_guard<std::mutex> guard{live->mtx};
    live->agents = hdl;
    return caf::actor_cast<caf::actor>(hdl);
  };
  specs.push_back(std::move(agents));
  actors::child_spec executions;
  executions.id = "executions";
  // It supervises coordinators itself (restart from the log, intensity per
  // execution) and does not answer which_children, so the tree lists it as
  // a worker.
  executions.shutdown = std::chrono::seconds{30};
  executions.start = [this](const actors::start_context& ctx)
    -> caf::expected<caf::actor> {
    actors::executions_options eopts;
    eopts.max_restarts = cfg.max_restarts;
    eopts.restart_window_ms = cfg.restart_window_ms;
    eopts.metrics = metrics;
    eopts.snapshot_every = cfg.snapshot_every;
    eopts.secret_names
      = std::make_shared<const std::vector<std::string>>(secrets->names());
    std::shared_ptr<const actors::tool_directory> pools;
    event_store_actor store_hdl;
    event_bus_actor bus_hdl;
    agents_actor agents_hdl;
    {
      std::lock_guard<std::mutex> guard{live->mtx};
      pools = std::make_shared<const actors::tool_directory>(
        live->pools.begin(), live->pools.end());
      store_hdl = live->store;
      bus_hdl = live->bus;
      agents_hdl = live->agents;
    }
    auto hdl = actors::spawn_executions(ctx.system, store_hdl, bus_hdl,
                                        std::move(pools), agents_hdl, eopts);
    // A restarted executions actor picks up every unfinished execution
    // from the log, as a node start does (a node that runs only its own
    // executions recovers them on demand instead).
    if (ctx.restarts > 0 && opts.resume_all)
      caf::anon_send(hdl, resume_atom_v);
    std::lock_guard<std::mutex> guard{live->mtx};
    live->executions = hdl;
    return caf::actor_cast<caf::actor>(hdl);
  };
  specs.push_back(std::move(executions));
  if (!schedules.empty()) {
    actors::child_spec sched;
    sched.id = "schedules";
    sched.start = [this](const actors::start_context& ctx)
      -> caf::expected<caf::actor> {
      event_store_actor store_hdl;
      event_bus_actor bus_hdl;
      executions_actor executions_hdl;
      {
        std::lock_guard<std::mutex> guard{live->mtx};
        store_hdl = live->store;
        bus_hdl = live->bus;
        executions_hdl = live->executions;
      }
      // A restart folds each schedule's log again and goes on from there.
      auto hdl = actors::spawn_schedules(ctx.system, store_hdl, bus_hdl,
                                         executions_hdl, schedules,
                                         actors::schedules_options{});
      std::lock_guard<std::mutex> guard{live->mtx};
      live->schedules = hdl;
      return caf::actor_cast<caf::actor>(hdl);
    };
    specs.push_back(std::move(sched));
  }
  return specs;
}

std::function<void(const actors::restart_report&)>
node::impl::root_restart_hook() {
  // Restarts are node events: published on the bus under the empty
  // execution id, so `events --follow` on all executions shows them.
  return [live = live](const actors::restart_report& r) {
    json group = json::array();
    for (auto& id : r.group)
      group.push_back(id);
    event ev;
    ev.time_us = now_us();
    ev.type = "supervisor_restart";
    ev.payload = json_value{json{{"supervisor", r.supervisor},
                                 {"child", r.child},
                                 {"reason", r.reason},
                                 {"restarts", r.restarts},
                                 {"group", std::move(group)},
                                 {"delay_ms", r.delay.count()}}};
    if (auto bus = live->get(&live_handles::bus))
      caf::anon_send(bus, publish_atom_v, std::vector<event>{std::move(ev)});
  };
}

node::node(std::unique_ptr<impl> ptr) : impl_(std::move(ptr)) {
}

node::~node() = default;

expected<std::unique_ptr<node>> node::start(const config::node_config& cfg,
                                            start_options start_opts) {
  auto st = std::make_unique<impl>();
  st->cfg = cfg;
  st->opts = start_opts;
  tools::register_builtin_tools(st->registry);
  st->secrets = load_secrets(cfg);
  auto agent_opts = agents_options_of(cfg, st->registry);
  if (!agent_opts)
    return agent_opts.error();
  st->agent_opts = std::move(*agent_opts);
  if (start_opts.schedules) {
    auto scheduled = load_scheduled_workflows(cfg, st->registry);
    if (!scheduled)
      return scheduled.error();
    st->schedules = std::move(*scheduled);
  }
  st->metrics = std::make_shared<actors::metric_registry>();
  st->agent_opts.metrics = st->metrics;
  st->metrics->declare("cadre_tasks_total",
                       "Task outcomes: completed, failed (for good), retried, "
                       "skipped");
  auto store = persistence::event_store::open(
    persistence::store_options{cfg.store_dir, cfg.store_sync});
  if (!store) {
    // RocksDB says only that its LOCK is held; the holder file says by whom.
    if (auto who = read_holder(cfg.store_dir))
      return make_error(errc::storage_error,
                        holder_message(cfg.store_dir, *who));
    return store.error();
  }
  st->raw_store = std::move(*store);
  write_holder(cfg.store_dir,
               store_holder{static_cast<long>(::getpid()), start_opts.holder,
                            start_opts.url});
  st->sys_cfg = std::make_unique<caf::actor_system_config>();
  register_types(*st->sys_cfg);
  if (cfg.scheduler_threads > 0)
    st->sys_cfg->set("scheduler.max-threads", cfg.scheduler_threads);
  st->sys_cfg->set("logger.verbosity", caf::atom("quiet"));
  // An idle CAF 0.17 worker polls its queue with 50 us sleeps for 500 rounds
  // before it waits on a condition variable, and a message from a detached
  // actor (the event store's acks, blocking tools' results) waits out such a
  // sleep. Going straight to the condition variable, which the sender
  // notifies, halves a workflow step (bench/README.md).
  st->sys_cfg->set("work-stealing.moderate-poll-attempts", size_t{0});
  st->sys = std::make_unique<caf::actor_system>(*st->sys_cfg);
  auto& sys = *st->sys;
  actors::supervisor_options opts;
  opts.name = "node";
  // Later children hold handles of earlier ones (the store publishes on the
  // bus; executions use the store and the pools).
  opts.strategy = actors::restart_strategy::rest_for_one;
  opts.max_restarts = 5;
  opts.period = std::chrono::seconds{30};
  opts.on_restart = st->root_restart_hook();
  st->root = actors::spawn_supervisor(sys, std::move(opts), st->root_specs());
  // The root starts its children while it initializes. Once it answers,
  // either every child is up (the executions actor, started last, is set)
  // or a child failed and the root is stopping, to exit with its error.
  caf::scoped_actor self{sys};
  self->monitor(st->root);
  caf::error failure;
  // caf::infinite: the root answers once its children have started, and
  // each child's start ends (or fails) on its own.
  self->request(st->root, caf::infinite, count_children_atom_v)
    .receive([](json_value&) {},
             [&](caf::error& err) { failure = std::move(err); });
  if (failure || !st->live->get(&live_handles::executions)) {
    self->receive([&](caf::down_msg& dm) {
      if (dm.reason)
        failure = std::move(dm.reason);
    });
    if (!failure)
      failure = make_error(errc::internal, "the node's tree did not start");
    st->root = nullptr;
    return failure;
  }
  self->demonitor(st->root.address());
  if (start_opts.resume_all) {
    // Reading the index and starting coordinators is local work; a minute
    // means the store is stuck.
    self
      ->request(st->live->get(&live_handles::executions),
                std::chrono::minutes{1}, resume_atom_v)
      .receive([&](std::vector<std::string>& ids) { st->resumed = ids; },
               [&](caf::error& err) { failure = std::move(err); });
    if (failure)
      return failure;
  }
  log::info("node started",
            {{"actor", "node"},
             {"store", cfg.store_dir},
             {"sync", cfg.store_sync ? "true" : "false"},
             {"tools", st->live->get(&live_handles::pools).size()},
             {"executions_resumed", st->resumed.size()},
             {"schedules", st->schedules.size()}});
  return std::unique_ptr<node>{new node(std::move(st))};
}

caf::actor_system& node::system() {
  return *impl_->sys;
}

executions_actor node::executions() const {
  return impl_->live->get(&live_handles::executions);
}

event_bus_actor node::bus() const {
  return impl_->live->get(&live_handles::bus);
}

event_store_actor node::store() const {
  return impl_->live->get(&live_handles::store);
}

actors::metric_registry& node::metrics() const {
  return *impl_->metrics;
}

agents_actor node::agents() const {
  return impl_->live->get(&live_handles::agents);
}

schedules_actor node::schedules() const {
  return impl_->live->get(&live_handles::schedules);
}

actors::supervisor_actor node::root() const {
  return impl_->root;
}

const tools::tool_registry& node::registry() const {
  return impl_->registry;
}

tool_pool_actor node::pool(const std::string& name) const {
  std::lock_guard<std::mutex> guard{impl_->live->mtx};
  auto i = impl_->live->pools.find(name);
  return i == impl_->live->pools.end() ? tool_pool_actor{} : i->second;
}

std::vector<std::string> node::tool_names() const {
  std::vector<std::string> out;
  std::lock_guard<std::mutex> guard{impl_->live->mtx};
  for (auto& [name, pool] : impl_->live->pools)
    out.push_back(name);
  return out;
}

json node::describe_tools() {
  json out = json::array();
  std::map<std::string, tool_pool_actor> pools;
  {
    std::lock_guard<std::mutex> guard{impl_->live->mtx};
    pools = impl_->live->pools;
  }
  caf::scoped_actor self{*impl_->sys};
  for (auto& [name, pool] : pools)
    self->request(pool, std::chrono::seconds{10}, describe_atom_v)
      .receive([&](json_value& d) { out.push_back(d.get()); },
               [&](caf::error& err) {
                 out.push_back(json{{"name", name}, {"error", describe(err)}});
               });
  return out;
}

json node::tree() {
  caf::scoped_actor self{*impl_->sys};
  json out;
  self->request(impl_->root, std::chrono::seconds{10}, which_children_atom_v)
    .receive([&](json_value& t) { out = t.get(); },
             [&](caf::error& err) { out = json{{"error", describe(err)}}; });
  return out;
}

const std::vector<std::string>& node::resumed() const {
  return impl_->resumed;
}

const config::node_config& node::config() const {
  return impl_->cfg;
}

bool node::running() const {
  auto root = impl_->root;
  if (!root || !impl_->live->get(&live_handles::executions))
    return false;
  // The root answers while it runs; during a restart of the whole tree or
  // a shutdown it does not, within the deadline.
  caf::scoped_actor self{*impl_->sys};
  bool answered = false;
  self->request(root, std::chrono::seconds{2}, count_children_atom_v)
    .receive([&](json_value&) { answered = true; }, [](caf::error&) {});
  return answered;
}

} // namespace cadre::runtime
