#include "cadre/tools/net/sse_parser.hpp"

namespace cadre::tools::net {

bool sse_parser::feed(std::string_view piece) {
  if (stopped_)
    return false;
  buf_.append(piece.data(), piece.size());
  size_t start = 0;
  for (;;) {
    auto end = buf_.find_first_of("\r\n", start);
    if (end == std::string::npos)
      break;
    // A '\r' at the very end may be the first half of "\r\n".
    if (buf_[end] == '\r' && end + 1 == buf_.size())
      break;
    std::string_view text{buf_.data() + start, end - start};
    size_t next = end + 1;
    if (buf_[end] == '\r' && buf_[end + 1] == '\n')
      ++next;
    if (!line(text)) {
      stopped_ = true;
      buf_.clear();
      return false;
    }
    start = next;
  }
  buf_.erase(0, start);
  return true;
}

bool sse_parser::finish() {
  if (stopped_)
    return false;
  if (!buf_.empty()) {
    auto rest = std::move(buf_);
    buf_.clear();
    while (!rest.empty() && (rest.back() == '\r' || rest.back() == '\n'))
      rest.pop_back();
    if (!line(rest))
      return false;
  }
  return dispatch();
}

bool sse_parser::line(std::string_view text) {
  if (text.empty())
    return dispatch();
  if (text.front() == ':')
    return true; // comment
  auto colon = text.find(':');
  std::string_view field = text.substr(0, colon);
  std::string_view value;
  if (colon != std::string_view::npos) {
    value = text.substr(colon + 1);
    if (!value.empty() && value.front() == ' ')
      value.remove_prefix(1);
  }
  if (field == "data") {
    if (has_data_)
      data_ += '\n';
    data_.append(value.data(), value.size());
    has_data_ = true;
  } else if (field == "event") {
    event_.assign(value.data(), value.size());
  } else if (field == "id") {
    // The standard ignores an id with a NUL in it.
    if (value.find('\0') == std::string_view::npos) {
      last_id_.assign(value.data(), value.size());
      has_id_ = true;
    }
  }
  return true;
}

bool sse_parser::dispatch() {
  if (!has_data_) {
    event_.clear();
    has_id_ = false;
    return true;
  }
  auto event = std::move(event_);
  auto data = std::move(data_);
  event_.clear();
  data_.clear();
  has_data_ = false;
  auto go_on = on_event_(event, data);
  has_id_ = false;
  return go_on;
}

} // namespace cadre::tools::net
