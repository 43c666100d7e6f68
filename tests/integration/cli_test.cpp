// The `cadre` command line as a user runs it: exit codes, diagnostics, and
// the read-only commands (`executions`, `events --follow`) beside a running
// `cadre run` that holds the store open for writing.

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <optional>
#include <regex>
#include <sstream>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include <gtest/gtest.h>

#include "cadre/messages/json_value.hpp"
#include "cadre/persistence/event_store.hpp"
#include "cadre_process.hpp"
#include "fake_llm_server.hpp"
#include "temp_dir.hpp"

extern char** environ;

using namespace cadre;

namespace {

using test::cadre_process;
using test::clock_type;
using test::describe_status;
using test::read_file;
using std::chrono::milliseconds;
using std::chrono::seconds;

/// Bound for any one command; generous for a loaded machine.
constexpr seconds command_limit{60};

std::string source_path(const std::string& relative) {
  return std::string{CADRE_SOURCE_DIR} + "/" + relative;
}

using test::outcome;

/// Runs a command to its end, bounded by command_limit.
std::optional<outcome> run(const std::vector<std::string>& args,
                           const std::string& err_file) {
  return test::run_to_end(args, err_file, command_limit);
}

std::string joined(const std::vector<std::string>& lines) {
  std::string out;
  for (const auto& line : lines)
    out += line + "\n";
  return out;
}

/// Parses the one JSON document `executions --json` prints.
std::optional<json> parse_listing(const outcome& res) {
  if (res.out.size() != 1) {
    ADD_FAILURE() << "expected one line of JSON, got:\n" << joined(res.out);
    return std::nullopt;
  }
  auto doc = json::parse(res.out.front(), nullptr, false);
  if (doc.is_discarded() || !doc.is_array()) {
    ADD_FAILURE() << "not a JSON array: " << res.out.front();
    return std::nullopt;
  }
  return doc;
}

/// Three sleeps in a row: long enough to run the readers beside it.
std::string write_slow_workflow(const test::temp_dir& tmp) {
  auto file = tmp / "slow.yaml";
  std::ofstream{file} << "name: slow\n"
                         "version: \"1\"\n"
                         "tasks:\n"
                         "  - id: s1\n"
                         "    tool: sleep\n"
                         "    input: {ms: 400}\n"
                         "  - id: s2\n"
                         "    depends_on: s1\n"
                         "    tool: sleep\n"
                         "    input: {ms: 400}\n"
                         "  - id: s3\n"
                         "    depends_on: s2\n"
                         "    tool: sleep\n"
                         "    input: {ms: 400}\n"
                         "output:\n"
                         "  slept: \"{{ tasks.s3.output.slept_ms }}\"\n";
  return file;
}

/// Temp-dir entries of read-only stores that process `pid` left behind.
size_t secondary_dirs_of(pid_t pid) {
  auto prefix = "cadre-secondary-" + std::to_string(pid) + "-";
  size_t n = 0;
  for (const auto& entry : std::filesystem::directory_iterator{
         std::filesystem::temp_directory_path()})
    if (entry.path().filename().string().rfind(prefix, 0) == 0)
      ++n;
  return n;
}

} // namespace

TEST(Cli, ValidateReportsEveryProblemWithItsPosition) {
  test::temp_dir tmp;
  auto file = source_path("examples/invalid.yaml");
  auto res = run({"validate", file}, tmp / "err");
  ASSERT_TRUE(res);
  EXPECT_EQ(res->exit_code, 2) << res->err;
  // "FILE:LINE:COLUMN: ..." for each problem, then a count.
  std::regex position{R"(^\d+:\d+: )"};
  size_t diagnostics = 0;
  std::istringstream lines{res->err};
  for (std::string line; std::getline(lines, line);)
    if (line.rfind(file + ":", 0) == 0
        && std::regex_search(line.substr(file.size() + 1), position))
      ++diagnostics;
  EXPECT_GE(diagnostics, 5u) << res->err;
}

TEST(Cli, RunOfAMissingFileIsAUsageErrorNamingTheFile) {
  test::temp_dir tmp;
  auto file = tmp / "no-such-workflow.yaml";
  auto res = run({"--db", tmp / "db", "run", file}, tmp / "err");
  ASSERT_TRUE(res);
  EXPECT_EQ(res->exit_code, 2) << res->err;
  EXPECT_NE(res->err.find(file), std::string::npos) << res->err;
}

