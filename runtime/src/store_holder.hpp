#pragma once

// Which process holds a store. RocksDB's lock says only that the store is
// locked; the holder file beside it says by whom, so a second `cadre serve`
// or an embedded command can tell the user where to go instead.

#include <optional>
#include <string>

namespace cadre::runtime {

struct store_holder {
  long pid = 0;
  /// "cadre serve", "cadre run", ...
  std::string command;
  /// The server's URL, when the holder serves HTTP.
  std::string url;
};

/// Records this process as the holder of the store in `dir`.
/// Best effort: a store that cannot take the file still works.
void write_holder(const std::string& dir, const store_holder& who);

/// Removes the holder file if it names this process.
void clear_holder(const std::string& dir);

/// The live process recorded as holding `dir`, if any (a file left by a
/// process that died is ignored).
std::optional<store_holder> read_holder(const std::string& dir);

/// "the store DIR is used by cadre serve (pid N, URL); use --server URL".
std::string holder_message(const std::string& dir, const store_holder& who);

} // namespace cadre::runtime
