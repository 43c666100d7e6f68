#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include <caf/actor_system.hpp>
#include <caf/mailbox_element.hpp>
#include <caf/stateful_actor.hpp>
#include <caf/typed_event_based_actor.hpp>

#include "cadre/actors/spawn.hpp"
#include "cadre/log/log.hpp"
#include "cadre/lang/secrets.hpp"
#include "cadre/tools/tool_registry.hpp"
#include "one_timer.hpp"

namespace cadre::actors {

namespace {

// What a worker answers: whole calls (run), and the stages of a call that
// its tool splits (split, then run per part, then join).
using worker_actor = caf::typed_actor<
  // A whole call as its caller sent it, or from the pool a part of a split
  // call. The worker answers a whole call's caller itself and then takes
  // the next whole call waiting, or tells the pool it is free (done_atom).
  caf::replies_to<run_atom, task_request>::with<task_result>,
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
// a worker that could not free its own slot (slot index), and a deadline
// sweep (its generation, one_timer.hpp).
using pool_impl_actor
  = tool_pool_actor::extend<caf::reacts_to<done_atom, uint64_t>,
                            caf::reacts_to<timer_atom, uint64_t>>;

// -- the pool's slots ---------------------------------------------------------

// Who waits for a whole call. An answer other than the worker's (a
// deadline, a dead worker) is sent from `self`, the actor whose thread this
// runs on; the promise is made only then.
struct caller_ref {
  caf::strong_actor_ptr sender;
  caf::mailbox_element::forwarding_stack stages;
  caf::message_id mid;

  void deliver(caf::actor_control_block* self, caf::error err) {
    caf::response_promise{caf::strong_actor_ptr{self}, std::move(sender),
                          std::move(stages), mid}
      .deliver(std::move(err));
  }
};

struct worker_slot {
  worker_actor handle;
  std::shared_ptr<std::atomic<bool>> cancel_flag;
  bool busy = false;
  // Who waits for the whole call on this worker (none: no whole call): the
  // worker answers the caller, the pool only when the call passes its
  // deadline (0: none) or the worker dies without answering.
  std::optional<caller_ref> caller;
  int64_t deadline_us = 0;
  task_request call;
};

std::string label(const task_request& req) {
  return "task " + req.task_id + " attempt " + std::to_string(req.attempt);
}

// Whether `msg` is (run_atom, task_request), checked on every message the
// pool receives: the second element's type by its type_info's address
// first (the deserializer and make_message both take it from typeid), which
// costs less than CAF's generic match_elements.
bool is_whole_call(const caf::type_erased_tuple& msg) {
  if (msg.size() != 2)
    return false;
  auto second = msg.type(1);
  if (second.first != 0 || second.second == nullptr
      || (second.second != &typeid(task_request)
          && *second.second != typeid(task_request)))
    return false;
  // The atom by its type number and value: CAF's match_element goes
  // through two calls out of line.
  return msg.type_nr(0) == caf::type_nr<caf::atom_value>::value
         && msg.get_as<caf::atom_value>(0) == run_atom::get_value();
}

// A whole call as its caller sent it, (run_atom, task_request) with the
// caller as sender: whoever starts it (the caller's thread, the pool, or
// the worker that has just finished a call) forwards this very message to a
// worker, which answers the caller itself.
struct whole_call {
  caf::mailbox_element_ptr msg;

  const task_request& req() const {
    return msg->content().get_as<task_request>(1);
  }

  bool expired() const {
    return req().deadline_us > 0 && req().deadline_us <= now_us();
  }

  // Answers the caller from `self`, the actor whose thread this runs on.
  void answer(caf::actor_control_block* self, caf::error err) {
    caller_ref{std::move(msg->sender), std::move(msg->stages), msg->mid}
      .deliver(self, std::move(err));
  }
};

// Work waiting for a free worker: a whole call, or a stage of a split call
// (split, a part or a join), which only the pool starts.
struct queued_job {
  // Starts the job on the worker in slot `i`, or drops it when its call has
  // already failed (the slot then stays free).
  std::function<void(size_t)> start;
  std::optional<whole_call> call;
};

// A deadline sweep to schedule: its time (microseconds since the epoch;
// 0: none) and its timer's generation.
struct sweep_at {
  int64_t us = 0;
  uint64_t generation = 0;
};

// Has the pool hear the timer_atom of `sweep` at its time.
void schedule_sweep(sweep_at sweep, caf::actor_control_block* pool,
                    caf::actor_clock& clock) {
  auto left = std::chrono::microseconds{sweep.us - now_us()};
  clock.schedule_message(clock.now() + left, caf::strong_actor_ptr{pool},
                         caf::make_mailbox_element(nullptr,
                                                   caf::make_message_id(), {},
                                                   timer_atom_v,
                                                   sweep.generation));
}

// A whole call given to a worker, to send once the table's lock is released;
// `sweep`: a deadline sweep to schedule first. `worker`: the worker's
// handle, held across the lock's release (none when the worker takes the
// call itself).
struct outgoing {
  worker_actor worker;
  sweep_at sweep;
  whole_call call;
};

// Sends `out` to `worker` (the worker `out` names when null).
void send_call(outgoing& out, caf::actor_control_block* pool,
               caf::actor_system& sys, caf::execution_unit* eu,
               caf::abstract_actor* worker = nullptr) {
  if (out.sweep.us > 0)
    schedule_sweep(out.sweep, pool, sys.clock());
  // A worker replaced since the lock was released (deadline, death)
  // bounces the call to its caller as CAF does for any dead receiver; the
  // pool has answered it by then.
  if (worker == nullptr)
    worker = caf::actor_cast<caf::abstract_actor*>(out.worker);
  worker->enqueue(std::move(out.call.msg), eu);
}

// Whole calls that arrive while every worker is busy, pushed without a lock:
// a remote call is handed over inside CAF's BASP message queue, under that
// queue's lock, which the middleman's thread takes for every message it
// reads, so the shorter this step the fewer threads wait there. Open only
// while every worker is busy (each drains it when its call ends); a worker
// that would become free closes it, so no call waits here while a worker
// idles, and a closed intake sends callers the locked way.
class intake_stack {
public:
  intake_stack() = default;
  intake_stack(const intake_stack&) = delete;
  intake_stack& operator=(const intake_stack&) = delete;