TEST(Cli, LogFlagsWriteJsonLinesToStderr) {
  test::temp_dir tmp;
  auto res = run({"--db", tmp / "db", "--log-level", "info", "--log-format",
                  "json", "run", source_path("examples/hello.yaml"),
                  "--input", R"({"name":"Ada"})"},
                 tmp / "err");
  ASSERT_TRUE(res);
  EXPECT_EQ(res->exit_code, 0) << res->err;
  std::vector<std::string> msgs;
  std::istringstream lines{res->err};
  for (std::string line; std::getline(lines, line);) {
    if (line.empty() || line[0] != '{')
      continue;
    auto j = json::parse(line, nullptr, false);
    ASSERT_TRUE(j.is_object()) << line;
    EXPECT_TRUE(j["time"].is_string()) << line;
    EXPECT_TRUE(j["level"].is_string()) << line;
    ASSERT_TRUE(j["msg"].is_string()) << line;
    msgs.push_back(j["msg"].get<std::string>());
  }
  EXPECT_NE(std::find(msgs.begin(), msgs.end(), "node started"), msgs.end())
    << res->err;
  EXPECT_NE(std::find(msgs.begin(), msgs.end(), "node stopped"), msgs.end())
    << res->err;
}

TEST(Cli, AnUnknownLogLevelIsAUsageErrorNamingTheFlag) {
  test::temp_dir tmp;
  auto res = run({"--db", tmp / "db", "--log-level", "verbose", "run",
                  source_path("examples/hello.yaml"), "--input",
                  R"({"name":"Ada"})"},
                 tmp / "err");
  ASSERT_TRUE(res);
  EXPECT_EQ(res->exit_code, 2) << res->err;
  EXPECT_NE(res->err.find("--log-level: unknown level 'verbose'"),
            std::string::npos)
    << res->err;
}

TEST(Cli, ReadOnlyCommandsOnAMissingStoreFailWithoutCreatingIt) {
  test::temp_dir tmp;
  auto db = tmp / "db";
  auto res = run({"--db", db, "--json", "executions"}, tmp / "err");
  ASSERT_TRUE(res);
  EXPECT_EQ(res->exit_code, 1) << res->err;
  EXPECT_NE(res->err.find("no cadre store at"), std::string::npos)
    << res->err;
  EXPECT_NE(res->err.find(db), std::string::npos) << res->err;
  EXPECT_FALSE(std::filesystem::exists(db));
}

TEST(Cli, ToolsJsonListsEveryToolWithItsSchemas) {
  test::temp_dir tmp;
  auto res = run({"--json", "tools"}, tmp / "err");
  ASSERT_TRUE(res);
  EXPECT_EQ(res->exit_code, 0) << res->err;
  auto list = parse_listing(*res);
  ASSERT_TRUE(list);
  std::vector<std::string> names;
  for (const auto& t : *list) {
    SCOPED_TRACE(t.dump());
    names.push_back(t.value("name", ""));
    EXPECT_FALSE(t.contains("error"));
    EXPECT_TRUE(t.value("input_schema", json{}).is_object());
    EXPECT_TRUE(t.value("output_schema", json{}).is_object());
    EXPECT_FALSE(t.value("description", "").empty());
  }
  for (const auto* want : {"echo", "fail", "script", "sleep"})
    EXPECT_NE(std::find(names.begin(), names.end(), want), names.end())
      << want;
  EXPECT_TRUE(std::is_sorted(names.begin(), names.end()));
}

TEST(Cli, ToolRunsOneCallAndPrintsItsOutputAsJson) {
  test::temp_dir tmp;
  auto input_file = tmp / "input.json";
  std::ofstream{input_file} << R"({"args": {"xs": [3, 4]},
    "code": "return {sum = args.xs[1] + args.xs[2], n = #args.xs}"})";
  auto res = run({"--json", "tool", "script", "--input", "@" + input_file},
                 tmp / "err");
  ASSERT_TRUE(res);
  EXPECT_EQ(res->exit_code, 0) << res->err;
  ASSERT_EQ(res->out.size(), 1u) << joined(res->out);
  EXPECT_EQ(json::parse(res->out.front(), nullptr, false),
            (json{{"sum", 7}, {"n", 2}}));
}

