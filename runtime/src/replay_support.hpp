#pragma once

// What the replay commands of the CLI and the replay routes of the HTTP API
// compute alike (docs/replay.md): the state of an execution after an event
// with its agents' conversations, the difference of two executions, and
// the export bundle written and read back and imported. One copy for both:
// the CLI reads a read-only store, the ingress reads through the store
// actor, each behind a log_reader. Private to runtime/.

#include <cstddef>
#include <cstdint>
#include <functional>
#include <iosfwd>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <caf/fwd.hpp>

#include "cadre/messages/error.hpp"
#include "cadre/messages/event.hpp"
#include "cadre/messages/interfaces.hpp"
#include "cadre/messages/json_value.hpp"
#include "cadre/workflow/machine.hpp"

namespace cadre::persistence {
class event_store;
} // namespace cadre::persistence

namespace cadre::runtime {

/// Reads the logs of a store by name (an execution id, "agent:<id>",
/// "snapshot:<id>/<k>"); an unknown log is an empty one.
struct log_reader {
  /// Events from seq `from`, at most `max` (0: all).
  std::function<expected<std::vector<event>>(const std::string&, uint64_t,
                                             uint64_t)>
    read;
  /// The last seq of a log, 0 when it has none.
  std::function<expected<uint64_t>(const std::string&)> last_seq;
  /// The store's store.snapshot_every (0: do not look for snapshots).
  uint64_t snapshot_every = 0;

  expected<std::vector<event>> operator()(const std::string& name) const {
    return read(name, 1, 0);
  }

  /// Calls `fn` on the events of log `name` from seq `from` through `to`
  /// (0: to its end), in order, until it returns false. Reads them a chunk
  /// at a time, so memory holds one chunk of events, never the whole log.
  /// Errors: the reader's and fn's.
  [[nodiscard]] expected<void>
  each(const std::string& name, uint64_t from, uint64_t to,
       const std::function<expected<bool>(const event&)>& fn) const;
};

/// The log of execution `id`. Errors: errc::not_found ("no execution 'ID'
/// in the store") for an empty log, and the reader's.
[[nodiscard]] expected<std::vector<event>>
read_execution(const log_reader& read, const std::string& id);

/// A reader of a store opened in this process (the CLI's read-only one).
log_reader store_reader(persistence::event_store& store,
                        uint64_t snapshot_every = 0);

/// The machine of execution `id` after event `at` (0: its last), restored
/// from the newest snapshot at or before it when there is one (looking back
/// over up to 64 multiples of snapshot_every). Errors: errc::not_found for
/// an unknown execution or an `at` past its last event (naming how many
/// events it has), the fold's, the reader's.
[[nodiscard]] expected<workflow::machine>
machine_at(const log_reader& read, const std::string& id, uint64_t at);

/// The state of execution `id` after event `at` (0: its last), as
/// workflow::machine::view() shows it, with `agents`: each agent log its
/// turns wrote, as the conversation it held at that event ([{seq, role,
/// content | name, arguments}]). `cadre inspect --json` prints it and
/// GET /v1/executions/{id}/state answers it. Errors: errc::not_found for
/// an unknown execution or an `at` past its last event (naming how many
/// events it has), the fold's, the reader's.
[[nodiscard]] expected<json>
execution_state(const log_reader& read, const std::string& id, uint64_t at);

/// The difference of executions `a` and `b` (workflow::diff_logs) as
/// `cadre diff --json` prints it and GET /v1/executions/{a}/diff/{b}
/// answers it: {a, b, same, first_divergent_seq, first_a, first_b, tasks,
/// usage_a, usage_b}. Errors: errc::not_found naming the unknown one, the
/// fold's, the reader's.
[[nodiscard]] expected<json>
execution_diff(const log_reader& read, const std::string& a,
               const std::string& b);

/// An exported bundle, read back: the execution's log and the agent logs.
struct bundle {
  std::string execution;
  /// (log name, its events from seq 1), the execution's log among them.
  std::vector<std::pair<std::string, std::vector<event>>> logs;

  const std::vector<event>* log(const std::string& name) const;
};

/// Writes the bundle of execution `id` as NDJSON: a first line {"cadre":
/// "export", "format": 1, "execution": ID, "logs": [agent logs]}, then a
/// line {log, seq, time_us, type, payload} per event, the execution's log
/// first. `cadre export` and GET /v1/executions/{id}/export write it. The
/// logs are read a chunk at a time (the execution's twice: the first line
/// names the logs its events use), never whole.
/// Walks the events of the bundle's own execution in the file at `path` a
/// line at a time, every line checked as read_bundle does; `fn` answers
/// false to stop. Errors: the reader's and `fn`'s, errc::invalid_input
/// "PATH: no events of execution ID".
[[nodiscard]] expected<void>
walk_bundle_file(const std::string& path,
                 const std::function<expected<bool>(const event&)>& fn);

/// Errors: errc::not_found, the reader's, errc::storage_error when `out`
/// fails.
[[nodiscard]] expected<void>
write_bundle(const log_reader& read, const std::string& id, std::ostream& out);

/// Reads a bundle a line at a time, with read_bundle's checks: memory holds
/// one line and the names of the logs read, never a log (`cadre test` on an
/// exported run). Reads a stream (start, next), or takes the lines it is
/// given (take), for a bundle that arrives a piece at a time.
class bundle_reader {
public:
  /// A reader of `in` (named `name` in errors), which must outlive it.
  bundle_reader(std::istream& in, std::string name);

  /// A reader of the lines given to take.
  explicit bundle_reader(std::string name);

  /// Reads the first line. Errors: errc::invalid_input "NAME:1: what",
  /// "NAME: empty".
  [[nodiscard]] expected<void> start();

