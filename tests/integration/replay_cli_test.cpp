// Replay debugging as a person does it, with real `cadre` processes on a
// store on disk and an agent on a counting model server: inspect every
// event, check definitions against the log, fork with an edit, diff, export
// and import, and gate on recorded runs with `cadre test`; then the same
// over the HTTP API of `cadre serve` (and the CLI as its client).

#include <sys/wait.h>

#include <chrono>
#include <filesystem>
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
#include "cadre/persistence/event_store.hpp"
#include "cadre/workflow/agent_machine.hpp"
#include "cadre_process.hpp"
#include "cadre_server.hpp"
#include "fake_llm_server.hpp"
#include "pty_process.hpp"
#include "temp_dir.hpp"

using namespace cadre;

namespace {

using test::outcome;
using std::chrono::seconds;

#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
// Sanitized builds run 5 to 15 times slower (a big import under TSan takes
// minutes); the limit only ends a command that hangs.
constexpr seconds command_limit{600};
#else
constexpr seconds command_limit{60};
#endif

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

// A model reply saying `text`.
test::llm_reply says(const std::string& text) {
  return test::json_reply(
    {{"id", "chatcmpl-x"},
     {"object", "chat.completion"},
     {"created", 1700000000},
     {"model", "fake-analyst"},
     {"choices",
      {{{"index", 0},
        {"message", {{"role", "assistant"}, {"content", text}}},
        {"finish_reason", "stop"}}}},
     {"usage",
      {{"prompt_tokens", 50}, {"completion_tokens", 6},
       {"total_tokens", 56}}}});
}

class ReplayCli : public ::testing::Test {
protected:
  void SetUp() override {
    model_.push(says("The disk was full."));
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
    auto doc = json::parse(res.last_line(), nullptr, false);
    EXPECT_FALSE(doc.is_discarded()) << res.last_line();
    return doc;
  }

  // Runs the triage workflow to its human task and answers it: the
  // parent execution every test starts from.
  std::string recorded_run() {
    auto run = cadre({"--json", "run", workflow_, "--input",
                      R"({"text": "job 7 failed"})"});
    EXPECT_EQ(run.exit_code, 3) << run.err << joined(run.out);
    auto result = json::parse(run.last_line(), nullptr, false);
    auto id = result.value("id", std::string{});
    EXPECT_FALSE(id.empty()) << run.last_line();
    auto answered = cadre({"input", id, "approve", "yes"});
    EXPECT_EQ(answered.exit_code, 0) << answered.err;
    return id;
  }

  // Runs the two-turns workflow to its end: its execution id.
  std::string two_turns_run() {
    auto file = tmp_ / "two.yaml";
    std::ofstream{file} << two_turns_yaml;
    auto run = cadre({"--json", "run", file});
    EXPECT_EQ(run.exit_code, 0) << run.err << joined(run.out);
    if (run.out.empty())
      return {};
    return json::parse(run.last_line(), nullptr, false)
      .value("id", std::string{});
  }

