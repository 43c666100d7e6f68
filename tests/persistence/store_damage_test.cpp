// A damaged store or a full disk is refused loudly, never read as less
// data (issue 12, items 9-12): a directory without CURRENT is not replaced
// by a new store, a damaged WAL record or table file is a storage_error
// naming the store, a full disk fails the write and the store writes again
// once space is freed. Damaged copies are made while the store is open, so
// they are the image a crash would leave (the WAL holds the data).

#include "cadre/persistence/event_store.hpp"
#include "cadre/persistence/store_check.hpp"


#include <algorithm>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <chrono>
#include <memory>
#include <optional>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "invert_bytes.hpp"
#include "small_disk.hpp"
#include "temp_dir.hpp"

using namespace cadre;
using namespace cadre::persistence;
namespace fs = std::filesystem;

namespace {

/// Events 1..count of `id` with a payload of `pad` bytes each, and the
/// index entry saying so.
append_request make_request(const std::string& id, uint64_t count,
                            size_t pad = 100, uint64_t from = 1) {
  append_request req;
  for (uint64_t seq = from; seq < from + count; ++seq) {
    auto& ev = req.events.emplace_back();
    ev.execution_id = id;
    ev.seq = seq;
    ev.time_us = 1'000'000 + static_cast<int64_t>(seq);
    ev.type = seq == 1 ? "execution_submitted" : "step";
    ev.payload = json{{"n", seq}, {"pad", std::string(pad, 'x')}};
  }
  auto& info = req.index.emplace_back();
  info.id = id;
  info.workflow = "wf";
  info.version = "1";
  info.status = "running";
  info.created_us = 1'000'000;
  info.last_seq = from + count - 1;
  return req;
}

std::unique_ptr<event_store> open_store(const std::string& dir,
                                        bool read_only = false) {
  auto store = event_store::open(store_options{.dir = dir,
                                               .read_only = read_only});
  if (!store) {
    ADD_FAILURE() << describe(store.error());
    return nullptr;
  }
  return std::move(*store);
}

/// `count` bytes of random letters: a payload that does not compress.
std::string noise(std::mt19937& rng, size_t count) {
  std::string out(count, 'a');
  for (auto& c : out)
    c = static_cast<char>('a' + rng() % 26);
  return out;
}

/// Fills the file system of `mnt` with `mnt`/filler until at most
/// `leave` bytes are free.
void fill_disk(const std::string& mnt, uint64_t leave) {
  std::ofstream out{mnt + "/filler", std::ios::binary | std::ios::app};
  std::string block(4 << 10, 'f');
  while (fs::space(mnt).available > leave + block.size())
    out.write(block.data(), static_cast<std::streamsize>(block.size()))
      .flush();
}

/// Writes three executions of 20 events each to `dir`.
void fill(event_store& store) {
  for (auto id : {"e1", "e2", "e3"})
    ASSERT_TRUE(store.append(make_request(id, 20)));
}

/// A closed store in `tmp`/db with the executions of fill().
std::string make_filled_store(const test::temp_dir& tmp) {
  auto dir = tmp / "db";
  auto store = open_store(dir);
  if (store)
    fill(*store);
  return dir;
}

/// The files of `dir` whose name ends with `suffix`, largest first.
std::vector<std::string> files_of(const std::string& dir,
                                  const std::string& suffix) {
  std::vector<std::string> out;
  for (auto& e : fs::directory_iterator(dir)) {
    auto name = e.path().filename().string();
    if (name.size() >= suffix.size()
        && name.compare(name.size() - suffix.size(), suffix.size(), suffix)
             == 0)
      out.push_back(e.path().string());
  }
  std::sort(out.begin(), out.end(), [](auto& x, auto& y) {
    return fs::file_size(x) > fs::file_size(y);
  });
  return out;
}

/// Inverts `len` bytes of `file` at `offset`.
void flip(const std::string& file, uint64_t offset, size_t len) {
  ASSERT_TRUE(test::invert_bytes(file, offset, len)) << file;
}

/// What a user relies on: the store either answers in full (3 executions,
/// 20 events each) or refuses with a storage_error naming the store.
void expect_full_or_refused(const std::string& dir, bool read_only) {
  SCOPED_TRACE(read_only ? "read-only" : "read-write");
  auto opened = event_store::open(store_options{.dir = dir,
                                                .read_only = read_only});
  if (!opened) {
    EXPECT_EQ(code_of(opened.error()), errc::storage_error)
      << describe(opened.error());
    EXPECT_NE(message_of(opened.error()).find(dir), std::string::npos)
      << describe(opened.error());
    return;
  }
  auto& store = **opened;
  auto list = store.list(execution_filter{});
  if (!list) {
    EXPECT_EQ(code_of(list.error()), errc::storage_error);
    EXPECT_NE(message_of(list.error()).find(dir), std::string::npos);
  } else {
    EXPECT_EQ(list->size(), 3u) << "the index lost executions silently";
  }
  for (auto id : {"e1", "e2", "e3"}) {
    auto evs = store.read(id, 1, 0);
    if (!evs) {
      EXPECT_EQ(code_of(evs.error()), errc::storage_error)
        << describe(evs.error());
      EXPECT_NE(message_of(evs.error()).find(dir), std::string::npos);
    } else {
      EXPECT_EQ(evs->size(), 20u) << id << " lost events silently";
    }
  }
}

} // namespace