  ~intake_stack() {
    auto* x = head_.exchange(closed());
    if (x != closed())
      take(x, [](caf::mailbox_element_ptr) {});
  }

  // Pushes `ptr` unless the intake is closed or `bound` calls wait already
  // (`queued`: those in the pool's queue); false leaves `ptr` untouched.
  bool push(caf::mailbox_element_ptr& ptr, size_t queued, size_t bound) {
    // Closed while a worker is free, i.e. for most calls: a plain load
    // spares them the count's two locked updates.
    if (head_.load(std::memory_order_relaxed) == closed())
      return false;
    if (count_.fetch_add(1, std::memory_order_relaxed) + queued >= bound) {
      count_.fetch_sub(1, std::memory_order_relaxed);
      return false;
    }
    auto* h = head_.load(std::memory_order_relaxed);
    do {
      if (h == closed()) {
        count_.fetch_sub(1, std::memory_order_relaxed);
        return false;
      }
      ptr->next = h;
    } while (!head_.compare_exchange_weak(h, ptr.get(),
                                          std::memory_order_release,
                                          std::memory_order_relaxed));
    ptr.release();
    return true;
  }

  // Hands every call waiting to `f`, oldest first; the intake stays open.
  template <class F>
  size_t drain(F f) {
    auto* h = head_.load(std::memory_order_relaxed);
    if (h == nullptr || h == closed())
      return 0;
    return take(head_.exchange(nullptr, std::memory_order_acquire), f);
  }

  // Closes an empty intake; false when a call came in first (drain again).
  bool try_close() {
    caf::mailbox_element* expected = head_.load(std::memory_order_relaxed);
    if (expected != nullptr)
      return expected == closed();
    return head_.compare_exchange_strong(expected, closed(),
                                         std::memory_order_acq_rel)
           || expected == closed();
  }

  // Opens a closed intake (under the pool's lock, the only place that
  // opens or closes it; a plain load spares the open one a locked swap).
  void open() {
    auto* expected = closed();
    if (head_.load(std::memory_order_relaxed) == expected)
      head_.compare_exchange_strong(expected, nullptr,
                                    std::memory_order_acq_rel);
  }

  // Closes the intake for good, handing what waits to `f`.
  template <class F>
  void shut(F f) {
    auto* x = head_.exchange(closed(), std::memory_order_acq_rel);
    if (x != closed())
      take(x, f);
  }

  size_t size() const {
    return count_.load(std::memory_order_relaxed);
  }

private:
  // The closed tag: no mailbox element lives at address 1.
  static caf::mailbox_element* closed() {
    return reinterpret_cast<caf::mailbox_element*>(std::uintptr_t{1});
  }

  // Reverses the stack `x` (newest first) and hands it to `f` oldest first.
  template <class F>
  size_t take(caf::mailbox_element* x, F&& f) {
    caf::mailbox_element* fifo = nullptr;
    size_t n = 0;
    while (x != nullptr) {
      auto* next = static_cast<caf::mailbox_element*>(x->next);
      x->next = fifo;
      fifo = x;
      x = next;
      ++n;
    }
    count_.fetch_sub(n, std::memory_order_relaxed);
    while (fifo != nullptr) {
      auto* next = static_cast<caf::mailbox_element*>(fifo->next);
      fifo->next = nullptr;
      f(caf::mailbox_element_ptr{fifo});
      fifo = next;
    }
    return n;
  }

