#include "cli/client_commands.hpp"

#include <signal.h>

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <iostream>
#include <iterator>
#include <memory>
#include <optional>
#include <sstream>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "cadre/actors/supervisor.hpp"
#include "cadre/runtime/progress.hpp"
#include "cadre/workflow/definition.hpp"
#include "cli/agent_commands.hpp"
#include "cli/client.hpp"
#include "cli/inline_prompt.hpp"
#include "cli/output.hpp"
#include "replay_support.hpp"
#include "cadre/messages/json_text.hpp"
#include "cli/schedule_commands.hpp"

namespace cadre::runtime::cli {

namespace {

// Set by SIGINT and SIGTERM while a command follows a stream; the client
// polls it and stops the transfer. Lives as long as the process.
std::atomic<bool>* interrupt_flag = nullptr;

void on_interrupt(int) {
  if (interrupt_flag)
    interrupt_flag->store(true);
}

void catch_interrupts(api_client& client) {
  static auto flag = std::make_shared<std::atomic<bool>>(false);
  interrupt_flag = flag.get();
  client.cancel_flag(flag);
  struct sigaction sa {};
  sa.sa_handler = on_interrupt;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGINT, &sa, nullptr);
  sigaction(SIGTERM, &sa, nullptr);
}

bool interrupted() {
  return interrupt_flag && interrupt_flag->load();
}

// Exit code of an error the server or the connection gave: a bad token or
// server URL is a configuration problem.
int exit_of(const caf::error& err, int otherwise = exit_failed) {
  return code_of(err) == errc::invalid_config ? exit_usage : otherwise;
}

int fail(const caf::error& err, int otherwise = exit_failed) {
  print_error(message_of(err));
  return exit_of(err, otherwise);
}

// The server's counters for a Prometheus textfile collector, written to a
// temporary file renamed into place, as on an embedded node.
int write_metrics(api_client& client, const std::string& file, int rc) {
  if (file.empty())
    return rc;
  auto text = client.metrics();
  if (text) {
    auto tmp = file + ".tmp";
    std::ofstream out{tmp, std::ios::trunc};
    out << *text;
    out.close();
    if (out && std::rename(tmp.c_str(), file.c_str()) == 0)
      return rc;
    std::remove(tmp.c_str());
    print_error("--metrics-file: cannot write " + file);
  } else {
    print_error("--metrics-file: " + message_of(text.error()));
  }
  return rc == exit_ok ? exit_failed : rc;
}

/// Shows an execution's events as progress until it ends or waits for a
/// person, then reports it as `cadre run` does on an embedded node.
class execution_watch {
public:
  /// `check_seq`: an event after which the execution may wait without
  /// asking anew. `quiet_until`: an event type; the events up to the first
  /// of that type are not shown, and after it the execution may wait.
  execution_watch(api_client& client, bool json_out, uint64_t check_seq = 0,
                  std::string quiet_until = {})
    : client_(client),
      json_out_(json_out),
      printer_(json_out ? progress_style::json : progress_style::human),
      check_seq_(check_seq),
      quiet_until_(std::move(quiet_until)) {
  }

  stream_handlers handlers() {
    stream_handlers h;
    h.on_event = [this](const event& ev) { return on_event(ev); };
    // Token deltas: lines in --json, as the embedded node's sink prints
    // them; for a person on a terminal, one updating line per agent.
    h.on_token = [this](const event& ev) {
      printer_.print(ev);
      printer_.flush();
      return true;
    };
    return h;
  }

  /// The execution that waits for a person, once the stream stopped there.
  std::optional<std::string> waiting_id() const {
    if (!waiting_)
      return std::nullopt;
    return waiting_->id;
  }

