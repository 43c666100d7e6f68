// The schedules actor on the deterministic scheduler, with an in-memory
// store and a stand-in for the executions actor: each firing is in the
// schedule's log before its submission arrives, timers follow the clock,
// and a restart (a new actor on the same log) neither skips nor doubles.

#include "cadre/actors/schedules.hpp"

#include <chrono>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <caf/event_based_actor.hpp>
#include <caf/typed_event_based_actor.hpp>
#include <gtest/gtest.h>

#include "caf_test_fixture.hpp"

using namespace cadre;
using namespace std::chrono_literals;

namespace {

// 2026-12-07, hh:mm:ss, in microseconds since the epoch.
int64_t at(int h, int mi, int s = 0) {
  using namespace std::chrono;
  auto day = sys_days{year{2026} / December / 7};
  return duration_cast<microseconds>(day.time_since_epoch() + hours{h}
                                     + minutes{mi} + seconds{s})
    .count();
}

/// What the stand-ins saw. The testing scheduler runs every actor on the
/// test's thread, so plain members do.
struct world {
  int64_t now = 0;
  std::map<std::string, std::vector<event>> logs;
  struct submission {
    std::string key;
    // The last event of the schedule's log when the submission arrived.
    std::string last_logged_type;
    std::string last_logged_key;
  };
  std::vector<submission> submissions;
  // Key -> execution: the same key answers the same execution.
  std::map<std::string, std::string> executions;
  std::map<std::string, std::string> status; // execution -> status
  // While set, appends are taken and never answered (a stuck store).
  bool hold_appends = false;
  std::vector<caf::typed_response_promise<uint64_t>> held;
  // How the schedules actor ended, once it has (watcher).
  std::optional<caf::error> exit_reason;
};
using world_ptr = std::shared_ptr<world>;

event_store_actor::behavior_type
fake_store(event_store_actor::pointer self, world_ptr w) {
  return {
    [self, w](append_atom, append_request& req) -> caf::result<uint64_t> {
      if (w->hold_appends) {
        w->held.push_back(self->make_response_promise<uint64_t>());
        return w->held.back();
      }
      auto& log = w->logs[req.events.at(0).execution_id];
      for (auto& ev : req.events) {
        if (ev.seq != log.size() + 1)
          return make_error(errc::conflict, "not dense");
        log.push_back(ev);
      }
      return log.size();
    },
    [w](get_atom, read_atom, const std::string& id) -> uint64_t {
      return w->logs[id].size();
    },
    [w](read_atom, const std::string& id, uint64_t from,
        uint64_t max) -> std::vector<event> {
      std::vector<event> out;
      for (auto& ev : w->logs[id])
        if (ev.seq >= from && (max == 0 || out.size() < max))
          out.push_back(ev);
      return out;
    },
    [](list_atom, const execution_filter&) -> std::vector<execution_info> {
      return {};
    },
    [](get_atom, const std::string&) -> caf::result<execution_info> {
      return make_error(errc::not_found, "none");
    },
    [](get_atom, submit_atom, const std::string&) -> std::string {
      return {};
    },
    [](put_atom, const definition_record&) { return true; },
    [](get_atom, const std::string&,
       const std::string&) -> caf::result<definition_record> {
      return make_error(errc::not_found, "none");
    },
    [](list_atom, put_atom,
       const std::string&) -> std::vector<definition_record> { return {}; },
    [](delete_atom, const std::string&) { return uint64_t{0}; },
    [w](delete_atom, read_atom, const std::string& name) -> uint64_t {
      auto n = w->logs[name].size();
      w->logs.erase(name);
      return n;
    },
  };
}

executions_actor::behavior_type fake_executions(executions_actor::pointer,
                                                world_ptr w) {
  return {
    [w](submit_atom, const submit_request& req) -> std::string {
      const auto& log = w->logs["schedule:tick"];
      world::submission s;
      s.key = req.idempotency_key;
      if (!log.empty()) {
        s.last_logged_type = log.back().type;
        s.last_logged_key = log.back().payload->value("key", std::string{});
      }
      w->submissions.push_back(s);
      auto& id = w->executions[req.idempotency_key];
      if (id.empty()) {
        id = "e" + std::to_string(w->executions.size());
        w->status[id] = "completed";
      }
      return id;
    },
    [](input_atom, const human_input&) -> uint64_t { return 0; },
    [](cancel_atom, const std::string&) { return false; },
    [w](status_atom, const std::string& id) -> execution_info {
      execution_info info;
      info.id = id;
      info.status = w->status[id];
      return info;
    },
    [](await_atom, const std::string&) -> caf::result<execution_info> {
      return make_error(errc::unavailable, "not here");
    },
    [](fork_atom, const fork_request&) -> caf::result<json_value> {
      return make_error(errc::unavailable, "not here");
    },
    [](resume_atom) { return std::vector<std::string>{}; },
    [](get_atom, const std::string&) -> caf::result<caf::actor> {
      return make_error(errc::not_found, "none");
    },
  };
}

event_bus_actor::behavior_type fake_bus(event_bus_actor::pointer) {
  return {
    [](subscribe_atom, const std::string&, const event_sink_actor&) {},
    [](unsub_atom, const std::string&, const event_sink_actor&) {},
    [](publish_atom, const std::vector<event>&) {},
  };
}

// Keeps the reason `watched` ended with in `w`. Monitors hold weak
// references: the test keeps the watcher's handle.
caf::behavior watcher(caf::event_based_actor* self, caf::actor watched,
                      world_ptr w) {
  self->monitor(watched);
  self->set_down_handler([self, w](const caf::down_msg& msg) {
    w->exit_reason = msg.reason;
    self->quit();
  });
  return {[](caf::ok_atom) {}};
}

class SchedulesActor : public ::testing::Test,
                       public cadre::test::caf_test_fixture {
public:
  SchedulesActor() {
    w->now = at(10, 0, 30);
    store = sys.spawn(fake_store, w);
    executions = sys.spawn(fake_executions, w);
    bus = sys.spawn(fake_bus);
  }

  ~SchedulesActor() override {
    stop();
    for (const auto& h : {caf::actor_cast<caf::actor>(store),
                          caf::actor_cast<caf::actor>(executions),
                          caf::actor_cast<caf::actor>(bus)})
      caf::anon_send_exit(h, caf::exit_reason::user_shutdown);
    run();
  }

  /// Starts a schedules actor (a node start) on the logs kept so far.
  void start(schedule::spec spec) {
    stop();
    actors::schedules_options opts;
    opts.clock = [w = w] { return w->now; };
    opts.append_deadline = append_deadline;
    actors::scheduled_workflow s{std::move(spec),
                                 json_value{json{{"name", "tick"}}}};
    actor = actors::spawn_schedules(sys, store, bus, executions, {s}, opts);
    run();
  }

  void stop() {
    if (actor) {
      caf::anon_send_exit(actor, caf::exit_reason::kill);
      run();
      actor = nullptr;
    }
  }

  /// Moves both clocks, the schedule's and CAF's, by `d`.
  void pass(std::chrono::microseconds d) {
    w->now += d.count();
    advance_time(d);
    run();
  }

  std::vector<std::string> logged_types() {
    std::vector<std::string> out;
    for (auto& ev : w->logs["schedule:tick"])
      out.push_back(ev.type);
    return out;
  }

  static schedule::spec every_minute() {
    schedule::spec s;
    s.name = "tick";
    s.workflow = "tick.yaml";
    s.every_ms = 60'000;
    return s;
  }

  world_ptr w = std::make_shared<world>();
  std::chrono::milliseconds append_deadline = actors::local_deadline;
  event_store_actor store;
  executions_actor executions;
  event_bus_actor bus;
  schedules_actor actor;
};

using strings = std::vector<std::string>;

} // namespace

