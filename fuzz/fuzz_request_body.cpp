// Request bodies of `cadre serve`'s HTTP API, through the pure parsers the
// routes call (runtime/src/ingress/request_body.hpp).
#include <cstddef>
#include <cstdint>
#include <string>

#include "ingress/request_body.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string text(reinterpret_cast<const char*>(data), size);
  using namespace cadre::runtime;
  (void) check_text(text);
  (void) check_json_text(text);
  auto body = parse_json_body(text);
  if (!body)
    return 0;
  (void) submission_of(*body);
  (void) human_input_of("e-1", *body);
  (void) tool_call_of(*body);
  (void) fork_of("e-1", *body);
  return 0;
}
