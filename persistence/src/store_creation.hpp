#pragma once

// How a new store comes into being without leaving a directory that later
// opens must refuse. RocksDB creates a store in several steps and only its
// last (CURRENT) makes it openable, so a kill midway leaves files that look
// like a store whose CURRENT was lost (refused for ever, item 9 of issue 12).
// Instead RocksDB creates the store in a staging directory inside the
// store's (`DIR/.creating-<pid>`), and its files move into DIR with CURRENT
// last: the rename of CURRENT is the moment DIR becomes a store. A staging
// directory that still holds CURRENT therefore proves that DIR never was
// one, and the next writer finishes the move.

#include <string>
#include <string_view>

#include <caf/error.hpp>

namespace cadre::persistence::detail {

/// The name of a staging directory inside a store's directory: this prefix
/// and the creating process's pid.
constexpr std::string_view staging_prefix = ".creating-";

/// True when `name` is a staging directory's name (prefix, then digits).
bool is_staging_name(std::string_view name);

/// True when `dir` holds no CURRENT but one of its staging directories
/// does: a creation was killed while it moved the new, empty store into
/// place, so RocksDB's files in `dir` are parts of it, not a damaged store.
bool creation_interrupted(const std::string& dir);

/// Makes `dir` (created if missing) hold a store for a writer to open.
/// Under an exclusive lock on the directory (creators wait for each other,
/// up to 30 s), the staging directories killed creations left are finished
/// (one that holds CURRENT) or removed; then a directory with neither
/// CURRENT nor RocksDB's files gets a new store, created in staging and
/// moved into place. A directory with RocksDB's files but no CURRENT is a
/// damaged store: missing_current_error. Errors: errc::storage_error.
caf::error prepare_store_dir(const std::string& dir);

} // namespace cadre::persistence::detail
