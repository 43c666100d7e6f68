#include "replay_support.hpp"

#include "cadre/messages/json_text.hpp"
#include "cadre/persistence/event_store.hpp"

#include <algorithm>
#include <cctype>
#include <chrono>
#include <fstream>
#include <istream>
#include <iterator>
#include <optional>
#include <ostream>

#include <caf/actor_system.hpp>
#include <caf/scoped_actor.hpp>

#include "cadre/messages/execution.hpp"
#include "cadre/workflow/replay.hpp"

namespace cadre::runtime {

namespace {

std::string dumped(const json& j) {
  return dump_json(j);
}

// The conversation an agent log holds up to `until_us`: prompts, replies,
// tool calls and results, as far as they had got.
json conversation(const std::vector<event>& log, int64_t until_us) {
  json out = json::array();
  for (const auto& ev : log) {
    if (ev.time_us > until_us)
      break;
    const auto& p = ev.payload.get();
    if (ev.type == "agent_message")
      out.push_back(json{{"seq", ev.seq}, {"role", "user"},
                         {"content", p.value("message", json{})}});
    else if (ev.type == "llm_responded")
      out.push_back(
        json{{"seq", ev.seq}, {"role", "assistant"},
             {"content", p.contains("response")
                             && p["response"].contains("message")
                           ? p["response"]["message"].value("content", json{})
                           : json{}}});
    else if (ev.type == "tool_called")
      out.push_back(json{{"seq", ev.seq}, {"role", "tool_call"},
                         {"name", p.value("name", json{})},
                         {"arguments", p.value("arguments", json{})}});
    else if (ev.type == "tool_result")
      out.push_back(json{{"seq", ev.seq}, {"role", "tool"},
                         {"name", p.value("name", json{})},
                         {"content", p.contains("output") ? p["output"]
                                                          : p.value("error",
                                                                    json{})}});
  }
  return out;
}

// Ids the HTTP routes can name.
bool addressable(const std::string& id) {
  return !id.empty() && id.size() <= 128
         && std::all_of(id.begin(), id.end(), [](char c) {
              return std::isalnum(static_cast<unsigned char>(c)) || c == '.'
                     || c == '_' || c == '-';
            });
}

} // namespace

expected<std::vector<event>> read_execution(const log_reader& read,
                                            const std::string& id) {
  auto log = read(id);
  if (!log)
    return log.error();
  if (log->empty())
    return make_error(errc::not_found,
                      "no execution '" + id + "' in the store");
  return log;
}

log_reader store_reader(persistence::event_store& store,
                        uint64_t snapshot_every) {
  log_reader r;
  r.read = [&store](const std::string& name, uint64_t from, uint64_t max) {
    return store.read(name, from, max);
  };
  r.last_seq = [&store](const std::string& name) {
    return store.last_seq(name);
  };
  r.snapshot_every = snapshot_every;
  return r;
}

expected<void>
log_reader::each(const std::string& name, uint64_t from, uint64_t to,
                 const std::function<expected<bool>(const event&)>& fn) const {
  // Small enough to stay in cache (a 100,000-event log read whole spent
  // half of `inspect` freeing itself), big enough that the iterator each
  // read opens costs little (256 and 4096 measured slower).
  constexpr uint64_t chunk = 1024;
  for (auto seq = std::max<uint64_t>(from, 1); to == 0 || seq <= to;) {
    auto n = to == 0 ? chunk : std::min(chunk, to - seq + 1);
    auto evs = read(name, seq, n);
    if (!evs)
      return evs.error();
    for (const auto& ev : *evs) {
      auto more = fn(ev);
      if (!more)
        return more.error();
      if (!*more)
        return {};
    }
    if (evs->size() < n)
      return {};
    seq += n;
  }
  return {};
}

expected<workflow::machine> machine_at(const log_reader& read,
                                       const std::string& id, uint64_t at) {
  auto last = read.last_seq(id);
  if (!last)
    return last.error();
  if (*last == 0)
    return make_error(errc::not_found, "no execution '" + id + "' in the store");
  if (at > *last)
    return make_error(errc::not_found,
                      "execution " + id + " has " + std::to_string(*last)
                        + " events; there is no event " + std::to_string(at));
  auto target = at == 0 ? *last : at;
  // Folds the events after the machine's last one up to `target`, as they
  // are read: the log is never held whole.
  auto fold_to_target = [&](workflow::machine& m) -> expected<void> {
    return read.each(id, m.last_seq() + 1, target,
                     [&m](const event& ev) -> expected<bool> {
                       if (auto r = m.apply(ev); !r)
                         return r.error();
                       return true;
                     });
  };
  if (auto every = read.snapshot_every; every > 0)
    // Not every multiple has a snapshot (one written before paged
    // snapshots, or past a multiple a sub-workflow's events crossed may
    // lie just past `target`): look back a little.
    for (const auto& name : workflow::snapshot_candidates(id, target, every)) {
      auto snap = read.read(name, 1, 1);
      if (!snap || snap->empty())
        continue;
      const auto& state = snap->front().payload.get();
      auto seq = state.is_object() ? state.value("seq", uint64_t{0}) : 0;
      if (seq == 0 || seq > target)
        continue;
      auto m = workflow::restore_snapshot(id, state, read.read);
      if (m && fold_to_target(*m))
        return m;
      break; // a snapshot that does not restore: fold the log instead
    }
  workflow::machine m{id};
  if (auto r = fold_to_target(m); !r)
    return r.error();
  return m;
}

expected<json> execution_state(const log_reader& read, const std::string& id,
                               uint64_t at) {
  auto m = machine_at(read, id, at);
  if (!m)
    return m.error();
  auto v = m->view();
  auto until = v["updated_us"].get<int64_t>();
  json agents = json::object();
  for (const auto& name : workflow::agent_logs_of(*m)) {
    auto alog = read(name);
    if (!alog)
      return alog.error();
    agents[name] = conversation(*alog, until);
  }
  if (!agents.empty())
    v["agents"] = std::move(agents);
  return v;
}

expected<json> execution_diff(const log_reader& read, const std::string& a,
                              const std::string& b) {
  uint64_t last[2] = {0, 0};
  for (int i = 0; i < 2; ++i) {
    const auto& id = i == 0 ? a : b;
    auto n = read.last_seq(id);
    if (!n)
      return n.error();
    if (*n == 0)
      return make_error(errc::not_found,
                        "no execution '" + id + "' in the store");
    last[i] = *n;
  }
  // The logs are read side by side a chunk at a time and folded as they
  // come: memory holds two chunks and two states, not two logs.
  constexpr uint64_t chunk = 256;
  workflow::log_differ d{a, b};
  for (uint64_t seq = 1; seq <= std::max(last[0], last[1]); seq += chunk) {
    std::vector<event> evs[2];
    for (int i = 0; i < 2; ++i)
      if (seq <= last[i]) {
        auto got = read.read(i == 0 ? a : b, seq, chunk);
        if (!got)
          return got.error();
        evs[i] = std::move(*got);
      }
    for (size_t k = 0; k < std::max(evs[0].size(), evs[1].size()); ++k)
      if (auto r = d.add(k < evs[0].size() ? &evs[0][k] : nullptr,
                         k < evs[1].size() ? &evs[1][k] : nullptr);
          !r)
        return r.error();
  }
  auto diff = d.finish();
  return json{{"a", a},
              {"b", b},
              {"same", diff.same()},
              {"first_divergent_seq", diff.first_divergent_seq},
              {"first_a", diff.first_a},
              {"first_b", diff.first_b},
              {"tasks", diff.tasks},
              {"usage_a", diff.usage_a},
              {"usage_b", diff.usage_b}};
}

const std::vector<event>* bundle::log(const std::string& name) const {
  for (const auto& [n, evs] : logs)
    if (n == name)
      return &evs;
  return nullptr;
}

expected<void> write_bundle(const log_reader& read, const std::string& id,
                            std::ostream& out) {
  auto last = read.last_seq(id);
  if (!last)
    return last.error();
  if (*last == 0)
    return make_error(errc::not_found,
                      "no execution '" + id + "' in the store");
  // Every log the execution uses: its agents' logs of every memory scope,
  // and a fork's branches of them and its recorded replies. The first line
  // names them, so the log is walked once for the names and once to write.
  workflow::agent_log_names used{true};
  if (auto ok = read.each(id, 1, *last,
                          [&used](const event& ev) -> expected<bool> {
                            used.add(ev);
                            return true;
                          });
      !ok)
    return ok.error();
  // A named log that was never written (a fork's that had nothing to keep)
  // is left out.
  std::vector<std::string> names;
  for (auto& name : used.names()) {
    auto n = read.last_seq(name);
    if (!n)
      return n.error();
    if (*n > 0)
      names.push_back(std::move(name));
  }
  out << dumped(json{{"cadre", "export"},
                     {"format", 1},
                     {"execution", id},
                     {"logs", names}})
      << '\n';
  // A line as dump_json of {log, payload, seq, time_us, type} writes it
  // (its keys in that order), without copying the payload into an object.
  auto write = [&out, &read](const std::string& name,
                             uint64_t to) -> expected<void> {
    auto quoted = dumped(json(name));
    std::string line;
    return read.each(name, 1, to, [&](const event& ev) -> expected<bool> {
      line.assign("{\"log\":").append(quoted).append(",\"payload\":");
      line.append(dump_json(ev.payload.get()))
        .append(",\"seq\":")
        .append(std::to_string(ev.seq))
        .append(",\"time_us\":")
        .append(std::to_string(ev.time_us))
        .append(",\"type\":")
        .append(dumped(json(ev.type)))
        .append("}\n");
      out << line;
      if (!out)
        return make_error(errc::storage_error, "cannot write the bundle");
      return true;
    });
  };
  // The execution's log as far as the names were taken, so that a running
  // execution's bundle names every log its events use.
  if (auto ok = write(id, *last); !ok)
    return ok;
  for (const auto& name : names)
    if (auto ok = write(name, 0); !ok)
      return ok;
  if (!out)
    return make_error(errc::storage_error, "cannot write the bundle");
  return {};
}

bundle_reader::bundle_reader(std::istream& in, std::string name)
  : in_(&in), name_(std::move(name)) {
}

bundle_reader::bundle_reader(std::string name) : name_(std::move(name)) {
}

caf::error bundle_reader::bad(const std::string& what) const {
  return make_error(errc::invalid_input,
                    name_ + ":" + std::to_string(line_) + ": " + what);
}

expected<json> bundle_reader::object() {
  json_text_error where;
  auto j = parse_json(text_, &where);
  if (!j) {
    column_ = static_cast<size_t>(where.column);
    return make_error(errc::invalid_input,
                      name_ + ":" + std::to_string(line_) + ":"
                        + std::to_string(column_)
                        + ": not a JSON object: " + where.reason);
  }
  if (!j->is_object())
    return bad(std::string{"not a JSON object (a JSON "} + j->type_name()
               + ")");
  return std::move(*j);
}

expected<json> bundle_reader::read_object() {
  while (in_ && std::getline(*in_, text_)) {
    ++line_;
    column_ = 0;
    if (!text_.empty())
      return object();
  }
  return json{};
}

expected<void> bundle_reader::header(const json& j) {
  if (j.value("cadre", std::string{}) != "export"
      || !j["execution"].is_string())
    return bad("not a cadre export (its first line names the execution)");
  if (j.value("format", 0) != 1)
    return bad("unsupported export format " + j["format"].dump());
  execution_ = j["execution"].get<std::string>();
  started_ = true;
  return {};
}

expected<void> bundle_reader::start() {
  auto j = read_object();
  if (!j)
    return j.error();
  if (j->is_null()) {
    line_ = 0; // no line is at fault
    return make_error(errc::invalid_input, name_ + ": empty");
  }
  return header(*j);
}

expected<void> bundle_reader::event_of(json& j, event& ev) {
  if (!j["log"].is_string() || !j["seq"].is_number_unsigned()
      || !j["type"].is_string())
    return bad("an event needs log, seq and type");
  auto log = j["log"].get<std::string>();
  if (log != log_) {
    if (std::find(done_.begin(), done_.end(), log) != done_.end())
      return bad("the events of log '" + log + "' are not together");
    if (!log_.empty())
      done_.push_back(std::move(log_));
    log_ = std::move(log);
    seq_ = 0;
  }
  ev.execution_id = log_;
  ev.seq = j["seq"].get<uint64_t>();
  if (ev.seq != seq_ + 1)
    return bad("log '" + log_ + "': expected seq " + std::to_string(seq_ + 1)
               + ", got " + std::to_string(ev.seq));
  seq_ = ev.seq;
  ev.time_us = j.value("time_us", int64_t{0});
  ev.type = j["type"].get<std::string>();
  ev.payload = json_value{j.value("payload", json{})};
  return {};
}

expected<bool> bundle_reader::next(event& ev) {
  auto got = read_object();
  if (!got)
    return got.error();
  if (got->is_null())
    return false;
  if (auto ok = event_of(*got, ev); !ok)
    return ok.error();
  return true;
}

expected<bool> bundle_reader::take(std::string_view line, event& ev) {
  text_.assign(line); // its buffer kept from line to line
  ++line_;
  column_ = 0;
  if (text_.empty())
    return false;
  auto j = object();
  if (!j)
    return j.error();
  if (!started_) {
    if (auto ok = header(*j); !ok)
      return ok.error();
    return false;
  }
  if (auto ok = event_of(*j, ev); !ok)
    return ok.error();
  return true;
}

expected<void>
walk_bundle_file(const std::string& path,
                 const std::function<expected<bool>(const event&)>& fn) {
  std::ifstream in{path};
  bundle_reader r{in, path};
  if (auto ok = r.start(); !ok)
    return ok.error();
  bool any = false;
  event ev;
  for (;;) {
    auto more = r.next(ev);
    if (!more)
      return more.error();
    if (!*more)
      break;
    if (ev.execution_id != r.execution())
      continue;
    any = true;
    auto go_on = fn(ev);
    if (!go_on)
      return go_on.error();
    if (!*go_on)
      return {};
  }
  if (!any)
    return make_error(errc::invalid_input,
                      path + ": no events of execution " + r.execution());
  return {};
}

expected<bundle> read_bundle(std::istream& in, const std::string& name,
                             size_t* bad_line) {
  bundle b;
  bundle_reader r{in, name};
  if (bad_line)
    *bad_line = 0;
  auto failed = [&](caf::error err) {
    // "NAME: empty" is no line's fault.
    if (bad_line && r.line() > 0)
      *bad_line = r.line();
    return err;
  };
  if (auto ok = r.start(); !ok)
    return failed(ok.error());
  b.execution = r.execution();
  event ev;
  for (;;) {
    auto more = r.next(ev);
    if (!more)
      return failed(more.error());
    if (!*more)
      break;
    if (b.logs.empty() || b.logs.back().first != ev.execution_id)
      b.logs.emplace_back(ev.execution_id, std::vector<event>{});
    b.logs.back().second.push_back(std::move(ev));
  }
  if (!b.log(b.execution))
    return make_error(errc::invalid_input,
                      name + ": no events of execution " + b.execution);
  return b;
}

namespace {

// One request to the store, answered or failed within `deadline`.
template <class R, class... Ts>
expected<R> ask_store(caf::scoped_actor& self, const event_store_actor& store,
                      caf::timespan deadline, Ts... xs) {
  expected<R> out{R{}};
  self->request(store, deadline, std::move(xs)...)
    .receive([&out](R& x) { out = std::move(x); },
             [&out](caf::error& err) { out = std::move(err); });
  return out;
}

} // namespace

struct bundle_import::state {
  state(caf::actor_system& sys, const event_store_actor& st, std::string nm,
        caf::timespan dl)
    : self(sys), store(st), name(std::move(nm)), deadline(dl), r(name) {
  }

