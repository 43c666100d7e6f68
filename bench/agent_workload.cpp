// `agent`: the runtime's cost of an agent turn. A scripted model without
// delay answers at once, so what a turn costs beyond the provider's own
// complete() is the runtime: the agents actor, the agent actor (which
// calls a provider that never blocks itself, after the LLM worker's first
// call), the appends to the agent's log. Turns go to the node's agents
// actor one at a time (as a coordinator sends an agent task's turn), in wal
// mode; beside them the provider's complete() on the very requests the
// agents recorded, an echo call through its pool, the append a tool call
// waits for before its tool runs, each loop's thread sleeps, and a
// workflow that chains agent tasks (the path a user's workflow takes).

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include <unistd.h>

#if __has_include(<valgrind/callgrind.h>)
#include <valgrind/callgrind.h>
#define CADRE_CALLGRIND 1
#endif

#include <caf/actor_system.hpp>
#include <caf/scoped_actor.hpp>

#include "cadre/actors/spawn.hpp"
#include "cadre/config/node_config.hpp"
#include "cadre/runtime/node.hpp"
#include "cadre/tools/llm/provider.hpp"
#include "cadre/tools/tool.hpp"
#include "cadre/workflow/agent_machine.hpp"
#include "cadre/workflow/machine.hpp"
#include "driver.hpp"

