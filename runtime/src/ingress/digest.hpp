#pragma once

// SHA-256 and hex helpers shared by the auth sources.

#include <string_view>

#include "cadre/runtime/auth.hpp"

namespace cadre::runtime::detail {

/// Hashes `data` into `out`; false only when OpenSSL fails (out of memory).
bool sha256(std::string_view data, sha256_digest& out) noexcept;

/// Parses exactly 64 hex digits (either case) into `out`.
bool parse_hex_digest(std::string_view hex, sha256_digest& out) noexcept;

} // namespace cadre::runtime::detail
