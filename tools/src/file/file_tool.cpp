// file: reads, writes (atomically), lists, stats and creates files and
// directories inside one configured root directory. Paths that lead out of
// the root, by "..", by an absolute path or through a symlink, are refused.

#include <dirent.h>
#include <fcntl.h>
#include <fnmatch.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstring>
#include <ctime>
#include <filesystem>
#include <memory>
#include <optional>
#include <random>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "cadre/tools/tool.hpp"
#include "codec/base64.hpp"
#include "fs/root_dir.hpp"
#include "tool_support.hpp"
#include "cadre/messages/json_text.hpp"
#include "cadre/messages/utf8.hpp"

namespace cadre::tools {

namespace {

namespace fs = std::filesystem;

/// Settings of the file tool (`tools.file`).
struct file_options {
  /// The directory the tool works in; nothing outside it is reachable.
  /// Default: the current directory
  std::string root;
  /// Refuses write and mkdir. Default: false
  bool read_only = false;
  /// Largest file read returns, in bytes. Default: 10 MiB
  uint64_t max_read_bytes = 10 * 1024 * 1024;
  /// Largest content write accepts, in bytes (after decoding). Default:
  /// 10 MiB
  uint64_t max_write_bytes = 10 * 1024 * 1024;
  /// Most entries one list returns. Default: 1000
  uint64_t max_list_entries = 1000;
};

constexpr std::string_view tool_name = "file";

caf::error input_error(std::string_view pointer, std::string_view what) {
  return detail::input_error(tool_name, pointer, what);
}

using detail::rooted_path;
using detail::unique_fd;

// -- encodings ----------------------------------------------------------------

using detail::base64_decode;
using detail::base64_encode;

std::string iso_time(const struct timespec& ts) {
  std::tm tm{};
  gmtime_r(&ts.tv_sec, &tm);
  std::array<char, 32> buf{};
  std::strftime(buf.data(), buf.size(), "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf.data();
}

const char* type_of(mode_t mode) {
  if (S_ISREG(mode))
    return "file";
  if (S_ISDIR(mode))
    return "directory";
  if (S_ISLNK(mode))
    return "symlink";
  return "other";
}

json stat_json(const std::string& name, const struct stat& st) {
  return {{"name", name},
          {"type", type_of(st.st_mode)},
          {"size", static_cast<uint64_t>(st.st_size)},
          {"mtime", iso_time(st.st_mtim)}};
}

// -- the tool -----------------------------------------------------------------

class file_tool final : public tool {
public:
  explicit file_tool(file_options opts, fs::path root)
    : opts_(std::move(opts)), root_(std::string{tool_name}, std::move(root)) {
  }

  /// Set once by the factory, before the first call.
  void set_input_schema(json_schema schema) {
    input_schema_ = std::move(schema);
  }

  std::string name() const override {
    return "file";
  }

  tool_description describe() const override {
    return {
      "file",
      std::string{"Reads, writes, lists, stats and creates files and "
                  "directories inside one root directory"}
        + (opts_.read_only ? " (read-only: write and mkdir are refused)"
                           : "")
        + ". Paths are relative to the root; paths that leave it (\"..\", "
          "absolute paths elsewhere, symlinks pointing out) are refused. "
          "read returns text (UTF-8) or base64; write replaces a file "
          "atomically with text, base64 bytes or a JSON value; list gives "
          "name, type, size and mtime, optionally recursive and filtered "
          "by a glob.",
      json{
        {"type", "object"},
        {"properties",
         {{"op",
           {{"enum", {"read", "write", "list", "stat", "mkdir"}},
            {"description", "What to do."}}},
          {"path",
           {{"type", "string"},
            {"minLength", 1},
            {"description", "File or directory, relative to the root. "
                            "Default for list: the root itself."}}},
          {"encoding",
           {{"enum", {"utf8", "base64", "json"}},
            {"description", "read: utf8 (default) or base64. write: utf8 "
                            "(default), base64 (content is base64 text) or "
                            "json (content is any JSON value, written "
                            "pretty-printed)."}}},
          {"content",
           {{"description", "write: the new content (see encoding)."}}},
          {"create_parents",
           {{"type", "boolean"},
            {"description", "write: create missing parent directories. "
                            "Default: false. mkdir always creates "
                            "parents."}}},
          {"overwrite",
           {{"type", "boolean"},
            {"description", "write: replace an existing file. Default: "
                            "true."}}},
          {"recursive",
           {{"type", "boolean"},
            {"description", "list: descend into subdirectories (symlinks "
                            "are not followed). Default: false."}}},
          {"glob",
           {{"type", "string"},
            {"minLength", 1},
            {"description", "list: keep entries whose name matches, e.g. "
                            "\"*.json\"; with a '/', the path below the "
                            "listed directory is matched instead."}}},
          {"limit",
           {{"type", "integer"},
            {"minimum", 1},
            {"maximum", opts_.max_list_entries},
            {"description", "list: most entries to return."}}}}},
        {"required", {"op"}},
        {"additionalProperties", false},
        {"allOf", op_rules()},
      },
      json{
        {"type", "object"},
        {"properties",
         {{"path", {{"type", "string"}}},
          {"content", {{"description", "read: text or base64."}}},
          {"encoding", {{"type", "string"}}},
          {"size", {{"type", "integer"}}},
          {"bytes_written", {{"type", "integer"}}},
          {"entries",
           {{"type", "array"},
            {"items",
             {{"type", "object"},
              {"properties",
               {{"name", {{"type", "string"}}},
                {"type",
                 {{"enum", {"file", "directory", "symlink", "other"}}}},
                {"size", {{"type", "integer"}}},
                {"mtime",
                 {{"type", "string"},
                  {"description", "ISO 8601, UTC."}}}}}}}}},
          {"truncated", {{"type", "boolean"}}},
          {"exists", {{"type", "boolean"}}},
          {"type", {{"type", "string"}}},
          {"mtime", {{"type", "string"}}},
          {"created", {{"type", "boolean"}}}}},
        {"required", {"path"}},
      },
    };
  }

  bool blocking() const override {
    return true;
  }

  /// What each op needs: a path (all but list), content (write), and the
  /// encodings it knows.
  static json op_rules() {
    auto when_op = [](json ops, json then) {
      return json{{"if", {{"properties", {{"op", {{"enum", std::move(ops)}}}}},
                          {"required", {"op"}}}},
                  {"then", std::move(then)}};
    };
    return json::array(
      {when_op({"read", "write", "stat", "mkdir"}, {{"required", {"path"}}}),
       when_op({"read"},
               {{"properties", {{"encoding", {{"enum", {"utf8", "base64"}}}}}}}),
       when_op({"write"}, {{"required", {"content"}}}),
       // utf8 (the default) and base64 content is text.
       {{"if", {{"properties", {{"op", {{"const", "write"}}},
                                {"encoding", {{"const", "json"}}}}},
                {"required", {"op"}},
                {"not", {{"required", {"encoding"}}}}}},
        {"then", {{"properties", {{"content", {{"type", "string"}}}}}}}},
       {{"if", {{"properties", {{"op", {{"const", "write"}}},
                                {"encoding", {{"enum", {"utf8", "base64"}}}}}},
                {"required", {"op", "encoding"}}}},
        {"then", {{"properties", {{"content", {{"type", "string"}}}}}}}}});
  }

  expected<json_value> invoke(const json_value& input,
                              tool_context& ctx) override {
    // The input schema says what each op takes; what is left here is the
    // file system's to say (and the read_only setting).
    if (auto ok = detail::check_input(tool_name, input_schema_, *input); !ok)
      return std::move(ok.error());
    const auto& name = input->at("op").get_ref<const std::string&>();
    if (name == "read")
      return read(*input);
    if (name == "write")
      return write(*input);
    if (name == "list")
      return list(*input, ctx);
    if (name == "stat")
      return stat(*input);
    if (name == "mkdir")
      return mkdir(*input);
    return input_error("/op", "must be one of read, write, list, stat, "
                              "mkdir (got '" + name + "')");
  }

private:
  using place = rooted_path;

  expected<place> resolve(const json& input, bool required = true) const {
    return root_.resolve(input, required);
  }

  expected<unique_fd> open_dir(const place& where, const fs::path& rel,
                               bool create, bool* created = nullptr) const {
    return root_.open_dir(where, rel, create, created);
  }

  caf::error path_error(errc code, const std::string& path,
                        std::string_view what) const {
    return root_.path_error(code, path, what);
  }

  std::string shown_rel(const fs::path& rel) const {
    return rel.empty() ? std::string{"."} : rel.generic_string();
  }

  expected<json_value> read(const json& input) {
    auto where = resolve(input);
    if (!where)
      return std::move(where.error());
    auto encoding = input.value("encoding", std::string{"utf8"});
    auto file = root_.open_file(*where, "is a directory (use op list)");
    if (!file)
      return std::move(file.error());
    auto read = root_.read_all(*where, *file, opts_.max_read_bytes,
                               "tools.file.max_read_bytes");
    if (!read)
      return std::move(read.error());
    auto bytes = std::move(*read);
    const auto& st = file->st;
    json out = {{"path", shown_rel(where->rel)},
                {"encoding", encoding},
                {"size", bytes.size()},
                {"mtime", iso_time(st.st_mtim)}};
    if (encoding == "utf8") {
      if (!valid_utf8(bytes))
        return path_error(errc::invalid_input, where->shown,
                          "is not valid UTF-8 text (read it with encoding "
                          "base64)");
      out["content"] = std::move(bytes);
    } else {
      out["content"] = base64_encode(bytes);
    }
    return json_value{std::move(out)};
  }

  expected<json_value> write(const json& input) {
    if (opts_.read_only)
      return input_error("/op", "write is refused: the file tool is "
                                "read-only (tools.file.read_only)");
    auto where = resolve(input);
    if (!where)
      return std::move(where.error());
    auto encoding = input.value("encoding", std::string{"utf8"});
    auto content = input.find("content");
    std::string bytes;
    if (encoding == "json") {
      bytes = dump_json(*content, 2) + "\n";
    } else if (encoding == "base64") {
      auto decoded = base64_decode(content->get_ref<const std::string&>());
      if (!decoded)
        return input_error("/content", "is not valid base64");
      bytes = std::move(*decoded);
    } else {
      bytes = content->get<std::string>();
    }
    if (bytes.size() > opts_.max_write_bytes)
      return input_error("/content",
                         "is too large: " + std::to_string(bytes.size())
                           + " bytes, the limit is "
                           + std::to_string(opts_.max_write_bytes)
                           + " (tools.file.max_write_bytes)");
    auto create_parents = input.value("create_parents", false);
    auto overwrite = input.value("overwrite", true);
    if (where->rel.empty())
      return path_error(errc::invalid_input, where->shown, "is a directory");
    auto dir = open_dir(*where, where->rel.parent_path(), create_parents);
    if (!dir) {
      if (code_of(dir.error()) == errc::not_found)
        return path_error(errc::not_found, where->shown,
                          "cannot be written: its directory does not exist "
                          "(set create_parents)");
      return std::move(dir.error());
    }
    auto leaf = where->rel.filename().string();
    struct stat st{};
    if (::fstatat(dir->get(), leaf.c_str(), &st, AT_SYMLINK_NOFOLLOW) == 0) {
      if (S_ISDIR(st.st_mode))
        return path_error(errc::invalid_input, where->shown,
                          "is a directory");
      if (!overwrite)
        return path_error(errc::conflict, where->shown,
                          "already exists (overwrite is false)");
    }
    // Write a temporary file beside the target, then rename it over: a
    // reader sees the old content or the new, never a half-written file.
    std::random_device rd;
    std::string tmp;
    unique_fd fd;
    for (int attempt = 0; attempt < 16 && !fd; ++attempt) {
      tmp = "." + leaf + ".tmp-" + std::to_string(rd());
      fd = unique_fd{::openat(dir->get(), tmp.c_str(),
                              O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW
                                | O_CLOEXEC,
                              0666)};
      if (!fd && errno != EEXIST)
        break;
    }
    if (!fd)
      return path_error(errc::storage_error, where->shown,
                        std::string{"cannot be written: "}
                          + std::strerror(errno));
    auto fail = [&](const char* what) {
      int err = errno;
      ::unlinkat(dir->get(), tmp.c_str(), 0);
      return path_error(errc::storage_error, where->shown,
                        std::string{what} + std::strerror(err));
    };
    size_t done = 0;
    while (done < bytes.size()) {
      auto n = ::write(fd.get(), bytes.data() + done, bytes.size() - done);
      if (n < 0 && errno == EINTR)
        continue;
      if (n < 0)
        return fail("cannot be written: ");
      done += static_cast<size_t>(n);
    }
    if (::fsync(fd.get()) != 0)
      return fail("cannot be synced: ");
    fd.reset();
    if (::renameat(dir->get(), tmp.c_str(), dir->get(), leaf.c_str()) != 0)
      return fail("cannot be replaced: ");
    // The rename itself is durable once the directory is synced.
    ::fsync(dir->get());
    return json_value{json{{"path", shown_rel(where->rel)},
                           {"bytes_written", bytes.size()}}};
  }

  expected<json_value> list(const json& input, tool_context& ctx) {
    auto where = resolve(input, false);
    if (!where)
      return std::move(where.error());
    auto recursive = input.value("recursive", false);
    auto glob = input.value("glob", std::string{});
    uint64_t limit = opts_.max_list_entries;
    if (auto l = input.find("limit"); l != input.end())
      limit = *detail::as_uint(*l);
    auto dir = open_dir(*where, where->rel, false);
    if (!dir)
      return std::move(dir.error());
    json entries = json::array();
    bool truncated = false;
    auto ok = walk(std::move(*dir), "", recursive, glob, limit, entries,
                   truncated, ctx, *where);
    if (!ok)
      return std::move(ok.error());
    return json_value{json{{"path", shown_rel(where->rel)},
                           {"entries", std::move(entries)},
                           {"truncated", truncated}}};
  }

  /// Lists the directory `fd` (whose path below the listed one is
  /// `prefix`), sorted by name, depth first.
  expected<void> walk(unique_fd fd, const std::string& prefix,
                      bool recursive, const std::string& glob,
                      uint64_t limit, json& entries, bool& truncated,
                      tool_context& ctx, const place& where) {
    if (ctx.cancelled())
      return make_error(errc::cancelled, "tool file: list cancelled");
    int dup = ::dup(fd.get());
    if (dup < 0)
      return path_error(errc::storage_error, where.shown,
                        std::string{"cannot be listed: "}
                          + std::strerror(errno));
    std::unique_ptr<DIR, int (*)(DIR*)> d{::fdopendir(dup), &::closedir};
    if (!d) {
      ::close(dup);
      return path_error(errc::storage_error, where.shown,
                        std::string{"cannot be listed: "}
                          + std::strerror(errno));
    }
    std::vector<std::string> names;
    while (auto* e = ::readdir(d.get())) {
      std::string n = e->d_name;
      if (n != "." && n != "..")
        names.push_back(std::move(n));
    }
    std::sort(names.begin(), names.end());
    for (const auto& n : names) {
      struct stat st{};
      if (::fstatat(fd.get(), n.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0)
        continue; // removed while listing
      auto rel = prefix.empty() ? n : prefix + "/" + n;
      bool keep = glob.empty();
      if (!keep) {
        bool by_path = glob.find('/') != std::string::npos;
        keep = ::fnmatch(glob.c_str(), (by_path ? rel : n).c_str(),
                         by_path ? FNM_PATHNAME : 0)
               == 0;
      }
      if (keep && entries.size() >= limit) {
        truncated = true;
        return {};
      }
      if (keep) {
        auto entry = stat_json(rel, st);
        if (S_ISDIR(st.st_mode))
          entry.erase("size");
        entries.push_back(std::move(entry));
      }
      if (recursive && S_ISDIR(st.st_mode)) {
        unique_fd sub{::openat(fd.get(), n.c_str(),
                               O_RDONLY | O_DIRECTORY | O_NOFOLLOW
                                 | O_CLOEXEC)};
        if (!sub)
          continue; // replaced or unreadable: skip rather than fail
        auto ok = walk(std::move(sub), rel, recursive, glob, limit, entries,
                       truncated, ctx, where);
        if (!ok || truncated)
          return ok;
      }
    }
    return {};
  }

  expected<json_value> stat(const json& input) {
    auto where = resolve(input);
    if (!where)
      return std::move(where.error());
    json out = {{"path", shown_rel(where->rel)}};
    struct stat st{};
    if (where->rel.empty()) {
      if (::stat(root_.path().c_str(), &st) != 0)
        return path_error(errc::storage_error, where->shown,
                          std::string{"cannot be examined: "}
                            + std::strerror(errno));
    } else {
      auto dir = open_dir(*where, where->rel.parent_path(), false);
      if (!dir) {
        if (code_of(dir.error()) == errc::not_found) {
          out["exists"] = false;
          return json_value{std::move(out)};
        }
        return std::move(dir.error());
      }
      auto leaf = where->rel.filename();
      if (::fstatat(dir->get(), leaf.c_str(), &st, AT_SYMLINK_NOFOLLOW)
          != 0) {
        if (errno == ENOENT) {
          out["exists"] = false;
          return json_value{std::move(out)};
        }
        return path_error(errc::storage_error, where->shown,
                          std::string{"cannot be examined: "}
                            + std::strerror(errno));
      }
    }
    out["exists"] = true;
    out["type"] = type_of(st.st_mode);
    if (!S_ISDIR(st.st_mode))
      out["size"] = static_cast<uint64_t>(st.st_size);
    out["mtime"] = iso_time(st.st_mtim);
    return json_value{std::move(out)};
  }

  expected<json_value> mkdir(const json& input) {
    if (opts_.read_only)
      return input_error("/op", "mkdir is refused: the file tool is "
                                "read-only (tools.file.read_only)");
    auto where = resolve(input);
    if (!where)
      return std::move(where.error());
    bool created = false;
    auto dir = open_dir(*where, where->rel, true, &created);
    if (!dir)
      return std::move(dir.error());
    return json_value{json{{"path", shown_rel(where->rel)},
                           {"created", created}}};
  }

  file_options opts_;
  detail::root_dir root_;
  json_schema input_schema_;
};

} // namespace

json file_settings_schema() {
  file_options defaults;
  return detail::settings_schema(
    {{"root", detail::string_setting("The directory the tool works in; "
                                     "must exist. Default: the current "
                                     "directory.")},
     {"read_only", detail::bool_setting(defaults.read_only,
                                        "Refuse write and mkdir.")},
     {"max_read_bytes",
      detail::integer_setting(defaults.max_read_bytes, 1,
                              "Largest file read returns.")},
     {"max_write_bytes",
      detail::integer_setting(defaults.max_write_bytes, 1,
                              "Largest content write accepts (after "
                              "decoding).")},
     {"max_list_entries",
      detail::integer_setting(defaults.max_list_entries, 1,
                              "Most entries one list returns.")}});
}

expected<std::unique_ptr<tool>> make_file_tool(const json_value& settings) {
  const json& obj = *settings;
  file_options opts;
  opts.root = detail::setting(obj, "root", opts.root);
  opts.read_only = detail::setting(obj, "read_only", opts.read_only);
  opts.max_read_bytes = detail::setting(obj, "max_read_bytes",
                                        opts.max_read_bytes);
  opts.max_write_bytes = detail::setting(obj, "max_write_bytes",
                                         opts.max_write_bytes);
  opts.max_list_entries = detail::setting(obj, "max_list_entries",
                                          opts.max_list_entries);
  std::error_code ec;
  auto root = opts.root.empty() ? fs::current_path(ec)
                                : fs::canonical(opts.root, ec);
  if (ec)
    return detail::settings_error(tool_name, "root",
                                  "'" + opts.root + "' cannot be used: "
                                    + ec.message());
  if (!fs::is_directory(root, ec))
    return detail::settings_error(tool_name, "root",
                                  "'" + opts.root + "' is not a directory");
  // current_path is absolute but may hold symlinks: compare real paths.
  root = fs::canonical(root, ec);
  if (ec)
    return detail::settings_error(tool_name, "root", ec.message());
  return detail::with_input_schema(
    std::make_unique<file_tool>(std::move(opts), std::move(root)));
}

} // namespace cadre::tools
