#include "cadre/persistence/store_check.hpp"

#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <memory>
#include <optional>
#include <set>
#include <system_error>

#include <rocksdb/db.h>
#include <rocksdb/metadata.h>
#include <rocksdb/status.h>

#include "ack_mark.hpp"
#include "cadre/persistence/event_store.hpp"
#include "info_log.hpp"
#include "status.hpp"
#include "store_layout.hpp"

namespace cadre::persistence {

namespace {

caf::error in_use(const std::string& dir, std::string_view what) {
  return make_error(errc::unavailable,
                    std::string{what} + " '" + dir
                      + "': a process holds the store open for writing; "
                        "stop it first");
}

/// A private directory for RocksDB's info log of a check, removed at the
/// end of the scope.
class scratch_dir {
public:
  scratch_dir() {
    std::error_code ec;
    auto base = std::filesystem::temp_directory_path(ec);
    for (int i = 0; !ec && i < 1000; ++i) {
      auto p = base / ("cadre-check-" + std::to_string(::getpid()) + "-"
                       + std::to_string(i));
      if (std::filesystem::create_directory(p, ec)) {
        path_ = p.string();
        return;
      }
    }
  }
  ~scratch_dir() {
    std::error_code ec;
    if (!path_.empty())
      std::filesystem::remove_all(path_, ec);
  }
  scratch_dir(const scratch_dir&) = delete;
  scratch_dir& operator=(const scratch_dir&) = delete;
  const std::string& path() const {
    return path_;
  }

private:
  std::string path_;
};

/// Checks every table block, counts the files and compares the
/// acknowledgement mark with what the files hold, on a strict read-only
/// instance; adds what is wrong to `report`. False when the store could not
/// be opened at all, or lacks acknowledged writes (every open refuses it).
bool check_files(const std::string& dir, store_check_report& report) {
  auto layout = detail::store_layout(dir, true);
  if (!layout) {
    report.problems.push_back(message_of(layout.error()));
    return false;
  }
  auto mark = detail::read_ack_mark(dir);
  if (!mark) {
    report.problems.push_back(message_of(mark.error()));
    return false;
  }
  scratch_dir log_dir;
  auto db_opts = layout->db_opts;
  detail::log_to(db_opts, log_dir.path());
  db_opts.wal_recovery_mode = rocksdb::WALRecoveryMode::kAbsoluteConsistency;
  std::vector<rocksdb::ColumnFamilyHandle*> handles;
  rocksdb::DB* raw = nullptr;
  auto st = rocksdb::DB::OpenForReadOnly(db_opts, dir, layout->descriptors,
                                         &handles, &raw);
  if (!st.ok()) {
    report.problems.push_back(
      message_of(detail::store_error(dir, "open", st)));
    return false;
  }
  std::unique_ptr<rocksdb::DB> db{raw};
  std::vector<rocksdb::LiveFileMetaData> tables;
  db->GetLiveFilesMetaData(&tables);
  std::set<std::string> names;
  for (auto& t : tables)
    names.insert(t.name);
  report.table_files = names.size();
  auto wals = detail::wal_files_of(detail::inspect_store_dir(dir).rocksdb_files);
  report.wal_files = wals.size();
  // Reads every block of every table file and checks its checksum.
  if (auto verified = db->VerifyChecksum(); !verified.ok())
    report.problems.push_back(
      message_of(detail::store_error(dir, "verify table checksums",
                                     verified)));
  auto missing = detail::check_ack_mark(dir, *mark,
                                        db->GetLatestSequenceNumber(), wals);
  if (missing)
    report.problems.push_back(message_of(missing));
  // Closing a read-only instance has nothing to report.
  for (auto* h : handles)
    db->DestroyColumnFamilyHandle(h).PermitUncheckedError();
  // With writes missing, every open refuses: the rest of the check cannot
  // run.
  return !missing;
}

/// The sequence number the store in `dir` recovers to: what its MANIFEST
/// and WALs say (table files are opened lazily, so a damaged one does not
/// hide it).
expected<uint64_t> latest_sequence(const std::string& dir) {
  auto layout = detail::store_layout(dir, true);
  if (!layout)
    return std::move(layout.error());
  scratch_dir log_dir;
  auto db_opts = layout->db_opts;
  db_opts.max_open_files = 64;
  detail::log_to(db_opts, log_dir.path());
  // RepairDB keeps only the column families that had table files; the
  // writer's next open creates the others.
  std::vector<std::string> names;
  auto listed = rocksdb::DB::ListColumnFamilies(db_opts, dir, &names);
  if (!listed.ok())
    return detail::open_error(dir, "list column families of repaired store '"
                                     + dir + "'", listed);
  std::vector<rocksdb::ColumnFamilyDescriptor> present;
  for (auto& d : layout->descriptors)
    if (std::find(names.begin(), names.end(), d.name) != names.end())
      present.push_back(d);
  std::vector<rocksdb::ColumnFamilyHandle*> handles;
  rocksdb::DB* raw = nullptr;
  auto st = rocksdb::DB::OpenForReadOnly(db_opts, dir, present, &handles,
                                         &raw);
  if (!st.ok())
    return detail::open_error(dir, "open repaired store '" + dir + "'", st);
  std::unique_ptr<rocksdb::DB> db{raw};
  auto latest = db->GetLatestSequenceNumber();
  // Closing a read-only instance has nothing to report.
  for (auto* h : handles)
    db->DestroyColumnFamilyHandle(h).PermitUncheckedError();
  return latest;
}

} // namespace

expected<std::map<std::string, log_summary>>
summarize_logs(const event_store& store) {
  std::map<std::string, log_summary> out;
  log_summary* current = nullptr;
  std::string current_id;
  auto scanned = store.scan([&](const event& ev) {
    if (current == nullptr || ev.execution_id != current_id) {
      current_id = ev.execution_id;
      current = &out[current_id];
      current->first_seq = ev.seq;
      current->first_type = ev.type;
      current->dense = ev.seq == 1;
    } else if (ev.seq != current->last_seq + 1) {
      current->dense = false;
    }
    current->last_seq = ev.seq;
    ++current->events;
  });
  if (!scanned)
    return std::move(scanned.error());
  return out;
}

std::vector<std::string>
compare_index(const std::map<std::string, log_summary>& logs,
              const std::vector<execution_info>& index) {
  std::vector<std::string> out;
  std::set<std::string> indexed;
  for (const auto& info : index) {
    indexed.insert(info.id);
    auto log = logs.find(info.id);
    if (log == logs.end()) {
      if (info.last_seq > 0)
        out.push_back("execution " + info.id + ": the index names "
                      + std::to_string(info.last_seq)
                      + " events, but its log is gone");
    } else if (log->second.last_seq != info.last_seq) {
      out.push_back("execution " + info.id + ": the index says its last "
                    "event is seq " + std::to_string(info.last_seq)
                    + ", its log ends at seq "
                    + std::to_string(log->second.last_seq));
    }
  }
  for (const auto& [id, log] : logs) {
    if (!log.dense)
      out.push_back("log " + id + ": " + std::to_string(log.events)
                    + " events with gaps between seq "
                    + std::to_string(log.first_seq) + " and "
                    + std::to_string(log.last_seq));
    if (log.first_type == "execution_submitted" && indexed.count(id) == 0)
      out.push_back("execution " + id + ": a log of "
                    + std::to_string(log.events)
                    + " events without an index entry");
  }
  return out;
}

expected<store_check_report> check_store(const std::string& dir) {
  store_check_report report;
  report.dir = dir;
  auto files = detail::inspect_store_dir(dir);
  if (!files.has_current) {
    if (files.rocksdb_files.empty())
      return make_error(errc::not_found, "no cadre store at '" + dir + "'");
    report.problems.push_back(
      message_of(detail::missing_current_error(dir, files)));
    return report;
  }
  if (detail::writer_holds(dir))
    return in_use(dir, "check store");
  if (!check_files(dir, report))
    return report;
  auto store = event_store::open(store_options{dir, false, true});
  if (!store) {
    report.problems.push_back(message_of(store.error()));
    return report;
  }
  auto logs = summarize_logs(**store);
  if (!logs) {
    report.problems.push_back(message_of(logs.error()));
    return report;
  }
  auto index = (*store)->list(execution_filter{});
  if (!index) {
    report.problems.push_back(message_of(index.error()));
    return report;
  }
  report.logs = logs->size();
  for (const auto& [id, log] : *logs)
    report.events += log.events;
  report.executions = index->size();
  for (auto& p : compare_index(*logs, *index))
    report.problems.push_back(std::move(p));
  return report;
}

expected<store_repair_report> repair_store(const std::string& dir) {
  auto files = detail::inspect_store_dir(dir);
  if (!files.has_current && files.rocksdb_files.empty())
    return make_error(errc::not_found, "no cadre store at '" + dir + "'");
  if (detail::writer_holds(dir))
    return in_use(dir, "repair store");
  auto lost_dir = std::filesystem::path{dir} / "lost";
  auto lost_before = [&] {
    std::set<std::string> names;
    std::error_code ec;
    std::filesystem::directory_iterator it{lost_dir, ec};
    for (; !ec && it != std::filesystem::directory_iterator{};
         it.increment(ec))
      names.insert(it->path().filename().string());
    return names;
  };
  auto before = lost_before();
  // The layout of a store that still lists its column families; else
  // cadre's own, and RepairDB finds the others in the table files.
  auto layout = detail::store_layout(dir, false);
  if (!layout) {
    layout = detail::store_layout("", false);
    if (!layout)
      return std::move(layout.error());
  }
  // A damaged mark holds nothing to salvage: the repair resets it.
  auto mark = detail::read_ack_mark(dir);
  // What the store recovers to before the repair, when it opens at all:
  // after it the comparison says nothing, as RepairDB takes the last
  // sequence number from the table files, where compactions zero them.
  std::optional<uint64_t> recovered_to;
  if (mark && *mark)
    if (auto latest = latest_sequence(dir))
      recovered_to = *latest;
  detail::log_to(layout->db_opts, dir);
  auto st = rocksdb::RepairDB(dir, layout->db_opts, layout->descriptors,
                              layout->descriptors.front().options);
  if (!st.ok())
    return make_error(errc::storage_error,
                      message_of(to_error(st, "repair store '" + dir + "'")));
  store_repair_report report;
  for (auto& name : lost_before())
    if (before.count(name) == 0)
      report.lost_files.push_back((lost_dir / name).string());
  auto latest = latest_sequence(dir);
  if (!latest)
    return std::move(latest.error());
  if (!mark) {
    report.lost.push_back("the acknowledgement mark was unreadable ("
                          + message_of(mark.error())
                          + "); set to what the store holds");
  } else if (*mark && recovered_to && **mark > *recovered_to) {
    report.lost.push_back(
      std::to_string(**mark - *recovered_to) + " acknowledged writes "
      "(sequence numbers " + std::to_string(*recovered_to + 1) + " to "
      + std::to_string(**mark) + ") were in no file left: a write-ahead log "
      "that held them was missing or cut short; the executions they "
      "started or advanced are gone or stop earlier");
  }
  // What the store now holds is all there is: later opens compare with it.
  if (auto err = detail::reset_ack_mark(dir, *latest))
    return err;
  return report;
}

} // namespace cadre::persistence