TEST(StoreDamage, MissingCurrentRefusesToCreateANewStoreOverTheOldOne) {
  test::temp_dir tmp;
  auto dir = make_filled_store(tmp);
  auto tables = files_of(dir, ".sst");
  ASSERT_FALSE(tables.empty());
  fs::remove(fs::path{dir} / "CURRENT");
  for (bool read_only : {true, false}) {
    auto store = event_store::open(store_options{.dir = dir,
                                                 .read_only = read_only});
    ASSERT_FALSE(store) << "a new store was created over a damaged one";
    EXPECT_EQ(code_of(store.error()), errc::storage_error);
    auto msg = message_of(store.error());
    EXPECT_NE(msg.find(dir), std::string::npos) << msg;
    EXPECT_NE(msg.find("CURRENT"), std::string::npos) << msg;
    EXPECT_NE(msg.find("table file"), std::string::npos) << msg;
  }
  for (auto& t : tables)
    EXPECT_TRUE(fs::exists(t)) << t << " was deleted";
  EXPECT_FALSE(fs::exists(fs::path{dir} / "CURRENT"));
}

TEST(StoreDamage, AnEmptyDirectoryStillBecomesAStore) {
  test::temp_dir tmp;
  auto dir = tmp / "db";
  fs::create_directories(dir);
  auto store = open_store(dir);
  ASSERT_TRUE(store);
  EXPECT_TRUE(store->append(make_request("e1", 1)));
}

namespace {

/// The files RocksDB leaves when it creates a store (those of a store
/// opened once and closed, without cadre's ACKED and info log), in
/// `dir`/.creating-4194304, the staging directory of a creation killed
/// midway; `moved` of them are already in `dir`, as a kill while the new
/// store moved into place leaves them.
void stage_killed_creation(const test::temp_dir& tmp, const std::string& dir,
                           const std::vector<std::string>& moved,
                           bool with_current) {
  auto fresh = tmp / "fresh";
  ASSERT_TRUE(open_store(fresh));
  auto staging = fs::path{dir} / ".creating-4194304";
  fs::create_directories(staging);
  for (auto& e : fs::directory_iterator(fresh)) {
    auto name = e.path().filename().string();
    if (name == "ACKED" || name.rfind("LOG", 0) == 0
        || (name == "CURRENT" && !with_current) || !e.is_regular_file())
      continue;
    bool is_moved = std::any_of(moved.begin(), moved.end(), [&](auto& m) {
      return name.rfind(m, 0) == 0;
    });
    fs::copy_file(e.path(), (is_moved ? fs::path{dir} : staging) / name);
  }
}

} // namespace

