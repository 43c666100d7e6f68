#pragma once

#include <cstdint>
#include <cstdio>
#include <initializer_list>
#include <string>
#include <string_view>
#include <type_traits>
#include <vector>

#include "cadre/messages/error.hpp"

/// Operator logs: one line per event, as text or as a JSON object, to one
/// file (stderr by default). Every function may be called from any thread.
/// Lines are for operators, not a record: executions keep their history in
/// the event log. Never pass secrets (API keys, tokens) or prompt content
/// in a message or field above debug level; see redact().
namespace cadre::log {

/// Severity of a line, lowest first. As a threshold, `off` writes nothing.
enum class level : uint8_t { trace, debug, info, warn, error, off };

/// How a line looks (docs/operations.md#logs).
enum class format : uint8_t {
  /// `2026-12-06T23:40:01.123Z INFO  msg key=value ...`
  text,
  /// `{"time":"2026-12-06T23:40:01.123Z","level":"info","msg":"...",...}`
  json,
};

/// Returns "trace", "debug", "info", "warn", "error" or "off".
std::string_view to_string(level x);

/// Returns "text" or "json".
std::string_view to_string(format x);

/// Parses a level name as to_string writes it (lower case). Errors:
/// errc::invalid_config, e.g. "unknown level 'verbose' (known: trace,
/// debug, info, warn, error, off)"; the caller prefixes the key.
[[nodiscard]] expected<level> parse_level(std::string_view name);

/// Parses "text" or "json". Errors: errc::invalid_config, as parse_level.
[[nodiscard]] expected<format> parse_format(std::string_view name);

/// One key and value of a line. Values are strings or numbers (integers,
/// and finite doubles; other doubles become strings). A key is a short
/// literal such as "execution"; the reserved keys time, level and msg get
/// a trailing `_` in JSON lines.
struct field {
  field(std::string_view k, std::string v) : key(k), value(std::move(v)) {
    // nop
  }

  field(std::string_view k, std::string_view v) : key(k), value(v) {
    // nop
  }

  field(std::string_view k, const char* v)
    : key(k), value(v != nullptr ? v : "") {
    // nop
  }

  template <class T, class = std::enable_if_t<std::is_integral_v<T>>>
  field(std::string_view k, T v)
    : key(k), value(std::to_string(v)), number(true) {
    static_assert(!std::is_same_v<T, bool>, "log a bool as a string");
  }

  field(std::string_view k, double v);

  /// Must outlive the call it is passed to (a literal, usually).
  std::string_view key;
  std::string value;
  /// The value is a number: written without quotes.
  bool number = false;
};

/// Sets the threshold, the format and the file lines go to, for the whole
/// process. Before the first call: warn, text, stderr. The caller keeps
/// `sink` open; a line being written while init runs may still go to the
/// previous file.
/// @pre `sink` is not null.
void init(level threshold, format fmt, std::FILE* sink = stderr);

/// Returns whether a line of level `x` is written: callers check it before
/// building fields that cost something.
bool enabled(level x) noexcept;

/// Writes one line of level `x` if enabled(x). Never throws: values with
/// newlines, quotes or invalid UTF-8 are escaped (invalid bytes become
/// U+FFFD in JSON), so each line stays one line and valid JSON.
void write(level x, std::string_view msg,
           std::initializer_list<field> fields = {}) noexcept;

inline void trace(std::string_view msg,
                  std::initializer_list<field> fields = {}) noexcept {
  write(level::trace, msg, fields);
}

inline void debug(std::string_view msg,
                  std::initializer_list<field> fields = {}) noexcept {
  write(level::debug, msg, fields);
}

inline void info(std::string_view msg,
                 std::initializer_list<field> fields = {}) noexcept {
  write(level::info, msg, fields);
}

inline void warn(std::string_view msg,
                 std::initializer_list<field> fields = {}) noexcept {
  write(level::warn, msg, fields);
}

inline void error(std::string_view msg,
                  std::initializer_list<field> fields = {}) noexcept {
  write(level::error, msg, fields);
}

/// Returns `text` with every occurrence of each non-empty secret replaced
/// by "[redacted]", for a text that may echo a key or token (an HTTP
/// error body, a URL).
std::string redact(std::string_view text,
                   const std::vector<std::string>& secrets);

} // namespace cadre::log
