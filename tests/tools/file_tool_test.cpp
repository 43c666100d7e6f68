#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

#include <gtest/gtest.h>

#include "cadre/tools/tool_registry.hpp"
#include "temp_dir.hpp"
#include "tool_schema_check.hpp"

using namespace cadre;
using namespace cadre::tools;

namespace {

namespace fs = std::filesystem;

/// A temp dir with a root inside it, so "outside the root" is in the
/// temp dir too.
struct sandbox {
  test::temp_dir dir;
  fs::path root = dir.path() / "root";
  fs::path outside = dir.path() / "outside";

  sandbox() {
    fs::create_directory(root);
    fs::create_directory(outside);
    put(outside / "secret.txt", "top secret");
  }

  static void put(const fs::path& p, const std::string& text) {
    fs::create_directories(p.parent_path());
    std::ofstream out{p, std::ios::binary};
    out << text;
  }

  static std::string get(const fs::path& p) {
    std::ifstream in{p, std::ios::binary};
    std::stringstream text;
    text << in.rdbuf();
    return text.str();
  }
};

std::unique_ptr<tool> make_file(json settings) {
  tool_registry registry;
  register_builtin_tools(registry);
  auto t = registry.create("file", json_value{std::move(settings)});
  if (!t)
    ADD_FAILURE() << describe(t.error());
  return t ? std::move(*t) : nullptr;
}

std::unique_ptr<tool> make_file(const sandbox& box, json extra = {}) {
  json settings = {{"root", box.root.string()}};
  if (extra.is_object())
    settings.update(extra);
  return make_file(settings);
}

json run(tool& t, json input) {
  tool_context ctx;
  auto out = t.invoke(json_value{std::move(input)}, ctx);
  if (!out) {
    ADD_FAILURE() << describe(out.error());
    return nullptr;
  }
  return out->get();
}

caf::error fail(tool& t, json input) {
  tool_context ctx;
  auto out = t.invoke(json_value{std::move(input)}, ctx);
  if (out) {
    ADD_FAILURE() << "expected an error, got " << out->dump();
    return {};
  }
  return std::move(out.error());
}

std::vector<std::string> names_of(const json& listing) {
  std::vector<std::string> out;
  for (const auto& e : listing.at("entries"))
    out.push_back(e.at("name").get<std::string>());
  return out;
}

} // namespace

TEST(FileTool, ReadsTextAndBase64) {
  sandbox box;
  box.put(box.root / "notes" / "a.txt", "h\xC3\xA9llo\n");
  box.put(box.root / "bin.dat", std::string{"\x00\xFF\x10\x80", 4});
  auto t = make_file(box);
  ASSERT_NE(t, nullptr);
  auto text = run(*t, {{"op", "read"}, {"path", "notes/a.txt"}});
  EXPECT_EQ(text.at("content"), "h\xC3\xA9llo\n");
  EXPECT_EQ(text.at("size"), 7);
  EXPECT_EQ(text.at("path"), "notes/a.txt");
  EXPECT_EQ(text.at("encoding"), "utf8");
  auto bin = run(*t, {{"op", "read"}, {"path", "bin.dat"},
                      {"encoding", "base64"}});
  EXPECT_EQ(bin.at("content"), "AP8QgA==");
  auto err = fail(*t, {{"op", "read"}, {"path", "bin.dat"}});
  EXPECT_EQ(code_of(err), errc::invalid_input);
  EXPECT_NE(message_of(err).find("not valid UTF-8"), std::string::npos)
    << message_of(err);
  EXPECT_NE(message_of(err).find("base64"), std::string::npos);
}

TEST(FileTool, WritesAtomicallyInEachEncoding) {
  sandbox box;
  auto t = make_file(box);
  ASSERT_NE(t, nullptr);
  auto out = run(*t, {{"op", "write"}, {"path", "out.txt"},
                      {"content", "first"}});
  EXPECT_EQ(out, (json{{"path", "out.txt"}, {"bytes_written", 5}}));
  EXPECT_EQ(box.get(box.root / "out.txt"), "first");
  run(*t, {{"op", "write"}, {"path", "out.txt"}, {"content", "second"}});
  EXPECT_EQ(box.get(box.root / "out.txt"), "second");
  run(*t, {{"op", "write"}, {"path", "raw.bin"}, {"encoding", "base64"},
           {"content", "AP8QgA=="}});
  EXPECT_EQ(box.get(box.root / "raw.bin"), std::string("\x00\xFF\x10\x80", 4));
  json doc = {{"a", 1}, {"b", {true, nullptr}}};
  run(*t, {{"op", "write"}, {"path", "doc.json"}, {"encoding", "json"},
           {"content", doc}});
  EXPECT_EQ(json::parse(box.get(box.root / "doc.json")), doc);
  // No temporary files are left beside the targets.
  size_t files = 0;
  for (const auto& e : fs::directory_iterator{box.root}) {
    EXPECT_NE(e.path().filename().string().front(), '.') << e.path();
    ++files;
  }
  EXPECT_EQ(files, 3u);
}

