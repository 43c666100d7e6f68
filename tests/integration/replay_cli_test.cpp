// Replay debugging as a person does it, with real `cadre` processes on a
// store on disk and an agent on a counting model server: inspect every
// event, check definitions against the log, fork with an edit, diff, export
// and import, and gate on recorded runs with `cadre test`; then the same
// over the HTTP API of `cadre serve` (and the CLI as its client).

#include <sys/wait.h>

#include <chrono>
#include <csignal>
#include <fstream>
#include <map>
#include <memory>
#include <optional>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "cadre/messages/json_value.hpp"
#include "cadre_process.hpp"
#include "cadre_server.hpp"
#include "fake_llm_server.hpp"
#include "temp_dir.hpp"

using namespace cadre;

namespace {

using test::outcome;
using std::chrono::seconds;

constexpr seconds command_limit{60};

// A server may close a connection while a test still writes a body (413).
[[maybe_unused]] const bool sigpipe_ignored = [] {
  ::signal(SIGPIPE, SIG_IGN);
  return true;
}();

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
  ASSERT_FALSE(fail.out.empty()) << fail.err;
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

const char* two_turns_yaml = R"yaml(name: two-turns
version: "1"
agents:
  analyst:
    system: You explain failures in one sentence.
    stream: false
tasks:
  - id: first
    agent: analyst
    input: "What failed in job 7?"
  - id: second
    depends_on: first
    agent: analyst
    input: "And what should we do about it?"
)yaml";

TEST_F(ReplayCli, AForkRemembersTheAgentsTurnsBeforeTheForkPoint) {
  auto file = tmp_ / "two.yaml";
  std::ofstream{file} << two_turns_yaml;
  auto run = cadre({"--json", "run", file});
  ASSERT_EQ(run.exit_code, 0) << run.err << joined(run.out);
  auto id = json::parse(run.out.back(), nullptr, false)["id"]
              .get<std::string>();
  ASSERT_EQ(model_calls(), 2u);
  auto before = export_of(id);
  auto fork = cadre({"--json", "fork", id, "--rerun", "second"});
  ASSERT_EQ(fork.exit_code, 0) << fork.err << joined(fork.out);
  auto child = json::parse(fork.out.front(), nullptr, false)["plan"]["id"]
                 .get<std::string>();
  // The re-run turn asked the model with the first turn in its memory.
  auto got = model_.exchanges();
  ASSERT_EQ(got.size(), 3u);
  std::string sent = got.back().body;
  EXPECT_NE(sent.find("What failed in job 7?"), std::string::npos) << sent;
  EXPECT_NE(sent.find("The disk was full."), std::string::npos) << sent;
  EXPECT_NE(sent.find("And what should we do about it?"), std::string::npos);
  // The fork's agent log starts with the parent's first turn; the parent
  // is untouched.
  auto agent = cadre({"--json", "events", "agent:" + child + "/analyst"});
  ASSERT_EQ(agent.exit_code, 0) << agent.err;
  auto first = json::parse(agent.out.front(), nullptr, false);
  EXPECT_EQ(first["payload"]["turn"], id + "/first/1");
  EXPECT_EQ(export_of(id), before);
}

const char* two_inputs_yaml = R"yaml(name: two-inputs
version: "1"
agents:
  analyst:
    system: You explain failures in one sentence.
    stream: false
tasks:
  - id: first
    agent: analyst
    input: "What failed in {{ input.job }}?"
  - id: second
    depends_on: first
    agent: analyst
    input: "Tell {{ input.who }} what to do."
)yaml";

// The llm_responded events of an agent log, as {turn, reused}.
std::vector<std::pair<std::string, bool>>
replies_in(const std::vector<std::string>& lines) {
  std::vector<std::pair<std::string, bool>> out;
  for (const auto& line : lines) {
    auto ev = json::parse(line, nullptr, false);
    if (ev.is_discarded() || ev["type"] != "llm_responded")
      continue;
    out.emplace_back(ev["payload"]["turn"].get<std::string>(),
                     ev["payload"].value("reused", false));
  }
  return out;
}

