#pragma once

// Reading optional fields in the JSON mapping of the message types: an
// absent or null key leaves the field at its default. Private to messages/.

#include "cadre/messages/json_value.hpp"

namespace cadre::detail {

template <class T>
void opt(const json& j, const char* key, T& out) {
  if (auto i = j.find(key); i != j.end() && !i->is_null())
    i->get_to(out);
}

inline void opt(const json& j, const char* key, json_value& out) {
  if (auto i = j.find(key); i != j.end())
    out = json_value{*i};
}

} // namespace cadre::detail
