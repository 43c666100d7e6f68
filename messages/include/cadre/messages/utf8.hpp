#pragma once

// The one UTF-8 check: JSON text is UTF-8, so every entry point that turns
// bytes into JSON strings asks here first.

#include <cstddef>
#include <string>
#include <string_view>

namespace cadre {

/// The offset of the first byte of `text` that is not well-formed UTF-8
/// (overlong forms, surrogates and values past U+10FFFF included), or
/// std::string_view::npos when all of it is.
size_t invalid_utf8_at(std::string_view text) noexcept;

inline bool valid_utf8(std::string_view text) noexcept {
  return invalid_utf8_at(text) == std::string_view::npos;
}

/// At most the first `max` bytes of `text`, cut at a character boundary,
/// with "..." appended when cut: a bounded quote for error messages and
/// one-line views.
std::string utf8_excerpt(std::string_view text, size_t max);

} // namespace cadre
