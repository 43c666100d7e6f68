#include "store_creation.hpp"

#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <memory>
#include <system_error>
#include <thread>
#include <vector>

#include <rocksdb/db.h>

#include "cadre/messages/error.hpp"
#include "info_log.hpp"
#include "store_layout.hpp"

namespace cadre::persistence::detail {

namespace {

namespace fs = std::filesystem;

caf::error creation_error(const std::string& dir, const std::string& what,
                          int err) {
  return make_error(errc::storage_error,
                    "create store '" + dir + "': " + what + ": "
                      + std::strerror(err));
}

/// Flushes `path` (a file or a directory) to disk. Best effort for a
/// directory whose file system cannot sync one.
bool sync_path(const std::string& path, bool directory) {
  int fd = ::open(path.c_str(),
                  O_RDONLY | O_CLOEXEC | (directory ? O_DIRECTORY : 0));
  if (fd < 0)
    return false;
  auto rc = ::fsync(fd);
  auto err = errno;
  ::close(fd);
  return rc == 0 || (directory && (err == EINVAL || err == EROFS));
}

/// An exclusive flock on a store's directory, held while a store is created
/// there: another creator would mix its files with ours. RocksDB's own LOCK
/// is an fcntl lock on DIR/LOCK, which this cannot disturb.
class creation_lock {
public:
  creation_lock() = default;
  ~creation_lock() {
    if (fd_ >= 0)
      ::close(fd_); // releases the flock
  }
  creation_lock(const creation_lock&) = delete;
  creation_lock& operator=(const creation_lock&) = delete;

  caf::error acquire(const std::string& dir) {
    fd_ = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd_ < 0)
      return make_error(errc::storage_error,
                        "open event store '" + dir + "': "
                          + std::strerror(errno));
    // Another creation takes milliseconds; polling keeps a hung one from
    // hanging this open for ever.
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds{30};
    while (::flock(fd_, LOCK_EX | LOCK_NB) != 0) {
      // A file system without flock (some network ones): RocksDB's LOCK
      // still keeps two writers apart once the store exists.
      if (errno == ENOLCK || errno == EOPNOTSUPP || errno == EINVAL)
        return caf::error{};
      if (errno != EWOULDBLOCK && errno != EINTR)
        return creation_error(dir, "lock the directory", errno);
      if (std::chrono::steady_clock::now() >= deadline)
        return make_error(errc::storage_error,
                          "create store '" + dir + "': another process has "
                          "been creating a store there for 30 s");
      std::this_thread::sleep_for(std::chrono::milliseconds{10});
    }
    return caf::error{};
  }

private:
  int fd_ = -1;
};

/// Creates an empty store (every column family of the layout) in `staging`.
caf::error create_in(const std::string& dir, const std::string& staging) {
  auto layout = store_layout(staging, false);
  if (!layout)
    return std::move(layout.error());
  auto& db_opts = layout->db_opts;
  // The info log of the creation is not kept, and no path of the staging
  // directory may end up in the store's OPTIONS file.
  log_to(db_opts, "");
  db_opts.db_log_dir.clear();
  db_opts.create_if_missing = true;
  db_opts.error_if_exists = true;
  std::vector<rocksdb::ColumnFamilyHandle*> handles;
  rocksdb::DB* raw = nullptr;
  auto st = rocksdb::DB::Open(db_opts, staging, layout->descriptors, &handles,
                              &raw);
  if (!st.ok())
    return open_error(dir, "create store '" + dir + "'", st);
  std::unique_ptr<rocksdb::DB> db{raw};
  for (auto* h : handles)
    db->DestroyColumnFamilyHandle(h).PermitUncheckedError();
  st = db->Close();
  if (!st.ok())
    return open_error(dir, "create store '" + dir + "'", st);
  return caf::error{};
}

/// Moves the store in `staging` into `dir`, CURRENT last, each step synced
/// so that no crash can make CURRENT's rename durable before the files it
/// names; then removes `staging`. Repeatable: a move killed midway is
/// finished by the next. The lock and the info log stay behind.
caf::error move_into_place(const std::string& dir, const std::string& staging) {
  std::vector<std::string> names;
  std::error_code ec;
  for (fs::directory_iterator it{staging, ec};
       !ec && it != fs::directory_iterator{}; it.increment(ec)) {
    auto name = it->path().filename().string();
    if (name != "CURRENT" && name != "LOCK" && name.rfind("LOG", 0) != 0
        && it->is_regular_file())
      names.push_back(std::move(name));
  }
  if (ec)
    return creation_error(dir, "list '" + staging + "'", ec.value());
  auto move = [&](const std::string& name) -> caf::error {
    auto from = staging + "/" + name;
    if (!sync_path(from, false))
      return creation_error(dir, "sync '" + from + "'", errno);
    if (std::rename(from.c_str(), (dir + "/" + name).c_str()) != 0)
      return creation_error(dir, "move '" + from + "' into place", errno);
    return caf::error{};
  };
  for (const auto& name : names)
    if (auto err = move(name))
      return err;
  if (!sync_path(dir, true))
    return creation_error(dir, "sync the directory", errno);
  if (fs::exists(staging + "/CURRENT", ec)) {
    if (auto err = move("CURRENT"))
      return err;
    if (!sync_path(dir, true))
      return creation_error(dir, "sync the directory", errno);
  }
  fs::remove_all(staging, ec);
  if (ec)
    return creation_error(dir, "remove '" + staging + "'", ec.value());
  sync_path(dir, true);
  return caf::error{};
}

/// Finishes or removes the staging directories in `dir` that killed
/// creations left; only called under the creation lock, so none of them
/// belongs to a creation still running.
caf::error recover_staging(const std::string& dir) {
  std::vector<std::string> staged;
  std::error_code ec;
  for (fs::directory_iterator it{dir, ec};
       !ec && it != fs::directory_iterator{}; it.increment(ec))
    if (is_staging_name(it->path().filename().string())
        && it->is_directory())
      staged.push_back(it->path().string());
  if (ec)
    return creation_error(dir, "list the directory", ec.value());
  for (const auto& staging : staged) {
    if (fs::exists(staging + "/CURRENT", ec)
        && !fs::exists(dir + "/CURRENT", ec)) {
      if (auto err = move_into_place(dir, staging))
        return err;
      continue;
    }
    fs::remove_all(staging, ec);
    if (ec)
      return creation_error(dir, "remove '" + staging + "'", ec.value());
  }
  if (!staged.empty())
    sync_path(dir, true);
  return caf::error{};
}

} // namespace

