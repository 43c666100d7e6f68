#pragma once

// Cron expressions: the standard five fields (minute, hour, day of month,
// month, day of week) with `*`, lists, ranges and steps, month and weekday
// names, and the shorthands @yearly, @monthly, @weekly, @daily and
// @hourly, computed in UTC. Pure: no clock, no time zone, no regex.

#include <bitset>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "cadre/messages/error.hpp"

namespace cadre::schedule {

/// Where and why a cron expression does not parse.
struct cron_error {
  /// Byte offset in the text of the part that is wrong.
  size_t offset = 0;
  /// What is wrong, e.g. "hour: 24 is out of range 0-23".
  std::string message;
};

/// A parsed cron expression. A time matches when its minute, hour and month
/// are in their fields and its day matches: when the day-of-month or the
/// day-of-week field starts with `*`, both must match, otherwise either
/// (as Vixie cron, so `0 0 1,15 * 1` is the 1st, the 15th and Mondays).
///
/// Thread safety: immutable once parsed; any thread may call it.
class cron {
public:
  /// Parses `text`. Errors: errc::invalid_config with the message of the
  /// cron_error, e.g. "cron '0 24 * * *': hour: 24 is out of range 0-23";
  /// when `where` is given it receives the offset and the bare message
  /// (for a caller that turns the offset into a file position).
  [[nodiscard]] static expected<cron> parse(std::string_view text,
                                            cron_error* where = nullptr);

  /// The first whole minute after `after_us` (microseconds since the Unix
  /// epoch, UTC) that matches; nullopt when none does within 28 years
  /// (never for an expression that parse accepted, which checks that it
  /// fires at all).
  std::optional<int64_t> next_after(int64_t after_us) const;

  /// True when the minute holding `us` matches.
  bool matches(int64_t us) const;

  /// The text as parsed.
  const std::string& text() const noexcept {
    return text_;
  }

private:
  cron() = default;

  bool day_matches(int64_t day) const;

  std::bitset<60> minutes_;
  std::bitset<24> hours_;
  std::bitset<32> days_;     // 1-31
  std::bitset<13> months_;   // 1-12
  std::bitset<7> weekdays_;  // 0 = Sunday
  bool days_star_ = false;     // the day-of-month field starts with '*'
  bool weekdays_star_ = false; // the day-of-week field starts with '*'
  std::string text_;
};

} // namespace cadre::schedule
