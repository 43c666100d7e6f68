// The config file: read through the one bounded YAML reader, every error
// naming the file, line, column and key.

#include <fstream>
#include <string>

#include <gtest/gtest.h>

#include "cadre/config/node_config.hpp"
#include "finishes.hpp"
#include "temp_dir.hpp"

using namespace cadre;

namespace {

expected<config::node_config> load(const test::temp_dir& dir,
                                   const std::string& text) {
  auto path = dir / "cadre.yaml";
  std::ofstream{path} << text;
  return config::load_file(path);
}

std::string error_of(const expected<config::node_config>& r) {
  return r ? std::string{} : message_of(r.error());
}

} // namespace

TEST(ConfigFile, ReadsTypedKeysAndFreeSections) {
  test::temp_dir dir;
  auto cfg = load(dir, "store: {dir: /var/cadre, mode: sync}\n"
                       "tools:\n"
                       "  workers: 3\n"
                       "  ocr: {lang: eng, workers: 4, max_queue: 9}\n"
                       "executions: {max_restarts: 5, restart_window_ms: 100, "
                       "crash_loop_limit: 7}\n"
                       "scheduler: {threads: 2}\n"
                       "server: {port: 8080}\n");
  ASSERT_TRUE(cfg) << describe(cfg.error());
  EXPECT_EQ(cfg->store_dir, "/var/cadre");
  EXPECT_TRUE(cfg->store_sync);
  EXPECT_EQ(cfg->default_workers, 3u);
  ASSERT_TRUE(cfg->tools.count("ocr"));
  // The pool's keys stay in the section: the tool's settings schema, which
  // declares them, checks them when the node starts.
  EXPECT_EQ(cfg->tools["ocr"].settings,
            (json{{"lang", "eng"}, {"workers", 4}, {"max_queue", 9}}));
  EXPECT_EQ(cfg->max_restarts, 5u);
  EXPECT_EQ(cfg->restart_window_ms, 100);
  EXPECT_EQ(cfg->crash_loop_limit, 7u);
  EXPECT_EQ(cfg->scheduler_threads, 2u);
  EXPECT_EQ(cfg->scheduler_spin_polls, 5000u);
  EXPECT_EQ(cfg->server, (json{{"port", 8080}}));
  auto spin = load(dir, "scheduler: {spin_polls: 100}\n");
  ASSERT_TRUE(spin) << describe(spin.error());
  EXPECT_EQ(spin->scheduler_spin_polls, 100u);
  EXPECT_EQ(cfg->append_deadline_ms, 60000);
  auto deadline = load(dir, "store: {append_deadline: 250ms}\n");
  ASSERT_TRUE(deadline) << describe(deadline.error());
  EXPECT_EQ(deadline->append_deadline_ms, 250);
  // A directory named by digits is still a path.
  auto digits = load(dir, "store: {dir: 2024}\n");
  ASSERT_TRUE(digits);
  EXPECT_EQ(digits->store_dir, "2024");
}

TEST(ConfigFile, ErrorsNameFileLineColumnAndKey) {
  test::temp_dir dir;
  auto path = dir / "cadre.yaml";
  EXPECT_EQ(error_of(load(dir, "scheduler:\n  spin: 9\n")),
            path + ":2:3: scheduler.spin: unknown key (known: spin_polls, "
                   "threads)");
  EXPECT_EQ(error_of(load(dir, "scheduler: {spin_polls: 0}\n")),
            path + ":1:25: scheduler.spin_polls: expected an integer >= 1, "
                   "got 0");
  EXPECT_EQ(error_of(load(dir, "store:\n  dri: x\n")),
            path + ":2:3: store.dri: unknown key (known: append_deadline, dir, mode, "
                   "snapshot_every, sync)");
  // A tool's keys, the pool's included, are its settings schema's to check
  // (tests/runtime/node_test.cpp); the loader only wants a mapping.
  EXPECT_EQ(error_of(load(dir, "tools:\n  ocr: 5\n")),
            path + ":2:8: tools.ocr: expected a mapping");
  EXPECT_TRUE(load(dir, "tools:\n  ocr: {workers: -1}\n"));
  EXPECT_EQ(error_of(load(dir, "stor: {}\n")),
            path + ":1:1: stor: unknown key (known: store, tools, executions, "
                   "scheduler, llm, agents, server, log, schedules, "
                   "cluster, secrets)");
  EXPECT_EQ(error_of(load(dir, "store: {sync: maybe}\n")),
            path + ":1:15: store.sync: expected true or false");
  EXPECT_EQ(error_of(load(dir, "store: {append_deadline: 0}\n")),
            path + ":1:26: store.append_deadline: at least 1ms, got 0");
  EXPECT_EQ(error_of(load(dir, "store: {append_deadline: [1]}\n")),
            path + ":1:26: store.append_deadline: expected a duration such "
                   "as 60s or 500ms");
  EXPECT_EQ(error_of(load(dir, "a: [1\n")).rfind(path + ":2:1: ", 0), 0u);
  EXPECT_TRUE(load(dir, ""));
}

TEST(Issue12, ConfigAliasBombIsRefusedWithItsPlace) {
  // Nine levels of nine aliases under a section that is read whole.
  std::string bomb = "server:\n"
                     "  x0: &a0 [lol, lol, lol, lol, lol, lol, lol, lol, lol]\n";
  for (int level = 1; level < 9; ++level) {
    bomb += "  x" + std::to_string(level) + ": &a" + std::to_string(level)
            + " [";
    for (int i = 0; i < 9; ++i)
      bomb += (i ? ", *a" : "*a") + std::to_string(level - 1);
    bomb += "]\n";
  }
  test::temp_dir dir;
  std::string what;
  ASSERT_TRUE(test::finishes([&] { what = error_of(load(dir, bomb)); }));
  EXPECT_NE(what.find("values once its aliases are expanded"),
            std::string::npos)
    << what;
  auto path = dir / "cadre.yaml";
  EXPECT_EQ(what.rfind(path + ":", 0), 0u) << what;
}
