#include "cadre/actors/supervisor.hpp"

#include <algorithm>
#include <deque>
#include <memory>
#include <set>
#include <unordered_map>

#include <caf/actor_system.hpp>
#include <caf/event_based_actor.hpp>
#include <caf/exit_reason.hpp>
#include <caf/send.hpp>
#include <caf/stateful_actor.hpp>
#include <caf/system_messages.hpp>

#include "cadre/log/log.hpp"
#include "cadre/messages/error.hpp"
#include "cadre/messages/event.hpp"

namespace cadre::actors {

// -- enums --------------------------------------------------------------------

std::string to_string(restart_policy x) {
  switch (x) {
    case restart_policy::permanent:
      return "permanent";
    case restart_policy::transient:
      return "transient";
    case restart_policy::temporary:
      return "temporary";
  }
  return "?";
}

std::string to_string(child_type x) {
  return x == child_type::worker ? "worker" : "supervisor";
}

std::string to_string(restart_strategy x) {
  switch (x) {
    case restart_strategy::one_for_one:
      return "one_for_one";
    case restart_strategy::one_for_all:
      return "one_for_all";
    case restart_strategy::rest_for_one:
      return "rest_for_one";
    case restart_strategy::simple_one_for_one:
      return "simple_one_for_one";
  }
  return "?";
}

namespace {

using clock_type = caf::actor_clock::clock_type;
using time_point = caf::actor_clock::time_point;

bool is_normal_exit(const caf::error& reason) {
  return !reason || reason == caf::exit_reason::normal
         || reason == caf::exit_reason::user_shutdown;
}

int64_t to_ms(caf::timespan x) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(x).count();
}

// -- state --------------------------------------------------------------------

enum class child_status : uint8_t {
  running,    // alive
  stop_queued, // alive, waiting its turn to be stopped
  stopping,   // exit sent, waiting for its down message
  restarting, // dead, waiting for siblings to stop or for its backoff
  stopped,    // dead and not restarted
};

const char* status_name(child_status x) {
  switch (x) {
    case child_status::running:
      return "running";
    case child_status::stop_queued:
    case child_status::stopping:
      return "stopping";
    case child_status::restarting:
      return "restarting";
    case child_status::stopped:
      return "stopped";
  }
  return "?";
}

// What happens to a child once it is down after we stopped it.
enum class after_stop : uint8_t { restart, remove, keep_stopped };

struct child {
  child_spec spec;
  json_value args;
  caf::actor handle;
  child_status status = child_status::stopped;
  after_stop purpose = after_stop::keep_stopped;
  uint64_t incarnation = 0;
  uint64_t restarts = 0;
  uint32_t backoff_level = 0;
  time_point started_at;
  time_point restart_at;
  std::vector<caf::response_promise> terminate_rps;
};

using child_ptr = std::shared_ptr<child>;
using live_map = std::unordered_map<caf::actor_id, caf::actor>;

struct supervisor_state {
  static inline const char* name = "cadre.supervisor";
  // Not an aggregate: CAF would try to build it from the actor pointer.
  supervisor_state() = default;

  supervisor_options opts;
  child_spec pool_template;
  std::vector<child_ptr> children; // in start order
  std::unordered_map<std::string, child_ptr> by_id;
  std::unordered_map<caf::actor_id, child_ptr> by_actor;
  // Alive children, killed by an attached functor should this actor die
  // without stopping them (e.g. exit_reason::kill).
  std::shared_ptr<live_map> live = std::make_shared<live_map>();
  restart_intensity intensity{0, std::chrono::milliseconds{0}};
  uint64_t total_restarts = 0;
  uint64_t next_incarnation = 0;
  std::deque<std::string> stop_queue;
  std::string stopping; // id of the child being stopped, if any
  std::set<time_point> timers;
  bool shutting_down = false;
  bool done = false; // quit() was called
  caf::error shutdown_reason;
  std::vector<caf::response_promise> stop_rps;
};

using self_ptr = caf::stateful_actor<supervisor_state>*;

// -- the supervisor's logic ---------------------------------------------------

// Every function takes the actor pointer; state lives in self->state.
class logic {
public:
  explicit logic(self_ptr self) : self_(self), st_(self->state) {
    // nop
  }

