// The schedule machine without an actor system: what it records and asks
// for as the clock moves, across restarts (a new machine folding the log),
// with each missed-firing and overlap policy.

#include <chrono>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "cadre/schedule/schedule.hpp"

using namespace cadre;
using schedule::action;
using schedule::machine;
using schedule::missed_policy;
using schedule::overlap_policy;
namespace events = schedule::events;

namespace {

int64_t utc(int y, unsigned mo, unsigned d, int h = 0, int mi = 0,
            int s = 0, int ms = 0) {
  using namespace std::chrono;
  auto date = sys_days{year{y} / month{mo} / day{d}};
  return duration_cast<microseconds>(date.time_since_epoch() + hours{h}
                                     + minutes{mi} + seconds{s}
                                     + milliseconds{ms})
    .count();
}

// 2026-12-07, hh:mm:ss.
int64_t at(int h, int mi, int s = 0, int ms = 0) {
  return utc(2026, 12, 7, h, mi, s, ms);
}

schedule::spec every_minute(missed_policy missed = missed_policy::skip,
                            overlap_policy overlap = overlap_policy::skip) {
  schedule::spec s;
  s.name = "tick";
  s.workflow = "/etc/cadre/tick.yaml";
  s.input = json{{"n", 1}};
  s.every_ms = 60'000;
  s.missed = missed;
  s.overlap = overlap;
  return s;
}

/// A machine with its log: steps are "persisted" into `log`, and a restart
/// folds that log into a new machine, as the actor does.
class harness {
public:
  explicit harness(schedule::spec s) : spec_(std::move(s)) {
    m_ = make();
  }

  machine& m() {
    return m_;
  }

  schedule::step keep(schedule::step s) {
    for (auto& ev : s.events)
      log.push_back(ev);
    return s;
  }

  /// Starts a new machine from the log, as a restarted node does.
  schedule::step restart(int64_t now, schedule::spec s) {
    spec_ = std::move(s);
    m_ = make();
    for (auto& ev : log) {
      auto r = m_.apply(ev);
      EXPECT_TRUE(r) << describe(r.error());
    }
    return keep(m_.start(now));
  }

  schedule::step restart(int64_t now) {
    return restart(now, spec_);
  }

  std::vector<event> log;

private:
  machine make() {
    auto m = machine::make(spec_);
    EXPECT_TRUE(m) << describe(m.error());
    return std::move(*m);
  }

  schedule::spec spec_;
  machine m_ = *machine::make(every_minute());
};

std::vector<std::string> types(const schedule::step& s) {
  std::vector<std::string> out;
  for (auto& ev : s.events)
    out.push_back(ev.type);
  return out;
}

const json& payload(const schedule::step& s, size_t i) {
  return s.events.at(i).payload.get();
}

using strings = std::vector<std::string>;

} // namespace

