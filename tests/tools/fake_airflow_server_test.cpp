// The fake Airflow of tests/support answers in the shapes of the Airflow
// 3.2.1 OpenAPI spec: every answer the airflow tool's tests rely on is
// checked against the response schema the spec gives for its path, method
// and status, read from ../shared/specs/airflow at test time.

#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "fake_airflow_server.hpp"

using namespace cadre;
using cadre::test::fake_airflow_server;
using cadre::test::openapi_document;
namespace fx = cadre::test::airflow_fixture;
using nlohmann::json;

namespace {

std::string spec_dir() {
  return std::string{CADRE_SOURCE_DIR} + "/../shared/specs/airflow";
}

const std::string run_id = "manual__2025-03-02T08:30:00+00:00";
const std::string run_path = "manual__2025-03-02T08%3A30%3A00%2B00%3A00";

struct FakeAirflowServer : ::testing::Test {
  FakeAirflowServer()
    : core(openapi_document::load(spec_dir()
                                  + "/airflow-3.2.1-v2-rest-api.yaml")),
      auth(openapi_document::load(
        spec_dir() + "/v2-simple-auth-manager-generated.yaml")),
      srv(spec_dir()), cli(srv.base_url()) {
    srv.add_dag(fx::dag_details("etl_daily", "Loads"), "print('etl')\n");
    srv.add_run(fx::dag_run("etl_daily", run_id, "failed",
                            "2025-03-02T08:30:00Z", "2025-03-02T09:00:00Z"));
    srv.add_run(fx::dag_run("etl_daily", "scheduled__1", "running",
                            "2025-03-03T00:00:00Z", ""));
    srv.add_task_instance(
      fx::task_instance("etl_daily", run_id, "transform", "failed", 2));
    srv.add_task_instance(
      fx::task_instance("etl_daily", run_id, "load", std::nullopt, 0));
    srv.add_task_instance(
      fx::task_instance("etl_daily", run_id, "fanout", "failed", 1, 3));
    srv.set_log("etl_daily", run_id, "transform", 2,
                {fx::log_line("2025-03-02T08:31:05Z", "error", "boom"),
                 json{{"event", "no timestamp"}, {"chan", "stderr"}}});
    srv.set_log("etl_daily", run_id, "transform", 1, {"plain text line"});
    auto res = cli.Post("/auth/token",
                        json{{"username", "admin"},
                             {"password", srv.opts().password}}
                          .dump(),
                        "application/json");
    if (res && res->status == 201)
      token = json::parse(res->body).at("access_token").get<std::string>();
  }

  httplib::Headers bearer() const {
    return {{"Authorization", "Bearer " + token},
            {"Accept", "application/json"}};
  }

  /// Checks `res` against the spec's response `status` of `method` on
  /// `path` (a template of `doc`); returns the parsed body.
  json conforms(const httplib::Result& res, const openapi_document& doc,
                const std::string& path, const std::string& method,
                int status) {
    if (!res) {
      ADD_FAILURE() << method << " " << path << ": no answer";
      return {};
    }
    EXPECT_EQ(res->status, status) << method << " " << path << ": "
                                   << res->body;
    auto body = json::parse(res->body, nullptr, false);
    EXPECT_FALSE(body.is_discarded()) << res->body;
    auto schema = openapi_document::compile(
      doc.response_schema(path, method, status));
    auto errors = schema.validate(body);
    EXPECT_TRUE(errors.empty())
      << method << " " << path << " " << status << ": "
      << tools::to_string(errors) << "\n" << body.dump();
    return body;
  }

  /// The properties of `component` that `obj` lacks: Airflow sends every
  /// field, null when it has no value.
  std::vector<std::string> missing(const std::string& component,
                                   const json& obj) {
    std::vector<std::string> out;
    const auto& props = core.doc()["components"]["schemas"][component]
                                  ["properties"];
    for (const auto& [name, schema] : props.items())
      if (!obj.contains(name))
        out.push_back(name);
    return out;
  }

  openapi_document core;
  openapi_document auth;
  fake_airflow_server srv;
  httplib::Client cli;
  std::string token;
};

} // namespace

TEST_F(FakeAirflowServer, TokenEndpointAnswersAsTheAuthManagerSpec) {
  ASSERT_FALSE(token.empty());
  auto wrong = cli.Post("/auth/token",
                        json{{"username", "admin"}, {"password", "nope"}}
                          .dump(),
                        "application/json");
  conforms(wrong, auth, "/auth/token", "post", 401);
  auto extra = cli.Post("/auth/token",
                        json{{"username", "admin"},
                             {"password", "x"},
                             {"scope", "all"}}
                          .dump(),
                        "application/json");
  auto body = conforms(extra, auth, "/auth/token", "post", 422);
  EXPECT_EQ(body["detail"][0]["loc"], (json{"body"}));
  auto good = cli.Post("/auth/token",
                       json{{"username", "admin"},
                            {"password", srv.opts().password}}
                         .dump(),
                       "application/json");
  conforms(good, auth, "/auth/token", "post", 201);
}

