// chaos: injects crashes, hangs, slowness and errors for supervision tests
// and demos. Every choice depends only on the input, the attempt and the
// idempotency key, so a run is reproducible and replay sees the same thing.

#include <cmath>
#include <cstdlib>
#include <cstdint>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>

#include "cadre/tools/tool.hpp"
#include "tool_support.hpp"
#include "cadre/messages/json_text.hpp"

namespace cadre::tools {

namespace {

/// Settings of the chaos tool (`tools.chaos`).
struct chaos_options {
  /// Longest a slow or hanging call may take, in milliseconds; a hang that
  /// is never cancelled ends here with errc::timeout. Default: 10 minutes
  uint64_t max_ms = 600'000;
  /// Whether mode abort may end the whole process (crash-loop tests).
  /// Default: false
  bool allow_abort = false;
};

enum class chaos_mode { ok, crash, hang, slow, error, poison, abort };

constexpr std::string_view mode_names[] = {"ok",    "crash",  "hang", "slow",
                                           "error", "poison", "abort"};

std::optional<chaos_mode> parse_mode(std::string_view name) {
  for (size_t i = 0; i < std::size(mode_names); ++i)
    if (name == mode_names[i])
      return static_cast<chaos_mode>(i);
  return std::nullopt;
}

/// FNV-1a, then the splitmix64 finalizer for well-mixed high bits. Spelled
/// out (not std::hash) so the choice is the same on every build and node.
uint64_t stable_hash(std::string_view bytes) {
  uint64_t h = 0xcbf29ce484222325ull;
  for (unsigned char c : bytes) {
    h ^= c;
    h *= 0x100000001b3ull;
  }
  h ^= h >> 30;
  h *= 0xbf58476d1ce4e5b9ull;
  h ^= h >> 27;
  h *= 0x94d049bb133111ebull;
  h ^= h >> 31;
  return h;
}

/// Maps `key` to a number in [0, 1).
double unit_interval(std::string_view key) {
  return static_cast<double>(stable_hash(key) >> 11) * 0x1.0p-53;
}

/// A parsed call.
struct chaos_call {
  std::optional<chaos_mode> mode;
  std::optional<uint64_t> ms;
  json value;
  double crash_rate = 0;
  double hang_rate = 0;
  double error_rate = 0;
  bool by_rate = false;
  std::string seed_key;
  uint64_t crash_attempts = 0;
};

class chaos_tool final : public tool {
public:
  explicit chaos_tool(chaos_options opts) : opts_(opts) {
  }

  /// Set once by the factory, before the first call.
  void set_input_schema(json_schema schema) {
    input_schema_ = std::move(schema);
  }

  std::string name() const override {
    return "chaos";
  }

  tool_description describe() const override {
    auto rate = [](const char* what) {
      return json{{"type", "number"},
                  {"minimum", 0},
                  {"maximum", 1},
                  {"description", what}};
    };
    json modes = json::array();
    for (auto m : mode_names)
      modes.push_back(m);
    return {
      "chaos",
      "Injects failures for supervision tests: crash (throws, like a worker "
      "dying), hang (blocks until cancelled), slow (sleeps ms, then "
      "succeeds), error (errc::tool_failed), poison (crashes on every "
      "attempt) or abort (ends the whole process, when tools.chaos."
      "allow_abort is set). Either name a mode, or give rates: the choice is then a "
      "stable hash of the task's idempotency key (and seed_key), so the same "
      "attempt always makes the same choice. crash_attempts: N crashes "
      "attempts 1..N first.",
      json{
        {"type", "object"},
        {"properties",
         {
           {"mode",
            {{"type", "string"},
             {"enum", modes},
             {"description", "What to do; exclusive with the rates."}}},
           {"ms",
            {{"type", "integer"},
             {"minimum", 0},
             {"maximum", opts_.max_ms},
             {"description", "slow: how long to sleep (required); hang: "
                             "the longest to block."}}},
           {"value", {{"description", "Returned as output.value."}}},
           {"crash_rate", rate("Share of keys that crash.")},
           {"hang_rate", rate("Share of keys that hang.")},
           {"error_rate", rate("Share of keys that fail with an error.")},
           {"seed_key",
            {{"description", "Mixed into the hash to pick another "
                             "deterministic pattern."}}},
           {"crash_attempts",
            {{"type", "integer"},
             {"minimum", 0},
             {"description", "Attempts 1..N crash before anything else."}}},
         }},
        {"additionalProperties", false},
        {"allOf",
         json::array(
           {// slow needs its duration.
            {{"if", {{"properties", {{"mode", {{"const", "slow"}}}}},
                     {"required", {"mode"}}}},
             {"then", {{"required", {"ms"}}}}},
            // A mode and rates exclude each other.
            {{"not", {{"required", {"mode"}},
                      {"anyOf", json::array({{{"required", {"crash_rate"}}},
                                             {{"required", {"hang_rate"}}},
                                             {{"required",
                                               {"error_rate"}}}})}}}}})},
      },
      json{
        {"type", "object"},
        {"properties",
         {{"value", json::object()},
          {"attempt", {{"type", "integer"}, {"minimum", 1}}}}},
        {"required", {"value", "attempt"}},
      },
    };
  }

  // Fails, hangs or crashes its worker: nothing outside changes.
  bool side_effects() const override {
    return false;
  }

  bool blocking() const override {
    return true;
  }

