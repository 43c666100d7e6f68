// A damaged store, as the crash test's sibling (issue 12, item 16): three
// executions are written by real `cadre run`s (the last killed with
// SIGKILL right after its result, so the WAL holds it), then a copy of the
// store has one of its files (table, WAL, MANIFEST, CURRENT, OPTIONS,
// ACKED)
// damaged at a random offset, and every command either answers in full or
// refuses with a storage_error: never exits 0 with less data. Beside it:
// `cadre repair` on a damaged store, the live WAL deleted after the kill,
// and `cadre run` on a full disk.
//
// The seed is printed; CADRE_DAMAGE_SEED=<n> repeats a run and
// CADRE_DAMAGE_CASES=<n> (default 6, one per kind of file) runs more
// (scripts/store_damage.sh).

#include <fcntl.h>
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <optional>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "cadre/messages/json_value.hpp"
#include "cadre_process.hpp"
#include "invert_bytes.hpp"
#include "small_disk.hpp"
#include "temp_dir.hpp"

using namespace cadre;
namespace fs = std::filesystem;

namespace {

constexpr std::chrono::seconds command_limit{60};

uint64_t env_number(const char* name, uint64_t fallback) {
  if (auto s = std::getenv(name); s && *s)
    return std::strtoull(s, nullptr, 10);
  return fallback;
}

std::string joined(const test::outcome& res) {
  std::string out;
  for (auto& l : res.out)
    out += l + "\n";
  return out + "stderr:\n" + res.err;
}

/// A refusal as users rely on it: a non-zero exit with storage_error.
void expect_refused(const test::outcome& res, const std::string& what) {
  EXPECT_NE(res.exit_code, 0) << what << ": " << joined(res);
  EXPECT_NE(res.err.find("storage_error"), std::string::npos)
    << what << " failed without a storage_error: " << joined(res);
}

/// The files of `dir` that are of `kind`.
std::vector<fs::path> files_of_kind(const std::string& dir,
                                    const std::string& kind) {
  std::vector<fs::path> out;
  for (auto& e : fs::directory_iterator(dir)) {
    auto name = e.path().filename().string();
    bool match = kind == "sst" || kind == "log"
                   ? e.path().extension() == "." + kind
                   : name.rfind(kind, 0) == 0;
    if (match && fs::file_size(e.path()) > 0)
      out.push_back(e.path());
  }
  std::sort(out.begin(), out.end());
  return out;
}

/// Two `cadre run`s of `wf` on `db` that end cleanly, then a third killed
/// with SIGKILL right after its result: its events are only in the WAL.
void run_twice_then_kill(const std::string& db, const std::string& wf,
                         const std::string& err) {
  for (int i = 0; i < 2; ++i) {
    auto res = test::run_to_end({"--db", db, "--json", "run", wf}, err,
                                command_limit);
    ASSERT_TRUE(res && res->exit_code == 0) << (res ? joined(*res) : "");
  }
  test::cadre_process p{{"--db", db, "--json", "run", wf}, err};
  ASSERT_TRUE(p.ok()) << p.what();
  std::string line;
  auto deadline = test::clock_type::now() + command_limit;
  bool result = false;
  while (!result && p.read_line(line, deadline))
    result = json::parse(line, nullptr, false).value("type", "") == "result";
  ASSERT_TRUE(result) << "no result line; stderr:\n" << p.stderr_text();
  p.kill_now();
}

} // namespace

