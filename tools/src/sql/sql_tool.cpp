// sql: runs parameterized statements on a configured SQLite or PostgreSQL
// database and returns the rows as JSON; a list of statements runs as one
// transaction. Values are always bound, never spliced into the SQL.

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "cadre/tools/tool.hpp"
#include "sql/sql_connection.hpp"
#include "tool_support.hpp"

namespace cadre::tools {

namespace {

namespace fs = std::filesystem;

/// One configured database (`tools.sql.databases.<name>`).
struct database_options {
  /// "sqlite" or "postgres".
  std::string driver;
  sql::sqlite_settings sqlite;
  sql::postgres_settings postgres;
};

/// Settings of the sql tool (`tools.sql`).
struct sql_options {
  /// Directory that relative SQLite paths start from; every SQLite file
  /// must lie inside it. Default: the working directory
  fs::path root;
  /// The databases by name. Default: none but "default", a SQLite database
  /// in memory (or at `path`, or PostgreSQL at postgres_url[_env])
  std::map<std::string, database_options> databases;
  /// The database a call uses when it names none. Default: "default", or
  /// the only database configured
  std::string default_database = "default";
  /// Most rows one statement returns (a call may ask for fewer).
  /// Default: 1000
  uint64_t max_rows = 1000;
  /// Most bytes of one statement's rows (about their JSON text); a larger
  /// result fails with errc::result_too_large. Default: 16 MiB
  uint64_t max_result_bytes = 16u << 20;
  /// Time limit of one call's statements, in milliseconds (a call may ask
  /// for less). Default: 30 s
  uint64_t timeout_ms = 30'000;
};

constexpr uint64_t max_timeout_ms = 24ull * 3600 * 1000;
constexpr uint64_t max_rows_limit = 10'000'000;
constexpr uint64_t max_result_bytes_limit = 1ull << 30;

class sql_tool final : public tool {
public:
  explicit sql_tool(sql_options opts) : opts_(std::move(opts)) {
  }

  /// Set once by the factory, before the first call.
  void set_input_schema(json_schema schema) {
    input_schema_ = std::move(schema);
  }

  std::string name() const override {
    return "sql";
  }

  tool_description describe() const override {
    json names = json::array();
    std::string listing;
    for (const auto& [name, db] : opts_.databases) {
      names.push_back(name);
      if (!listing.empty())
        listing += ", ";
      listing += name + " (" + (db.driver == "sqlite" ? "SQLite" : "PostgreSQL")
                 + (name == opts_.default_database ? ", the default" : "")
                 + ")";
    }
    json params{
      {"type", {"array", "object"}},
      {"description",
       "Values bound to the placeholders, in order: SQLite ? (or an object "
       "for :name), PostgreSQL $1, $2, .... Numbers, strings, booleans and "
       "null keep their type; an object or array is passed as JSON text; "
       "bytes as {\"$base64\": \"...\"}."},
    };
    json sql_text{
      {"type", "string"},
      {"minLength", 1},
      {"description", "One SQL statement with placeholders; never put "
                      "values into the SQL text."},
    };
    json result{
      {"type", "object"},
      {"properties",
       {
         {"columns",
          {{"type", "array"},
           {"items",
            {{"type", "object"},
             {"properties",
              {{"name", {{"type", "string"}}},
               {"type", {{"type", "string"}}},
               {"encoding", {{"const", "base64"}}}}}}}}},
         {"rows", {{"type", "array"}, {"items", {{"type", "object"}}}}},
         {"truncated", {{"type", "boolean"}}},
         {"rows_affected", {{"type", "integer"}}},
         {"last_insert_id", {{"type", "integer"}}},
       }},
      {"required", {"columns", "rows", "truncated", "rows_affected"}},
    };
    return {
      "sql",
      "Runs parameterized SQL on SQLite or PostgreSQL: one statement, or "
      "a list as one transaction. Databases: " + listing
        + ". Give {sql, params} for one statement, or {statements: [{sql, "
          "params}, ...]} to run several as one transaction (all or "
          "nothing). Put every value in params, never in the SQL text. "
          "Returns {columns: [{name, type}], rows: [{column: value}], "
          "truncated, rows_affected, last_insert_id (SQLite)}; a list "
          "returns {results: [...]}, one per statement. Bytes (BLOB, bytea) "
          "come back as base64 strings and their column says encoding: "
          "base64; PostgreSQL numeric as a string to keep its precision; "
          "json and jsonb as JSON. At most "
          + std::to_string(opts_.max_rows)
          + " rows per statement (truncated: true when there were more); "
            "a call stops after timeout_ms (default "
          + std::to_string(opts_.timeout_ms) + ").",
      json{
        {"type", "object"},
        {"properties",
         {
           {"database",
            {{"type", "string"},
             {"enum", names},
             {"description", "Which configured database; default "
                               + opts_.default_database + "."}}},
           {"sql", {{"type", "string"},
                    {"minLength", 1},
                    {"description", "One SQL statement with placeholders; "
                                    "never put values into the SQL text. "
                                    "Give either sql or statements."}}},
           {"params", params},
           {"statements",
            {{"type", "array"},
             {"minItems", 1},
             {"items",
              {{"type", "object"},
               {"properties", {{"sql", sql_text}, {"params", params}}},
               {"required", {"sql"}},
               {"additionalProperties", false}}},
             {"description", "Several statements run in order as one "
                             "transaction; any error rolls back them "
                             "all."}}},
           {"max_rows",
            {{"type", "integer"},
             {"minimum", 0},
             {"maximum", opts_.max_rows},
             {"description", "Fewer rows per statement than the default."}}},
           {"timeout_ms",
            {{"type", "integer"},
             {"minimum", 1},
             {"maximum", opts_.timeout_ms},
             {"description", "A shorter time limit for the call's "
                             "statements, in ms."}}},
         }},
        {"additionalProperties", false},
        // One statement or a list; a list's params are its statements'.
        {"oneOf", json::array({{{"required", {"sql"}}},
                               {{"required", {"statements"}}}})},
        {"dependencies",
         {{"statements", {{"not", {{"required", {"params"}}}}}}}},
      },
      json{{"oneOf",
            {result,
             {{"type", "object"},
              {"properties",
               {{"results", {{"type", "array"}, {"items", result}}}}},
              {"required", {"results"}}}}}},
    };
  }

