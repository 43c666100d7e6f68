#include "cadre/runtime/progress.hpp"
#include "cadre/messages/json_text.hpp"
#include "cadre/messages/utf8.hpp"
#include "cli/output.hpp"

#include <algorithm>
#include <chrono>
#include <optional>

#include <sys/ioctl.h>
#include <unistd.h>

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

// Enough of an agent's text for the widest terminal line.
constexpr size_t max_stream_tail = 1024;

// The number of characters (code points) of UTF-8 `s`.
size_t columns(std::string_view s) {
  return static_cast<size_t>(std::count_if(s.begin(), s.end(), [](char c) {
    return (static_cast<unsigned char>(c) & 0xc0) != 0x80;
  }));
}

// The last `n` characters of UTF-8 `s`.
std::string_view last_columns(std::string_view s, size_t n) {
  auto i = s.size();
  for (size_t seen = 0; i > 0; --i)
    if ((static_cast<unsigned char>(s[i - 1]) & 0xc0) != 0x80
        && ++seen == n + 1)
      break;
  return s.substr(i);
}

size_t terminal_columns(std::FILE* f) {
  if (f == nullptr || !isatty(fileno(f)))
    return 0;
  winsize ws{};
  if (ioctl(fileno(f), TIOCGWINSZ, &ws) != 0 || ws.ws_col == 0)
    return 80;
  return ws.ws_col;
}

} // namespace

// -- token_view ---------------------------------------------------------------

bool token_view::add(const event& ev) {
  const auto& p = ev.payload.get();
  if (ev.type == "agent_token" || ev.type == "token") {
    if (!p.is_object())
      return false;
    auto id = p.value("agent_id", std::string{});
    auto call = p.value("call", int64_t{0});
    if (auto e = ended_.find(id); e != ended_.end() && call <= e->second)
      return false;
    auto i = std::find_if(live_.begin(), live_.end(),
                          [&](const stream& s) { return s.agent_id == id; });
    if (i == live_.end()) {
      live_.push_back(stream{id, p.value("agent", id), ev.execution_id,
                             p.value("task", std::string{}), call, {}});
      i = live_.end() - 1;
    } else if (i->call != call) {
      i->call = call;
      i->text.clear();
    }
    cli::append_visible(i->text, p.value("text", std::string{}));
    if (i->text.size() > 2 * max_stream_tail) {
      auto keep = last_columns(i->text, max_stream_tail);
      i->text = std::string{keep};
    }
    return true;
  }
  // The reply in the agent's log, or the end of its turn or task: the
  // streamed text is complete (and has its own line when it is shown).
  auto ended = [&](const stream& s) {
    if (ev.execution_id == "agent:" + s.agent_id)
      return ev.type == "llm_responded" || ev.type == "agent_turn_completed"
             || ev.type == "agent_turn_failed";
    return ev.execution_id == s.execution && p.is_object()
           && p.value("task", std::string{}) == s.task
           && (ev.type == "task_completed" || ev.type == "task_failed");
  };
  auto before = live_.size();
  live_.erase(std::remove_if(live_.begin(), live_.end(),
                             [&](const stream& s) {
                               if (!ended(s))
                                 return false;
                               ended_[s.agent_id] = s.call;
                               return true;
                             }),
              live_.end());
  return live_.size() != before;
}

std::vector<std::string> token_view::lines(size_t width) const {
  std::vector<std::string> out;
  for (const auto& s : live_) {
    auto head = "  … " + s.agent + ": ";
    auto room = width > columns(head) ? width - columns(head) : 0;
    if (room < 4) {
      out.push_back(utf8_excerpt(head, width > 3 ? width - 3 : 0));
      continue;
    }
    std::string_view text = s.text;
    if (columns(text) <= room)
      out.push_back(head + s.text);
    else
      out.push_back(head + "…" + std::string{last_columns(text, room - 1)});
  }
  return out;
}

// -- progress_printer ---------------------------------------------------------

progress_printer::progress_printer(progress_style style, std::FILE* human,
                                   std::FILE* machine, size_t live_width)
  : style_(style),
    human_(human),
    machine_(machine),
    live_width_(live_width == terminal ? terminal_columns(human)
                                       : live_width) {
  // Too narrow for a useful line of text.
  if (live_width_ < 20)
    live_width_ = 0;
}

progress_printer::~progress_printer() {
  erase_live();
}

// The streaming lines sit below the others, the cursor after the last one:
// back to the first, then clear to the end of the screen.
void progress_printer::erase_live() {
  if (drawn_ == 0)
    return;
  std::string seq = "\r";
  if (drawn_ > 1)
    seq += "\x1b[" + std::to_string(drawn_ - 1) + "A";
  seq += "\x1b[J";
  std::fputs(seq.c_str(), human_);
  drawn_ = 0;
}

void progress_printer::draw_live() {
  // One column short: a full line would wrap on some terminals.
  auto lines = tokens_.lines(live_width_ - 1);
  std::string out;
  for (size_t i = 0; i < lines.size(); ++i)
    out += (i > 0 ? "\n" : "") + lines[i];
  std::fputs(out.c_str(), human_);
  drawn_ = lines.size();
}

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
           + ev.execution_id + " "
           // An item's key is quoted: a shell would glob "task[0]".
           + (p.contains("item") ? "'" + key_of(p) + "'" : key_of(p))
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
  auto live_changed = live_width_ > 0 && tokens_.add(ev);
  if (line.empty() && !live_changed)
    return;
  erase_live();
  if (!line.empty())
    std::fputs((line + "\n").c_str(), human_);
  if (live_width_ > 0)
    draw_live();
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
