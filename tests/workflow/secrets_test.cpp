// Secret references in workflows (issue 12): "{{ secrets.NAME }}" stays text
// in the recorded input, only a tool task's input may hold one, a name the
// node does not define is refused at validation, and the places of the
// references are what the tool worker fills in.

#include <string>

#include <gtest/gtest.h>

#include "cadre/workflow/definition.hpp"
#include "cadre/workflow/machine.hpp"

using namespace cadre;
using namespace cadre::workflow;

namespace {

validation_context secrets_context() {
  validation_context ctx;
  ctx.tool_exists = [](const std::string& name) { return name == "http"; };
  ctx.secret_exists = [](const std::string& name) { return name == "token"; };
  return ctx;
}

bool has_error(const parse_result& r, const std::string& pointer,
               const std::string& text) {
  for (const auto& d : r.errors)
    if (d.pointer == pointer && d.message.find(text) != std::string::npos)
      return true;
  return false;
}

std::string all_errors(const parse_result& r) {
  std::string out;
  for (const auto& d : r.errors)
    out += d.to_string() + "\n";
  return out;
}

} // namespace

TEST(WorkflowSecrets, ReferencesAreLocatedAndKeptAsTextInTheDispatch) {
  auto r = parse_text("name: s\n"
                      "tasks:\n"
                      "  - id: call\n"
                      "    tool: http\n"
                      "    input:\n"
                      "      url: \"{{ input.url }}\"\n"
                      "      auth: {type: bearer, token: \"{{ secrets.token }}\"}\n"
                      "      headers: {X-Key: \"k={{secrets.token}}\"}\n",
                      "s.yaml", secrets_context());
  ASSERT_TRUE(r.def) << all_errors(r);
  const auto& pointers = r.def->tasks[0].secret_pointers;
  ASSERT_EQ(pointers.size(), 2u);
  EXPECT_EQ(pointers[0], "/auth/token");
  EXPECT_EQ(pointers[1], "/headers/X-Key");
  machine m{"e1"};
  auto step = m.submit(r.def->document,
                       json{{"url", "http://example.test/"}}, "", 1);
  ASSERT_TRUE(step) << describe(step.error());
  ASSERT_EQ(step->actions.size(), 1u);
  const auto& a = step->actions[0];
  ASSERT_EQ(a.kind, action::dispatch);
  EXPECT_EQ(a.input["auth"]["token"], "{{ secrets.token }}");
  EXPECT_EQ(a.input["headers"]["X-Key"], "k={{secrets.token}}");
  EXPECT_EQ(a.secret_pointers, pointers);
}

TEST(WorkflowSecrets, UnknownSecretIsRefusedAtValidationNamingIt) {
  auto r = parse_text("name: s\n"
                      "tasks:\n"
                      "  - id: call\n"
                      "    tool: http\n"
                      "    input: {url: \"{{ secrets.tokn }}\"}\n",
                      "s.yaml", secrets_context());
  EXPECT_FALSE(r.def);
  EXPECT_TRUE(has_error(r, "/tasks/0/input/url", "unknown secret 'tokn'"))
    << all_errors(r);
}

TEST(WorkflowSecrets, SecretOutsideAToolInputOrBesideDataIsRefused) {
  auto r = parse_text("name: s\n"
                      "tasks:\n"
                      "  - id: call\n"
                      "    tool: http\n"
                      "    input: {url: \"{{ input.url }}/{{ secrets.token }}\"}\n"
                      "  - id: ask\n"
                      "    kind: human\n"
                      "    prompt: \"token {{ secrets.token }}\"\n"
                      "output: \"{{ secrets.token }}\"\n",
                      "s.yaml", secrets_context());
  EXPECT_FALSE(r.def);
  EXPECT_TRUE(has_error(r, "/tasks/0/input/url", "may hold no other"))
    << all_errors(r);
  EXPECT_TRUE(has_error(r, "/tasks/1/prompt", "only in the input of a tool"))
    << all_errors(r);
  EXPECT_TRUE(has_error(r, "/output", "only in the input of a tool"))
    << all_errors(r);
}
