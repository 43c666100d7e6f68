#pragma once

// A small file system for tests of a full disk: a tmpfs of a given size
// mounted on a fresh directory (needs root), unmounted on destruction.

#include <sys/mount.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <string>

#include "temp_dir.hpp"

namespace cadre::test {

class small_disk {
public:
  /// Mounts a tmpfs of `size` (mount's notation: "8m") at a new directory.
  explicit small_disk(const std::string& size) : path_(dir_ / "disk") {
    std::filesystem::create_directories(path_);
    auto opts = "size=" + size;
    if (::mount("tmpfs", path_.c_str(), "tmpfs", 0, opts.c_str()) == 0)
      mounted_ = true;
    else
      error_ = "cannot mount a " + size + " tmpfs at " + path_
               + " (needs root): " + std::strerror(errno);
  }
  ~small_disk() {
    if (mounted_)
      ::umount2(path_.c_str(), MNT_DETACH);
  }
  small_disk(const small_disk&) = delete;
  small_disk& operator=(const small_disk&) = delete;

  bool mounted() const {
    return mounted_;
  }
  /// Why it is not mounted.
  const std::string& error() const {
    return error_;
  }
  /// The mount point.
  const std::string& path() const {
    return path_;
  }

private:
  temp_dir dir_;
  std::string path_;
  bool mounted_ = false;
  std::string error_;
};

} // namespace cadre::test
