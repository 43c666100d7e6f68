#include "info_log.hpp"

#include <fcntl.h>
#include <sys/time.h>
#include <unistd.h>

#include <algorithm>
#include <cstdarg>
#include <cstdio>
#include <ctime>
#include <mutex>
#include <string_view>

#include <rocksdb/env.h>

namespace cadre::persistence::detail {

namespace {

constexpr size_t max_log_bytes = size_t{16} << 20;

class info_log final : public rocksdb::Logger {
public:
  explicit info_log(std::string path)
    : rocksdb::Logger(rocksdb::InfoLogLevel::INFO_LEVEL),
      path_(std::move(path)) {
    open_file();
  }

  ~info_log() override {
    close_file();
  }

  using rocksdb::Logger::Logv;

  void Logv(const char* format, va_list ap) override {
    char line[4096];
    timeval now{};
    ::gettimeofday(&now, nullptr);
    std::tm t{};
    ::localtime_r(&now.tv_sec, &t);
    auto n = std::snprintf(line, sizeof(line),
                           "%04d/%02d/%02d-%02d:%02d:%02d.%06ld ",
                           t.tm_year + 1900, t.tm_mon + 1, t.tm_mday,
                           t.tm_hour, t.tm_min, t.tm_sec,
                           static_cast<long>(now.tv_usec));
    if (n < 0)
      return;
    auto used = static_cast<size_t>(n);
    va_list copy;
    va_copy(copy, ap);
    auto m = std::vsnprintf(line + used, sizeof(line) - used - 1, format,
                            copy);
    va_end(copy);
    if (m < 0)
      return;
    // A longer line is cut: the log is for people, not for recovery.
    used = std::min(used + static_cast<size_t>(m), sizeof(line) - 2);
    if (line[used - 1] != '\n')
      line[used++] = '\n';
    write_line(std::string_view{line, used});
  }

  size_t GetLogFileSize() const override {
    std::lock_guard<std::mutex> guard{mtx_};
    return size_;
  }

protected:
  rocksdb::Status CloseImpl() override {
    close_file();
    return rocksdb::Status::OK();
  }

private:
  void open_file() {
    if (path_.empty())
      return;
    fd_ = ::open(path_.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC,
                 0644);
    size_ = 0;
    if (fd_ >= 0) {
      auto end = ::lseek(fd_, 0, SEEK_END);
      size_ = end > 0 ? static_cast<size_t>(end) : 0;
    }
  }

  void close_file() {
    std::lock_guard<std::mutex> guard{mtx_};
    if (fd_ >= 0)
      ::close(fd_);
    fd_ = -1;
  }

  void write_line(std::string_view line) {
    std::lock_guard<std::mutex> guard{mtx_};
    if (fd_ < 0)
      return;
    if (size_ + line.size() > max_log_bytes) {
      ::close(fd_);
      // A failed rename leaves the file to grow past the bound instead.
      (void) ::rename(path_.c_str(), (path_ + ".old").c_str());
      open_file();
      if (fd_ < 0)
        return;
    }
    // A failed or short write drops (part of) the line, nothing else.
    auto written = ::write(fd_, line.data(), line.size());
    if (written > 0)
      size_ += static_cast<size_t>(written);
  }

  std::string path_;
  mutable std::mutex mtx_;
  int fd_ = -1;
  size_t size_ = 0;
};

} // namespace

void log_to(rocksdb::DBOptions& db_opts, const std::string& log_dir) {
  if (log_dir.empty()) {
    // Nowhere to write: a logger that drops every line.
    db_opts.info_log = std::make_shared<info_log>(std::string{});
    return;
  }
  db_opts.db_log_dir = log_dir;
  db_opts.info_log = std::make_shared<info_log>(log_dir + "/LOG");
}

} // namespace cadre::persistence::detail
