#include "cadre/runtime/node.hpp"

#include <chrono>
#include <map>
#include <mutex>
#include <utility>

#include <unistd.h>

#include <caf/actor_system.hpp>
#include <caf/actor_system_config.hpp>
#include <caf/io/middleman.hpp>
#include <caf/openssl/manager.hpp>
#include <caf/openssl/publish.hpp>
#include <caf/scoped_actor.hpp>

#include "cadre/actors/cluster_member.hpp"
#include "cadre/actors/metrics.hpp"
#include "cadre/actors/schedules.hpp"
#include "cadre/actors/spawn.hpp"
#include "cadre/actors/supervisor.hpp"
#include "cadre/log/log.hpp"
#include "cadre/messages/cluster_protocol.hpp"
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

// What CAF 0.17 leaves off by default and a cluster needs
// (docs/cluster.md#configuration).
void configure_network(caf::actor_system_config& cfg,
                       const cluster_options& c) {
  cfg.load<caf::io::middleman>();
  // Nodes of another cluster or protocol version fail the handshake.
  cfg.set("middleman.app-identifiers",
          std::vector<std::string>{cluster_app_identifier(c.name)});
  // With CAF's defaults of 0 a frozen peer's connection is never closed;
  // these close it about when the member list says the peer is down.
  cfg.set("middleman.heartbeat-interval",
          caf::timespan{c.heartbeat_interval});
  cfg.set("middleman.connection-timeout", caf::timespan{c.down_after});
  // One worker deserializes everything on 2 cores; two double throughput.
  cfg.set("middleman.workers", size_t{2});
  // Members connect to each other directly (a full mesh); routes through
  // a third node are not used.
  cfg.set("middleman.enable-automatic-connections", false);
  if (c.tls()) {
    // With a CA, a certificate and a key CAF's OpenSSL module checks both
    // ends (mutual TLS). Without them it would fall back to anonymous TLS,
    // which authenticates no one, so cadre never loads it that way.
    cfg.load<caf::openssl::manager>();
    cfg.set("openssl.cafile", c.tls_ca);
    cfg.set("openssl.certificate", c.tls_cert);
    cfg.set("openssl.key", c.tls_key);
  }
}

// The actor that connects to other nodes: CAF's middleman actor, or its
// OpenSSL counterpart with TLS.
caf::actor connector_of(caf::actor_system& sys, const cluster_options& c) {
  if (c.tls())
    return caf::actor_cast<caf::actor>(sys.openssl_manager().actor_handle());
  return caf::actor_cast<caf::actor>(sys.middleman().actor_handle());
}

// Publishes the member on the cluster listener (TLS when configured).
caf::expected<uint16_t> publish_member(caf::actor_system& sys,
                                       const member_actor& member,
                                       const cluster_options& c) {
  if (c.tls())
    return caf::openssl::publish(member, c.listen_port,
                                 c.listen_host.c_str(), true);
  return sys.middleman().publish(member, c.listen_port,
                                 c.listen_host.c_str(), true);
}

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
  // Where calls go: these pools and what other members offer.
  std::shared_ptr<actors::tool_directory> directory;
  // Which member owns which executions; one for the node's life, kept by
  // the member, read by the executions actor.
  std::shared_ptr<actors::member_directory> owners
    = std::make_shared<actors::member_directory>();
  agents_actor agents;
  executions_actor executions;
  schedules_actor schedules;
  member_actor member;

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
      live->member = nullptr;
      live->schedules = nullptr;
      live->executions = nullptr;
      live->agents = nullptr;
      live->pools.clear();
      live->directory = nullptr;
      live->store = nullptr;
      live->bus = nullptr;
    }
    sys.reset();
  }

  caf::expected<caf::actor> start_tools(caf::actor_system& sys);
  std::vector<actors::child_spec> root_specs();
  actors::child_spec member_spec();
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
      // Checked by the tool's schema when the node started.
      auto pool = tools::pool_settings_of(i->second.settings);
      if (!pool.enabled)
        continue;
      if (pool.workers > 0)
        opts.workers = pool.workers;
      if (pool.max_queue > 0)
        opts.max_queue = pool.max_queue;
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
      if (live->directory)
        live->directory->add_local(name, pool);
      return caf::actor_cast<caf::actor>(pool);
    };
    specs.push_back(std::move(spec));
  }
  {
    std::lock_guard<std::mutex> guard{live->mtx};
    live->pools = pools;
    live->directory = std::make_shared<actors::tool_directory>(pools);
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
      pools = live->directory;
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
    if (opts.cluster.enabled) {
      eopts.id_suffix = "." + opts.cluster.node_name;
      eopts.owners = live->owners;
    }
    eopts.crash_loop_limit = cfg.crash_loop_limit;
    eopts.append_deadline = std::chrono::milliseconds{cfg.append_deadline_ms};
    eopts.secret_names
      = std::make_shared<const std::vector<std::string>>(secrets->names());
    std::shared_ptr<const actors::tool_directory> pools;
    event_store_actor store_hdl;
    event_bus_actor bus_hdl;
    agents_actor agents_hdl;
    {
      std::lock_guard<std::mutex> guard{live->mtx};
      pools = live->directory;
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
      actors::schedules_options sopts;
      sopts.append_deadline
        = std::chrono::milliseconds{cfg.append_deadline_ms};
      auto hdl = actors::spawn_schedules(ctx.system, store_hdl, bus_hdl,
                                         executions_hdl, schedules, sopts);
      std::lock_guard<std::mutex> guard{live->mtx};
      live->schedules = hdl;
      return caf::actor_cast<caf::actor>(hdl);
    };
    specs.push_back(std::move(sched));
  }
  if (opts.cluster.enabled)
    specs.push_back(member_spec());
  return specs;
}