TEST(StoreDamage, ACreationKilledWhileMovingTheStoreIntoPlaceOpensAsANewStore) {
  // The state of a store whose creation was killed before its CURRENT
  // moved in: RocksDB's files in the directory, CURRENT only in staging.
  // It never held anything, so it is no damaged store.
  test::temp_dir tmp;
  auto dir = tmp / "db";
  stage_killed_creation(tmp, dir, {"IDENTITY", "MANIFEST-", "OPTIONS-"},
                        true);
  ASSERT_FALSE(fs::exists(fs::path{dir} / "CURRENT"));
  {
    auto reader = event_store::open(store_options{.dir = dir,
                                                  .read_only = true});
    ASSERT_FALSE(reader);
    EXPECT_EQ(code_of(reader.error()), errc::not_found)
      << describe(reader.error());
    auto checked = check_store(dir);
    ASSERT_FALSE(checked);
    EXPECT_EQ(code_of(checked.error()), errc::not_found);
  }
  {
    auto store = open_store(dir);
    ASSERT_TRUE(store) << "a store killed while being created is refused";
    auto list = store->list(execution_filter{});
    ASSERT_TRUE(list) << describe(list.error());
    EXPECT_TRUE(list->empty());
    EXPECT_TRUE(store->append(make_request("e1", 3)));
  }
  EXPECT_FALSE(fs::exists(fs::path{dir} / ".creating-4194304"));
  auto store = open_store(dir, true);
  ASSERT_TRUE(store);
  auto evs = store->read("e1", 1, 0);
  ASSERT_TRUE(evs) << describe(evs.error());
  EXPECT_EQ(evs->size(), 3u);
}

TEST(StoreDamage, ACreationKilledBeforeItsStoreWasWholeIsRemovedAtTheNextOpen) {
  // Killed while RocksDB created the store in staging (no CURRENT yet):
  // the directory itself holds nothing of it.
  test::temp_dir tmp;
  auto dir = tmp / "db";
  stage_killed_creation(tmp, dir, {}, false);
  auto store = open_store(dir);
  ASSERT_TRUE(store);
  EXPECT_TRUE(store->append(make_request("e1", 1)));
  EXPECT_FALSE(fs::exists(fs::path{dir} / ".creating-4194304"));
}

TEST(StoreDamage, AStagingDirectoryNeverExcusesADamagedStore) {
  // A store that held data and lost its CURRENT stays refused, whatever
  // staging directory lies beside it; directories not named as cadre's
  // staging ones are never touched.
  test::temp_dir tmp;
  auto dir = make_filled_store(tmp);
  fs::remove(fs::path{dir} / "CURRENT");
  auto tables = files_of(dir, ".sst");
  fs::create_directories(fs::path{dir} / ".creating-12" / "x");
  fs::create_directories(fs::path{dir} / ".creating-me");
  for (bool read_only : {true, false}) {
    auto store = event_store::open(store_options{.dir = dir,
                                                 .read_only = read_only});
    ASSERT_FALSE(store) << "a new store was created over a damaged one";
    EXPECT_EQ(code_of(store.error()), errc::storage_error);
    EXPECT_NE(message_of(store.error()).find("CURRENT"), std::string::npos);
  }
  for (auto& t : tables)
    EXPECT_TRUE(fs::exists(t)) << t << " was deleted";
  EXPECT_TRUE(fs::exists(fs::path{dir} / ".creating-me"));
}