  /// The exit code after the stream is over.
  int conclude(const expected<stream_outcome>& out) {
    if (waiting_)
      return report(*waiting_, json_out_);
    if (!out)
      return fail(out.error());
    auto info = client_.execution(out->execution_id);
    if (!info)
      return fail(info.error());
    return report(*info, json_out_);
  }

private:
  bool on_event(const event& ev) {
    bool check = ev.seq == check_seq_;
    if (!quiet_until_.empty()) {
      if (ev.type != quiet_until_)
        return true;
      quiet_until_.clear();
      check = true;
    } else {
      printer_.print(ev);
      printer_.flush();
    }
    // An execution waits for a person from its human_requested on; after
    // an answer, another person may still be asked.
    if (ev.type != "human_requested" && !check)
      return true;
    auto info = client_.execution(ev.execution_id);
    if (info && info->status == "waiting") {
      waiting_ = std::move(*info);
      return false;
    }
    return true;
  }

  api_client& client_;
  bool json_out_;
  progress_printer printer_;
  uint64_t check_seq_;
  std::string quiet_until_;
  std::optional<execution_info> waiting_;
};

// A 422 invalid_workflow lists its errors; they are shown like local
// diagnostics, at the line of their task when the pointer is in one.
bool print_workflow_errors(const json& problem, const std::string& file,
                           const workflow::definition& def) {
  auto errors = problem.is_object() ? problem.find("errors") : problem.end();
  if (!problem.is_object() || errors == problem.end() || !errors->is_array()
      || errors->empty())
    return false;
  for (const auto& e : *errors) {
    workflow::diagnostic d;
    d.file = file;
    d.pointer = e.value("pointer", std::string{});
    // Pointers into the request body point into its `definition`.
    constexpr std::string_view prefix = "/definition";
    if (d.pointer.compare(0, prefix.size(), prefix) == 0)
      d.pointer.erase(0, prefix.size());
    d.message = e.value("message", std::string{});
    for (const auto& t : def.tasks) {
      auto n = t.pointer.size();
      if (n > 0 && d.pointer.compare(0, n, t.pointer) == 0
          && (d.pointer.size() == n || d.pointer[n] == '/'))
        d.where = t.where;
    }
    std::fprintf(stderr, "%s\n", d.to_string().c_str());
  }
  return true;
}

// On a terminal, asks the open questions of an execution the stream left
// waiting (as `cadre run` on an embedded node does: cli/inline_prompt.hpp),
// answers them over the API and follows the execution on; then the exit
// code as `conclude` gives it.
int conclude_asking(api_client& client, bool json_out,
                    execution_watch& first, expected<stream_outcome> out) {
  execution_watch* watch = &first;
  std::optional<execution_watch> next;
  while (watch->waiting_id() && can_ask_inline(json_out)) {
    auto id = *watch->waiting_id();
    auto view = client.state(id, 0);
    if (!view)
      return fail(view.error());
    auto questions = open_questions(*view);
    if (questions.empty())
      break;
    uint64_t seq = 0;
    for (const auto& q : questions) {
      auto answer = ask_inline(q, std::cin, std::cerr);
      if (!answer)
        return watch->conclude(out);
      auto at = client.answer(id, q.task, *answer);
      if (!at)
        return fail(at.error());
      seq = *at;
    }
    // From the last answer on, as `cadre input` follows it.
    next.emplace(client, json_out, seq);
    watch = &*next;
    out = client.follow(id, seq > 0 ? seq - 1 : 0, watch->handlers());
    if (out && out->execution_id.empty())
      out->execution_id = id;
  }
  return watch->conclude(out);
}

int client_run(api_client& client, const client_command& cmd) {
  // Parsed here, so a bad file is reported with its lines and columns;
  // tools and agents are the server's, which checks them.
  auto res = workflow::parse_file(cmd.file, workflow::validation_context{});
  if (!res.errors.empty()) {
    for (auto& d : res.errors)
      std::fprintf(stderr, "%s\n", d.to_string().c_str());
    return exit_usage;
  }
  json input = json::object();
  if (!cmd.input.empty()) {
    auto in = parse_input(cmd.input, "--input");
    if (!in)
      return fail(in.error(), exit_usage);
    input = std::move(*in);
  }
  json body{{"definition", res.def->document}, {"input", std::move(input)}};
  if (!cmd.idempotency_key.empty())
    body["idempotency_key"] = cmd.idempotency_key;
  execution_watch watch{client, cmd.json_out};
  auto out = client.submit_stream(body, watch.handlers());
  if (!out) {
    auto code = code_of(out.error());
    if (code != errc::invalid_workflow
        || !print_workflow_errors(client.last_problem(), cmd.file, *res.def))
      print_error(message_of(out.error()));
    return code == errc::invalid_input || code == errc::invalid_workflow
               || code == errc::invalid_config
             ? exit_usage
             : exit_failed;
  }
  // A stream that broke continues from the last event seen.
  if (out->ended == stream_outcome::how::dropped
      || out->ended == stream_outcome::how::closed) {
    if (out->execution_id.empty()) {
      print_error("the stream of the submission broke before the execution's "
                  "id arrived: "
                  + message_of(out->error));
      return exit_failed;
    }
    auto id = out->execution_id;
    out = client.follow(id, out->last_seq, watch.handlers());
    if (out && out->execution_id.empty())
      out->execution_id = id;
  }
  return write_metrics(client, cmd.metrics_file,
                       conclude_asking(client, cmd.json_out, watch, out));
}

int client_input(api_client& client, const client_command& cmd) {
  auto value = parse_answer(cmd.value);
  if (!value) {
    print_error(message_of(value.error()));
    return exit_usage;
  }
  auto seq = client.answer(cmd.id, cmd.task, *value);
  if (!seq)
    return fail(seq.error());
  // From the answer on, as an embedded node shows it.
  execution_watch watch{client, cmd.json_out, *seq};
  auto out = client.follow(cmd.id, *seq > 0 ? *seq - 1 : 0, watch.handlers());
  if (out && out->execution_id.empty())
    out->execution_id = cmd.id;
  return write_metrics(client, cmd.metrics_file, watch.conclude(out));
}

int client_executions(api_client& client, const client_command& cmd) {
  std::vector<execution_info> all;
  std::string cursor;
  do {
    auto page = client.executions(cmd.status, cursor);
    if (!page)
      return fail(page.error());
    for (auto& x : page->executions)
      all.push_back(std::move(x));
    cursor = page->next_cursor;
  } while (!cursor.empty());
  print_executions(all, cmd.json_out);
  return exit_ok;
}

int client_events(api_client& client, const client_command& cmd) {
  constexpr uint32_t page_size = 1000;
  uint64_t after = std::max<uint64_t>(cmd.from, 1) - 1;
  if (!cmd.follow) {
    bool any = false;
    for (;;) {
      auto page = client.events(cmd.id, after, page_size);
      if (!page)
        return fail(page.error());
      for (auto& ev : page->events) {
        print_event_row(ev, cmd.json_out);
        any = true;
      }
      if (!page->next_after || page->events.empty())
        break;
      after = *page->next_after;
    }
    std::fflush(stdout);
    if (!any && cmd.from <= 1) {
      print_error("execution " + cmd.id + " has no events");
      return exit_failed;
    }
    return exit_ok;
  }
  catch_interrupts(client);
  stream_handlers h;
  h.on_event = [&](const event& ev) {
    print_event_row(ev, cmd.json_out);
    std::fflush(stdout);
    return true;
  };
  auto out = client.follow(cmd.id, after, h);
  if (interrupted())
    return exit_interrupted;
  if (!out)
    return fail(out.error());
  return exit_ok;
}

int client_cancel(api_client& client, const client_command& cmd) {
  auto cancelled = client.cancel(cmd.id);
  if (!cancelled)
    return fail(cancelled.error());
  std::printf("%s\n", *cancelled ? "cancelled" : "already finished");
  return exit_ok;
}

int client_tools(api_client& client, const client_command& cmd) {
  auto list = client.tools();
  if (!list)
    return fail(list.error());
  if (cmd.json_out) {
    std::printf("%s\n", dump_json(*list).c_str());
    return exit_ok;
  }
  for (auto& t : *list) {
    auto text = t.contains("error")
                  ? "unavailable: " + t.value("error", std::string{})
                  : t.value("description", std::string{});
    // The first sentence is enough for a listing; `--json` has it all.
    if (auto dot = text.find(". "); dot != std::string::npos)
      text.resize(dot + 1);
    std::printf("%-10s %s\n", t.value("name", std::string{}).c_str(),
                text.c_str());
  }
  return exit_ok;
}

int client_tool(api_client& client, const client_command& cmd) {
  auto input = parse_input(cmd.input.empty() ? "{}" : cmd.input, "--input");
  if (!input)
    return fail(input.error(), exit_usage);
  auto out = client.invoke_tool(cmd.tool, *input, cmd.timeout_ms);
  if (!out) {
    // An unknown tool is a usage error, as on an embedded node; a call
    // that fails is the tool's failure.
    if (code_of(out.error()) == errc::not_found)
      return fail(out.error(), exit_usage);
    if (cmd.json_out && code_of(out.error()) != errc::invalid_config) {
      std::printf("%s\n",
                  dump_json(json{{"error", message_of(out.error())}}).c_str());
      return exit_failed;
    }
    return fail(out.error());
  }
  std::printf("%s\n", cmd.json_out ? dump_json(*out).c_str()
                                   : dump_json(*out, 2).c_str());
  return exit_ok;
}

int client_schedules(api_client& client, const client_command& cmd) {
  auto list = client.schedules();
  if (!list)
    return fail(list.error());
  print_schedules(*list, cmd.json_out);
  return exit_ok;
}

int client_nodes(api_client& client, const client_command& cmd) {
  auto list = client.nodes();
  if (!list)
    return fail(list.error());
  if (cmd.json_out) {
    std::printf("%s\n", dump_json(*list).c_str());
    return exit_ok;
  }
  std::printf("%-20s %-22s %-8s %6s %6s %8s  %s\n", "NAME", "ADDRESS", "STATE",
              "TOOLS", "LOAD", "UPTIME", "AGENTS");
  for (const auto& node : *list) {
    auto name = node.value("name", std::string{});
    if (node.value("self", false))
      name += " *";
    std::string agents;
    for (const auto& a : node.value("agents", json::array()))
      agents += (agents.empty() ? "" : ",") + a.get<std::string>();
    std::printf("%-20s %-22s %-8s %6zu %6llu %7llds  %s\n", name.c_str(),
                node.value("address", std::string{}).c_str(),
                node.value("state", std::string{}).c_str(),
                node.value("tools", json::array()).size(),
                static_cast<unsigned long long>(node.value("load", uint64_t{0})),
                static_cast<long long>(node.value("uptime_s", int64_t{0})),
                agents.empty() ? "-" : agents.c_str());
  }
  return exit_ok;
}

int client_tree(api_client& client, const client_command& cmd) {
  auto tree = client.tree();
  if (!tree)
    return fail(tree.error());
  if (cmd.json_out)
    std::printf("%s\n", dump_json(*tree).c_str());
  else
    std::fputs(actors::render_tree(json_value{*tree}).c_str(), stdout);
  return exit_ok;
}

int client_agent(api_client& client, const client_command& cmd) {
  auto view = client.agent(cmd.id);
  if (!view)
    return fail(view.error(), replay_exit(view.error()));
  print_agent(*view, cmd.json_out);
  return exit_ok;
}

int client_inspect(api_client& client, const client_command& cmd) {
  auto state = client.state(cmd.id, cmd.at);
  if (!state)
    return fail(state.error(), replay_exit(state.error()));
  print_inspect(*state, cmd.json_out);
  return exit_ok;
}

int client_diff(api_client& client, const client_command& cmd) {
  auto diff = client.diff(cmd.id, cmd.other);
  if (!diff)
    return fail(diff.error(), replay_exit(diff.error()));
  print_diff(*diff, cmd.json_out);
  return exit_ok;
}

int client_export(api_client& client, const client_command& cmd) {
  auto done = client.export_bundle(cmd.id, [](std::string_view piece) {
    return std::fwrite(piece.data(), 1, piece.size(), stdout) == piece.size();
  });
  std::fflush(stdout);
  if (!done)
    return fail(done.error(), replay_exit(done.error()));
  return exit_ok;
}

int client_import(api_client& client, const client_command& cmd) {
  std::ifstream in{cmd.file, std::ios::binary};
  if (!in) {
    print_error(cmd.file + ": cannot open");
    return exit_usage;
  }
  // Read here too, a line at a time, so a damaged bundle is named by its
  // file and line, as on a local store; then sent from the file, never
  // held.
  in.close();
  auto checked = walk_bundle_file(
    cmd.file, [](const event&) -> expected<bool> { return true; });
  if (!checked) {
    print_error(message_of(checked.error()));
    return exit_usage;
  }
  auto done = client.import_bundle(cmd.file);
  if (!done)
    return fail(done.error(), replay_exit(done.error()));
  print_import(*done, cmd.json_out);
  return exit_ok;
}

int client_fork(api_client& client, const client_command& cmd) {
  auto req = fork_request_of(cmd.fork);
  if (!req)
    return fail(req.error(), exit_usage);
  auto plan = client.fork(*req);
  if (!plan)
    return fail(plan.error(), replay_exit(plan.error()));
  print_fork_plan(*plan, cmd.json_out);
  if (cmd.fork.dry_run)
    return exit_ok;
  // From where the fork goes on live, as `cadre run` follows a new
  // execution.
  auto id = plan->value("id", std::string{});
  execution_watch watch{client, cmd.json_out, 0, "execution_forked"};
  auto out = client.follow(id, 0, watch.handlers());
  if (out && out->execution_id.empty())
    out->execution_id = id;
  return write_metrics(client, cmd.metrics_file, watch.conclude(out));
}

} // namespace

