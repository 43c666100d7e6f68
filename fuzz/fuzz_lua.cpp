// Templates and conditions (`when`, `items`, "{{ expr }}") and the script
// tool, in the bounded Lua sandbox. The first byte picks what the rest is:
// an expression, a template string, or a chunk.
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

#include "cadre/lang/lua_sandbox.hpp"

namespace {

cadre::tools::lua_sandbox& sandbox() {
  // One state for every input, as a workflow reuses one for all its
  // evaluations; a short time limit keeps the fuzzer fast (the bound, not
  // its length, is under test).
  static auto sb = [] {
    cadre::tools::sandbox_options opts;
    opts.time_limit = std::chrono::milliseconds{100};
    auto r = cadre::tools::lua_sandbox::create(opts);
    if (!r)
      __builtin_trap();
    return std::move(*r);
  }();
  return *sb;
}

const cadre::json& env() {
  static const cadre::json e = cadre::json::parse(R"({
    "input": {"name": "ada", "n": 3, "list": [1, 2, "x"], "map": {"k": null},
              "text": "a,b;c", "date": "2024-02-29"},
    "tasks": {"fetch": {"output": {"status": 200, "body": "ok"}}},
    "item": {"id": 7}
  })");
  return e;
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0)
    return 0;
  std::string text(reinterpret_cast<const char*>(data) + 1, size - 1);
  auto& sb = sandbox();
  switch (data[0] % 3) {
    case 0:
      if (sb.check_expression(text))
        (void) sb.eval(text, env());
      break;
    case 1:
      (void) sb.render(cadre::json{{"t", text}, {"l", {text, 1}}}, env());
      break;
    default:
      if (sb.check_chunk(text))
        (void) sb.run(text, env());
  }
  return 0;
}