// The member starts last: it offers the pools and names the executions
// actor and the bus, so a restart of any of them restarts it too
// (rest_for_one) and the others hear the new handles.
actors::child_spec node::impl::member_spec() {
  actors::child_spec spec;
  spec.id = "member";
  spec.start = [this](const actors::start_context& ctx)
    -> caf::expected<caf::actor> {
    const auto& c = opts.cluster;
    actors::member_options mo;
    mo.name = c.node_name;
    mo.incarnation = static_cast<uint64_t>(now_us());
    mo.address = c.address();
    mo.seeds = c.join;
    {
      std::lock_guard<std::mutex> guard{live->mtx};
      mo.url = opts.url;
    }
    mo.heartbeat_interval = c.heartbeat_interval;
    mo.membership.suspect_after_ms = c.suspect_after.count();
    mo.membership.down_after_ms = c.down_after.count();
    mo.connector = connector_of(ctx.system, c);
    mo.metrics = metrics;
    for (auto& [name, spec] : agent_opts.agents.items())
      mo.agents.push_back(name);
    for (auto& [name, profile] : agent_opts.profiles)
      mo.profiles.push_back(name);
    member_actor old;
    {
      std::lock_guard<std::mutex> guard{live->mtx};
      mo.directory = live->directory;
      mo.owners = live->owners;
      mo.executions = live->executions;
      mo.bus = live->bus;
      old = live->member;
    }
    auto hdl = actors::spawn_member(ctx.system, std::move(mo));
    if (old) {
      // A restarted member takes the old one's place on the listener. The
      // middleman runs on its own thread, so waiting for it here is short.
      ctx.system.middleman().unpublish(old, c.listen_port);
      auto port = publish_member(ctx.system, hdl, c);
      if (!port) {
        caf::anon_send_exit(hdl, caf::exit_reason::user_shutdown);
        return make_error(errc::unavailable,
                          "cluster listener " + c.address()
                            + ": " + ctx.system.render(port.error()));
      }
    }
    std::lock_guard<std::mutex> guard{live->mtx};
    live->member = hdl;
    return caf::actor_cast<caf::actor>(hdl);
  };
  return spec;
}

