#pragma once

// A fake Apache Airflow 3.2 API server on loopback for the airflow tool's
// tests. It serves the subset of the public REST API (/api/v2) that the tool
// uses, from fixture data, in the shapes of the 3.2.1 OpenAPI spec
// (../shared/specs/airflow/): DAG details and sources, DAG runs and task
// instances with limit/offset pagination and total_entries (a page is
// capped at max_page_limit, as Airflow's [api] maximum_page_limit does),
// structured task logs, clearTaskInstances. It enforces the JWT flow:
// POST /auth/token (LoginBody checked against the auth manager's spec)
// issues tokens, every /api/v2 route but version and health wants one as
// a bearer, and expire_tokens() makes the issued ones answer 401. Request
// bodies of clearTaskInstances are checked against ClearTaskInstancesBody
// of the spec (422 with FastAPI's HTTPValidationError when they fail), and
// every clear call is recorded with its body. Failures on demand: a status
// with a detail (and Retry-After) for the next N matching requests, and
// slow replies.

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <ctime>
#include <deque>
#include <map>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include <httplib.h>
#include <nlohmann/json.hpp>

#include "loopback_server.hpp"
#include "openapi_schema.hpp"

namespace cadre::test {

namespace airflow_fixture {

using nlohmann::json;

/// A UUID-shaped id that differs by `n`.
inline std::string uuid(const std::string& kind, size_t n) {
  char buf[40];
  unsigned tag = 0;
  for (char c : kind)
    tag = tag * 31 + static_cast<unsigned char>(c);
  std::snprintf(buf, sizeof buf, "%08x-0000-4000-8000-%012zx",
                tag & 0xffffffffu, n);
  return buf;
}

/// A DagVersionResponse.
inline json dag_version(const std::string& dag_id) {
  return {{"id", uuid("version:" + dag_id, 1)},
          {"version_number", 1},
          {"dag_id", dag_id},
          {"bundle_name", "dags-folder"},
          {"bundle_version", nullptr},
          {"created_at", "2025-01-01T00:00:00Z"},
          {"dag_display_name", dag_id},
          {"bundle_url", nullptr}};
}

/// A DAGDetailsResponse with every field of the 3.2.1 schema.
inline json dag_details(const std::string& dag_id,
                        const std::string& description = "") {
  json d{{"dag_id", dag_id},
         {"dag_display_name", dag_id},
         {"is_paused", false},
         {"is_stale", false},
         {"last_parsed_time", "2025-03-01T10:00:00Z"},
         {"last_parse_duration", 0.25},
         {"last_expired", nullptr},
         {"bundle_name", "dags-folder"},
         {"bundle_version", nullptr},
         {"relative_fileloc", dag_id + ".py"},
         {"fileloc", "/opt/airflow/dags/" + dag_id + ".py"},
         {"description", description.empty() ? json(nullptr)
                                             : json(description)},
         {"timetable_summary", "@daily"},
         {"timetable_description", "At 00:00"},
         {"timetable_partitioned", false},
         {"tags",
          json::array({{{"name", "team-data"},
                        {"dag_id", dag_id},
                        {"dag_display_name", dag_id}}})},
         {"max_active_tasks", 16},
         {"max_active_runs", 16},
         {"max_consecutive_failed_dag_runs", 0},
         {"has_task_concurrency_limits", false},
         {"has_import_errors", false},
         {"next_dagrun_logical_date", "2025-03-02T00:00:00Z"},
         {"next_dagrun_data_interval_start", "2025-03-02T00:00:00Z"},
         {"next_dagrun_data_interval_end", "2025-03-03T00:00:00Z"},
         {"next_dagrun_run_after", "2025-03-03T00:00:00Z"},
         {"allowed_run_types", nullptr},
         {"owners", json::array({"airflow"})},
         {"catchup", false},
         {"dag_run_timeout", nullptr},
         {"asset_expression", nullptr},
         {"doc_md", nullptr},
         {"start_date", "2025-01-01T00:00:00Z"},
         {"end_date", nullptr},
         {"is_paused_upon_creation", nullptr},
         {"params", json::object()},
         {"render_template_as_native_obj", false},
         {"template_search_path", nullptr},
         {"timezone", "UTC"},
         {"last_parsed", "2025-03-01T10:00:00Z"},
         {"default_args", json::object()},
         {"owner_links", nullptr},
         {"is_favorite", false},
         {"active_runs_count", 0},
         {"file_token", "Ii9vcHQvYWlyZmxvdy9kYWdzLyI." + dag_id},
         {"concurrency", 16},
         {"latest_dag_version", dag_version(dag_id)}};
  return d;
}

/// A DAGRunResponse with every field of the 3.2.1 schema.
inline json dag_run(const std::string& dag_id, const std::string& run_id,
                    const std::string& state, const std::string& run_after,
                    const std::string& end_date) {
  return {{"dag_run_id", run_id},
          {"dag_id", dag_id},
          {"logical_date", run_after},
          {"queued_at", run_after},
          {"start_date", run_after},
          {"end_date", end_date.empty() ? json(nullptr) : json(end_date)},
          {"duration", end_date.empty() ? json(nullptr) : json(60.5)},
          {"data_interval_start", run_after},
          {"data_interval_end", run_after},
          {"run_after", run_after},
          {"last_scheduling_decision", run_after},
          {"run_type", "scheduled"},
          {"state", state},
          {"triggered_by", "timetable"},
          {"triggering_user_name", nullptr},
          {"conf", json::object()},
          {"note", nullptr},
          {"dag_versions", json::array({dag_version(dag_id)})},
          {"bundle_version", nullptr},
          {"dag_display_name", dag_id},
          {"partition_key", nullptr}};
}

/// A TaskInstanceResponse with every field of the 3.2.1 schema.
inline json task_instance(const std::string& dag_id,
                          const std::string& run_id,
                          const std::string& task_id,
                          const std::optional<std::string>& state,
                          int try_number, int map_index = -1) {
  static size_t counter = 0;
  return {{"id", uuid("ti", ++counter)},
          {"task_id", task_id},
          {"dag_id", dag_id},
          {"dag_run_id", run_id},
          {"map_index", map_index},
          {"logical_date", "2025-03-01T00:00:00Z"},
          {"run_after", "2025-03-01T00:00:00Z"},
          {"start_date", "2025-03-01T00:00:05Z"},
          {"end_date", "2025-03-01T00:01:05Z"},
          {"duration", 60.0},
          {"state", state ? json(*state) : json(nullptr)},
          {"try_number", try_number},
          {"max_tries", 2},
          {"task_display_name", task_id},
          {"dag_display_name", dag_id},
          {"hostname", "worker-1"},
          {"unixname", "airflow"},
          {"pool", "default_pool"},
          {"pool_slots", 1},
          {"queue", "default"},
          {"priority_weight", 1},
          {"operator", "PythonOperator"},
          {"operator_name", "@task"},
          {"queued_when", "2025-03-01T00:00:01Z"},
          {"scheduled_when", "2025-03-01T00:00:00Z"},
          {"pid", 4242},
          {"executor", nullptr},
          {"executor_config", "{}"},
          {"note", nullptr},
          {"rendered_map_index", nullptr},
          {"rendered_fields", json::object()},
          {"trigger", nullptr},
          {"triggerer_job", nullptr},
          {"dag_version", dag_version(dag_id)}};
}

/// One StructuredLogMessage.
inline json log_line(const std::string& timestamp, const std::string& level,
                     const std::string& event,
                     const std::string& logger = "airflow.task") {
  return {{"timestamp", timestamp},
          {"level", level},
          {"event", event},
          {"logger", logger}};
}

} // namespace airflow_fixture

/// One request the server received.
struct airflow_call {
  std::string method;
  /// The request target as sent: path and query, percent-encoded.
  std::string target;
  /// The path, decoded segment by segment.
  std::string path;
  /// Query parameters, decoded.
  std::multimap<std::string, std::string> query;
  std::string authorization;
  std::string accept;
  std::string body;
};

/// A clearTaskInstances call.
struct airflow_clear {
  std::string dag_id;
  /// The body as sent.
  nlohmann::json body;
  /// dry_run as the server read it (true when absent).
  bool dry_run = true;
  /// False when the body failed ClearTaskInstancesBody (answered 422).
  bool valid = true;
};

/// A failure served instead of the answer to matching requests.
struct airflow_failure {
  /// Matches the method; empty: any.
  std::string method;
  /// Matches paths starting with it (decoded), e.g. "/api/v2/dags/etl".
  std::string path_prefix;
  int status = 500;
  /// HTTPExceptionResponse.detail.
  std::string detail = "Internal Server Error";
  /// Requests it applies to; then it is gone.
  int times = 1;
  /// A Retry-After header when not empty.
  std::string retry_after;
  /// Wait this long before answering (a slow reply; status 0 then answers
  /// normally after the wait).
  std::chrono::milliseconds delay{0};
};

class fake_airflow_server {
public:
  struct options {
    std::string username = "admin";
    std::string password = "Pw-of-admin-7f3a";
    /// Accepted as a bearer token besides the issued JWTs; empty: none.
    std::string static_token;
    /// The most items one page holds (Airflow: [api] maximum_page_limit).
    size_t max_page_limit = 100;
    /// Lines per log page: more are served with a continuation_token
    /// (0: every line at once, continuation_token null).
    size_t log_page_lines = 0;
  };

