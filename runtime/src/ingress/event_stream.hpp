#pragma once

// Live event streams for HTTP clients: a bounded queue between a bus
// subscription (filled by a CAF sink actor, never blocking it) and the
// HTTP thread that writes Server-Sent Events to one client.

#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include <caf/fwd.hpp>

#include "cadre/messages/event.hpp"
#include "cadre/messages/interfaces.hpp"

namespace cadre::runtime {

/// Events for one stream. The producer never blocks: past `bound` waiting
/// events the queue marks itself overflowed and drops the rest, and the
/// writer ends the stream with `event: close` (reason overloaded) so the
/// client resumes from the store with Last-Event-ID.
class stream_queue {
public:
  /// `on_overflow` runs once, on the producer's thread, when the queue
  /// overflows (the writer may be blocked on its client and notice later).
  explicit stream_queue(size_t bound,
                        std::function<void()> on_overflow = nullptr)
    : bound_(bound), on_overflow_(std::move(on_overflow)) {
  }

  void push(std::vector<event> evs);

  /// From now on keeps only the events of execution `id` (and drops the
  /// others already queued): a stream subscribed to every execution before
  /// it knew the id of the one it follows.
  void only(const std::string& id);

  /// Ends the stream early (server shutdown).
  void close(std::string reason);

  enum class wake { events, timeout, closed, overflowed };

  /// Waits up to `timeout` for events and moves them to `out`.
  wake pop(std::vector<event>& out, std::chrono::milliseconds timeout);

  std::string close_reason() const;

private:
  mutable std::mutex mtx_;
  std::condition_variable cv_;
  std::deque<event> events_;
  size_t bound_;
  std::function<void()> on_overflow_;
  bool overflowed_ = false;
  std::string closed_;
  std::string only_;
};

/// A sink actor that feeds `q`; it holds only a weak reference, so a
/// stream that ended leaves nothing behind but the subscription, which the
/// caller removes.
event_sink_actor spawn_stream_sink(caf::actor_system& sys,
                                   std::weak_ptr<stream_queue> q);

/// One SSE message: "id: ...\nevent: ...\ndata: ...\n\n" (id left out when
/// empty; data split on newlines as the format wants).
std::string sse_message(const std::string& id, const std::string& type,
                        const std::string& data);

/// The SSE message of a persisted or live event: id = seq (or
/// "EXECUTION:SEQ" with `qualified_ids`), `event: token` for agent token
/// deltas (no id: they are not persisted).
std::string sse_of(const event& ev, bool qualified_ids);

bool terminal(const event& ev);

} // namespace cadre::runtime
