// The sql tool against real SQLite files and a real PostgreSQL server that
// the suite starts on loopback (tests/support/postgres_server.hpp).

#include <cctype>
#include <chrono>
#include <cstdlib>
#include <fstream>
#include <thread>

#include <gtest/gtest.h>

#include "cadre/tools/tool_registry.hpp"
#include "postgres_server.hpp"
#include "temp_dir.hpp"
#include "tool_schema_check.hpp"

using namespace cadre;
using namespace cadre::tools;
using namespace std::chrono_literals;

namespace {

expected<std::unique_ptr<tool>> try_make_sql(json settings) {
  tool_registry registry;
  register_builtin_tools(registry);
  return registry.create("sql", json_value{std::move(settings)});
}

std::unique_ptr<tool> make_sql(json settings = nullptr) {
  auto t = try_make_sql(std::move(settings));
  if (!t)
    ADD_FAILURE() << describe(t.error());
  return t ? std::move(*t) : nullptr;
}

/// Runs one call; fails the test on error.
json run(tool& t, json input) {
  tool_context ctx;
  auto out = t.invoke(json_value{input}, ctx);
  if (!out) {
    ADD_FAILURE() << input.dump() << ": " << describe(out.error());
    return nullptr;
  }
  return out->get();
}

/// Runs one call that must fail; returns its error.
caf::error fail(tool& t, json input, tool_context ctx = {}) {
  auto out = t.invoke(json_value{input}, ctx);
  if (out) {
    ADD_FAILURE() << input.dump() << " succeeded: " << out->get().dump();
    return caf::error{};
  }
  return std::move(out.error());
}

/// A query that counts forever unless something stops it.
constexpr const char* forever = "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL "
                                "SELECT x + 1 FROM c) SELECT count(*) FROM c";

bool contains(const std::string& text, const std::string& part) {
  return text.find(part) != std::string::npos;
}

json sqlite_settings(const test::temp_dir& dir, json extra = json::object()) {
  json s{{"root", dir.str()}, {"path", "test.db"}};
  s.update(extra);
  return s;
}

} // namespace

// -- SQLite ------------------------------------------------------------------

TEST(SqlTool, DefaultIsAnInMemorySqliteDatabase) {
  auto sql = make_sql();
  ASSERT_NE(sql, nullptr);
  EXPECT_TRUE(sql->blocking());
  auto out = run(*sql, {{"sql", "SELECT ? + 1 AS two"}, {"params", {1}}});
  EXPECT_EQ(out["rows"], (json{{{"two", 2}}}));
  EXPECT_EQ(out["truncated"], false);
}

TEST(SqlTool, SqliteKeepsJsonTypes) {
  test::temp_dir dir;
  auto sql = make_sql(sqlite_settings(dir));
  ASSERT_NE(sql, nullptr);
  run(*sql, {{"sql", "CREATE TABLE t (id INTEGER PRIMARY KEY, i INTEGER, "
                     "r REAL, s TEXT, b BLOB, ok BOOLEAN, doc JSON, n)"}});
  auto ins = run(*sql, {{"sql", "INSERT INTO t (i, r, s, b, ok, doc, n) "
                                "VALUES (?, ?, ?, ?, ?, ?, ?)"},
                        {"params",
                         {int64_t{9007199254740993}, 2.5, "héllo",
                          {{"$base64", "AAEC/w=="}}, true,
                          {{"k", {1, 2}}}, nullptr}}});
  EXPECT_EQ(ins["rows_affected"], 1);
  EXPECT_EQ(ins["last_insert_id"], 1);
  EXPECT_EQ(ins["columns"], json::array());
  auto out = run(*sql, {{"sql", "SELECT i, r, s, b, ok, doc, n, 1.0 / 4 AS q "
                                "FROM t"}});
  ASSERT_EQ(out["rows"].size(), 1u);
  EXPECT_EQ(out["rows"][0],
            (json{{"i", int64_t{9007199254740993}},
                  {"r", 2.5},
                  {"s", "héllo"},
                  {"b", "AAEC/w=="},
                  {"ok", true},
                  {"doc", {{"k", {1, 2}}}},
                  {"n", nullptr},
                  {"q", 0.25}}));
  EXPECT_TRUE(out["rows"][0]["i"].is_number_integer());
  auto cols = out["columns"];
  EXPECT_EQ(cols[0], (json{{"name", "i"}, {"type", "INTEGER"}}));
  EXPECT_EQ(cols[3],
            (json{{"name", "b"}, {"type", "BLOB"}, {"encoding", "base64"}}));
  EXPECT_EQ(cols[7], (json{{"name", "q"}, {"type", "real"}}));
  EXPECT_EQ(out["rows_affected"], 0);
  EXPECT_FALSE(out.contains("last_insert_id"));
}

