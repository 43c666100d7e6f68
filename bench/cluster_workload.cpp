// `cluster_roundtrip`: a tool call from this process to the `echo` pool of
// a `cadre serve` node on loopback, against raw CAF request/response to an
// echo actor published by another process (bench/peers/caf_echo.cpp), with
// the same message types and `cluster_inflight` requests in flight.
// bench/cluster_bench.py starts both peers and runs this workload.
//
// The cadre side takes the path a coordinator's dispatch takes to another
// node: the node's member (remote_actor on its cluster port) answers its
// node_info, whose offers go into a tool_directory as the member actor
// puts them; every request asks the directory for a route and sends
// run_atom + task_request to the remote pool, which hands it to a worker.

#include <cstdio>
#include <future>
#include <memory>
#include <string>

#include <caf/actor_system.hpp>
#include <caf/event_based_actor.hpp>
#include <caf/io/middleman.hpp>
#include <caf/scoped_actor.hpp>

#include "cadre/actors/tool_directory.hpp"
#include "cadre/messages/cluster.hpp"
#include "cadre/messages/register_types.hpp"
#include "driver.hpp"
#include "raw_caf.hpp"

namespace cadre::bench {

namespace {

// Every request gets this deadline, as a coordinator's task with a
// `timeout` would: in the request (deadline_us, which the pool enforces)
// and as the requester's own timeout.
constexpr auto request_deadline = std::chrono::seconds{30};

int64_t deadline_from_now() {
  using namespace std::chrono;
  return duration_cast<microseconds>(
           (system_clock::now() + request_deadline).time_since_epoch())
    .count();
}

struct sample {
  std::vector<double> latency_us;
  double seconds = 0;
  size_t errors = 0;
};

bool split_address(const std::string& addr, std::string& host,
                   uint16_t& port) {
  auto colon = addr.rfind(':');
  if (colon == std::string::npos)
    return false;
  host = addr.substr(0, colon);
  port = static_cast<uint16_t>(std::stoul(addr.substr(colon + 1)));
  return true;
}

// Keeps `inflight` requests outstanding from one event-based actor until
// `n` have been answered; `target()` names each request's receiver.
struct pipeline_state {
  std::vector<double> lat;
  size_t sent = 0;
  size_t answered = 0;
  size_t errors = 0;
  size_t n = 0;
  task_request req;
  std::promise<void> done;
};

template <class Target>
void send_one(caf::event_based_actor* self, Target target,
              std::shared_ptr<pipeline_state> st) {
  ++st->sent;
  auto t = clock::now();
  st->req.deadline_us = deadline_from_now();
  auto finish = [=] {
    if (++st->answered == st->n) {
      st->done.set_value();
      self->quit();
    } else if (st->sent < st->n) {
      send_one(self, target, st);
    }
  };
  self->request(target(), request_deadline, run_atom_v, st->req)
    .then(
      [=](task_result&) {
        st->lat.push_back(
          std::chrono::duration<double, std::micro>(clock::now() - t)
            .count());
        finish();
      },
      [=](caf::error&) {
        ++st->errors;
        finish();
      });
}

template <class Target>
sample pipelined(caf::actor_system& sys, Target target, size_t n,
                 size_t inflight) {
  auto st = std::make_shared<pipeline_state>();
  st->n = n;
  st->lat.reserve(n);
  st->req = echo_request();
  auto fut = st->done.get_future();
  auto t0 = clock::now();
  sys.spawn([=](caf::event_based_actor* self) {
    for (size_t i = 0; i < std::min(inflight, n); ++i)
      send_one(self, target, st);
  });
  fut.get();
  sample s;
  s.seconds = seconds_since(t0);
  s.latency_us = std::move(st->lat);
  s.errors = st->errors;
  return s;
}

json report(const char* label, const std::vector<sample>& runs) {
  std::vector<double> rates;
  for (auto& r : runs)
    rates.push_back(static_cast<double>(r.latency_us.size()) / r.seconds);
  // The run with the median rate.
  std::vector<std::pair<double, size_t>> order;
  for (size_t i = 0; i < runs.size(); ++i)
    order.emplace_back(rates[i], i);
  std::sort(order.begin(), order.end());
  const auto& m = runs[order[order.size() / 2].second];
  auto s = summarize(m.latency_us);
  auto ops = order[order.size() / 2].first;
  size_t errors = 0;
  for (auto& r : runs)
    errors += r.errors;
  std::printf("  %-30s: %9s req/s, round trip p50 %7.1f us p99 %7.1f us "
              "(%zu errors)\n",
              label, with_commas(ops).c_str(), s.p50, s.p99, errors);
  json j = to_json(s);
  j["unit"] = "us";
  j["ops_per_sec"] = ops;
  j["runs_ops_per_sec"] = rates;
  j["errors"] = errors;
  return j;
}

} // namespace

void run_cluster_roundtrip(run_context& ctx) {
  const auto& o = ctx.opts;
  std::string node_host, peer_host;
  uint16_t node_port = 0, peer_port = 0;
  if (!split_address(o.cluster_node, node_host, node_port)
      || !split_address(o.caf_peer, peer_host, peer_port)) {
    std::fprintf(stderr, "cluster_roundtrip: needs --cluster_node=HOST:PORT "
                         "and --caf_peer=HOST:PORT (bench/cluster_bench.py "
                         "starts both)\n");
    return;
  }
  caf::actor_system_config cfg;
  register_types(cfg);
  cfg.load<caf::io::middleman>();
  configure_like_a_node(cfg);
  cfg.set("logger.verbosity", caf::atom("quiet"));
  caf::actor_system sys{cfg};
  auto member = sys.middleman().remote_actor<member_actor>(node_host,
                                                           node_port);
  auto raw = sys.middleman().remote_actor<raw_echo_actor>(peer_host,
                                                          peer_port);
  if (!member || !raw) {
    std::fprintf(stderr, "cluster_roundtrip: cannot connect: %s\n",
                 to_string(!member ? member.error() : raw.error()).c_str());
    return;
  }
  // The reference peer with CAF's default scheduler, when given.
  raw_echo_actor raw_defaults;
  if (!o.caf_peer_defaults.empty()) {
    std::string host;
    uint16_t port = 0;
    if (!split_address(o.caf_peer_defaults, host, port)) {
      std::fprintf(stderr, "cluster_roundtrip: --caf_peer_defaults wants "
                           "HOST:PORT\n");
      return;
    }
    auto hdl = sys.middleman().remote_actor<raw_echo_actor>(host, port);
    if (!hdl) {
      std::fprintf(stderr, "cluster_roundtrip: cannot connect: %s\n",
                   to_string(hdl.error()).c_str());
      return;
    }
    raw_defaults = *hdl;
  }
  auto directory = std::make_shared<actors::tool_directory>();
  std::string node_name;
  {
    caf::scoped_actor self{sys};
    self->request(*member, request_deadline, get_atom_v)
      .receive(
        [&](node_info& info) {
          node_name = info.name;
          std::vector<actors::tool_directory::remote_offer> offers;
          for (auto& t : info.tools)
            offers.push_back({t.name,
                              caf::actor_cast<tool_pool_actor>(t.pool),
                              t.workers, t.load});
          directory->offer(info.name, std::move(offers));
        },
        [&](caf::error& err) {
          std::fprintf(stderr, "cluster_roundtrip: %s\n",
                       to_string(err).c_str());
        });
  }
  if (!directory->pick("echo")) {
    std::fprintf(stderr, "cluster_roundtrip: node %s offers no echo pool\n",
                 node_name.c_str());
    return;
  }
  auto via_directory = [directory] { return directory->pick("echo")->pool; };
  auto raw_echo = [hdl = *raw] { return hdl; };
  auto n = o.cluster_ops;
  auto k = o.cluster_inflight;
  std::printf("cluster_roundtrip: %zu requests per run, %zu in flight, "
              "median run of %d; node %s (%s), raw peer %s\n",
              n, k, o.repeat, node_name.c_str(), o.cluster_node.c_str(),
              o.caf_peer.c_str());
  auto raw_defaults_echo = [hdl = raw_defaults] { return hdl; };
  // Warm-up: connections, the pool's workers, allocators.
  pipelined(sys, raw_echo, n / 10, k);
  pipelined(sys, via_directory, n / 10, k);
  if (raw_defaults)
    pipelined(sys, raw_defaults_echo, n / 10, k);
  std::vector<sample> raw_runs, cadre_runs, defaults_runs;
  // One side alone: for a profile of one peer's process over its own calls.
  if (o.cluster_side != "both") {
    bool cadre = o.cluster_side == "cadre";
    for (int r = 0; r < o.repeat; ++r)
      (cadre ? cadre_runs : raw_runs)
        .push_back(cadre ? pipelined(sys, via_directory, n, k)
                         : pipelined(sys, raw_echo, n, k));
    report(cadre ? "cadre remote echo pool" : "raw CAF remote_actor echo",
           cadre ? cadre_runs : raw_runs);
    return;
  }
  // Interleaved, so drift in the machine's load hits all sides alike.
  for (int r = 0; r < o.repeat; ++r) {
    raw_runs.push_back(pipelined(sys, raw_echo, n, k));
    cadre_runs.push_back(pipelined(sys, via_directory, n, k));
    if (raw_defaults)
      defaults_runs.push_back(pipelined(sys, raw_defaults_echo, n, k));
  }
  auto jr = report("raw CAF remote_actor echo", raw_runs);
  auto jc = report("cadre remote echo pool", cadre_runs);
  json jd;
  if (raw_defaults)
    jd = report("raw CAF, CAF's scheduler", defaults_runs);
  auto ratio = jc["ops_per_sec"].get<double>()
               / jr["ops_per_sec"].get<double>();
  auto p50_ratio = jc["p50"].get<double>() / jr["p50"].get<double>();
  std::printf("  %-30s: %7.2fx req/s, %6.2fx p50 (goal >= 1.0x req/s)\n",
              "cadre / raw", ratio, p50_ratio);
  double ratio_defaults = 0;
  if (raw_defaults) {
    ratio_defaults = jc["ops_per_sec"].get<double>()
                     / jd["ops_per_sec"].get<double>();
    std::printf("  %-30s: %7.2fx req/s, %6.2fx p50 (reference)\n",
                "cadre / raw, CAF's scheduler", ratio_defaults,
                jc["p50"].get<double>() / jd["p50"].get<double>());
  }
  ctx.goal("cluster_roundtrip: cadre/raw req/s "
             + std::to_string(ratio).substr(0, 4) + "x >= 1.0x",
           ratio >= 1.0);
  ctx.results["cluster_roundtrip"] = json{{"raw_caf", jr},
                                          {"cadre", jc},
                                          {"ratio_ops", ratio},
                                          {"ratio_p50", p50_ratio},
                                          {"ops_per_run", n},
                                          {"inflight", k}};
  if (raw_defaults) {
    ctx.results["cluster_roundtrip"]["raw_caf_scheduler_defaults"] = jd;
    ctx.results["cluster_roundtrip"]["ratio_ops_vs_scheduler_defaults"]
      = ratio_defaults;
  }
}

} // namespace cadre::bench
