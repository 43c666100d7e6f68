#include <cstdlib>
#include <memory>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "airflow/airflow_log.hpp"
#include "cadre/tools/tool_registry.hpp"
#include "fake_airflow_server.hpp"
#include "loopback_server.hpp"

using namespace cadre;
using namespace cadre::tools;
using cadre::test::airflow_failure;
using cadre::test::fake_airflow_server;
using cadre::test::loopback_server;
namespace fx = cadre::test::airflow_fixture;

namespace {

constexpr const char* password_var = "CADRE_TEST_AIRFLOW_PASSWORD";

/// The OpenAPI files, in ../shared beside the source tree.
std::string spec_dir() {
  return std::string{CADRE_SOURCE_DIR} + "/../shared/specs/airflow";
}

const std::string failed_manual_run = "manual__2025-03-02T08:30:00+00:00";
const std::string failed_scheduled_run = "scheduled__2025-03-01T00:00:00+00:00";

/// DAGs, runs of every state, task instances with tries, logs and sources.
void seed(fake_airflow_server& srv) {
  srv.add_dag(fx::dag_details("etl_daily", "Loads the warehouse"),
              "from airflow.sdk import dag, task\n\n@dag()\ndef etl_daily():"
              "\n    ...\n");
  srv.add_dag(fx::dag_details("reports"), "# reports\n");
  srv.add_run(fx::dag_run("etl_daily", failed_scheduled_run, "failed",
                          "2025-03-01T00:00:00Z", "2025-03-01T01:00:00Z"));
  srv.add_run(fx::dag_run("etl_daily", "scheduled__2025-03-02T00:00:00+00:00",
                          "success", "2025-03-02T00:00:00Z",
                          "2025-03-02T01:00:00Z"));
  srv.add_run(fx::dag_run("etl_daily", failed_manual_run, "failed",
                          "2025-03-02T08:30:00Z", "2025-03-02T09:00:00Z"));
  srv.add_run(fx::dag_run("reports", "scheduled__2025-03-01T00:00:00+00:00",
                          "failed", "2025-03-01T00:00:00Z",
                          "2025-03-01T05:00:00Z"));
  srv.add_run(fx::dag_run("reports", "manual__2025-03-03T00:00:00+00:00",
                          "running", "2025-03-03T00:00:00Z", ""));
  const auto& run = failed_manual_run;
  srv.add_task_instance(
    fx::task_instance("etl_daily", run, "extract", "success", 1));
  srv.add_task_instance(
    fx::task_instance("etl_daily", run, "transform", "failed", 2));
  srv.add_task_instance(
    fx::task_instance("etl_daily", run, "load", "upstream_failed", 0));
  srv.add_task_instance(
    fx::task_instance("etl_daily", run, "fanout", "failed", 1, 0));
  srv.add_task_instance(
    fx::task_instance("etl_daily", run, "fanout", "success", 1, 1));
  srv.set_log("etl_daily", run, "transform", 1,
              {"first try: connection reset", "giving up on try 1"});
  srv.set_log(
    "etl_daily", run, "transform", 2,
    {fx::log_line("2025-03-02T08:31:00Z", "info", "Executing transform"),
     fx::log_line("2025-03-02T08:31:05Z", "error",
                  "Task failed with exception"),
     json{{"timestamp", "2025-03-02T08:31:05Z"},
          {"level", "error"},
          {"event", "KeyError: 'amount'"},
          {"error_detail", {{{"exc_type", "KeyError"}}}}}});
  srv.set_log("etl_daily", run, "fanout", 1,
              {fx::log_line("2025-03-02T08:32:00Z", "info", "mapped 0")}, 0);
}

json connection(const fake_airflow_server& srv, json extra = json::object()) {
  json c{{"base_url", srv.base_url()},
         {"username", srv.opts().username},
         {"password_env", password_var},
         {"timeout", "10s"},
         {"retry_backoff", "5ms"}};
  c.update(extra);
  return c;
}

std::unique_ptr<tool> make_airflow(const json& settings) {
  tool_registry registry;
  register_builtin_tools(registry);
  auto t = registry.create("airflow", json_value{settings});
  if (!t)
    ADD_FAILURE() << describe(t.error());
  return t ? std::move(*t) : nullptr;
}

/// A fake server with the seed data and a tool whose "default" connection
/// reaches it.
struct airflow_env {
  fake_airflow_server srv;
  std::unique_ptr<tool> airflow;

  explicit airflow_env(fake_airflow_server::options opts = {},
                       json conn_extra = json::object(),
                       json settings_extra = json::object())
    : srv(spec_dir(), std::move(opts)) {
    ::setenv(password_var, srv.opts().password.c_str(), 1);
    seed(srv);
    json settings{{"connections",
                   {{"default", connection(srv, std::move(conn_extra))}}}};
    settings.update(settings_extra);
    airflow = make_airflow(settings);
  }

  expected<json> run(json input) {
    tool_context ctx;
    auto out = airflow->invoke(json_value{std::move(input)}, ctx);
    if (!out)
      return out.error();
    return out->get();
  }
};

bool contains(const std::string& haystack, const std::string& needle) {
  return haystack.find(needle) != std::string::npos;
}

std::vector<std::string> run_ids(const json& out) {
  std::vector<std::string> ids;
  for (const auto& r : out.at("dag_runs"))
    ids.push_back(r.at("dag_id").get<std::string>() + "/"
                  + r.at("dag_run_id").get<std::string>());
  return ids;
}

/// Adds `n` failed runs of etl_daily, ending one minute apart.
void add_failed_runs(fake_airflow_server& srv, int n) {
  for (int i = 0; i < n; ++i) {
    char end[32];
    std::snprintf(end, sizeof end, "2025-04-01T00:%02d:00Z", i);
    srv.add_run(fx::dag_run("etl_daily", "bulk_" + std::to_string(i),
                            "failed", "2025-04-01T00:00:00Z", end));
  }
}

} // namespace

