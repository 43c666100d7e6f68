#include "cadre/persistence/event_store.hpp"

#include <cstdint>
#include <filesystem>
#include <fstream>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>
#include <rocksdb/db.h>

#include "cadre/persistence/codec.hpp"
#include "temp_dir.hpp"

using namespace cadre;
using namespace cadre::persistence;

namespace {

event make_event(const std::string& id, uint64_t seq,
                 const std::string& type = "step") {
  event ev;
  ev.execution_id = id;
  ev.seq = seq;
  ev.time_us = 1'000'000 + static_cast<int64_t>(seq);
  ev.type = type;
  ev.payload = json{{"n", seq}, {"id", id}};
  return ev;
}

/// A request with events `from` .. `from + count - 1` of `id`.
append_request make_request(const std::string& id, uint64_t from,
                            uint64_t count = 1) {
  append_request req;
  for (uint64_t i = 0; i < count; ++i)
    req.events.push_back(make_event(id, from + i));
  return req;
}

execution_info make_info(const std::string& id, const std::string& workflow,
                         const std::string& status, int64_t created_us) {
  execution_info info;
  info.id = id;
  info.workflow = workflow;
  info.version = "1";
  info.status = status;
  info.created_us = created_us;
  info.updated_us = created_us;
  return info;
}

std::unique_ptr<event_store> open_store(const std::string& dir,
                                        bool sync = false) {
  auto store = event_store::open(store_options{.dir = dir, .sync = sync});
  if (!store) {
    ADD_FAILURE() << describe(store.error());
    return nullptr;
  }
  return std::move(*store);
}

std::vector<uint64_t> seqs(const std::vector<event>& events) {
  std::vector<uint64_t> out;
  for (const auto& ev : events)
    out.push_back(ev.seq);
  return out;
}

/// Writes `value` under `key` in column family `cf` of the closed store at
/// `dir`, bypassing the event store, to simulate corruption on disk.
void write_raw(const std::string& dir, const std::string& cf,
               const std::string& key, const std::string& value) {
  rocksdb::DBOptions opts;
  std::vector<std::string> names;
  ASSERT_TRUE(rocksdb::DB::ListColumnFamilies(opts, dir, &names).ok());
  std::vector<rocksdb::ColumnFamilyDescriptor> descriptors;
  for (auto& name : names)
    descriptors.emplace_back(name, rocksdb::ColumnFamilyOptions{});
  std::vector<rocksdb::ColumnFamilyHandle*> handles;
  rocksdb::DB* raw = nullptr;
  ASSERT_TRUE(
    rocksdb::DB::Open(opts, dir, descriptors, &handles, &raw).ok());
  std::unique_ptr<rocksdb::DB> db{raw};
  rocksdb::ColumnFamilyHandle* target = nullptr;
  for (size_t i = 0; i < names.size(); ++i)
    if (names[i] == cf)
      target = handles[i];
  ASSERT_NE(target, nullptr) << "no column family " << cf;
  EXPECT_TRUE(db->Put(rocksdb::WriteOptions{}, target, key, value).ok());
  for (auto* handle : handles)
    EXPECT_TRUE(db->DestroyColumnFamilyHandle(handle).ok());
  EXPECT_TRUE(db->Close().ok());
}

} // namespace

TEST(EventStore, OpenCreatesMissingDirectories) {
  test::temp_dir tmp;
  auto dir = tmp / "a/b/store";
  auto store = open_store(dir);
  ASSERT_NE(store, nullptr);
  EXPECT_TRUE(std::filesystem::is_directory(dir));
}

TEST(EventStore, OpenOnAFileIsStorageError) {
  test::temp_dir tmp;
  auto file = tmp / "file";
  { std::ofstream{file} << "not a database"; }
  auto store = event_store::open(store_options{.dir = file});
  ASSERT_FALSE(store);
  EXPECT_EQ(code_of(store.error()), errc::storage_error);
  EXPECT_NE(message_of(store.error()).find(file), std::string::npos);
}

