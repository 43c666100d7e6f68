#include "store_layout.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <memory>
#include <string_view>
#include <system_error>

#include <rocksdb/cache.h>
#include <rocksdb/convenience.h>
#include <rocksdb/db.h>
#include <rocksdb/filter_policy.h>
#include <rocksdb/slice_transform.h>
#include <rocksdb/status.h>
#include <rocksdb/table.h>

#include "ack_mark.hpp"
#include "codec_detail.hpp"
#include "info_log.hpp"
#include "rocksdb_event_store.hpp"
#include "status.hpp"
#include "store_creation.hpp"

namespace cadre::persistence::detail {

namespace {

bool starts_with(std::string_view x, std::string_view prefix) {
  return x.substr(0, prefix.size()) == prefix;
}

bool ends_with(std::string_view x, std::string_view suffix) {
  return x.size() >= suffix.size()
         && x.substr(x.size() - suffix.size()) == suffix;
}

bool is_rocksdb_file(std::string_view name) {
  return ends_with(name, ".sst") || ends_with(name, ".log")
         || ends_with(name, ".blob") || starts_with(name, "MANIFEST-")
         || starts_with(name, "OPTIONS-") || name == "IDENTITY";
}

/// Maps an event key to its execution's prefix (id + 0 byte), so the
/// memtable keeps one insert position per execution: appends to a log land
/// right after its previous event instead of searching the whole skiplist.
class event_prefix final : public rocksdb::SliceTransform {
public:
  const char* Name() const override {
    return "cadre.event_prefix";
  }
  rocksdb::Slice Transform(const rocksdb::Slice& key) const override {
    return {key.data(), key.size() - 8};
  }
  bool InDomain(const rocksdb::Slice& key) const override {
    return key.size() > event_key_suffix
           && key[key.size() - event_key_suffix] == '\0';
  }
};

rocksdb::CompressionType events_compression() {
  auto supported = rocksdb::GetSupportedCompressions();
  auto has = [&](rocksdb::CompressionType t) {
    return std::find(supported.begin(), supported.end(), t)
           != supported.end();
  };
  return has(rocksdb::kLZ4Compression) ? rocksdb::kLZ4Compression
                                       : rocksdb::kNoCompression;
}

} // namespace

store_dir_files inspect_store_dir(const std::string& dir) {
  store_dir_files out;
  std::error_code ec;
  std::filesystem::directory_iterator it{dir, ec};
  for (; !ec && it != std::filesystem::directory_iterator{};
       it.increment(ec)) {
    auto name = it->path().filename().string();
    if (name == "CURRENT")
      out.has_current = true;
    else if (is_rocksdb_file(name))
      out.rocksdb_files.push_back(std::move(name));
  }
  std::sort(out.rocksdb_files.begin(), out.rocksdb_files.end());
  // Parts of a new, empty store whose move into place was killed: no store
  // yet, which the next writer completes.
  if (!out.has_current && !out.rocksdb_files.empty()
      && creation_interrupted(dir))
    out.rocksdb_files.clear();
  return out;
}

std::string damage_hint(const std::string& dir) {
  return "`cadre check --db " + dir + "` tells what is damaged, `cadre repair "
         "--db " + dir + "` salvages what is intact";
}

caf::error missing_current_error(const std::string& dir,
                                 const store_dir_files& files) {
  size_t tables = 0;
  std::string others;
  for (const auto& name : files.rocksdb_files) {
    if (ends_with(name, ".sst")) {
      ++tables;
      continue;
    }
    others += others.empty() ? "" : ", ";
    others += name;
  }
  std::string holds;
  if (tables > 0)
    holds = std::to_string(tables) + " table file" + (tables == 1 ? "" : "s");
  if (!others.empty())
    holds += (holds.empty() ? "" : ", ") + others;
  return make_error(errc::storage_error,
                    "store '" + dir + "' is damaged: its CURRENT file is "
                      "missing, but it holds " + holds
                      + "; refusing to create a new store over it ("
                      + damage_hint(dir) + ")");
}

expected<store_layout_t> store_layout(const std::string& dir,
                                      bool read_only) {
  store_layout_t out;
  auto& db_opts = out.db_opts;
  db_opts.create_if_missing = !read_only;
  db_opts.create_missing_column_families = !read_only;
  db_opts.max_background_jobs = 2;
  // append_group serializes writers, and insert hints (below) work only
  // without concurrent memtable writes.
  db_opts.allow_concurrent_memtable_write = false;
  db_opts.bytes_per_sync = 1 << 20;
  db_opts.keep_log_file_num = 4;
  db_opts.max_log_file_size = 16 << 20;
  // A damaged WAL record is acknowledged data: refuse to open rather than
  // recover up to it and drop the rest (RocksDB's default). The price: a
  // record torn by a crash in the middle of its write also refuses, and
  // `cadre repair` drops it.
  db_opts.wal_recovery_mode = rocksdb::WALRecoveryMode::kAbsoluteConsistency;
  // WALs closed at a memtable switch are recorded in the MANIFEST, so a
  // missing one is an error (the live WAL is not: RocksDB 7.8).
  db_opts.track_and_verify_wals_in_manifest = true;
  db_opts.paranoid_checks = true;
  // Readers log to a directory of their own (log_to); a writer to the
  // store's LOG, through cadre's logger (info_log.hpp: RocksDB's aborts on
  // a full disk).
  if (!read_only && !dir.empty())
    log_to(db_opts, dir);
  // A secondary instance must keep every table file open: the primary may
  // delete them after a compaction.
  if (read_only)
    db_opts.max_open_files = -1;
  // One block cache for every column family of this store.
  auto cache = rocksdb::NewLRUCache(32 << 20);
  // Events: large memtables absorb bursts of small appends; reads are
  // prefix scans, so no bloom filter.
  rocksdb::ColumnFamilyOptions events_opts;
  events_opts.write_buffer_size = 64 << 20;
  events_opts.max_write_buffer_number = 3;
  events_opts.compression = events_compression();
  events_opts.level_compaction_dynamic_level_bytes = true;
  events_opts.memtable_insert_with_hint_prefix_extractor =
    std::make_shared<event_prefix>();
  {
    rocksdb::BlockBasedTableOptions table;
    table.block_cache = cache;
    table.block_size = 16 << 10;
    events_opts.table_factory.reset(rocksdb::NewBlockBasedTableFactory(table));
  }
  // Index, idempotency keys and definitions: small, read by key.
  rocksdb::ColumnFamilyOptions small_opts;
  small_opts.write_buffer_size = 8 << 20;
  {
    rocksdb::BlockBasedTableOptions table;
    table.block_cache = cache;
    table.filter_policy.reset(rocksdb::NewBloomFilterPolicy(10));
    small_opts.table_factory.reset(rocksdb::NewBlockBasedTableFactory(table));
  }
  out.descriptors = {
    {rocksdb::kDefaultColumnFamilyName, small_opts},
    {rocksdb_event_store::events_cf, events_opts},
    {rocksdb_event_store::executions_cf, small_opts},
    {rocksdb_event_store::idempotency_cf, small_opts},
    {rocksdb_event_store::definitions_cf, small_opts},
  };
  std::vector<std::string> existing;
  auto listed = rocksdb::DB::ListColumnFamilies(db_opts, dir, &existing);
  // A new database has none: ignoring the error is deliberate, unless the
  // database must exist.
  if (read_only && !listed.ok())
    return open_error(dir, "list column families of store '" + dir + "'",
                      listed);
  listed.PermitUncheckedError();
  for (auto& name : existing) {
    auto known = std::any_of(out.descriptors.begin(), out.descriptors.end(),
                             [&](const auto& d) { return d.name == name; });
    if (!known)
      out.descriptors.emplace_back(name, small_opts);
  }
  return out;
}

bool writer_holds(const std::string& dir) {
  auto path = dir + "/LOCK";
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0)
    return false;
  struct flock lk {};
  lk.l_type = F_WRLCK;
  lk.l_whence = SEEK_SET;
  auto rc = ::fcntl(fd, F_GETLK, &lk);
  ::close(fd);
  // Unknown counts as held: the strict check is skipped, never wrongly run
  // against a live writer's WAL tail.
  return rc != 0 || lk.l_type != F_UNLCK;
}

