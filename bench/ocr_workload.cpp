// `ocr`: pages per second of the ocr tool on one multi-page TIFF, called
// directly (one engine, no split) and through a tool pool of 1 and of 2
// workers (the pool splits the document into pages and fans them out), and
// the per-call cost of the pool itself: echo called through its pool vs the
// echo tool object called directly.

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include <unistd.h>

#include <caf/actor_system.hpp>
#include <caf/actor_system_config.hpp>
#include <caf/scoped_actor.hpp>

#include "cadre/actors/spawn.hpp"
#include "cadre/messages/register_types.hpp"
#include "cadre/tools/tool_registry.hpp"
#include "driver.hpp"

namespace cadre::bench {

namespace {

namespace fs = std::filesystem;

const char* const page_words[] = {
  "alpha", "bravo", "charlie", "delta", "echo", "foxtrot", "golf", "hotel",
  "india", "juliet", "kilo", "lima", "mike", "november", "oscar", "papa",
};

// Renders `pages` pages of a few lines each (DejaVu Sans 11 pt, 300 dpi)
// into one TIFF with ImageMagick. Returns false when convert failed.
bool make_document(const fs::path& dir, size_t pages) {
  std::string inputs;
  for (size_t p = 0; p < pages; ++p) {
    auto png = dir / ("page" + std::to_string(p) + ".png");
    std::string cmd = "convert -density 300 -units PixelsPerInch -size "
                      "2550x900 xc:white -font DejaVu-Sans -pointsize 11 "
                      "-fill black";
    for (int l = 0; l < 5; ++l) {
      std::string line = "Page " + std::to_string(p + 1) + " line "
                         + std::to_string(l + 1) + " reports "
                         + page_words[(p + l) % 16] + " and "
                         + page_words[(p * 3 + l) % 16]
                         + " figures for the quarterly review";
      cmd += " -annotate +150+" + std::to_string(150 + 140 * l) + " '" + line
             + "'";
    }
    cmd += " -colorspace Gray '" + png.string() + "' 2>/dev/null";
    if (std::system(cmd.c_str()) != 0)
      return false;
    inputs += " '" + png.string() + "'";
  }
  auto cmd = "convert" + inputs + " -compress lzw '"
             + (dir / "doc.tif").string() + "' 2>/dev/null";
  return std::system(cmd.c_str()) == 0;
}

double call_pool(caf::actor_system& sys, const tool_pool_actor& pool,
                 const json& input, bool& ok) {
  task_request req;
  req.execution_id = "bench";
  req.task_id = "ocr";
  req.tool = "ocr";
  req.input = json_value{input};
  caf::scoped_actor self{sys};
  auto t0 = clock::now();
  self->request(pool, caf::infinite, run_atom_v, req)
    .receive([&](task_result&) {},
             [&](caf::error& err) {
               ok = false;
               std::fprintf(stderr, "ocr: %s\n", to_string(err).c_str());
             });
  return seconds_since(t0);
}

} // namespace

void run_ocr(run_context& ctx) {
  auto pages = ctx.opts.ocr_pages;
  auto base = ctx.opts.db.empty() ? fs::temp_directory_path()
                                  : fs::path{ctx.opts.db};
  auto dir = base / ("cadre-bench-ocr-" + std::to_string(::getpid()));
  fs::create_directories(dir);
  if (!make_document(dir, pages)) {
    std::fprintf(stderr, "ocr: ImageMagick's convert failed; is it "
                         "installed (scripts/setup.sh)?\n");
    fs::remove_all(dir);
    return;
  }
  caf::actor_system_config cfg;
  register_types(cfg);
  cfg.set("logger.verbosity", caf::atom("quiet"));
  caf::actor_system sys{cfg};
  tools::tool_registry registry;
  tools::register_builtin_tools(registry);
  json settings{{"root", dir.string()}};
  json input{{"path", "doc.tif"}};
  std::printf("ocr         : %zu-page TIFF (300 dpi, 5 lines a page), "
              "median of %d runs\n",
              pages, ctx.opts.repeat);
  json out;
  bool ok = true;

  // The tool object alone: one engine, pages one after another.
  {
    auto t = registry.create("ocr", json_value{settings});
    if (!t) {
      std::fprintf(stderr, "ocr: %s\n", to_string(t.error()).c_str());
      fs::remove_all(dir);
      return;
    }
    tools::tool_context tctx;
    // Warm-up: starts the engine.
    (void) (*t)->invoke(json_value{json{{"path", "doc.tif"},
                                        {"pages", {1}}}},
                        tctx);
    std::vector<double> secs;
    for (int r = 0; r < ctx.opts.repeat; ++r) {
      auto t0 = clock::now();
      auto res = (*t)->invoke(json_value{input}, tctx);
      secs.push_back(seconds_since(t0));
      if (!res) {
        std::fprintf(stderr, "ocr: %s\n", to_string(res.error()).c_str());
        ok = false;
      }
    }
    auto s = median(secs);
    auto pps = static_cast<double>(pages) / s;
    std::printf("  %-26s: %7.2f pages/s (%.2f s a document)\n",
                "tool object, no split", pps, s);
    out["direct"] = json{{"pages_per_sec", pps}, {"seconds", secs}};
  }
  // Through pools: the document splits into pages across the workers.
  double pps_by_workers[3] = {0, 0, 0};
  for (size_t workers : {size_t{1}, size_t{2}}) {
    auto pool = actors::spawn_tool_pool(sys, registry, "ocr",
                                        json_value{settings},
                                        actors::pool_options{workers});
    if (!pool) {
      std::fprintf(stderr, "ocr: %s\n", to_string(pool.error()).c_str());
      ok = false;
      break;
    }
    // Warm-up: starts each worker's engine.
    call_pool(sys, *pool, json{{"path", "doc.tif"}, {"pages", "1-2"}}, ok);
    std::vector<double> secs;
    for (int r = 0; r < ctx.opts.repeat; ++r)
      secs.push_back(call_pool(sys, *pool, input, ok));
    auto s = median(secs);
    auto pps = static_cast<double>(pages) / s;
    pps_by_workers[workers] = pps;
    auto label = "pool, " + std::to_string(workers) + " worker"
                 + (workers == 1 ? "" : "s");
    std::printf("  %-26s: %7.2f pages/s (%.2f s a document)\n",
                label.c_str(), pps, s);
    out["pool_" + std::to_string(workers)]
      = json{{"pages_per_sec", pps}, {"seconds", secs}};
    caf::anon_send_exit(*pool, caf::exit_reason::user_shutdown);
  }
  if (pps_by_workers[1] > 0 && pps_by_workers[2] > 0) {
    auto ratio = pps_by_workers[2] / pps_by_workers[1];
    std::printf("  %-26s: %7.2fx (2 cores at best: 2x)\n",
                "scaling 2 workers / 1", ratio);
    out["scaling_2_over_1"] = ratio;
  }

  // Per-call overhead of the pool: echo through its pool vs the object.
  {
    size_t n = std::max<size_t>(1000, ctx.opts.roundtrip_ops / 10);
    auto echo = registry.create("echo", json_value{json::object()});
    auto pool = actors::spawn_tool_pool(sys, registry, "echo",
                                        json_value{json::object()},
                                        actors::pool_options{});
    if (!echo || !pool) {
      std::fprintf(stderr, "ocr: cannot start echo\n");
      ok = false;
    } else {
      json_value in{json{{"i", 1}}};
      tools::tool_context tctx;
      std::vector<double> direct_us, pool_us;
      task_request req;
      req.execution_id = "bench";
      req.task_id = "echo";
      req.tool = "echo";
      req.input = in;
      caf::scoped_actor self{sys};
      for (size_t i = 0; i < n + n / 10; ++i) {
        auto t0 = clock::now();
        auto res = (*echo)->invoke(in, tctx);
        auto d = std::chrono::duration<double, std::micro>(clock::now() - t0)
                   .count();
        t0 = clock::now();
        self->request(*pool, caf::infinite, run_atom_v, req)
          .receive([](task_result&) {},
                   [&](caf::error& err) {
                     ok = false;
                     std::fprintf(stderr, "ocr: %s\n",
                                  to_string(err).c_str());
                   });
        auto p = std::chrono::duration<double, std::micro>(clock::now() - t0)
                   .count();
        // The first tenth warms up caches and threads.
        if (i >= n / 10 && res) {
          direct_us.push_back(d);
          pool_us.push_back(p);
        }
      }
      auto md = median(direct_us);
      auto mp = median(pool_us);
      std::printf("  %-26s: %7.2f us median (%zu calls)\n",
                  "echo, tool object", md, direct_us.size());
      std::printf("  %-26s: %7.2f us median (%zu calls)\n",
                  "echo, through its pool", mp, pool_us.size());
      std::printf("  %-26s: %7.2f us a call\n", "pool overhead", mp - md);
      out["echo_direct_us"] = to_json(summarize(direct_us));
      out["echo_pool_us"] = to_json(summarize(pool_us));
      out["pool_overhead_us"] = mp - md;
      caf::anon_send_exit(*pool, caf::exit_reason::user_shutdown);
    }
  }
  out["pages"] = pages;
  out["ok"] = ok;
  ctx.results["ocr"] = out;
  std::error_code ec;
  fs::remove_all(dir, ec);
}

} // namespace cadre::bench