TEST(EventStore, AppendThenReadReturnsEventsInOrder) {
  test::temp_dir tmp;
  auto store = open_store(tmp.str());
  ASSERT_NE(store, nullptr);
  auto last = store->append(make_request("e1", 1, 5));
  ASSERT_TRUE(last) << describe(last.error());
  EXPECT_EQ(*last, 5u);
  auto all = store->read("e1", 0, 0);
  ASSERT_TRUE(all) << describe(all.error());
  EXPECT_EQ(seqs(*all), (std::vector<uint64_t>{1, 2, 3, 4, 5}));
  const auto& third = (*all)[2];
  EXPECT_EQ(third.execution_id, "e1");
  EXPECT_EQ(third.time_us, 1'000'003);
  EXPECT_EQ(third.type, "step");
  EXPECT_EQ(third.payload, json_value{json({{"n", 3}, {"id", "e1"}})});
  auto page = store->read("e1", 3, 2);
  ASSERT_TRUE(page);
  EXPECT_EQ(seqs(*page), (std::vector<uint64_t>{3, 4}));
  auto tail = store->read("e1", 5, 10);
  ASSERT_TRUE(tail);
  EXPECT_EQ(seqs(*tail), (std::vector<uint64_t>{5}));
  auto past = store->read("e1", 6, 0);
  ASSERT_TRUE(past);
  EXPECT_TRUE(past->empty());
  auto last_seq = store->last_seq("e1");
  ASSERT_TRUE(last_seq);
  EXPECT_EQ(*last_seq, 5u);
}

TEST(EventStore, ReadingUnknownExecutionGivesEmpty) {
  test::temp_dir tmp;
  auto store = open_store(tmp.str());
  ASSERT_NE(store, nullptr);
  ASSERT_TRUE(store->append(make_request("known", 1, 2)));
  auto got = store->read("unknown", 0, 0);
  ASSERT_TRUE(got) << describe(got.error());
  EXPECT_TRUE(got->empty());
  auto last = store->last_seq("unknown");
  ASSERT_TRUE(last);
  EXPECT_EQ(*last, 0u);
  auto empty_id = store->read("", 0, 0);
  ASSERT_TRUE(empty_id);
  EXPECT_TRUE(empty_id->empty());
}

TEST(EventStore, ReadStaysInsideItsExecution) {
  test::temp_dir tmp;
  auto store = open_store(tmp.str());
  ASSERT_NE(store, nullptr);
  // "a" is a prefix of the others' ids; 300 events cross seq 255/256.
  std::vector<append_request> group{make_request("a", 1, 300),
                                     make_request("a1", 1, 3),
                                     make_request("ab", 1, 2)};
  for (const auto& result : store->append_group(group))
    ASSERT_TRUE(result) << describe(result.error());
  auto a = store->read("a", 0, 0);
  ASSERT_TRUE(a);
  ASSERT_EQ(a->size(), 300u);
  for (size_t i = 0; i < a->size(); ++i) {
    EXPECT_EQ((*a)[i].execution_id, "a");
    EXPECT_EQ((*a)[i].seq, i + 1);
  }
  auto from_255 = store->read("a", 255, 3);
  ASSERT_TRUE(from_255);
  EXPECT_EQ(seqs(*from_255), (std::vector<uint64_t>{255, 256, 257}));
  auto a1 = store->read("a1", 0, 0);
  ASSERT_TRUE(a1);
  EXPECT_EQ(seqs(*a1), (std::vector<uint64_t>{1, 2, 3}));
  auto last = store->last_seq("a");
  ASSERT_TRUE(last);
  EXPECT_EQ(*last, 300u);
}

TEST(EventStore, ReopenKeepsDataAndDenseSequence) {
  test::temp_dir tmp;
  {
    auto store = open_store(tmp.str());
    ASSERT_NE(store, nullptr);
    ASSERT_TRUE(store->append(make_request("e", 1, 3)));
  }
  auto store = open_store(tmp.str());
  ASSERT_NE(store, nullptr);
  auto last = store->last_seq("e");
  ASSERT_TRUE(last);
  EXPECT_EQ(*last, 3u);
  // The sequence check reloads the last seq from disk after a reopen.
  auto dup = store->append(make_request("e", 3));
  ASSERT_FALSE(dup);
  EXPECT_EQ(code_of(dup.error()), errc::conflict);
  auto next = store->append(make_request("e", 4));
  ASSERT_TRUE(next) << describe(next.error());
  EXPECT_EQ(*next, 4u);
  auto all = store->read("e", 0, 0);
  ASSERT_TRUE(all);
  EXPECT_EQ(seqs(*all), (std::vector<uint64_t>{1, 2, 3, 4}));
}