TEST(FileTool, WriteCreatesParentsOnlyWhenAsked) {
  sandbox box;
  auto t = make_file(box);
  ASSERT_NE(t, nullptr);
  auto err = fail(*t, {{"op", "write"}, {"path", "a/b/c.txt"},
                       {"content", "x"}});
  EXPECT_EQ(code_of(err), errc::not_found);
  EXPECT_NE(message_of(err).find("'a/b/c.txt'"), std::string::npos)
    << message_of(err);
  EXPECT_NE(message_of(err).find("create_parents"), std::string::npos);
  run(*t, {{"op", "write"}, {"path", "a/b/c.txt"}, {"content", "x"},
           {"create_parents", true}});
  EXPECT_EQ(box.get(box.root / "a" / "b" / "c.txt"), "x");
  err = fail(*t, {{"op", "write"}, {"path", "a/b/c.txt"}, {"content", "y"},
                  {"overwrite", false}});
  EXPECT_EQ(code_of(err), errc::conflict);
  EXPECT_EQ(box.get(box.root / "a" / "b" / "c.txt"), "x");
  err = fail(*t, {{"op", "write"}, {"path", "a/b"}, {"content", "y"}});
  EXPECT_NE(message_of(err).find("is a directory"), std::string::npos)
    << message_of(err);
}

TEST(FileTool, ListsEntriesWithTypeSizeAndTime) {
  sandbox box;
  box.put(box.root / "b.json", "{}");
  box.put(box.root / "a.txt", "hello");
  box.put(box.root / "sub" / "c.json", "[1]");
  box.put(box.root / "sub" / "deeper" / "d.json", "2");
  fs::create_symlink("a.txt", box.root / "link");
  auto t = make_file(box);
  ASSERT_NE(t, nullptr);
  auto top = run(*t, {{"op", "list"}});
  EXPECT_EQ(top.at("path"), ".");
  EXPECT_EQ(names_of(top),
            (std::vector<std::string>{"a.txt", "b.json", "link", "sub"}));
  const auto& a = top.at("entries")[0];
  EXPECT_EQ(a.at("type"), "file");
  EXPECT_EQ(a.at("size"), 5);
  EXPECT_EQ(a.at("mtime").get<std::string>().size(), 20u) << a;
  EXPECT_EQ(top.at("entries")[2].at("type"), "symlink");
  EXPECT_EQ(top.at("entries")[3].at("type"), "directory");
  EXPECT_FALSE(top.at("truncated").get<bool>());
  auto json_files = run(*t, {{"op", "list"}, {"recursive", true},
                             {"glob", "*.json"}});
  EXPECT_EQ(names_of(json_files),
            (std::vector<std::string>{"b.json", "sub/c.json",
                                      "sub/deeper/d.json"}));
  auto by_path = run(*t, {{"op", "list"}, {"recursive", true},
                          {"glob", "sub/*.json"}});
  EXPECT_EQ(names_of(by_path), (std::vector<std::string>{"sub/c.json"}));
  auto sub = run(*t, {{"op", "list"}, {"path", "sub"}});
  EXPECT_EQ(names_of(sub), (std::vector<std::string>{"c.json", "deeper"}));
  auto capped = run(*t, {{"op", "list"}, {"recursive", true}, {"limit", 2}});
  EXPECT_EQ(capped.at("entries").size(), 2u);
  EXPECT_TRUE(capped.at("truncated").get<bool>());
  auto err = fail(*t, {{"op", "list"}, {"path", "a.txt"}});
  EXPECT_NE(message_of(err).find("not a directory"), std::string::npos)
    << message_of(err);
}

