// The PostgreSQL backend of the sql tool: one libpq connection, statements
// sent with PQsendQueryParams (values always travel apart from the SQL),
// results read row by row, SET statement_timeout on the server and PQcancel
// from the client when the task is cancelled or its time is up.

#include <poll.h>

#include <cctype>
#include <cerrno>
#include <climits>
#include <cmath>
#include <cstdlib>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include <libpq-fe.h>

#include "sql/sql_connection.hpp"
#include "tool_support.hpp"
#include "cadre/messages/json_text.hpp"

namespace cadre::tools::sql {

namespace {

using namespace std::chrono;

// Type OIDs of the built-in types (pg_type.dat); stable across versions.
constexpr Oid bool_oid = 16;
constexpr Oid bytea_oid = 17;
constexpr Oid int8_oid = 20;
constexpr Oid int2_oid = 21;
constexpr Oid int4_oid = 23;
constexpr Oid oid_oid = 26;
constexpr Oid json_oid = 114;
constexpr Oid float4_oid = 700;
constexpr Oid float8_oid = 701;
constexpr Oid numeric_oid = 1700;
constexpr Oid jsonb_oid = 3802;

const std::map<Oid, std::string>& builtin_type_names() {
  static const std::map<Oid, std::string> names{
    {16, "bool"},         {17, "bytea"},     {18, "char"},
    {19, "name"},         {20, "int8"},      {21, "int2"},
    {23, "int4"},         {25, "text"},      {26, "oid"},
    {114, "json"},        {142, "xml"},      {650, "cidr"},
    {700, "float4"},      {701, "float8"},   {705, "unknown"},
    {790, "money"},       {829, "macaddr"},  {869, "inet"},
    {1042, "bpchar"},     {1043, "varchar"}, {1082, "date"},
    {1083, "time"},       {1114, "timestamp"}, {1184, "timestamptz"},
    {1186, "interval"},   {1266, "timetz"},  {1560, "bit"},
    {1562, "varbit"},     {1700, "numeric"}, {2249, "record"},
    {2278, "void"},       {2950, "uuid"},    {3802, "jsonb"},
    {1000, "_bool"},      {1005, "_int2"},   {1007, "_int4"},
    {1016, "_int8"},      {1009, "_text"},   {1015, "_varchar"},
    {1021, "_float4"},    {1022, "_float8"}, {1231, "_numeric"},
    {199, "_json"},       {3807, "_jsonb"},  {2951, "_uuid"},
  };
  return names;
}

/// Replaces every occurrence of `what` in `text` with `with`.
void replace_all(std::string& text, const std::string& what,
                 const std::string& with) {
  if (what.empty())
    return;
  for (auto i = text.find(what); i != std::string::npos;
       i = text.find(what, i + with.size()))
    text.replace(i, what.size(), with);
}

/// The password written in a URL ("scheme://user:pw@host") or key=value
/// string ("password=pw"), without parsing it the way libpq does.
std::string password_in(const std::string& url) {
  if (auto scheme = url.find("://"); scheme != std::string::npos) {
    auto start = scheme + 3;
    auto slash = url.find('/', start);
    auto at = url.rfind('@', slash);
    if (at != std::string::npos && at >= start) {
      auto colon = url.find(':', start);
      if (colon != std::string::npos && colon < at)
        return url.substr(colon + 1, at - colon - 1);
    }
  }
  if (auto kv = url.find("password="); kv != std::string::npos) {
    auto start = kv + 9;
    auto end = url.find(' ', start);
    return url.substr(start, end == std::string::npos ? end : end - start);
  }
  return {};
}

/// Removes the URL and its password from a libpq message: libpq quotes the
/// connection string in some of its errors.
std::string redact(std::string msg, const std::string& url) {
  replace_all(msg, url, "<url>");
  if (auto pw = password_in(url); !pw.empty()) {
    // A very short password would blank out ordinary words; drop the
    // detail instead.
    if (pw.size() < 4 && msg.find(pw) != std::string::npos)
      return "(details withheld: they may contain the password)";
    replace_all(msg, pw, "***");
  }
  while (!msg.empty() && std::isspace(static_cast<unsigned char>(msg.back())))
    msg.pop_back();
  return msg;
}

/// True when `sql` starts with a keyword that begins or ends a transaction
/// (SAVEPOINT and ROLLBACK TO stay allowed).
bool is_transaction_control(const std::string& sql) {
  size_t i = 0;
  auto skip_blank = [&] {
    for (;;) {
      while (i < sql.size() && std::isspace(static_cast<unsigned char>(sql[i])))
        ++i;
      if (sql.compare(i, 2, "--") == 0) {
        auto nl = sql.find('\n', i);
        i = nl == std::string::npos ? sql.size() : nl + 1;
      } else if (sql.compare(i, 2, "/*") == 0) {
        auto end = sql.find("*/", i + 2);
        i = end == std::string::npos ? sql.size() : end + 2;
      } else {
        return;
      }
    }
  };
  auto word = [&] {
    skip_blank();
    std::string w;
    for (; i < sql.size() && std::isalpha(static_cast<unsigned char>(sql[i]));
         ++i)
      w += static_cast<char>(std::toupper(static_cast<unsigned char>(sql[i])));
    return w;
  };
  auto first = word();
  if (first == "ROLLBACK" || first == "ABORT")
    return word() != "TO";
  if (first == "PREPARE")
    return word() == "TRANSACTION";
  return first == "BEGIN" || first == "START" || first == "COMMIT"
         || first == "END";
}

std::optional<std::string> decode_bytea_hex(std::string_view text) {
  if (text.substr(0, 2) != "\\x" || text.size() % 2 != 0)
    return std::nullopt;
  auto nibble = [](char c) -> int {
    if (c >= '0' && c <= '9')
      return c - '0';
    if (c >= 'a' && c <= 'f')
      return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
      return c - 'A' + 10;
    return -1;
  };
  std::string out;
  out.reserve(text.size() / 2 - 1);
  for (size_t i = 2; i < text.size(); i += 2) {
    auto hi = nibble(text[i]);
    auto lo = nibble(text[i + 1]);
    if (hi < 0 || lo < 0)
      return std::nullopt;
    out += static_cast<char>(hi << 4 | lo);
  }
  return out;
}

/// What a failed result said, copied out of the PGresult.
struct pg_failure {
  std::string sqlstate;
  std::string message;
  std::string detail;
  std::string hint;
  long position = 0;
};

pg_failure failure_of(const PGresult* r, PGconn* conn) {
  pg_failure f;
  auto field = [&](int code) {
    const char* s = r ? PQresultErrorField(r, code) : nullptr;
    return std::string{s ? s : ""};
  };
  f.sqlstate = field(PG_DIAG_SQLSTATE);
  f.message = field(PG_DIAG_MESSAGE_PRIMARY);
  f.detail = field(PG_DIAG_MESSAGE_DETAIL);
  f.hint = field(PG_DIAG_MESSAGE_HINT);
  if (auto pos = field(PG_DIAG_STATEMENT_POSITION); !pos.empty())
    f.position = std::strtol(pos.c_str(), nullptr, 10);
  if (f.message.empty()) {
    // Client-side failures (a lost connection) have no fields.
    const char* m = r ? PQresultErrorMessage(r) : nullptr;
    f.message = m && *m ? m : PQerrorMessage(conn);
    while (!f.message.empty()
           && std::isspace(static_cast<unsigned char>(f.message.back())))
      f.message.pop_back();
  }
  return f;
}

class pg_connection final : public connection {
public:
  pg_connection(std::string name, PGconn* conn)
    : name_(std::move(name)), conn_(conn) {
    PQsetNoticeReceiver(conn_, &pg_connection::on_notice, this);
  }