  caf::scoped_actor self;
  event_store_actor store;
  std::string name;
  caf::timespan deadline;
  bundle_reader r;
  std::string partial; // a line not yet ended
  // Set once the import is over: finished, or its error (what it wrote
  // removed).
  bool finished = false;
  std::optional<caf::error> failed;
  size_t bad_line = 0;
  size_t bad_column = 0;

  // From the first line on.
  std::string id;
  std::optional<workflow::machine> m;
  workflow::agent_log_names uses{true};
  std::vector<std::string> used;    // the execution's logs, once read
  std::vector<std::string> created; // the logs written, removed on failure
  // Where the import names each log before it is created, so that what a
  // killed import wrote is found and removed by the next node start
  // (event_store::erase_killed_imports); its last seq written.
  std::string record;
  uint64_t recorded = 0;
  json skipped = json::array();
  bool checked = false;

  // The log being read, its events not written yet (the execution's last
  // one is always held back: its index entry goes with it, last of all).
  std::string log;
  bool first = true;    // nothing of `log` written yet
  bool keeping = false; // `log` is an agent log the store has
  std::vector<event> batch;
  size_t batch_bytes = 0;
  std::vector<event> held; // the execution's last batch
  uint64_t events = 0;
  size_t agent_logs = 0;

  // What is wrong with the bundle, at the line read last.
  caf::error bad(caf::error err) {
    if (r.line() > 0) {
      bad_line = r.line();
      bad_column = r.column();
    }
    return err;
  }

