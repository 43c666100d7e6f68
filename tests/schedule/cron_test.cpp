// Cron expressions: the five fields with lists, ranges, steps and names,
// Vixie's day-of-month/day-of-week rule, the next firing in UTC, and
// errors that say what is wrong and at which offset.

#include <chrono>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "cadre/schedule/cron.hpp"
#include "cadre/schedule/schedule.hpp"

using namespace cadre;
using schedule::cron;
using schedule::format_utc;

namespace {

int64_t utc(int y, unsigned mo, unsigned d, int h = 0, int mi = 0,
            int s = 0) {
  using namespace std::chrono;
  auto date = sys_days{year{y} / month{mo} / day{d}};
  return duration_cast<microseconds>(date.time_since_epoch() + hours{h}
                                     + minutes{mi} + seconds{s})
    .count();
}

std::string next(const std::string& expr, int64_t after) {
  auto c = cron::parse(expr);
  if (!c)
    return "error: " + describe(c.error());
  auto n = c->next_after(after);
  return n ? format_utc(*n) : "none";
}

} // namespace

TEST(Cron, NextFiringOfEachFieldForm) {
  struct row {
    const char* expr;
    int64_t after;
    const char* next;
  };
  // 2026-01-03 is a Saturday.
  const std::vector<row> rows = {
    {"* * * * *", utc(2026, 1, 1, 0, 0, 30), "2026-01-01T00:01:00Z"},
    // Strictly after: a due minute itself is not its own next.
    {"0 * * * *", utc(2026, 1, 1, 10), "2026-01-01T11:00:00Z"},
    {"*/15 9-17 * * mon-fri", utc(2026, 1, 3, 12), "2026-01-05T09:00:00Z"},
    {"*/15 9-17 * * mon-fri", utc(2026, 1, 5, 17, 45), "2026-01-06T09:00:00Z"},
    {"5/20 * * * *", utc(2026, 1, 1, 0, 25), "2026-01-01T00:45:00Z"},
    {"1,2,40-42 * * * *", utc(2026, 1, 1, 0, 2), "2026-01-01T00:40:00Z"},
    {"0 0 31 * *", utc(2026, 4, 15), "2026-05-31T00:00:00Z"},
    {"30 2 29 2 *", utc(2026, 3, 1), "2028-02-29T02:30:00Z"},
    {"0 12 * JAN,jul Sun", utc(2026, 1, 5), "2026-01-11T12:00:00Z"},
    {"0 12 * jan,jul sun", utc(2026, 2, 1), "2026-07-05T12:00:00Z"},
    // 7 is Sunday, as 0 is.
    {"0 0 * * 7", utc(2026, 1, 3), "2026-01-04T00:00:00Z"},
    {"0 0 * * 5-7", utc(2026, 1, 3, 1), "2026-01-04T00:00:00Z"},
    // Both day fields restricted: either matches (the 1st, the 15th or a
    // Monday).
    {"0 0 1,15 * 1", utc(2026, 1, 2), "2026-01-05T00:00:00Z"},
    {"0 0 1,15 * 1", utc(2026, 1, 13), "2026-01-15T00:00:00Z"},
    // A day field that starts with '*': both must match (odd days that are
    // Mondays).
    {"0 0 */2 * 1", utc(2026, 1, 1), "2026-01-05T00:00:00Z"},
    {"0 0 */2 * 1", utc(2026, 1, 6), "2026-01-19T00:00:00Z"},
    {"@daily", utc(2026, 12, 31, 23, 59), "2027-01-01T00:00:00Z"},
    {"@hourly", utc(2026, 1, 1, 0, 0, 1), "2026-01-01T01:00:00Z"},
    {"@weekly", utc(2026, 1, 1), "2026-01-04T00:00:00Z"},
    {"@monthly", utc(2026, 1, 1), "2026-02-01T00:00:00Z"},
    {"  @YEARLY ", utc(2026, 1, 1), "2027-01-01T00:00:00Z"},
    {" 0\t0  1 1 * ", utc(2026, 6, 1), "2027-01-01T00:00:00Z"},
  };
  for (const auto& r : rows)
    EXPECT_EQ(next(r.expr, r.after), r.next)
      << r.expr << " after " << format_utc(r.after);
}

