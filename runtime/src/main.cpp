// The `cadre` command line: run and inspect workflows on an embedded node.

#include <signal.h>
#include <unistd.h>

#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <new>
#include <sstream>
#include <string_view>
#include <thread>

#include <CLI/CLI.hpp>
#include <caf/actor_system.hpp>
#include <caf/scoped_actor.hpp>

#include "cadre/actors/deadlines.hpp"
#include "cadre/actors/metrics.hpp"
#include "cadre/persistence/event_store.hpp"
#include "cadre/runtime/node.hpp"
#include "cadre/runtime/progress.hpp"
#include "cadre/tools/tool_registry.hpp"
#include "cadre/workflow/definition.hpp"
#include "cadre/workflow/replay.hpp"
#include "cli/agent_commands.hpp"
#include "cli/client_commands.hpp"
#include "cli/inline_prompt.hpp"
#include "cli/output.hpp"
#include "cli/replay_commands.hpp"
#include "cli/schedule_commands.hpp"
#include "cli/store_commands.hpp"
#include "logging_setup.hpp"
#include "serve.hpp"
#include "cadre/messages/json_text.hpp"

using namespace cadre;

namespace {

using runtime::cli::ends_execution;
using runtime::cli::exit_code_of;
using runtime::cli::exit_failed;
using runtime::cli::exit_interrupted;
using runtime::cli::exit_ok;
using runtime::cli::exit_usage;
using runtime::cli::exit_waiting;
using runtime::cli::parse_answer;
using runtime::cli::parse_input;
using runtime::cli::print_error;
using runtime::cli::report;

struct global_options {
  std::string config_file;
  std::string db;
  bool sync = false;
  bool json_out = false;
  std::string metrics_file;
  runtime::log_flags log;
};


expected<config::node_config> make_config(const global_options& g) {
  config::node_config cfg;
  if (!g.config_file.empty()) {
    auto loaded = config::load_file(g.config_file, cfg);
    if (!loaded)
      return loaded.error();
    cfg = std::move(*loaded);
  }
  auto env = config::apply_environment(std::move(cfg));
  if (!env)
    return env.error();
  cfg = std::move(*env);
  if (!g.db.empty())
    cfg.store_dir = g.db;
  if (g.sync)
    cfg.store_sync = true;
  if (auto logging = runtime::init_logging(cfg, g.log); !logging)
    return logging.error();
  return cfg;
}


// Starts an embedded node for `command`. Only `resume` resumes every
// unfinished execution; the others run or recover just their own.
std::unique_ptr<runtime::node> start_node(const global_options& g,
                                          const std::string& command,
                                          bool resume_all = false) {
  auto cfg = make_config(g);
  if (!cfg) {
    print_error(message_of(cfg.error()));
    std::exit(exit_usage);
  }
  runtime::start_options opts;
  opts.resume_all = resume_all;
  opts.holder = "cadre " + command;
  auto n = runtime::node::start(*cfg, opts);
  if (!n) {
    print_error(describe(n.error()));
    std::exit(exit_failed);
  }
  return std::move(*n);
}

// Writes the node's counters for a Prometheus textfile collector: to a
// temporary file renamed into place, so a scrape never reads half a file.
// Returns `rc`, or exit_failed when the file cannot be written.
int write_metrics(runtime::node& n, const global_options& g, int rc) {
  if (g.metrics_file.empty())
    return rc;
  auto tmp = g.metrics_file + ".tmp";
  {
    std::ofstream out{tmp, std::ios::trunc};
    out << n.metrics().prometheus();
    out.close();
    if (out && std::rename(tmp.c_str(), g.metrics_file.c_str()) == 0)
      return rc;
  }
  std::remove(tmp.c_str());
  print_error("--metrics-file: cannot write " + g.metrics_file);
  return rc == exit_ok ? exit_failed : rc;
}



// The state of execution `id` folded from its log (machine::view()).
expected<json> view_of(runtime::node& n, const std::string& id) {
  caf::scoped_actor self{n.system()};
  std::vector<event> log;
  caf::error failure;
  self
    ->request(n.store(), actors::local_deadline, read_atom_v, id,
              uint64_t{1}, uint64_t{0})
    .receive([&](std::vector<event>& evs) { log = std::move(evs); },
             [&](caf::error& err) { failure = std::move(err); });
  if (failure)
    return failure;
  auto m = workflow::fold_log(log);
  if (!m)
    return m.error();
  return m->view();
}

// True when a task or an item of `view` runs or waits for its retry: a
// waiting execution is left to the person only once that work is done (a
// notification sent beside a question must not be cut off).
// Whether any of `tasks` (a view's, or an item's sub-workflow's) still runs.
bool tasks_in_flight(const json& tasks) {
  auto busy = [](const json& unit) {
    auto state = unit.value("state", std::string{});
    if (state == "running" && unit.contains("tasks"))
      // An item running a sub-workflow may only wait for a person.
      return tasks_in_flight(unit["tasks"]);
    return state == "running" || state == "retry_wait";
  };
  for (const auto& t : tasks) {
    if (t.contains("items")) {
      if (t.value("state", std::string{}) == "running")
        for (const auto& item : t["items"])
          if (busy(item))
            return true;
    } else if (busy(t)) {
      return true;
    }
  }
  return false;
}

bool in_flight(const json& view) {
  return tasks_in_flight(view.value("tasks", json::array()));
}

// Waits until the execution finished, or waits for a person with nothing
// else in flight.
execution_info wait_for(runtime::node& n, const std::string& id) {
  caf::scoped_actor self{n.system()};
  for (;;) {
    std::optional<execution_info> done;
    self->request(n.executions(), std::chrono::milliseconds{250}, await_atom_v,
                  id)
      .receive([&](execution_info& info) { done = std::move(info); },
               [&](caf::error&) {});
    if (done)
      return *done;
    execution_info status;
    bool ok = false;
    self->request(n.executions(), actors::local_deadline, status_atom_v, id)
      .receive(
        [&](execution_info& info) {
          status = std::move(info);
          ok = true;
        },
        [&](caf::error& err) {
          status.id = id;
          status.status = "failed";
          status.error = describe(err);
          ok = true;
        });
    if (ok && status.finished())
      return status;
    if (ok && status.status == "waiting") {
      auto view = view_of(n, id);
      if (!view || !in_flight(*view))
        return status;
    }
  }
}


// On a terminal: asks the person for the open human tasks of a waiting
// execution and sends each answer as `cadre input` does (the same answer
// event), until the execution no longer waits or stdin ends (then it stays
// waiting, as without a terminal).
execution_info answer_inline(runtime::node& n, const std::string& id,
                             execution_info info,
                             runtime::progress_mark& mark) {
  caf::scoped_actor self{n.system()};
  while (info.status == "waiting") {
    // The question goes after the events that led to it.
    mark.wait(id, info.last_seq, std::chrono::seconds{5});
    auto view = view_of(n, id);
    if (!view) {
      print_error(describe(view.error()));
      return info;
    }
    auto questions = runtime::cli::open_questions(*view);
    if (questions.empty())
      return info;
    caf::error failure;
    for (const auto& q : questions) {
      auto answer = runtime::cli::ask_inline(q, std::cin, std::cerr);
      if (!answer)
        return info;
      self
        ->request(n.executions(), actors::local_deadline, input_atom_v,
                  human_input{id, q.task, json_value{std::move(*answer)}})
        .receive([](uint64_t) {}, [&](caf::error& err) { failure = err; });
      if (failure) {
        print_error(describe(failure));
        return info;
      }
    }
    info = wait_for(n, id);
  }
  return info;
}

// A bad request prints its message alone; a store that failed says so
// ("storage_error: ..."), so scripts and people can tell the two apart.
void print_submit_error(const caf::error& failure) {
  auto code = code_of(failure);
  auto store_failed = code == errc::storage_error || code == errc::unavailable;
  print_error(store_failed || message_of(failure).empty()
                ? describe(failure)
                : message_of(failure));
}

runtime::progress_style style_of(const global_options& g) {
  return g.json_out ? runtime::progress_style::json
                    : runtime::progress_style::human;
}

workflow::validation_context tool_context(const tools::tool_registry& reg,
                                          const global_options& g) {
  workflow::validation_context ctx;
  ctx.tool_exists = [&reg](const std::string& name) {
    return reg.contains(name);
  };
  // Agents of the node config count as known; a bad config is reported
  // when the node starts.
  auto cfg = make_config(g);
  auto agents = cfg && cfg->agents.is_object() ? cfg->agents : json::object();
  ctx.agent_exists = [agents](const std::string& name) {
    return agents.contains(name);
  };
  if (cfg)
    ctx.secret_exists = [secrets = cfg->secrets](const std::string& name) {
      return secrets.count(name) > 0;
    };
  return ctx;
}

int cmd_validate(const std::vector<std::string>& files,
                 const global_options& g) {
  tools::tool_registry reg;
  tools::register_builtin_tools(reg);
  auto ctx = tool_context(reg, g);
  int rc = exit_ok;
  json all = json::array();
  for (const auto& file : files) {
    auto res = workflow::parse_file(file, ctx);
    if (!res.errors.empty())
      rc = exit_usage;
    if (g.json_out) {
      json errs = json::array();
      for (auto& d : res.errors)
        errs.push_back(json{{"file", d.file},
                            {"line", d.where.line},
                            {"column", d.where.column},
                            {"pointer", d.pointer},
                            {"message", d.message}});
      all.push_back(json{{"file", file},
                         {"valid", res.errors.empty()},
                         {"errors", errs}});
    } else if (res.errors.empty()) {
      std::printf("%s: ok (%s, %zu tasks)\n", file.c_str(),
                  res.def->name.c_str(), res.def->tasks.size());
    } else {
      for (auto& d : res.errors)
        std::fprintf(stderr, "%s\n", d.to_string().c_str());
      std::fprintf(stderr, "%s: %zu error%s\n", file.c_str(),
                   res.errors.size(), res.errors.size() == 1 ? "" : "s");
    }
  }
  if (g.json_out)
    std::printf("%s\n", dump_json(all).c_str());
  return rc;
}

int cmd_run(const std::string& file, const std::string& input_arg,
            const std::string& idempotency_key, const global_options& g) {
  tools::tool_registry reg;
  tools::register_builtin_tools(reg);
  auto res = workflow::parse_file(file, tool_context(reg, g));
  if (!res.errors.empty()) {
    for (auto& d : res.errors)
      std::fprintf(stderr, "%s\n", d.to_string().c_str());
    return exit_usage;
  }
  json input = json::object();
  if (!input_arg.empty()) {
    auto in = parse_input(input_arg, "--input");
    if (!in) {
      print_error(message_of(in.error()));
      return exit_usage;
    }
    input = std::move(*in);
  }
  auto n = start_node(g, "run");
  auto mark = std::make_shared<runtime::progress_mark>();
  auto sink = runtime::spawn_progress(n->system(), style_of(g), mark);
  caf::anon_send(n->bus(), subscribe_atom_v, std::string{}, sink);
  submit_request req;
  req.definition = json_value{res.def->document};
  req.input = json_value{std::move(input)};
  req.idempotency_key = idempotency_key;
  req.source = file;
  std::string id;
  caf::error failure;
  {
    caf::scoped_actor self{n->system()};
    self->request(n->executions(), actors::local_deadline, submit_atom_v, req)
      .receive([&](std::string& x) { id = std::move(x); },
               [&](caf::error& err) { failure = std::move(err); });
  }
  if (failure) {
    print_submit_error(failure);
    return code_of(failure) == errc::invalid_input
               || code_of(failure) == errc::invalid_workflow
             ? exit_usage
             : exit_failed;
  }
  auto info = wait_for(*n, id);
  if (info.status == "waiting" && runtime::cli::can_ask_inline(g.json_out))
    info = answer_inline(*n, id, std::move(info), *mark);
  // The result goes after the execution's last event (bounded: a sink that
  // missed events must not hold the command).
  mark->wait(id, info.last_seq, std::chrono::seconds{5});
  return write_metrics(*n, g, report(info, g.json_out));
}

int cmd_input(const std::string& id, const std::string& task,
              const std::string& value_arg, const global_options& g) {
  auto answer = parse_answer(value_arg);
  if (!answer) {
    print_error(message_of(answer.error()));
    return exit_usage;
  }
  json value = std::move(*answer);
  auto n = start_node(g, "input");
  auto mark = std::make_shared<runtime::progress_mark>();
  auto sink = runtime::spawn_progress(n->system(), style_of(g), mark);
  caf::anon_send(n->bus(), subscribe_atom_v, id, sink);
  caf::error failure;
  {
    caf::scoped_actor self{n->system()};
    self
      ->request(n->executions(), actors::local_deadline, input_atom_v,
                human_input{id, task, json_value{value}})
      .receive([](uint64_t) {}, [&](caf::error& err) { failure = err; });
  }
  if (failure) {
    print_error(describe(failure));
    return exit_failed;
  }
  auto info = wait_for(*n, id);
  // The result goes after the execution's last event (bounded).
  mark->wait(id, info.last_seq, std::chrono::seconds{5});
  return write_metrics(*n, g, report(info, g.json_out));
}

int cmd_resume(const global_options& g) {
  auto n = start_node(g, "resume", true);
  auto mark = std::make_shared<runtime::progress_mark>();
  auto sink = runtime::spawn_progress(n->system(), style_of(g), mark);
  caf::anon_send(n->bus(), subscribe_atom_v, std::string{}, sink);
  int rc = exit_ok;
  json results = json::array();
  for (const auto& id : n->resumed()) {
    auto info = wait_for(*n, id);
    mark->wait(id, info.last_seq, std::chrono::seconds{5});
    rc = std::max(rc, exit_code_of(info));
    json j = info;
    results.push_back(j);
    if (!g.json_out)
      std::fprintf(stderr, "%s: %s\n", id.c_str(), info.status.c_str());
  }
  if (g.json_out)
    std::printf("%s\n", dump_json(json{{"type", "resumed"},
                                        {"executions", results}})
                          .c_str());
  else
    std::fprintf(stderr, "resumed %zu execution%s\n", n->resumed().size(),
                 n->resumed().size() == 1 ? "" : "s");
  return write_metrics(*n, g, rc == exit_waiting ? exit_waiting : rc);
}

int cmd_cancel(const std::string& id, const global_options& g) {
  auto n = start_node(g, "cancel");
  caf::scoped_actor self{n->system()};
  int rc = exit_ok;
  self->request(n->executions(), actors::local_deadline, cancel_atom_v, id)
    .receive(
      [&](bool cancelled) {
        std::printf("%s\n", cancelled ? "cancelled" : "already finished");
      },
      [&](caf::error& err) {
        print_error(describe(err));
        rc = exit_failed;
      });
  return rc;
}

expected<std::unique_ptr<persistence::event_store>>
try_open_reader(const global_options& g) {
  auto cfg = make_config(g);
  if (!cfg) {
    print_error(message_of(cfg.error()));
    std::exit(exit_usage);
  }
  persistence::store_options opts;
  opts.dir = cfg->store_dir;
  opts.read_only = true;
  return persistence::event_store::open(std::move(opts));
}

// Opens the store for reading only, so a command that only reads works while
// another cadre process writes it.
std::unique_ptr<persistence::event_store> open_reader(const global_options& g) {
  auto store = try_open_reader(g);
  if (!store) {
    print_error(describe(store.error()));
    std::exit(exit_failed);
  }
  return std::move(*store);
}


int cmd_executions(const std::string& status, const global_options& g) {
  auto store = open_reader(g);
  execution_filter filter;
  filter.status = status;
  auto list = store->list(filter);
  if (!list) {
    print_error(describe(list.error()));
    return exit_failed;
  }
  runtime::cli::print_executions(*list, g.json_out);
  return exit_ok;
}

// Reads the store beside a running server; a store that does not exist
// yet has no history.
int cmd_schedules(const global_options& g) {
  auto cfg = make_config(g);
  if (!cfg) {
    print_error(message_of(cfg.error()));
    return exit_usage;
  }
  auto store = try_open_reader(g);
  if (!store && code_of(store.error()) != errc::not_found) {
    print_error(describe(store.error()));
    return exit_failed;
  }
  return runtime::cli::cmd_schedules(store ? store->get() : nullptr, *cfg,
                                     g.json_out);
}

// Set by SIGINT and SIGTERM while `events --follow` waits.
volatile std::sig_atomic_t interrupted = 0;

void on_interrupt(int) {
  interrupted = 1;
}

void catch_interrupts() {
  struct sigaction sa {};
  sa.sa_handler = on_interrupt;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGINT, &sa, nullptr);
  sigaction(SIGTERM, &sa, nullptr);
}

