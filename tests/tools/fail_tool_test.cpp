#include <gtest/gtest.h>

#include "cadre/tools/tool_registry.hpp"

using namespace cadre;
using namespace cadre::tools;

namespace {

std::unique_ptr<tool> make_fail() {
  tool_registry registry;
  register_builtin_tools(registry);
  auto t = registry.create("fail", json_value{});
  if (!t)
    ADD_FAILURE() << describe(t.error());
  return t ? std::move(*t) : nullptr;
}

expected<json_value> call(tool& t, json input, uint32_t attempt) {
  tool_context ctx;
  ctx.attempt = attempt;
  return t.invoke(json_value{std::move(input)}, ctx);
}

} // namespace

TEST(FailTool, SucceedsExactlyOnAttemptTimesPlusOne) {
  auto fail = make_fail();
  ASSERT_NE(fail, nullptr);
  for (uint32_t times : {0u, 1u, 3u}) {
    for (uint32_t attempt = 1; attempt <= times + 2; ++attempt) {
      auto out = call(*fail, json{{"times", times}}, attempt);
      if (attempt <= times) {
        ASSERT_FALSE(out) << "times " << times << " attempt " << attempt;
        EXPECT_EQ(code_of(out.error()), errc::tool_failed);
      } else {
        ASSERT_TRUE(out) << "times " << times << " attempt " << attempt;
        EXPECT_EQ(out->get(), (json{{"attempt", attempt}}));
      }
    }
  }
}

TEST(FailTool, SameAttemptGivesTheSameOutcome) {
  auto fail = make_fail();
  ASSERT_NE(fail, nullptr);
  auto input = json{{"times", 2}, {"message", "boom"}};
  auto first = call(*fail, input, 2);
  auto again = call(*fail, input, 2);
  ASSERT_FALSE(first);
  ASSERT_FALSE(again);
  EXPECT_EQ(message_of(first.error()), message_of(again.error()));
  EXPECT_TRUE(call(*fail, input, 3));
  EXPECT_TRUE(call(*fail, input, 3));
}

TEST(FailTool, ReportsTheCodeAndMessageAndAttempt) {
  auto fail = make_fail();
  ASSERT_NE(fail, nullptr);
  auto out = call(*fail,
                  json{{"times", 2}, {"message", "upstream down"},
                       {"code", "unavailable"}},
                  2);
  ASSERT_FALSE(out);
  EXPECT_EQ(code_of(out.error()), errc::unavailable);
  EXPECT_EQ(message_of(out.error()),
            "tool fail: upstream down (attempt 2 of 2 failing)");
}

TEST(FailTool, WithoutTimesFailsOnEveryAttempt) {
  auto fail = make_fail();
  ASSERT_NE(fail, nullptr);
  for (uint32_t attempt : {1u, 2u, 100u}) {
    auto out = call(*fail, nullptr, attempt);
    ASSERT_FALSE(out);
    EXPECT_EQ(code_of(out.error()), errc::tool_failed);
    EXPECT_NE(message_of(out.error()).find("injected failure"),
              std::string::npos);
  }
}

TEST(FailTool, BadInputNamesTheJsonPointer) {
  auto fail = make_fail();
  ASSERT_NE(fail, nullptr);
  struct bad_case {
    json input;
    std::string message;
  };
  const bad_case cases[] = {
    {json{{"times", -1}},
     "tool fail: /times: must be an integer in [0, 4294967295]"},
    {json{{"times", "2"}},
     "tool fail: /times: must be an integer in [0, 4294967295]"},
    {json{{"message", 5}}, "tool fail: /message: must be a string"},
    {json{{"code", "nope"}},
     "tool fail: /code: 'nope' is not a cadre error code "
     "(e.g. tool_failed, timeout)"},
    {json{{"code", "ok"}},
     "tool fail: /code: 'ok' is not a cadre error code "
     "(e.g. tool_failed, timeout)"},
    {json{{"times", 1}, {"retries", 1}},
     "tool fail: /retries: unknown key (expected one of: times, message, "
     "code)"},
    {json::array(), "tool fail: input: must be an object"},
  };
  for (const auto& c : cases) {
    auto out = call(*fail, c.input, 1);
    ASSERT_FALSE(out) << c.input.dump();
    EXPECT_EQ(code_of(out.error()), errc::invalid_input) << c.input.dump();
    EXPECT_EQ(message_of(out.error()), c.message) << c.input.dump();
  }
}

TEST(FailTool, IsNonBlocking) {
  auto fail = make_fail();
  ASSERT_NE(fail, nullptr);
  EXPECT_FALSE(fail->blocking());
  EXPECT_EQ(fail->name(), "fail");
}
