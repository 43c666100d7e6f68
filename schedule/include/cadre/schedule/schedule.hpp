#pragma once

// A schedule's state machine: a pure fold of the schedule's log
// ("schedule:<name>") plus the decisions that turn the clock, submission
// results and what is known of the previous execution into new events
// (docs/schedules.md). No actor code and no clock: the caller passes `now`.
// The schedules actor persists a step's events, then acts on its actions.

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "cadre/messages/error.hpp"
#include "cadre/messages/event.hpp"
#include "cadre/messages/json_value.hpp"
#include "cadre/schedule/cron.hpp"

namespace cadre::schedule {

/// What happens to the firings that fell due while the node was down.
enum class missed_policy {
  skip,     ///< record them skipped; the next firing is the next future one
  run_once, ///< one firing, at once, stands for all of them
};

/// What a firing does while the previous execution still runs.
enum class overlap_policy {
  skip,  ///< record it skipped
  queue, ///< it runs when the previous one ends; at most one waits
  allow, ///< it runs beside the previous one
};

/// "skip", "run_once"; "skip", "queue", "allow".
const char* to_string(missed_policy x);
const char* to_string(overlap_policy x);
/// Parses a name of to_string; false for another text.
bool from_string(std::string_view text, missed_policy& out);
bool from_string(std::string_view text, overlap_policy& out);

/// One configured schedule (the node config's `schedules`).
struct spec {
  /// Unique on the node: letters, digits, '.', '_' and '-'.
  std::string name;
  /// The workflow file each firing runs (as the config resolved it).
  std::string workflow;
  /// The input of every execution. Default: {}
  json input = json::object();
  /// Period in ms: fires at every multiple of it since the Unix epoch
  /// (UTC), so `every: 5m` fires at :00, :05, ... 0 when `cron` is set.
  int64_t every_ms = 0;
  /// A cron expression (UTC) when every_ms is 0.
  std::string cron;
  /// Default: skip
  missed_policy missed = missed_policy::skip;
  /// Default: skip
  overlap_policy overlap = overlap_policy::skip;
  /// Where it is configured ("cadre.yaml:12:5"), for messages only.
  std::string origin;

  /// What the log records of it (schedule_configured): every field but
  /// `origin`, `every_ms` or `cron` whichever is set.
  json to_json() const;
};

/// Event type names of a schedule's log (docs/schedules.md).
namespace events {
/// {spec..., at_us}: the schedule as configured from at_us on.
inline constexpr const char* configured = "schedule_configured";
/// {firing, due_us, key, missed?}: recorded before the submission.
inline constexpr const char* fired = "schedule_fired";
/// {firing, due_us, execution}: the submission was accepted.
inline constexpr const char* started = "schedule_started";
/// {firing, due_us, code, message}: the submission was refused.
inline constexpr const char* failed = "schedule_failed";
/// {firing, due_us, last_due_us, count, reason, execution?}: `count`
/// firings from due_us to last_due_us did not run; reason "missed" or
/// "overlap" (then `execution` still ran).
inline constexpr const char* skipped = "schedule_skipped";
/// {firing, due_us, execution}: runs when `execution` has ended.
inline constexpr const char* queued = "schedule_queued";
} // namespace events

/// The log of schedule `name`: "schedule:<name>".
std::string log_name(const std::string& name);

/// The submission (idempotency) key of the firing due at `due_us`:
/// "schedule:<name>:<due time in RFC 3339, UTC>".
std::string firing_key(const std::string& name, int64_t due_us);

/// `us` (since the Unix epoch) in RFC 3339, UTC: "2026-12-07T02:00:00Z",
/// with milliseconds when there are any ("...:00.250Z").
std::string format_utc(int64_t us);

/// `ms` as the config writes durations: "1h30m", "5m", "1s", "250ms".
std::string format_duration(int64_t ms);

/// Something the schedules actor does once a step's events are durable.
struct action {
  enum kind_t {
    submit, ///< submit the workflow under `key`; then started() or
            ///< submit_failed()
    retry,  ///< after delay_ms, do the submit of `firing` again
    check,  ///< find out whether `execution` has ended; then observed()
    watch,  ///< call observed(execution, true) once `execution` has ended
  };
  kind_t kind = submit;
  uint64_t firing = 0;
  int64_t due_us = 0;
  std::string key;
  std::string execution;
  int64_t delay_ms = 0;
};

/// New events (already folded into the machine) and what to do once they
/// are on disk.
struct step {
  std::vector<event> events;
  std::vector<action> actions;

