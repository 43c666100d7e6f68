// Agents: the agents actor routes turns to one agent actor per agent id;
// each agent keeps its memory as a log ("agent:<id>") and runs the loop
// LLM call -> tool calls in parallel -> results back -> ... -> final answer,
// appending every step before acting on it (docs/agents.md).

#include <algorithm>
#include <chrono>
#include <deque>
#include <functional>
#include <map>
#include <optional>
#include <set>
#include <unordered_map>

#include <caf/actor_system.hpp>
#include <caf/typed_event_based_actor.hpp>

#include "cadre/actors/deadlines.hpp"
#include "cadre/actors/metrics.hpp"
#include "cadre/actors/restart_intensity.hpp"
#include "cadre/actors/spawn.hpp"
#include "cadre/actors/supervisor.hpp"
#include "cadre/log/log.hpp"
#include "cadre/workflow/agent_spec.hpp"
#include "cadre/workflow/definition.hpp"
#include "cadre/messages/json_text.hpp"
#include "cadre/messages/utf8.hpp"
#include "remote_calls.hpp"

namespace cadre::actors {

namespace {

namespace ev_type {
constexpr const char* turn_started = "agent_turn_started";
constexpr const char* message = "agent_message";
constexpr const char* llm_requested = "llm_requested";
constexpr const char* llm_responded = "llm_responded";
constexpr const char* tool_called = "tool_called";
constexpr const char* tool_result = "tool_result";
constexpr const char* turn_completed = "agent_turn_completed";
constexpr const char* turn_failed = "agent_turn_failed";
constexpr const char* token = "agent_token";
constexpr const char* summary_requested = "memory_summary_requested";
constexpr const char* summarized = "memory_summarized";
constexpr const char* summary_failed = "memory_summary_failed";
} // namespace ev_type

int64_t now_us() {
  using namespace std::chrono;
  return duration_cast<microseconds>(system_clock::now().time_since_epoch())
    .count();
}

// FNV-1a: stable across builds and runs, unlike std::hash.
std::string hash_hex(const std::string& s) {
  uint64_t h = 1469598103934665603ull;
  for (unsigned char c : s) {
    h ^= c;
    h *= 1099511628211ull;
  }
  char buf[17];
  std::snprintf(buf, sizeof(buf), "%016llx", static_cast<unsigned long long>(h));
  return buf;
}

template <class T>
std::optional<T> from(const json& j) {
  try {
    return j.get<T>();
  } catch (const std::exception&) {
    return std::nullopt;
  }
}

json zero_usage() {
  return json{{"input_tokens", 0}, {"output_tokens", 0}, {"cost_usd", 0.0},
              {"llm_calls", 0},    {"tool_calls", 0}};
}

void add_usage(json& total, const llm_usage& u) {
  total["input_tokens"] = total["input_tokens"].get<uint64_t>()
                          + u.input_tokens;
  total["output_tokens"] = total["output_tokens"].get<uint64_t>()
                           + u.output_tokens;
  total["cost_usd"] = total["cost_usd"].get<double>() + u.cost_usd;
  total["llm_calls"] = total["llm_calls"].get<uint64_t>() + 1;
}

// -- the LLM worker ---------------------------------------------------------------

// Runs provider calls off CAF's scheduler threads (a detached actor per
// agent). The json_value carries what is not part of the recorded request:
// the deadline, the agent's script, and where streamed text goes.
using llm_worker_actor = caf::typed_actor<
  caf::replies_to<run_atom, llm_request, json_value>::with<llm_response>>;

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

llm_worker_actor::behavior_type
llm_worker_impl(llm_worker_actor::stateful_pointer<llm_worker_state> self,
                std::shared_ptr<const agents_options> opts,
                std::shared_ptr<std::atomic<bool>> cancel_flag,
                event_bus_actor bus) {
  return {
    [=](run_atom, const llm_request& req,
        const json_value& ctx) -> caf::result<llm_response> {
      const auto& c = ctx.get();
      auto p = profile_for(*opts, req.profile, c.value("script", json{}));
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
      tools::llm::call_context cc;
      cc.deadline_us = c.value("deadline_us", int64_t{0});
      cc.cancel_flag = cancel_flag;
      if (req.stream) {
        auto execution = c.value("execution", std::string{});
        auto meta = json{{"agent", req.agent},
                         {"agent_id", c.value("agent_id", std::string{})},
                         {"task", c.value("task", std::string{})},
                         {"call", req.turn}};
        // Streamed pieces are bus events only: the reply is what the log
        // keeps.
        cc.on_text = [=](std::string_view piece) {
          auto p = meta;
          p["text"] = std::string{piece};
          event ev{execution, 0, now_us(), ev_type::token,
                   json_value{std::move(p)}};
          self->send(bus, publish_atom_v, std::vector<event>{std::move(ev)});
        };
      }
      try {
        auto res = prov->complete(req, cc);
        if (!res)
          return std::move(res.error());
        return std::move(*res);
      } catch (const std::exception& e) {
        // A provider's state is suspect after a throw: make a fresh one.
        self->state.providers.erase(key);
        return make_error(errc::tool_failed, "llm profile " + req.profile
                                               + " threw: " + e.what());
      }
    },
  };
}

// -- one agent ----------------------------------------------------------------------

using agent_actor = caf::typed_actor<
  caf::replies_to<run_atom, agent_turn>::with<task_result>,
  caf::replies_to<get_atom>::with<json_value>,
  caf::reacts_to<timer_atom, uint64_t>>;

struct finished_turn {
  bool ok = false;
  json output;
  json usage;
  errc code = errc::internal;
  std::string message;
};

struct active_turn {
  std::string key;
  std::string execution;
  std::string task;
  uint32_t attempt = 1;
  int64_t deadline_us = 0;
  workflow::agent_spec spec;
  json spec_doc;
  std::vector<llm_message> messages; // this turn's conversation
  uint32_t calls = 0;                // LLM calls requested
  bool llm_pending = false;          // requested, not answered
  llm_request request;               // the last request
  std::vector<llm_tool_call> tool_calls; // of the last reply
  std::map<std::string, llm_message> results; // call id -> tool message
  bool repaired = false;
  json usage = zero_usage();
  // Summary memory: a summary call asked for and not answered, and whether
  // this turn already tried one (a failed summary falls back to the window).
  bool summary_pending = false;
  bool summary_tried = false;
  size_t summary_to = 0;
  llm_request summary_request;
};

struct agent_state {
  static inline const char* name = "cadre.agent";
  agent_state() = default;
  std::string id;
  std::string log;
  event_store_actor store;
  event_bus_actor bus;
  std::shared_ptr<const tool_directory> tools;
  std::shared_ptr<const agents_options> opts;
  // The fold of the log.
  uint64_t seq = 0;
  std::vector<llm_message> history; // earlier turns: prompts and answers
  // Summary memory: the model's summary of history[0, summarized).
  std::string summary;
  size_t summarized = 0;
  std::map<std::string, finished_turn> finished;
  std::optional<active_turn> active;
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
  std::map<std::string, llm_tool_spec> tool_specs;
  uint64_t idle_generation = 0;
  // Tool calls running on another node's pool, by call id, with their turn.
  remote_calls<std::pair<std::string, llm_tool_call>> remote;
  // get_atom requests that came before the log was read.
  std::vector<caf::typed_response_promise<json_value>> get_waiters;

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

// -- fold ---------------------------------------------------------------------------

void fold(agent_state& st, const event& ev) {
  st.seq = ev.seq;
  const auto& p = ev.payload.get();
  if (!p.is_object())
    return;
  auto turn = p.value("turn", std::string{});
  if (ev.type == ev_type::turn_started) {
    active_turn t;
    t.key = turn;
    t.execution = p.value("execution", std::string{});
    t.task = p.value("task", std::string{});
    t.attempt = p.value("attempt", uint32_t{1});
    t.spec_doc = p.value("spec", json::object());
    // Checked when the turn started; the log keeps what ran.
    (void) workflow::parse_agent_spec(p.value("agent", std::string{}),
                                      t.spec_doc, t.spec);
    st.active = std::move(t);
    return;
  }
  if (!st.active || st.active->key != turn)
    return;
  auto& t = *st.active;
  if (ev.type == ev_type::message) {
    if (auto m = from<llm_message>(p.value("message", json::object())))
      t.messages.push_back(std::move(*m));
    if (p.value("repair", false))
      t.repaired = true;
  } else if (ev.type == ev_type::llm_requested) {
    t.calls = p.value("call", t.calls + 1);
    t.llm_pending = true;
    if (auto r = from<llm_request>(p.value("request", json::object())))
      t.request = std::move(*r);
  } else if (ev.type == ev_type::llm_responded) {
    t.llm_pending = false;
    auto r = from<llm_response>(p.value("response", json::object()));
    if (!r)
      return;
    t.messages.push_back(r->message);
    t.tool_calls = r->message.tool_calls;
    t.results.clear();
    add_usage(t.usage, r->usage);
  } else if (ev.type == ev_type::summary_requested) {
    t.summary_pending = true;
    t.summary_tried = true;
    t.summary_to = p.value("to", size_t{0});
    if (auto r = from<llm_request>(p.value("request", json::object())))
      t.summary_request = std::move(*r);
  } else if (ev.type == ev_type::summarized) {
    t.summary_pending = false;
    st.summary = p.value("summary", std::string{});
    st.summarized = std::min(p.value("to", size_t{0}), st.history.size());
    if (auto u = from<llm_usage>(p.value("usage", json::object())))
      add_usage(t.usage, *u);
  } else if (ev.type == ev_type::summary_failed) {
    t.summary_pending = false;
  } else if (ev.type == ev_type::tool_called) {
    t.usage["tool_calls"] = t.usage["tool_calls"].get<uint64_t>() + 1;
  } else if (ev.type == ev_type::tool_result) {
    llm_message m;
    m.role = "tool";
    m.tool_call_id = p.value("id", std::string{});
    m.name = p.value("name", std::string{});
    if (auto e = p.find("error"); e != p.end()) {
      m.is_error = true;
      // The providers mark it as an error in their own way.
      m.content = e->get<std::string>();
    } else {
      m.content = dump_json(p.value("output", json{}));
    }
    t.results[m.tool_call_id] = m;
    if (t.results.size() == t.tool_calls.size())
      // In call order, whatever order they finished in.
      for (const auto& c : t.tool_calls)
        if (auto i = t.results.find(c.id); i != t.results.end())
          t.messages.push_back(i->second);
  } else if (ev.type == ev_type::turn_completed
             || ev.type == ev_type::turn_failed) {
    finished_turn f;
    f.ok = ev.type == ev_type::turn_completed;
    f.output = p.value("output", json{});
    f.usage = p.value("usage", json{});
    if (!f.ok) {
      if (!from_string(p.value("code", std::string{"internal"}), f.code))
        f.code = errc::internal;
      f.message = p.value("message", std::string{});
    } else {
      // Memory keeps each turn's prompt and final answer.
      for (const auto& m : t.messages)
        if (m.role == "user") {
          st.history.push_back(m);
          break;
        }
      if (!t.messages.empty() && t.messages.back().role == "assistant") {
        llm_message a;
        a.role = "assistant";
        a.content = t.messages.back().content;
        st.history.push_back(std::move(a));
      }
    }
    st.finished[turn] = std::move(f);
    st.active.reset();
  }
}

// -- persist, then act ----------------------------------------------------------------

void flush(agent_self self);
void next_turn(agent_self self);
void count(agent_self self, const char* name, metric_labels ls);

void emit(agent_self self, const char* type, json payload) {
  auto& st = self->state;
  event ev{st.log, st.seq + 1, now_us(), type, json_value{std::move(payload)}};
  fold(st, ev);
  st.pending_events.push_back(std::move(ev));
}

void after(agent_self self, std::function<void()> fn) {
  self->state.pending_actions.push_back(std::move(fn));
}

void flush(agent_self self) {
  auto& st = self->state;
  if (st.in_flight)
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
  self->request(st.store, local_deadline, append_atom_v, std::move(req))
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

// -- the loop -------------------------------------------------------------------------

task_result result_of(agent_self self, const finished_turn& f) {
  task_result r;
  r.output = json_value{f.output};
  auto usage = f.usage.is_object() ? f.usage : zero_usage();
  usage["agent_id"] = self->state.id;
  usage["agent_log"] = self->state.log;
  r.usage = json_value{std::move(usage)};
  return r;
}

void answer(agent_self self, const std::string& key) {
  auto& st = self->state;
  auto f = st.finished.find(key);
  auto w = st.waiting.find(key);
  if (f == st.finished.end() || w == st.waiting.end())
    return;
  for (auto& p : w->second) {
    if (f->second.ok)
      p.deliver(result_of(self, f->second));
    else
      p.deliver(make_error(f->second.code, f->second.message));
  }
  st.waiting.erase(w);
}

void finish_turn(agent_self self, bool ok, json output, errc code,
                 std::string message) {
  auto& st = self->state;
  auto key = st.active->key;
  count(self, "cadre_agent_turns_total",
        {{"agent", st.active->spec.name}, {"outcome", ok ? "completed" : "failed"}});
  json p{{"turn", key}, {"usage", st.active->usage}};
  if (ok) {
    p["output"] = std::move(output);
    emit(self, ev_type::turn_completed, std::move(p));
  } else {
    p["code"] = to_string(code);
    p["message"] = message;
    emit(self, ev_type::turn_failed, std::move(p));
  }
  after(self, [=] {
    answer(self, key);
    next_turn(self);
  });
}

void fail_turn(agent_self self, errc code, const std::string& message) {
  auto& t = *self->state.active;
  finish_turn(self, false, nullptr, code,
              "agent " + t.spec.name + " (task " + t.task + "): " + message);
}

llm_request build_request(agent_state& st) {
  auto& t = *st.active;
  llm_request r;
  r.profile = t.spec.provider;
  r.model = t.spec.model;
  bool summarizing = t.spec.memory_policy == "summary";
  // One system message: several are not portable across providers.
  auto system = t.spec.system;
  if (summarizing && !st.summary.empty())
    system += (system.empty() ? "" : "\n\n")
              + std::string{"Summary of the earlier conversation:\n"}
              + st.summary;
  if (!system.empty()) {
    llm_message sys;
    sys.role = "system";
    sys.content = std::move(system);
    r.messages.push_back(std::move(sys));
  }
  // The newest `memory_window` messages, none of them already summarized.
  auto window = std::min<size_t>(t.spec.memory_window, st.history.size());
  auto first = st.history.size() - window;
  if (summarizing)
    first = std::max(first, std::min(st.summarized, st.history.size()));
  r.messages.insert(r.messages.end(),
                    st.history.begin() + static_cast<ptrdiff_t>(first),
                    st.history.end());
  r.messages.insert(r.messages.end(), t.messages.begin(), t.messages.end());
  for (const auto& name : t.spec.tools)
    if (auto i = st.tool_specs.find(name); i != st.tool_specs.end())
      r.tools.push_back(i->second);
  r.temperature = t.spec.temperature;
  r.max_tokens = t.spec.max_tokens;
  r.stream = t.spec.stream;
  r.agent = t.spec.name;
  r.turn = t.calls + 1;
  return r;
}

void call_llm(agent_self self, uint32_t call);

void request_llm(agent_self self) {
  auto& st = self->state;
  auto req = build_request(st);
  auto call = req.turn;
  json j = req;
  emit(self, ev_type::llm_requested,
       json{{"turn", st.active->key}, {"call", call}, {"request", j}});
  after(self, [=] { call_llm(self, call); });
}

// The JSON of a final answer: the whole text, else the first fenced block
// (```json or ```) that parses, as models often write a sentence first.
// Discarded when there is none. A linear scan, no regex: the text is the
// model's.
json answer_json(const std::string& text) {
  auto whole = try_parse_json(text);
  if (!whole.is_discarded())
    return whole;
  for (auto open = text.find("```"); open != std::string::npos;) {
    auto body = text.find('\n', open + 3);
    if (body == std::string::npos)
      break;
    auto close = text.find("```", body + 1);
    if (close == std::string::npos)
      break;
    auto block = try_parse_json(
      std::string_view{text}.substr(body + 1, close - body - 1));
    if (!block.is_discarded())
      return block;
    open = text.find("```", close + 3);
  }
  return json::value_t::discarded;
}

void final_answer(agent_self self, const llm_message& msg) {
  auto& t = *self->state.active;
  if (t.spec.output_schema.is_null()) {
    finish_turn(self, true, msg.content, errc::ok, {});
    return;
  }
  std::string problem;
  auto value = answer_json(msg.content);
  if (value.is_discarded()) {
    problem = "the answer is not JSON";
  } else if (auto ok = workflow::check_schema(t.spec.output_schema, value,
                                              "answer");
             !ok) {
    problem = message_of(ok.error());
  } else {
    finish_turn(self, true, std::move(value), errc::ok, {});
    return;
  }
  if (t.repaired) {
    fail_turn(self, errc::invalid_input,
              "the answer does not match output_schema after a repair "
              "turn: "
                + problem + "; the answer was: '"
                + utf8_excerpt(msg.content, 300) + "'");
    return;
  }
  llm_message repair;
  repair.role = "user";
  repair.content = "Your answer does not match the required JSON Schema ("
                   + problem
                   + "). Answer again with only a JSON value that matches "
                     "this schema: "
                   + dump_json(t.spec.output_schema);
  emit(self, ev_type::message,
       json{{"turn", t.key}, {"message", repair}, {"repair", true}});
  request_llm(self);
}

void dispatch_tool(agent_self self, const llm_tool_call& call);

void on_llm_reply(agent_self self, const std::string& key, uint32_t call,
                  llm_response res, bool cached) {
  auto& st = self->state;
  if (!st.active || st.active->key != key || !st.active->llm_pending
      || st.active->calls != call)
    return;
  res.message.role = "assistant";
  // Tool call ids must be unique in the turn: the log and the results are
  // keyed by them.
  std::set<std::string> seen;
  for (size_t i = 0; i < res.message.tool_calls.size(); ++i) {
    auto& c = res.message.tool_calls[i];
    if (c.id.empty() || !seen.insert(c.id).second) {
      c.id = "call_" + std::to_string(call) + "_" + std::to_string(i + 1);
      seen.insert(c.id);
    }
  }
  json p{{"turn", key}, {"call", call}, {"response", res}};
  if (cached)
    p["cached"] = true;
  emit(self, ev_type::llm_responded, std::move(p));
  auto& t = *st.active;
  if (res.message.tool_calls.empty()) {
    final_answer(self, res.message);
  } else if (t.calls >= t.spec.max_iterations) {
    fail_turn(self, errc::tool_failed,
              "no final answer after max_iterations ("
                + std::to_string(t.spec.max_iterations)
                + ") LLM calls; the model still calls tools");
  } else {
    // Every call is recorded before any is sent: they run in parallel.
    for (const auto& c : res.message.tool_calls)
      emit(self, ev_type::tool_called,
           json{{"turn", key}, {"call", call}, {"id", c.id}, {"name", c.name},
                {"arguments", c.arguments.get()}});
    auto calls = res.message.tool_calls;
    after(self, [=] {
      for (const auto& c : calls)
        dispatch_tool(self, c);
    });
  }
  flush(self);
}

void on_tool_result(agent_self self, const std::string& key,
                    const llm_tool_call& call, expected<json> out) {
  auto& st = self->state;
  if (!st.active || st.active->key != key
      || st.active->results.count(call.id) > 0)
    return;
  auto& t = *st.active;
  if (std::none_of(t.tool_calls.begin(), t.tool_calls.end(),
                   [&](const llm_tool_call& c) { return c.id == call.id; }))
    return;
  count(self, "cadre_agent_tool_calls_total",
        {{"agent", t.spec.name}, {"tool", call.name},
         {"outcome", out ? "ok" : "error"}});
  json p{{"turn", key}, {"id", call.id}, {"name", call.name}};
  if (out)
    p["output"] = std::move(*out);
  else
    p["error"] = message_of(out.error()).empty() ? describe(out.error())
                                                 : message_of(out.error());
  emit(self, ev_type::tool_result, std::move(p));
  if (t.results.size() == t.tool_calls.size())
    request_llm(self);
  flush(self);
}

void dispatch_tool(agent_self self, const llm_tool_call& call) {
  auto& st = self->state;
  auto& t = *st.active;
  auto key = t.key;
  auto& allowed = t.spec.tools;
  std::optional<tool_directory::route> route;
  auto avoid = st.remote.avoid(call.id);
  if (st.tools)
    route = st.tools->pick(call.name, avoid);
  bool allowed_tool
    = std::find(allowed.begin(), allowed.end(), call.name) != allowed.end();
  if (allowed_tool && !route && !avoid.empty()) {
    on_tool_result(self, key, call,
                   make_error(errc::unavailable,
                              "tool '" + call.name
                                + "': every node offering it was lost "
                                  "during this call"));
    return;
  }
  if (!allowed_tool || !route) {
    log::info("agent tool call refused: not one of its tools",
              {{"actor", "agent"}, {"agent", st.id},
               {"execution", t.execution}, {"task", t.task},
               {"tool", call.name.substr(0, 64)}});
    on_tool_result(self, key, call,
                   make_error(errc::tool_not_found,
                              "tool '" + call.name
                                + "' is not one of this agent's tools"));
    return;
  }
  // Small models often send broken arguments: the model reads why and
  // tries again, on an LLM call that counts against max_iterations.
  if (!call.arguments_error.empty()) {
    on_tool_result(self, key, call,
                   make_error(errc::invalid_input,
                              call.arguments_error
                                + "; call the tool again with a JSON object "
                                  "that matches its input schema"));
    return;
  }
  if (!call.arguments->is_object()) {
    on_tool_result(self, key, call,
                   make_error(errc::invalid_input,
                              "tool " + call.name
                                + ": arguments must be a JSON object"));
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
  // False for the answer of a call that was sent again meanwhile.
  auto current = [=] {
    auto& remote = self->state.remote;
    if (!remote.answered(call.id, token))
      return false;
    remote.settled(call.id);
    return true;
  };
  self->request(route->pool, timeout, run_atom_v, std::move(req))
    .then(
      [=](task_result& res) {
        if (current())
          on_tool_result(self, key, call, res.output.get());
      },
      [=](caf::error& err) {
        if (current())
          on_tool_result(self, key, call, err);
      });
}

// The link to a pool on another node broke: the calls of the active turn
// running there are sent again, elsewhere.
void on_pool_down(agent_self self, const caf::down_msg& dm) {
  auto& st = self->state;
  for (auto& c : st.remote.lost(dm.source)) {
    auto& [turn, call] = c.payload;
    if (!st.active || st.active->key != turn
        || st.active->results.count(call.id) > 0)
      continue;
    log::warn("agent tool call sent again: its node was lost",
              {{"actor", "agent"}, {"agent", st.id},
               {"tool", call.name}, {"node", c.node},
               {"reason", to_string(dm.reason)}});
    dispatch_tool(self, call);
  }
}

// -- metrics --------------------------------------------------------------------------

// Labelled by the agent's name, never its id: ids grow with executions,
// and a series per execution would swamp a metrics store. Per-execution
// figures are in the events (task_completed, execution_completed).
void count_llm_call(agent_self self, const llm_request& req,
                    const llm_response* res, const char* outcome) {
  auto& m = self->state.opts->metrics;
  if (!m)
    return;
  auto model = res && !res->model.empty() ? res->model : req.model;
  metric_labels ls{{"agent", req.agent}, {"profile", req.profile},
                   {"model", model}};
  auto with_outcome = ls;
  with_outcome.emplace_back("outcome", outcome);
  m->add("cadre_llm_calls_total", with_outcome);
  // A cached reply cost nothing this time.
  if (res && std::string_view{outcome} == "ok") {
    m->add("cadre_llm_input_tokens_total", ls,
           static_cast<double>(res->usage.input_tokens));
    m->add("cadre_llm_output_tokens_total", ls,
           static_cast<double>(res->usage.output_tokens));
    m->add("cadre_llm_cost_usd_total", ls, res->usage.cost_usd);
  }
}

void count(agent_self self, const char* name, metric_labels ls) {
  if (auto& m = self->state.opts->metrics)
    m->add(name, ls);
}

// Asks the model (or, when enabled, the response cache) and hands the reply
// to `ok`; `fail` gets the error. Counts the call either way.
void ask_model(agent_self self, const llm_request& req,
               std::function<void(llm_response, bool)> ok,
               std::function<void(caf::error&)> fail) {
  auto& st = self->state;
  auto& t = *st.active;
  json ctx{{"deadline_us", t.deadline_us},
           {"script", t.spec.script},
           {"execution", t.execution},
           {"agent_id", st.id},
           {"task", t.task}};
  auto on_error = [=](caf::error& err) {
    count_llm_call(self, req, nullptr, "error");
    fail(err);
  };
  // What a cache entry is compared on, in full: the request (streamed or
  // not alike) and the script a scripted model answers from.
  json cache_key = req;
  cache_key.erase("stream");
  cache_key["script"] = t.spec.script;
  auto ask_provider = [=](std::string cache_log) {
    auto& st = self->state;
    if (!st.worker)
      st.worker = self->spawn<caf::detached>(llm_worker_impl, st.opts,
                                             st.cancel_flag, st.bus);
    // caf::infinite: the provider bounds each call (the profile's timeout).
    self->request(st.worker, caf::infinite, run_atom_v, req, json_value{ctx})
      .then(
        [=](llm_response& res) {
          if (!cache_log.empty()) {
            // A one-event log per request hash, with the request itself so a
            // hit is checked in full; a lost race (conflict) is harmless.
            append_request c;
            c.events.push_back(
              event{cache_log, 1, now_us(), "llm_cached",
                    json_value{json{{"request", cache_key},
                                    {"response", json(res)}}}});
            self->request(self->state.store, local_deadline, append_atom_v,
                          std::move(c))
              .then([](uint64_t) {},
                    [=](caf::error& err) {
                      if (code_of(err) == errc::conflict)
                        return;
                      count(self, "cadre_llm_cache_write_failures_total",
                            {{"agent", req.agent}});
                      log::warn("LLM cache entry not written",
                                {{"actor", "agent"},
                                 {"log", cache_log},
                                 {"reason", describe(err)}});
                    });
          }
          count_llm_call(self, req, &res, "ok");
          ok(std::move(res), false);
        },
        on_error);
  };
  if (!st.opts->cache) {
    ask_provider({});
    return;
  }
  auto cache_log = "llmcache:" + hash_hex(dump_json(cache_key));
  self->request(st.store, local_deadline, read_atom_v, cache_log, uint64_t{1},
                uint64_t{1})
    .then(
      [=](std::vector<event>& evs) {
        // The hash only finds the entry; the stored request must be this
        // one to the byte (an entry without it, from before, is a miss).
        if (!evs.empty()) {
          const auto& entry = evs.front().payload.get();
          if (entry.is_object() && entry.contains("request")
              && entry["request"] == cache_key && entry.contains("response"))
            if (auto res = from<llm_response>(entry["response"])) {
              count_llm_call(self, req, &*res, "cached");
              ok(std::move(*res), true);
              return;
            }
        }
        // A miss, or a hash collision: ask, and leave the entry alone.
        ask_provider(evs.empty() ? cache_log : std::string{});
      },
      [=](caf::error&) { ask_provider(cache_log); });
}

void call_llm(agent_self self, uint32_t call) {
  auto& st = self->state;
  if (!st.active || st.active->calls != call || !st.active->llm_pending)
    return;
  auto key = st.active->key;
  ask_model(
    self, st.active->request,
    [=](llm_response res, bool cached) {
      on_llm_reply(self, key, call, std::move(res), cached);
    },
    [=](caf::error& err) {
      auto& st = self->state;
      if (!st.active || st.active->key != key || st.active->calls != call
          || !st.active->llm_pending)
        return;
      auto code = err.category() == caf::atom("cadre") ? code_of(err)
                                                       : errc::unavailable;
      fail_turn(self, code,
                "LLM call " + std::to_string(call) + " failed: "
                  + (message_of(err).empty() ? describe(err)
                                             : message_of(err)));
      flush(self);
    });
}

// -- summary memory ---------------------------------------------------------------------

// Whether the turn should first fold old messages into the summary: more
// than `memory_window` unsummarized messages, and no try yet this turn.
bool needs_summary(const agent_state& st) {
  const auto& t = *st.active;
  return t.spec.memory_policy == "summary" && !t.summary_tried
         && st.history.size() > st.summarized
         && st.history.size() - st.summarized > t.spec.memory_window
         && st.history.size() - t.spec.memory_keep > st.summarized;
}

constexpr const char* summary_instruction
  = "Summarize the agent's conversation below for its later turns.";

llm_request build_summary_request(const agent_state& st, size_t to) {
  const auto& t = *st.active;
  llm_request r;
  r.profile = t.spec.provider;
  r.model = t.spec.model;
  r.agent = t.spec.name;
  r.turn = 0; // not a call of the turn: scripts match it by its text
  r.stream = false;
  r.max_tokens = t.spec.max_tokens;
  llm_message sys;
  sys.role = "system";
  sys.content = "You keep the memory of an AI agent. Write a summary that "
                "keeps facts, names, numbers, decisions and open questions, "
                "and drops pleasantries. Answer with the summary only.";
  r.messages.push_back(std::move(sys));
  std::string text = summary_instruction;
  if (!st.summary.empty())
    text += "\n\nSummary so far:\n" + st.summary;
  text += "\n\nConversation to add:";
  for (size_t i = st.summarized; i < to; ++i)
    text += "\n[" + st.history[i].role + "] " + st.history[i].content;
  llm_message user;
  user.role = "user";
  user.content = std::move(text);
  r.messages.push_back(std::move(user));
  return r;
}

void call_summary(agent_self self);

// The turn's first LLM call, after a summary when one is due.
void begin_calls(agent_self self) {
  auto& st = self->state;
  if (!needs_summary(st)) {
    request_llm(self);
    return;
  }
  auto to = st.history.size() - st.active->spec.memory_keep;
  auto req = build_summary_request(st, to);
  json j = req;
  emit(self, ev_type::summary_requested,
       json{{"turn", st.active->key},
            {"from", st.summarized},
            {"to", to},
            {"request", std::move(j)}});
  after(self, [=] { call_summary(self); });
}

void call_summary(agent_self self) {
  auto& st = self->state;
  if (!st.active || !st.active->summary_pending)
    return;
  auto key = st.active->key;
  auto to = st.active->summary_to;
  auto still_pending = [=] {
    auto& st = self->state;
    return st.active && st.active->key == key && st.active->summary_pending;
  };
  ask_model(
    self, st.active->summary_request,
    [=](llm_response res, bool cached) {
      if (!still_pending())
        return;
      json p{{"turn", key},
             {"from", self->state.summarized},
             {"to", to},
             {"summary", res.message.content},
             {"usage", res.usage}};
      if (cached)
        p["cached"] = true;
      emit(self, ev_type::summarized, std::move(p));
      request_llm(self);
      flush(self);
    },
    [=](caf::error& err) {
      if (!still_pending())
        return;
      // The turn goes on with the plain window; the next turn tries again.
      emit(self, ev_type::summary_failed,
           json{{"turn", key},
                {"to", to},
                {"message", message_of(err).empty() ? describe(err)
                                                    : message_of(err)}});
      request_llm(self);
      flush(self);
    });
}

// Asks the pools for the JSON Schemas of `names` not known yet, then runs
// `then`.
void load_tool_specs(agent_self self, std::vector<std::string> names,
                     std::function<void()> then) {
  auto& st = self->state;
  auto left = std::make_shared<size_t>(0);
  std::vector<std::pair<std::string, tool_pool_actor>> ask;
  for (const auto& n : names)
    if (!st.tool_specs.count(n) && st.tools)
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
          self->state.tool_specs[n] = std::move(spec);
          done();
        },
        [=](caf::error&) { done(); });
  }
}

void schedule_idle(agent_self self) {
  auto& st = self->state;
  if (st.active || !st.queue.empty() || !st.waiting.empty())
    return;
  self->delayed_send(self, st.opts->idle_timeout, timer_atom_v,
                     ++st.idle_generation);
}

// Continues the active turn from wherever the log left it.
void resume(agent_self self) {
  auto& st = self->state;
  auto& t = *st.active;
  if (t.summary_pending) {
    after(self, [=] { call_summary(self); });
  } else if (t.llm_pending) {
    // At-least-once: the one call in flight at the crash runs again.
    after(self, [=, call = t.calls] { call_llm(self, call); });
  } else if (!t.tool_calls.empty() && t.results.size() < t.tool_calls.size()
             && !t.messages.empty() && t.messages.back().role == "assistant") {
    std::vector<llm_tool_call> open;
    for (const auto& c : t.tool_calls)
      if (!t.results.count(c.id))
        open.push_back(c);
    after(self, [=] {
      for (const auto& c : open)
        dispatch_tool(self, c);
    });
  } else if (!t.messages.empty() && t.messages.back().role == "assistant") {
    final_answer(self, t.messages.back());
  } else {
    begin_calls(self);
  }
  flush(self);
}

void start_turn(agent_self self, agent_turn req) {
  auto& st = self->state;
  workflow::agent_spec spec;
  auto problems = workflow::parse_agent_spec(req.agent, req.spec.get(), spec);
  if (!problems.empty()) {
    auto& w = st.waiting[req.idempotency_key];
    for (auto& p : w)
      p.deliver(make_error(errc::invalid_config,
                           "agent " + req.agent + problems.front().pointer
                             + ": " + problems.front().message));
    st.waiting.erase(req.idempotency_key);
    next_turn(self);
    return;
  }
  emit(self, ev_type::turn_started,
       json{{"turn", req.idempotency_key},
            {"agent", req.agent},
            {"spec", req.spec.get()},
            {"execution", req.execution_id},
            {"task", req.task_id},
            {"attempt", req.attempt},
            {"input", req.input.get()}});
  st.active->deadline_us = req.deadline_us;
  llm_message user;
  user.role = "user";
  user.content = req.input->is_string() ? req.input->get<std::string>()
                                        : dump_json(*req.input);
  emit(self, ev_type::message,
       json{{"turn", req.idempotency_key}, {"message", user}});
  auto tools = st.active->spec.tools;
  load_tool_specs(self, tools, [=] {
    if (self->state.active)
      begin_calls(self);
    flush(self);
  });
}

void next_turn(agent_self self) {
  auto& st = self->state;
  if (!st.ready || st.active || st.in_flight)
    return;
  while (!st.queue.empty()) {
    auto req = std::move(st.queue.front());
    st.queue.pop_front();
    if (st.finished.count(req.idempotency_key)) {
      answer(self, req.idempotency_key);
      continue;
    }
    start_turn(self, std::move(req));
    return;
  }
  schedule_idle(self);
}

json memory_json(agent_self self) {
  auto& st = self->state;
  json msgs = st.history;
  json active = nullptr;
  if (st.active)
    active = json{{"turn", st.active->key},
                  {"messages", st.active->messages},
                  {"calls", st.active->calls}};
  return json{{"agent_id", st.id},
              {"log", st.log},
              {"seq", st.seq},
              {"messages", std::move(msgs)},
              {"summary", st.summary},
              {"summarized", st.summarized},
              {"turns", st.finished.size()},
              {"active", std::move(active)}};
}

caf::result<json_value> memory_reply(agent_self self) {
  if (self->state.seq == 0)
    return make_error(errc::not_found,
                      "agent " + self->state.id + " has no log");
  return json_value{memory_json(self)};
}

agent_actor::behavior_type agent_impl(agent_self self, std::string id,
                                      event_store_actor store,
                                      event_bus_actor bus,
                                      std::shared_ptr<const tool_directory> tools,
                                      std::shared_ptr<const agents_options> opts) {
  install_exception_handler(self);
  auto& st = self->state;
  st.id = id;
  st.log = "agent:" + id;
  st.store = std::move(store);
  st.bus = std::move(bus);
  st.tools = std::move(tools);
  st.opts = std::move(opts);
  self->set_down_handler(
    [=](caf::down_msg& dm) { on_pool_down(self, dm); });
  // Memory is the fold of the log; an unfinished turn resumes at once.
  self->request(st.store, local_deadline, read_atom_v, st.log, uint64_t{1},
                uint64_t{0})
    .then(
      [=](std::vector<event>& log) {
        auto& st = self->state;
        for (auto& ev : log)
          fold(st, ev);
        st.ready = true;
        for (auto& p : std::exchange(st.get_waiters, {})) {
          if (st.seq == 0)
            p.deliver(make_error(errc::not_found,
                                 "agent " + st.id + " has no log"));
          else
            p.deliver(json_value{memory_json(self)});
        }
        if (st.active) {
          auto tools = st.active->spec.tools;
          load_tool_specs(self, tools, [=] {
            if (self->state.active)
              resume(self);
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
      // One agent id runs one turn at a time; turns past the bound are
      // refused rather than queued without end (a task retries them).
      bool known = st.finished.count(key) > 0
                   || (st.active && st.active->key == key)
                   || st.waiting.count(key) > 0;
      if (!known && st.queue.size() >= st.opts->max_queued_turns) {
        log::warn("agent turn refused: queue full",
                  {{"actor", "agent"},
                   {"agent", req.agent},
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
      if (st.finished.count(key)) {
        answer(self, key);
        return promise;
      }
      if (st.active && st.active->key == key) {
        st.active->deadline_us = req.deadline_us;
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
    [=](timer_atom, uint64_t generation) {
      auto& st = self->state;
      if (generation == 0 || generation != st.idle_generation)
        return;
      if (!st.active && st.queue.empty() && st.waiting.empty()
          && !st.in_flight)
        self->quit();
    },
  };
}

// -- the agents actor -------------------------------------------------------------

struct live_agent {
  agent_actor handle;
  restart_intensity crashes;
};

struct agents_state {
  static inline const char* name = "cadre.agents";
  agents_state() = default;
  event_store_actor store;
  event_bus_actor bus;
  std::shared_ptr<const tool_directory> tools;
  std::shared_ptr<const agents_options> opts;
  std::unordered_map<std::string, live_agent> live;
  std::unordered_map<caf::actor_addr, std::string> by_addr;

  ~agents_state() {
    for (auto& [id, a] : live)
      if (a.handle)
        caf::anon_send_exit(a.handle, caf::exit_reason::user_shutdown);
  }
};

using agents_self = agents_actor::stateful_pointer<agents_state>;

live_agent& entry_of(agents_self self, const std::string& id) {
  auto& st = self->state;
  auto window = std::chrono::milliseconds{st.opts->restart_window_ms};
  return st.live
    .try_emplace(id, live_agent{agent_actor{}, restart_intensity{
                                           st.opts->max_restarts, window}})
    .first->second;
}

agent_actor agent_of(agents_self self, const std::string& id) {
  auto& st = self->state;
  auto& entry = entry_of(self, id);
  if (!entry.handle) {
    entry.handle = self->spawn(agent_impl, id, st.store, st.bus, st.tools,
                               st.opts);
    self->monitor(entry.handle);
    st.by_addr[entry.handle.address()] = id;
  }
  return entry.handle;
}

// A turn whose agent died is sent again to its successor, which resumes
// it from the log.
void route(agents_self self, std::string id, agent_turn turn,
           caf::typed_response_promise<task_result> promise, int tries) {
  auto& entry = entry_of(self, id);
  if (!entry.crashes.allows(self->clock().now())) {
    log::warn("agent keeps crashing; turn refused",
              {{"actor", "agents"}, {"agent", id},
               {"execution", turn.execution_id}, {"task", turn.task_id},
               {"restarts", entry.crashes.recent()}});
    promise.deliver(make_error(errc::unavailable,
                               "agent " + id + " keeps crashing; its turns "
                                               "wait in its log"));
    return;
  }
  auto handle = agent_of(self, id);
  // caf::infinite: a turn is bounded by its task's deadline and the
  // agent's max_iterations, each call inside it by its own timeout.
  self->request(handle, caf::infinite, run_atom_v, turn)
    .then([=](task_result& r) mutable { promise.deliver(std::move(r)); },
          [=](caf::error& err) mutable {
            if (err == caf::sec::request_receiver_down && tries > 0)
              route(self, id, turn, promise, tries - 1);
            else
              promise.deliver(std::move(err));
          });
}

agents_actor::behavior_type
agents_impl(agents_self self, event_store_actor store, event_bus_actor bus,
            std::shared_ptr<const tool_directory> tools,
            std::shared_ptr<const agents_options> opts) {
  auto& st = self->state;
  st.store = std::move(store);
  st.bus = std::move(bus);
  st.tools = std::move(tools);
  st.opts = std::move(opts);
  self->set_down_handler([=](const caf::down_msg& msg) {
    auto& st = self->state;
    auto i = st.by_addr.find(msg.source);
    if (i == st.by_addr.end())
      return;
    auto id = i->second;
    st.by_addr.erase(i);
    auto& entry = entry_of(self, id);
    entry.handle = nullptr;
    if (!msg.reason || msg.reason == caf::exit_reason::normal) {
      st.live.erase(id);
      return;
    }
    // Restarted lazily: the next turn (or the re-sent one) starts it, unless
    // the crashes are over the intensity; route refuses turns until they
    // have left the window.
    if (entry.crashes.record(self->clock().now()))
      log::info("agent restarted", {{"actor", "agents"}, {"agent", id},
                                    {"restarts", entry.crashes.recent()},
                                    {"reason", describe(msg.reason)}});
    else
      log::warn("agent keeps crashing; its turns are refused until the "
                "restart window has passed",
                {{"actor", "agents"}, {"agent", id},
                 {"restarts", entry.crashes.recent()},
                 {"window_ms", st.opts->restart_window_ms},
                 {"reason", describe(msg.reason)}});
    event ev;
    ev.time_us = now_us();
    ev.type = "supervisor_restart";
    ev.payload = json_value{json{{"supervisor", "agents"},
                                 {"child", "agent " + id},
                                 {"reason", describe(msg.reason)},
                                 {"restarts", entry.crashes.recent()},
                                 {"group", json::array({id})},
                                 {"delay_ms", 0}}};
    self->send(st.bus, publish_atom_v, std::vector<event>{std::move(ev)});
  });
  return {
    [=](run_atom, agent_turn& turn) -> caf::result<task_result> {
      auto& st = self->state;
      if (turn.spec.is_null()) {
        auto i = st.opts->agents.find(turn.agent);
        if (i == st.opts->agents.end())
          return make_error(errc::not_found,
                            "agent '" + turn.agent
                              + "' is not defined (in the workflow's "
                                "'agents:' or the node config's)");
        turn.spec = json_value{*i};
      }
      workflow::agent_spec spec;
      workflow::agent_check check;
      auto dir = st.tools;
      check.tool_exists = [dir](const std::string& n) {
        return dir && dir->has(n);
      };
      auto problems = workflow::parse_agent_spec(turn.agent, turn.spec.get(),
                                                 spec, check);
      if (!problems.empty()) {
        std::string msg = "agent " + turn.agent + ":";
        for (auto& p : problems)
          msg += " " + (p.pointer.empty() ? "/" : p.pointer) + ": "
                 + p.message + ";";
        msg.pop_back();
        return make_error(errc::invalid_config, msg);
      }
      auto id = workflow::agent_id_of(spec, turn.execution_id, turn.task_id);
      auto promise = self->make_response_promise<task_result>();
      route(self, id, std::move(turn), promise, 5);
      return promise;
    },
    [=](get_atom, const std::string& id) -> caf::result<json_value> {
      auto promise = self->make_response_promise<json_value>();
      self->request(agent_of(self, id), local_deadline, get_atom_v)
        .then([=](json_value& v) mutable { promise.deliver(v); },
              [=](caf::error& e) mutable { promise.deliver(e); });
      return promise;
    },
  };
}

} // namespace

agents_actor spawn_agents(caf::actor_system& sys, event_store_actor store,
                          event_bus_actor bus,
                          std::shared_ptr<const tool_directory> tools,
                          agents_options opts) {
  if (auto& m = opts.metrics) {
    m->declare("cadre_llm_calls_total",
               "LLM calls by agent, profile, model and outcome (ok, error, "
               "cached)");
    m->declare("cadre_llm_input_tokens_total",
               "Input (prompt) tokens the provider reported");
    m->declare("cadre_llm_output_tokens_total",
               "Output (completion) tokens the provider reported");
    m->declare("cadre_llm_cost_usd_total",
               "Cost in US dollars at the profile's prices");
    m->declare("cadre_agent_turns_total",
               "Agent turns finished, by agent and outcome");
    m->declare("cadre_agent_tool_calls_total",
               "Tool calls made by agents, by agent, tool and outcome");
  }
  return sys.spawn(agents_impl, std::move(store), std::move(bus),
                   std::move(tools),
                   std::make_shared<const agents_options>(std::move(opts)));
}

} // namespace cadre::actors