TEST(StoreDamage, DamagedWalRecordRefusesInsteadOfDroppingTheRest) {
  // Offsets 2 (a record's length) and 20 (its payload): RocksDB's default
  // recovery keeps what comes before and drops the rest without an error.
  for (uint64_t offset : {2u, 20u, 700u}) {
    SCOPED_TRACE("offset " + std::to_string(offset));
    test::temp_dir tmp;
    auto dir = tmp / "db";
    auto image = tmp / "image";
    {
      auto store = open_store(dir);
      ASSERT_TRUE(store);
      fill(*store);
      fs::copy(dir, image);
    }
    auto wals = files_of(image, ".log");
    ASSERT_FALSE(wals.empty());
    ASSERT_GT(fs::file_size(wals.front()), offset + 64);
    flip(wals.front(), offset, 64);
    expect_full_or_refused(image, true);
    expect_full_or_refused(image, false);
    auto opened = event_store::open(store_options{.dir = image});
    ASSERT_FALSE(opened);
    EXPECT_NE(message_of(opened.error()).find("damaged"), std::string::npos)
      << describe(opened.error());
  }
}

TEST(StoreDamage, DeletedWalAfterACleanCloseLosesNothing) {
  test::temp_dir tmp;
  auto dir = make_filled_store(tmp);
  for (auto& wal : files_of(dir, ".log"))
    fs::remove(wal);
  auto store = open_store(dir);
  ASSERT_TRUE(store);
  for (auto id : {"e1", "e2", "e3"}) {
    auto evs = store->read(id, 1, 0);
    ASSERT_TRUE(evs) << describe(evs.error());
    EXPECT_EQ(evs->size(), 20u) << id;
  }
}

TEST(StoreDamage, LiveWalDeletedAfterACrashIsRefusedAndRepairSaysWhatWasLost) {
  test::temp_dir tmp;
  auto dir = tmp / "db";
  auto image = tmp / "image";
  {
    auto store = open_store(dir);
    ASSERT_TRUE(store);
    ASSERT_TRUE(store->append(make_request("e1", 20)));
    ASSERT_TRUE(store->append(make_request("e2", 20)));
  } // closed cleanly: e1 and e2 are in table files
  {
    auto store = open_store(dir);
    ASSERT_TRUE(store);
    ASSERT_TRUE(store->append(make_request("e3", 20)));
    // The image a crash leaves: e3 acknowledged, only in the live WAL.
    fs::copy(dir, image);
  }
  fs::remove(fs::path{image} / "LOCK");
  auto wals = files_of(image, ".log");
  ASSERT_FALSE(wals.empty());
  for (auto& wal : wals)
    fs::remove(wal);
  for (bool read_only : {true, false}) {
    SCOPED_TRACE(read_only ? "read-only" : "read-write");
    auto opened = event_store::open(store_options{.dir = image,
                                                  .read_only = read_only});
    ASSERT_FALSE(opened) << "opened without the acknowledged writes";
    EXPECT_EQ(code_of(opened.error()), errc::storage_error);
    auto msg = message_of(opened.error());
    EXPECT_NE(msg.find(image), std::string::npos) << msg;
    EXPECT_NE(msg.find("acknowledged"), std::string::npos) << msg;
    EXPECT_NE(msg.find("cadre repair"), std::string::npos) << msg;
  }
  auto checked = check_store(image);
  ASSERT_TRUE(checked) << describe(checked.error());
  EXPECT_FALSE(checked->ok());

  auto repaired = repair_store(image);
  ASSERT_TRUE(repaired) << describe(repaired.error());
  ASSERT_EQ(repaired->lost.size(), 1u);
  EXPECT_NE(repaired->lost.front().find("acknowledged"), std::string::npos)
    << repaired->lost.front();
  {
    auto store = open_store(image);
    ASSERT_TRUE(store);
    for (auto id : {"e1", "e2"}) {
      auto evs = store->read(id, 1, 0);
      ASSERT_TRUE(evs) << describe(evs.error());
      EXPECT_EQ(evs->size(), 20u) << id;
    }
    // Writes go on from what is there.
    EXPECT_TRUE(store->append(make_request("e3", 1)));
  }
  auto after = check_store(image);
  ASSERT_TRUE(after) << describe(after.error());
  EXPECT_TRUE(after->ok()) << after->problems.front();
}

