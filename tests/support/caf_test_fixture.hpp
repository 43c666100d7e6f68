#pragma once

// A deterministic CAF actor system for tests: the testing scheduler runs
// actors only when the test says so, and time moves only by advance_time(),
// so timeouts, backoffs and intensity windows are tested without sleeping.
//
//   class Supervisor : public ::testing::Test,
//                      public cadre::test::caf_test_fixture {};
//   TEST_F(Supervisor, X) {
//     auto sup = spawn_supervisor(sys, ...);
//     run();                               // drain all mailboxes
//     advance_time(std::chrono::seconds{1}); run();
//     auto t = request<cadre::json_value>(sup, cadre::which_children_atom_v);
//   }

#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <utility>

#include <caf/actor_system.hpp>
#include <caf/actor_system_config.hpp>
#include <caf/atom.hpp>
#include <caf/duration.hpp>
#include <caf/event_based_actor.hpp>
#include <caf/scheduler/test_coordinator.hpp>

#include "cadre/messages/error.hpp"
#include "cadre/messages/register_types.hpp"

namespace cadre::test {

/// Testing scheduler, quiet logger, cadre's message types.
class caf_test_config : public caf::actor_system_config {
public:
  caf_test_config() {
    set("scheduler.policy", caf::atom("testing"));
    set("logger.file-verbosity", caf::atom("quiet"));
    set("logger.console-verbosity", caf::atom("quiet"));
    set("logger.inline-output", true);
    cadre::register_types(*this);
  }
};

class caf_test_fixture {
public:
  using scheduler_type = caf::scheduler::test_coordinator;

  caf_test_fixture()
    : sys(cfg), sched(dynamic_cast<scheduler_type&>(sys.scheduler())) {
    // Start away from the epoch, as CAF's own fixture does.
    sched.clock().current_time += std::chrono::hours(1);
  }

  virtual ~caf_test_fixture() {
    sched.run();
    // Pending delayed sends and request timeouts hold strong references to
    // their actors, and the actor system waits for every actor on shutdown.
    sched.clock().cancel_all();
    sched.run();
  }

  caf_test_fixture(const caf_test_fixture&) = delete;
  caf_test_fixture& operator=(const caf_test_fixture&) = delete;

  /// Runs actors until no mailbox holds a message. Returns the jobs run.
  size_t run() {
    return sched.run();
  }

  /// Runs one actor once. Returns false if none had work.
  bool run_once() {
    return sched.try_run_once();
  }

  /// Moves the clock and fires what falls due (delayed sends, request
  /// timeouts); call run() afterwards to process them.
  size_t advance_time(caf::timespan x) {
    return sched.advance_time(x);
  }

  /// advance_time(x), then run().
  size_t run_after(caf::timespan x) {
    advance_time(x);
    return run();
  }

  /// Sends a request from a fresh actor, runs the system, and returns the
  /// answer of type T, the error, or errc::timeout if none came.
  template <class T, class Handle, class... Ts>
  caf::expected<T> request(const Handle& dest, Ts... xs) {
    auto box = std::make_shared<std::optional<caf::expected<T>>>();
    sys.spawn([box, dest, xs...](caf::event_based_actor* self) {
      self->request(dest, caf::infinite, xs...)
        .then([box](T& x) { box->emplace(std::move(x)); },
              [box](caf::error& err) { box->emplace(std::move(err)); });
    });
    run();
    if (!*box)
      return cadre::make_error(errc::timeout, "no answer");
    return std::move(**box);
  }

  caf_test_config cfg;
  caf::actor_system sys;
  scheduler_type& sched;
};

} // namespace cadre::test