  /// Reads the specs from `spec_dir` (the folder of
  /// airflow-3.2.1-v2-rest-api.yaml) and serves on a free loopback port.
  explicit fake_airflow_server(const std::string& spec_dir)
    : fake_airflow_server(spec_dir, options{}) {
  }

  fake_airflow_server(const std::string& spec_dir, options opts)
    : opts_(std::move(opts)) {
    auto core = openapi_document::load(spec_dir
                                       + "/airflow-3.2.1-v2-rest-api.yaml");
    auto auth = openapi_document::load(
      spec_dir + "/v2-simple-auth-manager-generated.yaml");
    clear_body_ = openapi_document::compile(
      core.component_schema("ClearTaskInstancesBody"));
    login_body_ = openapi_document::compile(
      auth.component_schema("LoginBody"));
    auto handler = [this](const httplib::Request& req,
                          httplib::Response& res) { handle(req, res); };
    srv_.server().Get(".*", handler);
    srv_.server().Post(".*", handler);
    srv_.start();
  }

  ~fake_airflow_server() {
    // Handlers use the members below: stop them first.
    srv_.stop();
  }

  fake_airflow_server(const fake_airflow_server&) = delete;
  fake_airflow_server& operator=(const fake_airflow_server&) = delete;

  /// "http://127.0.0.1:<port>", the base_url of a connection.
  std::string base_url() const {
    return srv_.url("");
  }

