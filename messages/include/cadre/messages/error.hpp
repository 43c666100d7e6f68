#pragma once

#include <cstdint>
#include <string>

#include <caf/error.hpp>
#include <caf/make_message.hpp>
#include <caf/message.hpp>
#include <caf/expected.hpp>

namespace cadre {

/// Error codes of the `cadre` error category. Every failure that crosses a
/// module or actor boundary is a `caf::error` with one of these codes and a
/// context string that says what and where. New codes go at the end: the
/// numbers travel in serialized errors.
enum class errc : uint8_t {
  ok = 0,
  invalid_input,    ///< bad input to a tool, a submission or a command
  invalid_workflow, ///< a workflow definition failed validation
  invalid_config,   ///< a config key has a bad value
  tool_not_found,   ///< no tool of that name is registered
  tool_failed,      ///< the tool ran and reported a failure
  worker_crashed,   ///< the worker died while running the task
  timeout,          ///< a deadline passed
  cancelled,        ///< the execution or task was cancelled
  not_found,        ///< an execution, task or definition does not exist
  conflict,         ///< e.g. an event sequence that is not dense
  storage_error,    ///< RocksDB or the file system failed
  script_error,     ///< a Lua expression or script failed
  codec_error,      ///< an encoding or decoding failed
  unavailable,      ///< a dependency is down or shutting down
  internal,         ///< a bug: an invariant was violated
  unauthorized,     ///< no credentials, or credentials that do not verify
  forbidden,        ///< valid credentials without the scope needed
  rate_limited,     ///< the caller spent its request budget; try later
  overloaded,       ///< a bounded queue is full; try again later
  limit_exceeded,   ///< a sandbox bound (time, memory, instructions) was hit
  crash_loop,       ///< the task crashed the process at every start
  result_too_large, ///< a result passed a configured size bound
};

/// Returns the name of `x`, e.g. "tool_not_found".
std::string to_string(errc x);

/// Parses a name made by to_string; returns false for an unknown name.
bool from_string(const std::string& name, errc& out);

template <class T>
using expected = caf::expected<T>;

/// Builds a cadre error with a context message.
caf::error make_error(errc code, std::string message);

/// Returns the cadre code of `err`, or errc::internal for foreign categories.
errc code_of(const caf::error& err);

/// Returns the context message of a cadre error (empty if there is none).
std::string message_of(const caf::error& err);

/// Renders any error as "category: code: message" without an actor system.
std::string describe(const caf::error& err);

} // namespace cadre

CAF_ERROR_CODE_ENUM(cadre::errc, "cadre")
