// airflow: reads and acts on Apache Airflow through its public REST API
// (Airflow 3's /api/v2; Airflow 2's /api/v1 where a deployment still has
// it): failed DAG runs and task instances, task logs, DAG details and
// source, clearing task instances (a dry run unless confirmed), version and
// health. One JSON Schema declares the input of every operation.

#include <memory>
#include <set>
#include <string>
#include <string_view>
#include <utility>

#include "airflow/airflow_client.hpp"
#include "airflow/airflow_log.hpp"
#include "cadre/lang/json_schema.hpp"
#include "cadre/tools/tool.hpp"
#include "net/net_support.hpp"
#include "tool_support.hpp"

namespace cadre::tools {

namespace {

using airflow::api_call;
using airflow::connection_options;
using airflow::segment;

constexpr std::string_view tool_name = "airflow";

/// Log pages followed through continuation tokens at most.
constexpr int max_log_pages = 50;

/// Default of task_log's max_bytes.
constexpr uint64_t default_log_bytes = 64 * 1024;

/// The keys of the clear operation that go into ClearTaskInstancesBody as
/// given.
constexpr const char* clear_body_keys[]
  = {"dag_run_id",         "task_ids",         "only_failed",
     "only_running",       "include_upstream", "include_downstream",
     "include_future",     "include_past",     "reset_dag_runs",
     "start_date",         "end_date"};

json string_prop(const char* description) {
  return json{{"type", "string"}, {"minLength", 1},
              {"description", description}};
}

json bool_prop(const char* description) {
  return json{{"type", "boolean"}, {"description", description}};
}

/// `if operation == op then: only `keys` (and operation, connection), and
/// `required` among them`.
json operation_rule(const char* op, std::initializer_list<const char*> keys,
                    std::initializer_list<const char*> required) {
  json props = json::object();
  props["operation"] = true;
  props["connection"] = true;
  for (const auto* k : keys)
    props[k] = true;
  json then{{"properties", props}, {"additionalProperties", false}};
  if (required.size() > 0)
    then["required"] = json(required);
  return json{{"if",
               {{"properties", {{"operation", {{"const", op}}}}},
                {"required", {"operation"}}}},
              {"then", then}};
}

json input_schema(const airflow::airflow_options& opts) {
  json connection{{"type", "string"},
                  {"minLength", 1},
                  {"description", "Which configured Airflow "
                                  "(tools.airflow.connections); default: "
                                  "\"default\"."}};
  if (!opts.connections.empty()) {
    json names = json::array();
    for (const auto& [name, c] : opts.connections)
      names.push_back(name);
    connection["enum"] = names;
  }
  json task_ids{
    {"type", "array"},
    {"items",
     {{"anyOf",
       {{{"type", "string"}, {"minLength", 1}},
        {{"type", "array"},
         {"items", {{{"type", "string"}}, {{"type", "integer"}}}},
         {"minItems", 2},
         {"maxItems", 2}}}}}},
    {"description", "clear: task ids, or [task_id, map_index] pairs for "
                    "mapped tasks; default: every task of the run."}};
  json date_time{{"type", "string"}, {"format", "date-time"}};
  auto described = [](json schema, const char* description) {
    schema["description"] = description;
    return schema;
  };
  return json{
    {"type", "object"},
    {"properties",
     {
       {"operation",
        {{"type", "string"},
         {"enum",
          {"failed_runs", "failed_tasks", "task_log", "dag", "dag_source",
           "clear", "version", "health"}},
         {"description",
          "failed_runs: failed DAG runs, newest first; failed_tasks: the "
          "failed task instances of a run; task_log: the log of one try of "
          "a task; dag: DAG details; dag_source: the DAG's source code; "
          "clear: clear task instances so they run again (a dry run unless "
          "dry_run is false and confirm is true); version; health."}}},
       {"connection", connection},
       {"dag_id",
        string_prop("The DAG. failed_runs: default \"~\", every DAG.")},
       {"dag_run_id", string_prop("The DAG run (its run id).")},
       {"task_id", string_prop("task_log: the task.")},
       {"try_number",
        {{"type", "integer"},
         {"minimum", 0},
         {"description", "task_log: which try; default: the latest."}}},
       {"map_index",
        {{"type", "integer"},
         {"minimum", -1},
         {"description",
          "task_log: the mapped task's index; default -1 (not mapped)."}}},
       {"since",
        described(date_time, "failed_runs: only runs that ended at or after "
                             "this time (ISO 8601 with a zone, e.g. "
                             "2025-01-01T00:00:00Z).")},
       {"max",
        {{"type", "integer"},
         {"minimum", 1},
         {"maximum", opts.max_items},
         {"description",
          "failed_runs, failed_tasks: the most items to return (truncated "
          "is true when there were more); default: all, up to "
          "tools.airflow.max_items."}}},
       {"max_bytes",
        {{"type", "integer"},
         {"minimum", 1},
         {"maximum", opts.max_log_bytes},
         {"description", "task_log: the most bytes of log text; a longer "
                         "log keeps its end (truncated is true). Default "
                         "65536."}}},
       {"version_number",
        {{"type", "integer"},
         {"minimum", 1},
         {"description",
          "dag_source: the DAG version; default: the latest (Airflow 3)."}}},
       {"dry_run",
        bool_prop("clear: true (the default) only lists what would be "
                  "cleared. A real clear needs dry_run false AND confirm "
                  "true; otherwise it is refused.")},
       {"confirm",
        bool_prop("clear: must be true, with dry_run false, to really clear "
                  "task instances.")},
       {"task_ids", task_ids},
       {"only_failed",
        bool_prop("clear: only failed task instances (Airflow's default: "
                  "true).")},
       {"only_running", bool_prop("clear: only running task instances.")},
       {"include_upstream", bool_prop("clear: also upstream tasks.")},
       {"include_downstream", bool_prop("clear: also downstream tasks.")},
       {"include_future", bool_prop("clear: also later runs.")},
       {"include_past", bool_prop("clear: also earlier runs.")},
       {"reset_dag_runs",
        bool_prop("clear: set the DAG runs running again (Airflow's "
                  "default: true).")},
       {"start_date",
        described(date_time, "clear: runs from this logical date.")},
       {"end_date",
        described(date_time, "clear: runs up to this logical date.")},
     }},
    {"required", {"operation"}},
    {"additionalProperties", false},
    {"allOf",
     {
       operation_rule("failed_runs", {"dag_id", "since", "max"}, {}),
       operation_rule("failed_tasks", {"dag_id", "dag_run_id", "max"},
                      {"dag_id", "dag_run_id"}),
       operation_rule("task_log",
                      {"dag_id", "dag_run_id", "task_id", "try_number",
                       "map_index", "max_bytes"},
                      {"dag_id", "dag_run_id", "task_id"}),
       operation_rule("dag", {"dag_id"}, {"dag_id"}),
       operation_rule("dag_source", {"dag_id", "version_number"}, {"dag_id"}),
       operation_rule("clear",
                      {"dag_id", "dag_run_id", "task_ids", "dry_run",
                       "confirm", "only_failed", "only_running",
                       "include_upstream", "include_downstream",
                       "include_future", "include_past", "reset_dag_runs",
                       "start_date", "end_date"},
                      {"dag_id"}),
       operation_rule("version", {}, {}),
       operation_rule("health", {}, {}),
     }},
  };
}

json output_schema() {
  json list{{"type", "array"}, {"items", {{"type", "object"}}}};
  return json{
    {"type", "object"},
    {"description",
     "By operation. failed_runs: {dag_id, dag_runs, total_entries, "
     "truncated}; failed_tasks: {dag_id, dag_run_id, task_instances, "
     "total_entries, truncated}; task_log: {dag_id, dag_run_id, task_id, "
     "map_index, try_number, log, truncated, total_bytes}; dag: Airflow's "
     "DAG details; dag_source: {dag_id, content, ...}; clear: {dag_id, "
     "dry_run, task_instances, total_entries}; version: {version, "
     "git_version}; health: {metadatabase, scheduler, triggerer, ...}. "
     "Runs and task instances carry Airflow's field names."},
    {"properties",
     {
       {"dag_runs", list},
       {"task_instances", list},
       {"total_entries", {{"type", "integer"}}},
       {"truncated", {{"type", "boolean"}}},
       {"log", {{"type", "string"}}},
       {"total_bytes", {{"type", "integer"}}},
       {"dry_run", {{"type", "boolean"}}},
     }},
  };
}

/// A query string built pair by pair.
class query_builder {
public:
  query_builder& add(std::string_view key, std::string_view value) {
    if (!text_.empty())
      text_ += '&';
    text_ += net::url_encode(key);
    text_ += '=';
    text_ += net::url_encode(value);
    return *this;
  }

