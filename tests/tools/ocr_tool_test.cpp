// The ocr tool against the real Tesseract, Leptonica and poppler: images
// with known text rendered by ImageMagick (DejaVu fonts) at test time.

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include <gtest/gtest.h>
#include <zlib.h>

#include "cadre/lang/json_schema.hpp"
#include "cadre/tools/tool_registry.hpp"
#include "fs/root_dir.hpp"
#include "jpeg_pdf.hpp"
#include "ocr/ocr_parts.hpp"
#include "temp_dir.hpp"

using namespace cadre;
using namespace cadre::tools;
namespace fs = std::filesystem;

namespace {

const std::vector<std::string> clean_lines{
  "Quick brown foxes jump over lazy dogs",
  "Shipping charges apply to every parcel",
  "Invoice payment is due within thirty days",
};

const std::vector<std::string> pdf_words{
  "alpha", "bravo", "charlie", "delta",  "echo",
  "foxtrot", "golf", "hotel", "india", "juliet",
};

const std::vector<std::string> tiff_lines{
  "Tiff page one harbor", "Tiff page two meadow", "Tiff page three canyon"};

std::string slurp(const std::string& path) {
  std::ifstream f{path, std::ios::binary};
  std::ostringstream s;
  s << f.rdbuf();
  return s.str();
}

std::string shell_quote(const std::string& x) {
  std::string out = "'";
  for (char c : x)
    out += c == '\'' ? std::string{"'\\''"} : std::string{c};
  return out + "'";
}

// Renders `lines` in DejaVu Sans 12 pt at `density` dpi into `out`, then
// applies `extra` ImageMagick operators (degradations).
void render(const std::string& out, const std::vector<std::string>& lines,
            int density = 300, const std::string& extra = "") {
  auto px = [&](double inches) {
    return std::to_string(static_cast<int>(inches * density));
  };
  std::string cmd = "convert -density " + std::to_string(density)
                    + " -units PixelsPerInch -size " + px(5.5) + "x"
                    + px(0.4 + 0.3 * static_cast<double>(lines.size()))
                    + " xc:white -font DejaVu-Sans -pointsize 12 -fill black";
  for (size_t i = 0; i < lines.size(); ++i)
    cmd += " -annotate +" + px(0.25) + "+"
           + px(0.4 + 0.3 * static_cast<double>(i)) + " "
           + shell_quote(lines[i]);
  cmd += " " + extra + " -colorspace Gray " + shell_quote(out)
         + " 2>/dev/null";
  ASSERT_EQ(std::system(cmd.c_str()), 0) << cmd;
}

std::vector<std::string> words_of(const std::string& text) {
  std::vector<std::string> out;
  std::istringstream in{text};
  std::string w;
  while (in >> w)
    out.push_back(w);
  return out;
}

// Share of the expected words that the OCR text has, in order (longest
// common subsequence of words).
double word_accuracy(const std::vector<std::string>& lines,
                     const std::string& text) {
  std::string joined;
  for (auto& l : lines)
    joined += l + "\n";
  auto want = words_of(joined);
  auto got = words_of(text);
  std::vector<std::vector<size_t>> lcs(want.size() + 1,
                                       std::vector<size_t>(got.size() + 1));
  for (size_t i = 1; i <= want.size(); ++i)
    for (size_t j = 1; j <= got.size(); ++j)
      lcs[i][j] = want[i - 1] == got[j - 1]
                    ? lcs[i - 1][j - 1] + 1
                    : std::max(lcs[i - 1][j], lcs[i][j - 1]);
  return static_cast<double>(lcs[want.size()][got.size()])
         / static_cast<double>(want.size());
}

// The documents every test reads, rendered once.
struct fixtures {
  test::temp_dir dir;
  test::temp_dir outside;
  fixtures() {
    render(dir / "clean.png", clean_lines);
    render(dir / "clean.jpg", clean_lines);
    render(dir / "rotated.png", clean_lines, 300,
           "-background white -rotate 3");
    render(dir / "noisy.png", clean_lines, 300,
           "-attenuate 0.6 +noise Gaussian");
    render(dir / "low.png", clean_lines, 150);
    render(dir / "worst.png", clean_lines, 150,
           "-background white -rotate 3 -attenuate 0.6 +noise Gaussian");
    render(dir / "blank.png", {});
    render(dir / "clean.gif", clean_lines);
    std::vector<std::string> jpegs;
    for (size_t i = 0; i < pdf_words.size(); ++i) {
      auto jpg = dir / ("p" + std::to_string(i + 1) + ".jpg");
      render(jpg, {"Page " + std::to_string(i + 1) + " reports "
                   + pdf_words[i] + " results"});
      jpegs.push_back(slurp(jpg));
    }
    EXPECT_TRUE(test::write_jpeg_pdf(dir / "ten.pdf", jpegs));
    std::string tiff_pages;
    for (size_t i = 0; i < tiff_lines.size(); ++i) {
      auto png = dir / ("t" + std::to_string(i + 1) + ".png");
      render(png, {tiff_lines[i]});
      tiff_pages += " " + shell_quote(png);
    }
    auto cmd = "convert" + tiff_pages + " -compress lzw "
               + shell_quote(dir / "three.tif");
    EXPECT_EQ(std::system(cmd.c_str()), 0);
    render(outside / "secret.png", {"Secret words"});
    auto png = slurp(dir / "clean.png");
    std::ofstream{dir / "truncated.png", std::ios::binary}
      << png.substr(0, png.size() / 3);
    std::ofstream{dir / "broken.pdf", std::ios::binary}
      << "%PDF-1.4\n1 0 obj\n<< /Type /Catalog >>\nthis is not a pdf\n";
    auto flipped = png;
    auto idat = flipped.find("IDAT");
    for (size_t i = idat + 20; i < idat + 60; ++i)
      flipped[i] = static_cast<char>(flipped[i] ^ 0x5a);
    std::ofstream{dir / "flipped.png", std::ios::binary} << flipped;
    auto jpg = slurp(dir / "clean.jpg");
    std::ofstream{dir / "truncated.jpg", std::ios::binary}
      << jpg.substr(0, jpg.size() / 2);
    auto tif = slurp(dir / "three.tif");
    // The first page whole, the second cut short.
    std::ofstream{dir / "truncated.tif", std::ios::binary}
      << tif.substr(0, tif.size() / 2);
    std::ofstream{dir / "broken.tif", std::ios::binary}
      << tif.substr(0, 16);
    std::ofstream{dir / "notes.txt"} << "just text\n";
    fs::create_symlink(outside / "secret.png", dir / "link.png");
  }
};

fixtures& files() {
  static fixtures f;
  return f;
}

std::unique_ptr<tool> make_ocr(json settings) {
  tool_registry registry;
  register_builtin_tools(registry);
  auto t = registry.create("ocr", json_value{std::move(settings)});
  if (!t)
    ADD_FAILURE() << describe(t.error());
  return t ? std::move(*t) : nullptr;
}

// One tool for the tests that only read: its engine starts once, as in a
// pool's worker.
tool& shared_ocr() {
  static auto t = make_ocr(json{{"root", files().dir.str()}});
  return *t;
}

expected<json> run(tool& t, json input) {
  tool_context ctx;
  auto out = t.invoke(json_value{std::move(input)}, ctx);
  if (!out)
    return std::move(out.error());
  return out->get();
}

std::string b64(const std::string& bytes) {
  static const char* a
    = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  size_t i = 0;
  for (; i + 2 < bytes.size(); i += 3) {
    uint32_t n = (static_cast<uint8_t>(bytes[i]) << 16)
                 | (static_cast<uint8_t>(bytes[i + 1]) << 8)
                 | static_cast<uint8_t>(bytes[i + 2]);
    for (int k = 3; k >= 0; --k)
      out += a[(n >> (6 * k)) & 63];
  }
  if (i < bytes.size()) {
    uint32_t n = static_cast<uint8_t>(bytes[i]) << 16;
    if (i + 1 < bytes.size())
      n |= static_cast<uint8_t>(bytes[i + 1]) << 8;
    out += a[(n >> 18) & 63];
    out += a[(n >> 12) & 63];
    out += i + 1 < bytes.size() ? a[(n >> 6) & 63] : '=';
    out += '=';
  }
  return out;
}

void expect_error(const expected<json>& out, errc code,
                  const std::string& needle) {
  ASSERT_FALSE(out) << out->dump();
  EXPECT_EQ(code_of(out.error()), code) << describe(out.error());
  EXPECT_NE(message_of(out.error()).find(needle), std::string::npos)
    << describe(out.error()) << " lacks " << needle;
}

} // namespace