TEST_F(ReplayCli, AForkAfterALateEditAsksTheModelOnlyForTheChangedTurn) {
  auto file = tmp_ / "inputs.yaml";
  std::ofstream{file} << two_inputs_yaml;
  auto run = cadre({"--json", "run", file, "--input",
                    R"({"job": "job 7", "who": "ops"})"});
  ASSERT_EQ(run.exit_code, 0) << run.err << joined(run.out);
  auto id = json::parse(run.out.back(), nullptr, false)["id"]
              .get<std::string>();
  ASSERT_EQ(model_calls(), 2u);
  auto before = export_of(id);
  // Forked at the submission, so both turns run again; only the second
  // one's prompt changed.
  auto fork = cadre({"--json", "fork", id, "--at", "1", "--input",
                     R"({"job": "job 7", "who": "dev"})"});
  ASSERT_EQ(fork.exit_code, 0) << fork.err << joined(fork.out);
  auto child = json::parse(fork.out.front(), nullptr, false)["plan"]["id"]
                 .get<std::string>();
  auto got = model_.exchanges();
  ASSERT_EQ(got.size(), 3u);
  EXPECT_NE(got.back().body.find("Tell dev what to do."), std::string::npos);
  auto agent = cadre({"--json", "events", "agent:" + child + "/analyst"});
  ASSERT_EQ(agent.exit_code, 0) << agent.err;
  EXPECT_EQ(replies_in(agent.out),
            (std::vector<std::pair<std::string, bool>>{
              {child + "/first/1", true}, {child + "/second/1", false}}))
    << joined(agent.out);
  EXPECT_EQ(export_of(id), before);
  // A request that differs in anything asks: another system prompt.
  auto changed = tmp_ / "changed.yaml";
  std::string yaml = two_inputs_yaml;
  yaml.replace(yaml.find("one sentence"), 12, "two sentences");
  std::ofstream{changed} << yaml;
  auto other = cadre({"--json", "fork", id, "--at", "1", "--definition",
                      changed});
  ASSERT_EQ(other.exit_code, 0) << other.err << joined(other.out);
  EXPECT_EQ(model_calls(), 5u);
}

TEST_F(ReplayCli, AForkBranchesAnAgentsSharedMemoryAndLeavesItAlone) {
  auto file = tmp_ / "shared.yaml";
  std::string yaml = two_turns_yaml;
  yaml.replace(yaml.find("    stream: false"), 17,
               "    stream: false\n    memory: {scope: agent}");
  std::ofstream{file} << yaml;
  auto run = cadre({"--json", "run", file});
  ASSERT_EQ(run.exit_code, 0) << run.err << joined(run.out);
  auto id = json::parse(run.out.back(), nullptr, false)["id"]
              .get<std::string>();
  ASSERT_EQ(model_calls(), 2u);
  auto shared = cadre({"--json", "events", "agent:analyst"});
  ASSERT_EQ(shared.exit_code, 0) << shared.err;
  ASSERT_EQ(replies_in(shared.out).size(), 2u) << joined(shared.out);
  auto before = export_of(id);
  auto fork = cadre({"--json", "fork", id, "--rerun", "second"});
  ASSERT_EQ(fork.exit_code, 0) << fork.err << joined(fork.out);
  auto child = json::parse(fork.out.front(), nullptr, false)["plan"]["id"]
                 .get<std::string>();
  // The re-run turn asked the model anew, remembering the first turn.
  auto got = model_.exchanges();
  ASSERT_EQ(got.size(), 3u);
  EXPECT_NE(got.back().body.find("What failed in job 7?"), std::string::npos);
  EXPECT_NE(got.back().body.find("The disk was full."), std::string::npos);
  // It wrote the fork's own branch; the shared log is byte for byte as it
  // was, and so is the parent.
  auto branch = cadre({"--json", "events", "agent:" + child + "/analyst"});
  ASSERT_EQ(branch.exit_code, 0) << branch.err;
  EXPECT_EQ(replies_in(branch.out),
            (std::vector<std::pair<std::string, bool>>{
              {id + "/first/1", false}, {child + "/second/1", false}}))
    << joined(branch.out);
  auto after = cadre({"--json", "events", "agent:analyst"});
  EXPECT_EQ(joined(after.out), joined(shared.out));
  EXPECT_EQ(export_of(id), before);
}