  ~pg_connection() override {
    PQfinish(conn_);
  }

  bool usable() override {
    if (broken_ || fatal_notice_)
      return false;
    // Reads what arrived while idle: a server that went away has sent an
    // error and closed the socket; reading up to the end of the stream
    // turns the status bad.
    for (int i = 0; i < 4 && PQstatus(conn_) == CONNECTION_OK; ++i) {
      pollfd pfd{PQsocket(conn_), POLLIN, 0};
      if (pfd.fd < 0 || ::poll(&pfd, 1, 0) <= 0 || !PQconsumeInput(conn_))
        break;
      // PQconsumeInput only reads; PQisBusy parses, which hands an error
      // that arrived while idle to on_notice.
      PQisBusy(conn_);
    }
    return !fatal_notice_ && PQstatus(conn_) == CONNECTION_OK
           && PQtransactionStatus(conn_) == PQTRANS_IDLE;
  }

  expected<std::vector<json>> run(const std::vector<statement>& stmts,
                                  bool transaction,
                                  const call_limits& limits) override {
    limits_ = &limits;
    auto result = run_all(stmts, transaction);
    limits_ = nullptr;
    if (!broken_ && PQstatus(conn_) == CONNECTION_OK
        && PQtransactionStatus(conn_) != PQTRANS_IDLE) {
      auto r = PQexec(conn_, "ROLLBACK");
      PQclear(r);
    }
    if (PQstatus(conn_) != CONNECTION_OK)
      broken_ = true;
    return result;
  }

private:
  expected<std::vector<json>> run_all(const std::vector<statement>& stmts,
                                      bool transaction) {
    if (limits_->timeout_ms != session_timeout_ms_) {
      auto set = "SET statement_timeout = "
                 + std::to_string(limits_->timeout_ms);
      if (auto ok = command(set, "/timeout_ms"); !ok)
        return std::move(ok.error());
      session_timeout_ms_ = limits_->timeout_ms;
    }
    if (transaction)
      if (auto ok = command("BEGIN", "/statements"); !ok)
        return std::move(ok.error());
    std::vector<json> out;
    for (const auto& s : stmts) {
      auto r = run_one(s);
      if (!r)
        return std::move(r.error());
      auto status = PQtransactionStatus(conn_);
      if (transaction && status != PQTRANS_INTRANS)
        return detail::input_error("sql", s.pointer + "/sql",
                                   "ended the transaction early; the "
                                   "statements before it are committed");
      if (!transaction && status != PQTRANS_IDLE)
        return detail::input_error("sql", s.pointer + "/sql",
                                   "left a transaction open; it was rolled "
                                   "back");
      out.push_back(std::move(*r));
    }
    if (transaction) {
      auto r = execute(statement{"COMMIT", nullptr, ""}, "/statements");
      if (!r)
        return std::move(r.error());
      if (cmd_status_ != "COMMIT")
        return make_error(errc::tool_failed,
                          "tool sql: /statements: commit failed ("
                            + cmd_status_ + ")");
    }
    return out;
  }