TEST(EventStore, GapIsConflictWhileOtherRequestsOfTheGroupSucceed) {
  test::temp_dir tmp;
  auto store = open_store(tmp.str());
  ASSERT_NE(store, nullptr);
  auto gap = make_request("b", 2);
  gap.index.push_back(make_info("b", "wf", "running", 1));
  gap.idempotency_key = "key-b";
  std::vector<append_request> group{make_request("a", 1, 2), gap,
                                     make_request("c", 1)};
  auto results = store->append_group(group);
  ASSERT_EQ(results.size(), 3u);
  ASSERT_TRUE(results[0]) << describe(results[0].error());
  EXPECT_EQ(*results[0], 2u);
  ASSERT_FALSE(results[1]);
  EXPECT_EQ(code_of(results[1].error()), errc::conflict);
  auto msg = message_of(results[1].error());
  EXPECT_NE(msg.find("'b'"), std::string::npos) << msg;
  EXPECT_NE(msg.find("expected seq 1"), std::string::npos) << msg;
  EXPECT_NE(msg.find("got 2"), std::string::npos) << msg;
  ASSERT_TRUE(results[2]) << describe(results[2].error());
  EXPECT_EQ(*results[2], 1u);
  // Nothing of the rejected request was written.
  auto b = store->read("b", 0, 0);
  ASSERT_TRUE(b);
  EXPECT_TRUE(b->empty());
  auto info = store->get("b");
  ASSERT_FALSE(info);
  EXPECT_EQ(code_of(info.error()), errc::not_found);
  auto owner = store->find_by_idempotency_key("key-b");
  ASSERT_TRUE(owner);
  EXPECT_EQ(*owner, "");
  auto a = store->read("a", 0, 0);
  ASSERT_TRUE(a);
  EXPECT_EQ(seqs(*a), (std::vector<uint64_t>{1, 2}));
}

TEST(EventStore, DuplicateIsConflictWhileOtherRequestsOfTheGroupSucceed) {
  test::temp_dir tmp;
  auto store = open_store(tmp.str());
  ASSERT_NE(store, nullptr);
  ASSERT_TRUE(store->append(make_request("a", 1, 3)));
  std::vector<append_request> group{make_request("a", 3),
                                     make_request("a", 4),
                                     make_request("z", 1)};
  group[0].events[0].type = "duplicate";
  auto results = store->append_group(group);
  ASSERT_EQ(results.size(), 3u);
  ASSERT_FALSE(results[0]);
  EXPECT_EQ(code_of(results[0].error()), errc::conflict);
  auto msg = message_of(results[0].error());
  EXPECT_NE(msg.find("expected seq 4, got 3"), std::string::npos) << msg;
  ASSERT_TRUE(results[1]) << describe(results[1].error());
  EXPECT_EQ(*results[1], 4u);
  ASSERT_TRUE(results[2]);
  auto a = store->read("a", 0, 0);
  ASSERT_TRUE(a);
  EXPECT_EQ(seqs(*a), (std::vector<uint64_t>{1, 2, 3, 4}));
  for (const auto& ev : *a)
    EXPECT_EQ(ev.type, "step");
}

TEST(EventStore, GroupAccountsForEarlierRequestsOfTheSameGroup) {
  test::temp_dir tmp;
  auto store = open_store(tmp.str());
  ASSERT_NE(store, nullptr);
  std::vector<append_request> group{make_request("e", 1, 2),
                                     make_request("e", 3, 2),
                                     make_request("e", 5),
                                     make_request("e", 5),
                                     make_request("e", 6)};
  auto results = store->append_group(group);
  ASSERT_EQ(results.size(), 5u);
  ASSERT_TRUE(results[0]);
  EXPECT_EQ(*results[0], 2u);
  ASSERT_TRUE(results[1]);
  EXPECT_EQ(*results[1], 4u);
  ASSERT_TRUE(results[2]);
  EXPECT_EQ(*results[2], 5u);
  ASSERT_FALSE(results[3]);
  EXPECT_EQ(code_of(results[3].error()), errc::conflict);
  ASSERT_TRUE(results[4]);
  EXPECT_EQ(*results[4], 6u);
  auto last = store->last_seq("e");
  ASSERT_TRUE(last);
  EXPECT_EQ(*last, 6u);
}

