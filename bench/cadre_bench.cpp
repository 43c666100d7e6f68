// cadre_bench: named workloads in the manner of leveldb's db_bench, with the
// raw-CAF and peer baselines measured in the same run (bench/README.md).
//
//   cadre_bench [--benchmarks=roundtrip,fanout_10000,...] [--modes=wal,sync]
//               [--repeat=3] [--roundtrip_ops=20000] [--replay_n=10000]
//               [--ocr_pages=8] [--agent_turns=2000]
//               [--timetravel_n=50000] [--db=DIR]
//               [--cluster_node=HOST:PORT --caf_peer=HOST:PORT]
//               [--caf_peer_defaults=HOST:PORT]
//               [--cluster_ops=100000] [--cluster_inflight=64]
//               [--cluster_side=both|cadre|raw]
//               [--roundtrip_side=both|cadre|raw]
//               [--json NAME|PATH]

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <regex>
#include <sstream>
#include <thread>

#include <caf/config.hpp>

#include "driver.hpp"

#ifndef CADRE_VERSION
#define CADRE_VERSION "unknown"
#endif
#ifndef CADRE_BUILD_TYPE
#define CADRE_BUILD_TYPE "unknown"
#endif
#ifndef CADRE_ROCKSDB_VERSION
#define CADRE_ROCKSDB_VERSION "unknown"
#endif
#ifndef CADRE_SOURCE_DIR
#define CADRE_SOURCE_DIR "."
#endif