  caf::error bad_here(const std::string& what) {
    return bad(make_error(errc::invalid_input,
                          name + ":" + std::to_string(r.line()) + ": "
                            + what));
  }

  // Writes `evs` of log `lg` (its first events when `first_events`), with
  // the execution's index entry when `index`. An agent log the store has
  // already (memory scope `agent`) keeps its own history: false.
  expected<bool> append(const std::string& lg, std::vector<event> evs,
                        bool first_events, bool index) {
    if (!checked) {
      // Before the first write, so that a bundle that is bad early costs
      // the store nothing.
      checked = true;
      auto known = ask_store<execution_info>(self, store, deadline,
                                             get_atom_v, id);
      if (known)
        return make_error(errc::conflict,
                          "execution " + id + " is already in the store");
      if (code_of(known.error()) != errc::not_found)
        return known.error();
      auto last = ask_store<uint64_t>(self, store, deadline, get_atom_v,
                                      read_atom_v, id);
      if (!last)
        return last.error();
      if (*last > 0)
        return make_error(errc::conflict,
                          "the store has " + std::to_string(*last)
                            + " events under " + id
                            + " but no execution of that id (an import "
                              "that did not finish?)");
    }
    append_request req;
    if (first_events && !index) {
      // In the same write as the log's first events: a log is named
      // exactly when it was created, never one the store had before.
      auto now = std::chrono::system_clock::now().time_since_epoch();
      req.events.reserve(evs.size() + 1);
      req.events.push_back(event{
        record, recorded + 1,
        std::chrono::duration_cast<std::chrono::microseconds>(now).count(),
        std::string{persistence::import_record_type}, json{{"log", lg}}});
      std::move(evs.begin(), evs.end(), std::back_inserter(req.events));
    } else {
      req.events = std::move(evs);
    }
    if (index)
      req.index.push_back(m->info());
    auto done = ask_store<uint64_t>(self, store, deadline, append_atom_v,
                                    std::move(req));
    if (!done) {
      if (first_events && lg != id
          && code_of(done.error()) == errc::conflict) {
        skipped.push_back(lg);
        return false;
      }
      return done.error();
    }
    if (first_events)
      created.push_back(lg);
    if (first_events && !index)
      ++recorded;
    return true;
  }