std::function<void(const actors::restart_report&)>
node::impl::root_restart_hook() {
  // Restarts are node events: published on the bus under the empty
  // execution id, so `events --follow` on all executions shows them.
  return [live = live](const actors::restart_report& r) {
    if (auto bus = live->get(&live_handles::bus))
      caf::anon_send(bus, publish_atom_v,
                     std::vector<event>{actors::restart_event(r)});
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
  for (auto& [name, tool] : start_opts.extra_tools)
    if (auto added = st->registry.add_extra(name, tool); !added)
      return added.error();
  // Each tool's settings against its schema, before anything starts:
  // "cadre.yaml: tools.ocr.dpi: must be an integer in [50, 1200]".
  for (const auto& [name, tool_cfg] : cfg.tools) {
    if (auto ok = st->registry.check_settings(name, tool_cfg.settings); !ok)
      return make_error(errc::invalid_config,
                        (cfg.source.empty() ? "" : cfg.source + ": ")
                          + message_of(ok.error()));
  }
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
  // Before any import can run: an import killed half-way left events
  // under an execution without an index entry, which no later import of
  // it would get past (docs/replay.md).
  if (auto gone = st->raw_store->erase_killed_imports(); !gone)
    log::warn("removing what a killed import left failed",
              {{"store", cfg.store_dir},
               {"error", message_of(gone.error())}});
  else
    for (const auto& line : *gone)
      log::warn(line, {{"store", cfg.store_dir}});
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
  // Spinning a little longer first (CAF's default is 100 polls) spares the
  // wake-up of a sleeping thread for a reply that comes within it, an event
  // store's ack above all: tens of microseconds on an idle virtual machine.
  st->sys_cfg->set("work-stealing.aggressive-poll-attempts",
                   cfg.scheduler_spin_polls);
  if (start_opts.cluster.enabled)
    configure_network(*st->sys_cfg, start_opts.cluster);
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
  if (start_opts.cluster.enabled) {
    const auto& c = start_opts.cluster;
    auto member = st->live->get(&live_handles::member);
    // Published, not registered: a peer's connect answers this handle
    // without a second round trip.
    auto port = publish_member(sys, member, c);
    if (!port)
      return make_error(errc::unavailable,
                        "cluster listener " + c.listen_host + ":"
                          + std::to_string(c.listen_port) + ": "
                          + sys.render(port.error()));
    log::info("cluster listening",
              {{"actor", "node"}, {"node", c.node_name},
               {"address", c.address()}, {"cluster", c.name},
               {"tls", c.tls() ? "mutual" : "off"},
               {"seeds", c.join.size()}});
  }
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

member_actor node::member() const {
  return impl_->live->get(&live_handles::member);
}

void node::advertise_url(const std::string& url) {
  member_actor member;
  {
    std::lock_guard<std::mutex> guard{impl_->live->mtx};
    impl_->opts.url = url;
    member = impl_->live->member;
  }
  if (member)
    caf::anon_send(member, put_atom_v, url);
}

const std::string& node::node_name() const {
  return impl_->opts.cluster.node_name;
}

json node::nodes() {
  if (auto member = impl_->live->get(&live_handles::member)) {
    caf::scoped_actor self{*impl_->sys};
    json out;
    self->request(member, std::chrono::seconds{10}, get_atom_v, nodes_atom_v)
      .receive([&](json_value& v) { out = v.get(); },
               [&](caf::error& err) {
                 out = json{{"error", describe(err)}};
               });
    return out;
  }
  json tools = json::array();
  for (auto& t : describe_tools())
    tools.push_back(json{{"name", t.value("name", std::string{})},
                         {"workers", t.value("workers", uint64_t{0})},
                         {"load", t.value("busy", uint64_t{0})
                                    + t.value("queued", uint64_t{0})}});
  json agents = json::array();
  for (auto& [name, spec] : impl_->agent_opts.agents.items())
    agents.push_back(name);
  json profiles = json::array();
  for (auto& [name, profile] : impl_->agent_opts.profiles)
    profiles.push_back(name);
  return json::array({json{{"name", "local"},
                           {"address", ""},
                           {"state", "up"},
                           {"incarnation", 0},
                           {"self", true},
                           {"tools", std::move(tools)},
                           {"agents", std::move(agents)},
                           {"profiles", std::move(profiles)}}});
}

void node::leave_cluster() {
  auto member = member_actor{};
  member = impl_->live->get(&live_handles::member);
  if (!member)
    return;
  caf::scoped_actor self{*impl_->sys};
  self->request(member, std::chrono::seconds{5}, leave_atom_v)
    .receive([](bool) {}, [](caf::error&) {});
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
  if (impl_->live->directory)
    return impl_->live->directory->names();
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