bool is_staging_name(std::string_view name) {
  if (name.substr(0, staging_prefix.size()) != staging_prefix)
    return false;
  auto pid = name.substr(staging_prefix.size());
  return !pid.empty() && pid.size() <= 10
         && std::all_of(pid.begin(), pid.end(),
                        [](char c) { return c >= '0' && c <= '9'; });
}

bool creation_interrupted(const std::string& dir) {
  std::error_code ec;
  if (fs::exists(dir + "/CURRENT", ec))
    return false;
  for (fs::directory_iterator it{dir, ec};
       !ec && it != fs::directory_iterator{}; it.increment(ec)) {
    if (is_staging_name(it->path().filename().string())
        && fs::exists(it->path() / "CURRENT", ec))
      return true;
  }
  return false;
}

caf::error prepare_store_dir(const std::string& dir) {
  std::error_code ec;
  auto made = fs::create_directories(dir, ec);
  if (ec)
    return make_error(errc::storage_error,
                      "open event store '" + dir
                        + "': cannot create the directory: " + ec.message());
  if (made) {
    // The new directory's own entry, so a store acknowledged later cannot
    // vanish with it at a power loss.
    auto path = fs::absolute(dir, ec).lexically_normal();
    if (!path.has_filename())
      path = path.parent_path();
    if (!ec)
      sync_path(path.parent_path().string(), true);
  }
  creation_lock lock;
  if (auto err = lock.acquire(dir))
    return err;
  if (auto err = recover_staging(dir))
    return err;
  auto files = inspect_store_dir(dir);
  if (files.has_current)
    return caf::error{};
  if (!files.rocksdb_files.empty())
    return missing_current_error(dir, files);
  auto staging = dir + "/" + std::string{staging_prefix}
                 + std::to_string(::getpid());
  if (!fs::create_directory(staging, ec) || ec)
    return make_error(errc::storage_error,
                      "create store '" + dir + "': cannot create '" + staging
                        + "': " + (ec ? ec.message() : "it exists"));
  if (auto err = create_in(dir, staging)) {
    fs::remove_all(staging, ec);
    return err;
  }
  return move_into_place(dir, staging);
}

} // namespace cadre::persistence::detail
