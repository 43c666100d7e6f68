#pragma once

// The backends of the sql tool: one open database connection (SQLite or
// PostgreSQL) that runs parameterized statements under the limits of a call,
// plus the value helpers both backends share. Private to tools/src/sql.

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "cadre/messages/error.hpp"
#include "cadre/messages/json_value.hpp"
#include "cadre/messages/utf8.hpp"
#include "cadre/tools/tool.hpp"
#include "codec/base64.hpp"

namespace cadre::tools::sql {

/// One statement of a call and where it sits in the input.
struct statement {
  std::string sql;
  /// Null (no parameters), an array (positional) or an object (named).
  json params;
  /// JSON pointer of the statement: "" for {sql}, "/statements/2" in a list.
  std::string pointer;
};

/// Why a running call must stop.
enum class stop_reason { none, cancelled, deadline, timeout };

/// The limits of one call.
struct call_limits {
  /// Rows returned per statement; more set `truncated`.
  uint64_t max_rows = 0;
  /// Bytes of one statement's rows (about their JSON text); more fail the
  /// call with errc::result_too_large (result_too_large()). 0: no bound.
  uint64_t max_result_bytes = 0;
  /// The statement timeout this call asked for, in milliseconds.
  uint64_t timeout_ms = 0;
  /// When the call must stop: now + timeout_ms, or the task deadline when
  /// that comes first.
  std::chrono::steady_clock::time_point end;
  /// True when `end` is the task deadline rather than timeout_ms.
  bool end_is_deadline = false;
  /// The call's context, for cancellation. Never null while running.
  const tool_context* ctx = nullptr;

  /// Whether to stop now, and why.
  stop_reason check() const;

  /// Milliseconds left until `end` (0 when past).
  uint64_t remaining_ms() const;
};

/// errc::result_too_large for the statement at `pointer`, naming the limit
/// (tools.sql.max_result_bytes).
caf::error result_too_large(const call_limits& limits,
                            const std::string& pointer);

/// The error for a call stopped for `why` while running the statement at
/// `pointer` (errc::cancelled or errc::timeout).
caf::error stop_error(stop_reason why, const call_limits& limits,
                      const std::string& pointer);

/// An open connection. Not thread-safe: a tool instance owns one per
/// database and uses it from one call at a time.
class connection {
public:
  virtual ~connection();

  /// Runs `stmts` in order and returns one result object per statement:
  /// {columns, rows, truncated, rows_affected[, last_insert_id]}. With
  /// `transaction`, all statements run in one transaction that is rolled
  /// back on any error. Errors name the statement's JSON pointer.
  [[nodiscard]] virtual expected<std::vector<json>>
  run(const std::vector<statement>& stmts, bool transaction,
      const call_limits& limits)
    = 0;

  /// False once the connection is known to be broken; the tool then opens a
  /// new one for the next call.
  virtual bool usable() = 0;
};

/// Settings of one SQLite database.
struct sqlite_settings {
  /// Absolute file path, or ":memory:".
  std::string path;
  /// Opens the file read-only (writes fail). Default: false
  bool read_only = false;
};

/// Settings of one PostgreSQL database.
struct postgres_settings {
  /// Connection URL or key=value string; empty when read from `url_env`.
  std::string url;
  /// Name of the environment variable that holds the URL, read when the
  /// connection opens.
  std::string url_env;
};

/// Opens a SQLite database. `name` is the database's name in the settings,
/// for messages. Errors: errc::unavailable.
[[nodiscard]] expected<std::unique_ptr<connection>>
open_sqlite(const std::string& name, const sqlite_settings& settings);

/// Connects to PostgreSQL, giving up when `limits` says stop. Messages never
/// contain the URL or its password. Errors: errc::unavailable,
/// errc::invalid_config (unset env var), errc::timeout, errc::cancelled.
[[nodiscard]] expected<std::unique_ptr<connection>>
open_postgres(const std::string& name, const postgres_settings& settings,
              const call_limits& limits);

/// Why `url` is not a valid libpq connection string (with the URL and its
/// password removed), or nullopt when it is one.
std::optional<std::string> postgres_url_problem(const std::string& url);

// -- helpers shared by the backends ------------------------------------------

using detail::base64_decode;
using detail::base64_encode;

/// True when `bytes` is well-formed UTF-8 (JSON text must be): the one
/// check of cadre/messages/utf8.hpp.
using cadre::valid_utf8;

/// If `param` is {"$base64": "..."}, its decoded bytes; an error message in
/// `error` when it has that shape but bad content.
std::optional<std::string> blob_param(const json& param, std::string& error);

/// Collects the columns and rows of one statement's result.
class result_builder {
public:
  /// Adds a column; a name seen before gets a suffix (_2, _3, ...) so each
  /// row object keeps every value.
  void add_column(std::string name, std::string type);

  size_t column_count() const {
    return keys_.size();
  }

  /// Sets the type of column `i` once it is known from a value.
  void set_type(size_t i, std::string type);

  /// The type of column `i` ("" when not known yet).
  const std::string& type(size_t i) const {
    return columns_[i]["type"].get_ref<const std::string&>();
  }

  /// Marks column `i` as holding base64-encoded bytes.
  void mark_base64(size_t i);

  /// Starts a new row; set its values with set().
  void begin_row() {
    rows_.push_back(json::object());
  }

  void set(size_t i, json value) {
    bytes_ += keys_[i].size() + 4
              + (value.is_string() ? value.get_ref<const std::string&>().size()
                 : value.is_structured() ? value.dump().size()
                                         : 8);
    rows_.back()[keys_[i]] = std::move(value);
  }

  size_t row_count() const {
    return rows_.size();
  }

  /// About the bytes of the rows' JSON text so far.
  uint64_t bytes() const {
    return bytes_;
  }

  /// True when the rows passed `limits.max_result_bytes`.
  bool too_large(const call_limits& limits) const {
    return limits.max_result_bytes > 0 && bytes_ > limits.max_result_bytes;
  }

  /// The result object; `rows_affected` and the rest are added by callers.
  json finish(bool truncated);

private:
  std::vector<std::string> keys_;
  json columns_ = json::array();
  json rows_ = json::array();
  uint64_t bytes_ = 0;
};

/// 1-based character (not byte) position of byte `offset` in `text`.
size_t char_position(std::string_view text, size_t offset);

} // namespace cadre::tools::sql
