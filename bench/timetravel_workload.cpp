// `timetravel`: replay debugging on a recorded fan-out (docs/replay.md):
// the state at an arbitrary event of a long log from the store (with and
// without snapshots), `replay --against` throughput, a fork at the middle of
// a log through a node, and export/import throughput.

#include <cstdio>
#include <filesystem>
#include <random>
#include <sstream>

#include <caf/actor_system.hpp>
#include <caf/scoped_actor.hpp>

#include "cadre/persistence/event_store.hpp"
#include "cadre/runtime/node.hpp"
#include "cadre/workflow/replay.hpp"
#include "replay_support.hpp"
#include "driver.hpp"

namespace cadre::bench {

namespace {

// Times of `fn` over `seqs`, in ms.
template <class F>
summary time_each(const std::vector<uint64_t>& seqs, F fn) {
  std::vector<double> ms;
  for (auto seq : seqs) {
    auto t0 = clock::now();
    if (!fn(seq))
      return {};
    ms.push_back(seconds_since(t0) * 1000);
  }
  return summarize(std::move(ms));
}

} // namespace

void run_timetravel(run_context& ctx) {
  auto n = ctx.opts.timetravel_n;
  std::string dir;
  auto src = run_once(ctx.opts, "fanout", n, false, &dir);
  if (!src.ok)
    return;
  const auto& log = src.log;
  std::printf("timetravel  : fanout_%zu log, %zu events\n", n, log.size());
  json out{{"source", "fanout_" + std::to_string(n) + " wal"},
           {"events", log.size()}};

  // State at an arbitrary seq, as `cadre inspect --at` reads it.
  {
    auto store = persistence::event_store::open(
      persistence::store_options{dir, false, true});
    if (!store) {
      std::fprintf(stderr, "timetravel: %s\n",
                   to_string(store.error()).c_str());
      return;
    }
    std::mt19937_64 rng{42};
    std::vector<uint64_t> seqs;
    for (int i = 0; i < 20; ++i)
      seqs.push_back(1 + rng() % log.size());
    auto at = [&](uint64_t every) {
      return time_each(seqs, [&](uint64_t seq) {
        auto m = runtime::machine_at(runtime::store_reader(**store, every),
                                     src.id, seq);
        return m && m->last_seq() == seq;
      });
    };
    at(1000); // warm-up
    auto with = at(1000);
    auto without = at(0);
    std::printf("  state at a random seq   : %8.3f ms p50 %8.3f ms p99 with "
                "snapshots, %8.3f ms p50 from the first event\n",
                with.p50, with.p99, without.p50);
    ctx.goal("state at a seq of a " + with_commas(double(log.size()))
               + "-event log: " + with_commas(with.p50) + " ms p50 <= 20 ms",
             with.p50 <= 20);
    out["state_at"] = json{{"with_snapshots_ms", to_json(with)},
                           {"from_first_event_ms", to_json(without)}};
  }

  // replay --against: the recorded log through the same decisions.
  {
    std::vector<double> secs;
    for (int r = 0; r < std::max(3, ctx.opts.repeat); ++r) {
      auto t0 = clock::now();
      auto check = workflow::check_against(log);
      secs.push_back(seconds_since(t0));
      if (!check || !check->compatible()) {
        std::fprintf(stderr, "timetravel: the log does not replay\n");
        return;
      }
    }
    auto rate = static_cast<double>(log.size()) / median(secs);
    std::printf("  replay --against        : %8.3f ms %12s events/s\n",
                median(secs) * 1000, with_commas(rate).c_str());
    ctx.goal("replay --against: " + with_commas(rate)
               + " events/s >= 1,000,000",
             rate >= 1e6);
    out["against"] = json{{"seconds", median(secs)},
                          {"events_per_sec", rate}};
  }

  // Export and import as `cadre export` and `cadre import` run them: the
  // bundle writer, then the import through a node's store actor into a
  // fresh store (its checks, the fold, the appends).
  {
    auto store = persistence::event_store::open(
      persistence::store_options{dir, false, true});
    std::vector<double> ex, im;
    for (int r = 0; r < std::max(3, ctx.opts.repeat); ++r) {
      std::ostringstream text;
      auto t0 = clock::now();
      if (!store
          || !runtime::write_bundle(runtime::store_reader(**store), src.id,
                                    text))
        return;
      ex.push_back(seconds_since(t0));
      auto target_dir = fresh_dir(ctx.opts);
      {
        config::node_config cfg;
        cfg.store_dir = target_dir;
        auto nd = runtime::node::start(cfg, runtime::start_options{false});
        if (!nd)
          return;
        std::istringstream in{text.str()};
        auto t1 = clock::now();
        auto done = runtime::import_bundle((*nd)->system(), (*nd)->store(),
                                           in, "bench",
                                           std::chrono::seconds{60});
        if (!done) {
          std::fprintf(stderr, "timetravel: import: %s\n",
                       to_string(done.error()).c_str());
          return;
        }
        im.push_back(seconds_since(t1));
      }
      std::filesystem::remove_all(target_dir);
    }
    auto ex_rate = static_cast<double>(log.size()) / median(ex);
    auto im_rate = static_cast<double>(log.size()) / median(im);
    std::printf("  export                  : %8.3f ms %12s events/s\n",
                median(ex) * 1000, with_commas(ex_rate).c_str());
    std::printf("  import                  : %8.3f ms %12s events/s\n",
                median(im) * 1000, with_commas(im_rate).c_str());
    out["export"] = json{{"seconds", median(ex)}, {"events_per_sec", ex_rate}};
    out["import"] = json{{"seconds", median(im)}, {"events_per_sec", im_rate}};
  }
  std::filesystem::remove_all(dir);

  // A fork at the middle of a 10,000-event log through a node: from the
  // request to the reply, which comes once the fork's history is durable
  // and its coordinator runs.
  {
    std::string fork_dir;
    auto mid = run_once(ctx.opts, "fanout", 5000, false, &fork_dir);
    if (!mid.ok)
      return;
    config::node_config cfg;
    cfg.store_dir = fork_dir;
    auto nd = runtime::node::start(cfg, runtime::start_options{false});
    if (!nd)
      return;
    std::vector<double> ms;
    {
      // The requester ends before the node: a node waits for its actors.
      caf::scoped_actor self{(*nd)->system()};
      for (int r = 0; r < std::max(3, ctx.opts.repeat); ++r) {
        fork_request req;
        req.execution_id = mid.id;
        req.at_seq = mid.log.size() / 2;
        auto t0 = clock::now();
        bool ok = false;
        self
          ->request((*nd)->executions(), std::chrono::seconds{60},
                    fork_atom_v, req)
          .receive([&](json_value&) { ok = true; }, [](caf::error&) {});
        if (!ok)
          return;
        ms.push_back(seconds_since(t0) * 1000);
      }
    }
    nd->reset();
    std::filesystem::remove_all(fork_dir);
    auto med = median(ms);
    std::printf("  fork of %zu events at %zu: %8.3f ms to the durable fork\n",
                mid.log.size(), mid.log.size() / 2, med);
    ctx.goal("fork at the middle of a " + with_commas(double(mid.log.size()))
               + "-event log: " + with_commas(med) + " ms <= 200 ms",
             med <= 200);
    out["fork"] = json{{"events", mid.log.size()},
                       {"at", mid.log.size() / 2},
                       {"ms", med},
                       {"runs_ms", ms}};
  }
  ctx.results["timetravel"] = std::move(out);
}

} // namespace cadre::bench