// Prints `evs` and advances `next` past them. Returns whether one of them
// ends the execution.
bool print_events(const std::vector<event>& evs, uint64_t& next,
                  const global_options& g) {
  bool finished = false;
  for (auto& ev : evs) {
    runtime::cli::print_event_row(ev, g.json_out);
    next = ev.seq + 1;
    finished = finished || ends_execution(ev.type);
  }
  std::fflush(stdout);
  return finished;
}

// With `follow`, keeps one read-only store and catches up with the writer
// every poll_interval until the execution finishes or SIGINT/SIGTERM.
int cmd_events(const std::string& id, uint64_t from, bool follow,
               const global_options& g) {
  constexpr auto poll_interval = std::chrono::milliseconds{200};
  constexpr auto poll_slice = std::chrono::milliseconds{20};
  uint64_t next = std::max<uint64_t>(from, 1);
  auto store = open_reader(g);
  if (follow)
    catch_interrupts();
  for (;;) {
    auto evs = store->read(id, next, 0);
    if (!evs) {
      print_error(describe(evs.error()));
      return exit_failed;
    }
    if (evs->empty() && next == 1 && !follow) {
      print_error("execution " + id + " has no events");
      return exit_failed;
    }
    // An execution's index entry is written with its first events, so an
    // id the store does not know will never get any: waiting would never
    // end.
    if (evs->empty() && follow && !store->get(id)) {
      print_error("no execution " + id + " in the store");
      return exit_failed;
    }
    if (print_events(*evs, next, g) || !follow)
      return exit_ok;
    // The index entry is written with the events, so a finished entry in
    // the same view means every event was read (e.g. --from past the end).
    if (auto info = store->get(id); info && info->finished())
      return exit_ok;
    for (auto waited = std::chrono::milliseconds{0};
         waited < poll_interval && !interrupted; waited += poll_slice)
      std::this_thread::sleep_for(poll_slice);
    if (interrupted)
      return exit_interrupted;
    if (auto caught_up = store->refresh(); !caught_up) {
      // Catching up can fail when the writer removed files meanwhile; a
      // fresh reader starts from the current state.
      store.reset();
      auto reopened = try_open_reader(g);
      if (!reopened) {
        print_error(describe(caught_up.error()) + "; reopening: "
                    + describe(reopened.error()));
        return exit_failed;
      }
      store = std::move(*reopened);
    }
  }
}