TEST(SqlTool, SqliteTextThatIsNotUtf8ComesBackAsBase64) {
  auto sql = make_sql();
  ASSERT_NE(sql, nullptr);
  auto out = run(*sql,
                 {{"sql", "SELECT CAST(x'ff00' AS TEXT) AS t, 'ok' AS u"}});
  EXPECT_EQ(out["rows"], (json{{{"t", "/wA="}, {"u", "ok"}}}));
  EXPECT_EQ(out["columns"][0],
            (json{{"name", "t"}, {"type", "text"}, {"encoding", "base64"}}));
  EXPECT_EQ(out["columns"][1], (json{{"name", "u"}, {"type", "text"}}));
  // The output is valid JSON text throughout.
  EXPECT_NO_THROW(out.dump());
}

TEST(SqlTool, SqliteNamedParameters) {
  auto sql = make_sql();
  ASSERT_NE(sql, nullptr);
  auto out = run(*sql, {{"sql", "SELECT :a || @b AS ab, $a AS a"},
                        {"params", {{"a", "x"}, {"b", "y"}}}});
  EXPECT_EQ(out["rows"], (json{{{"ab", "xy"}, {"a", "x"}}}));
  auto err = fail(*sql, {{"sql", "SELECT :a"}, {"params", {{"b", 1}}}});
  EXPECT_EQ(message_of(err), "tool sql: /params: has no value for :a");
  err = fail(*sql, {{"sql", "SELECT :a"}, {"params", {{"a", 1}, {"c", 2}}}});
  EXPECT_EQ(message_of(err),
            "tool sql: /params/c: the statement has no parameter :c");
}

TEST(SqlTool, SqliteDataPersistsInTheFileAcrossInstances) {
  test::temp_dir dir;
  {
    auto writer = make_sql(sqlite_settings(dir));
    ASSERT_NE(writer, nullptr);
    run(*writer, {{"statements",
                   {{{"sql", "CREATE TABLE kv (k TEXT PRIMARY KEY, v)"}},
                    {{"sql", "INSERT INTO kv VALUES (?, ?)"},
                     {"params", {"a", 1}}}}}});
  }
  EXPECT_TRUE(std::filesystem::exists(dir / "test.db"));
  auto reader = make_sql(sqlite_settings(dir, {{"read_only", true}}));
  ASSERT_NE(reader, nullptr);
  auto out = run(*reader, {{"sql", "SELECT v FROM kv WHERE k = ?"},
                           {"params", {"a"}}});
  EXPECT_EQ(out["rows"], (json{{{"v", 1}}}));
  auto err = fail(*reader, {{"sql", "INSERT INTO kv VALUES ('b', 2)"}});
  EXPECT_EQ(code_of(err), errc::tool_failed);
  EXPECT_TRUE(contains(message_of(err), "readonly")) << message_of(err);
}

TEST(SqlTool, SqliteTransactionRollsBackOnFailure) {
  test::temp_dir dir;
  auto sql = make_sql(sqlite_settings(dir));
  ASSERT_NE(sql, nullptr);
  run(*sql, {{"sql", "CREATE TABLE t (id INTEGER PRIMARY KEY, name TEXT)"}});
  auto err = fail(*sql, {{"statements",
                          {{{"sql", "INSERT INTO t VALUES (1, 'a')"}},
                           {{"sql", "INSERT INTO t VALUES (2, 'b')"}},
                           {{"sql", "INSERT INTO t VALUES (1, 'again')"}}}}});
  EXPECT_EQ(code_of(err), errc::tool_failed);
  EXPECT_EQ(message_of(err), "tool sql: /statements/2/sql: UNIQUE "
                             "constraint failed: t.id");
  auto out = run(*sql, {{"sql", "SELECT count(*) AS n FROM t"}});
  EXPECT_EQ(out["rows"][0]["n"], 0);
  // And a list that succeeds commits every statement, with one result each.
  auto ok = run(*sql, {{"statements",
                        {{{"sql", "INSERT INTO t VALUES (1, 'a')"}},
                         {{"sql", "UPDATE t SET name = ? WHERE id = 1"},
                          {"params", {"b"}}},
                         {{"sql", "SELECT name FROM t"}}}}});
  ASSERT_EQ(ok["results"].size(), 3u);
  EXPECT_EQ(ok["results"][1]["rows_affected"], 1);
  EXPECT_EQ(ok["results"][2]["rows"], (json{{{"name", "b"}}}));
}

TEST(SqlTool, SqliteInjectionInAValueStaysAValue) {
  test::temp_dir dir;
  auto sql = make_sql(sqlite_settings(dir));
  ASSERT_NE(sql, nullptr);
  run(*sql, {{"sql", "CREATE TABLE t (name TEXT)"}});
  const std::string evil = "x'); DROP TABLE t; --";
  run(*sql, {{"sql", "INSERT INTO t (name) VALUES (?)"}, {"params", {evil}}});
  auto out = run(*sql, {{"sql", "SELECT name FROM t WHERE name = ?"},
                        {"params", {evil}}});
  EXPECT_EQ(out["rows"], (json{{{"name", evil}}}));
  auto tables = run(*sql, {{"sql", "SELECT name FROM sqlite_master WHERE "
                                   "type = 'table'"}});
  EXPECT_EQ(tables["rows"], (json{{{"name", "t"}}}));
}

