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

namespace {

constexpr char b64_chars[]
  = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

} // namespace

std::string base64_encode(std::string_view bytes) {
  std::string out;
  out.reserve((bytes.size() + 2) / 3 * 4);
  size_t i = 0;
  auto byte = [&](size_t k) {
    return static_cast<uint32_t>(static_cast<unsigned char>(bytes[k]));
  };
  for (; i + 2 < bytes.size(); i += 3) {
    uint32_t n = byte(i) << 16 | byte(i + 1) << 8 | byte(i + 2);
    out += b64_chars[n >> 18 & 63];
    out += b64_chars[n >> 12 & 63];
    out += b64_chars[n >> 6 & 63];
    out += b64_chars[n & 63];
  }
  if (i + 1 == bytes.size()) {
    uint32_t n = byte(i) << 16;
    out += b64_chars[n >> 18 & 63];
    out += b64_chars[n >> 12 & 63];
    out += "==";
  } else if (i + 2 == bytes.size()) {
    uint32_t n = byte(i) << 16 | byte(i + 1) << 8;
    out += b64_chars[n >> 18 & 63];
    out += b64_chars[n >> 12 & 63];
    out += b64_chars[n >> 6 & 63];
    out += '=';
  }
  return out;
}

std::optional<std::string> base64_decode(std::string_view text) {
  std::array<int, 256> value;
  value.fill(-1);
  for (int k = 0; k < 64; ++k)
    value[static_cast<unsigned char>(b64_chars[k])] = k;
  while (!text.empty() && text.back() == '=')
    text.remove_suffix(1);
  // One leftover character cannot encode a whole byte.
  if (text.size() % 4 == 1)
    return std::nullopt;
  std::string out;
  out.reserve(text.size() * 3 / 4);
  uint32_t acc = 0;
  int bits = 0;
  for (char c : text) {
    int v = value[static_cast<unsigned char>(c)];
    if (v < 0)
      return std::nullopt;
    acc = (acc << 6) | static_cast<uint32_t>(v);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out += static_cast<char>((acc >> bits) & 0xff);
    }
  }
  return out;
}

bool valid_utf8(std::string_view bytes) {
  size_t i = 0;
  auto n = bytes.size();
  auto at = [&](size_t k) { return static_cast<unsigned char>(bytes[k]); };
  auto cont = [&](size_t k) { return k < n && (at(k) & 0xc0) == 0x80; };
  while (i < n) {
    auto c = at(i);
    if (c < 0x80) {
      ++i;
    } else if (c >= 0xc2 && c <= 0xdf) {
      if (!cont(i + 1))
        return false;
      i += 2;
    } else if (c >= 0xe0 && c <= 0xef) {
      if (!cont(i + 1) || !cont(i + 2))
        return false;
      // Overlong forms and UTF-16 surrogates are not valid UTF-8.
      if ((c == 0xe0 && at(i + 1) < 0xa0) || (c == 0xed && at(i + 1) > 0x9f))
        return false;
      i += 3;
    } else if (c >= 0xf0 && c <= 0xf4) {
      if (!cont(i + 1) || !cont(i + 2) || !cont(i + 3))
        return false;
      if ((c == 0xf0 && at(i + 1) < 0x90) || (c == 0xf4 && at(i + 1) > 0x8f))
        return false;
      i += 4;
    } else {
      return false;
    }
  }
  return true;
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