  time_point now() const {
    return self_->clock().now();
  }

  bool ordered() const {
    return st_.opts.strategy == restart_strategy::one_for_all
           || st_.opts.strategy == restart_strategy::rest_for_one;
  }

  child_ptr find(const std::string& id) const {
    auto i = st_.by_id.find(id);
    return i == st_.by_id.end() ? nullptr : i->second;
  }

  // -- starting --------------------------------------------------------------

  caf::error start(child& c) {
    caf::expected<caf::actor> res{caf::actor{}};
    try {
      start_context ctx{self_->system(), c.spec.id, c.args,
                        caf::actor_cast<caf::actor>(self_), c.restarts};
      if (c.spec.start)
        res = c.spec.start(ctx);
      else
        res = make_error(errc::invalid_input, "no start function");
    } catch (const std::exception& e) {
      res = make_error(errc::internal,
                       std::string{"start function threw: "} + e.what());
    } catch (...) {
      res = make_error(errc::internal, "start function threw");
    }
    if (!res)
      return res.error();
    if (!*res)
      return make_error(errc::internal, "start function returned no actor");
    c.handle = std::move(*res);
    c.incarnation = ++st_.next_incarnation;
    c.status = child_status::running;
    c.started_at = now();
    self_->monitor(c.handle);
    st_.by_actor[c.handle.id()] = find(c.spec.id);
    st_.live->emplace(c.handle.id(), c.handle);
    return caf::none;
  }

  // Returns false if the intensity is exceeded.
  bool note_restart() {
    return st_.intensity.record(now());
  }

  caf::timespan backoff(child& c) {
    auto& b = st_.opts.backoff;
    if (b.initial.count() <= 0)
      return caf::timespan{0};
    if (c.started_at != time_point{} && now() - c.started_at >= st_.opts.period)
      c.backoff_level = 0;
    auto d = std::chrono::duration_cast<caf::timespan>(b.initial);
    auto cap = std::chrono::duration_cast<caf::timespan>(b.max);
    for (uint32_t i = 0; i < c.backoff_level && d < cap; ++i)
      d *= 2;
    ++c.backoff_level;
    return std::min(d, cap);
  }

  void report(child& c, const std::string& reason,
              std::vector<std::string> group, caf::timespan delay) {
    ++st_.total_restarts;
    restart_report r;
    r.supervisor = st_.opts.name;
    r.child = c.spec.id;
    r.reason = reason;
    r.restarts = c.restarts;
    r.group = std::move(group);
    r.delay = std::chrono::duration_cast<std::chrono::milliseconds>(delay);
    if (st_.opts.log)
      log::warn("restarting child", {{"actor", st_.opts.name},
                                     {"child", c.spec.id},
                                     {"restarts", c.restarts},
                                     {"delay_ms", to_ms(delay)},
                                     {"reason", reason}});
    if (st_.opts.on_restart)
      st_.opts.on_restart(r);
  }

  void schedule(time_point at) {
    if (!st_.timers.insert(at).second)
      return;
    auto delay = at - now();
    self_->delayed_send(self_, delay, restart_atom_v,
                        static_cast<int64_t>(at.time_since_epoch().count()));
  }

  void on_timer(int64_t at) {
    st_.timers.erase(time_point{clock_type::duration{at}});
    try_start_pending();
  }

  bool restart_stops_pending() const {
    for (auto& c : st_.children)
      if ((c->status == child_status::stop_queued
           || c->status == child_status::stopping)
          && c->purpose == after_stop::restart)
        return true;
    return false;
  }