TEST(FileTool, RefusesPathsThatEscapeTheRoot) {
  sandbox box;
  box.put(box.root / "in.txt", "inside");
  fs::create_directory(box.root / "dir");
  // Symlinks out of the root: to a directory and to a file.
  fs::create_directory_symlink(box.outside, box.root / "out");
  fs::create_symlink(box.outside / "secret.txt", box.root / "secret");
  fs::create_symlink("../../outside/secret.txt", box.root / "dir" / "rel");
  // A dangling link whose target, once created, would be outside.
  fs::create_symlink(box.outside / "none.txt", box.root / "dangling");
  auto t = make_file(box);
  ASSERT_NE(t, nullptr);
  auto outside_abs = (box.outside / "secret.txt").string();
  for (const std::string& path :
       {std::string{"../outside/secret.txt"}, std::string{"dir/../../x"},
        std::string{".."}, outside_abs, std::string{"/etc/passwd"},
        std::string{"out/secret.txt"}, std::string{"secret"},
        std::string{"dir/rel"}, std::string{"out"},
        std::string{"dangling"}}) {
    for (const char* op : {"read", "stat", "list"}) {
      auto err = fail(*t, {{"op", op}, {"path", path}});
      EXPECT_EQ(code_of(err), errc::invalid_input) << op << " " << path;
      EXPECT_NE(message_of(err).find("'" + path + "' escapes the root"),
                std::string::npos)
        << op << " " << path << ": " << message_of(err);
    }
    auto err = fail(*t, {{"op", "write"}, {"path", path}, {"content", "x"}});
    EXPECT_NE(message_of(err).find("escapes the root"), std::string::npos)
      << path << ": " << message_of(err);
  }
  auto err = fail(*t, {{"op", "write"}, {"path", "out/new.txt"},
                       {"content", "x"}});
  EXPECT_NE(message_of(err).find("escapes the root"), std::string::npos);
  err = fail(*t, {{"op", "mkdir"}, {"path", "out/newdir"}});
  EXPECT_NE(message_of(err).find("escapes the root"), std::string::npos);
  EXPECT_EQ(box.get(box.outside / "secret.txt"), "top secret");
  EXPECT_FALSE(fs::exists(box.outside / "new.txt"));
  EXPECT_FALSE(fs::exists(box.outside / "none.txt"));
  EXPECT_FALSE(fs::exists(box.outside / "newdir"));
  // Ways in that stay inside are fine: absolute inside, "..", links.
  auto abs = run(*t, {{"op", "read"},
                      {"path", (box.root / "in.txt").string()}});
  EXPECT_EQ(abs.at("content"), "inside");
  auto dots = run(*t, {{"op", "read"}, {"path", "dir/../in.txt"}});
  EXPECT_EQ(dots.at("content"), "inside");
  fs::create_symlink("in.txt", box.root / "alias");
  auto alias = run(*t, {{"op", "read"}, {"path", "alias"}});
  EXPECT_EQ(alias.at("content"), "inside");
  EXPECT_EQ(alias.at("path"), "in.txt");
  // A recursive list shows the symlinks but never follows them out.
  auto all = run(*t, {{"op", "list"}, {"recursive", true}});
  for (const auto& e : all.at("entries"))
    EXPECT_EQ(e.at("name").get<std::string>().find("secret.txt"),
              std::string::npos)
      << e;
}

TEST(FileTool, ClearErrorsForMissingDirectoryAndTooLarge) {
  sandbox box;
  box.put(box.root / "big.txt", std::string(100, 'x'));
  fs::create_directory(box.root / "d");
  auto t = make_file(box, {{"max_read_bytes", 64}});
  ASSERT_NE(t, nullptr);
  auto err = fail(*t, {{"op", "read"}, {"path", "nope.txt"}});
  EXPECT_EQ(code_of(err), errc::not_found);
  EXPECT_EQ(message_of(err), "tool file: /path: 'nope.txt' not found");
  err = fail(*t, {{"op", "read"}, {"path", "missing/nope.txt"}});
  EXPECT_EQ(code_of(err), errc::not_found);
  err = fail(*t, {{"op", "read"}, {"path", "d"}});
  EXPECT_EQ(code_of(err), errc::invalid_input);
  EXPECT_NE(message_of(err).find("'d' is a directory"), std::string::npos)
    << message_of(err);
  err = fail(*t, {{"op", "read"}, {"path", "big.txt"}});
  EXPECT_NE(message_of(err).find("'big.txt' is too large: 100 bytes"),
            std::string::npos)
    << message_of(err);
  EXPECT_NE(message_of(err).find("tools.file.max_read_bytes"),
            std::string::npos);
}

TEST(FileTool, StatAndMkdir) {
  sandbox box;
  box.put(box.root / "f.txt", "abc");
  auto t = make_file(box);
  ASSERT_NE(t, nullptr);
  auto f = run(*t, {{"op", "stat"}, {"path", "f.txt"}});
  EXPECT_TRUE(f.at("exists").get<bool>());
  EXPECT_EQ(f.at("type"), "file");
  EXPECT_EQ(f.at("size"), 3);
  auto none = run(*t, {{"op", "stat"}, {"path", "x/y"}});
  EXPECT_EQ(none, (json{{"path", "x/y"}, {"exists", false}}));
  auto root = run(*t, {{"op", "stat"}, {"path", "."}});
  EXPECT_EQ(root.at("type"), "directory");
  auto made = run(*t, {{"op", "mkdir"}, {"path", "p/q/r"}});
  EXPECT_EQ(made, (json{{"path", "p/q/r"}, {"created", true}}));
  EXPECT_TRUE(fs::is_directory(box.root / "p" / "q" / "r"));
  made = run(*t, {{"op", "mkdir"}, {"path", "p/q/r/"}});
  EXPECT_EQ(made, (json{{"path", "p/q/r"}, {"created", false}}));
  auto err = fail(*t, {{"op", "mkdir"}, {"path", "f.txt/sub"}});
  EXPECT_NE(message_of(err).find("not a directory"), std::string::npos)
    << message_of(err);
}