TEST(OcrTool, CleanImagesAreReadWithAtLeast98PercentWordAccuracy) {
  for (auto name : {"clean.png", "clean.jpg"}) {
    auto out = run(shared_ocr(), json{{"path", name}});
    ASSERT_TRUE(out) << describe(out.error());
    auto acc = word_accuracy(clean_lines, (*out)["text"]);
    std::printf("[ figures  ] %s: word accuracy %.1f%%, confidence %.1f\n",
                name, acc * 100, (*out)["confidence"].get<double>());
    EXPECT_GE(acc, 0.98) << (*out)["text"];
    EXPECT_EQ((*out)["page_count"], 1);
    ASSERT_EQ((*out)["pages"].size(), 1u);
    auto& page = (*out)["pages"][0];
    EXPECT_EQ(page["page"], 1);
    EXPECT_GT(page["confidence"].get<double>(), 80.0);
    // Words carry boxes inside the page, in reading order.
    auto& words = page["words"];
    ASSERT_GE(words.size(), 18u);
    EXPECT_EQ(words[0]["text"], "Quick");
    for (auto& w : words) {
      auto& b = w["bbox"];
      EXPECT_GE(b["x"].get<int>(), 0);
      EXPECT_GT(b["w"].get<int>(), 0);
      EXPECT_GT(b["h"].get<int>(), 0);
      EXPECT_LE(b["x"].get<int>() + b["w"].get<int>(),
                page["width"].get<int>());
      EXPECT_LE(b["y"].get<int>() + b["h"].get<int>(),
                page["height"].get<int>());
    }
  }
}

