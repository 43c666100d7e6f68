#pragma once

// Task logs of the airflow tool: Airflow 3's structured log lines (a JSON
// `content` array of objects) and plain text (an array of strings, or
// Airflow 2's one string) as text, bounded to the last bytes. Private to
// tools/.

#include <cstdint>
#include <string>
#include <string_view>

#include "cadre/messages/json_value.hpp"

namespace cadre::tools::airflow {

/// One line of a structured log (a StructuredLogMessage: `event`, optional
/// `timestamp`, `level`, `logger` and any other keys) as text:
/// "[<timestamp>] <LEVEL> <logger> - <event> {<other keys>}", leaving out
/// what is absent. A string is itself, a trailing newline dropped; other
/// JSON is its compact text.
std::string format_log_line(const json& line);

/// Text appended line by line, of which only the last `max` bytes are
/// kept: a log's tail, where the failure is.
class log_tail {
public:
  /// @pre max > 0
  explicit log_tail(uint64_t max) : max_(max) {
  }

  /// Appends `line` and a newline.
  void add_line(std::string_view line);

  /// Appends text that holds its own newlines.
  void add_text(std::string_view text);

  /// True when bytes were dropped from the front.
  bool truncated() const noexcept {
    return total_ > max_;
  }

  /// Bytes appended in all.
  uint64_t total_bytes() const noexcept {
    return total_;
  }

  /// At most the last `max` bytes; when some were dropped, starting at a
  /// line (if the kept part has a line break) and always at a UTF-8
  /// character.
  std::string text() const;

private:
  uint64_t max_;
  uint64_t total_ = 0;
  std::string buf_;
};

} // namespace cadre::tools::airflow
