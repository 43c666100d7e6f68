#include "cli/store_commands.hpp"

#include <cstdio>
#include <map>
#include <memory>
#include <vector>

#include "cadre/messages/json_text.hpp"
#include "cadre/persistence/event_store.hpp"
#include "cadre/persistence/store_check.hpp"
#include "cadre/workflow/replay.hpp"
#include "cli/output.hpp"

namespace cadre::runtime::cli {

namespace {

json to_json_report(const persistence::store_check_report& r) {
  return json{{"store", r.dir},
              {"ok", r.ok()},
              {"table_files", r.table_files},
              {"wal_files", r.wal_files},
              {"executions", r.executions},
              {"logs", r.logs},
              {"events", r.events},
              {"problems", r.problems}};
}

void print_report(const persistence::store_check_report& r) {
  std::printf("store %s: %s\n", r.dir.c_str(),
              r.ok() ? "ok" : "DAMAGED");
  std::printf("  %llu table files, %llu WAL files; %llu executions, %llu "
              "logs, %llu events\n",
              static_cast<unsigned long long>(r.table_files),
              static_cast<unsigned long long>(r.wal_files),
              static_cast<unsigned long long>(r.executions),
              static_cast<unsigned long long>(r.logs),
              static_cast<unsigned long long>(r.events));
  for (const auto& p : r.problems)
    std::printf("  problem: %s\n", p.c_str());
}

/// Brings the index in line with the logs after RocksDB's repair: an entry
/// is rebuilt by folding its log, and an entry whose log is gone is marked
/// failed so nobody resumes it. Returns what it did, in words.
expected<std::vector<std::string>> rebuild_index(const std::string& dir) {
  auto opened = persistence::event_store::open(persistence::store_options{
    dir, true, false});
  if (!opened)
    return std::move(opened.error());
  auto& store = **opened;
  // First, so that the half of a killed import is removed, not indexed.
  auto gone = store.erase_killed_imports();
  if (!gone)
    return std::move(gone.error());
  auto logs = persistence::summarize_logs(store);
  if (!logs)
    return std::move(logs.error());
  auto index = store.list(execution_filter{});
  if (!index)
    return std::move(index.error());
  std::map<std::string, execution_info> by_id;
  for (auto& info : *index)
    by_id[info.id] = info;
  std::vector<std::string> notes = std::move(*gone);
  for (const auto& [id, log] : *logs) {
    if (log.first_type != "execution_submitted")
      continue;
    auto entry = by_id.find(id);
    if (entry != by_id.end() && entry->second.last_seq == log.last_seq)
      continue;
    auto events = store.read(id, 1, 0);
    if (!events)
      return std::move(events.error());
    auto folded = workflow::fold_log(*events);
    if (!folded) {
      notes.push_back("execution " + id + ": its log of "
                      + std::to_string(log.events)
                      + " events cannot be folded ("
                      + message_of(folded.error())
                      + "); index entry left as it was");
      continue;
    }
    append_request req;
    req.index.push_back(folded->info());
    auto& info = req.index.back();
    if (entry == by_id.end())
      notes.push_back("execution " + id + ": index entry rebuilt from its "
                      + std::to_string(log.events) + " events (status "
                      + info.status + ")");
    else
      notes.push_back("execution " + id + ": events "
                      + std::to_string(log.last_seq + 1) + ".."
                      + std::to_string(entry->second.last_seq)
                      + " lost; index entry rebuilt from the "
                      + std::to_string(log.events) + " left (status "
                      + info.status + ")");
    if (auto written = store.append(req); !written)
      return std::move(written.error());
  }
  for (auto& [id, info] : by_id) {
    if (logs->count(id) > 0 || info.last_seq == 0)
      continue;
    notes.push_back("execution " + id + ": all of its "
                    + std::to_string(info.last_seq)
                    + " events lost; marked failed");
    append_request req;
    info.status = "failed";
    info.error = "its events were lost; the store was repaired";
    info.last_seq = 0;
    req.index.push_back(info);
    if (auto written = store.append(req); !written)
      return std::move(written.error());
  }
  return notes;
}

} // namespace

int cmd_check(const std::string& dir, bool json_out) {
  auto report = persistence::check_store(dir);
  if (!report) {
    print_error(describe(report.error()));
    return exit_failed;
  }
  if (json_out)
    std::printf("%s\n", dump_json(to_json_report(*report)).c_str());
  else
    print_report(*report);
  return report->ok() ? exit_ok : exit_failed;
}

int cmd_repair(const std::string& dir, bool json_out) {
  auto repaired = persistence::repair_store(dir);
  if (!repaired) {
    print_error(describe(repaired.error()));
    return exit_failed;
  }
  auto notes = rebuild_index(dir);
  if (!notes) {
    print_error("repair store '" + dir
                + "': rebuilding the index: " + describe(notes.error()));
    return exit_failed;
  }
  auto report = persistence::check_store(dir);
  if (!report) {
    print_error(describe(report.error()));
    return exit_failed;
  }
  if (json_out) {
    auto j = to_json_report(*report);
    j["set_aside"] = repaired->lost_files;
    j["lost"] = repaired->lost;
    j["rebuilt"] = *notes;
    std::printf("%s\n", dump_json(json{{"type", "repaired"},
                                        {"check", j}})
                          .c_str());
  } else {
    for (const auto& f : repaired->lost_files)
      std::printf("moved to lost/: %s\n", f.c_str());
    for (const auto& l : repaired->lost)
      std::printf("lost: %s\n", l.c_str());
    for (const auto& n : *notes)
      std::printf("%s\n", n.c_str());
    if (repaired->lost_files.empty() && repaired->lost.empty()
        && notes->empty())
      std::printf("nothing lost that the index knew of\n");
    std::printf("(WAL files and the old MANIFEST are moved there after "
                "their intact records were salvaged; RocksDB's LOG in %s "
                "lists what it dropped)\n",
                dir.c_str());
    print_report(*report);
  }
  return report->ok() ? exit_ok : exit_failed;
}

} // namespace cadre::runtime::cli
