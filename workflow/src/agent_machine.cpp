// The agent loop's fold and decisions (agent_machine.hpp). Every decision
// is recorded as an event before the actor acts on it (but calls of tools
// without side effects, which may go first: agent_action::early), so
// folding the log again gives the state the decisions were made in.

#include "cadre/workflow/agent_machine.hpp"

#include <algorithm>
#include <cstdint>
#include <functional>
#include <set>
#include <string_view>
#include <unordered_map>

#include "cadre/messages/json_text.hpp"
#include "cadre/messages/utf8.hpp"
#include "cadre/workflow/definition.hpp"

namespace cadre::workflow {

namespace ev = agent_events;

namespace {

template <class T>
std::optional<T> from(const json& j) {
  try {
    return j.get<T>();
  } catch (const std::exception&) {
    return std::nullopt;
  }
}

void put(json::object_t&) {
}

template <class V, class... Ts>
void put(json::object_t& o, const char* key, V&& value, Ts&&... rest) {
  o.emplace(key, std::forward<V>(value));
  put(o, std::forward<Ts>(rest)...);
}

// An event payload from keys and values, built in place as
// workflow::machine builds its: an initializer list of pairs makes each
// pair an array and copies it again.
template <class... Ts>
json payload(Ts&&... kvs) {
  json p(json::value_t::object);
  put(p.get_ref<json::object_t&>(), std::forward<Ts>(kvs)...);
  return p;
}

constexpr const char* summary_instruction
  = "Summarize the agent's conversation below for its later turns.";

} // namespace

json zero_agent_usage() {
  // Built once: every turn starts from it, and an initializer list costs
  // several times a copy.
  static const json zero{{"input_tokens", 0}, {"output_tokens", 0},
                         {"cost_usd", 0.0},   {"llm_calls", 0},
                         {"tool_calls", 0}};
  return zero;
}

void agent_usage::add(const llm_usage& u) {
  input_tokens += u.input_tokens;
  output_tokens += u.output_tokens;
  cost_usd += u.cost_usd;
  ++llm_calls;
}

json agent_usage::to_json() const {
  // A count never added to stays zero_agent_usage()'s integer 0; an added
  // one is unsigned, as the JSON arithmetic this replaces made them.
  auto count = [](uint64_t n, bool added) {
    return added ? json(n) : json(0);
  };
  bool called = llm_calls > 0;
  json j(json::value_t::object);
  auto& o = j.get_ref<json::object_t&>();
  o.emplace("input_tokens", count(input_tokens, called));
  o.emplace("output_tokens", count(output_tokens, called));
  o.emplace("cost_usd", cost_usd);
  o.emplace("llm_calls", count(llm_calls, called));
  o.emplace("tool_calls", count(tool_calls, tool_calls > 0));
  return j;
}

bool agent_usage::operator==(const agent_usage& o) const {
  return input_tokens == o.input_tokens && output_tokens == o.output_tokens
         && cost_usd == o.cost_usd && llm_calls == o.llm_calls
         && tool_calls == o.tool_calls;
}

uint64_t agent_spec_table::id_of(const json& payload) {
  if (!payload.is_object())
    return 0;
  auto id = payload.find("spec_id");
  if (id == payload.end() || !id->is_number_integer() || *id < 1)
    return 0;
  return id->get<uint64_t>();
}

void agent_spec_table::apply(const event& ev) {
  if (ev.type != agent_events::spec)
    return;
  const auto& p = ev.payload.get();
  if (auto id = id_of(p); id != 0 && p.contains("spec")) {
    specs[id] = p["spec"];
    last_id_ = std::max(last_id_, id);
    use(id);
  }
}

void agent_spec_table::use(uint64_t id) {
  if (specs.count(id) != 0)
    used_[id] = ++uses_;
}

void agent_spec_table::trim(size_t keep) {
  while (specs.size() > keep) {
    auto oldest = specs.begin();
    uint64_t when = UINT64_MAX;
    for (auto i = specs.begin(); i != specs.end(); ++i) {
      auto u = used_.find(i->first);
      auto w = u == used_.end() ? 0 : u->second;
      if (w < when) {
        when = w;
        oldest = i;
      }
    }
    used_.erase(oldest->first);
    specs.erase(oldest);
  }
}

const json* agent_spec_table::of(const json& started) const {
  if (!started.is_object())
    return nullptr;
  if (auto inline_spec = started.find("spec"); inline_spec != started.end())
    return &*inline_spec;
  auto i = specs.find(id_of(started));
  return i == specs.end() ? nullptr : &i->second;
}

uint64_t agent_spec_table::find(const json& doc) const {
  // Newest first: a log's turns mostly use the spec its last turn did.
  for (auto i = specs.rbegin(); i != specs.rend(); ++i)
    if (i->second == doc)
      return i->first;
  return 0;
}

// -- recorded requests -----------------------------------------------------------

namespace {

bool same_call(const llm_tool_call& a, const llm_tool_call& b) {
  return a.id == b.id && a.name == b.name && a.arguments == b.arguments
         && a.arguments_error == b.arguments_error;
}

bool same_message(const llm_message& a, const llm_message& b) {
  return a.role == b.role && a.content == b.content
         && a.tool_call_id == b.tool_call_id && a.name == b.name
         && a.is_error == b.is_error
         && std::equal(a.tool_calls.begin(), a.tool_calls.end(),
                       b.tool_calls.begin(), b.tool_calls.end(), same_call);
}

bool same_tools(const std::vector<llm_tool_spec>& a,
                const std::vector<llm_tool_spec>& b) {
  return std::equal(a.begin(), a.end(), b.begin(), b.end(),
                    [](const llm_tool_spec& x, const llm_tool_spec& y) {
                      return x.name == y.name
                             && x.description == y.description
                             && x.parameters == y.parameters;
                    });
}

template <class T>
void changed(json::object_t& o, const char* key, const T& now, const T& was) {
  if (now != was)
    o.emplace(key, now);
}

// What `req` changes of `prev`: its messages as pieces in order, each a
// range [from, to) of prev's messages or a message of its own, and each
// other field of llm_request that differs (read back by apply_delta).
json delta_of(const llm_request& prev, const llm_request& req) {
  const auto& was = prev.messages;
  json pieces(json::value_t::array);
  auto& out = pieces.get_ref<json::array_t&>();
  // A run [from, to) of prev's messages being kept; kept runs stay in
  // order, searched from where the last ended (the window slides, a call
  // appends).
  size_t from = 0;
  size_t to = 0;
  size_t floor = 0;
  bool run = false;
  for (const auto& m : req.messages) {
    if (run && to < was.size() && same_message(was[to], m)) {
      ++to;
      continue;
    }
    if (run) {
      out.push_back(json::array({from, to}));
      floor = to;
      run = false;
    }
    auto k = floor;
    while (k < was.size() && !same_message(was[k], m))
      ++k;
    if (k < was.size()) {
      from = k;
      to = k + 1;
      run = true;
    } else {
      out.push_back(m);
    }
  }
  if (run)
    out.push_back(json::array({from, to}));
  auto d = payload("messages", std::move(pieces));
  auto& o = d.get_ref<json::object_t&>();
  changed(o, "profile", req.profile, prev.profile);
  changed(o, "model", req.model, prev.model);
  if (!same_tools(req.tools, prev.tools))
    o.emplace("tools", req.tools);
  changed(o, "tool_choice", req.tool_choice, prev.tool_choice);
  changed(o, "temperature", req.temperature, prev.temperature);
  changed(o, "max_tokens", req.max_tokens, prev.max_tokens);
  changed(o, "stream", req.stream, prev.stream);
  changed(o, "agent", req.agent, prev.agent);
  changed(o, "turn", req.turn, prev.turn);
  return d;
}

template <class T>
bool take(const json& d, const char* key, T& out) {
  auto i = d.find(key);
  if (i == d.end())
    return true;
  auto v = from<T>(*i);
  if (!v)
    return false;
  out = std::move(*v);
  return true;
}

// The request `d` (a delta_of) makes of `prev`; nullopt when it does not
// read.
std::optional<llm_request> apply_delta(const llm_request& prev,
                                       const json& d) {
  if (!d.is_object())
    return std::nullopt;
  auto pieces = d.find("messages");
  if (pieces == d.end() || !pieces->is_array())
    return std::nullopt;
  std::vector<llm_message> messages;
  for (const auto& piece : *pieces) {
    if (piece.is_object()) {
      auto m = from<llm_message>(piece);
      if (!m)
        return std::nullopt;
      messages.push_back(std::move(*m));
      continue;
    }
    if (!piece.is_array() || piece.size() != 2
        || !piece[0].is_number_unsigned() || !piece[1].is_number_unsigned())
      return std::nullopt;
    auto a = piece[0].get<size_t>();
    auto b = piece[1].get<size_t>();
    if (a > b || b > prev.messages.size())
      return std::nullopt;
    messages.insert(messages.end(),
                    prev.messages.begin() + static_cast<ptrdiff_t>(a),
                    prev.messages.begin() + static_cast<ptrdiff_t>(b));
  }
  // Read back only (recovery, forks), not on a turn's path.
  auto r = prev;
  r.messages = std::move(messages);
  if (!take(d, "profile", r.profile) || !take(d, "model", r.model)
      || !take(d, "tools", r.tools) || !take(d, "tool_choice", r.tool_choice)
      || !take(d, "temperature", r.temperature)
      || !take(d, "max_tokens", r.max_tokens) || !take(d, "stream", r.stream)
      || !take(d, "agent", r.agent) || !take(d, "turn", r.turn))
    return std::nullopt;
  return r;
}

} // namespace

const llm_request* agent_request_log::apply(const event& e) {
  if (e.type != ev::llm_requested)
    return nullptr;
  const auto& p = e.payload.get();
  std::optional<llm_request> r;
  if (p.is_object()) {
    if (auto whole = p.find("request"); whole != p.end())
      r = from<llm_request>(*whole);
    else if (auto d = p.find("delta"); d != p.end() && last_)
      r = apply_delta(*last_, *d);
  }
  last_ = std::move(r);
  return last();
}

json agent_request_log::record(const std::string& turn, uint32_t call,
                               llm_request req) {
  auto p = payload("turn", turn, "call", call);
  auto& o = p.get_ref<json::object_t&>();
  if (last_) {
    o.emplace("delta", delta_of(*last_, req));
    // Its messages' room serves the request after this one.
    spare_ = std::move(last_->messages);
    spare_.clear();
  } else {
    o.emplace("request", req);
  }
  last_ = std::move(req);
  return p;
}

std::vector<llm_message> agent_request_log::storage() {
  return std::move(spare_);
}

json agent_request_log::record_appended(const std::string& turn,
                                        uint32_t call,
                                        const llm_message* first,
                                        const llm_message* last) {
  // What delta_of gives for this request: one run of all the last
  // request's messages, then the new ones, and the changed call number.
  auto& r = *last_;
  json pieces(json::value_t::array);
  auto& out = pieces.get_ref<json::array_t&>();
  out.reserve(1 + static_cast<size_t>(last - first));
  if (!r.messages.empty())
    out.push_back(json::array({size_t{0}, r.messages.size()}));
  for (auto m = first; m != last; ++m)
    out.push_back(*m);
  auto d = payload("messages", std::move(pieces));
  changed(d.get_ref<json::object_t&>(), "turn", call, r.turn);
  r.messages.insert(r.messages.end(), first, last);
  r.turn = call;
  auto p = payload("turn", turn, "call", call);
  p.get_ref<json::object_t&>().emplace("delta", std::move(d));
  return p;
}

const llm_request* agent_request_log::last() const {
  return last_ ? &*last_ : nullptr;
}

agent_machine::agent_machine(std::string id, size_t max_finished_turns)
  : id_(std::move(id)), log_(agent_log_of(id_)),
    max_finished_(std::max<size_t>(max_finished_turns, 1)) {
}

// -- fold ---------------------------------------------------------------------------

namespace {

enum class event_kind {
  other,
  spec,
  turn_started,
  message,
  llm_requested,
  llm_responded,
  summary_requested,
  summarized,
  summary_failed,
  tool_called,
  tool_result,
  turn_completed,
  turn_failed,
};

// One lookup an event instead of comparing its type with each in turn.
event_kind kind_of(const std::string& type) {
  static const std::unordered_map<std::string_view, event_kind> kinds{
    {ev::spec, event_kind::spec},
    {ev::turn_started, event_kind::turn_started},
    {ev::message, event_kind::message},
    {ev::llm_requested, event_kind::llm_requested},
    {ev::llm_responded, event_kind::llm_responded},
    {ev::summary_requested, event_kind::summary_requested},
    {ev::summarized, event_kind::summarized},
    {ev::summary_failed, event_kind::summary_failed},
    {ev::tool_called, event_kind::tool_called},
    {ev::tool_result, event_kind::tool_result},
    {ev::turn_completed, event_kind::turn_completed},
    {ev::turn_failed, event_kind::turn_failed},
  };
  auto i = kinds.find(type);
  return i == kinds.end() ? event_kind::other : i->second;
}

} // namespace

void agent_machine::apply(const event& e) {
  fold(e, known{});
}

void agent_machine::fold(const event& e, const known& k) {
  seq_ = e.seq;
  auto kind = kind_of(e.type);
  // Every request of the log, whichever turn: the next is recorded
  // relative to it.
  if (kind == event_kind::llm_requested && !k.recorded) {
    requests_.apply(e);
    sent_.reset();
  }
  const auto& p = e.payload.get();
  if (!p.is_object())
    return;
  auto turn = p.value("turn", std::string{});
  if (kind == event_kind::spec) {
    specs_.apply(e);
    return;
  }
  if (kind == event_kind::turn_started) {
    agent_active_turn t;
    t.key = turn;
    t.execution = p.value("execution", std::string{});
    t.task = p.value("task", std::string{});
    t.attempt = p.value("attempt", uint32_t{1});
    t.fork_of = p.value("fork_of", std::string{});
    t.replies = p.value("replies", std::string{});
    specs_.use(agent_spec_table::id_of(p));
    // Checked when the turn started; the log keeps what ran.
    if (k.spec) {
      t.spec = std::move(*k.spec);
    } else {
      const json* doc = specs_.of(p);
      (void) parse_agent_spec(p.value("agent", std::string{}),
                              doc ? *doc : json::object(), t.spec);
    }
    widest_window_ = std::max<size_t>(widest_window_, t.spec.memory_window);
    active_ = std::move(t);
    sent_.reset();
    return;
  }
  if (!active_ || active_->key != turn)
    return;
  auto& t = *active_;
  if (kind == event_kind::message) {
    if (k.message)
      t.messages.push_back(*k.message);
    else if (auto m = from<llm_message>(p.value("message", json::object())))
      t.messages.push_back(std::move(*m));
    if (p.value("repair", false))
      t.repaired = true;
  } else if (kind == event_kind::llm_requested) {
    t.calls = p.value("call", t.calls + 1);
    t.llm_pending = true;
  } else if (kind == event_kind::llm_responded) {
    t.llm_pending = false;
    std::optional<llm_response> read;
    const llm_response* r = k.response;
    if (!r) {
      read = from<llm_response>(p.value("response", json::object()));
      if (!read)
        return;
      r = &*read;
    }
    t.messages.push_back(r->message);
    t.tool_calls = r->message.tool_calls;
    t.results.clear();
    t.usage.add(r->usage);
  } else if (kind == event_kind::summary_requested) {
    t.summary_pending = true;
    t.summary_tried = true;
    t.summary_to = p.value("to", size_t{0});
    if (auto r = from<llm_request>(p.value("request", json::object())))
      t.summary_request = std::move(*r);
  } else if (kind == event_kind::summarized) {
    t.summary_pending = false;
    summary_ = p.value("summary", std::string{});
    summarized_
      = std::min(p.value("to", size_t{0}), earlier_ + history_.size());
    sent_.reset();
    if (auto u = from<llm_usage>(p.value("usage", json::object())))
      t.usage.add(*u);
  } else if (kind == event_kind::summary_failed) {
    t.summary_pending = false;
  } else if (kind == event_kind::tool_called) {
    ++t.usage.tool_calls;
  } else if (kind == event_kind::tool_result) {
    llm_message m;
    m.role = "tool";
    m.tool_call_id = p.value("id", std::string{});
    m.name = p.value("name", std::string{});
    if (auto err = p.find("error"); err != p.end()) {
      m.is_error = true;
      // The providers mark it as an error in their own way.
      m.content = err->get<std::string>();
    } else {
      m.content = dump_json(p.value("output", json{}));
    }
    t.results[m.tool_call_id] = m;
    if (t.results.size() == t.tool_calls.size())
      // In call order, whatever order they finished in.
      for (const auto& c : t.tool_calls)
        if (auto i = t.results.find(c.id); i != t.results.end())
          t.messages.push_back(i->second);
  } else if (kind == event_kind::turn_completed
             || kind == event_kind::turn_failed) {
    agent_finished_turn f;
    f.ok = kind == event_kind::turn_completed;
    f.output = p.value("output", json{});
    f.usage = p.value("usage", json{});
    if (!f.ok) {
      if (!from_string(p.value("code", std::string{"internal"}), f.code))
        f.code = errc::internal;
      f.message = p.value("message", std::string{});
    } else {
      // Memory keeps each turn's prompt and final answer.
      auto before = history_.size();
      for (const auto& m : t.messages)
        if (m.role == "user") {
          history_.push_back(m);
          break;
        }
      if (!t.messages.empty() && t.messages.back().role == "assistant") {
        llm_message a;
        a.role = "assistant";
        a.content = t.messages.back().content;
        history_.push_back(std::move(a));
      }
      if (history_.size() > before)
        held_turns_.push_back(history_.size() - before);
      forget_history(t.spec);
    }
    remember(turn, std::move(f));
    active_.reset();
    sent_.reset();
  }
}

void agent_machine::emit(const char* type, json payload, int64_t now_us,
                         agent_step& out) {
  emit(type, std::move(payload), now_us, out, known{});
}

void agent_machine::emit(const char* type, json payload, int64_t now_us,
                         agent_step& out, const known& k) {
  event e{log_, seq_ + 1, now_us, type, json_value{std::move(payload)}};
  fold(e, k);
  out.events.push_back(std::move(e));
}

// -- decisions ------------------------------------------------------------------------

expected<agent_step> agent_machine::start(const agent_turn& req,
                                          int64_t now_us) {
  agent_spec spec;
  auto problems = parse_agent_spec(req.agent, req.spec.get(), spec);
  if (!problems.empty())
    return make_error(errc::invalid_config,
                      "agent " + req.agent + problems.front().pointer + ": "
                        + problems.front().message);
  agent_step out;
  // The spec goes into the log once, the turns name it: a spec is large
  // and the same for most turns.
  auto spec_id = specs_.find(req.spec.get());
  if (spec_id == 0) {
    // Bounded live only: a fold of the log keeps every spec it reads, so
    // an older turn's spec_id always resolves.
    specs_.trim(max_held_specs - 1);
    spec_id = specs_.next_id();
    emit(ev::spec,
         json{{"spec_id", spec_id}, {"agent", req.agent},
              {"spec", req.spec.get()}},
         now_us, out);
  }
  json started{{"turn", req.idempotency_key},
               {"agent", req.agent},
               {"spec_id", spec_id},
               {"execution", req.execution_id},
               {"task", req.task_id},
               {"attempt", req.attempt},
               {"input", req.input.get()}};
  // Recorded so that a turn resumed after a restart still reuses them.
  if (!req.fork_of.empty())
    started["fork_of"] = req.fork_of;
  if (!req.replies.empty())
    started["replies"] = req.replies;
  known k;
  k.spec = &spec;
  emit(ev::turn_started, std::move(started), now_us, out, k);
  active_->deadline_us = req.deadline_us;
  llm_message user;
  user.role = "user";
  user.content = req.input->is_string() ? req.input->get<std::string>()
                                        : dump_json(*req.input);
  known km;
  km.message = &user;
  emit(ev::message, payload("turn", req.idempotency_key, "message", user),
       now_us, out, km);
  return out;
}

llm_request agent_machine::model_request(
  std::vector<llm_message> storage) const {
  const auto& t = *active_;
  llm_request r;
  storage.clear();
  r.messages = std::move(storage);
  r.profile = t.spec.provider;
  r.model = t.spec.model;
  bool summarizing = t.spec.memory_policy == "summary";
  // One system message: several are not portable across providers.
  auto system = t.spec.system;
  if (summarizing && !summary_.empty())
    system += (system.empty() ? "" : "\n\n")
              + std::string{"Summary of the earlier conversation:\n"}
              + summary_;
  // The newest `memory_window` messages, none of them already summarized
  // (summarized_ counts the earlier_ messages no longer held too).
  auto window = std::min<size_t>(t.spec.memory_window, history_.size());
  auto first = history_.size() - window;
  if (summarizing && summarized_ > earlier_)
    first = std::max(first, std::min(summarized_ - earlier_, history_.size()));
  // With room for what the turn's later calls append (record_appended): a
  // reply and its tools' results, without moving the window again.
  r.messages.reserve(1 + (history_.size() - first) + t.messages.size() + 4);
  if (!system.empty()) {
    llm_message sys;
    sys.role = "system";
    sys.content = std::move(system);
    r.messages.push_back(std::move(sys));
  }
  r.messages.insert(r.messages.end(),
                    history_.begin() + static_cast<ptrdiff_t>(first),
                    history_.end());
  r.messages.insert(r.messages.end(), t.messages.begin(), t.messages.end());
  for (const auto& name : t.spec.tools)
    if (auto i = tool_specs_.find(name); i != tool_specs_.end())
      r.tools.push_back(i->second);
  r.temperature = t.spec.temperature;
  r.max_tokens = t.spec.max_tokens;
  r.stream = t.spec.stream;
  r.agent = t.spec.name;
  r.turn = t.calls + 1;
  return r;
}

void agent_machine::request_model(int64_t now_us, agent_step& out) {
  const auto& t = *active_;
  auto call = t.calls + 1;
  agent_action a;
  a.kind = agent_action::call_model;
  a.turn = t.key;
  a.call = call;
  // The log's last request is the one the call asks: no copy of it here.
  // A later call of the turn appends to it what the turn added since.
  json p;
  if (sent_ && requests_.last() && *sent_ <= t.messages.size())
    p = requests_.record_appended(t.key, call, t.messages.data() + *sent_,
                                  t.messages.data() + t.messages.size());
  else
    p = requests_.record(t.key, call, model_request(requests_.storage()));
  sent_ = t.messages.size();
  known k;
  k.recorded = true;
  emit(ev::llm_requested, std::move(p), now_us, out, k);
  out.actions.push_back(std::move(a));
}

// Whether the turn should first fold old messages into the summary: more
// than `memory_window` unsummarized messages, and no try yet this turn.
bool agent_machine::needs_summary() const {
  const auto& t = *active_;
  auto total = earlier_ + history_.size();
  return t.spec.memory_policy == "summary" && !t.summary_tried
         && total > summarized_ && total - summarized_ > t.spec.memory_window
         && total - t.spec.memory_keep > std::max(summarized_, earlier_);
}

// Lets go of the oldest turns' messages no request can use any more:
// requests send at most the widest window of the log's turns, and under
// policy summary a summary folds the messages since the last one (a
// summary that keeps failing folds at most twice the window and a turn).
// Whole turns go, and the last memory_view_turns stay for the view.
void agent_machine::forget_history(const agent_spec& spec) {
  size_t need = widest_window_;
  if (spec.memory_policy == "summary") {
    auto total = earlier_ + history_.size();
    auto unsummarized = total - std::min(summarized_, total);
    need = std::max(need, std::min(unsummarized, 2 * widest_window_ + 2));
  }
  size_t drop = 0;
  while (held_turns_.size() > memory_view_turns
         && history_.size() - drop - held_turns_.front() >= need) {
    drop += held_turns_.front();
    held_turns_.pop_front();
    ++earlier_turns_;
  }
  if (drop == 0)
    return;
  history_.erase(history_.begin(),
                 history_.begin() + static_cast<ptrdiff_t>(drop));
  earlier_ += drop;
}

llm_request agent_machine::summary_request(size_t to) const {
  const auto& t = *active_;
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
  if (!summary_.empty())
    text += "\n\nSummary so far:\n" + summary_;
  text += "\n\nConversation to add:";
  // Messages no longer held are left out, as the window leaves them out.
  for (size_t i = std::max(summarized_, earlier_); i < to; ++i) {
    const auto& m = history_[i - earlier_];
    text += "\n[" + m.role + "] " + m.content;
  }
  llm_message user;
  user.role = "user";
  user.content = std::move(text);
  r.messages.push_back(std::move(user));
  return r;
}

agent_step agent_machine::begin(int64_t now_us) {
  agent_step out;
  if (!active_)
    return out;
  if (!needs_summary()) {
    request_model(now_us, out);
    return out;
  }
  auto to = earlier_ + history_.size() - active_->spec.memory_keep;
  auto req = summary_request(to);
  json j = req;
  emit(ev::summary_requested,
       json{{"turn", active_->key},
            {"from", std::max(summarized_, earlier_)},
            {"to", to},
            {"request", std::move(j)}},
       now_us, out);
  agent_action a;
  a.kind = agent_action::call_summary;
  a.turn = active_->key;
  a.request = std::move(req);
  out.actions.push_back(std::move(a));
  return out;
}

agent_step agent_machine::resume(int64_t now_us) {
  agent_step out;
  if (!active_)
    return out;
  auto& t = *active_;
  bool replied = !t.messages.empty() && t.messages.back().role == "assistant";
  if (t.summary_pending) {
    agent_action a;
    a.kind = agent_action::call_summary;
    a.turn = t.key;
    a.request = t.summary_request;
    out.actions.push_back(std::move(a));
  } else if (t.llm_pending && !requests_.last()) {
    fail(errc::invalid_input,
         "the recorded request of LLM call " + std::to_string(t.calls)
           + " in " + log_ + " does not read; the call cannot run again",
         now_us, out);
  } else if (t.llm_pending) {
    // At-least-once: the one call in flight at the crash runs again.
    agent_action a;
    a.kind = agent_action::call_model;
    a.turn = t.key;
    a.call = t.calls;
    out.actions.push_back(std::move(a));
  } else if (!t.tool_calls.empty() && t.results.size() < t.tool_calls.size()
             && replied) {
    agent_action a;
    a.kind = agent_action::call_tools;
    a.turn = t.key;
    for (const auto& c : t.tool_calls)
      if (!t.results.count(c.id))
        a.tools.push_back(c);
    out.actions.push_back(std::move(a));
  } else if (replied) {
    auto last = t.messages.back();
    final_answer(last, now_us, out);
  } else {
    return begin(now_us);
  }
  return out;
}

void agent_machine::finish(bool ok, json output, errc code,
                           std::string message, int64_t now_us,
                           agent_step& out) {
  // Folding the end closes the turn: what the action needs is read first.
  auto key = active_->key;
  auto agent = active_->spec.name;
  auto p = payload("turn", key, "usage", active_->usage.to_json());
  if (ok) {
    p["output"] = std::move(output);
    emit(ev::turn_completed, std::move(p), now_us, out);
  } else {
    p["code"] = to_string(code);
    p["message"] = std::move(message);
    emit(ev::turn_failed, std::move(p), now_us, out);
  }
  agent_action a;
  a.kind = agent_action::answer;
  a.turn = key;
  a.ok = ok;
  a.agent = std::move(agent);
  out.actions.push_back(std::move(a));
}

void agent_machine::fail(errc code, const std::string& message,
                         int64_t now_us, agent_step& out) {
  const auto& t = *active_;
  finish(false, nullptr, code,
         "agent " + t.spec.name + " (task " + t.task + "): " + message,
         now_us, out);
}

json answer_json(const std::string& text) {
  auto whole = try_parse_json(text);
  if (!whole.is_discarded())
    return whole;
  // A linear scan, no regex: the text is the model's.
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

void agent_machine::final_answer(const llm_message& msg, int64_t now_us,
                                 agent_step& out) {
  auto& t = *active_;
  if (t.spec.output_schema.is_null()) {
    finish(true, msg.content, errc::ok, {}, now_us, out);
    return;
  }
  std::string problem;
  auto value = answer_json(msg.content);
  if (value.is_discarded()) {
    problem = "the answer is not JSON";
  } else if (auto ok = check_schema(t.spec.output_schema, value, "answer");
             !ok) {
    problem = message_of(ok.error());
  } else {
    finish(true, std::move(value), errc::ok, {}, now_us, out);
    return;
  }
  if (t.repaired) {
    fail(errc::invalid_input,
         "the answer does not match output_schema after a repair turn: "
           + problem + "; the answer was: '" + utf8_excerpt(msg.content, 300)
           + "'",
         now_us, out);
    return;
  }
  llm_message repair;
  repair.role = "user";
  repair.content = "Your answer does not match the required JSON Schema ("
                   + problem
                   + "). Answer again with only a JSON value that matches "
                     "this schema: "
                   + dump_json(t.spec.output_schema);
  known k;
  k.message = &repair;
  emit(ev::message,
       payload("turn", t.key, "message", repair, "repair", true), now_us,
       out, k);
  request_model(now_us, out);
}

bool agent_machine::current(const std::string& turn) const {
  return active_ && active_->key == turn;
}

agent_step agent_machine::model_replied(const std::string& turn,
                                        uint32_t call, llm_response res,
                                        bool cached, int64_t now_us,
                                        bool reused) {
  agent_step out;
  if (!current(turn) || !active_->llm_pending || active_->calls != call)
    return out;
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
  auto p = payload("turn", turn, "call", call, "response", res);
  if (cached)
    p["cached"] = true;
  if (reused)
    p["reused"] = true;
  known k;
  k.response = &res;
  emit(ev::llm_responded, std::move(p), now_us, out, k);
  auto& t = *active_;
  if (res.message.tool_calls.empty()) {
    final_answer(res.message, now_us, out);
  } else if (t.calls >= t.spec.max_iterations) {
    fail(errc::tool_failed,
         "no final answer after max_iterations ("
           + std::to_string(t.spec.max_iterations)
           + ") LLM calls; the model still calls tools",
         now_us, out);
  } else {
    // Every call is recorded in this step, before any result: they run in
    // parallel. Calls of tools without side effects may go before the
    // step is on disk; the others wait for their tool_called to be.
    agent_action early;
    early.kind = agent_action::call_tools;
    early.turn = turn;
    early.early = true;
    agent_action durable = early;
    durable.early = false;
    for (const auto& c : res.message.tool_calls) {
      emit(ev::tool_called,
           payload("turn", turn, "call", call, "id", c.id, "name", c.name,
                   "arguments", c.arguments.get()),
           now_us, out);
      (pure_tools_.count(c.name) > 0 ? early : durable).tools.push_back(c);
    }
    for (auto* a : {&early, &durable})
      if (!a->tools.empty())
        out.actions.push_back(std::move(*a));
  }
  return out;
}

agent_step agent_machine::model_failed(const std::string& turn, uint32_t call,
                                       const caf::error& err,
                                       int64_t now_us) {
  agent_step out;
  if (!current(turn) || active_->calls != call || !active_->llm_pending)
    return out;
  auto code = err.category() == caf::atom("cadre") ? code_of(err)
                                                   : errc::unavailable;
  fail(code,
       "LLM call " + std::to_string(call) + " failed: "
         + (message_of(err).empty() ? describe(err) : message_of(err)),
       now_us, out);
  return out;
}

agent_step agent_machine::tool_done(const std::string& turn,
                                    const llm_tool_call& call,
                                    const expected<json>& result,
                                    int64_t now_us) {
  agent_step out;
  if (!current(turn) || active_->results.count(call.id) > 0)
    return out;
  auto& t = *active_;
  if (std::none_of(t.tool_calls.begin(), t.tool_calls.end(),
                   [&](const llm_tool_call& c) { return c.id == call.id; }))
    return out;
  auto p = payload("turn", turn, "id", call.id, "name", call.name);
  if (result)
    p["output"] = *result;
  else
    p["error"] = message_of(result.error()).empty()
                   ? describe(result.error())
                   : message_of(result.error());
  emit(ev::tool_result, std::move(p), now_us, out);
  if (t.results.size() == t.tool_calls.size())
    request_model(now_us, out);
  return out;
}

agent_step agent_machine::summary_replied(const std::string& turn,
                                          const llm_response& res,
                                          bool cached, int64_t now_us) {
  agent_step out;
  if (!current(turn) || !active_->summary_pending)
    return out;
  json p{{"turn", turn},
         {"from", summarized_},
         {"to", active_->summary_to},
         {"summary", res.message.content},
         {"usage", res.usage}};
  if (cached)
    p["cached"] = true;
  emit(ev::summarized, std::move(p), now_us, out);
  request_model(now_us, out);
  return out;
}

agent_step agent_machine::summary_failed(const std::string& turn,
                                         const std::string& message,
                                         int64_t now_us) {
  agent_step out;
  if (!current(turn) || !active_->summary_pending)
    return out;
  // The turn goes on with the plain window; the next turn tries again.
  emit(ev::summary_failed,
       json{{"turn", turn}, {"to", active_->summary_to}, {"message", message}},
       now_us, out);
  request_model(now_us, out);
  return out;
}

void agent_machine::set_deadline(const std::string& turn,
                                 int64_t deadline_us) {
  if (current(turn))
    active_->deadline_us = deadline_us;
}

void agent_machine::know_tool(llm_tool_spec spec, bool side_effects) {
  sent_.reset();
  auto name = spec.name;
  tool_specs_[name] = std::move(spec);
  if (side_effects)
    pure_tools_.erase(name);
  else
    pure_tools_.insert(name);
}

bool agent_machine::knows_tool(const std::string& name) const {
  return tool_specs_.count(name) > 0;
}

const std::string& agent_machine::id() const {
  return id_;
}

const std::string& agent_machine::log() const {
  return log_;
}

uint64_t agent_machine::last_seq() const {
  return seq_;
}

const agent_active_turn* agent_machine::active() const {
  return active_ ? &*active_ : nullptr;
}

const llm_request* agent_machine::last_request() const {
  return requests_.last();
}

const agent_finished_turn*
agent_machine::finished(const std::string& turn) const {
  auto i = finished_.find(turn);
  return i == finished_.end() ? nullptr : &i->second;
}

namespace {

// In memory only and recomputed by every fold: std::hash need not be
// stable across builds.
uint64_t key_hash(const std::string& turn) {
  return static_cast<uint64_t>(std::hash<std::string>{}(turn));
}

} // namespace

void agent_machine::remember(const std::string& turn, agent_finished_turn f) {
  ++finished_turns_;
  auto [i, fresh] = finished_.insert_or_assign(turn, std::move(f));
  (void) i;
  if (fresh)
    finished_order_.push_back(turn);
  while (finished_.size() > max_finished_) {
    auto old = std::move(finished_order_.front());
    finished_order_.pop_front();
    finished_.erase(old);
    auto h = key_hash(old);
    if (forgotten_.size() < max_finished_ * forgotten_turns_factor) {
      forgotten_.push_back(h);
    } else {
      forgotten_[forgotten_next_] = h;
      forgotten_next_ = (forgotten_next_ + 1) % forgotten_.size();
    }
  }
}

bool agent_machine::forgotten(const std::string& turn) const {
  if (forgotten_.empty() || finished_.count(turn) > 0)
    return false;
  // A linear scan of at most 16k words, once per turn asked for: cheap
  // next to the turn, and no second table to keep.
  auto h = key_hash(turn);
  return std::find(forgotten_.begin(), forgotten_.end(), h)
         != forgotten_.end();
}

uint64_t agent_machine::finished_turns() const {
  return finished_turns_;
}

const std::vector<llm_message>& agent_machine::history() const {
  return history_;
}

size_t agent_machine::earlier_messages() const {
  return earlier_;
}

json agent_machine::view() const {
  json msgs = history_;
  json active = nullptr;
  if (active_)
    active = json{{"turn", active_->key},
                  {"messages", active_->messages},
                  {"calls", active_->calls}};
  return json{{"agent_id", id_},
              {"log", log_},
              {"seq", seq_},
              {"messages", std::move(msgs)},
              {"summary", summary_},
              {"summarized", summarized_},
              {"turns", finished_turns_},
              {"earlier_turns", earlier_turns_},
              {"earlier_messages", earlier_},
              {"active", std::move(active)}};
}

std::optional<caf::error> refuse_tool_call(const agent_spec& spec,
                                           const llm_tool_call& call,
                                           bool routed, bool lost) {
  bool allowed = std::find(spec.tools.begin(), spec.tools.end(), call.name)
                 != spec.tools.end();
  if (allowed && !routed && lost)
    return make_error(errc::unavailable,
                      "tool '" + call.name
                        + "': every node offering it was lost during this "
                          "call");
  if (!allowed || !routed)
    return make_error(errc::tool_not_found,
                      "tool '" + call.name
                        + "' is not one of this agent's tools");
  // Small models often send broken arguments: the model reads why and
  // tries again, on an LLM call that counts against max_iterations.
  if (!call.arguments_error.empty())
    return make_error(errc::invalid_input,
                      call.arguments_error
                        + "; call the tool again with a JSON object that "
                          "matches its input schema");
  if (!call.arguments->is_object())
    return make_error(errc::invalid_input,
                      "tool " + call.name
                        + ": arguments must be a JSON object");
  return std::nullopt;
}

} // namespace cadre::workflow
