// Tool pools that fan a split call out across their workers, on a real
// actor system with detached workers, with a splittable probe tool.

#include <chrono>
#include <condition_variable>
#include <cstdlib>
#include <mutex>
#include <set>
#include <stdexcept>
#include <thread>

#include <caf/actor_system.hpp>
#include <caf/actor_system_config.hpp>
#include <caf/scoped_actor.hpp>
#include <gtest/gtest.h>

#include "cadre/actors/spawn.hpp"
#include "cadre/messages/register_types.hpp"
#include "cadre/tools/tool_registry.hpp"
#include "temp_dir.hpp"

using namespace cadre;
using namespace std::chrono_literals;

namespace {

// What the probe's instances share: instance numbers and a rendezvous that
// parts wait at until `rendezvous` of them have started, which only happens
// when they run at the same time.
struct probe_board {
  std::mutex mtx;
  std::condition_variable cv;
  int entered = 0;
  int rendezvous = 0;
  int instances = 0;
  bool cancel_seen = false;

  void reset(int n) {
    std::lock_guard<std::mutex> guard{mtx};
    entered = 0;
    rendezvous = n;
    cancel_seen = false;
  }
};

probe_board& board() {
  static probe_board b;
  return b;
}

// Input {"n": N, "fail"?: k, "throw"?: k, "hang"?: k} splits into N parts
// {"i": k, ...}; part k fails, throws or waits for cancellation as asked.
// Without "n" the call runs whole. Outputs say which instance ran them.
class probe_tool final : public tools::tool {
public:
  probe_tool() {
    std::lock_guard<std::mutex> guard{board().mtx};
    id_ = ++board().instances;
  }

  std::string name() const override {
    return "probe";
  }

  tools::tool_description describe() const override {
    return {"probe", "test tool", json::object(), json::object()};
  }

  bool blocking() const override {
    return true;
  }

  bool splits() const override {
    return true;
  }

  expected<std::vector<json_value>> split(const json_value& input,
                                          tools::tool_context&) override {
    std::vector<json_value> parts;
    if (input->contains("split_fail"))
      return make_error(errc::invalid_input, "probe: /n: cannot split");
    if (!input->contains("n"))
      return parts;
    for (int k = 0; k < input->at("n").get<int>(); ++k) {
      json part = *input;
      part.erase("n");
      part["i"] = k;
      part["split_by"] = id_;
      parts.emplace_back(std::move(part));
    }
    return parts;
  }

  expected<json_value> join(const json_value&,
                            std::vector<json_value> parts) override {
    json order = json::array();
    json by = json::array();
    json split_by = json::array();
    for (auto& p : parts) {
      order.push_back(p->at("i"));
      by.push_back(p->at("by"));
      split_by.push_back(p->at("split_by"));
    }
    return json_value{json{{"order", order},
                           {"by", by},
                           {"split_by", split_by},
                           {"joined_by", id_}}};
  }