TEST(OcrTool, DegradedImagesStayReadable) {
  // Measured, not a target: the floor only catches a broken pipeline (e.g.
  // a lost resolution or a wrong page segmentation mode).
  for (auto name : {"rotated.png", "noisy.png", "low.png", "worst.png"}) {
    auto out = run(shared_ocr(), json{{"path", name}});
    ASSERT_TRUE(out) << describe(out.error());
    auto acc = word_accuracy(clean_lines, (*out)["text"]);
    std::printf("[ figures  ] %s: word accuracy %.1f%%, confidence %.1f\n",
                name, acc * 100, (*out)["confidence"].get<double>());
    EXPECT_GE(acc, 0.75) << name << ": " << (*out)["text"];
  }
}

TEST(OcrTool, TenPagePdfReadsEveryPage) {
  auto out = run(shared_ocr(), json{{"path", "ten.pdf"}});
  ASSERT_TRUE(out) << describe(out.error());
  EXPECT_EQ((*out)["page_count"], 10);
  auto& pages = (*out)["pages"];
  ASSERT_EQ(pages.size(), 10u);
  for (size_t i = 0; i < pages.size(); ++i) {
    auto text = pages[i]["text"].get<std::string>();
    EXPECT_EQ(pages[i]["page"], i + 1);
    EXPECT_NE(text.find("Page " + std::to_string(i + 1) + " reports "
                        + pdf_words[i] + " results"),
              std::string::npos)
      << "page " << i + 1 << ": " << text;
  }
  // The joined text has the pages in order, separated by form feeds.
  auto text = (*out)["text"].get<std::string>();
  EXPECT_EQ(std::count(text.begin(), text.end(), '\f'), 9);
  EXPECT_LT(text.find("alpha"), text.find("juliet"));
}

TEST(OcrTool, PdfPageSelectionAndResolution) {
  auto out = run(shared_ocr(),
                 json{{"path", "ten.pdf"}, {"pages", "2,9-"}, {"dpi", 200}});
  ASSERT_TRUE(out) << describe(out.error());
  auto& pages = (*out)["pages"];
  ASSERT_EQ(pages.size(), 3u);
  EXPECT_EQ(pages[0]["page"], 2);
  EXPECT_EQ(pages[2]["page"], 10);
  EXPECT_NE(pages[2]["text"].get<std::string>().find("juliet"),
            std::string::npos);
  // 5.5 inches at 200 dpi.
  EXPECT_EQ(pages[0]["width"], 1100);
}

