#pragma once

// Helpers shared by the built-in tools: error messages that name a JSON
// pointer or a config key, integer and duration parsing, secrets kept out of
// messages, and a sleep that honours cancellation and the deadline. Private
// to tools/.

#include <algorithm>
#include <cctype>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <thread>

#include "cadre/messages/duration.hpp"
#include "cadre/messages/error.hpp"
#include "cadre/messages/json_value.hpp"
#include "cadre/lang/json_schema.hpp"
#include "cadre/lang/secrets.hpp"
#include "cadre/tools/tool.hpp"

namespace cadre::tools::detail {

/// "tool <name>: <pointer>: <what>" as errc::invalid_input. An empty pointer
/// means the whole input.
inline caf::error input_error(std::string_view tool, std::string_view pointer,
                              std::string_view what) {
  std::string msg = "tool ";
  msg += tool;
  msg += ": ";
  msg += pointer.empty() ? std::string_view{"input"} : pointer;
  msg += ": ";
  msg += what;
  return make_error(errc::invalid_input, std::move(msg));
}

/// The tool's published input schema (describe().input_schema), compiled
/// once by its factory: the one statement of what an input may be, so the
/// tool's own checks keep only what a schema cannot say.
/// Errors: errc::internal (the tool publishes a schema that does not
/// compile: a bug).
[[nodiscard]] inline expected<json_schema> compile_input_schema(const tool& t) {
  auto schema = json_schema::compile(t.describe().input_schema);
  if (!schema)
    return make_error(errc::internal, "tool " + t.name()
                                        + ": the input schema does not "
                                          "compile: "
                                        + message_of(schema.error()));
  return schema;
}

/// The last step of the factory of a tool that checks its input by its
/// schema: compiles `t`'s published input schema and hands it over
/// (T::set_input_schema, called once, before the first call).
template <class T>
[[nodiscard]] expected<std::unique_ptr<tool>>
with_input_schema(std::unique_ptr<T> t) {
  auto schema = compile_input_schema(*t);
  if (!schema)
    return std::move(schema.error());
  t->set_input_schema(std::move(*schema));
  return std::unique_ptr<tool>{std::move(t)};
}

/// Checks `input` against the tool's compiled input schema:
/// "tool <name>: /psm: ..." as errc::invalid_input.
[[nodiscard]] inline expected<void> check_input(std::string_view tool,
                                                const json_schema& schema,
                                                const json& input) {
  auto errors = schema.validate(input);
  if (errors.empty())
    return {};
  std::string msg = "tool ";
  msg += tool;
  msg += ": ";
  msg += to_string(errors);
  return make_error(errc::invalid_input, std::move(msg));
}

/// "tools.<name>.<key>: <what>" as errc::invalid_config. An empty key means
/// the whole section.
inline caf::error settings_error(std::string_view tool, std::string_view key,
                                 std::string_view what) {
  std::string msg = "tools.";
  msg += tool;
  if (!key.empty()) {
    msg += '.';
    msg += key;
  }
  msg += ": ";
  msg += what;
  return make_error(errc::invalid_config, std::move(msg));
}

/// The JSON Schema of a tool's settings (`tools.<name>`): an object of
/// `properties` and no other key. Declared beside the tool's factory;
/// tool_registry checks the settings by it before the factory runs.
inline json settings_schema(json properties) {
  return json{{"type", "object"},
              {"properties", std::move(properties)},
              {"additionalProperties", false}};
}

/// A settings schema's integer in [min, max] with its default.
inline json integer_setting(uint64_t fallback, uint64_t min, uint64_t max,
                            const char* description) {
  return json{{"type", "integer"},
              {"minimum", min},
              {"maximum", max},
              {"default", fallback},
              {"description", description}};
}

/// A settings schema's integer of at least `min` with its default.
inline json integer_setting(uint64_t fallback, uint64_t min,
                            const char* description) {
  return json{{"type", "integer"},
              {"minimum", min},
              {"default", fallback},
              {"description", description}};
}

/// A settings schema's boolean with its default.
inline json bool_setting(bool fallback, const char* description) {
  return json{{"type", "boolean"},
              {"default", fallback},
              {"description", description}};
}

/// A settings schema's string; `non_empty`: at least one character.
inline json string_setting(const char* description, bool non_empty = true) {
  json out{{"type", "string"}, {"description", description}};
  if (non_empty)
    out["minLength"] = 1;
  return out;
}

/// A settings schema's duration: "30s", "500ms", "2m" or milliseconds
/// (parse_duration below says the rest, and that it is positive).
inline json duration_setting(const char* fallback, const char* description) {
  return json{{"type", json::array({"string", "integer"})},
              {"minimum", 1},
              {"default", fallback},
              {"description", description}};
}

/// The setting `key` of a section the tool's settings schema accepted
/// (tool_registry checks it before the factory runs): absent or null,
/// `fallback`.
template <class T>
T setting(const json& section, const char* key, T fallback) {
  auto i = section.find(key);
  if (i == section.end() || i->is_null())
    return fallback;
  return i->get<T>();
}

/// The JSON pointer of `key` below the root, escaped ("/a~1b" for "a/b").
inline std::string pointer_to(const std::string& key) {
  return (json::json_pointer{} / key).to_string();
}

/// Returns `x` as a non-negative integer; accepts integral floats (1.0), as
/// Lua and JavaScript produce them.
inline std::optional<uint64_t> as_uint(const json& x) {
  if (x.is_number_unsigned())
    return x.get<uint64_t>();
  if (x.is_number_integer()) {
    auto i = x.get<int64_t>();
    if (i < 0)
      return std::nullopt;
    return static_cast<uint64_t>(i);
  }
  if (x.is_number_float()) {
    auto d = x.get<double>();
    // 2^64 itself does not fit: compare against the first value past it.
    if (!std::isfinite(d) || d < 0 || d >= 18446744073709551616.0
        || std::floor(d) != d)
      return std::nullopt;
    return static_cast<uint64_t>(d);
  }
  return std::nullopt;
}

/// The one duration form of cadre (cadre/messages/duration.hpp: "250ms",
/// "30s", "2m", "1h", "1m30s", or a number of milliseconds), at most a
/// year; nullopt for anything else.
inline std::optional<std::chrono::milliseconds> parse_duration(const json& x) {
  constexpr int64_t year_ms = int64_t{365} * 24 * 3600 * 1000;
  if (x.is_number_float() && std::floor(x.get<double>()) != x.get<double>())
    return std::nullopt;
  int64_t ms = 0;
  if (!cadre::parse_duration(x, ms).empty() || ms > year_ms)
    return std::nullopt;
  return std::chrono::milliseconds{ms};
}

/// Reads the string `key` of the settings object `section` into `out`,
/// which stays as it is when the key is absent or null; `bad(key, what)`
/// makes the error naming the key.
template <class Bad>
[[nodiscard]] expected<void> read_string(const json& section, const char* key,
                                         std::string& out, Bad&& bad) {
  auto i = section.find(key);
  if (i == section.end() || i->is_null())
    return {};
  if (!i->is_string())
    return bad(key, "must be a string");
  out = i->get<std::string>();
  return {};
}

/// Reads the positive duration `key` (parse_duration) like read_string.
template <class Bad>
[[nodiscard]] expected<void> read_duration(const json& section,
                                           const char* key,
                                           std::chrono::milliseconds& out,
                                           Bad&& bad) {
  auto i = section.find(key);
  if (i == section.end() || i->is_null())
    return {};
  auto d = parse_duration(*i);
  if (!d || d->count() == 0)
    return bad(key, "must be a positive duration such as \"30s\", "
                    "\"500ms\", \"2m\" or a number of milliseconds");
  out = *d;
  return {};
}

/// True when `x` can name an environment variable (letters, digits and _,
/// not starting with a digit): a setting `*_env` holds a name, never the
/// secret itself.
inline bool env_name(std::string_view x) {
  if (x.empty() || std::isdigit(static_cast<unsigned char>(x.front())))
    return false;
  for (unsigned char c : x)
    if (!std::isalnum(c) && c != '_')
      return false;
  return true;
}

/// Replaces every occurrence of `secret` in `text` with "[redacted]".
using tools::scrub;

/// How an interruptible wait ended.
enum class wait_end { elapsed, cancelled, deadline };

/// Sleeps for `ms` in slices of at most 10 ms, returning early when `ctx` is
/// cancelled or its deadline passes.
inline wait_end interruptible_sleep(uint64_t ms, const tool_context& ctx) {
  using namespace std::chrono;
  constexpr auto slice = milliseconds{10};
  // A year keeps the time point arithmetic far from overflow.
  constexpr uint64_t max_wait_ms = 365ull * 24 * 3600 * 1000;
  auto end = steady_clock::now()
             + milliseconds{static_cast<int64_t>(std::min(ms, max_wait_ms))};
  for (;;) {
    if (ctx.cancelled())
      return wait_end::cancelled;
    if (ctx.deadline_us != 0) {
      auto now_us = duration_cast<microseconds>(
                      system_clock::now().time_since_epoch())
                      .count();
      if (now_us >= ctx.deadline_us)
        return wait_end::deadline;
    }
    auto now = steady_clock::now();
    if (now >= end)
      return wait_end::elapsed;
    std::this_thread::sleep_for(std::min<steady_clock::duration>(end - now,
                                                                 slice));
  }
}

} // namespace cadre::tools::detail