  // Starts every restarting child whose time has come. For one_for_all and
  // rest_for_one, children start in order, so a later one waits for an
  // earlier one.
  void try_start_pending() {
    if (st_.shutting_down || restart_stops_pending())
      return;
    auto t = now();
    auto snapshot = st_.children;
    for (auto& c : snapshot) {
      if (st_.shutting_down)
        return;
      if (c->status != child_status::restarting)
        continue;
      if (c->restart_at > t) {
        schedule(c->restart_at);
        if (ordered())
          return;
        continue;
      }
      if (auto err = start(*c)) {
        auto reason = "start failed: " + describe(err);
        if (!note_restart()) {
          escalate(*c, reason);
          return;
        }
        ++c->restarts;
        auto delay = backoff(*c);
        c->restart_at = t + delay;
        report(*c, reason, {c->spec.id}, delay);
        schedule(c->restart_at);
        if (ordered())
          return;
      }
    }
  }

  // -- stopping --------------------------------------------------------------

  void queue_stop(child& c, after_stop purpose) {
    c.purpose = purpose;
    if (c.status == child_status::running) {
      c.status = child_status::stop_queued;
      st_.stop_queue.push_back(c.spec.id);
    }
  }

  void advance_stops() {
    while (st_.stopping.empty() && !st_.stop_queue.empty()) {
      auto id = std::move(st_.stop_queue.front());
      st_.stop_queue.pop_front();
      auto c = find(id);
      if (!c || !c->handle || c->status != child_status::stop_queued)
        continue;
      c->status = child_status::stopping;
      st_.stopping = id;
      if (c->spec.shutdown == brutal_kill) {
        self_->send_exit(c->handle, caf::exit_reason::kill);
      } else {
        self_->send_exit(c->handle, caf::exit_reason::user_shutdown);
        if (c->spec.shutdown != infinity)
          self_->delayed_send(self_, c->spec.shutdown, timer_atom_v,
                              c->incarnation);
      }
    }
    if (!st_.stopping.empty() || !st_.stop_queue.empty())
      return;
    if (st_.shutting_down)
      finish_shutdown();
    else
      try_start_pending();
  }

  void on_kill_timer(uint64_t inc) {
    for (auto& c : st_.children) {
      if (c->incarnation == inc && c->handle
          && c->status == child_status::stopping) {
        if (st_.opts.log)
          log::warn("child did not stop in time; killing it",
                    {{"actor", st_.opts.name},
                     {"child", c->spec.id},
                     {"shutdown_ms", c->spec.shutdown.count()}});
        self_->send_exit(c->handle, caf::exit_reason::kill);
      }
    }
  }

  void remove(child_ptr c) { // by value: callers may pass an element
    for (auto& rp : c->terminate_rps)
      rp.deliver(true);
    c->terminate_rps.clear();
    st_.by_id.erase(c->spec.id);
    auto& xs = st_.children;
    xs.erase(std::remove(xs.begin(), xs.end(), c), xs.end());
  }

  void begin_shutdown(caf::error reason) {
    if (st_.shutting_down)
      return;
    st_.shutting_down = true;
    st_.shutdown_reason = std::move(reason);
    st_.stop_queue.clear();
    for (auto i = st_.children.rbegin(); i != st_.children.rend(); ++i) {
      auto& c = *i;
      switch (c->status) {
        case child_status::running:
        case child_status::stop_queued:
          c->status = child_status::stop_queued;
          c->purpose = after_stop::keep_stopped;
          st_.stop_queue.push_back(c->spec.id);
          break;
        case child_status::stopping:
          c->purpose = after_stop::keep_stopped;
          break;
        case child_status::restarting:
          c->status = child_status::stopped;
          break;
        case child_status::stopped:
          break;
      }
    }
    advance_stops();
  }

  void finish_shutdown() {
    for (auto& rp : st_.stop_rps)
      rp.deliver(true);
    st_.stop_rps.clear();
    st_.done = true;
    self_->quit(st_.shutdown_reason);
  }

