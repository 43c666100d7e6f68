#include <chrono>
#include <deque>

#include <caf/actor_system.hpp>
#include <caf/typed_event_based_actor.hpp>

#include "cadre/actors/spawn.hpp"
#include "cadre/tools/tool_registry.hpp"

namespace cadre::actors {

namespace {

using worker_actor = caf::typed_actor<
  caf::replies_to<run_atom, task_request>::with<task_result>>;

int64_t now_us() {
  using namespace std::chrono;
  return duration_cast<microseconds>(system_clock::now().time_since_epoch())
    .count();
}

// -- worker -------------------------------------------------------------------

struct worker_state {
  static inline const char* name = "cadre.tool_worker";
  // Not an aggregate: CAF would try to build it from the actor pointer.
  worker_state() = default;
};

worker_actor::behavior_type
worker_impl(worker_actor::stateful_pointer<worker_state> self,
            std::shared_ptr<tools::tool> tool,
            std::shared_ptr<std::atomic<bool>> cancel_flag) {
  return {
    [=](run_atom, const task_request& req) -> caf::result<task_result> {
      tools::tool_context ctx;
      ctx.execution_id = req.execution_id;
      ctx.task_id = req.task_id;
      ctx.attempt = req.attempt;
      ctx.idempotency_key = req.idempotency_key;
      ctx.deadline_us = req.deadline_us;
      ctx.cancel_flag = cancel_flag;
      auto start = std::chrono::steady_clock::now();
      try {
        auto out = tool->invoke(req.input, ctx);
        if (!out)
          return std::move(out.error());
        task_result res;
        res.output = std::move(*out);
        res.duration_us
          = std::chrono::duration_cast<std::chrono::microseconds>(
              std::chrono::steady_clock::now() - start)
              .count();
        return res;
      } catch (const std::exception& e) {
        // The worker's state is suspect after a throw: answer this call,
        // then die so the pool starts a fresh one.
        self->quit(caf::sec::runtime_error);
        return make_error(errc::worker_crashed,
                          "tool " + tool->name() + " threw: " + e.what());
      } catch (...) {
        self->quit(caf::sec::runtime_error);
        return make_error(errc::worker_crashed,
                          "tool " + tool->name() + " threw a non-exception");
      }
    },
  };
}

// -- pool ---------------------------------------------------------------------

struct worker_slot {
  worker_actor handle;
  std::shared_ptr<std::atomic<bool>> cancel_flag;
  bool busy = false;
};

struct queued_call {
  task_request req;
  caf::typed_response_promise<task_result> promise;
};

struct pool_state {
  static inline const char* name = "cadre.tool_pool";
  // Not an aggregate: CAF would try to build it from the actor pointer.
  pool_state() = default;
  std::string tool_name;
  tools::tool_factory factory = nullptr;
  json_value settings;
  tools::tool_description description;
  bool blocking = false;
  std::vector<worker_slot> workers;
  std::deque<queued_call> queue;
  uint64_t crashes = 0;
  uint64_t timeouts = 0;

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

using pool_self = tool_pool_actor::stateful_pointer<pool_state>;

void pump(pool_self self);

// Starts a fresh worker in slot `i`.
void start_worker(pool_self self, size_t i, std::shared_ptr<tools::tool> tool) {
  auto& st = self->state;
  if (!tool) {
    auto made = st.factory(st.settings);
    if (!made) {
      // The factory worked at start-up; failing now leaves the slot empty.
      st.workers[i] = worker_slot{};
      return;
    }
    tool = std::shared_ptr<tools::tool>(std::move(*made));
  }
  auto flag = std::make_shared<std::atomic<bool>>(false);
  worker_actor w = st.blocking
                     ? self->spawn<caf::detached>(worker_impl, tool, flag)
                     : self->spawn(worker_impl, tool, flag);
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

void run_on(pool_self self, size_t i, queued_call call) {
  auto& st = self->state;
  auto& slot = st.workers[i];
  slot.busy = true;
  auto handle = slot.handle;
  caf::duration timeout = caf::infinite;
  if (call.req.deadline_us > 0) {
    auto left = call.req.deadline_us - now_us();
    if (left <= 0) {
      slot.busy = false;
      ++st.timeouts;
      call.promise.deliver(make_error(
        errc::timeout, "task " + call.req.task_id + " attempt "
                         + std::to_string(call.req.attempt)
                         + ": deadline passed before tool "
                         + st.tool_name + " could start"));
      return;
    }
    timeout = caf::duration{std::chrono::microseconds{left}};
  }
  auto promise = call.promise;
  auto req = std::move(call.req);
  self->request(handle, timeout, run_atom_v, req)
    .then(
      [=](task_result& res) mutable {
        promise.deliver(std::move(res));
        auto j = slot_of(self, handle.address());
        if (j < self->state.workers.size())
          self->state.workers[j].busy = false;
        pump(self);
      },
      [=](caf::error& err) mutable {
        auto& st = self->state;
        auto j = slot_of(self, handle.address());
        if (err == caf::sec::request_timeout) {
          ++st.timeouts;
          promise.deliver(make_error(
            errc::timeout, "tool " + st.tool_name + ": task " + req.task_id
                             + " attempt " + std::to_string(req.attempt)
                             + " passed its deadline"));
          if (j < st.workers.size())
            abandon(self, j);
        } else if (err.category() == caf::atom("cadre")) {
          // The tool's own failure; a worker_crashed error also ends the
          // worker, which the down handler replaces.
          promise.deliver(std::move(err));
          if (j < st.workers.size())
            st.workers[j].busy = false;
        } else {
          ++st.crashes;
          promise.deliver(make_error(errc::worker_crashed,
                                     "tool " + st.tool_name
                                       + ": worker died: " + describe(err)));
        }
        pump(self);
      });
}

void pump(pool_self self) {
  auto& st = self->state;
  for (size_t i = 0; i < st.workers.size() && !st.queue.empty(); ++i) {
    if (st.workers[i].handle && !st.workers[i].busy) {
      auto call = std::move(st.queue.front());
      st.queue.pop_front();
      run_on(self, i, std::move(call));
    }
  }
}

tool_pool_actor::behavior_type
pool_impl(pool_self self, std::string name, tools::tool_factory factory,
          json_value settings, std::shared_ptr<tools::tool> first,
          size_t workers) {
  auto& st = self->state;
  st.tool_name = std::move(name);
  st.factory = factory;
  st.settings = std::move(settings);
  st.description = first->describe();
  st.blocking = first->blocking();
  st.workers.resize(std::max<size_t>(1, workers));
  start_worker(self, 0, std::move(first));
  for (size_t i = 1; i < st.workers.size(); ++i)
    start_worker(self, i, nullptr);
  self->set_down_handler([=](const caf::down_msg& msg) {
    auto i = slot_of(self, msg.source);
    if (i == self->state.workers.size())
      return;
    if (msg.reason)
      ++self->state.crashes;
    start_worker(self, i, nullptr);
    pump(self);
  });
  return {
    [=](run_atom, task_request& req) -> caf::result<task_result> {
      auto promise = self->make_response_promise<task_result>();
      self->state.queue.push_back(queued_call{std::move(req), promise});
      pump(self);
      return promise;
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
                             {"workers", st.workers.size()},
                             {"busy", busy},
                             {"queued", st.queue.size()},
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
  return sys.spawn(pool_impl, name, factory, settings,
                   std::shared_ptr<tools::tool>(std::move(*first)),
                   opts.workers);
}

} // namespace cadre::actors
