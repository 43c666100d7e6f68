// A read-only event store beside a live writer: it sees what the writer
// committed at open() and at each refresh(), rejects writes, and never
// creates a store. The writer is opened in the same test, which takes the
// same path through RocksDB as a writer in another process.

#include "cadre/persistence/event_store.hpp"

#include <unistd.h>

#include <cstdint>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "temp_dir.hpp"

using namespace cadre;
using namespace cadre::persistence;

namespace {

/// A request with events `from` .. `from + count - 1` of `id` and its index
/// entry with `status`.
append_request make_request(const std::string& id, uint64_t from,
                            uint64_t count, const std::string& status) {
  append_request req;
  for (uint64_t i = 0; i < count; ++i) {
    auto& ev = req.events.emplace_back();
    ev.execution_id = id;
    ev.seq = from + i;
    ev.time_us = 1'000'000 + static_cast<int64_t>(from + i);
    ev.type = "step";
    ev.payload = json{{"n", from + i}};
  }
  auto& info = req.index.emplace_back();
  info.id = id;
  info.workflow = "wf";
  info.version = "1";
  info.status = status;
  info.created_us = 1'000'000;
  info.updated_us = 1'000'000 + static_cast<int64_t>(from + count);
  info.last_seq = from + count - 1;
  return req;
}

std::unique_ptr<event_store> open_writer(const std::string& dir) {
  auto store = event_store::open(store_options{.dir = dir});
  if (!store) {
    ADD_FAILURE() << describe(store.error());
    return nullptr;
  }
  return std::move(*store);
}

std::unique_ptr<event_store> open_reader(const std::string& dir) {
  auto store = event_store::open(store_options{.dir = dir, .read_only = true});
  if (!store) {
    ADD_FAILURE() << describe(store.error());
    return nullptr;
  }
  return std::move(*store);
}

std::vector<uint64_t> seqs_of(const event_store& store,
                              const std::string& id) {
  std::vector<uint64_t> out;
  auto evs = store.read(id, 1, 0);
  if (!evs) {
    ADD_FAILURE() << describe(evs.error());
    return out;
  }
  for (const auto& ev : *evs)
    out.push_back(ev.seq);
  return out;
}

std::string status_of(const event_store& store, const std::string& id) {
  auto info = store.get(id);
  if (!info) {
    ADD_FAILURE() << describe(info.error());
    return {};
  }
  return info->status;
}

/// Directories this process's read-only stores keep under the temp dir.
size_t secondary_dirs() {
  auto prefix = "cadre-secondary-" + std::to_string(::getpid()) + "-";
  size_t n = 0;
  for (const auto& entry : std::filesystem::directory_iterator{
         std::filesystem::temp_directory_path()})
    if (entry.path().filename().string().rfind(prefix, 0) == 0)
      ++n;
  return n;
}

} // namespace

TEST(ReadOnlyStore, SeesWhatALiveWriterAppendsAfterRefresh) {
  test::temp_dir tmp;
  auto writer = open_writer(tmp.str());
  ASSERT_NE(writer, nullptr);
  ASSERT_TRUE(writer->append(make_request("e1", 1, 3, "running")));
  auto reader = open_reader(tmp.str());
  ASSERT_NE(reader, nullptr);
  EXPECT_TRUE(reader->read_only());
  EXPECT_EQ(seqs_of(*reader, "e1"), (std::vector<uint64_t>{1, 2, 3}));
  EXPECT_EQ(status_of(*reader, "e1"), "running");
  // Appended after the reader opened, while the writer still holds the
  // store: visible after a refresh.
  ASSERT_TRUE(writer->append(make_request("e1", 4, 2, "completed")));
  ASSERT_TRUE(writer->append(make_request("e2", 1, 1, "running")));
  auto refreshed = reader->refresh();
  ASSERT_TRUE(refreshed) << describe(refreshed.error());
  EXPECT_EQ(seqs_of(*reader, "e1"), (std::vector<uint64_t>{1, 2, 3, 4, 5}));
  EXPECT_EQ(status_of(*reader, "e1"), "completed");
  auto last = reader->last_seq("e1");
  ASSERT_TRUE(last) << describe(last.error());
  EXPECT_EQ(*last, 5u);
  auto list = reader->list(execution_filter{});
  ASSERT_TRUE(list) << describe(list.error());
  ASSERT_EQ(list->size(), 2u);
  auto running = reader->list(execution_filter{.status = "running"});
  ASSERT_TRUE(running) << describe(running.error());
  ASSERT_EQ(running->size(), 1u);
  EXPECT_EQ(running->front().id, "e2");
}