  const options& opts() const noexcept {
    return opts_;
  }

  // -- fixture data ---------------------------------------------------------

  /// Adds a DAG (a DAGDetailsResponse) and its source code.
  void add_dag(nlohmann::json details, std::string source) {
    std::lock_guard<std::mutex> guard{mtx_};
    auto id = details.at("dag_id").get<std::string>();
    dags_[id] = {std::move(details), std::move(source)};
  }

  /// Adds a DAG run (a DAGRunResponse); runs get ids in this order.
  void add_run(nlohmann::json run) {
    std::lock_guard<std::mutex> guard{mtx_};
    runs_.push_back({++next_id_, std::move(run)});
  }

  /// Adds a task instance (a TaskInstanceResponse).
  void add_task_instance(nlohmann::json ti) {
    std::lock_guard<std::mutex> guard{mtx_};
    tis_.push_back(std::move(ti));
  }

  /// Sets the log of one try: StructuredLogMessage objects or strings.
  void set_log(const std::string& dag_id, const std::string& run_id,
               const std::string& task_id, int try_number,
               nlohmann::json content, int map_index = -1) {
    std::lock_guard<std::mutex> guard{mtx_};
    logs_[log_key(dag_id, run_id, task_id, map_index, try_number)]
      = std::move(content);
  }

  // -- behaviour on demand ------------------------------------------------

  /// Every token issued so far answers 401 from now on.
  void expire_tokens() {
    std::lock_guard<std::mutex> guard{mtx_};
    tokens_.clear();
  }

  /// Serves `f` to the next matching requests (checked in the order
  /// added, before authentication).
  void fail(airflow_failure f) {
    std::lock_guard<std::mutex> guard{mtx_};
    failures_.push_back(std::move(f));
  }

  // -- records -------------------------------------------------------------

  std::vector<airflow_call> calls() {
    std::lock_guard<std::mutex> guard{mtx_};
    return calls_;
  }

