#pragma once

// A `cadre` process for integration tests: spawned with posix_spawn,
// stdout on a pipe read line by line with deadlines, stderr in a file, and
// killed and reaped by the destructor so no test leaves a child behind.

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <fstream>
#include <optional>
#include <sstream>
#include <string>
#include <thread>
#include <utility>
#include <vector>

extern char** environ;

namespace cadre::test {

using clock_type = std::chrono::steady_clock;

inline std::string read_file(const std::string& path) {
  std::ifstream in{path};
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}


inline std::string describe_status(int status) {
  if (WIFEXITED(status))
    return "exit " + std::to_string(WEXITSTATUS(status));
  if (WIFSIGNALED(status))
    return std::string{"signal "} + strsignal(WTERMSIG(status));
  return "status " + std::to_string(status);
}

/// A `cadre` process with stdout on a pipe and stderr in a file. The
/// destructor kills and reaps it, so no path leaves a child behind.
class cadre_process {
public:
  /// `env`: "NAME=value" entries added to (and overriding) this process's
  /// environment. Stderr goes to `err_file`, appended to when `append`.
  cadre_process(const std::vector<std::string>& args, std::string err_file,
                const std::vector<std::string>& env = {}, bool append = false)
    : err_file_(std::move(err_file)) {
    what_ = "cadre";
    for (const auto& a : args)
      what_ += " " + a;
    int fds[2];
    if (pipe2(fds, O_CLOEXEC) != 0) {
      error_ = std::string{"pipe2: "} + std::strerror(errno);
      return;
    }
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_adddup2(&fa, fds[1], STDOUT_FILENO);
    posix_spawn_file_actions_addopen(&fa, STDERR_FILENO, err_file_.c_str(),
                                     O_WRONLY | O_CREAT
                                       | (append ? O_APPEND : O_TRUNC),
                                     0644);
    posix_spawn_file_actions_addopen(&fa, STDIN_FILENO, "/dev/null",
                                     O_RDONLY, 0);
    std::vector<char*> argv;
    argv.push_back(const_cast<char*>(CADRE_EXE));
    for (const auto& a : args)
      argv.push_back(const_cast<char*>(a.c_str()));
    argv.push_back(nullptr);
    std::vector<std::string> env_text;
    for (char** e = environ; *e != nullptr; ++e) {
      std::string entry{*e};
      auto name = entry.substr(0, entry.find('='));
      bool overridden = false;
      for (const auto& x : env)
        overridden = overridden || x.substr(0, x.find('=')) == name;
      if (!overridden)
        env_text.push_back(std::move(entry));
    }
    env_text.insert(env_text.end(), env.begin(), env.end());
    std::vector<char*> envp;
    for (auto& e : env_text)
      envp.push_back(e.data());
    envp.push_back(nullptr);
    auto rc = posix_spawn(&pid_, CADRE_EXE, &fa, nullptr, argv.data(),
                          envp.data());
    posix_spawn_file_actions_destroy(&fa);
    close(fds[1]);
    out_ = fds[0];
    if (rc != 0) {
      error_ = std::string{"posix_spawn: "} + std::strerror(rc);
      pid_ = -1;
    }
  }

  ~cadre_process() {
    kill_now();
    if (out_ >= 0)
      close(out_);
  }

  cadre_process(const cadre_process&) = delete;
  cadre_process& operator=(const cadre_process&) = delete;

  bool ok() const {
    return pid_ > 0;
  }

  clock_type::time_point started() const {
    return started_;
  }

  /// True once stdout has ended and every complete line was read.
  bool at_eof() const {
    return eof_ && buf_.find('\n') == std::string::npos;
  }

  pid_t pid() const {
    return pid_;
  }

  /// The command line and, when set, why it could not start.
  std::string what() const {
    return error_.empty() ? what_ : what_ + ": " + error_;
  }

  std::string stderr_text() const {
    return read_file(err_file_);
  }