TEST(OcrTool, MultiPageTiffReadsEveryPageAndSelects) {
  auto out = run(shared_ocr(), json{{"path", "three.tif"}});
  ASSERT_TRUE(out) << describe(out.error());
  EXPECT_EQ((*out)["page_count"], 3);
  ASSERT_EQ((*out)["pages"].size(), 3u);
  for (size_t i = 0; i < 3; ++i)
    EXPECT_GE(word_accuracy({tiff_lines[i]}, (*out)["pages"][i]["text"]),
              0.99)
      << (*out)["pages"][i]["text"];
  auto some = run(shared_ocr(), json{{"path", "three.tif"}, {"pages", {3}}});
  ASSERT_TRUE(some) << describe(some.error());
  ASSERT_EQ((*some)["pages"].size(), 1u);
  EXPECT_EQ((*some)["pages"][0]["page"], 3);
  EXPECT_GE(word_accuracy({tiff_lines[2]}, (*some)["text"]), 0.99);
}

TEST(OcrTool, SplitsIntoPagesAndJoinsInOrder) {
  auto& t = shared_ocr();
  EXPECT_TRUE(t.splits());
  tool_context ctx;
  json input{{"path", "three.tif"}};
  auto parts = t.split(json_value{input}, ctx);
  ASSERT_TRUE(parts) << describe(parts.error());
  ASSERT_EQ(parts->size(), 3u);
  std::vector<json_value> outputs(3);
  // Run the parts out of order: join follows split's order anyway.
  for (size_t i : {2, 0, 1}) {
    EXPECT_EQ((*parts)[i]->at("pages"), json::array({i + 1}));
    auto out = t.invoke((*parts)[i], ctx);
    ASSERT_TRUE(out) << describe(out.error());
    outputs[i] = *out;
  }
  auto joined = t.join(json_value{input}, outputs);
  ASSERT_TRUE(joined) << describe(joined.error());
  auto& pages = (*joined)->at("pages");
  ASSERT_EQ(pages.size(), 3u);
  for (size_t i = 0; i < 3; ++i)
    EXPECT_EQ(pages[i]["page"], i + 1);
  EXPECT_EQ((*joined)->at("page_count"), 3);
  EXPECT_GE(word_accuracy(tiff_lines, (*joined)->at("text")), 0.99);
  // Single images and single selected pages are not split.
  auto one = t.split(json_value{json{{"path", "clean.png"}}}, ctx);
  ASSERT_TRUE(one);
  EXPECT_TRUE(one->empty());
  auto sel = t.split(json_value{json{{"path", "ten.pdf"}, {"pages", "4"}}},
                     ctx);
  ASSERT_TRUE(sel);
  EXPECT_TRUE(sel->empty());
  auto bad = t.split(json_value{json{{"path", "ten.pdf"}, {"pages", "11"}}},
                     ctx);
  ASSERT_FALSE(bad);
  EXPECT_NE(message_of(bad.error()).find("/pages: page 11 is out of range"),
            std::string::npos)
    << describe(bad.error());
}

TEST(OcrTool, PagesPerPartGroupsPagesAndZeroNeverSplits) {
  auto t = make_ocr(json{{"root", files().dir.str()}, {"pages_per_part", 4}});
  ASSERT_NE(t, nullptr);
  tool_context ctx;
  auto parts = t->split(json_value{json{{"path", "ten.pdf"}}}, ctx);
  ASSERT_TRUE(parts) << describe(parts.error());
  ASSERT_EQ(parts->size(), 3u);
  EXPECT_EQ((*parts)[2]->at("pages"), json::array({9, 10}));
  auto never = make_ocr(json{{"root", files().dir.str()},
                             {"pages_per_part", 0}});
  ASSERT_NE(never, nullptr);
  EXPECT_FALSE(never->splits());
}