TEST_F(FakeAirflowServer, VersionAndHealth) {
  conforms(cli.Get("/api/v2/version"), core, "/api/v2/version", "get", 200);
  conforms(cli.Get("/api/v2/monitor/health"), core, "/api/v2/monitor/health",
           "get", 200);
}

TEST_F(FakeAirflowServer, DagDetailsAndErrors) {
  const std::string path = "/api/v2/dags/{dag_id}/details";
  auto dag = conforms(cli.Get("/api/v2/dags/etl_daily/details", bearer()),
                      core, path, "get", 200);
  EXPECT_EQ(missing("DAGDetailsResponse", dag), std::vector<std::string>{});
  conforms(cli.Get("/api/v2/dags/nope/details", bearer()), core, path, "get",
           404);
  conforms(cli.Get("/api/v2/dags/etl_daily/details"), core, path, "get",
           401);
  srv.expire_tokens();
  conforms(cli.Get("/api/v2/dags/etl_daily/details", bearer()), core, path,
           "get", 401);
}

TEST_F(FakeAirflowServer, DagRunsPaginated) {
  const std::string path = "/api/v2/dags/{dag_id}/dagRuns";
  auto page = conforms(
    cli.Get("/api/v2/dags/~/dagRuns?limit=1&offset=1&order_by=-run_after",
            bearer()),
    core, path, "get", 200);
  EXPECT_EQ(page["total_entries"], 2);
  ASSERT_EQ(page["dag_runs"].size(), 1u);
  EXPECT_EQ(page["dag_runs"][0]["dag_run_id"], run_id);
  EXPECT_EQ(missing("DAGRunResponse", page["dag_runs"][0]),
            std::vector<std::string>{});
  auto failed = conforms(
    cli.Get("/api/v2/dags/etl_daily/dagRuns?state=failed", bearer()), core,
    path, "get", 200);
  EXPECT_EQ(failed["total_entries"], 1);
  conforms(cli.Get("/api/v2/dags/nope/dagRuns", bearer()), core, path, "get",
           404);
  conforms(cli.Get("/api/v2/dags/~/dagRuns?limit=x", bearer()), core, path,
           "get", 422);
}

TEST_F(FakeAirflowServer, TaskInstances) {
  auto list = conforms(cli.Get("/api/v2/dags/etl_daily/dagRuns/" + run_path
                                 + "/taskInstances?state=failed",
                               bearer()),
                       core,
                       "/api/v2/dags/{dag_id}/dagRuns/{dag_run_id}/"
                       "taskInstances",
                       "get", 200);
  EXPECT_EQ(list["total_entries"], 2);
  for (const auto& ti : list["task_instances"])
    EXPECT_EQ(missing("TaskInstanceResponse", ti), std::vector<std::string>{});
  conforms(cli.Get("/api/v2/dags/etl_daily/dagRuns/nope/taskInstances",
                   bearer()),
           core, "/api/v2/dags/{dag_id}/dagRuns/{dag_run_id}/taskInstances",
           "get", 404);
  conforms(cli.Get("/api/v2/dags/etl_daily/dagRuns/" + run_path
                     + "/taskInstances/load",
                   bearer()),
           core,
           "/api/v2/dags/{dag_id}/dagRuns/{dag_run_id}/taskInstances/"
           "{task_id}",
           "get", 200);
  conforms(cli.Get("/api/v2/dags/etl_daily/dagRuns/" + run_path
                     + "/taskInstances/fanout/3",
                   bearer()),
           core,
           "/api/v2/dags/{dag_id}/dagRuns/{dag_run_id}/taskInstances/"
           "{task_id}/{map_index}",
           "get", 200);
}

TEST_F(FakeAirflowServer, StructuredAndPlainLogs) {
  const std::string path = "/api/v2/dags/{dag_id}/dagRuns/{dag_run_id}/"
                           "taskInstances/{task_id}/logs/{try_number}";
  auto base = "/api/v2/dags/etl_daily/dagRuns/" + run_path
              + "/taskInstances/transform/logs/";
  auto structured = conforms(cli.Get(base + "2?full_content=true", bearer()),
                             core, path, "get", 200);
  EXPECT_EQ(structured["content"][0]["event"], "boom");
  EXPECT_TRUE(structured["continuation_token"].is_null());
  auto plain = conforms(cli.Get(base + "1", bearer()), core, path, "get",
                        200);
  EXPECT_EQ(plain["content"], (json{"plain text line"}));
  conforms(cli.Get(base + "9", bearer()), core, path, "get", 404);
  conforms(cli.Get(base + "x", bearer()), core, path, "get", 422);
}