  void escalate(child& c, const std::string& reason) {
    auto text = "supervisor '" + st_.opts.name + "': child '" + c.spec.id
                + "' exceeded the restart intensity ("
                + std::to_string(st_.opts.max_restarts) + " restarts in "
                + std::to_string(st_.opts.period.count())
                + " ms); last failure: " + reason;
    if (st_.opts.log)
      log::error("giving up: child exceeded the restart intensity",
                 {{"actor", st_.opts.name},
                  {"child", c.spec.id},
                  {"max_restarts", st_.opts.max_restarts},
                  {"period_ms", st_.opts.period.count()},
                  {"reason", reason}});
    begin_shutdown(make_error(errc::worker_crashed, std::move(text)));
  }

  // -- exits -----------------------------------------------------------------

  void on_down(caf::down_msg& dm) {
    auto i = st_.by_actor.find(dm.source.id());
    if (i == st_.by_actor.end())
      return;
    auto c = i->second;
    st_.by_actor.erase(i);
    st_.live->erase(c->handle.id());
    c->handle = nullptr;
    if (st_.stopping == c->spec.id)
      st_.stopping.clear();
    switch (c->status) {
      case child_status::running:
        on_failure(c, dm.reason);
        break;
      case child_status::stop_queued:
      case child_status::stopping:
        switch (c->purpose) {
          case after_stop::restart:
            c->status = child_status::restarting;
            break;
          case after_stop::remove:
            c->status = child_status::stopped;
            remove(c);
            break;
          case after_stop::keep_stopped:
            c->status = child_status::stopped;
            break;
        }
        advance_stops();
        break;
      default:
        break;
    }
  }

  // The group a failure of `c` restarts, in start order.
  std::vector<child_ptr> group_of(const child_ptr& c) const {
    std::vector<child_ptr> result;
    switch (st_.opts.strategy) {
      case restart_strategy::one_for_one:
      case restart_strategy::simple_one_for_one:
        result.push_back(c);
        break;
      case restart_strategy::one_for_all:
        result = st_.children;
        break;
      case restart_strategy::rest_for_one: {
        auto i = std::find(st_.children.begin(), st_.children.end(), c);
        result.assign(i, st_.children.end());
        break;
      }
    }
    return result;
  }

  void on_failure(const child_ptr& c, const caf::error& reason) {
    auto text = describe(reason);
    auto policy = c->spec.restart;
    auto restart = policy == restart_policy::permanent
                   || (policy == restart_policy::transient
                       && !is_normal_exit(reason));
    if (!restart) {
      c->status = child_status::stopped;
      if (policy == restart_policy::temporary
          || st_.opts.strategy == restart_strategy::simple_one_for_one)
        remove(c);
      return;
    }
    if (!note_restart()) {
      c->status = child_status::stopped;
      escalate(*c, text);
      return;
    }
    auto delay = backoff(*c);
    auto at = now() + delay;
    std::vector<std::string> names;
    auto group = group_of(c);
    // Members that ended for good stay down, members being terminated go,
    // members already restarting keep their turn; the rest restart with c.
    auto joins = [&c](const child_ptr& m) {
      if (m == c)
        return true;
      switch (m->status) {
        case child_status::running:
          return true;
        case child_status::stop_queued:
        case child_status::stopping:
          return m->purpose != after_stop::remove;
        default:
          return false;
      }
    };
    for (auto& m : group) {
      if (!joins(m))
        continue;
      names.push_back(m->spec.id);
      ++m->restarts;
      m->restart_at = at;
    }
    c->status = child_status::restarting;
    // Stop the other live members, last started first.
    for (auto i = group.rbegin(); i != group.rend(); ++i) {
      auto& m = *i;
      if (m == c || !joins(m))
        continue;
      if (m->status == child_status::running)
        queue_stop(*m, after_stop::restart);
      else
        m->purpose = after_stop::restart;
    }
    report(*c, text, std::move(names), delay);
    advance_stops();
  }