  const std::string& str() const noexcept {
    return text_;
  }

private:
  std::string text_;
};

/// What a paginated listing collected.
struct listing {
  json items = json::array();
  uint64_t total_entries = 0;
  bool truncated = false;
};

class airflow_tool final : public tool {
public:
  airflow_tool(airflow::airflow_options opts, json_schema schema)
    : client_(std::move(opts)), schema_(std::move(schema)) {
  }

  std::string name() const override {
    return std::string{tool_name};
  }

  tool_description describe() const override {
    return {
      std::string{tool_name},
      "Reads and acts on Apache Airflow through its REST API: `operation` "
      "failed_runs (failed DAG runs of one DAG or all, newest first), "
      "failed_tasks (failed task instances of a run), task_log (a task "
      "try's log, its end when long), dag (DAG details), dag_source (the "
      "DAG's code), clear (clear task instances so they run again: a dry "
      "run by default; a real clear needs dry_run false and confirm true), "
      "version, health. `connection` names a configured Airflow.",
      input_schema(client_.options()),
      output_schema(),
    };
  }

  bool blocking() const override {
    return true;
  }

  expected<json_value> invoke(const json_value& input,
                              tool_context& ctx) override {
    const json& in = *input;
    if (auto ok = detail::check_input(name(), schema_, in); !ok)
      return std::move(ok.error());
    auto conn = client_.connection(in.value("connection", "default"));
    if (!conn)
      return std::move(conn.error());
    const auto& c = **conn;
    auto op = in.at("operation").get<std::string>();
    expected<json> out = json{};
    if (op == "failed_runs")
      out = failed_runs(c, in, ctx);
    else if (op == "failed_tasks")
      out = failed_tasks(c, in, ctx);
    else if (op == "task_log")
      out = task_log(c, in, ctx);
    else if (op == "dag")
      out = client_.send(c, get("/dags/" + segment(dag_of(in)) + "/details"),
                         ctx);
    else if (op == "dag_source")
      out = dag_source(c, in, ctx);
    else if (op == "clear")
      out = clear(c, in, ctx);
    else if (op == "version")
      out = client_.send(c, unauthenticated("/version"), ctx);
    else
      out = client_.send(c,
                         unauthenticated(c.api_version == 1 ? "/health"
                                                            : "/monitor/"
                                                              "health"),
                         ctx);
    if (!out)
      return std::move(out.error());
    client_.scrub(*out);
    return json_value{std::move(*out)};
  }

private:
  static std::string dag_of(const json& in) {
    return in.at("dag_id").get<std::string>();
  }

