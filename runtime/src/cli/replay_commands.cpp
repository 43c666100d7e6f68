#include "cli/replay_commands.hpp"

#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <optional>
#include <sstream>

#include <caf/actor_system.hpp>

#include "cadre/messages/json_text.hpp"
#include "cadre/actors/deadlines.hpp"
#include "cadre/persistence/event_store.hpp"
#include "cadre/runtime/node.hpp"
#include "cadre/workflow/definition.hpp"
#include "cadre/workflow/replay.hpp"
#include "cli/output.hpp"
#include "replay_support.hpp"

namespace cadre::runtime::cli {

namespace {

std::string short_json(const json& x, size_t max = 60) {
  auto s = dump_json(x);
  if (s.size() > max)
    s = s.substr(0, max - 3) + "...";
  return s;
}

// `cadre inspect` for a person: status, then a row per task.
void print_state(const json& v) {
  std::printf("execution %s  %s@%s  %s  (after event %llu)\n",
              v["id"].get<std::string>().c_str(),
              v["workflow"].get<std::string>().c_str(),
              v["version"].get<std::string>().c_str(),
              v["status"].get<std::string>().c_str(),
              static_cast<unsigned long long>(v["seq"].get<uint64_t>()));
  std::printf("  input  %s\n", short_json(v["input"], 100).c_str());
  for (const auto& t : v["tasks"]) {
    std::string what = t["state"].get<std::string>();
    if (t.value("attempt", 0) > 1)
      what += " (attempt " + std::to_string(t["attempt"].get<int>()) + ")";
    std::string detail;
    if (t.contains("output"))
      detail = "output " + short_json(t["output"]);
    else if (t.contains("error"))
      detail = "error " + t["error"].value("code", std::string{}) + ": "
               + t["error"].value("message", std::string{});
    else if (t.contains("prompt"))
      detail = "asks " + short_json(t["prompt"]);
    else if (t.contains("input"))
      detail = "input " + short_json(t["input"]);
    std::printf("  %-16s %-9s %-22s %s\n", t["id"].get<std::string>().c_str(),
                t["kind"].get<std::string>().c_str(), what.c_str(),
                detail.c_str());
    if (t.contains("items"))
      for (size_t i = 0; i < t["items"].size(); ++i) {
        const auto& it = t["items"][i];
        std::printf("    [%zu] %-18s %s\n", i,
                    it["state"].get<std::string>().c_str(),
                    it.contains("output")
                      ? ("output " + short_json(it["output"])).c_str()
                      : "");
      }
  }
  for (const auto& w : v["timers"])
    std::printf("  timer  %s %s\n", w["kind"].get<std::string>().c_str(),
                w.value("task", std::string{}).c_str());
  if (v.contains("output"))
    std::printf("  output %s\n", short_json(v["output"], 200).c_str());
  if (v.contains("error"))
    std::printf("  error  %s\n", v["error"].get<std::string>().c_str());
  if (v.contains("agents"))
    for (const auto& [name, conv] : v["agents"].items())
      std::printf("  agent  %s: %zu messages\n", name.c_str(), conv.size());
}

void print_step(const json& r) {
  std::string changes;
  for (const auto& c : r["changes"]) {
    if (!changes.empty())
      changes += ", ";
    if (c.contains("task"))
      changes += c["task"].get<std::string>() + ": "
                 + c["from"].get<std::string>() + " -> "
                 + c["to"].get<std::string>();
    else
      changes += "execution: " + c["from"].get<std::string>() + " -> "
                 + c["execution"].get<std::string>();
  }
  std::printf("%6llu  %-20s %-14s %s\n",
              static_cast<unsigned long long>(r["seq"].get<uint64_t>()),
              r["type"].get<std::string>().c_str(),
              r.value("task", std::string{}).c_str(), changes.c_str());
}

// Interactive stepping on a terminal: each step shows what its event
// changed as the piped records say it (stepper::changes_at: the event
// folded onto the state before it); a step forward folds one event, a step
// back or a jump at most a stepper's interval from a snapshot it kept.
// Events are read as the walk reaches them.
int step_interactively(workflow::stepper& walk) {
  uint64_t at = 1;
  const auto size = walk.size();
  auto show = [&](uint64_t seq) {
    auto r = walk.changes_at(seq);
    if (!r) {
      print_error(message_of(r.error()));
      return;
    }
    print_step(*r);
  };
  std::printf("%llu events; n(ext), b(ack), g SEQ, t TASK (next event of "
              "TASK), p(ayload), s(tate), q(uit)\n",
              static_cast<unsigned long long>(size));
  show(at);
  std::string line;
  while (std::printf("[%llu/%llu] > ", static_cast<unsigned long long>(at),
                     static_cast<unsigned long long>(size)),
         std::fflush(stdout), std::getline(std::cin, line)) {
    std::istringstream words{line};
    std::string cmd;
    words >> cmd;
    if (cmd.empty() || cmd == "n") {
      if (at < size)
        show(++at);
      else
        std::printf("at the last event\n");
    } else if (cmd == "b") {
      if (at > 1)
        show(--at);
      else
        std::printf("at the first event\n");
    } else if (cmd == "g") {
      uint64_t seq = 0;
      words >> seq;
      if (seq >= 1 && seq <= size)
        show(at = seq);
      else
        std::printf("no event %llu (1..%llu)\n",
                    static_cast<unsigned long long>(seq),
                    static_cast<unsigned long long>(size));
    } else if (cmd == "t") {
      std::string task;
      words >> task;
      uint64_t found = 0;
      for (auto next = at + 1; next <= size && found == 0; ++next) {
        auto ev = walk.event_at(next);
        if (!ev) {
          print_error(message_of(ev.error()));
          break;
        }
        if ((*ev)->payload.get().value("task", std::string{}) == task)
          found = next;
      }
      if (found > 0)
        show(at = found);
      else
        std::printf("no later event of task '%s'\n", task.c_str());
    } else if (cmd == "p") {
      if (auto ev = walk.event_at(at))
        std::printf("%s\n", dump_json((*ev)->payload.get(), 2).c_str());
      else
        print_error(message_of(ev.error()));
    } else if (cmd == "s") {
      if (auto v = walk.view_at(at))
        print_state(*v);
      else
        print_error(message_of(v.error()));
    } else if (cmd == "q") {
      break;
    } else {
      std::printf("n, b, g SEQ, t TASK, p, s or q\n");
    }
  }
  return exit_ok;
}

void print_divergence(const std::string& id, const workflow::replay_check& r,
                      bool json_out, const std::string& against) {
  if (json_out) {
    json out{{"execution", id},
             {"against", against},
             {"compatible", r.compatible()},
             {"events", r.events}};
    if (r.first)
      out["divergence"] = workflow::to_json(*r.first);
    std::printf("%s\n", dump_json(out)
                          .c_str());
    return;
  }
  if (r.compatible()) {
    std::printf("ok %s: %llu events decide the same with %s\n", id.c_str(),
                static_cast<unsigned long long>(r.events), against.c_str());
    return;
  }
  const auto& d = *r.first;
  std::printf("DIVERGED %s at event %llu%s: %s\n", id.c_str(),
              static_cast<unsigned long long>(d.seq),
              d.task.empty() ? "" : (" (" + d.task + ")").c_str(),
              d.reason.c_str());
  if (!d.expected.is_null())
    std::printf("  recorded: %s\n", short_json(d.expected, 200).c_str());
  if (!d.got.is_null())
    std::printf("  now:      %s\n", short_json(d.got, 200).c_str());
}

expected<json> definition_of_file(const std::string& file) {
  auto res = workflow::parse_file(file, workflow::validation_context{});
  if (!res.errors.empty()) {
    std::string msg;
    for (auto& d : res.errors)
      msg += (msg.empty() ? "" : "\n") + d.to_string();
    return make_error(errc::invalid_workflow, msg);
  }
  return res.def->document;
}

// The log of execution `id` walked a chunk at a time (log_reader::each).
workflow::log_walk execution_walk(const log_reader& reader,
                                  const std::string& id) {
  return [&reader, id](const std::function<expected<bool>(const event&)>& fn) {
    return reader.each(id, 1, 0, fn);
  };
}

// The execution's log in an exported bundle, walked a line at a time.
workflow::log_walk bundle_walk(const std::string& path) {
  return [path](const std::function<expected<bool>(const event&)>& fn) {
    return walk_bundle_file(path, fn);
  };
}

} // namespace

int replay_exit(const caf::error& err) {
  switch (code_of(err)) {
    case errc::not_found:
    case errc::invalid_input:
    case errc::invalid_workflow:
    case errc::invalid_config:
      return exit_usage;
    default:
      return exit_failed;
  }
}

void print_inspect(const json& state, bool json_out) {
  if (json_out)
    std::printf("%s\n", dump_json(state)
                          .c_str());
  else
    print_state(state);
}

int cmd_inspect(persistence::event_store& store, const std::string& id,
                uint64_t at, uint64_t snapshot_every, bool json_out) {
  auto v = execution_state(store_reader(store, snapshot_every), id, at);
  if (!v) {
    print_error(message_of(v.error()));
    return replay_exit(v.error());
  }
  print_inspect(*v, json_out);
  return exit_ok;
}

int cmd_replay(persistence::event_store& store, const std::string& id,
               const std::string& against, bool json_out) {
  auto reader = store_reader(store);
  if (!against.empty()) {
    auto last = reader.last_seq(id);
    if (last && *last == 0)
      last = make_error(errc::not_found,
                        "no execution '" + id + "' in the store");
    if (!last) {
      print_error(message_of(last.error()));
      return replay_exit(last.error());
    }
    auto doc = definition_of_file(against);
    if (!doc) {
      print_error(message_of(doc.error()));
      return exit_usage;
    }
    auto r = workflow::check_against(execution_walk(reader, id), &*doc);
    if (!r) {
      print_error(message_of(r.error()));
      return exit_failed;
    }
    print_divergence(id, *r, json_out, against);
    return r->compatible() ? exit_ok : exit_failed;
  }
  auto last = reader.last_seq(id);
  if (last && *last == 0)
    last = make_error(errc::not_found, "no execution '" + id + "' in the store");
  if (!last) {
    print_error(message_of(last.error()));
    return replay_exit(last.error());
  }
  if (!json_out && isatty(STDIN_FILENO) && isatty(STDOUT_FILENO)) {
    workflow::stepper walk{[&reader, &id](uint64_t from, uint64_t max) {
                             return reader.read(id, from, max);
                           },
                           *last};
    return step_interactively(walk);
  }
  // One record per event, as it is read; each costs what its event
  // changed, not a view of the whole state.
  workflow::change_feed feed{id};
  auto walked = reader.each(id, 1, *last, [&](const event& ev) -> expected<bool> {
    auto rec = feed.add(ev);
    if (!rec)
      return rec.error();
    if (json_out)
      std::printf("%s\n", dump_json(*rec).c_str());
    else
      print_step(*rec);
    return true;
  });
  if (!walked) {
    print_error(message_of(walked.error()));
    return exit_failed;
  }
  return exit_ok;
}

int cmd_test(persistence::event_store* store,
             const std::vector<std::string>& targets,
             const std::vector<std::string>& workflows, bool json_out) {
  std::map<std::string, std::pair<std::string, json>> by_name;
  for (const auto& file : workflows) {
    auto doc = definition_of_file(file);
    if (!doc) {
      print_error(message_of(doc.error()));
      return exit_usage;
    }
    by_name[doc->value("name", std::string{})] = {file, *doc};
  }
  // (label, walk over its log, its first event) of every recorded execution
  // named; each log is read as it is checked, a chunk or a line at a time.
  struct run {
    std::string label;
    workflow::log_walk walk;
    event first;
  };
  std::vector<run> runs;
  auto add_bundle = [&](const std::filesystem::path& path) -> bool {
    auto walk = bundle_walk(path.string());
    event first;
    auto peeked = walk([&first](const event& ev) -> expected<bool> {
      first = ev;
      return false;
    });
    if (!peeked) {
      print_error(message_of(peeked.error()));
      return false;
    }
    runs.push_back(run{path.string(), std::move(walk), std::move(first)});
    return true;
  };
  std::optional<log_reader> reader;
  if (store)
    reader = store_reader(*store);
  for (const auto& t : targets) {
    std::error_code ec;
    if (std::filesystem::is_directory(t, ec)) {
      std::vector<std::filesystem::path> files;
      for (const auto& e : std::filesystem::directory_iterator{t, ec})
        if (e.path().extension() == ".ndjson")
          files.push_back(e.path());
      std::sort(files.begin(), files.end());
      if (files.empty()) {
        print_error(t + ": no exported runs (*.ndjson) in this directory");
        return exit_usage;
      }
      for (const auto& f : files)
        if (!add_bundle(f))
          return exit_usage;
    } else if (std::filesystem::is_regular_file(t, ec)) {
      if (!add_bundle(t))
        return exit_usage;
    } else if (reader) {
      auto first = reader->read(t, 1, 1);
      if (first && first->empty())
        first = make_error(errc::not_found,
                           "no execution '" + t + "' in the store");
      if (!first) {
        print_error(message_of(first.error()));
        return exit_usage;
      }
      runs.push_back(run{t, execution_walk(*reader, t),
                         std::move(first->front())});
    } else {
      print_error(t + ": neither a file, a directory nor an execution id");
      return exit_usage;
    }
  }
  size_t diverged = 0;
  for (const auto& r : runs) {
    auto name = r.first.payload.get().value("workflow", std::string{});
    auto w = by_name.find(name);
    auto against = w == by_name.end() ? std::string{"its recorded definition"}
                                      : w->second.first;
    auto check = workflow::check_against(
      r.walk, w == by_name.end() ? nullptr : &w->second.second);
    if (!check) {
      print_error(r.label + ": " + message_of(check.error()));
      return code_of(check.error()) == errc::invalid_input ? exit_usage
                                                           : exit_failed;
    }
    if (!check->compatible())
      ++diverged;
    print_divergence(r.label, *check, json_out, against);
  }
  if (!json_out)
    std::printf("%zu of %zu recorded runs decide the same\n",
                runs.size() - diverged, runs.size());
  return diverged == 0 ? exit_ok : exit_failed;
}

void print_diff(const json& d, bool json_out) {
  if (json_out) {
    std::printf("%s\n", dump_json(d)
                          .c_str());
    return;
  }
  auto a = d["a"].get<std::string>();
  auto b = d["b"].get<std::string>();
  if (d["same"].get<bool>()) {
    std::printf("%s and %s have the same events\n", a.c_str(), b.c_str());
  } else {
    std::printf("first difference at event %llu\n",
                static_cast<unsigned long long>(
                  d["first_divergent_seq"].get<uint64_t>()));
    for (const char* side : {"a", "b"}) {
      const auto& first = d[std::string{"first_"} + side];
      std::printf("  %s: %s\n", side,
                  first.is_null() ? "(ended)" : short_json(first, 200).c_str());
    }
  }
  for (const auto& t : d["tasks"]) {
    std::printf("  %-16s %s\n", t["task"].get<std::string>().c_str(),
                t["status"].get<std::string>().c_str());
    if (t.contains("changes"))
      for (const auto& c : t["changes"])
        std::printf("      %s: %s -> %s\n",
                    c["pointer"].get<std::string>().c_str(),
                    c.contains("a") ? short_json(c["a"]).c_str() : "(none)",
                    c.contains("b") ? short_json(c["b"]).c_str() : "(none)");
  }
  if (!d["usage_a"].is_null() || !d["usage_b"].is_null())
    std::printf("  usage  a: %s\n         b: %s\n",
                short_json(d["usage_a"], 200).c_str(),
                short_json(d["usage_b"], 200).c_str());
}

int cmd_diff(persistence::event_store& store, const std::string& a,
             const std::string& b, bool json_out) {
  auto d = execution_diff(store_reader(store), a, b);
  if (!d) {
    print_error(message_of(d.error()));
    return replay_exit(d.error());
  }
  print_diff(*d, json_out);
  return exit_ok;
}

int cmd_export(persistence::event_store& store, const std::string& id,
               std::ostream& out) {
  if (auto ok = write_bundle(store_reader(store), id, out); !ok) {
    print_error(message_of(ok.error()));
    return replay_exit(ok.error());
  }
  out.flush();
  return exit_ok;
}

void print_import(const json& result, bool json_out) {
  if (json_out) {
    auto out = result;
    out["type"] = "imported";
    std::printf("%s\n", dump_json(out)
                          .c_str());
    return;
  }
  std::printf("imported %s (%llu events, %llu agent logs, %s)\n",
              result["execution"].get<std::string>().c_str(),
              static_cast<unsigned long long>(result["events"].get<uint64_t>()),
              static_cast<unsigned long long>(
                result["agent_logs"].get<uint64_t>()),
              result["status"].get<std::string>().c_str());
  if (result.contains("skipped_agent_logs"))
    for (const auto& s : result["skipped_agent_logs"])
      std::printf("  kept the store's %s (already there)\n",
                  s.get<std::string>().c_str());
}

int cmd_import(node& n, const std::string& file, bool json_out) {
  std::ifstream in{file};
  if (!in) {
    print_error(file + ": cannot open");
    return exit_usage;
  }
  auto done = import_bundle(n.system(), n.store(), in, file,
                            actors::local_deadline);
  if (!done) {
    print_error(message_of(done.error()));
    return replay_exit(done.error());
  }
  print_import(*done, json_out);
  return exit_ok;
}

expected<fork_request> fork_request_of(const fork_flags& flags) {
  fork_request req;
  req.execution_id = flags.id;
  req.at_seq = flags.at;
  req.dry_run = flags.dry_run;
  req.rerun = flags.rerun;
  if (!flags.input.empty()) {
    auto in = parse_input(flags.input, "--input");
    if (!in)
      return in.error();
    req.input_override = json_value{std::move(*in)};
  }
  if (!flags.definition.empty()) {
    auto doc = definition_of_file(flags.definition);
    if (!doc)
      return doc.error();
    req.definition_override = json_value{std::move(*doc)};
  }
  auto value_of = [](const std::string& text) {
    auto v = try_parse_json(text);
    return v.is_discarded() ? json(text) : v; // a bare word is a string
  };
  json outputs = json::object();
  for (const auto& s : flags.set) {
    // tasks.T.output=JSON, or tasks.T[i].output=JSON for a map item
    auto eq = s.find('=');
    const std::string prefix = "tasks.";
    const std::string suffix = ".output";
    auto path = s.substr(0, eq);
    if (eq == std::string::npos || path.rfind(prefix, 0) != 0
        || path.size() <= prefix.size() + suffix.size()
        || path.compare(path.size() - suffix.size(), suffix.size(), suffix)
             != 0)
      return make_error(errc::invalid_input,
                        "--set '" + s + "': expected tasks.TASK.output=JSON");
    auto task = path.substr(prefix.size(),
                            path.size() - prefix.size() - suffix.size());
    outputs[task] = value_of(s.substr(eq + 1));
  }
  if (!outputs.empty())
    req.outputs = json_value{std::move(outputs)};
  json answers = json::object();
  for (const auto& s : flags.answer) {
    auto eq = s.find('=');
    if (eq == std::string::npos || eq == 0)
      return make_error(errc::invalid_input,
                        "--answer '" + s + "': expected TASK=VALUE");
    answers[s.substr(0, eq)] = value_of(s.substr(eq + 1));
  }
  if (!answers.empty())
    req.answers = json_value{std::move(answers)};
  return req;
}

void print_fork_plan(const json& plan, bool json_out) {
  if (json_out) {
    std::printf("%s\n", dump_json(json{{"type", "fork"}, {"plan", plan}})
                          .c_str());
    return;
  }
  auto list = [](const json& xs) {
    std::string out;
    for (const auto& x : xs)
      out += (out.empty() ? "" : ", ") + x.get<std::string>();
    return out.empty() ? std::string{"none"} : out;
  };
  std::printf("%s %s at event %llu%s\n",
              plan.value("dry_run", false) ? "would fork" : "forked",
              plan["parent"].get<std::string>().c_str(),
              static_cast<unsigned long long>(plan["at"].get<uint64_t>()),
              plan.value("dry_run", false)
                ? ""
                : (" as " + plan["id"].get<std::string>()).c_str());
  std::printf("  reused:   %s\n", list(plan["reused"]).c_str());
  if (!plan["edited"].empty())
    std::printf("  edited:   %s\n", list(plan["edited"]).c_str());
  std::string runs;
  for (const auto& r : plan["to_run"]) {
    auto runner = r["runs"].get<std::string>();
    runs += (runs.empty() ? "" : ", ") + r["task"].get<std::string>() + " ("
            + runner;
    // As the node marks it from the tool's declaration; a tool left
    // unmarked (an older server) may have side effects.
    if (r.value("side_effects", runner.rfind("agent:", 0) != 0))
      runs += ", side effects";
    runs += ")";
  }
  std::printf("  run again: %s\n", runs.empty() ? "none" : runs.c_str());
  if (!plan["waiting"].empty())
    std::printf("  asks again: %s\n", list(plan["waiting"]).c_str());
  if (!plan["undecided"].empty())
    std::printf("  then:     %s\n", list(plan["undecided"]).c_str());
  std::fflush(stdout);
}

} // namespace cadre::runtime::cli
