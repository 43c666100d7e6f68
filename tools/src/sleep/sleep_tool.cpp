// sleep: waits for {"ms": N}, in slices that poll cancellation and the
// deadline, then returns {"slept_ms": N}.

#include <memory>
#include <string>

#include "cadre/tools/tool.hpp"
#include "tool_support.hpp"

namespace cadre::tools {

namespace {

/// Settings of the sleep tool (`tools.sleep`).
struct sleep_options {
  /// Longest sleep one call may ask for, in milliseconds. Default: 1 hour
  uint64_t max_ms = 3'600'000;
};

class sleep_tool final : public tool {
public:
  explicit sleep_tool(sleep_options opts) : opts_(opts) {
  }

  /// Set once by the factory, before the first call.
  void set_input_schema(json_schema schema) {
    input_schema_ = std::move(schema);
  }

  std::string name() const override {
    return "sleep";
  }

  tool_description describe() const override {
    return {
      "sleep",
      "Waits for the given number of milliseconds; stops early with an "
      "error when the task is cancelled or its deadline passes.",
      json{
        {"type", "object"},
        {"properties",
         {{"ms",
           {{"type", "integer"},
            {"minimum", 0},
            {"maximum", opts_.max_ms},
            {"description", "How long to sleep, in milliseconds."}}}}},
        {"required", {"ms"}},
        {"additionalProperties", false},
      },
      json{
        {"type", "object"},
        {"properties",
         {{"slept_ms", {{"type", "integer"}, {"minimum", 0}}}}},
        {"required", {"slept_ms"}},
      },
    };
  }

  // Waits: nothing outside changes.
  bool side_effects() const override {
    return false;
  }

  bool blocking() const override {
    return true;
  }

  expected<json_value> invoke(const json_value& input,
                              tool_context& ctx) override {
    // The input schema says all there is to check (its maximum is
    // tools.sleep.max_ms).
    if (auto ok = detail::check_input("sleep", input_schema_, *input); !ok)
      return std::move(ok.error());
    auto ms = detail::as_uint(input->at("ms"));
    switch (detail::interruptible_sleep(*ms, ctx)) {
      case detail::wait_end::cancelled:
        return make_error(errc::cancelled, "tool sleep: cancelled before "
                                             + std::to_string(*ms)
                                             + " ms had passed");
      case detail::wait_end::deadline:
        return make_error(errc::timeout, "tool sleep: the deadline passed "
                                           "before "
                                           + std::to_string(*ms)
                                           + " ms had passed");
      case detail::wait_end::elapsed:
        break;
    }
    return json_value{json{{"slept_ms", *ms}}};
  }

private:
  sleep_options opts_;
  json_schema input_schema_;
};

} // namespace

json sleep_settings_schema() {
  return detail::settings_schema(
    {{"max_ms", detail::integer_setting(sleep_options{}.max_ms, 0,
                                        "Longest sleep one call may ask "
                                        "for, in milliseconds.")}});
}

expected<std::unique_ptr<tool>> make_sleep_tool(const json_value& settings) {
  sleep_options opts;
  opts.max_ms = detail::setting(*settings, "max_ms", opts.max_ms);
  auto t = std::make_unique<sleep_tool>(opts);
  return detail::with_input_schema(std::move(t));
}

} // namespace cadre::tools
