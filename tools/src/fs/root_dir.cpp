#include "fs/root_dir.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <cstring>
#include <iterator>

#include "tool_support.hpp"

namespace cadre::tools::detail {

namespace fs = std::filesystem;

namespace {

bool under(const fs::path& path, const fs::path& root) {
  auto p = path.begin();
  for (auto r = root.begin(); r != root.end(); ++r, ++p) {
    if (r->empty() && std::next(r) == root.end())
      break; // a trailing separator of the root
    if (p == path.end() || *p != *r)
      return false;
  }
  return true;
}

} // namespace

void unique_fd::reset() {
  if (fd_ >= 0)
    ::close(fd_);
  fd_ = -1;
}

caf::error root_dir::path_error(errc code, const std::string& path,
                                std::string_view what) const {
  return make_error(code, "tool " + tool_ + ": /path: '" + path + "' "
                            + std::string{what});
}

expected<rooted_path> root_dir::resolve(const json& input,
                                        bool required) const {
  auto it = input.find("path");
  std::string text = ".";
  if (it == input.end() || it->is_null()) {
    if (required)
      return input_error(tool_, "/path", "is required");
  } else if (!it->is_string()) {
    return input_error(tool_, "/path", "must be a string");
  } else {
    text = it->get<std::string>();
  }
  return resolve(text);
}

expected<rooted_path> root_dir::resolve(const std::string& text) const {
  if (text.empty())
    return input_error(tool_, "/path", "must not be empty");
  if (text.find('\0') != std::string::npos)
    return input_error(tool_, "/path", "must not contain NUL characters");
  fs::path given{text};
  auto full = (given.is_absolute() ? given : root_ / given).lexically_normal();
  if (!under(full, root_))
    return path_error(errc::invalid_input, text,
                      "escapes the root directory");
  std::error_code ec;
  // Symlinks resolve as the kernel would; what is left over does not exist
  // yet (a file to write, directories to create).
  auto real = fs::weakly_canonical(full, ec);
  // weakly_canonical stops at a dangling symlink: follow it by hand, so a
  // link to a missing file outside the root is caught too.
  for (int hops = 0; !ec && hops < 40; ++hops) {
    std::error_code missing; // not there at all: nothing to follow
    if (!fs::is_symlink(fs::symlink_status(real, missing)))
      break;
    auto target = fs::read_symlink(real, ec);
    if (!ec)
      real = fs::weakly_canonical(real.parent_path() / target, ec);
  }
  if (ec)
    return path_error(errc::storage_error, text,
                      "cannot be resolved: " + ec.message());
  if (!under(real, root_))
    return path_error(errc::invalid_input, text,
                      "escapes the root directory (through a symlink)");
  auto rel = real.lexically_relative(root_).lexically_normal();
  if (!rel.empty() && !rel.has_filename())
    rel = rel.parent_path(); // "dir/" names "dir"
  if (rel == ".")
    rel.clear();
  return rooted_path{text, rel};
}

expected<unique_fd> root_dir::open_dir(const rooted_path& where,
                                       const fs::path& rel, bool create,
                                       bool* created) const {
  unique_fd fd{::open(root_.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC)};
  if (!fd)
    return make_error(errc::storage_error,
                      "tool " + tool_ + ": cannot open the root '"
                        + root_.string() + "': " + std::strerror(errno));
  fs::path so_far;
  for (const auto& part : rel) {
    so_far /= part;
    auto flags = O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC;
    unique_fd next{::openat(fd.get(), part.c_str(), flags)};
    if (!next && errno == ENOENT && create) {
      if (::mkdirat(fd.get(), part.c_str(), 0777) != 0 && errno != EEXIST)
        return path_error(errc::storage_error, where.shown,
                          "cannot create directory '" + so_far.string()
                            + "': " + std::strerror(errno));
      if (created)
        *created = true;
      next = unique_fd{::openat(fd.get(), part.c_str(), flags)};
    }
    if (!next) {
      int err = errno;
      if (err == ENOENT)
        return path_error(errc::not_found, where.shown,
                          "not found: directory '" + so_far.string()
                            + "' does not exist");
      if (err == ENOTDIR)
        return path_error(errc::invalid_input, where.shown,
                          "'" + so_far.string() + "' is not a directory");
      if (err == ELOOP)
        return path_error(errc::invalid_input, where.shown,
                          "escapes the root directory ('" + so_far.string()
                            + "' became a symlink during the call)");
      return path_error(errc::storage_error, where.shown,
                        "cannot open '" + so_far.string()
                          + "': " + std::strerror(err));
    }
    fd = std::move(next);
  }
  return fd;
}

expected<rooted_file> root_dir::open_file(const rooted_path& where,
                                          std::string_view is_dir) const {
  if (where.rel.empty())
    return path_error(errc::invalid_input, where.shown, is_dir);
  auto dir = open_dir(where, where.rel.parent_path(), false);
  if (!dir)
    return std::move(dir.error());
  auto leaf = where.rel.filename();
  // O_NONBLOCK: a FIFO swapped in must not block the open.
  rooted_file out;
  out.fd = unique_fd{::openat(dir->get(), leaf.c_str(),
                              O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK)};
  if (!out.fd) {
    int err = errno;
    if (err == ENOENT)
      return path_error(errc::not_found, where.shown, "not found");
    if (err == ELOOP)
      return path_error(errc::invalid_input, where.shown,
                        "escapes the root directory (became a symlink "
                        "during the call)");
    return path_error(errc::storage_error, where.shown,
                      std::string{"cannot be opened: "} + std::strerror(err));
  }
  if (::fstat(out.fd.get(), &out.st) != 0)
    return path_error(errc::storage_error, where.shown,
                      std::string{"cannot be read: "} + std::strerror(errno));
  if (S_ISDIR(out.st.st_mode))
    return path_error(errc::invalid_input, where.shown, is_dir);
  if (!S_ISREG(out.st.st_mode))
    return path_error(errc::invalid_input, where.shown,
                      "is not a regular file");
  return out;
}

expected<std::string> root_dir::read_all(const rooted_path& where,
                                         const rooted_file& file,
                                         uint64_t max_bytes,
                                         std::string_view limit) const {
  auto size = static_cast<uint64_t>(file.st.st_size);
  if (size > max_bytes)
    return path_error(errc::invalid_input, where.shown,
                      "is too large: " + std::to_string(size)
                        + " bytes, the limit is " + std::to_string(max_bytes)
                        + " (" + std::string{limit} + ")");
  std::string bytes;
  bytes.reserve(size);
  std::array<char, 65536> buf{};
  for (;;) {
    auto n = ::read(file.fd.get(), buf.data(), buf.size());
    if (n < 0 && errno == EINTR)
      continue;
    if (n < 0)
      return path_error(errc::storage_error, where.shown,
                        std::string{"cannot be read: "}
                          + std::strerror(errno));
    if (n == 0)
      break;
    bytes.append(buf.data(), static_cast<size_t>(n));
    // The file may grow while it is read: the cap still holds.
    if (bytes.size() > max_bytes)
      return path_error(errc::invalid_input, where.shown,
                        "is too large: it grew past the limit of "
                          + std::to_string(max_bytes) + " bytes ("
                          + std::string{limit} + ")");
  }
  return bytes;
}

} // namespace cadre::tools::detail