// Retries make many events for few tasks: the shape of execution whose
// state is small beside its log, which snapshots are for.
const char* flaky_yaml = R"yaml(name: flaky
version: "1"
tasks:
  - id: upload
    tool: fail
    input: {times: 14, message: storage is briefly unavailable}
    retry: {max_attempts: 15, backoff: 1ms, jitter: 0}
  - id: approve
    depends_on: upload
    kind: human
    prompt: "Publish after {{ tasks.upload.output.attempt }} attempts?"
  - id: done
    depends_on: approve
    tool: echo
    input: {approved: "{{ tasks.approve.output }}"}
)yaml";

TEST_F(ReplayCli, SnapshotsServeInspectAndRecoveryWithTheSameState) {
  use_config("store:\n  snapshot_every: 4\n");
  auto file = tmp_ / "flaky.yaml";
  std::ofstream{file} << flaky_yaml;
  auto run = cadre({"--json", "run", file});
  ASSERT_EQ(run.exit_code, 3) << run.err << joined(run.out);
  auto id = json::parse(run.out.back(), nullptr, false)["id"]
              .get<std::string>();
  // Snapshots in their own logs, never in the execution's.
  std::vector<uint64_t> snapshot_seqs;
  for (uint64_t k = 1; k <= 10; ++k) {
    auto snap = cadre({"--json", "events",
                       "snapshot:" + id + "/" + std::to_string(k)});
    if (snap.exit_code != 0)
      continue;
    auto first = json::parse(snap.out.front(), nullptr, false);
    EXPECT_EQ(first["type"], "snapshot");
    auto seq = first["payload"]["seq"].get<uint64_t>();
    EXPECT_GE(seq, k * 4);
    snapshot_seqs.push_back(seq);
  }
  ASSERT_FALSE(snapshot_seqs.empty());
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
  EXPECT_EQ(result["output"]["done"]["approved"], "yes");
  EXPECT_EQ(result["output"]["upload"]["attempt"], 15);
  // The state at every event is the same from snapshots as from the log.
  auto n = cadre_json({"inspect", id})["seq"].get<uint64_t>();
  ASSERT_GT(n, snapshot_seqs.back());
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

// -- the same over HTTP ---------------------------------------------------------

namespace {

/// The replay routes of `cadre serve` on the store the CLI tests record
/// into; the CLI reads the same store read-only while the server holds it.
class ReplayHttp : public ReplayCli {
protected:
  std::unique_ptr<test::cadre_server> serve(const std::string& db = "db") {
    auto s = std::make_unique<test::cadre_server>(tmp_ / db,
                                                  std::vector<std::string>{},
                                                  env());
    EXPECT_TRUE(s->ok());
    return s;
  }

  // The execution once it no longer runs (bounded, not timed).
  json finished(const test::cadre_server& s, const std::string& id) {
    json x;
    for (auto deadline = test::clock_type::now() + command_limit;
         test::clock_type::now() < deadline;
         std::this_thread::sleep_for(std::chrono::milliseconds{20})) {
      x = test::get(s, "/v1/executions/" + id);
      if (x.value("status", "running") != "running")
        break;
    }
    return x;
  }

  static httplib::Result send(const test::cadre_server& s,
                              const std::string& method,
                              const std::string& path,
                              const std::string& body = "",
                              const std::string& type = "application/json") {
    auto c = s.client();
    httplib::Request req;
    req.method = method;
    req.path = path;
    if (!body.empty() || method == "POST") {
      req.body = body;
      req.set_header("Content-Type", type);
    }
    return c.send(req);
  }
};

// A problem document with `status`, whose detail has `names` in it.
void expect_problem(const httplib::Result& r, int status,
                    const std::string& names,
                    const std::string& pointer = "") {
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, status) << r->body;
  EXPECT_EQ(r->get_header_value("Content-Type"), "application/problem+json");
  auto p = json::parse(r->body, nullptr, false);
  ASSERT_TRUE(p.is_object()) << r->body;
  EXPECT_EQ(p.value("status", 0), status);
  EXPECT_NE(p.value("detail", std::string{}).find(names), std::string::npos)
    << r->body;
  if (!pointer.empty()) {
    EXPECT_EQ(p.value("pointer", std::string{}), pointer) << r->body;
  }
}

} // namespace

