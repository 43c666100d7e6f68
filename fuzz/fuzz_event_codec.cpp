// Events as read back from the store: the key and the versioned CBOR value
// (a damaged or hostile store must give codec_error, never a crash). The
// first byte is the key's length (up to 63), then the key, then the value.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "cadre/persistence/codec.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0)
    return 0;
  std::string_view rest(reinterpret_cast<const char*>(data) + 1, size - 1);
  auto key = rest.substr(0, data[0] % 64);
  auto value = rest.substr(key.size());
  using namespace cadre::persistence;
  auto ev = decode_event(key, value);
  if (!ev)
    return 0;
  // What decodes encodes to a value that decodes to the same encoding.
  auto enc = encode_event(*ev);
  auto again = decode_event(event_key(ev->execution_id, ev->seq), enc);
  if (!again || encode_event(*again) != enc)
    __builtin_trap();
  return 0;
}
