// The SQLite backend of the sql tool: one sqlite3 handle, statements bound
// with sqlite3_bind_*, a progress handler for timeouts and cancellation, and
// an authorizer that keeps transactions and ATTACH under the tool's control.

#include <algorithm>
#include <cctype>
#include <climits>
#include <cmath>
#include <limits>
#include <memory>
#include <string>
#include <thread>

#include <sqlite3.h>

#include "sql/sql_connection.hpp"
#include "tool_support.hpp"
#include "cadre/messages/json_text.hpp"

namespace cadre::tools::sql {

namespace {

struct stmt_deleter {
  void operator()(sqlite3_stmt* st) const {
    sqlite3_finalize(st);
  }
};

using stmt_ptr = std::unique_ptr<sqlite3_stmt, stmt_deleter>;

std::string upper(std::string_view s) {
  std::string out{s};
  for (auto& c : out)
    c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  return out;
}

/// Skips whitespace and SQL comments; true when nothing else is left.
bool only_blank(std::string_view s) {
  size_t i = 0;
  while (i < s.size()) {
    if (std::isspace(static_cast<unsigned char>(s[i]))) {
      ++i;
    } else if (s.substr(i, 2) == "--") {
      auto nl = s.find('\n', i);
      i = nl == std::string_view::npos ? s.size() : nl + 1;
    } else if (s.substr(i, 2) == "/*") {
      auto end = s.find("*/", i + 2);
      i = end == std::string_view::npos ? s.size() : end + 2;
    } else {
      return false;
    }
  }
  return true;
}

const char* storage_class(int type) {
  switch (type) {
    case SQLITE_INTEGER:
      return "integer";
    case SQLITE_FLOAT:
      return "real";
    case SQLITE_TEXT:
      return "text";
    case SQLITE_BLOB:
      return "blob";
    default:
      return "null";
  }
}

class sqlite_connection final : public connection {
public:
  sqlite_connection(std::string name, sqlite3* db, bool read_only)
    : name_(std::move(name)), db_(db), read_only_(read_only) {
    sqlite3_progress_handler(db_, 1000, &sqlite_connection::on_progress,
                             this);
    sqlite3_busy_handler(db_, &sqlite_connection::on_busy, this);
    sqlite3_set_authorizer(db_, &sqlite_connection::on_authorize, this);
  }

  ~sqlite_connection() override {
    sqlite3_close_v2(db_);
  }

  bool usable() override {
    return true;
  }

  expected<std::vector<json>> run(const std::vector<statement>& stmts,
                                  bool transaction,
                                  const call_limits& limits) override {
    limits_ = &limits;
    stopped_ = stop_reason::none;
    auto result = run_all(stmts, transaction);
    // A failed transaction may already be rolled back by SQLite (e.g. on
    // interrupt); roll back whatever is left open, without limits.
    limits_ = nullptr;
    if (!sqlite3_get_autocommit(db_))
      exec_internal("ROLLBACK");
    return result;
  }

private:
  expected<std::vector<json>> run_all(const std::vector<statement>& stmts,
                                      bool transaction) {
    std::vector<json> out;
    if (transaction) {
      // IMMEDIATE takes the write lock up front, so two writers wait for
      // each other in the busy handler instead of failing on upgrade.
      if (auto rc = exec_internal(read_only_ ? "BEGIN" : "BEGIN IMMEDIATE");
          rc != SQLITE_OK)
        return failure(rc, "/statements", "cannot begin the transaction: ");
    }
    for (const auto& s : stmts) {
      auto r = run_one(s);
      if (!r)
        return std::move(r.error());
      out.push_back(std::move(*r));
    }
    if (transaction) {
      if (auto rc = exec_internal("COMMIT"); rc != SQLITE_OK)
        return failure(rc, "/statements", "commit failed: ");
    }
    return out;
  }