// -- operations ------------------------------------------------------------

TEST(AirflowTool, FailedRunsOfOneDagComeNewestFirst) {
  airflow_env env;
  ASSERT_NE(env.airflow, nullptr);
  EXPECT_TRUE(env.airflow->blocking());
  auto out = env.run({{"operation", "failed_runs"}, {"dag_id", "etl_daily"}});
  ASSERT_TRUE(out) << describe(out.error());
  EXPECT_EQ(run_ids(*out),
            (std::vector<std::string>{"etl_daily/" + failed_manual_run,
                                      "etl_daily/" + failed_scheduled_run}));
  EXPECT_EQ(out->at("total_entries"), 2);
  EXPECT_EQ(out->at("truncated"), false);
  EXPECT_EQ(out->at("dag_id"), "etl_daily");
  // Airflow's objects come through with their field names.
  EXPECT_EQ(out->at("dag_runs")[0].at("state"), "failed");
  EXPECT_EQ(out->at("dag_runs")[0].at("run_after"), "2025-03-02T08:30:00Z");
  auto lists = env.srv.calls();
  auto list = std::find_if(lists.begin(), lists.end(), [](const auto& c) {
    return c.path == "/api/v2/dags/etl_daily/dagRuns";
  });
  ASSERT_NE(list, lists.end());
  EXPECT_EQ(list->query.count("state"), 1u);
  EXPECT_EQ(list->query.find("state")->second, "failed");
  EXPECT_EQ(list->query.find("order_by")->second, "-end_date");
}

TEST(AirflowTool, FailedRunsOfEveryDagAskForTilde) {
  airflow_env env;
  auto out = env.run({{"operation", "failed_runs"}});
  ASSERT_TRUE(out) << describe(out.error());
  EXPECT_EQ(out->at("dag_id"), "~");
  EXPECT_EQ(run_ids(*out),
            (std::vector<std::string>{
              "etl_daily/" + failed_manual_run,
              "reports/scheduled__2025-03-01T00:00:00+00:00",
              "etl_daily/" + failed_scheduled_run}));
  EXPECT_EQ(env.srv.count("/api/v2/dags/~/dagRuns"), 1u);
}

TEST(AirflowTool, FailedRunsSinceKeepThoseThatEndedLater) {
  airflow_env env;
  auto out = env.run({{"operation", "failed_runs"},
                      {"since", "2025-03-01T06:00:00+02:00"}});
  ASSERT_TRUE(out) << describe(out.error());
  EXPECT_EQ(run_ids(*out),
            (std::vector<std::string>{
              "etl_daily/" + failed_manual_run,
              "reports/scheduled__2025-03-01T00:00:00+00:00"}));
  auto calls = env.srv.calls();
  EXPECT_TRUE(contains(calls.back().target,
                       "end_date_gte=2025-03-01T06%3A00%3A00%2B02%3A00"))
    << calls.back().target;
}

TEST(AirflowTool, FailedRunsPageThroughEveryPage) {
  fake_airflow_server::options opts;
  opts.max_page_limit = 3;
  airflow_env env{opts};
  add_failed_runs(env.srv, 10);
  auto out = env.run({{"operation", "failed_runs"}, {"dag_id", "etl_daily"}});
  ASSERT_TRUE(out) << describe(out.error());
  auto ids = run_ids(*out);
  ASSERT_EQ(ids.size(), 12u);
  EXPECT_EQ(ids.front(), "etl_daily/bulk_9");
  EXPECT_EQ(ids[9], "etl_daily/bulk_0");
  EXPECT_EQ(out->at("total_entries"), 12);
  EXPECT_EQ(out->at("truncated"), false);
  std::vector<std::string> offsets;
  for (const auto& c : env.srv.calls())
    if (c.path == "/api/v2/dags/etl_daily/dagRuns")
      offsets.push_back(c.query.find("offset")->second);
  EXPECT_EQ(offsets, (std::vector<std::string>{"0", "3", "6", "9"}));
}

TEST(AirflowTool, FailedRunsStopAtMaxAndSaySo) {
  fake_airflow_server::options opts;
  opts.max_page_limit = 3;
  airflow_env env{opts};
  add_failed_runs(env.srv, 10);
  auto out = env.run({{"operation", "failed_runs"},
                      {"dag_id", "etl_daily"},
                      {"max", 4}});
  ASSERT_TRUE(out) << describe(out.error());
  EXPECT_EQ(run_ids(*out),
            (std::vector<std::string>{"etl_daily/bulk_9", "etl_daily/bulk_8",
                                      "etl_daily/bulk_7",
                                      "etl_daily/bulk_6"}));
  EXPECT_EQ(out->at("truncated"), true);
  EXPECT_EQ(out->at("total_entries"), 12);
  // The second page asks only for what is still wanted.
  auto calls = env.srv.calls();
  EXPECT_EQ(calls.back().query.find("limit")->second, "1");
  // All of them is not truncated.
  auto all = env.run({{"operation", "failed_runs"},
                      {"dag_id", "etl_daily"},
                      {"max", 12}});
  ASSERT_TRUE(all) << describe(all.error());
  EXPECT_EQ(all->at("truncated"), false);
  EXPECT_EQ(all->at("dag_runs").size(), 12u);
}

