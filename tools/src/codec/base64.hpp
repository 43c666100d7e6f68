#pragma once

// Base64 for the tools that carry bytes in JSON (file, ocr, sql, http).
// Private to tools/.

#include <optional>
#include <string>
#include <string_view>

namespace cadre::tools::detail {

/// Standard base64 with padding.
std::string base64_encode(std::string_view bytes);

/// Decodes standard or URL-safe base64; whitespace is skipped and padding
/// is optional. Nothing on any other character, data after padding, or a
/// lone trailing 6-bit group.
std::optional<std::string> base64_decode(std::string_view text);

} // namespace cadre::tools::detail
