#include "cadre/schedule/cron.hpp"

#include <chrono>
#include <cctype>
#include <vector>

namespace cadre::schedule {

namespace {

constexpr int64_t minute_us = 60'000'000;
constexpr int64_t minutes_per_day = 1440;
// Every combination of fields that can match at all does so within 28
// years: the weekday of a date, Feb 29 included, repeats after 28.
constexpr int64_t search_days = 28 * 366;
// Years 1970 to 9999: the calendar arithmetic stays far from overflow.
constexpr int64_t max_us = 253'402'300'799'000'000;

int64_t floor_div(int64_t a, int64_t b) {
  auto q = a / b;
  return (a % b != 0 && (a < 0) != (b < 0)) ? q - 1 : q;
}

constexpr const char* month_names[] = {"jan", "feb", "mar", "apr",
                                       "may", "jun", "jul", "aug",
                                       "sep", "oct", "nov", "dec"};
constexpr const char* weekday_names[] = {"sun", "mon", "tue", "wed",
                                         "thu", "fri", "sat"};

struct field_def {
  const char* name;
  int min;
  int max;
  const char* const* names = nullptr; // the name of `min` first
  int name_count = 0;
};

constexpr field_def fields[] = {
  {"minute", 0, 59},
  {"hour", 0, 23},
  {"day-of-month", 1, 31},
  {"month", 1, 12, month_names, 12},
  // 7 is Sunday too.
  {"day-of-week", 0, 7, weekday_names, 7},
};

struct shorthand {
  const char* name;
  const char* expansion;
};

constexpr shorthand shorthands[] = {
  {"@yearly", "0 0 1 1 *"},  {"@annually", "0 0 1 1 *"},
  {"@monthly", "0 0 1 * *"}, {"@weekly", "0 0 * * 0"},
  {"@daily", "0 0 * * *"},   {"@midnight", "0 0 * * *"},
  {"@hourly", "0 * * * *"},
};

bool blank(char c) {
  return c == ' ' || c == '\t';
}

bool same_word(std::string_view a, const char* b) {
  std::string_view bv{b};
  if (a.size() != bv.size())
    return false;
  for (size_t i = 0; i < a.size(); ++i)
    if (std::tolower(static_cast<unsigned char>(a[i])) != bv[i])
      return false;
  return true;
}

std::string quoted(std::string_view x) {
  return "'" + std::string{x} + "'";
}

/// Reads one field into a bit mask (bit i: value i).
class field_parser {
public:
  field_parser(std::string_view text, size_t offset, const field_def& def)
    : text_(text), offset_(offset), def_(def) {
  }

  /// The mask, or nullopt with `error` set.
  std::optional<uint64_t> parse(cron_error& error) {
    uint64_t mask = 0;
    for (;;) {
      if (!item(mask))
        break;
      if (pos_ == text_.size()) {
        if (def_.max == 7 && (mask >> 7 & 1))
          mask = (mask & ~(uint64_t{1} << 7)) | 1;
        return mask;
      }
      if (text_[pos_] != ',') {
        fail(pos_, "unexpected " + quoted(text_.substr(pos_, 1))
                     + "; expected ',', '-' or '/'");
        break;
      }
      ++pos_;
    }
    error = error_;
    return std::nullopt;
  }

private:
  bool item(uint64_t& mask) {
    size_t start = pos_;
    int lo = def_.min;
    int hi = def_.max == 7 ? 6 : def_.max;
    bool single = false;
    if (pos_ < text_.size() && text_[pos_] == '*') {
      ++pos_;
    } else {
      if (!value(lo))
        return false;
      hi = lo;
      single = true;
      if (pos_ < text_.size() && text_[pos_] == '-') {
        ++pos_;
        if (!value(hi))
          return false;
        single = false;
        if (hi < lo)
          return fail(start, "the range "
                               + std::string{text_.substr(start,
                                                          pos_ - start)}
                               + " goes backwards");
      }
    }
    int step = 1;
    if (pos_ < text_.size() && text_[pos_] == '/') {
      ++pos_;
      size_t at = pos_;
      if (!number(step, "a step"))
        return false;
      if (step < 1)
        return fail(at, "a step must be at least 1");
      // "5/15" is "5-59/15".
      if (single)
        hi = def_.max == 7 ? 6 : def_.max;
    }
    for (int v = lo; v <= hi; v += step)
      mask |= uint64_t{1} << v;
    return true;
  }

  bool value(int& out) {
    size_t at = pos_;
    if (pos_ < text_.size()
        && std::isalpha(static_cast<unsigned char>(text_[pos_]))) {
      while (pos_ < text_.size()
             && std::isalpha(static_cast<unsigned char>(text_[pos_])))
        ++pos_;
      auto word = text_.substr(at, pos_ - at);
      for (int i = 0; i < def_.name_count; ++i)
        if (same_word(word, def_.names[i])) {
          out = def_.min + i;
          return true;
        }
      std::string known;
      for (int i = 0; i < def_.name_count; ++i)
        known += std::string{i ? ", " : ""} + def_.names[i];
      return fail(at, "unknown name " + quoted(word)
                        + (def_.name_count
                             ? " (known: " + known + ")"
                             : "; expected a number from "
                                 + std::to_string(def_.min) + " to "
                                 + std::to_string(def_.max)));
    }
    const char* expected = def_.name_count
                             ? "a number, a name, '*', a range or a step"
                             : "a number, '*', a range or a step";
    if (!number(out, expected))
      return false;
    if (out < def_.min || out > def_.max)
      return fail(at, std::to_string(out) + " is out of range "
                        + std::to_string(def_.min) + "-"
                        + std::to_string(def_.max));
    return true;
  }

