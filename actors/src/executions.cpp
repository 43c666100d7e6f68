#include <algorithm>
#include <chrono>
#include <deque>
#include <functional>
#include <memory>
#include <random>
#include <set>
#include <unordered_map>
#include <vector>

#include <caf/actor_clock.hpp>
#include <caf/actor_system.hpp>
#include <caf/typed_event_based_actor.hpp>

#include "cadre/actors/deadlines.hpp"
#include "cadre/actors/dynamic_children.hpp"
#include "cadre/actors/spawn.hpp"
#include "cadre/actors/supervisor.hpp"
#include "cadre/log/log.hpp"
#include "cadre/workflow/definition.hpp"
#include "cadre/workflow/replay.hpp"
#include "append_deadline.hpp"
#include "coordinator.hpp"
#include "one_timer.hpp"
#include "cadre/messages/json_text.hpp"

namespace cadre::actors {

namespace {

// The interface plus the timer of the appends in flight.
using executions_impl_actor = executions_actor::extend<
  caf::reacts_to<timer_atom, append_atom, uint64_t>>;

int64_t now_us() {
  using namespace std::chrono;
  return duration_cast<microseconds>(system_clock::now().time_since_epoch())
    .count();
}

struct executions_state {
  static inline const char* name = "cadre.executions";
  // Not an aggregate: CAF would try to build it from the actor pointer.
  executions_state() = default;
  event_store_actor store;
  event_bus_actor bus;
  std::shared_ptr<const tool_directory> tools;
  agents_actor agents;
  executions_options opts;
  // The coordinators, one per running execution: this actor's children,
  // they end with it (their logs keep the state for the next start). Made
  // in executions_impl once opts are known.
  std::unique_ptr<dynamic_children<coordinator_actor>> live;
  // Submissions with an idempotency key that are not durable yet, by key.
  struct submitting_entry {
    std::string digest;
    std::vector<caf::typed_response_promise<std::string>> waiters;
  };
  std::unordered_map<std::string, submitting_entry> submitting;
  std::mt19937_64 rng{std::random_device{}()};
  // The appends in flight (forks), each with who waits for its answer:
  // one timer for their deadline (opts.append_deadline) rather than a
  // request timeout per append, which would wake CAF's clock thread
  // (one_timer.hpp).
  in_flight<caf::actor_clock::time_point,
            std::function<void(expected<uint64_t>)>>
    appends;
};

using self_ptr = executions_impl_actor::stateful_pointer<executions_state>;

// Arms the timer for the oldest append in flight, unless one as early is.
void arm_appends(self_ptr self) {
  actors::arm_append_deadline(self, self->state.appends,
                              self->state.opts.append_deadline);
}

// Appends `req` and calls `done` with its answer, or with
// append_unanswered once it is older than opts.append_deadline (a later
// answer is dropped, as a request timeout would).
void append(self_ptr self, append_request req,
            std::function<void(expected<uint64_t>)> done) {
  auto& st = self->state;
  auto ticket = st.appends.add(self->clock().now(), std::move(done));
  arm_appends(self);
  // Its deadline is the actor's one timer (arm_appends).
  self->request(st.store, caf::infinite, append_atom_v, std::move(req))
    .then(
      [=](uint64_t last_seq) {
        if (auto done = self->state.appends.answered(ticket))
          (*done)(last_seq);
      },
      [=](caf::error& err) {
        if (auto done = self->state.appends.answered(ticket))
          (*done)(std::move(err));
      });
}

// Time-ordered, unique enough ids: "e" + 12 hex digits of the time in ms +
// 6 random hex digits.
std::string new_id(self_ptr self) {
  char buf[32];
  auto ms = static_cast<unsigned long long>(now_us() / 1000);
  auto r = static_cast<unsigned>(self->state.rng() & 0xffffff);
  std::snprintf(buf, sizeof(buf), "e%012llx%06x", ms, r);
  return buf + self->state.opts.id_suffix;
}

// The node that owns execution `id` when it is another one, else "": ids
// end in ".<node name>" in a cluster (executions_options::id_suffix).
std::string other_owner(self_ptr self, const std::string& id) {
  auto& st = self->state;
  if (!st.opts.owners || st.opts.id_suffix.empty())
    return {};
  auto dot = id.rfind('.');
  if (dot == std::string::npos || id.compare(dot, std::string::npos,
                                             st.opts.id_suffix) == 0)
    return {};
  return id.substr(dot + 1);
}

// Sends a request about another node's execution to its owner's executions
// actor and answers with the owner's answer: the asker may reach this node
// only (an outside CAF program, say). Refused with `unavailable`, naming the
// owner and its state, while the owner is not up.
template <class T, class Timeout, class... Ts>
caf::result<T> ask_owner(self_ptr self, const std::string& owner,
                         const std::string& id, Timeout timeout, Ts&&... xs) {
  auto where = self->state.opts.owners->find(owner);
  if (!where || where->state != "up" || !where->executions)
    return make_error(errc::unavailable,
                      "execution " + id + " is owned by node " + owner
                        + ", which is "
                        + (where ? where->state : "unknown to this node")
                        + ": its log is on that node's disk; it resumes "
                          "when the node is back");
  auto promise = self->make_response_promise<T>();
  self->request(where->executions, timeout, std::forward<Ts>(xs)...)
    .then([=](T& x) mutable { promise.deliver(std::move(x)); },
          [=](caf::error& err) mutable { promise.deliver(std::move(err)); });
  return promise;
}

// What an idempotency key is compared on: the workflow (its name, or the
// stored definition's id) and the input.
std::string digest_of(const std::string& workflow, const json& input) {
  return workflow + "\n"
         + dump_json(input.is_null() ? json::object() : input);
}

std::string digest_of(const submit_request& req) {
  auto workflow = req.definition_id;
  if (auto at = workflow.find('@'); at != std::string::npos)
    workflow.resize(at);
  if (req.definition.get().is_object())
    workflow = req.definition.get().value("name", std::string{});
  return digest_of(workflow, req.input.get());
}

// The digest of the submission an execution_submitted event records.
std::string digest_of(const event& submitted) {
  const auto& p = submitted.payload.get();
  return digest_of(p.value("workflow", std::string{}),
                   p.contains("input") ? p["input"] : json::object());
}

// Delivers a fork's plan with each tool it runs again marked by what the
// tool declares (`side_effects`, from its pool's describe), so the plan
// names the calls that change something outside from the tools themselves.
// A tool no node offers, or whose pool does not answer or say
// (described_side_effects), is marked as having side effects. Agents' runs
// are not marked.
void deliver_plan(self_ptr self,
                  caf::typed_response_promise<json_value> promise,
                  json plan) {
  struct pending {
    caf::typed_response_promise<json_value> promise;
    json plan;
    size_t left = 0;
  };
  auto p = std::make_shared<pending>();
  p->promise = std::move(promise);
  p->plan = std::move(plan);
  std::set<std::string> tools;
  for (auto& r : p->plan["to_run"]) {
    auto runner = r.value("runs", std::string{});
    if (runner.rfind("agent:", 0) == 0)
      continue;
    r["side_effects"] = true;
    tools.insert(runner);
  }
  auto done = [p] {
    if (--p->left == 0)
      p->promise.deliver(json_value{std::move(p->plan)});
  };
  p->left = tools.size() + 1; // + 1: none delivers before all are asked
  for (const auto& name : tools) {
    auto route = self->state.tools ? self->state.tools->pick(name)
                                   : std::nullopt;
    if (!route) {
      done();
      continue;
    }
    self->request(route->pool, local_deadline, describe_atom_v)
      .then(
        [=](json_value& d) {
          if (!described_side_effects(d.get()))
            for (auto& r : p->plan["to_run"])
              if (r.value("runs", std::string{}) == name)
                r["side_effects"] = false;
          done();
        },
        [=](caf::error&) { done(); });
  }
  done();
}

coordinator_actor start(self_ptr self, const std::string& id,
                        coordinator_mode mode) {
  auto& st = self->state;
  coordinator_args args;
  args.id = id;
  args.mode = mode;
  args.store = st.store;
  args.tools = st.tools;
  args.agents = st.agents;
  args.metrics = st.opts.metrics;
  args.snapshot_every = st.opts.snapshot_every;
  args.crash_loop_limit = st.opts.crash_loop_limit;
  args.append_deadline = st.opts.append_deadline;
  auto handle = spawn_coordinator(self, std::move(args));
  self->monitor(handle);
  st.live->started(id, handle);
  return handle;
}

// Runs `fn` with the execution's coordinator, starting it from its log when
// it is not running (a waiting execution after a node restart). `fn` gets a
// retry callback: a request that failed because the coordinator died is
// routed again to its successor, so no message is lost to a restart.
using with_fn = std::function<void(coordinator_actor, std::function<void()>)>;

void with_coordinator(self_ptr self, const std::string& id, int tries,
                      with_fn fn,
                      std::function<void(const caf::error&)> on_absent) {
  auto& st = self->state;
  auto run = [=](coordinator_actor c) {
    // A request to a dead coordinator fails at once, often before the down
    // message that replaces it: wait for the successor instead of spending
    // the tries on the same dead handle.
    auto retry = [=] {
      if (tries <= 0) {
        on_absent(make_error(errc::unavailable,
                             "execution " + id + ": coordinator keeps dying"));
        return;
      }
      self->state.live->await_successor(id, c, [=] {
        with_coordinator(self, id, tries - 1, fn, on_absent);
      });
    };
    fn(c, retry);
  };
  if (auto c = st.live->get(id)) {
    run(c);
    return;
  }
  self->request(st.store, local_deadline, get_atom_v, id)
    .then(
      [=](const execution_info& info) {
        auto& st = self->state;
        if (auto c = st.live->get(id)) {
          run(c);
          return;
        }
        if (info.finished()) {
          on_absent(caf::none);
          return;
        }
        run(start(self, id, coordinator_mode::recover));
      },
      [=](caf::error& err) { on_absent(err); });
}

bool coordinator_died(const caf::error& err) {
  return err == caf::sec::request_receiver_down;
}

executions_impl_actor::behavior_type
executions_impl(self_ptr self, event_store_actor store, event_bus_actor bus,
                std::shared_ptr<const tool_directory> tools,
                agents_actor agents, executions_options opts) {
  auto& st = self->state;
  st.store = std::move(store);
  st.bus = std::move(bus);
  st.tools = std::move(tools);
  st.agents = std::move(agents);
  st.opts = opts;
  st.live = std::make_unique<dynamic_children<coordinator_actor>>(
    st.opts.max_restarts, std::chrono::milliseconds{st.opts.restart_window_ms});
  self->set_down_handler([=](const caf::down_msg& msg) {
    auto& st = self->state;
    auto down = st.live->on_down(msg, self->clock().now());
    if (!down)
      return;
    auto& id = down->id;
    if (down->exit == child_exit::given_up) {
      log::warn("coordinator keeps crashing; execution left for cadre resume",
                {{"actor", "executions"},
                 {"execution", id},
                 {"crashes", down->restarts},
                 {"window_ms", st.opts.restart_window_ms},
                 {"reason", describe(msg.reason)}});
      // A later request or `cadre resume` starts it afresh from its log;
      // the coordinator's own crash_loop_limit ends a poisoned one.
      st.live->forget(id);
    } else if (down->exit == child_exit::restart) {
      // Restarted from the log at once: a running execution must go on.
      restart_report r;
      r.supervisor = "executions";
      r.child = "coordinator " + id;
      r.reason = describe(msg.reason);
      r.restarts = down->restarts;
      r.group = {id};
      log::info("coordinator restarted", {{"actor", "executions"},
                                          {"execution", id},
                                          {"restarts", down->restarts},
                                          {"reason", r.reason}});
      self->send(st.bus, publish_atom_v,
                 std::vector<event>{restart_event(r)});
      start(self, id, coordinator_mode::recover);
    }
    for (auto& f : down->waiting)
      f();
  });
  return {
    [=](submit_atom, submit_request& req) -> caf::result<std::string> {
      auto promise = self->make_response_promise<std::string>();
      auto key = req.idempotency_key;
      // Answers this submission and, under its key, every duplicate that
      // arrived while it was on its way.
      auto finish = [=](expected<std::string> res) mutable {
        std::vector<caf::typed_response_promise<std::string>> waiters;
        if (!key.empty()) {
          auto& st = self->state;
          if (auto i = st.submitting.find(key); i != st.submitting.end()) {
            waiters = std::move(i->second.waiters);
            st.submitting.erase(i);
          }
        }
        if (res) {
          promise.deliver(*res);
          for (auto& w : waiters)
            w.deliver(*res);
        } else {
          promise.deliver(res.error());
          for (auto& w : waiters)
            w.deliver(res.error());
        }
      };
      auto launch = [=](submit_request req) mutable {
        auto& st = self->state;
        workflow::validation_context ctx;
        auto tools = st.tools;
        ctx.tool_exists = [tools](const std::string& name) {
          return tools->has(name);
        };
        if (auto names = st.opts.secret_names)
          ctx.secret_exists = [names](const std::string& name) {
            return std::find(names->begin(), names->end(), name)
                   != names->end();
          };
        auto parsed = workflow::parse_document(req.definition.get(), ctx);
        if (!parsed.def) {
          std::string msg = "invalid workflow";
          if (!req.source.empty())
            msg += " " + req.source;
          for (auto& d : parsed.errors)
            msg += "\n  " + d.to_string();
          finish(make_error(errc::invalid_workflow, msg));
          return;
        }
        auto id = new_id(self);
        auto handle = start(self, id, coordinator_mode::fresh);
        self->request(handle, local_deadline, submit_atom_v, std::move(req))
          .then([=](std::string& id) mutable { finish(id); },
                [=](caf::error& err) mutable { finish(err); });
      };
      auto resolve = [=](submit_request req) mutable {
        if (!req.definition.is_null() || req.definition_id.empty()) {
          launch(std::move(req));
          return;
        }
        auto name = req.definition_id;
        std::string version;
        if (auto at = name.find('@'); at != std::string::npos) {
          version = name.substr(at + 1);
          name.resize(at);
        }
        self->request(self->state.store, local_deadline, get_atom_v, name,
                      version)
          .then(
            [=](definition_record& def) mutable {
              req.definition = def.document;
              launch(std::move(req));
            },
            [=](caf::error& err) mutable { finish(err); });
      };
      if (key.empty()) {
        resolve(std::move(req));
        return promise;
      }
      auto& st = self->state;
      auto request_digest = digest_of(req);
      if (auto i = st.submitting.find(key); i != st.submitting.end()) {
        // The same key while the first submission is on its way: the same
        // answer, once it is durable.
        // The promise owns the answer now: an error returned instead would
        // never reach the requester.
        if (i->second.digest != request_digest)
          promise.deliver(make_error(errc::conflict,
                                     "idempotency key '" + key
                                       + "' is being used by a submission "
                                         "with another workflow or input"));
        else
          i->second.waiters.push_back(promise);
        return promise;
      }
      st.submitting[key].digest = request_digest;
      self->request(self->state.store, local_deadline, get_atom_v,
                    submit_atom_v, key)
        .then(
          [=](const std::string& existing) mutable {
            if (existing.empty()) {
              resolve(req);
              return;
            }
            // A key names one submission: the same request answers the
            // same id, another one is a conflict.
            self
              ->request(self->state.store, local_deadline, read_atom_v,
                        existing, uint64_t{1}, uint64_t{1})
              .then(
                [=](std::vector<event>& evs) mutable {
                  if (!evs.empty()
                      && digest_of(evs.front()) != request_digest)
                    finish(make_error(errc::conflict,
                                      "idempotency key '" + key
                                        + "' names execution " + existing
                                        + ", submitted with another "
                                          "workflow or input"));
                  else
                    finish(existing);
                },
                [=](caf::error& err) mutable { finish(err); });
          },
          [=](caf::error& err) mutable { finish(err); });
      return promise;
    },
    [=](input_atom, const human_input& in) -> caf::result<uint64_t> {
      if (auto owner = other_owner(self, in.execution_id); !owner.empty())
        return ask_owner<uint64_t>(self, owner, in.execution_id,
                                   local_deadline, input_atom_v, in);
      auto promise = self->make_response_promise<uint64_t>();
      with_coordinator(
        self, in.execution_id, 3,
        [=](coordinator_actor c, std::function<void()> retry) mutable {
          self->request(c, local_deadline, input_atom_v, in.task_id, in.value)
            .then([=](uint64_t seq) mutable { promise.deliver(seq); },
                  [=](caf::error& err) mutable {
                    if (coordinator_died(err))
                      retry();
                    else
                      promise.deliver(err);
                  });
        },
        [=](const caf::error& err) mutable {
          promise.deliver(err ? err
                              : make_error(errc::conflict,
                                           "execution " + in.execution_id
                                             + " has finished"));
        });
      return promise;
    },
    [=](fork_atom, fork_request& req) -> caf::result<json_value> {
      if (auto owner = other_owner(self, req.execution_id); !owner.empty())
        return ask_owner<json_value>(self, owner, req.execution_id,
                                     local_deadline, fork_atom_v, req);
      workflow::fork_edits edits;
      if (!req.input_override.is_null())
        edits.input = req.input_override.get();
      if (!req.definition_override.is_null())
        edits.definition = req.definition_override.get();
      for (const auto* part : {&req.outputs, &req.answers})
        if (!part->is_null() && !part->get().is_object())
          return make_error(errc::invalid_input,
                            std::string{part == &req.outputs ? "outputs"
                                                             : "answers"}
                              + ": expected an object of task ids");
      if (req.outputs.get().is_object())
        for (auto& [task, value] : req.outputs.get().items())
          edits.outputs[task] = value;
      if (req.answers.get().is_object())
        for (auto& [task, value] : req.answers.get().items())
          edits.answers[task] = value;
      edits.rerun.insert(req.rerun.begin(), req.rerun.end());
      auto promise = self->make_response_promise<json_value>();
      auto parent = req.execution_id;
      auto at = req.at_seq;
      auto dry_run = req.dry_run;
      self
        // The plan needs the parent's events up to the fork point only.
        ->request(self->state.store, local_deadline, read_atom_v, parent,
                  uint64_t{1}, at)
        .then(
          [=](std::vector<event>& log) mutable {
            if (log.empty()) {
              promise.deliver(make_error(errc::not_found,
                                         "no execution '" + parent + "'"));
              return;
            }
            auto id = new_id(self);
            auto plan = workflow::plan_fork(log, at, edits, id, now_us());
            if (!plan) {
              promise.deliver(plan.error());
              return;
            }
            json to_run = json::array();
            for (auto& [key, runner] : plan->to_run)
              to_run.push_back(json{{"task", key}, {"runs", runner}});
            json reply{{"id", dry_run ? std::string{} : id},
                       {"parent", parent},
                       {"at", at == 0 ? log.back().seq : at},
                       {"reused", plan->reused},
                       {"edited", plan->edited},
                       {"to_run", std::move(to_run)},
                       {"waiting", plan->waiting},
                       {"undecided", plan->undecided},
                       {"status", plan->index->status},
                       {"dry_run", dry_run}};
            if (dry_run) {
              deliver_plan(self, promise, std::move(reply));
              return;
            }
            // The fork's log, its agents' memory as of the fork point and
            // the parent's model replies go in one atomic write, after the
            // logs the parent uses (its agent logs, those its agents share,
            // and a forked parent's own branches and replies) are read.
            auto planned = std::make_shared<workflow::fork_plan>(
              std::move(*plan));
            auto seen = std::make_shared<workflow::agent_log_names>(true);
            for (const auto& ev : log)
              seen->add(ev);
            auto last_read = log.back().seq;
            auto parent_log = std::make_shared<std::vector<event>>(
              std::move(log));
            auto names = std::make_shared<std::vector<std::string>>();
            auto read = std::make_shared<std::vector<std::vector<event>>>();
            auto write = [=]() mutable {
              auto app = std::make_shared<append_request>();
              auto others = workflow::fork_logs(*planned, *parent_log, at,
                                                *read, now_us());
              app->events = std::move(planned->events);
              for (auto& ev : others)
                app->events.push_back(std::move(ev));
              app->index.push_back(*planned->index);
              append(self, std::move(*app),
                     [=](expected<uint64_t> written) mutable {
                       if (!written) {
                         promise.deliver(written.error());
                         return;
                       }
                       log::info("execution forked",
                                 {{"actor", "executions"},
                                  {"execution", id},
                                  {"parent", parent}});
                       if (reply["status"] == "running"
                           || reply["status"] == "waiting")
                         start(self, id, coordinator_mode::recover);
                       deliver_plan(self, promise, std::move(reply));
                     });
            };
            // Reads the agent logs one after another; each pending read
            // holds the reader, which holds itself only weakly.
            auto next = std::make_shared<std::function<void(size_t)>>();
            std::weak_ptr<std::function<void(size_t)>> weak_next = next;
            *next = [=](size_t i) mutable {
              if (i == names->size()) {
                write();
                return;
              }
              auto keep = weak_next.lock();
              self
                ->request(self->state.store, local_deadline, read_atom_v,
                          (*names)[i], uint64_t{1}, uint64_t{0})
                .then(
                  [=](std::vector<event>& agent_log) mutable {
                    read->push_back(std::move(agent_log));
                    (*keep)(i + 1);
                  },
                  [=](caf::error& err) mutable { promise.deliver(err); });
            };
            // The parent's model replies come from every agent log it
            // used, also after the fork point: the events past it are read
            // a chunk at a time, for the names of their agent logs only.
            constexpr uint64_t chunk = 256;
            auto rest = std::make_shared<std::function<void(uint64_t)>>();
            std::weak_ptr<std::function<void(uint64_t)>> weak_rest = rest;
            *rest = [=](uint64_t from) mutable {
              auto keep = weak_rest.lock();
              self
                ->request(self->state.store, local_deadline, read_atom_v,
                          parent, from, chunk)
                .then(
                  [=](std::vector<event>& evs) mutable {
                    for (const auto& ev : evs)
                      seen->add(ev);
                    if (evs.size() == chunk) {
                      (*keep)(from + chunk);
                      return;
                    }
                    *names = seen->names();
                    (*next)(0);
                  },
                  [=](caf::error& err) mutable { promise.deliver(err); });
            };
            if (at == 0) {
              *names = seen->names();
              (*next)(0);
            } else {
              (*rest)(last_read + 1);
            }
          },
          [=](caf::error& err) mutable { promise.deliver(err); });
      return promise;
    },
    [=](cancel_atom, const std::string& id) -> caf::result<bool> {
      if (auto owner = other_owner(self, id); !owner.empty())
        return ask_owner<bool>(self, owner, id, local_deadline, cancel_atom_v,
                               id);
      auto promise = self->make_response_promise<bool>();
      with_coordinator(
        self, id, 3,
        [=](coordinator_actor c, std::function<void()> retry) mutable {
          self->request(c, local_deadline, cancel_atom_v)
            .then([=](uint64_t seq) mutable { promise.deliver(seq > 0); },
                  [=](caf::error& err) mutable {
                    if (coordinator_died(err))
                      retry();
                    else
                      promise.deliver(err);
                  });
        },
        [=](const caf::error& err) mutable {
          if (err)
            promise.deliver(err);
          else
            promise.deliver(false); // already finished
        });
      return promise;
    },
    [=](status_atom, const std::string& id) -> caf::result<execution_info> {
      if (auto owner = other_owner(self, id); !owner.empty())
        return ask_owner<execution_info>(self, owner, id, local_deadline,
                                         status_atom_v, id);
      auto promise = self->make_response_promise<execution_info>();
      auto& st = self->state;
      auto from_store = [=]() mutable {
        self->request(self->state.store, local_deadline, get_atom_v, id)
          .then([=](execution_info& info) mutable { promise.deliver(info); },
                [=](caf::error& err) mutable { promise.deliver(err); });
      };
      // A coordinator that refused its log answers why; one that is gone
      // left its last state in the store.
      if (auto c = st.live->get(id))
        self->request(c, local_deadline, status_atom_v)
          .then([=](execution_info& info) mutable { promise.deliver(info); },
                [=](caf::error& err) mutable {
                  if (err.category() == caf::atom("cadre"))
                    promise.deliver(err);
                  else
                    from_store();
                });
      else
        from_store();
      return promise;
    },
    [=](await_atom, const std::string& id) -> caf::result<execution_info> {
      // caf::infinite as for a local await; a lost owner's link ends it.
      if (auto owner = other_owner(self, id); !owner.empty())
        return ask_owner<execution_info>(self, owner, id, caf::infinite,
                                         await_atom_v, id);
      auto promise = self->make_response_promise<execution_info>();
      auto from_store = [=]() mutable {
        self->request(self->state.store, local_deadline, get_atom_v, id)
          .then([=](execution_info& info) mutable { promise.deliver(info); },
                [=](caf::error& err) mutable { promise.deliver(err); });
      };
      with_coordinator(
        self, id, 3,
        [=](coordinator_actor c, std::function<void()> retry) mutable {
          // caf::infinite: await answers when the execution ends, which may
          // be days away; the caller bounds its own wait.
          self->request(c, caf::infinite, await_atom_v)
            .then([=](execution_info& info) mutable { promise.deliver(info); },
                  [=](caf::error& err) mutable {
                    // A coordinator that quit after finishing left the
                    // final state in the store.
                    if (coordinator_died(err))
                      self->state.live->known(id) ? retry() : from_store();
                    else
                      promise.deliver(err);
                  });
        },
        [=](const caf::error& err) mutable {
          if (err)
            promise.deliver(err);
          else
            from_store();
        });
      return promise;
    },
    [=](get_atom, const std::string& id) -> caf::result<caf::actor> {
      if (auto owner = other_owner(self, id); !owner.empty())
        return ask_owner<caf::actor>(self, owner, id, local_deadline,
                                     get_atom_v, id);
      auto& st = self->state;
      if (auto c = st.live->get(id))
        return caf::actor_cast<caf::actor>(c);
      return make_error(errc::not_found,
                        "execution " + id + ": no running coordinator");
    },
    [=](timer_atom, append_atom, uint64_t generation) {
      auto deadline = self->state.opts.append_deadline;
      for (auto& done : self->state.appends.fired(
             generation, self->clock().now(), deadline))
        done(append_unanswered(deadline));
      arm_appends(self);
    },
    [=](resume_atom) -> caf::result<std::vector<std::string>> {
      auto promise
        = self->make_response_promise<std::vector<std::string>>();
      self->request(self->state.store, local_deadline, list_atom_v,
                    execution_filter{})
        .then(
          [=](std::vector<execution_info>& all) mutable {
            std::vector<std::string> resumed;
            for (auto& info : all) {
              if (info.finished() || self->state.live->known(info.id))
                continue;
              start(self, info.id, coordinator_mode::recover);
              resumed.push_back(info.id);
            }
            promise.deliver(resumed);
          },
          [=](caf::error& err) mutable { promise.deliver(err); });
      return promise;
    },
  };
}

} // namespace

executions_actor spawn_executions(caf::actor_system& sys,
                                  event_store_actor store, event_bus_actor bus,
                                  std::shared_ptr<const tool_directory> tools,
                                  executions_options opts) {
  return spawn_executions(sys, std::move(store), std::move(bus),
                          std::move(tools), agents_actor{}, opts);
}

executions_actor spawn_executions(caf::actor_system& sys,
                                  event_store_actor store, event_bus_actor bus,
                                  std::shared_ptr<const tool_directory> tools,
                                  agents_actor agents,
                                  executions_options opts) {
  return sys.spawn(executions_impl, std::move(store), std::move(bus),
                   std::move(tools), std::move(agents), opts);
}

} // namespace cadre::actors