  /// The next complete line of stdout. False at end of output or when
  /// `deadline` passed first.
  bool read_line(std::string& line, clock_type::time_point deadline) {
    for (;;) {
      if (auto nl = buf_.find('\n'); nl != std::string::npos) {
        line = buf_.substr(0, nl);
        buf_.erase(0, nl + 1);
        return true;
      }
      if (eof_ || out_ < 0)
        return false;
      auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
                    deadline - clock_type::now())
                    .count();
      if (left < 0)
        return false;
      pollfd p{out_, POLLIN, 0};
      auto n = poll(&p, 1, static_cast<int>(left));
      if (n < 0 && errno == EINTR)
        continue;
      if (n <= 0)
        return false;
      char chunk[4096];
      auto got = read(out_, chunk, sizeof(chunk));
      if (got < 0 && errno == EINTR)
        continue;
      if (got <= 0) {
        eof_ = true;
        continue;
      }
      buf_.append(chunk, static_cast<size_t>(got));
    }
  }

  /// Every remaining line of stdout until end of output or `deadline`.
  std::vector<std::string> read_all(clock_type::time_point deadline) {
    std::vector<std::string> lines;
    std::string line;
    while (read_line(line, deadline))
      lines.push_back(line);
    return lines;
  }

  /// True when the process has exited (and is reaped).
  bool exited() {
    return reap(false);
  }

  /// Waits for the process to exit by itself until `deadline`; returns its
  /// wait status.
  std::optional<int> wait_until(clock_type::time_point deadline) {
    while (!reap(false)) {
      if (clock_type::now() >= deadline)
        return std::nullopt;
      std::this_thread::sleep_for(std::chrono::milliseconds{10});
    }
    return status_;
  }

  /// What the process used (ru_maxrss: its peak resident set, in KiB),
  /// once reaped.
  const rusage& usage() const {
    return usage_;
  }

  void signal(int sig) {
    if (pid_ > 0 && !reaped_)
      ::kill(pid_, sig);
  }

  /// SIGKILL (if still running) and reap. Returns the wait status.
  int kill_now() {
    if (pid_ > 0 && !reaped_) {
      ::kill(pid_, SIGKILL);
      reap(true);
    }
    return status_;
  }

private:
  bool reap(bool block) {
    if (reaped_ || pid_ <= 0)
      return true;
    for (;;) {
      auto r = wait4(pid_, &status_, block ? 0 : WNOHANG, &usage_);
      if (r < 0 && errno == EINTR)
        continue;
      if (r == 0)
        return false;
      reaped_ = true;
      return true;
    }
  }

  std::string what_;
  std::string err_file_;
  pid_t pid_ = -1;
  int out_ = -1;
  std::string buf_;
  bool eof_ = false;
  bool reaped_ = false;
  int status_ = 0;
  rusage usage_{};
  std::string error_;
  clock_type::time_point started_ = clock_type::now();
};

/// What a command printed and how it ended.
struct outcome {
  int exit_code = -1; ///< -1 when it did not exit normally
  std::vector<std::string> out;
  std::string err;
  long max_rss_kib = 0; ///< the process's peak resident set (getrusage)

  /// The last line printed, or "" when none was: a command that hung and
  /// was killed printed nothing, and its test fails on its checks, not on
  /// reading past an empty vector.
  const std::string& last_line() const {
    static const std::string none;
    return out.empty() ? none : out.back();
  }
};

/// Runs a command to its end, bounded by `limit`; nullopt (after a gtest
/// failure) when it could not start or did not end in time. An end by a
/// signal is a gtest failure too, unless `may_die` (exit_code is then -1).
/// Needs <gtest/gtest.h> included first.
inline std::optional<outcome>
run_to_end(const std::vector<std::string>& args, const std::string& err_file,
           std::chrono::seconds limit,
           const std::vector<std::string>& env = {}, bool may_die = false) {
  cadre_process p{args, err_file, env};
  if (!p.ok()) {
    ADD_FAILURE() << p.what();
    return std::nullopt;
  }
  auto deadline = clock_type::now() + limit;
  outcome res;
  res.out = p.read_all(deadline);
  auto st = p.wait_until(deadline);
  if (!st) {
    p.kill_now();
    ADD_FAILURE() << p.what() << ": still running after " << limit.count()
                  << " s; killed. stderr:\n"
                  << p.stderr_text();
    return std::nullopt;
  }
  res.exit_code = WIFEXITED(*st) ? WEXITSTATUS(*st) : -1;
  res.err = p.stderr_text();
  res.max_rss_kib = p.usage().ru_maxrss;
  if (res.exit_code < 0 && !may_die)
    ADD_FAILURE() << p.what() << ": " << describe_status(*st)
                  << "; stderr:\n"
                  << res.err;
  return res;
}

} // namespace cadre::test