TEST_F(SchedulesActor, EachFiringIsLoggedBeforeItsSubmissionArrives) {
  start(every_minute());
  EXPECT_EQ(logged_types(), strings{"schedule_configured"});
  EXPECT_TRUE(w->submissions.empty());
  pass(30s); // 10:01:00
  ASSERT_EQ(w->submissions.size(), 1u);
  auto& first = w->submissions[0];
  EXPECT_EQ(first.key, "schedule:tick:2026-12-07T10:01:00Z");
  EXPECT_EQ(first.last_logged_type, "schedule_fired");
  EXPECT_EQ(first.last_logged_key, first.key);
  EXPECT_EQ(logged_types(), (strings{"schedule_configured", "schedule_fired",
                                     "schedule_started"}));
  pass(60s); // 10:02:00
  ASSERT_EQ(w->submissions.size(), 2u);
  EXPECT_EQ(w->submissions[1].key, "schedule:tick:2026-12-07T10:02:00Z");
  EXPECT_EQ(w->submissions[1].last_logged_type, "schedule_fired");
  auto view = request<json_value>(actor, list_atom_v);
  ASSERT_TRUE(view);
  ASSERT_EQ(view->get().size(), 1u);
  EXPECT_EQ(view->get()[0]["last"]["execution"], "e2");
  EXPECT_EQ(view->get()[0]["next_due"], "2026-12-07T10:03:00Z");
}

