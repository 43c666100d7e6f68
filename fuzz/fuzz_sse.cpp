// The framing of providers' streams: server-sent events and NDJSON lines,
// fed in pieces of any size. The events must not depend on where the
// stream was cut. The first byte is the number of cuts (up to 8), each
// next byte the length of a piece, the rest the stream.
#include <cstddef>
#include <algorithm>
#include <cstdint>
#include <string>
#include <vector>

#include "cadre/tools/net/sse_parser.hpp"
#include "llm/llm_support.hpp"

namespace {

using cuts = std::vector<size_t>;

template <class Parser>
void feed(Parser& p, const std::string& stream, const cuts& at) {
  size_t pos = 0;
  for (auto n : at) {
    n = std::min(n, stream.size() - pos);
    p.feed(std::string_view{stream}.substr(pos, n));
    pos += n;
  }
  p.feed(std::string_view{stream}.substr(pos));
  p.finish();
}

std::vector<std::string> sse(const std::string& stream, const cuts& at) {
  std::vector<std::string> out;
  cadre::tools::net::sse_parser p{[&](const std::string& ev,
                                      const std::string& data) {
    out.push_back(ev + '\0' + data);
    return true;
  }};
  feed(p, stream, at);
  out.push_back(p.last_event_id());
  return out;
}

std::vector<std::string> lines(const std::string& stream, const cuts& at) {
  std::vector<std::string> out;
  cadre::tools::llm::detail::line_splitter p{[&](std::string_view line) {
    out.emplace_back(line);
    return true;
  }};
  feed(p, stream, at);
  return out;
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0)
    return 0;
  size_t n = std::min<size_t>(data[0] % 9, size - 1);
  cuts at(data + 1, data + 1 + n);
  std::string stream(reinterpret_cast<const char*>(data) + 1 + n,
                     size - 1 - n);
  if (sse(stream, at) != sse(stream, {}))
    __builtin_trap();
  if (lines(stream, at) != lines(stream, {}))
    __builtin_trap();
  return 0;
}
