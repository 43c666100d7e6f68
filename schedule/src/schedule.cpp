#include "cadre/schedule/schedule.hpp"

#include <algorithm>
#include <chrono>
#include <cstdio>

#include <caf/atom.hpp>

namespace cadre::schedule {

namespace {

int64_t floor_div(int64_t a, int64_t b) {
  auto q = a / b;
  return (a % b != 0 && (a < 0) != (b < 0)) ? q - 1 : q;
}

// Errors that another try meets again: the firing ends as failed. Anything
// else (a timeout, an unavailable or overloaded node, storage) is retried.
bool permanent(const caf::error& err) {
  if (err.category() != caf::atom("cadre"))
    return false;
  switch (static_cast<errc>(err.code())) {
    case errc::invalid_input:
    case errc::invalid_workflow:
    case errc::invalid_config:
    case errc::tool_not_found:
    case errc::not_found:
    case errc::conflict:
    case errc::codec_error:
    case errc::internal:
      return true;
    default:
      return false;
  }
}

// The delay before the n-th retry of a submission (n from 1): 1 s, doubling,
// at most a minute.
int64_t retry_delay_ms(uint32_t n) {
  return std::min<int64_t>(int64_t{1000} << std::min<uint32_t>(n - 1, 6),
                           60'000);
}

caf::error bad_payload(const event& ev, const std::string& what) {
  return make_error(errc::codec_error,
                    "schedule log " + ev.execution_id + " event "
                      + std::to_string(ev.seq) + " (" + ev.type + "): "
                      + what);
}

} // namespace

const char* to_string(missed_policy x) {
  return x == missed_policy::skip ? "skip" : "run_once";
}

const char* to_string(overlap_policy x) {
  switch (x) {
    case overlap_policy::skip:
      return "skip";
    case overlap_policy::queue:
      return "queue";
    default:
      return "allow";
  }
}

bool from_string(std::string_view text, missed_policy& out) {
  for (auto x : {missed_policy::skip, missed_policy::run_once})
    if (text == to_string(x)) {
      out = x;
      return true;
    }
  return false;
}

bool from_string(std::string_view text, overlap_policy& out) {
  for (auto x :
       {overlap_policy::skip, overlap_policy::queue, overlap_policy::allow})
    if (text == to_string(x)) {
      out = x;
      return true;
    }
  return false;
}

json spec::to_json() const {
  json j{{"name", name},
         {"workflow", workflow},
         {"input", input},
         {"missed", to_string(missed)},
         {"overlap", to_string(overlap)}};
  if (every_ms > 0)
    j["every_ms"] = every_ms;
  else
    j["cron"] = cron;
  return j;
}

std::string log_name(const std::string& name) {
  return "schedule:" + name;
}

std::string firing_key(const std::string& name, int64_t due_us) {
  return "schedule:" + name + ":" + format_utc(due_us);
}

std::string format_utc(int64_t us) {
  using namespace std::chrono;
  constexpr int64_t day_ms = 86'400'000;
  auto ms = floor_div(us, 1000);
  auto day = floor_div(ms, day_ms);
  auto of_day = ms - day * day_ms;
  year_month_day ymd{sys_days{days{day}}};
  char buf[48];
  auto n = std::snprintf(buf, sizeof(buf), "%04d-%02u-%02uT%02d:%02d:%02d",
                         static_cast<int>(ymd.year()),
                         static_cast<unsigned>(ymd.month()),
                         static_cast<unsigned>(ymd.day()),
                         static_cast<int>(of_day / 3'600'000),
                         static_cast<int>(of_day / 60'000 % 60),
                         static_cast<int>(of_day / 1000 % 60));
  std::string out{buf, static_cast<size_t>(n)};
  if (of_day % 1000 != 0) {
    std::snprintf(buf, sizeof(buf), ".%03d", static_cast<int>(of_day % 1000));
    out += buf;
  }
  return out + "Z";
}

std::string format_duration(int64_t ms) {
  if (ms <= 0)
    return "0ms";
  std::string out;
  for (auto [unit, size] : {std::pair{"h", int64_t{3'600'000}},
                            std::pair{"m", int64_t{60'000}},
                            std::pair{"s", int64_t{1000}},
                            std::pair{"ms", int64_t{1}}})
    if (ms >= size) {
      out += std::to_string(ms / size) + unit;
      ms %= size;
    }
  return out;
}

// -- the machine ---------------------------------------------------------

machine::machine(spec s, std::optional<cron> c)
  : spec_(std::move(s)), cron_(std::move(c)), log_(log_name(spec_.name)) {
}

expected<machine> machine::make(spec s) {
  auto what = "schedule " + s.name + ": ";
  if (s.every_ms > 0) {
    if (!s.cron.empty())
      return make_error(errc::invalid_config,
                        what + "set either every or cron, not both");
    return machine{std::move(s), std::nullopt};
  }
  if (s.cron.empty())
    return make_error(errc::invalid_config,
                      what + "set every (a positive duration) or cron");
  auto c = cron::parse(s.cron);
  if (!c)
    return make_error(errc::invalid_config, what + message_of(c.error()));
  return machine{std::move(s), std::move(*c)};
}

std::optional<int64_t> machine::next_after(int64_t us) const {
  if (cron_)
    return cron_->next_after(us);
  auto period = spec_.every_ms * 1000;
  return (floor_div(us, period) + 1) * period;
}

expected<void> machine::apply(const event& ev) {
  if (ev.seq != last_seq_ + 1)
    return make_error(errc::conflict,
                      "schedule log " + log_ + ": event "
                        + std::to_string(ev.seq) + " follows "
                        + std::to_string(last_seq_));
  const auto& p = ev.payload.get();
  if (!p.is_object())
    return bad_payload(ev, "the payload is not an object");
  auto need = [&](const char* key, bool (json::*is)() const noexcept) {
    auto i = p.find(key);
    return i != p.end() && ((*i).*is)();
  };
  if (ev.type == events::configured) {
    if (!need("at_us", &json::is_number_integer))
      return bad_payload(ev, "at_us: expected an integer");
  } else if (ev.type == events::fired || ev.type == events::started
             || ev.type == events::failed || ev.type == events::skipped
             || ev.type == events::queued) {
    for (auto key : {"firing", "due_us"})
      if (!need(key, &json::is_number_integer))
        return bad_payload(ev, std::string{key} + ": expected an integer");
    if (ev.type == events::fired && !need("key", &json::is_string))
      return bad_payload(ev, "key: expected a string");
    if (ev.type == events::started && !need("execution", &json::is_string))
      return bad_payload(ev, "execution: expected a string");
    if (ev.type == events::skipped)
      for (auto key : {"last_due_us", "count"})
        if (!need(key, &json::is_number_integer))
          return bad_payload(ev, std::string{key} + ": expected an integer");
  } else {
    return bad_payload(ev, "unknown event type");
  }
  fold(ev);
  return {};
}

void machine::fold(const event& ev) {
  const auto& p = ev.payload.get();
  last_seq_ = ev.seq;
  auto advance = [this](int64_t due) {
    cursor_ = cursor_ ? std::max(*cursor_, due) : due;
  };
  if (ev.type == events::configured) {
    configured_ = p;
    configured_.erase("at_us");
    // A new or changed schedule starts its grid afresh: nothing before it
    // counts as missed.
    cursor_ = p["at_us"].get<int64_t>();
    return;
  }
  auto firing = p["firing"].get<uint64_t>();
  auto due = p["due_us"].get<int64_t>();
  if (ev.type == events::fired) {
    auto key = p["key"].get<std::string>();
    in_flight_[firing] = firing_ref{firing, due, key};
    if (queued_ && queued_->firing == firing)
      queued_.reset();
    advance(due);
    firings_ = std::max(firings_, firing);
    last_fired_ = json{{"firing", firing},
                       {"due_us", due},
                       {"key", key},
                       {"time_us", ev.time_us}};
    if (p.contains("missed"))
      last_fired_["missed"] = p["missed"];
  } else if (ev.type == events::started || ev.type == events::failed) {
    in_flight_.erase(firing);
    bool last = last_fired_.is_object()
                && last_fired_.value("firing", uint64_t{0}) == firing;
    if (ev.type == events::started) {
      active_ = p["execution"].get<std::string>();
      if (last)
        last_fired_["execution"] = active_;
    } else if (last) {
      last_fired_["error"] = p.value("code", std::string{}) + ": "
                             + p.value("message", std::string{});
    }
  } else if (ev.type == events::skipped) {
    advance(p["last_due_us"].get<int64_t>());
    auto count = p["count"].get<uint64_t>();
    firings_ = std::max(firings_, firing + (count > 0 ? count - 1 : 0));
    last_skipped_ = p;
    last_skipped_["time_us"] = ev.time_us;
  } else if (ev.type == events::queued) {
    advance(due);
    firings_ = std::max(firings_, firing);
    queued_ = firing_ref{firing, due, firing_key(spec_.name, due)};
  }
}

void machine::emit(step& s, const char* type, json payload, int64_t now_us) {
  event ev;
  ev.execution_id = log_;
  ev.seq = last_seq_ + 1;
  ev.time_us = now_us;
  ev.type = type;
  ev.payload = json_value{std::move(payload)};
  fold(ev);
  s.events.push_back(std::move(ev));
}

void machine::fire(step& s, const firing_ref& f, int64_t now_us,
                   std::optional<uint64_t> missed) {
  json p{{"firing", f.firing}, {"due_us", f.due_us}, {"key", f.key}};
  if (missed)
    p["missed"] = *missed;
  emit(s, events::fired, std::move(p), now_us);
  action a;
  a.kind = action::submit;
  a.firing = f.firing;
  a.due_us = f.due_us;
  a.key = f.key;
  s.actions.push_back(std::move(a));
}

step machine::start(int64_t now_us) {
  step s;
  checking_.clear();
  watching_.clear();
  active_ended_.reset();
  auto current = spec_.to_json();
  if (configured_ != current) {
    auto p = current;
    p["at_us"] = now_us;
    emit(s, events::configured, std::move(p), now_us);
  }
  // Recorded but maybe never submitted: the same key finds the execution
  // if the submission did go through.
  for (auto& [firing, f] : in_flight_) {
    f.attempts = 0;
    action a;
    a.kind = action::submit;
    a.firing = firing;
    a.due_us = f.due_us;
    a.key = f.key;
    s.actions.push_back(std::move(a));
  }
  if (queued_) {
    if (active_.empty()) {
      auto q = *queued_;
      fire(s, q, now_us);
    } else {
      watching_ = active_;
      action a;
      a.kind = action::watch;
      a.execution = active_;
      s.actions.push_back(std::move(a));
    }
  }
  decision_due_ = true;
  missed_mode_ = true;
  decide(s, now_us);
  return s;
}

step machine::tick(int64_t now_us) {
  step s;
  decision_due_ = true;
  decide(s, now_us);
  return s;
}

void machine::decide(step& s, int64_t now_us) {
  if (!decision_due_)
    return;
  auto done = [this] {
    decision_due_ = false;
    missed_mode_ = false;
    active_ended_.reset();
  };
  if (!cursor_) {
    done();
    return;
  }
  // The due times in (cursor, now]: first, the one before the last, last.
  auto first = next_after(*cursor_);
  if (!first || *first > now_us) {
    done();
    return;
  }
  int64_t last = *first;
  int64_t before_last = *first;
  uint64_t count = 1;
  if (!cron_) {
    auto period = spec_.every_ms * 1000;
    last = floor_div(now_us, period) * period;
    count = static_cast<uint64_t>((last - *first) / period) + 1;
    before_last = last - period;
  } else {
    for (auto n = next_after(last); n && *n <= now_us;
         n = next_after(last)) {
      before_last = last;
      last = *n;
      ++count;
    }
  }
  bool missed = missed_mode_;
  if (missed && spec_.missed == missed_policy::skip) {
    emit(s, events::skipped,
         json{{"firing", firings_ + 1},
              {"due_us", *first},
              {"last_due_us", last},
              {"count", count},
              {"reason", "missed"}},
         now_us);
    done();
    return;
  }
  bool running = false;
  if (spec_.overlap != overlap_policy::allow) {
    // Whether the previous execution still runs is known only once its
    // submission is answered and a check said so.
    if (!in_flight_.empty())
      return;
    if (!active_.empty()) {
      if (!active_ended_) {
        if (checking_.empty()) {
          checking_ = active_;
          action a;
          a.kind = action::check;
          a.execution = active_;
          s.actions.push_back(std::move(a));
        }
        return;
      }
      running = !*active_ended_;
    }
  }
  if (count > 1)
    emit(s, events::skipped,
         json{{"firing", firings_ + 1},
              {"due_us", *first},
              {"last_due_us", before_last},
              {"count", count - 1},
              {"reason", "missed"}},
         now_us);
  firing_ref f{firings_ + 1, last, firing_key(spec_.name, last)};
  if (!running) {
    fire(s, f, now_us, missed ? std::optional<uint64_t>{count} : std::nullopt);
  } else if (spec_.overlap == overlap_policy::queue && !queued_) {
    emit(s, events::queued,
         json{{"firing", f.firing}, {"due_us", f.due_us},
              {"execution", active_}},
         now_us);
    if (watching_ != active_) {
      watching_ = active_;
      action a;
      a.kind = action::watch;
      a.execution = active_;
      s.actions.push_back(std::move(a));
    }
  } else {
    emit(s, events::skipped,
         json{{"firing", f.firing},
              {"due_us", f.due_us},
              {"last_due_us", f.due_us},
              {"count", 1},
              {"reason", "overlap"},
              {"execution", active_}},
         now_us);
  }
  done();
}

step machine::started(uint64_t firing, const std::string& execution,
                      int64_t now_us) {
  step s;
  auto i = in_flight_.find(firing);
  if (i == in_flight_.end())
    return s;
  auto due = i->second.due_us;
  emit(s, events::started,
       json{{"firing", firing}, {"due_us", due}, {"execution", execution}},
       now_us);
  // A check of the previous execution says nothing about this one.
  active_ended_.reset();
  decide(s, now_us);
  return s;
}

step machine::submit_failed(uint64_t firing, const caf::error& err,
                            int64_t now_us) {
  step s;
  auto i = in_flight_.find(firing);
  if (i == in_flight_.end())
    return s;
  auto& f = i->second;
  if (!permanent(err)) {
    action a;
    a.kind = action::retry;
    a.firing = firing;
    a.due_us = f.due_us;
    a.key = f.key;
    a.delay_ms = retry_delay_ms(++f.attempts);
    s.actions.push_back(std::move(a));
    return s;
  }
  auto message = message_of(err);
  emit(s, events::failed,
       json{{"firing", firing},
            {"due_us", f.due_us},
            {"code", to_string(code_of(err))},
            {"message", message.empty() ? describe(err) : message}},
       now_us);
  decide(s, now_us);
  return s;
}

step machine::observed(const std::string& execution, bool ended,
                       int64_t now_us) {
  step s;
  if (ended && watching_ == execution)
    watching_.clear();
  if (checking_ == execution) {
    checking_.clear();
    if (execution == active_)
      active_ended_ = ended;
  }
  if (ended && execution == active_) {
    active_.clear();
    if (queued_) {
      auto q = *queued_;
      fire(s, q, now_us);
    }
  }
  decide(s, now_us);
  return s;
}

std::optional<int64_t> machine::next_due_us() const {
  if (decision_due_ || !cursor_)
    return std::nullopt;
  return next_after(*cursor_);
}

json machine::view(int64_t now_us) const {
  auto v = spec_.to_json();
  v["log"] = log_;
  if (spec_.every_ms > 0)
    v["every"] = format_duration(spec_.every_ms);
  auto from = cursor_ ? std::max(*cursor_, now_us) : now_us;
  if (auto next = next_after(from)) {
    v["next_due_us"] = *next;
    v["next_due"] = format_utc(*next);
  }
  v["firings"] = firings_;
  if (last_fired_.is_object()) {
    auto last = last_fired_;
    last["due"] = format_utc(last["due_us"].get<int64_t>());
    v["last"] = std::move(last);
  }
  if (queued_)
    v["queued"] = json{{"firing", queued_->firing},
                       {"due_us", queued_->due_us},
                       {"due", format_utc(queued_->due_us)}};
  if (last_skipped_.is_object())
    v["last_skipped"] = last_skipped_;
  return v;
}

} // namespace cadre::schedule
