#pragma once

// Field names in a message's inspect(): the JSON mapping of the message
// (to_json/from_json) is read off the one field list CAF serializes, and
// CAF's own inspectors skip these annotations, so the wire is unchanged.

#include <caf/meta/annotation.hpp>

namespace cadre::meta {

/// How a named field maps to JSON.
enum json_flags : unsigned {
  /// Always written; on reading, an absent or null key keeps the default.
  plain = 0,
  /// On reading, the key must be there (and not null).
  required = 1,
  /// Left out of the JSON when empty, false or zero.
  omit_empty = 2,
  /// Left out of the JSON when negative (a number that means "unset").
  omit_negative = 4,
};

/// Names the field that follows it in inspect().
struct field_t : caf::meta::annotation {
  constexpr field_t(const char* key, unsigned how) : name(key), flags(how) {
  }
  const char* name;
  unsigned flags;
};

constexpr field_t field(const char* name, unsigned flags = plain) {
  return field_t{name, flags};
}

} // namespace cadre::meta