  expected<json_value> invoke(const json_value& input,
                              tools::tool_context& ctx) override {
    if (!input->contains("i"))
      return json_value{json{{"whole", true}, {"by", id_}}};
    auto i = input->at("i").get<int>();
    {
      std::unique_lock<std::mutex> lock{board().mtx};
      ++board().entered;
      board().cv.notify_all();
      if (!board().cv.wait_for(lock, 30s, [] {
            return board().entered >= board().rendezvous;
          }))
        return make_error(errc::tool_failed,
                          "probe: parts did not run at the same time");
    }
    if (input->value("fail", -1) == i)
      return make_error(errc::tool_failed,
                        "probe: part " + std::to_string(i) + " failed");
    if (input->value("throw", -1) == i)
      throw std::runtime_error("part " + std::to_string(i) + " threw");
    if (input->value("hang", -1) == i) {
      // Waits for the pool to give up on it (cancel flag), at most a minute.
      for (int k = 0; k < 6000 && !ctx.cancelled(); ++k)
        std::this_thread::sleep_for(10ms);
      std::lock_guard<std::mutex> guard{board().mtx};
      board().cancel_seen = ctx.cancelled();
      board().cv.notify_all();
      return make_error(errc::cancelled, "probe: cancelled");
    }
    return json_value{json{{"i", i}, {"by", id_},
                           {"split_by", input->at("split_by")}}};
  }

private:
  int id_ = 0;
};

expected<std::unique_ptr<tools::tool>> make_probe(const json_value&) {
  return std::unique_ptr<tools::tool>{std::make_unique<probe_tool>()};
}

// One call to `pool`, waited for: its output or its error.
expected<json> call_pool(caf::actor_system& sys, tool_pool_actor pool,
                         task_request req) {
  expected<json> out{json{}};
  caf::scoped_actor self{sys};
  self->request(pool, 60s, run_atom_v, std::move(req))
    .receive([&](task_result& res) { out = res.output.get(); },
             [&](caf::error& err) { out = std::move(err); });
  return out;
}

// What `pool` says of itself (workers, busy, queued, counters).
json describe_pool(caf::actor_system& sys, tool_pool_actor pool) {
  json out;
  caf::scoped_actor self{sys};
  self->request(pool, 60s, describe_atom_v)
    .receive([&](json_value& x) { out = x.get(); },
             [&](caf::error& err) { ADD_FAILURE() << describe(err); });
  return out;
}

class ToolPool : public ::testing::Test {
protected:
  ToolPool() {
    register_types(cfg_);
    cfg_.set("logger.verbosity", caf::atom("quiet"));
    sys_ = std::make_unique<caf::actor_system>(cfg_);
    registry_.add("probe", &make_probe);
    auto pool = actors::spawn_tool_pool(*sys_, registry_, "probe",
                                        json_value{}, {2});
    EXPECT_TRUE(pool);
    pool_ = *pool;
  }

  ~ToolPool() override {
    caf::scoped_actor self{*sys_};
    self->monitor(pool_);
    self->send_exit(pool_, caf::exit_reason::user_shutdown);
    self->receive([](const caf::down_msg&) {});
  }

  expected<json> call(json input, int64_t deadline_us = 0) {
    task_request req;
    req.execution_id = "e";
    req.task_id = "t";
    req.tool = "probe";
    req.input = json_value{std::move(input)};
    req.deadline_us = deadline_us;
    return call_pool(*sys_, pool_, std::move(req));
  }

  json describe_pool() {
    return ::describe_pool(*sys_, pool_);
  }

  caf::actor_system_config cfg_;
  std::unique_ptr<caf::actor_system> sys_;
  tools::tool_registry registry_;
  tool_pool_actor pool_;
};

int64_t now_us() {
  return std::chrono::duration_cast<std::chrono::microseconds>(
           std::chrono::system_clock::now().time_since_epoch())
    .count();
}

} // namespace

TEST_F(ToolPool, PartsRunOnDifferentWorkersAndJoinInOrder) {
  // Each part waits until two have started: with one worker at a time the
  // call would fail.
  board().reset(2);
  auto out = call(json{{"n", 6}});
  ASSERT_TRUE(out) << describe(out.error());
  EXPECT_EQ((*out)["order"], json::array({0, 1, 2, 3, 4, 5}));
  std::set<int> by;
  for (auto& x : (*out)["by"])
    by.insert(x.get<int>());
  EXPECT_EQ(by.size(), 2u) << out->dump();
  // The split ran on one of the workers (it may read files), not elsewhere.
  auto split_by = (*out)["split_by"][0].get<int>();
  EXPECT_TRUE(by.count(split_by) == 1) << out->dump();
  EXPECT_TRUE(by.count((*out)["joined_by"].get<int>()) == 1) << out->dump();
  auto d = describe_pool();
  EXPECT_EQ(d["splits"], true);
  EXPECT_EQ(d["fanouts"], 1);
  EXPECT_EQ(d["busy"], 0);
}

TEST_F(ToolPool, ACallWithoutPartsRunsWhole) {
  board().reset(0);
  auto out = call(json::object());
  ASSERT_TRUE(out) << describe(out.error());
  EXPECT_EQ((*out)["whole"], true);
  EXPECT_EQ(describe_pool()["fanouts"], 0);
}

