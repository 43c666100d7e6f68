#pragma once

// Parts of a split ocr call: their inputs refer to the one decoded document
// of the call instead of carrying it (see ocr_tool.cpp). Private to tools/;
// exposed so tests can check that parts share it.

#include <string>

#include "cadre/messages/json_value.hpp"

namespace cadre::tools::detail {

/// The decoded bytes the split part `part` reads, or null when `part` is
/// not a live part: every part of one call returns the same buffer.
const std::string* ocr_part_bytes(const json& part);

} // namespace cadre::tools::detail