  expected<json> run_one(const statement& s) {
    auto where = s.pointer + "/sql";
    if (s.sql.find('\0') != std::string::npos)
      return detail::input_error("sql", where, "contains a NUL character");
    if (is_transaction_control(s.sql))
      return detail::input_error("sql", where,
                                 "transaction statements (BEGIN, COMMIT, "
                                 "ROLLBACK) are not allowed: pass the "
                                 "statements as statements: [...] to run "
                                 "them as one transaction");
    return execute(s, where);
  }

  /// Runs one of the tool's own statements (SET, BEGIN).
  expected<void> command(const std::string& sql, const std::string& where) {
    auto r = execute(statement{sql, nullptr, ""}, where);
    if (!r)
      return std::move(r.error());
    return {};
  }

  /// Sends one statement with its parameters and reads its result.
  expected<json> execute(const statement& s, const std::string& where) {
    std::vector<std::string> storage;
    std::vector<const char*> values;
    std::vector<int> lengths, formats;
    std::vector<Oid> types;
    if (auto ok = encode_params(s, storage, values, lengths, formats, types);
        !ok)
      return std::move(ok.error());
    if (storage.size() > INT_MAX)
      return detail::input_error("sql", s.pointer + "/params",
                                 "has too many values");
    // Pointers into `storage` are taken only now that it no longer grows.
    for (size_t i = 0, k = 0; i < values.size(); ++i)
      if (values[i] != nullptr)
        values[i] = storage[k++].data();
    auto n = static_cast<int>(values.size());
    if (!PQsendQueryParams(conn_, s.sql.c_str(), n, types.data(),
                           values.data(), lengths.data(), formats.data(), 0))
      return lost(where, PQerrorMessage(conn_));
    // Row by row, so a huge result is never held whole in memory.
    PQsetSingleRowMode(conn_);

    result_builder rb;
    std::vector<Oid> col_types;
    bool have_columns = false;
    bool truncated = false;
    bool oversize = false;
    std::optional<pg_failure> failure;
    std::string other_failure;
    stop_reason stopped = stop_reason::none;
    auto cancel_at = steady_clock::time_point{};
    cmd_status_.clear();
    std::string cmd_tuples;
    for (;;) {
      while (PQisBusy(conn_)) {
        if (stopped == stop_reason::none) {
          stopped = limits_->check();
          if (stopped != stop_reason::none) {
            cancel_at = steady_clock::now();
            send_cancel();
          }
        } else if (steady_clock::now() - cancel_at > seconds{5}) {
          // The server ignored the cancel: give up on this connection.
          broken_ = true;
          return stop_error(stopped, *limits_, where);
        }
        pollfd pfd{PQsocket(conn_), POLLIN, 0};
        if (pfd.fd < 0)
          return lost(where, "no socket");
        if (::poll(&pfd, 1, 20) < 0 && errno != EINTR)
          return lost(where, "poll failed");
        if (!PQconsumeInput(conn_))
          break;
      }
      PGresult* r = PQgetResult(conn_);
      if (r == nullptr)
        break;
      std::unique_ptr<PGresult, void (*)(PGresult*)> guard{r, &PQclear};
      switch (PQresultStatus(r)) {
        case PGRES_SINGLE_TUPLE:
        case PGRES_TUPLES_OK:
          if (!have_columns && PQnfields(r) > 0) {
            set_columns(r, rb, col_types);
            have_columns = true;
          }
          for (int row = 0; row < PQntuples(r); ++row) {
            if (oversize || rb.row_count() >= limits_->max_rows) {
              truncated = true;
              break;
            }
            rb.begin_row();
            for (size_t c = 0; c < col_types.size(); ++c)
              rb.set(c, value(r, row, static_cast<int>(c), col_types[c], rb));
            // The rest is drained (and dropped) as for max_rows, so the
            // connection stays usable.
            if (rb.too_large(*limits_)) {
              oversize = true;
              break;
            }
          }
          if (PQresultStatus(r) == PGRES_TUPLES_OK) {
            cmd_status_ = PQcmdStatus(r);
            cmd_tuples = PQcmdTuples(r);
          }
          break;
        case PGRES_COMMAND_OK:
          cmd_status_ = PQcmdStatus(r);
          cmd_tuples = PQcmdTuples(r);
          break;
        case PGRES_EMPTY_QUERY:
          other_failure = "contains no SQL statement";
          break;
        case PGRES_COPY_IN:
          // The server then fails the statement with this message.
          PQputCopyEnd(conn_, "COPY FROM STDIN is not supported by the sql "
                              "tool");
          break;
        case PGRES_COPY_OUT: {
          char* buf = nullptr;
          while (PQgetCopyData(conn_, &buf, 0) > 0)
            PQfreemem(buf);
          other_failure = "COPY TO STDOUT is not supported by the sql tool";
          break;
        }
        case PGRES_FATAL_ERROR:
        default:
          if (!failure)
            failure = failure_of(r, conn_);
          break;
      }
    }
    if (PQstatus(conn_) != CONNECTION_OK) {
      broken_ = true;
      if (stopped != stop_reason::none)
        return stop_error(stopped, *limits_, where);
      return lost(where, failure ? failure->message : PQerrorMessage(conn_));
    }
    if (failure)
      return to_error(*failure, s, where, stopped);
    // Here a cancel, if any, came too late: the statement finished, and
    // its result is reported as it is.
    if (!other_failure.empty())
      return detail::input_error("sql", where, other_failure);
    if (oversize)
      return result_too_large(*limits_, where);
    if (auto ok = resolve_type_names(rb, col_types); !ok)
      return std::move(ok.error());
    auto out = rb.finish(truncated);
    int64_t affected = 0;
    // A query's count is its rows; rows_affected counts changed rows.
    if (!have_columns || cmd_status_.rfind("SELECT", 0) != 0)
      affected = std::strtoll(cmd_tuples.c_str(), nullptr, 10);
    out["rows_affected"] = affected;
    return out;
  }