TEST(SqlTool, SqliteOneStatementPerSqlAndNoTransactionControl) {
  auto sql = make_sql();
  ASSERT_NE(sql, nullptr);
  run(*sql, {{"sql", "CREATE TABLE t (x)"}});
  auto err = fail(*sql, {{"sql", "SELECT 1; DROP TABLE t"}});
  EXPECT_EQ(code_of(err), errc::invalid_input);
  EXPECT_TRUE(contains(message_of(err), "more than one statement"));
  // A trailing semicolon or comment is fine.
  run(*sql, {{"sql", "SELECT 1; -- done"}});
  err = fail(*sql, {{"sql", "BEGIN"}});
  EXPECT_TRUE(contains(message_of(err), "transaction statements"))
    << message_of(err);
  err = fail(*sql, {{"statements", {{{"sql", "INSERT INTO t VALUES (1)"}},
                                    {{"sql", "COMMIT"}}}}});
  EXPECT_TRUE(contains(message_of(err), "/statements/1/sql: transaction"))
    << message_of(err);
  EXPECT_EQ(run(*sql, {{"sql", "SELECT count(*) AS n FROM t"}})["rows"][0]["n"],
            0);
  err = fail(*sql, {{"sql", "ATTACH '/tmp/x.db' AS x"}});
  EXPECT_TRUE(contains(message_of(err), "ATTACH")) << message_of(err);
  test::temp_dir dir;
  auto outside = dir / "copy.db";
  err = fail(*sql, {{"sql", "VACUUM INTO ?"}, {"params", {outside}}});
  EXPECT_TRUE(contains(message_of(err), "VACUUM INTO")) << message_of(err);
  err = fail(*sql, {{"sql", "VACUUM INTO '" + outside + "'"}});
  EXPECT_TRUE(contains(message_of(err), "VACUUM INTO")) << message_of(err);
  EXPECT_FALSE(std::filesystem::exists(outside));
  // A plain VACUUM (which attaches a temporary database inside) still works.
  run(*sql, {{"sql", "VACUUM"}});
}

TEST(SqlTool, SqliteStatementTimeoutStopsALongQuery) {
  auto sql = make_sql();
  ASSERT_NE(sql, nullptr);
  auto err = fail(*sql, {{"sql", forever}, {"timeout_ms", 50}});
  EXPECT_EQ(code_of(err), errc::timeout);
  EXPECT_EQ(message_of(err), "tool sql: /sql: statement timeout: not finished "
                             "within 50 ms (timeout_ms)");
  // The connection is still good.
  EXPECT_EQ(run(*sql, {{"sql", "SELECT 7 AS x"}})["rows"][0]["x"], 7);
}

TEST(SqlTool, SqliteCancelStopsALongQuery) {
  auto sql = make_sql();
  ASSERT_NE(sql, nullptr);
  tool_context ctx;
  // Cancelled before or during the query: either way it must stop.
  std::thread canceller{[flag = ctx.cancel_flag] {
    std::this_thread::sleep_for(20ms);
    flag->store(true);
  }};
  auto err = fail(*sql, {{"sql", forever}}, ctx);
  canceller.join();
  EXPECT_EQ(code_of(err), errc::cancelled);
}

TEST(SqlTool, SqliteStopsAtTheTaskDeadline) {
  auto sql = make_sql();
  ASSERT_NE(sql, nullptr);
  auto now_us = std::chrono::duration_cast<std::chrono::microseconds>(
                  std::chrono::system_clock::now().time_since_epoch())
                  .count();
  tool_context ctx;
  ctx.deadline_us = now_us + 50'000;
  auto err = fail(*sql, {{"sql", forever}}, ctx);
  EXPECT_EQ(code_of(err), errc::timeout);
  EXPECT_EQ(message_of(err), "tool sql: /sql: the task deadline passed "
                             "before the statement finished");
  tool_context late;
  late.deadline_us = now_us - 1;
  err = fail(*sql, {{"sql", "SELECT 1"}}, late);
  EXPECT_EQ(code_of(err), errc::timeout);
}

TEST(SqlTool, SqliteBadSqlReportsThePosition) {
  auto sql = make_sql();
  ASSERT_NE(sql, nullptr);
  run(*sql, {{"sql", "CREATE TABLE t (x)"}});
  auto err = fail(*sql, {{"sql", "SELECT x FORM t"}});
  EXPECT_EQ(code_of(err), errc::invalid_input);
  EXPECT_EQ(message_of(err),
            "tool sql: /sql: near \"t\": syntax error (position 15)");
  err = fail(*sql, {{"statements", {{{"sql", "SELECT 1"}},
                                    {{"sql", "SELECT nope FROM t"}}}}});
  EXPECT_EQ(message_of(err), "tool sql: /statements/1/sql: no such column: "
                             "nope (position 8)");
}

