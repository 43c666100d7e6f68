#include <cstdint>
#include <string>

#include <gtest/gtest.h>

#include "cadre/messages/duration.hpp"

using cadre::parse_duration;

TEST(Duration, UnitsAndNumbers) {
  int64_t ms = 0;
  EXPECT_EQ(parse_duration(cadre::json("1h30m"), ms), "");
  EXPECT_EQ(ms, 5'400'000);
  EXPECT_EQ(parse_duration(cadre::json(" 1.5 s "), ms), "");
  EXPECT_EQ(ms, 1500);
  EXPECT_EQ(parse_duration(cadre::json(250), ms), "");
  EXPECT_EQ(ms, 250);
}

// Found by fuzz_duration: a number of more than 308 digits before a unit
// threw std::out_of_range (std::stod) out of the workflow validator.
TEST(Duration, ANumberPastDoubleIsTooLargeNotAnException) {
  int64_t ms = 7;
  auto text = std::string(400, '9') + "s";
  auto problem = parse_duration(cadre::json(text), ms);
  EXPECT_NE(problem.find("too large"), std::string::npos) << problem;
  EXPECT_EQ(ms, 7);
}

TEST(Duration, AFractionBelowDoubleIsNothing) {
  int64_t ms = 7;
  auto text = "0." + std::string(400, '0') + "1s";
  EXPECT_EQ(parse_duration(cadre::json(text), ms), "");
  EXPECT_EQ(ms, 0);
}