  /// The execution the first line names.
  const std::string& execution() const {
    return execution_;
  }

  /// The next event (its log in execution_id), or false at the end of the
  /// bundle. Errors: errc::invalid_input "NAME:LINE: what", or
  /// "NAME:LINE:COLUMN: not a JSON object: REASON" for a line that is not
  /// JSON (parse_json's place and reason; column() is COLUMN).
  [[nodiscard]] expected<bool> next(event& ev);

  /// Takes the next line (without its '\n'): the first that is not empty
  /// is start's, each later one next's. True when it was an event, now in
  /// `ev`. Errors: start's and next's.
  [[nodiscard]] expected<bool> take(std::string_view line, event& ev);

  /// True once the first line was read.
  bool started() const {
    return started_;
  }

  /// The last line read (the one at fault after an error).
  size_t line() const {
    return line_;
  }

  /// The column at fault in line() after an error: where a line that is
  /// not JSON goes wrong (parse_json's); 0 for the line as a whole.
  size_t column() const {
    return column_;
  }

  /// The bytes of the last line read.
  size_t line_size() const {
    return text_.size();
  }

private:
  // The next line that is not empty, as an object; null at the end.
  expected<json> read_object();
  // The line read last, as an object.
  expected<json> object();
  expected<void> header(const json& j);
  expected<void> event_of(json& j, event& ev);
  caf::error bad(const std::string& what) const;

  std::istream* in_ = nullptr;
  std::string name_;
  std::string execution_;
  bool started_ = false;
  std::string text_; // the line read last
  size_t line_ = 0;
  size_t column_ = 0;
  std::string log_;           // the log of the events being read
  uint64_t seq_ = 0;          // its last seq
  std::vector<std::string> done_; // logs read before it
};

/// Reads a bundle from `in`. Errors: errc::invalid_input "NAME:LINE: what"
/// ("NAME: what" when no line is at fault); `bad_line`, when given, is set
/// to the line at fault (0: none).
[[nodiscard]] expected<bundle> read_bundle(std::istream& in,
                                           const std::string& name,
                                           size_t* bad_line = nullptr);

/// Imports a bundle into the store behind `store` as it arrives, a piece
/// at a time (feed), a line at a time: memory holds the execution's state,
/// one line (at most import_max_line_bytes) and one batch of events
/// (import_batch_events or import_batch_bytes), never a log, whatever the
/// bundle's size. POST /v1/imports feeds it the request body as it is
/// received; import_bundle feeds it a stream. Checks what read_bundle
/// checks, that the execution's log comes first and folds, and that every
/// other log is one it uses (its agent logs, a fork's branches of them and
/// its recorded replies); writes each log in batches (keeping an agent log
/// the store already has: memory scope `agent` is shared across
/// executions), the execution's last batch with its index entry after the
/// agent logs, at finish. All or nothing: when anything fails after a
/// write, or the bundle does not arrive whole (abandon, or the import is
/// destroyed unfinished), what the import wrote is removed, so the store
/// never holds part of an execution; a killed process leaves the logs it
/// created named under import:<id> (event_store::erase_killed_imports).
/// Each request to the store carries `deadline`. Errors: errc::invalid_input
/// (the bundle: "NAME:LINE: what", bad_line() then LINE; "NAME: what" when
/// no line is at fault), errc::conflict (the store has the execution, or
/// events under its id without an index entry), the store's. After an
/// error the import is over, what it wrote removed, and every later call
/// answers that error.
class bundle_import {
public:
  bundle_import(caf::actor_system& sys, const event_store_actor& store,
                std::string name, caf::timespan deadline);
  ~bundle_import();
  bundle_import(const bundle_import&) = delete;
  bundle_import& operator=(const bundle_import&) = delete;

  /// Imports the complete lines of `bytes`, the bundle's next piece; a
  /// last line without its '\n' waits for the next piece (or finish).
  [[nodiscard]] expected<void> feed(std::string_view bytes);

  /// The bundle is whole: imports its last line and writes the execution's
  /// last events with its index entry. Returns {execution, events,
  /// agent_logs, status, skipped_agent_logs?}.
  [[nodiscard]] expected<json> finish();

  /// The bundle did not arrive whole (`why`: how it ended, e.g. "the
  /// connection closed"): removes what the import wrote. Returns
  /// errc::invalid_input "NAME:LINE: the bundle ended early: WHY", LINE the
  /// line being read, or the import's earlier error.
  caf::error abandon(const std::string& why);

  /// The line at fault after an error (0: none).
  size_t bad_line() const;

  /// The column at fault in bad_line() (0: the line as a whole).
  size_t bad_column() const;

private:
  struct state;
  std::unique_ptr<state> st_;
};

/// Imports the bundle read from `in` (named `name` in errors) with a
/// bundle_import, a chunk at a time. Errors: bundle_import's, and
/// errc::invalid_input "NAME:LINE: the bundle ended early: cannot read"
/// when `in` fails; `bad_line`, when given, is set to the line at fault
/// (0: none).
[[nodiscard]] expected<json> import_bundle(caf::actor_system& sys,
                                           const event_store_actor& store,
                                           std::istream& in,
                                           const std::string& name,
                                           caf::timespan deadline,
                                           size_t* bad_line = nullptr);

/// The batches an import writes: at most this many events, or a batch
/// reaching this many bytes of bundle lines.
constexpr size_t import_batch_events = 1024;
constexpr size_t import_batch_bytes = size_t{4} << 20;

/// The longest line of a bundle an import takes: a longer one is an error
/// rather than memory held without bound (an event is far smaller).
constexpr size_t import_max_line_bytes = size_t{64} << 20;

} // namespace cadre::runtime
