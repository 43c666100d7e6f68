#pragma once

// RocksDB's info log (its LOG file), written by cadre instead of RocksDB's
// own logger: RocksDB 7.8 as Debian builds it keeps its assertions, and its
// logger aborts the process when it writes again to a LOG whose last write
// failed, which a full disk makes the first thing a failed flush does.

#include <memory>
#include <string>

#include <rocksdb/options.h>

namespace cadre::persistence::detail {

/// Sends the info log of a store opened with `db_opts` to `log_dir`/LOG
/// (rotated to LOG.old at 16 MiB). A line that cannot be written (a full
/// disk) is dropped; nothing about the log ever fails the store. An empty
/// `log_dir`: every line is dropped.
void log_to(rocksdb::DBOptions& db_opts, const std::string& log_dir);

} // namespace cadre::persistence::detail
