#include <chrono>
#include <deque>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <caf/actor_system.hpp>
#include <caf/typed_event_based_actor.hpp>

#include "cadre/actors/spawn.hpp"
#include "cadre/log/log.hpp"
#include "cadre/lang/secrets.hpp"
#include "cadre/tools/tool_registry.hpp"

namespace cadre::actors {

namespace {

// What a worker answers: whole calls (run), and the stages of a call that
// its tool splits (split, then run per part, then join).
using worker_actor = caf::typed_actor<
  caf::replies_to<run_atom, task_request>::with<task_result>,
  // A whole call delegated by the pool (job number): the worker answers the
  // caller itself and tells the pool it is free (done_atom, job).
  caf::replies_to<run_atom, task_request, uint64_t>::with<task_result>,
  caf::replies_to<split_atom, task_request>::with<std::vector<json_value>>,
  caf::replies_to<join_atom, task_request,
                  std::vector<json_value>>::with<task_result>>;

int64_t now_us() {
  using namespace std::chrono;
  return duration_cast<microseconds>(system_clock::now().time_since_epoch())
    .count();
}

int64_t since_us(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration_cast<std::chrono::microseconds>(
           std::chrono::steady_clock::now() - start)
    .count();
}

// The pool's interface plus what it hears from its workers and its clock:
// a delegated call's end and its deadline (job number).
using pool_impl_actor
  = tool_pool_actor::extend<caf::reacts_to<done_atom, uint64_t>,
                            caf::reacts_to<timer_atom, uint64_t>>;

// -- worker -------------------------------------------------------------------

struct worker_state {
  static inline const char* name = "cadre.tool_worker";
  // Not an aggregate: CAF would try to build it from the actor pointer.
  worker_state() = default;
};

using worker_self = worker_actor::stateful_pointer<worker_state>;

using secrets_ptr = std::shared_ptr<const tools::secret_store>;

tools::tool_context make_context(const task_request& req,
                                 std::shared_ptr<std::atomic<bool>> flag,
                                 const secrets_ptr& secrets) {
  tools::tool_context ctx;
  ctx.secrets = secrets;
  ctx.secret_pointers = req.secret_pointers;
  ctx.execution_id = req.execution_id;
  ctx.task_id = req.task_id;
  ctx.attempt = req.attempt;
  ctx.idempotency_key = req.idempotency_key;
  ctx.deadline_us = req.deadline_us;
  ctx.cancel_flag = std::move(flag);
  return ctx;
}

// The input with the secrets its workflow refers to filled in; only the
// worker ever holds this copy.
expected<json_value> filled_input(const task_request& req,
                                  const secrets_ptr& secrets) {
  if (req.secret_pointers.empty())
    return req.input;
  if (!secrets)
    return tools::secret_store{}.resolve(req.input, req.secret_pointers);
  return secrets->resolve(req.input, req.secret_pointers);
}

void redact(const secrets_ptr& secrets, task_result& res) {
  if (!secrets || secrets->empty())
    return;
  json out = *res.output;
  secrets->redact(out);
  res.output = json_value{std::move(out)};
}

void redact(const secrets_ptr&, std::vector<json_value>&) {
  // Parts go back into the same pool's workers, not out of it; the join's
  // output is redacted.
}

// Runs `f` (a call into the tool); an exception fails the call and ends the
// worker, whose state is suspect after a throw, so the pool starts a fresh
// one. What leaves the worker, error or output, has every secret value
// redacted: this is the one place a tool's text leaves for events and logs.
// `ended` is set when the worker quit.
template <class T, class F>
expected<T> guarded_call(worker_self self, tools::tool& tool,
                         const secrets_ptr& secrets, F f, bool& ended) {
  auto clean = [&](caf::error err) {
    return secrets ? secrets->redact(err) : err;
  };
  try {
    auto out = f();
    if (!out)
      return clean(std::move(out.error()));
    redact(secrets, *out);
    return std::move(*out);
  } catch (const std::exception& e) {
    self->quit(caf::sec::runtime_error);
    ended = true;
    return clean(make_error(errc::worker_crashed,
                            "tool " + tool.name() + " threw: " + e.what()));
  } catch (...) {
    self->quit(caf::sec::runtime_error);
    ended = true;
    return make_error(errc::worker_crashed,
                      "tool " + tool.name() + " threw a non-exception");
  }
}

template <class T, class F>
caf::result<T> guarded(worker_self self, tools::tool& tool,
                       const secrets_ptr& secrets, F f) {
  bool ended = false;
  auto out = guarded_call<T>(self, tool, secrets, f, ended);
  if (!out)
    return std::move(out.error());
  return std::move(*out);
}

// One whole call of the tool.
expected<task_result> invoke(tools::tool& tool, const task_request& req,
                             const std::shared_ptr<std::atomic<bool>>& flag,
                             const secrets_ptr& secrets) {
  auto input = filled_input(req, secrets);
  if (!input)
    return std::move(input.error());
  auto ctx = make_context(req, flag, secrets);
  auto start = std::chrono::steady_clock::now();
  auto out = tool.invoke(*input, ctx);
  if (!out)
    return std::move(out.error());
  task_result res;
  res.output = std::move(*out);
  res.duration_us = since_us(start);
  return res;
}

worker_actor::behavior_type
worker_impl(worker_self self, std::shared_ptr<tools::tool> tool,
            std::shared_ptr<std::atomic<bool>> cancel_flag,
            secrets_ptr secrets, pool_impl_actor pool) {
  return {
    [=](run_atom, const task_request& req) -> caf::result<task_result> {
      return guarded<task_result>(self, *tool, secrets, [&] {
        return invoke(*tool, req, cancel_flag, secrets);
      });
    },
    [=](run_atom, const task_request& req,
        uint64_t job) -> caf::result<task_result> {
      bool ended = false;
      auto out = guarded_call<task_result>(
        self, *tool, secrets,
        [&] { return invoke(*tool, req, cancel_flag, secrets); }, ended);
      // A worker that quit takes no next call: the pool's down handler
      // frees its slot with a fresh worker.
      if (!ended)
        self->send(pool, done_atom_v, job);
      if (!out)
        return std::move(out.error());
      return std::move(*out);
    },
    [=](split_atom,
        const task_request& req) -> caf::result<std::vector<json_value>> {
      return guarded<std::vector<json_value>>(
        self, *tool, secrets, [&]() -> expected<std::vector<json_value>> {
          auto input = filled_input(req, secrets);
          if (!input)
            return std::move(input.error());
          auto ctx = make_context(req, cancel_flag, secrets);
          return tool->split(*input, ctx);
        });
    },
    [=](join_atom, const task_request& req,
        std::vector<json_value>& parts) -> caf::result<task_result> {
      return guarded<task_result>(self, *tool, secrets,
                                  [&]() -> expected<task_result> {
        auto input = filled_input(req, secrets);
        if (!input)
          return std::move(input.error());
        auto start = std::chrono::steady_clock::now();
        auto out = tool->join(*input, std::move(parts));
        if (!out)
          return std::move(out.error());
        task_result res;
        res.output = std::move(*out);
        res.duration_us = since_us(start);
        return res;
      });
    },
  };
}

// -- pool ---------------------------------------------------------------------

struct worker_slot {
  worker_actor handle;
  std::shared_ptr<std::atomic<bool>> cancel_flag;
  bool busy = false;
  // The call delegated to this worker (0: none), and a copy of its
  // promise: the worker answers the caller, the pool only when the call
  // passes its deadline or the worker dies without answering.
  uint64_t job = 0;
  std::optional<caf::typed_response_promise<task_result>> promise;
  task_request call;
};

// Work waiting for a free worker: a whole call, a split, a part or a join.
struct queued_job {
  // Starts the job on the worker in slot `i`, or drops it when its call has
  // already failed (the slot then stays free).
  std::function<void(size_t)> start;
};

struct pool_state {
  static inline const char* name = "cadre.tool_pool";
  // Not an aggregate: CAF would try to build it from the actor pointer.
  pool_state() = default;
  std::string tool_name;
  tools::tool_factory factory = nullptr;
  json_value settings;
  secrets_ptr secrets;
  tools::tool_description description;
  bool blocking = false;
  bool splits = false;
  std::vector<worker_slot> workers;
  std::deque<queued_job> queue;
  uint64_t next_job = 0;
  uint64_t crashes = 0;
  uint64_t timeouts = 0;
  uint64_t fanouts = 0;