  expected<json> run_one(const statement& s) {
    auto where = s.pointer + "/sql";
    if (s.sql.find('\0') != std::string::npos)
      return detail::input_error("sql", where, "contains a NUL character");
    if (s.sql.size() > static_cast<size_t>(INT_MAX))
      return detail::input_error("sql", where, "is too long");
    sqlite3_stmt* raw = nullptr;
    const char* tail = nullptr;
    if (auto rc = prepare(s.sql, &raw, &tail); rc != SQLITE_OK)
      return prepare_error(rc, s);
    stmt_ptr st{raw};
    if (!st)
      return detail::input_error("sql", where, "contains no SQL statement");
    std::string_view rest{tail, static_cast<size_t>(s.sql.data()
                                                    + s.sql.size() - tail)};
    if (!only_blank(rest))
      return detail::input_error(
        "sql", where,
        "holds more than one statement (the next one starts at position "
          + std::to_string(char_position(
            s.sql, static_cast<size_t>(tail - s.sql.data())))
          + "); pass several as statements: [...]");
    if (auto ok = bind_all(st.get(), s); !ok)
      return std::move(ok.error());

    result_builder rb;
    auto ncols = sqlite3_column_count(st.get());
    std::vector<bool> bool_col(ncols), json_col(ncols);
    for (int i = 0; i < ncols; ++i) {
      const char* name = sqlite3_column_name(st.get(), i);
      const char* decl = sqlite3_column_decltype(st.get(), i);
      std::string type = decl ? decl : "";
      auto u = upper(type);
      bool_col[i] = u == "BOOLEAN" || u == "BOOL";
      json_col[i] = u == "JSON";
      rb.add_column(name ? name : "", type);
    }
    auto total_before = sqlite3_total_changes64(db_);
    // Reset, so a statement that inserts nothing reports no insert id.
    sqlite3_set_last_insert_rowid(db_, 0);
    bool truncated = false;
    denied_ = nullptr;
    for (;;) {
      auto rc = sqlite3_step(st.get());
      if (rc == SQLITE_DONE)
        break;
      if (rc != SQLITE_ROW)
        return failure(rc, where, "");
      if (rb.row_count() < limits_->max_rows) {
        rb.begin_row();
        for (int i = 0; i < ncols; ++i) {
          // Checked before the copy: one cell may be a huge blob.
          if (limits_->max_result_bytes > 0
              && rb.bytes() + static_cast<uint64_t>(
                                sqlite3_column_bytes(st.get(), i))
                   > limits_->max_result_bytes)
            return result_too_large(*limits_, where);
          rb.set(i, value(st.get(), i, rb, bool_col[i], json_col[i]));
        }
        if (rb.too_large(*limits_))
          return result_too_large(*limits_, where);
        continue;
      }
      truncated = true;
      // A query can stop here; a statement that writes (INSERT ...
      // RETURNING) must run to its end.
      if (sqlite3_stmt_readonly(st.get()))
        break;
    }
    for (int i = 0; i < ncols; ++i)
      if (rb.type(i).empty())
        rb.set_type(i, "unknown");
    auto out = rb.finish(truncated);
    bool changed = sqlite3_total_changes64(db_) != total_before;
    out["rows_affected"] = changed ? sqlite3_changes64(db_) : 0;
    if (auto id = sqlite3_last_insert_rowid(db_); id != 0)
      out["last_insert_id"] = id;
    return out;
  }

  int prepare(const std::string& sql, sqlite3_stmt** st, const char** tail) {
    denied_ = nullptr;
    preparing_ = true;
    auto rc = sqlite3_prepare_v2(db_, sql.data(), static_cast<int>(sql.size()),
                                 st, tail);
    preparing_ = false;
    return rc;
  }

  caf::error prepare_error(int rc, const statement& s) {
    auto where = s.pointer + "/sql";
    if (denied_ != nullptr)
      return detail::input_error("sql", where, denied_);
    if (stopped_ != stop_reason::none)
      return stop_error(stopped_, *limits_, where);
    std::string msg = sqlite3_errmsg(db_);
    if (auto off = sqlite3_error_offset(db_); off >= 0)
      msg += " (position "
             + std::to_string(char_position(s.sql, static_cast<size_t>(off)))
             + ")";
    (void) rc;
    return detail::input_error("sql", where, msg);
  }

  expected<void> bind_all(sqlite3_stmt* st, const statement& s) {
    auto where = s.pointer + "/params";
    auto count = sqlite3_bind_parameter_count(st);
    const auto& p = s.params;
    if (p.is_null()) {
      if (count > 0)
        return detail::input_error("sql", where,
                                   "is required: the statement has "
                                     + std::to_string(count) + " parameter"
                                     + (count == 1 ? "" : "s"));
      return {};
    }
    if (p.is_array()) {
      if (p.size() != static_cast<size_t>(count))
        return detail::input_error("sql", where,
                                   "has " + std::to_string(p.size())
                                     + " values but the statement has "
                                     + std::to_string(count) + " parameter"
                                     + (count == 1 ? "" : "s"));
      for (int i = 0; i < count; ++i)
        if (auto ok = bind(st, i + 1, p[static_cast<size_t>(i)],
                           where + "/" + std::to_string(i));
            !ok)
          return ok;
      return {};
    }
    // Named: :name, @name and $name all take the value of key "name".
    for (int i = 1; i <= count; ++i) {
      const char* pname = sqlite3_bind_parameter_name(st, i);
      if (pname == nullptr || pname[0] == '?')
        return detail::input_error("sql", where,
                                   "is an object, but the statement has "
                                   "positional parameters (?): pass an "
                                   "array");
      std::string key = pname + 1;
      auto v = p.find(key);
      if (v == p.end())
        return detail::input_error("sql", where,
                                   std::string{"has no value for "} + pname);
      if (auto ok = bind(st, i, *v, where + detail::pointer_to(key)); !ok)
        return ok;
    }
    for (const auto& [key, v] : p.items()) {
      bool known = false;
      for (auto prefix : {":", "@", "$"})
        known = known
                || sqlite3_bind_parameter_index(st, (prefix + key).c_str())
                     > 0;
      if (!known)
        return detail::input_error("sql", where + detail::pointer_to(key),
                                   "the statement has no parameter :" + key);
    }
    return {};
  }

