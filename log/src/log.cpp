#include "cadre/log/log.hpp"
#include "cadre/messages/json_text.hpp"

#include <atomic>
#include <cmath>
#include <iterator>
#include <memory>
#include <mutex>

#include <nlohmann/json.hpp>
#include <spdlog/logger.h>
#include <spdlog/pattern_formatter.h>
#include <spdlog/sinks/base_sink.h>

namespace cadre::log {

namespace {

constexpr std::string_view level_names[] = {"trace", "debug", "info",
                                            "warn",  "error", "off"};

// Text lines pad the level so that messages line up.
constexpr std::string_view text_levels[] = {"TRACE", "DEBUG", "INFO ",
                                            "WARN ", "ERROR", "OFF  "};

// spdlog stamps the time and writes the line; cadre formats the level and
// the fields itself, so neither format depends on spdlog's level names.
class file_sink final : public spdlog::sinks::base_sink<std::mutex> {
public:
  explicit file_sink(std::FILE* file) : file_(file) {
    // nop
  }

protected:
  void sink_it_(const spdlog::details::log_msg& msg) override {
    spdlog::memory_buf_t buf;
    formatter_->format(msg, buf);
    std::fwrite(buf.data(), 1, buf.size(), file_);
    // The line that explains a crash must not sit in a buffer.
    std::fflush(file_);
  }

  void flush_() override {
    std::fflush(file_);
  }

private:
  std::FILE* file_;
};

std::shared_ptr<spdlog::logger> make_logger(format fmt, std::FILE* file) {
  auto sink = std::make_shared<file_sink>(file);
  const char* pattern = fmt == format::json
                          ? R"({"time":"%Y-%m-%dT%H:%M:%S.%eZ",%v})"
                          : "%Y-%m-%dT%H:%M:%S.%eZ %v";
  sink->set_formatter(std::make_unique<spdlog::pattern_formatter>(
    pattern, spdlog::pattern_time_type::utc, "\n"));
  // Not registered with spdlog: no global name to collide with.
  auto logger = std::make_shared<spdlog::logger>("cadre", std::move(sink));
  logger->set_level(spdlog::level::trace); // the threshold is ours
  return logger;
}

struct state {
  std::atomic<int> threshold{static_cast<int>(level::warn)};
  std::mutex mtx;
  format fmt = format::text;              // guarded by mtx
  std::shared_ptr<spdlog::logger> logger; // guarded by mtx
};

// Never destroyed: actors may log while static destructors run.
state& global() {
  static state* st = [] {
    auto* s = new state;
    s->logger = make_logger(format::text, stderr);
    return s;
  }();
  return *st;
}

spdlog::level::level_enum to_spdlog(level x) {
  switch (x) {
    case level::trace:
      return spdlog::level::trace;
    case level::debug:
      return spdlog::level::debug;
    case level::info:
      return spdlog::level::info;
    case level::warn:
      return spdlog::level::warn;
    case level::error:
      return spdlog::level::err;
    case level::off:
      break;
  }
  return spdlog::level::off;
}

// A JSON string literal, quotes included; invalid UTF-8 becomes U+FFFD.
std::string json_string(std::string_view s) {
  return nlohmann::json(std::string{s})
    .dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

bool plain_byte(unsigned char c) {
  return c >= 0x20 && c < 0x7f;
}

// key=value stays readable by `cut` and logfmt parsers only if the value
// has no blanks, quotes, '=' or control bytes; other values are quoted.
bool bare_value(std::string_view s) {
  if (s.empty())
    return false;
  for (unsigned char c : s)
    if (!plain_byte(c) || c == ' ' || c == '"' || c == '=' || c == '\\')
      return false;
  return true;
}

void append_text(std::string& out, std::string_view s) {
  if (bare_value(s))
    out += s;
  else
    out += json_string(s);
}

std::string text_body(level x, std::string_view msg,
                      std::initializer_list<field> fields) {
  std::string out{text_levels[static_cast<size_t>(x)]};
  out += ' ';
  bool plain = true;
  for (unsigned char c : msg)
    plain = plain && plain_byte(c);
  if (plain) {
    out += msg;
  } else {
    // A newline in a message must not start a line of its own.
    auto q = json_string(msg);
    out.append(q, 1, q.size() - 2);
  }
  for (const auto& f : fields) {
    out += ' ';
    append_text(out, f.key);
    out += '=';
    if (f.number)
      out += f.value;
    else
      append_text(out, f.value);
  }
  return out;
}

std::string json_body(level x, std::string_view msg,
                      std::initializer_list<field> fields) {
  std::string out = R"("level":")";
  out += level_names[static_cast<size_t>(x)];
  out += R"(","msg":)";
  out += json_string(msg);
  for (const auto& f : fields) {
    out += ',';
    // A second "msg" key would make the line ambiguous.
    if (f.key == "time" || f.key == "level" || f.key == "msg")
      out += json_string(std::string{f.key} + "_");
    else
      out += json_string(f.key);
    out += ':';
    out += f.number ? f.value : json_string(f.value);
  }
  return out;
}

expected<size_t> index_of(std::string_view name,
                          const std::string_view* names, size_t n,
                          const char* what) {
  std::string known;
  for (size_t i = 0; i < n; ++i) {
    if (names[i] == name)
      return i;
    known += (i == 0 ? "" : ", ") + std::string{names[i]};
  }
  return make_error(errc::invalid_config,
                    std::string{"unknown "} + what + " '" + std::string{name}
                      + "' (known: " + known + ")");
}

constexpr std::string_view format_names[] = {"text", "json"};

} // namespace

