#pragma once

// The one place where rocksdb::Status becomes a caf::error.

#include <string_view>

#include <caf/error.hpp>

namespace rocksdb {
class Status;
} // namespace rocksdb

namespace cadre::persistence {

/// Converts `status` to a cadre error whose message is "<where>: <reason>".
/// Returns an empty error (caf::none) when `status` is ok.
/// Codes: errc::not_found for NotFound, errc::unavailable for Busy, TryAgain,
/// TimedOut and ShutdownInProgress, errc::storage_error otherwise.
caf::error to_error(const rocksdb::Status& status, std::string_view where);

} // namespace cadre::persistence