  /// Requests to `path` (decoded), any method.
  size_t count(const std::string& path) {
    std::lock_guard<std::mutex> guard{mtx_};
    return static_cast<size_t>(
      std::count_if(calls_.begin(), calls_.end(),
                    [&](const airflow_call& c) { return c.path == path; }));
  }

  /// POST /auth/token requests so far.
  size_t token_requests() {
    return count("/auth/token");
  }

  std::vector<airflow_clear> clears() {
    std::lock_guard<std::mutex> guard{mtx_};
    return clears_;
  }

  /// The current task instance (after clears), or null.
  nlohmann::json task_instance(const std::string& dag_id,
                               const std::string& run_id,
                               const std::string& task_id,
                               int map_index = -1) {
    std::lock_guard<std::mutex> guard{mtx_};
    auto* ti = find_ti(dag_id, run_id, task_id, map_index);
    return ti ? *ti : nlohmann::json{};
  }

private:
  using json = nlohmann::json;

  struct dag_entry {
    json details;
    std::string source;
  };

  struct run_entry {
    int64_t id;
    json body;
  };

  static std::string log_key(const std::string& dag, const std::string& run,
                             const std::string& task, int map_index,
                             int try_number) {
    return dag + '\n' + run + '\n' + task + '\n' + std::to_string(map_index)
           + '\n' + std::to_string(try_number);
  }

  /// Seconds since the epoch of an RFC 3339 time ("2025-03-01T00:00:00Z",
  /// "...+02:00", fractions ignored); nullopt when it is none.
  static std::optional<int64_t> epoch_of(const std::string& text) {
    int y, mo, d, h, mi, s;
    if (std::sscanf(text.c_str(), "%4d-%2d-%2dT%2d:%2d:%2d", &y, &mo, &d, &h,
                    &mi, &s)
        != 6)
      return std::nullopt;
    std::tm tm{};
    tm.tm_year = y - 1900;
    tm.tm_mon = mo - 1;
    tm.tm_mday = d;
    tm.tm_hour = h;
    tm.tm_min = mi;
    tm.tm_sec = s;
    int64_t t = timegm(&tm);
    auto zone = text.find_first_of("Z+-", 19);
    if (zone == std::string::npos)
      return std::nullopt;
    if (text[zone] != 'Z') {
      int zh = 0, zm = 0;
      if (std::sscanf(text.c_str() + zone + 1, "%2d:%2d", &zh, &zm) != 2)
        return std::nullopt;
      int64_t off = zh * 3600 + zm * 60;
      t += text[zone] == '+' ? -off : off;
    }
    return t;
  }

  static void reply(httplib::Response& res, int status, const json& body) {
    res.status = status;
    res.set_content(body.dump(), "application/json");
  }

  static void problem(httplib::Response& res, int status,
                      const std::string& detail) {
    reply(res, status, json{{"detail", detail}});
  }

  /// FastAPI's 422: HTTPValidationError from schema errors.
  static void invalid(httplib::Response& res,
                      const std::vector<tools::schema_error>& errors) {
    json detail = json::array();
    for (const auto& e : errors) {
      json loc = json::array({"body"});
      std::string part;
      for (size_t i = 1; i <= e.pointer.size(); ++i) {
        if (i == e.pointer.size() || e.pointer[i] == '/') {
          if (!part.empty())
            loc.push_back(part);
          part.clear();
        } else {
          part += e.pointer[i];
        }
      }
      detail.push_back(
        {{"loc", loc}, {"msg", e.message}, {"type", e.keyword}});
    }
    reply(res, 422, json{{"detail", detail}});
  }

  json* find_ti(const std::string& dag, const std::string& run,
                const std::string& task, int map_index) {
    for (auto& ti : tis_)
      if (ti["dag_id"] == dag && ti["dag_run_id"] == run
          && ti["task_id"] == task && ti["map_index"] == map_index)
        return &ti;
    return nullptr;
  }

  run_entry* find_run(const std::string& dag, const std::string& run) {
    for (auto& r : runs_)
      if (r.body["dag_id"] == dag && r.body["dag_run_id"] == run)
        return &r;
    return nullptr;
  }

