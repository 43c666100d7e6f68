// Crash recovery: runs a 200-task workflow in the `cadre` binary, kills it
// with SIGKILL at random points, again and again, then resumes to the end and
// checks every execution against what was acknowledged before each kill (the
// db_stress + ExpectedState model).
//
// The seed is printed; CADRE_KILL_SEED=<n> repeats a run.

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <map>
#include <optional>
#include <random>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "cadre/messages/event.hpp"
#include "cadre/messages/execution.hpp"
#include "cadre/messages/json_value.hpp"
#include "cadre_process.hpp"
#include "temp_dir.hpp"

extern char** environ;

using namespace cadre;

namespace {

using clock_type = std::chrono::steady_clock;
using std::chrono::milliseconds;

// -- the workflow -------------------------------------------------------------

constexpr int map_items = 60;     // items of each of the two map tasks
constexpr int chain_length = 74;  // c1 -> c2 -> ... -> c74
constexpr int64_t modulus = 1'000'000'007;

// Map items: a value whose order matters, and a short sleep.
int64_t item_value(int i) {
  return (i * 37) % 101;
}

int64_t item_sleep_ms(int i) {
  return 5 + (i * 7) % 20;
}

bool chain_step_is_echo(int k) {
  return k % 5 == 0;
}

json workflow_input() {
  json items = json::array();
  for (int i = 1; i <= map_items; ++i)
    items.push_back(json{{"v", item_value(i)}, {"ms", item_sleep_ms(i)}});
  return json{{"items", items}};
}

// Two maps of 60 items (120 units, 16 at a time each); then a chain of 74
// steps that folds a running hash from the maps' sum, so its end value proves
// every step saw its predecessor's output; beside them a task that fails
// twice before it succeeds, a condition that holds and one that does not;
// and an output that combines them.
std::string workflow_yaml() {
  std::ostringstream y;
  y << "name: kill_test\n"
       "version: \"1\"\n"
       "tasks:\n"
       "  - id: fan_sleep\n"
       "    kind: map\n"
       "    items: input.items\n"
       "    concurrency: 16\n"
       "    tool: sleep\n"
       "    input: {ms: \"{{ item.ms }}\"}\n"
       "  - id: fan_echo\n"
       "    kind: map\n"
       "    items: input.items\n"
       "    concurrency: 16\n"
       "    tool: echo\n"
       "    input: {v: \"{{ item.v }}\", index: \"{{ index }}\"}\n"
       "  - id: total\n"
       "    depends_on: [fan_sleep, fan_echo]\n"
       "    tool: script\n"
       "    input:\n"
       "      code: |\n"
       "        local sum, slept = 0, 0\n"
       "        for i, x in ipairs(args.echoed) do\n"
       "          sum = sum + x.v * i + x.index\n"
       "        end\n"
       "        for _, x in ipairs(args.slept) do\n"
       "          slept = slept + x.slept_ms\n"
       "        end\n"
       "        return {sum = sum, slept = slept}\n"
       "      args:\n"
       "        echoed: \"{{ tasks.fan_echo.output }}\"\n"
       "        slept: \"{{ tasks.fan_sleep.output }}\"\n"
       "  - id: flaky\n"
       "    tool: fail\n"
       "    input: {times: 2}\n"
       "    retry: {max_attempts: 4, backoff: 50ms, multiplier: 2, "
       "jitter: 0}\n"
       "  - id: gate_yes\n"
       "    depends_on: flaky\n"
       "    when: tasks.flaky.output.attempt == 3\n"
       "    tool: echo\n"
       "    input: {ok: true, attempt: \"{{ tasks.flaky.output.attempt }}\"}\n"
       "  - id: gate_no\n"
       "    depends_on: total\n"
       "    when: tasks.total.output.sum < 0\n"
       "    tool: echo\n"
       "    input: {never: true}\n";
  for (int k = 1; k <= chain_length; ++k) {
    y << "  - id: c" << k << "\n";
    y << "    depends_on: " << (k > 1 ? "c" + std::to_string(k - 1) : "total")
      << "\n";
    auto prev = k > 1 ? "\"{{ tasks.c" + std::to_string(k - 1)
                          + ".output.v }}\""
                      : std::string{"\"{{ tasks.total.output.sum }}\""};
    if (chain_step_is_echo(k)) {
      y << "    tool: echo\n"
           "    input: {v: "
        << prev << "}\n";
    } else {
      y << "    tool: script\n"
           "    input:\n"
           "      code: return {v = (args.p * 31 + args.k) % "
        << modulus
        << "}\n"
           "      args: {p: "
        << prev << ", k: " << k << "}\n";
    }
  }
  y << "output:\n"
       "  chain: \"{{ tasks.c"
    << chain_length
    << ".output.v }}\"\n"
       "  sum: \"{{ tasks.total.output.sum }}\"\n"
       "  slept: \"{{ tasks.total.output.slept }}\"\n"
       "  items: \"{{ #tasks.fan_echo.output }}\"\n"
       "  attempt: \"{{ tasks.flaky.output.attempt }}\"\n"
       "  gate_yes: \"{{ tasks.gate_yes.output }}\"\n"
       "  gate_no: \"{{ tasks.gate_no.output }}\"\n"
       "  summary: \"chain {{ tasks.c"
    << chain_length
    << ".output.v }} after {{ tasks.flaky.output.attempt }} attempts\"\n";
  return y.str();
}

json expected_output() {
  int64_t sum = 0;
  int64_t slept = 0;
  for (int i = 1; i <= map_items; ++i) {
    sum += item_value(i) * i + i;
    slept += item_sleep_ms(i);
  }
  int64_t chain = sum;
  for (int k = 1; k <= chain_length; ++k)
    if (!chain_step_is_echo(k))
      chain = (chain * 31 + k) % modulus;
  return json{{"chain", chain},
              {"sum", sum},
              {"slept", slept},
              {"items", map_items},
              {"attempt", 3},
              {"gate_yes", json{{"ok", true}, {"attempt", 3}}},
              {"gate_no", nullptr},
              {"summary", "chain " + std::to_string(chain)
                            + " after 3 attempts"}};
}

// Every key ("task" or "task[item]") that completes, once each.
std::set<std::string> expected_completions() {
  std::set<std::string> out{"fan_sleep", "fan_echo", "total", "flaky",
                            "gate_yes"};
  for (int i = 0; i < map_items; ++i) {
    out.insert("fan_sleep[" + std::to_string(i) + "]");
    out.insert("fan_echo[" + std::to_string(i) + "]");
  }
  for (int k = 1; k <= chain_length; ++k)
    out.insert("c" + std::to_string(k));
  return out;
}

std::string key_of(const json& payload) {
  auto key = payload.value("task", std::string{});
  if (auto i = payload.find("item"); i != payload.end() && !i->is_null())
    key += "[" + std::to_string(i->get<int64_t>()) + "]";
  return key;
}

// -- a child process ------------------------------------------------------------

using child_process = test::cadre_process;
using test::describe_status;
using test::read_file;

/// Runs a command to its end (bounded) and returns its stdout lines, or
/// nullopt after adding a failure.
std::optional<std::vector<std::string>>
run_to_end(const std::vector<std::string>& args, const std::string& err_file,
           std::chrono::seconds limit, int* exit_status = nullptr) {
  std::string what = "cadre";
  for (auto& a : args)
    what += " " + a;
  child_process c{args, err_file, {}, true};
  if (!c.ok()) {
    ADD_FAILURE() << what << ": " << c.what();
    return std::nullopt;
  }
  auto deadline = clock_type::now() + limit;
  std::vector<std::string> lines;
  std::string line;
  while (clock_type::now() < deadline) {
    if (c.read_line(line, deadline))
      lines.push_back(line);
    else if (c.at_eof())
      break;
  }
  auto st = c.wait_until(deadline);
  if (!st) {
    c.kill_now();
    ADD_FAILURE() << what << ": still running after " << limit.count()
                  << " s; killed. stderr:\n"
                  << read_file(err_file);
    return std::nullopt;
  }
  if (exit_status)
    *exit_status = *st;
  else if (!WIFEXITED(*st) || WEXITSTATUS(*st) != 0) {
    ADD_FAILURE() << what << ": " << describe_status(*st) << "; stderr:\n"
                  << read_file(err_file);
    return std::nullopt;
  }
  return lines;
}

// -- the model of what was acknowledged -----------------------------------------

struct expected_state {
  /// Execution ids seen in an execution_submitted line, with their key.
  std::map<std::string, std::string> acknowledged;
  /// Idempotency key -> the one execution it must name.
  std::map<std::string, std::string> by_key;
  /// Executions a child reported as finished (result lines).
  std::map<std::string, std::string> reported;
};

// Records that `key` names execution `id`; a key names one execution only.
void bind_key(expected_state& model, const std::string& key,
              const std::string& id) {
  auto [it, fresh] = model.by_key.emplace(key, id);
  EXPECT_TRUE(fresh || it->second == id)
    << "key " << key << " names two executions: " << it->second << " and "
    << id;
}

// Folds one stdout line of a child that ran `run --idempotency-key key` (or
// `resume` when `key` is empty) into the model, and returns the line's type;
// "" when the line is not a JSON object.
std::string observe(expected_state& model, const std::string& key,
                    const std::string& line) {
  auto j = json::parse(line, nullptr, false);
  if (j.is_discarded() || !j.is_object())
    return {};
  auto type = j.value("type", std::string{});
  if (type == "execution_submitted") {
    auto id = j.value("execution_id", std::string{});
    auto submitted_key = j["payload"].value("idempotency_key", std::string{});
    EXPECT_FALSE(submitted_key.empty()) << line;
    model.acknowledged[id] = submitted_key;
    bind_key(model, submitted_key, id);
  } else if (type == "result") {
    auto id = j.value("id", std::string{});
    model.reported[id] = j.value("status", "");
    if (!key.empty())
      bind_key(model, key, id);
  }
  return type;
}

struct round_record {
  std::string key; // of a run; empty for a resume
  std::string command;
  std::string plan;
  size_t lines = 0;
  bool done = false; // a result or resumed line: the work had ended
  std::string outcome;

