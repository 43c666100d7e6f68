#pragma once

// The acknowledgement mark: the last RocksDB sequence number a store's writer
// acknowledged, kept in a file of its own beside RocksDB's (ACKED). RocksDB
// 7.8 does not record the live WAL in the MANIFEST, so a live WAL deleted
// after a crash opens as a store that silently lacks what it held; compared
// with the sequence number the store's files recover to, the mark tells.

#include <cstdint>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "cadre/messages/error.hpp"

namespace cadre::persistence::detail {

/// The mark's file name inside a store's directory.
constexpr std::string_view ack_mark_name = "ACKED";

/// The mark of the store in `dir`; none when the file is missing or empty
/// (a store of an older cadre, or a crash before its first write).
/// Errors: errc::storage_error when the file is unreadable or damaged.
[[nodiscard]] expected<std::optional<uint64_t>>
read_ack_mark(const std::string& dir);

/// errc::storage_error saying the store in `dir` is damaged when `latest`
/// (the sequence number its files recover to) is below `mark`; `wal_files`
/// names the WAL files there. Empty otherwise.
caf::error check_ack_mark(const std::string& dir,
                          const std::optional<uint64_t>& mark,
                          uint64_t latest,
                          const std::vector<std::string>& wal_files);

/// The WAL files (`*.log`) among RocksDB's files of a store directory.
std::vector<std::string> wal_files_of(const std::vector<std::string>& files);

/// Writes the mark of one store; used by its only writer. Thread-safe.
class ack_mark_writer {
public:
  ack_mark_writer() = default;
  ~ack_mark_writer();
  ack_mark_writer(const ack_mark_writer&) = delete;
  ack_mark_writer& operator=(const ack_mark_writer&) = delete;

  /// Opens (creating) the mark of the store in `dir` and sets it to `seq`,
  /// synced with its directory entry. Errors: errc::storage_error.
  [[nodiscard]] caf::error open(const std::string& dir, uint64_t seq);

  /// Raises the mark to `seq` (never lowers it). Best effort: a mark that
  /// could not be written lags, which only narrows what the next open
  /// detects; it is not synced (see the definition for why).
  void advance(uint64_t seq);

private:
  std::mutex mtx_;
  int fd_ = -1;
  uint64_t written_ = 0;
};

/// Sets the mark of the store in `dir` to `seq` (after a repair).
/// Errors: errc::storage_error.
[[nodiscard]] caf::error reset_ack_mark(const std::string& dir, uint64_t seq);

} // namespace cadre::persistence::detail