  /// limit and offset of a list request; false after answering 422.
  bool page_of(const httplib::Request& req, httplib::Response& res,
               size_t& limit, size_t& offset) {
    limit = 50;
    offset = 0;
    for (auto [key, out] : {std::pair<const char*, size_t*>{"limit", &limit},
                            {"offset", &offset}}) {
      if (!req.has_param(key))
        continue;
      auto text = req.get_param_value(key);
      if (text.empty()
          || text.find_first_not_of("0123456789") != std::string::npos) {
        reply(res, 422,
              json{{"detail",
                    json::array({{{"loc", {"query", key}},
                                  {"msg", "Input should be a valid integer"},
                                  {"type", "int_parsing"}}})}});
        return false;
      }
      *out = std::stoul(text);
    }
    limit = std::min(limit, opts_.max_page_limit);
    return true;
  }

  void handle(const httplib::Request& req, httplib::Response& res) {
    airflow_call call;
    call.method = req.method;
    call.target = req.target;
    auto raw_path = req.target.substr(0, req.target.find('?'));
    std::vector<std::string> parts;
    {
      size_t start = 1;
      while (start <= raw_path.size()) {
        auto slash = raw_path.find('/', start);
        if (slash == std::string::npos)
          slash = raw_path.size();
        parts.push_back(httplib::detail::decode_url(
          raw_path.substr(start, slash - start), false));
        start = slash + 1;
      }
    }
    for (const auto& p : parts)
      call.path += "/" + p;
    for (const auto& [k, v] : req.params)
      call.query.emplace(k, v);
    call.authorization = req.get_header_value("Authorization");
    call.accept = req.get_header_value("Accept");
    call.body = req.body;
    std::chrono::milliseconds delay{0};
    std::optional<airflow_failure> failure;
    {
      std::lock_guard<std::mutex> guard{mtx_};
      calls_.push_back(call);
      for (auto i = failures_.begin(); i != failures_.end(); ++i) {
        if ((!i->method.empty() && i->method != req.method)
            || call.path.rfind(i->path_prefix, 0) != 0)
          continue;
        failure = *i;
        if (--i->times <= 0)
          failures_.erase(i);
        break;
      }
    }
    if (failure && failure->delay.count() > 0)
      if (srv_.wait_for_stop(failure->delay))
        return problem(res, 503, "stopping");
    if (failure && failure->status != 0) {
      if (!failure->retry_after.empty())
        res.set_header("Retry-After", failure->retry_after);
      return problem(res, failure->status, failure->detail);
    }
    std::lock_guard<std::mutex> guard{mtx_};
    route(req, res, parts, call);
  }

  /// Checks the bearer token; false after answering 401.
  bool authenticated(const airflow_call& call, httplib::Response& res) {
    const std::string prefix = "Bearer ";
    if (call.authorization.rfind(prefix, 0) != 0) {
      problem(res, 401, "Not authenticated");
      return false;
    }
    auto token = call.authorization.substr(prefix.size());
    if (tokens_.count(token) == 0
        && (opts_.static_token.empty() || token != opts_.static_token)) {
      problem(res, 401, "Invalid JWT token");
      return false;
    }
    return true;
  }