// Issue 13 item 5: the parts of a split call refer to its one decoded
// document instead of each carrying (and decoding) the whole input.
TEST(OcrTool, PartsShareOneDecodedDocument) {
  auto& t = shared_ocr();
  tool_context ctx;
  auto pdf = slurp(files().dir / "ten.pdf");
  json input{{"base64", b64(pdf)}, {"dpi", 150}};
  const std::string* shared = nullptr;
  {
    auto parts = t.split(json_value{input}, ctx);
    ASSERT_TRUE(parts) << describe(parts.error());
    ASSERT_EQ(parts->size(), 10u);
    for (auto& part : *parts) {
      // The part names the document; it does not copy the base64 text.
      EXPECT_FALSE(part->contains("base64"));
      EXPECT_LT(part->dump().size(), 200u) << part->dump();
      auto bytes = detail::ocr_part_bytes(*part);
      ASSERT_NE(bytes, nullptr);
      if (shared == nullptr)
        shared = bytes;
      EXPECT_EQ(bytes, shared) << "each part decoded its own copy";
    }
    EXPECT_EQ(*shared, pdf);
    // A part reads its pages from the shared bytes.
    auto out = t.invoke((*parts)[3], ctx);
    ASSERT_TRUE(out) << describe(out.error());
    EXPECT_EQ((*out)->at("pages")[0]["page"], 4);
    EXPECT_NE((*out)->at("text").get<std::string>().find(pdf_words[3]),
              std::string::npos);
    // A copy of a part (as a message carries it) refers to it too.
    json copy = *(*parts)[0];
    EXPECT_EQ(detail::ocr_part_bytes(copy), shared);
  }
  // The parts gone, so is the document: a stale reference names nothing,
  // and a caller cannot pass one off as a part (the schema refuses the key).
  json stale{{"document", "0123456789abcdef0123456789abcdef"},
             {"pages", {1}}};
  EXPECT_EQ(detail::ocr_part_bytes(stale), nullptr);
  expect_error(run(t, stale), errc::invalid_input, "document");
}

TEST(OcrTool, Base64InputReadsLikeAFile) {
  auto png = slurp(files().dir / "clean.png");
  auto out = run(shared_ocr(), json{{"base64", b64(png)}, {"psm", 6}});
  ASSERT_TRUE(out) << describe(out.error());
  EXPECT_GE(word_accuracy(clean_lines, (*out)["text"]), 0.98);
  expect_error(run(shared_ocr(), json{{"base64", "not base64!"}}),
               errc::invalid_input, "/base64: is not valid base64");
}

TEST(OcrTool, EmptyPageGivesEmptyTextNotAnError) {
  auto out = run(shared_ocr(), json{{"path", "blank.png"}});
  ASSERT_TRUE(out) << describe(out.error());
  EXPECT_EQ(words_of((*out)["text"]).size(), 0u);
  EXPECT_TRUE((*out)["pages"][0]["words"].empty());
  EXPECT_EQ((*out)["confidence"], 0.0);
}

TEST(OcrTool, PathsOutsideTheRootAreRefused) {
  auto& t = shared_ocr();
  auto outside = files().outside / "secret.png";
  auto rel = fs::relative(outside, files().dir.path()).string();
  for (const auto& p : {rel, outside, std::string{"link.png"},
                        std::string{"../"} + fs::path{outside}.parent_path()
                                               .filename()
                                               .string()
                          + "/secret.png"})
    expect_error(run(t, json{{"path", p}}), errc::invalid_input,
                 "/path: '" + p + "' escapes the root directory");
  expect_error(run(t, json{{"path", "missing.png"}}), errc::not_found,
               "/path: 'missing.png' not found");
  expect_error(run(t, json{{"path", "."}}), errc::invalid_input,
               "/path: '.' is a directory");
}

// Issue 13 item 5: the check and the open are one mechanism with the file
// tool's; a symlink swapped in after the check is refused, not followed.
TEST(OcrTool, SymlinkSwappedInAfterTheCheckIsRefused) {
  test::temp_dir root;
  fs::copy_file(files().dir / "clean.png", root / "page.png");
  detail::root_dir dir{"ocr", fs::canonical(root.path())};
  auto where = dir.resolve(std::string{"page.png"});
  ASSERT_TRUE(where) << describe(where.error());
  // The swap, between the check and the open.
  fs::remove(root / "page.png");
  fs::create_symlink(files().outside / "secret.png", root / "page.png");
  auto file = dir.open_file(*where);
  ASSERT_FALSE(file);
  EXPECT_EQ(code_of(file.error()), errc::invalid_input);
  EXPECT_NE(message_of(file.error())
              .find("tool ocr: /path: 'page.png' escapes the root directory "
                    "(became a symlink during the call)"),
            std::string::npos)
    << describe(file.error());
  // And through the tool: the link pointing outside is refused.
  auto t = make_ocr(json{{"root", root.str()}});
  ASSERT_NE(t, nullptr);
  expect_error(run(*t, json{{"path", "page.png"}}), errc::invalid_input,
               "/path: 'page.png' escapes the root directory");
}