  // Removes what was written before `err`, so that no part of the
  // execution stays behind; the import is over.
  caf::error fail(caf::error err) {
    if (recorded > 0)
      created.insert(created.begin(), record); // last: it names the others
    for (auto i = created.rbegin(); i != created.rend(); ++i)
      if (auto gone = ask_store<uint64_t>(self, store, deadline, delete_atom_v,
                                          read_atom_v, *i);
          !gone) {
        err = make_error(code_of(err),
                         message_of(err) + "; removing what the import "
                           "wrote failed: " + message_of(gone.error()));
        break;
      }
    created.clear();
    recorded = 0;
    failed = err;
    return err;
  }

  // Writes the batch but, for the execution's log, its last event.
  expected<void> flush() {
    std::vector<event> rest;
    if (log == id && batch.size() < 2)
      return {}; // one big event: held back, written with the next
    if (log == id) {
      rest.push_back(std::move(batch.back()));
      batch.pop_back();
    }
    auto wrote = append(log, std::move(batch), first, false);
    batch = std::move(rest);
    batch_bytes = 0;
    if (!wrote)
      return wrote.error();
    keeping = !*wrote;
    first = false;
    if (keeping)
      batch.clear();
    return {};
  }

  // The first line read: the execution it names.
  expected<void> begin() {
    id = r.execution();
    if (!addressable(id))
      return bad_here("execution id '" + id.substr(0, 140)
                      + "': expected 1 to 128 letters, digits, '.', '_' or "
                        "'-'");
    m.emplace(id);
    record = std::string{persistence::import_record_prefix} + id;
    return {};
  }