TEST(Cli, ToolFailureUnknownToolAndBadInputAreNamed) {
  test::temp_dir tmp;
  auto failed = run({"tool", "fail", "--input", R"({"times": 1})"},
                    tmp / "err1");
  ASSERT_TRUE(failed);
  EXPECT_EQ(failed->exit_code, 1);
  EXPECT_NE(failed->err.find("tool_failed"), std::string::npos)
    << failed->err;
  auto unknown = run({"tool", "no-such-tool"}, tmp / "err2");
  ASSERT_TRUE(unknown);
  EXPECT_EQ(unknown->exit_code, 2);
  EXPECT_NE(unknown->err.find("unknown tool 'no-such-tool'"),
            std::string::npos)
    << unknown->err;
  auto bad = run({"tool", "echo", "--input", "{oops"}, tmp / "err3");
  ASSERT_TRUE(bad);
  EXPECT_EQ(bad->exit_code, 2);
  EXPECT_NE(bad->err.find("--input: not valid JSON"), std::string::npos)
    << bad->err;
}

TEST(Cli, ExecutionsListsAnExecutionWaitingForAPerson) {
  test::temp_dir tmp;
  auto db = tmp / "db";
  auto err = tmp / "err";
  auto ran = run({"--db", db, "--json", "run",
                  source_path("examples/fanout.yaml"), "--input",
                  R"({"files": ["a.pdf", "b.pdf", "c.pdf"], "threshold": 2})"},
                 err);
  ASSERT_TRUE(ran);
  ASSERT_EQ(ran->exit_code, 3) << ran->err;
  // No process holds the store now.
  auto listed = run({"--db", db, "--json", "executions"}, err);
  ASSERT_TRUE(listed);
  ASSERT_EQ(listed->exit_code, 0) << listed->err;
  auto doc = parse_listing(*listed);
  ASSERT_TRUE(doc);
  ASSERT_EQ(doc->size(), 1u) << doc->dump();
  EXPECT_EQ((*doc)[0].value("status", ""), "waiting") << doc->dump();
  EXPECT_EQ((*doc)[0].value("workflow", ""), "fanout") << doc->dump();
  auto id = (*doc)[0].value("id", "");
  ASSERT_FALSE(id.empty()) << doc->dump();
  // Following a waiting execution prints what it has and keeps waiting;
  // SIGINT ends it cleanly, and its reader leaves nothing behind.
  cadre_process follow{{"--db", db, "--json", "events", id, "--follow"},
                       tmp / "follow.err"};
  ASSERT_TRUE(follow.ok()) << follow.what();
  std::string line;
  ASSERT_TRUE(follow.read_line(line, clock_type::now() + command_limit))
    << follow.stderr_text();
  auto first = json::parse(line, nullptr, false);
  ASSERT_FALSE(first.is_discarded()) << line;
  EXPECT_EQ(first.value("seq", uint64_t{0}), 1u) << line;
  EXPECT_FALSE(follow.exited()) << follow.stderr_text();
  follow.signal(SIGINT);
  auto st = follow.wait_until(clock_type::now() + command_limit);
  ASSERT_TRUE(st) << "events --follow did not end on SIGINT";
  EXPECT_TRUE(WIFEXITED(*st)) << describe_status(*st);
  EXPECT_EQ(WEXITSTATUS(*st), 130) << describe_status(*st);
  EXPECT_EQ(secondary_dirs_of(follow.pid()), 0u);
}

