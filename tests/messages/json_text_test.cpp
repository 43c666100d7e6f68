// JSON text from outside: the one parse with a depth bound and a UTF-8
// check, and the one dump that never aborts.

#include "cadre/messages/json_text.hpp"

#include <string>

#include <gtest/gtest.h>

using namespace cadre;

TEST(Issue12, DeepJsonIsRefusedWithItsPlace) {
  // 100,000 levels in 200 KB: nlohmann's recursive destructor, dump and
  // copies overflowed the stack (SIGSEGV).
  auto text = std::string(100'000, '[') + std::string(100'000, ']');
  json_text_error where;
  auto doc = parse_json(text, &where);
  ASSERT_FALSE(doc);
  EXPECT_EQ(code_of(doc.error()), errc::invalid_input);
  EXPECT_EQ(message_of(doc.error()),
            "line 1, column 513: nested deeper than 512 levels");
  EXPECT_EQ(where.offset, 512u);
  EXPECT_EQ(where.line, 1);
  EXPECT_EQ(where.column, 513);
  EXPECT_TRUE(try_parse_json(text).is_discarded());
  // The bound itself is accepted; brackets in strings do not count.
  EXPECT_TRUE(parse_json(std::string(512, '[') + std::string(512, ']')));
  EXPECT_TRUE(parse_json("\"" + std::string(1000, '[') + "\""));
  EXPECT_TRUE(parse_json("[\"\\\"[\"]"));
}

TEST(JsonText, SyntaxAndUtf8ErrorsHaveLineAndColumn) {
  json_text_error where;
  EXPECT_FALSE(parse_json("{\n  \"a\": tru\n}", &where));
  EXPECT_EQ(where.line, 2);
  EXPECT_NE(where.reason.find("syntax error"), std::string::npos)
    << where.reason;
  auto bad = parse_json("[\"ok\",\n \"caf\xe9\"]", &where);
  ASSERT_FALSE(bad);
  EXPECT_EQ(where.reason, "not valid UTF-8");
  EXPECT_EQ(where.line, 2);
  EXPECT_EQ(where.column, 6);
  EXPECT_EQ(parse_json(" {\"a\": [1, 2]} ").value(),
            (json{{"a", {1, 2}}}));
}

TEST(Issue12, DumpOfBytesThatAreNotUtf8NeverThrows) {
  // nlohmann's dump throws type_error 316 here, which aborted every command
  // that showed such a value from a store.
  json doc = {{"text", std::string{"caf\xe9"}}};
  EXPECT_THROW((void) doc.dump(), json::type_error);
  EXPECT_EQ(dump_json(doc), "{\"text\":\"caf\xef\xbf\xbd\"}");
  EXPECT_EQ(dump_json(doc, 2), "{\n  \"text\": \"caf\xef\xbf\xbd\"\n}");
  json_value value{doc};
  EXPECT_EQ(value.dump(), "{\"text\":\"caf\xef\xbf\xbd\"}");
  EXPECT_EQ(to_string(value), value.dump());
  EXPECT_EQ(dump_json(json{{"a", "é"}}), "{\"a\":\"é\"}");
}
