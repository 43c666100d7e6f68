// A workflow file as `cadre validate` and `cadre run` read it: YAML (or
// JSON) text -> parsed, then validated (Lua expressions compiled, schemas
// checked); a valid one then runs in the execution machine, every task
// answered at once, so its conditions, templates, map items and output are
// evaluated. Any outcome but a crash, hang or leak is fine.
#include <cstddef>
#include <cstdint>
#include <deque>
#include <string>

#include <caf/error.hpp>

#include "cadre/messages/error.hpp"
#include "cadre/workflow/definition.hpp"
#include "cadre/workflow/machine.hpp"

namespace {

using namespace cadre;

const json& run_input() {
  static const json in = json::parse(R"({
    "name": "ada", "n": 3, "list": [1, 2, "x"], "map": {"k": null},
    "text": "a,b;c", "shout": true
  })");
  return in;
}

// Answers every action of the execution until it ends or 256 were
// answered; every third task attempt fails (retries, fallbacks), and the
// execution times out if it has not ended by then.
void run(const json& doc) {
  workflow::machine m{"e-1"};
  int64_t now = 1'700'000'000'000'000;
  auto first = m.submit(doc, run_input(), "", now);
  if (!first)
    return;
  std::deque<workflow::action> todo(first->actions.begin(),
                                    first->actions.end());
  for (int n = 0; n < 256 && !todo.empty() && !m.finished(); ++n) {
    auto a = std::move(todo.front());
    todo.pop_front();
    now += 1000;
    workflow::step next;
    switch (a.kind) {
      case workflow::action::dispatch:
      case workflow::action::run_agent:
        if (n % 3 == 2)
          next = m.failed(a.key, a.attempt,
                          make_error(errc::tool_failed, "fuzz"), 0.5, now);
        else
          next = m.succeeded(a.key, a.attempt,
                             json{{"text", "out"}, {"items", {1, 2}}}, 1,
                             now);
        break;
      case workflow::action::retry_timer:
        next = m.retry_due(a.key, a.attempt, now);
        break;
      case workflow::action::deadline_timer:
        if (n % 5 == 4)
          next = m.deadline_due(a.key, a.attempt, now);
        break;
      case workflow::action::execution_timer:
        break; // fires below, if the execution is still running
      case workflow::action::waiting_human:
        if (auto s = m.human_answer(a.task_id, json{{"ok", true}}, now))
          next = std::move(*s);
        else
          next = m.cancel("fuzz", now);
        break;
    }
    todo.insert(todo.end(), next.actions.begin(), next.actions.end());
  }
  if (!m.finished())
    (void) m.execution_timed_out(now + 1000);
  (void) m.view();
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string text(reinterpret_cast<const char*>(data), size);
  auto res = workflow::parse_text(text, "fuzz.yaml", {});
  for (auto& d : res.errors)
    (void) d.to_string();
  if (!res.def)
    return 0;
  // A valid definition must load again from its recorded document, as a
  // resume does.
  if (!workflow::load_document(res.def->document))
    __builtin_trap();
  run(res.def->document);
  return 0;
}