TEST(Cli, ReadOnlyCommandsWorkWhileARunWritesTheStore) {
  test::temp_dir tmp;
  auto db = tmp / "db";
  auto workflow = write_slow_workflow(tmp);
  cadre_process writer{{"--db", db, "--json", "run", workflow},
                       tmp / "writer.err"};
  ASSERT_TRUE(writer.ok()) << writer.what();
  // Its first progress line: the writer has the store open.
  std::string line;
  ASSERT_TRUE(writer.read_line(line, clock_type::now() + command_limit))
    << writer.stderr_text();
  auto first = json::parse(line, nullptr, false);
  ASSERT_FALSE(first.is_discarded()) << line;
  auto id = first.value("execution_id", "");
  ASSERT_FALSE(id.empty()) << line;
  auto err = tmp / "err";
  auto listed = run({"--db", db, "--json", "executions"}, err);
  ASSERT_TRUE(listed);
  ASSERT_EQ(listed->exit_code, 0) << listed->err;
  auto doc = parse_listing(*listed);
  ASSERT_TRUE(doc);
  ASSERT_EQ(doc->size(), 1u) << doc->dump();
  EXPECT_EQ((*doc)[0].value("id", ""), id) << doc->dump();
  bool writer_was_live = !writer.exited();
  auto followed = run({"--db", db, "--json", "events", id, "--follow"}, err);
  ASSERT_TRUE(followed);
  EXPECT_EQ(followed->exit_code, 0) << followed->err;
  ASSERT_FALSE(followed->out.empty()) << followed->err;
  uint64_t expected_seq = 1;
  for (const auto& text : followed->out) {
    auto ev = json::parse(text, nullptr, false);
    ASSERT_FALSE(ev.is_discarded()) << text;
    EXPECT_EQ(ev.value("execution_id", ""), id) << text;
    EXPECT_EQ(ev.value("seq", uint64_t{0}), expected_seq++) << text;
  }
  auto last = json::parse(followed->out.back(), nullptr, false);
  EXPECT_EQ(last.value("type", ""), "execution_completed")
    << joined(followed->out);
  writer.read_all(clock_type::now() + command_limit);
  auto st = writer.wait_until(clock_type::now() + command_limit);
  ASSERT_TRUE(st) << "cadre run did not end; stderr:\n"
                  << writer.stderr_text();
  EXPECT_TRUE(WIFEXITED(*st) && WEXITSTATUS(*st) == 0)
    << describe_status(*st) << "; stderr:\n"
    << writer.stderr_text();
  if (!writer_was_live)
    std::printf("[ cli_test ] note: the run ended before `executions` "
                "returned; the live-writer case was not exercised\n");
}

/// Environment variables for the `cadre` processes of one test, restored
/// afterwards. It starts with the CADRE_LLM_* variables unset, so a model
/// configured on the machine does not answer in place of the test's.
class scoped_env {
public:
  scoped_env() {
    for (auto* name : {"CADRE_LLM_KIND", "CADRE_LLM_BASE_URL",
                       "CADRE_LLM_MODEL", "CADRE_LLM_API_KEY_ENV",
                       "CADRE_LLM_TIMEOUT"})
      unset(name);
  }
  ~scoped_env() {
    for (auto i = saved_.rbegin(); i != saved_.rend(); ++i) {
      if (i->second)
        ::setenv(i->first.c_str(), i->second->c_str(), 1);
      else
        ::unsetenv(i->first.c_str());
    }
  }
  scoped_env(const scoped_env&) = delete;
  scoped_env& operator=(const scoped_env&) = delete;

  void set(const std::string& name, const std::string& value) {
    save(name);
    ::setenv(name.c_str(), value.c_str(), 1);
  }

  void unset(const std::string& name) {
    save(name);
    ::unsetenv(name.c_str());
  }

private:
  void save(const std::string& name) {
    auto* v = std::getenv(name.c_str());
    saved_.emplace_back(name, v ? std::optional<std::string>{v}
                                : std::nullopt);
  }

  std::vector<std::pair<std::string, std::optional<std::string>>> saved_;
};

/// The document-intake executions in the store at `db`, and for each the
/// event types in the extractor agent's log (from the `extract` task's
/// usage).
std::vector<std::vector<std::string>> extractor_logs(const std::string& db) {
  std::vector<std::vector<std::string>> out;
  persistence::store_options opts;
  opts.dir = db;
  opts.read_only = true;
  auto store = persistence::event_store::open(opts);
  if (!store) {
    ADD_FAILURE() << describe(store.error());
    return out;
  }
  auto list = (*store)->list({});
  if (!list) {
    ADD_FAILURE() << describe(list.error());
    return out;
  }
  for (const auto& info : *list) {
    auto evs = (*store)->read(info.id, 1, 0);
    if (!evs) {
      ADD_FAILURE() << describe(evs.error());
      continue;
    }
    std::string agent_log;
    for (const auto& ev : *evs) {
      const auto& p = ev.payload.get();
      if (ev.type == "task_completed" && p.value("task", "") == "extract")
        agent_log = p.value("usage", json::object()).value("agent_log", "");
    }
    std::vector<std::string> types;
    if (agent_log.empty()) {
      ADD_FAILURE() << info.id << ": no agent log in the extract task's "
                                  "usage";
    } else if (auto log = (*store)->read(agent_log, 1, 0); log) {
      for (const auto& ev : *log)
        types.push_back(ev.type);
    }
    out.push_back(std::move(types));
  }
  return out;
}