  void add(expected_state& model, const std::string& line) {
    ++lines;
    auto type = observe(model, key, line);
    EXPECT_FALSE(type.empty()) << "not JSON: " << line;
    done = done || type == "result" || type == "resumed";
  }
};

uint64_t seed_from_env() {
  if (auto s = std::getenv("CADRE_KILL_SEED"); s && *s)
    return std::strtoull(s, nullptr, 10);
  std::random_device rd;
  return (static_cast<uint64_t>(rd()) << 32) | rd();
}

} // namespace

TEST(KillTest, AcknowledgedExecutionsSurviveSigkill) {
  const auto seed = seed_from_env();
  std::printf("[ kill_test ] seed %llu (CADRE_KILL_SEED=%llu repeats it)\n",
              static_cast<unsigned long long>(seed),
              static_cast<unsigned long long>(seed));
  std::fflush(stdout);
  SCOPED_TRACE("CADRE_KILL_SEED=" + std::to_string(seed));
  std::mt19937_64 rng{seed};
  auto chance = [&](double p) {
    return std::uniform_real_distribution<double>{0.0, 1.0}(rng) < p;
  };

  test::temp_dir dir;
  const auto wf = dir / "kill_test.yaml";
  const auto input = dir / "input.json";
  const auto db = dir / "db";
  // SIGKILLs at random points may interrupt one long attempt at several
  // starts in a row: that is not the task crashing the node, so the
  // crash-loop guard (which would park it) is off.
  const auto config = dir / "cadre.yaml";
  {
    std::ofstream{wf} << workflow_yaml();
    std::ofstream{input} << workflow_input().dump();
    std::ofstream{config} << "executions: {crash_loop_limit: 0}\n";
  }
  const auto errs = dir / "stderr.log";

  // -- kill loop ---------------------------------------------------------------
  constexpr int keys = 6;
  constexpr int min_kills = 24;
  constexpr int max_rounds = 200;
  expected_state model;
  std::vector<round_record> history;
  int kills = 0;
  int kills_in_flight = 0;
  int next_key = 0; // keys below were run at least once
  auto start = clock_type::now();
  // Until enough kills, and every key named an execution in some output.
  for (int round = 0; round < max_rounds
                      && (kills < min_kills
                          || model.by_key.size() < static_cast<size_t>(keys))
                      && !HasFailure();
       ++round) {
    std::vector<std::string> args{"--config", config, "--db", db, "--json"};
    round_record rec;
    if (chance(0.25)) {
      args.emplace_back("--sync");
      rec.command = "--sync ";
    }
    if (next_key > 0 && chance(0.25)) {
      args.emplace_back("resume");
      rec.command += "resume";
    } else {
      // A new key, or again one that was run (a repeated submission),
      // preferring one whose execution no output named yet.
      auto k = std::uniform_int_distribution<int>{
        0, std::min(next_key, keys - 1)}(rng);
      if (k < next_key && chance(0.5))
        for (int i = 0; i < next_key; ++i)
          if (!model.by_key.count("k" + std::to_string(i)))
            k = i;
      if (k == next_key)
        ++next_key;
      rec.key = "k" + std::to_string(k);
      args.insert(args.end(), {"run", wf, "--input", "@" + input,
                               "--idempotency-key", rec.key});
      rec.command += "run " + rec.key;
    }
    // When to kill: right after the first line, or after a random delay.
    const bool after_first_line = chance(0.3);
    const auto delay = milliseconds{
      std::uniform_int_distribution<int>{20, 400}(rng)};
    rec.plan = after_first_line ? "after first line"
                                : std::to_string(delay.count()) + " ms";

    child_process c{args, errs, {}, true};
    ASSERT_TRUE(c.ok()) << c.what();
    const auto kill_at = after_first_line
                           ? c.started() + std::chrono::seconds{30}
                           : c.started() + delay;
    std::string line;
    while (c.read_line(line, kill_at)) {
      rec.add(model, line);
      if (after_first_line)
        break;
    }
    if (after_first_line && rec.lines == 0 && !c.at_eof())
      ADD_FAILURE() << "round " << round << " (" << rec.command
                    << "): no output within 30 s";
    const bool exited_by_itself
      = c.at_eof()
        && c.wait_until(clock_type::now() + milliseconds{200}).has_value();
    auto status = c.kill_now();
    // What the process wrote before it died was acknowledged too.
    while (c.read_line(line, clock_type::now() + std::chrono::seconds{5}))
      rec.add(model, line);
    if (WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL
        && !exited_by_itself) {
      ++kills;
      rec.outcome = "killed";
      // Output without an end: it died with work in flight.
      if (rec.lines > 0 && !rec.done) {
        ++kills_in_flight;
        rec.outcome += " in flight";
      }
    } else {
      rec.outcome = describe_status(status);
      EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0)
        << "round " << round << " (" << rec.command
        << ") ended with " << describe_status(status) << "; stderr:\n"
        << read_file(errs);
    }
    history.push_back(rec);
  }
  const auto loop_ms = std::chrono::duration_cast<milliseconds>(
                         clock_type::now() - start)
                         .count();
  EXPECT_GE(kills, min_kills) << "the processes kept finishing first";

  auto dump_history = [&] {
    std::string out;
    for (size_t i = 0; i < history.size(); ++i)
      out += "  " + std::to_string(i) + ": " + history[i].command + ", kill "
             + history[i].plan + ": " + std::to_string(history[i].lines)
             + " lines, " + history[i].outcome + "\n";
    return out;
  };
  ASSERT_FALSE(HasFailure()) << dump_history();

  // -- recovery ----------------------------------------------------------------
  auto resumed = run_to_end({"--config", config, "--db", db, "--json",
                             "resume"},
                            errs,
                            std::chrono::seconds{120});
  ASSERT_TRUE(resumed) << dump_history();
  ASSERT_FALSE(resumed->empty());
  for (auto& l : *resumed)
    EXPECT_FALSE(observe(model, "", l).empty()) << "not JSON: " << l;
  auto last = json::parse(resumed->back(), nullptr, false);
  ASSERT_EQ(last.value("type", ""), "resumed") << resumed->back();
  for (auto& x : last["executions"])
    EXPECT_EQ(x.value("status", ""), "completed") << x.dump();

  // -- verification --------------------------------------------------------------
  auto listed = run_to_end({"--db", db, "--json", "executions"}, errs,
                           std::chrono::seconds{60});
  ASSERT_TRUE(listed && listed->size() == 1);
  auto list = json::parse(listed->front(), nullptr, false);
  ASSERT_TRUE(list.is_array()) << listed->front();

  const auto want_output = expected_output();
  const auto want_keys = expected_completions();
  std::map<std::string, execution_info> stored;
  for (auto& j : list) {
    auto info = j.get<execution_info>();
    stored[info.id] = info;
  }
  for (auto& [id, key] : model.acknowledged)
    EXPECT_TRUE(stored.count(id))
      << "acknowledged execution " << id << " (" << key << ") was lost";
  for (auto& [id, status] : model.reported)
    EXPECT_EQ(status, "completed") << "a child reported " << id;
  for (auto& [key, id] : model.by_key)
    EXPECT_TRUE(stored.count(id))
      << "execution " << id << " (" << key << ") reported, then lost";
  // At most one execution per key, and every key was named in some output.
  EXPECT_LE(stored.size(), static_cast<size_t>(keys));
  if (model.by_key.size() == static_cast<size_t>(keys)) {
    EXPECT_EQ(stored.size(), static_cast<size_t>(keys));
  }

  std::set<std::string> keys_in_store;
  for (auto& [id, info] : stored) {
    SCOPED_TRACE("execution " + id);
    EXPECT_EQ(info.status, "completed") << info.error;
    EXPECT_EQ(info.output.get(), want_output);
    auto lines = run_to_end({"--db", db, "--json", "events", id}, errs,
                            std::chrono::seconds{60});
    ASSERT_TRUE(lines);
    std::vector<event> evs;
    for (auto& l : *lines)
      evs.push_back(json::parse(l).get<event>());
    ASSERT_FALSE(evs.empty());
    EXPECT_EQ(evs.size(), info.last_seq);
    std::map<std::string, int> completed;
    std::set<std::string> skipped;
    int finals = 0;
    for (size_t i = 0; i < evs.size(); ++i) {
      const auto& ev = evs[i];
      ASSERT_EQ(ev.seq, i + 1) << "seqs are not dense from 1";
      EXPECT_EQ(ev.execution_id, id);
      const auto& p = ev.payload.get();
      if (ev.type == "execution_submitted") {
        EXPECT_EQ(i, 0u);
        auto key = p.value("idempotency_key", std::string{});
        EXPECT_TRUE(keys_in_store.insert(key).second)
          << "two executions for key " << key;
        if (auto a = model.acknowledged.find(id);
            a != model.acknowledged.end()) {
          EXPECT_EQ(a->second, key);
        }
        if (auto b = model.by_key.find(key); b != model.by_key.end()) {
          EXPECT_EQ(b->second, id) << "key " << key;
        }
      } else if (ev.type == "task_completed") {
        auto key = key_of(p);
        if (++completed[key] > 1)
          ADD_FAILURE() << key << " completed again at seq " << ev.seq;
        if (key == "flaky") {
          EXPECT_EQ(p.value("attempt", 0), 3);
        }
      } else if (ev.type == "task_dispatched") {
        auto key = key_of(p);
        EXPECT_EQ(completed.count(key), 0u)
          << key << " dispatched at seq " << ev.seq << " after it completed";
      } else if (ev.type == "task_skipped") {
        skipped.insert(key_of(p));
      } else if (ev.type == "execution_completed") {
        ++finals;
        EXPECT_EQ(i + 1, evs.size()) << "events after execution_completed";
        EXPECT_EQ(p.value("output", json{}), want_output);
      } else if (ev.type == "execution_failed"
                 || ev.type == "execution_cancelled") {
        ADD_FAILURE() << ev.type << ": " << p.dump();
      }
    }
    EXPECT_EQ(finals, 1);
    EXPECT_EQ(skipped, std::set<std::string>{"gate_no"});
    std::set<std::string> got_keys;
    for (auto& [k, n] : completed)
      got_keys.insert(k);
    EXPECT_EQ(got_keys, want_keys);
  }

  const auto total_ms = std::chrono::duration_cast<milliseconds>(
                          clock_type::now() - start)
                          .count();
  std::printf("[ kill_test ] %zu rounds, %d kills (%d with work in flight), "
              "%zu executions (%zu acknowledged); kill loop %lld ms, all "
              "%lld ms\n",
              history.size(), kills, kills_in_flight, stored.size(),
              model.acknowledged.size(), static_cast<long long>(loop_ms),
              static_cast<long long>(total_ms));
  if (HasFailure() || std::getenv("CADRE_KILL_VERBOSE"))
    std::printf("%s", dump_history().c_str());
}