  // Runs a map of `items` echo items to its end: its execution id.
  std::string map_run(int items) {
    auto file = tmp_ / "fan.yaml";
    std::ofstream{file} << R"yaml(name: fan
version: "1"
tasks:
  - id: each
    items: input.jobs
    concurrency: 2
    tool: echo
    input: {job: "{{ item }}"}
  - id: report
    depends_on: each
    tool: echo
    input: {all: "{{ tasks.each.output }}"}
)yaml";
    json jobs = json::array();
    for (int i = 0; i < items; ++i)
      jobs.push_back("job " + std::to_string(i));
    auto run = cadre({"--json", "run", file, "--input",
                      json{{"jobs", jobs}}.dump()});
    EXPECT_EQ(run.exit_code, 0) << run.err << joined(run.out);
    if (run.out.empty())
      return {};
    return json::parse(run.last_line(), nullptr, false)
      .value("id", std::string{});
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

TEST_F(ReplayCli, SteppingOnATerminalShowsWhatThePipedReplayShows) {
  // A map run: its items move one event at a time.
  auto id = map_run(5);
  ASSERT_FALSE(id.empty());
  // Piped: a line per event, what the event changed.
  auto piped = cadre({"replay", id});
  ASSERT_EQ(piped.exit_code, 0) << piped.err;
  const auto n = piped.out.size();
  ASSERT_GT(n, 12u) << joined(piped.out);
  test::pty_process walk{{"--db", tmp_ / "db", "replay", id}};
  ASSERT_TRUE(walk.ok()) << walk.error();
  auto deadline = test::clock_type::now() + command_limit;
  auto prompt = [n](size_t at) {
    return "[" + std::to_string(at) + "/" + std::to_string(n) + "] > ";
  };
  // What the terminal shows between typing `cmd` and prompt `at`: the
  // step's line, without the echo of what was typed.
  auto step = [&](const std::string& cmd, size_t at) -> std::string {
    auto from = walk.shown().size();
    if (!cmd.empty())
      walk.type(cmd);
    if (!walk.expect(prompt(at), deadline))
      return "(no prompt " + prompt(at) + ")";
    auto text = walk.shown().substr(from, walk.shown().rfind(prompt(at))
                                            - from);
    std::string out;
    std::istringstream lines{text};
    for (std::string line; std::getline(lines, line);) {
      if (!line.empty() && line.back() == '\r')
        line.pop_back();
      if (!line.empty() && line != cmd)
        out = line;
    }
    return out;
  };
  ASSERT_EQ(step("", 1), piped.out[0]) << walk.shown();
  // Forward through the map's items, then back and forward again: each
  // step shows what the piped replay says of its event.
  for (size_t at = 2; at <= n; ++at)
    ASSERT_EQ(step("n", at), piped.out[at - 1]) << "forward to " << at;
  for (size_t at = n - 1; at >= n - 6; --at)
    ASSERT_EQ(step("b", at), piped.out[at - 1]) << "back to " << at;
  ASSERT_EQ(step("n", n - 5), piped.out[n - 6]) << "forward again";
  ASSERT_EQ(step("g 3", 3), piped.out[2]) << "jump back";
  ASSERT_EQ(step("b", 2), piped.out[1]);
  ASSERT_EQ(step("n", 3), piped.out[2]);
  ASSERT_EQ(step("g " + std::to_string(n), n), piped.out[n - 1]);
  EXPECT_EQ(step("t report", n), "no later event of task 'report'");
  walk.type("q");
  auto st = walk.wait_until(deadline);
  ASSERT_TRUE(st) << walk.shown();
  EXPECT_TRUE(WIFEXITED(*st) && WEXITSTATUS(*st) == 0) << walk.shown();
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
  auto result = json::parse(fork.last_line(), nullptr, false);
  EXPECT_EQ(result["output"]["act"]["decision"], "no") << fork.last_line();
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

TEST_F(ReplayCli, ADryRunNamesTheToolsThatDeclareSideEffects) {
  // `file` writes outside the call, `echo` does not: the dry run says so
  // from what each tool declares, as it would for an embedder's tool.
  auto root = tmp_ / "files";
  std::filesystem::create_directories(root);
  auto file = tmp_ / "notes.yaml";
  std::ofstream{file} << R"yaml(name: notes
version: "1"
tasks:
  - id: note
    tool: file
    input: {op: write, path: note.txt, content: "{{ input.text }}"}
  - id: greet
    tool: echo
    input: {text: "{{ input.text }}"}
)yaml";
  const std::string file_tool = "tools:\n  file: {root: " + root + "}\n";
  use_config(file_tool);
  auto run = cadre({"--json", "run", file, "--input", R"({"text": "a"})"});
  ASSERT_EQ(run.exit_code, 0) << run.err << joined(run.out);
  auto id = json::parse(run.last_line(), nullptr, false)
              .value("id", std::string{});
  const std::vector<std::string> fork = {"fork", id, "--input",
                                         R"({"text": "b"})", "--dry-run"};
  auto plan = cadre_json(fork)["plan"];
  std::map<std::string, json> marked;
  for (const auto& r : plan["to_run"])
    marked[r["task"].get<std::string>()] = r.value("side_effects", json());
  EXPECT_EQ(marked, (std::map<std::string, json>{{"greet", false},
                                                 {"note", true}}))
    << plan.dump();
  auto text = cadre(fork);
  ASSERT_EQ(text.exit_code, 0) << text.err;
  auto printed = joined(text.out);
  EXPECT_NE(printed.find("note (file, side effects)"), std::string::npos)
    << printed;
  EXPECT_NE(printed.find("greet (echo)"), std::string::npos) << printed;
  // A tool this node has no pool of may have side effects for all it knows.
  use_config(file_tool + "  echo: {enabled: false}\n");
  text = cadre(fork);
  ASSERT_EQ(text.exit_code, 0) << text.err;
  printed = joined(text.out);
  EXPECT_NE(printed.find("greet (echo, side effects)"), std::string::npos)
    << printed;
  std::ifstream note{root + "/note.txt"};
  std::string written;
  std::getline(note, written);
  EXPECT_EQ(written, "a") << "a dry run writes nothing";
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
  // Its line and column, and what the parser found there.
  EXPECT_NE(refused.err.find("broken.ndjson:2:2: not a JSON object: syntax "
                             "error while parsing object key"),
            std::string::npos)
    << refused.err;
  // A byte that is not UTF-8 is named where it is.
  std::ofstream{broken} << text.substr(0, text.find('\n') + 1)
                        << "{\"log\": \"caf\xe9\"}\n";
  refused = cadre({"import", broken}, "third");
  EXPECT_EQ(refused.exit_code, 2);
  EXPECT_NE(refused.err.find("broken.ndjson:2:13: not a JSON object: not "
                             "valid UTF-8"),
            std::string::npos)
    << refused.err;
}


// The logs of a store on disk, as they are: (last seq of `log`, whether the
// index has execution `id`).
std::pair<uint64_t, bool> stored(const std::string& db, const std::string& log,
                                 const std::string& id) {
  persistence::store_options opts;
  opts.dir = db;
  opts.read_only = true;
  auto store = persistence::event_store::open(opts);
  EXPECT_TRUE(store) << to_string(store.error());
  if (!store)
    return {0, false};
  auto last = (*store)->last_seq(log);
  EXPECT_TRUE(last);
  return {last ? *last : 0, static_cast<bool>((*store)->get(id))};
}

// Nothing of an import of execution `id` with agent log `agent` is in the
// store `db`: neither log, nor the record of what it created.
void expect_nothing_imported(const std::string& db, const std::string& id,
                             const std::string& agent) {
  EXPECT_EQ(stored(db, agent, id), std::make_pair(uint64_t{0}, false));
  EXPECT_EQ(stored(db, id, id), std::make_pair(uint64_t{0}, false));
  EXPECT_EQ(stored(db, "import:" + id, id),
            std::make_pair(uint64_t{0}, false));
}

// The export of a two-turns run, its agent log then extended to
// `agent_events` events (its own events again, renumbered), written to
// `path`: a bundle far bigger than what an import may hold.
struct big_bundle {
  std::string text;  // the export as it was
  std::string agent; // its agent log
  uint64_t events = 0; // of the execution's log
  std::streamoff before_last = 0; // where its last line starts
};

big_bundle write_big_bundle(std::string text, uint64_t agent_events,
                            const std::string& path) {
  big_bundle b;
  b.text = std::move(text);
  std::istringstream lines{b.text};
  std::string line;
  std::getline(lines, line);
  auto head = json::parse(line);
  EXPECT_EQ(head["logs"].size(), 1u) << line;
  if (head["logs"].size() != 1)
    return b;
  b.agent = head["logs"][0].get<std::string>();
  std::vector<json> turns;
  while (std::getline(lines, line)) {
    auto ev = json::parse(line);
    if (ev["log"] == b.agent)
      turns.push_back(std::move(ev));
    else
      ++b.events;
  }
  EXPECT_FALSE(turns.empty());
  std::ofstream out{path};
  out << b.text;
  for (auto seq = turns.size() + 1; !turns.empty() && seq <= agent_events;
       ++seq) {
    auto ev = turns[seq % turns.size()];
    ev["seq"] = seq;
    b.before_last = out.tellp();
    out << ev.dump() << '\n';
  }
  return b;
}

TEST_F(ReplayCli, ImportStreamsABigBundleAndLeavesNothingOfOneThatFails) {
  auto id = two_turns_run();
  ASSERT_FALSE(id.empty());
  const uint64_t agent_events = 200000;
  auto big = tmp_ / "big.ndjson";
  const auto [text, agent, events, before_last] =
    write_big_bundle(export_of(id), agent_events, big);
  ASSERT_FALSE(agent.empty());
  const auto bytes = std::filesystem::file_size(big);
  // What an import of the run as it was takes, for comparison.
  std::ofstream{tmp_ / "small.ndjson"} << text;
  auto small = cadre({"import", tmp_ / "small.ndjson"}, "small");
  ASSERT_EQ(small.exit_code, 0) << small.err;
  auto imported = cadre({"--json", "import", big}, "big");
  ASSERT_EQ(imported.exit_code, 0) << imported.err;
  auto result = json::parse(imported.last_line());
  EXPECT_EQ(result["events"], events);
  EXPECT_EQ(result["agent_logs"], 1);
  EXPECT_EQ(stored(tmp_ / "big", agent, id),
            std::make_pair(agent_events, true));
  EXPECT_EQ(stored(tmp_ / "big", id, id), std::make_pair(events, true));
  // Its peak memory: what importing the run alone takes, the store's write
  // buffer (64 MiB of events at most) and one batch, not the bundle. Held
  // whole, this bundle's 61 MB of text took 525 MiB (measured before
  // import streamed); streaming, about 100 MiB.
  std::printf("import of %llu bytes: peak %ld KiB (%ld KiB for the run "
              "alone)\n",
              static_cast<unsigned long long>(bytes), imported.max_rss_kib,
              small.max_rss_kib);
  EXPECT_GT(bytes, 50'000'000u);
#if !defined(__SANITIZE_ADDRESS__) && !defined(__SANITIZE_THREAD__)
  // Not under a sanitizer: its quarantine of freed blocks (256 MiB under
  // ASan) and redzones around each of a JSON tree's small nodes say nothing
  // of what a release build holds.
  EXPECT_LT(imported.max_rss_kib, small.max_rss_kib + 160 * 1024)
    << "bundle of " << bytes << " bytes";
#endif
  // Broken at its last line: refused naming it, and nothing of it stays
  // (the execution's log and the agent log were written before that line).
  const auto last = std::to_string(events + agent_events + 1);
  std::filesystem::resize_file(big, static_cast<uintmax_t>(before_last));
  std::ofstream{big, std::ios::app} << "{\"log\": \"" << agent
                                    << "\", oops\n";
  auto refused = cadre({"import", big}, "broken");
  EXPECT_EQ(refused.exit_code, 2);
  // Named by line and column: where `oops` begins.
  EXPECT_NE(refused.err.find("big.ndjson:" + last + ":"
                             + std::to_string(agent.size() + 13)
                             + ": not a JSON object: syntax error"),
            std::string::npos)
    << refused.err;
  expect_nothing_imported(tmp_ / "broken", id, agent);
  auto inspect = cadre({"inspect", id}, "broken");
  EXPECT_EQ(inspect.exit_code, 2) << joined(inspect.out);
  // And the run imports there afterwards, nothing in its way.
  auto again = cadre({"import", tmp_ / "small.ndjson"}, "broken");
  EXPECT_EQ(again.exit_code, 0) << again.err;
}

TEST_F(ReplayCli, ALineOverTheLimitIsRefusedNotHeld) {
  // A line without end (a damaged or hostile bundle, over HTTP too) would
  // be held whole: past 64 MiB it is an error naming it.
  auto id = two_turns_run();
  ASSERT_FALSE(id.empty());
  auto text = export_of(id);
  auto file = tmp_ / "endless.ndjson";
  {
    std::ofstream out{file, std::ios::binary};
    out << text.substr(0, text.find('\n') + 1) << "{\"log\": \"";
    std::string block(1 << 20, 'x');
    for (int i = 0; i < 65; ++i)
      out << block;
  }
  auto refused = cadre({"import", file}, "endless");
  EXPECT_EQ(refused.exit_code, 2);
  EXPECT_NE(refused.err.find("endless.ndjson:2: a line of over 67108864 "
                             "bytes"),
            std::string::npos)
    << refused.err;
}

TEST_F(ReplayCli, AnImportKilledHalfWayIsRemovedByTheNextWhichImportsIt) {
  // A kill -9 of `cadre import` could not clean up: its events stayed
  // (under the execution's id, without an index entry, and in the agent
  // logs it created), a later import of it was refused or, when only an
  // agent log had been written, kept that half as a log the store had. The
  // next node start removes them.
  auto id = two_turns_run();
  ASSERT_FALSE(id.empty());
  const uint64_t agent_events = 200000;
  auto big = tmp_ / "big.ndjson";
  const auto [text, agent, events, before_last] =
    write_big_bundle(export_of(id), agent_events, big);
  ASSERT_FALSE(agent.empty());
  auto two = tmp_ / "two.yaml";
  // Each round on a store of its own, with an unrelated run in it; kills
  // the import once it has written a few batches of the agent log (a
  // round whose import finished first tells nothing).
  std::string db;
  std::string other;
  std::string other_text;
  bool landed = false;
  for (int round = 0; round < 5 && !landed; ++round) {
    db = "kill" + std::to_string(round);
    auto ran = cadre({"--json", "run", two}, db);
    ASSERT_EQ(ran.exit_code, 0) << ran.err;
    other = json::parse(ran.last_line()).value("id", std::string{});
    other_text = export_of(other, db);
    test::cadre_process p{{"--db", tmp_ / db, "import", big},
                          tmp_ / "killed-err", env()};
    ASSERT_TRUE(p.ok()) << p.what();
    auto deadline = test::clock_type::now() + command_limit;
    while (!p.exited() && test::clock_type::now() < deadline
           && stored(tmp_ / db, agent, id).first < 3 * 1024)
      std::this_thread::sleep_for(std::chrono::milliseconds{5});
    p.kill_now();
    auto [written, indexed] = stored(tmp_ / db, agent, id);
    landed = written > 0 && !indexed;
  }
  ASSERT_TRUE(landed) << "every import finished before its kill";
  // What the kill left: events of the execution, not in the index, and
  // the import's record of them.
  EXPECT_GT(stored(tmp_ / db, "import:" + id, id).first, 0u);
  const auto said = "import of execution '" + id + "' was killed half-way";
  // `cadre repair` (on a copy) removes them as well, rather than take them
  // for an execution to index.
  std::filesystem::copy(tmp_ / db, tmp_ / "repaired",
                        std::filesystem::copy_options::recursive);
  auto repaired = cadre({"repair"}, "repaired");
  EXPECT_EQ(repaired.exit_code, 0) << repaired.err << joined(repaired.out);
  EXPECT_NE(joined(repaired.out).find(said), std::string::npos)
    << joined(repaired.out);
  EXPECT_EQ(stored(tmp_ / "repaired", agent, id),
            std::make_pair(uint64_t{0}, false));
  EXPECT_EQ(stored(tmp_ / "repaired", "import:" + id, id).first, 0u);
  // The next import removes them, says so, and imports the bundle whole.
  auto again = cadre({"--json", "import", big}, db);
  ASSERT_EQ(again.exit_code, 0) << again.err;
  EXPECT_NE(again.err.find(said + ": removed"), std::string::npos)
    << again.err;
  auto result = json::parse(again.last_line());
  EXPECT_EQ(result["events"], events);
  EXPECT_EQ(result["agent_logs"], 1);
  // Not kept as a log the store had: it was the killed import's half.
  EXPECT_FALSE(result.contains("skipped_agent_logs")) << result.dump();
  EXPECT_EQ(stored(tmp_ / db, agent, id), std::make_pair(agent_events, true));
  EXPECT_EQ(stored(tmp_ / db, id, id), std::make_pair(events, true));
  EXPECT_EQ(stored(tmp_ / db, "import:" + id, id).first, 0u);
  // The execution's state is the original run's (its agents' conversation
  // aside: the bundle's agent log is the longer one).
  auto state = [&](const std::string& in) {
    auto res = cadre({"--json", "inspect", id}, in);
    EXPECT_EQ(res.exit_code, 0) << res.err;
    auto v = res.out.empty() ? json{} : json::parse(res.last_line());
    if (v.is_object())
      v.erase("agents");
    return v;
  };
  auto original = state("db");
  EXPECT_EQ(state(db), original);
  EXPECT_EQ(original["status"], "completed") << original.dump();
  // The unrelated run and its agent log are as they were.
  EXPECT_EQ(export_of(other, db), other_text);
}

TEST_F(ReplayCli, AnImportThatFailsAfterItsFirstBatchesLeavesNothing) {
  // A map of 1,500 items: 3,006 events, more than a batch.
  auto id = map_run(1500);
  ASSERT_FALSE(id.empty());
  auto text = export_of(id);
  std::vector<std::string> lines;
  std::istringstream in{text};
  for (std::string line; std::getline(in, line);)
    lines.push_back(line);
  ASSERT_GT(lines.size(), 3000u);
  auto write = [&](const std::string& name) {
    auto path = tmp_ / name;
    std::ofstream out{path};
    for (const auto& line : lines)
      out << line << '\n';
    return path;
  };
  // The lines as a bundle `name`, refused: it says `what` at its line.
  auto refused = [&](const std::string& name, const std::string& what) {
    auto res = cadre({"import", write(name)}, "other");
    EXPECT_EQ(res.exit_code, 2);
    EXPECT_NE(res.err.find(name + ":" + what), std::string::npos) << res.err;
    EXPECT_EQ(stored(tmp_ / "other", id, id),
              std::make_pair(uint64_t{0}, false));
  };
  // An event that does not fold at line 2,500: the events before it were
  // written, and are removed.
  auto ev = json::parse(lines[2499]);
  ev["payload"]["task"] = "nope";
  auto good = lines[2499];
  lines[2499] = ev.dump();
  refused("bad.ndjson", "2500: execution " + id + " does not fold");
  // A bundle whose first events are not its execution's is refused at
  // once.
  lines[2499] = good;
  lines.insert(lines.begin() + 1,
               R"({"log":"agent:x","payload":{},"seq":1,"time_us":1,)"
               R"("type":"agent_message"})");
  refused("first.ndjson",
          "2: the events of execution " + id + " must come first");
  // Mended, it imports whole.
  lines.erase(lines.begin() + 1);
  auto done = cadre({"--json", "import", write("ok.ndjson")}, "other");
  ASSERT_EQ(done.exit_code, 0) << done.err;
  EXPECT_EQ(json::parse(done.last_line())["events"], lines.size() - 1);
  EXPECT_EQ(export_of(id, "other"), text);
}

TEST_F(ReplayCli, AForkRemembersTheAgentsTurnsBeforeTheForkPoint) {
  auto id = two_turns_run();
  ASSERT_FALSE(id.empty());
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
  // The fork's agent log starts with the spec the parent's first turn
  // names, then that turn; the parent is untouched.
  auto agent = cadre({"--json", "events", "agent:" + child + "/analyst"});
  ASSERT_EQ(agent.exit_code, 0) << agent.err;
  ASSERT_GE(agent.out.size(), 2u);
  auto spec = json::parse(agent.out[0], nullptr, false);
  EXPECT_EQ(spec["type"], "agent_spec");
  EXPECT_EQ(spec["payload"]["spec"]["system"],
            "You explain failures in one sentence.");
  auto first = json::parse(agent.out[1], nullptr, false);
  EXPECT_EQ(first["type"], "agent_turn_started");
  EXPECT_EQ(first["payload"]["turn"], id + "/first/1");
  EXPECT_EQ(first["payload"]["spec_id"], spec["payload"]["spec_id"]);
  EXPECT_EQ(export_of(id), before);
}

// `bundle` (an export) as a build from before agent specs and requests were
// recorded apart wrote it: no agent_spec events, each agent_turn_started
// holding its spec inline, each llm_requested its request whole.
std::string in_the_older_format(const std::string& bundle) {
  std::istringstream in{bundle};
  std::string line;
  std::string out;
  std::map<std::string, std::map<uint64_t, json>> specs; // log -> id -> spec
  std::map<std::string, workflow::agent_request_log> requests;
  std::map<std::string, uint64_t> seq;
  bool header = true;
  while (std::getline(in, line)) {
    auto j = json::parse(line, nullptr, false);
    if (header || j.is_discarded()) {
      header = false;
      out += line + "\n";
      continue;
    }
    auto log = j["log"].get<std::string>();
    auto& p = j["payload"];
    if (j["type"] == "agent_spec") {
      specs[log][p["spec_id"].get<uint64_t>()] = p["spec"];
      continue;
    }
    if (j["type"] == "agent_turn_started") {
      p["spec"] = specs[log].at(p["spec_id"].get<uint64_t>());
      p.erase("spec_id");
    }
    if (j["type"] == "llm_requested") {
      const auto* whole = requests[log].apply(
        event{log, j["seq"].get<uint64_t>(), 0, "llm_requested",
              json_value{p}});
      if (!whole) {
        ADD_FAILURE() << "a request that does not read: " << line;
        return {};
      }
      p.erase("delta");
      p["request"] = *whole;
    }
    j["seq"] = ++seq[log];
    out += j.dump() + "\n";
  }
  return out;
}

// A run recorded by an older build (its agent log in the format of then)
// imports, inspects, exports and forks as it did.
TEST_F(ReplayCli, AnOldFormatAgentLogStillImportsInspectsExportsAndForks) {
  auto id = two_turns_run();
  ASSERT_FALSE(id.empty());
  auto current = export_of(id);
  ASSERT_NE(current.find("\"delta\":{"), std::string::npos);
  auto old = in_the_older_format(current);
  ASSERT_NE(old, current);
  ASSERT_EQ(old.find("agent_spec"), std::string::npos);
  ASSERT_EQ(old.find("\"delta\":{"), std::string::npos);
  ASSERT_NE(old.find("\"spec\":{"), std::string::npos);
  auto bundle = tmp_ / "old.ndjson";
  std::ofstream{bundle} << old;
  auto imported = cadre({"import", bundle}, "old");
  ASSERT_EQ(imported.exit_code, 0) << imported.err;
  // The same state; the agent log's seqs differ by the spec events.
  auto unnumbered = [](json state) {
    for (auto& [name, conversation] : state["agents"].items())
      for (auto& entry : conversation)
        entry.erase("seq");
    return state;
  };
  auto state = cadre_json({"inspect", id}, "old");
  ASSERT_TRUE(state.contains("agents")) << state.dump();
  EXPECT_EQ(unnumbered(state), unnumbered(cadre_json({"inspect", id})));
  EXPECT_EQ(export_of(id, "old"), old);
  // A fork re-running the second turn remembers the first, asking the
  // model with the old log's spec.
  ASSERT_EQ(model_calls(), 2u);
  model_.push(says("Free some space."));
  auto fork = cadre({"--json", "fork", id, "--rerun", "second"}, "old");
  ASSERT_EQ(fork.exit_code, 0) << fork.err << joined(fork.out);
  auto got = model_.exchanges();
  ASSERT_EQ(got.size(), 3u);
  std::string sent = got.back().body;
  EXPECT_NE(sent.find("You explain failures in one sentence."),
            std::string::npos) << sent;
  EXPECT_NE(sent.find("The disk was full."), std::string::npos) << sent;
  auto result = json::parse(fork.last_line(), nullptr, false);
  EXPECT_EQ(result["status"], "completed") << fork.last_line();
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
  auto id = json::parse(run.last_line(), nullptr, false)["id"]
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
  auto id = json::parse(run.last_line(), nullptr, false)["id"]
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
  auto id = json::parse(run.last_line(), nullptr, false)["id"]
              .get<std::string>();
  // Snapshots in their own logs, never in the execution's.
  std::vector<uint64_t> snapshot_seqs;
  // Each is named by the multiple of 4 it holds the state at (or just past).
  for (uint64_t n = 4; n <= 40; n += 4) {
    auto snap = cadre({"--json", "events",
                       "snapshot:" + id + "/" + std::to_string(n)});
    if (snap.exit_code != 0)
      continue;
    auto first = json::parse(snap.out.front(), nullptr, false);
    EXPECT_EQ(first["type"], "snapshot");
    auto seq = first["payload"]["seq"].get<uint64_t>();
    EXPECT_GE(seq, n);
    EXPECT_LT(seq, n + 4);
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
  auto result = json::parse(answered.last_line(), nullptr, false);
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
  EXPECT_EQ(plan["to_run"][0]["side_effects"], false) << "echo says so";
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
  auto result = json::parse(cli.last_line(), nullptr, false);
  EXPECT_EQ(result["output"]["act"]["decision"], "maybe") << cli.last_line();
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
  expect_problem(bad, 400,
                 "body:2:2: not a JSON object: syntax error while parsing "
                 "object key");
  EXPECT_EQ(json::parse(bad->body)["line"], 2);
  EXPECT_EQ(json::parse(bad->body)["column"], 2);
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
  EXPECT_EQ(json::parse(ok.last_line())["type"], "imported");
  EXPECT_EQ(test::get(*third, "/v1/executions/" + id + "/state"),
            test::get(*s, "/v1/executions/" + id + "/state"));
}

namespace {

// A server's peak resident set (KiB), once stopped: SIGTERM (in-flight
// requests finish first), then its exit.
long stopped_peak_kib(test::cadre_server& s) {
  s.proc().signal(SIGTERM);
  auto st = s.proc().wait_until(test::clock_type::now() + command_limit);
  EXPECT_TRUE(st) << "cadre serve did not stop";
  return s.proc().usage().ru_maxrss;
}

// POST /v1/imports of the first `sent` bytes of `file`, the head declaring
// all of it; then the client waits for the answer (`stall`: the server
// gives up after its read_timeout) or goes away. Returns the answer.
std::string cut_import(int port, const std::string& file, size_t sent,
                       bool stall) {
  int fd = test::connect_to(port);
  EXPECT_GE(fd, 0);
  if (fd < 0)
    return {};
  auto head = "POST /v1/imports HTTP/1.1\r\nHost: 127.0.0.1\r\n"
              "Content-Type: application/x-ndjson\r\nContent-Length: "
              + std::to_string(std::filesystem::file_size(file))
              + "\r\n\r\n";
  auto send_all = [fd](const char* data, size_t n) {
    while (n > 0) {
      auto k = ::send(fd, data, n, MSG_NOSIGNAL);
      if (k <= 0)
        return false;
      data += k;
      n -= static_cast<size_t>(k);
    }
    return true;
  };
  EXPECT_TRUE(send_all(head.data(), head.size()));
  std::ifstream in{file, std::ios::binary};
  std::vector<char> buf(1 << 16);
  while (sent > 0 && in) {
    in.read(buf.data(), static_cast<std::streamsize>(
                          std::min(buf.size(), sent)));
    auto n = static_cast<size_t>(in.gcount());
    if (n == 0 || !send_all(buf.data(), n))
      break;
    sent -= n;
  }
  std::string answer;
  if (stall) {
    char c[4096];
    for (ssize_t n; (n = ::recv(fd, c, sizeof c, 0)) > 0;)
      answer.append(c, static_cast<size_t>(n));
  }
  ::close(fd);
  return answer;
}

} // namespace

TEST_F(ReplayHttp, ACliImportStreamsABigBundleAndACutUploadLeavesNothing) {
  // `cadre --server URL import` read the bundle whole and checked it in
  // memory, and the server took the body whole, at most
  // server.max_body_bytes: a bundle of gigabytes could not be imported over
  // HTTP. The client now sends it from the file and the server imports it
  // as it arrives.
  auto id = two_turns_run();
  ASSERT_FALSE(id.empty());
  // Bigger than the local import's: held whole, and copied once as the
  // import's stream, its text alone would break the server's bound twice.
  const uint64_t agent_events = 300000;
  auto big = tmp_ / "big.ndjson";
  const auto [text, agent, events, before_last] =
    write_big_bundle(export_of(id), agent_events, big);
  ASSERT_FALSE(agent.empty());
  const auto bytes = std::filesystem::file_size(big);
  EXPECT_GT(bytes, 80'000'000u);
  // What importing the run as it was takes, client and server.
  std::ofstream{tmp_ / "small.ndjson"} << text;
  auto small_server = serve("small");
  auto small = cadre({"--server", small_server->url(), "import",
                      tmp_ / "small.ndjson"});
  ASSERT_EQ(small.exit_code, 0) << small.err;
  const auto small_peak = stopped_peak_kib(*small_server);
  auto s = serve("big");
  auto imported = cadre({"--server", s->url(), "--json", "import", big});
  ASSERT_EQ(imported.exit_code, 0) << imported.err;
  auto result = json::parse(imported.last_line());
  EXPECT_EQ(result["events"], events);
  EXPECT_EQ(result["agent_logs"], 1);
  const auto peak = stopped_peak_kib(*s);
  EXPECT_EQ(stored(tmp_ / "big", agent, id),
            std::make_pair(agent_events, true));
  EXPECT_EQ(stored(tmp_ / "big", id, id), std::make_pair(events, true));
  std::printf("import of %llu bytes over HTTP: client peak %ld KiB (%ld for "
              "the run alone), server peak %ld KiB (%ld)\n",
              static_cast<unsigned long long>(bytes), imported.max_rss_kib,
              small.max_rss_kib, peak, small_peak);
#if !defined(__SANITIZE_ADDRESS__) && !defined(__SANITIZE_THREAD__)
  // Not under a sanitizer (see ImportStreamsABigBundle...). The client
  // holds a line (measured: as much as for the run alone); held whole, the
  // file alone is 87 MB and the bundle read back as events several times
  // that. The server holds what the local import does, the store's write
  // buffer and a batch (measured: 79 MiB over the run alone), not the
  // body.
  EXPECT_LT(imported.max_rss_kib, small.max_rss_kib + 32 * 1024)
    << "bundle of " << bytes << " bytes";
  EXPECT_LT(peak, small_peak + 160 * 1024) << "bundle of " << bytes
                                           << " bytes";
#endif
  // Cut off half way, batches of the agent log written by then: a located
  // error, and nothing of it in the store. (httplib writes no answer to a
  // client that closed its sending side: this one stalls instead.)
  auto cfg = tmp_ / "stall.yaml";
  // The drain lets the cut imports' clean-up finish however slow the build
  // (a sanitizer's), as long as a command may take.
  std::ofstream{cfg} << "server:\n  read_timeout: 2s\n  drain_timeout: "
                     << command_limit.count() << "s\n";
  auto cut = std::make_unique<test::cadre_server>(
    tmp_ / "cut", std::vector<std::string>{"--config", cfg}, env());
  ASSERT_TRUE(cut->ok());
  const size_t half = bytes / 2;
  std::string head(half, '\0');
  std::ifstream{big, std::ios::binary}.read(head.data(),
                                            static_cast<std::streamsize>(half));
  const auto lines = std::count(head.begin(), head.end(), '\n');
  ASSERT_NE(head.back(), '\n');
  auto answer = cut_import(cut->port(), big, half, true);
  EXPECT_EQ(answer.substr(0, 12), "HTTP/1.1 400") << answer.substr(0, 400);
  EXPECT_NE(answer.find("body:" + std::to_string(lines + 1)
                        + ": the bundle ended early: the request body "
                          "stopped after "
                        + std::to_string(half) + " bytes"),
            std::string::npos)
    << answer.substr(0, 600);
  EXPECT_NE(answer.find("\"line\":" + std::to_string(lines + 1)),
            std::string::npos)
    << answer.substr(0, 600);
  expect_nothing_imported(tmp_ / "cut", id, agent);
  // A client gone half way (no answer to read): the same, once the server
  // has stopped (it lets requests in hand finish).
  cut_import(cut->port(), big, half, false);
  stopped_peak_kib(*cut);
  expect_nothing_imported(tmp_ / "cut", id, agent);
  // And the run imports there afterwards, nothing in its way.
  cut.reset();
  cut = serve("cut");
  auto again = cadre({"--server", cut->url(), "import",
                      tmp_ / "small.ndjson"});
  EXPECT_EQ(again.exit_code, 0) << again.err;
}

TEST_F(ReplayHttp, ImportsRespectTheirBodyLimitAndScopes) {
  auto id = recorded_run();
  auto bundle = export_of(id);
  auto cfg = tmp_ / "cadre.yaml";
  // An import is read as it arrives: its own limit, not max_body_bytes'.
  std::ofstream{cfg} << "server:\n  max_body_bytes: 256\n"
                        "  max_import_bytes: " << bundle.size() << "\n";
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
  const auto limit = std::to_string(bundle.size());
  // One byte more (an empty line) is over.
  expect_problem(call("POST", "/v1/imports", "writer-2", bundle + "\n",
                      "application/x-ndjson"),
                 413,
                 "the limit is " + limit + " (server.max_import_bytes)");
  // Sent in chunks, its length not declared: stopped once over.
  {
    auto c = s.client();
    c.set_bearer_token_auth("writer-2");
    auto over = bundle + "\n";
    auto r = c.Post(
      "/v1/imports",
      [&over](size_t offset, httplib::DataSink& sink) {
        if (offset < over.size())
          sink.write(over.data() + offset,
                     std::min<size_t>(100, over.size() - offset));
        else
          sink.done();
        return true;
      },
      "application/x-ndjson");
    expect_problem(r, 413,
                   "over " + limit + " bytes (server.max_import_bytes)");
  }
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
  // At the limit, far over max_body_bytes: imported.
  auto r = call("POST", "/v1/imports", "writer-2", bundle,
                "application/x-ndjson");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 201) << r->body;
}

// -- forks of forks, exported forks, map items -----------------------------------

namespace {

// two_turns_yaml with a third turn, its agent's memory shared (scope
// `agent`).
std::string three_turns_yaml() {
  std::string yaml = two_turns_yaml;
  yaml.replace(yaml.find("    stream: false"), 17,
               "    stream: false\n    memory: {scope: agent}");
  return yaml + "  - id: third\n    depends_on: second\n    agent: analyst\n"
                "    input: \"Who should do it?\"\n";
}

const char* map_of_turns_yaml = R"yaml(name: per-job
version: "1"
agents:
  analyst:
    system: You explain failures in one sentence.
    stream: false
    memory: {scope: task}
tasks:
  - id: explain
    items: input.jobs
    concurrency: 1
    agent: analyst
    input: "Why did {{ item }} fail?"
  - id: report
    depends_on: explain
    tool: echo
    input: {why: "{{ tasks.explain.output }}"}
)yaml";

class ReplayForks : public ReplayCli {
protected:
  // The id of an execution printed by `cadre --json run|fork`.
  static std::string id_in(const outcome& res, bool fork) {
    auto doc = json::parse(fork ? res.out.front() : res.last_line(), nullptr,
                           false);
    return fork ? doc["plan"]["id"].get<std::string>()
                : doc["id"].get<std::string>();
  }