  void on_exit(caf::exit_msg& em) {
    // Ignore exit_reason::normal; anything else (user_shutdown from a parent
    // included) stops the children in order, then this supervisor.
    if (!em.reason || em.reason == caf::exit_reason::normal)
      return;
    begin_shutdown(em.reason);
  }

  // -- management ------------------------------------------------------------

  child_ptr add(child_spec spec, json_value args) {
    auto c = std::make_shared<child>();
    c->spec = std::move(spec);
    c->args = std::move(args);
    st_.by_id[c->spec.id] = c;
    st_.children.push_back(c);
    return c;
  }

  caf::result<caf::actor> start_child(std::string& id, json_value& args) {
    if (st_.opts.strategy != restart_strategy::simple_one_for_one)
      return make_error(errc::invalid_input,
                        "supervisor '" + st_.opts.name
                          + "': start_child needs a simple_one_for_one pool");
    if (st_.shutting_down)
      return make_error(errc::unavailable,
                        "supervisor '" + st_.opts.name + "' is shutting down");
    if (find(id))
      return make_error(errc::conflict, "supervisor '" + st_.opts.name
                                          + "' already has a child '" + id
                                          + "'");
    auto spec = st_.pool_template;
    spec.id = id;
    auto c = add(std::move(spec), std::move(args));
    if (auto err = start(*c)) {
      remove(c);
      return err;
    }
    return c->handle;
  }

  caf::result<bool> terminate(const std::string& id) {
    auto c = find(id);
    if (!c)
      return make_error(errc::not_found, "supervisor '" + st_.opts.name
                                            + "' has no child '" + id + "'");
    switch (c->status) {
      case child_status::running:
      case child_status::stop_queued:
      case child_status::stopping: {
        auto rp = self_->make_response_promise();
        c->terminate_rps.push_back(rp);
        if (c->status == child_status::running) {
          queue_stop(*c, after_stop::remove);
          advance_stops();
        } else {
          c->purpose = after_stop::remove;
        }
        return caf::delegated<bool>{};
      }
      default:
        remove(c);
        // A later child of one_for_all/rest_for_one may wait for this one.
        try_start_pending();
        return true;
    }
  }

  json_value count() const {
    json out = json::object();
    size_t active = 0;
    size_t sups = 0;
    for (auto& c : st_.children) {
      if (c->handle)
        ++active;
      if (c->spec.type == child_type::supervisor)
        ++sups;
    }
    out["specs"] = st_.children.size();
    out["active"] = active;
    out["supervisors"] = sups;
    out["workers"] = st_.children.size() - sups;
    out["restarts"] = st_.total_restarts;
    return json_value{std::move(out)};
  }