  std::atomic<caf::mailbox_element*> head_{closed()};
  std::atomic<size_t> count_{0};
};

// The slot table's lock. Callers and workers only try it and hold it for a
// few hundred instructions; the pool actor takes it, spinning (with a yield)
// through such a short hold. Unlike a std::mutex, taking it is one exchange
// and releasing it a plain store, on every call's path twice.
class table_lock {
public:
  bool try_lock() noexcept {
    return !held_.load(std::memory_order_relaxed)
           && !held_.exchange(true, std::memory_order_acquire);
  }

  void lock() noexcept {
    while (!try_lock())
      std::this_thread::yield();
  }

  void unlock() noexcept {
    held_.store(false, std::memory_order_release);
  }

private:
  std::atomic<bool> held_{false};
};

// The pool's workers and queue, shared by the pool actor, the callers and
// the workers. A whole call that finds a free worker goes straight into its
// mailbox from the caller's thread; one that finds none waits in the queue
// (or, while every worker is busy, in the lock-free intake, which the
// workers move into the queue); a worker that finishes a call takes the
// next whole call waiting itself.
// So a call passes through no mailbox but its worker's (locally as for a
// call from another node, which arrives on the middleman's thread). Callers
// and workers only ever try_lock: a scheduler thread never waits here, it
// takes the pool's mailbox instead. The pool actor holds the lock through
// each of its handlers that changes the table (describe only reads it).
struct slot_table {
  table_lock mtx;
  std::vector<worker_slot> workers;
  std::deque<queued_job> queue;
  std::string tool_name;
  size_t max_queue = 0;
  // The deadline sweep's timer. Whole calls' deadlines share sweeps: a call
  // whose deadline is later than the sweep armed schedules none, so a call
  // costs no timer of its own.
  one_timer<int64_t> sweep;
  uint64_t timeouts = 0;
  // Calls that never passed the pool's mailbox (describe: `direct`).
  uint64_t direct_calls = 0;
  // Calls sent to the pool's mailbox and not read yet: while there are any,
  // no later call overtakes them on the direct way.
  std::atomic<size_t> unread{0};
  // Splitting tools and a pool that has ended (its state is gone) take the
  // mailbox way only.
  bool direct = false;
  // Whole calls that came in while every worker was busy, and the queue's
  // length as of its last change (the intake's share of max_queue).
  intake_stack intake;
  std::atomic<size_t> queued{0};

  // Moves the intake's calls to the end of the queue.
  void drain_intake() {
    direct_calls += intake.drain([this](caf::mailbox_element_ptr m) {
      queue.push_back({nullptr, whole_call{std::move(m)}});
    });
  }

  // After the workers or the queue changed: the intake is open exactly
  // while every worker is busy. False when a call came into it as it was
  // closing: drain it and start that call. `freed`: a worker has just
  // been freed (no need to look for one).
  bool settle(bool freed = false) {
    // Stored only when it changed: callers read it on every call.
    if (queued.load(std::memory_order_relaxed) != queue.size())
      queued.store(queue.size(), std::memory_order_relaxed);
    if (!direct)
      return true;
    if (!freed && free_slot() == workers.size()) {
      intake.open();
      return true;
    }
    return intake.try_close();
  }

  size_t free_slot() const {
    for (size_t i = 0; i < workers.size(); ++i)
      if (workers[i].handle && !workers[i].busy)
        return i;
    return workers.size();
  }

  // Whether the worker `w` is (still) the one in slot `i`.
  bool holds(size_t i, caf::actor_control_block* w) const {
    return i < workers.size()
           && caf::actor_cast<caf::actor_control_block*>(workers[i].handle)
                == w;
  }

  // A sweep to schedule for `deadline_us` (none: no deadline, or the sweep
  // armed already comes first).
  sweep_at sweep_for(int64_t deadline_us) {
    if (deadline_us <= 0)
      return {};
    auto generation = sweep.arm(deadline_us);
    if (!generation)
      return {};
    return {deadline_us, *generation};
  }

  // The earliest deadline of the whole calls on workers (0: none).
  int64_t earliest_deadline() const {
    int64_t out = 0;
    for (auto& w : workers)
      if (w.caller && w.deadline_us > 0
          && (out == 0 || w.deadline_us < out))
        out = w.deadline_us;
    return out;
  }

  void vacate(worker_slot& slot) {
    slot.busy = false;
    slot.caller.reset();
    slot.deadline_us = 0;
  }

  // Gives `c` to the worker in slot `i`. The slot keeps who waits and the
  // deadline, for the pool's own answers. The worker's handle is the
  // sender's to add: the worker itself needs none.
  outgoing assign(size_t i, whole_call c) {
    auto& slot = workers[i];
    slot.busy = true;
    // Filled in place: no temporary to copy the caller through.
    auto& caller = slot.caller.emplace();
    caller.sender = c.msg->sender;
    if (!c.msg->stages.empty())
      caller.stages = c.msg->stages;
    caller.mid = c.msg->mid;
    const auto& req = c.req();
    slot.deadline_us = req.deadline_us;
    // Assigned into the slot's own strings, whose capacity stays.
    slot.call.execution_id = req.execution_id;
    slot.call.task_id = req.task_id;
    slot.call.attempt = req.attempt;
    return {worker_actor{}, sweep_for(req.deadline_us), std::move(c)};
  }