  void route(const httplib::Request& req, httplib::Response& res,
             const std::vector<std::string>& p, const airflow_call& call) {
    auto is = [&](std::initializer_list<const char*> shape) {
      if (p.size() != shape.size())
        return false;
      size_t i = 0;
      for (const auto* s : shape) {
        if (*s != '*' && p[i] != s)
          return false;
        ++i;
      }
      return true;
    };
    bool get = req.method == "GET";
    bool post = req.method == "POST";
    if (post && is({"auth", "token"}))
      return token(req, res);
    if (p.size() < 2 || p[0] != "api" || p[1] != "v2")
      return problem(res, 404, "Not Found");
    if (get && is({"api", "v2", "version"}))
      return reply(res, 200,
                   json{{"version", "3.2.1"}, {"git_version", nullptr}});
    if (get && is({"api", "v2", "monitor", "health"}))
      return reply(
        res, 200,
        json{{"metadatabase", {{"status", "healthy"}}},
             {"scheduler",
              {{"status", "healthy"},
               {"latest_scheduler_heartbeat", "2025-03-01T10:00:00Z"}}},
             {"triggerer",
              {{"status", "healthy"},
               {"latest_triggerer_heartbeat", "2025-03-01T10:00:00Z"}}},
             {"dag_processor",
              {{"status", "healthy"},
               {"latest_dag_processor_heartbeat",
                "2025-03-01T10:00:00Z"}}}});
    if (!authenticated(call, res))
      return;
    if (get && is({"api", "v2", "dags", "*", "details"}))
      return dag_details(res, p[3]);
    if (get && is({"api", "v2", "dags", "*", "dagRuns"}))
      return dag_runs(req, res, p[3]);
    if (get && is({"api", "v2", "dags", "*", "dagRuns", "*", "taskInstances"}))
      return task_instances(req, res, p[3], p[5]);
    if (get
        && is({"api", "v2", "dags", "*", "dagRuns", "*", "taskInstances",
               "*"}))
      return one_task_instance(res, p[3], p[5], p[7], -1);
    if (get
        && is({"api", "v2", "dags", "*", "dagRuns", "*", "taskInstances", "*",
               "*"})
        && p[8].find_first_not_of("0123456789") == std::string::npos)
      return one_task_instance(res, p[3], p[5], p[7], std::stoi(p[8]));
    if (get
        && is({"api", "v2", "dags", "*", "dagRuns", "*", "taskInstances", "*",
               "logs", "*"}))
      return task_log(req, res, p[3], p[5], p[7], p[9]);
    if (get && is({"api", "v2", "dagSources", "*"}))
      return dag_source(req, res, p[3]);
    if (post && is({"api", "v2", "dags", "*", "clearTaskInstances"}))
      return clear(req, res, p[3]);
    problem(res, 404, "Not Found");
  }

  void token(const httplib::Request& req, httplib::Response& res) {
    auto body = json::parse(req.body, nullptr, false);
    if (body.is_discarded())
      return reply(res, 422,
                   json{{"detail",
                         json::array({{{"loc", {"body"}},
                                       {"msg", "JSON decode error"},
                                       {"type", "json_invalid"}}})}});
    if (auto errors = login_body_.validate(body); !errors.empty())
      return invalid(res, errors);
    if (body["username"] != opts_.username
        || body["password"] != opts_.password)
      return problem(res, 401, "Invalid credentials");
    auto token = "eyJhbGciOiJIUzUxMiJ9.fake-" + std::to_string(++issued_)
                 + ".sig";
    tokens_.insert(token);
    reply(res, 201, json{{"access_token", token}});
  }

  void dag_details(httplib::Response& res, const std::string& dag) {
    auto i = dags_.find(dag);
    if (i == dags_.end())
      return problem(res, 404,
                     "The Dag with ID: `" + dag + "` was not found");
    reply(res, 200, i->second.details);
  }

  void dag_source(const httplib::Request& req, httplib::Response& res,
                  const std::string& dag) {
    auto i = dags_.find(dag);
    if (i == dags_.end())
      return problem(res, 404,
                     "The Dag with ID: `" + dag + "` was not found");
    if (req.has_param("version_number")
        && req.get_param_value("version_number") != "1")
      return problem(res, 404,
                     "The Dag with ID: `" + dag + "` and version: `"
                       + req.get_param_value("version_number")
                       + "` was not found");
    auto accept = req.get_header_value("Accept");
    if (accept == "text/plain") {
      res.status = 200;
      return res.set_content(i->second.source, "text/plain");
    }
    if (!accept.empty() && accept != "application/json" && accept != "*/*")
      return problem(res, 406,
                     "Only application/json or text/plain is supported");
    reply(res, 200,
          json{{"content", i->second.source},
               {"dag_id", dag},
               {"version_number", 1},
               {"dag_display_name", dag}});
  }

