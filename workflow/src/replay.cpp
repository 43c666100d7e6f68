#include "cadre/workflow/replay.hpp"

#include "cadre/messages/json_text.hpp"
#include "cadre/workflow/agent_machine.hpp"
#include "cadre/workflow/agent_spec.hpp"
#include "document.hpp"

#include <algorithm>
#include <charconv>
#include <deque>
#include <functional>
#include <initializer_list>
#include <string_view>
#include <utility>

namespace cadre::workflow {

namespace {

// A string_view key: no strlen per comparison inside the object's lookup.
const json& field(const json& obj, std::string_view key) {
  static const json null;
  if (!obj.is_object())
    return null;
  auto i = obj.find(key);
  return i == obj.end() ? null : *i;
}

std::string text(const json& obj, std::string_view key) {
  const auto& v = field(obj, key);
  return v.is_string() ? v.get<std::string>() : std::string{};
}

// "task" or "task[item]" of an event's payload (one string built in place:
// a replay asks it of every recorded result).
std::string key_of(const json& payload) {
  auto task = text(payload, "task");
  const auto& item = field(payload, "item");
  if (item.is_number_integer()) {
    char digits[24];
    auto end = std::to_chars(digits, digits + sizeof digits,
                             item.get<int64_t>()).ptr;
    task.reserve(task.size() + static_cast<size_t>(end - digits) + 2);
    task.append(1, '[').append(digits, end).append(1, ']');
  }
  return task;
}

caf::error error_from(const json& payload) {
  errc code = errc::internal;
  if (!from_string(text(payload, "code"), code))
    code = errc::internal;
  return make_error(code, text(payload, "message"));
}

double draw_of(const json& payload) {
  const auto& d = field(payload, "draw");
  return d.is_number() ? d.get<double>() : 0.0;
}

// Whether payloads x and y are equal but for the keys `ignored` (sorted),
// without copying either: a submission holds the whole definition and input.
bool same_but(const json& x, const json& y,
              std::initializer_list<std::string_view> ignored) {
  if (!x.is_object() || !y.is_object())
    return x == y;
  auto skip = [&ignored](const std::string& key) {
    return std::binary_search(ignored.begin(), ignored.end(),
                              std::string_view{key});
  };
  // Both objects keep their keys sorted: one walk over the two.
  const auto& a = x.get_ref<const json::object_t&>();
  const auto& b = y.get_ref<const json::object_t&>();
  auto i = a.begin();
  auto j = b.begin();
  for (;;) {
    while (i != a.end() && skip(i->first))
      ++i;
    while (j != b.end() && skip(j->first))
      ++j;
    if (i == a.end() || j == b.end())
      return i == a.end() && j == b.end();
    if (i->first != j->first || i->second != j->second)
      return false;
    ++i;
    ++j;
  }
}

// A decision compared with the recorded event: what the definition decides,
// not what differs by construction (the submitted definition, a retry delay
// recorded before draws were).
bool same_decision(const event& recorded, const event& got) {
  if (recorded.type != got.type)
    return false;
  const auto& x = recorded.payload.get();
  const auto& y = got.payload.get();
  if (recorded.type == events::submitted)
    return same_but(x, y,
                    {"definition", "idempotency_key", "version", "workflow"});
  if (recorded.type == events::failed && !field(x, "draw").is_number())
    return same_but(x, y, {"draw", "retry_in_ms"});
  return x == y;
}

// Whether two logs hold the same event here (times and ids aside): a
// submission is compared without its idempotency key.
bool same_event(const event& x, const event& y) {
  if (x.type != y.type)
    return false;
  if (x.type != events::submitted)
    return x.payload.get() == y.payload.get();
  return same_but(x.payload.get(), y.payload.get(), {"idempotency_key"});
}

// A sentence for an event: "task_dispatched of fetch (attempt 2)".
std::string describe_event(const event& ev) {
  const auto& p = ev.payload.get();
  auto key = key_of(p);
  std::string out = ev.type;
  if (!key.empty())
    out += " of " + key;
  if (const auto& a = field(p, "attempt"); a.is_number_integer())
    out += " (attempt " + std::to_string(a.get<int64_t>()) + ")";
  return out;
}

// The parts of a task's definition that act outside the execution's log: an
// agent's spec (its prompts, model, tools) and a child workflow.
json external_spec(const definition& def, const std::string& task) {
  auto idx = def.index_of(task);
  if (idx < 0)
    return nullptr;
  const auto& td = def.tasks[static_cast<size_t>(idx)];
  if (td.unit_kind() == task_kind::agent) {
    auto i = def.agents.find(td.agent);
    return i == def.agents.end() ? json{} : i->second;
  }
  if (td.kind == task_kind::workflow)
    return td.workflow;
  return nullptr;
}

// Drives a machine with the stimuli of a recorded log, fed one event at a
// time as it is read, and compares each decision with the recorded one. A
// stimulus's decisions wait in `decided_` and `unbuilt_` for the recorded
// events that should match them, so memory holds the state and one step,
// not the log.
class lockstep {
public:
  // A fresh machine for the log of `id`: its first event must be the
  // submission. `doc`: the definition to check (null: the recorded one);
  // `edits`: a fork's edits, which decide from its first event on.
  lockstep(const json* doc, const json* edits) : doc_(doc), edits_(edits) {
  }

  // Goes on from a machine restored from a snapshot, whose definition is
  // the recorded one.
  explicit lockstep(machine from) : m_(std::move(from)) {
    recorded_def_ = *m_->def();
    m_->replay_only();
  }

  // Checks recorded event `ev`; false once the decisions part (first()
  // says where). Errors: errc::invalid_workflow for a `doc` that does not
  // parse, errc::codec_error for a log that does not fold.
  expected<bool> add(const event& ev) {
    if (out_.first)
      return false;
    ++out_.events;
    if (!recorded_def_) {
      if (auto r = start(ev); !r)
        return r.error();
      return !out_.first;
    }
    if (!waiting()) {
      divergence why;
      auto s = stimulus(ev, why);
      if (!s)
        return diverge(std::move(why));
      wait_for(std::move(*s));
      if (!waiting()) {
        // Folded as recorded (a fork marker, a redispatch): nothing to
        // compare.
        return true;
      }
    }
    if (auto d = compare_next(ev))
      return diverge(std::move(*d));
    return true;
  }

  // The outcome once every recorded event was added: decisions left over
  // go past the end of the recorded log.
  replay_check finish() {
    if (!out_.first && waiting()) {
      auto* u = next_unbuilt();
      const auto& got = u ? m_->event_of(*u) : decided_[next_event_];
      diverge(divergence{got.seq, key_of(got.payload.get()),
                         "the definition decides " + describe_event(got)
                           + " after the end of the recorded log",
                         nullptr, event_json(got)});
    }
    return out_;
  }

private:
  bool diverge(divergence d) {
    out_.events = d.seq;
    out_.first = std::move(d);
    return false;
  }

  // Whether decisions wait for the recorded events that should match them.
  bool waiting() const {
    return next_event_ < decided_.size()
           || next_unbuilt_ < unbuilt_.size();
  }

  // Only a step's decisions are compared (not its index or snapshots).
  void wait_for(step s) {
    decided_.swap(s.events);
    unbuilt_.swap(s.unbuilt);
    next_event_ = 0;
    next_unbuilt_ = 0;
  }

  // The next decision when it is one the machine folded without building
  // its event (machine::replay_only), else null.
  const unbuilt_decision* next_unbuilt() const {
    if (next_unbuilt_ < unbuilt_.size()
        && unbuilt_[next_unbuilt_].at <= next_event_)
      return &unbuilt_[next_unbuilt_];
    return nullptr;
  }

  // Compares the next decision with recorded event `rec`; an unbuilt one
  // field by field, and built only when it differs, to show it.
  std::optional<divergence> compare_next(const event& rec) {
    std::optional<divergence> d;
    if (auto* u = next_unbuilt()) {
      ++next_unbuilt_;
      if (!m_->decided_as(*u, rec))
        d = compare(rec, m_->event_of(*u));
      else if (u->kind == unbuilt_decision::dispatch)
        d = spec_changed(rec, m_->def()->tasks[static_cast<size_t>(u->task)].id,
                         json{});
    } else {
      d = compare(rec, decided_[next_event_++]);
    }
    if (!waiting()) {
      decided_.clear();
      unbuilt_.clear();
      next_event_ = 0;
      next_unbuilt_ = 0;
    }
    return d;
  }