TEST_F(FakeAirflowServer, DagSource) {
  const std::string path = "/api/v2/dagSources/{dag_id}";
  auto source = conforms(cli.Get("/api/v2/dagSources/etl_daily", bearer()),
                         core, path, "get", 200);
  EXPECT_EQ(missing("DAGSourceResponse", source), std::vector<std::string>{});
  EXPECT_EQ(source["content"], "print('etl')\n");
  auto text = cli.Get("/api/v2/dagSources/etl_daily",
                      {{"Authorization", "Bearer " + token},
                       {"Accept", "text/plain"}});
  ASSERT_TRUE(text);
  EXPECT_EQ(text->body, "print('etl')\n");
  conforms(cli.Get("/api/v2/dagSources/etl_daily",
                   {{"Authorization", "Bearer " + token},
                    {"Accept", "application/xml"}}),
           core, path, "get", 406);
  conforms(cli.Get("/api/v2/dagSources/nope", bearer()), core, path, "get",
           404);
}

TEST_F(FakeAirflowServer, ClearTaskInstancesChecksItsBody) {
  const std::string path = "/api/v2/dags/{dag_id}/clearTaskInstances";
  auto post = [&](const json& body) {
    return cli.Post("/api/v2/dags/etl_daily/clearTaskInstances", bearer(),
                    body.dump(), "application/json");
  };
  auto dry = conforms(post({{"dag_run_id", run_id},
                            {"task_ids", {"transform", {"fanout", 3}}}}),
                      core, path, "post", 200);
  EXPECT_EQ(dry["total_entries"], 2);
  auto unknown = conforms(post({{"dry_run", true}, {"everything", true}}),
                          core, path, "post", 422);
  EXPECT_EQ(unknown["detail"][0]["loc"], (json{"body"}));
  // A [task_id, map_index] pair whose index is not an integer.
  auto pair = conforms(
    post({{"task_ids", json::array({json::array({"fanout", "3"})})}}), core,
    path, "post", 422);
  auto loc = pair["detail"][0]["loc"];
  ASSERT_GE(loc.size(), 2u) << pair.dump();
  EXPECT_EQ(loc[0], "body");
  EXPECT_EQ(loc[1], "task_ids");
  conforms(post({{"dry_run", "yes"}}), core, path, "post", 422);
  auto clears = srv.clears();
  ASSERT_EQ(clears.size(), 4u);
  EXPECT_TRUE(clears[0].valid);
  EXPECT_TRUE(clears[0].dry_run);
  EXPECT_FALSE(clears[1].valid);
  EXPECT_FALSE(clears[2].valid);
  EXPECT_FALSE(clears[3].valid);
  // Nothing was cleared by a dry run.
  EXPECT_EQ(srv.task_instance("etl_daily", run_id, "transform")["state"],
            "failed");
}

TEST_F(FakeAirflowServer, SpecSchemasRejectWhatTheSpecRejects) {
  // The check above would pass anything if the spec's schemas were lost on
  // the way: a wrong enum value, a missing required field, a bad date and
  // a string where null or an integer belongs must all fail.
  auto runs = openapi_document::compile(core.response_schema(
    "/api/v2/dags/{dag_id}/dagRuns", "get", 200));
  auto good = fx::dag_run("d", "r", "failed", "2025-03-02T08:30:00Z",
                          "2025-03-02T09:00:00Z");
  EXPECT_TRUE(runs.accepts(
    json{{"dag_runs", json::array({good})}, {"total_entries", 1}}));
  auto bad_state = good;
  bad_state["state"] = "exploded";
  auto no_id = good;
  no_id.erase("dag_run_id");
  auto bad_date = good;
  bad_date["end_date"] = "yesterday";
  auto bad_version = good;
  bad_version["dag_versions"][0]["version_number"] = "1";
  for (const auto& run : {bad_state, no_id, bad_date, bad_version})
    EXPECT_FALSE(runs.accepts(
      json{{"dag_runs", json::array({run})}, {"total_entries", 1}}))
      << run.dump();
  auto ti = openapi_document::compile(
    core.component_schema("TaskInstanceResponse"));
  auto t = fx::task_instance("d", "r", "t", std::nullopt, 0);
  EXPECT_TRUE(ti.accepts(t));
  t["state"] = "exploded";
  EXPECT_FALSE(ti.accepts(t));
}
