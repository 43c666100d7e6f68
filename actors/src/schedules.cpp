// The schedules actor: one schedule::machine per configured schedule, and
// the thin part around them that reads their logs, persists each step's
// events and then acts (submit, check, watch, timers).

#include "cadre/actors/schedules.hpp"

#include <algorithm>
#include <map>
#include <memory>
#include <unordered_map>
#include <utility>

#include <caf/actor_clock.hpp>
#include <caf/actor_system.hpp>
#include <caf/typed_event_based_actor.hpp>

#include "cadre/actors/deadlines.hpp"
#include "cadre/actors/supervisor.hpp"
#include "cadre/log/log.hpp"
#include "cadre/workflow/machine.hpp"
#include "append_deadline.hpp"
#include "one_timer.hpp"

namespace cadre::actors {

namespace {

// The interface plus the messages it sends itself: a schedule's timer
// (name, generation), the retry of a submission (name, firing, key) and the
// timer of the appends in flight (generation).
using schedules_impl_actor = schedules_actor::extend<
  caf::reacts_to<timer_atom, std::string, uint64_t>,
  caf::reacts_to<submit_atom, std::string, uint64_t, std::string>,
  caf::reacts_to<timer_atom, append_atom, uint64_t>>;

// Events read per request when a log is folded at start.
constexpr uint64_t read_page = 1024;

struct entry {
  explicit entry(schedule::machine machine, json_value doc)
    : m(std::move(machine)), definition(std::move(doc)) {
  }
  schedule::machine m;
  json_value definition;
  bool ready = false;
  // Decisions not yet durable: one append in flight at a time.
  std::vector<event> pending_events;
  std::vector<schedule::action> pending_actions;
  bool appending = false;
  // The armed timer: later generations replace earlier ones.
  uint64_t timer_generation = 0;
  std::optional<int64_t> timer_due;
};

struct schedules_state {
  static inline const char* name = "cadre.schedules";
  // Not an aggregate: CAF would try to build it from the actor pointer.
  schedules_state() = default;
  event_store_actor store;
  event_bus_actor bus;
  executions_actor executions;
  schedules_options opts;
  std::map<std::string, std::unique_ptr<entry>> entries;
  // Executions watched until they end -> the schedule that waits.
  std::unordered_map<std::string, std::string> watched;
  // The appends in flight (one per schedule at most), by the schedule's
  // name, and one timer for their deadline (opts.append_deadline) rather
  // than a request timeout per append, which would wake CAF's clock thread
  // (one_timer.hpp).
  in_flight<caf::actor_clock::time_point, std::string> appends;
};

using self_ptr = schedules_impl_actor::stateful_pointer<schedules_state>;

int64_t now_of(self_ptr self) {
  return self->state.opts.clock();
}

entry* find(self_ptr self, const std::string& name) {
  auto i = self->state.entries.find(name);
  return i == self->state.entries.end() ? nullptr : i->second.get();
}

bool ends_execution(const std::string& type) {
  return type == workflow::events::execution_completed
         || type == workflow::events::execution_failed
         || type == workflow::events::execution_cancelled;
}

void enqueue(self_ptr self, const std::string& name, schedule::step&& s);

void log_decisions(const std::string& name, const std::vector<event>& evs) {
  for (const auto& ev : evs) {
    const auto& p = ev.payload.get();
    if (ev.type == schedule::events::skipped)
      log::info("schedule skipped",
                {{"actor", "schedules"},
                 {"schedule", name},
                 {"reason", p.value("reason", std::string{})},
                 {"due", schedule::format_utc(p.value("due_us", int64_t{0}))},
                 {"count", p.value("count", uint64_t{0})}});
    else if (ev.type == schedule::events::failed)
      // Only the code: the message may quote the input.
      log::warn("schedule firing failed",
                {{"actor", "schedules"},
                 {"schedule", name},
                 {"firing", p.value("firing", uint64_t{0})},
                 {"code", p.value("code", std::string{})}});
  }
}

// Arms the schedule's timer for its next due time, unless one is armed for
// it already or a decision waits for an answer. A timer waits at most
// opts.max_wait; then the clock is read again.
void arm(self_ptr self, const std::string& name) {
  auto* e = find(self, name);
  if (!e || !e->ready)
    return;
  auto next = e->m.next_due_us();
  if (!next || e->timer_due == next)
    return;
  e->timer_due = next;
  auto generation = ++e->timer_generation;
  auto wait_us = std::clamp<int64_t>(
    *next - now_of(self), 0,
    std::chrono::duration_cast<std::chrono::microseconds>(
      self->state.opts.max_wait)
      .count());
  self->delayed_send(self, std::chrono::microseconds{wait_us}, timer_atom_v,
                     name, generation);
}

// Asks whether `execution` has ended; the answer goes to the machine. A
// watch asks too (after subscribing, so no end is missed between the two).
void ask_status(self_ptr self, const std::string& name,
                const std::string& execution, bool watch) {
  self
    ->request(self->state.executions, local_deadline, status_atom_v,
              execution)
    .then(
      [=](const execution_info& info) {
        auto* e = find(self, name);
        if (!e)
          return;
        bool ended = info.finished();
        if (ended && watch && self->state.watched.erase(execution) > 0)
          self->send(self->state.bus, unsub_atom_v, execution,
                     caf::actor_cast<event_sink_actor>(self));
        enqueue(self, name, e->m.observed(execution, ended, now_of(self)));
      },
      [=](caf::error& err) {
        auto* e = find(self, name);
        if (!e)
          return;
        // An execution the node does not know cannot be running; for any
        // other error, assume it runs (overlap then errs on the safe side).
        bool ended = code_of(err) == errc::not_found;
        if (!ended)
          log::warn("schedule could not ask about an execution",
                    {{"actor", "schedules"},
                     {"schedule", name},
                     {"execution", execution},
                     {"reason", describe(err)}});
        enqueue(self, name, e->m.observed(execution, ended, now_of(self)));
      });
}

void submit(self_ptr self, const std::string& name, uint64_t firing,
            const std::string& key) {
  auto* e = find(self, name);
  if (!e)
    return;
  const auto& spec = e->m.config();
  submit_request req;
  req.definition = e->definition;
  req.input = json_value{spec.input};
  req.idempotency_key = key;
  req.source = spec.workflow;
  self->request(self->state.executions, local_deadline, submit_atom_v,
                std::move(req))
    .then(
      [=](const std::string& execution) {
        auto* e = find(self, name);
        if (!e)
          return;
        log::info("schedule fired", {{"actor", "schedules"},
                                     {"schedule", name},
                                     {"firing", firing},
                                     {"key", key},
                                     {"execution", execution}});
        enqueue(self, name, e->m.started(firing, execution, now_of(self)));
      },
      [=](caf::error& err) {
        auto* e = find(self, name);
        if (!e)
          return;
        auto s = e->m.submit_failed(firing, err, now_of(self));
        for (const auto& a : s.actions)
          if (a.kind == schedule::action::retry)
            log::warn("schedule submission failed; retrying",
                      {{"actor", "schedules"},
                       {"schedule", name},
                       {"firing", firing},
                       {"code", to_string(code_of(err))},
                       {"retry_in_ms", a.delay_ms}});
        enqueue(self, name, std::move(s));
      });
}

void run_action(self_ptr self, const std::string& name,
                const schedule::action& a) {
  switch (a.kind) {
    case schedule::action::submit:
      submit(self, name, a.firing, a.key);
      return;
    case schedule::action::retry:
      self->delayed_send(self, std::chrono::milliseconds{a.delay_ms},
                         submit_atom_v, name, a.firing, a.key);
      return;
    case schedule::action::check:
      ask_status(self, name, a.execution, false);
      return;
    case schedule::action::watch:
      self->state.watched[a.execution] = name;
      self->send(self->state.bus, subscribe_atom_v, a.execution,
                 caf::actor_cast<event_sink_actor>(self));
      ask_status(self, name, a.execution, true);
      return;
  }
}

// Arms the timer for the oldest append in flight, unless one as early is.
void arm_appends(self_ptr self) {
  actors::arm_append_deadline(self, self->state.appends,
                              self->state.opts.append_deadline);
}

// The machine ran ahead of the log; only a restart that folds the log
// again is safe.
void append_failed(self_ptr self, const std::string& name,
                   const caf::error& err) {
  log::error("schedule log append failed", {{"actor", "schedules"},
                                            {"schedule", name},
                                            {"reason", describe(err)}});
  self->quit(err);
}

// Persist, then act: the step's events are appended (one append in flight
// per schedule; later decisions are batched into the next) and only then
// are its submissions sent.
void flush(self_ptr self, const std::string& name) {
  auto* e = find(self, name);
  if (!e)
    return;
  if (e->pending_events.empty()) {
    for (auto& a : std::exchange(e->pending_actions, {}))
      run_action(self, name, a);
    arm(self, name);
    return;
  }
  append_request req;
  req.events = std::exchange(e->pending_events, {});
  auto actions = std::exchange(e->pending_actions, {});
  auto written = req.events;
  e->appending = true;
  auto ticket = self->state.appends.add(self->clock().now(), name);
  arm_appends(self);
  // Its deadline is the actor's one timer (arm_appends).
  self->request(self->state.store, caf::infinite, append_atom_v,
                std::move(req))
    .then(
      [=](uint64_t) {
        auto* e = find(self, name);
        if (!self->state.appends.answered(ticket) || !e)
          return;
        e->appending = false;
        log_decisions(name, written);
        for (auto& a : actions)
          run_action(self, name, a);
        flush(self, name);
      },
      [=](caf::error& err) {
        if (self->state.appends.answered(ticket))
          append_failed(self, name, err);
      });
}

void enqueue(self_ptr self, const std::string& name, schedule::step&& s) {
  auto* e = find(self, name);
  if (!e)
    return;
  for (auto& ev : s.events)
    e->pending_events.push_back(std::move(ev));
  for (auto& a : s.actions)
    e->pending_actions.push_back(std::move(a));
  if (!e->appending)
    flush(self, name);
}

// Folds the log of schedule `name` page by page, then starts it.
void load(self_ptr self, const std::string& name, uint64_t from) {
  auto* e = find(self, name);
  self
    ->request(self->state.store, local_deadline, read_atom_v, e->m.log(),
              from, read_page)
    .then(
      [=](const std::vector<event>& evs) {
        auto* e = find(self, name);
        for (const auto& ev : evs)
          if (auto folded = e->m.apply(ev); !folded) {
            log::error("schedule log unreadable",
                       {{"actor", "schedules"},
                        {"schedule", name},
                        {"reason", describe(folded.error())}});
            self->quit(folded.error());
            return;
          }
        if (evs.size() == read_page) {
          load(self, name, from + read_page);
          return;
        }
        e->ready = true;
        enqueue(self, name, e->m.start(now_of(self)));
      },
      [=](caf::error& err) { self->quit(err); });
}

schedules_impl_actor::behavior_type
schedules_impl(self_ptr self, event_store_actor store, event_bus_actor bus,
               executions_actor executions,
               std::vector<scheduled_workflow> schedules,
               schedules_options opts) {
  install_exception_handler(self);
  auto& st = self->state;
  st.store = std::move(store);
  st.bus = std::move(bus);
  st.executions = std::move(executions);
  if (!opts.clock)
    opts.clock = [] {
      using namespace std::chrono;
      return duration_cast<microseconds>(
               system_clock::now().time_since_epoch())
        .count();
    };
  st.opts = std::move(opts);
  for (auto& s : schedules) {
    auto m = schedule::machine::make(s.spec);
    if (!m) {
      // The config loader checks every schedule: not reached.
      log::error("schedule not runnable", {{"actor", "schedules"},
                                           {"schedule", s.spec.name},
                                           {"reason", describe(m.error())}});
      continue;
    }
    auto name = s.spec.name;
    st.entries.emplace(name, std::make_unique<entry>(std::move(*m),
                                                     std::move(s.definition)));
  }
  for (auto& [name, e] : st.entries)
    load(self, name, 1);
  return {
    [=](event_atom, const std::vector<event>& evs) {
      auto& st = self->state;
      for (const auto& ev : evs) {
        if (!ends_execution(ev.type))
          continue;
        auto i = st.watched.find(ev.execution_id);
        if (i == st.watched.end())
          continue;
        auto name = i->second;
        st.watched.erase(i);
        self->send(st.bus, unsub_atom_v, ev.execution_id,
                   caf::actor_cast<event_sink_actor>(self));
        if (auto* e = find(self, name))
          enqueue(self, name,
                  e->m.observed(ev.execution_id, true, now_of(self)));
      }
    },
    [=](list_atom) -> json_value {
      json out = json::array();
      auto now = now_of(self);
      for (auto& [name, e] : self->state.entries)
        out.push_back(e->m.view(now));
      return json_value{std::move(out)};
    },
    [=](timer_atom, const std::string& name, uint64_t generation) {
      auto* e = find(self, name);
      if (!e || generation != e->timer_generation)
        return;
      e->timer_due.reset();
      auto s = e->m.tick(now_of(self));
      if (s.empty())
        arm(self, name); // early (a capped wait, or the clocks differ)
      else
        enqueue(self, name, std::move(s));
    },
    [=](timer_atom, append_atom, uint64_t generation) {
      auto deadline = self->state.opts.append_deadline;
      auto late = self->state.appends.fired(generation, self->clock().now(),
                                            deadline);
      if (!late.empty()) {
        append_failed(self, late.front(), append_unanswered(deadline));
        return;
      }
      arm_appends(self);
    },
    [=](submit_atom, const std::string& name, uint64_t firing,
        const std::string& key) {
      if (auto* e = find(self, name); e && e->m.in_flight(firing))
        submit(self, name, firing, key);
    },
  };
}

} // namespace

schedules_actor spawn_schedules(caf::actor_system& sys,
                                event_store_actor store, event_bus_actor bus,
                                executions_actor executions,
                                std::vector<scheduled_workflow> schedules,
                                schedules_options opts) {
  return sys.spawn(schedules_impl, std::move(store), std::move(bus),
                   std::move(executions), std::move(schedules),
                   std::move(opts));
}

} // namespace cadre::actors