  // The submission: parses the recorded definition and submits `doc`.
  expected<void> start(const event& first) {
    if (first.type != events::submitted)
      return make_error(errc::codec_error,
                        "execution " + first.execution_id
                          + ": the first event is " + first.type
                          + ", not execution_submitted");
    const auto& p = first.payload.get();
    auto parsed = parse_document(field(p, "definition"), validation_context{});
    if (!parsed.def)
      return make_error(errc::codec_error,
                        "execution " + first.execution_id
                          + ": the recorded definition does not parse");
    recorded_def_ = std::move(*parsed.def);
    m_.emplace(first.execution_id);
    m_->replay_only();
    if (edits_)
      m_->use_fork_edits(*edits_);
    auto s = m_->submit(doc_ ? *doc_ : field(p, "definition"),
                       field(p, "input"), text(p, "idempotency_key"),
                       first.time_us);
    if (!s) {
      if (code_of(s.error()) == errc::invalid_workflow)
        return s.error();
      diverge(divergence{first.seq, {},
                         "the definition refuses the recorded input: "
                           + message_of(s.error()),
                         event_json(first), nullptr});
      return {};
    }
    wait_for(std::move(*s));
    if (!waiting()) // cannot be: a submission records itself
      return make_error(errc::internal, "the submission decided nothing");
    if (auto d = compare_next(first))
      diverge(std::move(*d));
    return {};
  }

  // Feeds the machine the stimulus recorded event `ev` stands for; a
  // divergence when the definition has nothing that takes it.
  std::optional<step> stimulus(const event& ev, divergence& why) {
    const auto& p = ev.payload.get();
    auto key = key_of(p);
    const auto& at = field(p, "attempt");
    auto attempt = at.is_number_integer() ? at.get<uint32_t>() : 1u;
    auto nothing = [&](std::string reason) {
      why = divergence{ev.seq, key, std::move(reason), event_json(ev), nullptr};
      return std::optional<step>{};
    };
    // The unit's state is only read to explain a divergence or to tell a
    // retry's dispatch: no string is built per event otherwise.
    auto state = [&] {
      return key.empty() ? std::string{} : m_->unit_state(key);
    };
    auto unexpected = [&] {
      auto s = state();
      return nothing("recorded " + describe_event(ev) + "; the definition "
                     + (s.empty() ? "has no such task" : "has it " + s));
    };
    // Decisions built or not (machine::replay_only).
    auto none = [](const step& s) {
      return s.events.empty() && s.unbuilt.empty();
    };
    const std::string_view type{ev.type};
    if (type == events::completed) {
      if (const auto& by = field(p, "by");
          by.is_string() && by.get_ref<const std::string&>() == "human") {
        auto r = m_->human_answer(key, field(p, "output"), ev.time_us);
        if (!r)
          return nothing("recorded an answer to " + key
                         + "; the definition refuses it: "
                         + message_of(r.error()));
        return std::move(*r);
      }
      auto s = m_->succeeded(key, attempt, field(p, "output"), 0, ev.time_us,
                            field(p, "usage"));
      if (none(s))
        return unexpected();
      return s;
    }
    if (type == events::failed) {
      auto s = m_->failed(key, attempt, error_from(p), draw_of(p), ev.time_us);
      if (none(s))
        return unexpected();
      return s;
    }
    if (type == events::dispatched && attempt > 1 && state() == "retry_wait") {
      auto s = m_->retry_due(key, attempt - 1, ev.time_us);
      if (none(s))
        return unexpected();
      return s;
    }
    // The execution's timeout: it fails, or starts its on_failure tasks.
    if ((type == events::execution_failed || type == events::on_failure_started)
        && text(p, "code") == "timeout" && text(p, "task").empty()) {
      auto s = m_->execution_timed_out(ev.time_us);
      if (none(s))
        return nothing("recorded the execution's timeout; the definition "
                       "has finished it");
      return s;
    }
    if (type == events::execution_cancelled) {
      auto s = m_->cancel(text(p, "reason"), ev.time_us);
      if (none(s))
        return nothing("recorded a cancellation; the definition has "
                       "finished the execution");
      return s;
    }
    if (type == events::forked || type == events::redispatched) {
      // A fork's marker, or a start of the node that dispatched a task
      // again, is history, not a decision: fold it as recorded.
      event copy = ev;
      copy.seq = m_->last_seq() + 1;
      if (auto r = m_->apply(copy); !r)
        return nothing("cannot fold the fork marker: "
                       + message_of(r.error()));
      return step{};
    }
    auto s = state();
    return nothing("recorded " + describe_event(ev)
                   + "; the definition decides nothing here"
                   + (s.empty() ? std::string{} : " (" + key + " is " + s + ")"));
  }

  // Compares decision `got` with recorded event `rec`.
  std::optional<divergence> compare(const event& rec, const event& got) {
    if (!same_decision(rec, got)) {
      std::string reason = "recorded " + describe_event(rec);
      if (rec.type == got.type) {
        auto changes = json_changes(rec.payload.get(), got.payload.get(), 1);
        reason += ", the definition decides it with another "
                  + (changes.empty()
                       ? std::string{"payload"}
                       : changes[0]["pointer"].get<std::string>().substr(1));
      } else {
        reason += ", the definition decides " + describe_event(got);
      }
      return divergence{rec.seq, key_of(rec.payload.get()), std::move(reason),
                        event_json(rec), event_json(got)};
    }
    if (got.type != events::dispatched)
      return std::nullopt;
    const auto& task = field(got.payload.get(), "task");
    if (!task.is_string())
      return std::nullopt;
    return spec_changed(rec, task.get_ref<const std::string&>(),
                        got.payload.get());
  }

  // A dispatch of task `name` (its payload `got`; null: a tool's that was
  // not built) that agrees with recorded event `rec`: whether what the task
  // runs outside the log changed. Compared once per task, not per item.
  std::optional<divergence> spec_changed(const event& rec,
                                         const std::string& name,
                                         const json& got) {
    if (!specs_checked_.insert(name).second)
      return std::nullopt;
    auto before = external_spec(*recorded_def_, name);
    auto now = m_->def() ? external_spec(*m_->def(), name) : json{};
    if (before == now)
      return std::nullopt;
    specs_checked_.erase(name);
    return divergence{
      rec.seq, key_of(rec.payload.get()),
      "task " + name + " runs "
        + (got.contains("agent")
             ? "agent " + text(got, "agent")
                 + " with a spec that differs from the recorded one"
             : std::string{"a child workflow that differs from the "
                           "recorded one"})
        + " (its recorded model replies and results do not apply)",
      before, now};
  }