TEST(SqlTool, SqliteMaxRowsTruncates) {
  auto sql = make_sql(json{{"max_rows", 3}});
  ASSERT_NE(sql, nullptr);
  const char* five = "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 "
                     "FROM c WHERE x < 5) SELECT x FROM c";
  auto out = run(*sql, {{"sql", five}});
  EXPECT_EQ(out["rows"], (json{{{"x", 1}}, {{"x", 2}}, {{"x", 3}}}));
  EXPECT_EQ(out["truncated"], true);
  out = run(*sql, {{"sql", five}, {"max_rows", 1}});
  EXPECT_EQ(out["rows"].size(), 1u);
  EXPECT_EQ(out["truncated"], true);
  out = run(*sql, {{"sql", "SELECT 1 AS x"}});
  EXPECT_EQ(out["truncated"], false);
  // A write whose RETURNING rows are cut still writes every row.
  run(*sql, {{"sql", "CREATE TABLE t (x)"}});
  out = run(*sql, {{"sql", std::string{"INSERT INTO t "} + five
                             + " RETURNING x"}});
  EXPECT_EQ(out["truncated"], true);
  EXPECT_EQ(out["rows_affected"], 5);
  EXPECT_EQ(run(*sql, {{"sql", "SELECT count(*) AS n FROM t"}})["rows"][0]["n"],
            5);
}

TEST(SqlTool, SqliteDuplicateColumnNamesGetSuffixes) {
  auto sql = make_sql();
  ASSERT_NE(sql, nullptr);
  auto out = run(*sql, {{"sql", "SELECT 1 AS a, 2 AS a, 3 AS a"}});
  EXPECT_EQ(out["rows"], (json{{{"a", 1}, {"a_2", 2}, {"a_3", 3}}}));
}

// Issue 13 item 7: the shape is the published schema's to check (errors
// located by it, limits from the settings in it); what only the statement
// can say (its parameters, the SQL itself) stays the tool's.
TEST(SqlTool, BadInputIsRefusedByTheSchemaNamingThePointer) {
  auto sql = make_sql();
  ASSERT_NE(sql, nullptr);
  test::expect_refused_by_schema(*sql, {
    {json(5), "/"},
    {json::object(), "/"},
    {{{"sql", "SELECT 1"}, {"statements", {{{"sql", "SELECT 1"}}}}}, "/"},
    {{{"sql", 1}}, "/sql"},
    {{{"sql", ""}}, "/sql"},
    {{{"sql", "SELECT ?"}, {"params", "x"}}, "/params"},
    {{{"statements", json::array()}}, "/statements"},
    {{{"statements", {1}}}, "/statements/0"},
    {{{"statements", {{{"params", {1}}}}}}, "/statements/0"},
    {{{"statements", {{{"sql", "SELECT 1"}, {"x", 1}}}}}, "/statements/0"},
    {{{"statements", {{{"sql", "SELECT 1"}}}}, {"params", {1}}}, "/"},
    {{{"sql", "SELECT 1"}, {"database", "nope"}}, "/database"},
    {{{"sql", "SELECT 1"}, {"max_rows", 5000}}, "/max_rows"},
    {{{"sql", "SELECT 1"}, {"timeout_ms", 0}}, "/timeout_ms"},
    {{{"sql", "SELECT 1"}, {"sq1", 1}}, "/"},
  });
  test::expect_accepted_by_both(*sql, {
    {{"sql", "SELECT 1"}},
    {{"sql", "SELECT ?"}, {"params", {1}}, {"max_rows", 10.0}},
    {{"statements", {{{"sql", "SELECT 1"}}, {{"sql", "SELECT ?"},
                                              {"params", {2}}}}},
     {"database", "default"}},
  });
  struct bad_case {
    json input;
    std::string message;
  };
  const bad_case cases[] = {
    {{{"sql", "SELECT ?"}}, "tool sql: /params: is required: the statement "
                            "has 1 parameter"},
    {{{"sql", "SELECT ?, ?"}, {"params", {1}}},
     "tool sql: /params: has 1 values but the statement has 2 parameters"},
    {{{"sql", "SELECT ?"}, {"params", {uint64_t{18446744073709551615u}}}},
     "tool sql: /params/0: integer out of range (SQLite integers are 64-bit "
     "signed)"},
    {{{"sql", "SELECT ?"}, {"params", {{{"$base64", "!!"}}}}},
     "tool sql: /params/0: $base64 is not valid base64"},
    {{{"sql", "  -- nothing"}}, "tool sql: /sql: contains no SQL statement"},
    {{{"sql", std::string{"SELECT 1\0; DROP TABLE t", 24}}},
     "tool sql: /sql: contains a NUL character"},
  };
  for (const auto& c : cases) {
    auto err = fail(*sql, c.input);
    EXPECT_EQ(code_of(err), errc::invalid_input) << c.input.dump();
    EXPECT_EQ(message_of(err), c.message) << c.input.dump();
  }
}