  bool blocking() const override {
    return true;
  }

  expected<json_value> invoke(const json_value& input,
                              tool_context& ctx) override {
    auto call = parse(*input);
    if (!call)
      return std::move(call.error());
    auto limits = limits_of(*call, ctx);
    if (!limits)
      return std::move(limits.error());
    auto conn = connection(call->database, *limits);
    if (!conn)
      return std::move(conn.error());
    auto results = (*conn)->run(call->statements, call->is_list, *limits);
    if (!results)
      return std::move(results.error());
    if (!call->is_list)
      return json_value{std::move(results->front())};
    json list = json::array();
    for (auto& r : *results)
      list.push_back(std::move(r));
    return json_value{json{{"results", std::move(list)}}};
  }

private:
  struct sql_call {
    std::string database;
    std::vector<sql::statement> statements;
    bool is_list = false;
    uint64_t max_rows = 0;
    uint64_t timeout_ms = 0;
  };

  expected<sql_call> parse(const json& input) const {
    // The input schema says the shape and the ranges (from the settings);
    // the SQL itself is for the database to judge.
    if (auto ok = detail::check_input("sql", input_schema_, input); !ok)
      return std::move(ok.error());
    sql_call out;
    out.database = input.value("database", opts_.default_database);
    auto statement = [](const json& item, std::string at) {
      return sql::statement{item.at("sql").get<std::string>(),
                            item.value("params", json{}), std::move(at)};
    };
    if (auto list = input.find("statements"); list != input.end()) {
      out.is_list = true;
      for (size_t i = 0; i < list->size(); ++i)
        out.statements.push_back(
          statement((*list)[i], "/statements/" + std::to_string(i)));
    } else {
      out.statements.push_back(statement(input, ""));
    }
    out.max_rows = opts_.max_rows;
    if (auto i = input.find("max_rows"); i != input.end())
      out.max_rows = *detail::as_uint(*i);
    out.timeout_ms = opts_.timeout_ms;
    if (auto i = input.find("timeout_ms"); i != input.end())
      out.timeout_ms = *detail::as_uint(*i);
    return out;
  }

  expected<sql::call_limits> limits_of(const sql_call& call,
                                       const tool_context& ctx) const {
    using namespace std::chrono;
    sql::call_limits out;
    out.max_rows = call.max_rows;
    out.max_result_bytes = opts_.max_result_bytes;
    out.timeout_ms = call.timeout_ms;
    out.ctx = &ctx;
    auto now = steady_clock::now();
    out.end = now + milliseconds{call.timeout_ms};
    if (ctx.deadline_us != 0) {
      auto now_us = duration_cast<microseconds>(
                      system_clock::now().time_since_epoch())
                      .count();
      auto left_us = ctx.deadline_us - now_us;
      if (left_us <= 0)
        return make_error(errc::timeout, "tool sql: the task deadline "
                                         "passed before the call started");
      if (microseconds{left_us} < milliseconds{call.timeout_ms}) {
        out.end = now + microseconds{left_us};
        out.end_is_deadline = true;
      }
    }
    if (ctx.cancelled())
      return make_error(errc::cancelled, "tool sql: cancelled before the "
                                         "call started");
    return out;
  }