  bool empty() const {
    return events.empty() && actions.empty();
  }
};

/// One schedule's state. Not thread-safe: one actor owns it.
///
/// Firings are numbered from 1 in the order their due times were decided
/// (fired, queued or skipped). A firing's key depends only on the schedule
/// and its due time, so a submission repeated after a crash finds the
/// execution the first one started.
class machine {
public:
  /// A machine for `s` with an empty log. Errors: errc::invalid_config
  /// when neither a positive every_ms nor a cron expression that parses
  /// is set.
  [[nodiscard]] static expected<machine> make(spec s);

  /// Folds one event of the schedule's log (in sequence order). Errors:
  /// errc::conflict for a seq out of order, errc::codec_error for an
  /// unknown type or a malformed payload.
  [[nodiscard]] expected<void> apply(const event& ev);

  /// Once the log is folded, when the schedule starts running: records the
  /// spec when it is new or changed, submits again a firing that was
  /// recorded but whose submission was not, and decides the firings that
  /// fell due while the node was down, per the missed policy.
  step start(int64_t now_us);

  /// The clock reached `now_us`: decides the firings due since the last
  /// decision. The latest one runs, subject to the overlap policy; earlier
  /// ones (a late timer) are skipped as missed.
  step tick(int64_t now_us);

  /// The submission of `firing` was accepted as `execution`.
  step started(uint64_t firing, const std::string& execution,
               int64_t now_us);

  /// The submission of `firing` failed with `err`. Errors that a later try
  /// may not meet (timeouts, an unavailable or overloaded node, storage)
  /// give a retry action with a growing delay (at most a minute); the
  /// others end the firing as schedule_failed.
  step submit_failed(uint64_t firing, const caf::error& err, int64_t now_us);

  /// What a check or watch found: `execution` has ended (`ended`) or still
  /// runs.
  step observed(const std::string& execution, bool ended, int64_t now_us);

  /// When tick() is to be called: the next due time after the last
  /// decided one. Nullopt while a decision waits for a check or a
  /// submission (their answer decides it), or when there is none.
  std::optional<int64_t> next_due_us() const;

  /// The schedule as `cadre schedules` shows it at `now_us` (spec, next
  /// and last firing, a queued firing, the last skip); without the status
  /// of the last execution, which the caller reads from the store.
  json view(int64_t now_us) const;

  const spec& config() const noexcept {
    return spec_;
  }
  const std::string& log() const noexcept {
    return log_;
  }
  uint64_t last_seq() const noexcept {
    return last_seq_;
  }
  /// True while `firing` is recorded as fired but its submission is not
  /// answered yet.
  bool in_flight(uint64_t firing) const {
    return in_flight_.count(firing) > 0;
  }
  /// The execution of the last started firing, until it is seen ended.
  const std::string& active() const noexcept {
    return active_;
  }

private:
  struct firing_ref {
    uint64_t firing = 0;
    int64_t due_us = 0;
    std::string key;
    uint32_t attempts = 0; // failed submissions (not in the log)
  };

  machine(spec s, std::optional<cron> c);

  std::optional<int64_t> next_after(int64_t us) const;
  void fold(const event& ev);
  void emit(step& s, const char* type, json payload, int64_t now_us);
  void fire(step& s, const firing_ref& f, int64_t now_us,
            std::optional<uint64_t> missed = std::nullopt);
  void decide(step& s, int64_t now_us);

  spec spec_;
  std::optional<cron> cron_;
  std::string log_;

  // The fold of the log.
  uint64_t last_seq_ = 0;
  json configured_;                // the spec of the last schedule_configured
  std::optional<int64_t> cursor_;  // due times up to it are decided
  uint64_t firings_ = 0;           // the highest firing number used
  std::map<uint64_t, firing_ref> in_flight_; // fired, not answered
  std::optional<firing_ref> queued_;
  std::string active_;
  json last_fired_;   // {firing, due_us, key, time_us, execution | error}
  json last_skipped_; // the payload of the last schedule_skipped, time_us

  // What the running actor waits for (not in the log).
  bool decision_due_ = false; // due times wait for a check or submission
  bool missed_mode_ = false;  // they fell due while the node was down
  std::string checking_;      // the execution a check asks about
  std::optional<bool> active_ended_; // its answer, for the decision
  std::string watching_;             // the execution a watch waits for
};

} // namespace cadre::schedule
