#include "cli/agent_commands.hpp"

#include <cstdio>

#include "cadre/messages/json_text.hpp"
#include "cadre/messages/utf8.hpp"
#include "cadre/persistence/event_store.hpp"
#include "cadre/workflow/agent_machine.hpp"
#include "cli/output.hpp"
#include "cli/replay_commands.hpp"

namespace cadre::runtime::cli {

namespace {

// A message's text on one visible line, cut to `max` bytes: the listing
// is a glance, `--json` has every byte.
std::string one_line(const std::string& text, size_t max = 160) {
  std::string out;
  append_visible(out, text);
  return utf8_excerpt(out, max);
}

void print_message(const json& m) {
  auto role = m.value("role", std::string{"?"});
  std::string text = m.value("content", std::string{});
  if (auto calls = m.find("tool_calls");
      calls != m.end() && calls->is_array() && !calls->empty()) {
    std::string names;
    for (const auto& c : *calls)
      names += (names.empty() ? "" : ", ") + c.value("name", std::string{});
    text += (text.empty() ? "" : " ") + std::string{"[calls "} + names + "]";
  }
  std::printf("  %-10s %s\n", (role + ":").c_str(), one_line(text).c_str());
}

} // namespace

expected<json> agent_memory(const persistence::event_store& store,
                            const std::string& id) {
  // The default bound of kept turns, as a node without llm config has: it
  // decides which finished answers a turn can still be given, not the view.
  workflow::agent_machine m{id};
  // Paged, so a long-lived agent's log is never held whole.
  constexpr uint64_t page = 1024;
  for (uint64_t from = 1;;) {
    auto evs = store.read(m.log(), from, page);
    if (!evs)
      return evs.error();
    for (const auto& ev : *evs)
      m.apply(ev);
    if (evs->size() < page)
      break;
    from = evs->back().seq + 1;
  }
  if (m.last_seq() == 0)
    return make_error(errc::not_found, "agent " + id + " has no log");
  return m.view();
}

void print_agent(const json& view, bool json_out) {
  if (json_out) {
    std::printf("%s\n", dump_json(view).c_str());
    return;
  }
  auto messages = view.value("messages", json::array());
  std::printf("agent %s  (log %s, %llu events)\n",
              view.value("agent_id", std::string{}).c_str(),
              view.value("log", std::string{}).c_str(),
              static_cast<unsigned long long>(view.value("seq", uint64_t{0})));
  std::printf("turns: %llu finished\n",
              static_cast<unsigned long long>(view.value("turns", uint64_t{0})));
  auto earlier_turns = view.value("earlier_turns", uint64_t{0});
  auto earlier = view.value("earlier_messages", uint64_t{0});
  if (earlier_turns > 0 || earlier > 0)
    std::printf("earlier: %llu turns, %llu messages (in the log only)\n",
                static_cast<unsigned long long>(earlier_turns),
                static_cast<unsigned long long>(earlier));
  auto summary = view.value("summary", std::string{});
  if (!summary.empty())
    std::printf("summary (folds %llu messages): %s\n",
                static_cast<unsigned long long>(
                  view.value("summarized", uint64_t{0})),
                one_line(summary).c_str());
  std::printf("messages: %zu\n", messages.size());
  for (const auto& m : messages)
    print_message(m);
  auto active = view.find("active");
  if (active != view.end() && active->is_object()) {
    auto msgs = active->value("messages", json::array());
    std::printf("active turn %s: %zu messages\n",
                one_line(active->value("turn", std::string{})).c_str(),
                msgs.size());
    for (const auto& m : msgs)
      print_message(m);
  }
}

int cmd_agent(const persistence::event_store& store, const std::string& id,
              bool json_out) {
  auto view = agent_memory(store, id);
  if (!view) {
    print_error(message_of(view.error()));
    return replay_exit(view.error());
  }
  print_agent(*view, json_out);
  return exit_ok;
}

} // namespace cadre::runtime::cli
