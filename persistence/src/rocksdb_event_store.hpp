#pragma once

// The RocksDB implementation of event_store (docs/event-log.md).

#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include <rocksdb/db.h>
#include <rocksdb/listener.h>
#include <rocksdb/write_batch.h>

#include "ack_mark.hpp"
#include "cadre/persistence/event_store.hpp"

namespace cadre::persistence {

namespace detail {

/// Remembers that RocksDB met an error in the background (a flush or a
/// compaction on a full disk): its writes are then stopped until resumed,
/// and nothing may reach its WAL before.
class background_errors final : public rocksdb::EventListener {
public:
  void OnBackgroundError(rocksdb::BackgroundErrorReason,
                         rocksdb::Status* error) override {
    if (error != nullptr && !error->ok())
      failed.store(true);
  }

  std::atomic<bool> failed{false};
};

} // namespace detail

class rocksdb_event_store final : public event_store {
public:
  /// Names of the column families, in the order of `cfs_`.
  static constexpr const char* events_cf = "events";
  static constexpr const char* executions_cf = "executions";
  static constexpr const char* idempotency_cf = "idempotency";
  static constexpr const char* definitions_cf = "definitions";

  /// Forgets the cached last sequence numbers when more executions than this
  /// are cached; they reload lazily from the events column family.
  static constexpr size_t max_cached_executions = 1 << 20;

  [[nodiscard]] static expected<std::unique_ptr<event_store>>
  open(store_options opts);

  ~rocksdb_event_store() override;

  bool read_only() const override;

  expected<void> refresh() override;

  std::vector<expected<uint64_t>>
  append_group(const std::vector<append_request>& group) override;

  expected<std::vector<event>> read(const std::string& execution_id,
                                    uint64_t from,
                                    uint64_t max) const override;

  expected<uint64_t> last_seq(const std::string& execution_id) const override;

  expected<std::vector<execution_info>>
  list(const execution_filter& filter) const override;

  expected<execution_info> get(const std::string& execution_id) const override;

  expected<std::string>
  find_by_idempotency_key(const std::string& key) const override;

  expected<void> put_definition(const definition_record& def) override;
  expected<std::vector<definition_record>>
  list_definitions(const std::string& name) const override;
  expected<size_t> delete_definition(const std::string& name) override;

  expected<definition_record>
  get_definition(const std::string& name,
                 const std::string& version) const override;

  expected<uint64_t> erase_unindexed(const std::string& name) override;

  expected<std::vector<std::string>> erase_killed_imports() override;

  expected<uint64_t>
  scan(const std::function<void(const event&)>& fn) const override;

private:
  rocksdb_event_store(store_options opts, std::unique_ptr<rocksdb::DB> db,
                      std::vector<rocksdb::ColumnFamilyHandle*> handles,
                      std::string secondary_dir,
                      std::shared_ptr<detail::background_errors> bg_errors);

  /// The error of a failed RocksDB call: `what` and the store named, and a
  /// corruption said to be damage (detail::store_error).
  caf::error fail(const rocksdb::Status& st, std::string_view what) const;

  /// errc::storage_error when the store's file system has less than
  /// store_options::min_free_bytes free.
  caf::error check_free_space(std::string_view what) const;

  /// Raises the acknowledgement mark to the latest write, before the write
  /// is acknowledged.
  void acknowledge();

  /// The error of a write to a read-only store.
  caf::error read_only_error(std::string_view what) const;

  /// Last sequence number of an execution as stored in RocksDB.
  expected<uint64_t> stored_last_seq(const std::string& execution_id) const;

  /// Last sequence number through the cache, loading it when missing.
  /// REQUIRES: append_mtx_ held.
  expected<uint64_t> cached_last_seq(const std::string& execution_id);

  store_options opts_;
  /// The secondary instance's own directory (read-only stores), removed by
  /// the destructor; empty otherwise.
  std::string secondary_dir_;
  std::unique_ptr<rocksdb::DB> db_;
  /// Every open column family handle (ours and unknown ones found on disk).
  std::vector<rocksdb::ColumnFamilyHandle*> handles_;
  rocksdb::ColumnFamilyHandle* events_ = nullptr;
  rocksdb::ColumnFamilyHandle* executions_ = nullptr;
  rocksdb::ColumnFamilyHandle* idempotency_ = nullptr;
  rocksdb::ColumnFamilyHandle* definitions_ = nullptr;
  rocksdb::WriteOptions write_opts_;

  /// Serializes append_group and guards everything below.
  std::mutex append_mtx_;
  /// Last committed sequence number per execution.
  std::unordered_map<std::string, uint64_t> last_seq_;
  /// A write failed: the next append_group resumes RocksDB's writes first.
  bool write_failed_ = false;
  /// Set by RocksDB when a background job failed (writers only).
  std::shared_ptr<detail::background_errors> bg_errors_;
  /// Reused by append_group for the whole group.
  rocksdb::WriteBatch batch_;
  /// The last acknowledged write's sequence number, raised after each
  /// write (writers only).
  detail::ack_mark_writer mark_;
};

} // namespace cadre::persistence