TEST_F(SchedulesActor, ARestartAfterTheRecordSubmitsTheSameFiringOnce) {
  start(every_minute());
  pass(30s); // 10:01:00: fired, submitted, started
  // As if the node died between the record and the submission's answer:
  // the log ends with the firing.
  w->logs["schedule:tick"].pop_back();
  pass(10s);
  start(every_minute());
  ASSERT_EQ(w->submissions.size(), 2u);
  EXPECT_EQ(w->submissions[1].key, "schedule:tick:2026-12-07T10:01:00Z");
  // The key found the execution the first submission started.
  EXPECT_EQ(w->executions.size(), 1u);
  EXPECT_EQ(w->logs["schedule:tick"].back().type, "schedule_started");
  EXPECT_EQ(w->logs["schedule:tick"].back().payload->value("execution", ""),
            "e1");
  pass(50s); // 10:02:00
  EXPECT_EQ(w->submissions.size(), 3u);
  EXPECT_EQ(w->executions.size(), 2u);
}

TEST_F(SchedulesActor, FiringsMissedWhileDownAreSkipped) {
  start(every_minute());
  pass(30s); // 10:01:00
  stop();
  w->now = at(10, 5, 10);
  start(every_minute());
  EXPECT_EQ(w->submissions.size(), 1u);
  auto& last = w->logs["schedule:tick"].back();
  EXPECT_EQ(last.type, "schedule_skipped");
  EXPECT_EQ(last.payload->value("count", 0), 4);
  EXPECT_EQ(last.payload->value("reason", ""), "missed");
  pass(50s); // 10:06:00
  ASSERT_EQ(w->submissions.size(), 2u);
  EXPECT_EQ(w->submissions[1].key, "schedule:tick:2026-12-07T10:06:00Z");
}

TEST_F(SchedulesActor, ALongWaitIsCutSoAClockJumpIsNoticed) {
  auto spec = every_minute();
  spec.every_ms = 3'600'000;
  start(spec);
  // The system clock jumps an hour ahead; CAF's timer has waited a minute.
  w->now = at(11, 0, 5);
  advance_time(60s);
  run();
  ASSERT_EQ(w->submissions.size(), 1u);
  EXPECT_EQ(w->submissions[0].key, "schedule:tick:2026-12-07T11:00:00Z");
}

// A store that leaves a schedule's append unanswered past append_deadline
// ends the actor with an error naming the append and the deadline, as a
// failed append does: its supervisor starts it again from the log.
TEST_F(SchedulesActor, AnAppendUnansweredPastItsDeadlineEndsTheActor) {
  append_deadline = 200ms;
  w->hold_appends = true;
  start(every_minute());
  ASSERT_EQ(w->held.size(), 1u); // schedule_configured, held
  auto watching = sys.spawn(watcher, caf::actor_cast<caf::actor>(actor), w);
  run();
  pass(100ms);
  EXPECT_FALSE(w->exit_reason);
  pass(100ms);
  ASSERT_TRUE(w->exit_reason);
  EXPECT_EQ(code_of(*w->exit_reason), errc::unavailable)
    << describe(*w->exit_reason);
  EXPECT_EQ(message_of(*w->exit_reason),
            "the event store did not answer an append within 200 ms "
            "(store.append_deadline)");
  EXPECT_TRUE(w->submissions.empty());
}
