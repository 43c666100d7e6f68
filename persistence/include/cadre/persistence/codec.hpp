#pragma once

// The binary encoding of keys and events (docs/event-log.md).

#include <cstdint>
#include <string>
#include <string_view>

#include "cadre/messages/error.hpp"
#include "cadre/messages/event.hpp"

namespace cadre::persistence {

/// Format version written as the first byte of every encoded value.
constexpr uint8_t format_version = 1;

/// Key of an event: execution id, a 0 byte, then seq as 8 big-endian bytes,
/// so RocksDB's byte order is sequence order within an execution.
std::string event_key(std::string_view execution_id, uint64_t seq);

/// Encodes an event's value: the version byte, then CBOR of
/// {time_us, type, payload} (id and seq live in the key).
std::string encode_event(const event& ev);

/// Decodes a key and value made by event_key and encode_event.
/// Errors: errc::codec_error naming what is malformed.
[[nodiscard]] expected<event> decode_event(std::string_view key,
                                           std::string_view value);

} // namespace cadre::persistence