  // The seq of the event of `type` for task `task` in log `log`.
  uint64_t seq_of(const std::string& log, const std::string& type,
                  const std::string& task) {
    auto res = cadre({"--json", "events", log});
    EXPECT_EQ(res.exit_code, 0) << res.err;
    for (const auto& line : res.out) {
      auto ev = json::parse(line, nullptr, false);
      if (!ev.is_discarded() && ev["type"] == type
          && ev["payload"].value("task", "") == task)
        return ev["seq"].get<uint64_t>();
    }
    ADD_FAILURE() << "no " << type << " of " << task << " in " << log;
    return 0;
  }

  std::string events_of(const std::string& log, const std::string& db = "db") {
    auto res = cadre({"--json", "events", log}, db);
    EXPECT_EQ(res.exit_code, 0) << res.err;
    return joined(res.out);
  }
};

} // namespace

TEST_F(ReplayForks, AForkOfAForkRemembersWhatItsParentHadAndChangesNeither) {
  for (const char* text : {"Free some space.", "Ops should.",
                           "Grow the disk.", "Dev should.", "Nobody."})
    model_.push(says(text));
  auto file = tmp_ / "three.yaml";
  std::ofstream{file} << three_turns_yaml();
  auto run = cadre({"--json", "run", file});
  ASSERT_EQ(run.exit_code, 0) << run.err << joined(run.out);
  auto p = id_in(run, false);
  ASSERT_EQ(model_calls(), 3u);
  // f1 forks p after its first turn and runs the second (and so the
  // third) again: "Grow the disk.", "Dev should.".
  auto f1_run = cadre({"--json", "fork", p, "--at",
                       std::to_string(seq_of(p, "task_completed", "first")),
                       "--rerun", "second"});
  ASSERT_EQ(f1_run.exit_code, 0) << f1_run.err << joined(f1_run.out);
  auto f1 = id_in(f1_run, true);
  ASSERT_EQ(model_calls(), 5u);
  auto p_before = export_of(p);
  auto f1_before = export_of(f1);
  auto shared_before = events_of("agent:analyst");
  auto f1_memory_before = events_of("agent:" + f1 + "/analyst");
  // f2 forks f1 after f1's second turn and asks the third again.
  auto f2_run = cadre({"--json", "fork", f1, "--at",
                       std::to_string(seq_of(f1, "task_completed", "second")),
                       "--rerun", "third"});
  ASSERT_EQ(f2_run.exit_code, 0) << f2_run.err << joined(f2_run.out);
  auto f2 = id_in(f2_run, true);
  auto got = model_.exchanges();
  ASSERT_EQ(got.size(), 6u);
  // Its memory is f1's at the fork point: p's first turn (which f1 took
  // over) and f1's own second; not p's later turns, nor f1's third.
  const auto& sent = got.back().body;
  for (const char* had : {"What failed in job 7?", "The disk was full.",
                          "And what should we do about it?", "Grow the disk.",
                          "Who should do it?"})
    EXPECT_NE(sent.find(had), std::string::npos) << had << "\n" << sent;
  for (const char* not_had : {"Free some space.", "Ops should.",
                              "Dev should."})
    EXPECT_EQ(sent.find(not_had), std::string::npos) << not_had << "\n"
                                                     << sent;
  EXPECT_EQ(sent.find("Who should do it?"), sent.rfind("Who should do it?"))
    << "asked once: " << sent;
  auto memory = cadre({"--json", "events", "agent:" + f2 + "/analyst"});
  ASSERT_EQ(memory.exit_code, 0) << memory.err;
  EXPECT_EQ(replies_in(memory.out),
            (std::vector<std::pair<std::string, bool>>{
              {p + "/first/1", false},
              {f1 + "/second/1", false},
              {f2 + "/third/1", false}}))
    << joined(memory.out);
  // Neither ancestor changed, byte for byte, nor the shared log.
  EXPECT_EQ(export_of(p), p_before);
  EXPECT_EQ(export_of(f1), f1_before);
  EXPECT_EQ(events_of("agent:analyst"), shared_before);
  EXPECT_EQ(events_of("agent:" + f1 + "/analyst"), f1_memory_before);
}

TEST_F(ReplayForks, AnExportedForkCarriesItsRecordedReplies) {
  auto file = tmp_ / "inputs.yaml";
  std::ofstream{file} << two_inputs_yaml;
  auto run = cadre({"--json", "run", file, "--input",
                    R"({"job": "job 7", "who": "ops"})"});
  ASSERT_EQ(run.exit_code, 0) << run.err << joined(run.out);
  auto p = id_in(run, false);
  // The fork reuses the first turn's reply and asks for the second.
  auto fork = cadre({"--json", "fork", p, "--at", "1", "--input",
                     R"({"job": "job 7", "who": "dev"})"});
  ASSERT_EQ(fork.exit_code, 0) << fork.err << joined(fork.out);
  auto f1 = id_in(fork, true);
  ASSERT_EQ(model_calls(), 3u);
  auto bundle_text = export_of(f1);
  EXPECT_NE(bundle_text.find(R"("log":"replies:)" + f1 + "\""),
            std::string::npos)
    << bundle_text;
  auto bundle = tmp_ / "fork.ndjson";
  std::ofstream{bundle} << bundle_text;
  // Only the fork goes to the other store, with the logs it uses.
  auto imported = cadre({"import", bundle}, "other");
  ASSERT_EQ(imported.exit_code, 0) << imported.err;
  EXPECT_EQ(cadre_json({"inspect", f1}, "other"), cadre_json({"inspect", f1}));
  EXPECT_EQ(export_of(f1, "other"), bundle_text);
  EXPECT_EQ(events_of("replies:" + f1, "other"), events_of("replies:" + f1));
  auto stepped = cadre({"--json", "replay", f1}, "other");
  EXPECT_EQ(stepped.out, cadre({"--json", "replay", f1}).out);
  // A further fork there, back to the parent's input, reuses the parent's
  // replies that came with the fork: no model is asked. The same as in the
  // original store.
  for (const char* db : {"other", "db"}) {
    auto again = cadre({"--json", "fork", f1, "--at", "1", "--input",
                        R"({"job": "job 7", "who": "ops"})"},
                       db);
    ASSERT_EQ(again.exit_code, 0) << db << again.err << joined(again.out);
    auto f2 = id_in(again, true);
    EXPECT_EQ(model_calls(), 3u) << db;
    auto agent = cadre({"--json", "events", "agent:" + f2 + "/analyst"}, db);
    EXPECT_EQ(replies_in(agent.out),
              (std::vector<std::pair<std::string, bool>>{
                {f2 + "/first/1", true}, {f2 + "/second/1", true}}))
      << db << joined(agent.out);
    auto result = json::parse(again.last_line(), nullptr, false);
    EXPECT_EQ(result["status"], "completed") << again.last_line();
  }
}

