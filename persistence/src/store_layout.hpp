#pragma once

// How a cadre store is laid out in RocksDB (options and column families),
// and the checks every open shares: no new store over a damaged one, a
// strict read-only open that proves a store whole, and errors that say the
// store is damaged.

#include <string>
#include <string_view>
#include <vector>

#include <caf/error.hpp>
#include <rocksdb/db.h>
#include <rocksdb/options.h>

#include "cadre/messages/error.hpp"

namespace rocksdb {
class Status;
} // namespace rocksdb

namespace cadre::persistence::detail {

/// What a store directory holds, as far as opening it is concerned.
struct store_dir_files {
  bool has_current = false;
  /// RocksDB's own files (tables, WALs, MANIFESTs, OPTIONS, IDENTITY), by
  /// name, sorted.
  std::vector<std::string> rocksdb_files;
};

/// Lists `dir` (missing or unreadable: nothing). The files of a creation
/// killed while it moved a new store into place (creation_interrupted) are
/// not listed: they are no store yet.
store_dir_files inspect_store_dir(const std::string& dir);

/// errc::storage_error: `dir` holds RocksDB files but no CURRENT, so it is a
/// damaged store, never to be replaced by a new one.
caf::error missing_current_error(const std::string& dir,
                                 const store_dir_files& files);

/// The options and column families a store is opened with.
struct store_layout_t {
  rocksdb::DBOptions db_opts;
  std::vector<rocksdb::ColumnFamilyDescriptor> descriptors;
};

/// The layout of the store in `dir`: cadre's column families plus any others
/// found on disk (RocksDB refuses to open a database without all of them).
/// Writers (read_only false) refuse a damaged WAL record instead of
/// recovering up to it. Errors: errc::storage_error when `dir` holds a store
/// whose column families cannot be listed.
[[nodiscard]] expected<store_layout_t> store_layout(const std::string& dir,
                                                    bool read_only);

/// True when a live process holds RocksDB's lock on the store in `dir`
/// (another process: locks of this process are not seen).
bool writer_holds(const std::string& dir);

/// Opens the store read-only with every table file opened and the WAL
/// replayed strictly, then closes it; RocksDB's info log goes to `log_dir`.
/// Returns an empty error when the store is whole, else open_error's.
caf::error verify_open(const std::string& dir, const std::string& log_dir,
                       const store_layout_t& layout);

/// The error of a failed open: a corruption says the store is damaged and
/// names `cadre check` and `cadre repair`; others as to_error, always
/// errc::storage_error.
caf::error open_error(const std::string& dir, const std::string& where,
                      const rocksdb::Status& st);

/// The error of a failed RocksDB call on the store in `dir`: a corruption or
/// a missing file is errc::storage_error saying the store is damaged (with
/// damage_hint), no space one saying the disk is full; others keep
/// to_error's code, with the store named.
/// Empty when `st` is ok.
caf::error store_error(const std::string& dir, std::string_view what,
                       const rocksdb::Status& st);

/// The hint appended to every "store is damaged" error.
std::string damage_hint(const std::string& dir);

} // namespace cadre::persistence::detail