// Forks an execution on an embedded node and, unless --dry-run, follows the
// fork like `cadre run` follows a new execution.
int cmd_fork(const runtime::cli::fork_flags& flags, const global_options& g) {
  auto req = runtime::cli::fork_request_of(flags);
  if (!req) {
    print_error(message_of(req.error()));
    return exit_usage;
  }
  auto n = start_node(g, "fork");
  json plan;
  caf::error failure;
  {
    caf::scoped_actor self{n->system()};
    self->request(n->executions(), actors::local_deadline, fork_atom_v, *req)
      .receive([&](json_value& x) { plan = x.get(); },
               [&](caf::error& err) { failure = std::move(err); });
  }
  if (failure) {
    print_submit_error(failure);
    return code_of(failure) == errc::invalid_input
               || code_of(failure) == errc::not_found
               || code_of(failure) == errc::invalid_workflow
             ? exit_usage
             : exit_failed;
  }
  runtime::cli::print_fork_plan(plan, g.json_out);
  if (flags.dry_run)
    return exit_ok;
  auto id = plan["id"].get<std::string>();
  auto mark = std::make_shared<runtime::progress_mark>();
  auto sink = runtime::spawn_progress(n->system(), style_of(g), mark);
  caf::anon_send(n->bus(), subscribe_atom_v, id, sink);
  auto info = wait_for(*n, id);
  // The result goes after the execution's last event (bounded).
  mark->wait(id, info.last_seq, std::chrono::seconds{5});
  return write_metrics(*n, g, report(info, g.json_out));
}

