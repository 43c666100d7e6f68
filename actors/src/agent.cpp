// One agent actor per agent id: the adapter of workflow::agent_machine,
// which holds the agent loop (LLM call -> tool calls in parallel -> results
// back -> ... -> final answer). This actor reads the agent's log
// ("agent:<id>") into the machine, appends each step's events before
// carrying out its actions (model calls on the LLM worker, tool calls on
// the pools; calls of tools without side effects go at once), feeds the
// answers back, and answers who waits for a turn (docs/agents.md). The
// agents actor (agents_router.cpp) starts it.

#include "agent.hpp"

#include <algorithm>
#include <deque>
#include <functional>
#include <map>
#include <mutex>
#include <optional>
#include <set>

#include <caf/actor_clock.hpp>
#include <caf/actor_system.hpp>
#include <caf/typed_event_based_actor.hpp>

#include "agent_metrics.hpp"
#include "cadre/actors/deadlines.hpp"
#include "cadre/actors/supervisor.hpp"
#include "cadre/log/log.hpp"
#include "cadre/messages/json_text.hpp"
#include "cadre/workflow/agent_machine.hpp"
#include "llm_cache.hpp"
#include "append_deadline.hpp"
#include "one_timer.hpp"
#include "remote_calls.hpp"

namespace cadre::actors {

namespace {

namespace ev_type = workflow::agent_events;
using workflow::agent_action;
using workflow::agent_step;

int64_t now_us() {
  return agent_now_us();
}

// -- the LLM worker ---------------------------------------------------------------

// Runs provider calls off CAF's scheduler threads (a detached actor per
// agent). The json_value carries what is not part of the recorded request:
// the deadline, the agent's script, and where streamed text goes.
using llm_worker_actor = caf::typed_actor<
  caf::replies_to<run_atom, llm_request, json_value>::with<llm_response>>;

// A provider that never blocks (provider::may_block), made by the LLM worker
// off the scheduler threads and handed to its agent, which then calls it on
// its own thread: no hand-off to the worker and back. One at a time.
struct provider_handover {
  std::mutex mx;
  std::string profile;
  json script;
  std::unique_ptr<tools::llm::provider> made;
};

struct llm_worker_state {
  static inline const char* name = "cadre.llm_worker";
  llm_worker_state() = default;
  std::map<std::string, std::unique_ptr<tools::llm::provider>> providers;
};

expected<tools::llm::profile> profile_for(const agents_options& opts,
                                          const std::string& name,
                                          const json& script) {
  tools::llm::profile p;
  if (auto i = opts.profiles.find(name); i != opts.profiles.end())
    p = i->second;
  else if (name == "default")
    p.kind = "scripted"; // offline by default: a fresh machine needs no key
  else
    return make_error(errc::invalid_config,
                      "llm.profiles." + name
                        + ": no such LLM profile is configured");
  p.name = name;
  // An agent's own script stands in for a model: it applies only when the
  // profile is scripted, so a real provider (from the config or from
  // CADRE_LLM_KIND) always wins over it.
  if (!script.is_null() && p.kind == "scripted") {
    if (script.is_string())
      p.settings = json{{"script", script}};
    else if (script.is_array())
      p.settings = json{{"turns", script}};
    else
      p.settings = script;
  }
  return p;
}

// Who a call is for: its log lines and streamed pieces name them.
struct call_origin {
  std::string agent_id;
  std::string execution;
  std::string task;
};

// The context of one provider call, on the worker or inline. Streamed
// pieces go to `publish` as bus events only: the reply is what the log
// keeps.
tools::llm::call_context
context_for(const llm_request& req, int64_t deadline_us,
            const call_origin& origin,
            std::shared_ptr<std::atomic<bool>> cancel_flag,
            std::function<void(event)> publish) {
  tools::llm::call_context cc;
  cc.deadline_us = deadline_us;
  cc.cancel_flag = std::move(cancel_flag);
  cc.on_retry = [agent = req.agent, origin,
                 profile = req.profile](uint32_t attempt,
                                        const std::string& why,
                                        std::chrono::milliseconds delay) {
    log::warn("model call retried", {{"actor", "llm_worker"},
                                     {"agent", agent},
                                     {"agent_id", origin.agent_id},
                                     {"execution", origin.execution},
                                     {"task", origin.task},
                                     {"profile", profile},
                                     {"attempt", attempt},
                                     {"reason", why},
                                     {"delay_ms", delay.count()}});
  };
  if (req.stream && publish) {
    // Built per piece, not per call: a reply of tool calls streams none.
    cc.on_text = [agent = req.agent, call = req.turn, origin,
                  publish = std::move(publish)](std::string_view piece) {
      json p(json::value_t::object);
      auto& o = p.get_ref<json::object_t&>();
      o.emplace("agent", agent);
      o.emplace("agent_id", origin.agent_id);
      o.emplace("task", origin.task);
      o.emplace("call", call);
      o.emplace("text", std::string{piece});
      publish(event{origin.execution, 0, now_us(), ev_type::token,
                    json_value{std::move(p)}});
    };
  }
  return cc;
}

// One call; a throw is an error, and `broken` tells the caller to drop the
// provider (its state is suspect).
expected<llm_response> call_provider(tools::llm::provider& prov,
                                     const llm_request& req,
                                     const tools::llm::call_context& cc,
                                     bool& broken) {
  broken = false;
  try {
    return prov.complete(req, cc);
  } catch (const std::exception& e) {
    broken = true;
    return make_error(errc::tool_failed,
                      "llm profile " + req.profile + " threw: " + e.what());
  }
}

llm_worker_actor::behavior_type
llm_worker_impl(llm_worker_actor::stateful_pointer<llm_worker_state> self,
                std::shared_ptr<const agents_options> opts,
                std::shared_ptr<std::atomic<bool>> cancel_flag,
                event_bus_actor bus,
                std::shared_ptr<provider_handover> handover) {
  return {
    [=](run_atom, const llm_request& req,
        const json_value& ctx) -> caf::result<llm_response> {
      const auto& c = ctx.get();
      auto script = c.value("script", json{});
      auto p = profile_for(*opts, req.profile, script);
      if (!p)
        return std::move(p.error());
      auto key = p->name + "\n" + dump_json(p->settings);
      auto& prov = self->state.providers[key];
      if (!prov) {
        auto made = opts->make_provider ? opts->make_provider(*p)
                                        : tools::llm::make_provider(*p);
        if (!made) {
          self->state.providers.erase(key);
          return std::move(made.error());
        }
        prov = std::move(*made);
      }
      auto cc = context_for(
        req, c.value("deadline_us", int64_t{0}),
        {c.value("agent_id", std::string{}),
         c.value("execution", std::string{}), c.value("task", std::string{})},
        cancel_flag, [=](event ev) {
          self->send(bus, publish_atom_v, std::vector<event>{std::move(ev)});
        });
      bool broken = false;
      auto res = call_provider(*prov, req, cc, broken);
      if (broken) {
        self->state.providers.erase(key);
      } else if (!prov->may_block()) {
        std::lock_guard<std::mutex> guard{handover->mx};
        handover->profile = req.profile;
        handover->script = std::move(script);
        handover->made = std::move(prov);
        self->state.providers.erase(key);
      }
      if (!res)
        return std::move(res.error());
      return std::move(*res);
    },
  };
}

// -- one agent ----------------------------------------------------------------------

struct agent_state {
  static inline const char* name = "cadre.agent";
  agent_state() = default;
  std::string id;
  event_store_actor store;
  event_bus_actor bus;
  std::shared_ptr<const tool_directory> tools;
  std::shared_ptr<const agents_options> opts;
  // The fold of the log and the loop's decisions.
  std::optional<workflow::agent_machine> machine;
  // Turns asked for, and who waits for which.
  std::deque<agent_turn> queue;
  std::map<std::string, std::vector<caf::typed_response_promise<task_result>>>
    waiting;
  bool ready = false;
  // Persist, then act.
  std::vector<event> pending_events;
  std::vector<std::function<void()>> pending_actions;
  bool in_flight = false;
  llm_worker_actor worker;
  std::shared_ptr<std::atomic<bool>> cancel_flag
    = std::make_shared<std::atomic<bool>>(false);
  // A provider that never blocks, once the worker has made it, and the
  // model calls to make with it before the next append (flush).
  std::shared_ptr<provider_handover> handover
    = std::make_shared<provider_handover>();
  struct {
    std::string profile;
    json script;
    std::unique_ptr<tools::llm::provider> made;
    // The turn whose profile and script were found to be made's: a turn's
    // spec does not change, so its later calls skip comparing the script.
    std::string fits_turn;
  } inline_llm;
  std::vector<uint32_t> inline_calls;
  // Calls of tools without side effects, sent before the append of the step
  // that asked for them (agent_action::early), and the ids of those sent
  // and not answered yet, for which a cheap step's append waits (flush).
  std::vector<std::pair<std::string, llm_tool_call>> early_calls;
  std::set<std::string> early_running;
  bool draining = false;
  // One timer for two deadlines: an append unanswered for append_deadline
  // (the store is stuck) and idle_timeout without turns (bench/README.md).
  one_timer<caf::actor_clock::time_point> timer;
  caf::actor_clock::time_point append_sent; // of the one in flight
  caf::actor_clock::time_point idle_from;
  // Tool calls running on another node's pool, by call id, with their turn.
  remote_calls<std::pair<std::string, llm_tool_call>> remote;
  // get_atom requests that came before the log was read.
  std::vector<caf::typed_response_promise<json_value>> get_waiters;
  // A fork's recorded replies (its "replies:<fork>" log), by the full
  // request they answered (llm_cache::key_of, dumped). One agent id serves
  // one fork's turns, so it holds one such log at most.
  std::string replies_log;
  std::map<std::string, llm_response> replies;
  // The running turn, for its log lines (the machine forgets it as it ends).
  struct {
    std::string key;
    std::string execution;
    std::string task;
    int64_t started_us = 0;
  } current;