  expected<void> encode_params(const statement& s,
                               std::vector<std::string>& storage,
                               std::vector<const char*>& values,
                               std::vector<int>& lengths,
                               std::vector<int>& formats,
                               std::vector<Oid>& types) {
    const auto& p = s.params;
    auto where = s.pointer + "/params";
    if (p.is_null())
      return {};
    if (p.is_object())
      return detail::input_error("sql", where,
                                 "is an object, but PostgreSQL takes "
                                 "positional parameters ($1, $2, ...): pass "
                                 "an array");
    static const char* marker = "";
    for (size_t i = 0; i < p.size(); ++i) {
      const auto& v = p[i];
      auto at = where + "/" + std::to_string(i);
      // `marker` stands for "a value in storage"; execute() points it at
      // the bytes once storage is complete.
      auto push = [&](std::string text, Oid type, int format = 0) {
        if (text.size() > INT_MAX)
          return false;
        lengths.push_back(static_cast<int>(text.size()));
        storage.push_back(std::move(text));
        values.push_back(marker);
        formats.push_back(format);
        types.push_back(type);
        return true;
      };
      bool ok = true;
      switch (v.type()) {
        case json::value_t::null:
          values.push_back(nullptr);
          lengths.push_back(0);
          formats.push_back(0);
          types.push_back(0);
          break;
        case json::value_t::boolean:
          ok = push(v.get<bool>() ? "true" : "false", bool_oid);
          break;
        // Numbers are typed as the same literal in SQL text would be: 42
        // is int4 (so it fits int4 function arguments), 3000000000 int8,
        // 2.5 numeric (so round($1, 2) works).
        case json::value_t::number_integer: {
          auto x = v.get<int64_t>();
          ok = push(std::to_string(x),
                    x >= INT32_MIN && x <= INT32_MAX ? int4_oid : int8_oid);
          break;
        }
        case json::value_t::number_unsigned: {
          auto u = v.get<uint64_t>();
          ok = push(std::to_string(u), u <= INT32_MAX  ? int4_oid
                                       : u <= INT64_MAX ? int8_oid
                                                        : numeric_oid);
          break;
        }
        case json::value_t::number_float:
          // JSON's own shortest form reads back to the same double.
          ok = push(dump_json(v), numeric_oid);
          break;
        case json::value_t::string: {
          const auto& text = v.get_ref<const std::string&>();
          if (text.find('\0') != std::string::npos)
            return detail::input_error("sql", at,
                                       "PostgreSQL text cannot hold NUL "
                                       "characters; pass bytes as "
                                       "{\"$base64\": \"...\"}");
          // Untyped: the server infers the type from where the value is
          // used, so a string fits a date, uuid or numeric column.
          ok = push(text, 0);
          break;
        }
        default: {
          std::string err;
          if (auto bytes = blob_param(v, err)) {
            ok = push(std::move(*bytes), bytea_oid, 1);
            break;
          }
          if (!err.empty())
            return detail::input_error("sql", at, err);
          ok = push(dump_json(v), 0);
        }
      }
      if (!ok)
        return detail::input_error("sql", at, "is too large");
    }
    return {};
  }

