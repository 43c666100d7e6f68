// `langgraph`: runs the LangGraph.js peer (bench/peers/langgraph/bench.mjs)
// as a child process and sets cadre's chain_1000 / fanout_1000 figures of the
// same run beside its own.

#include <cstdio>
#include <filesystem>
#include <string>

#include "driver.hpp"

#ifndef CADRE_SOURCE_DIR
#define CADRE_SOURCE_DIR "."
#endif

namespace cadre::bench {

namespace {

constexpr size_t peer_n = 1000;

// Output of a shell command; false when it could not run or failed.
bool capture(const std::string& cmd, std::string& out) {
  out.clear();
  auto* p = ::popen(cmd.c_str(), "r");
  if (!p)
    return false;
  char buf[4096];
  size_t got = 0;
  while ((got = std::fread(buf, 1, sizeof(buf), p)) > 0)
    out.append(buf, got);
  return ::pclose(p) == 0;
}

const json* peer_result(const json& doc, const std::string& workload,
                        const std::string& checkpointer) {
  if (!doc.contains("results"))
    return nullptr;
  for (const auto& r : doc["results"])
    if (r.value("workload", "") == workload
        && r.value("checkpointer", "") == checkpointer)
      return &r;
  return nullptr;
}

} // namespace

void run_langgraph(run_context& ctx) {
  namespace fs = std::filesystem;
  fs::path dir = fs::path{CADRE_SOURCE_DIR} / "bench" / "peers" / "langgraph";
  std::string node_path;
  auto have_node = capture("command -v node", node_path);
  if (!have_node || !fs::exists(dir / "node_modules")) {
    std::printf("langgraph   : skipped: %s. Install it with\n"
                "              cd %s && npm ci\n",
                have_node ? "bench/peers/langgraph/node_modules is missing"
                          : "node is not on PATH",
                dir.string().c_str());
    ctx.results["langgraph"] = json{{"skipped", true}};
    return;
  }
  // cadre's side of the comparison, from this run.
  auto chain = "chain_" + std::to_string(peer_n);
  auto fanout = "fanout_" + std::to_string(peer_n);
  if (!ctx.results.contains(chain))
    run_durable(ctx, chain, "chain", peer_n);
  if (!ctx.results.contains(fanout))
    run_durable(ctx, fanout, "fanout", peer_n);
  std::printf("langgraph   : running node bench.mjs --chain %zu --fanout %zu "
              "--repeat %d (about a minute; progress on stderr)\n",
              peer_n, peer_n, ctx.opts.repeat);
  std::fflush(stdout);
  auto cmd = "cd '" + dir.string() + "' && node bench.mjs --chain "
             + std::to_string(peer_n) + " --fanout " + std::to_string(peer_n)
             + " --repeat " + std::to_string(ctx.opts.repeat);
  std::string text;
  if (!capture(cmd, text)) {
    std::printf("langgraph   : bench.mjs failed\n");
    ctx.results["langgraph"] = json{{"failed", true}};
    return;
  }
  auto doc = json::parse(text, nullptr, false);
  if (doc.is_discarded()) {
    std::printf("langgraph   : bench.mjs printed no JSON\n");
    ctx.results["langgraph"] = json{{"failed", true}};
    return;
  }
  std::printf("  LangGraph.js %s on node %s; steps/s (seconds), median of "
              "%d; ratio = cadre / LangGraph\n",
              doc.value("version", "?").c_str(),
              doc["versions"].value("node", "?").c_str(), ctx.opts.repeat);
  std::printf("  %-12s %16s %16s %16s %16s %9s %9s %9s\n", "workload",
              "langgraph none", "langgraph sqlite", "cadre wal",
              "cadre sync", "wal/none", "wal/sqlt", "sync/sqlt");
  json cmp = json::object();
  for (const auto& name : {chain, fanout}) {
    const auto* none = peer_result(doc, name, "none");
    const auto* sqlite = peer_result(doc, name, "sqlite");
    const auto& ours = ctx.results[name];
    auto rate = [](const json* r) {
      return r ? r->value("steps_per_sec", 0.0) : 0.0;
    };
    auto cadre_rate = [&](const char* mode) {
      return ours.contains(mode) ? ours[mode].value("tasks_per_sec", 0.0)
                                 : 0.0;
    };
    auto ratio = [](double x, double y) { return y > 0 ? x / y : 0.0; };
    double ln = rate(none), ls = rate(sqlite);
    double cw = cadre_rate("wal"), cs = cadre_rate("sync");
    auto cell = [](double x) {
      return x > 0 ? with_commas(x) : std::string{"-"};
    };
    std::printf("  %-12s %16s %16s %16s %16s %8.0fx %8.0fx %8.0fx\n",
                name.c_str(), cell(ln).c_str(), cell(ls).c_str(),
                cell(cw).c_str(), cell(cs).c_str(), ratio(cw, ln),
                ratio(cw, ls), ratio(cs, ls));
    cmp[name] = json{{"langgraph_none_steps_per_sec", ln},
                     {"langgraph_sqlite_steps_per_sec", ls},
                     {"cadre_wal_steps_per_sec", cw},
                     {"cadre_sync_steps_per_sec", cs},
                     {"ratio_cadre_wal_vs_none", ratio(cw, ln)},
                     {"ratio_cadre_wal_vs_sqlite", ratio(cw, ls)},
                     {"ratio_cadre_sync_vs_sqlite", ratio(cs, ls)}};
  }
  ctx.results["langgraph"] = json{{"peer", doc}, {"comparison", cmp}};
}

} // namespace cadre::bench
