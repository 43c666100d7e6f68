// The `schedules` section of the node config: what a good entry becomes,
// and every bad key or value as an error at its file, line and column.

#include <fstream>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "cadre/config/node_config.hpp"
#include "temp_dir.hpp"

using namespace cadre;
using schedule::missed_policy;
using schedule::overlap_policy;

namespace {

expected<config::node_config> load(const test::temp_dir& dir,
                                   const std::string& text) {
  auto path = dir / "cadre.yaml";
  std::ofstream{path} << text;
  return config::load_file(path);
}

} // namespace

TEST(ConfigSchedules, EntriesBecomeSpecs) {
  test::temp_dir dir;
  auto cfg = load(dir, "schedules:\n"
                       "  - name: monitor\n"
                       "    workflow: flows/monitor.yaml\n"
                       "    input: {dags: [etl, report], limit: 5}\n"
                       "    every: 5m\n"
                       "    missed: run_once\n"
                       "    overlap: queue\n"
                       "  - name: nightly\n"
                       "    workflow: /srv/nightly.yaml\n"
                       "    cron: \"30 2 * * mon-fri\"\n");
  ASSERT_TRUE(cfg) << describe(cfg.error());
  ASSERT_EQ(cfg->schedules.size(), 2u);
  const auto& a = cfg->schedules[0];
  EXPECT_EQ(a.name, "monitor");
  // Relative to the config file's directory.
  EXPECT_EQ(a.workflow, (dir / "flows/monitor.yaml"));
  EXPECT_EQ(a.input, (json{{"dags", {"etl", "report"}}, {"limit", 5}}));
  EXPECT_EQ(a.every_ms, 300'000);
  EXPECT_EQ(a.cron, "");
  EXPECT_EQ(a.missed, missed_policy::run_once);
  EXPECT_EQ(a.overlap, overlap_policy::queue);
  EXPECT_EQ(a.origin, (dir / "cadre.yaml") + ":2:5");
  const auto& b = cfg->schedules[1];
  EXPECT_EQ(b.workflow, "/srv/nightly.yaml");
  EXPECT_EQ(b.every_ms, 0);
  EXPECT_EQ(b.cron, "30 2 * * mon-fri");
  EXPECT_EQ(b.input, json::object());
  EXPECT_EQ(b.missed, missed_policy::skip);
  EXPECT_EQ(b.overlap, overlap_policy::skip);
  // No section: no schedules.
  auto none = load(dir, "store: {sync: true}\n");
  ASSERT_TRUE(none);
  EXPECT_TRUE(none->schedules.empty());
}

TEST(ConfigSchedules, BadEntriesNameTheirPlace) {
  test::temp_dir dir;
  struct row {
    std::string yaml;
    std::string error; // after "<dir>/cadre.yaml:"
  };
  const std::string head = "schedules:\n  - name: a\n    workflow: a.yaml\n";
  const std::vector<row> rows = {
    {"schedules: {name: a}\n", "1:12: schedules: expected a list"},
    {"schedules:\n  - just text\n",
     "2:5: schedules[0]: expected a mapping with name, workflow and every "
     "or cron"},
    {head + "    every: 1m\n    colour: red\n",
     "5:5: schedules[0].colour: unknown key (known: name, workflow, input, "
     "every, cron, missed, overlap)"},
    {"schedules:\n  - workflow: a.yaml\n    every: 1m\n",
     "2:5: schedules[0]: name is required"},
    {"schedules:\n  - name: a\n    every: 1m\n",
     "2:5: schedules[0] (a): workflow is required"},
    {"schedules:\n  - name: a b\n    workflow: a.yaml\n    every: 1m\n",
     "2:11: schedules[0].name: expected 1 to 128 letters, digits, '.', '_' "
     "or '-'"},
    {head + "    every: 1m\n  - name: a\n    workflow: b.yaml\n"
            "    every: 1m\n",
     "5:11: schedules[1].name: another schedule is named 'a'"},
    {head, "2:5: schedules[0] (a): set every (a duration such as 5m) or "
           "cron (five fields such as \"*/5 * * * *\")"},
    {head + "    every: 1m\n    cron: \"* * * * *\"\n",
     "5:11: schedules[0].cron: set either every or cron, not both"},
    {head + "    every: soon\n",
     "4:12: schedules[0].every: 'soon' is not a duration; use milliseconds "
     "(250) or a number with a unit: 250ms, 30s, 5m, 1h, 1h30m"},
    {head + "    every: 500ms\n",
     "4:12: schedules[0].every: at least 1s, got 500ms"},
    {head + "    every: [1, 2]\n",
     "4:12: schedules[0].every: expected a duration such as 30s, 5m or 1h"},
    // The column of the field at fault, inside the expression.
    {head + "    cron: 0 24 * * *\n",
     "4:13: schedules[0].cron: hour: 24 is out of range 0-23"},
    {head + "    cron: \"0 0 * * mon-fry\"\n",
     "4:24: schedules[0].cron: day-of-week: unknown name 'fry' (known: "
     "sun, mon, tue, wed, thu, fri, sat)"},
    {head + "    cron: \"* * *\"\n",
     "4:17: schedules[0].cron: expected five fields: minute hour "
     "day-of-month month day-of-week, got 3"},
    {head + "    every: 1m\n    missed: later\n",
     "5:13: schedules[0].missed: expected skip or run_once, got 'later'"},
    {head + "    every: 1m\n    overlap: [skip]\n",
     "5:14: schedules[0].overlap: expected skip, queue or allow"},
  };
  for (const auto& r : rows) {
    auto cfg = load(dir, r.yaml);
    ASSERT_FALSE(cfg) << r.yaml;
    EXPECT_EQ(code_of(cfg.error()), errc::invalid_config);
    EXPECT_EQ(message_of(cfg.error()), (dir / "cadre.yaml") + ":" + r.error)
      << r.yaml;
  }
}
