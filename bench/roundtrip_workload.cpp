// `roundtrip`: one request at a time to the echo tool's pool (cadre's typed
// tool_pool_actor), against a raw CAF request/response between two plain
// actors of the same actor system, with the same message types.

#include <cstdio>
#include <functional>
#include <future>
#include <memory>

#include <caf/actor_system.hpp>
#include <caf/actor_system_config.hpp>
#include <caf/event_based_actor.hpp>
#include <caf/scoped_actor.hpp>
#include <caf/typed_event_based_actor.hpp>

#include "cadre/actors/spawn.hpp"
#include "cadre/messages/register_types.hpp"
#include "cadre/tools/tool_registry.hpp"
#include "driver.hpp"
#include "raw_caf.hpp"

namespace cadre::bench {

namespace {

double elapsed_us(clock::time_point t0) {
  return std::chrono::duration<double, std::micro>(clock::now() - t0).count();
}

struct sample {
  std::vector<double> latency_us;
  double seconds = 0;
};

// One request outstanding at a time, from an event-based actor: the next
// request leaves from the response handler of the previous one.
struct client_state {
  std::vector<double> lat;
  size_t left = 0;
  clock::time_point t;
  task_request req;
  std::promise<std::vector<double>> done;
};

template <class Handle>
void issue(caf::event_based_actor* self, Handle target,
           std::shared_ptr<client_state> st) {
  st->t = clock::now();
  self->request(target, caf::infinite, run_atom_v, st->req)
    .then(
      [=](task_result&) {
        st->lat.push_back(elapsed_us(st->t));
        if (--st->left == 0) {
          st->done.set_value(std::move(st->lat));
          self->quit();
          return;
        }
        issue(self, target, st);
      },
      [=](caf::error& err) {
        std::fprintf(stderr, "roundtrip: %s\n", to_string(err).c_str());
        st->done.set_value({});
        self->quit();
      });
}

template <class Handle>
sample event_based(caf::actor_system& sys, Handle target, size_t n) {
  auto st = std::make_shared<client_state>();
  st->left = n;
  st->lat.reserve(n);
  st->req = echo_request();
  auto fut = st->done.get_future();
  auto t0 = clock::now();
  sys.spawn([=](caf::event_based_actor* self) { issue(self, target, st); });
  sample s;
  s.latency_us = fut.get();
  s.seconds = seconds_since(t0);
  return s;
}

template <class Handle>
sample scoped(caf::actor_system& sys, Handle target, size_t n) {
  caf::scoped_actor self{sys};
  auto req = echo_request();
  sample s;
  s.latency_us.reserve(n);
  auto t0 = clock::now();
  for (size_t i = 0; i < n; ++i) {
    auto t = clock::now();
    self->request(target, caf::infinite, run_atom_v, req)
      .receive([&](task_result&) { s.latency_us.push_back(elapsed_us(t)); },
               [&](caf::error& err) {
                 std::fprintf(stderr, "roundtrip: %s\n",
                              to_string(err).c_str());
               });
  }
  s.seconds = seconds_since(t0);
  return s;
}

// The run whose mean is the median of the runs' means.
const sample& median_run(const std::vector<sample>& runs) {
  std::vector<std::pair<double, size_t>> means;
  for (size_t i = 0; i < runs.size(); ++i)
    means.emplace_back(summarize(runs[i].latency_us).mean, i);
  std::sort(means.begin(), means.end());
  return runs[means[means.size() / 2].second];
}

json report(const char* label, const std::vector<sample>& runs) {
  const auto& m = median_run(runs);
  auto s = summarize(m.latency_us);
  std::vector<double> means;
  for (auto& r : runs)
    means.push_back(summarize(r.latency_us).mean);
  auto ops = static_cast<double>(m.latency_us.size()) / m.seconds;
  std::printf("  %-22s: %7.2f us mean %7.2f p50 %7.2f p99 %9s ops/s\n",
              label, s.mean, s.p50, s.p99, with_commas(ops).c_str());
  json j = to_json(s);
  j["unit"] = "us";
  j["ops_per_sec"] = ops;
  j["runs_mean_us"] = means;
  return j;
}

} // namespace

void run_roundtrip(run_context& ctx) {
  auto n = ctx.opts.roundtrip_ops;
  caf::actor_system_config cfg;
  register_types(cfg);
  cfg.set("logger.verbosity", caf::atom("quiet"));
  caf::actor_system sys{cfg};
  tools::tool_registry registry;
  tools::register_builtin_tools(registry);
  auto pool = actors::spawn_tool_pool(sys, registry, "echo",
                                      json_value{json::object()},
                                      actors::pool_options{});
  if (!pool) {
    std::fprintf(stderr, "roundtrip: %s\n", to_string(pool.error()).c_str());
    return;
  }
  auto raw = sys.spawn(raw_echo_impl);
  std::printf("roundtrip   : %zu sequential requests per run, median run of "
              "%d (echo pool: %zu workers)\n",
              n, ctx.opts.repeat, actors::pool_options{}.workers);
  // One side alone, event-based requester only: for a profile of that
  // side's calls (callgrind's count over n calls, less that over fewer).
  if (ctx.opts.roundtrip_side != "both") {
    bool cadre = ctx.opts.roundtrip_side == "cadre";
    std::vector<sample> runs;
    for (int r = 0; r < ctx.opts.repeat; ++r)
      runs.push_back(cadre ? event_based(sys, *pool, n)
                           : event_based(sys, raw, n));
    report(cadre ? "cadre tool_pool echo" : "raw CAF (2 actors)", runs);
    caf::anon_send_exit(*pool, caf::exit_reason::user_shutdown);
    caf::anon_send_exit(raw, caf::exit_reason::user_shutdown);
    return;
  }
  // Warm-up: the first requests pay for allocations and thread start.
  event_based(sys, raw, n / 10);
  event_based(sys, *pool, n / 10);
  scoped(sys, raw, n / 10);
  scoped(sys, *pool, n / 10);
  std::vector<sample> raw_eb, pool_eb, raw_sc, pool_sc;
  // Interleaved, so drift in the machine's load hits both sides alike.
  for (int r = 0; r < ctx.opts.repeat; ++r) {
    raw_eb.push_back(event_based(sys, raw, n));
    pool_eb.push_back(event_based(sys, *pool, n));
    raw_sc.push_back(scoped(sys, raw, n));
    pool_sc.push_back(scoped(sys, *pool, n));
  }
  json out;
  auto section = [&](const char* requester, const std::vector<sample>& r,
                     const std::vector<sample>& p) {
    std::printf(" %s requester:\n", requester);
    auto jr = report("raw CAF (2 actors)", r);
    auto jp = report("cadre tool_pool echo", p);
    auto ratio_mean = jp["mean"].get<double>() / jr["mean"].get<double>();
    auto ratio_p50 = jp["p50"].get<double>() / jr["p50"].get<double>();
    auto ratio_p99 = jp["p99"].get<double>() / jr["p99"].get<double>();
    std::printf("  %-22s: %7.2fx mean %6.2fx p50 %6.2fx p99 (goal <= "
                "1.25x)\n",
                "ratio cadre/raw", ratio_mean, ratio_p50, ratio_p99);
    ctx.goal(std::string{"roundtrip ("} + requester + "): cadre/raw mean "
               + std::to_string(ratio_mean).substr(0, 4) + "x <= 1.25x",
             ratio_mean <= 1.25);
    out[requester] = json{{"raw_caf", jr},
                          {"cadre_pool", jp},
                          {"ratio_mean", ratio_mean},
                          {"ratio_p50", ratio_p50},
                          {"ratio_p99", ratio_p99}};
  };
  section("event-based", raw_eb, pool_eb);
  section("scoped", raw_sc, pool_sc);
  out["ops_per_run"] = n;
  ctx.results["roundtrip"] = out;
  caf::anon_send_exit(*pool, caf::exit_reason::user_shutdown);
  caf::anon_send_exit(raw, caf::exit_reason::user_shutdown);
}

} // namespace cadre::bench
