// The one restart-intensity rule: at most `max` restarts in a sliding window,
// forgotten as they leave it.

#include <gtest/gtest.h>

#include "cadre/actors/restart_intensity.hpp"

using cadre::actors::restart_intensity;
using namespace std::chrono_literals;

TEST(RestartIntensity, OneRestartTooManyIsRefused) {
  restart_intensity ri{2, 1000ms};
  restart_intensity::time_point t0{};
  EXPECT_TRUE(ri.record(t0));
  EXPECT_TRUE(ri.record(t0 + 10ms));
  EXPECT_FALSE(ri.record(t0 + 20ms));
  EXPECT_FALSE(ri.allows(t0 + 30ms));
}

TEST(RestartIntensity, AllowsAgainOnceTheWindowHasPassedWithoutACrash) {
  restart_intensity ri{1, 1000ms};
  restart_intensity::time_point t0{};
  EXPECT_TRUE(ri.record(t0));
  EXPECT_FALSE(ri.record(t0 + 1ms));
  EXPECT_FALSE(ri.allows(t0 + 999ms));
  EXPECT_TRUE(ri.allows(t0 + 1002ms));
  EXPECT_EQ(ri.recent(), 0u);
}

TEST(RestartIntensity, ZeroRefusesTheFirstRestart) {
  restart_intensity ri{0, 1000ms};
  EXPECT_TRUE(ri.allows(restart_intensity::time_point{}));
  EXPECT_FALSE(ri.record(restart_intensity::time_point{}));
}
