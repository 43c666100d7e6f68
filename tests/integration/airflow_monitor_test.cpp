// The airflow-monitor example (examples/airflow-monitor/) end to end,
// offline: real `cadre` processes run monitor.yaml with the example's
// cadre.yaml, pointed at the test Airflow server on loopback (in this
// process, so the test reads what it received) serving two failed DAG
// runs. The agents play their scripts; each failed task is an item of a map
// of sub-workflows (incident[i]: the analyzer's turn, a message, the
// person's question incident[i]/decide, the clears), and a person answers
// each question with `cadre input`.

#include <signal.h>
#include <sys/wait.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <map>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <tuple>
#include <vector>

#include <gtest/gtest.h>

#include "airflow_monitor_fixture.hpp"
#include "cadre/messages/error.hpp"
#include "cadre/persistence/event_store.hpp"
#include "cadre_process.hpp"
#include "cadre_server.hpp"
#include "fake_airflow_server.hpp"
#include "loopback_server.hpp"
#include "temp_dir.hpp"

using namespace cadre;
using nlohmann::json;

namespace {

namespace monitor = test::airflow_monitor;
using test::clock_type;

constexpr std::chrono::seconds command_limit{120};

std::string source_path(const std::string& relative) {
  return std::string{CADRE_SOURCE_DIR} + "/" + relative;
}

std::string spec_dir() {
  return std::string{CADRE_SOURCE_DIR} + "/../shared/specs/airflow";
}

const std::string workflow = source_path("examples/airflow-monitor/monitor.yaml");

void replace_all(std::string& text, const std::string& from,
                 const std::string& to) {
  for (auto at = text.find(from); at != std::string::npos;
       at = text.find(from, at + to.size()))
    text.replace(at, from.size(), to);
}

/// A chat webhook on loopback that records the messages it receives.
struct fake_webhook {
  std::mutex mtx;
  std::vector<json> bodies;
  // Last, so it stops before the records it writes to go away.
  test::loopback_server srv;

  fake_webhook() {
    srv.server().Post("/services/T0/B0/hook",
                      [this](const httplib::Request& req,
                             httplib::Response& res) {
                        std::lock_guard<std::mutex> guard{mtx};
                        bodies.push_back(json::parse(req.body, nullptr, false));
                        res.set_content("ok", "text/plain");
                      });
    srv.start();
  }

  std::string url() const {
    return srv.url("/services/T0/B0/hook");
  }

  std::vector<json> received() {
    std::lock_guard<std::mutex> guard{mtx};
    return bodies;
  }
};

/// The example's cadre.yaml pointed at `srv` and with the notify tool at
/// `hook`, written into `tmp` (its schedule's workflow made absolute).
/// Without `schedules` for `cadre serve`, whose schedule would fire on the
/// wall clock.
std::string write_config(const test::temp_dir& tmp,
                         test::fake_airflow_server& srv, fake_webhook& hook,
                         bool keep_schedules = true) {
  auto text = test::read_file(source_path("examples/airflow-monitor/cadre.yaml"));
  const std::string url = "base_url: http://localhost:8080";
  EXPECT_NE(text.find(url), std::string::npos);
  replace_all(text, url, "base_url: " + srv.base_url());
  // The example's commented notify settings, with the loopback webhook.
  const std::string notify = "  # notify:\n  #   url: https://hooks.slack.com/services/T000/B000/XXXX\n";
  EXPECT_NE(text.find(notify), std::string::npos);
  replace_all(text, notify,
              "  notify: {url: \"" + hook.url()
                + "\", allow_private: true, timeout_ms: 5000}\n");
  replace_all(text, "workflow: monitor.yaml", "workflow: " + workflow);
  if (!keep_schedules) {
    auto at = text.find("\nschedules:");
    EXPECT_NE(at, std::string::npos);
    text.resize(at + 1);
  }
  auto path = tmp / (keep_schedules ? "cadre.yaml" : "serve.yaml");
  std::ofstream{path} << text;
  return path;
}

/// The password from the environment, as the config says; no real model
/// even when the developer's shell names one.
std::vector<std::string> env_of(test::fake_airflow_server& srv) {
  return {"AIRFLOW_PASSWORD=" + srv.opts().password, "CADRE_LLM_KIND=",
          "CADRE_LLM_MODEL=", "CADRE_LLM_BASE_URL=",
          "CADRE_LLM_API_KEY_ENV="};
}

std::optional<test::outcome> run(const std::vector<std::string>& args,
                                 const std::string& err_file,
                                 test::fake_airflow_server& srv) {
  return test::run_to_end(args, err_file, command_limit, env_of(srv));
}

/// A test Airflow server serving the example's fixture, the example's
/// config pointed at it, and a store.
struct example_env {
  test::temp_dir tmp;
  test::fake_airflow_server srv{spec_dir()};
  fake_webhook hook;
  std::string db = tmp / "db";
  std::string config;

  example_env() {
    monitor::add_fixture(srv);
    config = write_config(tmp, srv, hook);
  }

