// Replay debugging as a person does it, with real `cadre` processes on a
// store on disk and an agent on a counting model server: inspect every
// event, check definitions against the log, fork with an edit, diff, export
// and import, and gate on recorded runs with `cadre test`.

#include <sys/wait.h>

#include <chrono>
#include <fstream>
#include <map>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "cadre/messages/json_value.hpp"
#include "cadre_process.hpp"
#include "fake_llm_server.hpp"
#include "temp_dir.hpp"

using namespace cadre;

namespace {

using test::outcome;
using std::chrono::seconds;

constexpr seconds command_limit{60};

std::string joined(const std::vector<std::string>& lines) {
  std::string out;
  for (const auto& line : lines)
    out += line + "\n";
  return out;
}

const char* triage_yaml = R"yaml(name: triage
version: "1"
agents:
  analyst:
    system: You explain failures in one sentence.
    stream: false
tasks:
  - id: measure
    tool: script
    input:
      code: "return {n = #args.s}"
      args: {s: "{{ input.text }}"}
  - id: explain
    depends_on: measure
    agent: analyst
    input: "Explain '{{ input.text }}' ({{ tasks.measure.output.n }} chars)"
  - id: approve
    depends_on: explain
    kind: human
    prompt: "Act on: {{ tasks.explain.output }}?"
  - id: act
    depends_on: approve
    tool: echo
    input:
      decision: "{{ tasks.approve.output }}"
      why: "{{ tasks.explain.output }}"
)yaml";

class ReplayCli : public ::testing::Test {
protected:
  void SetUp() override {
    model_.push(test::json_reply(
      {{"id", "chatcmpl-1"},
       {"object", "chat.completion"},
       {"created", 1700000000},
       {"model", "fake-analyst"},
       {"choices",
        {{{"index", 0},
          {"message",
           {{"role", "assistant"}, {"content", "The disk was full."}}},
          {"finish_reason", "stop"}}}},
       {"usage",
        {{"prompt_tokens", 50}, {"completion_tokens", 6},
         {"total_tokens", 56}}}}));
    workflow_ = tmp_ / "triage.yaml";
    std::ofstream{workflow_} << triage_yaml;
  }

  std::vector<std::string> env() const {
    return {"CADRE_LLM_KIND=openai",
            "CADRE_LLM_BASE_URL=" + model_.url("/v1"),
            "CADRE_LLM_MODEL=fake-analyst",
            "CADRE_LLM_API_KEY_ENV=CADRE_TEST_REPLAY_KEY",
            "CADRE_TEST_REPLAY_KEY=sk-replay-test",
            "CADRE_LLM_TIMEOUT=30s"};
  }

  outcome cadre(std::vector<std::string> args, const std::string& db = "db") {
    args.insert(args.begin(), {"--db", tmp_ / db});
    if (!config_.empty())
      args.insert(args.begin(), {"--config", config_});
    auto res = test::run_to_end(args, tmp_ / "err", command_limit, env());
    EXPECT_TRUE(res);
    return res ? *res : outcome{};
  }

  json cadre_json(std::vector<std::string> args, const std::string& db = "db") {
    args.insert(args.begin(), "--json");
    auto res = cadre(args, db);
    EXPECT_EQ(res.exit_code, 0) << res.err << joined(res.out);
    if (res.out.empty())
      return nullptr;
    auto doc = json::parse(res.out.back(), nullptr, false);
    EXPECT_FALSE(doc.is_discarded()) << res.out.back();
    return doc;
  }

  // Runs the triage workflow to its human task and answers it: the
  // parent execution every test starts from.
  std::string recorded_run() {
    auto run = cadre({"--json", "run", workflow_, "--input",
                      R"({"text": "job 7 failed"})"});
    EXPECT_EQ(run.exit_code, 3) << run.err << joined(run.out);
    auto result = json::parse(run.out.back(), nullptr, false);
    auto id = result.value("id", std::string{});
    EXPECT_FALSE(id.empty()) << run.out.back();
    auto answered = cadre({"input", id, "approve", "yes"});
    EXPECT_EQ(answered.exit_code, 0) << answered.err;
    return id;
  }

  std::string export_of(const std::string& id, const std::string& db = "db") {
    auto res = cadre({"export", id}, db);
    EXPECT_EQ(res.exit_code, 0) << res.err;
    return joined(res.out);
  }

  size_t model_calls() {
    return model_.exchanges().size();
  }

  // Sets the node config every later command gets.
  void use_config(const std::string& yaml) {
    config_ = tmp_ / ("config-" + std::to_string(++configs_) + ".yaml");
    std::ofstream{config_} << yaml;
  }

  test::temp_dir tmp_;
  test::fake_llm_server model_{"/v1/chat/completions"};
  std::string workflow_;
  std::string config_;
  int configs_ = 0;
};

} // namespace

