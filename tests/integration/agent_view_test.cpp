// An agent's memory as a user asks for it: a real `cadre serve` runs two
// turns of a scripted agent, then GET /v1/agents/{agent_id} and `cadre
// agent ID` (as a client of the server and on the store) show its
// messages and turns; an unknown id is a 404 problem naming it and writes
// no log; after kill -9 and a restart on the same store the memory is
// still there.

#include <chrono>
#include <set>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "cadre/persistence/event_store.hpp"
#include "cadre_process.hpp"
#include "cadre_server.hpp"
#include "openapi_schema.hpp"
#include "temp_dir.hpp"

using namespace cadre;
using nlohmann::json;

namespace {

constexpr std::chrono::seconds command_limit{120};

// Two turns of one agent id (memory scope `execution`): the second turn's
// prompt is answered by its own script entry.
json two_turns() {
  json script = json::array(
    {json{{"match", "job 7"}, {"reply", {{"text", "The disk filled up."}}}},
     json{{"match", "what should we do"},
          {"reply", {{"text", "Free some space."}}}}});
  return json{
    {"name", "two-turns"},
    {"agents",
     {{"analyst",
       {{"system", "You explain failures in one sentence."},
        {"script", script}}}}},
    {"tasks",
     json::array({json{{"id", "first"},
                       {"agent", "analyst"},
                       {"input", "What failed in job 7?"}},
                  json{{"id", "second"},
                       {"depends_on", "first"},
                       {"agent", "analyst"},
                       {"input", "And what should we do about it?"}}})}};
}

// The messages of a memory view as "role: content" lines.
std::vector<std::string> said(const json& view) {
  std::vector<std::string> out;
  for (const auto& m : view.value("messages", json::array()))
    out.push_back(m.value("role", "") + ": " + m.value("content", ""));
  return out;
}

const std::vector<std::string> conversation{
  "user: What failed in job 7?", "assistant: The disk filled up.",
  "user: And what should we do about it?", "assistant: Free some space."};

std::string text_of(const std::vector<std::string>& lines) {
  std::string out;
  for (const auto& l : lines)
    out += l + "\n";
  return out;
}

} // namespace