  std::optional<machine> m_; // made at the submission, or restored
  const json* doc_ = nullptr;
  const json* edits_ = nullptr;
  std::optional<definition> recorded_def_;
  // Decisions not yet matched: events from next_event_, unbuilt ones from
  // next_unbuilt_, in their order (unbuilt_decision::at).
  std::vector<event> decided_;
  std::vector<unbuilt_decision> unbuilt_;
  size_t next_event_ = 0;
  size_t next_unbuilt_ = 0;
  std::set<std::string> specs_checked_; // tasks whose spec is the same
  replay_check out_;
};

} // namespace

expected<machine> fold_log(const std::vector<event>& log, uint64_t seq) {
  if (log.empty())
    return make_error(errc::not_found, "the execution has no events");
  if (seq > log.back().seq)
    return make_error(errc::not_found,
                      "execution " + log.front().execution_id + " has "
                        + std::to_string(log.back().seq)
                        + " events; there is no event "
                        + std::to_string(seq));
  machine m{log.front().execution_id};
  for (const auto& ev : log) {
    if (seq != 0 && ev.seq > seq)
      break;
    if (auto r = m.apply(ev); !r)
      return r.error();
  }
  return m;
}

std::vector<std::string> agent_logs_of(const std::vector<event>& log) {
  agent_log_names names;
  for (const auto& ev : log)
    names.add(ev);
  return names.names();
}

void agent_log_names::add(const event& ev) {
  auto add_name = [this](std::string name) {
    if (std::find(names_.begin(), names_.end(), name) == names_.end())
      names_.push_back(std::move(name));
  };
  const auto& p = ev.payload.get();
  if (ev.type == events::forked) {
    if (listed_ && !forked_) {
      const auto& named = field(p, "logs");
      if (named.is_array()) {
        for (const auto& n : named)
          if (n.is_string())
            fork_logs_.push_back(n.get<std::string>());
      } else {
        // A fork recorded before its logs were named: its replies at least
        // (its agents' branches are those agent_logs_of names).
        fork_logs_.push_back(fork_replies_log(ev.execution_id));
      }
    }
    forked_ = true;
  } else if (ev.type == events::submitted) {
    auto parsed = parse_document(field(p, "definition"), validation_context{});
    if (parsed.def)
      def_ = std::move(parsed.def);
  } else if (ev.type == events::completed) {
    auto name = text(field(p, "usage"), "agent_log");
    if (!name.empty())
      add_name(std::move(name));
  } else if (ev.type == events::dispatched && def_) {
    auto agent = text(p, "agent");
    auto i = def_->agents.find(agent);
    if (agent.empty() || i == def_->agents.end())
      return;
    agent_spec spec;
    parse_agent_spec(agent, i->second, spec);
    add_name("agent:"
             + agent_id_of(spec, ev.execution_id, text(p, "task"), forked_));
  }
}

std::vector<std::string> agent_logs_of(const machine& m) {
  std::vector<std::string> out;
  if (!m.def())
    return out;
  auto v = m.view();
  for (const auto& t : v["tasks"]) {
    if (t["kind"] != "agent" || t["state"] == "blocked")
      continue;
    std::string name;
    if (t.contains("usage"))
      name = text(t["usage"], "agent_log");
    if (name.empty()) {
      auto i = m.def()->agents.find(text(t, "agent"));
      if (i == m.def()->agents.end())
        continue;
      agent_spec spec;
      parse_agent_spec(i->first, i->second, spec);
      name = "agent:"
             + agent_id_of(spec, m.id(), text(t, "id"),
                           !m.forked_from().empty());
    }
    if (std::find(out.begin(), out.end(), name) == out.end())
      out.push_back(std::move(name));
  }
  return out;
}

std::string snapshot_log(const std::string& id, uint64_t n) {
  return "snapshot:" + id + "/" + std::to_string(n);
}

std::vector<std::string> snapshot_candidates(const std::string& id,
                                             uint64_t target, uint64_t every) {
  std::vector<std::string> out;
  if (every == 0)
    return out;
  constexpr uint64_t probes = 64;
  for (uint64_t k = target / every, i = 0; k > 0 && i < probes; --k, ++i)
    out.push_back(snapshot_log(id, k * every));
  if (every > 1)
    for (uint64_t k = target / every, i = 0; k > 0 && i < probes; --k, ++i)
      out.push_back(snapshot_log(id, k));
  return out;
}

expected<machine>
restore_paged(const std::string& id, const json& root,
              const std::vector<std::pair<uint64_t, std::vector<event>>>& parts) {
  std::map<std::pair<uint64_t, uint64_t>, const json*> at;
  for (const auto& [k, evs] : parts)
    for (const auto& ev : evs)
      if (ev.type == events::snapshot_part)
        at.emplace(std::make_pair(k, ev.seq), &ev.payload.get());
  return machine::restore(id, root,
                          [&at](uint64_t k, uint64_t seq) -> const json* {
                            auto i = at.find({k, seq});
                            return i == at.end() ? nullptr : i->second;
                          });
}

expected<machine> restore_snapshot(const std::string& id, const json& root,
                                   const range_reader& read) {
  if (!root.is_object() || root.value("format", 0) == 1)
    return machine::restore(id, root);
  auto ranges = machine::snapshot_parts(root);
  if (!ranges)
    return ranges.error();
  std::vector<std::pair<uint64_t, std::vector<event>>> parts;
  for (const auto& r : *ranges) {
    auto evs = read(snapshot_log(id, r.k), r.from, r.count);
    if (!evs)
      return evs.error();
    parts.emplace_back(r.k, std::move(*evs));
  }
  return restore_paged(id, root, parts);
}

expected<machine> fold_from(const std::string& id, const json& snap,
                            const std::vector<event>& log, uint64_t seq) {
  auto m = machine::restore(id, snap);
  if (!m)
    return m.error();
  for (const auto& ev : log) {
    if (seq != 0 && ev.seq > seq)
      break;
    if (auto r = m->apply(ev); !r)
      return r.error();
  }
  return m;
}

namespace {

// change_feed::add on `m`: folds `ev` and says what it changed.
expected<json> record_changes(machine& m, const event& ev);

} // namespace

stepper::stepper(reader read, uint64_t last, uint64_t every)
  : read_(std::move(read)), last_(last), every_(std::max<uint64_t>(every, 1)),
    stride_(every_) {
}

void stepper::keep(uint64_t seq, json snap, uint64_t around) {
  snapshots_.emplace(seq, std::move(snap));
  auto near = [&](uint64_t s) {
    return (s > around ? s - around : around - s) <= near_multiples * every_;
  };
  for (;;) {
    size_t far = 0;
    for (auto i = snapshots_.begin(); i != snapshots_.end();) {
      if (near(i->first)) {
        ++i;
      } else if (i->first % stride_ != 0) {
        i = snapshots_.erase(i);
      } else {
        ++far;
        ++i;
      }
    }
    if (far <= far_snapshots)
      return;
    stride_ *= 2;
  }
}

stepper::stepper(const std::vector<event>& log, uint64_t every)
  : stepper(
    [&log](uint64_t from, uint64_t max) -> expected<std::vector<event>> {
      auto first = std::min<uint64_t>(from - 1, log.size());
      auto n = std::min<uint64_t>(max, log.size() - first);
      return std::vector<event>(log.begin() + first, log.begin() + first + n);
    },
    log.size(), every) {
}

expected<const event*> stepper::event_at(uint64_t seq) {
  if (seq == 0 || seq > last_)
    return make_error(errc::not_found, "no event " + std::to_string(seq)
                                         + " (1.." + std::to_string(last_)
                                         + ")");
  if (chunk_from_ == 0 || seq < chunk_from_
      || seq >= chunk_from_ + chunk_.size()) {
    // Chunks start at multiples of the interval, so a walk to and fro
    // around one point reads each chunk once.
    auto from = (seq - 1) / every_ * every_ + 1;
    auto evs = read_(from, every_);
    if (!evs)
      return evs.error();
    chunk_ = std::move(*evs);
    chunk_from_ = from;
    if (!chunk_.empty())
      id_ = chunk_.front().execution_id;
    if (seq >= chunk_from_ + chunk_.size()
        || chunk_[seq - chunk_from_].seq != seq)
      return make_error(errc::codec_error,
                        "the log has no event " + std::to_string(seq)
                          + " where its seqs should be dense");
  }
  return &chunk_[seq - chunk_from_];
}

expected<void> stepper::seek(uint64_t seq) {
  // Going back, or far ahead: start over from the nearest snapshot at or
  // before `seq`, unless the position is nearer.
  bool behind = !current_ || current_seq_ > seq;
  if (behind || seq - current_seq_ > every_) {
    auto snap = snapshots_.upper_bound(seq);
    if (snap != snapshots_.begin()
        && (behind || std::prev(snap)->first > current_seq_)) {
      --snap;
      // Snapshots exist once events were read: id_ is known.
      auto m = machine::restore(id_, snap->second);
      if (!m)
        return m.error();
      current_ = std::move(*m);
      current_seq_ = snap->first;
    } else if (behind) {
      auto first = event_at(1);
      if (!first)
        return first.error();
      current_.emplace((*first)->execution_id);
      current_seq_ = 0;
    }
  }
  while (current_seq_ < seq)
    if (auto r = advance(seq, false); !r)
      return r.error();
  return {};
}

expected<json> stepper::advance(uint64_t around, bool record) {
  auto ev = event_at(current_seq_ + 1);
  if (!ev)
    return ev.error();
  expected<json> r{json{}};
  if (record) {
    r = record_changes(*current_, **ev);
  } else if (auto ok = current_->apply(**ev); !ok) {
    r = ok.error();
  }
  if (!r) {
    // A fold that failed half-way leaves no state to go on from.
    current_.reset();
    return r;
  }
  ++current_seq_;
  ++folded_;
  if (current_seq_ % every_ == 0 && snapshots_.count(current_seq_) == 0)
    keep(current_seq_, current_->snapshot(), around);
  return r;
}

expected<json> stepper::view_at(uint64_t seq) {
  if (seq == 0 || seq > last_)
    return make_error(errc::not_found,
                      "no event " + std::to_string(seq) + " (1.."
                        + std::to_string(last_) + ")");
  if (auto ok = seek(seq); !ok)
    return ok.error();
  return current_->view();
}

expected<json> stepper::changes_at(uint64_t seq) {
  if (seq == 0 || seq > last_)
    return make_error(errc::not_found,
                      "no event " + std::to_string(seq) + " (1.."
                        + std::to_string(last_) + ")");
  if (auto ok = seek(seq - 1); !ok)
    return ok.error();
  return advance(seq, true);
}

change_feed::change_feed(std::string id) : m_(std::move(id)) {
}

namespace {

expected<json> record_changes(machine& m, const event& ev) {
  const auto& p = ev.payload.get();
  // The units whose state the event may change: its own (and its map's),
  // a fallback it starts, the items of a map it starts. A unit of a
  // sub-workflow ("T/inner") changes only the sub-workflow's state, and a
  // submission makes every task blocked, which is not news.
  std::vector<std::string> keys;
  const auto& task = field(p, "task");
  if (ev.type != events::submitted && task.is_string()
      && task.get_ref<const std::string&>().find('/') == std::string::npos
      && m.def()) {
    const auto& name = task.get_ref<const std::string&>();
    keys.push_back(name);
    if (field(p, "item").is_number_integer())
      keys.push_back(key_of(p));
    if (ev.type == events::fallback_started)
      if (auto fb = text(p, "fallback"); !fb.empty())
        keys.push_back(std::move(fb));
    if (ev.type == events::map_started) {
      // Items it had (a map started again) and items it gets.
      size_t n = field(p, "items").is_array() ? field(p, "items").size() : 0;
      for (size_t i = 0;; ++i) {
        auto item = name + "[" + std::to_string(i) + "]";
        if (i >= n && m.unit_state(item).empty())
          break;
        keys.push_back(std::move(item));
      }
    }
  }
  std::sort(keys.begin(), keys.end());
  keys.erase(std::unique(keys.begin(), keys.end()), keys.end());
  std::vector<std::string> before;
  before.reserve(keys.size());
  for (const auto& k : keys)
    before.push_back(m.unit_state(k));
  // Before the submission there is no status yet.
  auto status = m.last_seq() == 0 ? std::string{"none"} : m.status();
  if (auto r = m.apply(ev); !r)
    return r.error();
  json changes = json::array();
  for (size_t i = 0; i < keys.size(); ++i) {
    auto now = m.unit_state(keys[i]);
    if (now.empty() || now == before[i]
        || (before[i].empty() && now == "blocked"))
      continue;
    changes.push_back(json{{"task", keys[i]}, {"from", before[i]},
                           {"to", std::move(now)}});
  }
  if (status != m.status())
    changes.push_back(json{{"execution", m.status()}, {"from", status}});
  json r{{"seq", ev.seq}, {"type", ev.type}};
  if (p.is_object() && p.contains("task"))
    r["task"] = p["task"];
  r["changes"] = std::move(changes);
  return r;
}

} // namespace

expected<json> change_feed::add(const event& ev) {
  return record_changes(m_, ev);
}

json event_json(const event& ev) {
  return json{{"type", ev.type}, {"payload", ev.payload.get()}};
}

json to_json(const divergence& d) {
  json out{{"seq", d.seq}, {"reason", d.reason}};
  if (!d.task.empty())
    out["task"] = d.task;
  out["expected"] = d.expected;
  out["got"] = d.got;
  return out;
}

expected<replay_check> check_against(const log_walk& walk, const json* doc) {
  // A fork's edits decide from its first event on, but its marker comes
  // after the history it took over. Without them, a fork diverges first at
  // a unit its edits gave a result (`by: "fork"`), which is recorded right
  // after that unit's dispatch or question: only then is the rest of the
  // log read for the marker and the log checked again with its edits.
  std::optional<json> edits;
  auto edited = [](const event& ev) {
    return ev.type == events::completed
           && text(ev.payload.get(), "by") == "fork";
  };
  auto pass = [&]() -> expected<replay_check> {
    lockstep check{doc, edits ? &*edits : nullptr};
    enum { checking, peeking, looking } now = checking;
    auto walked = walk([&](const event& ev) -> expected<bool> {
      switch (now) {
        case peeking:
          now = looking;
          return edited(ev);
        case looking:
          if (ev.type != events::forked)
            return true;
          edits = field(ev.payload.get(), "edits");
          return false;
        case checking:
          break;
      }
      auto more = check.add(ev);
      if (!more || *more || edits)
        return more;
      now = edited(ev) ? looking : peeking;
      return true;
    });
    if (!walked)
      return walked.error();
    return check.finish();
  };
  auto first = pass();
  if (!first || first->compatible() || !edits)
    return first;
  return pass();
}

expected<replay_check> check_against(const std::vector<event>& log,
                                     const json* doc) {
  if (log.empty())
    return make_error(errc::not_found, "the execution has no events");
  return check_against(
    [&log](const std::function<expected<bool>(const event&)>& fn)
      -> expected<void> {
      for (const auto& ev : log) {
        auto more = fn(ev);
        if (!more)
          return more.error();
        if (!*more)
          break;
      }
      return {};
    },
    doc);
}

expected<replay_check> check_recovery(const std::string& id, const json& snap,
                                      const std::vector<event>& log) {
  if (snap.is_null())
    return check_against(log);
  auto m = machine::restore(id, snap);
  if (!m)
    return m.error();
  if (!m->def())
    return make_error(errc::codec_error,
                      "execution " + id + ": the snapshot has no definition");
  lockstep check{std::move(*m)};
  for (const auto& ev : log) {
    auto more = check.add(ev);
    if (!more)
      return more.error();
    if (!*more)
      break;
  }
  return check.finish();
}

json to_json(const fork_edits& e) {
  json out = json::object();
  if (e.input)
    out["input"] = *e.input;
  if (e.definition)
    out["definition"] = field(*e.definition, "name").is_string()
                          ? json{{"name", (*e.definition)["name"]},
                                 {"version", field(*e.definition, "version")}}
                          : json{{"replaced", true}};
  if (!e.outputs.empty())
    out["outputs"] = e.outputs;
  if (!e.rerun.empty())
    out["rerun"] = e.rerun;
  if (!e.answers.empty())
    out["answers"] = e.answers;
  return out;
}

namespace {

// What the parent recorded up to the fork point, by unit and attempt.
struct recorded_attempt {
  json input;
  const event* outcome = nullptr; // task_completed or task_failed
};

struct recorded_history {
  std::map<std::string, std::map<uint32_t, recorded_attempt>> units;
  std::map<std::string, json> prompts;  // human task -> prompt asked
  std::map<std::string, json> answers;  // human task -> answer given

