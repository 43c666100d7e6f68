#pragma once

// Paths confined to one root directory, for the tools that read or write
// files a caller names (file, ocr): a path is checked to stay in the root
// (after "..", absolute paths and symlinks), then opened from the root one
// component at a time with O_NOFOLLOW, so a symlink swapped in between the
// check and the open is refused instead of followed. Private to tools/.

#include <sys/stat.h>

#include <cstdint>
#include <filesystem>
#include <string>
#include <string_view>
#include <utility>

#include "cadre/messages/error.hpp"
#include "cadre/messages/json_value.hpp"

namespace cadre::tools::detail {

/// Closes a file descriptor on scope exit.
class unique_fd {
public:
  explicit unique_fd(int fd = -1) : fd_(fd) {
  }
  unique_fd(unique_fd&& other) noexcept : fd_(std::exchange(other.fd_, -1)) {
  }
  unique_fd& operator=(unique_fd&& other) noexcept {
    if (this != &other) {
      reset();
      fd_ = std::exchange(other.fd_, -1);
    }
    return *this;
  }
  unique_fd(const unique_fd&) = delete;
  unique_fd& operator=(const unique_fd&) = delete;
  ~unique_fd() {
    reset();
  }
  int get() const {
    return fd_;
  }
  explicit operator bool() const {
    return fd_ >= 0;
  }
  void reset();

private:
  int fd_;
};

/// A path checked to stay in the root: `rel` has no symlinks, no "." or
/// ".." and is relative to the root ("" is the root).
struct rooted_path {
  std::string shown; ///< as the caller wrote it
  std::filesystem::path rel;
};

/// An open regular file below the root and its status.
struct rooted_file {
  unique_fd fd;
  struct stat st {};
};

/// One tool's root directory. Errors read "tool <tool>: /path: '<path>'
/// <what>".
class root_dir {
public:
  /// `root` must be canonical (no symlinks, absolute).
  root_dir(std::string tool, std::filesystem::path root)
    : tool_(std::move(tool)), root_(std::move(root)) {
  }

  const std::filesystem::path& path() const {
    return root_;
  }

  /// Reads the string at `/path` of `input` and resolves it inside the root
  /// (absent: the root itself unless `required`).
  /// Errors: errc::invalid_input (missing, not a string, escapes the root),
  /// errc::storage_error (cannot be resolved).
  [[nodiscard]] expected<rooted_path> resolve(const json& input,
                                              bool required = true) const;

  /// Resolves `text` inside the root (see resolve above).
  [[nodiscard]] expected<rooted_path> resolve(const std::string& text) const;

  /// Opens the directory `rel` below the root, one component at a time with
  /// O_NOFOLLOW. With `create`, missing directories are made (and *created
  /// set). Errors: errc::not_found, errc::invalid_input (not a directory,
  /// became a symlink), errc::storage_error.
  [[nodiscard]] expected<unique_fd> open_dir(const rooted_path& where,
                                             const std::filesystem::path& rel,
                                             bool create,
                                             bool* created = nullptr) const;

  /// Opens `where` for reading with O_NOFOLLOW from its directory's
  /// descriptor, and stats it. Errors: errc::invalid_input (the root itself
  /// or a directory: `is_dir`; not a regular file; became a symlink),
  /// errc::not_found, errc::storage_error.
  [[nodiscard]] expected<rooted_file>
  open_file(const rooted_path& where,
            std::string_view is_dir = "is a directory") const;

  /// Reads the whole of an open file, refusing more than `max_bytes` (the
  /// file may grow while it is read); `limit` names the setting.
  [[nodiscard]] expected<std::string> read_all(const rooted_path& where,
                                               const rooted_file& file,
                                               uint64_t max_bytes,
                                               std::string_view limit) const;

  /// "tool <tool>: /path: '<path>' <what>" with `code`.
  caf::error path_error(errc code, const std::string& path,
                        std::string_view what) const;

private:
  std::string tool_;
  std::filesystem::path root_;
};

} // namespace cadre::tools::detail
