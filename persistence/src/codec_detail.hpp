#pragma once

// Encodings shared by the RocksDB event store and the public codec
// (docs/event-log.md). Private to persistence/.

#include <cstdint>
#include <string>
#include <string_view>

#include "cadre/messages/error.hpp"
#include "cadre/messages/event.hpp"
#include "cadre/messages/execution.hpp"
#include "cadre/messages/json_value.hpp"

namespace cadre::persistence::detail {

/// Number of bytes after the execution id in an event key: a 0 byte, then
/// the sequence number as 8 big-endian bytes.
constexpr size_t event_key_suffix = 9;

/// Appends `v` to `out` as 8 big-endian bytes.
void put_big_endian64(std::string& out, uint64_t v);

/// Reads 8 big-endian bytes. REQUIRES: `p` points at 8 readable bytes.
uint64_t get_big_endian64(const char* p);

/// Replaces the contents of `out` with event_key(id, seq).
void event_key_to(std::string& out, std::string_view id, uint64_t seq);

/// Splits an event key into execution id and seq; false when malformed.
bool split_event_key(std::string_view key, std::string_view& id,
                     uint64_t& seq);

/// Replaces the contents of `out` with encode_event(ev).
void encode_event_to(const event& ev, std::string& out);

/// Decodes an event value into `out.time_us`, `out.type` and `out.payload`,
/// reusing their storage. Errors: errc::codec_error with the reason only
/// (the caller adds which event).
[[nodiscard]] caf::error decode_event_value(std::string_view value,
                                            event& out);

/// A valid execution id or definition name is not empty and has no 0 byte
/// (the 0 byte ends it inside keys).
bool valid_key_part(std::string_view x);

/// Format-version byte + CBOR of the execution_info's JSON mapping.
std::string encode_execution_info(const execution_info& info);

/// Errors: errc::codec_error naming the entry.
[[nodiscard]] expected<execution_info>
decode_execution_info(std::string_view key, std::string_view value);

/// Format-version byte + CBOR of a JSON document.
std::string encode_document(const json_value& doc);

/// Errors: errc::codec_error naming `what`.
[[nodiscard]] expected<json_value> decode_document(std::string_view value,
                                                   std::string_view what);

/// Orders definition versions: splits both at '.', compares the parts as
/// numbers where both are numeric and as text otherwise, so "10" > "9" and
/// "1.10" > "1.2". Returns <0, 0 or >0.
int compare_versions(std::string_view x, std::string_view y);

} // namespace cadre::persistence::detail