TEST(EventStore, EventsOfOneRequestMustBeConsecutive) {
  test::temp_dir tmp;
  auto store = open_store(tmp.str());
  ASSERT_NE(store, nullptr);
  append_request req;
  req.events = {make_event("e", 1), make_event("e", 3)};
  auto got = store->append(req);
  ASSERT_FALSE(got);
  EXPECT_EQ(code_of(got.error()), errc::conflict);
  EXPECT_NE(message_of(got.error()).find("expected seq 2, got 3"),
            std::string::npos);
  // The request is all or nothing: event 1 was not written either.
  auto last = store->last_seq("e");
  ASSERT_TRUE(last);
  EXPECT_EQ(*last, 0u);
}

TEST(EventStore, RequestMayCarryEventsOfSeveralExecutions) {
  test::temp_dir tmp;
  auto store = open_store(tmp.str());
  ASSERT_NE(store, nullptr);
  append_request req;
  req.events = {make_event("x", 1), make_event("y", 1), make_event("x", 2)};
  auto got = store->append(req);
  ASSERT_TRUE(got) << describe(got.error());
  EXPECT_EQ(*got, 2u); // last seq of the first event's execution, "x"
  auto y = store->last_seq("y");
  ASSERT_TRUE(y);
  EXPECT_EQ(*y, 1u);
}

TEST(EventStore, InvalidExecutionIdIsInvalidInput) {
  test::temp_dir tmp;
  auto store = open_store(tmp.str());
  ASSERT_NE(store, nullptr);
  for (auto id : {std::string{}, std::string("a\0b", 3)}) {
    auto got = store->append(make_request(id, 1));
    ASSERT_FALSE(got);
    EXPECT_EQ(code_of(got.error()), errc::invalid_input);
  }
  auto read = store->read(std::string("a\0b", 3), 0, 0);
  ASSERT_FALSE(read);
  EXPECT_EQ(code_of(read.error()), errc::invalid_input);
}

TEST(EventStore, IndexEntriesAreUpsertedWhole) {
  test::temp_dir tmp;
  auto store = open_store(tmp.str());
  ASSERT_NE(store, nullptr);
  auto first = make_request("e", 1);
  auto info = make_info("e", "wf", "running", 10);
  info.output = json{{"partial", true}};
  info.error = "transient";
  first.index.push_back(info);
  ASSERT_TRUE(store->append(first));
  auto got = store->get("e");
  ASSERT_TRUE(got) << describe(got.error());
  EXPECT_EQ(got->status, "running");
  EXPECT_EQ(got->output, json_value{json({{"partial", true}})});
  auto second = make_request("e", 2);
  auto done = make_info("e", "wf", "completed", 10);
  done.updated_us = 20;
  done.last_seq = 2;
  second.index.push_back(done);
  ASSERT_TRUE(store->append(second));
  got = store->get("e");
  ASSERT_TRUE(got);
  EXPECT_EQ(got->status, "completed");
  EXPECT_EQ(got->updated_us, 20);
  EXPECT_EQ(got->last_seq, 2u);
  EXPECT_TRUE(got->output.is_null());
  EXPECT_EQ(got->error, "");
  EXPECT_TRUE(got->finished());
}

TEST(EventStore, EraseUnindexedRemovesALogButNeverAnIndexedExecution) {
  test::temp_dir tmp;
  auto store = open_store(tmp.str());
  ASSERT_NE(store, nullptr);
  // What a failed import wrote: a log without its index entry, beside a
  // log whose name it is a prefix of and a whole execution.
  ASSERT_TRUE(store->append(make_request("e", 1, 3000)));
  ASSERT_TRUE(store->append(make_request("e2", 1, 2)));
  auto whole = make_request("f", 1, 2);
  whole.index.push_back(make_info("f", "wf", "completed", 10));
  ASSERT_TRUE(store->append(whole));
  auto gone = store->erase_unindexed("e");
  ASSERT_TRUE(gone) << describe(gone.error());
  EXPECT_EQ(*gone, 3000u);
  EXPECT_EQ(*store->last_seq("e"), 0u);
  EXPECT_TRUE(store->read("e", 1, 0)->empty());
  EXPECT_EQ(seqs(*store->read("e2", 1, 0)), (std::vector<uint64_t>{1, 2}));
  EXPECT_EQ(*store->erase_unindexed("e"), 0u);
  // The log starts again from seq 1 (no stale last seq is remembered).
  EXPECT_FALSE(store->append(make_request("e", 3001)));
  ASSERT_TRUE(store->append(make_request("e", 1)));
  // An execution in the index stays whole.
  auto refused = store->erase_unindexed("f");
  ASSERT_FALSE(refused);
  EXPECT_EQ(code_of(refused.error()), errc::conflict);
  EXPECT_EQ(seqs(*store->read("f", 1, 0)), (std::vector<uint64_t>{1, 2}));
  EXPECT_TRUE(store->get("f"));
  EXPECT_EQ(code_of(store->erase_unindexed(std::string{"a\0b", 3}).error()),
            errc::invalid_input);
}

