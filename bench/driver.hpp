#pragma once

// Shared pieces of the cadre_bench driver (cadre_bench.cpp): options,
// statistics, the results record and the workloads' entry points. Each
// workload lives in its own <name>_workload.cpp.

#include <chrono>
#include <cstdint>
#include <string>
#include <vector>

#include "cadre/messages/event.hpp"
#include "cadre/messages/json_value.hpp"

namespace cadre::bench {

/// Command-line settings of one driver run.
struct options {
  /// Workloads in the order given. Default: every workload (see main).
  std::vector<std::string> benchmarks;
  /// Store modes of the durable workloads. Default: wal, sync
  std::vector<std::string> modes{"wal", "sync"};
  /// Runs per measurement; the median is reported. Default: 3
  int repeat = 3;
  /// Sequential requests per roundtrip measurement. Default: 20000
  size_t roundtrip_ops = 20000;
  /// Items of the log folded by `replay`. Default: 10000
  size_t replay_n = 10000;
  /// Pages of the document the `ocr` workload reads. Default: 8
  size_t ocr_pages = 8;
  /// Sequential turns per run of the `agent` workload. Default: 2000
  size_t agent_turns = 2000;
  /// Map items of the `timetravel` log (two events each). Default: 50000
  size_t timetravel_n = 50000;
  /// store.snapshot_every of the nodes the workloads start. Default: 1000
  uint64_t snapshot_every = 1000;
  /// `cluster_roundtrip`: a `cadre serve` node's cluster listener
  /// (HOST:PORT) offering `echo`, and a raw CAF echo peer's
  /// (bench/peers/caf_echo.cpp). Default: none (the workload is skipped)
  std::string cluster_node;
  std::string caf_peer;
  /// Optional: another raw CAF echo peer with CAF's default scheduler
  /// (`caf_echo --caf-scheduler`), measured beside the others for reference.
  std::string caf_peer_defaults;
  /// Requests per cluster_roundtrip run, and how many are in flight.
  /// Default: 100000, 64
  size_t cluster_ops = 100000;
  size_t cluster_inflight = 64;
  /// Which side runs: "both" (the comparison), or "cadre" or "raw" alone,
  /// so each process can be profiled over its own calls only.
  /// Default: both
  std::string cluster_side = "both";
  /// The same for `roundtrip`: one side alone runs its event-based
  /// requester only, for a profile of that side's calls. Default: both
  std::string roundtrip_side = "both";
  /// Directory for the temporary stores. Default: the system temp dir
  std::string db;
  /// Where the results go as JSON; empty: nowhere. Default: empty
  std::string json_path;
};

/// Summary of a sample (any unit; percentiles by nearest rank).
struct summary {
  size_t n = 0;
  double mean = 0;
  double min = 0;
  double p50 = 0;
  double p90 = 0;
  double p99 = 0;
  double max = 0;
};

summary summarize(std::vector<double> xs);
double median(std::vector<double> xs);
json to_json(const summary& s);

using clock = std::chrono::steady_clock;

inline double seconds_since(clock::time_point t0) {
  return std::chrono::duration<double>(clock::now() - t0).count();
}

/// "12,345" style formatting of a rate or count.
std::string with_commas(double x);

/// What the workloads share: the options and the results so far (by
/// workload name), so later workloads (langgraph) can quote earlier ones.
struct run_context {
  options opts;
  json results = json::object();
  /// Ratios and goals, printed again at the end.
  std::vector<std::string> verdicts;

  /// Records "goal: ... MET/MISSED" and returns whether it was met.
  bool goal(const std::string& what, bool met);
};

/// A fresh directory for a store under opts.db (or the temp dir).
std::string fresh_dir(const options& opts);

/// One workflow run through a whole node on a fresh store.
struct durable_run {
  bool ok = false;
  double seconds = 0;
  size_t events = 0;
  summary task_latency_us;
  std::string id;
  std::vector<event> log;
};

/// Runs a `fanout` (one map over n items) or `chain` (n tasks in a row)
/// of echo tasks from submit to completion and reads its log back. Keeps
/// the store (its path in `keep_dir`) when `keep_dir` is set.
durable_run run_once(const options& opts, const std::string& shape, size_t n,
                     bool sync, std::string* keep_dir = nullptr);

// -- workloads ----------------------------------------------------------------

/// `roundtrip`: cadre tool pool vs raw CAF request/response.
void run_roundtrip(run_context& ctx);

/// `cluster_roundtrip`: a tool call to another node's echo pool (the
/// member's offer through a tool_directory, as coordinators place calls)
/// against raw CAF remote_actor request/response, many requests in flight.
void run_cluster_roundtrip(run_context& ctx);

/// `fanout_N` / `chain_N`: durable no-op tasks through a full node, in each
/// of ctx.opts.modes. Stores its figures under ctx.results[name].
void run_durable(run_context& ctx, const std::string& name,
                 const std::string& shape, size_t n);

/// Reports the per-task cost ratio of two sizes of one shape when both ran.
void report_linearity(run_context& ctx);

/// `replay`: folds a fan-out's log into fresh machines, with and without
/// reading it from the store.
void run_replay(run_context& ctx);

/// `timetravel`: state at a seq (snapshots or not), replay --against,
/// export/import and a fork through a node, on a fan-out's log.
void run_timetravel(run_context& ctx);

/// `ocr`: OCR pages/s through pools of 1 and 2 workers (and the tool
/// object alone), and the per-call overhead of a pool (echo).
void run_ocr(run_context& ctx);

/// `agent`: per-turn cost of an agent on a scripted model without delay
/// (through the node's agents actor, wal), beside the provider's complete()
/// alone; a turn with one echo call beside an echo call through its pool;
/// and a workflow chaining agent tasks.
void run_agent(run_context& ctx);

/// `langgraph`: runs bench/peers/langgraph/bench.mjs and prints cadre's
/// chain_1000 / fanout_1000 figures of this run beside LangGraph's.
void run_langgraph(run_context& ctx);

} // namespace cadre::bench