TEST(StoreDamageTest, EveryCommandAnswersInFullOrRefuses) {
  const auto seed = env_number("CADRE_DAMAGE_SEED", std::random_device{}());
  const auto cases = env_number("CADRE_DAMAGE_CASES", 6);
  std::printf("[ store_damage ] seed %llu (CADRE_DAMAGE_SEED=%llu repeats "
              "it), %llu cases\n",
              static_cast<unsigned long long>(seed),
              static_cast<unsigned long long>(seed),
              static_cast<unsigned long long>(cases));
  std::fflush(stdout);
  SCOPED_TRACE("CADRE_DAMAGE_SEED=" + std::to_string(seed));
  std::mt19937_64 rng{seed};

  test::temp_dir tmp;
  const auto wf = tmp / "w.yaml";
  std::ofstream{wf} << "name: w\ntasks:\n"
                       "  - {id: a, tool: echo, input: {v: 1}}\n"
                       "  - {id: b, depends_on: a, tool: echo, input: {v: 2}}\n";
  const auto pristine = tmp / "pristine";
  const auto err = tmp / "err";

  // -- three executions, the last one's events only in the WAL -----------------
  ASSERT_NO_FATAL_FAILURE(run_twice_then_kill(pristine, wf, err));
  std::map<std::string, size_t> want; // execution id -> events
  {
    auto res = test::run_to_end({"--db", pristine, "--json", "executions"},
                                err, command_limit);
    ASSERT_TRUE(res && res->exit_code == 0 && res->out.size() == 1);
    auto list = json::parse(res->out.front());
    ASSERT_EQ(list.size(), 3u) << res->out.front();
    for (auto& x : list) {
      ASSERT_EQ(x.value("status", ""), "completed") << x.dump();
      want[x.value("id", "")] = x.value("last_seq", size_t{0});
    }
  }

  // -- damage cases ---------------------------------------------------------------
  const std::vector<std::string> kinds{"sst",     "log",      "MANIFEST-",
                                       "CURRENT", "OPTIONS-", "ACKED"};
  int refusals = 0;
  for (uint64_t c = 0; c < cases && !HasFailure(); ++c) {
    const auto& kind = kinds[c % kinds.size()];
    auto db = tmp / ("case" + std::to_string(c));
    fs::remove_all(db);
    fs::copy(pristine, db);
    fs::remove(fs::path{db} / "LOCK");
    auto files = files_of_kind(db, kind);
    if (files.empty()) {
      std::printf("[ store_damage ] case %llu: no %s file\n",
                  static_cast<unsigned long long>(c), kind.c_str());
      continue;
    }
    auto file = files[std::uniform_int_distribution<size_t>{
      0, files.size() - 1}(rng)];
    auto size = fs::file_size(file);
    auto offset = std::uniform_int_distribution<uint64_t>{0, size - 1}(rng);
    auto len = std::min<uint64_t>(
      size - offset, std::uniform_int_distribution<uint64_t>{1, 64}(rng));
    ASSERT_TRUE(test::invert_bytes(file.string(), offset, len)) << file;
    auto label = "case " + std::to_string(c) + ": " + std::to_string(len)
                 + " bytes of " + file.filename().string() + " at "
                 + std::to_string(offset) + " of " + std::to_string(size);
    SCOPED_TRACE(label);
    std::printf("[ store_damage ] %s\n", label.c_str());

    auto check_listing = [&](const std::string& what) {
      auto res = test::run_to_end({"--db", db, "--json", "executions"}, err,
                                  command_limit);
      ASSERT_TRUE(res);
      if (res->exit_code != 0) {
        expect_refused(*res, what);
        ++refusals;
        return;
      }
      ASSERT_EQ(res->out.size(), 1u) << joined(*res);
      auto list = json::parse(res->out.front(), nullptr, false);
      std::map<std::string, size_t> got;
      for (auto& x : list)
        got[x.value("id", "")] = x.value("last_seq", size_t{0});
      for (auto& [id, n] : want) {
        EXPECT_TRUE(got.count(id)) << what << " lost execution " << id;
        if (got.count(id)) {
          EXPECT_EQ(got[id], n) << what << ": " << id;
        }
      }
    };
    check_listing("executions");
    for (auto& [id, n] : want) {
      auto res = test::run_to_end({"--db", db, "--json", "events", id}, err,
                                  command_limit);
      ASSERT_TRUE(res);
      if (res->exit_code != 0) {
        expect_refused(*res, "events " + id);
      } else {
        EXPECT_EQ(res->out.size(), n) << "events " << id << ": "
                                      << joined(*res);
      }
    }
    auto ran = test::run_to_end({"--db", db, "--json", "run", wf}, err,
                                command_limit);
    ASSERT_TRUE(ran);
    if (ran->exit_code != 0) {
      expect_refused(*ran, "run");
    } else {
      // A run that went through must have kept every earlier execution.
      check_listing("executions after run");
    }
    // `cadre check` agrees: a store that refused is not reported whole.
    auto checked = test::run_to_end({"--db", db, "--json", "check"}, err,
                                    command_limit);
    ASSERT_TRUE(checked);
    if (ran->exit_code != 0) {
      EXPECT_NE(checked->exit_code, 0) << "check: " << joined(*checked);
    }
  }
  std::printf("[ store_damage ] %d refusals of `executions`\n", refusals);
}

