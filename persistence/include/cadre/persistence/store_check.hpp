#pragma once

// Checking a store for damage and salvaging a damaged one (`cadre check`,
// `cadre repair`; docs/operations.md).

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "cadre/messages/error.hpp"
#include "cadre/messages/execution.hpp"

namespace cadre::persistence {

class event_store;

/// What `check_store` found.
struct store_check_report {
  std::string dir;
  /// Table files and WAL files of the store.
  uint64_t table_files = 0;
  uint64_t wal_files = 0;
  /// Entries of the execution index, event logs (executions' and agents'),
  /// and events.
  uint64_t executions = 0;
  uint64_t logs = 0;
  uint64_t events = 0;
  /// Each damage found, in words; empty: the store is whole.
  std::vector<std::string> problems;

  bool ok() const {
    return problems.empty();
  }
};

/// Checks the store in `dir`: its files are all there and hold every
/// acknowledged write (the acknowledgement mark), the WAL replays with
/// no damaged record, every block of every table file matches its checksum,
/// every log is dense from seq 1, and the index agrees with the logs.
/// @pre no process writes the store.
/// Errors: errc::not_found when `dir` holds no store; errc::unavailable when
/// a process holds the store open for writing. Damage is no error: it is in
/// the report.
[[nodiscard]] expected<store_check_report> check_store(const std::string& dir);

/// One event log as `summarize_logs` sees it.
struct log_summary {
  uint64_t events = 0;
  uint64_t first_seq = 0;
  uint64_t last_seq = 0;
  /// The seqs run 1, 2, ... last_seq without a gap.
  bool dense = true;
  /// Type of its first event ("execution_submitted" for an execution).
  std::string first_type;
};

/// Every event log of `store`, by id, in one scan.
[[nodiscard]] expected<std::map<std::string, log_summary>>
summarize_logs(const event_store& store);

/// Where the index and the logs disagree, in words: an entry without a log
/// or whose last_seq is not its log's, an execution log without an entry, a
/// log with gaps.
std::vector<std::string>
compare_index(const std::map<std::string, log_summary>& logs,
              const std::vector<execution_info>& index);

/// What `repair_store` did.
struct store_repair_report {
  /// Files RocksDB could not salvage, moved to `dir`/lost/.
  std::vector<std::string> lost_files;
  /// What else was lost, in words (acknowledged writes missing from every
  /// file, e.g. with a deleted WAL).
  std::vector<std::string> lost;
};

/// Rebuilds the store's MANIFEST from the table files and the WAL records
/// that are intact (RocksDB's RepairDB); damaged files go to `dir`/lost/.
/// Acknowledged writes that no file holds any more (a deleted WAL) are
/// reported in `lost`, and the acknowledgement mark is set to what is left.
/// The index is not rebuilt here (it needs the workflow fold): the caller
/// compares it with the logs afterwards.
/// @pre no process has the store open.
/// Errors: errc::not_found when `dir` holds neither a store nor RocksDB
/// files; errc::unavailable when a process holds the store open for
/// writing; errc::storage_error when RocksDB cannot repair it.
[[nodiscard]] expected<store_repair_report>
repair_store(const std::string& dir);

} // namespace cadre::persistence
