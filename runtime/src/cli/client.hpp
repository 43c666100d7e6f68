#pragma once

// A client of the HTTP API of `cadre serve` (docs/http-api.md), for the CLI
// with `--server URL`: one method per route the CLI uses, problem documents
// turned into cadre errors, and event streams framed by the shared SSE
// parser, resumed with Last-Event-ID when they break. Private to runtime/.

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "cadre/messages/error.hpp"
#include "cadre/messages/event.hpp"
#include "cadre/messages/execution.hpp"
#include "cadre/messages/json_value.hpp"
#include "cadre/tools/net/http_client.hpp"
#include "cadre/tools/net/sse_parser.hpp"

namespace cadre::runtime::cli {

/// Percent-encodes `text` for a path segment or a query value: every byte
/// but the RFC 3986 unreserved characters (A-Z a-z 0-9 - . _ ~).
std::string percent_encode(std::string_view text);

/// The cadre error of a response with a status outside 2xx. From a problem
/// document (RFC 9457): "server: <status> <title>: <pointer>: <detail>",
/// the title in lower case, the pointer only when present and not already
/// in the detail, e.g. "server: 422 invalid input: /input/count: expected
/// integer". Any other body is quoted. The code follows the status: 400,
/// 413, 415 and 422 errc::invalid_input (errc::invalid_workflow for
/// /problems/invalid_workflow), 401 and 403 errc::invalid_config, 404
/// errc::not_found, 409 errc::conflict, 429 and 503 errc::unavailable,
/// others errc::internal.
caf::error problem_error(long status, std::string_view body);

/// One message of an event stream, as the server framed it.
struct stream_message {
  std::string id;    ///< its `id:`, "" for messages without (tokens, end)
  std::string event; ///< its `event:`: an event type, "token", "end", "close"
  std::string data;
};

/// What a stream did until its connection ended.
struct stream_outcome {
  enum class how {
    ended,   ///< `event: end`: the execution finished
    closed,  ///< `event: close`: the server ended the stream early
    dropped, ///< the connection broke or ended without end or close
    stopped, ///< a handler returned false
  };
  how ended = how::dropped;
  /// The execution, from the first event (or X-Execution-Id).
  std::string execution_id;
  /// Sequence number of the last persisted event seen; the stream resumes
  /// after it.
  uint64_t last_seq = 0;
  /// The data of `end` ({"status", "last_seq"}) or `close` ({"reason",
  /// "last_event_id"}).
  json data;
  /// Why the connection dropped.
  caf::error error;
};

/// What a stream's messages go to. Either may be empty; returning false
/// stops the stream (stream_outcome::how::stopped).
struct stream_handlers {
  /// Each persisted event, once, in sequence order.
  std::function<bool(const event&)> on_event;
  /// Each agent token delta (`event: token`, not persisted), as an event of
  /// type "token" with seq 0 and the message's fields but execution_id as
  /// payload.
  std::function<bool(const event&)> on_token;
};

/// Frames a text/event-stream body into stream_handlers calls with the
/// shared SSE parser, dropping events at or before the last sequence number
/// seen, and records how the stream ended. Pure: fed by api_client and by
/// tests.
class stream_reader {
public:
  /// Events up to `after` count as seen.
  stream_reader(uint64_t after, stream_handlers handlers);

  stream_reader(const stream_reader&) = delete;
  stream_reader& operator=(const stream_reader&) = delete;

  /// Feeds a piece of the body; false once the stream is over (end, close,
  /// a handler stopped it, or a message that is not what the API sends).
  bool feed(std::string_view piece);

  /// Ends the body: dispatches a last message without its blank line.
  void finish();

  /// How the stream went so far; `ended` is how::dropped until it ends.
  const stream_outcome& outcome() const noexcept {
    return out_;
  }

  /// A message that broke the API's shape (data that is not an event),
  /// which reconnecting would not mend; none while the stream is sound.
  const caf::error& broken() const noexcept {
    return broken_;
  }

private:
  bool on_message(const std::string& type, const std::string& data);

  stream_handlers handlers_;
  stream_outcome out_;
  caf::error broken_;
  bool over_ = false;
  tools::net::sse_parser parser_;
};

/// How api_client::follow resumes a stream that breaks.
struct follow_options {
  /// Reconnections in a row without a new event before giving up.
  /// Default: 5
  uint32_t max_reconnects = 5;
  /// Wait before reconnection n (1-based): base_delay * 2^(n-1), at most
  /// 8 s. Default: 500 ms
  std::chrono::milliseconds base_delay{500};
};

/// Talks to one `cadre serve`. Every call blocks until its answer; errors
/// are cadre errors whose message says what the server said
/// (problem_error) or "cannot reach cadre serve at URL: ..." (errc::
/// unavailable) when no answer came. The token goes only into the
/// Authorization header, never into a message. Not thread-safe.
class api_client {
public:
  /// @param base_url the server, "http://127.0.0.1:8700" (a path prefix and
  ///        trailing slashes are kept and dropped as written)
  /// @param token bearer token, "" for none
  api_client(std::string base_url, std::string token);

  api_client(const api_client&) = delete;
  api_client& operator=(const api_client&) = delete;

  const std::string& base_url() const noexcept {
    return base_;
  }

  /// The base URL joined with `path` ("/v1/executions") and `query`, whose
  /// values are percent-encoded; path segments must be encoded already.
  std::string
  url(std::string_view path,
      const std::vector<std::pair<std::string, std::string>>& query
      = {}) const;

  /// Set: streams and waits between reconnections stop (errc::cancelled),
  /// checked about once a second.
  void cancel_flag(std::shared_ptr<std::atomic<bool>> flag) {
    cancel_ = std::move(flag);
  }