TEST_F(ReplayHttp, StateAtEveryEventIsWhatInspectPrints) {
  auto id = recorded_run();
  auto s = serve();
  auto n = cadre_json({"inspect", id})["seq"].get<uint64_t>();
  ASSERT_GE(n, 8u);
  bool saw_agent = false;
  for (uint64_t seq = 1; seq <= n; ++seq) {
    int status = 0;
    auto over_http = test::get(*s, "/v1/executions/" + id
                                     + "/state?at=" + std::to_string(seq),
                               &status);
    ASSERT_EQ(status, 200) << over_http.dump();
    // The CLI reads the store beside the server, read-only.
    EXPECT_EQ(over_http,
              cadre_json({"inspect", id, "--at", std::to_string(seq)}))
      << "at " << seq;
    saw_agent = saw_agent || over_http.contains("agents");
  }
  EXPECT_TRUE(saw_agent);
  EXPECT_EQ(test::get(*s, "/v1/executions/" + id + "/state"),
            cadre_json({"inspect", id}));
  // The CLI as a client prints the same.
  EXPECT_EQ(cadre_json({"--server", s->url(), "inspect", id, "--at", "5"}),
            cadre_json({"inspect", id, "--at", "5"}));
  // Past the end, an unknown execution, a bad number.
  auto c = s->client();
  expect_problem(c.Get(("/v1/executions/" + id + "/state?at="
                        + std::to_string(n + 1))
                         .c_str()),
                 404, "has " + std::to_string(n) + " events");
  expect_problem(c.Get("/v1/executions/nope/state"), 404, "'nope'");
  expect_problem(c.Get(("/v1/executions/" + id + "/state?at=seven").c_str()),
                 400, "at");
  auto past = cadre({"--server", s->url(), "inspect", id, "--at",
                     std::to_string(n + 1)});
  EXPECT_EQ(past.exit_code, 2);
  EXPECT_NE(past.err.find("has " + std::to_string(n) + " events"),
            std::string::npos)
    << past.err;
  ASSERT_EQ(model_calls(), 1u); // reading asks no model
}

TEST_F(ReplayHttp, ForkWithEditsRunsWhatTheEditsReach) {
  auto id = recorded_run();
  auto before = export_of(id);
  auto s = serve();
  auto fork_path = "/v1/executions/" + id + "/fork";
  // A dry run plans and writes nothing.
  auto dry = send(*s, "POST", fork_path,
                  R"({"answers": {"approve": "no"}, "dry_run": true})");
  ASSERT_TRUE(dry);
  ASSERT_EQ(dry->status, 200) << dry->body;
  auto plan = json::parse(dry->body);
  EXPECT_EQ(plan["id"], "");
  ASSERT_EQ(plan["to_run"].size(), 1u) << plan.dump();
  EXPECT_EQ(plan["to_run"][0]["task"], "act");
  EXPECT_EQ(test::get(*s, "/v1/executions")["executions"].size(), 1u);
  // A corrected tool result and answer: the agent's turn is reused.
  auto r = send(*s, "POST", fork_path,
                json{{"outputs", {{"explain", "The quota was hit."}}},
                     {"answers", {{"approve", "no"}}}}
                  .dump());
  ASSERT_TRUE(r);
  ASSERT_EQ(r->status, 201) << r->body;
  plan = json::parse(r->body);
  auto child = plan["id"].get<std::string>();
  EXPECT_EQ(r->get_header_value("Location"), "/v1/executions/" + child);
  auto done = finished(*s, child);
  EXPECT_EQ(done["status"], "completed") << done.dump();
  EXPECT_EQ(done["output"]["act"]["decision"], "no") << done.dump();
  EXPECT_EQ(done["output"]["act"]["why"], "The quota was hit.");
  // A new definition as YAML text: the human task's prompt changed, so it
  // asks again.
  std::string changed = triage_yaml;
  changed.replace(changed.find("Act on:"), 7, "Really act on:");
  r = send(*s, "POST", fork_path, json{{"definition", changed}}.dump());
  ASSERT_TRUE(r);
  ASSERT_EQ(r->status, 201) << r->body;
  plan = json::parse(r->body);
  EXPECT_EQ(plan["waiting"], json::array({"approve"})) << plan.dump();
  EXPECT_EQ(finished(*s, plan["id"].get<std::string>())["status"],
            "waiting");
  // The CLI as a client forks and follows the fork to its end.
  auto cli = cadre({"--server", s->url(), "--json", "fork", id, "--answer",
                    "approve=maybe"});
  ASSERT_EQ(cli.exit_code, 0) << cli.err << joined(cli.out);
  auto result = json::parse(cli.out.back(), nullptr, false);
  EXPECT_EQ(result["output"]["act"]["decision"], "maybe") << cli.out.back();
  EXPECT_EQ(model_calls(), 1u);
  // Bad edits are refused, naming what is wrong and where.
  auto refuse = [&](const json& body, int status, const std::string& names,
                    const std::string& pointer) {
    expect_problem(send(*s, "POST", fork_path, body.dump()), status, names,
                   pointer);
  };
  refuse(json{{"outputs", {{"nope", 1}}}}, 422, "no task 'nope'",
         "/outputs/nope");
  refuse(json{{"rerun", json::array({"explain", "zz"})}}, 422,
         "no task 'zz'", "/rerun/1");
  refuse(json{{"answers", {{"act", "yes"}}}}, 422, "not a human task",
         "/answers/act");
  refuse(json{{"at", 999}}, 404, "cannot fork at 999", "");
  refuse(json{{"at", "3"}}, 400, "at:", "/at");
  refuse(json{{"rerun", "explain"}}, 400, "rerun", "/rerun");
  refuse(json{{"dry-run", true}}, 400, "unknown field 'dry-run'", "/dry-run");
  refuse(json{{"definition", "name: triage\ntasks:\n  - id: a\n    tool: "
                             "nope\n"}},
         422, "unknown tool 'nope'", "/definition/tasks/0/tool");
  refuse(json{{"workflow", "unstored"}}, 404, "unstored", "");
  expect_problem(send(*s, "POST", "/v1/executions/nope/fork", "{}"), 404,
                 "'nope'");
  auto bad = cadre({"--server", s->url(), "fork", id, "--set",
                    "tasks.nope.output=1"});
  EXPECT_EQ(bad.exit_code, 2);
  EXPECT_NE(bad.err.find("no task 'nope'"), std::string::npos) << bad.err;
  // The parent is untouched, its agent log included.
  s.reset();
  EXPECT_EQ(export_of(id), before);
}

