// Helpers shared by the SQLite and PostgreSQL backends of the sql tool.

#include <algorithm>
#include <array>
#include <string>

#include "sql/sql_connection.hpp"

namespace cadre::tools::sql {

connection::~connection() = default;

stop_reason call_limits::check() const {
  if (ctx != nullptr && ctx->cancelled())
    return stop_reason::cancelled;
  if (std::chrono::steady_clock::now() >= end)
    return end_is_deadline ? stop_reason::deadline : stop_reason::timeout;
  return stop_reason::none;
}

uint64_t call_limits::remaining_ms() const {
  using namespace std::chrono;
  auto left = end - steady_clock::now();
  if (left <= steady_clock::duration::zero())
    return 0;
  return static_cast<uint64_t>(ceil<milliseconds>(left).count());
}

caf::error result_too_large(const call_limits& limits,
                            const std::string& pointer) {
  return make_error(errc::result_too_large,
                    "tool sql: " + (pointer.empty() ? "/sql" : pointer)
                      + ": the result is larger than "
                      + std::to_string(limits.max_result_bytes)
                      + " bytes (tools.sql.max_result_bytes); select fewer "
                        "rows or columns (max_rows, LIMIT)");
}

caf::error stop_error(stop_reason why, const call_limits& limits,
                      const std::string& pointer) {
  std::string where = "tool sql: " + (pointer.empty() ? "/sql" : pointer)
                      + ": ";
  switch (why) {
    case stop_reason::cancelled:
      return make_error(errc::cancelled, where + "cancelled");
    case stop_reason::deadline:
      return make_error(errc::timeout,
                        where + "the task deadline passed before the "
                                "statement finished");
    case stop_reason::timeout:
    case stop_reason::none:
      break;
  }
  return make_error(errc::timeout,
                    where + "statement timeout: not finished within "
                      + std::to_string(limits.timeout_ms)
                      + " ms (timeout_ms)");
}

std::optional<std::string> blob_param(const json& param, std::string& error) {
  if (!param.is_object() || param.size() != 1)
    return std::nullopt;
  auto i = param.find("$base64");
  if (i == param.end())
    return std::nullopt;
  if (!i->is_string()) {
    error = "$base64 must be a string of base64";
    return std::nullopt;
  }
  auto bytes = base64_decode(i->get_ref<const std::string&>());
  if (!bytes)
    error = "$base64 is not valid base64";
  return bytes;
}

void result_builder::add_column(std::string name, std::string type) {
  auto key = name;
  for (int n = 2; std::find(keys_.begin(), keys_.end(), key) != keys_.end();
       ++n)
    key = name + "_" + std::to_string(n);
  keys_.push_back(key);
  columns_.push_back(json{{"name", std::move(key)}, {"type", std::move(type)}});
}

void result_builder::set_type(size_t i, std::string type) {
  columns_[i]["type"] = std::move(type);
}

void result_builder::mark_base64(size_t i) {
  columns_[i]["encoding"] = "base64";
}

json result_builder::finish(bool truncated) {
  return json{{"columns", std::move(columns_)},
              {"rows", std::move(rows_)},
              {"truncated", truncated}};
}

size_t char_position(std::string_view text, size_t offset) {
  offset = std::min(offset, text.size());
  size_t chars = 0;
  for (size_t i = 0; i < offset; ++i)
    if ((static_cast<unsigned char>(text[i]) & 0xc0) != 0x80)
      ++chars;
  return chars + 1;
}

} // namespace cadre::tools::sql