TEST(ReadOnlyStore, FollowsTheWriterAcrossItsRestart) {
  test::temp_dir tmp;
  auto writer = open_writer(tmp.str());
  ASSERT_NE(writer, nullptr);
  ASSERT_TRUE(writer->append(make_request("e", 1, 2, "running")));
  auto reader = open_reader(tmp.str());
  ASSERT_NE(reader, nullptr);
  // Reopening recovers the WAL into a table file and starts a new WAL: the
  // reader must follow the MANIFEST as well as the log.
  writer.reset();
  writer = open_writer(tmp.str());
  ASSERT_NE(writer, nullptr);
  ASSERT_TRUE(writer->append(make_request("e", 3, 2, "completed")));
  ASSERT_TRUE(reader->refresh());
  EXPECT_EQ(seqs_of(*reader, "e"), (std::vector<uint64_t>{1, 2, 3, 4}));
  EXPECT_EQ(status_of(*reader, "e"), "completed");
}

TEST(ReadOnlyStore, OpensAStoreNoProcessHolds) {
  test::temp_dir tmp;
  {
    auto writer = open_writer(tmp.str());
    ASSERT_NE(writer, nullptr);
    ASSERT_TRUE(writer->append(make_request("e", 1, 3, "waiting")));
  }
  auto reader = open_reader(tmp.str());
  ASSERT_NE(reader, nullptr);
  EXPECT_EQ(seqs_of(*reader, "e"), (std::vector<uint64_t>{1, 2, 3}));
  EXPECT_EQ(status_of(*reader, "e"), "waiting");
  // Nothing new: refresh succeeds and changes nothing.
  ASSERT_TRUE(reader->refresh());
  EXPECT_EQ(seqs_of(*reader, "e"), (std::vector<uint64_t>{1, 2, 3}));
  // Two readers at once, and a writer after them.
  auto second = open_reader(tmp.str());
  ASSERT_NE(second, nullptr);
  EXPECT_EQ(seqs_of(*second, "e"), (std::vector<uint64_t>{1, 2, 3}));
  auto writer = open_writer(tmp.str());
  ASSERT_NE(writer, nullptr);
}

TEST(ReadOnlyStore, WritesAreInvalidInput) {
  test::temp_dir tmp;
  { ASSERT_NE(open_writer(tmp.str()), nullptr); }
  auto reader = open_reader(tmp.str());
  ASSERT_NE(reader, nullptr);
  auto one = reader->append(make_request("e", 1, 1, "running"));
  ASSERT_FALSE(one);
  EXPECT_EQ(code_of(one.error()), errc::invalid_input);
  EXPECT_NE(message_of(one.error()).find("read-only"), std::string::npos);
  std::vector<append_request> group{make_request("a", 1, 1, "running"),
                                    make_request("b", 1, 1, "running")};
  auto results = reader->append_group(group);
  ASSERT_EQ(results.size(), 2u);
  for (const auto& result : results) {
    ASSERT_FALSE(result);
    EXPECT_EQ(code_of(result.error()), errc::invalid_input);
  }
  definition_record def;
  def.name = "wf";
  def.version = "1";
  def.document = json{{"name", "wf"}};
  auto put = reader->put_definition(def);
  ASSERT_FALSE(put);
  EXPECT_EQ(code_of(put.error()), errc::invalid_input);
  EXPECT_NE(message_of(put.error()).find("read-only"), std::string::npos);
  // Nothing was written.
  auto writer = open_writer(tmp.str());
  ASSERT_NE(writer, nullptr);
  EXPECT_TRUE(seqs_of(*writer, "e").empty());
  EXPECT_FALSE(writer->read_only());
  EXPECT_TRUE(writer->refresh());
}

TEST(ReadOnlyStore, MissingDirectoryIsNotFoundAndNotCreated) {
  test::temp_dir tmp;
  auto dir = tmp / "nowhere";
  auto store = event_store::open(store_options{.dir = dir, .read_only = true});
  ASSERT_FALSE(store);
  EXPECT_EQ(code_of(store.error()), errc::not_found);
  EXPECT_NE(message_of(store.error()).find("no cadre store at"),
            std::string::npos);
  EXPECT_NE(message_of(store.error()).find(dir), std::string::npos);
  EXPECT_FALSE(std::filesystem::exists(dir));
}

TEST(ReadOnlyStore, DirectoryWithoutAStoreIsNotFound) {
  test::temp_dir tmp;
  auto store = event_store::open(
    store_options{.dir = tmp.str(), .read_only = true});
  ASSERT_FALSE(store);
  EXPECT_EQ(code_of(store.error()), errc::not_found);
  EXPECT_NE(message_of(store.error()).find(tmp.str()), std::string::npos);
  EXPECT_TRUE(std::filesystem::is_empty(tmp.path()));
}

TEST(ReadOnlyStore, RemovesItsPrivateDirectoryOnClose) {
  test::temp_dir tmp;
  auto writer = open_writer(tmp.str());
  ASSERT_NE(writer, nullptr);
  auto before = secondary_dirs();
  {
    auto reader = open_reader(tmp.str());
    ASSERT_NE(reader, nullptr);
    EXPECT_EQ(secondary_dirs(), before + 1);
  }
  EXPECT_EQ(secondary_dirs(), before);
  // Nothing was left in the store's own directory either.
  for (const auto& entry : std::filesystem::directory_iterator{tmp.path()})
    EXPECT_EQ(entry.path().filename().string().find("secondary"),
              std::string::npos)
      << entry.path();
}
