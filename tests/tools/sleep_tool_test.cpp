#include <atomic>
#include <chrono>
#include <thread>

#include <gtest/gtest.h>

#include "cadre/tools/tool_registry.hpp"
#include "tool_schema_check.hpp"

using namespace cadre;
using namespace cadre::tools;
using namespace std::chrono_literals;

namespace {

std::unique_ptr<tool> make_sleep(json settings = nullptr) {
  tool_registry registry;
  register_builtin_tools(registry);
  auto t = registry.create("sleep", json_value{std::move(settings)});
  if (!t)
    ADD_FAILURE() << describe(t.error());
  return t ? std::move(*t) : nullptr;
}

int64_t now_us() {
  return std::chrono::duration_cast<std::chrono::microseconds>(
           std::chrono::system_clock::now().time_since_epoch())
    .count();
}

} // namespace

TEST(SleepTool, ReturnsSleptMilliseconds) {
  auto sleep = make_sleep();
  ASSERT_NE(sleep, nullptr);
  tool_context ctx;
  auto out = sleep->invoke(json_value{json{{"ms", 5}}}, ctx);
  ASSERT_TRUE(out) << describe(out.error());
  EXPECT_EQ(out->get(), (json{{"slept_ms", 5}}));
  auto zero = sleep->invoke(json_value{json{{"ms", 0}}}, ctx);
  ASSERT_TRUE(zero) << describe(zero.error());
  EXPECT_EQ(zero->get(), (json{{"slept_ms", 0}}));
}

TEST(SleepTool, IsBlocking) {
  auto sleep = make_sleep();
  ASSERT_NE(sleep, nullptr);
  EXPECT_TRUE(sleep->blocking());
  EXPECT_EQ(sleep->describe().input_schema["required"], json::array({"ms"}));
}

TEST(SleepTool, CancelledFromAnotherThreadReturnsEarly) {
  auto sleep = make_sleep();
  ASSERT_NE(sleep, nullptr);
  tool_context ctx;
  // The watchdog sets the flag; without cancellation this sleep takes 60 s.
  std::thread watchdog{[flag = ctx.cancel_flag] {
    std::this_thread::sleep_for(50ms);
    flag->store(true);
  }};
  auto out = sleep->invoke(json_value{json{{"ms", 60'000}}}, ctx);
  watchdog.join();
  ASSERT_FALSE(out);
  EXPECT_EQ(code_of(out.error()), errc::cancelled);
  EXPECT_NE(message_of(out.error()).find("tool sleep"), std::string::npos);
}

TEST(SleepTool, AlreadyCancelledDoesNotSleep) {
  auto sleep = make_sleep();
  ASSERT_NE(sleep, nullptr);
  tool_context ctx;
  ctx.cancel_flag->store(true);
  auto out = sleep->invoke(json_value{json{{"ms", 60'000}}}, ctx);
  ASSERT_FALSE(out);
  EXPECT_EQ(code_of(out.error()), errc::cancelled);
}

TEST(SleepTool, StopsWithTimeoutWhenTheDeadlinePasses) {
  auto sleep = make_sleep();
  ASSERT_NE(sleep, nullptr);
  tool_context ctx;
  ctx.deadline_us = now_us() + 20'000;
  auto out = sleep->invoke(json_value{json{{"ms", 60'000}}}, ctx);
  ASSERT_FALSE(out);
  EXPECT_EQ(code_of(out.error()), errc::timeout);
}

// Issue 13 item 7: the input is checked by the published schema, whose
// maximum is tools.sleep.max_ms; errors are the schema's, located.
TEST(SleepTool, BadInputIsRefusedByTheSchemaNamingThePointer) {
  auto sleep = make_sleep();
  ASSERT_NE(sleep, nullptr);
  test::expect_refused_by_schema(*sleep, {
    {json{{"ms", -1}}, "/ms"},
    {json{{"ms", 1.5}}, "/ms"},
    {json{{"ms", "10"}}, "/ms"},
    {json::object(), "/"},
    {json(10), "/"},
    {json(nullptr), "/"},
    {json{{"ms", 1}, {"m/s", 2}}, "/"},
    {json{{"ms", 3'600'001}}, "/ms"},
  });
  test::expect_accepted_by_both(*sleep, {json{{"ms", 0}}, json{{"ms", 1.0}}});
}

TEST(SleepTool, AcceptsIntegralFloats) {
  auto sleep = make_sleep();
  ASSERT_NE(sleep, nullptr);
  tool_context ctx;
  auto out = sleep->invoke(json_value{json{{"ms", 2.0}}}, ctx);
  ASSERT_TRUE(out) << describe(out.error());
  EXPECT_EQ(out->get(), (json{{"slept_ms", 2}}));
}

TEST(SleepTool, MaxMsSettingBoundsTheInput) {
  auto sleep = make_sleep(json{{"max_ms", 100}});
  ASSERT_NE(sleep, nullptr);
  tool_context ctx;
  auto out = sleep->invoke(json_value{json{{"ms", 101}}}, ctx);
  ASSERT_FALSE(out);
  EXPECT_EQ(message_of(out.error()).rfind("tool sleep: /ms: ", 0), 0u)
    << message_of(out.error());
  EXPECT_NE(message_of(out.error()).find("100"), std::string::npos)
    << message_of(out.error());
  EXPECT_EQ(sleep->describe().input_schema["properties"]["ms"]["maximum"],
            100);
}

TEST(SleepTool, BadSettingsNameTheKey) {
  tool_registry registry;
  register_builtin_tools(registry);
  for (auto bad : {json("x"), json(-5), json(1.5)}) {
    auto t = registry.create("sleep", json_value{json{{"max_ms", bad}}});
    ASSERT_FALSE(t) << bad.dump();
    EXPECT_EQ(code_of(t.error()), errc::invalid_config);
    EXPECT_EQ(message_of(t.error()), "tools.sleep.max_ms: must be an integer "
                                     ">= 0");
  }
}