TEST(EventStore, EraseKilledImportsRemovesWhatTheirRecordsNameAndNoMore) {
  test::temp_dir tmp;
  auto store = open_store(tmp.str());
  ASSERT_NE(store, nullptr);
  // A record naming `log`, written with its first events as an import
  // writes it.
  auto created = [&](const std::string& id, uint64_t record_seq,
                     const std::string& log, uint64_t count) {
    auto req = make_request(log, 1, count);
    auto mark = make_event(std::string{import_record_prefix} + id, record_seq,
                           std::string{import_record_type});
    mark.payload = json{{"log", log}};
    req.events.insert(req.events.begin(), mark);
    return store->append(req);
  };
  // Killed half-way: its execution's log and one agent log written, no
  // index entry.
  ASSERT_TRUE(created("k", 1, "k", 1024));
  ASSERT_TRUE(created("k", 2, "agent:k/a", 3000));
  // Killed after its index entry, before its record went: all of it stays.
  ASSERT_TRUE(created("w", 1, "w", 5));
  ASSERT_TRUE(created("w", 2, "agent:w/a", 7));
  auto last = make_request("w", 6);
  last.index.push_back(make_info("w", "wf", "completed", 10));
  ASSERT_TRUE(store->append(last));
  // Unrelated: an execution and an agent log of the store's own, and a log
  // whose name the killed import's is a prefix of.
  auto other = make_request("o", 1, 2);
  other.index.push_back(make_info("o", "wf", "completed", 10));
  ASSERT_TRUE(store->append(other));
  ASSERT_TRUE(store->append(make_request("agent:o/a", 1, 4)));
  ASSERT_TRUE(store->append(make_request("k2", 1, 2)));
  auto gone = store->erase_killed_imports();
  ASSERT_TRUE(gone) << describe(gone.error());
  ASSERT_EQ(gone->size(), 2u);
  EXPECT_EQ((*gone)[0], "import of execution 'k' was killed half-way: "
                        "removed 4024 events of 'k', 'agent:k/a'");
  EXPECT_NE((*gone)[1].find("'w'"), std::string::npos) << (*gone)[1];
  EXPECT_EQ(*store->last_seq("k"), 0u);
  EXPECT_EQ(*store->last_seq("agent:k/a"), 0u);
  EXPECT_EQ(*store->last_seq("import:k"), 0u);
  EXPECT_EQ(*store->last_seq("import:w"), 0u);
  EXPECT_EQ(*store->last_seq("w"), 6u);
  EXPECT_EQ(*store->last_seq("agent:w/a"), 7u);
  EXPECT_EQ(*store->last_seq("o"), 2u);
  EXPECT_EQ(*store->last_seq("agent:o/a"), 4u);
  EXPECT_EQ(*store->last_seq("k2"), 2u);
  EXPECT_TRUE(store->get("w"));
  // Nothing is left to do the next time.
  auto again = store->erase_killed_imports();
  ASSERT_TRUE(again);
  EXPECT_TRUE(again->empty());
}

TEST(EventStore, GetUnknownExecutionIsNotFound) {
  test::temp_dir tmp;
  auto store = open_store(tmp.str());
  ASSERT_NE(store, nullptr);
  auto got = store->get("nope");
  ASSERT_FALSE(got);
  EXPECT_EQ(code_of(got.error()), errc::not_found);
  EXPECT_NE(message_of(got.error()).find("nope"), std::string::npos);
}