  void set_columns(const PGresult* r, result_builder& rb,
                   std::vector<Oid>& col_types) {
    const auto& names = builtin_type_names();
    for (int c = 0; c < PQnfields(r); ++c) {
      auto oid = PQftype(r, c);
      col_types.push_back(oid);
      std::string type;
      if (auto i = names.find(oid); i != names.end())
        type = i->second;
      else if (auto j = type_names_.find(oid); j != type_names_.end())
        type = j->second;
      rb.add_column(PQfname(r, c), type);
      if (oid == bytea_oid)
        rb.mark_base64(static_cast<size_t>(c));
    }
  }

  /// Names the types that are not built in (enums, domains, extensions),
  /// asking pg_type once per type and connection.
  expected<void> resolve_type_names(result_builder& rb,
                                    const std::vector<Oid>& col_types) {
    std::string missing;
    for (size_t c = 0; c < col_types.size(); ++c)
      if (rb.type(c).empty())
        missing += (missing.empty() ? "{" : ",")
                   + std::to_string(col_types[c]);
    if (missing.empty())
      return {};
    missing += "}";
    const char* values[] = {missing.c_str()};
    auto r = PQexecParams(conn_,
                          "SELECT oid::int8, typname FROM pg_type "
                          "WHERE oid = ANY($1::oid[])",
                          1, nullptr, values, nullptr, nullptr, 0);
    if (PQresultStatus(r) == PGRES_TUPLES_OK)
      for (int i = 0; i < PQntuples(r); ++i)
        type_names_[static_cast<Oid>(std::strtoul(PQgetvalue(r, i, 0),
                                                  nullptr, 10))]
          = PQgetvalue(r, i, 1);
    PQclear(r);
    for (size_t c = 0; c < col_types.size(); ++c) {
      if (!rb.type(c).empty())
        continue;
      auto j = type_names_.find(col_types[c]);
      rb.set_type(c, j != type_names_.end()
                       ? j->second
                       : "oid " + std::to_string(col_types[c]));
    }
    return {};
  }