  expected<json_value> invoke(const json_value& input,
                              tool_context& ctx) override {
    auto call = parse(*input);
    if (!call)
      return std::move(call.error());
    if (ctx.attempt <= call->crash_attempts)
      throw std::runtime_error("chaos: injected crash (attempt "
                               + std::to_string(ctx.attempt) + " of "
                               + std::to_string(call->crash_attempts)
                               + " crashing)");
    auto mode = call->mode.value_or(chaos_mode::ok);
    if (call->by_rate)
      mode = choose(*call, ctx);
    switch (mode) {
      case chaos_mode::ok:
        break;
      case chaos_mode::crash:
        throw std::runtime_error("chaos: injected crash");
      case chaos_mode::poison:
        throw std::runtime_error("chaos: poison input, crashes on every "
                                 "attempt");
      case chaos_mode::abort:
        // What a crashing library does to the node: nothing survives it
        // but the log (crash-loop tests).
        if (!opts_.allow_abort)
          return detail::input_error("chaos", "/mode",
                                     "abort is off (tools.chaos.allow_abort)");
        std::abort();
      case chaos_mode::error:
        return make_error(errc::tool_failed,
                          "tool chaos: injected error (attempt "
                            + std::to_string(ctx.attempt) + ")");
      case chaos_mode::slow:
        if (auto err = wait("slow", *call->ms, ctx))
          return err;
        break;
      case chaos_mode::hang: {
        auto bound = std::min(call->ms.value_or(opts_.max_ms), opts_.max_ms);
        if (auto err = wait("hang", bound, ctx))
          return err;
        return make_error(errc::timeout,
                          "tool chaos: hang ended uncancelled after "
                            + std::to_string(bound) + " ms");
      }
    }
    return json_value{json{{"value", call->value}, {"attempt", ctx.attempt}}};
  }

private:
  expected<chaos_call> parse(const json& input) const {
    chaos_call out;
    if (input.is_null())
      return out;
    // The schema says the shape, the ranges and which keys go together;
    // what is left is the sum of the rates.
    if (auto ok = detail::check_input("chaos", input_schema_, input); !ok)
      return std::move(ok.error());
    if (auto i = input.find("mode"); i != input.end())
      out.mode = parse_mode(i->get<std::string>());
    if (auto i = input.find("ms"); i != input.end())
      out.ms = detail::as_uint(*i);
    if (auto i = input.find("value"); i != input.end())
      out.value = *i;
    struct rate_field {
      const char* key;
      double* dst;
    };
    for (auto [key, dst] : {rate_field{"crash_rate", &out.crash_rate},
                            rate_field{"hang_rate", &out.hang_rate},
                            rate_field{"error_rate", &out.error_rate}}) {
      auto i = input.find(key);
      if (i == input.end())
        continue;
      *dst = i->get<double>();
      out.by_rate = true;
    }
    if (out.crash_rate + out.hang_rate + out.error_rate > 1 + 1e-9)
      return detail::input_error("chaos", "",
                                 "crash_rate + hang_rate + error_rate must "
                                 "not exceed 1");
    if (auto i = input.find("seed_key"); i != input.end())
      out.seed_key = i->is_string() ? i->get<std::string>() : dump_json(*i);
    if (auto i = input.find("crash_attempts"); i != input.end())
      out.crash_attempts = *detail::as_uint(*i);
    return out;
  }

  /// Picks a mode from the rates by a stable hash of the key.
  static chaos_mode choose(const chaos_call& call, const tool_context& ctx) {
    // The host always sets the key; the fallback keeps direct calls stable.
    std::string key = ctx.idempotency_key;
    if (key.empty())
      key = ctx.execution_id + "/" + ctx.task_id + "/"
            + std::to_string(ctx.attempt);
    if (!call.seed_key.empty())
      key = call.seed_key + '\n' + key;
    auto u = unit_interval(key);
    if (u < call.crash_rate)
      return chaos_mode::crash;
    if (u < call.crash_rate + call.hang_rate)
      return chaos_mode::hang;
    if (u < call.crash_rate + call.hang_rate + call.error_rate)
      return chaos_mode::error;
    return chaos_mode::ok;
  }

  /// Sleeps `ms`; returns an error when cancelled or past the deadline.
  static caf::error wait(const char* what, uint64_t ms,
                         const tool_context& ctx) {
    switch (detail::interruptible_sleep(ms, ctx)) {
      case detail::wait_end::cancelled:
        return make_error(errc::cancelled,
                          std::string{"tool chaos: "} + what + " cancelled");
      case detail::wait_end::deadline:
        return make_error(errc::timeout, std::string{"tool chaos: "} + what
                                           + ": the deadline passed");
      case detail::wait_end::elapsed:
        break;
    }
    return caf::error{};
  }

  chaos_options opts_;
  json_schema input_schema_;
};

} // namespace

json chaos_settings_schema() {
  chaos_options defaults;
  return detail::settings_schema(
    {{"max_ms", detail::integer_setting(defaults.max_ms, 0,
                                        "The most `ms` may ask for; a hang "
                                        "without `ms` ends here with "
                                        "timeout.")},
     {"allow_abort", detail::bool_setting(defaults.allow_abort,
                                          "Whether mode abort may end the "
                                          "process.")}});
}

expected<std::unique_ptr<tool>> make_chaos_tool(const json_value& settings) {
  chaos_options opts;
  opts.max_ms = detail::setting(*settings, "max_ms", opts.max_ms);
  opts.allow_abort = detail::setting(*settings, "allow_abort",
                                     opts.allow_abort);
  auto t = std::make_unique<chaos_tool>(opts);
  return detail::with_input_schema(std::move(t));
}

} // namespace cadre::tools