  // The pool's end is its workers' end; a worker blocked in a tool sees its
  // cancel flag.
  ~pool_state() {
    for (auto& w : workers)
      if (w.handle) {
        w.cancel_flag->store(true);
        caf::anon_send_exit(w.handle, caf::exit_reason::kill);
      }
  }
};

using pool_self = pool_impl_actor::stateful_pointer<pool_state>;

void pump(pool_self self);

// Starts a fresh worker in slot `i`.
void start_worker(pool_self self, size_t i, std::shared_ptr<tools::tool> tool) {
  auto& st = self->state;
  if (!tool) {
    auto made = st.factory(st.settings);
    if (!made) {
      // The factory worked at start-up; failing now leaves the slot empty.
      log::error("tool worker could not be replaced",
                 {{"actor", "tool_pool"},
                  {"tool", st.tool_name},
                  {"reason", describe(made.error())}});
      st.workers[i] = worker_slot{};
      return;
    }
    tool = std::shared_ptr<tools::tool>(std::move(*made));
  }
  auto flag = std::make_shared<std::atomic<bool>>(false);
  auto pool = caf::actor_cast<pool_impl_actor>(self);
  worker_actor w = st.blocking
                     ? self->spawn<caf::detached>(worker_impl, tool, flag,
                                                  st.secrets, pool)
                     : self->spawn(worker_impl, tool, flag, st.secrets, pool);
  self->monitor(w);
  st.workers[i] = worker_slot{w, flag, false};
}

size_t slot_of(pool_self self, const caf::actor_addr& addr) {
  auto& ws = self->state.workers;
  for (size_t i = 0; i < ws.size(); ++i)
    if (ws[i].handle && ws[i].handle.address() == addr)
      return i;
  return ws.size();
}

// Gives up on a worker stuck past a deadline: it may be blocked inside the
// tool, so it is told to stop (cancel flag, then kill) and replaced.
void abandon(pool_self self, size_t i) {
  auto& slot = self->state.workers[i];
  slot.cancel_flag->store(true);
  self->demonitor(slot.handle.address());
  self->send_exit(slot.handle, caf::exit_reason::kill);
  start_worker(self, i, nullptr);
}

std::string label(const task_request& req) {
  return "task " + req.task_id + " attempt " + std::to_string(req.attempt);
}

// Sends one job's message `xs...` to the worker in slot `i`, bounded by the
// deadline of `req`, and hands the reply or the error to `done`. `what`
// names the job in the errors the pool makes (timeouts, dead workers).
// `done` runs before the queue is pumped again and must not pump itself.
template <class Reply, class... Ts>
void dispatch(pool_self self, size_t i, const task_request& req,
              std::string what,
              std::function<void(caf::expected<Reply>)> done, Ts... xs) {
  auto& st = self->state;
  auto& slot = st.workers[i];
  auto handle = slot.handle;
  // caf::infinite only for a call without a deadline (a task without
  // `timeout`); the worker is watched by a monitor either way.
  caf::duration timeout = caf::infinite;
  if (req.deadline_us > 0) {
    auto left = req.deadline_us - now_us();
    if (left <= 0) {
      ++st.timeouts;
      done(make_error(errc::timeout, what + ": deadline passed before tool "
                                       + st.tool_name + " could start"));
      return;
    }
    timeout = caf::duration{std::chrono::microseconds{left}};
  }
  slot.busy = true;
  self->request(handle, timeout, std::move(xs)...)
    .then(
      [=](Reply& res) {
        auto j = slot_of(self, handle.address());
        if (j < self->state.workers.size())
          self->state.workers[j].busy = false;
        done(std::move(res));
        pump(self);
      },
      [=, execution = req.execution_id, task = req.task_id](caf::error& err) {
        auto& st = self->state;
        auto j = slot_of(self, handle.address());
        if (err == caf::sec::request_timeout) {
          ++st.timeouts;
          log::warn("tool call timed out; replacing its worker",
                    {{"actor", "tool_pool"}, {"tool", st.tool_name},
                     {"execution", execution}, {"task", task},
                     {"call", what}});
          done(make_error(errc::timeout, "tool " + st.tool_name + ": " + what
                                           + " passed its deadline"));
          if (j < st.workers.size())
            abandon(self, j);
        } else if (err.category() == caf::atom("cadre")) {
          // The tool's own failure. A worker_crashed error also ends the
          // worker: its slot stays taken until the down handler has put a
          // fresh worker in it, so no call is sent to the dying one.
          if (j < st.workers.size() && code_of(err) != errc::worker_crashed)
            st.workers[j].busy = false;
          done(std::move(err));
        } else {
          ++st.crashes;
          done(make_error(errc::worker_crashed,
                          "tool " + st.tool_name + ": worker died during "
                            + what + ": " + describe(err)));
        }
        pump(self);
      });
}

// Hands a whole call to the worker in slot `i`, which answers the caller
// itself: one message fewer on the way back than through the pool. The pool
// keeps the slot busy until the worker's done_atom, and a copy of the
// promise for a deadline that passes first.
void delegate_call(pool_self self, size_t i, const task_request& req,
                   caf::typed_response_promise<task_result> promise) {
  auto& st = self->state;
  auto& slot = st.workers[i];
  auto job = ++st.next_job;
  if (req.deadline_us > 0) {
    auto left = req.deadline_us - now_us();
    if (left <= 0) {
      ++st.timeouts;
      promise.deliver(make_error(errc::timeout,
                                 label(req) + ": deadline passed before tool "
                                   + st.tool_name + " could start"));
      return;
    }
    self->delayed_send(self, std::chrono::microseconds{left}, timer_atom_v,
                       job);
  }
  slot.busy = true;
  slot.job = job;
  slot.promise = promise;
  slot.call.execution_id = req.execution_id;
  slot.call.task_id = req.task_id;
  slot.call.attempt = req.attempt;
  promise.delegate(slot.handle, run_atom_v, req, job);
}

size_t slot_of_job(pool_self self, uint64_t job) {
  auto& ws = self->state.workers;
  for (size_t i = 0; i < ws.size(); ++i)
    if (job != 0 && ws[i].job == job)
      return i;
  return ws.size();
}

queued_job whole_job(pool_self self, task_request req,
                     caf::typed_response_promise<task_result> promise) {
  return {[=](size_t i) { delegate_call(self, i, req, promise); }};
}

// One split call: its parts' outputs, filled in any order, joined in order.
struct fanout {
  task_request req;
  caf::typed_response_promise<task_result> promise;
  std::vector<json_value> outputs;
  size_t left = 0;
  bool failed = false;
  std::chrono::steady_clock::time_point start;