  caf::error too_late(const task_request& req) {
    ++timeouts;
    return make_error(errc::timeout, label(req) + ": deadline passed before "
                                       + "tool " + tool_name + " could start");
  }

  // The caller's side: takes the call in `ptr` (a run_atom, task_request)
  // when the lock is free and no call waits in the mailbox. `out` is set
  // when a worker was free; otherwise the call waits in the queue. False
  // leaves `ptr` untouched, for the pool's mailbox.
  bool try_take(caf::mailbox_element_ptr& ptr, std::optional<outgoing>& out) {
    std::unique_lock<table_lock> guard{mtx, std::try_to_lock};
    if (!guard.owns_lock() || !direct || unread > 0)
      return false;
    // The bound counts the intake's calls too (they came first).
    drain_intake();
    auto i = queue.empty() ? free_slot() : workers.size();
    if (i == workers.size() && queue.size() >= max_queue) {
      settle();
      return false; // the pool refuses it as overloaded
    }
    whole_call c{std::move(ptr)};
    if (i < workers.size()) {
      out = assign(i, std::move(c));
      out->worker = workers[i].handle;
    }
    else
      queue.push_back({nullptr, std::move(c)});
    ++direct_calls;
    // The intake was closed (a worker was free) or every worker is busy:
    // settling only opens it or keeps it closed, so it cannot fail here.
    settle();
    return true;
  }

  enum class released { freed, next, tell_pool };