  expected<void> bind(sqlite3_stmt* st, int i, const json& v,
                      const std::string& where) {
    int rc = SQLITE_OK;
    switch (v.type()) {
      case json::value_t::null:
        rc = sqlite3_bind_null(st, i);
        break;
      case json::value_t::boolean:
        rc = sqlite3_bind_int(st, i, v.get<bool>() ? 1 : 0);
        break;
      case json::value_t::number_integer:
        rc = sqlite3_bind_int64(st, i, v.get<int64_t>());
        break;
      case json::value_t::number_unsigned: {
        auto u = v.get<uint64_t>();
        if (u > static_cast<uint64_t>(std::numeric_limits<int64_t>::max()))
          return detail::input_error("sql", where,
                                     "integer out of range (SQLite integers "
                                     "are 64-bit signed)");
        rc = sqlite3_bind_int64(st, i, static_cast<int64_t>(u));
        break;
      }
      case json::value_t::number_float:
        rc = sqlite3_bind_double(st, i, v.get<double>());
        break;
      case json::value_t::string: {
        const auto& text = v.get_ref<const std::string&>();
        rc = sqlite3_bind_text64(st, i, text.data(), text.size(),
                                 SQLITE_TRANSIENT, SQLITE_UTF8);
        break;
      }
      default: {
        std::string err;
        if (auto bytes = blob_param(v, err)) {
          rc = sqlite3_bind_blob64(st, i, bytes->data(), bytes->size(),
                                   SQLITE_TRANSIENT);
          break;
        }
        if (!err.empty())
          return detail::input_error("sql", where, err);
        // Other objects and arrays are stored as JSON text, which SQLite's
        // json functions read.
        auto text = dump_json(v);
        rc = sqlite3_bind_text64(st, i, text.data(), text.size(),
                                 SQLITE_TRANSIENT, SQLITE_UTF8);
      }
    }
    if (rc != SQLITE_OK)
      return detail::input_error("sql", where,
                                 std::string{"cannot bind: "}
                                   + sqlite3_errmsg(db_));
    return {};
  }

  static json value(sqlite3_stmt* st, int i, result_builder& rb,
                    bool bool_col, bool json_col) {
    auto type = sqlite3_column_type(st, i);
    auto col = static_cast<size_t>(i);
    if (type != SQLITE_NULL && rb.type(col).empty())
      rb.set_type(col, storage_class(type));
    switch (type) {
      case SQLITE_INTEGER: {
        auto x = sqlite3_column_int64(st, i);
        if (bool_col && (x == 0 || x == 1))
          return x == 1;
        return x;
      }
      case SQLITE_FLOAT: {
        auto d = sqlite3_column_double(st, i);
        if (std::isfinite(d))
          return d;
        return d > 0 ? "Infinity" : "-Infinity";
      }
      case SQLITE_TEXT: {
        auto p = reinterpret_cast<const char*>(sqlite3_column_text(st, i));
        std::string_view text{p ? p : "",
                              static_cast<size_t>(sqlite3_column_bytes(st, i))};
        if (json_col) {
          auto doc = try_parse_json(text);
          if (!doc.is_discarded())
            return doc;
        }
        if (valid_utf8(text))
          return std::string{text};
        rb.mark_base64(col);
        return base64_encode(text);
      }
      case SQLITE_BLOB: {
        auto p = static_cast<const char*>(sqlite3_column_blob(st, i));
        auto n = static_cast<size_t>(sqlite3_column_bytes(st, i));
        rb.mark_base64(col);
        return base64_encode(std::string_view{p ? p : "", p ? n : 0});
      }
      default:
        return nullptr;
    }
  }