  void fail(caf::error err) {
    if (failed)
      return;
    failed = true;
    promise.deliver(std::move(err));
  }
};

// Queues the parts of a split call behind the work already waiting; the
// last part to finish queues the join ahead of everything.
void fan_out(pool_self self, std::shared_ptr<fanout> g,
             std::vector<json_value> parts) {
  auto n = parts.size();
  g->outputs.resize(n);
  g->left = n;
  ++self->state.fanouts;
  for (size_t k = 0; k < n; ++k) {
    auto part = g->req;
    part.input = std::move(parts[k]);
    auto what = label(g->req) + " part " + std::to_string(k + 1) + " of "
                + std::to_string(n);
    self->state.queue.push_back({[=](size_t i) {
      if (g->failed)
        return;
      auto done = [self, g, k](caf::expected<task_result> res) {
        if (g->failed)
          return;
        if (!res) {
          g->fail(std::move(res.error()));
          return;
        }
        g->outputs[k] = std::move(res->output);
        if (--g->left > 0)
          return;
        self->state.queue.push_front({[=](size_t j) {
          auto joined = [g](caf::expected<task_result> res) {
            if (!res) {
              g->fail(std::move(res.error()));
              return;
            }
            res->duration_us = since_us(g->start);
            g->promise.deliver(std::move(*res));
          };
          dispatch<task_result>(self, j, g->req, label(g->req) + " join",
                                joined, join_atom_v, g->req, g->outputs);
        }});
      };
      dispatch<task_result>(self, i, part, what, done, run_atom_v, part);
    }});
  }
}

// A call of a tool that splits: the split runs on a worker (it may read
// files), then the parts or, without parts, the whole call.
queued_job split_job(pool_self self, task_request req,
                     caf::typed_response_promise<task_result> promise) {
  return {[=](size_t i) {
    auto start = std::chrono::steady_clock::now();
    auto done = [=](caf::expected<std::vector<json_value>> parts) mutable {
      if (!parts) {
        promise.deliver(std::move(parts.error()));
      } else if (parts->empty()) {
        self->state.queue.push_front(whole_job(self, req, promise));
      } else {
        auto g = std::make_shared<fanout>();
        g->req = req;
        g->promise = promise;
        g->start = start;
        fan_out(self, std::move(g), std::move(*parts));
      }
    };
    dispatch<std::vector<json_value>>(self, i, req, label(req) + " split",
                                      done, split_atom_v, req);
  }};
}

void pump(pool_self self) {
  auto& st = self->state;
  for (size_t i = 0; i < st.workers.size() && !st.queue.empty(); ++i) {
    // A job may be dropped or fail before it starts; the slot then takes
    // the next one.
    while (st.workers[i].handle && !st.workers[i].busy && !st.queue.empty()) {
      auto job = std::move(st.queue.front());
      st.queue.pop_front();
      job.start(i);
    }
  }
}

pool_impl_actor::behavior_type
pool_impl(pool_self self, std::string name, tools::tool_factory factory,
          json_value settings, std::shared_ptr<tools::tool> first,
          pool_options opts) {
  auto workers = opts.workers;
  auto max_queue = opts.max_queue;
  auto& st = self->state;
  st.tool_name = std::move(name);
  st.factory = factory;
  st.settings = std::move(settings);
  st.secrets = opts.secrets;
  st.description = first->describe();
  st.blocking = first->blocking();
  st.splits = first->splits();
  st.workers.resize(std::max<size_t>(1, workers));
  start_worker(self, 0, std::move(first));
  for (size_t i = 1; i < st.workers.size(); ++i)
    start_worker(self, i, nullptr);
  self->set_down_handler([=](const caf::down_msg& msg) {
    auto i = slot_of(self, msg.source);
    if (i == self->state.workers.size())
      return;
    auto& slot = self->state.workers[i];
    if (slot.promise) {
      // A delegated call whose worker died: a worker that threw answered
      // the caller already, and this answer then finds no one waiting.
      slot.promise->deliver(make_error(
        errc::worker_crashed, "tool " + self->state.tool_name
                                + ": worker died during " + label(slot.call)
                                + ": " + describe(msg.reason)));
    }
    if (msg.reason) {
      ++self->state.crashes;
      log::warn("tool worker died; replacing it",
                {{"actor", "tool_pool"}, {"tool", self->state.tool_name},
                 {"reason", describe(msg.reason)}});
    }
    start_worker(self, i, nullptr);
    pump(self);
  });
  return {
    [=](run_atom, task_request& req) -> caf::result<task_result> {
      auto& st = self->state;
      if (st.queue.size() >= max_queue) {
        log::warn("tool call refused: queue full",
                  {{"actor", "tool_pool"},
                   {"tool", st.tool_name},
                   {"execution", req.execution_id},
                   {"task", req.task_id},
                   {"queued", st.queue.size()}});
        return make_error(errc::overloaded,
                          "tool '" + st.tool_name + "': "
                            + std::to_string(st.queue.size())
                            + " calls wait for a worker already (tools."
                            + st.tool_name + ".max_queue)");
      }
      auto promise = self->make_response_promise<task_result>();
      st.queue.push_back(st.splits ? split_job(self, std::move(req), promise)
                                   : whole_job(self, std::move(req), promise));
      pump(self);
      return promise;
    },
    [=](done_atom, uint64_t job) {
      auto i = slot_of_job(self, job);
      if (i == self->state.workers.size())
        return;
      auto& slot = self->state.workers[i];
      slot.busy = false;
      slot.job = 0;
      slot.promise.reset();
      pump(self);
    },
    [=](timer_atom, uint64_t job) {
      auto& st = self->state;
      auto i = slot_of_job(self, job);
      if (i == st.workers.size())
        return;
      auto& slot = st.workers[i];
      ++st.timeouts;
      log::warn("tool call timed out; replacing its worker",
                {{"actor", "tool_pool"}, {"tool", st.tool_name},
                 {"execution", slot.call.execution_id},
                 {"task", slot.call.task_id}, {"call", label(slot.call)}});
      if (slot.promise)
        slot.promise->deliver(make_error(
          errc::timeout, "tool " + st.tool_name + ": " + label(slot.call)
                           + " passed its deadline"));
      abandon(self, i);
      pump(self);
    },
    [=](describe_atom) -> caf::result<json_value> {
      auto& st = self->state;
      size_t busy = 0;
      for (auto& w : st.workers)
        busy += w.busy ? 1 : 0;
      return json_value{json{{"name", st.tool_name},
                             {"description", st.description.description},
                             {"input_schema", st.description.input_schema},
                             {"output_schema", st.description.output_schema},
                             {"blocking", st.blocking},
                             {"splits", st.splits},
                             {"workers", st.workers.size()},
                             {"busy", busy},
                             {"queued", st.queue.size()},
                             {"fanouts", st.fanouts},
                             {"crashes", st.crashes},
                             {"timeouts", st.timeouts}}};
    },
  };
}

} // namespace

caf::expected<tool_pool_actor>
spawn_tool_pool(caf::actor_system& sys, const tools::tool_registry& registry,
                const std::string& name, const json_value& settings,
                pool_options opts) {
  auto first = registry.create(name, settings);
  if (!first)
    return std::move(first.error());
  tools::tool_factory factory = registry.factory(name);
  auto pool = sys.spawn(pool_impl, name, factory, settings,
                        std::shared_ptr<tools::tool>(std::move(*first)), opts);
  return caf::actor_cast<tool_pool_actor>(pool);
}

} // namespace cadre::actors
