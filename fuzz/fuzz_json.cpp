// JSON text from outside (--input, answers, tool outputs, HTTP bodies):
// the one parser with the UTF-8 and depth checks, and the writer.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "cadre/messages/json_text.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view text(reinterpret_cast<const char*>(data), size);
  cadre::json_text_error where;
  auto doc = cadre::parse_json(text, &where);
  if (!doc) {
    (void) where.to_string();
    return 0;
  }
  // What was read writes back as JSON that reads as the same document.
  auto again = cadre::parse_json(cadre::dump_json(*doc));
  if (!again || *again != *doc)
    __builtin_trap();
  (void) cadre::dump_json(*doc, 2);
  return 0;
}