std::string server_url(const std::string& flag) {
  if (!flag.empty())
    return flag;
  const char* env = std::getenv("CADRE_SERVER");
  return env ? env : "";
}

std::optional<int> run_on_server(const client_command& cmd) {
  using command = int (*)(api_client&, const client_command&);
  static const std::pair<const char*, command> commands[] = {
    {"run", &client_run},
    {"input", &client_input},
    {"executions", &client_executions},
    {"events", &client_events},
    {"cancel", &client_cancel},
    {"tools", &client_tools},
    {"tool", &client_tool},
    {"tree", &client_tree},
    {"inspect", &client_inspect},
    {"agent", &client_agent},
    {"diff", &client_diff},
    {"export", &client_export},
    {"import", &client_import},
    {"fork", &client_fork},
    {"schedules", &client_schedules},
    {"nodes", &client_nodes},
  };
  auto url = server_url(cmd.server);
  if (url.empty())
    return std::nullopt;
  if (cmd.name == "resume") {
    print_error("resume runs on the server's node; use cadre serve");
    return exit_usage;
  }
  for (const auto& [name, fn] : commands) {
    if (cmd.name != name)
      continue;
    if (url.rfind("http://", 0) != 0 && url.rfind("https://", 0) != 0) {
      print_error("--server: expected an http:// or https:// URL, got '" + url
                  + "'");
      return exit_usage;
    }
    const char* token = std::getenv("CADRE_TOKEN");
    api_client client{url, token ? token : ""};
    return fn(client, cmd);
  }
  return std::nullopt;
}

} // namespace cadre::runtime::cli
