#pragma once

#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>

#include "cadre/messages/error.hpp"
#include "cadre/messages/json_value.hpp"

namespace cadre::tools {

/// Limits of a sandbox.
struct sandbox_options {
  /// Lua VM instructions one evaluation may run. Default: 1,000,000
  uint64_t instruction_limit = 1'000'000;
  /// Bytes the Lua state may allocate. Default: 16 MiB
  size_t memory_limit = 16u << 20;
  /// Wall-clock time one evaluation may take (one eval or run call, or one
  /// render call for all its expressions); checked between VM instructions
  /// and inside the pattern matcher. Default: 1 s
  std::chrono::milliseconds time_limit{1000};
  /// A state that only compiles (check_expression, check_chunk), as a
  /// validator needs: without the libraries it is set up in some 50,000
  /// instructions instead of 1.7 million. An evaluation in it fails with
  /// errc::invalid_config. Default: false
  bool compile_only = false;
};

/// What else may end one evaluation early.
struct call_bounds {
  /// An end earlier than sandbox_options::time_limit (e.g. a task's
  /// deadline). Default: none
  std::chrono::steady_clock::time_point deadline
    = std::chrono::steady_clock::time_point::max();
  /// When it becomes true the evaluation ends with errc::cancelled; polled
  /// with the clock. Default: none
  const std::atomic<bool>* cancelled = nullptr;
};

/// A Lua 5.4 state with no io, os, require, load, dofile, debug or
/// string.dump, and with instruction, memory and time limits; math.random is
/// removed, so an evaluation depends only on its inputs (deterministic).
/// JSON maps to Lua as: objects and arrays -> tables (arrays 1-based), null ->
/// `json.null`, and back (a table with keys 1..n is an array, an empty table
/// an object, unless json.array / json.object marked it; tables that came
/// from JSON carry that mark, so `[]` stays an array).
///
/// Besides Lua's string, table, math and utf8 libraries, the state has
/// cadre's standard library, written in Lua and so bound by the same limits:
/// json (encode, decode, array, object, type), string helpers (split, trim,
/// replace, ...), number (parse, round, format), date (parse, format,
/// add_days, diff_days, weekday, ...; no clock) and table helpers (map,
/// filter, sort_by, group_by, sum, ...); docs/tools.md describes them. It is
/// compiled once per process and loaded once per state.
///
/// Each evaluation gets its own globals table, so nothing one evaluation
/// assigns is seen by the next; the library tables (string, table, math,
/// utf8, json, number, date) are read-only; `pairs` visits keys in sorted
/// order (numbers, then strings, then booleans), since Lua's hash order
/// varies between processes; setmetatable refuses __gc. Compiled chunks are
/// cached by their text. Lua's pattern functions (string.find, match,
/// gmatch, gsub) run inside one VM instruction, where the instruction hook
/// does not run, so the sandbox has its own copy of them that checks the
/// time limit as it matches; string.rep, table.concat and the like are
/// bounded by the memory limit. A limit that is hit ends the evaluation
/// with errc::limit_exceeded naming the limit, even when the script
/// catches the error with pcall.
///
/// Not thread-safe: one owner at a time.
class lua_sandbox {
public:
  ~lua_sandbox();

  [[nodiscard]] static expected<std::unique_ptr<lua_sandbox>>
  create(sandbox_options opts = {});

  /// Compiles `expr` as an expression without running it.
  /// Errors: errc::script_error with Lua's message.
  [[nodiscard]] expected<void> check_expression(std::string_view expr);

  /// Compiles `code` as a chunk (statements) without running it.
  [[nodiscard]] expected<void> check_chunk(std::string_view code);

  /// Evaluates the expression `expr` where each key of the object `env` is a
  /// global (e.g. input, tasks, item), and returns its value as JSON.
  /// Errors: errc::script_error (Lua error, a value that has no JSON form
  /// such as a function), errc::limit_exceeded (time, memory or
  /// instructions), errc::cancelled (bounds.cancelled).
  [[nodiscard]] expected<json> eval(std::string_view expr, const json& env,
                                    const call_bounds& bounds = {});

  /// Runs `code` as a chunk with the same globals; returns what the chunk
  /// returns (null when nothing).
  [[nodiscard]] expected<json> run(std::string_view code, const json& env,
                                   const call_bounds& bounds = {});

  /// Same as render_template(*this, tmpl, env); the globals are converted to
  /// Lua once for all expressions of the template, and the instruction limit
  /// applies to each expression.
  [[nodiscard]] expected<json> render(const json& tmpl, const json& env);

private:
  struct impl;
  explicit lua_sandbox(std::unique_ptr<impl> ptr);
  std::unique_ptr<impl> impl_;
};

/// Renders a template: every string in `tmpl` that is exactly "{{ expr }}"
/// becomes the expression's JSON value; other strings have each "{{ expr }}"
/// replaced by its value as text (strings as they are, other values as
/// compact JSON); objects and arrays are rendered recursively. An expression
/// ends at the first "}}"; a "{{" with no "}}" after it is an error. Errors
/// (errc::script_error, or errc::limit_exceeded) name the JSON pointer of the failing string within
/// `tmpl`, e.g. "template /url: ...".
[[nodiscard]] expected<json> render_template(lua_sandbox& sandbox,
                                             const json& tmpl,
                                             const json& env);

/// Calls `fn(pointer, expr)` for every "{{ expr }}" in `tmpl` (validation).
void for_each_template_expression(
  const json& tmpl,
  const std::function<void(const std::string& pointer,
                           const std::string& expr)>& fn);

} // namespace cadre::tools
