#include "rocksdb_event_store.hpp"

#include <signal.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <mutex>
#include <filesystem>
#include <optional>
#include <string_view>
#include <system_error>
#include <utility>

#include <rocksdb/iterator.h>
#include <rocksdb/options.h>
#include <rocksdb/slice.h>
#include <rocksdb/write_batch.h>

#include "cadre/persistence/codec.hpp"
#include "codec_detail.hpp"
#include "info_log.hpp"
#include "status.hpp"
#include "store_creation.hpp"
#include "store_layout.hpp"

namespace cadre::persistence {

namespace {

using detail::valid_key_part;

std::string_view view(const rocksdb::Slice& x) {
  return {x.data(), x.size()};
}

/// Iterator bounds that select every key starting with `part` + '\0'.
struct prefix_bounds {
  explicit prefix_bounds(std::string_view part)
    : lower(std::string{part} + '\0'),
      upper(std::string{part} + '\x01'),
      lower_slice(lower),
      upper_slice(upper) {
  }
  prefix_bounds(const prefix_bounds&) = delete;
  prefix_bounds& operator=(const prefix_bounds&) = delete;

  /// Read options whose iterators stay inside the prefix.
  rocksdb::ReadOptions read_options() const {
    rocksdb::ReadOptions ro;
    ro.iterate_lower_bound = &lower_slice;
    ro.iterate_upper_bound = &upper_slice;
    return ro;
  }