  static json value(const PGresult* r, int row, int col, Oid type,
                    result_builder& rb) {
    if (PQgetisnull(r, row, col))
      return nullptr;
    std::string_view text{PQgetvalue(r, row, col),
                          static_cast<size_t>(PQgetlength(r, row, col))};
    std::string s{text};
    switch (type) {
      case bool_oid:
        return text == "t";
      case int2_oid:
      case int4_oid:
      case int8_oid:
      case oid_oid: {
        errno = 0;
        char* end = nullptr;
        auto x = std::strtoll(s.c_str(), &end, 10);
        if (errno == 0 && end != nullptr && *end == '\0' && !s.empty())
          return x;
        break;
      }
      case float4_oid:
      case float8_oid: {
        // NaN and the infinities have no JSON number: they stay text.
        char* end = nullptr;
        auto d = std::strtod(s.c_str(), &end);
        if (end != nullptr && *end == '\0' && !s.empty() && std::isfinite(d))
          return d;
        break;
      }
      case json_oid:
      case jsonb_oid: {
        auto doc = try_parse_json(text);
        if (!doc.is_discarded())
          return doc;
        break;
      }
      case bytea_oid:
        if (auto bytes = decode_bytea_hex(text))
          return base64_encode(*bytes);
        break;
      default:
        break;
    }
    if (valid_utf8(text))
      return s;
    rb.mark_base64(static_cast<size_t>(col));
    return base64_encode(text);
  }

  caf::error to_error(const pg_failure& f, const statement& s,
                      const std::string& where, stop_reason stopped) {
    if (f.sqlstate == "57014") {
      // query_canceled: by our PQcancel, or by the server's
      // statement_timeout.
      return stop_error(stopped == stop_reason::none ? stop_reason::timeout
                                                     : stopped,
                        *limits_, where);
    }
    auto at = where;
    if (f.sqlstate == "08P01" && !s.pointer.empty())
      at = s.pointer + "/params";
    else if (f.sqlstate == "08P01")
      at = "/params";
    std::string msg = "tool sql: " + at + ": " + f.message;
    if (!f.sqlstate.empty() || f.position > 0) {
      msg += " (";
      if (!f.sqlstate.empty())
        msg += "SQLSTATE " + f.sqlstate;
      if (f.position > 0)
        msg += std::string{f.sqlstate.empty() ? "" : ", "} + "position "
               + std::to_string(f.position);
      msg += ")";
    }
    if (!f.detail.empty())
      msg += "; detail: " + f.detail;
    if (!f.hint.empty())
      msg += "; hint: " + f.hint;
    auto cls = f.sqlstate.substr(0, 2);
    // Syntax and name errors (42), bad values (22) and a wrong number of
    // parameters (08P01) are the caller's to fix.
    if (cls == "42" || cls == "22" || f.sqlstate == "08P01")
      return make_error(errc::invalid_input, std::move(msg));
    if (cls == "08" || cls == "53" || cls == "57")
      return make_error(errc::unavailable, std::move(msg));
    return make_error(errc::tool_failed, std::move(msg));
  }

  caf::error lost(const std::string& where, const std::string& why) {
    broken_ = true;
    std::string msg = why;
    while (!msg.empty() && std::isspace(static_cast<unsigned char>(msg.back())))
      msg.pop_back();
    return make_error(errc::unavailable,
                      "tool sql: " + where + ": the connection to database '"
                        + name_ + "' was lost (" + msg
                        + "); the next call reconnects");
  }

