// The inline answer of `cadre run` on a terminal (cli/inline_prompt.hpp),
// on string streams: the form for an object schema of plain properties, a
// line of JSON otherwise, the schema's refusal asked again, the input's end.

#include <sstream>
#include <string>

#include <gtest/gtest.h>

#include "cli/inline_prompt.hpp"

using namespace cadre;
using namespace cadre::runtime::cli;

namespace {

const json decision_schema = json::parse(R"({
  "type": "object", "required": ["decision"], "additionalProperties": false,
  "properties": {
    "decision": {"type": "string", "enum": ["clear", "skip", "report"]},
    "comment": {"type": "string"},
    "urgent": {"type": "boolean"},
    "retries": {"type": "integer", "maximum": 3}}})");

std::optional<json> ask(const json& schema, const std::string& typed,
                        std::string* shown = nullptr) {
  std::istringstream in{typed};
  std::ostringstream out;
  open_question q{"decide[1]", json{{"question", "Clear it?"}, {"dag", "etl"}},
                  schema};
  auto a = ask_inline(q, in, out);
  if (shown)
    *shown = out.str();
  return a;
}

} // namespace

TEST(InlinePromptAsk, AnObjectSchemaIsAskedFieldByField) {
  std::string shown;
  // decision by number, no comment, retries 2, urgent yes.
  auto a = ask(decision_schema, "1\n\n2\ny\n", &shown);
  ASSERT_TRUE(a) << shown;
  EXPECT_EQ(*a, (json{{"decision", "clear"}, {"urgent", true}, {"retries", 2}}));
  EXPECT_NE(shown.find("? decide[1] waits for your answer"), std::string::npos);
  EXPECT_NE(shown.find("Clear it?"), std::string::npos) << shown;
  EXPECT_NE(shown.find("dag: etl"), std::string::npos) << shown;
  EXPECT_NE(shown.find("1) clear  2) skip  3) report"), std::string::npos)
    << shown;
  // The required field first, then the others by name.
  EXPECT_LT(shown.find("choose 1-3: "), shown.find("comment (text"));
  EXPECT_LT(shown.find("comment (text"), shown.find("retries (a number"));
  EXPECT_LT(shown.find("retries (a number"), shown.find("urgent [y/n"));
  // By word, with a comment, the optional rest left out.
  auto b = ask(decision_schema, "skip\ndatabase down\n\n\n");
  ASSERT_TRUE(b);
  EXPECT_EQ(*b, (json{{"decision", "skip"}, {"comment", "database down"}}));
}

TEST(InlinePromptAsk, AWrongFieldIsAskedAgainAndTheSchemaDecides) {
  std::string shown;
  // "retry" is no choice; 1.5 no whole number; "maybe" no y/n; 7 is read
  // but the schema refuses it (maximum 3): the whole answer is asked again.
  auto a = ask(decision_schema,
               "retry\n3\n\n1.5\n7\nmaybe\nn\n2\n\n\n\n", &shown);
  ASSERT_TRUE(a) << shown;
  EXPECT_EQ(*a, (json{{"decision", "skip"}}));
  EXPECT_NE(shown.find("'retry' is not one of the choices"), std::string::npos)
    << shown;
  EXPECT_NE(shown.find("answer y or n"), std::string::npos) << shown;
  EXPECT_NE(shown.find("'1.5' is not a whole number"), std::string::npos)
    << shown;
  EXPECT_NE(shown.find("does not match its schema"), std::string::npos)
    << shown;
  EXPECT_NE(shown.find("/retries"), std::string::npos) << shown;
}

TEST(InlinePromptAsk, OtherSchemasTakeALineOfJson) {
  std::string shown;
  json list{{"type", "array"}, {"minItems", 1}};
  auto a = ask(list, "\n[]\n{oops\n[1, 2]\n", &shown);
  ASSERT_TRUE(a) << shown;
  EXPECT_EQ(*a, json({1, 2}));
  EXPECT_NE(shown.find("the answer must match: "), std::string::npos);
  EXPECT_NE(shown.find("does not match its schema"), std::string::npos)
    << shown;
  // No schema: a bare word is text.
  auto b = ask(json{}, "fine\n");
  ASSERT_TRUE(b);
  EXPECT_EQ(*b, json("fine"));
}

TEST(InlinePromptAsk, TheInputsEndLeavesTheQuestionUnanswered) {
  EXPECT_FALSE(ask(decision_schema, ""));
  EXPECT_FALSE(ask(decision_schema, "1\n"));
  EXPECT_FALSE(ask(json{}, "\n"));
}

TEST(InlinePromptAsk, OpenQuestionsAreTheViewsWaitingList) {
  json view{{"waiting",
             {{{"task", "decide[0]"}, {"prompt", "a?"},
               {"answer_schema", {{"type", "string"}}}},
              {{"task", "note"}, {"prompt", "b?"}}}}};
  auto qs = open_questions(view);
  ASSERT_EQ(qs.size(), 2u);
  EXPECT_EQ(qs[0].task, "decide[0]");
  EXPECT_EQ(qs[0].answer_schema, (json{{"type", "string"}}));
  EXPECT_EQ(qs[1].task, "note");
  EXPECT_TRUE(qs[1].answer_schema.is_null());
  EXPECT_TRUE(open_questions(json::object()).empty());
}