  void add(const event& ev) {
    const auto& p = ev.payload.get();
    auto key = key_of(p);
    auto attempt = field(p, "attempt").is_number_integer()
                     ? field(p, "attempt").get<uint32_t>()
                     : 1u;
    if (ev.type == events::dispatched) {
      units[key][attempt].input = field(p, "input");
    } else if (ev.type == events::human_requested) {
      prompts[key] = field(p, "prompt");
    } else if (ev.type == events::completed && text(p, "by") == "human") {
      answers[key] = field(p, "output");
    } else if ((ev.type == events::completed || ev.type == events::failed)
               && !field(p, "via").is_string()) {
      auto u = units.find(key);
      // Only results of dispatched attempts: a map's own completion and
      // a template failure are decisions, made again by the fork.
      if (u != units.end())
        if (auto a = u->second.find(attempt); a != u->second.end())
          a->second.outcome = &ev;
    }
  }
};

// The number of items of map `task` in `log` (its map_started), if any.
std::optional<size_t> items_in(const std::vector<event>& log,
                               const std::string& task) {
  for (const auto& ev : log)
    if (ev.type == events::map_started && text(ev.payload.get(), "task") == task)
      if (const auto& items = field(ev.payload.get(), "items"); items.is_array())
        return items.size();
  return std::nullopt;
}

// The items that edits name ("task[i]") exist: in the fork as planned, or
// (a map it has not started yet) in the parent's whole log.
expected<void>
check_items(const std::vector<std::pair<std::string, const char*>>& keys,
            const std::vector<event>& fork, const std::vector<event>& parent) {
  for (const auto& [key, flag] : keys) {
    auto [task, item] = split_key(key);
    auto n = items_in(fork, task);
    if (!n)
      n = items_in(parent, task);
    auto say = [&, flag = flag, key = key](const std::string& what) {
      return make_error(errc::invalid_input,
                        std::string{flag}
                          + (std::string{flag} == "--answer"
                               ? " " + key + ": "
                               : ": task '" + key + "' ")
                          + what);
    };
    if (!n)
      return say("names an item of map '" + task
                 + "', whose items neither the parent nor the fork has made "
                   "yet");
    if (static_cast<size_t>(item) >= *n)
      return say("names item " + std::to_string(item) + ", but map '" + task
                 + "' has " + std::to_string(*n) + " item"
                 + (*n == 1 ? "" : "s")
                 + (*n == 0 ? std::string{}
                            : " (0 to " + std::to_string(*n - 1) + ")"));
  }
  return {};
}

// A unit of a sub-workflow that an edit names: "incident[0]/decide",
// "incident[0]@2/decide" (the item's attempt 2), "child/inner[1]", deeper
// ones too ("a[0]/b/c").
struct nested_edit {
  std::string key;
  const char* flag = "";
  /// The runs of sub-workflows it is under, outermost first: the unit
  /// running each ("incident[0]", "incident[0]@2/child") and the attempt
  /// the key names (1 without "@").
  std::vector<std::pair<std::string, uint32_t>> runs;
};

std::string comma_list(const std::vector<std::string>& names) {
  std::string out;
  for (const auto& n : names)
    out += (out.empty() ? "" : ", ") + n;
  return out;
}

// Resolves a nested edit's key against `root`: each step before the last
// names a unit that runs a sub-workflow (a workflow task, or an item of a
// map of them), the last a task of the innermost sub-workflow (or an item
// of a map there). The definitions of the sub-workflows go to `defs`,
// which keeps them for the task returned; `leaf` gets the task's key in
// full without its item ("incident[0]/retry" for "incident[0]/retry[2]").
expected<const task_def*> resolve_nested(const definition& root,
                                         nested_edit& edit,
                                         std::deque<definition>& defs,
                                         std::string& leaf) {
  const auto& key = edit.key;
  auto say = [&](const std::string& what) {
    return make_error(errc::invalid_input,
                      std::string{edit.flag} + ": '" + key + "': " + what);
  };
  const definition* def = &root;
  std::string path; // the key so far, as the log has it
  std::string where = "the workflow"; // what `def` is, in a sentence
  size_t from = 0;
  for (size_t slash; (slash = key.find('/', from)) != std::string::npos;
       from = slash + 1) {
    auto segment = key.substr(from, slash - from);
    auto [run, attempt] = split_run(segment);
    if (attempt == 0)
      return say("expected an attempt number after '@' in '" + segment
                 + "'");
    // The log never writes "@1": the first run has no "@".
    if (attempt == 1 && run.size() != segment.size())
      return say("attempt 1 is named without '@': '" + path + run
                 + key.substr(slash) + "'");
    auto [name, item] = split_key(run);
    auto idx = def->index_of(name);
    if (idx < 0)
      return say(where + " has no task '" + name + "'");
    const auto& td = def->tasks[static_cast<size_t>(idx)];
    if (td.unit_kind() != task_kind::workflow)
      return say("'" + path + name + "' runs no sub-workflow (it is "
                 + (td.kind == task_kind::map
                      ? std::string{"a map of "} + kind_name(td.unit_kind())
                          + " tasks"
                      : std::string{"a "} + kind_name(td.unit_kind())
                          + " task")
                 + "), so no unit is named under it");
    if (td.kind == task_kind::map && item < 0)
      return say("'" + path + name
                 + "' is a map of sub-workflows; name the item whose unit "
                   "it is, '"
                 + path + name + "[0]" + key.substr(slash) + "'");
    if (td.kind != task_kind::map && item >= 0)
      return say("'" + path + name + "' is not a map task");
    auto nested = load_document(td.workflow);
    if (!nested)
      return nested.error();
    defs.push_back(std::move(*nested));
    def = &defs.back();
    edit.runs.emplace_back(path + run, attempt);
    where = "the sub-workflow of '" + path + run + "'";
    path += segment + "/";
  }
  auto last = key.substr(from);
  if (last.find('@') != std::string::npos)
    return say("an attempt is named on the run of a sub-workflow ('"
               + path.substr(0, path.size() - 1) + "@2/...'), not on its "
               + "units");
  auto [name, item] = split_key(last);
  auto idx = name.empty() ? -1 : def->index_of(name);
  if (idx < 0) {
    std::vector<std::string> names;
    for (const auto& t : def->tasks)
      if (!t.hook)
        names.push_back(t.id);
    return say(where + " has no task '" + name + "' (its tasks: "
               + comma_list(names) + ")");
  }
  leaf = path + name;
  return &def->tasks[static_cast<size_t>(idx)];
}

// What the fork point holds of the units of sub-workflows: the units that
// had run (dispatched, asked or started as a map) and the latest attempt
// of each dispatched unit.
struct units_run {
  std::set<std::string> ran;
  std::map<std::string, uint32_t> latest;

