#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "cadre/messages/error.hpp"
#include "cadre/messages/json_value.hpp"

namespace cadre::tools {

class secret_store;

/// What a tool tells workflows, LLM agents and HTTP clients about itself.
struct tool_description {
  std::string name;
  std::string description;
  json input_schema = json::object();  ///< JSON Schema of the input
  json output_schema = json::object(); ///< JSON Schema of the output
};

/// Per-call context handed to tool::invoke.
struct tool_context {
  std::string execution_id;
  std::string task_id;
  uint32_t attempt = 1;
  /// "execution/task/attempt"; stable when a task is re-dispatched after a
  /// crash, so tools with side effects can deduplicate.
  std::string idempotency_key;
  /// Wall-clock deadline, microseconds since the epoch; 0: none.
  int64_t deadline_us = 0;
  /// Set by the host when the attempt is abandoned (timeout, cancel);
  /// long-running tools poll it and return early.
  std::shared_ptr<std::atomic<bool>> cancel_flag
    = std::make_shared<std::atomic<bool>>(false);
  /// The node's secrets (null: none), for redact().
  std::shared_ptr<const secret_store> secrets;
  /// JSON pointers of the input strings the worker filled from secrets
  /// ("{{ secrets.NAME }}" written in the workflow), so a tool can insist
  /// that a credential came from a secret rather than from data.
  std::vector<std::string> secret_pointers;

  /// `text` with every secret value replaced (secret_store::redact); call it
  /// before cutting a text that may echo the input.
  std::string redact(std::string text) const;

  bool cancelled() const noexcept {
    return cancel_flag->load(std::memory_order_relaxed);
  }
};

/// An adapter to the outside world. One instance lives in one worker for the
/// worker's life (so expensive set-up, such as an OCR engine, happens once);
/// invoke is never called concurrently on one instance.
class tool {
public:
  virtual ~tool();

  /// The registered name, e.g. "script".
  virtual std::string name() const = 0;

  /// Description and JSON Schemas of input and output.
  virtual tool_description describe() const = 0;

  /// True when invoke may block (I/O, sleeping, heavy CPU): the host then
  /// runs it off CAF's scheduler threads.
  virtual bool blocking() const = 0;

  /// Runs one call. Failures are errors with a cadre code and a message that
  /// names what was wrong and where (a JSON pointer into the input).
  /// Exceptions that escape are treated as a worker crash.
  [[nodiscard]] virtual expected<json_value> invoke(const json_value& input,
                                                    tool_context& ctx)
    = 0;

  /// True when a call may change something outside the call (a request
  /// sent, a row written, a file written, a message posted). An agent sends
  /// the calls of a tool that says false before its `tool_called` event is
  /// on disk, since running one twice after a crash changes nothing
  /// (docs/agents.md#tool-calls-and-durability). Default: true.
  virtual bool side_effects() const;

  /// True when split() may cut a call into parts. The pool asks only tools
  /// that say so, so the others pay nothing for fan-out. Default: false.
  virtual bool splits() const;

  /// Cuts one call into parts: inputs that the pool runs in parallel on its
  /// workers, each through invoke() (e.g. one part per page of a document),
  /// before join() makes the call's output of their outputs. An empty vector
  /// runs the call whole. Called on a worker, like invoke (it may open
  /// files), and only when splits() is true. Errors fail the call.
  /// Default: no split (an empty vector).
  [[nodiscard]] virtual expected<std::vector<json_value>>
  split(const json_value& input, tool_context& ctx);

  /// Builds the output of a split call from its parts' outputs, given in the
  /// order of split(). Called on a worker (any instance of the pool, not
  /// necessarily the one that split) after every part succeeded; a part that
  /// fails fails the call with that part's error instead.
  /// Default: errc::internal (a tool that splits must join).
  [[nodiscard]] virtual expected<json_value>
  join(const json_value& input, std::vector<json_value> parts);
};

/// Builds a tool from its section of the node config (`tools.<name>`).
/// Errors name the key, e.g. "tools.sleep.max_ms: must be a number".
/// Called once per worker, at start-up and whenever a worker is replaced,
/// on a CAF scheduler thread: it must not block, and a factory that
/// captures state must allow calls from several threads. A function or a
/// lambda (an embedder's tool may capture its program's objects).
using tool_factory
  = std::function<expected<std::unique_ptr<tool>>(const json_value& settings)>;

} // namespace cadre::tools