int cmd_import(const std::string& file, const global_options& g) {
  auto n = start_node(g, "import");
  return runtime::cli::cmd_import(*n, file, g.json_out);
}

int cmd_tree(const global_options& g) {
  auto n = start_node(g, "tree");
  auto tree = n->tree();
  if (g.json_out)
    std::printf("%s\n", dump_json(tree).c_str());
  else
    std::fputs(actors::render_tree(json_value{tree}).c_str(), stdout);
  return exit_ok;
}

// The settings of `tools.<name>` in the config, or an empty object.
json tool_settings(const config::node_config& cfg, const std::string& name) {
  if (auto i = cfg.tools.find(name); i != cfg.tools.end())
    return i->second.settings;
  return json::object();
}

int cmd_tools(const global_options& g) {
  auto cfg = make_config(g);
  if (!cfg) {
    print_error(message_of(cfg.error()));
    return exit_usage;
  }
  tools::tool_registry reg;
  tools::register_builtin_tools(reg);
  json out = json::array();
  for (auto& name : reg.names()) {
    auto t = reg.create(name, json_value{tool_settings(*cfg, name)});
    if (!t) {
      // A tool whose settings are wrong is still listed, with the reason it
      // cannot run.
      out.push_back(json{{"name", name}, {"error", describe(t.error())}});
      continue;
    }
    auto d = (*t)->describe();
    out.push_back(json{{"name", d.name},
                       {"description", d.description},
                       {"blocking", (*t)->blocking()},
                       {"side_effects", (*t)->side_effects()},
                       {"input_schema", d.input_schema},
                       {"output_schema", d.output_schema}});
  }
  if (g.json_out) {
    std::printf("%s\n", dump_json(out).c_str());
    return exit_ok;
  }
  for (auto& t : out) {
    auto text = t.contains("error") ? "unavailable: " + t["error"].get<std::string>()
                                    : t["description"].get<std::string>();
    // The first sentence is enough for a listing; `--json` has it all.
    if (auto dot = text.find(". "); dot != std::string::npos)
      text.resize(dot + 1);
    std::printf("%-10s %s\n", t["name"].get<std::string>().c_str(),
                text.c_str());
  }
  return exit_ok;
}