  /// The problem document of the last response outside 2xx (null if it had
  /// none), for the fields a message leaves out (`errors`).
  const json& last_problem() const noexcept {
    return last_problem_;
  }

  // -- routes ---------------------------------------------------------------

  /// POST /v1/executions with Accept: text/event-stream: submits `body`
  /// ({"definition" | "workflow", "input", "idempotency_key"?}) and streams
  /// the new execution's events on this one connection until it ends.
  [[nodiscard]] expected<stream_outcome>
  submit_stream(const json& body, const stream_handlers& handlers);

  /// GET /v1/executions/{id}: the index fields of an execution.
  [[nodiscard]] expected<execution_info> execution(const std::string& id);

  /// One page of GET /v1/executions[?status=][&cursor=].
  struct execution_page {
    std::vector<execution_info> executions;
    std::string next_cursor; ///< "" on the last page
  };
  [[nodiscard]] expected<execution_page>
  executions(const std::string& status, const std::string& cursor);

  /// One page of GET /v1/executions/{id}/events?after=&limit=.
  struct event_page {
    std::vector<event> events;
    std::optional<uint64_t> next_after; ///< set while more events follow
  };
  [[nodiscard]] expected<event_page>
  events(const std::string& id, uint64_t after, uint32_t limit);

  /// One connection of GET /v1/executions/{id}/events as a stream: the
  /// events after `after`, asked for as `?after=` or, with `resume`, as
  /// Last-Event-ID. A response outside 2xx is an error; a broken connection
  /// is an outcome (how::dropped).
  [[nodiscard]] expected<stream_outcome>
  stream_events(const std::string& id, uint64_t after, bool resume,
                const stream_handlers& handlers);

  /// Streams an execution's events after `after` until its `end` (or a
  /// handler stops), reconnecting with Last-Event-ID when the connection
  /// drops, the server sends `close`, or answers 429/503 meanwhile; gives
  /// up after opts.max_reconnects tries in a row that brought no event.
  [[nodiscard]] expected<stream_outcome>
  follow(const std::string& id, uint64_t after,
         const stream_handlers& handlers, const follow_options& opts = {});

  /// POST /v1/executions/{id}/input: answers a human task; returns the
  /// sequence number of the answer's event.
  [[nodiscard]] expected<uint64_t>
  answer(const std::string& id, const std::string& task, const json& value);

  /// POST /v1/executions/{id}/cancel: true when cancelled, false when it
  /// had already finished.
  [[nodiscard]] expected<bool> cancel(const std::string& id);

  /// GET /v1/executions/{id}/state?at=: the state after event `at` (0: the
  /// last), as `cadre inspect --json` prints it.
  [[nodiscard]] expected<json> state(const std::string& id, uint64_t at);

  /// GET /v1/executions/{a}/diff/{b}, as `cadre diff --json` prints it.
  [[nodiscard]] expected<json> diff(const std::string& a,
                                    const std::string& b);

  /// GET /v1/executions/{id}/export: the bundle's bytes to `sink` as they
  /// arrive (returning false stops the transfer: errc::cancelled).
  [[nodiscard]] expected<void>
  export_bundle(const std::string& id,
                const std::function<bool(std::string_view)>& sink);

  /// POST /v1/imports with the exported bundle (NDJSON) in `file`, read as
  /// it is sent: {execution, events, agent_logs, status,
  /// skipped_agent_logs?}.
  [[nodiscard]] expected<json> import_bundle(const std::string& file);

  /// POST /v1/executions/{id}/fork: the fork's plan, as the executions
  /// actor answers it.
  [[nodiscard]] expected<json> fork(const fork_request& req);

  /// GET /v1/tools: the `tools` array.
  [[nodiscard]] expected<json> tools();

  /// POST /v1/tools/{name}/invoke: the tool's output. `timeout_ms` 0: the
  /// server's default.
  [[nodiscard]] expected<json>
  invoke_tool(const std::string& name, const json& input, int64_t timeout_ms);

  /// GET /v1/nodes: the `nodes` array.
  [[nodiscard]] expected<json> nodes();
  /// GET /v1/schedules: the `schedules` array.
  [[nodiscard]] expected<json> schedules();

  /// GET /v1/tree: the supervision tree, as `cadre tree --json`.
  [[nodiscard]] expected<json> tree();

  /// GET /v1/agents/{agent_id}: the agent's memory view (docs/agents.md);
  /// errc::not_found for an agent without a log.
  [[nodiscard]] expected<json> agent(const std::string& id);

  /// GET /metrics: the server's counters in Prometheus text format.
  [[nodiscard]] expected<std::string> metrics();

private:
  tools::net::http_request
  make_request(std::string method, std::string url,
               std::chrono::milliseconds timeout) const;

  /// Performs a request and parses a 2xx JSON answer.
  expected<json> call(tools::net::http_request req);

  /// Performs a streaming request, feeding the body to a stream_reader.
  expected<stream_outcome> stream(tools::net::http_request req,
                                  uint64_t after,
                                  const stream_handlers& handlers);

  caf::error transport_error(const caf::error& err) const;
  /// The error of a response outside 2xx (problem_error); keeps its
  /// problem document in last_problem_.
  caf::error status_error(const tools::net::http_response& resp);
  caf::error answer_error(const tools::net::http_request& req,
                          const std::string& what) const;

  std::string base_;
  std::string token_;
  std::shared_ptr<std::atomic<bool>> cancel_;
  json last_problem_;
  // One reused handle for calls and one for streams, so a handler of a
  // stream can call the API while the stream is open.
  tools::net::http_client calls_;
  tools::net::http_client streams_;
};

} // namespace cadre::runtime::cli