TEST(OcrTool, CorruptAndUnsupportedFilesAreClearErrors) {
  auto& t = shared_ocr();
  // The libraries' complaints do not reach stderr.
  testing::internal::CaptureStderr();
  expect_error(run(t, json{{"path", "truncated.png"}}), errc::invalid_input,
               "/path: cannot read the PNG document: truncated");
  expect_error(run(t, json{{"path", "flipped.png"}}), errc::invalid_input,
               "/path: cannot read the PNG document: corrupt (bad checksum "
               "in the IDAT chunk)");
  expect_error(run(t, json{{"path", "truncated.jpg"}}), errc::invalid_input,
               "/path: cannot read the JPEG document: truncated");
  // A TIFF cut short keeps the pages before the cut.
  auto cut = run(t, json{{"path", "truncated.tif"}});
  ASSERT_TRUE(cut) << describe(cut.error());
  EXPECT_LT((*cut)["page_count"].get<int>(), 3);
  expect_error(run(t, json{{"path", "broken.pdf"}}), errc::invalid_input,
               "/path: cannot read the PDF document: corrupt");
  expect_error(run(t, json{{"path", "broken.tif"}}), errc::invalid_input,
               "/path: cannot read the TIFF document: corrupt");
  expect_error(run(t, json{{"path", "clean.gif"}}), errc::invalid_input,
               "/path: unsupported format (expected PNG, JPEG, TIFF or PDF)");
  expect_error(run(t, json{{"path", "notes.txt"}}), errc::invalid_input,
               "unsupported format");
  expect_error(run(t, json{{"base64", ""}}), errc::invalid_input,
               "/base64: is empty");
  EXPECT_EQ(testing::internal::GetCapturedStderr(), "");
  // The engine still works afterwards.
  auto out = run(t, json{{"path", "clean.png"}});
  ASSERT_TRUE(out) << describe(out.error());
}

TEST(OcrTool, MissingLanguageNamesTheLanguageAndTessdataDir) {
  auto& t = shared_ocr();
  expect_error(run(t, json{{"path", "clean.png"}, {"languages", "klingon"}}),
               errc::invalid_input,
               "/languages: language \"klingon\" is not installed: no "
               "klingon.traineddata in /");
  expect_error(run(t, json{{"path", "clean.png"},
                           {"languages", {"eng", "xx"}}}),
               errc::invalid_input, "/languages/1: language \"xx\"");
  expect_error(run(t, json{{"path", "clean.png"},
                           {"languages", "../../etc/passwd"}}),
               errc::invalid_input, "is not a language code");
  auto made = [](json settings) {
    tool_registry registry;
    register_builtin_tools(registry);
    return registry.create("ocr", json_value{std::move(settings)});
  };
  auto bad = made(json{{"languages", {"eng", "klingon"}}});
  ASSERT_FALSE(bad);
  EXPECT_EQ(code_of(bad.error()), errc::invalid_config);
  EXPECT_NE(message_of(bad.error())
              .find("tools.ocr.languages: language \"klingon\""),
            std::string::npos)
    << describe(bad.error());
  auto dir = made(json{{"tessdata", files().dir.str()}});
  ASSERT_FALSE(dir);
  EXPECT_NE(message_of(dir.error()).find("no eng.traineddata in "
                                         + files().dir.str()),
            std::string::npos)
    << describe(dir.error());
  auto key = made(json{{"dpi", 20}});
  ASSERT_FALSE(key);
  EXPECT_NE(message_of(key.error()).find("tools.ocr.dpi: must be an integer "
                                         "in [50, 1200]"),
            std::string::npos);
  auto unknown = made(json{{"lang", "eng"}});
  ASSERT_FALSE(unknown);
  EXPECT_NE(message_of(unknown.error()).find("tools.ocr.lang: unknown"),
            std::string::npos);
}