// Runs one call of a tool in this process, as a worker of its pool would,
// and prints the output as JSON.
int cmd_tool(const std::string& name, const std::string& input_arg,
             int64_t timeout_ms, const global_options& g) {
  auto cfg = make_config(g);
  if (!cfg) {
    print_error(message_of(cfg.error()));
    return exit_usage;
  }
  auto input = parse_input(input_arg.empty() ? "{}" : input_arg, "--input");
  if (!input) {
    print_error(message_of(input.error()));
    return exit_usage;
  }
  tools::tool_registry reg;
  tools::register_builtin_tools(reg);
  if (!reg.contains(name)) {
    std::string known;
    for (auto& n : reg.names())
      known += (known.empty() ? "" : ", ") + n;
    print_error("unknown tool '" + name + "' (tools: " + known + ")");
    return exit_usage;
  }
  auto t = reg.create(name, json_value{tool_settings(*cfg, name)});
  if (!t) {
    print_error(describe(t.error()));
    return exit_usage;
  }
  tools::tool_context ctx;
  ctx.execution_id = "cli";
  ctx.task_id = name;
  auto now_us = std::chrono::duration_cast<std::chrono::microseconds>(
                  std::chrono::system_clock::now().time_since_epoch())
                  .count();
  ctx.idempotency_key = "cli/" + name + "/" + std::to_string(now_us);
  if (timeout_ms > 0)
    ctx.deadline_us = now_us + timeout_ms * 1000;
  expected<json_value> out = make_error(errc::internal, "not run");
  try {
    out = (*t)->invoke(json_value{std::move(*input)}, ctx);
  } catch (const std::exception& ex) {
    out = make_error(errc::worker_crashed,
                     "tool '" + name + "' threw: " + ex.what());
  }
  if (!out) {
    if (g.json_out)
      std::printf("%s\n",
                  dump_json(json{{"error", describe(out.error())}}).c_str());
    else
      print_error(describe(out.error()));
    return exit_failed;
  }
  std::printf("%s\n", g.json_out ? dump_json(out->get()).c_str()
                                   : dump_json(out->get(), 2).c_str());
  return exit_ok;
}

} // namespace