namespace cadre::bench {

// -- statistics ---------------------------------------------------------------

summary summarize(std::vector<double> xs) {
  summary s;
  if (xs.empty())
    return s;
  std::sort(xs.begin(), xs.end());
  auto rank = [&](double q) {
    auto i = static_cast<size_t>(std::ceil(q * static_cast<double>(xs.size())));
    return xs[std::min(xs.size() - 1, i == 0 ? 0 : i - 1)];
  };
  double sum = 0;
  for (auto x : xs)
    sum += x;
  s.n = xs.size();
  s.mean = sum / static_cast<double>(xs.size());
  s.min = xs.front();
  s.p50 = rank(0.50);
  s.p90 = rank(0.90);
  s.p99 = rank(0.99);
  s.max = xs.back();
  return s;
}

double median(std::vector<double> xs) {
  if (xs.empty())
    return 0;
  std::sort(xs.begin(), xs.end());
  auto n = xs.size();
  return n % 2 == 1 ? xs[n / 2] : (xs[n / 2 - 1] + xs[n / 2]) / 2;
}

json to_json(const summary& s) {
  return json{{"n", s.n},     {"mean", s.mean}, {"min", s.min},
              {"p50", s.p50}, {"p90", s.p90},   {"p99", s.p99},
              {"max", s.max}};
}

std::string with_commas(double x) {
  auto v = static_cast<long long>(std::llround(x));
  auto digits = std::to_string(v < 0 ? -v : v);
  std::string out;
  for (size_t i = 0; i < digits.size(); ++i) {
    if (i > 0 && (digits.size() - i) % 3 == 0)
      out += ',';
    out += digits[i];
  }
  return v < 0 ? "-" + out : out;
}

bool run_context::goal(const std::string& what, bool met) {
  verdicts.push_back((met ? "MET     " : "MISSED  ") + what);
  return met;
}

namespace {

// -- header -------------------------------------------------------------------

std::string read_first(const char* path, const std::string& key) {
  std::ifstream in{path};
  std::string line;
  while (std::getline(in, line))
    if (line.rfind(key, 0) == 0) {
      auto colon = line.find(':');
      if (colon == std::string::npos)
        return {};
      auto v = line.substr(colon + 1);
      v.erase(0, v.find_first_not_of(" \t"));
      return v;
    }
  return {};
}

std::string load_average() {
  std::ifstream in{"/proc/loadavg"};
  std::string a, b, c;
  in >> a >> b >> c;
  return a + " " + b + " " + c;
}

std::string now_text() {
  auto t = std::time(nullptr);
  char buf[64];
  std::strftime(buf, sizeof(buf), "%Y-%m-%d %H:%M:%S", std::localtime(&t));
  return buf;
}

std::string caf_version() {
  return std::to_string(CAF_MAJOR_VERSION) + "."
         + std::to_string(CAF_MINOR_VERSION) + "."
         + std::to_string(CAF_PATCH_VERSION);
}

json header() {
  json h;
  h["cadre"] = CADRE_VERSION;
  h["date"] = now_text();
  h["cpu"] = read_first("/proc/cpuinfo", "model name");
  h["cpu_cache"] = read_first("/proc/cpuinfo", "cache size");
  h["cores"] = std::thread::hardware_concurrency();
  h["build_type"] = CADRE_BUILD_TYPE;
#if defined(__clang__)
  h["compiler"] = std::string{"clang "} + __clang_version__;
#elif defined(__GNUC__)
  h["compiler"] = std::string{"g++ "} + __VERSION__;
#endif
  h["caf"] = caf_version();
  h["rocksdb"] = CADRE_ROCKSDB_VERSION;
  h["load_at_start"] = load_average();
  return h;
}

void print_header(const json& h) {
  auto s = [&](const char* k) { return h[k].get<std::string>(); };
  std::printf("cadre:      version %s\n", s("cadre").c_str());
  std::printf("Date:       %s\n", s("date").c_str());
  std::printf("CPU:        %u * %s\n", h["cores"].get<unsigned>(),
              s("cpu").c_str());
  std::printf("CPUCache:   %s\n", s("cpu_cache").c_str());
  std::printf("Build:      %s (%s)\n", s("build_type").c_str(),
              h.value("compiler", std::string{"?"}).c_str());
  std::printf("CAF:        %s\n", s("caf").c_str());
  std::printf("RocksDB:    %s\n", s("rocksdb").c_str());
  std::printf("Load:       %s (1, 5, 15 min, at start)\n",
              s("load_at_start").c_str());
#ifndef NDEBUG
  std::printf("WARNING: assertions are enabled; benchmarks are slower\n");
#endif
  std::printf("------------------------------------------------\n");
  std::fflush(stdout);
}

// -- flags --------------------------------------------------------------------

std::vector<std::string> split_list(const std::string& x) {
  std::vector<std::string> out;
  std::stringstream in{x};
  std::string item;
  while (std::getline(in, item, ','))
    if (!item.empty())
      out.push_back(item);
  return out;
}

const std::vector<std::string> default_benchmarks{
  "roundtrip", "fanout_1000", "fanout_10000", "chain_100",
  "chain_1000", "replay",     "langgraph",    "agent",
};

void usage() {
  std::fprintf(
    stderr,
    "usage: cadre_bench [--benchmarks=a,b,c] [--modes=wal,sync]\n"
    "                   [--repeat=N] [--roundtrip_ops=N] [--replay_n=N]\n"
    "                   [--ocr_pages=N] [--agent_turns=N]\n"
    "                   [--timetravel_n=N] [--snapshot_every=N] [--db=DIR]\n"
    "                   [--cluster_node=HOST:PORT --caf_peer=HOST:PORT]\n"
    "                   [--caf_peer_defaults=HOST:PORT]\n"
    "                   [--cluster_ops=N] [--cluster_inflight=N]\n"
    "                   [--cluster_side=both|cadre|raw]\n"
    "                   [--roundtrip_side=both|cadre|raw]\n"
    "                   [--json NAME|PATH]\n"
    "workloads: roundtrip fanout_N chain_N replay timetravel langgraph ocr\n"
    "           agent cluster_roundtrip (run by bench/cluster_bench.py)\n"
    "default:   --benchmarks=");
  for (size_t i = 0; i < default_benchmarks.size(); ++i)
    std::fprintf(stderr, "%s%s", i ? "," : "", default_benchmarks[i].c_str());
  std::fprintf(stderr, "\n--json NAME writes bench/results/NAME.json; a "
                       "value with a '/' is a path\n");
}

bool parse_flags(int argc, char** argv, options& opts) {
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    auto value_of = [&](const std::string& flag, std::string& out) {
      if (arg.rfind(flag + "=", 0) == 0) {
        out = arg.substr(flag.size() + 1);
        return true;
      }
      if (arg == flag && i + 1 < argc) {
        out = argv[++i];
        return true;
      }
      return false;
    };
    std::string v;
    if (value_of("--benchmarks", v)) {
      opts.benchmarks = split_list(v);
    } else if (value_of("--modes", v)) {
      opts.modes = split_list(v);
      for (auto& m : opts.modes)
        if (m != "wal" && m != "sync") {
          std::fprintf(stderr, "--modes: unknown mode '%s'\n", m.c_str());
          return false;
        }
    } else if (value_of("--repeat", v)) {
      opts.repeat = std::max(1, std::atoi(v.c_str()));
    } else if (value_of("--roundtrip_ops", v)) {
      opts.roundtrip_ops = std::max<size_t>(100, std::stoull(v));
    } else if (value_of("--replay_n", v)) {
      opts.replay_n = std::max<size_t>(1, std::stoull(v));
    } else if (value_of("--ocr_pages", v)) {
      opts.ocr_pages = std::max<size_t>(2, std::stoull(v));
    } else if (value_of("--snapshot_every", v)) {
      opts.snapshot_every = std::stoull(v);
    } else if (value_of("--timetravel_n", v)) {
      opts.timetravel_n = std::max<size_t>(100, std::stoull(v));
    } else if (value_of("--agent_turns", v)) {
      opts.agent_turns = std::max<size_t>(10, std::stoull(v));
    } else if (value_of("--cluster_node", v)) {
      opts.cluster_node = v;
    } else if (value_of("--caf_peer_defaults", v)) {
      opts.caf_peer_defaults = v;
    } else if (value_of("--caf_peer", v)) {
      opts.caf_peer = v;
    } else if (value_of("--cluster_ops", v)) {
      opts.cluster_ops = std::max<size_t>(1000, std::stoull(v));
    } else if (value_of("--cluster_inflight", v)) {
      opts.cluster_inflight = std::max<size_t>(1, std::stoull(v));
    } else if (value_of("--cluster_side", v)
               || value_of("--roundtrip_side", v)) {
      auto flag = arg.substr(0, arg.find('='));
      if (v != "both" && v != "cadre" && v != "raw") {
        std::fprintf(stderr, "cadre_bench: %s wants both, cadre or raw, got "
                             "'%s'\n", flag.c_str(), v.c_str());
        return false;
      }
      (flag == "--cluster_side" ? opts.cluster_side : opts.roundtrip_side) = v;
    } else if (value_of("--db", v)) {
      opts.db = v;
    } else if (value_of("--json", v)) {
      opts.json_path = v;
    } else {
      std::fprintf(stderr, "unknown flag '%s'\n", arg.c_str());
      return false;
    }
  }
  if (opts.benchmarks.empty())
    opts.benchmarks = default_benchmarks;
  return true;
}

std::string results_path(const std::string& arg) {
  if (arg.find('/') != std::string::npos)
    return arg;
  auto name = arg;
  if (name.size() < 5 || name.substr(name.size() - 5) != ".json")
    name += ".json";
  return std::string{CADRE_SOURCE_DIR} + "/bench/results/" + name;
}

} // namespace

} // namespace cadre::bench