TEST(StoreDamage, DamagedAcknowledgementMarkRefusesUntilRepaired) {
  test::temp_dir tmp;
  auto dir = make_filled_store(tmp);
  auto mark = fs::path{dir} / "ACKED";
  ASSERT_TRUE(fs::exists(mark));
  flip(mark.string(), 10, 4);
  for (bool read_only : {true, false}) {
    auto opened = event_store::open(store_options{.dir = dir,
                                                  .read_only = read_only});
    ASSERT_FALSE(opened);
    EXPECT_EQ(code_of(opened.error()), errc::storage_error);
    EXPECT_NE(message_of(opened.error()).find("acknowledgement mark"),
              std::string::npos)
      << describe(opened.error());
  }
  auto checked = check_store(dir);
  ASSERT_TRUE(checked);
  EXPECT_FALSE(checked->ok());
  auto repaired = repair_store(dir);
  ASSERT_TRUE(repaired) << describe(repaired.error());
  ASSERT_EQ(repaired->lost.size(), 1u);
  expect_full_or_refused(dir, false);
  auto store = open_store(dir);
  ASSERT_TRUE(store);
  auto list = store->list(execution_filter{});
  ASSERT_TRUE(list);
  EXPECT_EQ(list->size(), 3u);
}

TEST(StoreDamage, DamagedTableFileIsAStorageErrorNeverFewerExecutions) {
  for (int where = 0; where < 6; ++where) {
    SCOPED_TRACE("damage " + std::to_string(where));
    test::temp_dir tmp;
    auto dir = make_filled_store(tmp);
    // Every table file, damaged at the start, middle and end (the meta
    // blocks and index a reader opens first).
    for (auto& table : files_of(dir, ".sst")) {
      auto size = fs::file_size(table);
      ASSERT_GT(size, 200u);
      uint64_t offset = where % 3 == 0 ? 0
                        : where % 3 == 1 ? size / 2
                                         : size - 120;
      if (where >= 3 && table != files_of(dir, ".sst").front())
        continue; // only the largest (the events)
      flip(table, offset, 64);
    }
    expect_full_or_refused(dir, true);
    expect_full_or_refused(dir, false);
  }
}

TEST(StoreDamage, CheckFindsDamagedTablesAndRepairSalvagesTheRest) {
  test::temp_dir tmp;
  auto dir = make_filled_store(tmp);
  auto whole = check_store(dir);
  ASSERT_TRUE(whole) << describe(whole.error());
  EXPECT_TRUE(whole->ok()) << whole->problems.front();
  EXPECT_EQ(whole->executions, 3u);
  EXPECT_EQ(whole->events, 60u);
  EXPECT_GT(whole->table_files, 0u);

  auto tables = files_of(dir, ".sst");
  ASSERT_FALSE(tables.empty());
  flip(tables.front(), fs::file_size(tables.front()) / 2, 64);
  auto damaged = check_store(dir);
  ASSERT_TRUE(damaged) << describe(damaged.error());
  EXPECT_FALSE(damaged->ok());

  auto repaired = repair_store(dir);
  ASSERT_TRUE(repaired) << describe(repaired.error());
  EXPECT_FALSE(repaired->lost_files.empty());
  // The repaired store opens and answers; the events table was set aside,
  // so the index now names executions whose logs are gone, which check
  // reports (the CLI's repair rebuilds the index).
  auto store = open_store(dir);
  ASSERT_TRUE(store);
  auto list = store->list(execution_filter{});
  ASSERT_TRUE(list) << describe(list.error());
  store.reset();
  auto after = check_store(dir);
  ASSERT_TRUE(after) << describe(after.error());
  EXPECT_EQ(after->table_files > 0, true);
}

