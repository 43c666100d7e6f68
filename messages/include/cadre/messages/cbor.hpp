#pragma once

// CBOR (RFC 8949) writing for JSON documents, byte for byte what
// nlohmann/json's to_cbor writes, without its per-byte virtual output and
// the JSON copy it makes of each object key.

#include <cstdint>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

namespace cadre::cbor {

// Major types.
constexpr uint8_t uint_type = 0;
constexpr uint8_t negint_type = 1;
constexpr uint8_t bytes_type = 2;
constexpr uint8_t text_type = 3;
constexpr uint8_t array_type = 4;
constexpr uint8_t map_type = 5;
constexpr uint8_t tag_type = 6;

/// Appends a head whose argument needs bytes after it (arg >= 24).
void put_long_head(std::string& out, uint8_t major, uint64_t arg);

/// Appends an item head with the shortest argument, as to_cbor writes it.
inline void put_head(std::string& out, uint8_t major, uint64_t arg) {
  if (arg < 24)
    out.push_back(static_cast<char>((major << 5) | static_cast<int>(arg)));
  else
    put_long_head(out, major, arg);
}

inline void put_text(std::string& out, std::string_view x) {
  put_head(out, text_type, x.size());
  out.append(x.data(), x.size());
}

/// Appends the CBOR of `doc` to `out`: the bytes nlohmann::json::to_cbor
/// writes (shortest integer heads, floats as single precision when exact,
/// NaN and infinities as half precision, binary subtypes as tags).
void append(const nlohmann::json& doc, std::string& out);

} // namespace cadre::cbor