  // Notices ("table does not exist, skipping") are not errors; libpq would
  // print them to stderr. A FATAL one arrives while idle when the server
  // ends the session (shutdown, pg_terminate_backend), before it closes the
  // socket: the connection is done, even if the socket is still open.
  static void on_notice(void* self_ptr, const PGresult* r) {
    auto self = static_cast<pg_connection*>(self_ptr);
    const char* sev = PQresultErrorField(r, PG_DIAG_SEVERITY_NONLOCALIZED);
    if (sev != nullptr
        && (std::string_view{sev} == "FATAL"
            || std::string_view{sev} == "PANIC"))
      self->fatal_notice_ = true;
  }

  void send_cancel() {
    if (auto* c = PQgetCancel(conn_)) {
      char buf[256];
      // A cancel that cannot be sent leaves the 5 s grace as the bound.
      (void) PQcancel(c, buf, sizeof(buf));
      PQfreeCancel(c);
    }
  }

  std::string name_;
  PGconn* conn_;
  const call_limits* limits_ = nullptr;
  bool broken_ = false;
  bool fatal_notice_ = false;
  /// statement_timeout last set on this session; 0: the server default.
  uint64_t session_timeout_ms_ = 0;
  std::string cmd_status_;
  std::map<Oid, std::string> type_names_;
};

} // namespace

std::optional<std::string> postgres_url_problem(const std::string& url) {
  char* err = nullptr;
  auto* opts = PQconninfoParse(url.c_str(), &err);
  if (opts != nullptr) {
    PQconninfoFree(opts);
    return std::nullopt;
  }
  std::string msg = err ? redact(err, url) : "out of memory";
  PQfreemem(err);
  return msg;
}

expected<std::unique_ptr<connection>>
open_postgres(const std::string& name, const postgres_settings& settings,
              const call_limits& limits) {
  auto prefix = "tool sql: database '" + name + "': ";
  std::string url = settings.url;
  if (url.empty()) {
    const char* env = std::getenv(settings.url_env.c_str());
    if (env == nullptr || *env == '\0')
      return make_error(errc::invalid_config,
                        prefix + "the environment variable "
                          + settings.url_env
                          + " (url_env) is not set or empty");
    url = env;
  }
  // Defaults come before dbname, so the URL's own values override them;
  // the client encoding after it, as every value is read as UTF-8.
  const char* keys[] = {"connect_timeout", "application_name", "dbname",
                        "client_encoding", nullptr};
  const char* values[] = {"10", "cadre", url.c_str(), "UTF8", nullptr};
  std::unique_ptr<PGconn, void (*)(PGconn*)> conn{
    PQconnectStartParams(keys, values, 1), &PQfinish};
  if (!conn)
    return make_error(errc::unavailable, prefix + "out of memory");
  auto failed = [&](const std::string& what) {
    return make_error(errc::unavailable,
                      prefix + what + ": "
                        + redact(PQerrorMessage(conn.get()), url));
  };
  if (PQstatus(conn.get()) == CONNECTION_BAD)
    return failed("cannot connect");
  auto st = PGRES_POLLING_WRITING;
  while (st != PGRES_POLLING_OK) {
    if (st == PGRES_POLLING_FAILED)
      return failed("cannot connect");
    for (;;) {
      if (auto why = limits.check(); why != stop_reason::none) {
        if (why == stop_reason::cancelled)
          return make_error(errc::cancelled, prefix + "cancelled while "
                                                      "connecting");
        return make_error(errc::timeout, prefix + "not connected before "
                                                    "the call's time was "
                                                    "up");
      }
      pollfd pfd{PQsocket(conn.get()),
                 static_cast<short>(st == PGRES_POLLING_READING ? POLLIN
                                                                : POLLOUT),
                 0};
      if (pfd.fd < 0)
        return failed("cannot connect");
      auto n = ::poll(&pfd, 1, 20);
      if (n > 0)
        break;
      if (n < 0 && errno != EINTR)
        return failed("cannot connect");
    }
    st = PQconnectPoll(conn.get());
  }
  return std::unique_ptr<connection>{
    std::make_unique<pg_connection>(name, conn.release())};
}

} // namespace cadre::tools::sql