  static api_call get(std::string path, std::string query = {}) {
    api_call call;
    call.path = std::move(path);
    call.query = std::move(query);
    return call;
  }

  static api_call unauthenticated(std::string path) {
    auto call = get(std::move(path));
    call.authenticated = false;
    return call;
  }

  /// Fails unless `body[key]` is an array (and total_entries, when
  /// `counted`, an integer), naming the endpoint.
  static expected<void> check_list(const json& body, const api_call& call,
                                   const connection_options& c,
                                   const char* key, bool counted) {
    if (body.is_object() && body.contains(key) && body[key].is_array()
        && (!counted
            || (body.contains("total_entries")
                && body["total_entries"].is_number_integer())))
      return {};
    return make_error(errc::tool_failed,
                      "tool airflow: " + call.method + " " + c.api_prefix()
                        + call.path + " (connection '" + c.name
                        + "'): the answer has no " + key
                        + (counted ? " array and total_entries" : " array"));
  }

  /// Pages through `path` (limit/offset) until total_entries or `max`
  /// items; an item whose `key_of` was seen on an earlier page (the list
  /// moved while it was read) is skipped.
  template <class KeyOf>
  expected<listing> list_all(const connection_options& c,
                             const std::string& path,
                             const query_builder& filters, const char* key,
                             uint64_t max, KeyOf key_of, tool_context& ctx) {
    listing out;
    std::set<std::string> seen;
    uint64_t offset = 0;
    for (;;) {
      auto limit = std::min<uint64_t>(client_.options().page_size,
                                      max - out.items.size());
      auto q = filters;
      q.add("limit", std::to_string(limit))
        .add("offset", std::to_string(offset));
      auto call = get(path, q.str());
      auto body = client_.send(c, call, ctx);
      if (!body)
        return std::move(body.error());
      if (auto ok = check_list(*body, call, c, key, true); !ok)
        return std::move(ok.error());
      out.total_entries = (*body)["total_entries"].get<uint64_t>();
      auto& page = (*body)[key];
      for (auto& item : page) {
        if (out.items.size() >= max)
          break;
        if (seen.insert(key_of(item)).second)
          out.items.push_back(std::move(item));
      }
      offset += page.size();
      if (page.empty() || offset >= out.total_entries)
        return out;
      if (out.items.size() >= max) {
        out.truncated = true;
        return out;
      }
    }
  }