/// How many times `type` occurs in `types`.
long count_of(const std::vector<std::string>& types, const std::string& type) {
  return std::count(types.begin(), types.end(), type);
}

// The main job (scripts/main.sh): the shipped invoice, as an image and as a
// PDF, read by real Tesseract, its fields extracted, validated and stored in
// a real SQLite file; a second run of the same invoice updates its record.
TEST(Cli, DocumentIntakeStoresTheInvoiceFromImageAndPdf) {
  scoped_env env; // the scripted model: no CADRE_LLM_* of the machine
  test::temp_dir tmp;
  auto config = tmp / "cadre.yaml";
  std::ofstream{config} << "tools:\n"
                           "  ocr:\n"
                           "    root: "
                        << source_path("examples/documents")
                        << "\n"
                           "  sql:\n"
                           "    root: "
                        << tmp.str()
                        << "\n"
                           "    path: invoices.db\n";
  const json expected_record{{"number", "INV-2024-0042"},
                             {"date", "2024-03-15"},
                             {"vendor", "ACME Office Supplies Ltd."},
                             {"total", 170.88},
                             {"currency", "GBP"}};
  int stored = 0;
  for (auto doc : {"invoice.png", "invoice.pdf"}) {
    auto input = json{{"path", source_path("examples/documents/") + doc}};
    auto res = run({"--db", tmp / "db", "--config", config, "--json",
                    "--metrics-file", tmp / "cadre.prom", "run",
                    source_path("examples/documents/intake.yaml"), "--input",
                    input.dump()},
                   tmp / "err");
    ASSERT_TRUE(res);
    ASSERT_EQ(res->exit_code, 0) << doc << "\n" << res->err << joined(res->out);
    ASSERT_FALSE(res->out.empty());
    auto result = json::parse(res->out.back(), nullptr, false);
    ASSERT_EQ(result.value("type", ""), "result") << res->out.back();
    const auto& out = result["output"];
    EXPECT_EQ(out["record"], expected_record) << doc << ": " << out.dump();
    EXPECT_GT(out.value("confidence", 0.0), 80.0) << doc;
    stored = out.value("stored_invoices", 0);
  }
  // Both documents are the same invoice: one record, updated in place.
  EXPECT_EQ(stored, 1);
  // The last run's counters, for a textfile collector: the extractor's two
  // model calls and its one tool call.
  std::stringstream prom;
  prom << std::ifstream{tmp / "cadre.prom"}.rdbuf();
  EXPECT_NE(prom.str().find("# TYPE cadre_llm_calls_total counter"),
            std::string::npos)
    << prom.str();
  EXPECT_TRUE(std::regex_search(
    prom.str(), std::regex{"\ncadre_llm_calls_total\\{agent=\"extractor\"[^}]*"
                           "outcome=\"ok\"\\} 2\n"}))
    << prom.str();
  EXPECT_TRUE(std::regex_search(
    prom.str(), std::regex{"\ncadre_agent_tool_calls_total\\{agent=\"extractor\","
                           "tool=\"script\",outcome=\"ok\"\\} 1\n"}))
    << prom.str();
  EXPECT_FALSE(std::filesystem::exists(tmp / "cadre.prom.tmp"));
  EXPECT_TRUE(std::filesystem::exists(tmp / "invoices.db"));
  // The fields came from the extractor agent on the scripted model: a call
  // that ran the script tool, then the answer.
  auto logs = extractor_logs(tmp / "db");
  ASSERT_EQ(logs.size(), 2u);
  for (const auto& types : logs) {
    EXPECT_EQ(count_of(types, "llm_requested"), 2) << joined(types);
    EXPECT_EQ(count_of(types, "llm_responded"), 2) << joined(types);
    EXPECT_EQ(count_of(types, "tool_result"), 1) << joined(types);
    EXPECT_EQ(count_of(types, "agent_turn_completed"), 1) << joined(types);
  }
}