namespace {

// A failed allocation leaves the node in an unknown state (an actor may
// have stopped half way, a pool may wait for an answer that never comes):
// end the process at once with a message and its own exit code, so a
// supervisor restarts it and recovery starts again from the event log.
// Only async-signal-safe calls: there may be no memory left for more.
[[noreturn]] void out_of_memory() {
  static constexpr char msg[]
    = "cadre: out of memory: an allocation failed; stopping (exit code 4). "
      "The event log holds every acknowledged step: restart to recover.\n";
  [[maybe_unused]] auto n = ::write(STDERR_FILENO, msg, sizeof msg - 1);
  ::_exit(runtime::cli::exit_out_of_memory);
}

} // namespace

int main(int argc, char** argv) {
  std::set_new_handler(out_of_memory);
  // Tesseract's OpenMP threads spin while waiting, which costs OCR about a
  // factor of 4 on a busy machine; cadre parallelizes across pool workers
  // instead. OpenMP reads the limit when it loads, before main, so set it
  // and start over (same pid) unless the user chose a value.
  if (std::getenv("OMP_THREAD_LIMIT") == nullptr) {
    ::setenv("OMP_THREAD_LIMIT", "1", 0);
    ::execv("/proc/self/exe", argv);
    // Not fatal: run on with OpenMP's defaults.
  }
  CLI::App app{"cadre: durable workflows and agents on actors"};
  app.require_subcommand(1);
  // Global flags also work after the command (`cadre tools --json`).
  app.fallthrough();
  global_options g;
  app.add_option("--config", g.config_file, "YAML config file")
    ->check(CLI::ExistingFile);
  app.add_option("--db", g.db, "event store directory (default .cadre)");
  app.add_flag("--sync", g.sync, "fsync each group commit (sync mode)");
  app.add_flag("--json", g.json_out, "machine-readable JSON output");
  app.add_option("--metrics-file", g.metrics_file,
                 "run, input, resume: write the node's counters (Prometheus "
                 "text) to this file at the end");
  app.add_option("--log-level", g.log.level,
                 "trace, debug, info, warn, error or off (default warn)");
  app.add_option("--log-format", g.log.format,
                 "operator logs on stderr as text or json (default text)");
  std::string server;
  app.add_option("--server", server,
                 "talk to `cadre serve` at this URL (default: $CADRE_SERVER; "
                 "bearer token from $CADRE_TOKEN)");

  std::string file, input_arg, idem;
  auto* run = app.add_subcommand("run", "run a workflow file to completion");
  run->add_option("FILE", file, "workflow file (YAML or JSON)")->required();
  run->add_option("--input", input_arg, "input as JSON, or @file");
  run->add_option("--idempotency-key", idem,
                  "submit at most once per key");

  std::vector<std::string> files;
  auto* validate = app.add_subcommand("validate", "check workflow files");
  validate->add_option("FILE", files, "workflow files")->required();

  std::string status;
  auto* executions
    = app.add_subcommand("executions", "list executions in the store");
  executions->add_option("--status", status,
                         "running, waiting, completed, failed, cancelled");

  std::string id;
  uint64_t from = 1;
  bool follow = false;
  auto* events = app.add_subcommand("events", "print an execution's events");
  events->add_option("ID", id, "execution id")->required();
  events->add_option("--from", from, "first sequence number");
  events->add_flag("--follow,-f", follow, "wait for new events");

  std::string task, value;
  auto* input = app.add_subcommand(
    "input", "answer a human task and continue the execution");
  input->add_option("ID", id, "execution id")->required();
  input->add_option("TASK", task, "task id")->required();
  input->add_option("VALUE", value, "the answer (JSON, or a bare string)")
    ->required();

  auto* resume = app.add_subcommand(
    "resume", "finish every unfinished execution in the store");
  auto* cancel = app.add_subcommand("cancel", "cancel an execution");
  cancel->add_option("ID", id, "execution id")->required();
  auto* tree = app.add_subcommand("tree", "print the node's supervision tree");
  auto* nodes_cmd = app.add_subcommand(
    "nodes", "list the cluster's members as a running node sees them "
             "(needs --server)");
  auto* schedules_cmd = app.add_subcommand(
    "schedules", "list the config's schedules with their next and last "
                 "firing");
  auto* tools_cmd = app.add_subcommand(
    "tools", "list the tools (--json: with their input and output schemas)");
  std::string tool_name;
  int64_t tool_timeout_ms = 0;
  auto* tool_cmd = app.add_subcommand(
    "tool", "run one call of a tool and print its output as JSON");
  tool_cmd->add_option("NAME", tool_name, "tool name (see `cadre tools`)")
    ->required();
  tool_cmd->add_option("--input", input_arg, "input as JSON, or @file");
  tool_cmd->add_option("--timeout-ms", tool_timeout_ms,
                       "deadline handed to the tool (0: none)");

  uint64_t at = 0;
  auto* inspect = app.add_subcommand(
    "inspect", "an execution's state after an event (default: the last)");
  inspect->add_option("ID", id, "execution id")->required();
  inspect->add_option("--at", at, "sequence number of the event");

  auto* agent_cmd = app.add_subcommand(
    "agent", "show an agent's memory: its held messages, summary and turns");
  agent_cmd->add_option("ID", id,
                        "agent id (e.g. EXECUTION/AGENT; `usage.agent_id` "
                        "of its task)")
    ->required();

  std::string against;
  auto* replay = app.add_subcommand(
    "replay", "step through an execution's events, or check them against "
              "another definition");
  replay->add_option("ID", id, "execution id")->required();
  replay->add_option("--against", against,
                     "workflow file whose decisions are checked against the "
                     "recorded log");

  std::vector<std::string> targets, workflows;
  auto* test = app.add_subcommand(
    "test", "replay recorded executions against workflow files; exit 1 on "
            "a divergence");
  test->add_option("TARGET", targets,
                   "execution ids, exported runs (.ndjson) or directories of "
                   "them")
    ->required();
  test->add_option("--workflows", workflows,
                   "workflow files to check against, matched by name "
                   "(default: each run's recorded definition)");

  std::string other;
  auto* diff = app.add_subcommand("diff", "compare two executions");
  diff->add_option("A", id, "execution id")->required();
  diff->add_option("B", other, "execution id")->required();

  auto* export_cmd = app.add_subcommand(
    "export", "write an execution with its agent logs as NDJSON on stdout");
  export_cmd->add_option("ID", id, "execution id")->required();
  std::string import_file;
  auto* import_cmd
    = app.add_subcommand("import", "load an exported execution");
  import_cmd->add_option("FILE", import_file, "an export (.ndjson)")
    ->required();

  runtime::cli::fork_flags fork_flags;
  auto* fork = app.add_subcommand(
    "fork", "start a new execution from an execution's history, with edits");
  fork->add_option("ID", fork_flags.id, "execution id")->required();
  fork->add_option("--at", fork_flags.at,
                   "fork after this event (default: the last)");
  fork->add_option("--input", fork_flags.input,
                   "new workflow input: JSON, or @file");
  fork->add_option("--definition", fork_flags.definition,
                   "new workflow file");
  fork->add_option("--set", fork_flags.set,
                   "tasks.TASK.output=JSON: use this result instead (TASK "
                   "may be a map item, T[i], or a unit of a sub-workflow, "
                   "T[i]/U)");
  fork->add_option("--rerun", fork_flags.rerun,
                   "run TASK (or one map item, T[i], or a unit of a "
                   "sub-workflow, T[i]/U) again");
  fork->add_option("--answer", fork_flags.answer,
                   "TASK=VALUE: a different answer to a human task (or an "
                   "item of a map of them, T[i], or one of a sub-workflow, "
                   "T[i]/U)");
  fork->add_flag("--dry-run", fork_flags.dry_run,
                 "only say what would be reused and what would run");

  auto* check = app.add_subcommand(
    "check", "check the store for damage: files, checksums, index against "
             "logs (exit 1 when damaged)");
  auto* repair = app.add_subcommand(
    "repair", "salvage a damaged store: keep what is intact, rebuild the "
              "index from the logs, report what was lost");

  runtime::serve_flags serve_flags;
  auto* serve = app.add_subcommand(
    "serve", "run the node as a service with its HTTP API until SIGTERM");
  serve->add_option("--listen", serve_flags.listen,
                    "HOST:PORT to serve HTTP on (default 127.0.0.1:8700)");
  serve->add_flag("--insecure", serve_flags.insecure,
                  "allow a non-loopback --listen without tokens");
  serve->add_option("--cluster-listen", serve_flags.cluster_listen,
                    "HOST:PORT to accept cluster members on");
  serve->add_option("--join", serve_flags.join,
                    "HOST:PORT[,HOST:PORT]: members to join");
  serve->add_option("--node-name", serve_flags.node_name,
                    "this node's name in the cluster");
  serve->add_flag("--insecure-cluster", serve_flags.insecure_cluster,
                  "accept cluster members on a non-loopback address "
                  "without TLS");

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    // CLI11's own codes (105 for a missing --config file, 106 for an
    // unknown flag...) are usage errors to a script: exit 2, as documented.
    auto rc = app.exit(e);
    return rc == 0 ? exit_ok : exit_usage;
  }

  if (executions->parsed() && !status.empty()
      && status != "running" && status != "waiting" && status != "completed"
      && status != "failed" && status != "cancelled") {
    print_error("--status: unknown status '" + status
                + "' (known: running, waiting, completed, failed, "
                  "cancelled)");
    return exit_usage;
  }
  if (serve->parsed()) {
    auto cfg = make_config(g);
    if (!cfg) {
      print_error(message_of(cfg.error()));
      return exit_usage;
    }
    // A service logs what it does unless told otherwise.
    runtime::log_settings service_defaults;
    service_defaults.level = log::level::info;
    if (auto logging = runtime::init_logging(*cfg, g.log, service_defaults);
        !logging) {
      print_error(message_of(logging.error()));
      return exit_usage;
    }
    return runtime::serve(*cfg, serve_flags);
  }
  // With a server, the commands that have a client version use its API.
  runtime::cli::client_command client;
  client.name = app.get_subcommands().front()->get_name();
  client.server = server;
  client.json_out = g.json_out;
  client.metrics_file = g.metrics_file;
  client.file = import_cmd->parsed() ? import_file : file;
  client.input = input_arg;
  client.idempotency_key = idem;
  client.status = status;
  client.id = id;
  client.at = at;
  client.other = other;
  client.fork = fork_flags;
  client.from = from;
  client.follow = follow;
  client.task = task;
  client.value = value;
  client.tool = tool_name;
  client.timeout_ms = tool_timeout_ms;
  if (auto rc = runtime::cli::run_on_server(client))
    return *rc;

  if (run->parsed())
    return cmd_run(file, input_arg, idem, g);
  if (validate->parsed())
    return cmd_validate(files, g);
  if (executions->parsed())
    return cmd_executions(status, g);
  if (events->parsed())
    return cmd_events(id, from, follow, g);
  if (input->parsed())
    return cmd_input(id, task, value, g);
  if (resume->parsed())
    return cmd_resume(g);
  if (cancel->parsed())
    return cmd_cancel(id, g);
  if (tree->parsed())
    return cmd_tree(g);
  if (schedules_cmd->parsed())
    return cmd_schedules(g);
  if (nodes_cmd->parsed()) {
    print_error("nodes asks a running node: pass --server URL (or set "
                "CADRE_SERVER)");
    return exit_usage;
  }
  if (tools_cmd->parsed())
    return cmd_tools(g);
  if (tool_cmd->parsed())
    return cmd_tool(tool_name, input_arg, tool_timeout_ms, g);
  if (inspect->parsed()) {
    auto cfg = make_config(g);
    return runtime::cli::cmd_inspect(*open_reader(g), id, at,
                                     cfg ? cfg->snapshot_every : 0,
                                     g.json_out);
  }
  if (agent_cmd->parsed())
    return runtime::cli::cmd_agent(*open_reader(g), id, g.json_out);
  if (replay->parsed())
    return runtime::cli::cmd_replay(*open_reader(g), id, against, g.json_out);
  if (test->parsed()) {
    // A store is needed only for targets that are execution ids.
    std::unique_ptr<persistence::event_store> store;
    for (const auto& t : targets) {
      std::error_code ec;
      if (!std::filesystem::exists(t, ec)) {
        store = open_reader(g);
        break;
      }
    }
    return runtime::cli::cmd_test(store.get(), targets, workflows,
                                  g.json_out);
  }
  if (diff->parsed())
    return runtime::cli::cmd_diff(*open_reader(g), id, other, g.json_out);
  if (export_cmd->parsed())
    return runtime::cli::cmd_export(*open_reader(g), id, std::cout);
  if (import_cmd->parsed())
    return cmd_import(import_file, g);
  if (fork->parsed())
    return cmd_fork(fork_flags, g);
  if (check->parsed() || repair->parsed()) {
    auto cfg = make_config(g);
    if (!cfg) {
      print_error(message_of(cfg.error()));
      return exit_usage;
    }
    return check->parsed()
             ? runtime::cli::cmd_check(cfg->store_dir, g.json_out)
             : runtime::cli::cmd_repair(cfg->store_dir, g.json_out);
  }
  return exit_usage;
}