TEST(SqlTool, BadSettingsNameTheKey) {
  test::temp_dir dir;
  struct bad_case {
    json settings;
    std::string message;
  };
  const bad_case cases[] = {
    {json(1), "tools.sql: must be an object"},
    {{{"paht", "x.db"}}, "tools.sql.paht: unknown setting (known: databases, "
                         "default, enabled, max_queue, max_result_bytes, "
                         "max_rows, path, postgres_url, postgres_url_env, "
                         "read_only, root, timeout_ms, workers)"},
    {{{"root", dir.str()}, {"path", "../escape.db"}},
     "tools.sql.path: '../escape.db' is not a file inside tools.sql.root ("
       + dir.str() + ")"},
    {{{"root", dir.str()}, {"path", "/etc/passwd"}},
     "tools.sql.path: '/etc/passwd' is not a file inside tools.sql.root ("
       + dir.str() + ")"},
    {{{"path", 5}}, "tools.sql.path: must be a non-empty string"},
    {{{"path", "a.db"}, {"postgres_url", "postgresql://h/db"}},
     "tools.sql.path: is for SQLite; postgres_url makes the default database "
     "PostgreSQL"},
    {{{"postgres_url", "postgresql://h/db"}, {"postgres_url_env", "X"}},
     "tools.sql.postgres_url: give either postgres_url or postgres_url_env"},
    {{{"databases", {{"pg", {{"driver", "mysql"}}}}}},
     "tools.sql.databases.pg.driver: must be one of sqlite, postgres"},
    {{{"databases", {{"pg", {{"driver", "postgres"}}}}}},
     "tools.sql.databases.pg.url: give either url or url_env (the name of an "
     "environment variable holding it)"},
    {{{"databases", {{"pg", {{"url", "x"}, {"pass", 1}}}}}},
     "tools.sql.databases.pg.pass: unknown setting (known: driver, path, "
     "read_only, url, url_env)"},
    {{{"databases", {{"pg", 5}}}},
     "tools.sql.databases.pg: must be an object"},
    {{{"default", "pg"}}, "tools.sql.default: names no database in "
                          "tools.sql.databases"},
    {{{"databases", {{"a", {{"path", "a.db"}}}, {"b", {{"path", "b.db"}}}}}},
     "tools.sql.default: is required: several databases are configured and "
     "none is named default"},
    {{{"max_rows", -1}}, "tools.sql.max_rows: must be an integer in [0, "
                         "10000000]"},
    {{{"timeout_ms", 0}}, "tools.sql.timeout_ms: must be an integer in [1, "
                          "86400000]"},
    {{{"databases", {{"default", {{"path", "a.db"}}}}}, {"path", "b.db"}},
     "tools.sql.path: conflicts with databases.default"},
  };
  for (const auto& c : cases) {
    auto t = try_make_sql(c.settings);
    ASSERT_FALSE(t) << c.settings.dump();
    EXPECT_EQ(code_of(t.error()), errc::invalid_config) << c.settings.dump();
    EXPECT_EQ(message_of(t.error()), c.message) << c.settings.dump();
  }
}

TEST(SqlTool, DescribeListsTheDatabases) {
  test::temp_dir dir;
  auto sql = make_sql(
    {{"root", dir.str()},
     {"databases",
      {{"main", {{"path", "main.db"}}},
       {"pg",
        {{"driver", "postgres"}, {"url_env", "CADRE_TEST_NO_SUCH_URL"}}}}},
     {"default", "main"}});
  ASSERT_NE(sql, nullptr);
  auto d = sql->describe();
  EXPECT_EQ(d.input_schema["properties"]["database"]["enum"],
            (json{"main", "pg"}));
  EXPECT_TRUE(contains(d.description,
                       "main (SQLite, the default), pg (PostgreSQL)"))
    << d.description;
  // The default (SQLite) works although pg's variable is unset.
  EXPECT_EQ(run(*sql, {{"sql", "SELECT 1 AS x"}})["rows"][0]["x"], 1);
  auto err = fail(*sql, {{"sql", "SELECT 1"}, {"database", "pg"}});
  EXPECT_EQ(code_of(err), errc::invalid_config);
  EXPECT_EQ(message_of(err), "tool sql: database 'pg': the environment "
                             "variable CADRE_TEST_NO_SUCH_URL (url_env) is "
                             "not set or empty");
}

// -- PostgreSQL --------------------------------------------------------------