TEST(AgentView, RouteAndCliShowTheMemoryOfAnAgentAlsoAfterKill9) {
  test::temp_dir dir;
  auto db = dir.str() + "/db";
  std::string agent_id;
  json before;
  {
    test::cadre_server s{db};
    ASSERT_TRUE(s.ok());
    int status = 0;
    auto done = test::post(s, "/v1/executions?wait=60",
                           json{{"definition", two_turns()}}, &status);
    ASSERT_EQ(status, 200) << done.dump();
    ASSERT_EQ(done["status"], "completed") << done.dump();
    agent_id = done["id"].get<std::string>() + "/analyst";

    before = test::get(s, "/v1/agents/" + agent_id, &status);
    ASSERT_EQ(status, 200) << before.dump();
    EXPECT_EQ(before["agent_id"], agent_id);
    EXPECT_EQ(before["log"], "agent:" + agent_id);
    EXPECT_EQ(before["turns"], 2);
    EXPECT_EQ(said(before), conversation) << before.dump();
    EXPECT_TRUE(before["active"].is_null());
    // The answer is what the OpenAPI document says it is.
    auto api = test::openapi_document::load(
      std::string{CADRE_SOURCE_DIR} + "/runtime/src/ingress/openapi.json");
    auto schema = test::openapi_document::compile(
      api.response_schema("/v1/agents/{agent_id}", "get", 200));
    for (const auto& e : schema.validate(before))
      ADD_FAILURE() << e.pointer << ": " << e.message;
    EXPECT_FALSE(schema.validate(json::object()).empty());
    // What the view holds is the documented set of fields, no more: the
    // conversation and counts, never a spec, profile or key.
    std::set<std::string> keys;
    for (auto& [k, v] : before.items())
      keys.insert(k);
    EXPECT_EQ(keys, (std::set<std::string>{
                      "agent_id", "log", "seq", "messages", "summary",
                      "summarized", "turns", "earlier_turns",
                      "earlier_messages", "active"}));
    // The slash of the id may come encoded.
    auto slash = agent_id.find('/');
    auto encoded = test::get(s,
                             "/v1/agents/" + agent_id.substr(0, slash) + "%2F"
                               + agent_id.substr(slash + 1),
                             &status);
    EXPECT_EQ(status, 200);
    EXPECT_EQ(encoded, before);

    // The CLI as the server's client: compact text, and --json the view.
    auto text = test::run_to_end({"--server", s.url(), "agent", agent_id},
                                 dir / "cli.err", command_limit);
    ASSERT_TRUE(text);
    ASSERT_EQ(text->exit_code, 0) << text->err;
    auto printed = text_of(text->out);
    EXPECT_NE(printed.find("agent " + agent_id), std::string::npos)
      << printed;
    EXPECT_NE(printed.find("turns: 2 finished"), std::string::npos)
      << printed;
    EXPECT_NE(printed.find("messages: 4"), std::string::npos) << printed;
    EXPECT_NE(printed.find("  user:      What failed in job 7?\n"),
              std::string::npos)
      << printed;
    EXPECT_NE(printed.find("  assistant: Free some space.\n"),
              std::string::npos)
      << printed;
    auto as_json = test::run_to_end(
      {"--server", s.url(), "agent", agent_id, "--json"}, dir / "cli.err",
      command_limit);
    ASSERT_TRUE(as_json);
    ASSERT_EQ(as_json->exit_code, 0) << as_json->err;
    EXPECT_EQ(json::parse(as_json->last_line(), nullptr, false), before);

    // An id without a log: a 404 problem naming it, from the route and the
    // CLI (a usage error), and no log is made by asking.
    auto unknown = test::get(s, "/v1/agents/nobody/analyst", &status);
    EXPECT_EQ(status, 404) << unknown.dump();
    EXPECT_EQ(unknown["type"], "/problems/not_found");
    EXPECT_NE(unknown["detail"].get<std::string>().find("nobody/analyst"),
              std::string::npos)
      << unknown.dump();
    auto cli_unknown = test::run_to_end(
      {"--server", s.url(), "agent", "nobody/analyst"}, dir / "cli.err",
      command_limit);
    ASSERT_TRUE(cli_unknown);
    EXPECT_EQ(cli_unknown->exit_code, 2);
    EXPECT_NE(cli_unknown->err.find("agent nobody/analyst has no log"),
              std::string::npos)
      << cli_unknown->err;
    persistence::store_options opts;
    opts.dir = db;
    opts.read_only = true;
    auto store = persistence::event_store::open(opts);
    ASSERT_TRUE(store) << describe(store.error());
    auto last = (*store)->last_seq("agent:nobody/analyst");
    ASSERT_TRUE(last);
    EXPECT_EQ(*last, 0u);

    s.proc().kill_now(); // SIGKILL: no shutdown, no flush beyond the log's
  }

  // Started again on the same store, the agent is folded from its log.
  test::cadre_server s{db};
  ASSERT_TRUE(s.ok());
  int status = 0;
  auto after = test::get(s, "/v1/agents/" + agent_id, &status);
  ASSERT_EQ(status, 200) << after.dump();
  EXPECT_EQ(after, before);
  // On the store, while the server runs, the CLI folds the same log the
  // agent does and prints the same view.
  auto local = test::run_to_end({"--db", db, "agent", agent_id, "--json"},
                                dir / "local.err", command_limit);
  ASSERT_TRUE(local);
  ASSERT_EQ(local->exit_code, 0) << local->err;
  EXPECT_EQ(json::parse(local->last_line(), nullptr, false), before);
  auto local_unknown = test::run_to_end({"--db", db, "agent", "nobody"},
                                        dir / "local.err", command_limit);
  ASSERT_TRUE(local_unknown);
  EXPECT_EQ(local_unknown->exit_code, 2);
  EXPECT_NE(local_unknown->err.find("agent nobody has no log"),
            std::string::npos)
    << local_unknown->err;
}
