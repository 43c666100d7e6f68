#pragma once

// A throwaway PostgreSQL server for tests: initdb into a temp dir, postgres
// on 127.0.0.1 and a free port, fsync off, stopped (and its files removed)
// by the destructor. Runs the server as the `postgres` user when the tests
// run as root (PostgreSQL refuses root), as the current user otherwise.

#include <fcntl.h>
#include <pwd.h>
#include <signal.h>
#include <sys/file.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include <grp.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "free_port.hpp"
#include "temp_dir.hpp"

namespace cadre::test {

class postgres_server {
public:
  /// Starts a server. With `template_cache`, the first server initdb's
  /// into that directory and later ones (other test processes, as ctest
  /// runs each test alone) copy it, which is much faster than initdb.
  explicit postgres_server(std::filesystem::path template_cache = {})
    : template_cache_(std::move(template_cache)) {
    error_ = start();
  }

  ~postgres_server() {
    stop();
  }

  postgres_server(const postgres_server&) = delete;
  postgres_server& operator=(const postgres_server&) = delete;

  /// True when the server accepts connections.
  bool running() const {
    return error_.empty();
  }

  /// Why the server did not start, with its log.
  const std::string& error() const {
    return error_;
  }

  int port() const {
    return port_;
  }

  /// URL of the database `postgres` as the superuser `cadre` (trust auth,
  /// no password); with `schema`, that schema comes first in search_path.
  std::string url(const std::string& schema = {}) const {
    auto url = "postgresql://cadre@127.0.0.1:" + std::to_string(port_)
               + "/postgres";
    if (!schema.empty())
      url += "?options=-csearch_path%3D" + schema;
    return url;
  }

private:
  static std::string read_file(const std::filesystem::path& p) {
    std::ifstream in{p};
    std::stringstream ss;
    ss << in.rdbuf();
    return ss.str();
  }

  /// The newest /usr/lib/postgresql/<version>/bin holding initdb, or
  /// $CADRE_PG_BIN.
  static std::filesystem::path bin_dir() {
    if (const char* env = std::getenv("CADRE_PG_BIN"))
      return env;
    std::filesystem::path best;
    int best_version = -1;
    std::error_code ec;
    for (auto& e :
         std::filesystem::directory_iterator{"/usr/lib/postgresql", ec}) {
      auto bin = e.path() / "bin";
      if (!std::filesystem::exists(bin / "initdb"))
        continue;
      int v = std::atoi(e.path().filename().c_str());
      if (v > best_version) {
        best_version = v;
        best = bin;
      }
    }
    return best;
  }

  /// Forks and execs `argv` with stdout and stderr appended to `log`, as
  /// the server user. Everything the child needs is prepared before fork.
  pid_t spawn(const std::vector<std::string>& args, const std::string& log,
              bool die_with_parent) {
    std::vector<char*> argv;
    for (auto& a : args)
      argv.push_back(const_cast<char*>(a.c_str()));
    argv.push_back(nullptr);
    auto pid = ::fork();
    if (pid != 0)
      return pid;
    // Child: only async-signal-safe calls from here on.
    if (as_user_) {
      if (::setgroups(0, nullptr) != 0 || ::setgid(gid_) != 0
          || ::setuid(uid_) != 0)
        ::_exit(126);
    }
    // After setuid, which clears it: SIGQUIT (immediate shutdown) reaches
    // the server if the test process dies without running destructors.
    if (die_with_parent)
      ::prctl(PR_SET_PDEATHSIG, SIGQUIT);
    int fd = ::open(log.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0600);
    if (fd >= 0) {
      ::dup2(fd, 1);
      ::dup2(fd, 2);
      ::close(fd);
    }
    int null_fd = ::open("/dev/null", O_RDONLY);
    if (null_fd >= 0)
      ::dup2(null_fd, 0);
    ::execv(argv[0], argv.data());
    ::_exit(127);
  }

  std::string start() {
    auto bin = bin_dir();
    if (bin.empty())
      return "no PostgreSQL server binaries in /usr/lib/postgresql/*/bin "
             "(install the postgresql package, or set CADRE_PG_BIN)";
    pg_dir_ = dir_.path() / "pg";
    std::filesystem::create_directory(pg_dir_);
    if (::geteuid() == 0) {
      auto* pw = ::getpwnam("postgres");
      if (pw == nullptr)
        return "running as root, but there is no 'postgres' user to run "
               "the server as (PostgreSQL refuses root)";
      as_user_ = true;
      uid_ = pw->pw_uid;
      gid_ = pw->pw_gid;
      // The server user must reach its directory, whatever the umask.
      ::chmod(dir_.path().c_str(), 0755);
      if (::chown(pg_dir_.c_str(), uid_, gid_) != 0)
        return "cannot chown " + pg_dir_.string() + " to postgres";
    }
    ::chmod(pg_dir_.c_str(), 0700);
    auto data = (pg_dir_ / "data").string();
    if (auto err = make_data_dir(bin, data); !err.empty())
      return err;
    auto log = pg_dir_ / "server.log";
    // A port picked free may be taken before the server binds it: retry.
    std::string last;
    for (int attempt = 0; attempt < 3; ++attempt) {
      port_ = free_port();
      std::error_code ec;
      std::filesystem::remove(log, ec);
      pid_ = spawn({(bin / "postgres").string(), "-D", data, "-p",
                    std::to_string(port_), "-c", "listen_addresses=127.0.0.1",
                    "-c", "unix_socket_directories=" + pg_dir_.string(), "-c",
                    "fsync=off", "-c", "synchronous_commit=off", "-c",
                    "full_page_writes=off", "-c", "logging_collector=off"},
                   log.string(), true);
      if (pid_ < 0)
        return "fork failed";
      last = wait_ready(log);
      if (last.empty())
        return {};
      stop();
    }
    return last;
  }