TEST(OcrTool, BadInputsNameTheirPointer) {
  auto& t = shared_ocr();
  struct bad_case {
    json input;
    std::string needle;
  };
  std::vector<bad_case> cases{
    {json::array(), "/: Value type not permitted"},
    {json::object(), "Missing required property 'path'"},
    {json{{"path", "clean.png"}, {"base64", "AAAA"}}, "exactly one"},
    {json{{"path", 7}}, "/path: Value type not permitted"},
    {json{{"path", "clean.png"}, {"colour", true}}, "'colour'"},
    {json{{"path", "clean.png"}, {"psm", 0}}, "/psm: Expected number"},
    {json{{"path", "clean.png"}, {"psm", 2}}, "/psm: "},
    {json{{"path", "clean.png"}, {"psm", 12}}, "/psm: mode 12 needs osd"},
    {json{{"path", "clean.png"}, {"dpi", 10}}, "/dpi: Expected number"},
    {json{{"path", "clean.png"}, {"languages", 3}},
     "/languages: Value type not permitted"},
    {json{{"path", "clean.png"}, {"languages", {1}}},
     "/languages/0: Value type not permitted"},
    {json{{"path", "clean.png"}, {"pages", "2"}},
     "/pages: page 2 is out of range (the document has 1 page)"},
    {json{{"path", "ten.pdf"}, {"pages", "3-1"}}, "/pages: page ranges"},
    {json{{"path", "ten.pdf"}, {"pages", "x"}}, "/pages: must look like"},
    {json{{"path", "ten.pdf"}, {"pages", {0}}},
     "/pages/0: Expected number greater than or equal to 1"},
    {json{{"path", "ten.pdf"}, {"pages", true}},
     "/pages: Value type not permitted"},
  };
  for (auto& c : cases)
    expect_error(run(t, c.input), errc::invalid_input, c.needle);
}

TEST(OcrTool, LimitsNameTheirSetting) {
  auto small = make_ocr(json{{"root", files().dir.str()},
                             {"max_input_bytes", 1000},
                             {"max_pages", 4}});
  ASSERT_NE(small, nullptr);
  expect_error(run(*small, json{{"path", "clean.png"}}), errc::invalid_input,
               "(tools.ocr.max_input_bytes)");
  auto pages = make_ocr(json{{"root", files().dir.str()}, {"max_pages", 4}});
  ASSERT_NE(pages, nullptr);
  expect_error(run(*pages, json{{"path", "ten.pdf"}}), errc::invalid_input,
               "10 pages selected; at most 4 per call (tools.ocr.max_pages)");
}

TEST(OcrTool, CancelAndDeadlineStopBetweenPages) {
  auto& t = shared_ocr();
  tool_context cancelled;
  cancelled.cancel_flag->store(true);
  auto out = t.invoke(json_value{json{{"path", "three.tif"}}}, cancelled);
  ASSERT_FALSE(out);
  EXPECT_EQ(code_of(out.error()), errc::cancelled);
  tool_context late;
  late.deadline_us = 1; // long past
  out = t.invoke(json_value{json{{"path", "three.tif"}}}, late);
  ASSERT_FALSE(out);
  EXPECT_EQ(code_of(out.error()), errc::timeout);
}

// Issue 13 item 7: the schema an agent is offered and the tool's check
// are one statement; psm 2 was allowed by the one and refused by the other.
TEST(OcrTool, PublishedInputSchemaAndTheToolAgreeOnPsm) {
  auto& t = shared_ocr();
  auto schema = json_schema::compile(t.describe().input_schema);
  ASSERT_TRUE(schema) << describe(schema.error());
  for (int psm : {0, 2, 3, 13, 14}) {
    json in{{"path", "clean.png"}, {"psm", psm}};
    auto out = run(t, in);
    EXPECT_EQ(schema->accepts(in), static_cast<bool>(out))
      << "psm " << psm << ": "
      << (out ? std::string{"accepted"} : describe(out.error()));
  }
}