TEST_F(ToolPool, AFailingPartFailsTheCallWithItsError) {
  board().reset(0);
  auto out = call(json{{"n", 4}, {"fail", 2}});
  ASSERT_FALSE(out);
  EXPECT_EQ(code_of(out.error()), errc::tool_failed);
  EXPECT_EQ(message_of(out.error()), "probe: part 2 failed");
  auto split = call(json{{"n", 4}, {"split_fail", true}});
  ASSERT_FALSE(split);
  EXPECT_EQ(message_of(split.error()), "probe: /n: cannot split");
  // The pool goes on with both workers.
  board().reset(2);
  auto next = call(json{{"n", 2}});
  ASSERT_TRUE(next) << describe(next.error());
  EXPECT_EQ((*next)["order"], json::array({0, 1}));
}

TEST_F(ToolPool, ACrashingPartFailsTheCallAndItsWorkerIsReplaced) {
  board().reset(0);
  auto out = call(json{{"n", 3}, {"throw", 1}});
  ASSERT_FALSE(out);
  EXPECT_EQ(code_of(out.error()), errc::worker_crashed);
  EXPECT_NE(message_of(out.error()).find("part 1 threw"), std::string::npos)
    << describe(out.error());
  // Two parts meeting proves two live workers again.
  board().reset(2);
  auto next = call(json{{"n", 2}});
  ASSERT_TRUE(next) << describe(next.error());
  EXPECT_EQ((*next)["order"], json::array({0, 1}));
}

TEST_F(ToolPool, APartPastTheDeadlineTimesOutNamingThePart) {
  board().reset(0);
  auto out = call(json{{"n", 2}, {"hang", 1}}, now_us() + 2'000'000);
  ASSERT_FALSE(out);
  EXPECT_EQ(code_of(out.error()), errc::timeout);
  EXPECT_NE(message_of(out.error())
              .find("task t attempt 1 part 2 of 2 passed its deadline"),
            std::string::npos)
    << describe(out.error());
  // The abandoned worker saw its cancel flag.
  {
    std::unique_lock<std::mutex> lock{board().mtx};
    EXPECT_TRUE(board().cv.wait_for(lock, 60s,
                                    [] { return board().cancel_seen; }));
  }
  board().reset(2);
  auto next = call(json{{"n", 2}});
  ASSERT_TRUE(next) << describe(next.error());
  EXPECT_GE(describe_pool()["timeouts"].get<int>(), 1);
}

TEST(ToolPoolQueue, CallsPastTheBoundAreRefusedOverloaded) {
  caf::actor_system_config cfg;
  register_types(cfg);
  cfg.set("logger.verbosity", caf::atom("quiet"));
  caf::actor_system sys{cfg};
  tools::tool_registry registry;
  tools::register_builtin_tools(registry);
  actors::pool_options opts;
  opts.workers = 1;
  opts.max_queue = 2;
  auto pool = actors::spawn_tool_pool(sys, registry, "sleep", json_value{},
                                      opts);
  ASSERT_TRUE(pool);
  task_request req;
  req.execution_id = "e";
  req.task_id = "t";
  req.tool = "sleep";
  req.input = json_value{json{{"ms", 1000}}};
  caf::scoped_actor self{sys};
  // One runs, two wait, the fourth finds the queue full.
  // The pool hands a call to a free worker in the same step it queues it.
  auto first = self->request(*pool, 60s, run_atom_v, req);
  auto second = self->request(*pool, 60s, run_atom_v, req);
  auto third = self->request(*pool, 60s, run_atom_v, req);
  auto fourth = self->request(*pool, 60s, run_atom_v, req);
  caf::error refused;
  fourth.receive([](task_result&) {},
                 [&](caf::error& err) { refused = std::move(err); });
  EXPECT_EQ(code_of(refused), errc::overloaded) << describe(refused);
  EXPECT_NE(message_of(refused).find("tools.sleep.max_queue"),
            std::string::npos);
  int done = 0;
  for (auto* h : {&first, &second, &third})
    h->receive([&](task_result&) { ++done; },
               [&](caf::error& err) { ADD_FAILURE() << describe(err); });
  EXPECT_EQ(done, 3);
  self->send_exit(*pool, caf::exit_reason::user_shutdown);
}