  bool number(int& out, const char* expected) {
    size_t at = pos_;
    while (pos_ < text_.size()
           && std::isdigit(static_cast<unsigned char>(text_[pos_])))
      ++pos_;
    if (pos_ == at) {
      auto got = pos_ < text_.size() ? quoted(text_.substr(pos_, 1))
                                     : std::string{"the end of the field"};
      return fail(at, std::string{"expected "} + expected + ", got " + got);
    }
    if (pos_ - at > 4)
      return fail(at, std::string{text_.substr(at, pos_ - at)}
                        + " is out of range "
                        + std::to_string(def_.min) + "-"
                        + std::to_string(def_.max));
    out = 0;
    for (size_t i = at; i < pos_; ++i)
      out = out * 10 + (text_[i] - '0');
    return true;
  }

  bool fail(size_t at, std::string what) {
    error_.offset = offset_ + at;
    error_.message = std::string{def_.name} + ": " + std::move(what);
    return false;
  }

  std::string_view text_;
  size_t offset_;
  const field_def& def_;
  size_t pos_ = 0;
  cron_error error_;
};

} // namespace

expected<cron> cron::parse(std::string_view text, cron_error* where) {
  cron out;
  out.text_ = std::string{text};
  auto failed = [&](cron_error e) -> expected<cron> {
    auto msg = "cron " + quoted(text) + ": " + e.message;
    if (where)
      *where = std::move(e);
    return make_error(errc::invalid_config, std::move(msg));
  };
  size_t begin = 0;
  while (begin < text.size() && blank(text[begin]))
    ++begin;
  std::string_view body = text;
  bool expanded = false;
  if (begin < text.size() && text[begin] == '@') {
    size_t end = text.size();
    while (end > begin && blank(text[end - 1]))
      --end;
    auto word = text.substr(begin, end - begin);
    const char* expansion = nullptr;
    for (const auto& s : shorthands)
      if (same_word(word, s.name))
        expansion = s.expansion;
    if (!expansion) {
      std::string known;
      for (const auto& s : shorthands)
        known += std::string{known.empty() ? "" : ", "} + s.name;
      return failed(cron_error{begin, "unknown shorthand " + quoted(word)
                                        + " (known: " + known + ")"});
    }
    // Errors cannot come from an expansion; offsets would point nowhere.
    body = expansion;
    expanded = true;
  }
  std::vector<std::pair<std::string_view, size_t>> parts;
  for (size_t i = 0; i < body.size();) {
    while (i < body.size() && blank(body[i]))
      ++i;
    size_t start = i;
    while (i < body.size() && !blank(body[i]))
      ++i;
    if (i > start)
      parts.emplace_back(body.substr(start, i - start),
                         expanded ? begin : start);
  }
  constexpr const char* shape
    = "expected five fields: minute hour day-of-month month day-of-week";
  if (parts.empty())
    return failed(cron_error{0, std::string{"empty; "} + shape});
  if (parts.size() != 5) {
    auto at = parts.size() > 5 ? parts[5].second : text.size();
    return failed(cron_error{at, std::string{shape} + ", got "
                                   + std::to_string(parts.size())});
  }
  uint64_t masks[5] = {};
  for (size_t f = 0; f < 5; ++f) {
    cron_error err;
    auto mask
      = field_parser{parts[f].first, parts[f].second, fields[f]}.parse(err);
    if (!mask)
      return failed(std::move(err));
    masks[f] = *mask;
  }
  out.minutes_ = std::bitset<60>{masks[0]};
  out.hours_ = std::bitset<24>{masks[1]};
  out.days_ = std::bitset<32>{masks[2]};
  out.months_ = std::bitset<13>{masks[3]};
  out.weekdays_ = std::bitset<7>{masks[4]};
  out.days_star_ = parts[2].first.front() == '*';
  out.weekdays_star_ = parts[4].first.front() == '*';
  // 1999-12-31T23:59:00Z: the search covers the leap day of 2000.
  if (!out.next_after(946'684'740'000'000))
    return failed(cron_error{parts[2].second,
                             "day-of-month: the days and months never "
                             "meet (e.g. the 31st of a month with 30 "
                             "days), so it never fires"});
  return out;
}

bool cron::day_matches(int64_t day) const {
  using namespace std::chrono;
  sys_days d{days{day}};
  year_month_day ymd{d};
  if (!months_[static_cast<unsigned>(ymd.month())])
    return false;
  bool dom = days_[static_cast<unsigned>(ymd.day())];
  bool dow = weekdays_[weekday{d}.c_encoding()];
  return days_star_ || weekdays_star_ ? dom && dow : dom || dow;
}

std::optional<int64_t> cron::next_after(int64_t after_us) const {
  if (after_us >= max_us || after_us < -max_us)
    return std::nullopt;
  auto minute = floor_div(after_us, minute_us) + 1;
  auto day = floor_div(minute, minutes_per_day);
  auto start = static_cast<int>(minute - day * minutes_per_day);
  for (int64_t n = 0; n <= search_days; ++n, ++day, start = 0) {
    if (!day_matches(day))
      continue;
    for (int h = start / 60, m = start % 60; h < 24; ++h, m = 0) {
      if (!hours_[static_cast<size_t>(h)])
        continue;
      for (; m < 60; ++m)
        if (minutes_[static_cast<size_t>(m)])
          return (day * minutes_per_day + h * 60 + m) * minute_us;
    }
  }
  return std::nullopt;
}

bool cron::matches(int64_t us) const {
  auto minute = floor_div(us, minute_us);
  auto day = floor_div(minute, minutes_per_day);
  auto of_day = minute - day * minutes_per_day;
  return day_matches(day) && hours_[static_cast<size_t>(of_day / 60)]
         && minutes_[static_cast<size_t>(of_day % 60)];
}

} // namespace cadre::schedule
