// JSON Schema compile + validate (input_schema, answer_schema, output
// schemas, the validate tool). The input is JSON: [schema, instance], or a
// schema alone, validated against itself.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "cadre/messages/json_text.hpp"
#include "cadre/lang/json_schema.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view text(reinterpret_cast<const char*>(data), size);
  auto doc = cadre::parse_json(text);
  if (!doc)
    return 0;
  bool pair = doc->is_array() && doc->size() == 2;
  const cadre::json& schema = pair ? (*doc)[0] : *doc;
  const cadre::json& instance = pair ? (*doc)[1] : *doc;
  std::string at;
  auto compiled = cadre::tools::json_schema::compile(schema, {}, &at);
  if (!compiled)
    return 0;
  auto errors = compiled->validate(instance);
  // accepts() stops at the first failure; it must agree with validate().
  if (compiled->accepts(instance) != errors.empty())
    __builtin_trap();
  (void) cadre::tools::to_string(errors);
  return 0;
}
