#pragma once

// A `cadre` process on a pseudo-terminal (stdin, stdout and stderr on its
// slave side), for tests of what cadre does when a person sits at a
// terminal: the test reads what it shows and types answers. The destructor
// kills and reaps it.

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <optional>
#include <string>
#include <vector>

#include "cadre_process.hpp"

namespace cadre::test {

class pty_process {
public:
  explicit pty_process(const std::vector<std::string>& args) {
    master_ = posix_openpt(O_RDWR | O_NOCTTY | O_CLOEXEC);
    if (master_ < 0 || grantpt(master_) != 0 || unlockpt(master_) != 0) {
      error_ = std::string{"posix_openpt: "} + std::strerror(errno);
      return;
    }
    std::string slave = ptsname(master_);
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, STDIN_FILENO, slave.c_str(),
                                     O_RDWR | O_NOCTTY, 0);
    posix_spawn_file_actions_adddup2(&fa, STDIN_FILENO, STDOUT_FILENO);
    posix_spawn_file_actions_adddup2(&fa, STDIN_FILENO, STDERR_FILENO);
    std::vector<char*> argv;
    argv.push_back(const_cast<char*>(CADRE_EXE));
    for (const auto& a : args)
      argv.push_back(const_cast<char*>(a.c_str()));
    argv.push_back(nullptr);
    auto rc = posix_spawn(&pid_, CADRE_EXE, &fa, nullptr, argv.data(),
                          environ);
    posix_spawn_file_actions_destroy(&fa);
    if (rc != 0) {
      error_ = std::string{"posix_spawn: "} + std::strerror(rc);
      pid_ = -1;
    }
  }

  ~pty_process() {
    if (pid_ > 0) {
      ::kill(pid_, SIGKILL);
      int st = 0;
      waitpid(pid_, &st, 0);
    }
    if (master_ >= 0)
      close(master_);
  }

  pty_process(const pty_process&) = delete;
  pty_process& operator=(const pty_process&) = delete;

  bool ok() const {
    return error_.empty() && pid_ > 0;
  }
  const std::string& error() const {
    return error_;
  }

  /// Everything the terminal showed so far.
  const std::string& shown() const {
    return shown_;
  }

  /// Reads until `text` shows after what earlier calls matched; false at
  /// the deadline or the terminal's end.
  bool expect(const std::string& text, clock_type::time_point deadline) {
    for (;;) {
      if (auto at = shown_.find(text, cursor_); at != std::string::npos) {
        cursor_ = at + text.size();
        return true;
      }
      if (!read_some(deadline))
        return false;
    }
  }

  /// Types `line` and Enter.
  void type(const std::string& line) {
    auto text = line + "\n";
    auto n = ::write(master_, text.data(), text.size());
    (void) n;
  }

  /// Reads to the terminal's end and waits for the exit; nullopt at the
  /// deadline.
  std::optional<int> wait_until(clock_type::time_point deadline) {
    while (read_some(deadline)) {
    }
    while (clock_type::now() < deadline) {
      int st = 0;
      auto r = waitpid(pid_, &st, WNOHANG);
      if (r == pid_) {
        pid_ = -1;
        return st;
      }
      poll(nullptr, 0, 20);
    }
    return std::nullopt;
  }

private:
  // False at the deadline or when the slave side is closed (EIO).
  bool read_some(clock_type::time_point deadline) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
                  deadline - clock_type::now())
                  .count();
    if (left <= 0)
      return false;
    pollfd p{master_, POLLIN, 0};
    if (poll(&p, 1, static_cast<int>(std::min<long long>(left, 200))) <= 0)
      return clock_type::now() < deadline;
    char buf[4096];
    auto n = ::read(master_, buf, sizeof buf);
    if (n <= 0)
      return false;
    shown_.append(buf, static_cast<size_t>(n));
    return true;
  }

  int master_ = -1;
  pid_t pid_ = -1;
  std::string error_;
  std::string shown_;
  size_t cursor_ = 0;
};

} // namespace cadre::test
