// The scripted LLM provider: matching, templates over tool results, usage,
// streaming, and clear errors for bad scripts and unmatched requests.

#include <fstream>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "cadre/tools/llm/provider.hpp"
#include "temp_dir.hpp"

using namespace cadre;
using namespace cadre::tools::llm;

namespace {

profile scripted(json settings) {
  profile p;
  p.name = "test";
  p.kind = "scripted";
  p.settings = std::move(settings);
  p.price_input_per_mtok = 1.0;
  p.price_output_per_mtok = 2.0;
  return p;
}

std::unique_ptr<provider> make(json settings) {
  auto made = make_provider(scripted(std::move(settings)));
  if (!made) {
    ADD_FAILURE() << describe(made.error());
    return nullptr;
  }
  return std::move(*made);
}

llm_message msg(std::string role, std::string content, std::string name = {}) {
  llm_message m;
  m.role = std::move(role);
  m.content = std::move(content);
  m.name = std::move(name);
  return m;
}

llm_request request(std::string agent, uint32_t turn,
                    std::vector<llm_message> messages) {
  llm_request r;
  r.profile = "test";
  r.agent = std::move(agent);
  r.turn = turn;
  r.messages = std::move(messages);
  return r;
}

const json two_tools_script = json::parse(R"js([
  {"turn": 1, "reply": {"tool_calls": [
     {"name": "echo", "arguments": {"text": "{{ last_user | text }}"}},
     {"name": "script", "arguments": {"code": "return 6 * 7"}}],
     "usage": {"input_tokens": 100, "output_tokens": 20}}},
  {"turn": 2, "reply": {"text": "{\"echoed\": {{ tool.echo.text }}, \"n\": {{ tool.script }}}"}},
  {"default": true, "reply": {"text": "fallback"}}
])js");

} // namespace

TEST(ScriptedProvider, FirstTurnCallsTwoToolsWithTemplatedArguments) {
  auto p = make(json{{"turns", two_tools_script}});
  ASSERT_NE(p, nullptr);
  auto res = p->complete(request("a", 1, {msg("user", "hello there")}), {});
  ASSERT_TRUE(res) << describe(res.error());
  EXPECT_EQ(res->stop_reason, "tool_calls");
  ASSERT_EQ(res->message.tool_calls.size(), 2u);
  EXPECT_EQ(res->message.tool_calls[0].name, "echo");
  EXPECT_EQ(res->message.tool_calls[0].arguments.get(),
            (json{{"text", "hello there"}}));
  EXPECT_NE(res->message.tool_calls[0].id, res->message.tool_calls[1].id);
  EXPECT_EQ(res->usage.input_tokens, 100u);
  EXPECT_EQ(res->usage.output_tokens, 20u);
  EXPECT_DOUBLE_EQ(res->usage.cost_usd, (100 * 1.0 + 20 * 2.0) / 1e6);
}

TEST(ScriptedProvider, SecondTurnQuotesToolResultsAsJson) {
  auto p = make(json{{"turns", two_tools_script}});
  ASSERT_NE(p, nullptr);
  auto res = p->complete(request("a", 2,
                                 {msg("user", "hello"),
                                  msg("assistant", ""),
                                  msg("tool", R"({"text":"hello"})", "echo"),
                                  msg("tool", "42", "script")}),
                         {});
  ASSERT_TRUE(res) << describe(res.error());
  EXPECT_EQ(res->stop_reason, "stop");
  auto answer = json::parse(res->message.content, nullptr, false);
  ASSERT_FALSE(answer.is_discarded()) << res->message.content;
  EXPECT_EQ(answer, (json{{"echoed", "hello"}, {"n", 42}}));
}

