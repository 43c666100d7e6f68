// fail: fails while the attempt number is at most {"times": N}, then
// succeeds. Depends only on the attempt, so retries, crash recovery and
// replay see the same outcome for the same attempt.

#include <cstdint>
#include <limits>
#include <memory>
#include <string>

#include "cadre/tools/tool.hpp"
#include "tool_support.hpp"

namespace cadre::tools {

namespace {

class fail_tool final : public tool {
public:
  /// Set once by the factory, before the first call.
  void set_input_schema(json_schema schema) {
    input_schema_ = std::move(schema);
  }

  std::string name() const override {
    return "fail";
  }

  tool_description describe() const override {
    return {
      "fail",
      "Fails on attempts 1..times with the given error code and message, "
      "then returns the attempt number; without times it always fails.",
      json{
        {"type", "object"},
        {"properties",
         {
           {"times",
            {{"type", "integer"},
             {"minimum", 0},
             {"maximum", std::numeric_limits<uint32_t>::max()},
             {"description", "Attempts that fail; absent: all of them."}}},
           {"message",
            {{"type", "string"},
             {"description", "Text of the error."},
             {"default", default_message}}},
           {"code",
            {{"type", "string"},
             {"description", "A cadre error code name other than ok."},
             {"default", "tool_failed"}}},
         }},
        {"additionalProperties", false},
      },
      json{
        {"type", "object"},
        {"properties", {{"attempt", {{"type", "integer"}, {"minimum", 1}}}}},
        {"required", {"attempt"}},
      },
    };
  }

  // Fails as asked: nothing outside changes.
  bool side_effects() const override {
    return false;
  }

  bool blocking() const override {
    return false;
  }

  expected<json_value> invoke(const json_value& input,
                              tool_context& ctx) override {
    // Null input is the common "just fail" call.
    static const json empty = json::object();
    const json& in = input.is_null() ? empty : *input;
    // The schema says the shape; what is left is the code's name.
    if (auto ok = detail::check_input("fail", input_schema_, in); !ok)
      return std::move(ok.error());
    auto times = std::numeric_limits<uint64_t>::max();
    if (auto i = in.find("times"); i != in.end())
      times = *detail::as_uint(*i);
    std::string message = default_message;
    if (auto i = in.find("message"); i != in.end())
      message = i->get<std::string>();
    auto code = errc::tool_failed;
    if (auto i = in.find("code"); i != in.end()) {
      auto name = i->get<std::string>();
      if (!from_string(name, code) || code == errc::ok)
        return detail::input_error("fail", "/code",
                                   "'" + name
                                     + "' is not a cadre error code "
                                       "(e.g. tool_failed, timeout)");
    }
    if (ctx.attempt <= times) {
      std::string msg = "tool fail: " + message + " (attempt "
                        + std::to_string(ctx.attempt);
      if (times == std::numeric_limits<uint64_t>::max())
        msg += ", fails on every attempt)";
      else
        msg += " of " + std::to_string(times) + " failing)";
      return make_error(code, std::move(msg));
    }
    return json_value{json{{"attempt", ctx.attempt}}};
  }

private:
  static constexpr const char* default_message = "injected failure";
  json_schema input_schema_;
};

} // namespace

json fail_settings_schema() {
  return detail::settings_schema(json::object());
}

expected<std::unique_ptr<tool>> make_fail_tool(const json_value&) {
  auto t = std::make_unique<fail_tool>();
  return detail::with_input_schema(std::move(t));
}

} // namespace cadre::tools
