#include "coordinator.hpp"

#include <chrono>
#include <map>
#include <memory>
#include <functional>
#include <optional>
#include <random>
#include <set>

#include <caf/actor_clock.hpp>
#include <caf/actor_system.hpp>
#include <caf/local_actor.hpp>
#include <caf/typed_event_based_actor.hpp>

#include "cadre/actors/deadlines.hpp"
#include "cadre/actors/metrics.hpp"
#include "cadre/log/log.hpp"
#include "cadre/workflow/machine.hpp"
#include "cadre/workflow/replay.hpp"
#include "append_deadline.hpp"
#include "one_timer.hpp"
#include "remote_calls.hpp"
#include "cadre/messages/json_text.hpp"

namespace cadre::actors {

namespace {

// The coordinator's interface plus the timers it sends itself.
using coordinator_impl_actor = coordinator_actor::extend<
  caf::reacts_to<timer_atom, std::string, uint32_t>, // retry of a task
  // deadline of an item running a sub-workflow
  caf::reacts_to<timer_atom, cancel_atom, std::string, uint32_t>,
  caf::reacts_to<timer_atom>,                        // execution timeout
  // deadline of the append in flight
  caf::reacts_to<timer_atom, append_atom, uint64_t>>;

int64_t now_us() {
  using namespace std::chrono;
  return duration_cast<microseconds>(system_clock::now().time_since_epoch())
    .count();
}

// Seeds a coordinator's retry jitter. std::random_device is built once per
// thread, not per coordinator: constructing one checks the CPU for RDRAND
// (cpuid), about 30 us in a VM where cpuid traps to the hypervisor, paid by
// every execution (bench/README.md, "HTTP service").
uint64_t retry_jitter_seed() {
  thread_local std::mt19937_64 seeds{std::random_device{}()};
  return seeds();
}

struct coordinator_state {
  static inline const char* name = "cadre.coordinator";
  // Not an aggregate: CAF would try to build it from the actor pointer.
  coordinator_state() = default;
  coordinator_args args;
  workflow::machine m{""};
  bool ready = false;
  // The snapshot recovery started from (null: the first event).
  json recovered_from;
  // Set when recovery found a log this build would not have written: the
  // coordinator runs nothing and answers requests with it (cancel aside).
  std::optional<caf::error> refusal;
  // Decisions not yet durable, and who waits for them.
  std::vector<event> pending_events;
  // The snapshot logs the machine took with those events.
  std::vector<event> pending_snapshots;
  std::vector<workflow::action> pending_actions;
  std::optional<execution_info> pending_index;
  std::string pending_idempotency_key;
  // A request's answer is the sequence number of the event that recorded
  // it: `index` is that event's place in pending_events.
  struct ack {
    caf::typed_response_promise<uint64_t> promise;
    size_t index = 0;
  };
  std::vector<ack> pending_acks;
  std::optional<caf::typed_response_promise<std::string>> submit_promise;
  bool in_flight = false;
  // The append in flight: who waits for it, and its deadline
  // (args.append_deadline) kept by one timer rather than a request timeout per
  // append, which would wake CAF's clock thread each step (one_timer.hpp).
  std::vector<ack> acks_in_flight;
  caf::actor_clock::time_point append_sent;
  one_timer<caf::actor_clock::time_point> append_timer;
  std::vector<caf::typed_response_promise<execution_info>> awaiters;
  // Requests that arrived before recovery finished, run once it has.
  std::vector<std::function<void()>> deferred;
  std::mt19937_64 rng{retry_jitter_seed()};
  // Attempts running on another node's pool, by task key, with their
  // attempt number.
  remote_calls<uint32_t> remote;
};

using self_ptr = coordinator_impl_actor::stateful_pointer<coordinator_state>;

void flush(self_ptr self);
void run_action(self_ptr self, const workflow::action& a);

// Adds a step's events and actions to what the next flush persists.
void add_pending(self_ptr self, workflow::step&& s) {
  auto& st = self->state;
  for (auto& ev : s.events)
    st.pending_events.emplace_back(std::move(ev));
  for (auto& ev : s.snapshots)
    st.pending_snapshots.emplace_back(std::move(ev));
  for (auto& a : s.actions)
    st.pending_actions.emplace_back(std::move(a));
  if (s.index)
    st.pending_index = std::move(s.index);
}

void enqueue(self_ptr self, workflow::step&& s) {
  if (s.events.empty() && s.actions.empty())
    return;
  add_pending(self, std::move(s));
  if (!self->state.in_flight)
    flush(self);
}

void fail_all(self_ptr self, const caf::error& err) {
  auto& st = self->state;
  for (auto& a : st.pending_acks)
    a.promise.deliver(err);
  st.pending_acks.clear();
  if (st.submit_promise) {
    st.submit_promise->deliver(err);
    st.submit_promise.reset();
  }
  for (auto& p : st.awaiters)
    p.deliver(err);
  st.awaiters.clear();
}

// Answers `promise` with the refusal of a coordinator that refused its log.
template <class Promise>
bool answer_refusal(self_ptr self, Promise& promise) {
  if (!self->state.refusal)
    return false;
  promise.deliver(*self->state.refusal);
  return true;
}

void finish_if_done(self_ptr self) {
  auto& st = self->state;
  if (!st.m.finished() || st.in_flight || !st.pending_events.empty())
    return;
  auto info = st.m.info();
  for (auto& p : st.awaiters)
    p.deliver(info);
  st.awaiters.clear();
  self->quit();
}

// Task outcomes among `events`, for cadre_tasks_total: completed, failed
// (for good), retried, skipped.
std::map<std::string, size_t> task_outcomes(const std::vector<event>& events) {
  std::map<std::string, size_t> out;
  for (const auto& ev : events) {
    if (ev.type == workflow::events::completed)
      ++out["completed"];
    else if (ev.type == workflow::events::skipped)
      ++out["skipped"];
    else if (ev.type == workflow::events::failed)
      ++out[ev.payload->contains("retry_in_ms") ? "retried" : "failed"];
  }
  return out;
}

// The in-memory state ran ahead of the log; only a restart that folds the
// log again is safe.
void append_failed(self_ptr self, const caf::error& err) {
  for (auto& a : std::exchange(self->state.acks_in_flight, {}))
    a.promise.deliver(err);
  fail_all(self, err);
  self->quit(err);
}

void arm_append_deadline(self_ptr self) {
  auto& st = self->state;
  auto due = st.append_sent + st.args.append_deadline;
  if (auto generation = st.append_timer.arm(due)) {
    auto in = due - self->clock().now();
    self->delayed_send(self, std::max(in, caf::timespan{0}), timer_atom_v,
                       append_atom_v, *generation);
  }
}

// Persist, then act: one append in flight at a time; decisions made
// meanwhile are batched into the next append.
void flush(self_ptr self) {
  auto& st = self->state;
  if (st.pending_events.empty()) {
    for (auto& a : std::exchange(st.pending_actions, {}))
      run_action(self, a);
    // Nothing to record (e.g. a cancel the machine had no event for).
    for (auto& a : std::exchange(st.pending_acks, {}))
      a.promise.deliver(uint64_t{0});
    finish_if_done(self);
    return;
  }
  append_request req;
  req.events = std::move(st.pending_events);
  st.pending_events.clear();
  if (st.pending_index) {
    req.index.push_back(std::move(*st.pending_index));
    st.pending_index.reset();
  }
  req.idempotency_key = std::exchange(st.pending_idempotency_key, {});
  auto actions = std::exchange(st.pending_actions, {});
  st.acks_in_flight = std::exchange(st.pending_acks, {});
  auto batch = req.events.size();
  auto outcomes = task_outcomes(req.events);
  // The snapshots the machine took at multiples of snapshot_every go in
  // the same atomic write as the events: one never runs ahead of its log.
  // Each writes only the parts of the state that changed since the one
  // before (workflow::machine::paged_snapshot).
  for (auto& ev : std::exchange(st.pending_snapshots, {}))
    req.events.push_back(std::move(ev));
  st.in_flight = true;
  st.append_sent = self->clock().now();
  arm_append_deadline(self);
  // Its deadline is the coordinator's one timer (arm_append_deadline).
  self->request(st.args.store, caf::infinite, append_atom_v, std::move(req))
    .then(
      [=](uint64_t last_seq) mutable {
        auto& st = self->state;
        st.in_flight = false;
        auto acks = std::exchange(st.acks_in_flight, {});
        if (st.args.metrics)
          for (auto& [outcome, n] : outcomes)
            st.args.metrics->add("cadre_tasks_total", {{"outcome", outcome}},
                                 static_cast<double>(n));
        if (st.submit_promise) {
          st.submit_promise->deliver(st.args.id);
          st.submit_promise.reset();
        }
        for (auto& a : actions)
          run_action(self, a);
        for (auto& a : acks)
          a.promise.deliver(last_seq + 1 - batch + a.index);
        if (!st.pending_events.empty() || !st.pending_actions.empty())
          flush(self);
        else
          finish_if_done(self);
      },
      [=](caf::error& err) { append_failed(self, err); });
}

// Info, not warn: a failing task is the workflow's business (the CLI
// reports it), not the node's. Only the error code is logged: the message
// may quote the task's input or a tool's reply; `cadre events` shows it.
void log_failures(const std::string& id, const workflow::step& s) {
  if (!log::enabled(log::level::info))
    return;
  for (const auto& ev : s.events) {
    const auto& p = ev.payload.get();
    if (ev.type != "task_failed" || !p.is_object())
      continue;
    auto task = p.value("task", "");
    if (auto item = p.find("item"); item != p.end())
      task += "[" + dump_json(*item) + "]";
    auto attempt = p.value("attempt", int64_t{0});
    auto code = p.value("code", "");
    if (p.contains("retry_in_ms"))
      log::info("task failed; retrying",
                {{"actor", "coordinator"}, {"execution", id}, {"task", task},
                 {"attempt", attempt}, {"code", code},
                 {"retry_in_ms", p.value("retry_in_ms", int64_t{0})}});
    else
      log::info("task failed", {{"actor", "coordinator"}, {"execution", id},
                                {"task", task}, {"attempt", attempt},
                                {"code", code}});
  }
}

void on_failure(self_ptr self, const std::string& key, uint32_t attempt,
                const caf::error& err) {
  auto& st = self->state;
  std::uniform_real_distribution<double> dist{0.0, 1.0};
  auto s = st.m.failed(key, attempt, err, dist(st.rng), now_us());
  log_failures(st.args.id, s);
  enqueue(self, std::move(s));
}

// The link to a pool on another node broke (its node was lost, frozen or
// left): every attempt running there is sent again, elsewhere.
void on_pool_down(self_ptr self, const caf::down_msg& dm) {
  auto& st = self->state;
  for (auto& call : st.remote.lost(dm.source)) {
    log::warn("task re-dispatched: its node was lost",
              {{"actor", "coordinator"}, {"execution", st.args.id},
               {"task", call.key}, {"attempt", call.payload},
               {"node", call.node}, {"reason", to_string(dm.reason)}});
    enqueue(self, st.m.redispatch(call.key, call.payload, "node_lost",
                                  call.node, now_us()));
  }
}

void run_action(self_ptr self, const workflow::action& a) {
  auto& st = self->state;
  switch (a.kind) {
    case workflow::action::dispatch: {
      auto avoid = st.remote.avoid(a.key);
      auto route = st.args.tools->pick(a.tool, avoid);
      if (!route) {
        on_failure(self, a.key, a.attempt,
                   make_error(errc::tool_not_found,
                              "tool '" + a.tool
                                + "' is offered by no node of the cluster"
                                + (avoid.empty() ? std::string{}
                                                 : " that is still up")));
        return;
      }
      task_request req;
      req.execution_id = st.args.id;
      req.task_id = a.key;
      req.attempt = a.attempt;
      req.tool = a.tool;
      req.input = json_value{a.input};
      req.secret_pointers = a.secret_pointers;
      req.idempotency_key = st.args.id + "/" + a.key + "/"
                            + std::to_string(a.attempt);
      // caf::infinite only for a task without `timeout`: its author said
      // it may take as long as it takes (the execution's timeout still
      // ends it).
      caf::duration timeout = caf::infinite;
      if (a.timeout_ms > 0) {
        req.deadline_us = now_us() + a.timeout_ms * 1000;
        // The pool enforces the deadline; this is a backstop.
        timeout = caf::duration{
          std::chrono::milliseconds{a.timeout_ms + 2000}};
      }
      auto key = a.key;
      auto attempt = a.attempt;
      uint64_t token = 0;
      if (!route->node.empty()) {
        // The pool's node may vanish with the answer: its link's loss
        // re-dispatches the attempt, and without a task timeout a
        // backstop still ends the wait.
        bool watch = false;
        token = st.remote.sent(key, route->pool.address(), route->node,
                               attempt, watch);
        if (watch)
          self->monitor(route->pool);
        if (a.timeout_ms <= 0)
          timeout = caf::duration{remote_tool_backstop};
      }
      // False for the answer of a call that was replaced meanwhile.
      auto current = [=] { return self->state.remote.answered(key, token); };
      self->request(route->pool, timeout, run_atom_v, std::move(req))
        .then(
          [=](task_result& res) {
            if (!current())
              return;
            self->state.remote.settled(key);
            enqueue(self, self->state.m.succeeded(key, attempt,
                                                  res.output.get(),
                                                  res.duration_us, now_us()));
          },
          [=](caf::error& err) {
            if (!current())
              return;
            if (token != 0 && err == caf::sec::request_receiver_down) {
              // Sent as its link died: the node is lost, not the call.
              auto& st = self->state;
              st.remote.lost_on(key, route->node);
              enqueue(self, st.m.redispatch(key, attempt, "node_lost",
                                            route->node, now_us()));
              return;
            }
            if (err == caf::sec::request_timeout)
              err = make_error(errc::timeout, "task " + key + " attempt "
                                                + std::to_string(attempt)
                                                + " timed out");
            on_failure(self, key, attempt, err);
          });
      return;
    }
    case workflow::action::retry_timer:
      self->delayed_send(self, std::chrono::milliseconds{a.delay_ms},
                         timer_atom_v, a.key, a.attempt);
      return;
    case workflow::action::execution_timer:
      self->delayed_send(self, std::chrono::milliseconds{a.delay_ms},
                         timer_atom_v);
      return;
    case workflow::action::deadline_timer:
      self->delayed_send(self, std::chrono::milliseconds{a.delay_ms},
                         timer_atom_v, cancel_atom_v, a.key, a.attempt);
      return;
    case workflow::action::run_agent: {
      auto key = a.key;
      auto attempt = a.attempt;
      if (!st.args.agents) {
        on_failure(self, key, attempt,
                   make_error(errc::unavailable,
                              "task " + key + ": this node runs no agents"));
        return;
      }
      agent_turn turn;
      turn.agent = a.agent;
      turn.spec = json_value{a.document};
      turn.input = json_value{a.input};
      turn.execution_id = st.args.id;
      turn.task_id = a.key;
      turn.attempt = a.attempt;
      turn.idempotency_key = st.args.id + "/" + a.key + "/"
                             + std::to_string(a.attempt);
      // A fork's turn: its own branch of the agent's memory, and the
      // parent's recorded replies, unless the fork runs the task again on
      // purpose (`--rerun` asks the model anew).
      turn.fork_of = st.m.forked_from();
      if (!turn.fork_of.empty() && !st.m.fork_reruns(a.key))
        turn.replies = workflow::fork_replies_log(st.args.id);
      // caf::infinite only for an agent task without `timeout` (see the
      // tool task above).
      caf::duration timeout = caf::infinite;
      if (a.timeout_ms > 0) {
        turn.deadline_us = now_us() + a.timeout_ms * 1000;
        timeout = caf::duration{
          std::chrono::milliseconds{a.timeout_ms + 2000}};
      }
      self->request(st.args.agents, timeout, run_atom_v, std::move(turn))
        .then(
          [=](task_result& res) {
            enqueue(self, self->state.m.succeeded(key, attempt,
                                                  res.output.get(),
                                                  res.duration_us, now_us(),
                                                  res.usage.get()));
          },
          [=](caf::error& err) {
            if (err == caf::sec::request_timeout)
              err = make_error(errc::timeout, "task " + key + " attempt "
                                                + std::to_string(attempt)
                                                + " timed out");
            on_failure(self, key, attempt, err);
          });
      return;
    }
    case workflow::action::waiting_human:
      return;
  }
}

// Non-determinism detection: the events just folded are re-decided by this
// build; a log it would not have written (an upgrade changed a decision, or
// the log was altered) is not resumed, since going on would mix two sets
// of decisions. The log stays as it is for a build that decides as it did.
bool refuse_changed_decisions(self_ptr self, const std::vector<event>& log) {
  auto& st = self->state;
  auto check = workflow::check_recovery(st.args.id, st.recovered_from, log);
  if (!check) {
    // The fold succeeded; a check that cannot run is not a reason to stop.
    log::warn("recovery check not made",
              {{"actor", "coordinator"}, {"execution", st.args.id},
               {"reason", message_of(check.error())}});
    return false;
  }
  if (check->compatible())
    return false;
  const auto& d = *check->first;
  st.refusal = make_error(
    errc::conflict,
    "execution " + st.args.id
      + " is not resumed: its log no longer matches this build's decisions "
        "at event "
      + std::to_string(d.seq) + (d.task.empty() ? "" : " (" + d.task + ")")
      + ": " + d.reason
      + "; the log is kept as it is (cadre replay " + st.args.id
      + " --against FILE compares; cancel ends it)");
  log::error("execution not resumed: its log no longer matches this build's "
             "decisions",
             {{"actor", "coordinator"}, {"execution", st.args.id},
              {"seq", d.seq}, {"task", d.task}, {"reason", d.reason}});
  return true;
}

// Reads the log from `from` and folds it onto the machine, then resumes.
void fold_and_resume(self_ptr self, uint64_t from) {
  auto& st = self->state;
  self->request(st.args.store, local_deadline, read_atom_v, st.args.id,
                from, uint64_t{0})
    .then(
      [=](std::vector<event>& log) {
        auto& st = self->state;
        for (auto& ev : log)
          if (auto r = st.m.apply(ev); !r) {
            fail_all(self, r.error());
            self->quit(r.error());
            return;
          }
        st.ready = true;
        if (!st.m.started()) {
          // Nothing was ever persisted: there is nothing to resume.
          fail_all(self, make_error(errc::not_found,
                                    "execution " + st.args.id
                                      + " has no events"));
          self->quit();
          return;
        }
        bool refused = refuse_changed_decisions(self, log);
        // The restored snapshot was only needed for the check.
        st.recovered_from = json{};
        if (refused) {
          for (auto& fn : std::exchange(st.deferred, {}))
            fn();
          return;
        }
        // Each re-dispatch is recorded before it runs (flush persists,
        // then acts), so a task that kills the process is counted at
        // every start and parked at the limit.
        auto s = st.m.resume(now_us(), st.args.crash_loop_limit);
        for (const auto& ev : s.events)
          if (ev.type == workflow::events::failed
              && ev.payload->value("code", "") == "crash_loop")
            log::warn("task parked: the node stopped while running it at "
                      "every start",
                      {{"actor", "coordinator"},
                       {"execution", st.args.id},
                       {"task", ev.payload->value("task", "")},
                       {"starts", st.args.crash_loop_limit}});
        log_failures(st.args.id, s);
        add_pending(self, std::move(s));
        for (auto& fn : std::exchange(st.deferred, {}))
          fn();
        flush(self);
      },
      [=](caf::error& err) {
        fail_all(self, err);
        self->quit(err);
      });
}

// Goes on from the machine a snapshot restored, or from the first event
// when it did not restore (another format, a damaged value, a missing
// part: only a lost shortcut, the log has everything).
void resume_from(self_ptr self, expected<workflow::machine> m, uint64_t last) {
  auto& st = self->state;
  if (!m) {
    log::warn("snapshot not used; folding the whole log",
              {{"actor", "coordinator"},
               {"execution", st.args.id},
               {"reason", message_of(m.error())}});
    fold_and_resume(self, 1);
    return;
  }
  st.m = std::move(*m);
  st.m.snapshot_every(st.args.snapshot_every);
  // The recovery check starts a machine of its own from the whole state.
  st.recovered_from = st.m.snapshot();
  log::debug("recovering from a snapshot",
             {{"actor", "coordinator"},
              {"execution", st.args.id},
              {"snapshot_seq", st.m.last_seq()},
              {"last_seq", last}});
  fold_and_resume(self, st.m.last_seq() + 1);
}

// Reads the parts of paged snapshot `root` from range `i` on, then
// restores it.
void read_snapshot_parts(
  self_ptr self, std::shared_ptr<const json> root,
  std::shared_ptr<std::vector<workflow::machine::part_range>> ranges,
  std::shared_ptr<std::vector<std::pair<uint64_t, std::vector<event>>>> parts,
  size_t i, uint64_t last) {
  auto& st = self->state;
  if (i == ranges->size()) {
    resume_from(self, workflow::restore_paged(st.args.id, *root, *parts),
                last);
    return;
  }
  const auto& r = (*ranges)[i];
  self
    ->request(st.args.store, local_deadline, read_atom_v,
              workflow::snapshot_log(st.args.id, r.k), r.from, r.count)
    .then(
      [=](std::vector<event>& evs) {
        parts->emplace_back((*ranges)[i].k, std::move(evs));
        read_snapshot_parts(self, root, ranges, parts, i + 1, last);
      },
      [=](caf::error& err) { resume_from(self, std::move(err), last); });
}

// Restores the snapshot named `names[i]` if it is there, else looks at the
// next name, else folds the whole log.
void recover_from_snapshot(self_ptr self,
                           std::shared_ptr<const std::vector<std::string>> names,
                           size_t i, uint64_t last) {
  if (i == names->size()) {
    fold_and_resume(self, 1);
    return;
  }
  auto& st = self->state;
  self
    ->request(st.args.store, local_deadline, read_atom_v, (*names)[i],
              uint64_t{1}, uint64_t{1})
    .then(
      [=](std::vector<event>& snaps) {
        auto& st = self->state;
        // Every snapshot of this log holds a state at most `last`.
        if (snaps.empty()) {
          recover_from_snapshot(self, names, i + 1, last);
          return;
        }
        const auto& root = snaps.front().payload.get();
        if (!root.is_object() || root.value("format", 0) == 1) {
          // Written before snapshots were paged: the whole state.
          resume_from(self, workflow::machine::restore(st.args.id, root),
                      last);
          return;
        }
        auto ranges = workflow::machine::snapshot_parts(root);
        if (!ranges) {
          resume_from(self, std::move(ranges.error()), last);
          return;
        }
        read_snapshot_parts(
          self, std::make_shared<const json>(root),
          std::make_shared<std::vector<workflow::machine::part_range>>(
            std::move(*ranges)),
          std::make_shared<
            std::vector<std::pair<uint64_t, std::vector<event>>>>(),
          0, last);
      },
      [=](caf::error&) { fold_and_resume(self, 1); });
}

// Starts from the newest snapshot when there is one (reading at most
// snapshot_every events past it), else from the first event.
void recover(self_ptr self) {
  auto& st = self->state;
  if (st.args.snapshot_every == 0) {
    fold_and_resume(self, 1);
    return;
  }
  self
    ->request(st.args.store, local_deadline, get_atom_v, read_atom_v,
              st.args.id)
    .then(
      [=](uint64_t last) {
        recover_from_snapshot(
          self,
          std::make_shared<const std::vector<std::string>>(
            workflow::snapshot_candidates(self->state.args.id, last,
                                          self->state.args.snapshot_every)),
          0, last);
      },
      [=](caf::error& err) {
        fail_all(self, err);
        self->quit(err);
      });
}

// Runs `fn` now, or after recovery when the log is still being read.
template <class F>
void when_ready(self_ptr self, F fn) {
  if (self->state.ready)
    fn();
  else
    self->state.deferred.emplace_back(std::move(fn));
}

coordinator_impl_actor::behavior_type
coordinator_impl(self_ptr self, coordinator_args args) {
  self->state.args = std::move(args);
  self->state.m = workflow::machine{self->state.args.id};
  self->state.m.snapshot_every(self->state.args.snapshot_every);
  self->set_down_handler(
    [=](caf::down_msg& dm) { on_pool_down(self, dm); });
  if (self->state.args.mode == coordinator_mode::recover)
    recover(self);
  else
    self->state.ready = true;
  return {
    [=](submit_atom, submit_request& req) -> caf::result<std::string> {
      auto& st = self->state;
      if (st.m.started() || st.submit_promise)
        return make_error(errc::conflict,
                          "execution " + st.args.id + " already started");
      auto s = st.m.submit(req.definition.get(), req.input.get(),
                           req.idempotency_key, now_us());
      if (!s) {
        self->quit();
        return std::move(s.error());
      }
      auto promise = self->make_response_promise<std::string>();
      st.submit_promise = promise;
      st.pending_idempotency_key = req.idempotency_key;
      enqueue(self, std::move(*s));
      return promise;
    },
    [=](input_atom, const std::string& task,
        const json_value& value) -> caf::result<uint64_t> {
      auto promise = self->make_response_promise<uint64_t>();
      when_ready(self, [=]() mutable {
        if (answer_refusal(self, promise))
          return;
        auto& st = self->state;
        auto s = st.m.human_answer(task, value.get(), now_us());
        if (!s) {
          promise.deliver(s.error());
          return;
        }
        st.pending_acks.push_back({promise, st.pending_events.size()});
        enqueue(self, std::move(*s));
        if (!st.in_flight && st.pending_events.empty())
          flush(self);
      });
      return promise;
    },
    [=](cancel_atom) -> caf::result<uint64_t> {
      auto promise = self->make_response_promise<uint64_t>();
      when_ready(self, [=]() mutable {
        auto& st = self->state;
        st.pending_acks.push_back({promise, st.pending_events.size()});
        enqueue(self, st.m.cancel("cancelled by request", now_us()));
        if (!st.in_flight)
          flush(self);
      });
      return promise;
    },
    [=](status_atom) -> caf::result<execution_info> {
      auto promise = self->make_response_promise<execution_info>();
      when_ready(self, [=]() mutable {
        if (!answer_refusal(self, promise))
          promise.deliver(self->state.m.info());
      });
      return promise;
    },
    [=](await_atom) -> caf::result<execution_info> {
      auto promise = self->make_response_promise<execution_info>();
      when_ready(self, [=]() mutable {
        if (answer_refusal(self, promise))
          return;
        self->state.awaiters.push_back(promise);
        finish_if_done(self);
      });
      return promise;
    },
    [=](timer_atom, const std::string& key, uint32_t attempt) {
      enqueue(self, self->state.m.retry_due(key, attempt, now_us()));
    },
    [=](timer_atom) {
      enqueue(self, self->state.m.execution_timed_out(now_us()));
    },
    [=](timer_atom, append_atom, uint64_t generation) {
      auto& st = self->state;
      if (!st.append_timer.fired(generation) || !st.in_flight)
        return;
      if (self->clock().now() - st.append_sent < st.args.append_deadline)
        arm_append_deadline(self); // a later append is in flight
      else
        append_failed(self, append_unanswered(st.args.append_deadline));
    },
    [=](timer_atom, cancel_atom, const std::string& key, uint32_t attempt) {
      auto s = self->state.m.deadline_due(key, attempt, now_us());
      log_failures(self->state.args.id, s);
      enqueue(self, std::move(s));
    },
  };
}

} // namespace

coordinator_actor spawn_coordinator(caf::local_actor* parent_self,
                                    coordinator_args args) {
  return parent_self->spawn(coordinator_impl, std::move(args));
}

} // namespace cadre::actors