// With CADRE_LLM_* naming an OpenAI-compatible server, the extractor asks
// that model (here a fake one on loopback) instead of running its script,
// and the record is the model's answer.
TEST(Cli, DocumentIntakeAsksTheModelThatCadreLlmVariablesName) {
  test::temp_dir tmp;
  test::fake_llm_server model{"/v1/chat/completions"};
  const json record{{"number", "INV-2024-0042"},
                    {"date", "2024-03-15"},
                    {"vendor", "ACME Office Supplies Ltd."},
                    {"total", 170.88},
                    {"currency", "GBP"}};
  json message{{"role", "assistant"}, {"content", record.dump()}};
  model.push(test::json_reply(
    {{"id", "chatcmpl-1"},
     {"object", "chat.completion"},
     {"created", 1700000000},
     {"model", "fake-extractor"},
     {"choices",
      {{{"index", 0}, {"message", message}, {"finish_reason", "stop"}}}},
     {"usage",
      {{"prompt_tokens", 900}, {"completion_tokens", 40},
       {"total_tokens", 940}}}}));
  scoped_env env;
  env.set("CADRE_LLM_KIND", "openai");
  env.set("CADRE_LLM_BASE_URL", model.url("/v1"));
  env.set("CADRE_LLM_MODEL", "fake-extractor");
  env.set("CADRE_LLM_API_KEY_ENV", "CADRE_TEST_INTAKE_KEY");
  env.set("CADRE_TEST_INTAKE_KEY", "sk-intake-test");
  env.set("CADRE_LLM_TIMEOUT", "30s");
  auto config = tmp / "cadre.yaml";
  std::ofstream{config} << "tools:\n  ocr:\n    root: "
                        << source_path("examples/documents")
                        << "\n  sql:\n    root: " << tmp.str()
                        << "\n    path: invoices.db\n";
  auto input = json{{"path", source_path("examples/documents/invoice.png")}};
  auto res = run({"--db", tmp / "db", "--config", config, "--json", "run",
                  source_path("examples/documents/intake.yaml"), "--input",
                  input.dump()},
                 tmp / "err");
  ASSERT_TRUE(res);
  ASSERT_EQ(res->exit_code, 0) << res->err << joined(res->out);
  auto result = json::parse(res->out.back(), nullptr, false);
  ASSERT_EQ(result.value("type", ""), "result") << res->out.back();
  EXPECT_EQ(result["output"]["record"], record) << result.dump();
  EXPECT_EQ(result["output"].value("stored_invoices", 0), 1);
  // One request: the model answered without tools. It carried the OCR
  // text in the prompt, the profile's model and the key from the variable.
  auto got = model.exchanges();
  ASSERT_EQ(got.size(), 1u);
  const auto& body = got[0].json;
  EXPECT_EQ(body.value("model", ""), "fake-extractor") << got[0].body;
  EXPECT_EQ(got[0].header("Authorization"), "Bearer sk-intake-test");
  std::string user;
  for (const auto& m : body.value("messages", json::array()))
    if (m.value("role", "") == "user")
      if (auto c = m.value("content", json{}); c.is_string())
        user += c.get<std::string>();
  EXPECT_NE(user.find("INV-2024-0042"), std::string::npos) << got[0].body;
  EXPECT_NE(user.find("ACME Office Supplies"), std::string::npos)
    << got[0].body;
  auto logs = extractor_logs(tmp / "db");
  ASSERT_EQ(logs.size(), 1u);
  EXPECT_EQ(count_of(logs[0], "llm_requested"), 1) << joined(logs[0]);
  EXPECT_EQ(count_of(logs[0], "tool_called"), 0) << joined(logs[0]);
}