TEST_F(ReplayCli, InspectShowsTheStateAfterEveryEvent) {
  auto id = recorded_run();
  ASSERT_EQ(model_calls(), 1u);
  auto last = cadre_json({"inspect", id});
  ASSERT_TRUE(last.is_object());
  EXPECT_EQ(last["status"], "completed");
  auto n = last["seq"].get<uint64_t>();
  ASSERT_GE(n, 8u);
  bool saw_waiting = false;
  for (uint64_t seq = 1; seq <= n; ++seq) {
    auto v = cadre_json({"inspect", id, "--at", std::to_string(seq)});
    ASSERT_EQ(v["seq"], seq) << v.dump();
    if (v["status"] == "waiting") {
      saw_waiting = true;
      ASSERT_EQ(v["waiting"].size(), 1u) << v.dump();
      EXPECT_EQ(v["waiting"][0]["prompt"], "Act on: The disk was full.?");
      // The agent's conversation had got to its answer.
      ASSERT_TRUE(v.contains("agents")) << v.dump();
      auto conv = v["agents"].begin().value();
      ASSERT_FALSE(conv.empty());
      EXPECT_EQ(conv.back()["role"], "assistant");
      EXPECT_EQ(conv.back()["content"], "The disk was full.");
    }
  }
  EXPECT_TRUE(saw_waiting);
  EXPECT_EQ(last["output"]["act"]["decision"], "yes");
  // Past the end is a usage error naming the count.
  auto past = cadre({"inspect", id, "--at", std::to_string(n + 1)});
  EXPECT_EQ(past.exit_code, 2);
  EXPECT_NE(past.err.find("has " + std::to_string(n) + " events"),
            std::string::npos)
    << past.err;
  // Stepping prints one record per event.
  auto steps = cadre({"--json", "replay", id});
  ASSERT_EQ(steps.exit_code, 0) << steps.err;
  EXPECT_EQ(steps.out.size(), n);
  auto first = json::parse(steps.out.front(), nullptr, false);
  EXPECT_EQ(first["type"], "execution_submitted");
  ASSERT_EQ(model_calls(), 1u); // reading asks no model
}

TEST_F(ReplayCli, ReplayAgainstAndTestGateOnDrift) {
  auto id = recorded_run();
  auto same = cadre({"replay", id, "--against", workflow_});
  EXPECT_EQ(same.exit_code, 0) << same.err << joined(same.out);
  // A changed system prompt: the recorded reply no longer applies.
  std::string changed_text = triage_yaml;
  auto at = changed_text.find("in one sentence");
  changed_text.replace(at, std::string{"in one sentence"}.size(), "in detail");
  auto changed = tmp_ / "changed.yaml";
  std::ofstream{changed} << changed_text;
  auto drift = cadre({"replay", id, "--against", changed});
  EXPECT_EQ(drift.exit_code, 1) << drift.err;
  auto text = joined(drift.out);
  EXPECT_NE(text.find("DIVERGED"), std::string::npos) << text;
  EXPECT_NE(text.find("agent analyst"), std::string::npos) << text;
  // The same as a CI gate on an exported run.
  auto bundle = tmp_ / "run.ndjson";
  std::ofstream{bundle} << export_of(id);
  auto pass = cadre({"test", bundle, "--workflows", workflow_});
  EXPECT_EQ(pass.exit_code, 0) << pass.err << joined(pass.out);
  auto fail = cadre({"--json", "test", bundle, "--workflows", changed});
  EXPECT_EQ(fail.exit_code, 1) << fail.err << joined(fail.out);
  auto report = json::parse(fail.out.front(), nullptr, false);
  EXPECT_FALSE(report.value("compatible", true)) << fail.out.front();
  EXPECT_EQ(report["divergence"]["task"], "explain") << fail.out.front();
  ASSERT_EQ(model_calls(), 1u);
}

TEST_F(ReplayCli, AForkWithAnotherAnswerReusesTheAgentAndLeavesTheParent) {
  auto id = recorded_run();
  auto before = export_of(id);
  auto plan = cadre_json({"fork", id, "--answer", "approve=no", "--dry-run"});
  EXPECT_EQ(plan["plan"]["to_run"].size(), 1u) << plan.dump();
  EXPECT_EQ(plan["plan"]["to_run"][0]["task"], "act");
  auto listed = cadre_json({"executions"});
  EXPECT_EQ(listed.size(), 1u) << "a dry run writes nothing";

  auto fork = cadre({"--json", "fork", id, "--answer", "approve=no"});
  ASSERT_EQ(fork.exit_code, 0) << fork.err << joined(fork.out);
  auto planned = json::parse(fork.out.front(), nullptr, false);
  auto child = planned["plan"]["id"].get<std::string>();
  auto result = json::parse(fork.out.back(), nullptr, false);
  EXPECT_EQ(result["output"]["act"]["decision"], "no") << fork.out.back();
  EXPECT_EQ(result["output"]["act"]["why"], "The disk was full.");
  // The agent's turn was reused: still one model call.
  EXPECT_EQ(model_calls(), 1u);
  // The parent is untouched, its agent log included.
  EXPECT_EQ(export_of(id), before);

  auto diff = cadre_json({"diff", id, child});
  EXPECT_FALSE(diff["same"].get<bool>());
  EXPECT_EQ(diff["first_a"]["payload"]["output"], "yes") << diff.dump();
  EXPECT_EQ(diff["first_b"]["payload"]["output"], "no") << diff.dump();
  std::map<std::string, std::string> status;
  for (const auto& t : diff["tasks"])
    status[t["task"].get<std::string>()] = t["status"].get<std::string>();
  EXPECT_EQ(status["measure"], "same");
  EXPECT_EQ(status["explain"], "same");
  EXPECT_EQ(status["approve"], "different");
  EXPECT_EQ(status["act"], "different");
  auto self = cadre_json({"diff", id, id});
  EXPECT_TRUE(self["same"].get<bool>());

  // A re-run of the agent asks the model again; bad edits are refused.
  auto rerun = cadre({"fork", id, "--rerun", "explain"});
  EXPECT_EQ(rerun.exit_code, 3) << rerun.err << joined(rerun.out);
  EXPECT_EQ(model_calls(), 2u);
  auto bad = cadre({"fork", id, "--set", "tasks.nope.output=1"});
  EXPECT_EQ(bad.exit_code, 2);
  EXPECT_NE(bad.err.find("no task 'nope'"), std::string::npos) << bad.err;
}

