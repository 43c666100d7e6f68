#include "cli/schedule_commands.hpp"

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <map>

#include "cadre/persistence/event_store.hpp"
#include "cadre/schedule/schedule.hpp"
#include "cli/output.hpp"

namespace cadre::runtime::cli {

namespace {

std::string when_of(const json& s) {
  if (s.contains("every"))
    return "every " + s.value("every", std::string{});
  return "cron " + s.value("cron", std::string{});
}

std::string last_of(const json& s) {
  auto i = s.find("last");
  if (i == s.end() || !i->is_object())
    return "-";
  const auto& last = *i;
  auto out = "#" + std::to_string(last.value("firing", uint64_t{0})) + " "
             + last.value("due", std::string{});
  if (last.contains("execution"))
    out += " " + last.value("execution", std::string{}) + " "
           + last.value("status", std::string{"?"});
  else if (last.contains("error"))
    out += " refused: " + last.value("error", std::string{});
  else
    out += " submitting";
  return out;
}

} // namespace

void print_schedules(const json& list, bool json_out) {
  if (json_out) {
    std::printf("%s\n", list.dump().c_str());
    return;
  }
  if (list.empty()) {
    std::fprintf(stderr, "no schedules (the config's `schedules` section "
                         "is empty)\n");
    return;
  }
  std::printf("%-16s %-20s %-22s %-8s %-7s %-20s %s\n", "NAME", "WORKFLOW",
              "WHEN", "MISSED", "OVERLAP", "NEXT (UTC)", "LAST");
  for (const auto& s : list) {
    auto workflow = std::filesystem::path{s.value("workflow", std::string{})}
                      .filename()
                      .string();
    std::printf("%-16s %-20s %-22s %-8s %-7s %-20s %s\n",
                s.value("name", std::string{}).c_str(), workflow.c_str(),
                when_of(s).c_str(), s.value("missed", std::string{}).c_str(),
                s.value("overlap", std::string{}).c_str(),
                s.value("next_due", std::string{"-"}).c_str(),
                last_of(s).c_str());
    if (auto q = s.find("queued"); q != s.end())
      std::printf("%-16s queued: #%llu due %s\n", "",
                  static_cast<unsigned long long>(
                    q->value("firing", uint64_t{0})),
                  q->value("due", std::string{}).c_str());
  }
}

int cmd_schedules(const persistence::event_store* store,
                  const config::node_config& cfg, bool json_out) {
  using namespace std::chrono;
  auto now = duration_cast<microseconds>(
               system_clock::now().time_since_epoch())
               .count();
  // In name order, as the server lists them.
  std::map<std::string, json> by_name;
  for (const auto& spec : cfg.schedules) {
    auto m = schedule::machine::make(spec);
    if (!m) {
      print_error(message_of(m.error()));
      return exit_usage;
    }
    if (store) {
      auto evs = store->read(m->log(), 1, 0);
      if (!evs) {
        print_error(describe(evs.error()));
        return exit_failed;
      }
      for (const auto& ev : *evs)
        if (auto folded = m->apply(ev); !folded) {
          print_error(describe(folded.error()));
          return exit_failed;
        }
    }
    auto v = m->view(now);
    if (auto last = v.find("last");
        store && last != v.end() && last->contains("execution"))
      if (auto info = store->get((*last)["execution"].get<std::string>()))
        (*last)["status"] = info->status;
    by_name[spec.name] = std::move(v);
  }
  json list = json::array();
  for (auto& [name, v] : by_name)
    list.push_back(std::move(v));
  print_schedules(list, json_out);
  return exit_ok;
}

} // namespace cadre::runtime::cli