TEST(StoreDamage, FullDiskIsAStorageErrorAndWritesGoOnOnceSpaceIsFreed) {
  test::small_disk disk{"8m"};
  if (!disk.mounted())
    GTEST_SKIP() << disk.error();
  const auto& mnt = disk.path();
  auto dir = mnt + "/db";
  auto opened = event_store::open(
    store_options{.dir = dir, .min_free_bytes = 2 << 20});
  ASSERT_TRUE(opened) << describe(opened.error());
  auto& store = **opened;
  ASSERT_TRUE(store.append(make_request("before", 5)));
  // Fill the disk up to its last MiB.
  auto filler = mnt + "/filler";
  {
    std::ofstream out{filler, std::ios::binary};
    std::string block(64 << 10, 'f');
    while (fs::space(mnt).available > (1 << 20))
      out.write(block.data(), static_cast<std::streamsize>(block.size()))
        .flush();
  }
  auto refused = store.append(make_request("big", 1, 100));
  ASSERT_FALSE(refused) << "an append was acknowledged on a full disk";
  EXPECT_EQ(code_of(refused.error()), errc::storage_error)
    << describe(refused.error());
  EXPECT_NE(message_of(refused.error()).find(dir), std::string::npos)
    << describe(refused.error());
  EXPECT_NE(message_of(refused.error()).find("disk is full"),
            std::string::npos)
    << describe(refused.error());
  // Reads go on while the disk is full, and nothing was written.
  auto before = store.read("before", 1, 0);
  ASSERT_TRUE(before) << describe(before.error());
  EXPECT_EQ(before->size(), 5u);
  auto last = store.last_seq("big");
  ASSERT_TRUE(last);
  EXPECT_EQ(*last, 0u);
  // Space freed: the same append goes through.
  fs::remove(filler);
  auto res = store.append(make_request("big", 1, 100));
  ASSERT_TRUE(res) << describe(res.error());
  EXPECT_EQ(*res, 1u);
}

// RocksDB's own info logger aborts the process (an assertion Debian's build
// keeps) when it writes again after a write failed, which is what a flush
// on a full disk does first.
TEST(StoreDamage, FlushOnAFullDiskAtCloseLosesNothingAndDoesNotAbort) {
  test::small_disk disk{"64m"};
  if (!disk.mounted())
    GTEST_SKIP() << disk.error();
  const auto& mnt = disk.path();
  auto dir = mnt + "/db";
  std::mt19937 rng{7};
  {
    auto store = event_store::open(
      store_options{.dir = dir, .min_free_bytes = 1 << 20});
    ASSERT_TRUE(store) << describe(store.error());
    for (int i = 0; i < 30; ++i) {
      auto req = make_request("e" + std::to_string(i), 20);
      for (auto& ev : req.events)
        ev.payload = json{{"n", ev.seq}, {"pad", noise(rng, 10000)}};
      ASSERT_TRUE((*store)->append(req));
    }
    fill_disk(mnt, 0);
  } // the flush of ~6 MB of memtables fails on the full disk
  {
    // Reads go on; the WAL still holds everything.
    auto reader = open_store(dir, true);
    ASSERT_TRUE(reader);
    auto list = reader->list(execution_filter{});
    ASSERT_TRUE(list) << describe(list.error());
    EXPECT_EQ(list->size(), 30u);
  }
  {
    // A writer's open flushes what the WAL holds: it fails or goes through,
    // never with less.
    auto writer = event_store::open(store_options{.dir = dir});
    if (!writer) {
      EXPECT_EQ(code_of(writer.error()), errc::storage_error)
        << describe(writer.error());
      EXPECT_NE(message_of(writer.error()).find(dir), std::string::npos)
        << describe(writer.error());
    }
  }
  fs::remove(mnt + "/filler");
  auto store = event_store::open(
    store_options{.dir = dir, .min_free_bytes = 1 << 20});
  ASSERT_TRUE(store) << describe(store.error());
  for (int i = 0; i < 30; ++i) {
    auto evs = (*store)->read("e" + std::to_string(i), 1, 0);
    ASSERT_TRUE(evs) << describe(evs.error());
    EXPECT_EQ(evs->size(), 20u) << i;
  }
  auto after = (*store)->append(make_request("after", 1));
  EXPECT_TRUE(after) << describe(after.error());
}

