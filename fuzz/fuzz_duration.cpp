// Durations as workflows and the node config write them ("1h30m", 250).
#include <cstddef>
#include <cstdint>
#include <string>

#include "cadre/messages/duration.hpp"
#include "cadre/messages/json_text.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string text(reinterpret_cast<const char*>(data), size);
  int64_t ms = 0;
  if (cadre::parse_duration(cadre::json(text), ms).empty() && ms < 0)
    __builtin_trap();
  if (auto doc = cadre::parse_json(text)) {
    ms = 0;
    if (cadre::parse_duration(*doc, ms).empty() && ms < 0)
      __builtin_trap();
  }
  return 0;
}