/// Starts one server for all PostgreSQL tests; each test gets its own
/// schema, so tests do not see each other's tables.
class SqlPostgres : public ::testing::Test {
public:
  static void SetUpTestSuite() {
    server_ = new test::postgres_server{
      std::filesystem::path{CADRE_BINARY_DIR} / "tests" / "pg-template"};
  }

  static void TearDownTestSuite() {
    delete server_;
    server_ = nullptr;
  }

protected:
  void SetUp() override {
    ASSERT_TRUE(server_->running())
      << "PostgreSQL did not start: " << server_->error();
    auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
    schema_ = "t_";
    for (char c : std::string{info->name()})
      schema_ += static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    auto admin = make_sql({{"postgres_url", server_->url()}});
    ASSERT_NE(admin, nullptr);
    run(*admin, {{"sql", "DROP SCHEMA IF EXISTS " + schema_ + " CASCADE"}});
    run(*admin, {{"sql", "CREATE SCHEMA " + schema_}});
    sql_ = make_sql({{"postgres_url", server_->url(schema_)}});
    ASSERT_NE(sql_, nullptr);
  }

  static test::postgres_server* server_;
  std::string schema_;
  std::unique_ptr<tool> sql_;
};

test::postgres_server* SqlPostgres::server_ = nullptr;

TEST_F(SqlPostgres, KeepsJsonTypes) {
  run(*sql_, {{"sql", "CREATE TABLE t (id serial PRIMARY KEY, i int4, "
                      "big int8, f float8, n numeric(30, 10), s text, "
                      "ok bool, doc jsonb, raw json, bin bytea, "
                      "day date, missing text)"}});
  auto ins = run(*sql_,
                 {{"sql", "INSERT INTO t (i, big, f, n, s, ok, doc, raw, bin, "
                          "day, missing) VALUES ($1, $2, $3, $4, $5, $6, $7, "
                          "$8, $9, $10, $11) RETURNING id"},
                  {"params",
                   {42, int64_t{9007199254740993}, 2.5,
                    "12345678901234567890.0123456789", "héllo", true,
                    {{"k", {1, 2}}}, {1, "two"}, {{"$base64", "AAEC/w=="}},
                    "2024-02-29", nullptr}}});
  EXPECT_EQ(ins["rows"], (json{{{"id", 1}}}));
  EXPECT_EQ(ins["rows_affected"], 1);
  auto out = run(*sql_, {{"sql", "SELECT i, big, f, n, s, ok, doc, raw, bin, "
                                 "day, missing FROM t"}});
  ASSERT_EQ(out["rows"].size(), 1u);
  EXPECT_EQ(out["rows"][0],
            (json{{"i", 42},
                  {"big", int64_t{9007199254740993}},
                  {"f", 2.5},
                  {"n", "12345678901234567890.0123456789"},
                  {"s", "héllo"},
                  {"ok", true},
                  {"doc", {{"k", {1, 2}}}},
                  {"raw", {1, "two"}},
                  {"bin", "AAEC/w=="},
                  {"day", "2024-02-29"},
                  {"missing", nullptr}}));
  EXPECT_EQ(out["columns"][1], (json{{"name", "big"}, {"type", "int8"}}));
  EXPECT_EQ(out["columns"][3], (json{{"name", "n"}, {"type", "numeric"}}));
  EXPECT_EQ(out["columns"][8], (json{{"name", "bin"},
                                     {"type", "bytea"},
                                     {"encoding", "base64"}}));
  EXPECT_EQ(out["rows_affected"], 0);
  // A type that is not built in is named from pg_type.
  run(*sql_, {{"sql", "CREATE TYPE mood AS ENUM ('sad', 'ok')"}});
  auto e = run(*sql_, {{"sql", "SELECT 'ok'::mood AS m"}});
  EXPECT_EQ(e["columns"], (json{{{"name", "m"}, {"type", "mood"}}}));
  EXPECT_EQ(e["rows"], (json{{{"m", "ok"}}}));
}

TEST_F(SqlPostgres, TransactionRollsBackOnFailure) {
  run(*sql_, {{"sql", "CREATE TABLE t (id int PRIMARY KEY, name text)"}});
  auto err = fail(*sql_, {{"statements",
                           {{{"sql", "INSERT INTO t VALUES (1, 'a')"}},
                            {{"sql", "INSERT INTO t VALUES (2, 'b')"}},
                            {{"sql", "INSERT INTO t VALUES ($1, $2)"},
                             {"params", {1, "again"}}}}}});
  EXPECT_EQ(code_of(err), errc::tool_failed);
  EXPECT_EQ(message_of(err),
            "tool sql: /statements/2/sql: duplicate key value violates unique "
            "constraint \"t_pkey\" (SQLSTATE 23505); detail: Key (id)=(1) "
            "already exists.");
  auto out = run(*sql_, {{"sql", "SELECT count(*) AS n FROM t"}});
  EXPECT_EQ(out["rows"][0]["n"], 0);
  auto ok = run(*sql_, {{"statements",
                         {{{"sql", "INSERT INTO t VALUES (1, 'a'), (2, 'b')"}},
                          {{"sql", "UPDATE t SET name = $1"},
                           {"params", {"c"}}},
                          {{"sql", "SELECT name FROM t ORDER BY id"}}}}});
  ASSERT_EQ(ok["results"].size(), 3u);
  EXPECT_EQ(ok["results"][0]["rows_affected"], 2);
  EXPECT_EQ(ok["results"][1]["rows_affected"], 2);
  EXPECT_EQ(ok["results"][2]["rows"], (json{{{"name", "c"}}, {{"name", "c"}}}));
  err = fail(*sql_, {{"statements", {{{"sql", "DELETE FROM t"}},
                                     {{"sql", "COMMIT"}}}}});
  EXPECT_TRUE(contains(message_of(err), "/statements/1/sql: transaction"))
    << message_of(err);
  auto n = run(*sql_, {{"sql", "SELECT count(*) AS n FROM t"}});
  EXPECT_EQ(n["rows"][0]["n"], 2);
}