// A document whose fields do not validate fails with every schema error and
// stores nothing.
TEST(Cli, DocumentIntakeRejectsADocumentWithoutInvoiceFields) {
  scoped_env env; // the scripted model: no CADRE_LLM_* of the machine
  test::temp_dir tmp;
  auto config = tmp / "cadre.yaml";
  std::ofstream{config} << "tools:\n  sql:\n    root: " << tmp.str()
                        << "\n    path: invoices.db\n  ocr:\n    root: "
                        << tmp.str() << "\n";
  // A page with words but no invoice fields, rendered like the fixture.
  auto page = tmp / "letter.png";
  auto cmd = "convert -size 1200x400 xc:white -font DejaVu-Sans -pointsize 36 "
             "-fill black -annotate +60+120 'Dear customer, thank you.' '"
             + page + "'";
  ASSERT_EQ(std::system(cmd.c_str()), 0) << cmd;
  auto res = run({"--db", tmp / "db", "--config", config, "run",
                  source_path("examples/documents/intake.yaml"), "--input",
                  json{{"path", page}}.dump()},
                 tmp / "err");
  ASSERT_TRUE(res);
  EXPECT_EQ(res->exit_code, 1) << res->err;
  EXPECT_NE(res->err.find("do not validate"), std::string::npos) << res->err;
  EXPECT_NE(res->err.find("/number"), std::string::npos) << res->err;
  EXPECT_FALSE(std::filesystem::exists(tmp / "invoices.db"));
}

TEST(Cli, AnUnknownStatusFilterIsAUsageError) {
  test::temp_dir tmp;
  auto res = run({"--db", tmp / "db", "executions", "--status", "bogus"},
                 tmp / "err");
  ASSERT_TRUE(res);
  EXPECT_EQ(res->exit_code, 2);
  EXPECT_NE(res->err.find("--status: unknown status 'bogus'"),
            std::string::npos)
    << res->err;
}

// -- issue 12: hostile input is a located error, never a crash -------------

TEST(Issue12, AliasBombInAWorkflowFileIsALocatedError) {
  test::temp_dir tmp;
  auto file = tmp / "bomb.yaml";
  {
    std::ofstream out{file};
    out << "name: bomb\n"
           "x0: &a0 [lol, lol, lol, lol, lol, lol, lol, lol, lol]\n";
    for (int level = 1; level < 9; ++level) {
      out << "x" << level << ": &a" << level << " [";
      for (int i = 0; i < 9; ++i)
        out << (i ? ", *a" : "*a") << level - 1;
      out << "]\n";
    }
    out << "tasks:\n  - {id: t, tool: echo, input: *a8}\n";
  }
  auto res = run({"validate", file}, tmp / "err");
  ASSERT_TRUE(res);
  EXPECT_EQ(res->exit_code, 2) << res->err;
  EXPECT_EQ(res->err.rfind(file + ":", 0), 0u) << res->err;
  EXPECT_NE(res->err.find("values once its aliases are expanded"),
            std::string::npos)
    << res->err;
}