field::field(std::string_view k, double v) : key(k) {
  // JSON has no NaN or infinity: those travel as strings.
  number = std::isfinite(v);
  value = number ? dump_json(nlohmann::json(v)) : std::to_string(v);
}

std::string_view to_string(level x) {
  return level_names[static_cast<size_t>(x)];
}

std::string_view to_string(format x) {
  return format_names[static_cast<size_t>(x)];
}

expected<level> parse_level(std::string_view name) {
  auto i = index_of(name, level_names, std::size(level_names), "level");
  if (!i)
    return i.error();
  return static_cast<level>(*i);
}

expected<format> parse_format(std::string_view name) {
  auto i = index_of(name, format_names, std::size(format_names), "format");
  if (!i)
    return i.error();
  return static_cast<format>(*i);
}

void init(level threshold, format fmt, std::FILE* sink) {
  auto logger = make_logger(fmt, sink);
  auto& st = global();
  std::lock_guard<std::mutex> guard{st.mtx};
  st.fmt = fmt;
  st.logger = std::move(logger);
  st.threshold.store(static_cast<int>(threshold), std::memory_order_relaxed);
}

bool enabled(level x) noexcept {
  return x != level::off
         && static_cast<int>(x)
              >= global().threshold.load(std::memory_order_relaxed);
}

void write(level x, std::string_view msg,
           std::initializer_list<field> fields) noexcept {
  if (!enabled(x))
    return;
  try {
    auto& st = global();
    format fmt;
    std::shared_ptr<spdlog::logger> logger;
    {
      std::lock_guard<std::mutex> guard{st.mtx};
      fmt = st.fmt;
      logger = st.logger;
    }
    auto body = fmt == format::json ? json_body(x, msg, fields)
                                    : text_body(x, msg, fields);
    logger->log(to_spdlog(x), spdlog::string_view_t{body.data(), body.size()});
  } catch (...) {
    // A line that cannot be built (out of memory) is dropped: logging must
    // not fail the caller.
  }
}

std::string redact(std::string_view text,
                   const std::vector<std::string>& secrets) {
  constexpr std::string_view mark = "[redacted]";
  std::string out{text};
  for (const auto& s : secrets) {
    if (s.empty())
      continue;
    for (auto pos = out.find(s); pos != std::string::npos;
         pos = out.find(s, pos + mark.size()))
      out.replace(pos, s.size(), mark);
  }
  return out;
}

} // namespace cadre::log