TEST(AirflowTool, FailedTasksOfARunWithItsIdPercentEncoded) {
  airflow_env env;
  auto out = env.run({{"operation", "failed_tasks"},
                      {"dag_id", "etl_daily"},
                      {"dag_run_id", failed_manual_run}});
  ASSERT_TRUE(out) << describe(out.error());
  std::vector<std::string> tasks;
  for (const auto& ti : out->at("task_instances"))
    tasks.push_back(ti.at("task_id").get<std::string>() + "["
                    + std::to_string(ti.at("map_index").get<int>()) + "]#"
                    + std::to_string(ti.at("try_number").get<int>()));
  EXPECT_EQ(tasks, (std::vector<std::string>{"transform[-1]#2",
                                             "fanout[0]#1"}));
  EXPECT_EQ(out->at("total_entries"), 2);
  EXPECT_EQ(out->at("dag_run_id"), failed_manual_run);
  auto calls = env.srv.calls();
  EXPECT_TRUE(contains(calls.back().target,
                       "/api/v2/dags/etl_daily/dagRuns/"
                       "manual__2025-03-02T08%3A30%3A00%2B00%3A00/"
                       "taskInstances?state=failed"))
    << calls.back().target;
}

TEST(AirflowTool, TaskLogReadsTheLatestTryAsText) {
  airflow_env env;
  auto out = env.run({{"operation", "task_log"},
                      {"dag_id", "etl_daily"},
                      {"dag_run_id", failed_manual_run},
                      {"task_id", "transform"}});
  ASSERT_TRUE(out) << describe(out.error());
  EXPECT_EQ(out->at("try_number"), 2);
  EXPECT_EQ(out->at("map_index"), -1);
  EXPECT_EQ(out->at("truncated"), false);
  EXPECT_EQ(out->at("log"),
            "[2025-03-02T08:31:00Z] INFO airflow.task - Executing transform\n"
            "[2025-03-02T08:31:05Z] ERROR airflow.task - Task failed with "
            "exception\n"
            "[2025-03-02T08:31:05Z] ERROR - KeyError: 'amount' "
            "{\"error_detail\":[{\"exc_type\":\"KeyError\"}]}\n");
  EXPECT_EQ(out->at("total_bytes"), out->at("log").get<std::string>().size());
  EXPECT_EQ(env.srv.count("/api/v2/dags/etl_daily/dagRuns/" + failed_manual_run
                          + "/taskInstances/transform/logs/2"),
            1u);
}

TEST(AirflowTool, TaskLogOfAnEarlierTryAndOfAMappedTask) {
  airflow_env env;
  auto first = env.run({{"operation", "task_log"},
                        {"dag_id", "etl_daily"},
                        {"dag_run_id", failed_manual_run},
                        {"task_id", "transform"},
                        {"try_number", 1}});
  ASSERT_TRUE(first) << describe(first.error());
  EXPECT_EQ(first->at("log"),
            "first try: connection reset\ngiving up on try 1\n");
  auto mapped = env.run({{"operation", "task_log"},
                         {"dag_id", "etl_daily"},
                         {"dag_run_id", failed_manual_run},
                         {"task_id", "fanout"},
                         {"map_index", 0}});
  ASSERT_TRUE(mapped) << describe(mapped.error());
  EXPECT_EQ(mapped->at("try_number"), 1);
  EXPECT_EQ(mapped->at("log"),
            "[2025-03-02T08:32:00Z] INFO airflow.task - mapped 0\n");
}

TEST(AirflowTool, TaskLogFollowsContinuationTokens) {
  fake_airflow_server::options opts;
  opts.log_page_lines = 2;
  airflow_env env{opts};
  json lines = json::array();
  for (int i = 0; i < 5; ++i)
    lines.push_back("line " + std::to_string(i));
  env.srv.set_log("etl_daily", failed_manual_run, "extract", 1, lines);
  auto out = env.run({{"operation", "task_log"},
                      {"dag_id", "etl_daily"},
                      {"dag_run_id", failed_manual_run},
                      {"task_id", "extract"},
                      {"try_number", 1}});
  ASSERT_TRUE(out) << describe(out.error());
  EXPECT_EQ(out->at("log"), "line 0\nline 1\nline 2\nline 3\nline 4\n");
  std::vector<std::string> tokens;
  for (const auto& c : env.srv.calls())
    if (contains(c.path, "/logs/"))
      tokens.push_back(c.query.count("token") ? c.query.find("token")->second
                                              : "");
  EXPECT_EQ(tokens, (std::vector<std::string>{"", "page-2", "page-4"}));
}