TEST(FileTool, ReadOnlyRefusesChanges) {
  sandbox box;
  box.put(box.root / "f.txt", "abc");
  auto t = make_file(box, {{"read_only", true}});
  ASSERT_NE(t, nullptr);
  EXPECT_NE(t->describe().description.find("read-only"), std::string::npos);
  auto err = fail(*t, {{"op", "write"}, {"path", "f.txt"}, {"content", "x"}});
  EXPECT_NE(message_of(err).find("read-only"), std::string::npos);
  err = fail(*t, {{"op", "mkdir"}, {"path", "d"}});
  EXPECT_NE(message_of(err).find("read-only"), std::string::npos);
  EXPECT_EQ(box.get(box.root / "f.txt"), "abc");
  EXPECT_FALSE(fs::exists(box.root / "d"));
  EXPECT_EQ(run(*t, {{"op", "read"}, {"path", "f.txt"}}).at("content"),
            "abc");
}

// Issue 13 item 7: what each op takes is the published schema's to check
// (errors located by it); the tool keeps what only the file system can say.
TEST(FileTool, BadInputIsRefusedByTheSchemaNamingThePointer) {
  sandbox box;
  auto t = make_file(box, {{"max_list_entries", 5}});
  ASSERT_NE(t, nullptr);
  test::expect_refused_by_schema(*t, {
    {json{{"path", "x"}}, "/"},
    {json{{"op", "delete"}, {"path", "x"}}, "/op"},
    {json{{"op", "read"}}, "/"},
    {json{{"op", "read"}, {"path", 3}}, "/path"},
    {json{{"op", "read"}, {"path", ""}}, "/path"},
    {json{{"op", "read"}, {"path", "x"}, {"encoding", "latin1"}}, "/encoding"},
    {json{{"op", "read"}, {"path", "x"}, {"encoding", "json"}}, "/encoding"},
    {json{{"op", "write"}, {"path", "x"}}, "/"},
    {json{{"op", "write"}, {"path", "x"}, {"content", 5}}, "/content"},
    {json{{"op", "write"}, {"path", "x"}, {"content", {1}},
          {"encoding", "base64"}}, "/content"},
    {json{{"op", "write"}, {"path", "x"}, {"content", "a"},
          {"create_parents", "yes"}}, "/create_parents"},
    {json{{"op", "list"}, {"limit", 0}}, "/limit"},
    {json{{"op", "list"}, {"limit", 6}}, "/limit"},
    {json{{"op", "list"}, {"glob", 1}}, "/glob"},
    {json{{"op", "list"}, {"glob", ""}}, "/glob"},
    {json{{"op", "read"}, {"path", "x"}, {"mode", 1}}, "/"},
  });
  test::expect_accepted_by_both(*t, {
    {{"op", "list"}},
    {{"op", "list"}, {"limit", 5.0}, {"glob", "*"}},
    {{"op", "write"}, {"path", "w.json"}, {"content", {1, 2}},
     {"encoding", "json"}},
    {{"op", "read"}, {"path", "w.json"}, {"encoding", "base64"}},
    {{"op", "stat"}, {"path", "nope"}},
    {{"op", "mkdir"}, {"path", "d/e"}},
  });
  // What only decoding can say stays the tool's, located too.
  auto err = fail(*t, {{"op", "write"}, {"path", "x"}, {"content", "@@"},
                       {"encoding", "base64"}});
  EXPECT_EQ(message_of(err), "tool file: /content: is not valid base64");
}

TEST(FileTool, BadSettingsNameTheKey) {
  sandbox box;
  tool_registry registry;
  register_builtin_tools(registry);
  auto missing = (box.dir.path() / "missing").string();
  for (const auto& [settings, key] :
       {std::pair{json{{"root", missing}}, "tools.file.root: "},
        std::pair{json{{"root", (box.outside / "secret.txt").string()}},
                  "tools.file.root: "},
        std::pair{json{{"read_only", "no"}}, "tools.file.read_only: "},
        std::pair{json{{"max_read_bytes", 0}}, "tools.file.max_read_bytes: "},
        std::pair{json{{"rooot", "."}}, "tools.file.rooot: "}}) {
    auto t = registry.create("file", json_value{settings});
    ASSERT_FALSE(t) << settings;
    EXPECT_EQ(code_of(t.error()), errc::invalid_config);
    EXPECT_EQ(message_of(t.error()).rfind(key, 0), 0u)
      << message_of(t.error());
  }
}
