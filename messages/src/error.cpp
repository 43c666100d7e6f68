#include "cadre/messages/error.hpp"

#include <array>

#include <caf/exit_reason.hpp>
#include <caf/message.hpp>
#include <caf/sec.hpp>

namespace cadre {

namespace {

constexpr std::array<const char*, 23> errc_names = {
  "ok",          "invalid_input",  "invalid_workflow", "invalid_config",
  "tool_not_found", "tool_failed", "worker_crashed",   "timeout",
  "cancelled",   "not_found",      "conflict",         "storage_error",
  "script_error", "codec_error",   "unavailable",      "internal",
  "unauthorized", "forbidden",     "rate_limited",
  "overloaded",  "limit_exceeded", "crash_loop", "result_too_large",
};

static_assert(errc_names.size()
                == static_cast<size_t>(errc::result_too_large) + 1,
              "every errc needs a name");

} // namespace

std::string to_string(errc x) {
  auto i = static_cast<size_t>(x);
  return i < errc_names.size() ? errc_names[i] : "unknown";
}

bool from_string(const std::string& name, errc& out) {
  for (size_t i = 0; i < errc_names.size(); ++i)
    if (name == errc_names[i]) {
      out = static_cast<errc>(i);
      return true;
    }
  return false;
}

caf::error make_error(errc code, std::string message) {
  return caf::make_error(code, std::move(message));
}

errc code_of(const caf::error& err) {
  if (err.category() != caf::atom("cadre"))
    return errc::internal;
  return static_cast<errc>(err.code());
}

std::string message_of(const caf::error& err) {
  const auto& ctx = err.context();
  if (ctx.size() == 1 && ctx.match_element<std::string>(0))
    return ctx.get_as<std::string>(0);
  return ctx.empty() ? std::string{} : to_string(ctx);
}

std::string describe(const caf::error& err) {
  if (!err)
    return "ok";
  std::string out;
  if (err.category() == caf::atom("cadre")) {
    out = "cadre: " + to_string(static_cast<errc>(err.code()));
  } else if (err.category() == caf::atom("system")) {
    out = "system: " + caf::to_string(static_cast<caf::sec>(err.code()));
  } else if (err.category() == caf::atom("exit")) {
    out = "exit: " + caf::to_string(static_cast<caf::exit_reason>(err.code()));
  } else {
    out = to_string(err.category()) + ": " + std::to_string(err.code());
  }
  if (auto msg = message_of(err); !msg.empty())
    out += ": " + msg;
  return out;
}

} // namespace cadre