TEST_F(ReplayHttp, DiffAndExportAreWhatTheCliPrints) {
  auto id = recorded_run();
  auto s = serve();
  auto r = send(*s, "POST", "/v1/executions/" + id + "/fork",
                R"({"answers": {"approve": "no"}})");
  ASSERT_TRUE(r);
  ASSERT_EQ(r->status, 201) << r->body;
  auto child = json::parse(r->body)["id"].get<std::string>();
  ASSERT_EQ(finished(*s, child)["status"], "completed");
  int status = 0;
  auto diff = test::get(*s, "/v1/executions/" + id + "/diff/" + child,
                        &status);
  ASSERT_EQ(status, 200) << diff.dump();
  EXPECT_FALSE(diff["same"].get<bool>());
  EXPECT_EQ(diff, cadre_json({"diff", id, child}));
  EXPECT_EQ(cadre_json({"--server", s->url(), "diff", id, child}), diff);
  EXPECT_TRUE(
    test::get(*s, "/v1/executions/" + id + "/diff/" + id)["same"].get<bool>());
  auto c = s->client();
  expect_problem(c.Get(("/v1/executions/" + id + "/diff/nope").c_str()), 404,
                 "'nope'");
  // The export is the CLI's bytes, whichever way it is asked for.
  auto exported = c.Get(("/v1/executions/" + id + "/export").c_str());
  ASSERT_TRUE(exported);
  ASSERT_EQ(exported->status, 200) << exported->body;
  EXPECT_EQ(exported->get_header_value("Content-Type"),
            "application/x-ndjson");
  EXPECT_EQ(exported->body, export_of(id));
  auto client = cadre({"--server", s->url(), "export", id});
  ASSERT_EQ(client.exit_code, 0) << client.err;
  EXPECT_EQ(joined(client.out), export_of(id));
  expect_problem(c.Get("/v1/executions/nope/export"), 404, "'nope'");
}