namespace cadre::bench {

namespace {

// Answers at once, without tools.
json plain_spec() {
  return json{
    {"system", "You answer in one word."},
    {"script",
     json::array({json{{"reply", json{{"text", "done"}}}}})}};
}

// Calls `tool` (echo, or echo_effects below) once, then answers from its
// result.
json tool_spec(const std::string& tool = "echo") {
  json call{{"name", tool}, {"arguments", json{{"text", "hi"}}}};
  return json{
    {"system", "You answer in one word after calling echo."},
    {"tools", json::array({tool})},
    {"script",
     json::array(
       {json{{"turn", 1}, {"reply", json{{"tool_calls", json::array({call})}}}},
        json{{"turn", 2}, {"reply", json{{"text", "done"}}}}})}};
}

// The echo tool, but declaring side effects, as http or sql do: an agent
// sends its call only once the call's `tool_called` is on disk.
class echo_with_effects final : public tools::tool {
public:
  std::string name() const override {
    return "echo_effects";
  }
  tools::tool_description describe() const override {
    return {"echo_effects", "Returns its input (declared side effects).",
            json::object(), json::object()};
  }
  bool blocking() const override {
    return false;
  }
  expected<json_value> invoke(const json_value& input,
                              tools::tool_context&) override {
    return input;
  }
};

// Under callgrind, the instructions of a measured loop (every thread's) go
// to a dump of their own, named `label`: instruction counts a turn are
// steadier than times on a loaded machine. Elsewhere, nothing.
void callgrind_zero() {
#ifdef CADRE_CALLGRIND
  CALLGRIND_ZERO_STATS;
#endif
}

void callgrind_dump(const char* label) {
#ifdef CADRE_CALLGRIND
  if (label != nullptr)
    CALLGRIND_DUMP_STATS_AT(label);
#else
  (void) label;
#endif
}

// Voluntary context switches of every thread of this process, by thread
// id, with the thread's name: each is a thread that went to sleep and was
// woken again (a futex wake-up, tens of us on an idle VM), so their count
// over a loop counts its hand-offs to a sleeping thread. A busy machine's
// threads sleep less often.
using sleep_counts = std::map<std::string, std::pair<std::string, uint64_t>>;

sleep_counts thread_sleeps() {
  sleep_counts out;
  std::error_code ec;
  for (const auto& d :
       std::filesystem::directory_iterator("/proc/self/task", ec)) {
    std::ifstream f(d.path() / "status");
    std::string line, name;
    const std::string key = "voluntary_ctxt_switches:";
    while (std::getline(f, line)) {
      if (line.compare(0, 5, "Name:") == 0)
        name = line.substr(line.find_first_not_of(" \t", 5));
      else if (line.compare(0, key.size(), key) == 0)
        out[d.path().filename().string()]
          = {name, std::stoull(line.substr(key.size()))};
    }
  }
  return out;
}

// The sleeps an operation between two counts: in all, and by thread name
// (CAF names its scheduler threads, its clock's and a detached actor's;
// the event store's writer is a detached actor, the client the main
// thread).
struct sleeps_per_op {
  double total = 0;
  json by_thread = json::object();
};

sleeps_per_op sleeps_between(const sleep_counts& before,
                             const sleep_counts& after, size_t ops) {
  sleeps_per_op out;
  std::map<std::string, uint64_t> by_name;
  uint64_t total = 0;
  for (const auto& [tid, now] : after) {
    auto i = before.find(tid);
    auto then = i == before.end() ? 0 : i->second.second;
    auto d = now.second >= then ? now.second - then : 0;
    by_name[now.first] += d;
    total += d;
  }
  auto n = static_cast<double>(std::max<size_t>(ops, 1));
  out.total = static_cast<double>(total) / n;
  for (const auto& [name, d] : by_name)
    if (d > 0)
      out.by_thread[name] = static_cast<double>(d) / n;
  return out;
}

double elapsed_us(clock::time_point t0) {
  return std::chrono::duration<double, std::micro>(clock::now() - t0).count();
}

struct turn_run {
  bool ok = false;
  /// The turns after the first, one at a time.
  std::vector<double> latency_us;
  double seconds = 0;
  /// The first turn of a new agent id: spawns the agent actor, reads its
  /// (empty) log, starts its LLM worker and provider.
  double cold_us = 0;
  std::string agent_log;
  /// Thread sleeps (thread_sleeps) a turn after the first.
  sleeps_per_op sleeps;
};

// n + 1 sequential turns of one agent id (memory scope execution: one
// conversation, memory window 20). `measure`: the callgrind dump of the n
// turns after the first (none: nullptr).
turn_run run_turns(runtime::node& node, const json& spec,
                   const std::string& execution, size_t n,
                   const char* measure = nullptr) {
  turn_run out;
  out.latency_us.reserve(n);
  caf::scoped_actor self{node.system()};
  auto agents = node.agents();
  clock::time_point t0;
  sleep_counts sleeps0;
  for (size_t i = 0; i <= n; ++i) {
    agent_turn turn;
    turn.agent = "bench";
    turn.spec = json_value{spec};
    turn.input = json_value{json("Question " + std::to_string(i))};
    turn.execution_id = execution;
    turn.task_id = "t" + std::to_string(i);
    turn.idempotency_key = execution + "/" + turn.task_id + "/1";
    if (i == 1) {
      sleeps0 = thread_sleeps();
      if (measure != nullptr)
        callgrind_zero();
      t0 = clock::now();
    }
    auto t = clock::now();
    bool ok = true;
    self->request(agents, caf::infinite, run_atom_v, std::move(turn))
      .receive(
        [&](task_result& res) {
          if (i == 0)
            out.agent_log = res.usage->value("agent_log", std::string{});
        },
        [&](caf::error& err) {
          std::fprintf(stderr, "agent: %s\n", to_string(err).c_str());
          ok = false;
        });
    if (!ok)
      return out;
    auto us = elapsed_us(t);
    if (i == 0)
      out.cold_us = us;
    else
      out.latency_us.push_back(us);
  }
  out.seconds = seconds_since(t0);
  callgrind_dump(measure);
  out.sleeps = sleeps_between(sleeps0, thread_sleeps(), n);
  out.ok = true;
  return out;
}

struct loop_run {
  std::vector<double> us;
  /// Thread sleeps (thread_sleeps) a call.
  sleeps_per_op sleeps;
};

// n + n/10 calls of `op(i)` one at a time, the first n/10 a warm-up; under
// callgrind the instructions of the others go to a dump named `label`.
// Stops at the first call that fails (op returns false).
template <class Op>
loop_run run_loop(size_t n, const char* label, Op op) {
  loop_run out;
  out.us.reserve(n);
  auto warm = n / 10;
  sleep_counts sleeps0;
  for (size_t i = 0; i < n + warm; ++i) {
    if (i == warm) {
      sleeps0 = thread_sleeps();
      callgrind_zero();
    }
    auto t = clock::now();
    if (!op(i))
      return out;
    if (i >= warm)
      out.us.push_back(elapsed_us(t));
  }
  callgrind_dump(label);
  out.sleeps = sleeps_between(sleeps0, thread_sleeps(), n);
  return out;
}

expected<std::vector<event>> read_log(runtime::node& node,
                                      const std::string& log) {
  caf::scoped_actor self{node.system()};
  std::vector<event> out;
  caf::error failure;
  self->request(node.store(), caf::infinite, read_atom_v, log, uint64_t{1},
                uint64_t{0})
    .receive([&](std::vector<event>& evs) { out = std::move(evs); },
             [&](caf::error& err) { failure = err; });
  if (failure)
    return failure;
  return out;
}

// The provider alone: complete() on each request the agent recorded, summed
// per turn (a tool turn makes two calls). The first turn is left out, as in
// run_turns.
std::vector<double> direct_provider_us(const std::vector<event>& log,
                                       const json& spec, bool& ok) {
  tools::llm::profile p;
  p.kind = "scripted";
  p.settings = json{{"turns", spec["script"]}};
  auto prov = tools::llm::make_provider(p);
  if (!prov) {
    std::fprintf(stderr, "agent: %s\n", to_string(prov.error()).c_str());
    ok = false;
    return {};
  }
  tools::llm::call_context cc;
  // The agent's worker publishes each piece on the bus; here it goes
  // nowhere, so the figure is the provider's alone.
  cc.on_text = [](std::string_view) {};
  std::vector<std::string> order;
  std::map<std::string, double> per_turn;
  workflow::agent_request_log requests;
  for (const auto& ev : log) {
    if (ev.type != workflow::agent_events::llm_requested)
      continue;
    const auto& pl = ev.payload.get();
    const llm_request* whole = requests.apply(ev);
    if (!whole) {
      std::fprintf(stderr, "agent: recorded request %llu does not read\n",
                   static_cast<unsigned long long>(ev.seq));
      ok = false;
      return {};
    }
    const auto& req = *whole;
    auto turn = pl.value("turn", std::string{});
    if (!per_turn.count(turn))
      order.push_back(turn);
    auto t = clock::now();
    auto res = (*prov)->complete(req, cc);
    per_turn[turn] += elapsed_us(t);
    if (!res) {
      std::fprintf(stderr, "agent: %s\n", to_string(res.error()).c_str());
      ok = false;
    }
  }
  std::vector<double> out;
  for (size_t i = 1; i < order.size(); ++i)
    out.push_back(per_turn[order[i]]);
  return out;
}

// Agent tasks t0 -> t1 -> ... in one workflow: one agent id, one
// conversation, every turn through a coordinator.
json chain_definition(const json& spec, size_t n) {
  json tasks = json::array();
  for (size_t i = 0; i < n; ++i) {
    json t{{"id", "t" + std::to_string(i)},
           {"agent", "bench"},
           {"input", "Question " + std::to_string(i)}};
    if (i > 0)
      t["depends_on"] = json::array({"t" + std::to_string(i - 1)});
    tasks.push_back(std::move(t));
  }
  return json{{"name", "bench_agent_chain"},
              {"agents", json{{"bench", spec}}},
              {"tasks", std::move(tasks)}};
}

struct chain_run {
  bool ok = false;
  double seconds = 0;
  size_t events = 0;
  std::vector<double> task_us;
  /// Thread sleeps a task (submission to completion, over the tasks).
  sleeps_per_op sleeps;
};

chain_run run_chain(runtime::node& node, const json& spec, size_t n) {
  chain_run out;
  submit_request req;
  req.definition = json_value{chain_definition(spec, n)};
  req.input = json_value{json::object()};
  caf::scoped_actor self{node.system()};
  caf::error failure;
  std::string id;
  execution_info info;
  auto sleeps0 = thread_sleeps();
  auto t0 = clock::now();
  self->request(node.executions(), caf::infinite, submit_atom_v, req)
    .receive([&](std::string& x) { id = x; },
             [&](caf::error& err) { failure = err; });
  if (!failure)
    self->request(node.executions(), caf::infinite, await_atom_v, id)
      .receive([&](execution_info& x) { info = std::move(x); },
               [&](caf::error& err) { failure = err; });
  out.seconds = seconds_since(t0);
  out.sleeps = sleeps_between(sleeps0, thread_sleeps(), n);
  if (failure || info.status != "completed") {
    std::fprintf(stderr, "agent chain: %s\n",
                 failure ? to_string(failure).c_str()
                         : ("status " + info.status + ": " + info.error)
                             .c_str());
    return out;
  }
  auto log = read_log(node, id);
  if (!log) {
    std::fprintf(stderr, "agent chain: %s\n", to_string(log.error()).c_str());
    return out;
  }
  out.events = log->size();
  // Dispatched -> completed by the events' own times (the coordinator's).
  std::map<std::string, int64_t> dispatched;
  for (const auto& ev : *log) {
    auto task = ev.payload->value("task", std::string{});
    if (ev.type == workflow::events::dispatched)
      dispatched[task] = ev.time_us;
    else if (ev.type == workflow::events::completed)
      if (auto i = dispatched.find(task); i != dispatched.end())
        out.task_us.push_back(static_cast<double>(ev.time_us - i->second));
  }
  out.ok = true;
  return out;
}

// The run whose mean is the median of the runs' means.
const turn_run& median_run(const std::vector<turn_run>& runs) {
  std::vector<std::pair<double, size_t>> means;
  for (size_t i = 0; i < runs.size(); ++i)
    means.emplace_back(summarize(runs[i].latency_us).mean, i);
  std::sort(means.begin(), means.end());
  return runs[means[means.size() / 2].second];
}

json report(const char* label, const std::vector<turn_run>& runs) {
  const auto& m = median_run(runs);
  auto s = summarize(m.latency_us);
  auto rate = static_cast<double>(m.latency_us.size()) / m.seconds;
  std::printf("  %-30s: %7.1f us mean %7.1f p50 %7.1f p99 %8s turns/s "
              "%4.1f thread sleeps a turn\n",
              label, s.mean, s.p50, s.p99, with_commas(rate).c_str(),
              m.sleeps.total);
  std::string threads;
  for (const auto& [name, x] : m.sleeps.by_thread.items()) {
    char buf[96];
    std::snprintf(buf, sizeof(buf), "%s%s %.2f", threads.empty() ? "" : ", ",
                  name.c_str(), x.get<double>());
    threads += buf;
  }
  std::printf("  %-30s  sleeps a turn by thread: %s\n", "", threads.c_str());
  std::vector<double> cold, means;
  for (auto& r : runs) {
    cold.push_back(r.cold_us);
    means.push_back(summarize(r.latency_us).mean);
  }
  auto j = to_json(s);
  j["unit"] = "us";
  j["turns_per_sec"] = rate;
  j["runs_mean_us"] = means;
  j["first_turn_us"] = cold;
  j["thread_sleeps_per_turn"] = m.sleeps.total;
  j["thread_sleeps_per_turn_by_thread"] = m.sleeps.by_thread;
  return j;
}

} // namespace

void run_agent(run_context& ctx) {
  auto n = ctx.opts.agent_turns;
  auto chain_n = std::min<size_t>(n, 1000);
  auto dir = fresh_dir(ctx.opts);
  // Declared before the node, so the store goes after the node stopped.
  struct remove_at_exit {
    std::string dir;
    ~remove_at_exit() {
      std::error_code ec;
      std::filesystem::remove_all(dir, ec);
    }
  } cleanup{dir};
  // The node's settings from the environment as `cadre` reads them
  // (CADRE_SCHEDULER_SPIN_POLLS: callgrind counts spinning workers' polls,
  // so instruction counts are taken with CAF's 100), then the bench's store.
  auto env = config::apply_environment(config::node_config{});
  if (!env) {
    std::fprintf(stderr, "agent: %s\n", to_string(env.error()).c_str());
    return;
  }
  auto cfg = std::move(*env);
  cfg.store_dir = dir;
  cfg.store_sync = false;
  runtime::start_options start;
  start.extra_tools["echo_effects"] = [](const json_value&)
    -> expected<std::unique_ptr<tools::tool>> {
    return std::make_unique<echo_with_effects>();
  };
  auto nd = runtime::node::start(cfg, std::move(start));
  if (!nd) {
    std::fprintf(stderr, "agent: node: %s\n", to_string(nd.error()).c_str());
    return;
  }
  auto& node = **nd;
  auto plain = plain_spec();
  auto tool = tool_spec();
  auto effects = tool_spec("echo_effects");
  std::printf("agent       : %zu sequential turns per run to the node's "
              "agents actor, wal, median run of %d (scripted model, no "
              "delay)\n",
              n, ctx.opts.repeat);
  // Warm-up: threads, allocator, RocksDB memtable.
  run_turns(node, plain, "warm-plain", n / 10);
  run_turns(node, tool, "warm-tool", n / 10);
  run_turns(node, effects, "warm-effects", n / 10);
  run_chain(node, plain, chain_n / 10 + 1);
  std::vector<turn_run> plain_runs, tool_runs, effects_runs;
  std::vector<chain_run> chains;
  // Interleaved, so drift in the machine's load hits both alike. Each run
  // is a new execution id, so a new agent with an empty memory.
  for (int r = 0; r < ctx.opts.repeat; ++r) {
    auto rs = std::to_string(r);
    plain_runs.push_back(run_turns(node, plain, "plain-" + rs, n,
                                   r == 0 ? "agent plain turns" : nullptr));
    tool_runs.push_back(run_turns(node, tool, "tool-" + rs, n,
                                  r == 0 ? "agent echo turns" : nullptr));
    effects_runs.push_back(run_turns(node, effects, "effects-" + rs, n,
                                     r == 0 ? "agent side-effect turns"
                                            : nullptr));
    chains.push_back(run_chain(node, plain, chain_n));
    if (!plain_runs.back().ok || !tool_runs.back().ok
        || !effects_runs.back().ok || !chains.back().ok)
      return;
  }
  json out;
  bool ok = true;
  auto jp = report("turn, no tool", plain_runs);
  auto jt = report("turn, one echo call", tool_runs);
  auto je = report("turn, one call with effects", effects_runs);
  const auto& mp = median_run(plain_runs);
  const auto& mt = median_run(tool_runs);

  // The provider alone, on the requests of the median runs.
  auto plain_log = read_log(node, mp.agent_log);
  auto tool_log = read_log(node, mt.agent_log);
  if (!plain_log || !tool_log) {
    std::fprintf(stderr, "agent: cannot read the agents' logs\n");
    return;
  }
  direct_provider_us(*plain_log, plain, ok); // warm-up
  auto dp = summarize(direct_provider_us(*plain_log, plain, ok));
  auto dt = summarize(direct_provider_us(*tool_log, tool, ok));
  std::printf("  %-30s: %7.1f us mean %7.1f p50 %7.1f p99 (1 call)\n",
              "complete() direct, no tool", dp.mean, dp.p50, dp.p99);
  std::printf("  %-30s: %7.1f us mean %7.1f p50 %7.1f p99 (2 calls)\n",
              "complete() direct, echo turn", dt.mean, dt.p50, dt.p99);
  auto tp50 = jp["p50"].get<double>();
  auto tt50 = jt["p50"].get<double>();
  auto overhead_plain = tp50 - dp.p50;
  auto overhead_tool = tt50 - dt.p50;
  std::printf("  %-30s: %7.1f us p50 (no tool), %.1f us p50 (one echo "
              "call)\n",
              "runtime overhead a turn", overhead_plain, overhead_tool);
  std::vector<double> cold;
  for (auto& r : plain_runs)
    cold.push_back(r.cold_us);
  std::printf("  %-30s: %7.1f us median (spawns the agent and its LLM "
              "worker, reads its log)\n",
              "first turn of an agent id", median(cold));

  // What a tool call adds, against the same call through its pool, and
  // against the append that must be durable before the tool runs.
  double echo_pool_us = 0;
  loop_run echo_loop;
  {
    auto pool = actors::spawn_tool_pool(node.system(), node.registry(), "echo",
                                        json_value{json::object()},
                                        actors::pool_options{});
    if (!pool) {
      std::fprintf(stderr, "agent: %s\n", to_string(pool.error()).c_str());
      ok = false;
    } else {
      task_request req;
      req.execution_id = "bench";
      req.task_id = "echo";
      req.tool = "echo";
      req.input = json_value{json{{"text", "hi"}}};
      caf::scoped_actor self{node.system()};
      echo_loop = run_loop(n, "echo through its pool", [&](size_t) {
        bool done = true;
        self->request(*pool, caf::infinite, run_atom_v, req)
          .receive([](task_result&) {},
                   [&](caf::error& err) {
                     done = false;
                     std::fprintf(stderr, "agent: %s\n",
                                  to_string(err).c_str());
                   });
        return done;
      });
      ok = ok && echo_loop.us.size() == n;
      echo_pool_us = median(echo_loop.us);
      caf::anon_send_exit(*pool, caf::exit_reason::user_shutdown);
    }
  }
  // The durable record a tool call needs before its tool runs, alone: one
  // event the size of a `tool_called` appended to the event store and
  // acknowledged, from a scoped requester as the echo call above.
  loop_run append_loop;
  {
    caf::scoped_actor self{node.system()};
    const std::string log = "agent:bench-append";
    append_loop = run_loop(n, "append round trip", [&](size_t i) {
      append_request req;
      req.events.push_back(
        event{log, i + 1, 0, "tool_called",
              json_value{json{{"turn", "bench-append/t/1"},
                              {"call", 1},
                              {"id", "call_1_1"},
                              {"name", "echo"},
                              {"arguments", json{{"text", "hi"}}}}}});
      bool done = true;
      // No request timeout: it would put a timer in CAF's clock, the cost
      // this loop measures without; the store is local and answers each.
      self->request(node.store(), caf::infinite, append_atom_v, std::move(req))
        .receive([](uint64_t) {},
                 [&](caf::error& err) {
                   done = false;
                   std::fprintf(stderr, "agent: append: %s\n",
                                to_string(err).c_str());
                 });
      return done;
    });
    ok = ok && append_loop.us.size() == n;
  }
  auto append_us = median(append_loop.us);
  auto per_tool = tt50 - tp50;
  auto per_tool_runtime = overhead_tool - overhead_plain;
  std::printf("  %-30s: %7.1f us p50 (echo turn - plain turn; %.1f us of "
              "it the runtime's)\n",
              "a tool call in a turn", per_tool, per_tool_runtime);
  std::printf("  %-30s: %7.1f us median %4.1f thread sleeps a call, so a "
              "tool call in a turn costs %.1fx\n",
              "echo through its pool", echo_pool_us, echo_loop.sleeps.total,
              echo_pool_us > 0 ? per_tool / echo_pool_us : 0.0);
  // The same call of a tool that declares side effects: its tool_called is
  // appended and acknowledged before it runs (docs/agents.md).
  auto per_effects = je["p50"].get<double>() - tp50;
  std::printf("  %-30s: %7.1f us p50 (its turn - plain turn) = %.1fx the "
              "echo through its pool\n",
              "a call with side effects", per_effects,
              echo_pool_us > 0 ? per_effects / echo_pool_us : 0.0);
  // What must precede a tool call alone: below it no tool call in a turn
  // goes (both from a scoped requester, so with the client's wake-ups).
  std::printf("  %-30s: %7.1f us median %4.1f thread sleeps an append; "
              "the append alone = %.1fx the echo\n",
              "append round trip, one event", append_us,
              append_loop.sleeps.total,
              echo_pool_us > 0 ? append_us / echo_pool_us : 0.0);

  // Events per turn, from the logs (first turn included).
  auto events_plain = static_cast<double>(plain_log->size())
                      / static_cast<double>(n + 1);
  auto events_tool = static_cast<double>(tool_log->size())
                     / static_cast<double>(n + 1);
  std::map<std::string, size_t> kinds;
  for (const auto& ev : *tool_log)
    ++kinds[ev.type];
  std::printf("  %-30s: %.1f (no tool), %.1f (one echo call)\n",
              "events a turn in the agent log", events_plain, events_tool);

  // Through a workflow: the coordinator's task on top of the turn.
  std::vector<double> chain_secs;
  for (auto& c : chains)
    chain_secs.push_back(c.seconds);
  auto chain_med = median(chain_secs);
  const chain_run* cm = &chains.front();
  for (auto& c : chains)
    if (c.seconds == chain_med)
      cm = &c;
  if (chains.size() % 2 == 0) {
    std::vector<const chain_run*> sorted;
    for (auto& c : chains)
      sorted.push_back(&c);
    std::sort(sorted.begin(), sorted.end(),
              [](auto* x, auto* y) { return x->seconds < y->seconds; });
    cm = sorted[sorted.size() / 2];
  }
  auto chain_rate = static_cast<double>(chain_n) / chain_med;
  auto ct = summarize(cm->task_us);
  std::printf("  %-30s: %8.3f ms %8s turns/s (%zu events in the "
              "execution log)  task latency p50 %.1f us p99 %.1f us, %.1f "
              "thread sleeps a task\n",
              ("workflow, chain of " + std::to_string(chain_n) + " agent "
               "tasks").c_str(),
              chain_med * 1000, with_commas(chain_rate).c_str(), cm->events,
              ct.p50, ct.p99, cm->sleeps.total);

  // The same durable unit without an agent: a workflow's chain of echo
  // tasks on a node of its own (the `chain` workload), each step recorded
  // before it is acknowledged as a tool call in a turn is. What a durable
  // tool call costs in cadre, against which a tool call in a turn compares.
  std::vector<double> step_us;
  std::vector<double> echo_task_p50;
  for (int r = 0; r < ctx.opts.repeat; ++r) {
    auto run = run_once(ctx.opts, "chain", chain_n, false);
    ok = ok && run.ok;
    if (!run.ok)
      break;
    step_us.push_back(run.seconds * 1e6 / static_cast<double>(chain_n));
    echo_task_p50.push_back(run.task_latency_us.p50);
  }
  auto echo_step_us = step_us.empty() ? 0.0 : median(step_us);
  auto echo_task_us = echo_task_p50.empty() ? 0.0 : median(echo_task_p50);
  std::printf("  %-30s: %7.1f us a step (chain of %zu, median run), task "
              "latency p50 %.1f us; a tool call in a turn = %.2fx a step\n",
              "durable echo task, workflow", echo_step_us, chain_n,
              echo_task_us, echo_step_us > 0 ? per_tool / echo_step_us : 0.0);

  out["through"] = "agents actor of a node (agent_turn, as a coordinator "
                   "sends it)";
  out["mode"] = "wal";
  out["turns_per_run"] = n;
  out["no_tool"] = jp;
  out["one_echo_call"] = jt;
  out["one_call_with_side_effects"] = je;
  out["provider_direct_no_tool_us"] = to_json(dp);
  out["provider_direct_echo_turn_us"] = to_json(dt);
  out["runtime_overhead_p50_us"]
    = json{{"no_tool", overhead_plain}, {"one_echo_call", overhead_tool}};
  out["first_turn_median_us"] = median(cold);
  out["tool_call_in_turn_p50_us"] = per_tool;
  out["tool_call_runtime_p50_us"] = per_tool_runtime;
  out["echo_pool_median_us"] = echo_pool_us;
  out["tool_call_over_echo_pool"]
    = echo_pool_us > 0 ? per_tool / echo_pool_us : 0.0;
  out["side_effect_call_in_turn_p50_us"] = per_effects;
  out["side_effect_call_over_echo_pool"]
    = echo_pool_us > 0 ? per_effects / echo_pool_us : 0.0;
  out["echo_pool_thread_sleeps_per_call"] = echo_loop.sleeps.total;
  out["echo_pool_thread_sleeps_by_thread"] = echo_loop.sleeps.by_thread;
  out["append_round_trip_median_us"] = append_us;
  out["append_round_trip_thread_sleeps"] = append_loop.sleeps.total;
  out["append_round_trip_thread_sleeps_by_thread"]
    = append_loop.sleeps.by_thread;
  out["append_over_echo_pool"]
    = echo_pool_us > 0 ? append_us / echo_pool_us : 0.0;
  out["events_per_turn"]
    = json{{"no_tool", events_plain}, {"one_echo_call", events_tool}};
  out["echo_turn_events_by_type"] = kinds;
  auto cj = to_json(ct);
  cj["unit"] = "us";
  out["workflow_chain"] = json{{"tasks", chain_n},
                               {"seconds", chain_med},
                               {"runs_seconds", chain_secs},
                               {"turns_per_sec", chain_rate},
                               {"events", cm->events},
                               {"thread_sleeps_per_task", cm->sleeps.total},
                               {"thread_sleeps_per_task_by_thread",
                                cm->sleeps.by_thread},
                               {"task_latency", cj}};
  out["durable_echo_step"]
    = json{{"tasks", chain_n},
           {"step_us_median", echo_step_us},
           {"runs_step_us", step_us},
           {"task_latency_p50_us_median", echo_task_us}};
  out["tool_call_over_durable_echo_step"]
    = echo_step_us > 0 ? per_tool / echo_step_us : 0.0;
  out["ok"] = ok;
  ctx.results["agent"] = out;
}

} // namespace cadre::bench