TEST(OcrTool, DescribesItselfAsBlockingWithSchemas) {
  auto& t = shared_ocr();
  EXPECT_EQ(t.name(), "ocr");
  EXPECT_TRUE(t.blocking());
  auto d = t.describe();
  EXPECT_TRUE(d.input_schema["properties"].contains("path"));
  EXPECT_TRUE(d.input_schema["properties"].contains("base64"));
  EXPECT_TRUE(d.output_schema["properties"].contains("pages"));
  EXPECT_NE(d.description.find("PDF"), std::string::npos);
}

TEST(OcrTool, InvoiceFixtureReadsEveryField) {
  auto t = make_ocr(json{{"root", std::string{CADRE_SOURCE_DIR}
                                    + "/examples/documents"}});
  ASSERT_NE(t, nullptr);
  for (auto name : {"invoice.png", "invoice.pdf"}) {
    auto out = run(*t, json{{"path", name}});
    ASSERT_TRUE(out) << describe(out.error());
    auto text = (*out)["text"].get<std::string>();
    for (auto field :
         {"ACME Office Supplies Ltd.", "INV-2024-0042", "Date: 2024-03-15",
          "Northwind Traders", "A4 copy paper (box) 4 24.50 98.00",
          "Ballpoint pens (pack of 50) 2 12.75 25.50",
          "Stapler, heavy duty 1 18.90 18.90", "Subtotal 142.40",
          "VAT 20% 28.48", "Total due GBP 170.88"})
      EXPECT_NE(text.find(field), std::string::npos)
        << name << " lacks \"" << field << "\" in:\n" << text;
  }
}

namespace {

std::string png_chunk(const std::string& type, const std::string& data) {
  std::string out;
  auto be32 = [&](uint32_t x) {
    for (int s = 24; s >= 0; s -= 8)
      out += static_cast<char>((x >> s) & 0xff);
  };
  be32(static_cast<uint32_t>(data.size()));
  auto body = type + data;
  out += body;
  be32(static_cast<uint32_t>(
    crc32(0, reinterpret_cast<const Bytef*>(body.data()),
          static_cast<uInt>(body.size()))));
  return out;
}

/// A valid 1-bit PNG of `side` x `side` white pixels: a few kilobytes that
/// decode to side * side pixels.
std::string bomb_png(uint32_t side) {
  std::string ihdr;
  for (auto x : {side, side})
    for (int s = 24; s >= 0; s -= 8)
      ihdr += static_cast<char>((x >> s) & 0xff);
  ihdr += std::string{"\x01\x00\x00\x00\x00", 5}; // 1 bit, gray
  std::string row(1 + (side + 7) / 8, '\xff');
  row[0] = '\0'; // filter: none
  z_stream z{};
  deflateInit(&z, 9);
  std::string idat;
  std::vector<unsigned char> buf(1 << 16);
  for (uint32_t y = 0; y < side; ++y) {
    z.next_in = reinterpret_cast<Bytef*>(row.data());
    z.avail_in = static_cast<uInt>(row.size());
    int flush = y + 1 == side ? Z_FINISH : Z_NO_FLUSH;
    do {
      z.next_out = buf.data();
      z.avail_out = static_cast<uInt>(buf.size());
      deflate(&z, flush);
      idat.append(reinterpret_cast<char*>(buf.data()),
                  buf.size() - z.avail_out);
    } while (z.avail_out == 0);
  }
  deflateEnd(&z);
  return std::string{"\x89PNG\r\n\x1a\n", 8} + png_chunk("IHDR", ihdr)
         + png_chunk("IDAT", idat) + png_chunk("IEND", "");
}

} // namespace

// Issue 12: a 1.2 MB PNG reached 2.7 GB before it was refused as too large.
// The size is read from the header, and the image is refused undecoded,
// with its dimensions.
TEST(OcrTool, HugeImageIsRefusedFromItsHeaderWithItsSize) {
  test::temp_dir dir;
  std::ofstream{dir / "bomb.png", std::ios::binary} << bomb_png(13000);
  auto t = make_ocr(json{{"root", dir.str()}});
  ASSERT_NE(t, nullptr);
  auto out = run(*t, json{{"path", "bomb.png"}});
  ASSERT_FALSE(out);
  EXPECT_EQ(code_of(out.error()), errc::invalid_input);
  EXPECT_NE(describe(out.error()).find("13000 x 13000 pixels"),
            std::string::npos)
    << describe(out.error());
}