  caf::result<json_value> which_children() {
    json tree = json::object();
    tree["name"] = st_.opts.name;
    tree["strategy"] = to_string(st_.opts.strategy);
    tree["max_restarts"] = st_.opts.max_restarts;
    tree["period_ms"] = st_.opts.period.count();
    tree["restarts"] = st_.total_restarts;
    auto entries = std::make_shared<std::vector<json>>();
    std::vector<std::pair<size_t, caf::actor>> nested;
    for (auto& c : st_.children) {
      json e = json::object();
      e["id"] = c->spec.id;
      e["type"] = to_string(c->spec.type);
      e["restart"] = to_string(c->spec.restart);
      e["restarts"] = c->restarts;
      e["alive"] = static_cast<bool>(c->handle);
      e["status"] = status_name(c->status);
      if (c->spec.type == child_type::supervisor && c->handle)
        nested.emplace_back(entries->size(), c->handle);
      entries->push_back(std::move(e));
    }
    if (nested.empty()) {
      tree["children"] = std::move(*entries);
      return json_value{std::move(tree)};
    }
    struct fan_in {
      json tree;
      std::shared_ptr<std::vector<json>> entries;
      size_t outstanding;
      caf::response_promise rp;
    };
    auto f = std::make_shared<fan_in>(
      fan_in{std::move(tree), entries, nested.size(),
             self_->make_response_promise()});
    auto done = [f] {
      if (--f->outstanding > 0)
        return;
      f->tree["children"] = std::move(*f->entries);
      f->rp.deliver(json_value{std::move(f->tree)});
    };
    for (auto& [index, handle] : nested) {
      auto pos = index;
      self_->request(handle, st_.opts.tree_timeout, which_children_atom_v)
        .then(
          [f, pos, done](json_value& sub) {
            auto& e = (*f->entries)[pos];
            const auto& s = sub.get();
            if (s.is_object()) {
              e["strategy"] = s.value("strategy", "");
              e["children"] = s.value("children", json::array());
            }
            done();
          },
          [f, pos, done](caf::error& err) {
            (*f->entries)[pos]["error"] = describe(err);
            done();
          });
    }
    return caf::delegated<json_value>{};
  }

private:
  self_ptr self_;
  supervisor_state& st_;
};

caf::error check_specs(const supervisor_options& opts,
                       const std::vector<child_spec>& children) {
  auto where = "supervisor '" + opts.name + "': ";
  if (opts.strategy == restart_strategy::simple_one_for_one
      && children.size() != 1)
    return make_error(errc::invalid_input,
                      where + "simple_one_for_one needs exactly one template "
                              "spec, got "
                        + std::to_string(children.size()));
  std::set<std::string> ids;
  for (auto& c : children) {
    if (c.id.empty())
      return make_error(errc::invalid_input, where + "a child has no id");
    if (!c.start)
      return make_error(errc::invalid_input,
                        where + "child '" + c.id + "' has no start function");
    if (!ids.insert(c.id).second)
      return make_error(errc::invalid_input,
                        where + "duplicate child id '" + c.id + "'");
  }
  return caf::none;
}

caf::behavior supervisor_impl(self_ptr self, supervisor_options opts,
                              std::vector<child_spec> children) {
  auto& st = self->state;
  st.opts = std::move(opts);
  st.intensity = restart_intensity{st.opts.max_restarts, st.opts.period};
  // Children spawned by a dying supervisor must not outlive it.
  self->attach_functor([live = st.live](const caf::error&) {
    for (auto& kvp : *live)
      caf::anon_send_exit(kvp.second, caf::exit_reason::kill);
    live->clear();
  });
  self->set_down_handler(
    [self](caf::down_msg& dm) { logic{self}.on_down(dm); });
  self->set_exit_handler(
    [self](caf::exit_msg& em) { logic{self}.on_exit(em); });
  self->set_error_handler([](caf::scheduled_actor*, caf::error&) {
    // An error sent to us as a plain message: nothing to do.
  });
  self->set_default_handler(
    [](caf::scheduled_actor* ptr,
       caf::message_view& x) -> caf::result<caf::message> {
      auto name = static_cast<self_ptr>(ptr)->state.opts.name;
      return make_error(errc::invalid_input,
                        "supervisor '" + name + "': unexpected message "
                          + to_string(x.content()));
    });
  logic l{self};
  if (auto err = check_specs(st.opts, children)) {
    self->quit(err);
    return {};
  }
  if (st.opts.strategy == restart_strategy::simple_one_for_one) {
    st.pool_template = std::move(children.front());
  } else {
    for (auto& spec : children) {
      auto c = l.add(std::move(spec), json_value{});
      if (auto err = l.start(*c)) {
        auto what = "child '" + c->spec.id + "' failed to start: "
                    + describe(err);
        if (st.opts.log)
          log::error("child failed to start", {{"actor", st.opts.name},
                                               {"child", c->spec.id},
                                               {"reason", describe(err)}});
        auto text = "supervisor '" + st.opts.name + "': " + what;
        c->status = child_status::stopped;
        l.begin_shutdown(make_error(errc::unavailable, std::move(text)));
        break;
      }
    }
  }
  if (st.done)
    return {};
  return {
    [self](start_child_atom, std::string& id,
           json_value& args) -> caf::result<caf::actor> {
      return logic{self}.start_child(id, args);
    },
    [self](terminate_atom, const std::string& id) -> caf::result<bool> {
      return logic{self}.terminate(id);
    },
    [self](which_children_atom) -> caf::result<json_value> {
      return logic{self}.which_children();
    },
    [self](count_children_atom) -> json_value {
      return logic{self}.count();
    },
    [self](stop_atom) -> caf::result<bool> {
      auto rp = self->make_response_promise();
      self->state.stop_rps.push_back(rp);
      logic{self}.begin_shutdown(caf::exit_reason::normal);
      return caf::delegated<bool>{};
    },
    [self](restart_atom, int64_t at) { logic{self}.on_timer(at); },
    [self](timer_atom, uint64_t inc) { logic{self}.on_kill_timer(inc); },
  };
}

// -- tree rendering -----------------------------------------------------------

void render_children(const json& children, const std::string& indent,
                     std::string& out) {
  if (!children.is_array())
    return;
  for (auto& c : children) {
    out += indent + " |- " + c.value("id", "?") + " " + c.value("type", "?")
           + " " + c.value("restart", "?") + " " + c.value("status", "?")
           + " restarts=" + std::to_string(c.value("restarts", uint64_t{0}));
    if (c.contains("strategy"))
      out += " (" + c.value("strategy", "") + ")";
    if (c.contains("error"))
      out += " [" + c.value("error", "") + "]";
    out += '\n';
    if (c.contains("children"))
      render_children(c["children"], indent + " |  ", out);
  }
}

} // namespace

