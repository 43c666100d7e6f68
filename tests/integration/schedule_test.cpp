// Schedules in a real `cadre serve`: firings every second, a kill -9 of
// the server and a restart, and then, per period, exactly one decision
// recorded and exactly one execution per firing that ran; the periods
// that passed while the server was dead follow each schedule's missed
// policy. Asserts on the recorded log and the store, never on timing.

#include <chrono>
#include <fstream>
#include <map>
#include <random>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "cadre/messages/json_value.hpp"
#include "cadre/persistence/event_store.hpp"
#include "cadre_process.hpp"
#include "cadre_server.hpp"
#include "temp_dir.hpp"

using namespace cadre;
using test::clock_type;
using server = test::cadre_server;
using namespace std::chrono_literals;

namespace {

constexpr int64_t second_us = 1'000'000;

int64_t wall_now_us() {
  using namespace std::chrono;
  return duration_cast<microseconds>(system_clock::now().time_since_epoch())
    .count();
}

/// GET /v1/schedules as {name: schedule}.
std::map<std::string, json> schedules_of(const server& s) {
  std::map<std::string, json> out;
  int status = 0;
  auto body = test::get(s, "/v1/schedules", &status);
  EXPECT_EQ(status, 200) << body.dump();
  if (body.contains("schedules"))
    for (auto& x : body["schedules"])
      out[x.value("name", "")] = x;
  return out;
}

/// Waits until every schedule has recorded `n` more firings than
/// `before` says, with a last firing that ran; false at the deadline.
bool wait_for_firings(const server& s,
                      const std::map<std::string, json>& before, uint64_t n) {
  auto deadline = clock_type::now() + 90s;
  while (clock_type::now() < deadline) {
    auto now = schedules_of(s);
    bool all = !now.empty();
    for (auto& [name, x] : now) {
      uint64_t from = 0;
      if (auto i = before.find(name); i != before.end())
        from = i->second.value("firings", uint64_t{0});
      all = all && x.value("firings", uint64_t{0}) >= from + n
            && x.contains("last") && x["last"].contains("execution");
    }
    if (all)
      return true;
    std::this_thread::sleep_for(200ms);
  }
  return false;
}

/// What the log of one schedule says.
struct recorded {
  // Due time -> what was decided for it ("fired", "queued", "skipped").
  std::map<int64_t, std::string> decided;
  size_t doubles = 0; // due times decided twice
  // Fired firings: number -> {key, due_us}; their executions.
  std::map<uint64_t, json> fired;
  std::map<uint64_t, std::vector<std::string>> started;
  std::vector<event> events;
};

recorded read_log(persistence::event_store& store, const std::string& name) {
  recorded r;
  auto evs = store.read("schedule:" + name, 1, 0);
  EXPECT_TRUE(evs) << describe(evs.error());
  if (!evs)
    return r;
  r.events = *evs;
  auto decide = [&](int64_t due, const std::string& what) {
    if (!r.decided.emplace(due, what).second)
      ++r.doubles;
  };
  for (auto& ev : *evs) {
    const auto& p = ev.payload.get();
    if (ev.type == "schedule_fired") {
      decide(p["due_us"].get<int64_t>(), "fired");
      r.fired[p["firing"].get<uint64_t>()] = p;
    } else if (ev.type == "schedule_queued") {
      decide(p["due_us"].get<int64_t>(), "queued");
    } else if (ev.type == "schedule_skipped") {
      for (auto due = p["due_us"].get<int64_t>();
           due <= p["last_due_us"].get<int64_t>(); due += second_us)
        decide(due, "skipped");
    } else if (ev.type == "schedule_started") {
      r.started[p["firing"].get<uint64_t>()].push_back(
        p["execution"].get<std::string>());
    }
  }
  return r;
}

} // namespace

