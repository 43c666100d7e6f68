#pragma once

// Damage for store tests: inverts bytes of a file in place.

#include <cstdint>
#include <fstream>
#include <string>

namespace cadre::test {

/// Inverts `len` bytes of `file` from `offset` (those past its end are
/// left alone). False when the file cannot be opened.
inline bool invert_bytes(const std::string& file, uint64_t offset,
                         size_t len) {
  std::fstream io{file, std::ios::in | std::ios::out | std::ios::binary};
  if (!io)
    return false;
  std::string bytes(len, '\0');
  io.seekg(static_cast<std::streamoff>(offset));
  io.read(bytes.data(), static_cast<std::streamsize>(len));
  bytes.resize(static_cast<size_t>(io.gcount()));
  io.clear();
  for (auto& c : bytes)
    c = static_cast<char>(~c);
  io.seekp(static_cast<std::streamoff>(offset));
  io.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  return static_cast<bool>(io);
}

} // namespace cadre::test