TEST_F(ReplayHttp, ExportImportedIntoAnotherServerHasTheSameState) {
  auto id = recorded_run();
  auto bundle = export_of(id);
  auto s = serve();
  auto other = serve("other");
  auto r = send(*other, "POST", "/v1/imports", bundle, "application/x-ndjson");
  ASSERT_TRUE(r);
  ASSERT_EQ(r->status, 201) << r->body;
  EXPECT_EQ(r->get_header_value("Location"), "/v1/executions/" + id);
  auto imported = json::parse(r->body);
  EXPECT_EQ(imported["execution"], id);
  EXPECT_EQ(imported["status"], "completed");
  EXPECT_EQ(imported["agent_logs"], 1);
  auto n = test::get(*s, "/v1/executions/" + id + "/state")["seq"]
             .get<uint64_t>();
  EXPECT_EQ(imported["events"], n);
  for (uint64_t seq = 1; seq <= n; seq += 2) {
    auto path = "/v1/executions/" + id + "/state?at=" + std::to_string(seq);
    EXPECT_EQ(test::get(*other, path), test::get(*s, path)) << "at " << seq;
  }
  auto again = other->client().Get(("/v1/executions/" + id + "/export")
                                      .c_str());
  ASSERT_TRUE(again);
  EXPECT_EQ(again->body, bundle);
  // Twice is a conflict; a damaged bundle names its line; only NDJSON.
  expect_problem(send(*other, "POST", "/v1/imports", bundle,
                      "application/x-ndjson"),
                 409, "already in the store");
  auto damaged = bundle.substr(0, bundle.find('\n') + 1) + "{oops\n";
  auto bad = send(*other, "POST", "/v1/imports", damaged,
                  "application/x-ndjson");
  expect_problem(bad, 400, "body:2:");
  EXPECT_EQ(json::parse(bad->body)["line"], 2);
  expect_problem(send(*other, "POST", "/v1/imports", bundle,
                      "application/json"),
                 415, "application/x-ndjson");
  // The CLI as a client: its file is checked, then sent.
  auto file = tmp_ / "run.ndjson";
  std::ofstream{file} << bundle;
  auto cli = cadre({"--server", other->url(), "import", file});
  EXPECT_EQ(cli.exit_code, 1);
  EXPECT_NE(cli.err.find("already in the store"), std::string::npos)
    << cli.err;
  auto third = serve("third");
  auto ok = cadre({"--server", third->url(), "--json", "import", file});
  ASSERT_EQ(ok.exit_code, 0) << ok.err;
  EXPECT_EQ(json::parse(ok.out.back())["type"], "imported");
  EXPECT_EQ(test::get(*third, "/v1/executions/" + id + "/state"),
            test::get(*s, "/v1/executions/" + id + "/state"));
}

TEST_F(ReplayHttp, ImportsRespectTheBodyLimitAndScopes) {
  auto id = recorded_run();
  auto bundle = export_of(id);
  auto cfg = tmp_ / "cadre.yaml";
  std::ofstream{cfg} << "server:\n  max_body_bytes: 256\n";
  test::cadre_server s{tmp_ / "small",
                       {"--config", cfg},
                       {"CADRE_API_TOKENS=reader-1:read,writer-2:read+write"}};
  ASSERT_TRUE(s.ok());
  auto call = [&](const std::string& method, const std::string& path,
                  const std::string& token, const std::string& body,
                  const std::string& type) {
    auto c = s.client();
    c.set_bearer_token_auth(token.c_str());
    httplib::Request req;
    req.method = method;
    req.path = path;
    req.body = body;
    if (!body.empty())
      req.set_header("Content-Type", type);
    return c.send(req);
  };
  ASSERT_GT(bundle.size(), 256u);
  expect_problem(call("POST", "/v1/imports", "writer-2", bundle,
                      "application/x-ndjson"),
                 413, "server.max_body_bytes");
  expect_problem(call("POST", "/v1/imports", "reader-1", "{}\n",
                      "application/x-ndjson"),
                 403, "write");
  expect_problem(call("POST", "/v1/executions/" + id + "/fork", "reader-1",
                      "{}", "application/json"),
                 403, "write");
  // Reading is the read scope's (this store has no such execution).
  expect_problem(call("GET", "/v1/executions/" + id + "/state", "reader-1",
                      "", ""),
                 404, id);
  expect_problem(call("POST", "/v1/executions/" + id + "/fork", "writer-2",
                      "{}", "application/json"),
                 404, id);
}