TEST(StoreDamageTest, LiveWalDeletedAfterAKillIsRefusedAndRepairSaysSo) {
  test::temp_dir tmp;
  const auto wf = tmp / "w.yaml";
  std::ofstream{wf} << "name: w\ntasks:\n  - {id: a, tool: echo}\n";
  const auto db = tmp / "db";
  const auto err = tmp / "err";
  ASSERT_NO_FATAL_FAILURE(run_twice_then_kill(db, wf, err));
  // The killed run's execution is acknowledged but only in the live WAL.
  auto wals = files_of_kind(db, "log");
  ASSERT_FALSE(wals.empty());
  for (auto& wal : wals)
    fs::remove(wal);

  for (auto args : std::vector<std::vector<std::string>>{
         {"--db", db, "--json", "executions"},
         {"--db", db, "--json", "run", wf}}) {
    auto res = test::run_to_end(args, err, command_limit);
    ASSERT_TRUE(res);
    expect_refused(*res, args[3]);
    EXPECT_NE(res->err.find(db), std::string::npos) << joined(*res);
    EXPECT_NE(res->err.find("acknowledged"), std::string::npos)
      << joined(*res);
  }
  auto checked = test::run_to_end({"--db", db, "--json", "check"}, err,
                                  command_limit);
  ASSERT_TRUE(checked && checked->out.size() == 1) << joined(*checked);
  EXPECT_EQ(checked->exit_code, 1) << joined(*checked);
  auto report = json::parse(checked->out.front());
  EXPECT_FALSE(report.value("ok", true)) << report.dump();

  auto repaired = test::run_to_end({"--db", db, "--json", "repair"}, err,
                                   command_limit);
  ASSERT_TRUE(repaired && repaired->out.size() == 1) << joined(*repaired);
  EXPECT_EQ(repaired->exit_code, 0) << joined(*repaired);
  auto rep = json::parse(repaired->out.front());
  EXPECT_TRUE(rep["check"].value("ok", false)) << rep.dump();
  ASSERT_EQ(rep["check"]["lost"].size(), 1u) << rep.dump();
  EXPECT_NE(rep["check"]["lost"][0].get<std::string>().find("acknowledged"),
            std::string::npos)
    << rep.dump();
  // What is intact answers, and work goes on.
  auto listed = test::run_to_end({"--db", db, "--json", "executions"}, err,
                                 command_limit);
  ASSERT_TRUE(listed && listed->exit_code == 0 && listed->out.size() == 1)
    << joined(*listed);
  EXPECT_EQ(json::parse(listed->out.front()).size(), 2u)
    << listed->out.front();
  auto ran = test::run_to_end({"--db", db, "run", wf}, err, command_limit);
  ASSERT_TRUE(ran);
  EXPECT_EQ(ran->exit_code, 0) << joined(*ran);
}

