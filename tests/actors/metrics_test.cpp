// The metric registry: counting from many threads, and the Prometheus text
// a scrape or a textfile collector reads.

#include <thread>
#include <vector>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "cadre/actors/metrics.hpp"

using cadre::actors::metric_labels;
using cadre::actors::metric_registry;

TEST(Metrics, CountsFromManyThreadsWithoutLosingAnAdd) {
  metric_registry m;
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t)
    threads.emplace_back([&m, t] {
      for (int i = 0; i < 10000; ++i)
        m.add("cadre_test_total", {{"worker", std::to_string(t % 2)}});
    });
  for (auto& t : threads)
    t.join();
  EXPECT_EQ(m.value("cadre_test_total", {{"worker", "0"}}), 20000);
  EXPECT_EQ(m.value("cadre_test_total", {{"worker", "1"}}), 20000);
  EXPECT_EQ(m.value("cadre_test_total", {{"worker", "2"}}), 0);
  EXPECT_EQ(m.value("cadre_unknown_total", {}), 0);
}

TEST(Metrics, RendersThePrometheusTextFormat) {
  metric_registry m;
  m.declare("cadre_b_total", "Second family\nwith a newline");
  m.add("cadre_b_total", {{"agent", "say \"hi\"\\now"}}, 2);
  m.add("cadre_a_cost_usd_total", {}, 0.25);
  m.add("cadre_a_cost_usd_total", {}, 0.5);
  m.add("cadre_b_total", {{"agent", "x"}}, -1); // counters never go down
  EXPECT_EQ(m.prometheus(),
            "# TYPE cadre_a_cost_usd_total counter\n"
            "cadre_a_cost_usd_total 0.75\n"
            "# HELP cadre_b_total Second family\\nwith a newline\n"
            "# TYPE cadre_b_total counter\n"
            "cadre_b_total{agent=\"say \\\"hi\\\"\\\\now\"} 2\n");
  auto j = m.to_json();
  EXPECT_EQ(j["cadre_a_cost_usd_total"][0]["value"], 0.75);
  EXPECT_EQ(j["cadre_b_total"][0]["labels"]["agent"], "say \"hi\"\\now");
}
