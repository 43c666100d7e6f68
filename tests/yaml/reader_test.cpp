// The one YAML reader: core-schema scalars, places, and its bounds.

#include "cadre/yaml/reader.hpp"

#include <string>
#include <tuple>

#include <gtest/gtest.h>

#include "finishes.hpp"

using namespace cadre;

namespace {

std::string nested_aliases(int levels, int fan_out) {
  std::string text = "x0: &a0 [";
  for (int i = 0; i < fan_out; ++i)
    text += (i ? ", " : "") + std::string{"lol"};
  text += "]\n";
  for (int level = 1; level < levels; ++level) {
    text += "x" + std::to_string(level) + ": &a" + std::to_string(level)
            + " [";
    for (int i = 0; i < fan_out; ++i)
      text += (i ? ", *a" : "*a") + std::to_string(level - 1);
    text += "]\n";
  }
  return text;
}

} // namespace

TEST(YamlReader, ReadsCoreSchemaScalarsWithPlaces) {
  auto doc = yaml::read("a: 1\nb: \"1\"\nc: [true, ~, 1.5, 0x1f, yes]\n"
                        "d: 1.10\n");
  ASSERT_TRUE(doc.problems.empty());
  EXPECT_EQ(doc.value,
            (json{{"a", 1},
                  {"b", "1"},
                  {"c", {true, nullptr, 1.5, 31, "yes"}},
                  {"d", 1.1}}));
  EXPECT_EQ(doc.raw_numbers.at("/d"), "1.10");
  EXPECT_EQ(doc.find("/c/2").line, 3);
  EXPECT_EQ(doc.find("/b", true).column, 1);
  EXPECT_EQ(doc.find("/b").column, 4);
  EXPECT_FALSE(doc.empty);
}

TEST(YamlReader, ReportsSyntaxErrorsDuplicatesAndEmptyDocuments) {
  auto bad = yaml::read("a: [1, 2\n");
  ASSERT_EQ(bad.problems.size(), 1u);
  EXPECT_EQ(bad.problems[0].message.rfind("syntax error", 0), 0u);
  auto dup = yaml::read("a: 1\nb: 2\na: 3\n");
  ASSERT_EQ(dup.problems.size(), 1u);
  EXPECT_EQ(dup.problems[0].pointer, "/a");
  EXPECT_EQ(dup.problems[0].at.line, 3);
  EXPECT_TRUE(yaml::read("").empty);
  EXPECT_TRUE(yaml::read("# nothing\n").empty);
  auto two = yaml::read("a: 1\n---\nb: 2\n");
  EXPECT_EQ(two.second_document.line, 3);
}

TEST(Issue12, AliasBombStopsAtTheValueBound) {
  // 9 levels of 9 aliases: 9^9 strings from about 700 bytes.
  auto doc = yaml::read(nested_aliases(9, 9));
  EXPECT_TRUE(doc.value.is_null());
  ASSERT_EQ(doc.problems.size(), 1u);
  EXPECT_NE(doc.problems[0].message.find(
              "more than 250000 values once its aliases are expanded"),
            std::string::npos)
    << doc.problems[0].message;
  EXPECT_GT(doc.problems[0].at.line, 0);
  EXPECT_TRUE(doc.values.empty());
}

TEST(Issue12, AliasBombOfLongStringsStopsAtTheByteBound) {
  std::string text = "s: &s " + std::string(1 << 20, 'x') + "\n";
  text += "l: [*s, *s, *s, *s, *s, *s, *s, *s, *s, *s]\n";
  yaml::read_options opts;
  opts.max_bytes = 4u << 20;
  auto doc = yaml::read(text, opts);
  ASSERT_EQ(doc.problems.size(), 1u);
  EXPECT_NE(doc.problems[0].message.find("bytes of text"), std::string::npos);
  EXPECT_EQ(doc.problems[0].at.line, 1);
}