// Issue 13 item 5: the parts of a split OCR call refer to the call's one
// decoded document; through a real pool (parts in messages, on several
// workers) each part still reads its page of it.
TEST(ToolPoolOcr, PartsOfASplitDocumentReadTheSharedDocument) {
  test::temp_dir dir;
  std::string pages;
  const char* words[] = {"harbor", "meadow", "canyon"};
  for (int i = 0; i < 3; ++i) {
    auto png = dir / ("p" + std::to_string(i) + ".png");
    auto cmd = std::string{"convert -size 1200x200 xc:white -font "
                           "DejaVu-Sans -pointsize 48 -fill black -annotate "
                           "+40+120 'Page "}
               + words[i] + "' -colorspace Gray '" + png + "' 2>/dev/null";
    ASSERT_EQ(std::system(cmd.c_str()), 0) << cmd;
    pages += " '" + png + "'";
  }
  auto tif = dir / "three.tif";
  auto cmd = "convert" + pages + " -compress lzw '" + tif + "'";
  ASSERT_EQ(std::system(cmd.c_str()), 0) << cmd;
  caf::actor_system_config cfg;
  register_types(cfg);
  cfg.set("logger.verbosity", caf::atom("quiet"));
  caf::actor_system sys{cfg};
  tools::tool_registry registry;
  tools::register_builtin_tools(registry);
  actors::pool_options opts;
  opts.workers = 2;
  auto pool = actors::spawn_tool_pool(
    sys, registry, "ocr", json_value{json{{"root", dir.str()}}}, opts);
  ASSERT_TRUE(pool) << describe(pool.error());
  task_request req;
  req.execution_id = "e";
  req.task_id = "t";
  req.tool = "ocr";
  req.input = json_value{json{{"path", "three.tif"}, {"psm", 7}}};
  caf::scoped_actor self{sys};
  json out;
  self->request(*pool, 300s, run_atom_v, req)
    .receive([&](task_result& res) { out = res.output.get(); },
             [&](caf::error& err) { ADD_FAILURE() << describe(err); });
  ASSERT_EQ(out.value("page_count", 0), 3) << out.dump();
  ASSERT_EQ(out["pages"].size(), 3u);
  for (size_t i = 0; i < 3; ++i) {
    EXPECT_EQ(out["pages"][i]["page"], i + 1);
    EXPECT_NE(out["pages"][i]["text"].get<std::string>().find(words[i]),
              std::string::npos)
      << out["pages"][i].dump();
  }
  self->send_exit(*pool, caf::exit_reason::user_shutdown);
}

// -- whole calls: the direct way from the sender to a free worker ------------

namespace {

// A tool that does not split, so its calls take the direct way: input
// {"id": k} answers {"id": k}; "hang" waits for cancellation, "throw" throws.
class whole_probe final : public tools::tool {
public:
  std::string name() const override {
    return "whole";
  }

  tools::tool_description describe() const override {
    return {"whole", "test tool", json::object(), json::object()};
  }

  bool blocking() const override {
    return true;
  }

  expected<json_value> invoke(const json_value& input,
                              tools::tool_context& ctx) override {
    if (input->contains("throw"))
      throw std::runtime_error("whole probe threw");
    if (input->contains("hang")) {
      for (int k = 0; k < 6000 && !ctx.cancelled(); ++k)
        std::this_thread::sleep_for(10ms);
      return make_error(errc::cancelled, "whole probe: cancelled");
    }
    return input;
  }
};

expected<std::unique_ptr<tools::tool>> make_whole_probe(const json_value&) {
  return std::unique_ptr<tools::tool>{std::make_unique<whole_probe>()};
}

class ToolPoolDirect : public ::testing::Test {
protected:
  ToolPoolDirect() {
    register_types(cfg_);
    cfg_.set("logger.verbosity", caf::atom("quiet"));
    sys_ = std::make_unique<caf::actor_system>(cfg_);
    tools::register_builtin_tools(registry_);
    registry_.add("whole", &make_whole_probe);
  }

  tool_pool_actor spawn(const std::string& tool, size_t workers) {
    auto pool = actors::spawn_tool_pool(*sys_, registry_, tool, json_value{},
                                        {workers});
    EXPECT_TRUE(pool);
    pools_.push_back(*pool);
    return *pool;
  }

  ~ToolPoolDirect() override {
    caf::scoped_actor self{*sys_};
    for (auto& p : pools_)
      self->send_exit(p, caf::exit_reason::user_shutdown);
  }