  void add(const event& ev) {
    if (ev.type != events::dispatched && ev.type != events::human_requested
        && ev.type != events::map_started)
      return;
    const auto& p = ev.payload.get();
    auto key = key_of(p);
    ran.insert(key);
    const auto& attempt = field(p, "attempt");
    if (ev.type == events::dispatched && attempt.is_number_integer()) {
      auto& a = latest[key];
      a = std::max(a, attempt.get<uint32_t>());
    }
  }

  // The units that had run directly under `run` ("incident[0]@2/").
  std::vector<std::string> under(const std::string& run) const {
    std::vector<std::string> out;
    for (auto i = ran.lower_bound(run);
         i != ran.end() && i->rfind(run, 0) == 0; ++i) {
      auto rest = i->substr(run.size());
      rest = rest.substr(0, rest.find('/'));
      rest = rest.substr(0, rest.find('@'));
      if (out.empty() || out.back() != rest)
        out.push_back(rest);
    }
    return out;
  }
};

// A nested edit names a unit that had run by the fork point (`at`), under
// the latest attempt of each sub-workflow run it is under.
expected<void> check_nested(const nested_edit& edit, const units_run& units,
                            uint64_t at) {
  auto say = [&](const std::string& what) {
    return make_error(errc::invalid_input, std::string{edit.flag} + ": '"
                                             + edit.key + "': " + what);
  };
  auto point = "by the fork point (event " + std::to_string(at) + ")";
  for (const auto& [run, attempt] : edit.runs) {
    auto i = units.latest.find(run);
    if (i == units.latest.end())
      return say("'" + run + "' had not started " + point);
    auto rest = edit.key.substr(edit.key.find('/', run.size()));
    if (attempt < i->second)
      return say("names attempt " + std::to_string(attempt) + " of '" + run
                 + "', which had run again " + point + ": name its latest, '"
                 + run + "@" + std::to_string(i->second) + rest + "'");
    if (attempt > i->second)
      return say("'" + run + "' had run " + std::to_string(i->second)
                 + " attempt" + (i->second == 1 ? "" : "s") + " " + point
                 + ": name its latest, '" + run
                 + (i->second > 1 ? "@" + std::to_string(i->second)
                                  : std::string{})
                 + rest + "'");
  }
  if (units.ran.count(edit.key) > 0)
    return {};
  auto slash = edit.key.rfind('/');
  auto had = units.under(edit.key.substr(0, slash + 1));
  return say("that unit had not run " + point + "; under '"
             + edit.key.substr(0, slash) + "' had: "
             + (had.empty() ? std::string{"none"} : comma_list(had)));
}

// The units waiting for others (blocked) in the view's `tasks` and in the
// sub-workflows running there, keyed under `prefix`; on_failure tasks and
// fallbacks wait for a failure, not for these.
void blocked_units(const json& tasks, const std::string& prefix,
                   std::vector<std::string>& out) {
  auto run_of = [](const json& unit, std::string key) {
    if (auto a = unit.value("attempt", 1); a > 1)
      key += "@" + std::to_string(a);
    return key + "/";
  };
  for (const auto& t : tasks) {
    auto id = prefix + t.value("id", std::string{});
    auto state = t.value("state", std::string{});
    if (state == "blocked" && !t.value("fallback_only", false)
        && !t.value("on_failure", false))
      out.push_back(id);
    if (state == "running" && t.contains("tasks"))
      blocked_units(t["tasks"], run_of(t, id), out);
    if (!t.contains("items"))
      continue;
    for (size_t k = 0; k < t["items"].size(); ++k) {
      const auto& it = t["items"][k];
      if (it.value("state", "") == "running" && it.contains("tasks"))
        blocked_units(it["tasks"],
                      run_of(it, id + "[" + std::to_string(k) + "]"), out);
    }
  }
}

std::string runner_of(const action& a) {
  switch (a.kind) {
    case action::run_agent:
      return "agent:" + a.agent;
    default:
      return a.tool;
  }
}

} // namespace

expected<fork_plan> plan_fork(const std::vector<event>& parent, uint64_t at,
                              const fork_edits& edits, const std::string& id,
                              int64_t now_us) {
  if (parent.empty())
    return make_error(errc::not_found, "the execution has no events");
  const auto& parent_id = parent.front().execution_id;
  if (at == 0)
    at = parent.back().seq;
  if (at > parent.back().seq)
    return make_error(errc::not_found,
                      "execution " + parent_id + " has "
                        + std::to_string(parent.back().seq)
                        + " events; cannot fork at "
                        + std::to_string(at));
  if (parent.front().type != events::submitted)
    return make_error(errc::codec_error, "execution " + parent_id
                                           + ": the first event is not "
                                             "execution_submitted");
  recorded_history hist;
  for (const auto& ev : parent) {
    if (ev.seq > at)
      break;
    hist.add(ev);
  }
  const auto& sub = parent.front().payload.get();
  json doc = edits.definition ? *edits.definition : field(sub, "definition");
  json input = edits.input ? *edits.input : field(sub, "input");
  auto parsed = load_document(doc);
  if (!parsed)
    return parsed.error();
  const auto& def = *parsed;
  // An edit names a task, or an item "task[i]" of a map task; an item's
  // index is checked once the map's items are known (after the plan).
  std::vector<std::pair<std::string, const char*>> item_edits;
  // An edit may name a unit of a sub-workflow ("incident[0]/decide"),
  // checked against the fork point once the plan is made.
  std::vector<nested_edit> nested_edits;
  std::deque<definition> nested_defs; // the sub-workflows they are in
  auto check_task = [&](const std::string& key,
                        const char* flag) -> expected<const task_def*> {
    if (key.find('/') != std::string::npos) {
      nested_edit edit{key, flag, {}};
      std::string leaf;
      auto td = resolve_nested(def, edit, nested_defs, leaf);
      if (!td)
        return td.error();
      auto item = split_key(key.substr(key.rfind('/') + 1)).second;
      if (item >= 0 && (*td)->kind != task_kind::map)
        return make_error(errc::invalid_input,
                          std::string{flag} + ": '" + key
                            + "' names an item, but '" + leaf
                            + "' is not a map task");
      if (item < 0 && (*td)->kind == task_kind::map
          && std::string{flag} == "--set")
        return make_error(errc::invalid_input,
                          "--set: '" + key
                            + "' is a map; its result is made from its "
                              "items (set one item, tasks." + leaf
                            + "[0].output, or use --rerun " + leaf + ")");
      if ((*td)->unit_kind() == task_kind::human
          && std::string{flag} == "--set")
        return make_error(errc::invalid_input,
                          "--set: '" + key
                            + "' is answered by a person; give the answer "
                              "with --answer " + key + "=VALUE");
      nested_edits.push_back(std::move(edit));
      return *td;
    }
    auto [task, item] = split_key(key);
    auto idx = def.index_of(task);
    if (idx < 0)
      return make_error(errc::invalid_input,
                        std::string{flag} + ": the workflow has no task '"
                          + key + "'");
    const auto& td = def.tasks[static_cast<size_t>(idx)];
    if (item >= 0) {
      if (td.kind != task_kind::map)
        return make_error(errc::invalid_input,
                          std::string{flag} + ": task '" + key
                            + "' names an item, but '" + task
                            + "' is not a map task");
      item_edits.emplace_back(key, flag);
    } else if (td.kind == task_kind::map && std::string{flag} == "--set") {
      return make_error(errc::invalid_input,
                        "--set: task '" + task
                          + "' is a map; its result is made from its "
                            "items (set one item, tasks." + task
                          + "[0].output, or use --rerun " + task + ")");
    }
    // A person's result is an answer: --set would not reach it.
    if (td.unit_kind() == task_kind::human && std::string{flag} == "--set")
      return make_error(errc::invalid_input,
                        "--set: task '" + key
                          + "' is answered by a person; give the answer "
                            "with --answer " + key + "=VALUE");
    return &td;
  };
  for (const auto& [task, value] : edits.outputs)
    if (auto ok = check_task(task, "--set"); !ok)
      return ok.error();
  for (const auto& task : edits.rerun)
    if (auto ok = check_task(task, "--rerun"); !ok)
      return ok.error();
  for (const auto& [task, value] : edits.answers) {
    auto checked = check_task(task, "--answer");
    if (!checked)
      return checked.error();
    const auto& td = **checked;
    // The last step of the key: the task, or its item.
    auto unit = task.substr(task.rfind('/') + 1);
    if (td.unit_kind() != task_kind::human)
      return make_error(errc::invalid_input,
                        "--answer: task '" + task + "' is not a human task"
                          + (td.kind == task_kind::map
                               ? std::string{" (its items are not asked)"}
                               : std::string{}));
    if (td.kind == task_kind::map && split_key(unit).second < 0)
      return make_error(errc::invalid_input,
                        "--answer: task '" + task
                          + "' is a map of human tasks; answer one item, '"
                          + task + "[0]'...");
    if (!td.answer_schema.is_null())
      if (auto ok = check_schema(td.answer_schema, value,
                                 "--answer " + task);
          !ok)
        return ok.error();
  }
  machine m{id};
  json fork_edits_json = to_json(edits);
  m.use_fork_edits(fork_edits_json);
  auto first = m.submit(doc, input, "", now_us);
  if (!first)
    return first.error();
  fork_plan plan;
  std::deque<action> todo;
  std::map<std::string, json> prompts_now; // what the fork asks a person
  auto take = [&](step s) {
    for (auto& ev : s.events) {
      if (ev.type == events::completed
          && text(ev.payload.get(), "by") == "fork")
        plan.edited.push_back(key_of(ev.payload.get()));
      if (ev.type == events::human_requested)
        prompts_now[key_of(ev.payload.get())] = field(ev.payload.get(),
                                                      "prompt");
      plan.events.push_back(std::move(ev));
    }
    for (auto& a : s.actions)
      todo.push_back(std::move(a));
  };
  auto reuse = [&plan](const std::string& key) {
    if (plan.reused.empty() || plan.reused.back() != key)
      plan.reused.push_back(key);
  };
  take(std::move(*first));
  while (!todo.empty()) {
    auto a = std::move(todo.front());
    todo.pop_front();
    if (m.finished())
      break;
    switch (a.kind) {
      case action::dispatch:
      case action::run_agent: {
        // A unit whose run of a sub-workflow ended meanwhile (a sibling
        // failed the item's attempt) is not run, nor reused.
        if (m.unit_state(a.key) != "running")
          break;
        const recorded_attempt* rec = nullptr;
        if (!reruns(edits.rerun, a.key))
          if (auto u = hist.units.find(a.key); u != hist.units.end())
            if (auto r = u->second.find(a.attempt); r != u->second.end())
              rec = &r->second;
        if (rec && rec->outcome && rec->input == a.input) {
          const auto& p = rec->outcome->payload.get();
          if (rec->outcome->type == events::completed)
            take(m.succeeded(a.key, a.attempt, field(p, "output"), 0, now_us,
                             field(p, "usage")));
          else
            take(m.failed(a.key, a.attempt, error_from(p), draw_of(p),
                          now_us));
          reuse(a.key);
          break;
        }
        plan.to_run.emplace_back(a.key, runner_of(a));
        break;
      }
      case action::retry_timer: {
        // The parent's retry happened before the fork point: so does the
        // fork's; otherwise the live fork waits for the timer.
        auto u = hist.units.find(a.key);
        if (u != hist.units.end() && u->second.count(a.attempt + 1))
          take(m.retry_due(a.key, a.attempt, now_us));
        break;
      }
      case action::waiting_human: {
        if (m.unit_state(a.key) != "waiting")
          break;
        auto asked = hist.prompts.find(a.key);
        auto answer = hist.answers.find(a.key);
        if (!reruns(edits.rerun, a.key) && asked != hist.prompts.end()
            && answer != hist.answers.end()
            && asked->second == prompts_now[a.key]) {
          auto s = m.human_answer(a.key, answer->second, now_us);
          if (!s)
            return s.error();
          take(std::move(*s));
          reuse(a.key);
          break;
        }
        plan.waiting.push_back(a.key);
        break;
      }
      case action::execution_timer:
      case action::deadline_timer:
        break; // armed again by the live coordinator from the log
    }
  }
  if (auto ok = check_items(item_edits, plan.events, parent); !ok)
    return ok.error();
  if (!nested_edits.empty()) {
    units_run units;
    for (const auto& ev : parent) {
      if (ev.seq > at)
        break;
      units.add(ev);
    }
    for (const auto& ev : plan.events)
      units.add(ev);
    for (const auto& edit : nested_edits)
      if (auto ok = check_nested(edit, units, at); !ok)
        return ok.error();
  }
  if (!m.finished())
    blocked_units(m.view()["tasks"], "", plan.undecided);
  json reused = plan.reused;
  json to_run = json::array();
  for (const auto& [key, runner] : plan.to_run)
    to_run.push_back(json{{"task", key}, {"runs", runner}});
  json lineage = json::array({parent_id});
  for (auto& a : fork_lineage(parent))
    lineage.push_back(std::move(a));
  event marker{id, m.last_seq() + 1, now_us, events::forked,
               json_value{json{{"execution", parent_id},
                               {"seq", at},
                               {"edits", std::move(fork_edits_json)},
                               {"reused", std::move(reused)},
                               {"to_run", std::move(to_run)},
                               {"lineage", std::move(lineage)}}}};
  if (auto r = m.apply(marker); !r)
    return r.error();
  plan.events.push_back(std::move(marker));
  plan.index = m.info();
  return plan;
}

namespace {

// Whether `turn` ("<execution>/<key>/<attempt>") is a turn of `parent` or of
// one of its `ancestors`: the turns a fork's parent has as its own history.
bool of_lineage(const std::string& turn, const std::string& parent,
                const std::vector<std::string>& ancestors) {
  if (turn.rfind(parent + "/", 0) == 0)
    return true;
  for (const auto& a : ancestors)
    if (turn.rfind(a + "/", 0) == 0)
      return true;
  return false;
}

} // namespace

std::vector<std::string> fork_lineage(const std::vector<event>& log) {
  std::vector<std::string> out;
  for (const auto& ev : log) {
    if (ev.type != events::forked)
      continue;
    const auto& p = ev.payload.get();
    if (const auto& l = field(p, "lineage"); l.is_array()) {
      for (const auto& a : l)
        if (a.is_string())
          out.push_back(a.get<std::string>());
    } else if (auto parent = text(p, "execution"); !parent.empty()) {
      out.push_back(std::move(parent)); // a fork recorded before lineages
    }
    break;
  }
  return out;
}

std::vector<std::string> logs_of(const std::vector<event>& log) {
  agent_log_names names{true};
  for (const auto& ev : log)
    names.add(ev);
  return names.names();
}

std::vector<std::string> agent_log_names::names() const {
  auto out = names_;
  for (const auto& name : fork_logs_)
    if (std::find(out.begin(), out.end(), name) == out.end())
      out.push_back(name);
  return out;
}

std::vector<event> branch_agent_log(const std::vector<event>& agent_log,
                                    const std::string& parent,
                                    const std::string& fork,
                                    const std::vector<std::string>& reused,
                                    int64_t cut_us,
                                    const std::vector<std::string>& ancestors) {
  std::vector<event> out;
  if (agent_log.empty())
    return out;
  const auto own = "agent:" + parent + "/";
  const auto& name = agent_log.front().execution_id;
  // The parent's own log keeps its path under the fork; a log its agent
  // shares (memory scope `agent`, "agent:<name>", no execution in it)
  // becomes the fork's "<fork>/<name>", unless the parent is a fork itself:
  // its memory of that log is its own branch. Another execution's: not the
  // parent's to branch (a fork's parent names its own parent's logs).
  std::string target;
  if (name.rfind(own, 0) == 0)
    target = "agent:" + fork + "/" + name.substr(own.size());
  else if (ancestors.empty() && name.rfind("agent:", 0) == 0
           && name.find('/') == std::string::npos)
    target = "agent:" + fork + "/" + name.substr(6);
  else
    return out;
  // When each turn ended: other executions' turns are memory as of the
  // fork point when they had ended by then.
  std::map<std::string, int64_t> ended;
  for (const auto& ev : agent_log)
    if (ev.type == agent_events::turn_completed
        || ev.type == agent_events::turn_failed)
      ended[text(ev.payload.get(), "turn")] = ev.time_us;
  // The turns of the parent's history (its own, and those it took over
  // from its ancestors) are kept for the keys the fork reuses.
  auto kept = [&](const std::string& turn) {
    if (of_lineage(turn, parent, ancestors)) {
      for (const auto& key : reused) {
        if (turn.rfind(parent + "/" + key + "/", 0) == 0)
          return true;
        for (const auto& a : ancestors)
          if (turn.rfind(a + "/" + key + "/", 0) == 0)
            return true;
      }
      return false;
    }
    auto e = ended.find(turn);
    return e != ended.end() && e->second <= cut_us;
  };
  // The specs the kept turns name (agent_spec events have no turn): each
  // goes along, in its place before the first turn that names it.
  std::set<uint64_t> named;
  for (const auto& ev : agent_log) {
    const auto& p = ev.payload.get();
    if (ev.type == agent_events::turn_started && kept(text(p, "turn")))
      if (auto id = agent_spec_table::id_of(p); id != 0)
        named.insert(id);
  }
  // A request recorded relative to the log's previous one is recorded
  // again relative to the branch's previous one: turns are left out.
  agent_request_log asked;
  agent_request_log branch;
  for (const auto& ev : agent_log) {
    const auto& p = ev.payload.get();
    const llm_request* whole = asked.apply(ev);
    bool keep = ev.type == agent_events::spec
                  ? named.count(agent_spec_table::id_of(p)) != 0
                  : kept(text(p, "turn"));
    if (!keep)
      continue;
    event copy = ev;
    copy.execution_id = target;
    copy.seq = out.size() + 1;
    if (ev.type == agent_events::llm_requested) {
      if (whole && !p.contains("request")) {
        auto call = field(p, "call");
        copy.payload = json_value{branch.record(
          text(p, "turn"), call.is_number_unsigned() ? call.get<uint32_t>() : 0,
          *whole)};
      } else {
        // Recorded whole, it stays so; a change that does not read is
        // relative to nothing in the branch either.
        if (!whole && p.contains("delta")) {
          json q = p;
          q.erase("delta");
          copy.payload = json_value{std::move(q)};
        }
        branch.apply(copy);
      }
    }
    out.push_back(std::move(copy));
  }
  return out;
}

std::string fork_replies_log(const std::string& fork) {
  return "replies:" + fork;
}

std::vector<event> fork_replies(const std::vector<std::vector<event>>& logs,
                                const std::string& parent,
                                const std::string& fork, int64_t now_us,
                                const std::vector<std::string>& ancestors) {
  std::vector<event> out;
  std::set<std::string> seen;
  const auto log_name = fork_replies_log(fork);
  auto keep = [&](json entry) {
    if (seen.insert(dump_json(entry)).second)
      out.push_back(event{log_name, out.size() + 1, now_us, "llm_recorded",
                          json_value{std::move(entry)}});
  };
  for (const auto& log : logs) {
    if (log.empty())
      continue;
    std::map<std::string, json> scripts; // turn -> its agent's script
    std::map<std::pair<std::string, uint64_t>, json> asked;
    agent_spec_table specs;
    agent_request_log requests;
    for (const auto& ev : log) {
      const auto& p = ev.payload.get();
      specs.apply(ev);
      const llm_request* request = requests.apply(ev);
      // A parent that is a fork passes on the replies it could reuse.
      if (ev.type == "llm_recorded") {
        keep(p);
        continue;
      }
      auto turn = text(p, "turn");
      // A log its agent shares, or a fork's branch of one, holds other
      // executions' turns too.
      if (!of_lineage(turn, parent, ancestors))
        continue;
      if (ev.type == agent_events::turn_started) {
        agent_spec spec;
        const json* doc = specs.of(p);
        parse_agent_spec(text(p, "agent"), doc ? *doc : json{}, spec);
        scripts[turn] = spec.script;
      } else if (ev.type == agent_events::llm_requested) {
        // A request recorded whole goes as recorded; one recorded as what
        // changed, as rebuilt.
        asked[{turn, field(p, "call").is_number_unsigned()
                       ? field(p, "call").get<uint64_t>()
                       : 0}]
          = request && !p.contains("request") ? json(*request)
                                               : field(p, "request");
      } else if (ev.type == agent_events::llm_responded) {
        auto call = field(p, "call").is_number_unsigned()
                      ? field(p, "call").get<uint64_t>()
                      : 0;
        auto a = asked.find({turn, call});
        if (a == asked.end() || !p.contains("response"))
          continue;
        keep(json{{"request", a->second},
                  {"script", scripts[turn]},
                  {"response", p["response"]}});
      }
    }
  }
  return out;
}

std::vector<event> fork_logs(fork_plan& plan, const std::vector<event>& parent,
                             uint64_t at,
                             const std::vector<std::vector<event>>& read,
                             int64_t now_us) {
  std::vector<event> out;
  if (plan.events.empty() || plan.events.back().type != events::forked
      || parent.empty())
    return out;
  auto& marker = plan.events.back();
  const auto& fork = marker.execution_id;
  const auto& parent_id = parent.front().execution_id;
  // Other executions' turns count as memory when they had ended by the
  // fork-point event.
  int64_t cut_us = parent.back().time_us;
  if (at > 0 && at <= parent.size() && parent[at - 1].seq == at)
    cut_us = parent[at - 1].time_us;
  auto ancestors = fork_lineage(parent);
  json names = json::array();
  for (const auto& log : read) {
    auto branch = branch_agent_log(log, parent_id, fork, plan.reused, cut_us,
                                   ancestors);
    if (branch.empty())
      continue;
    names.push_back(branch.front().execution_id);
    for (auto& ev : branch)
      out.push_back(std::move(ev));
  }
  auto replies = fork_replies(read, parent_id, fork, now_us, ancestors);
  if (!replies.empty())
    names.push_back(fork_replies_log(fork));
  for (auto& ev : replies)
    out.push_back(std::move(ev));
  json p = marker.payload.get();
  p["logs"] = std::move(names);
  marker.payload = json_value{std::move(p)};
  return out;
}

json json_changes(const json& a, const json& b, size_t limit) {
  json out = json::array();
  std::function<void(const json&, const json&, const std::string&)> walk;
  walk = [&](const json& x, const json& y, const std::string& ptr) {
    if (out.size() >= limit || x == y)
      return;
    if (x.is_object() && y.is_object()) {
      for (auto& [k, v] : x.items()) {
        auto j = y.find(k);
        if (j == y.end()) {
          if (out.size() < limit)
            out.push_back(
              json{{"pointer", detail::child_pointer(ptr, k)}, {"a", v}});
        } else {
          walk(v, *j, detail::child_pointer(ptr, k));
        }
      }
      for (auto& [k, v] : y.items())
        if (!x.contains(k) && out.size() < limit)
          out.push_back(
            json{{"pointer", detail::child_pointer(ptr, k)}, {"b", v}});
      return;
    }
    if (x.is_array() && y.is_array()) {
      auto n = std::max(x.size(), y.size());
      for (size_t i = 0; i < n && out.size() < limit; ++i) {
        auto p = ptr + "/" + std::to_string(i);
        if (i >= x.size())
          out.push_back(json{{"pointer", p}, {"b", y[i]}});
        else if (i >= y.size())
          out.push_back(json{{"pointer", p}, {"a", x[i]}});
        else
          walk(x[i], y[i], p);
      }
      return;
    }
    out.push_back(json{{"pointer", ptr}, {"a", x}, {"b", y}});
  };
  walk(a, b, "");
  return out;
}

expected<execution_diff> diff_logs(const std::vector<event>& a,
                                   const std::vector<event>& b) {
  if (a.empty() || b.empty())
    return make_error(errc::not_found, "the execution has no events");
  log_differ d{a.front().execution_id, b.front().execution_id};
  for (size_t i = 0; i < std::max(a.size(), b.size()); ++i)
    if (auto r = d.add(i < a.size() ? &a[i] : nullptr,
                       i < b.size() ? &b[i] : nullptr);
        !r)
      return r.error();
  return d.finish();
}

log_differ::log_differ(const std::string& a, const std::string& b)
  : a_(a), b_(b) {
}

expected<void> log_differ::add(const event* x, const event* y) {
  ++added_;
  if (x)
    if (auto r = a_.apply(*x); !r)
      return r.error();
  if (y)
    if (auto r = b_.apply(*y); !r)
      return r.error();
  // Past the first divergence only the folds go on.
  if (first_.first_divergent_seq != 0 || (x && y && same_event(*x, *y)))
    return {};
  first_.first_divergent_seq = added_;
  first_.first_a = x ? event_json(*x) : json{};
  first_.first_b = y ? event_json(*y) : json{};
  return {};
}

execution_diff log_differ::finish() const {
  execution_diff out;
  out.first_divergent_seq = first_.first_divergent_seq;
  out.first_a = first_.first_a;
  out.first_b = first_.first_b;
  auto va = a_.view();
  auto vb = b_.view();
  auto tasks_of = [](const json& v) {
    std::map<std::string, json> out;
    for (const auto& t : v["tasks"])
      out[t["id"].get<std::string>()] = t;
    return out;
  };
  auto ta = tasks_of(va);
  auto tb = tasks_of(vb);
  auto result_of = [](const json& t) {
    json r{{"state", t["state"]}};
    for (const char* k : {"output", "error", "items"})
      if (t.contains(k))
        r[k] = t[k];
    return r;
  };
  for (const auto& [id, t] : ta) {
    auto j = tb.find(id);
    if (j == tb.end()) {
      out.tasks.push_back(json{{"task", id}, {"status", "only_a"}});
      continue;
    }
    auto changes = json_changes(result_of(t), result_of(j->second));
    if (changes.empty())
      out.tasks.push_back(json{{"task", id}, {"status", "same"}});
    else
      out.tasks.push_back(
        json{{"task", id}, {"status", "different"}, {"changes", changes}});
  }
  for (const auto& [id, t] : tb)
    if (!ta.count(id))
      out.tasks.push_back(json{{"task", id}, {"status", "only_b"}});
  out.usage_a = va.value("usage", json{});
  out.usage_b = vb.value("usage", json{});
  return out;
}

} // namespace cadre::workflow