namespace {

/// The entries under `db` (all levels), or -1 once `db`/CURRENT exists: the
/// store is then whole.
int entries_before_current(const std::string& db) {
  std::error_code ec;
  if (fs::exists(fs::path{db} / "CURRENT", ec))
    return -1;
  int n = 0;
  for (fs::recursive_directory_iterator it{db, ec};
       !ec && it != fs::recursive_directory_iterator{}; it.increment(ec))
    ++n;
  return n;
}

std::string listing(const std::string& db) {
  std::string out;
  std::error_code ec;
  for (fs::recursive_directory_iterator it{db, ec};
       !ec && it != fs::recursive_directory_iterator{}; it.increment(ec))
    out += " " + fs::relative(it->path(), db).string();
  return out;
}

} // namespace

TEST(StoreDamageTest, AStoreKilledWhileBeingCreatedWorksAtTheNextCommand) {
  // A kill -9 while a new store is created (the first command on a new
  // --db) left RocksDB's first files without CURRENT, which every later
  // command refused as a damaged store; the kill test flaked on it. A store
  // that never was whole holds nothing to lose: the next command must work.
  // Each round kills a `cadre run` on a new store as soon as its directory
  // holds a random number of entries but no CURRENT.
  test::temp_dir tmp;
  const auto wf = tmp / "w.yaml";
  std::ofstream{wf} << "name: w\ntasks:\n  - {id: a, tool: echo}\n";
  const auto err = tmp / "err";
  std::mt19937 rng{12};
  int landed = 0;
  for (int round = 0; round < 100 && landed < 8 && !HasFailure(); ++round) {
    const auto db = tmp / ("db" + std::to_string(round));
    const int after = std::uniform_int_distribution<int>{1, 6}(rng);
    {
      test::cadre_process p{{"--db", db, "run", wf}, err};
      ASSERT_TRUE(p.ok()) << p.what();
      auto deadline = test::clock_type::now() + command_limit;
      while (!p.exited() && test::clock_type::now() < deadline) {
        auto n = entries_before_current(db);
        if (n < 0 || n >= after)
          break;
        std::this_thread::sleep_for(std::chrono::microseconds{20});
      }
      p.kill_now();
    }
    // Only kills that landed before the store was whole tell something.
    if (entries_before_current(db) <= 0)
      continue;
    ++landed;
    auto killed_at = listing(db);
    SCOPED_TRACE("round " + std::to_string(round) + ", killed with:"
                 + killed_at);
    auto ran = test::run_to_end({"--db", db, "--json", "run", wf}, err,
                                command_limit);
    ASSERT_TRUE(ran);
    EXPECT_EQ(ran->exit_code, 0) << joined(*ran);
    auto listed = test::run_to_end({"--db", db, "--json", "executions"}, err,
                                   command_limit);
    ASSERT_TRUE(listed && listed->exit_code == 0 && listed->out.size() == 1)
      << joined(*listed);
    EXPECT_EQ(json::parse(listed->out.front()).size(), 1u)
      << listed->out.front();
    EXPECT_EQ(listing(db).find(".creating-"), std::string::npos)
      << "a staging directory was left:" << listing(db);
  }
  std::printf("[ store_damage ] %d kills landed while a store was created\n",
              landed);
  EXPECT_GT(landed, 0) << "no kill landed while a store was being created";
}