  /// This instance's connection to `name`, opened on first use and again
  /// after it broke.
  expected<sql::connection*> connection(const std::string& name,
                                        const sql::call_limits& limits) {
    auto i = conns_.find(name);
    if (i != conns_.end() && !i->second->usable()) {
      conns_.erase(i);
      i = conns_.end();
    }
    if (i == conns_.end()) {
      const auto& db = opts_.databases.at(name);
      auto conn = db.driver == "sqlite"
                    ? sql::open_sqlite(name, db.sqlite)
                    : sql::open_postgres(name, db.postgres, limits);
      if (!conn)
        return std::move(conn.error());
      i = conns_.emplace(name, std::move(*conn)).first;
    }
    return i->second.get();
  }

  sql_options opts_;
  std::map<std::string, std::unique_ptr<sql::connection>> conns_;
  json_schema input_schema_;
};

// -- settings -----------------------------------------------------------------

/// The settings schema of one database (`databases.<name>`, or the
/// top-level keys that describe the database "default").
json database_schema() {
  return detail::settings_schema(
    {{"driver", {{"enum", {"sqlite", "postgres"}},
                 {"description", "Default: postgres with url or url_env, "
                                 "else sqlite."}}},
     {"path", detail::string_setting("SQLite: the file below root; "
                                     "default :memory:.")},
     {"url", detail::string_setting("PostgreSQL: the connection URL.")},
     {"url_env", detail::string_setting("PostgreSQL: the environment "
                                        "variable that holds the URL.")},
     {"read_only", detail::bool_setting(false, "SQLite: open read-only.")}});
}

/// Resolves a SQLite path against the root and checks it stays inside.
expected<std::string> sqlite_path(const std::string& path,
                                  const fs::path& root,
                                  const std::string& key) {
  if (path == ":memory:")
    return path;
  std::error_code ec;
  auto full = fs::weakly_canonical(root / path, ec);
  if (ec)
    return detail::settings_error("sql", key,
                                  "cannot resolve '" + path
                                    + "': " + ec.message());
  auto rel = full.lexically_relative(root);
  if (rel.empty() || rel == "." || *rel.begin() == "..")
    return detail::settings_error("sql", key,
                                  "'" + path + "' is not a file inside "
                                    "tools.sql.root (" + root.string()
                                    + ")");
  return full.string();
}

/// Parses one database entry (`where` ends in '.').
expected<database_options> database_of(const json& obj,
                                       const std::string& where,
                                       const fs::path& root) {
  database_options db;
  auto text = [&](const char* key) {
    return detail::setting<std::string>(obj, key, "");
  };
  auto path = text("path");
  auto url = text("url");
  auto url_env = text("url_env");
  auto read_only = detail::setting(obj, "read_only", false);
  db.driver = text("driver");
  if (db.driver.empty())
    db.driver = url.empty() && url_env.empty() ? "sqlite" : "postgres";
  if (db.driver == "sqlite") {
    if (!url.empty() || !url_env.empty())
      return detail::settings_error("sql", where + "url",
                                    "is for driver postgres");
    auto full = sqlite_path(path.empty() ? ":memory:" : path, root,
                            where + "path");
    if (!full)
      return std::move(full.error());
    db.sqlite = sql::sqlite_settings{*full, read_only};
    return db;
  }
  if (!path.empty())
    return detail::settings_error("sql", where + "path",
                                  "is for driver sqlite");
  if (read_only)
    return detail::settings_error("sql", where + "read_only",
                                  "is for driver sqlite (for PostgreSQL, "
                                  "connect as a read-only role)");
  if (url.empty() == url_env.empty())
    return detail::settings_error("sql", where + "url",
                                  "give either url or url_env (the name of "
                                  "an environment variable holding it)");
  if (!url.empty())
    if (auto problem = sql::postgres_url_problem(url))
      return detail::settings_error("sql", where + "url",
                                    "not a PostgreSQL connection URL: "
                                      + *problem);
  db.postgres = sql::postgres_settings{url, url_env};
  return db;
}

} // namespace

json sql_settings_schema() {
  sql_options defaults;
  auto database = database_schema();
  auto props = json{
    {"root", detail::string_setting("Directory that relative SQLite paths "
                                    "start from. Default: the working "
                                    "directory.")},
    {"databases", {{"type", "object"},
                   {"additionalProperties", database},
                   {"description", "The databases by name."}}},
    {"default", detail::string_setting("The database a call uses when it "
                                       "names none.")},
    {"max_rows", detail::integer_setting(defaults.max_rows, 0,
                                         max_rows_limit,
                                         "Most rows one statement "
                                         "returns.")},
    {"max_result_bytes",
     detail::integer_setting(defaults.max_result_bytes, 1,
                             max_result_bytes_limit,
                             "Most bytes of one statement's rows.")},
    {"timeout_ms", detail::integer_setting(defaults.timeout_ms, 1,
                                           max_timeout_ms,
                                           "Time limit of one call's "
                                           "statements, in ms.")},
  };
  // The top-level keys that describe the database "default".
  const auto& db = database["properties"];
  props["path"] = db["path"];
  props["read_only"] = db["read_only"];
  props["postgres_url"] = db["url"];
  props["postgres_url_env"] = db["url_env"];
  return detail::settings_schema(std::move(props));
}

expected<std::unique_ptr<tool>> make_sql_tool(const json_value& settings) {
  const json& obj = *settings;
  sql_options opts;
  auto root = detail::setting<std::string>(obj, "root", "");
  std::error_code ec;
  opts.root = fs::weakly_canonical(fs::absolute(root.empty() ? "." : root),
                                   ec);
  if (ec)
    return detail::settings_error("sql", "root", ec.message());
  if (auto i = obj.find("databases"); i != obj.end() && !i->is_null()) {
    for (const auto& [name, entry] : i->items()) {
      auto where = "databases." + name + ".";
      auto db = database_of(entry, where, opts.root);
      if (!db)
        return std::move(db.error());
      opts.databases.emplace(name, std::move(*db));
    }
  }
  // The top-level path / postgres_url describe the database "default".
  json implicit = json::object();
  if (auto i = obj.find("path"); i != obj.end())
    implicit["path"] = *i;
  if (auto i = obj.find("read_only"); i != obj.end())
    implicit["read_only"] = *i;
  if (auto i = obj.find("postgres_url"); i != obj.end())
    implicit["url"] = *i;
  if (auto i = obj.find("postgres_url_env"); i != obj.end())
    implicit["url_env"] = *i;
  if (opts.databases.count("default") != 0) {
    if (!implicit.empty())
      return detail::settings_error("sql", implicit.begin().key(),
                                    "conflicts with databases.default");
  } else if (opts.databases.empty() || !implicit.empty()) {
    if (implicit.contains("path")
        && (implicit.contains("url") || implicit.contains("url_env")))
      return detail::settings_error("sql", "path",
                                    "is for SQLite; postgres_url makes the "
                                    "default database PostgreSQL");
    if (implicit.contains("url") && implicit.contains("url_env"))
      return detail::settings_error("sql", "postgres_url",
                                    "give either postgres_url or "
                                    "postgres_url_env");
    auto db = database_of(implicit, "", opts.root);
    if (!db) {
      // Name the key as written at the top level.
      auto msg = message_of(db.error());
      for (auto [from, to] : {std::pair{"tools.sql.url_env:",
                                        "tools.sql.postgres_url_env:"},
                              std::pair{"tools.sql.url:",
                                        "tools.sql.postgres_url:"}})
        if (msg.rfind(from, 0) == 0)
          msg = to + msg.substr(std::string_view{from}.size());
      return make_error(code_of(db.error()), std::move(msg));
    }
    opts.databases.emplace("default", std::move(*db));
  }
  auto def = detail::setting<std::string>(obj, "default", "");
  if (!def.empty()) {
    opts.default_database = def;
    if (opts.databases.count(opts.default_database) == 0)
      return detail::settings_error("sql", "default",
                                    "names no database in "
                                    "tools.sql.databases");
  } else if (opts.databases.count("default") == 0) {
    if (opts.databases.size() != 1)
      return detail::settings_error("sql", "default",
                                    "is required: several databases are "
                                    "configured and none is named default");
    opts.default_database = opts.databases.begin()->first;
  }
  opts.max_rows = detail::setting(obj, "max_rows", opts.max_rows);
  opts.max_result_bytes = detail::setting(obj, "max_result_bytes",
                                          opts.max_result_bytes);
  opts.timeout_ms = detail::setting(obj, "timeout_ms", opts.timeout_ms);
  return detail::with_input_schema(std::make_unique<sql_tool>(std::move(opts)));
}

} // namespace cadre::tools
