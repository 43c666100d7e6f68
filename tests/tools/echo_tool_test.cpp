#include <gtest/gtest.h>

#include "cadre/tools/tool_registry.hpp"

using namespace cadre;
using namespace cadre::tools;

namespace {

std::unique_ptr<tool> make_echo(json settings = nullptr) {
  tool_registry registry;
  register_builtin_tools(registry);
  auto t = registry.create("echo", json_value{std::move(settings)});
  if (!t)
    ADD_FAILURE() << describe(t.error());
  return t ? std::move(*t) : nullptr;
}

} // namespace

TEST(EchoTool, ReturnsItsInputUnchanged) {
  auto echo = make_echo();
  ASSERT_NE(echo, nullptr);
  tool_context ctx;
  for (auto doc : {json(nullptr), json(42), json("text"), json::array(),
                   json{{"a", {1, 2, {{"b", nullptr}}}}, {"c", true}}}) {
    auto out = echo->invoke(json_value{doc}, ctx);
    ASSERT_TRUE(out) << describe(out.error());
    EXPECT_EQ(out->get(), doc);
  }
}

TEST(EchoTool, SharesTheInputDocumentInsteadOfCopyingIt) {
  auto echo = make_echo();
  ASSERT_NE(echo, nullptr);
  tool_context ctx;
  json_value input{json{{"payload", std::string(1 << 16, 'x')}}};
  auto out = echo->invoke(input, ctx);
  ASSERT_TRUE(out);
  EXPECT_EQ(&out->get(), &input.get());
}

TEST(EchoTool, IsNonBlockingAndDescribesItself) {
  auto echo = make_echo();
  ASSERT_NE(echo, nullptr);
  EXPECT_EQ(echo->name(), "echo");
  EXPECT_FALSE(echo->blocking());
  auto d = echo->describe();
  EXPECT_EQ(d.name, "echo");
  EXPECT_FALSE(d.description.empty());
  EXPECT_TRUE(d.input_schema.is_object());
  EXPECT_TRUE(d.output_schema.is_object());
}

TEST(EchoTool, RejectsSettingsThatAreNotAnObject) {
  tool_registry registry;
  register_builtin_tools(registry);
  auto t = registry.create("echo", json_value{json(7)});
  ASSERT_FALSE(t);
  EXPECT_EQ(code_of(t.error()), errc::invalid_config);
  EXPECT_EQ(message_of(t.error()), "tools.echo: must be an object");
}