TEST_F(ReplayForks, AForkRerunsOrSetsOneItemOfAMap) {
  for (const char* text : {"Job b ran out of memory.", "Job c timed out.",
                           "Job b hit a quota."})
    model_.push(says(text));
  auto file = tmp_ / "map.yaml";
  std::ofstream{file} << map_of_turns_yaml;
  auto run = cadre({"--json", "run", file, "--input",
                    R"({"jobs": ["a", "b", "c"]})"});
  ASSERT_EQ(run.exit_code, 0) << run.err << joined(run.out);
  auto p = id_in(run, false);
  ASSERT_EQ(model_calls(), 3u);
  auto before = export_of(p);
  // The dry run names the one item that runs again, and what reads the map.
  auto plan = cadre_json({"fork", p, "--rerun", "explain[1]", "--dry-run"});
  EXPECT_EQ(plan["plan"]["to_run"],
            json::array({{{"task", "explain[1]"}, {"runs", "agent:analyst"}}}))
    << plan.dump();
  EXPECT_EQ(plan["plan"]["undecided"], json::array({"report"}));
  EXPECT_EQ(model_calls(), 3u);
  auto rerun = cadre({"--json", "fork", p, "--rerun", "explain[1]"});
  ASSERT_EQ(rerun.exit_code, 0) << rerun.err << joined(rerun.out);
  EXPECT_EQ(model_calls(), 4u) << "only that item asks the model";
  auto result = json::parse(rerun.last_line(), nullptr, false);
  EXPECT_EQ(result["output"]["report"]["why"],
            json::array({"The disk was full.", "Job b hit a quota.",
                         "Job c timed out."}))
    << rerun.last_line();
  // Setting an item's result asks no model.
  auto set = cadre({"--json", "fork", p, "--set",
                    R"(tasks.explain[2].output="Job c was cancelled.")"});
  ASSERT_EQ(set.exit_code, 0) << set.err << joined(set.out);
  EXPECT_EQ(model_calls(), 4u);
  result = json::parse(set.last_line(), nullptr, false);
  EXPECT_EQ(result["output"]["report"]["why"][2], "Job c was cancelled.")
    << set.last_line();
  EXPECT_EQ(result["output"]["report"]["why"][1], "Job b ran out of memory.");
  // Refused, naming the item: past the map's end, a task that is no map,
  // an answer to an item that asks no person.
  auto past = cadre({"fork", p, "--rerun", "explain[3]"});
  EXPECT_EQ(past.exit_code, 2);
  EXPECT_NE(past.err.find("map 'explain' has 3 items (0 to 2)"),
            std::string::npos)
    << past.err;
  auto no_map = cadre({"fork", p, "--set", "tasks.report[0].output=1"});
  EXPECT_EQ(no_map.exit_code, 2);
  EXPECT_NE(no_map.err.find("'report' is not a map task"), std::string::npos)
    << no_map.err;
  auto no_person = cadre({"fork", p, "--answer", "explain[0]=yes"});
  EXPECT_EQ(no_person.exit_code, 2);
  EXPECT_NE(no_person.err.find("not a human task"), std::string::npos)
    << no_person.err;
  EXPECT_EQ(export_of(p), before);
}