  static task_request request(const std::string& tool, json input,
                              int64_t deadline_us = 0) {
    task_request req;
    req.execution_id = "e";
    req.task_id = "t";
    req.tool = tool;
    req.input = json_value{std::move(input)};
    req.deadline_us = deadline_us;
    return req;
  }

  expected<json> call(tool_pool_actor pool, task_request req) {
    return call_pool(*sys_, pool, std::move(req));
  }

  // A first call, answered: the pool has started (it initializes on its
  // first turn) and its worker is free again, so the next call finds the
  // direct way open. Returns the pool's count of direct calls.
  int warm_up(tool_pool_actor pool) {
    auto out = call(pool, request(describe_pool(pool)["name"], json{{"id", 0}}));
    EXPECT_TRUE(out);
    for (int k = 0; k < 1000; ++k) {
      auto d = describe_pool(pool);
      if (d["busy"] == 0)
        return d["direct"].get<int>();
      std::this_thread::sleep_for(1ms);
    }
    ADD_FAILURE() << "the pool's worker did not become free";
    return -1;
  }

  json describe_pool(tool_pool_actor pool) {
    return ::describe_pool(*sys_, pool);
  }

  // `callers` threads each call `tool` `per_caller` times in turn with
  // input {"id": k}; returns how many answers carried their own id (every
  // other answer, errors included, fails the test).
  int race(tool_pool_actor pool, const std::string& tool, int callers,
           int per_caller) {
    std::vector<std::thread> threads;
    std::atomic<int> right{0};
    for (int c = 0; c < callers; ++c)
      threads.emplace_back([&, c] {
        caf::scoped_actor self{*sys_};
        for (int k = 0; k < per_caller; ++k) {
          auto id = c * per_caller + k;
          self->request(pool, 30s, run_atom_v, request(tool, json{{"id", id}}))
            .receive(
              [&](task_result& res) {
                if (res.output->value("id", -1) == id)
                  ++right;
                else
                  ADD_FAILURE() << "call " << id << " got " << res.output.dump();
              },
              [&](caf::error& err) {
                ADD_FAILURE() << "call " << id << ": " << describe(err);
              });
        }
      });
    for (auto& t : threads)
      t.join();
    return right.load();
  }

  caf::actor_system_config cfg_;
  std::unique_ptr<caf::actor_system> sys_;
  tools::tool_registry registry_;
  std::vector<tool_pool_actor> pools_;
};

} // namespace

// Callers on several threads race for two workers: calls that find one go
// straight to it, the others wait in the pool's queue; every call is
// answered once, with its own output, and the pool ends idle.
TEST_F(ToolPoolDirect, RacingCallersEachGetTheirOwnAnswer) {
  auto pool = spawn("echo", 2);
  // Four callers, two workers: some calls find a free worker, the others
  // wait in the pool's queue.
  EXPECT_EQ(race(pool, "echo", 4, 500), 4 * 500);
  auto d = describe_pool(pool);
  EXPECT_EQ(d["busy"], 0) << d.dump();
  EXPECT_EQ(d["queued"], 0) << d.dump();
  EXPECT_GT(d["direct"].get<int>(), 0) << d.dump();
}

// A call sent straight to a worker still ends at its deadline: the pool
// answers `timeout`, replaces the worker (which sees its cancel flag) and
// the next call runs on the fresh one.
TEST_F(ToolPoolDirect, AWholeCallPastItsDeadlineTimesOutAndItsWorkerIsReplaced) {
  auto pool = spawn("whole", 1);
  auto direct = warm_up(pool);
  auto deadline = now_us() + 300'000;
  auto out = call(pool, request("whole", json{{"hang", true}}, deadline));
  ASSERT_FALSE(out);
  EXPECT_EQ(code_of(out.error()), errc::timeout) << describe(out.error());
  EXPECT_NE(message_of(out.error()).find("task t attempt 1 passed its deadline"),
            std::string::npos)
    << describe(out.error());
  auto d = describe_pool(pool);
  EXPECT_EQ(d["timeouts"], 1) << d.dump();
  EXPECT_EQ(d["direct"], direct + 1) << "the call went through the queue";
  auto next = call(pool, request("whole", json{{"id", 7}}));
  ASSERT_TRUE(next) << describe(next.error());
  EXPECT_EQ((*next)["id"], 7);
}

