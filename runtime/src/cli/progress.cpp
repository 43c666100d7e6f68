#include "cadre/runtime/progress.hpp"
#include "cadre/messages/json_text.hpp"

#include <chrono>
#include <optional>

#include <caf/actor_system.hpp>
#include <caf/typed_event_based_actor.hpp>

namespace cadre::runtime {

namespace {

std::string pad(std::string s, size_t n) {
  if (s.size() < n)
    s.append(n - s.size(), ' ');
  return s;
}

std::string ms_text(int64_t us) {
  char buf[32];
  if (us < 1000)
    std::snprintf(buf, sizeof(buf), "%lld us", static_cast<long long>(us));
  else if (us < 10'000'000)
    std::snprintf(buf, sizeof(buf), "%.1f ms", static_cast<double>(us) / 1e3);
  else
    std::snprintf(buf, sizeof(buf), "%.1f s", static_cast<double>(us) / 1e6);
  return buf;
}

std::string short_json(const json& x, size_t max = 60) {
  auto s = dump_json(x);
  if (s.size() > max)
    s = s.substr(0, max - 3) + "...";
  return s;
}

struct progress_state {
  static inline const char* name = "cadre.progress";
  // Not an aggregate: CAF would try to build it from the actor pointer.
  progress_state() = default;
  std::optional<progress_printer> printer;
};

std::string key_of(const json& p) {
  auto key = p.value("task", std::string{});
  if (p.contains("item"))
    key += "[" + std::to_string(p["item"].get<int>()) + "]";
  return key;
}

} // namespace

std::string describe_event(const event& ev) {
  const auto& p = ev.payload.get();
  auto task = pad(key_of(p), 18);
  if (ev.type == "execution_submitted")
    return "  execution " + ev.execution_id + " of "
           + p.value("workflow", std::string{}) + " started";
  if (ev.type == "task_dispatched") {
    if (p.contains("item"))
      return {};
    auto attempt = p.value("attempt", 1);
    return "▶ " + task + "started"
           + (attempt > 1 ? " (attempt " + std::to_string(attempt) + ")"
                          : std::string{});
  }
  if (ev.type == "task_completed") {
    if (p.contains("item"))
      return {};
    if (p.value("by", std::string{}) == "human")
      return "✓ " + task + "answered " + short_json(p["output"]);
    return "✓ " + task + "done";
  }
  if (ev.type == "task_failed") {
    auto msg = p.value("code", std::string{}) + ": "
               + p.value("message", std::string{});
    if (p.contains("retry_in_ms"))
      return "↻ " + task + "attempt " + std::to_string(p.value("attempt", 1))
             + " failed (" + msg + "), retry in "
             + std::to_string(p["retry_in_ms"].get<int64_t>()) + " ms";
    return "✗ " + task + "failed (" + msg + ")";
  }
  if (ev.type == "task_redispatched") {
    auto again = "↻ " + task + "attempt " + std::to_string(p.value("attempt", 1))
                 + " sent again: ";
    if (p.value("cause", std::string{}) == "node_lost")
      return again + "node " + p.value("node", std::string{}) + " lost";
    return again + "the node restarted";
  }
  // Node events: the cluster's member list as this node sees it.
  if (ev.type.rfind("member_", 0) == 0)
    return "◆ node " + p.value("node", std::string{}) + " "
           + ev.type.substr(7) + " (" + p.value("reason", std::string{})
           + ")";
  if (ev.type == "task_skipped")
    return "- " + task + "skipped (condition false)";
  if (ev.type == "map_started")
    return "▶ " + task + "map over " + std::to_string(p["items"].size())
           + " items";
  if (ev.type == "fallback_started")
    return "↪ " + task + "falls back to "
           + p.value("fallback", std::string{});
  if (ev.type == "human_requested")
    return "⏸ " + task + "waiting for a person: "
           + short_json(p.value("prompt", json{}), 80) + "\n    answer: cadre input "
           + ev.execution_id + " " + p.value("task", std::string{})
           + " VALUE";
  if (ev.type == "execution_completed")
    return "✓ execution " + ev.execution_id + " completed";
  if (ev.type == "execution_failed")
    return "✗ execution " + ev.execution_id + " failed: "
           + p.value("message", std::string{});
  if (ev.type == "execution_cancelled")
    return "✗ execution " + ev.execution_id + " cancelled";
  // An agent's log ("agent:<id>"): what it thinks and does.
  if (ev.type == "llm_responded") {
    const auto& m = p.value("response", json::object()).value("message",
                                                              json::object());
    auto text = m.value("content", std::string{});
    std::string line = "  … " + ev.execution_id + " call "
                       + std::to_string(p.value("call", 0))
                       + (p.value("cached", false) ? " (cached)" : "") + ": "
                       + short_json(text, 70);
    if (auto calls = m.find("tool_calls");
        calls != m.end() && !calls->empty())
      line += " -> " + std::to_string(calls->size()) + " tool call(s)";
    return line;
  }
  if (ev.type == "tool_called")
    return "    → " + p.value("name", std::string{}) + " "
           + short_json(p.value("arguments", json{}));
  if (ev.type == "tool_result")
    return "    ← " + p.value("name", std::string{}) + " "
           + (p.contains("error")
                ? "error: " + p.value("error", std::string{})
                : short_json(p.value("output", json{})));
  if (ev.type == "agent_turn_failed")
    return "  ✗ " + ev.execution_id + ": " + p.value("message", std::string{});
  return {};
}

void progress_printer::print(const event& ev) {
  if (style_ == progress_style::quiet)
    return;
  if (style_ == progress_style::json) {
    json j = ev;
    std::fputs((dump_json(j) + "\n").c_str(), machine_);
    return;
  }
  auto line = describe_event(ev);
  const auto& p = ev.payload.get();
  auto key = key_of(p);
  if (ev.type == "task_dispatched" || ev.type == "map_started")
    started_.emplace(key, ev.time_us);
  if ((ev.type == "task_completed" || ev.type == "task_failed")
      && !p.contains("item")) {
    if (auto i = started_.find(key); i != started_.end()) {
      line += "  " + ms_text(ev.time_us - i->second);
      if (ev.type == "task_completed")
        started_.erase(i);
    }
  }
  if (!line.empty())
    std::fputs((line + "\n").c_str(), human_);
}

void progress_printer::flush() {
  std::fflush(machine_);
}

void progress_mark::printed(const std::string& id, uint64_t seq) {
  {
    std::lock_guard<std::mutex> guard{mtx_};
    auto& at = seqs_[id];
    at = std::max(at, seq);
  }
  cv_.notify_all();
}

bool progress_mark::wait(const std::string& id, uint64_t seq,
                         std::chrono::milliseconds timeout) {
  std::unique_lock<std::mutex> guard{mtx_};
  return cv_.wait_for(guard, timeout, [&] {
    auto i = seqs_.find(id);
    return i != seqs_.end() && i->second >= seq;
  });
}

event_sink_actor spawn_progress(caf::actor_system& sys, progress_style style,
                                std::shared_ptr<progress_mark> mark) {
  auto impl = [](event_sink_actor::stateful_pointer<progress_state> self,
                 progress_style style,
                 std::shared_ptr<progress_mark> mark)
    -> event_sink_actor::behavior_type {
    self->state.printer.emplace(style);
    return {
      [=](event_atom, const std::vector<event>& events) {
        auto& printer = *self->state.printer;
        for (auto& ev : events)
          printer.print(ev);
        printer.flush();
        if (mark)
          for (auto& ev : events)
            if (ev.seq > 0)
              mark->printed(ev.execution_id, ev.seq);
      },
    };
  };
  return sys.spawn(impl, style, std::move(mark));
}

} // namespace cadre::runtime
