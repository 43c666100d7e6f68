#include "cadre/messages/duration.hpp"

#include <algorithm>
#include <cctype>
#include <charconv>
#include <cmath>
#include <limits>

#include "cadre/messages/json_text.hpp"

namespace cadre {

namespace {

constexpr const char* duration_hint
  = "use milliseconds (250) or a number with a unit: 250ms, 30s, 5m, 1h, "
    "1h30m";

std::string describe_value(const json& value) {
  auto text = dump_json(value);
  if (text.size() > 40)
    text = text.substr(0, 40) + "...";
  return text;
}

} // namespace

std::string parse_duration(const json& value, int64_t& ms) {
  constexpr double max_ms = static_cast<double>(
    std::numeric_limits<int64_t>::max() / 2);
  if (value.is_number()) {
    double d = value.get<double>();
    if (!(d >= 0))
      return "a duration must not be negative, got " + describe_value(value);
    if (d > max_ms)
      return "the duration " + describe_value(value) + " is too large";
    ms = value.is_number_float() ? std::llround(d) : value.get<int64_t>();
    return {};
  }
  if (!value.is_string())
    return "expected a duration, got " + describe_value(value) + "; "
           + duration_hint;
  const auto& text = value.get_ref<const std::string&>();
  std::string s;
  for (char c : text)
    if (!std::isspace(static_cast<unsigned char>(c)))
      s += c;
  auto bad = [&] {
    return "'" + text + "' is not a duration; " + duration_hint;
  };
  if (s.empty())
    return bad();
  if (std::all_of(s.begin(), s.end(),
                  [](char c) { return c >= '0' && c <= '9'; })) {
    if (s.size() > 15)
      return "the duration '" + text + "' is too large";
    ms = std::stoll(s);
    return {};
  }
  double total = 0;
  size_t i = 0;
  while (i < s.size()) {
    size_t start = i;
    while (i < s.size() && ((s[i] >= '0' && s[i] <= '9') || s[i] == '.'))
      ++i;
    if (i == start)
      return bad();
    auto number = s.substr(start, i - start);
    if (std::count(number.begin(), number.end(), '.') > 1 || number == ".")
      return bad();
    size_t unit_start = i;
    while (i < s.size() && std::isalpha(static_cast<unsigned char>(s[i])))
      ++i;
    auto unit = s.substr(unit_start, i - unit_start);
    double factor;
    if (unit == "ms")
      factor = 1;
    else if (unit == "s")
      factor = 1000;
    else if (unit == "m" || unit == "min")
      factor = 60'000;
    else if (unit == "h")
      factor = 3'600'000;
    else
      return bad();
    // from_chars, not std::stod, which throws past a double's range: too
    // many digits before the point is too large, after it next to nothing.
    double value = 0;
    auto ec = std::from_chars(number.data(), number.data() + number.size(),
                              value).ec;
    if (ec == std::errc::result_out_of_range) {
      auto whole = number.substr(0, number.find('.'));
      if (whole.find_first_not_of('0') != std::string::npos)
        return "the duration '" + text + "' is too large";
      value = 0;
    } else if (ec != std::errc{}) {
      return bad();
    }
    total += value * factor;
  }
  if (total > max_ms)
    return "the duration '" + text + "' is too large";
  ms = std::llround(total);
  return {};
}

} // namespace cadre