  /// Runs initdb into `data`.
  std::string initdb(const std::filesystem::path& bin,
                     const std::string& data) {
    auto initdb_log = (pg_dir_ / "initdb.log").string();
    auto pid = spawn({(bin / "initdb").string(), "-D", data, "-U", "cadre",
                      "-A", "trust", "-E", "UTF8", "--locale=C", "--no-sync",
                      // 1 MB WAL segments instead of 16: less to copy.
                      "--wal-segsize=1"},
                     initdb_log, false);
    if (pid < 0)
      return "fork failed";
    int status = 0;
    ::waitpid(pid, &status, 0);
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
      return "initdb failed (status " + std::to_string(status)
             + "):\n" + read_file(initdb_log);
    return {};
  }

  /// Fills `data` with a fresh cluster: a copy of the template cache (made
  /// first if missing, under a lock), or initdb when there is no cache.
  std::string make_data_dir(const std::filesystem::path& bin,
                            const std::string& data) {
    namespace fs = std::filesystem;
    if (template_cache_.empty())
      return initdb(bin, data);
    std::error_code ec;
    // One cache per server version: a cluster only runs on its own major.
    auto cache = template_cache_;
    cache += "-" + bin.parent_path().filename().string();
    fs::create_directories(cache.parent_path(), ec);
    auto lock_path = cache;
    lock_path += ".lock";
    int lock = ::open(lock_path.c_str(), O_RDWR | O_CREAT, 0644);
    if (lock < 0 || ::flock(lock, LOCK_EX) != 0) {
      if (lock >= 0)
        ::close(lock);
      return initdb(bin, data);
    }
    std::string err;
    if (!fs::exists(cache / "PG_VERSION")) {
      err = initdb(bin, data);
      if (err.empty()) {
        auto tmp = cache;
        tmp += ".tmp";
        fs::remove_all(tmp, ec);
        fs::copy(data, tmp, fs::copy_options::recursive, ec);
        if (!ec)
          fs::rename(tmp, cache, ec);
        // Without a cache the next process runs initdb again: no failure.
        fs::remove_all(tmp, ec);
      }
      ::close(lock);
      return err;
    }
    fs::copy(cache, data, fs::copy_options::recursive, ec);
    ::close(lock);
    if (ec)
      return "cannot copy the cluster template " + cache.string() + ": "
             + ec.message();
    // The server insists on owning its data directory, mode 0700.
    ::chmod(data.c_str(), 0700);
    if (as_user_) {
      for (auto& e : fs::recursive_directory_iterator{data})
        if (::lchown(e.path().c_str(), uid_, gid_) != 0)
          return "cannot chown " + e.path().string();
      if (::lchown(data.c_str(), uid_, gid_) != 0)
        return "cannot chown " + data;
    }
    return {};
  }

  /// Waits until the log says the server accepts connections; the
  /// reason and the log when it exits or takes over a minute instead.
  std::string wait_ready(const std::filesystem::path& log) {
    using namespace std::chrono;
    auto give_up = steady_clock::now() + minutes{1};
    while (steady_clock::now() < give_up) {
      int status = 0;
      if (::waitpid(pid_, &status, WNOHANG) == pid_) {
        pid_ = -1;
        return "postgres exited during start-up (status "
               + std::to_string(status) + "):\n" + read_file(log);
      }
      if (read_file(log).find("ready to accept connections")
          != std::string::npos)
        return {};
      std::this_thread::sleep_for(milliseconds{20});
    }
    return "postgres did not become ready within a minute:\n"
           + read_file(log);
  }

  void stop() {
    using namespace std::chrono;
    if (pid_ <= 0)
      return;
    // SIGINT: fast shutdown (aborts sessions, no waiting for clients).
    ::kill(pid_, SIGINT);
    auto give_up = steady_clock::now() + seconds{30};
    int status = 0;
    while (::waitpid(pid_, &status, WNOHANG) == 0) {
      if (steady_clock::now() > give_up) {
        ::kill(pid_, SIGKILL);
        ::waitpid(pid_, &status, 0);
        break;
      }
      std::this_thread::sleep_for(milliseconds{10});
    }
    pid_ = -1;
  }

  std::filesystem::path template_cache_;
  temp_dir dir_;
  std::filesystem::path pg_dir_;
  bool as_user_ = false;
  uid_t uid_ = 0;
  gid_t gid_ = 0;
  pid_t pid_ = -1;
  int port_ = 0;
  std::string error_;
};

} // namespace cadre::test