caf::error verify_open(const std::string& dir, const std::string& log_dir,
                       const store_layout_t& layout) {
  auto db_opts = layout.db_opts;
  db_opts.max_open_files = -1;
  log_to(db_opts, log_dir);
  db_opts.wal_recovery_mode = rocksdb::WALRecoveryMode::kAbsoluteConsistency;
  // Read before the open, so a writer starting meanwhile cannot put the
  // mark past what this open sees.
  auto mark = read_ack_mark(dir);
  if (!mark)
    return std::move(mark.error());
  std::vector<rocksdb::ColumnFamilyHandle*> handles;
  rocksdb::DB* raw = nullptr;
  auto st = rocksdb::DB::OpenForReadOnly(db_opts, dir, layout.descriptors,
                                         &handles, &raw);
  if (!st.ok())
    return open_error(dir, "open event store (read-only) '" + dir + "'", st);
  std::unique_ptr<rocksdb::DB> db{raw};
  auto err = check_ack_mark(dir, *mark, db->GetLatestSequenceNumber(),
                            wal_files_of(inspect_store_dir(dir).rocksdb_files));
  // Closing a read-only instance has nothing to report.
  for (auto* h : handles)
    db->DestroyColumnFamilyHandle(h).PermitUncheckedError();
  return err;
}

caf::error open_error(const std::string& dir, const std::string& where,
                      const rocksdb::Status& st) {
  // A missing file the MANIFEST names is damage, too.
  if (st.IsCorruption() || st.IsPathNotFound())
    return make_error(errc::storage_error,
                      "store '" + dir + "' is damaged: " + st.ToString()
                        + " (" + damage_hint(dir) + ")");
  if (st.IsNoSpace())
    return make_error(errc::storage_error,
                      where + ": the disk is full (" + st.ToString()
                        + "); free space and retry");
  auto err = to_error(st, where);
  return make_error(errc::storage_error, message_of(err));
}

caf::error store_error(const std::string& dir, std::string_view what,
                       const rocksdb::Status& st) {
  if (st.ok())
    return caf::error{};
  if (st.IsCorruption() || st.IsPathNotFound())
    return make_error(errc::storage_error,
                      "store '" + dir + "' is damaged: " + std::string{what}
                        + ": " + st.ToString() + " (" + damage_hint(dir)
                        + ")");
  if (st.IsNoSpace())
    return make_error(errc::storage_error,
                      std::string{what} + " in store '" + dir
                        + "': the disk is full (" + st.ToString()
                        + "); free space and retry");
  return to_error(st, std::string{what} + " in store '" + dir + "'");
}

} // namespace cadre::persistence::detail
