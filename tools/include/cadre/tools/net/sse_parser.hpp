#pragma once

// Server-sent events (text/event-stream, WHATWG HTML "Server-sent events")
// framed from a byte stream fed in arbitrary pieces: what the LLM providers
// read from their APIs and the `cadre` CLI from `cadre serve`.

#include <functional>
#include <string>
#include <string_view>
#include <utility>

namespace cadre::tools::net {

/// Frames server-sent events. Each complete event goes to the handler as
/// (event name, data); `data` lines of one event are joined with '\n', an
/// event without data lines is not dispatched, comments and `retry:` are
/// skipped; "\r\n" and "\r" line ends are accepted. Not thread-safe.
class sse_parser {
public:
  /// Returns false to stop parsing (the rest of the stream is ignored).
  using handler = std::function<bool(const std::string& event,
                                     const std::string& data)>;

  explicit sse_parser(handler h) : on_event_(std::move(h)) {
  }

  /// Feeds a piece of the stream; false when the handler stopped it.
  bool feed(std::string_view piece);

  /// Ends the stream: dispatches an event left without its blank line.
  bool finish();

  /// The last event ID: the value of the latest `id:` field read so far
  /// (kept across events that have none, as the standard's "last event ID
  /// buffer"), so inside the handler it is the ID of the event being
  /// dispatched, or of an earlier one when that event has none. A client
  /// sends it as `Last-Event-ID` to resume. Empty before any `id:`.
  const std::string& last_event_id() const noexcept {
    return last_id_;
  }

  /// Whether the event being dispatched had an `id:` field of its own.
  /// Meaningful inside the handler.
  bool has_id() const noexcept {
    return has_id_;
  }

private:
  bool line(std::string_view text);
  bool dispatch();

  handler on_event_;
  std::string buf_;
  std::string event_;
  std::string data_;
  std::string last_id_;
  bool has_data_ = false;
  bool has_id_ = false;
  bool stopped_ = false;
};

} // namespace cadre::tools::net