TEST_F(ReplayCli, ExportAndImportGiveTheSameState) {
  auto id = recorded_run();
  auto bundle = tmp_ / "run.ndjson";
  std::ofstream{bundle} << export_of(id);
  auto imported = cadre({"import", bundle}, "other");
  ASSERT_EQ(imported.exit_code, 0) << imported.err;
  EXPECT_EQ(cadre_json({"inspect", id}, "other"), cadre_json({"inspect", id}));
  auto n = cadre_json({"inspect", id})["seq"].get<uint64_t>();
  for (uint64_t seq = 1; seq <= n; seq += 3)
    EXPECT_EQ(cadre_json({"inspect", id, "--at", std::to_string(seq)}, "other"),
              cadre_json({"inspect", id, "--at", std::to_string(seq)}));
  EXPECT_EQ(export_of(id, "other"), export_of(id));
  // Twice is refused; a damaged bundle names its line.
  auto again = cadre({"import", bundle}, "other");
  EXPECT_EQ(again.exit_code, 1);
  EXPECT_NE(again.err.find("already in the store"), std::string::npos);
  auto broken = tmp_ / "broken.ndjson";
  auto text = export_of(id);
  std::ofstream{broken} << text.substr(0, text.find('\n') + 1) << "{oops\n";
  auto refused = cadre({"import", broken}, "third");
  EXPECT_EQ(refused.exit_code, 2);
  EXPECT_NE(refused.err.find("broken.ndjson:2"), std::string::npos)
    << refused.err;
}

TEST_F(ReplayCli, SnapshotsServeInspectAndRecoveryWithTheSameState) {
  use_config("store:\n  snapshot_every: 2\n");
  auto run = cadre({"--json", "run", workflow_, "--input",
                    R"({"text": "job 7 failed"})"});
  ASSERT_EQ(run.exit_code, 3) << run.err << joined(run.out);
  auto id = json::parse(run.out.back(), nullptr, false)["id"]
              .get<std::string>();
  // A snapshot per two events, in its own log, never in the execution's.
  auto snap = cadre({"--json", "events", "snapshot:" + id + "/2"});
  ASSERT_EQ(snap.exit_code, 0) << snap.err;
  auto first = json::parse(snap.out.front(), nullptr, false);
  EXPECT_EQ(first["type"], "snapshot");
  EXPECT_GE(first["payload"]["seq"].get<uint64_t>(), 4u);
  auto events = cadre({"--json", "events", id});
  for (const auto& line : events.out)
    EXPECT_EQ(line.find("\"type\":\"snapshot\""), std::string::npos);
  // `cadre input` recovers the coordinator from the newest snapshot.
  auto answered = cadre({"--json", "--log-level", "debug", "input", id,
                         "approve", "yes"});
  ASSERT_EQ(answered.exit_code, 0) << answered.err << joined(answered.out);
  EXPECT_NE(answered.err.find("recovering from a snapshot"), std::string::npos)
    << answered.err;
  auto result = json::parse(answered.out.back(), nullptr, false);
  EXPECT_EQ(result["output"]["act"]["decision"], "yes");
  EXPECT_EQ(result["output"]["act"]["why"], "The disk was full.");
  EXPECT_EQ(model_calls(), 1u);
  // The state at every event is the same from snapshots as from the log.
  auto n = cadre_json({"inspect", id})["seq"].get<uint64_t>();
  std::vector<json> from_snapshots;
  for (uint64_t seq = 1; seq <= n; ++seq)
    from_snapshots.push_back(
      cadre_json({"inspect", id, "--at", std::to_string(seq)}));
  use_config("store:\n  snapshot_every: 0\n");
  for (uint64_t seq = 1; seq <= n; ++seq)
    EXPECT_EQ(cadre_json({"inspect", id, "--at", std::to_string(seq)}),
              from_snapshots[seq - 1])
      << "at " << seq;
}