  void dag_runs(const httplib::Request& req, httplib::Response& res,
                const std::string& dag) {
    if (dag != "~" && dags_.count(dag) == 0)
      return problem(res, 404,
                     "The Dag with ID: `" + dag + "` was not found");
    size_t limit, offset;
    if (!page_of(req, res, limit, offset))
      return;
    std::vector<const run_entry*> rows;
    std::set<std::string> states;
    for (size_t i = 0; i < req.get_param_value_count("state"); ++i)
      states.insert(req.get_param_value("state", i));
    std::optional<int64_t> end_gte;
    if (req.has_param("end_date_gte")) {
      end_gte = epoch_of(req.get_param_value("end_date_gte"));
      if (!end_gte)
        return reply(
          res, 422,
          json{{"detail",
                json::array({{{"loc", {"query", "end_date_gte"}},
                              {"msg", "Input should be a valid datetime"},
                              {"type", "datetime_from_date_parsing"}}})}});
    }
    for (const auto& r : runs_) {
      if (dag != "~" && r.body["dag_id"] != dag)
        continue;
      if (!states.empty()
          && states.count(r.body["state"].get<std::string>()) == 0)
        continue;
      if (end_gte) {
        if (!r.body["end_date"].is_string())
          continue;
        auto t = epoch_of(r.body["end_date"].get<std::string>());
        if (!t || *t < *end_gte)
          continue;
      }
      rows.push_back(&r);
    }
    std::vector<std::string> order;
    for (size_t i = 0; i < req.get_param_value_count("order_by"); ++i)
      order.push_back(req.get_param_value("order_by", i));
    if (order.empty())
      order.push_back("id");
    static const std::set<std::string> sortable{
      "id",         "state",      "dag_id",   "run_id",
      "logical_date", "run_after", "start_date", "end_date",
      "updated_at", "conf",       "duration", "dag_run_id"};
    for (const auto& o : order) {
      auto field = o.substr(o.rfind('-', 0) == 0 ? 1 : 0);
      if (sortable.count(field) == 0)
        return problem(res, 400,
                       "Ordering with '" + field
                         + "' is disallowed or the attribute does not exist "
                           "on the model");
    }
    std::stable_sort(rows.begin(), rows.end(),
                     [&](const run_entry* x, const run_entry* y) {
                       for (const auto& o : order) {
                         bool desc = o.rfind('-', 0) == 0;
                         auto field = o.substr(desc ? 1 : 0);
                         if (field == "run_id")
                           field = "dag_run_id";
                         json a = field == "id" ? json(x->id)
                                                : x->body.value(field, json{});
                         json b = field == "id" ? json(y->id)
                                                : y->body.value(field, json{});
                         if (a == b)
                           continue;
                         return desc ? b < a : a < b;
                       }
                       return false;
                     });
    json items = json::array();
    for (size_t i = offset; i < rows.size() && items.size() < limit; ++i)
      items.push_back(rows[i]->body);
    reply(res, 200,
          json{{"dag_runs", items}, {"total_entries", rows.size()}});
  }

  void task_instances(const httplib::Request& req, httplib::Response& res,
                      const std::string& dag, const std::string& run) {
    if (!find_run(dag, run))
      return problem(res, 404,
                     "The DagRun with dag_id: `" + dag
                       + "` and run_id: `" + run + "` was not found");
    size_t limit, offset;
    if (!page_of(req, res, limit, offset))
      return;
    std::set<std::string> states;
    for (size_t i = 0; i < req.get_param_value_count("state"); ++i)
      states.insert(req.get_param_value("state", i));
    std::vector<const json*> rows;
    for (const auto& ti : tis_) {
      if (ti["dag_id"] != dag || ti["dag_run_id"] != run)
        continue;
      if (!states.empty()
          && (!ti["state"].is_string()
              || states.count(ti["state"].get<std::string>()) == 0))
        continue;
      rows.push_back(&ti);
    }
    std::stable_sort(rows.begin(), rows.end(),
                     [](const json* x, const json* y) {
                       return (*x)["map_index"] < (*y)["map_index"];
                     });
    json items = json::array();
    for (size_t i = offset; i < rows.size() && items.size() < limit; ++i)
      items.push_back(*rows[i]);
    reply(res, 200,
          json{{"task_instances", items}, {"total_entries", rows.size()}});
  }

  void one_task_instance(httplib::Response& res, const std::string& dag,
                         const std::string& run, const std::string& task,
                         int map_index) {
    auto* ti = find_ti(dag, run, task, map_index);
    if (!ti)
      return problem(res, 404,
                     "The Task Instance with dag_id: `" + dag
                       + "`, run_id: `" + run + "`, task_id: `" + task
                       + "` and map_index: `" + std::to_string(map_index)
                       + "` was not found");
    reply(res, 200, *ti);
  }