  uint64_t max_of(const json& in) const {
    return in.value("max", client_.options().max_items);
  }

  expected<json> failed_runs(const connection_options& c, const json& in,
                             tool_context& ctx) {
    auto dag = in.value("dag_id", std::string{"~"});
    query_builder q;
    q.add("state", "failed").add("order_by", "-end_date");
    // Airflow 3 sorts by several keys: the id keeps pages stable on ties.
    if (c.api_version == 2)
      q.add("order_by", "-id");
    if (auto s = in.find("since"); s != in.end())
      q.add("end_date_gte", s->get<std::string>());
    auto runs = list_all(
      c, "/dags/" + segment(dag) + "/dagRuns", q, "dag_runs", max_of(in),
      [](const json& run) {
        return run.value("dag_id", "") + '\n' + run.value("dag_run_id", "");
      },
      ctx);
    if (!runs)
      return std::move(runs.error());
    return json{{"dag_id", dag},
                {"dag_runs", std::move(runs->items)},
                {"total_entries", runs->total_entries},
                {"truncated", runs->truncated}};
  }

  std::string run_path(const json& in) const {
    return "/dags/" + segment(dag_of(in)) + "/dagRuns/"
           + segment(in.at("dag_run_id").get<std::string>());
  }

  expected<json> failed_tasks(const connection_options& c, const json& in,
                              tool_context& ctx) {
    query_builder q;
    q.add("state", "failed");
    auto tis = list_all(
      c, run_path(in) + "/taskInstances", q, "task_instances", max_of(in),
      [](const json& ti) {
        return ti.value("dag_run_id", "") + '\n' + ti.value("task_id", "")
               + '\n' + std::to_string(ti.value("map_index", -1));
      },
      ctx);
    if (!tis)
      return std::move(tis.error());
    return json{{"dag_id", dag_of(in)},
                {"dag_run_id", in.at("dag_run_id")},
                {"task_instances", std::move(tis->items)},
                {"total_entries", tis->total_entries},
                {"truncated", tis->truncated}};
  }

  expected<json> task_log(const connection_options& c, const json& in,
                          tool_context& ctx) {
    auto task = in.at("task_id").get<std::string>();
    int64_t map_index = in.value("map_index", int64_t{-1});
    auto ti_path = run_path(in) + "/taskInstances/" + segment(task);
    int64_t try_number = 0;
    if (auto t = in.find("try_number"); t != in.end()) {
      try_number = t->get<int64_t>();
    } else {
      // The latest try is the task instance's try_number.
      auto call = get(map_index >= 0
                        ? ti_path + "/" + std::to_string(map_index)
                        : ti_path);
      auto ti = client_.send(c, call, ctx);
      if (!ti)
        return std::move(ti.error());
      if (!ti->is_object() || !(*ti)["try_number"].is_number_integer())
        return make_error(errc::tool_failed,
                          "tool airflow: GET " + c.api_prefix() + call.path
                            + " (connection '" + c.name
                            + "'): the answer has no try_number");
      try_number = (*ti)["try_number"].get<int64_t>();
    }
    auto max_bytes = in.value("max_bytes", std::min(default_log_bytes,
                                                    client_.options()
                                                      .max_log_bytes));
    airflow::log_tail tail{max_bytes};
    auto log_path = ti_path + "/logs/" + std::to_string(try_number);
    std::string token;
    for (int page = 0; page < max_log_pages; ++page) {
      query_builder q;
      q.add("full_content", "true");
      if (map_index >= 0)
        q.add("map_index", std::to_string(map_index));
      if (!token.empty())
        q.add("token", token);
      auto call = get(log_path, q.str());
      auto body = client_.send(c, call, ctx);
      if (!body)
        return std::move(body.error());
      if (!body->is_object() || !body->contains("content"))
        return make_error(errc::tool_failed,
                          "tool airflow: GET " + c.api_prefix() + call.path
                            + " (connection '" + c.name
                            + "'): the answer has no content");
      const auto& content = (*body)["content"];
      bool empty = true;
      if (content.is_string()) {
        // Airflow 2: the log as one text.
        empty = content.get_ref<const std::string&>().empty();
        tail.add_text(content.get_ref<const std::string&>());
      } else if (content.is_array()) {
        empty = content.empty();
        for (const auto& line : content)
          tail.add_line(airflow::format_log_line(line));
      }
      // A finished log has no continuation token; a running task's does,
      // and is read until a page brings nothing new.
      auto next = body->value("continuation_token", json{});
      if (empty || !next.is_string() || next.get<std::string>().empty()
          || next.get<std::string>() == token)
        break;
      token = next.get<std::string>();
    }
    return json{{"dag_id", dag_of(in)},
                {"dag_run_id", in.at("dag_run_id")},
                {"task_id", task},
                {"map_index", map_index},
                {"try_number", try_number},
                {"log", tail.text()},
                {"truncated", tail.truncated()},
                {"total_bytes", tail.total_bytes()}};
  }