TEST_F(ReplayHttp, AForkOverHttpNamesOneItemOfAMap) {
  model_.push(says("Job b ran out of memory."));
  model_.push(says("Job b hit a quota."));
  auto file = tmp_ / "map.yaml";
  std::ofstream{file} << map_of_turns_yaml;
  auto run = cadre({"--json", "run", file, "--input",
                    R"({"jobs": ["a", "b"]})"});
  ASSERT_EQ(run.exit_code, 0) << run.err << joined(run.out);
  auto id = json::parse(run.last_line(), nullptr, false)["id"]
              .get<std::string>();
  ASSERT_EQ(model_calls(), 2u);
  auto s = serve();
  auto fork_path = "/v1/executions/" + id + "/fork";
  auto dry = send(*s, "POST", fork_path,
                  R"({"rerun": ["explain[1]"], "dry_run": true})");
  ASSERT_TRUE(dry);
  ASSERT_EQ(dry->status, 200) << dry->body;
  auto plan = json::parse(dry->body);
  EXPECT_EQ(plan["to_run"],
            json::array({{{"task", "explain[1]"}, {"runs", "agent:analyst"}}}))
    << plan.dump();
  EXPECT_EQ(plan["reused"], json::array({"explain[0]"})) << plan.dump();
  auto r = send(*s, "POST", fork_path, R"({"rerun": ["explain[1]"]})");
  ASSERT_TRUE(r);
  ASSERT_EQ(r->status, 201) << r->body;
  auto done = finished(*s, json::parse(r->body)["id"].get<std::string>());
  EXPECT_EQ(done["status"], "completed") << done.dump();
  EXPECT_EQ(done["output"]["report"]["why"],
            json::array({"The disk was full.", "Job b hit a quota."}))
    << done.dump();
  EXPECT_EQ(model_calls(), 3u);
  // Refused where the item is named.
  expect_problem(send(*s, "POST", fork_path,
                      R"({"rerun": ["explain[0]", "explain[2]"]})"),
                 422, "map 'explain' has 2 items (0 to 1)", "/rerun/1");
  expect_problem(send(*s, "POST", fork_path,
                      R"({"outputs": {"report[0]": 1}})"),
                 422, "'report' is not a map task", "/outputs/report[0]");
}