  void task_log(const httplib::Request& req, httplib::Response& res,
                const std::string& dag, const std::string& run,
                const std::string& task, const std::string& try_text) {
    if (try_text.empty()
        || try_text.find_first_not_of("0123456789") != std::string::npos)
      return reply(res, 422,
                   json{{"detail",
                         json::array({{{"loc", {"path", "try_number"}},
                                       {"msg", "Input should be a valid "
                                               "integer"},
                                       {"type", "int_parsing"}}})}});
    int map_index = -1;
    if (req.has_param("map_index"))
      map_index = std::stoi(req.get_param_value("map_index"));
    int try_number = std::stoi(try_text);
    if (!find_ti(dag, run, task, map_index))
      return problem(res, 404, "TaskInstance not found");
    auto i = logs_.find(log_key(dag, run, task, map_index, try_number));
    if (i == logs_.end())
      return problem(res, 404,
                     "TaskInstance try " + try_text + " not found");
    const auto& all = i->second;
    size_t start = 0;
    if (req.has_param("token")) {
      auto t = req.get_param_value("token");
      if (t.rfind("page-", 0) != 0)
        return problem(res, 400, "Bad Signature. Please use only the tokens "
                                 "provided by the API.");
      start = std::stoul(t.substr(5));
    }
    size_t n = opts_.log_page_lines == 0 ? all.size() : opts_.log_page_lines;
    json content = json::array();
    for (size_t k = start; k < all.size() && k < start + n; ++k)
      content.push_back(all[k]);
    json token = nullptr;
    if (start + n < all.size())
      token = "page-" + std::to_string(start + n);
    reply(res, 200,
          json{{"content", content}, {"continuation_token", token}});
  }

  void clear(const httplib::Request& req, httplib::Response& res,
             const std::string& dag) {
    airflow_clear record;
    record.dag_id = dag;
    record.body = json::parse(req.body, nullptr, false);
    if (record.body.is_discarded()) {
      record.valid = false;
      clears_.push_back(record);
      return reply(res, 422,
                   json{{"detail",
                         json::array({{{"loc", {"body"}},
                                       {"msg", "JSON decode error"},
                                       {"type", "json_invalid"}}})}});
    }
    if (auto errors = clear_body_.validate(record.body); !errors.empty()) {
      record.valid = false;
      clears_.push_back(record);
      return invalid(res, errors);
    }
    const auto& b = record.body;
    record.dry_run = b.value("dry_run", true);
    clears_.push_back(record);
    if (dags_.count(dag) == 0)
      return problem(res, 404,
                     "The Dag with ID: `" + dag + "` was not found");
    bool only_failed = b.value("only_failed", true);
    bool only_running = b.value("only_running", false);
    auto run = b.value("dag_run_id", json{});
    json items = json::array();
    for (auto& ti : tis_) {
      if (ti["dag_id"] != dag || (run.is_string() && ti["dag_run_id"] != run))
        continue;
      if (auto ids = b.find("task_ids"); ids != b.end() && ids->is_array()) {
        bool listed = false;
        for (const auto& id : *ids)
          listed = listed
                   || (id.is_string() && id == ti["task_id"])
                   || (id.is_array() && id[0] == ti["task_id"]
                       && id[1] == ti["map_index"]);
        if (!listed)
          continue;
      }
      auto state = ti["state"].is_string() ? ti["state"].get<std::string>()
                                           : std::string{};
      if (only_failed && state != "failed" && state != "upstream_failed")
        continue;
      if (only_running && state != "running")
        continue;
      items.push_back(ti);
      if (!record.dry_run)
        ti["state"] = nullptr;
    }
    if (!record.dry_run && b.value("reset_dag_runs", true))
      for (auto& r : runs_)
        if (r.body["dag_id"] == dag
            && (!run.is_string() || r.body["dag_run_id"] == run))
          r.body["state"] = "queued";
    reply(res, 200,
          json{{"task_instances", items}, {"total_entries", items.size()}});
  }

  options opts_;
  tools::json_schema clear_body_;
  tools::json_schema login_body_;
  std::mutex mtx_;
  std::map<std::string, dag_entry> dags_;
  std::vector<run_entry> runs_;
  std::vector<json> tis_;
  std::map<std::string, json> logs_;
  std::set<std::string> tokens_;
  std::deque<airflow_failure> failures_;
  std::vector<airflow_call> calls_;
  std::vector<airflow_clear> clears_;
  int64_t next_id_ = 0;
  int issued_ = 0;
  // Last, so it stops before the members its handlers use go away.
  loopback_server srv_;
};

} // namespace cadre::test
