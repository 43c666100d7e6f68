#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <memory>
#include <mutex>
#include <cstdio>
#include <string>
#include <unordered_map>
#include <vector>

#include <caf/fwd.hpp>

#include "cadre/messages/interfaces.hpp"

namespace cadre::runtime {

/// How `cadre run` shows an execution while it runs.
enum class progress_style {
  human, ///< one compact line per task state change, to stderr
  json,  ///< one JSON event per line, to stdout
  quiet,
};

/// What agents are saying while their model streams, one line per agent,
/// for a terminal. Fed every event (agent_token on the node, token from a
/// server's stream); an agent's line starts over with each LLM call and
/// goes when the call's reply, its turn's end or its task's end arrives.
/// Pure: no output, no clock. Not thread-safe: one owner.
class token_view {
public:
  /// Takes `ev` into account; true when the lines changed.
  bool add(const event& ev);

  /// One line per agent still streaming, in the order they began: the
  /// agent's name and the newest part of its text, control characters as
  /// spaces, at most `width` characters.
  std::vector<std::string> lines(size_t width) const;

  bool empty() const noexcept {
    return live_.empty();
  }

private:
  struct stream {
    std::string agent_id;
    std::string agent;
    std::string execution;
    std::string task;
    int64_t call = 0;
    std::string text; // the tail of the call's text, bounded
  };
  std::vector<stream> live_;
  // Agent id -> its last call whose line ended: tokens of it that arrive
  // late (the bus does not order them with the log) draw nothing.
  std::unordered_map<std::string, int64_t> ended_;
};

/// Prints an execution's events as they happen, in `style`: for a person a
/// line per task state change on `human` (with each task's duration), for
/// programs one JSON object per event on `machine`. Used by the sink that
/// spawn_progress makes and by the CLI following a server's event stream.
/// Not thread-safe: one owner.
class progress_printer {
public:
  /// `live_width`: the terminal's width in columns for the lines of
  /// streaming text (token_view) below the others, redrawn in place; 0 for
  /// none. Default: the width of `human` when it is a terminal, else 0.
  explicit progress_printer(progress_style style, std::FILE* human = stderr,
                            std::FILE* machine = stdout,
                            size_t live_width = terminal);

  /// Clears the streaming lines it drew.
  ~progress_printer();

  progress_printer(const progress_printer&) = delete;
  progress_printer& operator=(const progress_printer&) = delete;

  /// The default of `live_width`.
  static constexpr size_t terminal = static_cast<size_t>(-1);

  /// Prints `ev` (nothing for events not worth a line in human style).
  void print(const event& ev);

  /// Flushes the JSON output, after a batch of events.
  void flush();

private:
  void erase_live();
  void draw_live();

  progress_style style_;
  std::FILE* human_;
  std::FILE* machine_;
  size_t live_width_ = 0;
  token_view tokens_;
  size_t drawn_ = 0; // streaming lines on screen, the cursor after the last
  // Task key -> time of its dispatch, for durations.
  std::unordered_map<std::string, int64_t> started_;
};

/// How far a progress sink has printed, per execution: the CLI prints an
/// execution's result only after its last event, so a program reading the
/// JSON lines finds the result last. Thread-safe.
class progress_mark {
public:
  /// Records that the events of `id` up to `seq` were printed.
  void printed(const std::string& id, uint64_t seq);

  /// Waits until the events of `id` up to `seq` were printed, at most
  /// `timeout`; false when it ran out.
  bool wait(const std::string& id, uint64_t seq,
            std::chrono::milliseconds timeout);

private:
  std::mutex mtx_;
  std::condition_variable cv_;
  std::unordered_map<std::string, uint64_t> seqs_;
};

/// Spawns a sink that prints the events it receives in `style`, and moves
/// `mark` (when given) past each batch it printed.
event_sink_actor spawn_progress(caf::actor_system& sys, progress_style style,
                                std::shared_ptr<progress_mark> mark = nullptr);

/// One line for a person describing `ev`, or "" when the event is not worth
/// a line (e.g. a single map item starting).
std::string describe_event(const event& ev);

} // namespace cadre::runtime
