#include "ack_mark.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>

#include "store_layout.hpp"

namespace cadre::persistence::detail {

// The mark is text of a fixed width, the number twice: "acked N N\n" with N
// in 20 digits. Rewritten in place, it never needs a new block on a full
// disk, and a damaged copy shows as two numbers that disagree.

namespace {

constexpr size_t digits = 20;
constexpr std::string_view tag = "acked ";
constexpr size_t mark_size = tag.size() + 2 * digits + 2;

std::string mark_path(const std::string& dir) {
  return dir + "/" + std::string{ack_mark_name};
}

std::string format_mark(uint64_t seq) {
  char buf[mark_size + 1];
  std::snprintf(buf, sizeof(buf), "acked %020llu %020llu\n",
                static_cast<unsigned long long>(seq),
                static_cast<unsigned long long>(seq));
  return {buf, mark_size};
}

bool parse_number(std::string_view text, uint64_t& out) {
  out = 0;
  for (char c : text) {
    if (c < '0' || c > '9')
      return false;
    out = out * 10 + static_cast<uint64_t>(c - '0');
  }
  return true;
}

caf::error io_error(const std::string& dir, std::string_view what) {
  return make_error(errc::storage_error,
                    std::string{what} + " '" + mark_path(dir)
                      + "': " + std::strerror(errno));
}

bool write_all_at(int fd, const std::string& text) {
  return ::pwrite(fd, text.data(), text.size(), 0)
         == static_cast<ssize_t>(text.size());
}

} // namespace

expected<std::optional<uint64_t>> read_ack_mark(const std::string& dir) {
  auto path = mark_path(dir);
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    if (errno == ENOENT)
      return std::optional<uint64_t>{};
    return io_error(dir, "read the acknowledgement mark");
  }
  char buf[mark_size + 1];
  auto got = ::pread(fd, buf, sizeof(buf), 0);
  ::close(fd);
  if (got < 0)
    return io_error(dir, "read the acknowledgement mark");
  if (got == 0)
    return std::optional<uint64_t>{};
  std::string_view text{buf, static_cast<size_t>(got)};
  uint64_t first = 0;
  uint64_t second = 0;
  if (text.size() != mark_size || text.substr(0, tag.size()) != tag
      || text.back() != '\n' || text[tag.size() + digits] != ' '
      || !parse_number(text.substr(tag.size(), digits), first)
      || !parse_number(text.substr(tag.size() + digits + 1, digits), second)
      || first != second)
    return make_error(errc::storage_error,
                      "store '" + dir + "' is damaged: its acknowledgement "
                        "mark '" + path + "' is unreadable (" + damage_hint(dir)
                        + ")");
  return std::optional<uint64_t>{first};
}

std::vector<std::string> wal_files_of(const std::vector<std::string>& files) {
  std::vector<std::string> out;
  for (const auto& name : files)
    if (name.size() > 4 && name.compare(name.size() - 4, 4, ".log") == 0)
      out.push_back(name);
  return out;
}

caf::error check_ack_mark(const std::string& dir,
                          const std::optional<uint64_t>& mark,
                          uint64_t latest,
                          const std::vector<std::string>& wal_files) {
  if (!mark || latest >= *mark)
    return caf::error{};
  std::string wals;
  for (const auto& name : wal_files)
    wals += (wals.empty() ? "" : ", ") + name;
  return make_error(
    errc::storage_error,
    "store '" + dir + "' is damaged: writes up to sequence number "
      + std::to_string(*mark) + " were acknowledged, but its files hold "
      + "them only up to " + std::to_string(latest) + " ("
      + std::to_string(*mark - latest) + " acknowledged writes missing): a "
      + "write-ahead log file (*.log) that held them is missing or cut "
      + "short (WAL files there: " + (wals.empty() ? "none" : wals) + "; "
      + damage_hint(dir) + ")");
}

ack_mark_writer::~ack_mark_writer() {
  if (fd_ >= 0)
    ::close(fd_);
}

caf::error ack_mark_writer::open(const std::string& dir, uint64_t seq) {
  std::lock_guard<std::mutex> guard{mtx_};
  auto path = mark_path(dir);
  fd_ = ::open(path.c_str(), O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
  if (fd_ < 0)
    return io_error(dir, "open the acknowledgement mark");
  // Synced once here, with the directory entry, so the mark exists whenever
  // the store has acknowledged anything.
  if (!write_all_at(fd_, format_mark(seq)) || ::fdatasync(fd_) != 0)
    return io_error(dir, "write the acknowledgement mark");
  int dfd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dfd >= 0) {
    ::fsync(dfd);
    ::close(dfd);
  }
  written_ = seq;
  return caf::error{};
}

void ack_mark_writer::advance(uint64_t seq) {
  // Not synced: the page cache outlives a killed process, which is the crash
  // this guards against; a sync per write would double the fsyncs of sync
  // mode. After a power loss the mark may lag (sync mode: never lead, as it
  // is written after the WAL's fsync); in wal mode a power loss loses
  // acknowledged writes anyway, and the mark then says so.
  std::lock_guard<std::mutex> guard{mtx_};
  if (fd_ < 0 || seq <= written_)
    return;
  if (write_all_at(fd_, format_mark(seq)))
    written_ = seq;
}

caf::error reset_ack_mark(const std::string& dir, uint64_t seq) {
  ack_mark_writer w;
  return w.open(dir, seq);
}

} // namespace cadre::persistence::detail