  // The worker's side: the whole call of the worker `me` in slot `i` has
  // ended. Takes the next whole call waiting into `next` (expired ones into
  // `expired`, for the worker to answer), or frees the slot. `tell_pool`:
  // the lock was taken or a split stage waits, and the pool must free the
  // slot and start it.
  released release(size_t i, caf::actor_control_block* me,
                   std::vector<std::pair<whole_call, caf::error>>& expired,
                   std::optional<outgoing>& next) {
    std::unique_lock<table_lock> guard{mtx, std::try_to_lock};
    if (!guard.owns_lock())
      return released::tell_pool;
    if (!holds(i, me))
      return released::freed; // the pool has given up on this worker
    for (;;) {
      drain_intake();
      while (!queue.empty() && queue.front().call) {
        auto c = std::move(*queue.front().call);
        queue.pop_front();
        if (c.expired()) {
          auto err = too_late(c.req());
          expired.emplace_back(std::move(c), std::move(err));
          continue;
        }
        next = assign(i, std::move(c));
        settle();
        return released::next;
      }
      if (!queue.empty()) {
        settle();
        return released::tell_pool;
      }
      vacate(workers[i]);
      if (settle(true))
        return released::freed;
      // A call came into the intake as this worker closed it: take it.
    }
  }
};

using slots_ptr = std::shared_ptr<slot_table>;

// -- worker -------------------------------------------------------------------

struct worker_state {
  static inline const char* name = "cadre.tool_worker";
  // Not an aggregate: CAF would try to build it from the actor pointer.
  worker_state() = default;
  // The context of the whole call running, refilled for each: its strings
  // keep their capacity and its pointers their targets, so a call
  // allocates none of it.
  tools::tool_context ctx;
};

using worker_self = worker_actor::stateful_pointer<worker_state>;

using secrets_ptr = std::shared_ptr<const tools::secret_store>;

// Fills `ctx` for the call `req` (every field: a tool may have changed any).
void fill_context(tools::tool_context& ctx, const task_request& req,
                  const std::shared_ptr<std::atomic<bool>>& flag,
                  const secrets_ptr& secrets) {
  if (ctx.secrets != secrets)
    ctx.secrets = secrets;
  // Most calls name no secret: no vector assignment then.
  if (!req.secret_pointers.empty() || !ctx.secret_pointers.empty())
    ctx.secret_pointers = req.secret_pointers;
  ctx.execution_id = req.execution_id;
  ctx.task_id = req.task_id;
  ctx.attempt = req.attempt;
  ctx.idempotency_key = req.idempotency_key;
  ctx.deadline_us = req.deadline_us;
  if (ctx.cancel_flag != flag)
    ctx.cancel_flag = flag;
}

tools::tool_context make_context(const task_request& req,
                                 const std::shared_ptr<std::atomic<bool>>& flag,
                                 const secrets_ptr& secrets) {
  tools::tool_context ctx;
  fill_context(ctx, req, flag, secrets);
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

// One whole call of the tool, in the worker's context `ctx`.
expected<task_result> invoke(tools::tool& tool, const task_request& req,
                             const std::shared_ptr<std::atomic<bool>>& flag,
                             const secrets_ptr& secrets,
                             tools::tool_context& ctx) {
  // Without secrets to fill, the tool reads the request's own input.
  std::optional<expected<json_value>> filled;
  if (!req.secret_pointers.empty()) {
    filled = filled_input(req, secrets);
    if (!*filled)
      return std::move(filled->error());
  }
  const json_value& input = filled ? **filled : req.input;
  fill_context(ctx, req, flag, secrets);
  auto start = std::chrono::steady_clock::now();
  auto out = tool.invoke(input, ctx);
  if (!out)
    return std::move(out.error());
  task_result res;
  res.output = std::move(*out);
  res.duration_us = since_us(start);
  return res;
}

// After a whole call: the worker in slot `i` starts the next whole call
// waiting itself, answers those past their deadline, or tells the pool.
void take_next(worker_self self, const pool_impl_actor& pool,
               slot_table& slots, size_t i) {
  std::vector<std::pair<whole_call, caf::error>> expired;
  std::optional<outgoing> next;
  auto* pool_ptr = caf::actor_cast<caf::actor_control_block*>(pool);
  auto what = slots.release(i, self->ctrl(), expired, next);
  for (auto& [c, err] : expired)
    c.answer(self->ctrl(), std::move(err));
  if (what == slot_table::released::next)
    send_call(*next, pool_ptr, self->home_system(), self->context(), self);
  else if (what == slot_table::released::tell_pool)
    self->send(pool, done_atom_v, uint64_t{i});
}

worker_actor::behavior_type
worker_impl(worker_self self, std::shared_ptr<tools::tool> tool,
            std::shared_ptr<std::atomic<bool>> cancel_flag,
            secrets_ptr secrets, pool_impl_actor pool, slots_ptr slots,
            size_t slot) {
  return {
    [=](run_atom, const task_request& req) -> caf::result<task_result> {
      bool ended = false;
      auto out = guarded_call<task_result>(
        self, *tool, secrets,
        [&] {
          return invoke(*tool, req, cancel_flag, secrets, self->state.ctx);
        },
        ended);
      // A part of a split call comes from the pool, which frees the slot
      // when it hears the answer; a worker that quit takes no next call:
      // the pool's down handler frees its slot with a fresh worker.
      auto from_pool = self->current_sender().get()
                       == caf::actor_cast<caf::actor_control_block*>(pool);
      if (!ended && !from_pool)
        take_next(self, pool, *slots, slot);
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

// One split call: its parts' outputs, filled in any order, joined in order.
struct fanout {
  task_request req;
  caf::typed_response_promise<task_result> promise;
  std::vector<json_value> outputs;
  size_t left = 0;
  // Its caller has its answer (or, without parts, the whole call took
  // over): no stage of it runs any more.
  bool answered = false;
  std::chrono::steady_clock::time_point start;

  void fail(caf::error err) {
    if (answered)
      return;
    answered = true;
    promise.deliver(std::move(err));
    release();
  }

  void deliver(task_result res) {
    if (answered)
      return;
    answered = true;
    promise.deliver(std::move(res));
    release();
  }

  // Answered, it is held only until the pool's list of open split calls
  // drops it: without its outputs and input.
  void release() {
    outputs = {};
    req.input = json_value{};
  }
};

// -- pool ---------------------------------------------------------------------

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
  bool side_effects = true;
  slots_ptr slots;
  uint64_t crashes = 0;
  uint64_t fanouts = 0;
  // The split calls, queued or on workers, with those answered since the
  // last prune: when the pool ends, their answers (made in the pool's
  // response handlers, which CAF drops first) would never come.
  std::vector<std::shared_ptr<fanout>> open_splits;
  size_t prune_at = 64;

  void track(std::shared_ptr<fanout> g) {
    if (open_splits.size() >= prune_at) {
      open_splits.erase(std::remove_if(open_splits.begin(), open_splits.end(),
                                       [](const std::shared_ptr<fanout>& x) {
                                         return x->answered;
                                       }),
                        open_splits.end());
      prune_at = std::max<size_t>(64, 2 * open_splits.size());
    }
    open_splits.push_back(std::move(g));
  }

  // The pool itself, to answer from (set once it runs).
  caf::actor_control_block* self = nullptr;

  // The pool's end is its workers' end; a worker blocked in a tool sees its
  // cancel flag. Every call still waiting (intake and queue) and every
  // split call is answered at once, not left to its caller's deadline.
  ~pool_state() {
    if (!slots)
      return;
    std::lock_guard<table_lock> guard{slots->mtx};
    slots->direct = false;
    slots->drain_intake();
    slots->intake.shut([](caf::mailbox_element_ptr) {});
    // Runs while the pool terminates (its handle still counts): the
    // answers come from it. Without a live handle there is no one to
    // answer from (and, workers holding the pool, no call waits then).
    auto* me = self != nullptr && self->strong_refs.load() > 0 ? self : nullptr;
    for (auto& job : slots->queue)
      if (me != nullptr && job.call)
        job.call->answer(me, ended(label(job.call->req())));
    for (auto& g : open_splits)
      if (me != nullptr)
        g->fail(ended(label(g->req)));
    open_splits.clear();
    slots->queue.clear();
    slots->queued.store(0, std::memory_order_relaxed);
    for (auto& w : slots->workers)
      if (w.handle) {
        w.cancel_flag->store(true);
        caf::anon_send_exit(w.handle, caf::exit_reason::kill);
      }
  }

  caf::error ended(const std::string& what) const {
    return make_error(errc::unavailable, what + ": the pool of tool "
                                           + tool_name
                                           + " ended before it could start");
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
      st.slots->workers[i] = worker_slot{};
      return;
    }
    tool = std::shared_ptr<tools::tool>(std::move(*made));
  }
  auto flag = std::make_shared<std::atomic<bool>>(false);
  auto pool = caf::actor_cast<pool_impl_actor>(self);
  worker_actor w = st.blocking
                     ? self->spawn<caf::detached>(worker_impl, tool, flag,
                                                  st.secrets, pool, st.slots,
                                                  i)
                     : self->spawn(worker_impl, tool, flag, st.secrets, pool,
                                   st.slots, i);
  self->monitor(w);
  st.slots->workers[i] = worker_slot{w, flag, false};
}

size_t slot_of(pool_self self, const caf::actor_addr& addr) {
  auto& ws = self->state.slots->workers;
  for (size_t i = 0; i < ws.size(); ++i)
    if (ws[i].handle && ws[i].handle.address() == addr)
      return i;
  return ws.size();
}

// Gives up on a worker stuck past a deadline: it may be blocked inside the
// tool, so it is told to stop (cancel flag, then kill) and replaced.
void abandon(pool_self self, size_t i) {
  auto& slot = self->state.slots->workers[i];
  slot.cancel_flag->store(true);
  self->demonitor(slot.handle.address());
  self->send_exit(slot.handle, caf::exit_reason::kill);
  start_worker(self, i, nullptr);
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
  auto& slot = st.slots->workers[i];
  auto handle = slot.handle;
  // caf::infinite only for a call without a deadline (a task without
  // `timeout`); the worker is watched by a monitor either way.
  caf::duration timeout = caf::infinite;
  if (req.deadline_us > 0) {
    auto left = req.deadline_us - now_us();
    if (left <= 0) {
      ++st.slots->timeouts;
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
        std::lock_guard<table_lock> guard{self->state.slots->mtx};
        auto j = slot_of(self, handle.address());
        if (j < self->state.slots->workers.size())
          self->state.slots->workers[j].busy = false;
        done(std::move(res));
        pump(self);
      },
      [=, execution = req.execution_id, task = req.task_id](caf::error& err) {
        auto& st = self->state;
        std::lock_guard<table_lock> guard{st.slots->mtx};
        auto j = slot_of(self, handle.address());
        if (err == caf::sec::request_timeout) {
          ++st.slots->timeouts;
          log::warn("tool call timed out; replacing its worker",
                    {{"actor", "tool_pool"}, {"tool", st.tool_name},
                     {"execution", execution}, {"task", task},
                     {"call", what}});
          done(make_error(errc::timeout, "tool " + st.tool_name + ": " + what
                                           + " passed its deadline"));
          if (j < st.slots->workers.size())
            abandon(self, j);
        } else if (err.category() == caf::atom("cadre")) {
          // The tool's own failure. A worker_crashed error also ends the
          // worker: its slot stays taken until the down handler has put a
          // fresh worker in it, so no call is sent to the dying one.
          if (j < st.slots->workers.size() && code_of(err) != errc::worker_crashed)
            st.slots->workers[j].busy = false;
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

// A whole call waiting in the queue, from the promise the pool made for it.
queued_job whole_job(caf::typed_response_promise<task_result> promise,
                     task_request req) {
  caf::response_promise& untyped = promise;
  return {nullptr,
          whole_call{caf::make_mailbox_element(untyped.source(), untyped.id(),
                                               untyped.stages(), run_atom_v,
                                               std::move(req))}};
}

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
    self->state.slots->queue.push_back({[=](size_t i) {
      if (g->answered)
        return;
      auto done = [self, g, k](caf::expected<task_result> res) {
        if (g->answered)
          return;
        if (!res) {
          g->fail(std::move(res.error()));
          return;
        }
        g->outputs[k] = std::move(res->output);
        if (--g->left > 0)
          return;
        self->state.slots->queue.push_front({[=](size_t j) {
          auto joined = [g](caf::expected<task_result> res) {
            if (!res) {
              g->fail(std::move(res.error()));
              return;
            }
            res->duration_us = since_us(g->start);
            g->deliver(std::move(*res));
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
  auto g = std::make_shared<fanout>();
  g->req = std::move(req);
  g->promise = std::move(promise);
  self->state.track(g);
  return {[=](size_t i) {
    if (g->answered)
      return;
    g->start = std::chrono::steady_clock::now();
    auto done = [=](caf::expected<std::vector<json_value>> parts) {
      if (!parts) {
        g->fail(std::move(parts.error()));
      } else if (parts->empty()) {
        // The whole call answers its caller from here on.
        g->answered = true;
        self->state.slots->queue.push_front(whole_job(g->promise, g->req));
      } else {
        fan_out(self, g, std::move(*parts));
      }
    };
    dispatch<std::vector<json_value>>(self, i, g->req,
                                      label(g->req) + " split", done,
                                      split_atom_v, g->req);
  }};
}

void pump(pool_self self) {
  auto& st = self->state;
  auto& slots = *st.slots;
  auto* me = caf::actor_cast<caf::actor_control_block*>(self);
  // Until the intake settles: a call may come into it as it closes.
  do {
    slots.drain_intake();
    for (size_t i = 0; i < slots.workers.size() && !slots.queue.empty(); ++i) {
      // A job may be dropped or fail before it starts; the slot then takes
      // the next one.
      while (slots.workers[i].handle && !slots.workers[i].busy
             && !slots.queue.empty()) {
        auto job = std::move(slots.queue.front());
        slots.queue.pop_front();
        if (!job.call) {
          job.start(i);
        } else if (job.call->expired()) {
          job.call->answer(me, slots.too_late(job.call->req()));
        } else {
          auto out = slots.assign(i, std::move(*job.call));
          out.worker = slots.workers[i].handle;
          send_call(out, me, self->home_system(), self->context());
        }
      }
    }
  } while (!slots.settle());
}

pool_impl_actor::behavior_type
pool_impl(pool_self self, std::string name, tools::tool_factory factory,
          json_value settings, std::shared_ptr<tools::tool> first,
          pool_options opts, slots_ptr slots) {
  auto workers = opts.workers;
  auto max_queue = opts.max_queue;
  auto& st = self->state;
  st.slots = std::move(slots);
  st.self = self->ctrl();
  std::lock_guard<table_lock> guard{st.slots->mtx};
  st.tool_name = std::move(name);
  st.factory = factory;
  st.settings = std::move(settings);
  st.secrets = opts.secrets;
  st.description = first->describe();
  st.blocking = first->blocking();
  st.splits = first->splits();
  st.side_effects = first->side_effects();
  st.slots->workers.resize(std::max<size_t>(1, workers));
  start_worker(self, 0, std::move(first));
  for (size_t i = 1; i < st.slots->workers.size(); ++i)
    start_worker(self, i, nullptr);
  st.slots->tool_name = st.tool_name;
  st.slots->max_queue = max_queue;
  st.slots->direct = !st.splits;
  self->set_down_handler([=](const caf::down_msg& msg) {
    std::lock_guard<table_lock> guard{self->state.slots->mtx};
    auto i = slot_of(self, msg.source);
    if (i == self->state.slots->workers.size())
      return;
    auto& slot = self->state.slots->workers[i];
    if (slot.caller) {
      // A whole call whose worker died: a worker that threw answered the
      // caller already, and this answer then finds no one waiting.
      slot.caller->deliver(self->ctrl(), make_error(
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
      std::lock_guard<table_lock> guard{st.slots->mtx};
      if (st.slots->unread > 0)
        --st.slots->unread;
      // The bound counts the intake's calls too.
      st.slots->drain_intake();
      if (st.slots->queue.size() >= max_queue) {
        st.slots->queued.store(st.slots->queue.size(),
                               std::memory_order_relaxed);
        log::warn("tool call refused: queue full",
                  {{"actor", "tool_pool"},
                   {"tool", st.tool_name},
                   {"execution", req.execution_id},
                   {"task", req.task_id},
                   {"queued", st.slots->queue.size()}});
        return make_error(errc::overloaded,
                          "tool '" + st.tool_name + "': "
                            + std::to_string(st.slots->queue.size())
                            + " calls wait for a worker already (tools."
                            + st.tool_name + ".max_queue)");
      }
      auto promise = self->make_response_promise<task_result>();
      st.slots->queue.push_back(st.splits
                                  ? split_job(self, std::move(req), promise)
                                  : whole_job(promise, std::move(req)));
      pump(self);
      return promise;
    },
    [=](done_atom, uint64_t i) {
      // A worker in slot i that could not free its slot itself.
      std::lock_guard<table_lock> guard{self->state.slots->mtx};
      if (!self->state.slots->holds(i, self->current_sender().get()))
        return;
      self->state.slots->vacate(self->state.slots->workers[i]);
      pump(self);
    },
    [=](timer_atom, uint64_t generation) {
      // A deadline sweep: answers `timeout` for every whole call past its
      // deadline and replaces its worker, then schedules the next sweep.
      auto& st = self->state;
      auto& slots = *st.slots;
      std::lock_guard<table_lock> guard{slots.mtx};
      // An earlier sweep replaced by a sooner one sweeps too (no harm).
      slots.sweep.fired(generation);
      auto now = now_us();
      for (size_t i = 0; i < slots.workers.size(); ++i) {
        auto& slot = slots.workers[i];
        if (!slot.caller || slot.deadline_us <= 0 || slot.deadline_us > now)
          continue;
        ++slots.timeouts;
        log::warn("tool call timed out; replacing its worker",
                  {{"actor", "tool_pool"}, {"tool", st.tool_name},
                   {"execution", slot.call.execution_id},
                   {"task", slot.call.task_id}, {"call", label(slot.call)}});
        slot.caller->deliver(self->ctrl(), make_error(
          errc::timeout, "tool " + st.tool_name + ": " + label(slot.call)
                           + " passed its deadline"));
        abandon(self, i);
      }
      if (auto next = slots.sweep_for(slots.earliest_deadline()); next.us > 0)
        schedule_sweep(next, self->ctrl(), self->home_system().clock());
      pump(self);
    },
    [=](describe_atom) -> caf::result<json_value> {
      auto& st = self->state;
      // The counters under the lock, the document (schemas and all) after
      // it: callers and workers keep the direct way meanwhile.
      size_t workers = 0, busy = 0, queued = 0;
      uint64_t direct = 0, timeouts = 0;
      {
        std::lock_guard<table_lock> guard{st.slots->mtx};
        workers = st.slots->workers.size();
        for (auto& w : st.slots->workers)
          busy += w.busy ? 1 : 0;
        queued = st.slots->queue.size() + st.slots->intake.size();
        direct = st.slots->direct_calls;
        timeouts = st.slots->timeouts;
      }
      return json_value{json{{"name", st.tool_name},
                             {"description", st.description.description},
                             {"input_schema", st.description.input_schema},
                             {"output_schema", st.description.output_schema},
                             {"blocking", st.blocking},
                             {"splits", st.splits},
                             {"side_effects", st.side_effects},
                             {"workers", workers},
                             {"busy", busy},
                             {"queued", queued},
                             {"fanouts", st.fanouts},
                             {"direct", direct},
                             {"crashes", st.crashes},
                             {"timeouts", timeouts}}};
    },
  };
}

using pool_base = caf::stateful_actor<pool_state, pool_impl_actor::base>;

// The pool, with a direct way for whole calls (slot_table): its enqueue,
// run on the caller's thread (the way caf::actor_pool dispatches), forwards
// a call to a free worker or queues it, so the call never waits in the
// pool's mailbox and the worker's answer goes straight back. Deadline,
// worker death and the queue stay the pool's. A remote caller's call takes
// the same way from the middleman's thread.
class pool_actor final : public pool_base {
public:
  pool_actor(caf::actor_config& cfg, std::string name,
             tools::tool_factory factory, json_value settings,
             std::shared_ptr<tools::tool> first, pool_options opts)
    : pool_base(cfg),
      slots_(std::make_shared<slot_table>()),
      name_(std::move(name)),
      factory_(factory),
      settings_(std::move(settings)),
      first_(std::move(first)),
      max_queue_(opts.max_queue),
      opts_(std::move(opts)) {
    // nop
  }

  behavior_type make_behavior() override {
    return pool_impl(this, std::move(name_), factory_, std::move(settings_),
                     std::move(first_), std::move(opts_), slots_);
  }

  void enqueue(caf::mailbox_element_ptr ptr, caf::execution_unit* eu) override {
    auto& msg = ptr->content();
    if (is_whole_call(msg)) {
      // Every worker busy: the call waits in the intake, without a lock,
      // for the first worker to finish.
      if (slots_->unread.load(std::memory_order_relaxed) == 0
          && slots_->intake.push(
            ptr, slots_->queued.load(std::memory_order_relaxed), max_queue_))
        return;
      if (take_whole_call(ptr, eu))
        return;
      ++slots_->unread;
    }
    pool_base::enqueue(std::move(ptr), eu);
  }

private:
  // The direct way: the call goes to a free worker or waits in the queue
  // without passing the pool's mailbox. False leaves `ptr` as it was.
  bool take_whole_call(caf::mailbox_element_ptr& ptr, caf::execution_unit* eu) {
    auto deadline_us = ptr->content().get_as<task_request>(1).deadline_us;
    if (deadline_us > 0 && deadline_us <= now_us())
      return false; // the pool answers that it is too late
    std::optional<outgoing> out;
    if (!slots_->try_take(ptr, out))
      return false;
    if (out)
      send_call(*out, ctrl(), home_system(), eu);
    return true;
  }

  slots_ptr slots_;
  std::string name_;
  tools::tool_factory factory_;
  json_value settings_;
  std::shared_ptr<tools::tool> first_;
  size_t max_queue_;
  pool_options opts_;
};

} // namespace

caf::expected<tool_pool_actor>
spawn_tool_pool(caf::actor_system& sys, const tools::tool_registry& registry,
                const std::string& name, const json_value& settings,
                pool_options opts) {
  auto first = registry.create(name, settings);
  if (!first)
    return std::move(first.error());
  tools::tool_factory factory = registry.factory(name);
  auto pool = sys.spawn<pool_actor>(
    name, factory, settings, std::shared_ptr<tools::tool>(std::move(*first)),
    opts);
  return caf::actor_cast<tool_pool_actor>(pool);
}

} // namespace cadre::actors