  /// `cadre run monitor.yaml` with `input`, on the embedded node.
  std::optional<test::outcome> run_monitor(const json& input) {
    return run({"--config", config, "--db", db, "run", workflow, "--input",
                input.dump()},
               tmp / "run.err", srv);
  }
};

std::unique_ptr<persistence::event_store> open_store(const std::string& db) {
  persistence::store_options opts;
  opts.dir = db;
  opts.read_only = true;
  auto store = persistence::event_store::open(opts);
  if (!store) {
    ADD_FAILURE() << describe(store.error());
    return nullptr;
  }
  return std::move(*store);
}

/// The one execution of the store.
std::optional<execution_info> only_execution(const std::string& db) {
  auto store = open_store(db);
  if (!store)
    return std::nullopt;
  auto list = store->list({});
  if (!list || list->size() != 1) {
    ADD_FAILURE() << "expected one execution";
    return std::nullopt;
  }
  return list->front();
}

/// The clear calls `srv` received for `task` of `dag`.
std::vector<test::airflow_clear>
clears_of(test::fake_airflow_server& srv, const monitor::failed_task& t) {
  std::vector<test::airflow_clear> out;
  for (auto& c : srv.clears())
    if (c.dag_id == t.dag_id)
      out.push_back(c);
  return out;
}

/// A clear of exactly `t`: its run and only its task.
void expect_clear_of(const test::airflow_clear& c,
                     const monitor::failed_task& t, bool dry_run) {
  EXPECT_TRUE(c.valid) << c.body.dump();
  EXPECT_EQ(c.dry_run, dry_run) << c.body.dump();
  EXPECT_EQ(c.body.value("dag_run_id", ""), t.run_id) << c.body.dump();
  EXPECT_EQ(c.body.value("task_ids", json{}), json::array({t.task_id}))
    << c.body.dump();
}

/// Checks the summary for the answer `clear` for `newest` and `skip` for
/// `older`, and what the server saw: a dry run then a real clear of
/// exactly the task answered `clear`, nothing for the other.
void expect_cleared_newest_only(test::fake_airflow_server& srv,
                                const json& output) {
  using monitor::newest;
  using monitor::older;
  auto cleared = clears_of(srv, newest);
  ASSERT_EQ(cleared.size(), 2u);
  expect_clear_of(cleared[0], newest, true);
  expect_clear_of(cleared[1], newest, false);
  EXPECT_TRUE(clears_of(srv, older).empty());
  EXPECT_EQ(srv.clears().size(), 2u);
  // Airflow's state of each: cleared (null, for the scheduler) and failed.
  EXPECT_TRUE(srv.task_instance(newest.dag_id, newest.run_id, newest.task_id)
                .at("state")
                .is_null());
  EXPECT_EQ(srv.task_instance(older.dag_id, older.run_id, older.task_id)
              .at("state"),
            "failed");
  // The summary: one entry per failed task, newest run first.
  ASSERT_TRUE(output.is_array()) << output.dump();
  ASSERT_EQ(output.size(), 2u) << output.dump();
  const auto& first = output[0];
  EXPECT_EQ(first.value("dag_id", ""), newest.dag_id);
  EXPECT_EQ(first.value("run_id", ""), newest.run_id);
  EXPECT_EQ(first.value("task_id", ""), newest.task_id);
  EXPECT_EQ(first.value("try_number", 0), newest.try_number);
  EXPECT_EQ(first.value("cause", ""), "KeyError: 'amount'");
  EXPECT_EQ(first.value("decision", ""), "clear");
  EXPECT_EQ(first.value("action", ""),
            "cleared: the dry run listed 1 task instance(s), the clear "
            "cleared 1; no longer failed, queued for a retry");
  const auto& second = output[1];
  EXPECT_EQ(second.value("dag_id", ""), older.dag_id);
  EXPECT_EQ(second.value("task_id", ""), older.task_id);
  EXPECT_NE(second.value("cause", "").find("OperationalError"),
            std::string::npos)
    << second.dump();
  EXPECT_EQ(second.value("decision", ""), "skip");
  EXPECT_EQ(second.value("comment", ""), "database maintenance");
  EXPECT_EQ(second.value("action", ""), "none: left failed");
}

const char* const clear_newest
  = R"({"decision": "clear", "comment": "upstream fixed"})";
const char* const skip_older
  = R"({"decision": "skip", "comment": "database maintenance"})";

/// Counts, per agent log of the execution, each LLM call and the turns.
std::map<std::string, int> agent_steps(const std::string& db,
                                       const std::string& log) {
  std::map<std::string, int> seen;
  auto store = open_store(db);
  if (!store)
    return seen;
  auto evs = store->read(log, 1, 0);
  if (!evs) {
    ADD_FAILURE() << log << ": " << describe(evs.error());
    return seen;
  }
  for (auto& ev : *evs) {
    const auto& p = ev.payload.get();
    if (ev.type == "llm_requested" || ev.type == "llm_responded")
      ++seen[ev.type + " " + std::to_string(p.value("call", 0))];
    if (ev.type == "agent_turn_started" || ev.type == "agent_turn_completed")
      ++seen[ev.type];
  }
  return seen;
}

/// Each agent (monitor, and the analyzer once per failed task, in the
/// item's sub-workflow) asked its model exactly once per call of its one
/// turn: five calls each.
void expect_one_request_per_call(const std::string& db,
                                 const std::string& id) {
  for (const char* task :
       {"monitor", "incident[0]/analyze", "incident[1]/analyze"}) {
    auto log = "agent:" + id + "/" + task;
    auto seen = agent_steps(db, log);
    for (auto& [what, n] : seen)
      EXPECT_EQ(n, 1) << log << ": " << what << " is recorded " << n
                      << " times";
    EXPECT_EQ(seen.size(), 2u + 5 * 2) << log;
    EXPECT_EQ(seen.count("llm_requested 5"), 1u) << log;
    EXPECT_EQ(seen.count("agent_turn_completed"), 1u) << log;
  }
  EXPECT_TRUE(agent_steps(db, "agent:" + id + "/incident[2]/analyze")
                .empty());
}

/// The execution's events (`cadre events ID`), as JSON.
std::vector<json> events_of(example_env& env, const std::string& id) {
  auto listed = run({"--db", env.db, "--json", "events", id},
                    env.tmp / "events.err", env.srv);
  std::vector<json> out;
  if (!listed || listed->exit_code != 0) {
    ADD_FAILURE() << (listed ? listed->err : "cadre events did not run");
    return out;
  }
  for (auto& line : listed->out) {
    auto ev = json::parse(line, nullptr, false);
    if (ev.is_object())
      out.push_back(std::move(ev));
  }
  return out;
}

/// The events of `type` whose unit is `task`.
std::vector<json> of_type(const std::vector<json>& evs,
                          const std::string& type, const std::string& task) {
  std::vector<json> out;
  for (const auto& ev : evs) {
    const auto& p = ev.contains("payload") ? ev["payload"] : ev;
    if (ev.value("type", "") == type && p.value("task", "") == task)
      out.push_back(ev);
  }
  return out;
}

/// Answers `skip` for the older failed task (incident[1]/decide) and
/// `clear` for the newest (incident[0]/decide), one `cadre input` each on
/// the embedded node, then checks the execution's end: the summary, the
/// clears the server saw, one model request per call.
void answer_clear_then_skip(example_env& env, const std::string& id) {
  auto skipped = run({"--config", env.config, "--db", env.db, "input", id,
                      "incident[1]/decide", skip_older},
                     env.tmp / "input1.err", env.srv);
  ASSERT_TRUE(skipped);
  // 3: incident[0]/decide still waits, and nothing is cleared yet.
  ASSERT_EQ(skipped->exit_code, 3) << skipped->err;
  EXPECT_TRUE(env.srv.clears().empty());
  auto answered = run({"--config", env.config, "--db", env.db, "input", id,
                       "incident[0]/decide", clear_newest},
                      env.tmp / "input0.err", env.srv);
  ASSERT_TRUE(answered);
  ASSERT_EQ(answered->exit_code, 0) << answered->err;
  auto done = only_execution(env.db);
  ASSERT_TRUE(done);
  EXPECT_EQ(done->id, id);
  EXPECT_EQ(done->status, "completed") << done->error;
  expect_cleared_newest_only(env.srv, done->output.get());
  expect_one_request_per_call(env.db, id);
}

TEST(AirflowMonitor, ClearsTheTaskAnsweredClearAndLeavesTheSkippedOne) {
  example_env env;
  auto& [tmp, srv, hook, db, config] = env;
  auto ran = env.run_monitor({{"dag_id", "~"}});
  ASSERT_TRUE(ran);
  // 3: the execution waits for the person's decisions.
  ASSERT_EQ(ran->exit_code, 3) << ran->err;
  EXPECT_TRUE(srv.clears().empty());
  auto waiting = only_execution(db);
  ASSERT_TRUE(waiting);
  EXPECT_EQ(waiting->status, "waiting") << waiting->error;
  // One question per failed task, in its item's sub-workflow, each with
  // its analysis.
  const auto& id = waiting->id;
  auto evs = events_of(env, id);
  auto asked0 = of_type(evs, "human_requested", "incident[0]/decide");
  auto asked1 = of_type(evs, "human_requested", "incident[1]/decide");
  ASSERT_EQ(asked0.size(), 1u);
  ASSERT_EQ(asked1.size(), 1u);
  EXPECT_NE(asked0[0].dump().find("KeyError: 'amount'"), std::string::npos)
    << asked0[0].dump();
  EXPECT_NE(asked0[0].dump().find("suggested_fix"), std::string::npos);
  EXPECT_NE(asked1[0].dump().find("psycopg2.OperationalError"),
            std::string::npos)
    << asked1[0].dump();
  // The webhook told a person of each failed task, once, with its cause
  // and how to answer it (in the order the analyses ended).
  auto told = hook.received();
  ASSERT_EQ(told.size(), 2u);
  std::string all;
  for (auto& m : told)
    all += m.value("text", "") + "\n";
  for (auto [task, n, cause] :
       {std::tuple{"etl_daily.transform", "0", "KeyError: 'amount'"},
        std::tuple{"reports_weekly.load", "1", "OperationalError"}}) {
    EXPECT_NE(all.find(task), std::string::npos) << all;
    EXPECT_NE(all.find(cause), std::string::npos) << all;
    EXPECT_NE(all.find("cadre input " + id + " 'incident[" + n
                       + "]/decide'"),
              std::string::npos)
      << all;
  }
  EXPECT_NE(all.find("/v1/executions/" + id + "/input"), std::string::npos)
    << all;

  answer_clear_then_skip(env, waiting->id);
  EXPECT_EQ(hook.received().size(), 2u);
}

TEST(AirflowMonitor, ClearsAsSoonAsItsOwnPersonAnswers) {
  example_env env;
  auto& [tmp, srv, hook, db, config] = env;
  auto ran = env.run_monitor({{"dag_id", "~"}});
  ASSERT_TRUE(ran);
  ASSERT_EQ(ran->exit_code, 3) << ran->err;
  auto waiting = only_execution(db);
  ASSERT_TRUE(waiting);
  const auto& id = waiting->id;
  // `clear` for the newest: its clears run now, while the other question
  // is still open (exit 3: it still waits).
  auto answered = run({"--config", config, "--db", db, "input", id,
                       "incident[0]/decide", clear_newest},
                      tmp / "input0.err", srv);
  ASSERT_TRUE(answered);
  ASSERT_EQ(answered->exit_code, 3) << answered->err;
  auto cleared = clears_of(srv, monitor::newest);
  ASSERT_EQ(cleared.size(), 2u);
  expect_clear_of(cleared[0], monitor::newest, true);
  expect_clear_of(cleared[1], monitor::newest, false);
  EXPECT_EQ(srv.clears().size(), 2u);
  auto still = only_execution(db);
  ASSERT_TRUE(still);
  EXPECT_EQ(still->status, "waiting");
  auto evs = events_of(env, id);
  EXPECT_EQ(of_type(evs, "task_completed", "incident[0]/clear").size(), 1u);
  EXPECT_TRUE(of_type(evs, "task_completed", "incident[1]/decide").empty());
  // The other one, answered later, clears nothing.
  auto skipped = run({"--config", config, "--db", db, "input", id,
                      "incident[1]/decide", skip_older},
                     tmp / "input1.err", srv);
  ASSERT_TRUE(skipped);
  ASSERT_EQ(skipped->exit_code, 0) << skipped->err;
  auto done = only_execution(db);
  ASSERT_TRUE(done);
  EXPECT_EQ(done->status, "completed") << done->error;
  expect_cleared_newest_only(srv, done->output.get());
  expect_one_request_per_call(db, id);
}

TEST(AirflowMonitor, AFailedRunTellsAPersonWithTheExecutionAndTheError) {
  example_env env;
  auto& [tmp, srv, hook, db, config] = env;
  // Airflow refuses every clear of etl_daily.
  test::airflow_failure refuse;
  refuse.method = "POST";
  refuse.path_prefix = "/api/v2/dags/etl_daily/clearTaskInstances";
  refuse.status = 400;
  refuse.detail = "clearing is disabled for this DAG";
  refuse.times = 1000;
  srv.fail(refuse);
  auto ran = env.run_monitor({{"dag_id", "~"}});
  ASSERT_TRUE(ran);
  ASSERT_EQ(ran->exit_code, 3) << ran->err;
  auto waiting = only_execution(db);
  ASSERT_TRUE(waiting);
  const auto& id = waiting->id;
  ASSERT_EQ(hook.received().size(), 2u);
  auto answered = run({"--config", config, "--db", db, "input", id,
                       "incident[0]/decide", clear_newest},
                      tmp / "input0.err", srv);
  ASSERT_TRUE(answered);
  // 1: the monitor run failed.
  EXPECT_EQ(answered->exit_code, 1) << answered->err;
  auto failed = only_execution(db);
  ASSERT_TRUE(failed);
  EXPECT_EQ(failed->status, "failed");
  EXPECT_NE(failed->error.find("task incident: item 0: task clear_dry_run"),
            std::string::npos)
    << failed->error;
  // The alert: the execution, the task and the error, once.
  auto told = hook.received();
  ASSERT_EQ(told.size(), 3u);
  auto text = told.back().value("text", "");
  EXPECT_NE(text.find("Airflow monitor " + id + " failed at incident: "),
            std::string::npos)
    << text;
  EXPECT_NE(text.find("clearing is disabled for this DAG"), std::string::npos)
    << text;
  EXPECT_NE(text.find("cadre inspect " + id), std::string::npos) << text;
  auto evs = events_of(env, id);
  EXPECT_EQ(of_type(evs, "on_failure_started", "incident").size(), 1u);
  EXPECT_EQ(of_type(evs, "task_completed", "alert").size(), 1u);
  // The other question closed with the run; nothing else was cleared.
  EXPECT_TRUE(srv.clears().size() <= 2u);
  EXPECT_TRUE(clears_of(srv, monitor::older).empty());
  auto late = run({"--config", config, "--db", db, "input", id,
                   "incident[1]/decide", skip_older},
                  tmp / "input1.err", srv);
  ASSERT_TRUE(late);
  EXPECT_NE(late->exit_code, 0);
}

TEST(AirflowMonitor, NoFailedRunIsAllClearWithoutAskingAnyone) {
  example_env env;
  auto& [tmp, srv, hook, db, config] = env;
  auto ran = env.run_monitor({{"dag_id", monitor::healthy_dag}});
  ASSERT_TRUE(ran);
  ASSERT_EQ(ran->exit_code, 0) << ran->err;
  auto done = only_execution(db);
  ASSERT_TRUE(done);
  EXPECT_EQ(done->status, "completed") << done->error;
  EXPECT_EQ(done->output.get(), json("all clear"));
  EXPECT_TRUE(srv.clears().empty());
  // The monitor looked at that DAG only, and no analyzer ran.
  EXPECT_EQ(srv.count("/api/v2/dags/" + std::string{monitor::healthy_dag}
                      + "/dagRuns"),
            1u);
  EXPECT_TRUE(agent_steps(db, "agent:" + done->id + "/analyze[0]").empty());
  // Nothing failed: nobody is told.
  EXPECT_TRUE(hook.received().empty());
}

TEST(AirflowMonitor, AnswerAfterKillNineOfTheNodeAsksNoModelAgainNorClearsTwice) {
  example_env env;
  auto& [tmp, srv, hook, db, config] = env;
  std::string id;
  {
    test::cadre_server node{db,
                            {"--config", write_config(tmp, srv, hook, false)},
                            env_of(srv)};
    ASSERT_TRUE(node.ok());
    // Submitted to the node, followed until the node asks a person.
    test::cadre_process follow{{"--server", node.url(), "--json", "run",
                                workflow, "--input", R"({"dag_id": "~"})"},
                               tmp / "follow.err", env_of(srv)};
    ASSERT_TRUE(follow.ok()) << follow.what();
    auto deadline = clock_type::now() + command_limit;
    std::string line;
    bool asked = false;
    while (!asked && follow.read_line(line, deadline)) {
      auto ev = json::parse(line, nullptr, false);
      if (ev.is_object() && ev.value("type", "") == "human_requested") {
        asked = true;
        id = ev.value("execution_id", "");
      }
    }
    ASSERT_TRUE(asked) << follow.stderr_text();
    ASSERT_FALSE(id.empty()) << line;
    // Both items ask (each analysis done), over the node's API.
    auto view = [&] { return test::get(node, "/v1/executions/" + id); };
    auto open_questions = [&] {
      return view().value("waiting", json::array());
    };
    auto until = clock_type::now() + command_limit;
    while (open_questions().size() < 2 && clock_type::now() < until)
      std::this_thread::sleep_for(std::chrono::milliseconds{100});
    ASSERT_EQ(open_questions().size(), 2u);
    // The newest is answered `clear` and cleared at once; the node is
    // killed once its item has completed, the other question still open.
    auto answered = run({"--server", node.url(), "input", id,
                         "incident[0]/decide", clear_newest},
                        tmp / "answer.err", srv);
    ASSERT_TRUE(answered);
    // Its last unit's completion and the item's are one write.
    auto item_done = [&] {
      auto t = view()["tasks"]["incident[0]/state"];
      return t.is_object() && t.value("state", "") == "completed";
    };
    until = clock_type::now() + command_limit;
    while (!item_done() && clock_type::now() < until)
      std::this_thread::sleep_for(std::chrono::milliseconds{100});
    ASSERT_TRUE(item_done());
    EXPECT_EQ(clears_of(srv, monitor::newest).size(), 2u);
    node.proc().signal(SIGKILL);
    auto st = node.proc().wait_until(clock_type::now() + command_limit);
    ASSERT_TRUE(st);
    EXPECT_TRUE(WIFSIGNALED(*st)) << test::describe_status(*st);
  }
  // A node on the same store again: the other answer resumes the
  // execution; the completed item runs nothing again.
  auto skipped = run({"--config", env.config, "--db", db, "input", id,
                      "incident[1]/decide", skip_older},
                     tmp / "input1.err", srv);
  ASSERT_TRUE(skipped);
  ASSERT_EQ(skipped->exit_code, 0) << skipped->err;
  auto done = only_execution(db);
  ASSERT_TRUE(done);
  EXPECT_EQ(done->status, "completed") << done->error;
  expect_cleared_newest_only(srv, done->output.get());
  expect_one_request_per_call(db, id);
  auto evs = events_of(env, id);
  for (const char* unit : {"incident[0]/analyze", "incident[0]/clear",
                           "incident[0]/clear_dry_run", "incident[0]/state"})
    EXPECT_EQ(of_type(evs, "task_dispatched", unit).size(), 1u) << unit;
  EXPECT_TRUE(of_type(evs, "task_redispatched", "incident[0]/clear").empty());
  // Each person was told once (again after the kill when a message was
  // still being sent: at least once, with the same idempotency key).
  EXPECT_GE(hook.received().size(), 2u);
}

TEST(AirflowMonitor, ConfigSchedulesTheMonitorEveryFiveMinutes) {
  example_env env;
  auto listed = run({"--config",
                     source_path("examples/airflow-monitor/cadre.yaml"),
                     "--db", env.db, "--json", "schedules"},
                    env.tmp / "schedules.err", env.srv);
  ASSERT_TRUE(listed);
  ASSERT_EQ(listed->exit_code, 0) << listed->err;
  ASSERT_EQ(listed->out.size(), 1u) << listed->err;
  auto doc = json::parse(listed->out.front(), nullptr, false);
  ASSERT_TRUE(doc.is_array() && doc.size() == 1) << listed->out.front();
  EXPECT_EQ(doc[0].value("name", ""), "airflow-monitor") << doc.dump();
  EXPECT_EQ(doc[0].value("workflow", ""), workflow) << doc.dump();
  EXPECT_EQ(doc[0].value("every_ms", 0), 300000) << doc.dump();
  EXPECT_EQ(doc[0].value("input", json{}), (json{{"dag_id", "~"}}));
  EXPECT_EQ(doc[0].value("overlap", ""), "skip") << doc.dump();
}

TEST(AirflowMonitor, RunScriptRunsTheExampleOfflineInOneCommand) {
  // examples/airflow-monitor/run.sh with the standalone test Airflow server
  // (cadre_fake_airflow) and its default decisions: clear, then skip.
  auto command = "BUILD='" + std::string{CADRE_BINARY_DIR} + "' timeout 300 '"
                 + source_path("examples/airflow-monitor/run.sh") + "' 2>&1";
  auto* pipe = ::popen(command.c_str(), "r");
  ASSERT_NE(pipe, nullptr);
  std::string out;
  char buf[4096];
  for (size_t n; (n = std::fread(buf, 1, sizeof buf, pipe)) > 0;)
    out.append(buf, n);
  auto st = ::pclose(pipe);
  ASSERT_TRUE(WIFEXITED(st) && WEXITSTATUS(st) == 0)
    << test::describe_status(st) << "\n"
    << out;
  EXPECT_NE(out.find("\"action\": \"cleared: the dry run listed 1"),
            std::string::npos)
    << out;
  EXPECT_NE(out.find("\"action\": \"none: left failed\""),
            std::string::npos)
    << out;
  // The server's record: a dry run, then the real clear, of transform.
  auto dry = out.find(R"("clear":"etl_daily","dry_run":true)");
  auto real = out.find(R"("clear":"etl_daily","dry_run":false)");
  EXPECT_NE(dry, std::string::npos) << out;
  EXPECT_NE(real, std::string::npos) << out;
  EXPECT_LT(dry, real) << out;
  EXPECT_EQ(out.find(R"("clear":"reports_weekly")"), std::string::npos)
    << out;
}

// -- forks that edit a unit of one incident (docs/replay.md) -----------------

/// `cadre ARGS` on the example's node config and store.
std::optional<test::outcome> cadre_in(example_env& env,
                                      std::vector<std::string> args) {
  args.insert(args.begin(), {"--config", env.config, "--db", env.db});
  return run(args, env.tmp / "cmd.err", env.srv);
}

/// A recorded monitor run: the newest task cleared, the older skipped.
std::string recorded_monitor(example_env& env) {
  auto ran = env.run_monitor({{"dag_id", "~"}});
  EXPECT_TRUE(ran && ran->exit_code == 3) << (ran ? ran->err : "");
  auto waiting = only_execution(env.db);
  if (!waiting)
    return {};
  answer_clear_then_skip(env, waiting->id);
  return waiting->id;
}

/// The units whose tool or agent ran in a fork: those with a result past
/// its fork point (its execution_forked) that is neither an edit nor an
/// answer, nor the end of a map or of a sub-workflow's run. Sorted.
std::vector<std::string> run_again(const std::vector<json>& evs) {
  std::set<std::string> made; // maps, and units that run a sub-workflow
  std::vector<std::string> out;
  bool past = false;
  for (const auto& ev : evs) {
    const auto& p = ev["payload"];
    auto type = ev.value("type", "");
    auto key = p.value("task", "")
               + (p.contains("item")
                    ? "[" + std::to_string(p.value("item", 0)) + "]"
                    : std::string{});
    if ((type == "task_dispatched" && p.contains("workflow"))
        || type == "map_started")
      made.insert(key);
    if (type == "execution_forked")
      past = true;
    else if (past && (type == "task_completed" || type == "task_failed")
             && !p.contains("by") && made.count(key) == 0)
      out.push_back(key);
  }
  std::sort(out.begin(), out.end());
  return out;
}

/// A plan's to_run as "task (runs)", sorted.
std::vector<std::string> to_run_of(const json& plan) {
  std::vector<std::string> out;
  for (const auto& r : plan["to_run"])
    out.push_back(r.value("task", "") + " (" + r.value("runs", "") + ")");
  std::sort(out.begin(), out.end());
  return out;
}

/// The message of `cadre input ID 'incident[n]/decide'` tells a person:
/// a fork renders it with its own id, so each incident's `tell` (a
/// notify, a side effect) runs again in every fork.
const std::vector<std::string> tells = {"incident[0]/tell (notify)",
                                        "incident[1]/tell (notify)"};

TEST(AirflowMonitor, AForkEditsOneUnitOfAnIncidentAndRunsOnlyWhatItReaches) {
  example_env env;
  auto& srv = env.srv;
  auto id = recorded_monitor(env);
  ASSERT_FALSE(id.empty());
  ASSERT_EQ(srv.clears().size(), 2u);
  ASSERT_EQ(env.hook.received().size(), 2u);
  auto parent_output = only_execution(env.db)->output.get();
  // The dry run: the other answer to the older task's question clears it
  // (airflow, a side effect); its clear and state wait for the dry run.
  const std::string clear_older = R"(incident[1]/decide={"decision": "clear"})";
  auto dry = cadre_in(env, {"--json", "fork", id, "--answer", clear_older,
                            "--dry-run"});
  ASSERT_TRUE(dry);
  ASSERT_EQ(dry->exit_code, 0) << dry->err;
  auto plan = json::parse(dry->out.back(), nullptr, false)["plan"];
  auto expected = tells;
  expected.push_back("incident[1]/clear_dry_run (airflow)");
  std::sort(expected.begin(), expected.end());
  EXPECT_EQ(to_run_of(plan), expected) << plan.dump();
  EXPECT_EQ(plan["edited"], json::array({"incident[1]/decide"}));
  EXPECT_EQ(plan["undecided"],
            json::array({"incident[1]/clear", "incident[1]/state"}));
  EXPECT_EQ(plan["waiting"], json::array());
  for (const char* kept : {"monitor", "incident[0]/analyze",
                           "incident[0]/decide", "incident[0]/clear",
                           "incident[1]/analyze"})
    EXPECT_NE(std::find(plan["reused"].begin(), plan["reused"].end(),
                        json(kept)),
              plan["reused"].end())
      << kept << " " << plan.dump();
  auto text = cadre_in(env, {"fork", id, "--answer", clear_older,
                             "--dry-run"});
  ASSERT_TRUE(text);
  std::string printed;
  for (const auto& line : text->out)
    printed += line + "\n";
  EXPECT_NE(printed.find("incident[1]/clear_dry_run (airflow, side effects)"),
            std::string::npos)
    << printed;
  EXPECT_EQ(srv.clears().size(), 2u) << "a dry run runs nothing";
  // The fork: the older task is cleared now; the newest's clears, the
  // monitor's and the analyzers' turns are reused, not run again.
  auto forked = cadre_in(env, {"--json", "fork", id, "--answer", clear_older});
  ASSERT_TRUE(forked);
  ASSERT_EQ(forked->exit_code, 0) << forked->err;
  auto fork_id = json::parse(forked->out.front(), nullptr, false)["plan"]["id"]
                   .get<std::string>();
  auto result = json::parse(forked->out.back(), nullptr, false);
  ASSERT_EQ(result.value("status", ""), "completed") << forked->out.back();
  EXPECT_EQ(run_again(events_of(env, fork_id)),
            (std::vector<std::string>{
              "incident[0]/tell", "incident[1]/clear",
              "incident[1]/clear_dry_run", "incident[1]/state",
              "incident[1]/tell"}));
  EXPECT_EQ(clears_of(srv, monitor::newest).size(), 2u);
  auto older = clears_of(srv, monitor::older);
  ASSERT_EQ(older.size(), 2u);
  expect_clear_of(older[0], monitor::older, true);
  expect_clear_of(older[1], monitor::older, false);
  EXPECT_EQ(env.hook.received().size(), 4u);
  auto out = result["output"];
  ASSERT_TRUE(out.is_array() && out.size() == 2) << out.dump();
  EXPECT_EQ(out[0], parent_output[0]);
  EXPECT_EQ(out[1].value("decision", ""), "clear");
  EXPECT_EQ(out[1].value("cause", ""), parent_output[1].value("cause", ""));

  // Another analysis of the newest task, with the answer `skip`: the
  // analyzer is not asked, its message says the new cause, nothing clears.
  auto set = cadre_in(
    env, {"--json", "fork", id, "--set",
          R"(tasks.incident[0]/analyze.output={"root_cause": "the upstream extract dropped 'amount'", "evidence": [], "suggested_fix": "restore it", "confidence": 0.9})",
          "--answer", R"(incident[0]/decide={"decision": "skip"})"});
  ASSERT_TRUE(set);
  ASSERT_EQ(set->exit_code, 0) << set->err;
  auto set_id = json::parse(set->out.front(), nullptr, false)["plan"]["id"]
                  .get<std::string>();
  EXPECT_EQ(run_again(events_of(env, set_id)),
            (std::vector<std::string>{"incident[0]/tell",
                                      "incident[1]/tell"}));
  result = json::parse(set->out.back(), nullptr, false);
  EXPECT_EQ(result["output"][0].value("cause", ""),
            "the upstream extract dropped 'amount'")
    << set->out.back();
  EXPECT_EQ(result["output"][0].value("action", ""), "none: left failed");
  EXPECT_EQ(result["output"][1], parent_output[1]);
  EXPECT_EQ(srv.clears().size(), 4u);
  auto told = env.hook.received();
  ASSERT_EQ(told.size(), 6u);
  std::string all;
  for (const auto& m : told)
    all += m.value("text", "") + "\n";
  EXPECT_NE(all.find("failed: the upstream extract dropped 'amount'"),
            std::string::npos)
    << all;

  // Asking the analyzer again: its question, the message and the clears
  // wait for its new analysis.
  auto again = cadre_in(env, {"--json", "fork", id, "--rerun",
                              "incident[0]/analyze", "--dry-run"});
  ASSERT_TRUE(again);
  ASSERT_EQ(again->exit_code, 0) << again->err;
  plan = json::parse(again->out.back(), nullptr, false)["plan"];
  EXPECT_EQ(to_run_of(plan),
            (std::vector<std::string>{"incident[0]/analyze (agent:analyzer)",
                                      "incident[1]/tell (notify)"}))
    << plan.dump();
  EXPECT_EQ(plan["undecided"],
            json::array({"incident[0]/tell", "incident[0]/decide",
                         "incident[0]/clear_dry_run", "incident[0]/clear",
                         "incident[0]/state"}));
  // Run, with the answer `skip` to the question its analysis leads to: the
  // analyzer asks its model anew for that task only (its own turn in the
  // fork's branch of its memory), the other analysis is reused.
  auto rerun = cadre_in(env, {"--json", "fork", id, "--rerun",
                              "incident[0]/analyze", "--answer",
                              R"(incident[0]/decide={"decision": "skip"})"});
  ASSERT_TRUE(rerun);
  ASSERT_EQ(rerun->exit_code, 0) << rerun->err;
  auto rerun_id = json::parse(rerun->out.front(), nullptr, false)["plan"]["id"]
                    .get<std::string>();
  EXPECT_EQ(run_again(events_of(env, rerun_id)),
            (std::vector<std::string>{"incident[0]/analyze",
                                      "incident[0]/tell",
                                      "incident[1]/tell"}));
  auto memory = "agent:" + rerun_id + "/incident[0]/analyze";
  auto turn = agent_steps(env.db, memory);
  EXPECT_EQ(turn["agent_turn_completed"], 1) << "the parent's is not kept";
  EXPECT_EQ(turn["llm_responded 5"], 1);
  if (auto store = open_store(env.db)) {
    auto evs = store->read(memory, 1, 0);
    ASSERT_TRUE(evs);
    for (const auto& ev : *evs) {
      if (ev.type == "llm_responded") {
        EXPECT_FALSE(ev.payload->value("reused", false)) << "asked anew";
      }
    }
  }
  // The other analysis: the parent's turn, as the fork's memory of it.
  EXPECT_EQ(agent_steps(env.db, "agent:" + rerun_id + "/incident[1]/analyze"),
            agent_steps(env.db, "agent:" + id + "/incident[1]/analyze"));
  EXPECT_EQ(srv.clears().size(), 4u);

  // Refused, naming what is there.
  auto asked = of_type(events_of(env, id), "human_requested",
                       "incident[0]/decide");
  ASSERT_EQ(asked.size(), 1u);
  auto asked_at = std::to_string(asked[0]["seq"].get<uint64_t>());
  struct refusal {
    std::vector<std::string> args;
    std::string says;
  };
  const std::vector<refusal> refusals = {
    {{"--rerun", "incident[0]/nope"},
     "--rerun: 'incident[0]/nope': the sub-workflow of 'incident[0]' has no "
     "task 'nope' (its tasks: analyze, tell, decide, clear_dry_run, clear, "
     "state)"},
    {{"--rerun", "incident/decide"},
     "'incident' is a map of sub-workflows; name the item whose unit it is, "
     "'incident[0]/decide'"},
    {{"--rerun", "incident[0]@2/decide"},
     "'incident[0]' had run 1 attempt by the fork point"},
    {{"--rerun", "incident[2]/decide"},
     "'incident[2]' had not started by the fork point"},
    {{"--set", "tasks.incident[0]/decide.output={}"},
     "is answered by a person; give the answer with --answer "
     "incident[0]/decide=VALUE"},
    {{"--answer", R"(incident[0]/decide={"decision": "maybe"})"},
     "--answer incident[0]/decide"},
    {{"--at", asked_at, "--rerun", "incident[0]/clear"},
     "--rerun: 'incident[0]/clear': that unit had not run by the fork point "
     "(event " + asked_at + "); under 'incident[0]' had: analyze, decide, "
     "tell"},
  };
  for (const auto& r : refusals) {
    std::vector<std::string> args{"fork", id};
    args.insert(args.end(), r.args.begin(), r.args.end());
    auto bad = cadre_in(env, args);
    ASSERT_TRUE(bad);
    EXPECT_EQ(bad->exit_code, 2) << r.says;
    EXPECT_NE(bad->err.find(r.says), std::string::npos) << bad->err;
  }
  EXPECT_EQ(srv.clears().size(), 4u);
}

TEST(AirflowMonitor, AForkOverHttpEditsOneUnitOfAnIncident) {
  example_env env;
  auto& srv = env.srv;
  auto id = recorded_monitor(env);
  ASSERT_FALSE(id.empty());
  test::cadre_server node{env.db,
                          {"--config",
                           write_config(env.tmp, srv, env.hook, false)},
                          env_of(srv)};
  ASSERT_TRUE(node.ok());
  auto fork_path = "/v1/executions/" + id + "/fork";
  auto post = [&](const json& body) {
    httplib::Request req;
    req.method = "POST";
    req.path = fork_path;
    req.body = body.dump();
    req.set_header("Content-Type", "application/json");
    return node.client().send(req);
  };
  auto dry = post({{"rerun", {"incident[1]/tell"}}, {"dry_run", true}});
  ASSERT_TRUE(dry);
  ASSERT_EQ(dry->status, 200) << dry->body;
  EXPECT_EQ(to_run_of(json::parse(dry->body)), tells) << dry->body;
  auto r = post({{"answers",
                  {{"incident[1]/decide", {{"decision", "clear"}}}}}});
  ASSERT_TRUE(r);
  ASSERT_EQ(r->status, 201) << r->body;
  auto fork_id = json::parse(r->body)["id"].get<std::string>();
  json done;
  for (auto until = clock_type::now() + command_limit;
       clock_type::now() < until;
       std::this_thread::sleep_for(std::chrono::milliseconds{50})) {
    done = test::get(node, "/v1/executions/" + fork_id);
    if (done.value("status", "running") != "running")
      break;
  }
  EXPECT_EQ(done.value("status", ""), "completed") << done.dump();
  // The store read beside the server, read-only.
  EXPECT_EQ(run_again(events_of(env, fork_id)),
            (std::vector<std::string>{
              "incident[0]/tell", "incident[1]/clear",
              "incident[1]/clear_dry_run", "incident[1]/state",
              "incident[1]/tell"}));
  EXPECT_EQ(clears_of(srv, monitor::older).size(), 2u);
  EXPECT_EQ(clears_of(srv, monitor::newest).size(), 2u);
  // Refused where the unit is named.
  auto refused = [&](const json& body, const std::string& says,
                     const std::string& pointer) {
    auto res = post(body);
    ASSERT_TRUE(res);
    EXPECT_EQ(res->status, 422) << res->body;
    auto p = json::parse(res->body, nullptr, false);
    EXPECT_NE(p.value("detail", "").find(says), std::string::npos)
      << res->body;
    EXPECT_EQ(p.value("pointer", ""), pointer) << res->body;
  };
  refused({{"rerun", {"incident[0]/tell", "incident[0]/nope"}}},
          "has no task 'nope'", "/rerun/1");
  refused({{"outputs", {{"incident[0]/nope", 1}}}}, "has no task 'nope'",
          "/outputs/incident[0]~1nope");
  refused({{"answers", {{"incident[0]/decide", {{"decision", "maybe"}}}}}},
          "incident[0]/decide", "/answers/incident[0]~1decide");
}

} // namespace