  expected<json> dag_source(const connection_options& c, const json& in,
                            tool_context& ctx) {
    auto dag = dag_of(in);
    if (c.api_version == 2) {
      query_builder q;
      if (auto v = in.find("version_number"); v != in.end())
        q.add("version_number", std::to_string(v->get<int64_t>()));
      return client_.send(c, get("/dagSources/" + segment(dag), q.str()),
                          ctx);
    }
    // Airflow 2 serves sources by the DAG's file token.
    auto details = client_.send(c, get("/dags/" + segment(dag)), ctx);
    if (!details)
      return std::move(details.error());
    auto token = details->value("file_token", json{});
    if (!token.is_string() || token.get<std::string>().empty())
      return make_error(errc::tool_failed,
                        "tool airflow: GET " + c.api_prefix() + "/dags/"
                          + segment(dag) + " (connection '" + c.name
                          + "'): the answer has no file_token");
    auto source = client_.send(
      c, get("/dagSources/" + segment(token.get<std::string>())), ctx);
    if (!source)
      return std::move(source.error());
    return json{{"dag_id", dag},
                {"content", source->value("content", json{})}};
  }

  expected<json> clear(const connection_options& c, const json& in,
                       tool_context& ctx) {
    bool dry_run = in.value("dry_run", true);
    // A schema can say this, but not in words a caller can act on.
    if (!dry_run && !in.value("confirm", false))
      return detail::input_error(tool_name, "/confirm",
                                 "a real clear (dry_run false) is refused "
                                 "unless confirm is true");
    json body{{"dry_run", dry_run}};
    for (const auto* key : clear_body_keys)
      if (auto i = in.find(key); i != in.end())
        body[key] = *i;
    api_call call;
    call.method = "POST";
    call.path = "/dags/" + segment(dag_of(in)) + "/clearTaskInstances";
    call.body = std::move(body);
    // A real clear is sent once: a 5xx may come after it took effect.
    call.retry = dry_run;
    auto out = client_.send(c, call, ctx);
    if (!out)
      return std::move(out.error());
    if (auto ok = check_list(*out, call, c, "task_instances", false); !ok)
      return std::move(ok.error());
    auto& tis = (*out)["task_instances"];
    auto total = out->value("total_entries", json(tis.size()));
    return json{{"dag_id", dag_of(in)},
                {"dry_run", dry_run},
                {"task_instances", std::move(tis)},
                {"total_entries", std::move(total)}};
  }

  airflow::client client_;
  json_schema schema_;
};

} // namespace

json airflow_settings_schema() {
  return airflow::settings_schema();
}

expected<std::unique_ptr<tool>> make_airflow_tool(const json_value& settings) {
  auto opts = airflow::parse_options(settings);
  if (!opts)
    return std::move(opts.error());
  auto schema = json_schema::compile(input_schema(*opts));
  if (!schema)
    return make_error(errc::internal, "tool airflow: the input schema does "
                                      "not compile: "
                                        + message_of(schema.error()));
  return std::unique_ptr<tool>{
    std::make_unique<airflow_tool>(std::move(*opts), std::move(*schema))};
}

} // namespace cadre::tools