  workflow::agent_machine& m() {
    return *machine;
  }

  // Runs when the agent stops. Requests it took and did not answer would
  // wait for ever (CAF 0.17 has no broken promise): they get
  // request_receiver_down, so the agents actor sends the turns again to a
  // successor, which resumes them from the log.
  ~agent_state() {
    cancel_flag->store(true);
    if (worker)
      caf::anon_send_exit(worker, caf::exit_reason::kill);
    auto gone = caf::make_error(caf::sec::request_receiver_down);
    for (auto& [key, promises] : waiting)
      for (auto& p : promises)
        if (p.pending())
          p.deliver(gone);
    for (auto& p : get_waiters)
      if (p.pending())
        p.deliver(gone);
  }
};

using agent_self = agent_actor::stateful_pointer<agent_state>;

// -- operator logs ------------------------------------------------------------------

// Log lines name the agent id, its execution and task; never a prompt, a
// reply or a tool's input or output (those are in the agent's log).
void note_turn_started(agent_self self, const char* how) {
  auto& st = self->state;
  const auto* t = st.m().active();
  if (!t)
    return;
  st.current = {t->key, t->execution, t->task, now_us()};
  // Fields cost allocations: built only for a line that is written.
  if (log::enabled(log::level::info))
    log::info(how, {{"actor", "agent"},
                    {"agent", t->spec.name},
                    {"agent_id", st.id},
                    {"execution", t->execution},
                    {"task", t->task},
                    {"attempt", t->attempt}});
}

void note_turn_finished(agent_self self, const agent_action& a) {
  auto& st = self->state;
  bool known = st.current.key == a.turn;
  const auto* f = st.m().finished(a.turn);
  auto level = a.ok ? log::level::info : log::level::warn;
  if (log::enabled(level))
    log::write(level, a.ok ? "agent turn completed" : "agent turn failed",
               {{"actor", "agent"},
                {"agent", a.agent},
                {"agent_id", st.id},
                {"execution", known ? st.current.execution : std::string{}},
                {"task", known ? st.current.task : std::string{}},
                {"duration_ms",
                 known ? (now_us() - st.current.started_us) / 1000 : 0},
                {"code", f && !f->ok ? to_string(f->code) : std::string{}}});
  if (known)
    st.current = {};
}

// -- persist, then act ----------------------------------------------------------------

void flush(agent_self self);
void next_turn(agent_self self);
void answer(agent_self self, const std::string& key);
void call_llm(agent_self self, uint32_t call);
void call_summary(agent_self self);
void dispatch_tool(agent_self self, const llm_tool_call& call);

bool idle(agent_self self) {
  auto& st = self->state;
  return !st.m().active() && st.queue.empty() && st.waiting.empty()
         && !st.in_flight;
}

// Arms the agent's one timer for the earlier of: the append in flight
// reaching append_deadline, the agent idle for idle_timeout.
void arm_tick(agent_self self) {
  auto& st = self->state;
  std::optional<caf::actor_clock::time_point> due;
  if (st.in_flight)
    due = st.append_sent + st.opts->append_deadline;
  if (idle(self)) {
    auto at = st.idle_from + st.opts->idle_timeout;
    due = due ? std::min(*due, at) : at;
  }
  if (!due)
    return;
  // A timer armed for later stays with the clock, ignored when it fires.
  if (auto generation = st.timer.arm(*due)) {
    auto in = *due - self->clock().now();
    self->delayed_send(self, std::max(in, caf::timespan{0}), timer_atom_v,
                       *generation);
  }
}

// The timer: an append past its deadline stops the agent (as a failed
// append does: it restarts from its log); an agent idle long enough stops.
void on_tick(agent_self self, uint64_t generation) {
  auto& st = self->state;
  if (!st.timer.fired(generation))
    return;
  auto now = self->clock().now();
  if (st.in_flight && now - st.append_sent >= st.opts->append_deadline) {
    self->quit(append_unanswered(st.opts->append_deadline));
    return;
  }
  if (idle(self) && now - st.idle_from >= st.opts->idle_timeout) {
    self->quit();
    return;
  }
  arm_tick(self);
}

void after(agent_self self, std::function<void()> fn) {
  self->state.pending_actions.push_back(std::move(fn));
}

// The provider the active turn's requests go to, when it never blocks and
// the worker has handed it over; else null.
tools::llm::provider* inline_provider(agent_self self) {
  auto& st = self->state;
  const auto* t = st.m().active();
  if (!t)
    return nullptr;
  {
    std::lock_guard<std::mutex> guard{st.handover->mx};
    if (st.handover->made) {
      st.inline_llm.profile = std::move(st.handover->profile);
      st.inline_llm.script = std::move(st.handover->script);
      st.inline_llm.made = std::move(st.handover->made);
      st.inline_llm.fits_turn.clear();
    }
  }
  auto& own = st.inline_llm;
  if (!own.made)
    return nullptr;
  if (own.fits_turn != t->key) {
    if (own.profile != t->spec.provider || own.script != t->spec.script)
      return nullptr;
    own.fits_turn = t->key;
  }
  return own.made.get();
}

// Whether the active turn's model call yields nothing but events, at once:
// its provider never blocks, and neither a fork's recorded replies nor the
// response cache (both read from the store) come first. Such a call is made
// before the append of the step that asked for it, and its request and
// reply go in the same group: a crash before the append loses both, and
// the call is made again, as one in flight would be.
bool model_inline(agent_self self) {
  auto& st = self->state;
  const auto* t = st.m().active();
  return t && t->replies.empty() && !st.opts->cache
         && inline_provider(self) != nullptr;
}

// Queues a step of the machine: its events to append, then its actions.
void take(agent_self self, agent_step s) {
  auto& st = self->state;
  // One append takes a step's events or several steps': grow once, not
  // per event (each append takes the vector).
  if (st.pending_events.empty())
    st.pending_events = std::move(s.events);
  else
    st.pending_events.insert(st.pending_events.end(),
                             std::make_move_iterator(s.events.begin()),
                             std::make_move_iterator(s.events.end()));
  for (auto& a : s.actions) {
    switch (a.kind) {
      case agent_action::call_model:
        if (model_inline(self))
          st.inline_calls.push_back(a.call);
        else
          after(self, [=, call = a.call] { call_llm(self, call); });
        break;
      case agent_action::call_summary:
        after(self, [=] { call_summary(self); });
        break;
      case agent_action::call_tools:
        if (a.early) {
          for (auto& c : a.tools)
            st.early_calls.emplace_back(a.turn, std::move(c));
          break;
        }
        after(self, [=, calls = a.tools] {
          for (const auto& c : calls)
            dispatch_tool(self, c);
        });
        break;
      case agent_action::answer:
        count_agent(st.opts->metrics, "cadre_agent_turns_total",
                    {{"agent", a.agent},
                     {"outcome", a.ok ? "completed" : "failed"}});
        note_turn_finished(self, a);
        after(self, [=, key = a.turn] {
          answer(self, key);
          next_turn(self);
        });
        break;
    }
  }
}

// Sends the calls of tools without side effects that a step asked for,
// without waiting for its append.
void send_early_calls(agent_self self) {
  auto& st = self->state;
  for (auto& [turn, call] : std::exchange(st.early_calls, {})) {
    const auto* t = st.m().active();
    if (!t || t->key != turn || t->results.count(call.id) > 0)
      continue;
    st.early_running.insert(call.id);
    dispatch_tool(self, call);
  }
}

// Whether the pending step's append may wait for the early tool calls in
// flight, so that their results join it: nothing waits for that append
// (no action, no tool with side effects), and what it records costs nothing
// to redo (the turn's model calls are inline). A crash before it redoes the
// turn's step from the log: the model call at once, the tools again.
bool hold_for_early_calls(agent_self self) {
  auto& st = self->state;
  return !st.early_running.empty() && st.pending_actions.empty()
         && model_inline(self);
}

void flush(agent_self self) {
  auto& st = self->state;
  if (st.draining)
    return;
  // Calls of tools without side effects go at once, even while an append
  // is in flight; their results are acted on after the appends before them.
  if (st.in_flight) {
    st.draining = true;
    send_early_calls(self);
    st.draining = false;
    return;
  }
  // Model calls that produce only events join this append (model_inline);
  // their replies may ask for more (a repair call, tool calls).
  st.draining = true;
  while (!st.inline_calls.empty() || !st.early_calls.empty()) {
    send_early_calls(self);
    if (st.inline_calls.empty())
      continue;
    auto call = st.inline_calls.front();
    st.inline_calls.erase(st.inline_calls.begin());
    // A provider dropped meanwhile (it threw): the call waits for the append.
    if (model_inline(self))
      call_llm(self, call);
    else
      after(self, [=] { call_llm(self, call); });
  }
  st.draining = false;
  if (hold_for_early_calls(self))
    return;
  if (st.pending_events.empty()) {
    for (auto& fn : std::exchange(st.pending_actions, {}))
      fn();
    if (!st.pending_events.empty())
      flush(self);
    return;
  }
  append_request req;
  req.events = std::exchange(st.pending_events, {});
  auto actions = std::exchange(st.pending_actions, {});
  st.in_flight = true;
  st.append_sent = self->clock().now();
  arm_tick(self);
  // Its deadline is the agent's one timer (arm_tick), not one per request.
  self->request(st.store, caf::infinite, append_atom_v, std::move(req))
    .then(
      [=](uint64_t) {
        self->state.in_flight = false;
        for (auto& fn : actions)
          fn();
        flush(self);
      },
      [=](caf::error& err) {
        // Memory ran ahead of the log: only a restart that folds the log
        // again is safe. Waiting turns are re-sent by the agents actor.
        self->quit(err);
      });
}

// -- answers ------------------------------------------------------------------------

task_result result_of(agent_self self, const workflow::agent_finished_turn& f) {
  task_result r;
  r.output = json_value{f.output};
  auto usage = f.usage.is_object() ? f.usage : workflow::zero_agent_usage();
  usage["agent_id"] = self->state.id;
  usage["agent_log"] = self->state.m().log();
  r.usage = json_value{std::move(usage)};
  return r;
}

// A turn that finished so long ago that its answer is no longer kept:
// refused, not run again (its tools' side effects would repeat). A task
// retries it as a new attempt, under a new key.
caf::error forgotten_turn(agent_self self, const std::string& key) {
  auto& st = self->state;
  return make_error(errc::not_found,
                    "agent " + st.id + ": turn '" + key
                      + "' finished before the last "
                      + std::to_string(st.opts->max_finished_turns)
                      + " turns and its answer is no longer kept "
                        "(llm.max_finished_turns); it is not run again. Its "
                        "events are in log "
                      + st.m().log());
}

void answer(agent_self self, const std::string& key) {
  auto& st = self->state;
  auto* f = st.m().finished(key);
  auto w = st.waiting.find(key);
  if (!f || w == st.waiting.end())
    return;
  for (auto& p : w->second) {
    if (f->ok)
      p.deliver(result_of(self, *f));
    else
      p.deliver(make_error(f->code, f->message));
  }
  st.waiting.erase(w);
}

// -- model calls ----------------------------------------------------------------------

// How a reply came: from the provider, the response cache, or a fork's
// recorded replies.
enum class reply_from { model, cache, fork };

void ask_cache_or_model(agent_self self, const llm_request& req,
                        std::function<void(llm_response, reply_from)> ok,
                        std::function<void(caf::error&)> fail);

// The reply the fork recorded for a request equal to `req` in full.
std::optional<llm_response> recorded_reply(agent_self self,
                                           const llm_request& req) {
  auto& st = self->state;
  auto i = st.replies.find(
    dump_json(llm_cache::key_of(req, st.m().active()->spec.script)));
  if (i == st.replies.end())
    return std::nullopt;
  return i->second;
}

// Asks the model and hands the reply to `ok`; `fail` gets the error. A
// fork's turn first looks among the parent's recorded replies (read once),
// then, when enabled, in the response cache. Counts the call either way.
void ask_model(agent_self self, const llm_request& req,
               std::function<void(llm_response, reply_from)> ok,
               std::function<void(caf::error&)> fail) {
  auto& st = self->state;
  const auto& t = *st.m().active();
  if (t.replies.empty()) {
    ask_cache_or_model(self, req, std::move(ok), std::move(fail));
    return;
  }
  auto metrics = st.opts->metrics;
  auto reuse = [=](llm_response res) {
    count_llm_call(metrics, req, &res, "reused");
    ok(std::move(res), reply_from::fork);
  };
  if (t.replies == st.replies_log) {
    if (auto res = recorded_reply(self, req))
      reuse(std::move(*res));
    else
      ask_cache_or_model(self, req, ok, fail);
    return;
  }
  auto log = t.replies;
  self->request(st.store, local_deadline, read_atom_v, log, uint64_t{1},
                uint64_t{0})
    .then(
      [=](std::vector<event>& evs) {
        auto& st = self->state;
        st.replies_log = log;
        st.replies.clear();
        for (const auto& ev : evs) {
          const auto& p = ev.payload.get();
          try {
            auto recorded = p.at("request").get<llm_request>();
            st.replies[dump_json(llm_cache::key_of(recorded, p.at("script")))]
              = p.at("response").get<llm_response>();
          } catch (const std::exception&) {
            continue; // not an entry this build reads: never a match
          }
        }
        if (!st.m().active()) // the turn ended meanwhile
          return;
        if (auto res = recorded_reply(self, req))
          reuse(std::move(*res));
        else
          ask_cache_or_model(self, req, ok, fail);
      },
      // Without them the model is asked: slower, never wrong.
      [=](caf::error&) { ask_cache_or_model(self, req, ok, fail); });
}

void ask_cache_or_model(agent_self self, const llm_request& req,
                        std::function<void(llm_response, reply_from)> ok,
                        std::function<void(caf::error&)> fail) {
  auto& st = self->state;
  const auto& t = *st.m().active();
  auto metrics = st.opts->metrics;
  // One line per call: latency as the agent waited for it (the cache
  // included), tokens as the provider counted them; of an error, its code
  // only (its text may quote a reply), the text at debug.
  auto note = [=, agent = req.agent, profile = req.profile, call = req.turn,
               agent_id = st.id, execution = t.execution, task = t.task,
               asked_us = now_us()](const llm_response* res,
                                    const caf::error* err,
                                    const char* source) {
    uint64_t none = 0;
    auto level = err ? log::level::warn : log::level::info;
    if (log::enabled(level))
      log::write(level, err ? "model call failed" : "model call",
                 {{"actor", "agent"},
                  {"agent", agent},
                  {"agent_id", agent_id},
                  {"execution", execution},
                  {"task", task},
                  {"profile", profile},
                  {"model", res ? res->model : std::string{}},
                  {"call", call},
                  {"source", source},
                  {"latency_ms", (now_us() - asked_us) / 1000},
                  {"input_tokens", res ? res->usage.input_tokens : none},
                  {"output_tokens", res ? res->usage.output_tokens : none},
                  {"tool_calls", res ? res->message.tool_calls.size() : 0u},
                  {"stop_reason", res ? res->stop_reason : std::string{}},
                  {"code", err ? to_string(code_of(*err)) : std::string{}}});
    if (err && log::enabled(log::level::debug))
      log::debug("model call failed", {{"agent_id", agent_id},
                                       {"execution", execution},
                                       {"reason", describe(*err)}});
  };
  // The cache's key only when there is a cache.
  json cache_key;
  if (st.opts->cache)
    cache_key = llm_cache::key_of(req, t.spec.script);
  // What the reply of the provider goes through, inline or from the worker.
  auto answered = [=](const llm_request& asked, llm_response res,
                      const std::string& cache_log) {
    if (!cache_log.empty()) {
      // A lost race (conflict) is harmless. No deadline of its own: the
      // reply's append follows it to the same store, whose deadline (the
      // agent's one timer) stops the agent if the store is stuck.
      self->request(self->state.store, caf::infinite, append_atom_v,
                    llm_cache::entry(cache_log, cache_key, res, now_us()))
        .then([](uint64_t) {},
              [=, agent = asked.agent](caf::error& err) {
                if (code_of(err) == errc::conflict)
                  return;
                count_agent(metrics, "cadre_llm_cache_write_failures_total",
                            {{"agent", agent}});
                log::warn("LLM cache entry not written",
                          {{"actor", "agent"},
                           {"log", cache_log},
                           {"reason", describe(err)}});
              });
    }
    count_llm_call(metrics, asked, &res, "ok");
    note(&res, nullptr, "provider");
    ok(std::move(res), reply_from::model);
  };
  auto failed = [=](const llm_request& asked, caf::error& err) {
    count_llm_call(metrics, asked, nullptr, "error");
    note(nullptr, &err, "provider");
    fail(err);
  };
  // A provider that never blocks answers here and now.
  auto try_inline = [=](const llm_request& r, const std::string& cache_log) {
    auto& st = self->state;
    const auto* t = st.m().active();
    auto* prov = inline_provider(self);
    if (!prov)
      return false;
    auto cc = context_for(r, t->deadline_us, {st.id, t->execution, t->task},
                          st.cancel_flag, [=](event ev) {
                            self->send(self->state.bus, publish_atom_v,
                                       std::vector<event>{std::move(ev)});
                          });
    bool broken = false;
    auto res = call_provider(*prov, r, cc, broken);
    if (broken)
      st.inline_llm.made.reset();
    if (res)
      answered(r, std::move(*res), cache_log);
    else
      failed(r, res.error());
    return true;
  };
  if (!st.opts->cache && try_inline(req, {}))
    return;
  auto shared = std::make_shared<const llm_request>(req);
  auto ask_provider = [=](std::string cache_log) {
    auto& st = self->state;
    const auto* t = st.m().active();
    if (!t) // the turn ended meanwhile
      return;
    if (try_inline(*shared, cache_log))
      return;
    if (!st.worker)
      st.worker = self->spawn<caf::detached>(llm_worker_impl, st.opts,
                                             st.cancel_flag, st.bus,
                                             st.handover);
    json ctx{{"deadline_us", t->deadline_us},
             {"script", t->spec.script},
             {"execution", t->execution},
             {"agent_id", st.id},
             {"task", t->task}};
    // caf::infinite: the provider bounds each call (the profile's timeout).
    self
      ->request(st.worker, caf::infinite, run_atom_v, *shared,
                json_value{std::move(ctx)})
      .then(
        [=](llm_response& res) {
          answered(*shared, std::move(res), cache_log);
        },
        [=](caf::error& err) { failed(*shared, err); });
  };
  if (!st.opts->cache) {
    ask_provider({});
    return;
  }
  auto cache_log = llm_cache::log_of(cache_key);
  self->request(st.store, local_deadline, read_atom_v, cache_log, uint64_t{1},
                uint64_t{1})
    .then(
      [=](std::vector<event>& evs) {
        if (auto res = llm_cache::hit(evs, cache_key)) {
          count_llm_call(metrics, *shared, &*res, "cached");
          note(&*res, nullptr, "cache");
          ok(std::move(*res), reply_from::cache);
          return;
        }
        // A miss, or a hash collision: ask, and leave the entry alone.
        ask_provider(evs.empty() ? cache_log : std::string{});
      },
      [=](caf::error&) { ask_provider(cache_log); });
}

void call_llm(agent_self self, uint32_t call) {
  auto* t = self->state.m().active();
  // Pending, the call's request is the log's last.
  const auto* req = self->state.m().last_request();
  if (!t || t->calls != call || !t->llm_pending || !req)
    return;
  auto key = t->key;
  ask_model(
    self, *req,
    [=](llm_response res, reply_from from) {
      auto s = self->state.m().model_replied(
        key, call, std::move(res), from == reply_from::cache, now_us(),
        from == reply_from::fork);
      if (s.empty())
        return;
      take(self, std::move(s));
      flush(self);
    },
    [=](caf::error& err) {
      auto s = self->state.m().model_failed(key, call, err, now_us());
      if (s.empty())
        return;
      take(self, std::move(s));
      flush(self);
    });
}

void call_summary(agent_self self) {
  auto* t = self->state.m().active();
  if (!t || !t->summary_pending)
    return;
  auto key = t->key;
  // Summaries are not among a fork's recorded replies.
  ask_cache_or_model(
    self, t->summary_request,
    [=](llm_response res, reply_from from) {
      auto s = self->state.m().summary_replied(
        key, res, from != reply_from::model, now_us());
      if (s.empty())
        return;
      take(self, std::move(s));
      flush(self);
    },
    [=](caf::error& err) {
      auto s = self->state.m().summary_failed(
        key, message_of(err).empty() ? describe(err) : message_of(err),
        now_us());
      if (s.empty())
        return;
      take(self, std::move(s));
      flush(self);
    });
}

// -- tool calls -----------------------------------------------------------------------

// `sent_us`: when the call went to its pool; 0 for a call refused here.
void on_tool_result(agent_self self, const std::string& key,
                    const llm_tool_call& call, const expected<json>& out,
                    int64_t sent_us) {
  auto& st = self->state;
  st.early_running.erase(call.id);
  auto* t = st.m().active();
  auto agent = t ? t->spec.name : std::string{};
  auto execution = t ? t->execution : std::string{};
  auto task = t ? t->task : std::string{};
  auto s = st.m().tool_done(key, call, out, now_us());
  if (s.empty()) {
    flush(self); // an append held for this call goes now
    return;
  }
  auto level = out ? log::level::info : log::level::warn;
  if (log::enabled(level))
    log::write(level, "agent tool call",
               {{"actor", "agent"},
                {"agent", agent},
                {"agent_id", st.id},
                {"execution", execution},
                {"task", task},
                {"tool", call.name.substr(0, 64)},
                {"call_id", call.id.substr(0, 64)},
                {"outcome", out ? "ok" : sent_us == 0 ? "refused" : "error"},
                {"code",
                 out ? std::string{} : to_string(code_of(out.error()))},
                {"latency_ms",
                 sent_us == 0 ? 0 : (now_us() - sent_us) / 1000}});
  count_agent(st.opts->metrics, "cadre_agent_tool_calls_total",
              {{"agent", agent}, {"tool", call.name},
               {"outcome", out ? "ok" : "error"}});
  take(self, std::move(s));
  flush(self);
}

void dispatch_tool(agent_self self, const llm_tool_call& call) {
  auto& st = self->state;
  const auto& t = *st.m().active();
  auto key = t.key;
  std::optional<tool_directory::route> route;
  auto avoid = st.remote.avoid(call.id);
  if (st.tools)
    route = st.tools->pick(call.name, avoid);
  if (auto refused = workflow::refuse_tool_call(t.spec, call, route.has_value(),
                                                !avoid.empty())) {
    if (code_of(*refused) == errc::tool_not_found)
      log::info("agent tool call refused: not one of its tools",
                {{"actor", "agent"}, {"agent", t.spec.name},
                 {"agent_id", st.id}, {"execution", t.execution},
                 {"task", t.task}, {"tool", call.name.substr(0, 64)}});
    on_tool_result(self, key, call, *refused, 0);
    return;
  }
  task_request req;
  req.execution_id = t.execution;
  req.task_id = t.task + "/" + call.id;
  req.attempt = t.attempt;
  req.tool = call.name;
  req.input = call.arguments;
  req.deadline_us = t.deadline_us;
  req.idempotency_key = key + "/" + call.id;
  // A local call carries the turn's deadline (deadline_us), which the pool
  // enforces (caf::infinite when the turn has none). A remote pool's node
  // may vanish with the answer, so that wait is bounded here too.
  caf::duration timeout = caf::infinite;
  if (t.deadline_us > 0)
    timeout = caf::duration{std::chrono::microseconds{
      std::max<int64_t>(t.deadline_us - now_us(), 0) + 2000000}};
  else if (!route->node.empty())
    timeout = caf::duration{remote_tool_backstop};
  uint64_t token = 0;
  if (!route->node.empty()) {
    bool watch = false;
    token = st.remote.sent(call.id, route->pool.address(), route->node,
                           {key, call}, watch);
    if (watch)
      self->monitor(route->pool);
  }
  // One copy of the call for the two handlers (CAF copies them again).
  auto shared = std::make_shared<const llm_tool_call>(call);
  // False for the answer of a call that was sent again meanwhile.
  auto current = [=] {
    auto& remote = self->state.remote;
    if (!remote.answered(shared->id, token))
      return false;
    remote.settled(shared->id);
    return true;
  };
  auto sent_us = now_us();
  self->request(route->pool, timeout, run_atom_v, std::move(req))
    .then(
      [=](task_result& res) {
        if (current())
          on_tool_result(self, key, *shared, res.output.get(), sent_us);
      },
      [=](caf::error& err) {
        if (current())
          on_tool_result(self, key, *shared, err, sent_us);
      });
}

// The link to a pool on another node broke: the calls of the active turn
// running there are sent again, elsewhere.
void on_pool_down(agent_self self, const caf::down_msg& dm) {
  auto& st = self->state;
  for (auto& c : st.remote.lost(dm.source)) {
    auto& [turn, call] = c.payload;
    auto* t = st.m().active();
    if (!t || t->key != turn || t->results.count(call.id) > 0)
      continue;
    log::warn("agent tool call sent again: its node was lost",
              {{"actor", "agent"}, {"agent_id", st.id},
               {"execution", t->execution}, {"task", t->task},
               {"tool", call.name}, {"node", c.node},
               {"reason", to_string(dm.reason)}});
    dispatch_tool(self, call);
  }
}

// Asks the pools for the JSON Schemas of `names` not known yet, then runs
// `then`.
void load_tool_specs(agent_self self, std::vector<std::string> names,
                     std::function<void()> then) {
  auto& st = self->state;
  auto left = std::make_shared<size_t>(0);
  std::vector<std::pair<std::string, tool_pool_actor>> ask;
  for (const auto& n : names)
    if (!st.m().knows_tool(n) && st.tools)
      if (auto route = st.tools->pick(n))
        ask.emplace_back(n, route->pool);
  if (ask.empty()) {
    then();
    return;
  }
  *left = ask.size();
  for (auto& [name, pool] : ask) {
    auto n = name;
    auto done = [=] {
      if (--*left == 0)
        then();
    };
    self->request(pool, local_deadline, describe_atom_v)
      .then(
        [=](json_value& d) {
          llm_tool_spec spec;
          spec.name = n;
          spec.description = d->value("description", std::string{});
          spec.parameters = json_value{d->value("input_schema",
                                                json::object())};
          self->state.m().know_tool(std::move(spec),
                                    described_side_effects(d.get()));
          done();
        },
        [=](caf::error&) { done(); });
  }
}

// -- turns ----------------------------------------------------------------------------

void schedule_idle(agent_self self) {
  auto& st = self->state;
  if (st.m().active() || !st.queue.empty() || !st.waiting.empty())
    return;
  st.idle_from = self->clock().now();
  arm_tick(self);
}

void start_turn(agent_self self, agent_turn req) {
  auto& st = self->state;
  auto started = st.m().start(req, now_us());
  if (!started) {
    auto& w = st.waiting[req.idempotency_key];
    for (auto& p : w)
      p.deliver(started.error());
    st.waiting.erase(req.idempotency_key);
    next_turn(self);
    return;
  }
  take(self, std::move(*started));
  note_turn_started(self, "agent turn started");
  auto tools = st.m().active()->spec.tools;
  load_tool_specs(self, tools, [=] {
    if (self->state.m().active())
      take(self, self->state.m().begin(now_us()));
    flush(self);
  });
}

void next_turn(agent_self self) {
  auto& st = self->state;
  if (!st.ready || st.m().active() || st.in_flight)
    return;
  while (!st.queue.empty()) {
    auto req = std::move(st.queue.front());
    st.queue.pop_front();
    if (st.m().finished(req.idempotency_key)) {
      answer(self, req.idempotency_key);
      continue;
    }
    if (st.m().forgotten(req.idempotency_key)) {
      auto err = forgotten_turn(self, req.idempotency_key);
      if (auto w = st.waiting.find(req.idempotency_key);
          w != st.waiting.end()) {
        for (auto& p : w->second)
          p.deliver(err);
        st.waiting.erase(w);
      }
      continue;
    }
    start_turn(self, std::move(req));
    return;
  }
  schedule_idle(self);
}

caf::result<json_value> memory_reply(agent_self self) {
  auto& m = self->state.m();
  if (m.last_seq() == 0)
    return make_error(errc::not_found,
                      "agent " + self->state.id + " has no log");
  return json_value{m.view()};
}

agent_actor::behavior_type agent_impl(agent_self self, std::string id,
                                      event_store_actor store,
                                      event_bus_actor bus,
                                      std::shared_ptr<const tool_directory> tools,
                                      std::shared_ptr<const agents_options> opts) {
  install_exception_handler(self);
  auto& st = self->state;
  st.id = id;
  st.machine.emplace(id, opts->max_finished_turns);
  st.store = std::move(store);
  st.bus = std::move(bus);
  st.tools = std::move(tools);
  st.opts = std::move(opts);
  self->set_down_handler(
    [=](caf::down_msg& dm) { on_pool_down(self, dm); });
  // Memory is the fold of the log; an unfinished turn resumes at once.
  self->request(st.store, local_deadline, read_atom_v, st.m().log(),
                uint64_t{1}, uint64_t{0})
    .then(
      [=](std::vector<event>& log) {
        auto& st = self->state;
        for (auto& ev : log)
          st.m().apply(ev);
        st.ready = true;
        for (auto& p : std::exchange(st.get_waiters, {})) {
          if (st.m().last_seq() == 0)
            p.deliver(make_error(errc::not_found,
                                 "agent " + st.id + " has no log"));
          else
            p.deliver(json_value{st.m().view()});
        }
        if (auto* t = st.m().active()) {
          note_turn_started(self, "agent turn resumed from its log");
          auto tools = t->spec.tools;
          load_tool_specs(self, tools, [=] {
            if (self->state.m().active()) {
              take(self, self->state.m().resume(now_us()));
              flush(self);
            }
          });
        } else {
          next_turn(self);
        }
      },
      [=](caf::error& err) { self->quit(err); });
  return {
    [=](run_atom, agent_turn& req) -> caf::result<task_result> {
      auto& st = self->state;
      auto key = req.idempotency_key;
      auto* active = st.m().active();
      bool running = active && active->key == key;
      bool done = st.m().finished(key) != nullptr;
      if (!done && !running && st.m().forgotten(key))
        return forgotten_turn(self, key);
      // One agent id runs one turn at a time; turns past the bound are
      // refused rather than queued without end (a task retries them).
      bool known = done || running || st.waiting.count(key) > 0;
      if (!known && st.queue.size() >= st.opts->max_queued_turns) {
        log::warn("agent turn refused: queue full",
                  {{"actor", "agent"},
                   {"agent", req.agent},
                   {"agent_id", st.id},
                   {"execution", req.execution_id},
                   {"task", req.task_id},
                   {"queued", st.queue.size()}});
        return make_error(errc::overloaded,
                          "agent " + req.agent + ": "
                            + std::to_string(st.queue.size())
                            + " turns wait already (max_queued_turns)");
      }
      auto promise = self->make_response_promise<task_result>();
      st.waiting[key].push_back(promise);
      if (done) {
        answer(self, key);
        return promise;
      }
      if (running) {
        st.m().set_deadline(key, req.deadline_us);
        return promise;
      }
      if (std::none_of(st.queue.begin(), st.queue.end(),
                       [&](const agent_turn& q) {
                         return q.idempotency_key == key;
                       }))
        st.queue.push_back(std::move(req));
      next_turn(self);
      return promise;
    },
    [=](get_atom) -> caf::result<json_value> {
      auto& st = self->state;
      if (!st.ready) {
        auto promise = self->make_response_promise<json_value>();
        st.get_waiters.push_back(promise);
        return promise;
      }
      return memory_reply(self);
    },
    [=](timer_atom, uint64_t generation) { on_tick(self, generation); },
  };
}

} // namespace

agent_actor spawn_agent(caf::actor_system& sys, std::string id,
                        event_store_actor store, event_bus_actor bus,
                        std::shared_ptr<const tool_directory> tools,
                        std::shared_ptr<const agents_options> opts) {
  return sys.spawn(agent_impl, std::move(id), std::move(store), std::move(bus),
                   std::move(tools), std::move(opts));
}

} // namespace cadre::actors