// Whole calls share the pool's deadline sweeps: a call whose deadline comes
// after the one a sweep is scheduled for schedules none of its own, and
// still times out at its deadline when the earlier call has long been
// answered (the sweep finds it running and schedules the next).
TEST_F(ToolPoolDirect, ACallTimesOutAtItsDeadlineAfterAnEarlierCallsSweep) {
  auto pool = spawn("whole", 1);
  warm_up(pool);
  auto first = call(pool, request("whole", json{{"id", 1}},
                                  now_us() + 200'000));
  ASSERT_TRUE(first) << describe(first.error());
  auto out = call(pool, request("whole", json{{"hang", true}},
                                now_us() + 600'000));
  ASSERT_FALSE(out);
  EXPECT_EQ(code_of(out.error()), errc::timeout) << describe(out.error());
  EXPECT_NE(message_of(out.error()).find("passed its deadline"),
            std::string::npos)
    << describe(out.error());
  EXPECT_EQ(describe_pool(pool)["timeouts"], 1);
  auto next = call(pool, request("whole", json{{"id", 7}}));
  ASSERT_TRUE(next) << describe(next.error());
  EXPECT_EQ((*next)["id"], 7);
}

// A worker that dies during a call sent straight to it: the caller hears
// `worker_crashed` and the pool goes on with a fresh worker.
TEST_F(ToolPoolDirect, AWorkerThatThrowsFailsItsCallAndIsReplaced) {
  auto pool = spawn("whole", 1);
  auto direct = warm_up(pool);
  auto out = call(pool, request("whole", json{{"throw", true}}));
  EXPECT_EQ(describe_pool(pool)["direct"], direct + 1)
    << "the call went through the queue";
  ASSERT_FALSE(out);
  EXPECT_EQ(code_of(out.error()), errc::worker_crashed)
    << describe(out.error());
  EXPECT_NE(message_of(out.error()).find("whole probe threw"),
            std::string::npos)
    << describe(out.error());
  for (int k = 0; k < 3; ++k) {
    auto next = call(pool, request("whole", json{{"id", k}}));
    ASSERT_TRUE(next) << describe(next.error());
    EXPECT_EQ((*next)["id"], k);
  }
}

// While one worker is held by a long call, calls keep running on the other:
// a call that arrives when every worker is busy waits in the pool's
// lock-free intake only until a worker finishes, and a worker that is free
// never leaves a call waiting there (each quick call below would otherwise
// wait for the held one, which ends only when the pool does).
TEST_F(ToolPoolDirect, AFreeWorkerTakesCallsWhileAnotherIsHeld) {
  auto pool = spawn("whole", 2);
  warm_up(pool);
  caf::scoped_actor holder{*sys_};
  holder->send(pool, run_atom_v, request("whole", json{{"hang", true}}));
  // The held call has reached a worker before the others start.
  for (int k = 0; k < 1000 && describe_pool(pool)["busy"] != 1; ++k)
    std::this_thread::sleep_for(1ms);
  EXPECT_EQ(race(pool, "whole", 3, 200), 3 * 200);
  auto d = describe_pool(pool);
  EXPECT_EQ(d["busy"], 1) << "the held call still runs: " << d.dump();
  EXPECT_EQ(d["queued"], 0) << d.dump();
}

// A call the ending pool of tool `whole` answered: unavailable, naming it.
template <class Handle>
void expect_ended(Handle& call) {
  call.receive([](task_result& res) { ADD_FAILURE() << res.output.dump(); },
               [](caf::error& err) {
                 EXPECT_EQ(code_of(err), errc::unavailable) << describe(err);
                 EXPECT_NE(message_of(err).find("the pool of tool whole ended"),
                           std::string::npos)
                   << describe(err);
               });
}

// Calls waiting for a worker when the pool ends are answered at once, with
// an error naming the pool, not left to their callers' deadlines: those in
// the lock-free intake (every worker busy) ...
TEST_F(ToolPoolDirect, ItsEndAnswersTheCallsWaitingInItsIntake) {
  auto pool = spawn("whole", 1);
  warm_up(pool);
  caf::scoped_actor holder{*sys_};
  holder->send(pool, run_atom_v, request("whole", json{{"hang", true}}));
  for (int k = 0; k < 1000 && describe_pool(pool)["busy"] != 1; ++k)
    std::this_thread::sleep_for(1ms);
  caf::scoped_actor self{*sys_};
  auto first = self->request(pool, 60s, run_atom_v,
                             request("whole", json{{"id", 1}}));
  auto second = self->request(pool, 60s, run_atom_v,
                              request("whole", json{{"id", 2}}));
  ASSERT_EQ(describe_pool(pool)["queued"], 2);
  self->send_exit(pool, caf::exit_reason::user_shutdown);
  expect_ended(first);
  expect_ended(second);
}

// ... and those in its queue.
TEST_F(ToolPoolDirect, ItsEndAnswersTheCallsWaitingInItsQueue) {
  auto spawned = actors::spawn_tool_pool(*sys_, registry_, "whole",
                                         json_value{}, {1, 2});
  ASSERT_TRUE(spawned);
  auto pool = *spawned;
  pools_.push_back(pool);
  warm_up(pool);
  caf::scoped_actor holder{*sys_};
  holder->send(pool, run_atom_v, request("whole", json{{"hang", true}}));
  for (int k = 0; k < 1000 && describe_pool(pool)["busy"] != 1; ++k)
    std::this_thread::sleep_for(1ms);
  caf::scoped_actor self{*sys_};
  auto first = self->request(pool, 60s, run_atom_v,
                             request("whole", json{{"id", 1}}));
  auto second = self->request(pool, 60s, run_atom_v,
                              request("whole", json{{"id", 2}}));
  // The third finds the bound reached: the pool moves the two waiting into
  // its queue to count them and refuses it.
  self->request(pool, 60s, run_atom_v, request("whole", json{{"id", 3}}))
    .receive([](task_result& res) { ADD_FAILURE() << res.output.dump(); },
             [](caf::error& err) {
               EXPECT_EQ(code_of(err), errc::overloaded) << describe(err);
             });
  ASSERT_EQ(describe_pool(pool)["queued"], 2);
  self->send_exit(pool, caf::exit_reason::user_shutdown);
  expect_ended(first);
  expect_ended(second);
}

// Split calls are answered too when the pool ends: one waiting behind a
// held one, and the held one, whose part runs on a worker (the pool makes
// a split call's answer, so no worker would give it).
TEST(ToolPoolEnd, ItsEndAnswersItsSplitCalls) {
  caf::actor_system_config cfg;
  register_types(cfg);
  cfg.set("logger.verbosity", caf::atom("quiet"));
  caf::actor_system sys{cfg};
  tools::tool_registry registry;
  registry.add("probe", &make_probe);
  auto pool = actors::spawn_tool_pool(sys, registry, "probe", json_value{},
                                      {1});
  ASSERT_TRUE(pool);
  board().reset(1);
  task_request req;
  req.execution_id = "e";
  req.task_id = "t";
  req.tool = "probe";
  req.input = json_value{json{{"n", 1}, {"hang", 0}}};
  caf::scoped_actor holder{sys};
  auto held = holder->request(*pool, 60s, run_atom_v, req);
  // Its one part holds the one worker.
  {
    std::unique_lock<std::mutex> lock{board().mtx};
    ASSERT_TRUE(board().cv.wait_for(lock, 60s,
                                    [] { return board().entered >= 1; }));
  }
  caf::scoped_actor self{sys};
  req.input = json_value{json{{"n", 2}}};
  auto waiting = self->request(*pool, 60s, run_atom_v, req);
  ASSERT_EQ(describe_pool(sys, *pool)["queued"], 1);
  self->send_exit(*pool, caf::exit_reason::user_shutdown);
  auto check = [](caf::error& err) {
    EXPECT_EQ(code_of(err), errc::unavailable) << describe(err);
    EXPECT_NE(message_of(err).find("the pool of tool probe ended"),
              std::string::npos)
      << describe(err);
  };
  waiting.receive(
    [](task_result& res) { ADD_FAILURE() << res.output.dump(); }, check);
  held.receive(
    [](task_result& res) { ADD_FAILURE() << res.output.dump(); }, check);
}