  expected<void> add(event ev) {
    if (ev.execution_id != log) {
      if (log.empty()) {
        if (ev.execution_id != id)
          return bad_here("the events of execution " + id
                          + " must come first, before log '"
                          + ev.execution_id + "'");
      } else {
        if (log == id) {
          used = uses.names();
          held = std::move(batch);
        } else if (!batch.empty() && !keeping) {
          if (auto ok = flush(); !ok)
            return ok;
        }
        batch.clear();
        batch_bytes = 0;
        if (std::find(used.begin(), used.end(), ev.execution_id)
            == used.end())
          return bad_here("log '" + ev.execution_id
                          + "' is not a log of execution " + id
                          + " (its agent logs, a fork's branches of them "
                            "and its recorded replies)");
        ++agent_logs;
        first = true;
        keeping = false;
      }
      log = ev.execution_id;
    }
    if (log == id) {
      if (auto ok = m->apply(ev); !ok)
        return bad_here("execution " + id
                        + " does not fold: " + message_of(ok.error()));
      uses.add(ev);
      ++events;
    }
    if (keeping)
      return {};
    batch_bytes += r.line_size();
    batch.push_back(std::move(ev));
    if (batch.size() > import_batch_events
        || batch_bytes >= import_batch_bytes)
      return flush();
    return {};
  }