TEST_F(ReplayForks, AnExportedForkCarriesItsAgentsBranchedMemory) {
  // Memory scope `agent`: the fork's memory is its branch of the shared
  // log, which no turn of the fork has written to yet.
  auto file = tmp_ / "shared.yaml";
  std::string yaml = two_turns_yaml;
  yaml.replace(yaml.find("    stream: false"), 17,
               "    stream: false\n    memory: {scope: agent}");
  std::ofstream{file} << yaml;
  auto run = cadre({"--json", "run", file});
  ASSERT_EQ(run.exit_code, 0) << run.err << joined(run.out);
  auto p = id_in(run, false);
  auto fork = cadre({"--json", "fork", p});
  ASSERT_EQ(fork.exit_code, 0) << fork.err << joined(fork.out);
  auto f1 = id_in(fork, true);
  ASSERT_EQ(model_calls(), 2u) << "everything reused";
  auto bundle_text = export_of(f1);
  EXPECT_NE(bundle_text.find(R"("log":"agent:)" + f1 + "/analyst\""),
            std::string::npos)
    << bundle_text;
  auto bundle = tmp_ / "fork.ndjson";
  std::ofstream{bundle} << bundle_text;
  ASSERT_EQ(cadre({"import", bundle}, "other").exit_code, 0);
  EXPECT_EQ(events_of("agent:" + f1 + "/analyst", "other"),
            events_of("agent:" + f1 + "/analyst"));
  // A fork of it there asks its second turn again, remembering the first.
  auto again = cadre({"--json", "fork", f1, "--rerun", "second"}, "other");
  ASSERT_EQ(again.exit_code, 0) << again.err << joined(again.out);
  auto got = model_.exchanges();
  ASSERT_EQ(got.size(), 3u);
  EXPECT_NE(got.back().body.find("What failed in job 7?"), std::string::npos)
    << got.back().body;
  EXPECT_NE(got.back().body.find("The disk was full."), std::string::npos);
}
