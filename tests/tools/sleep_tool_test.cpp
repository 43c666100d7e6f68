#include <atomic>
#include <chrono>
#include <thread>

#include <gtest/gtest.h>

#include "cadre/tools/tool_registry.hpp"

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

TEST(SleepTool, BadInputNamesTheJsonPointer) {
  auto sleep = make_sleep();
  ASSERT_NE(sleep, nullptr);
  struct bad_case {
    json input;
    std::string message;
  };
  const bad_case cases[] = {
    {json{{"ms", -1}}, "tool sleep: /ms: must be a non-negative integer"},
    {json{{"ms", 1.5}}, "tool sleep: /ms: must be a non-negative integer"},
    {json{{"ms", "10"}}, "tool sleep: /ms: must be a non-negative integer"},
    {json::object(), "tool sleep: /ms: is required"},
    {json(10), "tool sleep: input: must be an object"},
    {json(nullptr), "tool sleep: input: must be an object"},
    {json{{"ms", 1}, {"m/s", 2}},
     "tool sleep: /m~1s: unknown key (expected one of: ms)"},
    {json{{"ms", 3'600'001}},
     "tool sleep: /ms: must be at most 3600000 (tools.sleep.max_ms)"},
  };
  for (const auto& c : cases) {
    tool_context ctx;
    auto out = sleep->invoke(json_value{c.input}, ctx);
    ASSERT_FALSE(out) << c.input.dump();
    EXPECT_EQ(code_of(out.error()), errc::invalid_input) << c.input.dump();
    EXPECT_EQ(message_of(out.error()), c.message) << c.input.dump();
  }
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
  EXPECT_EQ(message_of(out.error()),
            "tool sleep: /ms: must be at most 100 (tools.sleep.max_ms)");
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
