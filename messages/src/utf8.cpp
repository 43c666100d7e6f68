#include "cadre/messages/utf8.hpp"

#include <cstdint>

namespace cadre {

size_t invalid_utf8_at(std::string_view text) noexcept {
  size_t i = 0;
  auto n = text.size();
  auto at = [&](size_t k) { return static_cast<unsigned char>(text[k]); };
  while (i < n) {
    auto c = at(i);
    if (c < 0x80) {
      ++i;
      continue;
    }
    size_t len;
    uint32_t cp;
    if ((c & 0xe0) == 0xc0) {
      len = 2;
      cp = c & 0x1f;
    } else if ((c & 0xf0) == 0xe0) {
      len = 3;
      cp = c & 0x0f;
    } else if ((c & 0xf8) == 0xf0) {
      len = 4;
      cp = c & 0x07;
    } else {
      return i;
    }
    if (i + len > n)
      return i;
    for (size_t k = 1; k < len; ++k) {
      if ((at(i + k) & 0xc0) != 0x80)
        return i;
      cp = (cp << 6) | (at(i + k) & 0x3f);
    }
    // Overlong forms, surrogates and values past U+10FFFF are not UTF-8.
    if ((len == 2 && cp < 0x80) || (len == 3 && cp < 0x800)
        || (len == 4 && cp < 0x10000) || cp > 0x10ffff
        || (cp >= 0xd800 && cp <= 0xdfff))
      return i;
    i += len;
  }
  return std::string_view::npos;
}

std::string utf8_excerpt(std::string_view text, size_t max) {
  if (text.size() <= max)
    return std::string{text};
  auto cut = max;
  // Step back over continuation bytes to the start of a character.
  while (cut > 0 && (static_cast<unsigned char>(text[cut]) & 0xc0) == 0x80)
    --cut;
  return std::string{text.substr(0, cut)} + "...";
}

} // namespace cadre