TEST_F(SqlPostgres, InjectionInAValueStaysAValue) {
  run(*sql_, {{"sql", "CREATE TABLE t (name text)"}});
  const std::string evil = "x'); DROP TABLE t; --";
  run(*sql_, {{"sql", "INSERT INTO t (name) VALUES ($1)"}, {"params", {evil}}});
  auto out = run(*sql_, {{"sql", "SELECT name FROM t WHERE name = $1"},
                         {"params", {evil}}});
  EXPECT_EQ(out["rows"], (json{{{"name", evil}}}));
  auto tables = run(*sql_, {{"sql", "SELECT tablename FROM pg_tables WHERE "
                                    "schemaname = current_schema()"}});
  EXPECT_EQ(tables["rows"], (json{{{"tablename", "t"}}}));
  // Several statements in one sql string are refused by the protocol.
  auto err = fail(*sql_, {{"sql", "SELECT 1; DROP TABLE t"}});
  EXPECT_EQ(code_of(err), errc::invalid_input);
  EXPECT_TRUE(contains(message_of(err), "SQLSTATE 42601")) << message_of(err);
}

TEST_F(SqlPostgres, StatementTimeoutStopsPgSleep) {
  auto err = fail(*sql_, {{"sql", "SELECT pg_sleep(30)"}, {"timeout_ms", 100}});
  EXPECT_EQ(code_of(err), errc::timeout);
  EXPECT_EQ(message_of(err), "tool sql: /sql: statement timeout: not finished "
                             "within 100 ms (timeout_ms)");
  // The session keeps working, with the default timeout again.
  EXPECT_EQ(run(*sql_, {{"sql", "SELECT current_setting('statement_timeout') "
                                "AS t"}})["rows"][0]["t"],
            "30s");
}

TEST_F(SqlPostgres, CancelStopsTheQuery) {
  tool_context ctx;
  std::thread canceller{[flag = ctx.cancel_flag] {
    std::this_thread::sleep_for(50ms);
    flag->store(true);
  }};
  auto err = fail(*sql_, {{"sql", "SELECT pg_sleep(30)"}}, ctx);
  canceller.join();
  EXPECT_EQ(code_of(err), errc::cancelled);
  EXPECT_EQ(run(*sql_, {{"sql", "SELECT 1 AS x"}})["rows"][0]["x"], 1);
}

TEST_F(SqlPostgres, BadSqlReportsSqlstateAndPosition) {
  auto err = fail(*sql_, {{"sql", "SELECT 1 FORM t"}});
  EXPECT_EQ(code_of(err), errc::invalid_input);
  EXPECT_EQ(message_of(err), "tool sql: /sql: syntax error at or near \"t\" "
                             "(SQLSTATE 42601, position 15)");
  err = fail(*sql_, {{"statements", {{{"sql", "SELECT 1"}},
                                     {{"sql", "SELECT * FROM nope"}}}}});
  EXPECT_EQ(message_of(err), "tool sql: /statements/1/sql: relation \"nope\" "
                             "does not exist (SQLSTATE 42P01, position 15)");
  err = fail(*sql_, {{"sql", "SELECT $1::int + $2::int"}, {"params", {1}}});
  EXPECT_EQ(code_of(err), errc::invalid_input);
  EXPECT_TRUE(contains(message_of(err), "tool sql: /params: bind message "
                                        "supplies 1 parameters"))
    << message_of(err);
  err = fail(*sql_, {{"sql", "SELECT $1"}, {"params", {{"a", 1}}}});
  EXPECT_EQ(message_of(err), "tool sql: /params: is an object, but PostgreSQL "
                             "takes positional parameters ($1, $2, ...): pass "
                             "an array");
}