TEST(Cron, NextAgreesWithMatchingEveryMinute) {
  for (const char* expr : {"*/7 */5 * * *", "13 9-11 2-9/3 * tue",
                           "0,30 0 * feb,mar wed-fri", "59 23 31 12 *"}) {
    auto c = cron::parse(expr);
    ASSERT_TRUE(c) << describe(c.error());
    auto t = utc(2026, 1, 30, 22, 13, 7);
    for (int i = 0; i < 6; ++i) {
      auto n = c->next_after(t);
      ASSERT_TRUE(n) << expr;
      EXPECT_TRUE(c->matches(*n)) << expr << " " << format_utc(*n);
      // No minute between t and the next one matches.
      for (auto m = (t / 60'000'000 + 1) * 60'000'000; m < *n;
           m += 60'000'000)
        ASSERT_FALSE(c->matches(m)) << expr << " " << format_utc(m);
      t = *n;
    }
  }
}

TEST(Cron, ErrorsSayWhatAndWhere) {
  struct row {
    const char* expr;
    size_t offset;
    const char* message;
  };
  const std::vector<row> rows = {
    {"0 24 * * *", 2, "hour: 24 is out of range 0-23"},
    {"* * * *", 7,
     "expected five fields: minute hour day-of-month month day-of-week, "
     "got 4"},
    {"* * * * * *", 10,
     "expected five fields: minute hour day-of-month month day-of-week, "
     "got 6"},
    {"", 0,
     "empty; expected five fields: minute hour day-of-month month "
     "day-of-week"},
    {"*/0 * * * *", 2, "minute: a step must be at least 1"},
    {"5-2 * * * *", 0, "minute: the range 5-2 goes backwards"},
    {"1,,2 * * * *", 2,
     "minute: expected a number, '*', a range or a step, got ','"},
    {"0 0 * foo *", 6,
     "month: unknown name 'foo' (known: jan, feb, mar, apr, may, jun, jul, "
     "aug, sep, oct, nov, dec)"},
    {"0 0 * * 8", 8, "day-of-week: 8 is out of range 0-7"},
    {"0 0 0 * *", 4, "day-of-month: 0 is out of range 1-31"},
    {"0 x * * *", 2,
     "hour: unknown name 'x'; expected a number from 0 to 23"},
    {"0 1-2x * * *", 5,
     "hour: unexpected 'x'; expected ',', '-' or '/'"},
    {"0 0 30 2 *", 4,
     "day-of-month: the days and months never meet (e.g. the 31st of a "
     "month with 30 days), so it never fires"},
    {"@reboot", 0,
     "unknown shorthand '@reboot' (known: @yearly, @annually, @monthly, "
     "@weekly, @daily, @midnight, @hourly)"},
    {"99999 * * * *", 0, "minute: 99999 is out of range 0-59"},
  };
  for (const auto& r : rows) {
    schedule::cron_error where;
    auto c = cron::parse(r.expr, &where);
    ASSERT_FALSE(c) << r.expr;
    EXPECT_EQ(where.offset, r.offset) << r.expr;
    EXPECT_EQ(where.message, r.message) << r.expr;
    EXPECT_EQ(code_of(c.error()), errc::invalid_config);
    EXPECT_EQ(message_of(c.error()),
              std::string{"cron '"} + r.expr + "': " + r.message);
  }
}

TEST(Cron, MatchesTheMinuteHoldingATime) {
  auto c = cron::parse("30 2 * * *");
  ASSERT_TRUE(c);
  EXPECT_TRUE(c->matches(utc(2026, 5, 5, 2, 30)));
  EXPECT_TRUE(c->matches(utc(2026, 5, 5, 2, 30, 59)));
  EXPECT_FALSE(c->matches(utc(2026, 5, 5, 2, 31)));
  EXPECT_FALSE(c->matches(utc(2026, 5, 5, 3, 30)));
  EXPECT_EQ(c->text(), "30 2 * * *");
}