supervisor_actor spawn_supervisor(caf::actor_system& sys,
                                  supervisor_options opts,
                                  std::vector<child_spec> children) {
  auto hdl = sys.spawn(supervisor_impl, std::move(opts), std::move(children));
  return caf::actor_cast<supervisor_actor>(hdl);
}

child_spec supervisor_child(std::string id, supervisor_options opts,
                            std::vector<child_spec> children) {
  if (opts.name.empty())
    opts.name = id;
  child_spec spec;
  spec.id = std::move(id);
  spec.type = child_type::supervisor;
  spec.shutdown = infinity;
  spec.start = [opts = std::move(opts), children = std::move(children)](
                 const start_context& ctx) -> caf::expected<caf::actor> {
    return caf::actor_cast<caf::actor>(
      spawn_supervisor(ctx.system, opts, children));
  };
  return spec;
}

event restart_event(const restart_report& r) {
  json group = json::array();
  for (auto& id : r.group)
    group.push_back(id);
  event ev;
  ev.time_us = std::chrono::duration_cast<std::chrono::microseconds>(
                 std::chrono::system_clock::now().time_since_epoch())
                 .count();
  ev.type = "supervisor_restart";
  ev.payload = json_value{json{{"supervisor", r.supervisor},
                               {"child", r.child},
                               {"reason", r.reason},
                               {"restarts", r.restarts},
                               {"group", std::move(group)},
                               {"delay_ms", r.delay.count()}}};
  return ev;
}

void install_exception_handler(caf::scheduled_actor* self) {
  self->set_exception_handler(
    [](caf::scheduled_actor* ptr, std::exception_ptr& eptr) -> caf::error {
      std::string what;
      try {
        std::rethrow_exception(eptr);
      } catch (const std::exception& e) {
        what = e.what();
      } catch (...) {
        what = "unknown exception";
      }
      log::error("actor died of an exception",
                 {{"actor", ptr->name()}, {"id", ptr->id()}, {"error", what}});
      return caf::make_error(caf::sec::runtime_error, std::move(what));
    });
}

std::string render_tree(const json_value& tree) {
  const auto& t = tree.get();
  std::string out;
  if (!t.is_object())
    return out;
  out += t.value("name", "?") + " (" + t.value("strategy", "?")
         + ", restarts " + std::to_string(t.value("restarts", uint64_t{0}))
         + ")\n";
  if (t.contains("children"))
    render_children(t["children"], "", out);
  return out;
}

} // namespace cadre::actors