TEST_F(SqlPostgres, MaxRowsTruncates) {
  auto out = run(*sql_, {{"sql", "SELECT x FROM generate_series(1, 100) x"},
                         {"max_rows", 3}});
  EXPECT_EQ(out["rows"], (json{{{"x", 1}}, {{"x", 2}}, {{"x", 3}}}));
  EXPECT_EQ(out["truncated"], true);
  out = run(*sql_, {{"sql", "SELECT x FROM generate_series(1, 3) x"},
                    {"max_rows", 3}});
  EXPECT_EQ(out["truncated"], false);
}

TEST_F(SqlPostgres, ReconnectsAfterTheConnectionBreaks) {
  auto pid = run(*sql_, {{"sql", "SELECT pg_backend_pid() AS pid"}});
  ASSERT_TRUE(pid["rows"][0]["pid"].is_number_integer());
  auto killer = make_sql({{"postgres_url", server_->url(schema_)}});
  ASSERT_NE(killer, nullptr);
  auto killed = run(*killer, {{"sql", "SELECT pg_terminate_backend($1) AS ok"},
                              {"params", {pid["rows"][0]["pid"]}}});
  ASSERT_EQ(killed["rows"][0]["ok"], true);
  // The server closes the session asynchronously; wait until it is gone.
  for (int i = 0; i < 500; ++i) {
    auto left = run(*killer, {{"sql", "SELECT count(*) AS n FROM "
                                      "pg_stat_activity WHERE pid = $1"},
                              {"params", {pid["rows"][0]["pid"]}}});
    if (left["rows"][0]["n"] == 0)
      break;
    std::this_thread::sleep_for(10ms);
  }
  auto again = run(*sql_, {{"sql", "SELECT pg_backend_pid() AS pid"}});
  EXPECT_NE(again["rows"][0]["pid"], pid["rows"][0]["pid"]);
}

TEST_F(SqlPostgres, UrlFromAnEnvironmentVariable) {
  ::setenv("CADRE_TEST_SQL_URL", server_->url(schema_).c_str(), 1);
  auto sql = make_sql({{"databases",
                        {{"pg", {{"driver", "postgres"},
                                 {"url_env", "CADRE_TEST_SQL_URL"}}}}},
                       {"default", "pg"}});
  ASSERT_NE(sql, nullptr);
  auto out = run(*sql, {{"sql", "SELECT current_schema() AS s"}});
  ::unsetenv("CADRE_TEST_SQL_URL");
  EXPECT_EQ(out["rows"][0]["s"], schema_);
}

TEST_F(SqlPostgres, ErrorsNeverShowThePassword) {
  auto port = test::free_port();
  auto url = "postgresql://cadre:s3cret-pw@127.0.0.1:" + std::to_string(port)
             + "/postgres";
  auto sql = make_sql({{"postgres_url", url}});
  ASSERT_NE(sql, nullptr);
  auto err = fail(*sql, {{"sql", "SELECT 1"}});
  EXPECT_EQ(code_of(err), errc::unavailable);
  EXPECT_TRUE(contains(message_of(err), "cannot connect")) << message_of(err);
  EXPECT_FALSE(contains(message_of(err), "s3cret-pw")) << message_of(err);
  auto bad = try_make_sql({{"postgres_url", "postgresql://cadre:s3cret-pw@"
                                            "[::1/x"}});
  ASSERT_FALSE(bad);
  EXPECT_EQ(code_of(bad.error()), errc::invalid_config);
  EXPECT_TRUE(contains(message_of(bad.error()), "tools.sql.postgres_url: "))
    << message_of(bad.error());
  EXPECT_FALSE(contains(message_of(bad.error()), "s3cret-pw"))
    << message_of(bad.error());
}

// Issue 12: one statement reached 3.8 GB; a result is bounded in bytes as
// well as rows, and refused with an error naming the limit.
TEST(SqlTool, ResultLargerThanMaxResultBytesIsRefusedNamingTheLimit) {
  auto sql = make_sql(json{{"max_result_bytes", 100000},
                           {"max_rows", 1000000}});
  ASSERT_NE(sql, nullptr);
  // One huge cell: refused before it is copied.
  auto big = fail(*sql, {{"sql", "SELECT zeroblob(50000000) AS b"}});
  EXPECT_EQ(code_of(big), errc::result_too_large) << describe(big);
  EXPECT_TRUE(contains(describe(big), "tools.sql.max_result_bytes"))
    << describe(big);
  EXPECT_TRUE(contains(describe(big), "100000")) << describe(big);
  // Many small rows.
  auto many = fail(*sql, {{"sql", "WITH RECURSIVE c(x) AS (SELECT 1 UNION "
                                  "ALL SELECT x + 1 FROM c WHERE x < 100000) "
                                  "SELECT x, 'some text' AS t FROM c"}});
  EXPECT_EQ(code_of(many), errc::result_too_large) << describe(many);
  // A small result still passes.
  auto out = run(*sql, {{"sql", "SELECT 1 AS one"}});
  EXPECT_EQ(out["rows"], (json{{{"one", 1}}}));
}
