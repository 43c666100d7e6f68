#pragma once

// Durations as every cadre document writes them (workflows, the node
// config): one parser, so "30s" means the same everywhere.

#include <cstdint>
#include <string>

#include "cadre/messages/json_value.hpp"

namespace cadre {

/// Parses a duration: a number of milliseconds or a string such as
/// "250ms", "30s", "5m" (or "5min"), "1h" or "1h30m" (blanks ignored).
/// Returns a problem a person can act on, or "" and sets `ms`.
std::string parse_duration(const json& value, int64_t& ms);

} // namespace cadre