TEST(Issue12, DeepNestingStopsAtTheDepthBound) {
  yaml::read_options opts;
  opts.max_depth = 100;
  auto doc = yaml::read("a:\n  b: " + std::string(150, '[')
                          + std::string(150, ']') + "\n",
                        opts);
  ASSERT_FALSE(doc.problems.empty());
  EXPECT_EQ(doc.problems[0].message, "nested deeper than 100 levels");
  EXPECT_EQ(doc.problems[0].at.line, 2);
  EXPECT_EQ(doc.problems[0].pointer.rfind("/a/b/0/0/", 0), 0u);
  // Far deeper: yaml-cpp's own guard stops first, an error, not a crash.
  for (int depth : {600, 100'000}) {
    auto deeper = yaml::read(std::string(depth, '[')
                             + std::string(depth, ']'));
    ASSERT_EQ(deeper.problems.size(), 1u);
    EXPECT_EQ(deeper.problems[0].message.rfind("nested too deeply", 0), 0u);
    EXPECT_TRUE(deeper.value.is_null());
  }
}

TEST(Issue12, TextThatIsNotUtf8IsALocatedError) {
  auto doc = yaml::read("ok: café\n"
                        "bad: \"\xc3\x28 {{ 1 }}\"\n"
                        "list: [a, b\xe9]\n"
                        "k\xff: 1\n");
  ASSERT_EQ(doc.problems.size(), 3u);
  EXPECT_EQ(doc.problems[0].pointer, "/bad");
  EXPECT_EQ(doc.problems[0].at.line, 2);
  EXPECT_EQ(doc.problems[0].at.column, 6);
  EXPECT_EQ(doc.problems[0].message, "not valid UTF-8 (at byte 0)");
  EXPECT_EQ(doc.problems[1].pointer, "/list/1");
  EXPECT_EQ(doc.problems[1].message, "not valid UTF-8 (at byte 1)");
  EXPECT_EQ(doc.problems[2].at.line, 4);
  EXPECT_EQ(doc.value["ok"], "café");
  EXPECT_FALSE(doc.value.contains("k\xff"));
}

// Found by fuzz_workflow: yaml-cpp reports empty documents for ever at a
// ',' where a document starts, so reading every document never ended (and
// grew without bound). It is a syntax error with its place.
TEST(YamlReader, ACommaWhereADocumentStartsIsASyntaxError) {
  for (auto [text, line] : {std::pair{",name: w\n", 1},
                            std::pair{"a: 1\n---\n,\n", 3}}) {
    yaml::document doc;
    ASSERT_TRUE(cadre::test::finishes([&doc, text = std::string{text}] {
      doc = yaml::read(text);
    }, std::chrono::seconds{30})) << text;
    ASSERT_EQ(doc.problems.size(), 1u) << text;
    EXPECT_EQ(doc.problems[0].message,
              "syntax error: ',' outside a flow collection ([...] or {...})");
    EXPECT_EQ(doc.problems[0].at.line, line) << text;
    EXPECT_EQ(doc.problems[0].at.column, 1) << text;
  }
  // A ',' inside a plain scalar or a flow collection stays fine.
  auto ok = yaml::read("a: b\n  , c\nd: [1, 2]\n");
  EXPECT_TRUE(ok.problems.empty());
  EXPECT_EQ(ok.value, (json{{"a", "b , c"}, {"d", {1, 2}}}));
}

TEST(Issue12, TheExpansionIsCountedExactlyBeforeAnythingIsBuilt) {
  // 1 (root) + 4 (a: a list of 3) + 1 + 2 * 4 (b: two uses of a) = 14
  // values; keys count as text only.
  const std::string text = "a: &x [1, 2, 3]\nb: [*x, *x]\n";
  yaml::read_options opts;
  opts.max_values = 14;
  auto fits = yaml::read(text, opts);
  EXPECT_TRUE(fits.problems.empty()) << fits.problems[0].message;
  EXPECT_EQ(fits.value["b"][1][2], 3);
  opts.max_values = 13;
  auto over = yaml::read(text, opts);
  ASSERT_EQ(over.problems.size(), 1u);
  EXPECT_NE(over.problems[0].message.find("more than 13 values"),
            std::string::npos)
    << over.problems[0].message;
  // At the node that crossed the bound, with nothing built.
  EXPECT_EQ(over.problems[0].at.line, 2);
  EXPECT_TRUE(over.values.empty());
  // "a", "b", and 3 * "123" (a and its two uses): 11 bytes of text.
  opts = {};
  opts.max_bytes = 11;
  EXPECT_TRUE(yaml::read(text, opts).problems.empty());
  opts.max_bytes = 10;
  auto long_text = yaml::read(text, opts);
  ASSERT_EQ(long_text.problems.size(), 1u);
  EXPECT_NE(long_text.problems[0].message.find("more than 10 bytes"),
            std::string::npos);
}

// Found by fuzz_workflow: an alias inside the node its anchor names
// (`c: &c [*c, *c]`) makes yaml-cpp build a recursive structure, which the
// event count did not see (the anchor was not finished) and the converter
// expanded until its value bound: 8 to 17 s under ASan for one input. A
// recursive structure has no JSON form: a located error, nothing built.
TEST(YamlReader, AnAliasInsideItsOwnAnchorIsALocatedError) {
  for (auto [text, line, column] :
       {std::tuple{"c: &c [*c, *c, *c, *c, *c, *c, *c, *c]\n", 1, 8},
        std::tuple{"a: 1\nc: &c\n  k: [1, {x: *c}]\n", 3, 14}}) {
    auto doc = yaml::read(text);
    ASSERT_EQ(doc.problems.size(), 1u) << text;
    EXPECT_EQ(doc.problems[0].message,
              "an alias of a node inside that node (a structure that "
              "contains itself has no JSON form)")
      << text;
    EXPECT_EQ(doc.problems[0].at.line, line) << text;
    EXPECT_EQ(doc.problems[0].at.column, column) << text;
    EXPECT_TRUE(doc.value.is_null());
    EXPECT_TRUE(doc.values.empty());
  }
  // An alias of a finished node, even inside a sibling, stays fine.
  auto ok = yaml::read("a: &a [1]\nb: [*a, {c: *a}]\n");
  EXPECT_TRUE(ok.problems.empty());
  EXPECT_EQ(ok.value, (json{{"a", {1}}, {"b", {{1}, {{"c", {1}}}}}}));
}