TEST(Schedules, EachPeriodFiresOnceAcrossAKill9AndMissedOnesFollowThePolicy) {
  test::temp_dir dir;
  std::ofstream{dir / "tick.yaml"}
    << "name: tick\n"
       "input_schema: {type: object, required: [who]}\n"
       "tasks:\n"
       "  - {id: say, tool: echo, input: {text: \"{{ input.who }}\"}}\n";
  // Relative workflow paths are the config file's neighbours.
  std::ofstream{dir / "cadre.yaml"}
    << "schedules:\n"
       "  - name: skipper\n"
       "    workflow: tick.yaml\n"
       "    input: {who: skipper}\n"
       "    every: 1s\n"
       "    missed: skip\n"
       "    overlap: skip\n"
       "  - name: catcher\n"
       "    workflow: tick.yaml\n"
       "    input: {who: catcher}\n"
       "    every: 1s\n"
       "    missed: run_once\n"
       "    overlap: allow\n";
  auto db = dir / "db";
  std::vector<std::string> flags{"--config", dir / "cadre.yaml"};
  int64_t killed_us = 0;
  {
    server first{db, flags};
    ASSERT_TRUE(first.ok());
    ASSERT_TRUE(wait_for_firings(first, {}, 3))
      << first.proc().stderr_text();
    // Anywhere in a period: between a record and its submission, too.
    std::mt19937 rng{std::random_device{}()};
    std::this_thread::sleep_for(std::chrono::milliseconds{rng() % 1000});
    first.proc().kill_now();
    killed_us = wall_now_us();
  }
  // At least two periods pass while no server runs.
  std::this_thread::sleep_for(3s);
  {
    server second{db, flags};
    ASSERT_TRUE(second.ok());
    auto at_restart = schedules_of(second);
    ASSERT_TRUE(wait_for_firings(second, at_restart, 3))
      << second.proc().stderr_text();
    // The list, over HTTP and through the CLI's client.
    auto listed = schedules_of(second);
    ASSERT_EQ(listed.size(), 2u);
    auto& skipper = listed["skipper"];
    EXPECT_EQ(skipper["every"], "1s");
    EXPECT_EQ(skipper["missed"], "skip");
    EXPECT_EQ(skipper["overlap"], "skip");
    EXPECT_EQ(skipper["workflow"], dir / "tick.yaml");
    EXPECT_TRUE(skipper.contains("next_due"));
    EXPECT_EQ(listed["catcher"]["missed"], "run_once");
    int status = 0;
    auto page = test::get(second, "/v1/schedules/skipper/events?limit=2",
                          &status);
    EXPECT_EQ(status, 200) << page.dump();
    ASSERT_EQ(page["events"].size(), 2u) << page.dump();
    EXPECT_EQ(page["events"][0]["execution_id"], "schedule:skipper");
    EXPECT_EQ(page["events"][0]["type"], "schedule_configured");
    EXPECT_EQ(page["next_after"], 2);
    test::get(second, "/v1/schedules/nightly/events", &status);
    EXPECT_EQ(status, 404);
    auto cli = test::run_to_end({"--server", second.url(), "schedules",
                                 "--json"},
                                dir / "cli.err", 60s);
    ASSERT_TRUE(cli);
    ASSERT_EQ(cli->exit_code, 0) << cli->err;
    ASSERT_EQ(cli->out.size(), 1u);
    auto via_cli = json::parse(cli->out[0]);
    ASSERT_EQ(via_cli.size(), 2u);
    EXPECT_EQ(via_cli[0]["name"], "catcher");
    EXPECT_EQ(via_cli[1]["name"], "skipper");
    second.proc().signal(SIGTERM);
    ASSERT_TRUE(second.proc().wait_until(clock_type::now() + 60s))
      << second.proc().stderr_text();
  }
  // The embedded command reads the same from the store.
  auto local = test::run_to_end({"--db", db, "--config", dir / "cadre.yaml",
                                 "schedules", "--json"},
                                dir / "local.err", 60s);
  ASSERT_TRUE(local);
  ASSERT_EQ(local->exit_code, 0) << local->err;
  auto offline = json::parse(local->out.at(0));
  ASSERT_EQ(offline.size(), 2u);

  persistence::store_options opts;
  opts.dir = db;
  opts.read_only = true;
  auto store = persistence::event_store::open(opts);
  ASSERT_TRUE(store) << describe(store.error());
  auto executions = (*store)->list(execution_filter{});
  ASSERT_TRUE(executions);
  size_t fired_in_all = 0;
  std::set<std::string> started_executions;
  for (auto name : {"skipper", "catcher"}) {
    SCOPED_TRACE(name);
    auto r = read_log(**store, name);
    ASSERT_FALSE(r.decided.empty());
    // Every period from the first to the last is decided exactly once.
    EXPECT_EQ(r.doubles, 0u);
    auto first = r.decided.begin()->first;
    auto last = r.decided.rbegin()->first;
    EXPECT_EQ(static_cast<int64_t>(r.decided.size()),
              (last - first) / second_us + 1)
      << "a period without a decision";
    // Each firing that fired started one execution, under its own key.
    for (auto& [firing, p] : r.fired) {
      auto key = p["key"].get<std::string>();
      auto starts = r.started[firing];
      if (firing == r.fired.rbegin()->first && starts.empty()) {
        // SIGTERM came between the record and the answer: the submission
        // may have gone through; a restart would find it by its key.
        auto by_key = (*store)->find_by_idempotency_key(key);
        ASSERT_TRUE(by_key);
        if (!by_key->empty())
          started_executions.insert(*by_key);
        continue;
      }
      ASSERT_EQ(starts.size(), 1u) << "firing " << firing;
      EXPECT_TRUE(started_executions.insert(starts[0]).second)
        << "execution " << starts[0] << " started twice";
      auto by_key = (*store)->find_by_idempotency_key(key);
      ASSERT_TRUE(by_key);
      EXPECT_EQ(*by_key, starts[0]) << key;
      auto info = (*store)->get(starts[0]);
      ASSERT_TRUE(info) << starts[0];
      EXPECT_EQ(info->workflow, "tick");
      ++fired_in_all;
    }
    for (auto& ev : r.events)
      EXPECT_NE(ev.type, "schedule_failed") << ev.payload.dump();
    // What the second server decided first: the periods it missed.
    std::vector<const event*> after;
    for (auto& ev : r.events)
      if (ev.time_us >= killed_us
          && (ev.type == "schedule_fired" || ev.type == "schedule_skipped"
              || ev.type == "schedule_queued"))
        after.push_back(&ev);
    ASSERT_FALSE(after.empty());
    const auto& p0 = after[0]->payload.get();
    if (std::string{name} == "skipper") {
      EXPECT_EQ(after[0]->type, "schedule_skipped");
      EXPECT_EQ(p0.value("reason", ""), "missed");
      EXPECT_GE(p0.value("count", 0), 2);
      for (auto* ev : after)
        EXPECT_FALSE(ev->payload->contains("missed"));
    } else {
      // run_once: one firing for all the missed periods, the others
      // recorded as skipped beside it.
      size_t standing_in = 0;
      for (auto* ev : after)
        if (ev->type == "schedule_fired" && ev->payload->contains("missed"))
          ++standing_in;
      EXPECT_EQ(standing_in, 1u);
      ASSERT_GE(after.size(), 2u);
      EXPECT_EQ(after[0]->type, "schedule_skipped");
      EXPECT_EQ(p0.value("reason", ""), "missed");
      EXPECT_EQ(after[1]->type, "schedule_fired");
      EXPECT_EQ(after[1]->payload->value("missed", 0),
                p0.value("count", 0) + 1);
    }
    for (auto& x : offline) {
      if (x["name"] == name) {
        EXPECT_EQ(x["last"]["firing"], r.fired.rbegin()->first);
      }
    }
  }
  // No execution besides the ones the firings started.
  EXPECT_EQ(executions->size(), started_executions.size());
  EXPECT_EQ(fired_in_all, started_executions.size());
}