namespace {

/// A background flush fails on a disk with `leave` bytes free: writes are
/// refused, reads go on, and writes go on once space is freed.
void background_flush_on_a_full_disk(uint64_t leave) {
  // RocksDB resumes once its largest memtable (64 MiB) fits on the disk.
  test::small_disk disk{"160m"};
  if (!disk.mounted())
    GTEST_SKIP() << disk.error();
  const auto& mnt = disk.path();
  auto dir = mnt + "/db";
  std::mt19937 rng{11};
  auto opened = event_store::open(
    store_options{.dir = dir, .min_free_bytes = 256 << 10});
  ASSERT_TRUE(opened) << describe(opened.error());
  auto& store = **opened;
  // Index entries of 200 KB: the index's 8 MiB memtable is flushed in the
  // background after about 40 of them.
  auto entry = [&](int i) {
    auto req = make_request("x" + std::to_string(i), 1);
    req.index.front().output = json{{"pad", noise(rng, 200'000)}};
    return req;
  };
  int next = 0;
  for (; next < 36; ++next)
    ASSERT_TRUE(store.append(entry(next)));
  // Room for the WAL to grow up to or past the memtable's size, none for
  // the table file its flush writes.
  fill_disk(mnt, leave);
  std::optional<append_request> refused;
  for (; next < 80 && !refused; ++next) {
    auto req = entry(next);
    auto res = store.append(req);
    if (res)
      continue;
    // Not acknowledged, and said so plainly.
    auto code = code_of(res.error());
    EXPECT_TRUE(code == errc::storage_error || code == errc::unavailable)
      << describe(res.error());
    EXPECT_NE(message_of(res.error()).find(dir), std::string::npos)
      << describe(res.error());
    refused = std::move(req);
  }
  ASSERT_TRUE(refused) << "appends of 200 KB on a full disk went through";
  // Reads go on.
  auto first = store.read("x0", 1, 0);
  ASSERT_TRUE(first) << describe(first.error());
  EXPECT_EQ(first->size(), 1u);
  auto list = store.list(execution_filter{});
  ASSERT_TRUE(list) << describe(list.error());
  EXPECT_EQ(list->size(), static_cast<size_t>(next - 1));
  // Space freed: the refused append goes through once RocksDB has resumed
  // (it polls for free space every 5 s; unavailable meanwhile).
  fs::remove(mnt + "/filler");
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds{60};
  expected<uint64_t> res = make_error(errc::unavailable, "not tried");
  while (std::chrono::steady_clock::now() < deadline) {
    res = store.append(*refused);
    if (res || code_of(res.error()) != errc::unavailable)
      break;
    std::this_thread::sleep_for(std::chrono::milliseconds{200});
  }
  ASSERT_TRUE(res) << describe(res.error());
  auto back = store.read(refused->events.front().execution_id, 1, 0);
  ASSERT_TRUE(back) << describe(back.error());
  EXPECT_EQ(back->size(), 1u);
}

} // namespace

TEST(StoreDamage, BackgroundFlushOnAFullDiskFailsWritesUntilSpaceIsFreed) {
  // 3 MiB left: a write meets the failed flush. 600 KB: the free-space
  // check refuses the writes after the flush failed, so the first write
  // after space is freed is the first to meet it.
  for (uint64_t leave : {uint64_t{3} << 20, uint64_t{600'000}}) {
    SCOPED_TRACE("left free: " + std::to_string(leave));
    background_flush_on_a_full_disk(leave);
  }
}
