#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "cadre/messages/error.hpp"
#include "cadre/messages/event.hpp"
#include "cadre/messages/execution.hpp"

namespace cadre::persistence {

/// How the event store opens its RocksDB database.
struct store_options {
  /// Directory of the database; created when missing (unless read_only).
  /// Default: ".cadre"
  std::string dir = ".cadre";
  /// false: `wal` mode, a write returns once it is in RocksDB's WAL (survives
  /// a process crash). true: `sync` mode, each group is fsync'd (survives a
  /// power loss). Default: false
  bool sync = false;
  /// true: open for reading only, beside a process that may hold the store
  /// open for writing (RocksDB's secondary instance, whose info log lives in
  /// a private directory under the system temp dir, removed on close). The
  /// store sees the state of open() and of each refresh(); writes fail with
  /// errc::invalid_input. The directory must hold a store. Default: false
  bool read_only = false;
  /// Appends fail with errc::storage_error while the store's file system
  /// has fewer free bytes than this, so RocksDB rarely runs into a full
  /// disk (when it does, writes stop until RocksDB sees 64 MiB free and
  /// resumes); they go through again once space is freed. 0: no check.
  /// Default: 128 MiB
  uint64_t min_free_bytes = uint64_t{128} << 20;
};

/// The log in which an import records, before it writes them, the logs it
/// creates: log import_record_prefix + the execution's id, one event of type
/// import_record_type per log created (payload {"log": NAME}), each written
/// in one request with that log's first events. The import removes it once
/// the execution's index entry is written (or what it wrote is removed);
/// one a killed import left is what event_store::erase_killed_imports
/// finds. No execution id has a ':', so no execution's log is named so.
inline constexpr std::string_view import_record_prefix = "import:";
inline constexpr std::string_view import_record_type = "import_log_created";

/// The durable log of every execution, the execution index and the stored
/// definitions, in one RocksDB database with a column family each
/// (docs/event-log.md).
///
/// Thread safety: all methods may be called from any thread, but appends to
/// one execution must come from one writer (its coordinator, through the
/// event store actor) for sequence checks to be meaningful.
///
/// A read-only store (store_options::read_only) rejects append_group and
/// put_definition with errc::invalid_input ("store opened read-only").
class event_store {
public:
  virtual ~event_store();

  /// Opens (or creates) the database at `opts.dir`; with `opts.read_only`,
  /// opens an existing one for reading only.
  /// Never creates a store over a directory with RocksDB files but no
  /// CURRENT; a read-only open with no writer holding the store first
  /// proves it whole (every table file opens, the WAL replays strictly).
  /// Errors: errc::not_found ("no cadre store at DIR") when read_only and
  /// `opts.dir` holds no store; errc::storage_error naming the directory and
  /// RocksDB's reason ("store DIR is damaged: ..." for a missing CURRENT, a
  /// damaged WAL record, table file or MANIFEST).
  [[nodiscard]] static expected<std::unique_ptr<event_store>>
  open(store_options opts);

  /// Writes every request of `group` in one WriteBatch (group commit) and
  /// returns, per request, the last sequence number written for its first
  /// event's execution, or an error for that request alone:
  /// errc::conflict when its first event's seq is not last_seq + 1 of its
  /// execution (or a request's events are not dense), errc::storage_error
  /// when the write failed or the disk is full (store_options::
  /// min_free_bytes; then every request fails), errc::unavailable while
  /// RocksDB waits for space after a failed write.
  [[nodiscard]] virtual std::vector<expected<uint64_t>>
  append_group(const std::vector<append_request>& group) = 0;

  /// append_group for one request.
  [[nodiscard]] expected<uint64_t> append(const append_request& req);

  /// True when opened with store_options::read_only.
  [[nodiscard]] virtual bool read_only() const;

  /// Read-only stores: makes what writers committed since open() or the last
  /// refresh() visible to the reads that follow. Read-write stores see their
  /// own writes at once: a no-op. May run concurrently with reads.
  /// Errors: errc::storage_error or errc::unavailable naming the directory.
  [[nodiscard]] virtual expected<void> refresh();

  /// Events of `execution_id` with seq >= `from`, at most `max` (0: all), in
  /// sequence order. An unknown execution yields an empty vector.
  [[nodiscard]] virtual expected<std::vector<event>>
  read(const std::string& execution_id, uint64_t from, uint64_t max) const
    = 0;

  /// Last sequence number of `execution_id`, 0 when it has no events.
  [[nodiscard]] virtual expected<uint64_t>
  last_seq(const std::string& execution_id) const = 0;

  /// Executions of the index matching `filter`, newest first.
  [[nodiscard]] virtual expected<std::vector<execution_info>>
  list(const execution_filter& filter) const = 0;

  /// One execution's index entry. Errors: errc::not_found.
  [[nodiscard]] virtual expected<execution_info>
  get(const std::string& execution_id) const = 0;

  /// The execution remembered for a submission key, or "" when none.
  [[nodiscard]] virtual expected<std::string>
  find_by_idempotency_key(const std::string& key) const = 0;

  /// Stores a definition under name and version (replacing the same pair).
  [[nodiscard]] virtual expected<void>
  put_definition(const definition_record& def) = 0;

  /// A stored definition; an empty `version` picks the greatest version
  /// (compared as numbers where both are numeric, else as text).
  /// Errors: errc::not_found.
  [[nodiscard]] virtual expected<definition_record>
  get_definition(const std::string& name, const std::string& version) const
    = 0;

  /// The stored definitions (name and version; documents left null), of
  /// `name` or of all names when it is empty, in key order.
  [[nodiscard]] virtual expected<std::vector<definition_record>>
  list_definitions(const std::string& name) const = 0;

  /// Removes every version of definition `name`; returns how many there
  /// were (0: none stored).
  [[nodiscard]] virtual expected<size_t>
  delete_definition(const std::string& name) = 0;

  /// Removes every event of log `name` in one write, unless the index has
  /// an entry of that name: what an import that failed half-way wrote (its
  /// execution's log, whose index entry comes with its last events, and the
  /// agent logs it created). A whole execution is never removed this way.
  /// Returns how many events the log had (0: none).
  /// Errors: errc::conflict for an execution in the index,
  /// errc::invalid_input in a read-only store, errc::storage_error.
  [[nodiscard]] virtual expected<uint64_t>
  erase_unindexed(const std::string& name) = 0;

  /// Removes what imports killed half-way left: for each import record
  /// (import_record_prefix) whose execution has no index entry, every log it
  /// names and the execution's log (as erase_unindexed: never an execution
  /// in the index); then the record, last, so a removal killed midway is
  /// done again by the next. Returns a line per record saying what went.
  /// Only a writer with no import running may call it: the node does as it
  /// opens the store (the store's lock keeps other processes out).
  /// Errors: errc::invalid_input in a read-only store, errc::storage_error.
  [[nodiscard]] virtual expected<std::vector<std::string>>
  erase_killed_imports() = 0;

  /// Calls `fn` for every event of every execution, in key order; stops and
  /// returns the first error. Used by replay benchmarks and store checks.
  /// The event passed to `fn` is reused: it is valid only during the call.
  [[nodiscard]] virtual expected<uint64_t>
  scan(const std::function<void(const event&)>& fn) const = 0;
};

} // namespace cadre::persistence
