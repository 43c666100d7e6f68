#include "cadre/messages/json_text.hpp"

#include "cadre/messages/utf8.hpp"

namespace cadre {

namespace {

expected<json> refuse(std::string_view text, size_t offset,
                      std::string reason, json_text_error* where) {
  json_text_error err;
  err.offset = offset;
  std::tie(err.line, err.column) = line_column(text, offset);
  err.reason = std::move(reason);
  auto what = err.to_string();
  if (where)
    *where = std::move(err);
  return make_error(errc::invalid_input, std::move(what));
}

} // namespace

std::string json_text_error::to_string() const {
  return "line " + std::to_string(line) + ", column " + std::to_string(column)
         + ": " + reason;
}

std::pair<int, int> line_column(std::string_view text,
                                size_t offset) noexcept {
  int line = 1;
  int column = 1;
  for (size_t i = 0; i < offset && i < text.size(); ++i) {
    if (text[i] == '\n') {
      ++line;
      column = 1;
    } else {
      ++column;
    }
  }
  return {line, column};
}

size_t too_deep_at(std::string_view text, size_t max_depth) noexcept {
  size_t depth = 0;
  bool in_string = false;
  for (size_t i = 0; i < text.size(); ++i) {
    char c = text[i];
    if (in_string) {
      if (c == '\\')
        ++i;
      else if (c == '"')
        in_string = false;
      continue;
    }
    if (c == '"') {
      in_string = true;
    } else if (c == '[' || c == '{') {
      if (++depth > max_depth)
        return i;
    } else if ((c == ']' || c == '}') && depth > 0) {
      --depth;
    }
  }
  return std::string_view::npos;
}

expected<json> parse_json(std::string_view text, json_text_error* where,
                          size_t max_depth) {
  if (auto at = invalid_utf8_at(text); at != std::string_view::npos)
    return refuse(text, at, "not valid UTF-8", where);
  if (auto at = too_deep_at(text, max_depth); at != std::string_view::npos)
    return refuse(text, at,
                  "nested deeper than " + std::to_string(max_depth)
                    + " levels",
                  where);
  try {
    return json::parse(text);
  } catch (const json::parse_error& e) {
    // nlohmann's message: "[json.exception.parse_error.101] parse error at
    // line 1, column 5: syntax error ..."; keep what follows the location.
    std::string what = e.what();
    if (auto c = what.find(": "); c != std::string::npos)
      what = what.substr(c + 2);
    return refuse(text, e.byte > 0 ? e.byte - 1 : 0, std::move(what), where);
  } catch (const json::exception& e) {
    return refuse(text, 0, e.what(), where);
  }
}

json try_parse_json(std::string_view text) {
  auto doc = parse_json(text);
  return doc ? std::move(*doc) : json(json::value_t::discarded);
}

std::string dump_json(const json& doc, int indent) {
  return doc.dump(indent, ' ', false, json::error_handler_t::replace);
}

} // namespace cadre