TEST(StoreDamageTest, RepairSalvagesWhatIsIntactAndSaysWhatWasLost) {
  test::temp_dir tmp;
  const auto wf = tmp / "w.yaml";
  std::ofstream{wf} << "name: w\ntasks:\n  - {id: a, tool: echo}\n";
  const auto db = tmp / "db";
  const auto err = tmp / "err";
  for (int i = 0; i < 3; ++i) {
    auto res = test::run_to_end({"--db", db, "run", wf}, err, command_limit);
    ASSERT_TRUE(res && res->exit_code == 0) << (res ? joined(*res) : "");
  }
  // Damage the middle of every table file: blocks of events and index.
  for (auto& table : files_of_kind(db, "sst"))
    ASSERT_TRUE(test::invert_bytes(table.string(), fs::file_size(table) / 2,
                                   32));
  auto listed = test::run_to_end({"--db", db, "executions"}, err,
                                 command_limit);
  ASSERT_TRUE(listed);
  expect_refused(*listed, "executions on a damaged store");
  auto checked = test::run_to_end({"--db", db, "--json", "check"}, err,
                                  command_limit);
  ASSERT_TRUE(checked && checked->out.size() == 1) << joined(*checked);
  EXPECT_EQ(checked->exit_code, 1);
  auto report = json::parse(checked->out.front());
  EXPECT_FALSE(report.value("ok", true));
  EXPECT_FALSE(report["problems"].empty());

  auto repaired = test::run_to_end({"--db", db, "--json", "repair"}, err,
                                   command_limit);
  ASSERT_TRUE(repaired && repaired->out.size() == 1) << joined(*repaired);
  EXPECT_EQ(repaired->exit_code, 0) << joined(*repaired);
  auto rep = json::parse(repaired->out.front());
  EXPECT_EQ(rep.value("type", ""), "repaired");
  EXPECT_TRUE(rep["check"].value("ok", false)) << rep.dump();
  EXPECT_FALSE(rep["check"]["set_aside"].empty()) << rep.dump();

  // What the repaired store lists, it has in full.
  auto after = test::run_to_end({"--db", db, "--json", "executions"}, err,
                                command_limit);
  ASSERT_TRUE(after && after->exit_code == 0) << joined(*after);
  for (auto& x : json::parse(after->out.front())) {
    auto id = x.value("id", "");
    auto evs = test::run_to_end({"--db", db, "--json", "events", id}, err,
                                command_limit);
    ASSERT_TRUE(evs);
    if (x.value("last_seq", 0) == 0) {
      EXPECT_EQ(x.value("status", ""), "failed") << x.dump();
      continue;
    }
    EXPECT_EQ(evs->exit_code, 0) << joined(*evs);
    EXPECT_EQ(evs->out.size(), x.value("last_seq", size_t{0})) << x.dump();
  }
}

TEST(StoreDamageTest, FullDiskRefusesTheSubmissionWhileReadsGoOn) {
  test::temp_dir tmp;
  test::small_disk disk{"400m"};
  if (!disk.mounted())
    GTEST_SKIP() << disk.error();
  const auto& mnt = disk.path();
  const auto wf = tmp / "w.yaml";
  std::ofstream{wf} << "name: w\ntasks:\n  - {id: a, tool: echo}\n";
  const auto db = mnt + "/db";
  const auto err = tmp / "err";
  auto first = test::run_to_end({"--db", db, "run", wf}, err, command_limit);
  ASSERT_TRUE(first && first->exit_code == 0) << joined(*first);
  // Leave 64 MiB free: below the 128 MiB a write needs.
  const auto filler = mnt + "/filler";
  {
    auto left = fs::space(mnt).available;
    ASSERT_GT(left, uint64_t{64} << 20);
    int fd = ::open(filler.c_str(), O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
    ASSERT_GE(fd, 0);
    auto rc = ::posix_fallocate(fd, 0,
                                static_cast<off_t>(left - (uint64_t{64} << 20)));
    ::close(fd);
    ASSERT_EQ(rc, 0) << std::strerror(rc);
  }
  auto refused = test::run_to_end({"--db", db, "run", wf}, err,
                                  command_limit);
  ASSERT_TRUE(refused);
  expect_refused(*refused, "run on a full disk");
  EXPECT_NE(refused->err.find("disk is full"), std::string::npos)
    << joined(*refused);
  // Nothing was acknowledged, and reads go on.
  auto listed = test::run_to_end({"--db", db, "--json", "executions"}, err,
                                 command_limit);
  ASSERT_TRUE(listed && listed->exit_code == 0 && listed->out.size() == 1)
    << joined(*listed);
  EXPECT_EQ(json::parse(listed->out.front()).size(), 1u)
    << listed->out.front();
  // Space freed: work goes on.
  fs::remove(filler);
  auto again = test::run_to_end({"--db", db, "run", wf}, err, command_limit);
  ASSERT_TRUE(again);
  EXPECT_EQ(again->exit_code, 0) << joined(*again);
}