TEST(EventStore, ListFiltersByStatusAndWorkflowNewestFirst) {
  test::temp_dir tmp;
  auto store = open_store(tmp.str());
  ASSERT_NE(store, nullptr);
  append_request req;
  req.index = {make_info("e1", "ocr", "completed", 100),
               make_info("e2", "ocr", "running", 300),
               make_info("e3", "airflow", "running", 200),
               make_info("e4", "ocr", "completed", 400),
               make_info("e5", "ocr", "failed", 50)};
  ASSERT_TRUE(store->append(req));
  auto ids = [](const std::vector<execution_info>& xs) {
    std::vector<std::string> out;
    for (const auto& x : xs)
      out.push_back(x.id);
    return out;
  };
  auto all = store->list(execution_filter{});
  ASSERT_TRUE(all) << describe(all.error());
  EXPECT_EQ(ids(*all),
            (std::vector<std::string>{"e4", "e2", "e3", "e1", "e5"}));
  auto running = store->list(execution_filter{.status = "running"});
  ASSERT_TRUE(running);
  EXPECT_EQ(ids(*running), (std::vector<std::string>{"e2", "e3"}));
  auto ocr = store->list(execution_filter{.workflow = "ocr"});
  ASSERT_TRUE(ocr);
  EXPECT_EQ(ids(*ocr), (std::vector<std::string>{"e4", "e2", "e1", "e5"}));
  auto ocr_done = store->list(
    execution_filter{.status = "completed", .workflow = "ocr"});
  ASSERT_TRUE(ocr_done);
  EXPECT_EQ(ids(*ocr_done), (std::vector<std::string>{"e4", "e1"}));
  auto newest_two = store->list(execution_filter{.limit = 2});
  ASSERT_TRUE(newest_two);
  EXPECT_EQ(ids(*newest_two), (std::vector<std::string>{"e4", "e2"}));
  auto none = store->list(execution_filter{.status = "cancelled"});
  ASSERT_TRUE(none);
  EXPECT_TRUE(none->empty());
}

TEST(EventStore, IdempotencyKeyFindsItsExecution) {
  test::temp_dir tmp;
  auto store = open_store(tmp.str());
  ASSERT_NE(store, nullptr);
  auto req = make_request("exec-7", 1);
  req.idempotency_key = "order-42";
  ASSERT_TRUE(store->append(req));
  auto found = store->find_by_idempotency_key("order-42");
  ASSERT_TRUE(found) << describe(found.error());
  EXPECT_EQ(*found, "exec-7");
  auto unknown = store->find_by_idempotency_key("order-43");
  ASSERT_TRUE(unknown);
  EXPECT_EQ(*unknown, "");
  // The same key for the same execution is fine; for another is a conflict.
  auto again = make_request("exec-7", 2);
  again.idempotency_key = "order-42";
  EXPECT_TRUE(store->append(again));
  auto other = make_request("exec-8", 1);
  other.idempotency_key = "order-42";
  auto got = store->append(other);
  ASSERT_FALSE(got);
  EXPECT_EQ(code_of(got.error()), errc::conflict);
  found = store->find_by_idempotency_key("order-42");
  ASSERT_TRUE(found);
  EXPECT_EQ(*found, "exec-7");
}

TEST(EventStore, IdempotencyKeySurvivesReopen) {
  test::temp_dir tmp;
  {
    auto store = open_store(tmp.str());
    ASSERT_NE(store, nullptr);
    auto req = make_request("exec-1", 1);
    req.idempotency_key = "k";
    ASSERT_TRUE(store->append(req));
  }
  auto store = open_store(tmp.str());
  ASSERT_NE(store, nullptr);
  auto found = store->find_by_idempotency_key("k");
  ASSERT_TRUE(found);
  EXPECT_EQ(*found, "exec-1");
}