TEST(ScriptedProvider, MatchesByAgentAndRegexBeforeTheDefault) {
  auto p = make(json{{"turns", json::parse(R"js([
    {"default": true, "reply": {"text": "default"}},
    {"agent": "b", "reply": {"text": "for b"}},
    {"match": "^weather in (\\w+)", "reply": {"text": "sunny"}}
  ])js")}});
  ASSERT_NE(p, nullptr);
  auto b = p->complete(request("b", 1, {msg("user", "weather in Oslo")}), {});
  ASSERT_TRUE(b);
  EXPECT_EQ(b->message.content, "for b");
  auto w = p->complete(request("a", 1, {msg("user", "weather in Oslo")}), {});
  ASSERT_TRUE(w);
  EXPECT_EQ(w->message.content, "sunny");
  auto d = p->complete(request("a", 1, {msg("user", "anything")}), {});
  ASSERT_TRUE(d);
  EXPECT_EQ(d->message.content, "default");
}

TEST(ScriptedProvider, NoMatchNamesAgentAndTurn) {
  auto p = make(json{{"turns", json::parse(R"js([
    {"agent": "x", "reply": {"text": "hi"}}])js")}});
  ASSERT_NE(p, nullptr);
  auto res = p->complete(request("writer", 3, {msg("user", "q")}), {});
  ASSERT_FALSE(res);
  EXPECT_EQ(code_of(res.error()), errc::invalid_config);
  auto m = message_of(res.error());
  EXPECT_NE(m.find("agent 'writer'"), std::string::npos) << m;
  EXPECT_NE(m.find("turn 3"), std::string::npos) << m;
}

TEST(ScriptedProvider, ReadsAYamlScriptFile) {
  test::temp_dir dir;
  auto path = dir.path() / "script.yaml";
  std::ofstream{path} << "turns:\n"
                         "  - match: ping\n"
                         "    reply:\n"
                         "      text: pong\n"
                         "      usage: {input_tokens: 3, output_tokens: 1}\n";
  auto p = make(json{{"script", path.string()}});
  ASSERT_NE(p, nullptr);
  auto res = p->complete(request("a", 1, {msg("user", "ping")}), {});
  ASSERT_TRUE(res) << describe(res.error());
  EXPECT_EQ(res->message.content, "pong");
  EXPECT_EQ(res->usage.input_tokens, 3u);
}

TEST(ScriptedProvider, StreamsTheTextInPieces) {
  auto p = make(json{{"turns", json::parse(R"js([
    {"default": true, "reply": {"text": "one two three"}}])js")}});
  ASSERT_NE(p, nullptr);
  auto req = request("a", 1, {msg("user", "q")});
  req.stream = true;
  call_context ctx;
  std::vector<std::string> pieces;
  ctx.on_text = [&](std::string_view s) { pieces.emplace_back(s); };
  auto res = p->complete(req, ctx);
  ASSERT_TRUE(res);
  ASSERT_EQ(pieces.size(), 3u);
  std::string joined;
  for (auto& s : pieces)
    joined += s;
  EXPECT_EQ(joined, "one two three");
}

TEST(ScriptedProvider, DelayHonoursCancellation) {
  auto p = make(json{{"turns", json::parse(R"js([
    {"default": true, "reply": {"text": "late", "delay_ms": 600000}}])js")}});
  ASSERT_NE(p, nullptr);
  call_context ctx;
  ctx.cancel_flag->store(true);
  auto res = p->complete(request("a", 1, {msg("user", "q")}), ctx);
  ASSERT_FALSE(res);
  EXPECT_EQ(code_of(res.error()), errc::cancelled);
}

// The agent calls a provider that never blocks on its own thread (no
// hand-off to its LLM worker); an entry with a delay waits, so it must not.
TEST(ScriptedProvider, BlocksOnlyWhenAnEntryHasADelay) {
  auto quick = make(json{{"turns", json::parse(R"js([
    {"turn": 1, "reply": {"text": "a"}},
    {"default": true, "reply": {"error": "unavailable: busy"}}])js")}});
  ASSERT_NE(quick, nullptr);
  EXPECT_FALSE(quick->may_block());
  auto slow = make(json{{"turns", json::parse(R"js([
    {"turn": 1, "reply": {"text": "a"}},
    {"default": true, "reply": {"text": "late", "delay_ms": 5}}])js")}});
  ASSERT_NE(slow, nullptr);
  EXPECT_TRUE(slow->may_block());
  profile http;
  http.kind = "openai";
  http.base_url = "http://127.0.0.1:9";
  http.model = "m";
  auto net = make_provider(http);
  ASSERT_TRUE(net) << describe(net.error());
  EXPECT_TRUE((*net)->may_block());
}

TEST(ScriptedProvider, ScriptedErrorsUseTheirCode) {
  auto p = make(json{{"turns", json::parse(R"js([
    {"default": true, "reply": {"error": "unavailable: model overloaded"}}])js")}});
  ASSERT_NE(p, nullptr);
  auto res = p->complete(request("a", 1, {msg("user", "q")}), {});
  ASSERT_FALSE(res);
  EXPECT_EQ(code_of(res.error()), errc::unavailable);
  EXPECT_NE(message_of(res.error()).find("model overloaded"),
            std::string::npos);
}

TEST(ScriptedProvider, BadScriptsNameTheKey) {
  struct bad_case {
    json settings;
    std::string expect;
  };
  std::vector<bad_case> cases = {
    {json{{"turns", "x"}}, "settings.turns: must be a list"},
    {json{{"turns", json::array({json{{"reply", {{"text", "a"}}}, {"trun", 1}}})}},
     "settings.turns.0.trun: unknown key"},
    {json{{"turns", json::array({json{{"match", "(("}, {"reply", json::object()}}})}},
     "settings.turns.0.match: not a supported regular expression"},
    {json{{"turns", json::array({json{{"agent", "a"}}})}},
     "settings.turns.0: an entry needs a 'reply'"},
    {json{{"script", "/nonexistent/script.yaml"}},
     "settings.script: cannot read"},
    {json{{"scrpt", "x"}}, "settings.scrpt: unknown key"},
  };
  for (auto& c : cases) {
    auto made = make_provider(scripted(c.settings));
    ASSERT_FALSE(made) << c.settings.dump();
    EXPECT_EQ(code_of(made.error()), errc::invalid_config);
    auto m = message_of(made.error());
    EXPECT_NE(m.find("llm.profiles.test." + c.expect), std::string::npos)
      << m;
  }
}

TEST(ScriptedProvider, UnknownTemplateNameIsAnError) {
  auto p = make(json{{"turns", json::parse(R"js([
    {"default": true, "reply": {"text": "{{ nope }}"}}])js")}});
  ASSERT_NE(p, nullptr);
  auto res = p->complete(request("a", 1, {msg("user", "q")}), {});
  ASSERT_FALSE(res);
  EXPECT_NE(message_of(res.error()).find("unknown template name 'nope'"),
            std::string::npos);
}

TEST(ScriptedProvider, UnknownKindListsTheKnownOnes) {
  profile p;
  p.name = "x";
  p.kind = "nope";
  auto made = make_provider(p);
  ASSERT_FALSE(made);
  EXPECT_NE(message_of(made.error()).find("scripted"), std::string::npos);
}
