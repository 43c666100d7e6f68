// Server-sent event framing: events, data lines, comments and ids, whatever
// the pieces the stream arrives in.

#include <string>
#include <tuple>
#include <utility>
#include <vector>

#include <gtest/gtest.h>

#include "cadre/tools/net/sse_parser.hpp"

using cadre::tools::net::sse_parser;

namespace {

TEST(SseParser, EventsSurviveAnySplit) {
  const std::string stream = ": comment\r\n"
                             "event: message_start\r\n"
                             "data: {\"a\":1}\r\n"
                             "\r\n"
                             "data: line1\n"
                             "data: line2\n"
                             "id: 7\n"
                             "\n"
                             "data:no-space\r"
                             "\r"
                             "data: [DONE]";
  const std::vector<std::pair<std::string, std::string>> expected = {
    {"message_start", "{\"a\":1}"},
    {"", "line1\nline2"},
    {"", "no-space"},
    {"", "[DONE]"}};
  for (size_t size = 1; size <= stream.size(); ++size) {
    SCOPED_TRACE(size);
    std::vector<std::pair<std::string, std::string>> got;
    sse_parser p{[&](const std::string& e, const std::string& d) {
      got.emplace_back(e, d);
      return true;
    }};
    for (size_t i = 0; i < stream.size(); i += size)
      ASSERT_TRUE(p.feed(std::string_view{stream}.substr(i, size)));
    ASSERT_TRUE(p.finish());
    EXPECT_EQ(got, expected);
  }
}

TEST(SseParser, LastEventIdPersistsAcrossEventsWithoutOne) {
  const std::string stream = "id: 1\nevent: a\ndata: x\n\n"
                             "event: token\ndata: t\n\n"
                             "data: y\nid: 2\n\n"
                             "id: 3\n\n" // no data: not dispatched
                             "data: z\n\n";
  // (event, data, last_event_id, has_id)
  using row = std::tuple<std::string, std::string, std::string, bool>;
  std::vector<row> got;
  sse_parser p{[&](const std::string& e, const std::string& d) {
    got.emplace_back(e, d, p.last_event_id(), p.has_id());
    return true;
  }};
  ASSERT_TRUE(p.feed(stream));
  ASSERT_TRUE(p.finish());
  const std::vector<row> expected = {{"a", "x", "1", true},
                                     {"token", "t", "1", false},
                                     {"", "y", "2", true},
                                     {"", "z", "3", false}};
  EXPECT_EQ(got, expected);
  EXPECT_EQ(p.last_event_id(), "3");
}

TEST(SseParser, HandlerStopsTheStream) {
  int calls = 0;
  sse_parser p{[&](const std::string&, const std::string&) {
    ++calls;
    return false;
  }};
  EXPECT_FALSE(p.feed("data: 1\n\ndata: 2\n\n"));
  EXPECT_FALSE(p.feed("data: 3\n\n"));
  EXPECT_FALSE(p.finish());
  EXPECT_EQ(calls, 1);
}

} // namespace