TEST(EventStore, DefinitionsPickTheGreatestVersion) {
  test::temp_dir tmp;
  auto store = open_store(tmp.str());
  ASSERT_NE(store, nullptr);
  auto put = [&](const std::string& name, const std::string& version) {
    auto res = store->put_definition(
      definition_record{name, version, json{{"v", version}}});
    ASSERT_TRUE(res) << describe(res.error());
  };
  put("num", "9");
  put("num", "10");
  put("num", "2");
  put("dotted", "1.2");
  put("dotted", "1.10");
  put("text", "beta");
  put("text", "alpha");
  put("num-extra", "100"); // shares a prefix with "num"
  auto latest = [&](const std::string& name) {
    auto def = store->get_definition(name, "");
    EXPECT_TRUE(def) << describe(def.error());
    return def ? def->version : std::string{};
  };
  EXPECT_EQ(latest("num"), "10");
  EXPECT_EQ(latest("dotted"), "1.10");
  EXPECT_EQ(latest("text"), "beta");
  auto exact = store->get_definition("num", "9");
  ASSERT_TRUE(exact);
  EXPECT_EQ(exact->name, "num");
  EXPECT_EQ(exact->version, "9");
  EXPECT_EQ(exact->document, json_value{json({{"v", "9"}})});
  // Replacing the same name and version.
  ASSERT_TRUE(
    store->put_definition(definition_record{"num", "9", json{{"v", "new"}}}));
  exact = store->get_definition("num", "9");
  ASSERT_TRUE(exact);
  EXPECT_EQ(exact->document, json_value{json({{"v", "new"}})});
}

TEST(EventStore, MissingDefinitionIsNotFound) {
  test::temp_dir tmp;
  auto store = open_store(tmp.str());
  ASSERT_NE(store, nullptr);
  ASSERT_TRUE(store->put_definition(definition_record{"a", "1", json{}}));
  for (auto [name, version] : {std::pair{"a", "2"}, std::pair{"b", ""},
                               std::pair{"", ""}}) {
    auto got = store->get_definition(name, version);
    ASSERT_FALSE(got) << name << "@" << version;
    EXPECT_EQ(code_of(got.error()), errc::not_found);
  }
  auto empty_version = store->put_definition(definition_record{"a", "", {}});
  ASSERT_FALSE(empty_version);
  EXPECT_EQ(code_of(empty_version.error()), errc::invalid_input);
}

TEST(EventStore, SyncModeWritesAndReopens) {
  test::temp_dir tmp;
  {
    auto store = open_store(tmp.str(), true);
    ASSERT_NE(store, nullptr);
    std::vector<append_request> group{make_request("s", 1, 10),
                                       make_request("t", 1, 1)};
    for (const auto& result : store->append_group(group))
      ASSERT_TRUE(result) << describe(result.error());
    ASSERT_TRUE(
      store->put_definition(definition_record{"wf", "1", json{{"k", 1}}}));
  }
  auto store = open_store(tmp.str(), true);
  ASSERT_NE(store, nullptr);
  auto s = store->read("s", 0, 0);
  ASSERT_TRUE(s);
  EXPECT_EQ(s->size(), 10u);
  auto def = store->get_definition("wf", "");
  ASSERT_TRUE(def);
  EXPECT_EQ(def->version, "1");
}

TEST(EventStore, ScanVisitsEveryEventInKeyOrder) {
  test::temp_dir tmp;
  auto store = open_store(tmp.str());
  ASSERT_NE(store, nullptr);
  std::vector<append_request> group{make_request("b", 1, 3),
                                     make_request("a", 1, 2),
                                     make_request("c", 1, 1)};
  for (const auto& result : store->append_group(group))
    ASSERT_TRUE(result);
  std::vector<std::string> seen;
  auto count = store->scan([&](const event& ev) {
    seen.push_back(ev.execution_id + "#" + std::to_string(ev.seq) + ":"
                   + ev.payload->at("id").get<std::string>());
  });
  ASSERT_TRUE(count) << describe(count.error());
  EXPECT_EQ(*count, 6u);
  EXPECT_EQ(seen, (std::vector<std::string>{"a#1:a", "a#2:a", "b#1:b",
                                            "b#2:b", "b#3:b", "c#1:c"}));
}