  /// An error from a failed step, commit or begin.
  caf::error failure(int rc, const std::string& where,
                     const std::string& prefix) {
    auto primary = rc & 0xff;
    if (primary == SQLITE_AUTH && denied_ != nullptr)
      return detail::input_error("sql", where, denied_);
    if ((primary == SQLITE_INTERRUPT || primary == SQLITE_BUSY)
        && stopped_ != stop_reason::none)
      return stop_error(stopped_, *limits_, where);
    std::string msg = "tool sql: " + where + ": " + prefix
                      + sqlite3_errmsg(db_);
    switch (primary) {
      case SQLITE_BUSY:
      case SQLITE_LOCKED:
        return make_error(errc::unavailable, std::move(msg));
      case SQLITE_MISMATCH:
      case SQLITE_RANGE:
      case SQLITE_TOOBIG:
        return make_error(errc::invalid_input, std::move(msg));
      default:
        return make_error(errc::tool_failed, std::move(msg));
    }
  }

  /// Runs the tool's own BEGIN, COMMIT or ROLLBACK.
  int exec_internal(const char* sql) {
    allow_txn_ = true;
    auto rc = sqlite3_exec(db_, sql, nullptr, nullptr, nullptr);
    allow_txn_ = false;
    return rc;
  }

  static int on_progress(void* self_ptr) {
    auto self = static_cast<sqlite_connection*>(self_ptr);
    if (self->limits_ == nullptr)
      return 0;
    auto why = self->limits_->check();
    if (why == stop_reason::none)
      return 0;
    self->stopped_ = why;
    return 1;
  }

  // Waits for a lock in short slices, so cancellation and the call's end
  // still apply while another connection holds it.
  static int on_busy(void* self_ptr, int) {
    auto self = static_cast<sqlite_connection*>(self_ptr);
    if (self->limits_ == nullptr)
      return 0;
    if (auto why = self->limits_->check(); why != stop_reason::none) {
      self->stopped_ = why;
      return 0;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds{2});
    return 1;
  }

  static int on_authorize(void* self_ptr, int action, const char* arg,
                          const char*, const char*, const char*) {
    auto self = static_cast<sqlite_connection*>(self_ptr);
    constexpr const char* no_attach = "ATTACH, DETACH and VACUUM INTO are "
                                      "not allowed";
    // ATTACH and VACUUM INTO would open files outside the root. VACUUM INTO
    // attaches its target while stepping; a plain VACUUM attaches '' (a
    // temporary database), which is harmless.
    if (action == SQLITE_ATTACH && (arg == nullptr || *arg != '\0')) {
      self->denied_ = no_attach;
      return SQLITE_DENY;
    }
    // Statements that VACUUM runs internally (BEGIN, DETACH) are prepared
    // while stepping; only what the caller wrote is checked.
    if (!self->preparing_)
      return SQLITE_OK;
    switch (action) {
      case SQLITE_TRANSACTION:
        if (self->allow_txn_)
          return SQLITE_OK;
        self->denied_ = "transaction statements (BEGIN, COMMIT, ROLLBACK) "
                        "are not allowed: pass the statements as "
                        "statements: [...] to run them as one transaction";
        return SQLITE_DENY;
      case SQLITE_DETACH:
        self->denied_ = no_attach;
        return SQLITE_DENY;
      default:
        return SQLITE_OK;
    }
  }

  std::string name_;
  sqlite3* db_;
  bool read_only_;
  const call_limits* limits_ = nullptr;
  stop_reason stopped_ = stop_reason::none;
  bool preparing_ = false;
  bool allow_txn_ = false;
  const char* denied_ = nullptr;
};

} // namespace

expected<std::unique_ptr<connection>>
open_sqlite(const std::string& name, const sqlite_settings& settings) {
  int flags = settings.read_only ? SQLITE_OPEN_READONLY
                                 : SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE;
  flags |= SQLITE_OPEN_NOMUTEX | SQLITE_OPEN_EXRESCODE;
  sqlite3* db = nullptr;
  auto rc = sqlite3_open_v2(settings.path.c_str(), &db, flags, nullptr);
  if (rc != SQLITE_OK) {
    std::string msg = db ? sqlite3_errmsg(db) : sqlite3_errstr(rc);
    sqlite3_close_v2(db);
    return make_error(errc::unavailable, "tool sql: database '" + name
                                           + "': cannot open "
                                           + settings.path + ": " + msg);
  }
  // Defensive mode stops SQL from corrupting the file on purpose
  // (writable_schema and the like).
  sqlite3_db_config(db, SQLITE_DBCONFIG_DEFENSIVE, 1, nullptr);
  if (!settings.read_only && settings.path != ":memory:") {
    // WAL lets readers in other workers go on while one writes. A file
    // system without WAL support keeps the rollback journal: not an error.
    (void) sqlite3_exec(db, "PRAGMA journal_mode=WAL", nullptr, nullptr,
                        nullptr);
  }
  return std::unique_ptr<connection>{
    std::make_unique<sqlite_connection>(name, db, settings.read_only)};
}

} // namespace cadre::tools::sql