TEST(AirflowTool, LongTaskLogKeepsItsTail) {
  airflow_env env;
  json lines = json::array();
  for (int i = 0; i < 2000; ++i)
    lines.push_back(fx::log_line("2025-03-02T08:31:00Z", "info",
                                 "progress " + std::to_string(i)));
  lines.push_back(
    fx::log_line("2025-03-02T08:40:00Z", "error", "the real failure"));
  env.srv.set_log("etl_daily", failed_manual_run, "extract", 1, lines);
  auto out = env.run({{"operation", "task_log"},
                      {"dag_id", "etl_daily"},
                      {"dag_run_id", failed_manual_run},
                      {"task_id", "extract"},
                      {"max_bytes", 1000}});
  ASSERT_TRUE(out) << describe(out.error());
  auto log = out->at("log").get<std::string>();
  EXPECT_EQ(out->at("truncated"), true);
  EXPECT_LE(log.size(), 1000u);
  EXPECT_GT(log.size(), 800u);
  EXPECT_GT(out->at("total_bytes").get<uint64_t>(), 100'000u);
  // The end is kept, from the start of a line.
  EXPECT_TRUE(contains(log, "ERROR airflow.task - the real failure\n"));
  EXPECT_EQ(log.rfind("[2025-03-02T08:40:00Z]"),
            log.size() - std::string{"[2025-03-02T08:40:00Z] ERROR "
                                     "airflow.task - the real failure\n"}
                           .size());
  EXPECT_EQ(log.front(), '[');
  EXPECT_TRUE(contains(log, "progress 1999\n"));
}

TEST(AirflowTool, DagDetailsAndSource) {
  airflow_env env;
  auto dag = env.run({{"operation", "dag"}, {"dag_id", "etl_daily"}});
  ASSERT_TRUE(dag) << describe(dag.error());
  EXPECT_EQ(dag->at("dag_id"), "etl_daily");
  EXPECT_EQ(dag->at("description"), "Loads the warehouse");
  EXPECT_EQ(dag->at("fileloc"), "/opt/airflow/dags/etl_daily.py");
  auto source = env.run({{"operation", "dag_source"}, {"dag_id", "etl_daily"}});
  ASSERT_TRUE(source) << describe(source.error());
  EXPECT_EQ(source->at("dag_id"), "etl_daily");
  EXPECT_TRUE(contains(source->at("content").get<std::string>(),
                       "def etl_daily():"));
  EXPECT_EQ(source->at("version_number"), 1);
  auto calls = env.srv.calls();
  EXPECT_EQ(calls.back().path, "/api/v2/dagSources/etl_daily");
  EXPECT_EQ(calls.back().accept, "application/json");
  auto old = env.run({{"operation", "dag_source"},
                      {"dag_id", "etl_daily"},
                      {"version_number", 7}});
  ASSERT_FALSE(old);
  EXPECT_EQ(code_of(old.error()), errc::not_found);
}

TEST(AirflowTool, VersionAndHealthNeedNoToken) {
  airflow_env env;
  auto version = env.run({{"operation", "version"}});
  ASSERT_TRUE(version) << describe(version.error());
  EXPECT_EQ(version->at("version"), "3.2.1");
  auto health = env.run({{"operation", "health"}});
  ASSERT_TRUE(health) << describe(health.error());
  EXPECT_EQ(health->at("metadatabase").at("status"), "healthy");
  EXPECT_EQ(env.srv.token_requests(), 0u);
  for (const auto& c : env.srv.calls())
    EXPECT_EQ(c.authorization, "") << c.path;
}

// -- clear -------------------------------------------------------------------

TEST(AirflowTool, ClearIsADryRunByDefault) {
  airflow_env env;
  auto out = env.run({{"operation", "clear"},
                      {"dag_id", "etl_daily"},
                      {"dag_run_id", failed_manual_run}});
  ASSERT_TRUE(out) << describe(out.error());
  EXPECT_EQ(out->at("dry_run"), true);
  std::vector<std::string> tasks;
  for (const auto& ti : out->at("task_instances"))
    tasks.push_back(ti.at("task_id").get<std::string>());
  EXPECT_EQ(tasks, (std::vector<std::string>{"transform", "load", "fanout"}));
  EXPECT_EQ(out->at("total_entries"), 3);
  auto clears = env.srv.clears();
  ASSERT_EQ(clears.size(), 1u);
  EXPECT_TRUE(clears[0].valid);
  EXPECT_EQ(clears[0].body,
            (json{{"dry_run", true}, {"dag_run_id", failed_manual_run}}));
  EXPECT_EQ(env.srv.task_instance("etl_daily", failed_manual_run,
                                  "transform")["state"],
            "failed");
}

TEST(AirflowTool, RealClearWithoutConfirmIsRefused) {
  airflow_env env;
  auto out = env.run({{"operation", "clear"},
                      {"dag_id", "etl_daily"},
                      {"dag_run_id", failed_manual_run},
                      {"dry_run", false}});
  ASSERT_FALSE(out);
  EXPECT_EQ(code_of(out.error()), errc::invalid_input);
  EXPECT_EQ(message_of(out.error()),
            "tool airflow: /confirm: a real clear (dry_run false) is refused "
            "unless confirm is true");
  auto unconfirmed = env.run({{"operation", "clear"},
                              {"dag_id", "etl_daily"},
                              {"dry_run", false},
                              {"confirm", false}});
  ASSERT_FALSE(unconfirmed);
  EXPECT_EQ(code_of(unconfirmed.error()), errc::invalid_input);
  EXPECT_TRUE(env.srv.clears().empty());
  // confirm alone does not turn a dry run into a real one.
  auto dry = env.run({{"operation", "clear"},
                      {"dag_id", "etl_daily"},
                      {"confirm", true}});
  ASSERT_TRUE(dry) << describe(dry.error());
  EXPECT_EQ(dry->at("dry_run"), true);
  ASSERT_EQ(env.srv.clears().size(), 1u);
  EXPECT_TRUE(env.srv.clears()[0].dry_run);
  EXPECT_EQ(env.srv.task_instance("etl_daily", failed_manual_run,
                                  "transform")["state"],
            "failed");
}

TEST(AirflowTool, ConfirmedClearClearsWithABodyTheSpecAccepts) {
  airflow_env env;
  auto out = env.run({{"operation", "clear"},
                      {"dag_id", "etl_daily"},
                      {"dag_run_id", failed_manual_run},
                      {"task_ids", {"transform", {"fanout", 0}}},
                      {"include_downstream", true},
                      {"dry_run", false},
                      {"confirm", true}});
  ASSERT_TRUE(out) << describe(out.error());
  EXPECT_EQ(out->at("dry_run"), false);
  EXPECT_EQ(out->at("total_entries"), 2);
  auto clears = env.srv.clears();
  ASSERT_EQ(clears.size(), 1u);
  EXPECT_TRUE(clears[0].valid);
  EXPECT_FALSE(clears[0].dry_run);
  EXPECT_EQ(clears[0].body,
            (json{{"dry_run", false},
                  {"dag_run_id", failed_manual_run},
                  {"task_ids", {"transform", {"fanout", 0}}},
                  {"include_downstream", true}}));
  EXPECT_TRUE(env.srv.task_instance("etl_daily", failed_manual_run,
                                    "transform")["state"]
                .is_null());
  EXPECT_TRUE(env.srv.task_instance("etl_daily", failed_manual_run, "fanout",
                                    0)["state"]
                .is_null());
}

TEST(AirflowTool, RealClearIsNotRetried) {
  airflow_env env;
  env.srv.fail({"POST", "/api/v2/dags/etl_daily/clearTaskInstances", 503,
                "Service Unavailable", 5});
  auto out = env.run({{"operation", "clear"},
                      {"dag_id", "etl_daily"},
                      {"dry_run", false},
                      {"confirm", true}});
  ASSERT_FALSE(out);
  EXPECT_EQ(code_of(out.error()), errc::unavailable);
  EXPECT_EQ(env.srv.count("/api/v2/dags/etl_daily/clearTaskInstances"), 1u);
  // A dry run is retried.
  auto dry = env.run({{"operation", "clear"}, {"dag_id", "etl_daily"}});
  ASSERT_FALSE(dry);
  EXPECT_EQ(env.srv.count("/api/v2/dags/etl_daily/clearTaskInstances"), 4u);
}

// -- authentication --------------------------------------------------------

TEST(AirflowTool, TokenIsFetchedOnceAndSentAsBearer) {
  airflow_env env;
  ASSERT_TRUE(env.run({{"operation", "dag"}, {"dag_id", "etl_daily"}}));
  ASSERT_TRUE(env.run({{"operation", "dag"}, {"dag_id", "reports"}}));
  EXPECT_EQ(env.srv.token_requests(), 1u);
  auto calls = env.srv.calls();
  ASSERT_EQ(calls.front().path, "/auth/token");
  EXPECT_EQ(json::parse(calls.front().body),
            (json{{"username", "admin"},
                  {"password", env.srv.opts().password}}));
  EXPECT_TRUE(contains(calls.back().authorization, "Bearer eyJ"))
    << calls.back().authorization;
}

TEST(AirflowTool, ExpiredTokenIsRenewedOnce) {
  airflow_env env;
  ASSERT_TRUE(env.run({{"operation", "dag"}, {"dag_id", "etl_daily"}}));
  env.srv.expire_tokens();
  auto out = env.run({{"operation", "failed_runs"}, {"dag_id", "etl_daily"}});
  ASSERT_TRUE(out) << describe(out.error());
  EXPECT_EQ(out->at("dag_runs").size(), 2u);
  EXPECT_EQ(env.srv.token_requests(), 2u);
  // The refused request, then the same one with the new token.
  EXPECT_EQ(env.srv.count("/api/v2/dags/etl_daily/dagRuns"), 2u);
}

TEST(AirflowTool, TokenRefusedAfterRenewalIsUnauthorized) {
  airflow_env env;
  ASSERT_TRUE(env.run({{"operation", "version"}}));
  ASSERT_TRUE(env.run({{"operation", "dag"}, {"dag_id", "etl_daily"}}));
  env.srv.fail({"GET", "/api/v2/dags/reports", 401, "Invalid JWT token", 10});
  auto out = env.run({{"operation", "dag"}, {"dag_id", "reports"}});
  ASSERT_FALSE(out);
  EXPECT_EQ(code_of(out.error()), errc::unauthorized);
  auto msg = message_of(out.error());
  EXPECT_TRUE(contains(msg, "GET /api/v2/dags/reports/details")) << msg;
  EXPECT_TRUE(contains(msg, "Invalid JWT token")) << msg;
  EXPECT_EQ(env.srv.token_requests(), 2u);
  EXPECT_EQ(env.srv.count("/api/v2/dags/reports/details"), 2u);
}

TEST(AirflowTool, WrongPasswordIsUnauthorizedAndNeverShown) {
  airflow_env env;
  const std::string wrong = "Wrong-pw-91c2";
  ::setenv(password_var, wrong.c_str(), 1);
  auto out = env.run({{"operation", "dag"}, {"dag_id", "etl_daily"}});
  ASSERT_FALSE(out);
  EXPECT_EQ(code_of(out.error()), errc::unauthorized);
  auto msg = message_of(out.error());
  EXPECT_TRUE(contains(msg, "POST /auth/token")) << msg;
  EXPECT_TRUE(contains(msg, "Invalid credentials")) << msg;
  EXPECT_TRUE(contains(msg, password_var)) << msg;
  EXPECT_FALSE(contains(msg, wrong)) << msg;
  EXPECT_EQ(env.srv.token_requests(), 1u);
}

TEST(AirflowTool, MissingPasswordVariableIsInvalidConfig) {
  airflow_env env;
  ::unsetenv(password_var);
  auto out = env.run({{"operation", "dag"}, {"dag_id", "etl_daily"}});
  ASSERT_FALSE(out);
  EXPECT_EQ(code_of(out.error()), errc::invalid_config);
  EXPECT_EQ(message_of(out.error()),
            "tool airflow: connection 'default': the environment variable "
            "CADRE_TEST_AIRFLOW_PASSWORD "
            "(tools.airflow.connections.default.password_env) is not set or "
            "empty");
  EXPECT_EQ(env.srv.calls().size(), 0u);
}

TEST(AirflowTool, StaticTokenFromTheEnvironment) {
  fake_airflow_server::options opts;
  opts.static_token = "static-Tok-5d1e";
  airflow_env env{opts,
                  {{"auth", "token"},
                   {"token_env", "CADRE_TEST_AIRFLOW_TOKEN"}}};
  ::setenv("CADRE_TEST_AIRFLOW_TOKEN", opts.static_token.c_str(), 1);
  auto out = env.run({{"operation", "dag"}, {"dag_id", "etl_daily"}});
  ASSERT_TRUE(out) << describe(out.error());
  EXPECT_EQ(env.srv.token_requests(), 0u);
  EXPECT_EQ(env.srv.calls().back().authorization, "Bearer static-Tok-5d1e");
}

TEST(AirflowTool, BasicAuthOnAirflow2) {
  // Airflow 2's /api/v1 with the basic_auth backend: a few canned answers.
  loopback_server srv;
  std::mutex mtx;
  std::vector<std::string> auths, targets;
  auto record = [&](const httplib::Request& req) {
    std::lock_guard<std::mutex> guard{mtx};
    auths.push_back(req.get_header_value("Authorization"));
    targets.push_back(req.target);
  };
  srv.server().Get("/api/v1/health", [&](const httplib::Request& req,
                                         httplib::Response& res) {
    record(req);
    res.set_content(R"({"metadatabase":{"status":"healthy"}})",
                    "application/json");
  });
  srv.server().Get("/api/v1/dags/etl/dagRuns",
                   [&](const httplib::Request& req, httplib::Response& res) {
                     record(req);
                     res.set_content(
                       R"({"dag_runs":[{"dag_id":"etl","dag_run_id":"r1",)"
                       R"("state":"failed"}],"total_entries":1})",
                       "application/json");
                   });
  srv.server().Get("/api/v1/dags/etl", [&](const httplib::Request& req,
                                           httplib::Response& res) {
    record(req);
    res.set_content(R"({"dag_id":"etl","file_token":"tok.en"})",
                    "application/json");
  });
  srv.server().Get("/api/v1/dagSources/tok.en",
                   [&](const httplib::Request& req, httplib::Response& res) {
                     record(req);
                     res.set_content(R"js({"content":"print('etl')"})js",
                                     "application/json");
                   });
  srv.start();
  ::setenv(password_var, "v1-Pass-word", 1);
  auto airflow = make_airflow(
    json{{"connections",
          {{"old",
            {{"base_url", srv.url("/")},
             {"api_version", "v1"},
             {"username", "admin"},
             {"password_env", password_var}}}}}});
  ASSERT_NE(airflow, nullptr);
  tool_context ctx;
  auto health = airflow->invoke(
    json_value{json{{"operation", "health"}, {"connection", "old"}}}, ctx);
  ASSERT_TRUE(health) << describe(health.error());
  auto runs = airflow->invoke(json_value{json{{"operation", "failed_runs"},
                                              {"connection", "old"},
                                              {"dag_id", "etl"}}},
                              ctx);
  ASSERT_TRUE(runs) << describe(runs.error());
  EXPECT_EQ(runs->get().at("dag_runs").size(), 1u);
  auto source = airflow->invoke(json_value{json{{"operation", "dag_source"},
                                                {"connection", "old"},
                                                {"dag_id", "etl"}}},
                                ctx);
  ASSERT_TRUE(source) << describe(source.error());
  EXPECT_EQ(source->get(),
            (json{{"dag_id", "etl"}, {"content", "print('etl')"}}));
  std::lock_guard<std::mutex> guard{mtx};
  ASSERT_EQ(auths.size(), 4u);
  EXPECT_EQ(auths[0], "");
  // base64("admin:v1-Pass-word")
  EXPECT_EQ(auths[1], "Basic YWRtaW46djEtUGFzcy13b3Jk");
  EXPECT_EQ(targets[1],
            "/api/v1/dags/etl/dagRuns?state=failed&order_by=-end_date&limit="
            "100&offset=0");
}

// -- errors ----------------------------------------------------------------

TEST(AirflowTool, NotFoundNamesTheEndpointAndTheDetail) {
  airflow_env env;
  auto out = env.run({{"operation", "dag"}, {"dag_id", "nope"}});
  ASSERT_FALSE(out);
  EXPECT_EQ(code_of(out.error()), errc::not_found);
  EXPECT_EQ(message_of(out.error()),
            "tool airflow: GET /api/v2/dags/nope/details (connection "
            "'default'): HTTP 404: The Dag with ID: `nope` was not found");
  auto run = env.run({{"operation", "failed_tasks"},
                      {"dag_id", "etl_daily"},
                      {"dag_run_id", "no+such:run"}});
  ASSERT_FALSE(run);
  EXPECT_EQ(code_of(run.error()), errc::not_found);
  EXPECT_TRUE(contains(message_of(run.error()),
                       "GET /api/v2/dags/etl_daily/dagRuns/no%2Bsuch%3Arun/"
                       "taskInstances"))
    << message_of(run.error());
}

TEST(AirflowTool, ServerErrorsAreRetriedThenUnavailable) {
  airflow_env env{{}, {{"max_retries", 2}}};
  env.srv.fail({"GET", "/api/v2/dags/etl_daily/details", 500,
                "database is gone", 10});
  auto out = env.run({{"operation", "dag"}, {"dag_id", "etl_daily"}});
  ASSERT_FALSE(out);
  EXPECT_EQ(code_of(out.error()), errc::unavailable);
  EXPECT_EQ(message_of(out.error()),
            "tool airflow: GET /api/v2/dags/etl_daily/details (connection "
            "'default'): HTTP 500 after 3 attempts: database is gone");
  EXPECT_EQ(env.srv.count("/api/v2/dags/etl_daily/details"), 3u);
}

TEST(AirflowTool, ServerErrorThenSuccessIsRetried) {
  airflow_env env;
  env.srv.fail({"GET", "/api/v2/dags/etl_daily/details", 500, "blip", 1});
  auto out = env.run({{"operation", "dag"}, {"dag_id", "etl_daily"}});
  ASSERT_TRUE(out) << describe(out.error());
  EXPECT_EQ(out->at("dag_id"), "etl_daily");
  EXPECT_EQ(env.srv.count("/api/v2/dags/etl_daily/details"), 2u);
}

TEST(AirflowTool, RetryAfterBeyondTheLimitEndsTheRetries) {
  airflow_env env;
  airflow_failure f{"GET", "/api/v2/dags/etl_daily/details", 429,
                    "Too Many Requests", 5};
  f.retry_after = "3600";
  env.srv.fail(f);
  auto out = env.run({{"operation", "dag"}, {"dag_id", "etl_daily"}});
  ASSERT_FALSE(out);
  EXPECT_EQ(code_of(out.error()), errc::rate_limited);
  EXPECT_TRUE(contains(message_of(out.error()), "HTTP 429: Too Many Requests"))
    << message_of(out.error());
  EXPECT_EQ(env.srv.count("/api/v2/dags/etl_daily/details"), 1u);
}

TEST(AirflowTool, SlowReplyIsATimeoutNamingTheSetting) {
  airflow_env env{{}, {{"timeout", "200ms"}, {"max_retries", 0}}};
  ASSERT_TRUE(env.run({{"operation", "version"}}));
  airflow_failure slow{"GET", "/api/v2/version", 0, "", 1};
  slow.delay = std::chrono::milliseconds{5000};
  env.srv.fail(slow);
  auto out = env.run({{"operation", "version"}});
  ASSERT_FALSE(out);
  EXPECT_EQ(code_of(out.error()), errc::timeout);
  auto msg = message_of(out.error());
  EXPECT_TRUE(contains(msg, "/api/v2/version")) << msg;
  EXPECT_TRUE(contains(msg, "tools.airflow.connections.default.timeout"))
    << msg;
}

TEST(AirflowTool, PasswordNeverReachesOutputsOrErrors) {
  fake_airflow_server::options opts;
  opts.password = "Sup3r-Secret-pw-e71d";
  airflow_env env{opts};
  const auto& pw = opts.password;
  // A log line and an error detail that echo the password (a connection
  // string printed by a task, a server that repeats its input).
  env.srv.set_log("etl_daily", failed_manual_run, "extract", 1,
                  {"connecting with postgres://etl:" + pw + "@db/warehouse"});
  std::vector<std::string> texts;
  auto keep = [&](const expected<json>& r) {
    texts.push_back(r ? r->dump() : describe(r.error()));
  };
  keep(env.run({{"operation", "task_log"},
                {"dag_id", "etl_daily"},
                {"dag_run_id", failed_manual_run},
                {"task_id", "extract"},
                {"try_number", 1}}));
  EXPECT_TRUE(contains(texts.back(), "postgres://etl:[redacted]@db"))
    << texts.back();
  for (const char* op : {"failed_runs", "version", "health"})
    keep(env.run({{"operation", op}}));
  keep(env.run({{"operation", "dag"}, {"dag_id", "etl_daily"}}));
  keep(env.run({{"operation", "dag_source"}, {"dag_id", "etl_daily"}}));
  keep(env.run({{"operation", "clear"}, {"dag_id", "etl_daily"}}));
  env.srv.fail({"GET", "/api/v2/dags/reports", 500,
                "cannot log in as admin/" + pw, 10});
  keep(env.run({{"operation", "dag"}, {"dag_id", "reports"}}));
  EXPECT_TRUE(contains(texts.back(), "cannot log in as admin/[redacted]"))
    << texts.back();
  env.srv.fail({"POST", "/auth/token", 500, "bad password " + pw, 10});
  env.srv.expire_tokens();
  keep(env.run({{"operation", "dag"}, {"dag_id", "etl_daily"}}));
  ::setenv(password_var, ("x" + pw).c_str(), 1);
  keep(env.run({{"operation", "dag"}, {"dag_id", "etl_daily"}}));
  ASSERT_EQ(texts.size(), 10u);
  for (const auto& text : texts) {
    EXPECT_FALSE(contains(text, pw)) << text;
    EXPECT_FALSE(contains(text, "eyJhbGciOiJIUzUxMiJ9")) << text;
  }
}

TEST(AirflowTool, InputIsCheckedByItsSchema) {
  airflow_env env;
  struct bad_case {
    json input;
    std::string fragment;
  };
  const bad_case cases[] = {
    {json::object(), "operation"},
    {{{"operation", "reboot"}}, "/operation"},
    {{{"operation", "task_log"}, {"dag_id", "etl_daily"}}, "dag_run_id"},
    {{{"operation", "dag"}}, "dag_id"},
    {{{"operation", "dag"}, {"dag_id", "etl_daily"}, {"task_id", "x"}},
     "task_id"},
    {{{"operation", "failed_runs"}, {"since", "yesterday"}}, "/since"},
    {{{"operation", "failed_runs"}, {"max", 0}}, "/max"},
    {{{"operation", "task_log"},
      {"dag_id", "etl_daily"},
      {"dag_run_id", "r"},
      {"task_id", "t"},
      {"max_bytes", 1u << 30}},
     "/max_bytes"},
    {{{"operation", "clear"}, {"dag_id", "etl_daily"}, {"dry_run", "no"}},
     "/dry_run"},
    {{{"operation", "version"}, {"connection", "prod"}}, "/connection"},
    {{{"operation", "version"}, {"colour", "blue"}}, "colour"},
  };
  for (const auto& c : cases) {
    auto out = env.run(c.input);
    ASSERT_FALSE(out) << c.input.dump();
    EXPECT_EQ(code_of(out.error()), errc::invalid_input) << c.input.dump();
    auto msg = message_of(out.error());
    EXPECT_TRUE(contains(msg, "tool airflow: ")) << msg;
    EXPECT_TRUE(contains(msg, c.fragment)) << c.input.dump() << ": " << msg;
  }
  EXPECT_TRUE(env.srv.calls().empty());
}

TEST(AirflowTool, DescriptionDeclaresTheOperationsAndTheRefusal) {
  airflow_env env;
  auto d = env.airflow->describe();
  EXPECT_EQ(d.name, "airflow");
  const auto& props = d.input_schema.at("properties");
  EXPECT_EQ(props.at("operation").at("enum"),
            (json{"failed_runs", "failed_tasks", "task_log", "dag",
                  "dag_source", "clear", "version", "health"}));
  EXPECT_EQ(props.at("connection").at("enum"), (json{"default"}));
  EXPECT_TRUE(contains(props.at("dry_run").at("description").get<std::string>(),
                       "A real clear needs dry_run false AND confirm true"));
  EXPECT_TRUE(contains(d.description, "confirm true"));
}

TEST(AirflowTool, SettingsErrorsNameTheKey) {
  struct bad_case {
    json settings;
    std::string message;
  };
  const bad_case cases[] = {
    {json{{"connections", {{"prod", {{"username", "a"}}}}}},
     "tools.airflow.connections.prod.base_url: is required (e.g. "
     "http://airflow:8080)"},
    {json{{"connections",
           {{"prod",
             {{"base_url", "ftp://x"}, {"username", "a"},
              {"password_env", "P"}}}}}},
     "tools.airflow.connections.prod.base_url: must start with http:// or "
     "https://"},
    {json{{"connections",
           {{"prod",
             {{"base_url", "http://u:secret@x"}, {"username", "a"},
              {"password_env", "P"}}}}}},
     "tools.airflow.connections.prod.base_url: must not hold credentials "
     "(use username and password_env)"},
    {json{{"connections",
           {{"prod", {{"base_url", "http://x"}, {"password_env", "P"}}}}}},
     "tools.airflow.connections.prod.username: is required with auth jwt"},
    {json{{"connections",
           {{"prod",
             {{"base_url", "http://x"},
              {"username", "a"},
              {"password_env", "hunter2!"}}}}}},
     "tools.airflow.connections.prod.password_env: must be the name of an "
     "environment variable (letters, digits and _), not the secret itself"},
    {json{{"connections",
           {{"prod", {{"base_url", "http://x"}, {"auth", "token"}}}}}},
     "tools.airflow.connections.prod.token_env: is required with auth token"},
    {json{{"connections",
           {{"prod",
             {{"base_url", "http://x"},
              {"api_version", "v1"},
              {"auth", "jwt"},
              {"username", "a"},
              {"password_env", "P"}}}}}},
     "tools.airflow.connections.prod.auth: Airflow 2 (api_version v1) has no "
     "/auth/token: use basic or token"},
    {json{{"connections",
           {{"prod",
             {{"base_url", "http://x"},
              {"username", "a"},
              {"password_env", "P"},
              {"timeout", "soon"}}}}}},
     "tools.airflow.connections.prod.timeout: must be a positive duration "
     "such as \"30s\", \"500ms\", \"2m\" or a number of milliseconds"},
    {json{{"connections",
           {{"prod",
             {{"base_url", "http://x"},
              {"username", "a"},
              {"password_env", "P"},
              {"max_retries", -1}}}}}},
     "tools.airflow.connections.prod.max_retries: must be an integer in "
     "[0, 10]"},
    {json{{"connections",
           {{"prod",
             {{"base_url", "http://x"},
              {"username", "a"},
              {"password", "P"}}}}}},
     "tools.airflow.connections.prod.password: unknown setting (known: "
     "api_version, auth, base_url, connect_timeout, max_retries, "
     "password_env, retry_backoff, timeout, token_env, username)"},
    {json{{"page_size", 0}},
     "tools.airflow.page_size: must be an integer in [1, 10000]"},
    {json{{"connections", "http://x"}},
     "tools.airflow.connections: must be an object"},
  };
  tool_registry registry;
  register_builtin_tools(registry);
  for (const auto& c : cases) {
    auto t = registry.create("airflow", json_value{c.settings});
    ASSERT_FALSE(t) << c.settings.dump();
    EXPECT_EQ(code_of(t.error()), errc::invalid_config);
    EXPECT_EQ(message_of(t.error()), c.message);
    EXPECT_FALSE(contains(message_of(t.error()), "hunter2"));
    EXPECT_FALSE(contains(message_of(t.error()), ":secret@"));
  }
}

TEST(AirflowTool, NoConnectionIsAnErrorNamingTheSetting) {
  auto airflow = make_airflow(json{});
  ASSERT_NE(airflow, nullptr);
  tool_context ctx;
  auto out = airflow->invoke(json_value{json{{"operation", "version"}}}, ctx);
  ASSERT_FALSE(out);
  EXPECT_EQ(code_of(out.error()), errc::invalid_input);
  EXPECT_EQ(message_of(out.error()),
            "tool airflow: /connection: no connection 'default' is "
            "configured (tools.airflow.connections is empty)");
}

// -- log text --------------------------------------------------------------

TEST(AirflowLog, StructuredLinesBecomeText) {
  using airflow::format_log_line;
  EXPECT_EQ(format_log_line(json{{"event", "hello"}}), "hello");
  EXPECT_EQ(format_log_line(json{{"event", "x"},
                                 {"timestamp", "2025-01-01T00:00:00Z"},
                                 {"level", "warning"}}),
            "[2025-01-01T00:00:00Z] WARNING - x");
  EXPECT_EQ(format_log_line(json{{"event", "x"}, {"lineno", 12}}),
            "x {\"lineno\":12}");
  EXPECT_EQ(format_log_line(json("plain\n")), "plain");
  EXPECT_EQ(format_log_line(json(42)), "42");
}

TEST(AirflowLog, TailKeepsWholeLinesAndCharacters) {
  airflow::log_tail short_tail{100};
  short_tail.add_line("one");
  short_tail.add_text("two\n");
  EXPECT_EQ(short_tail.text(), "one\ntwo\n");
  EXPECT_FALSE(short_tail.truncated());
  airflow::log_tail tail{10};
  tail.add_line("aaaaaaaaaaaaaaaa");
  tail.add_line("bb");
  tail.add_line("cc");
  EXPECT_TRUE(tail.truncated());
  EXPECT_EQ(tail.total_bytes(), 23u);
  EXPECT_EQ(tail.text(), "bb\ncc\n");
  // A cut at a line boundary keeps that line.
  airflow::log_tail exact{6};
  exact.add_line("zzzz");
  exact.add_line("bb");
  exact.add_line("cc");
  EXPECT_EQ(exact.text(), "bb\ncc\n");
  // One long line: its end, from a whole character.
  airflow::log_tail wide{5};
  wide.add_text("\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9");
  EXPECT_EQ(wide.text(), "\xc3\xa9\xc3\xa9");
}