int main(int argc, char** argv) {
  using namespace cadre::bench;
  run_context ctx;
  if (!parse_flags(argc, argv, ctx.opts)) {
    usage();
    return 2;
  }
  std::string command;
  for (int i = 0; i < argc; ++i)
    command += (i ? " " : "") + std::string{argv[i]};
  auto h = header();
  print_header(h);
  static const std::regex sized{"(fanout|chain)_([0-9]+)"};
  for (const auto& name : ctx.opts.benchmarks) {
    std::smatch m;
    if (name == "roundtrip") {
      run_roundtrip(ctx);
    } else if (std::regex_match(name, m, sized)) {
      run_durable(ctx, name, m[1], std::stoull(m[2]));
    } else if (name == "replay") {
      run_replay(ctx);
    } else if (name == "timetravel") {
      run_timetravel(ctx);
    } else if (name == "langgraph") {
      run_langgraph(ctx);
    } else if (name == "ocr") {
      run_ocr(ctx);
    } else if (name == "agent") {
      run_agent(ctx);
    } else if (name == "cluster_roundtrip") {
      run_cluster_roundtrip(ctx);
    } else {
      std::fprintf(stderr, "unknown benchmark '%s'\n", name.c_str());
      usage();
      return 2;
    }
    std::fflush(stdout);
  }
  report_linearity(ctx);
  h["load_at_end"] = load_average();
  std::printf("------------------------------------------------\n");
  std::printf("Load:       %s (at end)\n",
              h["load_at_end"].get<std::string>().c_str());
  if (!ctx.verdicts.empty()) {
    std::printf("Goals:\n");
    for (auto& v : ctx.verdicts)
      std::printf("  %s\n", v.c_str());
  }
  if (!ctx.opts.json_path.empty()) {
    auto path = results_path(ctx.opts.json_path);
    std::error_code ec;
    std::filesystem::create_directories(
      std::filesystem::path{path}.parent_path(), ec);
    std::ofstream out{path};
    cadre::json doc{{"header", h},
                    {"command", command},
                    {"repeat", ctx.opts.repeat},
                    {"results", ctx.results},
                    {"goals", ctx.verdicts}};
    out << doc.dump(2) << "\n";
    if (!out) {
      std::fprintf(stderr, "cannot write %s\n", path.c_str());
      return 1;
    }
    std::printf("Results:    %s\n", path.c_str());
  }
  return 0;
}
