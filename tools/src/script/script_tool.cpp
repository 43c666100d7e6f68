// script: runs a Lua chunk in this instance's sandbox with the globals
// `args` and `ctx`, and returns what the chunk returns.

#include <chrono>
#include <memory>
#include <string>

#include "cadre/lang/lua_sandbox.hpp"
#include "cadre/tools/tool.hpp"
#include "tool_support.hpp"

namespace cadre::tools {

namespace {

/// Wall-clock time a call may take unless the task's deadline is earlier.
constexpr std::chrono::milliseconds default_time_limit{10'000};

class script_tool final : public tool {
public:
  script_tool(sandbox_options opts, std::unique_ptr<lua_sandbox> sandbox)
    : opts_(opts), sandbox_(std::move(sandbox)) {
  }

  /// Set once by the factory, before the first call.
  void set_input_schema(json_schema schema) {
    input_schema_ = std::move(schema);
  }

  std::string name() const override {
    return "script";
  }

  tool_description describe() const override {
    return {
      "script",
      "Runs a sandboxed Lua 5.4 chunk (no io, os, require or load; limited "
      "to " + std::to_string(opts_.instruction_limit) + " instructions, "
        + std::to_string(opts_.memory_limit) + " bytes and "
        + std::to_string(opts_.time_limit.count())
        + " ms) with the globals args (the input's args) and ctx "
          "({execution_id, task_id, attempt}), and returns the chunk's "
          "return value as JSON (tables with keys 1..n become arrays, other "
          "tables objects; nothing returned becomes null). Besides Lua's "
          "string, table, math and utf8 it has: json.encode/decode/null/"
          "array/object/type; string.split/trim/ltrim/rtrim/starts_with/"
          "ends_with/contains/replace (plain text)/pad_left/pad_right/join/"
          "lines/ulen/match_all (also as s:method()); number.parse "
          "(\"$1,234.50\" -> 1234.5; nil if not a number)/round/format; "
          "date.parse (common formats -> \"YYYY-MM-DD\"; nil, reason if "
          "not a date)/format/add_days/add_months/diff_days/weekday/"
          "is_valid; table.map/filter/keys/values/sort_by/group_by/sum/min/"
          "max/contains. There is no clock: pass today's date in args.",
      json{
        {"type", "object"},
        {"properties",
         {
           {"code",
            {{"type", "string"},
             {"minLength", 1},
             {"description", "A Lua chunk, e.g. \"return args.x + 1\"."}}},
           {"args", {{"description", "Any JSON, visible as `args`."}}},
         }},
        {"required", {"code"}},
        {"additionalProperties", false},
      },
      json{{"description", "The chunk's return value."}},
    };
  }

  // A call may take up to its time limit (string patterns can keep it
  // busy that long), too long for a scheduler thread.
  // The sandbox has no I/O: nothing outside changes.
  bool side_effects() const override {
    return false;
  }

  bool blocking() const override {
    return true;
  }

  expected<json_value> invoke(const json_value& input,
                              tool_context& ctx) override {
    if (auto ok = detail::check_input("script", input_schema_, *input); !ok)
      return std::move(ok.error());
    auto code = input->find("code");
    json env = json::object();
    if (auto args = input->find("args"); args != input->end())
      env["args"] = *args;
    else
      env["args"] = nullptr;
    env["ctx"] = json{{"execution_id", ctx.execution_id},
                      {"task_id", ctx.task_id},
                      {"attempt", ctx.attempt}};
    auto result = sandbox_->run(code->get_ref<const std::string&>(), env,
                                bounds_of(ctx));
    if (!result) {
      auto msg = message_of(result.error());
      if (msg.empty())
        msg = cadre::describe(result.error());
      // The sandbox prefixes "script: "; our own prefix already says so.
      if (msg.rfind("script: ", 0) == 0)
        msg.erase(0, 8);
      return make_error(code_of(result.error()), "tool script: /code: " + msg);
    }
    return json_value{std::move(*result)};
  }

private:
  /// The task's deadline (a wall-clock time) as a steady one, and its
  /// cancel flag.
  static call_bounds bounds_of(const tool_context& ctx) {
    using namespace std::chrono;
    call_bounds out;
    out.cancelled = ctx.cancel_flag.get();
    if (ctx.deadline_us != 0) {
      auto now_us
        = duration_cast<microseconds>(system_clock::now().time_since_epoch())
            .count();
      out.deadline = steady_clock::now()
                     + microseconds{std::max<int64_t>(0, ctx.deadline_us
                                                           - now_us)};
    }
    return out;
  }

  sandbox_options opts_;
  std::unique_ptr<lua_sandbox> sandbox_;
  json_schema input_schema_;
};

} // namespace

json script_settings_schema() {
  sandbox_options defaults;
  // A fresh Lua state with its libraries takes about 128 KiB; leave room
  // for the script itself.
  return detail::settings_schema(
    {{"instruction_limit",
      detail::integer_setting(defaults.instruction_limit, 1,
                              "Lua VM instructions one call may run.")},
     {"memory_limit",
      detail::integer_setting(defaults.memory_limit, 256u << 10,
                              "Bytes the Lua state may allocate.")},
     {"time_limit",
      detail::duration_setting("10s", "Wall-clock time one call may "
                                      "take.")}});
}

expected<std::unique_ptr<tool>> make_script_tool(const json_value& settings) {
  const json& obj = *settings;
  sandbox_options opts;
  opts.instruction_limit = detail::setting(obj, "instruction_limit",
                                           opts.instruction_limit);
  opts.memory_limit = detail::setting(obj, "memory_limit", opts.memory_limit);
  opts.time_limit = default_time_limit;
  if (auto ok = detail::read_duration(
        obj, "time_limit", opts.time_limit,
        [](const char* key, const std::string& what) {
          return detail::settings_error("script", key, what);
        });
      !ok)
    return std::move(ok.error());
  auto sandbox = lua_sandbox::create(opts);
  if (!sandbox)
    return make_error(code_of(sandbox.error()),
                      "tools.script: cannot create the Lua sandbox: "
                        + message_of(sandbox.error()));
  auto t = std::make_unique<script_tool>(opts, std::move(*sandbox));
  return detail::with_input_schema(std::move(t));
}

} // namespace cadre::tools