  // One whole line of the bundle.
  expected<void> line(std::string_view text) {
    event ev;
    bool was_started = r.started();
    auto got = r.take(text, ev);
    if (!got)
      return bad(got.error());
    if (!*got)
      return r.started() && !was_started ? begin() : expected<void>{};
    return add(std::move(ev));
  }

  // The line being read when the bundle stops short.
  size_t reading() const {
    return r.line() + (partial.empty() ? 0 : 1);
  }

  expected<void> feed(std::string_view bytes) {
    while (!bytes.empty()) {
      auto end = bytes.find('\n');
      auto piece = bytes.substr(0, end);
      if (partial.size() + piece.size() > import_max_line_bytes) {
        bad_line = r.line() + 1;
        return make_error(errc::invalid_input,
                          name + ":" + std::to_string(bad_line)
                            + ": a line of over "
                            + std::to_string(import_max_line_bytes)
                            + " bytes (an event is far smaller)");
      }
      if (end == std::string_view::npos) {
        partial.append(piece);
        return {};
      }
      bytes.remove_prefix(end + 1);
      // A line within the piece is read where it is; one begun in an
      // earlier piece from `partial`.
      if (!partial.empty()) {
        partial.append(piece);
        piece = partial;
      }
      auto ok = line(piece);
      partial.clear();
      if (!ok)
        return ok;
    }
    return {};
  }