TEST(EventStore, CorruptValueIsCodecErrorNotACrash) {
  test::temp_dir tmp;
  {
    auto store = open_store(tmp.str());
    ASSERT_NE(store, nullptr);
    auto req = make_request("e", 1, 3);
    req.index.push_back(make_info("e", "wf", "running", 1));
    ASSERT_TRUE(store->append(req));
  }
  write_raw(tmp.str(), "events", event_key("e", 2), "\x01\xff garbage");
  write_raw(tmp.str(), "executions", "bad", std::string("\x01\x1f", 2));
  auto store = open_store(tmp.str());
  ASSERT_NE(store, nullptr);
  auto read = store->read("e", 0, 0);
  ASSERT_FALSE(read);
  EXPECT_EQ(code_of(read.error()), errc::codec_error);
  EXPECT_NE(message_of(read.error()).find("'e' seq 2"), std::string::npos)
    << message_of(read.error());
  auto first = store->read("e", 1, 1);
  ASSERT_TRUE(first) << describe(first.error());
  EXPECT_EQ(seqs(*first), (std::vector<uint64_t>{1}));
  auto scanned = store->scan([](const event&) {});
  ASSERT_FALSE(scanned);
  EXPECT_EQ(code_of(scanned.error()), errc::codec_error);
  auto listed = store->list(execution_filter{});
  ASSERT_FALSE(listed);
  EXPECT_EQ(code_of(listed.error()), errc::codec_error);
  auto bad = store->get("bad");
  ASSERT_FALSE(bad);
  EXPECT_EQ(code_of(bad.error()), errc::codec_error);
  // Appending needs only keys, so the log can still grow.
  auto next = store->append(make_request("e", 4));
  ASSERT_TRUE(next) << describe(next.error());
  EXPECT_EQ(*next, 4u);
}

TEST(EventStore, OpensDatabasesWithUnknownColumnFamilies) {
  test::temp_dir tmp;
  {
    rocksdb::Options opts;
    opts.create_if_missing = true;
    rocksdb::DB* raw = nullptr;
    ASSERT_TRUE(rocksdb::DB::Open(opts, tmp.str(), &raw).ok());
    std::unique_ptr<rocksdb::DB> db{raw};
    rocksdb::ColumnFamilyHandle* cf = nullptr;
    ASSERT_TRUE(
      db->CreateColumnFamily(rocksdb::ColumnFamilyOptions{}, "future", &cf)
        .ok());
    EXPECT_TRUE(db->DestroyColumnFamilyHandle(cf).ok());
    EXPECT_TRUE(db->Close().ok());
  }
  auto store = open_store(tmp.str());
  ASSERT_NE(store, nullptr);
  auto last = store->append(make_request("e", 1));
  ASSERT_TRUE(last) << describe(last.error());
  EXPECT_EQ(*last, 1u);
}

TEST(EventStore, ConcurrentAppendersKeepEachLogDense) {
  test::temp_dir tmp;
  auto store = open_store(tmp.str());
  ASSERT_NE(store, nullptr);
  constexpr int writers = 4;
  constexpr uint64_t groups = 50;
  constexpr uint64_t per_group = 10;
  std::vector<std::thread> threads;
  std::vector<int> failures(writers, 0);
  for (int w = 0; w < writers; ++w)
    threads.emplace_back([&, w] {
      auto id = "w" + std::to_string(w);
      for (uint64_t g = 0; g < groups; ++g) {
        std::vector<append_request> group;
        for (uint64_t i = 0; i < per_group; ++i)
          group.push_back(make_request(id, g * per_group + i + 1));
        for (const auto& result : store->append_group(group))
          if (!result)
            ++failures[w];
      }
    });
  for (auto& t : threads)
    t.join();
  for (int w = 0; w < writers; ++w) {
    EXPECT_EQ(failures[w], 0);
    auto events = store->read("w" + std::to_string(w), 0, 0);
    ASSERT_TRUE(events);
    ASSERT_EQ(events->size(), groups * per_group);
    for (size_t i = 0; i < events->size(); ++i)
      EXPECT_EQ((*events)[i].seq, i + 1);
  }
  auto count = store->scan([](const event&) {});
  ASSERT_TRUE(count);
  EXPECT_EQ(*count, writers * groups * per_group);
}

TEST(EventStore, IndexOnlyRequestUpdatesTheIndex) {
  test::temp_dir tmp;
  auto store = open_store(tmp.str());
  ASSERT_NE(store, nullptr);
  append_request req;
  req.index.push_back(make_info("e", "wf", "waiting", 5));
  auto got = store->append(req);
  ASSERT_TRUE(got) << describe(got.error());
  EXPECT_EQ(*got, 0u);
  auto info = store->get("e");
  ASSERT_TRUE(info);
  EXPECT_EQ(info->status, "waiting");
  // An idempotency key needs an event to name its execution.
  req.idempotency_key = "k";
  auto keyed = store->append(req);
  ASSERT_FALSE(keyed);
  EXPECT_EQ(code_of(keyed.error()), errc::invalid_input);
}
