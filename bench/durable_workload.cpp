// `fanout_N`, `chain_N` and `replay`: durable no-op (echo) tasks through a
// whole node with a fresh store, and the fold of the resulting log.

#include <atomic>
#include <cstdio>
#include <filesystem>
#include <map>
#include <unistd.h>

#include <caf/actor_system.hpp>
#include <caf/scoped_actor.hpp>

#include "cadre/persistence/event_store.hpp"
#include "cadre/runtime/node.hpp"
#include "cadre/workflow/machine.hpp"
#include "driver.hpp"

namespace cadre::bench {

namespace {

// -- workflow documents ---------------------------------------------------------

// One map task over input.items, every item at once (concurrency 0).
json fanout_definition() {
  return json{{"name", "bench_fanout"},
              {"tasks", json::array({json{{"id", "map"},
                                          {"kind", "map"},
                                          {"items", "input.items"},
                                          {"concurrency", 0},
                                          {"tool", "echo"},
                                          {"input", "{{ item }}"}}})}};
}

json fanout_input(size_t n) {
  json items = json::array();
  for (size_t i = 0; i < n; ++i)
    items.push_back(i);
  return json{{"items", std::move(items)}};
}

// t0 -> t1 -> ... -> t{n-1}, each an echo of its own index.
json chain_definition(size_t n) {
  json tasks = json::array();
  for (size_t i = 0; i < n; ++i) {
    json t{{"id", "t" + std::to_string(i)},
           {"tool", "echo"},
           {"input", json{{"i", i}}}};
    if (i > 0)
      t["depends_on"] = json::array({"t" + std::to_string(i - 1)});
    tasks.push_back(std::move(t));
  }
  return json{{"name", "bench_chain"}, {"tasks", std::move(tasks)}};
}

// -- one run ------------------------------------------------------------------

// Task latency: from each unit's task_dispatched to its task_completed, by
// the events' own times (the coordinator's clock at each decision).
summary task_latencies(const std::vector<event>& log) {
  std::map<std::pair<std::string, int64_t>, int64_t> dispatched;
  std::vector<double> lat;
  for (const auto& ev : log) {
    if (ev.type != workflow::events::dispatched
        && ev.type != workflow::events::completed)
      continue;
    const auto& p = ev.payload.get();
    auto key = std::make_pair(p.value("task", std::string{}),
                              p.value("item", int64_t{-1}));
    if (ev.type == workflow::events::dispatched) {
      dispatched[key] = ev.time_us;
    } else if (auto i = dispatched.find(key); i != dispatched.end()) {
      lat.push_back(static_cast<double>(ev.time_us - i->second));
      dispatched.erase(i);
    }
  }
  return summarize(std::move(lat));
}

const char* unit_of(const std::string& shape) {
  return shape == "chain" ? "steps/s" : "tasks/s";
}

// Goals on the 2-core reference machine (bench/README.md).
void check_goals(run_context& ctx, const std::string& name,
                 const std::string& shape, size_t n, const std::string& mode,
                 double rate) {
  double want = 0;
  if (shape == "fanout" && mode == "wal" && n >= 10000)
    want = 100000;
  else if (shape == "chain" && mode == "wal" && n >= 1000)
    want = 50000;
  else if (shape == "chain" && mode == "sync" && n >= 1000)
    want = 5000;
  if (want > 0)
    ctx.goal(name + " " + mode + ": " + with_commas(rate) + " " +
               unit_of(shape) + " >= " + with_commas(want),
             rate >= want);
}

} // namespace

std::string fresh_dir(const options& opts) {
  static std::atomic<int> counter{0};
  auto base = opts.db.empty() ? std::filesystem::temp_directory_path()
                              : std::filesystem::path{opts.db};
  auto dir = base
             / ("cadre_bench." + std::to_string(::getpid()) + "."
                + std::to_string(counter++));
  std::filesystem::remove_all(dir);
  return dir.string();
}

// Starts a node on a fresh store, runs one workflow from submit to
// completion and reads its log back. Keeps the store when `keep_dir`.
durable_run run_once(const options& opts, const std::string& shape, size_t n,
                     bool sync, std::string* keep_dir) {
  durable_run out;
  submit_request req;
  if (shape == "fanout") {
    req.definition = json_value{fanout_definition()};
    req.input = json_value{fanout_input(n)};
  } else {
    req.definition = json_value{chain_definition(n)};
    req.input = json_value{json::object()};
  }
  auto dir = fresh_dir(opts);
  {
    config::node_config cfg;
    cfg.store_dir = dir;
    cfg.store_sync = sync;
    cfg.snapshot_every = opts.snapshot_every;
    auto nd = runtime::node::start(cfg);
    if (!nd) {
      std::fprintf(stderr, "node: %s\n", to_string(nd.error()).c_str());
      return out;
    }
    auto& node = **nd;
    caf::scoped_actor self{node.system()};
    caf::error failure;
    execution_info info;
    auto t0 = clock::now();
    self->request(node.executions(), caf::infinite, submit_atom_v, req)
      .receive([&](std::string& id) { out.id = id; },
               [&](caf::error& err) { failure = err; });
    if (!failure)
      self->request(node.executions(), caf::infinite, await_atom_v, out.id)
        .receive([&](execution_info& x) { info = std::move(x); },
                 [&](caf::error& err) { failure = err; });
    out.seconds = seconds_since(t0);
    if (failure || info.status != "completed") {
      std::fprintf(stderr, "%s_%zu: %s\n", shape.c_str(), n,
                   failure ? to_string(failure).c_str()
                           : ("status " + info.status).c_str());
      return out;
    }
    self->request(node.store(), caf::infinite, read_atom_v, out.id,
                  uint64_t{1}, uint64_t{0})
      .receive([&](std::vector<event>& log) { out.log = std::move(log); },
               [&](caf::error& err) { failure = err; });
    if (failure) {
      std::fprintf(stderr, "read log: %s\n", to_string(failure).c_str());
      return out;
    }
  } // the node stops here
  out.events = out.log.size();
  out.task_latency_us = task_latencies(out.log);
  out.ok = true;
  if (keep_dir)
    *keep_dir = dir;
  else
    std::filesystem::remove_all(dir);
  return out;
}

void run_durable(run_context& ctx, const std::string& name,
                 const std::string& shape, size_t n) {
  json out;
  // The first node of the process pays for thread and page set-up.
  static bool warmed = false;
  if (!warmed) {
    run_once(ctx.opts, "fanout", 100, false);
    warmed = true;
  }
  for (const auto& mode : ctx.opts.modes) {
    std::vector<durable_run> runs;
    for (int r = 0; r < ctx.opts.repeat; ++r) {
      auto run = run_once(ctx.opts, shape, n, mode == "sync");
      if (!run.ok)
        return;
      run.log.clear();
      runs.push_back(std::move(run));
    }
    std::vector<double> secs;
    for (auto& r : runs)
      secs.push_back(r.seconds);
    auto med = median(secs);
    // Latency percentiles of the run with the median wall time.
    const durable_run* mid = &runs.front();
    for (auto& r : runs)
      if (r.seconds == med)
        mid = &r;
    if (runs.size() % 2 == 0) {
      std::sort(runs.begin(), runs.end(),
                [](auto& x, auto& y) { return x.seconds < y.seconds; });
      mid = &runs[runs.size() / 2];
    }
    auto tasks_per_s = static_cast<double>(n) / med;
    auto events_per_s = static_cast<double>(mid->events) / med;
    const auto& lat = mid->task_latency_us;
    std::printf("%-12s: %-4s %8.3f ms %9s %s %10s events/s (%zu events)  "
                "task latency p50 %s us p99 %s us\n",
                name.c_str(), mode.c_str(), med * 1000,
                with_commas(tasks_per_s).c_str(), unit_of(shape),
                with_commas(events_per_s).c_str(), mid->events,
                with_commas(lat.p50).c_str(), with_commas(lat.p99).c_str());
    check_goals(ctx, name, shape, n, mode, tasks_per_s);
    auto lj = to_json(lat);
    lj["unit"] = "us";
    out[mode] = json{{"seconds", med},
                     {"runs_seconds", secs},
                     {"tasks", n},
                     {"tasks_per_sec", tasks_per_s},
                     {"events", mid->events},
                     {"events_per_sec", events_per_s},
                     {"task_latency", lj}};
  }
  out["shape"] = shape;
  out["n"] = n;
  ctx.results[name] = out;
}

void report_linearity(run_context& ctx) {
  // Smallest and largest size of each shape that ran.
  for (const char* shape : {"fanout", "chain"}) {
    std::string lo, hi;
    size_t nlo = 0, nhi = 0;
    for (auto& [name, r] : ctx.results.items()) {
      if (!r.is_object() || r.value("shape", std::string{}) != shape)
        continue;
      auto n = r["n"].get<size_t>();
      if (lo.empty() || n < nlo)
        lo = name, nlo = n;
      if (hi.empty() || n > nhi)
        hi = name, nhi = n;
    }
    if (lo.empty() || nlo == nhi)
      continue;
    json lin;
    for (const auto& mode : ctx.opts.modes) {
      auto& a = ctx.results[lo];
      auto& b = ctx.results[hi];
      if (!a.contains(mode) || !b.contains(mode))
        continue;
      auto per_lo = a[mode]["seconds"].get<double>() / double(nlo) * 1e6;
      auto per_hi = b[mode]["seconds"].get<double>() / double(nhi) * 1e6;
      std::printf("linearity   : %-6s %-4s %s: %.2f us/task, %s: %.2f "
                  "us/task, ratio %.2f\n",
                  shape, mode.c_str(), lo.c_str(), per_lo, hi.c_str(),
                  per_hi, per_hi / per_lo);
      lin[mode] = json{{"small", lo},
                       {"large", hi},
                       {"us_per_task_small", per_lo},
                       {"us_per_task_large", per_hi},
                       {"ratio", per_hi / per_lo}};
    }
    ctx.results[std::string{"linearity_"} + shape] = lin;
  }
}

// -- replay -------------------------------------------------------------------

void run_replay(run_context& ctx) {
  auto n = ctx.opts.replay_n;
  std::string dir;
  auto src = run_once(ctx.opts, "fanout", n, false, &dir);
  if (!src.ok)
    return;
  const auto& log = src.log;
  auto fold = [&](const std::vector<event>& evs) {
    workflow::machine m{src.id};
    for (const auto& ev : evs)
      if (auto r = m.apply(ev); !r) {
        std::fprintf(stderr, "replay: %s\n", to_string(r.error()).c_str());
        return false;
      }
    return m.finished();
  };
  fold(log); // warm-up
  // In memory: the events are already decoded.
  std::vector<double> mem;
  for (int r = 0; r < std::max(3, ctx.opts.repeat); ++r) {
    auto t0 = clock::now();
    if (!fold(log))
      return;
    mem.push_back(seconds_since(t0));
  }
  // From the store: read (RocksDB + decode) and fold. The store is opened
  // outside the timer.
  std::vector<double> io;
  std::vector<double> read_only;
  {
    auto store
      = persistence::event_store::open(persistence::store_options{dir, false});
    if (!store) {
      std::fprintf(stderr, "replay: %s\n", to_string(store.error()).c_str());
      return;
    }
    for (int r = 0; r < std::max(3, ctx.opts.repeat) + 1; ++r) {
      auto t0 = clock::now();
      auto evs = (*store)->read(src.id, 1, 0);
      auto t1 = clock::now();
      if (!evs || !fold(*evs))
        return;
      if (r == 0)
        continue; // warm-up: the first read pulls the WAL's memtable in
      io.push_back(seconds_since(t0));
      read_only.push_back(std::chrono::duration<double>(t1 - t0).count());
    }
  }
  std::filesystem::remove_all(dir);
  auto events = static_cast<double>(log.size());
  auto mem_rate = events / median(mem);
  auto io_rate = events / median(io);
  auto read_rate = events / median(read_only);
  std::printf("replay      : fanout_%zu log, %zu events\n", n, log.size());
  std::printf("  fold, events in memory  : %8.3f ms %12s events/s\n",
              median(mem) * 1000, with_commas(mem_rate).c_str());
  std::printf("  read + fold, from store : %8.3f ms %12s events/s "
              "(read alone %s events/s)\n",
              median(io) * 1000, with_commas(io_rate).c_str(),
              with_commas(read_rate).c_str());
  ctx.goal("replay in memory: " + with_commas(mem_rate)
             + " events/s >= 2,000,000",
           mem_rate >= 2e6);
  ctx.goal("replay from store: " + with_commas(io_rate)
             + " events/s >= 2,000,000",
           io_rate >= 2e6);
  ctx.results["replay"]
    = json{{"source", "fanout_" + std::to_string(n) + " wal"},
           {"events", log.size()},
           {"memory", json{{"seconds", median(mem)},
                           {"runs_seconds", mem},
                           {"events_per_sec", mem_rate}}},
           {"store", json{{"seconds", median(io)},
                          {"runs_seconds", io},
                          {"events_per_sec", io_rate},
                          {"read_only_events_per_sec", read_rate}}}};
}

} // namespace cadre::bench