  expected<json> finish() {
    if (!partial.empty()) {
      auto ok = line(partial);
      partial.clear();
      if (!ok)
        return ok.error();
    }
    if (!r.started())
      return make_error(errc::invalid_input, name + ": empty");
    if (log.empty())
      return make_error(errc::invalid_input,
                        name + ": no events of execution " + id);
    if (log == id) {
      held = std::move(batch);
    } else if (!batch.empty() && !keeping) {
      if (auto ok = flush(); !ok)
        return ok.error();
    }
    // Last, the execution's last events with its index entry: only now is
    // it in the store.
    if (auto ok = append(id, std::move(held),
                         !std::count(created.begin(), created.end(), id),
                         true);
        !ok)
      return ok.error();
    // The execution is whole: its record names nothing to remove any more.
    // A record left by a failure here is removed by the next node start,
    // which sees the execution in the index.
    if (recorded > 0)
      (void) ask_store<uint64_t>(self, store, deadline, delete_atom_v,
                                 read_atom_v, record);
    json out{{"execution", id},
             {"events", events},
             {"agent_logs", agent_logs},
             {"status", m->info().status}};
    if (!skipped.empty())
      out["skipped_agent_logs"] = std::move(skipped);
    return out;
  }
};

bundle_import::bundle_import(caf::actor_system& sys,
                             const event_store_actor& store, std::string name,
                             caf::timespan deadline)
  : st_(std::make_unique<state>(sys, store, std::move(name), deadline)) {
}

bundle_import::~bundle_import() {
  // Unfinished (an exception, a caller gone): nothing of it may stay.
  if (!st_->finished && !st_->failed)
    (void) abandon("the import was stopped");
}

expected<void> bundle_import::feed(std::string_view bytes) {
  auto& s = *st_;
  if (s.failed)
    return *s.failed;
  if (s.finished)
    return make_error(errc::internal, s.name + ": fed after its end");
  if (auto ok = s.feed(bytes); !ok)
    return s.fail(ok.error());
  return {};
}

expected<json> bundle_import::finish() {
  auto& s = *st_;
  if (s.failed)
    return *s.failed;
  if (s.finished)
    return make_error(errc::internal, s.name + ": finished twice");
  auto done = s.finish();
  if (!done)
    return s.fail(done.error());
  s.finished = true;
  return done;
}

caf::error bundle_import::abandon(const std::string& why) {
  auto& s = *st_;
  if (s.failed)
    return *s.failed;
  if (s.finished)
    return make_error(errc::internal, s.name + ": abandoned after its end");
  s.bad_line = s.reading();
  return s.fail(make_error(errc::invalid_input,
                           s.name + ":" + std::to_string(s.bad_line)
                             + ": the bundle ended early: " + why));
}

size_t bundle_import::bad_line() const {
  return st_->bad_line;
}

size_t bundle_import::bad_column() const {
  return st_->bad_column;
}

expected<json> import_bundle(caf::actor_system& sys,
                             const event_store_actor& store, std::istream& in,
                             const std::string& name, caf::timespan deadline,
                             size_t* bad_line) {
  bundle_import imp{sys, store, name, deadline};
  auto out = [&](auto result) {
    if (bad_line)
      *bad_line = imp.bad_line();
    return result;
  };
  std::vector<char> buf(size_t{64} << 10);
  while (in) {
    in.read(buf.data(), static_cast<std::streamsize>(buf.size()));
    auto n = static_cast<size_t>(in.gcount());
    if (n == 0)
      break;
    if (auto ok = imp.feed(std::string_view{buf.data(), n}); !ok)
      return out(expected<json>{ok.error()});
  }
  if (in.bad())
    return out(expected<json>{imp.abandon("cannot read")});
  return out(imp.finish());
}

} // namespace cadre::runtime
