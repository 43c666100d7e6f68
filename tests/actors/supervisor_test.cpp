// Tests the supervisor: strategies, restart policies, intensity and
// escalation, ordered shutdown, dynamic pools and the tree. Runs on the deterministic scheduler; time moves by advance_time only.

#include "cadre/actors/supervisor.hpp"

#include <algorithm>
#include <map>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include <caf/event_based_actor.hpp>
#include <caf/send.hpp>
#include <gtest/gtest.h>

#include "caf_test_fixture.hpp"
#include "cadre/messages/error.hpp"

namespace {

using namespace std::chrono_literals;
using namespace cadre::actors;
using cadre::json;
using cadre::json_value;

// What the test actors saw, in order. The testing scheduler runs everything
// on the test's thread, so plain vectors do.
struct record {
  std::vector<std::string> events;         // "start a", "stop a"
  std::vector<std::string> received;       // "a:1" per int handled
  std::vector<restart_report> reports;
  std::map<std::string, caf::actor> handles; // latest incarnation by id
};
using record_ptr = std::shared_ptr<record>;

struct worker_args {
  bool ignore_exit = false; // trap exit_reason::user_shutdown and carry on
};

// Echoes ints; strings are commands: "throw" throws, "crash" quits with an
// error, "exit" quits normally, "args" returns the start args.
caf::behavior worker(caf::event_based_actor* self, std::string id,
                     std::string args, record_ptr rec, worker_args opts) {
  install_exception_handler(self);
  rec->events.push_back("start " + id);
  rec->handles[id] = caf::actor_cast<caf::actor>(self);
  self->attach_functor(
    [rec, id](const caf::error&) { rec->events.push_back("stop " + id); });
  if (opts.ignore_exit)
    self->set_exit_handler([](caf::exit_msg&) {});
  return {
    [rec, id](int x) {
      rec->received.push_back(id + ":" + std::to_string(x));
      return x;
    },
    [self, args](const std::string& cmd) -> caf::result<std::string> {
      if (cmd == "throw")
        throw std::runtime_error("boom");
      if (cmd == "crash")
        self->quit(cadre::make_error(cadre::errc::internal, "crash"));
      else if (cmd == "exit")
        self->quit();
      else if (cmd == "args")
        return args;
      return cmd;
    },
  };
}

child_spec worker_spec(std::string id, record_ptr rec,
                       restart_policy restart = restart_policy::permanent,
                       worker_args opts = {}) {
  child_spec spec;
  spec.id = std::move(id);
  spec.restart = restart;
  spec.start = [rec, opts](const start_context& ctx)
    -> caf::expected<caf::actor> {
    return ctx.system.spawn(worker, ctx.id, ctx.args.dump(), rec, opts);
  };
  return spec;
}

// `spec`, whose started incarnations are kept in rec->handles.
child_spec recorded(child_spec spec, record_ptr rec) {
  spec.start = [rec, start = spec.start](const start_context& ctx)
    -> caf::expected<caf::actor> {
    auto res = start(ctx);
    if (res)
      rec->handles[ctx.id] = *res;
    return res;
  };
  return spec;
}

supervisor_options options(std::string name, restart_strategy strategy,
                           record_ptr rec) {
  supervisor_options opts;
  opts.name = std::move(name);
  opts.strategy = strategy;
  opts.log = false;
  opts.on_restart = [rec](const restart_report& r) {
    rec->reports.push_back(r);
  };
  return opts;
}

std::vector<std::string> tail(const std::vector<std::string>& xs,
                              size_t from) {
  return {xs.begin() + static_cast<std::ptrdiff_t>(from), xs.end()};
}

using strings = std::vector<std::string>;

class Supervisor : public ::testing::Test,
                   public cadre::test::caf_test_fixture {
protected:
  record_ptr rec = std::make_shared<record>();
  std::vector<caf::actor> watchers;

  // Fire-and-forget command to the latest incarnation of a child.
  void command(const std::string& id, const std::string& cmd) {
    caf::anon_send(rec->handles.at(id), std::string{cmd});
  }

  json tree(const supervisor_actor& sup) {
    auto res = request<json_value>(sup, cadre::which_children_atom_v);
    EXPECT_TRUE(res) << cadre::describe(res.error());
    return res ? res->get() : json{};
  }

  json child_entry(const supervisor_actor& sup, const std::string& id) {
    auto t = tree(sup);
    for (auto& c : t["children"])
      if (c["id"] == id)
        return c;
    return json{};
  }

  // Records the exit reason of `who` once it is down.
  std::shared_ptr<std::optional<caf::error>> watch(const caf::actor& who) {
    auto out = std::make_shared<std::optional<caf::error>>();
    // Monitors hold weak references: keep the watcher alive ourselves.
    watchers.push_back(sys.spawn([out, who](caf::event_based_actor* self)
                                   -> caf::behavior {
      self->monitor(who);
      self->set_down_handler([self, out](caf::down_msg& dm) {
        out->emplace(dm.reason);
        self->quit();
      });
      return {[](int) {}};
    }));
    return out;
  }

  std::shared_ptr<std::optional<caf::error>>
  watch(const supervisor_actor& sup) {
    return watch(caf::actor_cast<caf::actor>(sup));
  }
};

// -- strategies ---------------------------------------------------------------

TEST_F(Supervisor, OneForOneRestartsOnlyTheFailedChild) {
  auto sup = spawn_supervisor(sys,
                              options("s", restart_strategy::one_for_one, rec),
                              {worker_spec("a", rec), worker_spec("b", rec),
                               worker_spec("c", rec)});
  run();
  ASSERT_EQ(rec->events, (strings{"start a", "start b", "start c"}));
  command("b", "throw");
  run();
  EXPECT_EQ(tail(rec->events, 3), (strings{"stop b", "start b"}));
  ASSERT_EQ(rec->reports.size(), 1u);
  EXPECT_EQ(rec->reports[0].child, "b");
  EXPECT_EQ(rec->reports[0].group, (strings{"b"}));
  EXPECT_EQ(rec->reports[0].restarts, 1u);
  EXPECT_EQ(child_entry(sup, "a")["restarts"], 0);
  EXPECT_EQ(child_entry(sup, "b")["restarts"], 1);
  EXPECT_EQ(child_entry(sup, "b")["alive"], true);
  EXPECT_EQ(child_entry(sup, "c")["restarts"], 0);
}

TEST_F(Supervisor, OneForAllRestartsAllInStartOrder) {
  auto sup = spawn_supervisor(sys,
                              options("s", restart_strategy::one_for_all, rec),
                              {worker_spec("a", rec), worker_spec("b", rec),
                               worker_spec("c", rec)});
  run();
  command("b", "throw");
  run();
  // b died; c and a are stopped last-started-first, then all start in order.
  EXPECT_EQ(tail(rec->events, 3), (strings{"stop b", "stop c", "stop a",
                                           "start a", "start b", "start c"}));
  ASSERT_EQ(rec->reports.size(), 1u);
  EXPECT_EQ(rec->reports[0].group, (strings{"a", "b", "c"}));
  for (auto id : {"a", "b", "c"}) {
    EXPECT_EQ(child_entry(sup, id)["restarts"], 1) << id;
    EXPECT_EQ(child_entry(sup, id)["alive"], true) << id;
  }
}

TEST_F(Supervisor, RestForOneRestartsTheFailedAndLaterChildren) {
  auto sup = spawn_supervisor(sys,
                              options("s", restart_strategy::rest_for_one,
                                      rec),
                              {worker_spec("a", rec), worker_spec("b", rec),
                               worker_spec("c", rec)});
  run();
  command("b", "throw");
  run();
  EXPECT_EQ(tail(rec->events, 3),
            (strings{"stop b", "stop c", "start b", "start c"}));
  EXPECT_EQ(rec->reports.at(0).group, (strings{"b", "c"}));
  EXPECT_EQ(child_entry(sup, "a")["restarts"], 0);
  EXPECT_EQ(child_entry(sup, "c")["restarts"], 1);
}

// -- restart policies ---------------------------------------------------------

struct policy_case {
  restart_policy policy;
  const char* command; // "exit" = normal, "crash" / "throw" = abnormal
  bool restarted;
  bool kept; // still listed by which_children
};

class SupervisorPolicy : public Supervisor,
                         public ::testing::WithParamInterface<policy_case> {};

TEST_P(SupervisorPolicy, RestartsPerPolicyAndExitKind) {
  auto param = GetParam();
  auto sup = spawn_supervisor(sys,
                              options("s", restart_strategy::one_for_one, rec),
                              {worker_spec("w", rec, param.policy)});
  run();
  command("w", param.command);
  run();
  auto starts = std::count(rec->events.begin(), rec->events.end(), "start w");
  EXPECT_EQ(starts, param.restarted ? 2 : 1);
  EXPECT_EQ(rec->reports.size(), param.restarted ? 1u : 0u);
  auto entry = child_entry(sup, "w");
  EXPECT_EQ(!entry.is_null(), param.kept);
  if (param.kept) {
    EXPECT_EQ(entry["alive"], param.restarted);
  }
  auto n = request<json_value>(sup, cadre::count_children_atom_v);
  ASSERT_TRUE(n);
  EXPECT_EQ((*n)->at("active"), param.restarted ? 1 : 0);
}

INSTANTIATE_TEST_SUITE_P(
  AllPolicies, SupervisorPolicy,
  ::testing::Values(
    policy_case{restart_policy::permanent, "exit", true, true},
    policy_case{restart_policy::permanent, "crash", true, true},
    policy_case{restart_policy::transient, "exit", false, true},
    policy_case{restart_policy::transient, "crash", true, true},
    policy_case{restart_policy::transient, "throw", true, true},
    policy_case{restart_policy::temporary, "crash", false, false},
    policy_case{restart_policy::temporary, "exit", false, false}));

// -- intensity and escalation -------------------------------------------------

TEST_F(Supervisor, IntensityExceededStopsChildrenInReverseAndEscalates) {
  auto inner_rec = std::make_shared<record>();
  auto inner_opts = options("inner", restart_strategy::one_for_one, inner_rec);
  inner_opts.max_restarts = 1;
  auto sup = spawn_supervisor(
    sys, options("outer", restart_strategy::one_for_one, rec),
    {supervisor_child("inner", inner_opts,
                      {worker_spec("w1", rec), worker_spec("w2", rec),
                       worker_spec("w3", rec)})});
  run();
  ASSERT_EQ(rec->events, (strings{"start w1", "start w2", "start w3"}));
  ASSERT_EQ(child_entry(sup, "inner")["alive"], true);
  command("w2", "throw"); // restart 1 of 1: fine
  run();
  EXPECT_EQ(inner_rec->reports.size(), 1u);
  EXPECT_TRUE(rec->reports.empty());
  auto before = rec->events.size();
  command("w2", "throw"); // restart 2 of 1: inner gives up
  run();
  // w2 died; inner stopped w3 then w1; outer restarted inner, which started
  // its children again in order.
  EXPECT_EQ(tail(rec->events, before),
            (strings{"stop w2", "stop w3", "stop w1", "start w1", "start w2",
                     "start w3"}));
  ASSERT_EQ(rec->reports.size(), 1u);
  EXPECT_EQ(rec->reports[0].child, "inner");
  EXPECT_NE(rec->reports[0].reason.find("cadre: worker_crashed"),
            std::string::npos)
    << rec->reports[0].reason;
  EXPECT_NE(rec->reports[0].reason.find("child 'w2' exceeded"),
            std::string::npos)
    << rec->reports[0].reason;
  EXPECT_EQ(child_entry(sup, "inner")["restarts"], 1);
}

TEST_F(Supervisor, EscalationExitReasonNamesTheChild) {
  auto opts = options("s", restart_strategy::one_for_one, rec);
  opts.max_restarts = 0;
  auto sup = spawn_supervisor(sys, opts,
                              {worker_spec("a", rec), worker_spec("b", rec)});
  auto down = watch(sup);
  run();
  command("b", "crash");
  run();
  ASSERT_TRUE(*down);
  EXPECT_EQ(cadre::code_of(**down), cadre::errc::worker_crashed);
  EXPECT_NE(cadre::message_of(**down).find("supervisor 's': child 'b'"),
            std::string::npos)
    << cadre::describe(**down);
  EXPECT_EQ(tail(rec->events, 2), (strings{"stop b", "stop a"}));
}

TEST_F(Supervisor, IntensityWindowForgetsOldRestarts) {
  auto opts = options("s", restart_strategy::one_for_one, rec);
  opts.max_restarts = 1;
  opts.period = 5s;
  auto sup = spawn_supervisor(sys, opts, {worker_spec("a", rec)});
  auto down = watch(sup);
  run();
  for (int i = 0; i < 4; ++i) {
    command("a", "crash");
    run();
    run_after(6s); // each restart falls out of the window before the next
  }
  EXPECT_FALSE(*down);
  EXPECT_EQ(rec->reports.size(), 4u);
  command("a", "crash");
  run();
  command("a", "crash"); // two within 5 s: exceeded
  run();
  ASSERT_TRUE(*down);
  EXPECT_EQ(cadre::code_of(**down), cadre::errc::worker_crashed);
}

// -- shutdown -----------------------------------------------------------------

TEST_F(Supervisor, ShutdownIsReverseOrderAndKillsAChildThatIgnoresExit) {
  auto stubborn = worker_spec("b", rec, restart_policy::permanent,
                              worker_args{true});
  stubborn.shutdown = 2s;
  auto sup = spawn_supervisor(sys,
                              options("s", restart_strategy::one_for_one, rec),
                              {worker_spec("a", rec), stubborn,
                               worker_spec("c", rec)});
  auto down = watch(sup);
  run();
  auto answer = std::make_shared<std::optional<bool>>();
  sys.spawn([sup, answer](caf::event_based_actor* self) {
    self->request(sup, caf::infinite, cadre::stop_atom_v)
      .then([answer](bool x) { answer->emplace(x); });
  });
  run();
  // c stopped; b ignores the exit; a waits for b.
  EXPECT_EQ(tail(rec->events, 3), (strings{"stop c"}));
  EXPECT_FALSE(*answer);
  EXPECT_FALSE(*down);
  run_after(1s);
  EXPECT_EQ(tail(rec->events, 3), (strings{"stop c"}));
  run_after(1s); // the 2 s shutdown timeout: b is killed
  EXPECT_EQ(tail(rec->events, 3), (strings{"stop c", "stop b", "stop a"}));
  EXPECT_EQ(*answer, std::optional<bool>{true});
  ASSERT_TRUE(*down);
  EXPECT_FALSE(**down) << cadre::describe(**down);
  EXPECT_TRUE(rec->reports.empty());
}

TEST_F(Supervisor, BrutalKillDoesNotWait) {
  auto stubborn = worker_spec("b", rec, restart_policy::permanent,
                              worker_args{true});
  stubborn.shutdown = brutal_kill;
  auto sup = spawn_supervisor(sys,
                              options("s", restart_strategy::one_for_one, rec),
                              {worker_spec("a", rec), stubborn});
  auto down = watch(sup);
  run();
  caf::anon_send_exit(sup, caf::exit_reason::user_shutdown);
  run();
  EXPECT_EQ(tail(rec->events, 2), (strings{"stop b", "stop a"}));
  ASSERT_TRUE(*down);
  EXPECT_EQ(**down, caf::exit_reason::user_shutdown);
}

TEST_F(Supervisor, KilledSupervisorTakesItsChildrenDown) {
  auto sup = spawn_supervisor(sys,
                              options("s", restart_strategy::one_for_one, rec),
                              {worker_spec("a", rec), worker_spec("b", rec)});
  run();
  caf::anon_send_exit(sup, caf::exit_reason::kill);
  run();
  EXPECT_EQ(std::count(rec->events.begin(), rec->events.end(), "stop a"), 1);
  EXPECT_EQ(std::count(rec->events.begin(), rec->events.end(), "stop b"), 1);
}

TEST_F(Supervisor, FailedStartStopsStartedChildrenAndExits) {
  child_spec broken;
  broken.id = "broken";
  broken.start = [](const start_context&) -> caf::expected<caf::actor> {
    return cadre::make_error(cadre::errc::invalid_config, "no such model");
  };
  auto sup = spawn_supervisor(
    sys, options("s", restart_strategy::one_for_one, rec),
    {worker_spec("a", rec), worker_spec("b", rec), broken,
     worker_spec("c", rec)});
  auto down = watch(sup);
  run();
  EXPECT_EQ(rec->events,
            (strings{"start a", "start b", "stop b", "stop a"}));
  ASSERT_TRUE(*down);
  EXPECT_NE(cadre::message_of(**down).find("child 'broken' failed to start"),
            std::string::npos);
  EXPECT_NE(cadre::message_of(**down).find("no such model"),
            std::string::npos);
}

// -- exceptions ---------------------------------------------------------------

TEST_F(Supervisor, ExceptionInAHandlerIsAnAbnormalExitAndRestarts) {
  auto sup = spawn_supervisor(
    sys, options("s", restart_strategy::one_for_one, rec),
    {worker_spec("w", rec, restart_policy::transient)});
  run();
  command("w", "throw");
  run();
  ASSERT_EQ(rec->reports.size(), 1u);
  EXPECT_EQ(rec->reports[0].supervisor, "s");
  EXPECT_EQ(rec->reports[0].child, "w");
  EXPECT_NE(rec->reports[0].reason.find("runtime_error"), std::string::npos)
    << rec->reports[0].reason;
  EXPECT_NE(rec->reports[0].reason.find("boom"), std::string::npos)
    << rec->reports[0].reason;
  EXPECT_EQ(rec->events, (strings{"start w", "stop w", "start w"}));
}

// -- backoff ------------------------------------------------------------------

TEST_F(Supervisor, BackoffDoublesUpToTheMaximum) {
  auto opts = options("s", restart_strategy::one_for_one, rec);
  opts.max_restarts = 10;
  opts.period = 60s;
  opts.backoff.initial = 100ms;
  opts.backoff.max = 300ms;
  auto sup = spawn_supervisor(sys, opts, {worker_spec("w", rec)});
  run();
  auto starts = [&] {
    return std::count(rec->events.begin(), rec->events.end(), "start w");
  };
  std::vector<std::chrono::milliseconds> delays;
  for (int i = 0; i < 4; ++i) {
    command("w", "crash");
    run();
    ASSERT_EQ(rec->reports.size(), static_cast<size_t>(i + 1));
    auto delay = rec->reports.back().delay;
    delays.push_back(delay);
    EXPECT_EQ(starts(), i + 1) << "restarted before its backoff";
    EXPECT_EQ(child_entry(sup, "w")["status"], "restarting");
    run_after(delay - 1ms);
    EXPECT_EQ(starts(), i + 1);
    run_after(1ms);
    EXPECT_EQ(starts(), i + 2);
  }
  EXPECT_EQ(delays, (std::vector<std::chrono::milliseconds>{100ms, 200ms,
                                                            300ms, 300ms}));
}

// -- dynamic pool -------------------------------------------------------------

TEST_F(Supervisor, DynamicPoolStartsAndTerminatesChildren) {
  auto tmpl = worker_spec("worker", rec, restart_policy::transient);
  auto pool = spawn_supervisor(
    sys, options("pool", restart_strategy::simple_one_for_one, rec), {tmpl});
  run();
  EXPECT_TRUE(rec->events.empty());
  auto p1 = request<caf::actor>(pool, cadre::start_child_atom_v,
                                std::string{"p1"},
                                json_value{json{{"n", 1}}});
  ASSERT_TRUE(p1);
  ASSERT_TRUE(*p1);
  auto p2 = request<caf::actor>(pool, cadre::start_child_atom_v,
                                std::string{"p2"},
                                json_value{json{{"n", 2}}});
  ASSERT_TRUE(p2);
  EXPECT_EQ(rec->events, (strings{"start p1", "start p2"}));
  auto dup = request<caf::actor>(pool, cadre::start_child_atom_v,
                                 std::string{"p1"}, json_value{});
  ASSERT_FALSE(dup);
  EXPECT_EQ(cadre::code_of(dup.error()), cadre::errc::conflict);
  // Each child got its own args.
  auto args = request<std::string>(*p2, std::string{"args"});
  ASSERT_TRUE(args);
  EXPECT_EQ(*args, R"({"n":2})");
  // A crashed pool child restarts under its own id.
  command("p2", "crash");
  run();
  EXPECT_EQ(tail(rec->events, 2), (strings{"stop p2", "start p2"}));
  // Terminate removes it.
  auto gone = request<bool>(pool, cadre::terminate_atom_v, std::string{"p1"});
  ASSERT_TRUE(gone);
  EXPECT_TRUE(*gone);
  EXPECT_EQ(rec->events.back(), "stop p1");
  auto n = request<json_value>(pool, cadre::count_children_atom_v);
  ASSERT_TRUE(n);
  EXPECT_EQ((*n)->at("specs"), 1);
  EXPECT_EQ((*n)->at("active"), 1);
  // A transient pool child that ends normally leaves the pool.
  command("p2", "exit");
  run();
  n = request<json_value>(pool, cadre::count_children_atom_v);
  EXPECT_EQ((*n)->at("specs"), 0);
  auto missing = request<bool>(pool, cadre::terminate_atom_v,
                               std::string{"p1"});
  ASSERT_FALSE(missing);
  EXPECT_EQ(cadre::code_of(missing.error()), cadre::errc::not_found);
}

TEST_F(Supervisor, StartChildNeedsAPool) {
  auto sup = spawn_supervisor(sys,
                              options("s", restart_strategy::one_for_one, rec),
                              {worker_spec("a", rec)});
  run();
  auto res = request<caf::actor>(sup, cadre::start_child_atom_v,
                                 std::string{"b"}, json_value{});
  ASSERT_FALSE(res);
  EXPECT_EQ(cadre::code_of(res.error()), cadre::errc::invalid_input);
}

TEST_F(Supervisor, TerminateStopsAStaticChildAndForgetsIt) {
  auto sup = spawn_supervisor(sys,
                              options("s", restart_strategy::one_for_all, rec),
                              {worker_spec("a", rec), worker_spec("b", rec)});
  run();
  auto res = request<bool>(sup, cadre::terminate_atom_v, std::string{"a"});
  ASSERT_TRUE(res);
  EXPECT_EQ(tail(rec->events, 2), (strings{"stop a"}));
  EXPECT_TRUE(rec->reports.empty()); // a deliberate stop is no failure
  auto t = tree(sup);
  ASSERT_EQ(t["children"].size(), 1u);
  EXPECT_EQ(t["children"][0]["id"], "b");
}

// -- the tree -----------------------------------------------------------------

TEST_F(Supervisor, WhichChildrenReportsTheNestedTree) {
  auto tools_opts = options("tools", restart_strategy::one_for_one, rec);
  auto exec_opts = options("executions", restart_strategy::simple_one_for_one,
                           rec);
  auto node = spawn_supervisor(
    sys, options("node", restart_strategy::one_for_one, rec),
    {worker_spec("store", rec),
     supervisor_child("tools", tools_opts,
                      {worker_spec("ocr", rec), worker_spec("http", rec)}),
     recorded(supervisor_child("executions", exec_opts,
                               {worker_spec("coordinator", rec,
                                            restart_policy::transient)}),
              rec)});
  run();
  // Add a coordinator to the nested pool.
  auto started = request<caf::actor>(rec->handles.at("executions"),
                                     cadre::start_child_atom_v,
                                     std::string{"exec-1"}, json_value{});
  ASSERT_TRUE(started) << cadre::describe(started.error());
  auto t = tree(node);
  EXPECT_EQ(t["name"], "node");
  EXPECT_EQ(t["strategy"], "one_for_one");
  ASSERT_EQ(t["children"].size(), 3u);
  auto& store = t["children"][0];
  EXPECT_EQ(store["id"], "store");
  EXPECT_EQ(store["type"], "worker");
  EXPECT_EQ(store["restart"], "permanent");
  EXPECT_EQ(store["alive"], true);
  EXPECT_FALSE(store.contains("children"));
  auto& tools = t["children"][1];
  EXPECT_EQ(tools["type"], "supervisor");
  EXPECT_EQ(tools["strategy"], "one_for_one");
  ASSERT_EQ(tools["children"].size(), 2u);
  EXPECT_EQ(tools["children"][0]["id"], "ocr");
  EXPECT_EQ(tools["children"][1]["id"], "http");
  auto& execs = t["children"][2];
  EXPECT_EQ(execs["strategy"], "simple_one_for_one");
  ASSERT_EQ(execs["children"].size(), 1u);
  EXPECT_EQ(execs["children"][0]["id"], "exec-1");
  EXPECT_EQ(execs["children"][0]["restart"], "transient");
  auto text = render_tree(json_value{t});
  EXPECT_EQ(text, "node (one_for_one, restarts 0)\n"
                  " |- store worker permanent running restarts=0\n"
                  " |- tools supervisor permanent running restarts=0 "
                  "(one_for_one)\n"
                  " |   |- ocr worker permanent running restarts=0\n"
                  " |   |- http worker permanent running restarts=0\n"
                  " |- executions supervisor permanent running restarts=0 "
                  "(simple_one_for_one)\n"
                  " |   |- exec-1 worker transient running restarts=0\n");
}

TEST_F(Supervisor, InvalidSpecsAreRejected) {
  auto sup = spawn_supervisor(sys,
                              options("s", restart_strategy::one_for_one, rec),
                              {worker_spec("a", rec), worker_spec("a", rec)});
  auto down = watch(sup);
  auto pool = spawn_supervisor(
    sys, options("p", restart_strategy::simple_one_for_one, rec), {});
  auto pool_down = watch(pool);
  run();
  ASSERT_TRUE(*down);
  EXPECT_NE(cadre::message_of(**down).find("duplicate child id 'a'"),
            std::string::npos);
  ASSERT_TRUE(*pool_down);
  EXPECT_EQ(cadre::code_of(**pool_down), cadre::errc::invalid_input);
  EXPECT_TRUE(rec->events.empty());
}

} // namespace