TEST(ScheduleKey, DeterministicPerScheduleAndDueTime) {
  EXPECT_EQ(schedule::firing_key("tick", at(2, 0)),
            "schedule:tick:2026-12-07T02:00:00Z");
  EXPECT_EQ(schedule::firing_key("tick", at(2, 0, 1, 250)),
            "schedule:tick:2026-12-07T02:00:01.250Z");
  EXPECT_EQ(schedule::log_name("tick"), "schedule:tick");
  EXPECT_EQ(schedule::format_utc(0), "1970-01-01T00:00:00Z");
  EXPECT_EQ(schedule::format_duration(5'400'000), "1h30m");
  EXPECT_EQ(schedule::format_duration(1500), "1s500ms");
  EXPECT_EQ(schedule::format_duration(300'000), "5m");
}

TEST(ScheduleMachine, NeedsEveryOrACronThatParses) {
  auto s = every_minute();
  s.every_ms = 0;
  EXPECT_EQ(code_of(machine::make(s).error()), errc::invalid_config);
  s.cron = "61 * * * *";
  auto bad = machine::make(s);
  ASSERT_FALSE(bad);
  EXPECT_NE(message_of(bad.error()).find("minute: 61 is out of range"),
            std::string::npos);
  s.every_ms = 1000;
  s.cron = "* * * * *";
  EXPECT_FALSE(machine::make(s));
}

TEST(ScheduleMachine, FirstStartRecordsTheSpecAndFiresNothingYet) {
  harness h{every_minute()};
  auto s = h.keep(h.m().start(at(10, 0, 30)));
  EXPECT_EQ(types(s), strings{events::configured});
  EXPECT_EQ(payload(s, 0)["every_ms"], 60'000);
  EXPECT_EQ(payload(s, 0)["at_us"], at(10, 0, 30));
  EXPECT_EQ(s.events[0].execution_id, "schedule:tick");
  EXPECT_EQ(s.events[0].seq, 1u);
  EXPECT_TRUE(s.actions.empty());
  // The period's grid is aligned to the epoch: the next minute.
  EXPECT_EQ(h.m().next_due_us(), at(10, 1));
  EXPECT_TRUE(h.m().tick(at(10, 0, 59)).empty());
}

TEST(ScheduleMachine, ADueTimeIsRecordedThenSubmittedOnce) {
  harness h{every_minute()};
  h.keep(h.m().start(at(10, 0, 30)));
  auto s = h.keep(h.m().tick(at(10, 1, 0, 3)));
  ASSERT_EQ(types(s), strings{events::fired});
  EXPECT_EQ(payload(s, 0)["firing"], 1);
  EXPECT_EQ(payload(s, 0)["due_us"], at(10, 1));
  EXPECT_EQ(payload(s, 0)["key"], "schedule:tick:2026-12-07T10:01:00Z");
  EXPECT_FALSE(payload(s, 0).contains("missed"));
  ASSERT_EQ(s.actions.size(), 1u);
  EXPECT_EQ(s.actions[0].kind, action::submit);
  EXPECT_EQ(s.actions[0].key, "schedule:tick:2026-12-07T10:01:00Z");
  EXPECT_TRUE(h.m().in_flight(1));
  // The same minute again decides nothing twice.
  EXPECT_TRUE(h.m().tick(at(10, 1, 30)).empty());
  s = h.keep(h.m().started(1, "e1", at(10, 1, 0, 9)));
  ASSERT_EQ(types(s), strings{events::started});
  EXPECT_EQ(payload(s, 0)["execution"], "e1");
  EXPECT_EQ(h.m().active(), "e1");
  EXPECT_FALSE(h.m().in_flight(1));
  EXPECT_EQ(h.m().next_due_us(), at(10, 2));
  // A stale answer changes nothing.
  EXPECT_TRUE(h.m().started(1, "e9", at(10, 1, 1)).empty());
}

TEST(ScheduleMachine, RestartBetweenRecordAndSubmitSubmitsTheSameKeyAgain) {
  harness h{every_minute()};
  h.keep(h.m().start(at(10, 0, 30)));
  h.keep(h.m().tick(at(10, 1)));
  // The node died before the submission was answered.
  auto s = h.restart(at(10, 1, 20));
  EXPECT_TRUE(s.events.empty());
  ASSERT_EQ(s.actions.size(), 1u);
  EXPECT_EQ(s.actions[0].kind, action::submit);
  EXPECT_EQ(s.actions[0].firing, 1u);
  EXPECT_EQ(s.actions[0].key, "schedule:tick:2026-12-07T10:01:00Z");
}

TEST(ScheduleMachine, RestartBeforeTheNextDueTimeMissesNothing) {
  harness h{every_minute()};
  h.keep(h.m().start(at(10, 0, 30)));
  h.keep(h.m().tick(at(10, 1)));
  h.keep(h.m().started(1, "e1", at(10, 1)));
  auto s = h.restart(at(10, 1, 40));
  EXPECT_TRUE(s.empty());
  EXPECT_EQ(h.m().next_due_us(), at(10, 2));
}

TEST(ScheduleMachine, MissedSkipRecordsTheMissedOnesAndWaitsForTheNext) {
  harness h{every_minute(missed_policy::skip)};
  h.keep(h.m().start(at(10, 0, 30)));
  h.keep(h.m().tick(at(10, 1)));
  h.keep(h.m().started(1, "e1", at(10, 1)));
  // Down from 10:01:30 to 10:05:10: 10:02 to 10:05 fell due meanwhile.
  auto s = h.restart(at(10, 5, 10));
  ASSERT_EQ(types(s), strings{events::skipped});
  EXPECT_EQ(payload(s, 0)["firing"], 2);
  EXPECT_EQ(payload(s, 0)["due_us"], at(10, 2));
  EXPECT_EQ(payload(s, 0)["last_due_us"], at(10, 5));
  EXPECT_EQ(payload(s, 0)["count"], 4);
  EXPECT_EQ(payload(s, 0)["reason"], "missed");
  EXPECT_TRUE(s.actions.empty());
  EXPECT_EQ(h.m().next_due_us(), at(10, 6));
  s = h.keep(h.m().tick(at(10, 6)));
  // The previous execution may still run (overlap skip): asked first.
  ASSERT_EQ(s.actions.size(), 1u);
  EXPECT_EQ(s.actions[0].kind, action::check);
  s = h.keep(h.m().observed("e1", true, at(10, 6)));
  ASSERT_EQ(types(s), strings{events::fired});
  EXPECT_EQ(payload(s, 0)["firing"], 6);
}

TEST(ScheduleMachine, MissedRunOnceRunsOneFiringForAllMissedOnes) {
  harness h{every_minute(missed_policy::run_once, overlap_policy::allow)};
  h.keep(h.m().start(at(10, 0, 30)));
  h.keep(h.m().tick(at(10, 1)));
  h.keep(h.m().started(1, "e1", at(10, 1)));
  auto s = h.restart(at(10, 5, 10));
  ASSERT_EQ(types(s), (strings{events::skipped, events::fired}));
  EXPECT_EQ(payload(s, 0)["due_us"], at(10, 2));
  EXPECT_EQ(payload(s, 0)["last_due_us"], at(10, 4));
  EXPECT_EQ(payload(s, 0)["count"], 3);
  EXPECT_EQ(payload(s, 0)["reason"], "missed");
  EXPECT_EQ(payload(s, 1)["firing"], 5);
  EXPECT_EQ(payload(s, 1)["due_us"], at(10, 5));
  EXPECT_EQ(payload(s, 1)["missed"], 4);
  ASSERT_EQ(s.actions.size(), 1u);
  EXPECT_EQ(s.actions[0].key, "schedule:tick:2026-12-07T10:05:00Z");
  // One missed due time: it runs alone.
  h.keep(h.m().started(5, "e5", at(10, 5, 10)));
  s = h.restart(at(10, 6, 1));
  ASSERT_EQ(types(s), strings{events::fired});
  EXPECT_EQ(payload(s, 0)["missed"], 1);
}

TEST(ScheduleMachine, MissedRunOnceStillRespectsTheOverlapPolicy) {
  harness h{every_minute(missed_policy::run_once, overlap_policy::skip)};
  h.keep(h.m().start(at(10, 0, 30)));
  h.keep(h.m().tick(at(10, 1)));
  h.keep(h.m().started(1, "e1", at(10, 1)));
  auto s = h.restart(at(10, 3, 10));
  EXPECT_TRUE(s.events.empty());
  ASSERT_EQ(s.actions.size(), 1u);
  EXPECT_EQ(s.actions[0].kind, action::check);
  EXPECT_EQ(s.actions[0].execution, "e1");
  // Waiting for the answer, there is no timer to set.
  EXPECT_FALSE(h.m().next_due_us());
  s = h.keep(h.m().observed("e1", false, at(10, 3, 11)));
  ASSERT_EQ(types(s), (strings{events::skipped, events::skipped}));
  EXPECT_EQ(payload(s, 0)["reason"], "missed");
  EXPECT_EQ(payload(s, 0)["count"], 1);
  EXPECT_EQ(payload(s, 1)["reason"], "overlap");
  EXPECT_EQ(payload(s, 1)["due_us"], at(10, 3));
  EXPECT_EQ(payload(s, 1)["execution"], "e1");
  EXPECT_EQ(h.m().next_due_us(), at(10, 4));
}

TEST(ScheduleMachine, ALateTimerSkipsTheEarlierDueTimesAsMissed) {
  harness h{every_minute(missed_policy::skip, overlap_policy::allow)};
  h.keep(h.m().start(at(10, 0, 30)));
  h.keep(h.m().tick(at(10, 1)));
  h.keep(h.m().started(1, "e1", at(10, 1)));
  auto s = h.keep(h.m().tick(at(10, 3, 10)));
  ASSERT_EQ(types(s), (strings{events::skipped, events::fired}));
  EXPECT_EQ(payload(s, 0)["due_us"], at(10, 2));
  EXPECT_EQ(payload(s, 0)["count"], 1);
  EXPECT_EQ(payload(s, 1)["due_us"], at(10, 3));
  EXPECT_EQ(payload(s, 1)["firing"], 3);
}

TEST(ScheduleMachine, OverlapSkipSkipsWhileThePreviousRunsThenFires) {
  harness h{every_minute(missed_policy::skip, overlap_policy::skip)};
  h.keep(h.m().start(at(10, 0, 30)));
  h.keep(h.m().tick(at(10, 1)));
  h.keep(h.m().started(1, "e1", at(10, 1)));
  auto s = h.keep(h.m().tick(at(10, 2)));
  EXPECT_TRUE(s.events.empty());
  ASSERT_EQ(s.actions.size(), 1u);
  EXPECT_EQ(s.actions[0].kind, action::check);
  s = h.keep(h.m().observed("e1", false, at(10, 2)));
  ASSERT_EQ(types(s), strings{events::skipped});
  EXPECT_EQ(payload(s, 0)["reason"], "overlap");
  EXPECT_EQ(payload(s, 0)["firing"], 2);
  // Asked again at the next due time: now it has ended.
  s = h.keep(h.m().tick(at(10, 3)));
  ASSERT_EQ(s.actions.size(), 1u);
  EXPECT_EQ(s.actions[0].kind, action::check);
  s = h.keep(h.m().observed("e1", true, at(10, 3)));
  ASSERT_EQ(types(s), strings{events::fired});
  EXPECT_EQ(payload(s, 0)["firing"], 3);
  EXPECT_EQ(h.m().active(), "");
  // The fired one is submitted; ticks wait for its answer, then ask
  // about it.
  EXPECT_TRUE(h.m().tick(at(10, 4)).empty());
  s = h.keep(h.m().started(3, "e3", at(10, 4)));
  ASSERT_EQ(types(s), strings{events::started});
  ASSERT_EQ(s.actions.size(), 1u);
  EXPECT_EQ(s.actions[0].kind, action::check);
  EXPECT_EQ(s.actions[0].execution, "e3");
}

TEST(ScheduleMachine, OverlapQueueRunsOneQueuedFiringWhenThePreviousEnds) {
  harness h{every_minute(missed_policy::skip, overlap_policy::queue)};
  h.keep(h.m().start(at(10, 0, 30)));
  h.keep(h.m().tick(at(10, 1)));
  h.keep(h.m().started(1, "e1", at(10, 1)));
  h.keep(h.m().tick(at(10, 2)));
  auto s = h.keep(h.m().observed("e1", false, at(10, 2)));
  ASSERT_EQ(types(s), strings{events::queued});
  EXPECT_EQ(payload(s, 0)["firing"], 2);
  EXPECT_EQ(payload(s, 0)["execution"], "e1");
  ASSERT_EQ(s.actions.size(), 1u);
  EXPECT_EQ(s.actions[0].kind, action::watch);
  EXPECT_EQ(s.actions[0].execution, "e1");
  // One waits at most: the next is skipped.
  h.keep(h.m().tick(at(10, 3)));
  s = h.keep(h.m().observed("e1", false, at(10, 3)));
  ASSERT_EQ(types(s), strings{events::skipped});
  EXPECT_EQ(payload(s, 0)["reason"], "overlap");
  EXPECT_TRUE(s.actions.empty());
  // The watch reports the end: the queued firing runs with its own key.
  s = h.keep(h.m().observed("e1", true, at(10, 3, 30)));
  ASSERT_EQ(types(s), strings{events::fired});
  EXPECT_EQ(payload(s, 0)["firing"], 2);
  EXPECT_EQ(payload(s, 0)["key"], "schedule:tick:2026-12-07T10:02:00Z");
  ASSERT_EQ(s.actions.size(), 1u);
  EXPECT_EQ(s.actions[0].kind, action::submit);
  EXPECT_EQ(h.m().view(at(10, 3, 30)).count("queued"), 0u);
}

TEST(ScheduleMachine, AQueuedFiringSurvivesARestart) {
  harness h{every_minute(missed_policy::skip, overlap_policy::queue)};
  h.keep(h.m().start(at(10, 0, 30)));
  h.keep(h.m().tick(at(10, 1)));
  h.keep(h.m().started(1, "e1", at(10, 1)));
  h.keep(h.m().tick(at(10, 2)));
  h.keep(h.m().observed("e1", false, at(10, 2)));
  auto s = h.restart(at(10, 2, 30));
  EXPECT_TRUE(s.events.empty());
  ASSERT_EQ(s.actions.size(), 1u);
  EXPECT_EQ(s.actions[0].kind, action::watch);
  EXPECT_EQ(s.actions[0].execution, "e1");
  s = h.keep(h.m().observed("e1", true, at(10, 2, 40)));
  ASSERT_EQ(types(s), strings{events::fired});
  EXPECT_EQ(payload(s, 0)["due_us"], at(10, 2));
}

TEST(ScheduleMachine, OverlapAllowFiresWithoutAsking) {
  harness h{every_minute(missed_policy::skip, overlap_policy::allow)};
  h.keep(h.m().start(at(10, 0, 30)));
  h.keep(h.m().tick(at(10, 1)));
  h.keep(h.m().started(1, "e1", at(10, 1)));
  auto s = h.keep(h.m().tick(at(10, 2)));
  ASSERT_EQ(types(s), strings{events::fired});
  EXPECT_EQ(s.actions.at(0).kind, action::submit);
  // Two submissions in flight at once, each answered on its own.
  s = h.keep(h.m().tick(at(10, 3)));
  ASSERT_EQ(types(s), strings{events::fired});
  EXPECT_TRUE(h.m().in_flight(2));
  EXPECT_TRUE(h.m().in_flight(3));
  EXPECT_EQ(types(h.keep(h.m().started(3, "e3", at(10, 3)))),
            strings{events::started});
  EXPECT_EQ(types(h.keep(h.m().started(2, "e2", at(10, 3)))),
            strings{events::started});
}

TEST(ScheduleMachine, TransientSubmitErrorsRetryPermanentOnesFail) {
  harness h{every_minute(missed_policy::skip, overlap_policy::skip)};
  h.keep(h.m().start(at(10, 0, 30)));
  h.keep(h.m().tick(at(10, 1)));
  auto s = h.m().submit_failed(1, make_error(errc::unavailable, "down"),
                               at(10, 1));
  EXPECT_TRUE(s.events.empty());
  ASSERT_EQ(s.actions.size(), 1u);
  EXPECT_EQ(s.actions[0].kind, action::retry);
  EXPECT_EQ(s.actions[0].delay_ms, 1000);
  EXPECT_EQ(s.actions[0].key, "schedule:tick:2026-12-07T10:01:00Z");
  s = h.m().submit_failed(1, caf::make_error(caf::sec::request_timeout),
                          at(10, 1, 1));
  EXPECT_EQ(s.actions.at(0).delay_ms, 2000);
  EXPECT_TRUE(h.m().in_flight(1));
  s = h.keep(h.m().submit_failed(
    1, make_error(errc::invalid_input, "input: /n: expected string"),
    at(10, 1, 3)));
  ASSERT_EQ(types(s), strings{events::failed});
  EXPECT_EQ(payload(s, 0)["code"], "invalid_input");
  EXPECT_EQ(payload(s, 0)["message"], "input: /n: expected string");
  EXPECT_FALSE(h.m().in_flight(1));
  auto v = h.m().view(at(10, 1, 3));
  EXPECT_EQ(v["last"]["error"], "invalid_input: input: /n: expected string");
  // Nothing runs (no active execution): the next due time fires at once.
  s = h.keep(h.m().tick(at(10, 2)));
  EXPECT_EQ(types(s), strings{events::fired});
}

TEST(ScheduleMachine, AChangedSpecStartsItsGridAfresh) {
  harness h{every_minute()};
  h.keep(h.m().start(at(10, 0, 30)));
  h.keep(h.m().tick(at(10, 1)));
  h.keep(h.m().started(1, "e1", at(10, 1)));
  auto changed = every_minute();
  changed.every_ms = 120'000;
  auto s = h.restart(at(10, 7, 30), changed);
  // Not missed: the schedule as it is now did not exist before.
  ASSERT_EQ(types(s), strings{events::configured});
  EXPECT_EQ(payload(s, 0)["every_ms"], 120'000);
  EXPECT_EQ(h.m().next_due_us(), at(10, 8));
  // The same spec again records nothing.
  EXPECT_TRUE(h.restart(at(10, 7, 40), changed).empty());
}

TEST(ScheduleMachine, CronSchedulesFireOnTheirMinutes) {
  auto spec = every_minute(missed_policy::skip, overlap_policy::allow);
  spec.every_ms = 0;
  spec.cron = "*/15 * * * *";
  harness h{spec};
  auto s = h.keep(h.m().start(at(10, 7)));
  EXPECT_EQ(payload(s, 0)["cron"], "*/15 * * * *");
  EXPECT_FALSE(payload(s, 0).contains("every_ms"));
  EXPECT_EQ(h.m().next_due_us(), at(10, 15));
  s = h.keep(h.m().tick(at(10, 15, 0, 1)));
  ASSERT_EQ(types(s), strings{events::fired});
  EXPECT_EQ(payload(s, 0)["key"], "schedule:tick:2026-12-07T10:15:00Z");
  h.keep(h.m().started(1, "e1", at(10, 15)));
  // Down over three quarter hours: they are missed.
  s = h.restart(at(11, 1));
  ASSERT_EQ(types(s), strings{events::skipped});
  EXPECT_EQ(payload(s, 0)["due_us"], at(10, 30));
  EXPECT_EQ(payload(s, 0)["last_due_us"], at(11, 0));
  EXPECT_EQ(payload(s, 0)["count"], 3);
  EXPECT_EQ(h.m().next_due_us(), at(11, 15));
}

TEST(ScheduleMachine, FoldRefusesGapsUnknownTypesAndBadPayloads) {
  harness h{every_minute()};
  h.keep(h.m().start(at(10, 0, 30)));
  auto m = machine::make(every_minute());
  ASSERT_TRUE(m);
  auto ev = h.log.at(0);
  ev.seq = 2;
  EXPECT_EQ(code_of(m->apply(ev).error()), errc::conflict);
  ev.seq = 1;
  ev.type = "schedule_exploded";
  EXPECT_EQ(code_of(m->apply(ev).error()), errc::codec_error);
  ev.type = events::fired;
  ev.payload = json_value{json{{"firing", 1}}};
  auto bad = m->apply(ev);
  ASSERT_FALSE(bad);
  EXPECT_EQ(code_of(bad.error()), errc::codec_error);
  EXPECT_NE(message_of(bad.error()).find("due_us"), std::string::npos);
  EXPECT_TRUE(m->apply(h.log.at(0)));
}

TEST(ScheduleMachine, ViewShowsNextLastAndQueued) {
  harness h{every_minute(missed_policy::skip, overlap_policy::queue)};
  auto v = h.m().view(at(10, 0, 30));
  EXPECT_EQ(v["next_due"], "2026-12-07T10:01:00Z");
  EXPECT_EQ(v["every"], "1m");
  EXPECT_EQ(v["firings"], 0);
  EXPECT_FALSE(v.contains("last"));
  h.keep(h.m().start(at(10, 0, 30)));
  h.keep(h.m().tick(at(10, 1)));
  h.keep(h.m().started(1, "e1", at(10, 1, 0, 5)));
  h.keep(h.m().tick(at(10, 2)));
  h.keep(h.m().observed("e1", false, at(10, 2)));
  v = h.m().view(at(10, 2, 1));
  EXPECT_EQ(v["name"], "tick");
  EXPECT_EQ(v["workflow"], "/etc/cadre/tick.yaml");
  EXPECT_EQ(v["missed"], "skip");
  EXPECT_EQ(v["overlap"], "queue");
  EXPECT_EQ(v["log"], "schedule:tick");
  EXPECT_EQ(v["next_due"], "2026-12-07T10:03:00Z");
  EXPECT_EQ(v["firings"], 2);
  EXPECT_EQ(v["last"]["firing"], 1);
  EXPECT_EQ(v["last"]["due"], "2026-12-07T10:01:00Z");
  EXPECT_EQ(v["last"]["execution"], "e1");
  EXPECT_EQ(v["last"]["time_us"], at(10, 1));
  EXPECT_EQ(v["queued"]["firing"], 2);
  // Read back from the log alone, the view is the same.
  auto again = machine::make(every_minute(missed_policy::skip,
                                          overlap_policy::queue));
  for (auto& ev : h.log)
    ASSERT_TRUE(again->apply(ev));
  EXPECT_EQ(again->view(at(10, 2, 1)), v);
}
