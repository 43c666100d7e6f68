#include "airflow/airflow_log.hpp"

#include <cctype>

namespace cadre::tools::airflow {

std::string format_log_line(const json& line) {
  if (line.is_string()) {
    auto text = line.get<std::string>();
    if (!text.empty() && text.back() == '\n')
      text.pop_back();
    return text;
  }
  if (!line.is_object())
    return line.dump();
  auto text_of = [&](const char* key) -> std::string {
    auto i = line.find(key);
    if (i == line.end() || i->is_null())
      return {};
    return i->is_string() ? i->get<std::string>() : i->dump();
  };
  std::string out;
  auto add = [&](const std::string& part) {
    if (part.empty())
      return;
    if (!out.empty())
      out += ' ';
    out += part;
  };
  if (auto ts = text_of("timestamp"); !ts.empty())
    add("[" + ts + "]");
  auto level = text_of("level");
  for (auto& c : level)
    c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  add(level);
  add(text_of("logger"));
  auto event = text_of("event");
  if (!out.empty())
    out += " -";
  add(event);
  json rest = json::object();
  for (const auto& [key, value] : line.items())
    if (key != "timestamp" && key != "level" && key != "logger"
        && key != "event")
      rest[key] = value;
  if (!rest.empty())
    add(rest.dump());
  return out;
}

void log_tail::add_line(std::string_view line) {
  add_text(line);
  add_text("\n");
}

void log_tail::add_text(std::string_view text) {
  total_ += text.size();
  // One byte more than is kept tells whether the tail starts a line.
  auto keep = max_ + 1;
  if (text.size() >= keep) {
    buf_.assign(text.substr(text.size() - keep));
    return;
  }
  buf_.append(text);
  // Drop the front in batches, so appending stays linear.
  if (buf_.size() >= 2 * keep)
    buf_.erase(0, buf_.size() - keep);
}

std::string log_tail::text() const {
  if (!truncated())
    return buf_;
  auto start = buf_.size() - max_;
  std::string_view kept{buf_};
  kept.remove_prefix(start);
  // Start at a whole line when the cut fell inside one and the kept part
  // has a line break before its end.
  if (buf_[start - 1] != '\n') {
    auto nl = kept.find('\n');
    if (nl != std::string_view::npos && nl + 1 < kept.size())
      kept.remove_prefix(nl + 1);
  }
  while (!kept.empty()
         && (static_cast<unsigned char>(kept.front()) & 0xc0) == 0x80)
    kept.remove_prefix(1);
  return std::string{kept};
}

} // namespace cadre::tools::airflow