TEST(Issue12, DeeplyNestedInputIsALocatedError) {
  test::temp_dir tmp;
  auto deep = tmp / "deep.json";
  std::ofstream{deep} << std::string(100'000, '[')
                      << std::string(100'000, ']');
  auto workflow = tmp / "w.yaml";
  std::ofstream{workflow} << "name: w\ntasks:\n  - {id: a, tool: echo}\n";
  for (auto args : std::vector<std::vector<std::string>>{
         {"--db", tmp / "db", "run", workflow, "--input", "@" + deep},
         {"--db", tmp / "db", "tool", "echo", "--input", "@" + deep}}) {
    auto res = run(args, tmp / "err");
    ASSERT_TRUE(res);
    EXPECT_EQ(res->exit_code, 2) << res->err;
    EXPECT_NE(res->err.find(deep + ": line 1, column 513: nested deeper "
                                   "than 512 levels"),
              std::string::npos)
      << res->err;
  }
  // As deep as allowed: it runs, is stored, and reads back.
  auto ok = tmp / "ok.json";
  std::ofstream{ok} << "{\"a\": " << std::string(500, '[')
                    << std::string(500, ']') << "}";
  auto res = run({"--db", tmp / "db", "run", workflow, "--input", "@" + ok},
                 tmp / "err");
  ASSERT_TRUE(res);
  EXPECT_EQ(res->exit_code, 0) << res->err;
  auto listing = run({"--db", tmp / "db", "--json", "executions"},
                     tmp / "err");
  ASSERT_TRUE(listing);
  EXPECT_EQ(listing->exit_code, 0) << listing->err;
}

TEST(Issue12, NonUtf8InAWorkflowFileIsALocatedError) {
  test::temp_dir tmp;
  auto file = tmp / "u.yaml";
  std::ofstream{file} << "name: u\ntasks:\n"
                         "  - {id: a, tool: echo, input: {text: \"\xc3\x28 "
                         "{{ 1 }}\"}}\n";
  for (std::string cmd : {"validate", "run"}) {
    auto res = run({"--db", tmp / "db", cmd, file}, tmp / "err");
    ASSERT_TRUE(res);
    EXPECT_EQ(res->exit_code, 2) << res->err;
    EXPECT_NE(res->err.find(file + ":3:"), std::string::npos) << res->err;
    EXPECT_NE(res->err.find("/tasks/0/input/text: not valid UTF-8"),
              std::string::npos)
      << res->err;
  }
}

TEST(Issue12, NonUtf8AnswerIsRefusedAndTheStoreStaysReadable) {
  test::temp_dir tmp;
  auto workflow = tmp / "ask.yaml";
  std::ofstream{workflow} << "name: ask\ntasks:\n"
                             "  - {id: approve, kind: human, "
                             "prompt: \"Approve\"}\n";
  auto started = run({"--db", tmp / "db", "--json", "run", workflow},
                     tmp / "err");
  ASSERT_TRUE(started);
  ASSERT_EQ(started->exit_code, 3) << started->err;
  auto listing = run({"--db", tmp / "db", "--json", "executions"},
                     tmp / "err");
  ASSERT_TRUE(listing);
  auto list = parse_listing(*listing);
  ASSERT_TRUE(list && list->size() == 1);
  auto id = list->at(0).at("id").get<std::string>();
  auto answered = run({"--db", tmp / "db", "input", id, "approve",
                       "caf\xe9"},
                      tmp / "err");
  ASSERT_TRUE(answered);
  EXPECT_EQ(answered->exit_code, 2) << answered->err;
  EXPECT_NE(answered->err.find("VALUE: not valid UTF-8 at byte 3"),
            std::string::npos)
    << answered->err;
  auto again = run({"--db", tmp / "db", "--json", "executions"},
                   tmp / "err");
  ASSERT_TRUE(again);
  EXPECT_EQ(again->exit_code, 0) << again->err;
  // A valid answer still goes through.
  auto ok = run({"--db", tmp / "db", "input", id, "approve", "café"},
                tmp / "err");
  ASSERT_TRUE(ok);
  EXPECT_EQ(ok->exit_code, 0) << ok->err;
}

TEST(Issue12, StoredBytesThatAreNotUtf8NeverAbortACommand) {
  // What an older cadre let into a store: every command that shows it
  // prints U+FFFD instead of aborting.
  test::temp_dir tmp;
  const std::string bad = "caf\xe9";
  {
    persistence::store_options opts;
    opts.dir = tmp / "db";
    auto store = persistence::event_store::open(opts);
    ASSERT_TRUE(store) << describe(store.error());
    append_request req;
    req.events.push_back({"e1", 1, 1, "execution_submitted",
                          json_value{json{{"workflow", bad},
                                          {"version", "1"},
                                          {"definition", json::object()},
                                          {"input", {{"text", bad}}}}}});
    req.events.push_back({"e1", 2, 2, "execution_failed",
                          json_value{json{{"code", "tool_failed"},
                                          {"message", bad}}}});
    execution_info info;
    info.id = "e1";
    info.workflow = bad;
    info.version = "1";
    info.status = "failed";
    info.last_seq = 2;
    info.output = json_value{json{{"text", bad}}};
    info.error = bad;
    req.index.push_back(info);
    auto seq = (*store)->append(req);
    ASSERT_TRUE(seq) << describe(seq.error());
  }
  for (auto args : std::vector<std::vector<std::string>>{
         {"--json", "executions"},
         {"executions"},
         {"--json", "events", "e1"},
         {"events", "e1"}}) {
    args.insert(args.begin(), {"--db", tmp / "db"});
    auto res = run(args, tmp / "err");
    ASSERT_TRUE(res);
    EXPECT_EQ(res->exit_code, 0) << args.back() << ": " << res->err;
    if (args[2] == "--json") {
      EXPECT_NE(joined(res->out).find("caf\xef\xbf\xbd"), std::string::npos)
        << joined(res->out);
    }
  }
}