  std::string lower;
  std::string upper;
  rocksdb::Slice lower_slice;
  rocksdb::Slice upper_slice;
};

caf::error invalid_id(std::string_view what, std::string_view id) {
  return make_error(errc::invalid_input,
                    std::string{what} + ": execution id '" + std::string{id}
                      + "' is empty or contains a 0 byte");
}

caf::error wrap_event_error(std::string_view id, uint64_t seq,
                            const caf::error& err) {
  return make_error(errc::codec_error, "decode event '" + std::string{id}
                                         + "' seq " + std::to_string(seq)
                                         + ": " + message_of(err));
}

caf::error malformed_key(std::string_view where, size_t size) {
  return make_error(errc::codec_error,
                    std::string{where} + ": malformed event key of "
                      + std::to_string(size) + " bytes");
}

constexpr std::string_view secondary_prefix = "cadre-secondary-";

/// Removes the secondary directories under `base` whose process is gone (a
/// reader killed with SIGKILL cannot remove its own). The name holds the
/// owner's pid: "cadre-secondary-<pid>-<n>". Best effort: a directory that
/// cannot be removed stays.
void remove_stale_secondary_dirs(const std::filesystem::path& base) {
  std::error_code ec;
  std::filesystem::directory_iterator it{base, ec};
  if (ec)
    return;
  for (; it != std::filesystem::directory_iterator{}; it.increment(ec)) {
    if (ec)
      return;
    auto name = it->path().filename().string();
    if (name.rfind(secondary_prefix, 0) != 0)
      continue;
    auto rest = std::string_view{name}.substr(secondary_prefix.size());
    auto dash = rest.find('-');
    if (dash == 0 || dash == std::string_view::npos || dash > 9)
      continue;
    pid_t pid = 0;
    bool digits = true;
    for (char c : rest.substr(0, dash)) {
      digits = digits && c >= '0' && c <= '9';
      pid = pid * 10 + (c - '0');
    }
    // EPERM: alive, another user's; only ESRCH says the owner is gone.
    if (!digits || pid <= 0 || pid == ::getpid()
        || ::kill(pid, 0) == 0 || errno != ESRCH)
      continue;
    std::error_code rm;
    std::filesystem::remove_all(it->path(), rm);
  }
}

/// Creates a fresh directory under the system temp dir for the info log of a
/// secondary instance; the store removes it on close. The first call of a
/// process removes those left by dead ones.
expected<std::string> make_secondary_dir(const std::string& where) {
  static std::atomic<uint64_t> counter{0};
  static std::once_flag swept;
  std::error_code ec;
  auto base = std::filesystem::temp_directory_path(ec);
  if (ec)
    return make_error(errc::storage_error,
                      where + ": no temp directory: " + ec.message());
  std::call_once(swept, [&] { remove_stale_secondary_dirs(base); });
  auto prefix = std::string{secondary_prefix} + std::to_string(::getpid())
                + "-";
  for (int attempt = 0; attempt < 1000; ++attempt) {
    auto path = base / (prefix + std::to_string(counter++));
    if (std::filesystem::create_directory(path, ec))
      return path.string();
    if (ec)
      return make_error(errc::storage_error,
                        where + ": cannot create '" + path.string()
                          + "': " + ec.message());
  }
  return make_error(errc::storage_error,
                    where + ": no free name for a directory under '"
                      + base.string() + "'");
}

} // namespace

// -- event_store --------------------------------------------------------------

event_store::~event_store() = default;

expected<std::unique_ptr<event_store>> event_store::open(store_options opts) {
  return rocksdb_event_store::open(std::move(opts));
}

expected<uint64_t> event_store::append(const append_request& req) {
  std::vector<append_request> group;
  group.push_back(req);
  auto results = append_group(group);
  return std::move(results.front());
}

bool event_store::read_only() const {
  return false;
}

expected<void> event_store::refresh() {
  return {};
}

// -- construction -------------------------------------------------------------

expected<std::unique_ptr<event_store>>
rocksdb_event_store::open(store_options opts) {
  auto where = std::string{opts.read_only ? "open event store (read-only) '"
                                          : "open event store '"}
               + opts.dir + "'";
  if (opts.dir.empty())
    return make_error(errc::invalid_input, where + ": directory is empty");
  std::error_code ec;
  if (opts.read_only) {
    auto files = detail::inspect_store_dir(opts.dir);
    if (!files.has_current && !files.rocksdb_files.empty())
      return detail::missing_current_error(opts.dir, files);
    // A secondary instance cannot create a database; say so plainly instead
    // of passing on RocksDB's complaint about a missing CURRENT file.
    if (!files.has_current)
      return make_error(errc::not_found,
                        "no cadre store at '" + opts.dir + "'");
  } else if (auto err = detail::prepare_store_dir(opts.dir)) {
    // A new store is created whole or not at all (store_creation.hpp).
    return err;
  }
  auto layout = detail::store_layout(opts.dir, opts.read_only);
  if (!layout)
    return std::move(layout.error());
  // Read before the open: a writer may advance it meanwhile, never past
  // what the open then sees.
  std::optional<uint64_t> mark;
  if (!opts.read_only) {
    auto read = detail::read_ack_mark(opts.dir);
    if (!read)
      return std::move(read.error());
    mark = *read;
  }
  auto& db_opts = layout->db_opts;
  auto& descriptors = layout->descriptors;
  std::shared_ptr<detail::background_errors> bg_errors;
  if (!opts.read_only) {
    bg_errors = std::make_shared<detail::background_errors>();
    db_opts.listeners.push_back(bg_errors);
  }
  std::vector<rocksdb::ColumnFamilyHandle*> handles;
  rocksdb::DB* raw = nullptr;
  std::string secondary_dir;
  rocksdb::Status st;
  if (opts.read_only) {
    auto dir = make_secondary_dir(where);
    if (!dir)
      return std::move(dir.error());
    secondary_dir = std::move(*dir);
    detail::log_to(db_opts, secondary_dir);
    // A secondary instance skips table files it cannot open and stops at a
    // damaged WAL record without a word; with no writer to race, a strict
    // read-only open first proves the store whole.
    if (!detail::writer_holds(opts.dir)) {
      if (auto err = detail::verify_open(opts.dir, secondary_dir, *layout)) {
        std::filesystem::remove_all(secondary_dir, ec);
        return err;
      }
    }
    // Opening replays the primary's MANIFEST and WAL: the store starts with
    // everything committed so far.
    st = rocksdb::DB::OpenAsSecondary(db_opts, opts.dir, secondary_dir,
                                      descriptors, &handles, &raw);
  } else {
    st = rocksdb::DB::Open(db_opts, opts.dir, descriptors, &handles, &raw);
  }
  if (!st.ok()) {
    if (!secondary_dir.empty())
      std::filesystem::remove_all(secondary_dir, ec);
    return detail::open_error(opts.dir, where, st);
  }
  std::unique_ptr<rocksdb::DB> db{raw};
  auto latest = db->GetLatestSequenceNumber();
  if (auto err = detail::check_ack_mark(
        opts.dir, mark, latest,
        detail::wal_files_of(detail::inspect_store_dir(opts.dir)
                               .rocksdb_files))) {
    // Closing the store that was refused has nothing to report, and
    // nothing was written to it.
    for (auto* handle : handles)
      db->DestroyColumnFamilyHandle(handle).PermitUncheckedError();
    db->Close().PermitUncheckedError();
    return err;
  }
  auto dir = opts.dir;
  std::unique_ptr<rocksdb_event_store> store{
    new rocksdb_event_store(std::move(opts), std::move(db), std::move(handles),
                            std::move(secondary_dir), std::move(bg_errors))};
  if (!store->opts_.read_only) {
    // Writes acknowledged but not marked before a crash are in the files.
    if (auto err = store->mark_.open(dir, std::max(latest, mark.value_or(0))))
      return err;
  }
  return std::unique_ptr<event_store>{std::move(store)};
}

rocksdb_event_store::rocksdb_event_store(
  store_options opts, std::unique_ptr<rocksdb::DB> db,
  std::vector<rocksdb::ColumnFamilyHandle*> handles, std::string secondary_dir,
  std::shared_ptr<detail::background_errors> bg_errors)
  : opts_(std::move(opts)),
    secondary_dir_(std::move(secondary_dir)),
    db_(std::move(db)),
    handles_(std::move(handles)),
    bg_errors_(std::move(bg_errors)) {
  // Handles come back in the order of the descriptors given to DB::Open.
  events_ = handles_[1];
  executions_ = handles_[2];
  idempotency_ = handles_[3];
  definitions_ = handles_[4];
  write_opts_.sync = opts_.sync;
}

rocksdb_event_store::~rocksdb_event_store() {
  // A destructor has nobody to report to: the statuses are ignored on
  // purpose. Everything acknowledged is already in the WAL; flushing it to
  // table files (whose blocks carry checksums) leaves nothing that only the
  // WAL holds, so a WAL lost or damaged after a clean close costs nothing.
  // After a failed write, nothing more goes to the WAL: RocksDB asserts
  // on a write to a WAL file that saw an error.
  if (!opts_.read_only && !write_failed_)
    db_->Flush(rocksdb::FlushOptions{}, handles_).PermitUncheckedError();
  for (auto* handle : handles_)
    db_->DestroyColumnFamilyHandle(handle).PermitUncheckedError();
  db_->Close().PermitUncheckedError();
  // The secondary instance writes its info log until it is deleted.
  db_.reset();
  if (!secondary_dir_.empty()) {
    std::error_code ec;
    std::filesystem::remove_all(secondary_dir_, ec);
  }
}

bool rocksdb_event_store::read_only() const {
  return opts_.read_only;
}

expected<void> rocksdb_event_store::refresh() {
  if (!opts_.read_only)
    return {};
  auto st = db_->TryCatchUpWithPrimary();
  if (auto err = to_error(st, "refresh event store '" + opts_.dir + "'"))
    return err;
  return {};
}

caf::error rocksdb_event_store::fail(const rocksdb::Status& st,
                                     std::string_view what) const {
  return detail::store_error(opts_.dir, what, st);
}

caf::error rocksdb_event_store::check_free_space(std::string_view what) const {
  if (opts_.min_free_bytes == 0)
    return caf::error{};
  struct statvfs fs {};
  if (::statvfs(opts_.dir.c_str(), &fs) != 0)
    return caf::error{}; // unknown: RocksDB reports a real failure itself
  auto free_bytes = static_cast<uint64_t>(fs.f_bavail)
                    * static_cast<uint64_t>(fs.f_frsize);
  if (free_bytes >= opts_.min_free_bytes)
    return caf::error{};
  return make_error(errc::storage_error,
                    std::string{what} + " to store '" + opts_.dir
                      + "': the disk is full: " + std::to_string(free_bytes)
                      + " bytes free, writes need "
                      + std::to_string(opts_.min_free_bytes)
                      + "; free space and retry");
}

void rocksdb_event_store::acknowledge() {
  mark_.advance(db_->GetLatestSequenceNumber());
}

caf::error rocksdb_event_store::read_only_error(std::string_view what) const {
  return make_error(errc::invalid_input,
                    std::string{what} + " to '" + opts_.dir
                      + "': store opened read-only");
}

// -- appending ----------------------------------------------------------------

expected<uint64_t>
rocksdb_event_store::stored_last_seq(const std::string& execution_id) const {
  prefix_bounds bounds{execution_id};
  auto ro = bounds.read_options();
  std::unique_ptr<rocksdb::Iterator> it{db_->NewIterator(ro, events_)};
  it->SeekToLast();
  if (!it->Valid()) {
    if (auto err = fail(it->status(), "last seq of execution '"
                                            + execution_id + "'"))
      return err;
    return uint64_t{0};
  }
  std::string_view id;
  uint64_t seq = 0;
  auto key = view(it->key());
  if (!detail::split_event_key(key, id, seq) || id != execution_id)
    return malformed_key("last seq of execution '" + execution_id + "'",
                         key.size());
  return seq;
}

expected<uint64_t>
rocksdb_event_store::cached_last_seq(const std::string& execution_id) {
  if (auto i = last_seq_.find(execution_id); i != last_seq_.end())
    return i->second;
  auto seq = stored_last_seq(execution_id);
  if (seq)
    last_seq_.emplace(execution_id, *seq);
  return seq;
}

std::vector<expected<uint64_t>>
rocksdb_event_store::append_group(const std::vector<append_request>& group) {
  std::vector<expected<uint64_t>> results;
  results.reserve(group.size());
  if (opts_.read_only) {
    for (size_t index = 0; index < group.size(); ++index)
      results.emplace_back(
        read_only_error("append request " + std::to_string(index)));
    return results;
  }
  std::lock_guard<std::mutex> guard{append_mtx_};
  if (last_seq_.size() > max_cached_executions)
    last_seq_.clear();
  batch_.Clear();
  // Last seq per execution and execution per idempotency key after the
  // requests accepted so far; views point into `group`.
  std::unordered_map<std::string_view, uint64_t> group_last;
  std::unordered_map<std::string_view, std::string_view> group_keys;
  // Last seq per execution after the events of the current request.
  std::vector<std::pair<const std::string*, uint64_t>> local;
  std::vector<size_t> accepted;
  std::string key_buf;
  std::string value_buf;
  // Checks one request against the stored and the group's state; fills
  // `local`.
  auto check = [&](size_t index, const append_request& req) -> caf::error {
    auto what = "append request " + std::to_string(index);
    local.clear();
    size_t slot = 0;
    const std::string* current = nullptr;
    for (size_t pos = 0; pos < req.events.size(); ++pos) {
      const auto& ev = req.events[pos];
      if (current == nullptr || ev.execution_id != *current) {
        if (!valid_key_part(ev.execution_id))
          return invalid_id(what, ev.execution_id);
        current = &ev.execution_id;
        auto found = std::find_if(local.begin(), local.end(), [&](auto& x) {
          return *x.first == ev.execution_id;
        });
        if (found != local.end()) {
          slot = static_cast<size_t>(found - local.begin());
        } else {
          uint64_t last = 0;
          if (auto i = group_last.find(ev.execution_id);
              i != group_last.end()) {
            last = i->second;
          } else {
            auto stored = cached_last_seq(ev.execution_id);
            if (!stored)
              return std::move(stored.error());
            last = *stored;
          }
          slot = local.size();
          local.emplace_back(current, last);
        }
      }
      auto want = local[slot].second + 1;
      if (ev.seq != want) {
        auto msg = "append to execution '" + ev.execution_id
                   + "': expected seq " + std::to_string(want) + ", got "
                   + std::to_string(ev.seq);
        if (pos > 0)
          msg += " (event " + std::to_string(pos) + " of the request)";
        return make_error(errc::conflict, std::move(msg));
      }
      local[slot].second = ev.seq;
    }
    for (const auto& info : req.index)
      if (!valid_key_part(info.id))
        return invalid_id(what + ": index entry", info.id);
    if (!req.idempotency_key.empty()) {
      if (req.events.empty())
        return make_error(errc::invalid_input,
                          what + ": idempotency key '" + req.idempotency_key
                            + "' without events names no execution");
      std::string_view target = req.events.front().execution_id;
      std::string owner;
      if (auto i = group_keys.find(req.idempotency_key);
          i != group_keys.end()) {
        owner = i->second;
      } else {
        auto st = db_->Get(rocksdb::ReadOptions{}, idempotency_,
                           req.idempotency_key, &owner);
        if (st.IsNotFound())
          owner.clear();
        else if (!st.ok())
          return fail(st, what + ": idempotency key '"
                                + req.idempotency_key + "'");
      }
      if (!owner.empty() && owner != target)
        return make_error(errc::conflict,
                          "idempotency key '" + req.idempotency_key
                            + "' already names execution '" + owner
                            + "', not '" + std::string{target} + "'");
    }
    return caf::error{};
  };
  // Adds one checked request to the batch, all or nothing.
  auto add = [&](const append_request& req) -> caf::error {
    batch_.SetSavePoint();
    rocksdb::Status st;
    for (const auto& ev : req.events) {
      detail::event_key_to(key_buf, ev.execution_id, ev.seq);
      detail::encode_event_to(ev, value_buf);
      st = batch_.Put(events_, key_buf, value_buf);
      if (!st.ok())
        break;
    }
    for (size_t i = 0; st.ok() && i < req.index.size(); ++i)
      st = batch_.Put(executions_, req.index[i].id,
                      detail::encode_execution_info(req.index[i]));
    if (st.ok() && !req.idempotency_key.empty())
      st = batch_.Put(idempotency_, req.idempotency_key,
                      req.events.front().execution_id);
    if (!st.ok()) {
      // Rolling back to the save point set above cannot fail.
      batch_.RollbackToSavePoint().PermitUncheckedError();
      return to_error(st, "append: add to write batch");
    }
    // Popping the save point set above cannot fail.
    batch_.PopSavePoint().PermitUncheckedError();
    return caf::error{};
  };
  for (size_t index = 0; index < group.size(); ++index) {
    const auto& req = group[index];
    auto err = check(index, req);
    if (!err)
      err = add(req);
    if (err) {
      results.emplace_back(std::move(err));
      continue;
    }
    for (auto& [id, seq] : local)
      group_last.insert_or_assign(std::string_view{*id}, seq);
    if (!req.idempotency_key.empty())
      group_keys.insert_or_assign(req.idempotency_key,
                                  req.events.front().execution_id);
    results.emplace_back(local.empty() ? uint64_t{0} : local.front().second);
    accepted.push_back(index);
  }
  if (accepted.empty())
    return results;
  auto what = "append group of " + std::to_string(accepted.size())
              + " requests";
  auto fail_all = [&](caf::error err) {
    for (auto index : accepted)
      results[index] = err;
    return results;
  };
  if (auto err = check_free_space(what))
    return fail_all(std::move(err));
  // A failed flush or compaction stops writes as a failed write does, even
  // with no write of this store's failing: resume before writing, so the
  // first write after space is freed goes through.
  if (bg_errors_ && bg_errors_->failed.exchange(false))
    write_failed_ = true;
  if (write_failed_) {
    // A failed write stops RocksDB's writes until Resume(); nothing may be
    // written before (RocksDB asserts on a write to a WAL that saw an
    // error). After a full disk RocksDB resumes by itself once a memtable's
    // worth of space is free (polling every 5 s), and answers Busy
    // (errc::unavailable) until then.
    auto resumed = db_->Resume();
    if (!resumed.ok())
      return fail_all(fail(resumed, what + ": writes stopped after a failed "
                                           "write (a full disk resumes once "
                                           "space is free)"));
    write_failed_ = false;
  }
  auto st = db_->Write(write_opts_, &batch_);
  if (!st.ok()) {
    write_failed_ = true;
    // What the failed write left behind is unknown: reload from the store.
    last_seq_.clear();
    return fail_all(fail(st, what));
  }
  acknowledge();
  for (auto& [id, seq] : group_last)
    last_seq_[std::string{id}] = seq;
  return results;
}

expected<uint64_t>
rocksdb_event_store::erase_unindexed(const std::string& name) {
  auto what = "erase log '" + name + "'";
  if (opts_.read_only)
    return read_only_error(what);
  if (!valid_key_part(name))
    return invalid_id(what, name);
  // Under the appends' lock: no append (an index entry among them) comes
  // between the look at the index and the removal.
  std::lock_guard<std::mutex> guard{append_mtx_};
  rocksdb::PinnableSlice entry;
  auto st = db_->Get(rocksdb::ReadOptions{}, executions_, name, &entry);
  if (st.ok())
    return make_error(errc::conflict,
                      what + ": it is an execution in the index");
  if (!st.IsNotFound())
    if (auto err = fail(st, what))
      return err;
  auto last = stored_last_seq(name);
  if (!last || *last == 0)
    return last;
  if (write_failed_) {
    // As in append_group: no write before RocksDB resumed.
    auto resumed = db_->Resume();
    if (!resumed.ok())
      return fail(resumed, what + ": writes stopped after a failed write");
    write_failed_ = false;
  }
  prefix_bounds bounds{name};
  rocksdb::WriteBatch batch;
  st = batch.DeleteRange(events_, bounds.lower, bounds.upper);
  if (st.ok())
    st = db_->Write(write_opts_, &batch);
  last_seq_.erase(name);
  if (!st.ok()) {
    write_failed_ = true;
    return fail(st, what);
  }
  acknowledge();
  return last;
}

expected<std::vector<std::string>> rocksdb_event_store::erase_killed_imports() {
  const std::string what = "remove what killed imports left";
  if (opts_.read_only)
    return read_only_error(what);
  // Every record, with the logs it names, in one pass over its key range
  // (each record is a few events: one per log its import created).
  std::vector<std::pair<std::string, std::vector<std::string>>> records;
  {
    std::string lower{import_record_prefix};
    std::string upper = lower;
    upper.back() = static_cast<char>(upper.back() + 1);
    rocksdb::Slice lower_slice{lower};
    rocksdb::Slice upper_slice{upper};
    rocksdb::ReadOptions ro;
    ro.iterate_lower_bound = &lower_slice;
    ro.iterate_upper_bound = &upper_slice;
    std::unique_ptr<rocksdb::Iterator> it{db_->NewIterator(ro, events_)};
    event ev;
    for (it->SeekToFirst(); it->Valid(); it->Next()) {
      std::string_view name;
      uint64_t seq = 0;
      auto key = view(it->key());
      if (!detail::split_event_key(key, name, seq))
        return malformed_key(what, key.size());
      if (auto err = detail::decode_event_value(view(it->value()), ev))
        return wrap_event_error(name, seq, err);
      if (records.empty() || records.back().first != name)
        records.emplace_back(std::string{name}, std::vector<std::string>{});
      const auto& payload = ev.payload.get();
      if (ev.type == import_record_type && payload.is_object()
          && payload.contains("log") && payload["log"].is_string())
        records.back().second.push_back(payload["log"].get<std::string>());
    }
    if (auto err = fail(it->status(), what))
      return err;
  }
  std::vector<std::string> out;
  for (auto& [record, logs] : records) {
    auto id = record.substr(import_record_prefix.size());
    std::string line;
    auto known = get(id);
    if (known) {
      line = "import of execution '" + id
             + "': its record stayed after the import finished; removed";
    } else if (code_of(known.error()) != errc::not_found) {
      return std::move(known.error());
    } else {
      // The execution's log last of the logs: a log the import created
      // before its own (one batch long, written with its index entry)
      // is named too.
      if (std::find(logs.begin(), logs.end(), id) == logs.end())
        logs.push_back(id);
      uint64_t events = 0;
      std::string names;
      for (const auto& log : logs) {
        auto gone = erase_unindexed(log);
        // A name in the index was never the import's to remove.
        if (!gone && code_of(gone.error()) == errc::conflict)
          continue;
        if (!gone)
          return std::move(gone.error());
        events += *gone;
        names += (names.empty() ? "'" : ", '") + log + "'";
      }
      line = "import of execution '" + id + "' was killed half-way: removed "
             + std::to_string(events) + " events of " + names;
    }
    if (auto gone = erase_unindexed(record); !gone)
      return std::move(gone.error());
    out.push_back(std::move(line));
  }
  return out;
}

// -- reading events -----------------------------------------------------------

expected<std::vector<event>>
rocksdb_event_store::read(const std::string& execution_id, uint64_t from,
                          uint64_t max) const {
  std::vector<event> out;
  if (execution_id.empty())
    return out;
  if (!valid_key_part(execution_id))
    return invalid_id("read", execution_id);
  prefix_bounds bounds{execution_id};
  auto ro = bounds.read_options();
  std::unique_ptr<rocksdb::Iterator> it{db_->NewIterator(ro, events_)};
  std::string start;
  detail::event_key_to(start, execution_id, from);
  if (max > 0)
    out.reserve(static_cast<size_t>(std::min<uint64_t>(max, 1024)));
  for (it->Seek(start); it->Valid(); it->Next()) {
    if (max > 0 && out.size() >= max)
      break;
    std::string_view id;
    uint64_t seq = 0;
    auto key = view(it->key());
    if (!detail::split_event_key(key, id, seq))
      return malformed_key("read execution '" + execution_id + "'",
                           key.size());
    auto& ev = out.emplace_back();
    ev.execution_id = execution_id;
    ev.seq = seq;
    if (auto err = detail::decode_event_value(view(it->value()), ev))
      return wrap_event_error(execution_id, seq, err);
  }
  if (auto err = fail(it->status(),
                          "read execution '" + execution_id + "'"))
    return err;
  return out;
}

expected<uint64_t>
rocksdb_event_store::last_seq(const std::string& execution_id) const {
  if (execution_id.empty())
    return uint64_t{0};
  if (!valid_key_part(execution_id))
    return invalid_id("last_seq", execution_id);
  return stored_last_seq(execution_id);
}

expected<uint64_t>
rocksdb_event_store::scan(const std::function<void(const event&)>& fn) const {
  rocksdb::ReadOptions ro;
  ro.fill_cache = false;
  std::unique_ptr<rocksdb::Iterator> it{db_->NewIterator(ro, events_)};
  // One event reused for every call: the execution id is assigned only when
  // it changes, and the type string keeps its capacity.
  event ev;
  uint64_t count = 0;
  for (it->SeekToFirst(); it->Valid(); it->Next()) {
    std::string_view id;
    uint64_t seq = 0;
    auto key = view(it->key());
    if (!detail::split_event_key(key, id, seq))
      return malformed_key("scan", key.size());
    if (id != ev.execution_id)
      ev.execution_id.assign(id);
    ev.seq = seq;
    if (auto err = detail::decode_event_value(view(it->value()), ev))
      return wrap_event_error(id, seq, err);
    fn(ev);
    ++count;
  }
  if (auto err = fail(it->status(), "scan events"))
    return err;
  return count;
}

// -- execution index ----------------------------------------------------------

expected<std::vector<execution_info>>
rocksdb_event_store::list(const execution_filter& filter) const {
  std::vector<execution_info> out;
  std::unique_ptr<rocksdb::Iterator> it{
    db_->NewIterator(rocksdb::ReadOptions{}, executions_)};
  for (it->SeekToFirst(); it->Valid(); it->Next()) {
    auto info = detail::decode_execution_info(view(it->key()),
                                              view(it->value()));
    if (!info)
      return std::move(info.error());
    if (!filter.status.empty() && info->status != filter.status)
      continue;
    if (!filter.workflow.empty() && info->workflow != filter.workflow)
      continue;
    out.push_back(std::move(*info));
  }
  if (auto err = fail(it->status(), "list executions"))
    return err;
  auto newer = [](const execution_info& x, const execution_info& y) {
    return x.created_us != y.created_us ? x.created_us > y.created_us
                                        : x.id > y.id;
  };
  if (filter.limit > 0 && out.size() > filter.limit) {
    auto mid = out.begin() + filter.limit;
    std::partial_sort(out.begin(), mid, out.end(), newer);
    out.erase(mid, out.end());
  } else {
    std::sort(out.begin(), out.end(), newer);
  }
  return out;
}

expected<execution_info>
rocksdb_event_store::get(const std::string& execution_id) const {
  rocksdb::PinnableSlice value;
  auto st = db_->Get(rocksdb::ReadOptions{}, executions_, execution_id,
                     &value);
  if (st.IsNotFound())
    return make_error(errc::not_found, "execution '" + execution_id
                                         + "' is not in the index");
  if (auto err = fail(st, "get execution '" + execution_id + "'"))
    return err;
  return detail::decode_execution_info(execution_id, view(value));
}

expected<std::string>
rocksdb_event_store::find_by_idempotency_key(const std::string& key) const {
  std::string owner;
  if (key.empty())
    return owner;
  auto st = db_->Get(rocksdb::ReadOptions{}, idempotency_, key, &owner);
  if (st.IsNotFound())
    return std::string{};
  if (auto err = fail(st, "find idempotency key '" + key + "'"))
    return err;
  return owner;
}

// -- definitions --------------------------------------------------------------

expected<void>
rocksdb_event_store::put_definition(const definition_record& def) {
  auto what = "put definition '" + def.name + "@" + def.version + "'";
  if (opts_.read_only)
    return read_only_error(what);
  if (!valid_key_part(def.name))
    return make_error(errc::invalid_input,
                      what + ": name is empty or contains a 0 byte");
  if (!valid_key_part(def.version))
    return make_error(errc::invalid_input,
                      what + ": version is empty or contains a 0 byte");
  auto key = def.name + '\0' + def.version;
  auto st = db_->Put(write_opts_, definitions_, key,
                     detail::encode_document(def.document));
  if (auto err = fail(st, what))
    return err;
  acknowledge();
  return {};
}

expected<definition_record>
rocksdb_event_store::get_definition(const std::string& name,
                                    const std::string& version) const {
  auto id = version.empty() ? name : name + "@" + version;
  auto missing = [&] {
    return make_error(errc::not_found,
                      "definition '" + id + "' is not stored");
  };
  if (!valid_key_part(name) || version.find('\0') != std::string::npos)
    return missing();
  definition_record out;
  out.name = name;
  std::string value;
  if (!version.empty()) {
    auto st = db_->Get(rocksdb::ReadOptions{}, definitions_,
                       name + '\0' + version, &value);
    if (st.IsNotFound())
      return missing();
    if (auto err = fail(st, "get definition '" + id + "'"))
      return err;
    out.version = version;
  } else {
    prefix_bounds bounds{name};
    auto ro = bounds.read_options();
    std::unique_ptr<rocksdb::Iterator> it{
      db_->NewIterator(ro, definitions_)};
    bool found = false;
    for (it->SeekToFirst(); it->Valid(); it->Next()) {
      auto v = view(it->key()).substr(name.size() + 1);
      if (!found || detail::compare_versions(v, out.version) > 0) {
        found = true;
        out.version.assign(v);
        value.assign(view(it->value()));
      }
    }
    if (auto err = fail(it->status(), "get definition '" + id + "'"))
      return err;
    if (!found)
      return missing();
  }
  auto doc = detail::decode_document(
    value, "definition '" + name + "@" + out.version + "'");
  if (!doc)
    return std::move(doc.error());
  out.document = std::move(*doc);
  return out;
}

expected<std::vector<definition_record>>
rocksdb_event_store::list_definitions(const std::string& name) const {
  std::vector<definition_record> out;
  if (!name.empty() && !valid_key_part(name))
    return out;
  std::optional<prefix_bounds> bounds;
  rocksdb::ReadOptions ro;
  if (!name.empty()) {
    bounds.emplace(name);
    ro = bounds->read_options();
  }
  std::unique_ptr<rocksdb::Iterator> it{db_->NewIterator(ro, definitions_)};
  for (it->SeekToFirst(); it->Valid(); it->Next()) {
    auto key = view(it->key());
    auto sep = key.find('\0');
    if (sep == std::string_view::npos)
      continue;
    definition_record rec;
    rec.name.assign(key.substr(0, sep));
    rec.version.assign(key.substr(sep + 1));
    out.push_back(std::move(rec));
  }
  if (auto err = fail(it->status(), "list definitions"))
    return err;
  return out;
}

expected<size_t>
rocksdb_event_store::delete_definition(const std::string& name) {
  auto what = "delete definition '" + name + "'";
  if (opts_.read_only)
    return read_only_error(what);
  auto versions = list_definitions(name);
  if (!versions)
    return std::move(versions.error());
  if (versions->empty())
    return size_t{0};
  rocksdb::WriteBatch batch;
  for (auto& v : *versions)
    batch.Delete(definitions_, v.name + '\0' + v.version);
  auto st = db_->Write(write_opts_, &batch);
  if (auto err = fail(st, what))
    return err;
  acknowledge();
  return versions->size();
}

} // namespace cadre::persistence
