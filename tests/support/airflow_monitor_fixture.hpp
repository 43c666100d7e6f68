#pragma once

// The Airflow of the airflow-monitor example (examples/airflow-monitor/):
// two DAGs, each with a failed run whose one failed task has a structured
// log with its traceback, and successful runs (one DAG has only those). Served by
// fake_airflow_server for the example's end-to-end test and by
// cadre_fake_airflow, the standalone server of the example's run.sh.

#include <string>

#include <nlohmann/json.hpp>

#include "fake_airflow_server.hpp"

namespace cadre::test::airflow_monitor {

/// The failed task instances, newest run first (the order failed_runs
/// lists them in, so the monitor's order too).
struct failed_task {
  const char* dag_id;
  const char* run_id;
  const char* task_id;
  int try_number;
};

inline constexpr failed_task newest{"etl_daily",
                                    "scheduled__2025-03-02T00:00:00+00:00",
                                    "transform", 2};
inline constexpr failed_task older{"reports_weekly",
                                   "scheduled__2025-03-01T00:00:00+00:00",
                                   "load", 1};

/// A DAG without failed runs.
inline constexpr const char* healthy_dag = "healthy_hourly";

/// Fills `srv` with the example's DAGs, runs, task instances and logs.
inline void add_fixture(fake_airflow_server& srv) {
  namespace fx = airflow_fixture;
  using nlohmann::json;
  srv.add_dag(fx::dag_details("etl_daily", "Daily sales ETL"),
              "from airflow.sdk import dag, task\n"
              "\n"
              "@dag(schedule=\"@daily\", catchup=False)\n"
              "def etl_daily():\n"
              "    @task\n"
              "    def extract():\n"
              "        return fetch_orders()\n"
              "\n"
              "    @task(retries=1)\n"
              "    def transform(rows):\n"
              "        return [r[\"amount\"] * r[\"rate\"] for r in rows]\n"
              "\n"
              "    transform(extract())\n"
              "\n"
              "etl_daily()\n");
  srv.add_dag(fx::dag_details("reports_weekly", "Weekly reports"),
              "from airflow.sdk import dag, task\n"
              "from airflow.providers.postgres.hooks.postgres import "
              "PostgresHook\n"
              "\n"
              "@dag(schedule=\"@weekly\", catchup=False)\n"
              "def reports_weekly():\n"
              "    @task\n"
              "    def load():\n"
              "        PostgresHook(\"reports_db\").run(\"CALL refresh()\")\n"
              "\n"
              "    load()\n"
              "\n"
              "reports_weekly()\n");
  // A DAG whose runs all succeeded: watching only it is "all clear".
  srv.add_dag(fx::dag_details(healthy_dag, "Hourly health check"),
              "from airflow.sdk import dag, task\n");
  srv.add_run(fx::dag_run(healthy_dag, "scheduled__2025-03-02T01:00:00+00:00",
                          "success", "2025-03-02T01:00:00Z",
                          "2025-03-02T01:01:00Z"));
  srv.add_run(fx::dag_run("etl_daily", "scheduled__2025-03-01T00:00:00+00:00",
                          "success", "2025-03-01T00:00:00Z",
                          "2025-03-01T00:02:00Z"));
  srv.add_run(fx::dag_run(older.dag_id, older.run_id, "failed",
                          "2025-03-01T00:00:00Z", "2025-03-01T00:05:00Z"));
  srv.add_run(fx::dag_run(newest.dag_id, newest.run_id, "failed",
                          "2025-03-02T00:00:00Z", "2025-03-02T00:04:00Z"));
  srv.add_task_instance(fx::task_instance(newest.dag_id, newest.run_id,
                                          "extract", "success", 1));
  srv.add_task_instance(fx::task_instance(newest.dag_id, newest.run_id,
                                          newest.task_id, "failed",
                                          newest.try_number));
  srv.add_task_instance(fx::task_instance(older.dag_id, older.run_id,
                                          older.task_id, "failed",
                                          older.try_number));
  srv.set_log(
    newest.dag_id, newest.run_id, newest.task_id, newest.try_number,
    json::array(
      {fx::log_line("2025-03-02T00:03:01Z", "info",
                    "Executing <Task(_PythonDecoratedOperator): transform>"),
       fx::log_line("2025-03-02T00:03:02Z", "info",
                    "Pulled 1204 rows from XCom"),
       fx::log_line("2025-03-02T00:03:02Z", "error",
                    "Task failed with exception"),
       fx::log_line("2025-03-02T00:03:02Z", "error",
                    "Traceback (most recent call last): File "
                    "\"/opt/airflow/dags/etl_daily.py\", line 11, in "
                    "transform KeyError: 'amount'"),
       fx::log_line("2025-03-02T00:03:03Z", "info",
                    "Marking task as FAILED. dag_id=etl_daily, "
                    "task_id=transform")}));
  srv.set_log(
    older.dag_id, older.run_id, older.task_id, older.try_number,
    json::array(
      {fx::log_line("2025-03-01T00:04:00Z", "info",
                    "Executing <Task(_PythonDecoratedOperator): load>"),
       fx::log_line("2025-03-01T00:04:30Z", "error",
                    "psycopg2.OperationalError: connection to server at "
                    "\"reports-db\" (10.0.3.7), port 5432 failed: "
                    "Connection refused"),
       fx::log_line("2025-03-01T00:04:31Z", "info",
                    "Marking task as FAILED. dag_id=reports_weekly, "
                    "task_id=load")}));
}

} // namespace cadre::test::airflow_monitor
