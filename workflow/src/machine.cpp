#include "cadre/workflow/machine.hpp"

#include <algorithm>
#include <cctype>
#include <charconv>
#include <cmath>
#include <map>
#include <set>
#include <string_view>
#include <unordered_map>
#include <utility>

#include "cadre/lang/lua_sandbox.hpp"
#include "cadre/lang/secrets.hpp"
#include "cadre/messages/json_text.hpp"
#include "cadre/workflow/replay.hpp"

namespace cadre::workflow {

namespace {

enum class unit_status : uint8_t {
  blocked,    // waiting for dependencies (or never started)
  running,    // dispatched, no result yet
  retry_wait, // failed, a retry timer is pending
  human_wait, // a person is asked
  done,
  failed,
  skipped,
};

// One runnable thing: a task, or one item of a map task.
struct unit {
  unit_status status = unit_status::blocked;
  uint32_t attempt = 0;
  json input;
  json output;
  json error; // {code, message} of the last failure
  int64_t retry_at_us = 0;
  // Starts of the node that dispatched the running attempt again.
  uint32_t restarts = 0;
  json usage;  // from the completion event (agent turns)
  json prompt; // human tasks and items: what the person was asked
  // A sub-workflow task, or an item of a map of them: the sub-workflow of
  // its current attempt, folded inside this execution (its units are keyed
  // "task/inner", "task[i]/inner", docs/workflows.md#map-tasks). Shared only so that
  // units stay copyable; one unit owns it.
  std::shared_ptr<machine> child;
};

struct task_rt : unit {
  size_t remaining_deps = 0;
  bool fallback_only = false; // a fallback target: runs only on failure
  int fallback_for = -1;      // owner index while running as a fallback
  // kind map
  bool map_started = false;
  json item_values; // the list the map runs over
  std::vector<unit> items;
  size_t next_item = 0;
  size_t in_progress = 0;
  size_t done_items = 0;
};

bool terminal(unit_status s) {
  return s == unit_status::done || s == unit_status::failed
         || s == unit_status::skipped;
}

// A dotted path such as input.items[2].name or tasks.fetch.output, resolved
// without Lua. Returns nullopt when `expr` is not such a path.
std::optional<std::vector<json>> parse_path(std::string_view expr) {
  std::vector<json> segs;
  size_t i = 0;
  auto skip_ws = [&] {
    while (i < expr.size() && std::isspace(static_cast<unsigned char>(expr[i])))
      ++i;
  };
  auto ident = [&]() -> std::optional<std::string> {
    if (i >= expr.size()
        || !(std::isalpha(static_cast<unsigned char>(expr[i]))
             || expr[i] == '_'))
      return std::nullopt;
    auto start = i;
    while (i < expr.size()
           && (std::isalnum(static_cast<unsigned char>(expr[i]))
               || expr[i] == '_'))
      ++i;
    return std::string{expr.substr(start, i - start)};
  };
  skip_ws();
  auto first = ident();
  if (!first || *first == "true" || *first == "false" || *first == "nil"
      || *first == "not")
    return std::nullopt;
  segs.emplace_back(*first);
  while (i < expr.size()) {
    if (expr[i] == '.') {
      ++i;
      auto name = ident();
      if (!name)
        return std::nullopt;
      segs.emplace_back(*name);
    } else if (expr[i] == '[') {
      ++i;
      if (i < expr.size() && expr[i] == '"') {
        auto end = expr.find('"', i + 1);
        if (end == std::string_view::npos || end + 1 >= expr.size()
            || expr[end + 1] != ']')
          return std::nullopt;
        segs.emplace_back(std::string{expr.substr(i + 1, end - i - 1)});
        i = end + 2;
      } else {
        auto start = i;
        while (i < expr.size() && std::isdigit(static_cast<unsigned char>(expr[i])))
          ++i;
        if (start == i || i >= expr.size() || expr[i] != ']')
          return std::nullopt;
        // An index past int64 is no path of ours; Lua reads it (as nil).
        int64_t index = 0;
        auto digits = expr.substr(start, i - start);
        if (std::from_chars(digits.data(), digits.data() + digits.size(),
                            index).ec != std::errc{})
          return std::nullopt;
        segs.emplace_back(index);
        ++i;
      }
    } else {
      break;
    }
  }
  skip_ws();
  if (i != expr.size())
    return std::nullopt;
  return segs;
}

const json& null_json() {
  static const json null;
  return null;
}

const json& descend(const json& root, const std::vector<json>& segs,
                    size_t from) {
  const json* cur = &root;
  for (size_t k = from; k < segs.size(); ++k) {
    const auto& s = segs[k];
    if (s.is_string()) {
      if (!cur->is_object())
        return null_json();
      auto it = cur->find(s.get_ref<const std::string&>());
      if (it == cur->end())
        return null_json();
      cur = &*it;
    } else {
      // Lua tables are 1-based; so are these paths.
      auto idx = s.get<int64_t>();
      if (cur->is_array() && idx >= 1
          && static_cast<size_t>(idx) <= cur->size())
        cur = &(*cur)[static_cast<size_t>(idx - 1)];
      else if (cur->is_object() && cur->contains(std::to_string(idx)))
        cur = &(*cur)[std::to_string(idx)];
      else
        return null_json();
    }
  }
  return *cur;
}

std::string trim(std::string_view s) {
  size_t b = 0;
  size_t e = s.size();
  while (b < e && std::isspace(static_cast<unsigned char>(s[b])))
    ++b;
  while (e > b && std::isspace(static_cast<unsigned char>(s[e - 1])))
    --e;
  return std::string{s.substr(b, e - b)};
}

bool truthy(const json& x) {
  return !(x.is_null() || (x.is_boolean() && !x.get<bool>()));
}

std::string text_of(const json& x) {
  return x.is_string() ? x.get<std::string>() : dump_json(x);
}

// Adds an agent's recorded usage (tokens, cost, calls) into `sum`.
void add_usage(json& sum, const json& usage) {
  if (!usage.is_object())
    return;
  if (sum.is_null())
    sum = json{{"input_tokens", 0}, {"output_tokens", 0},
               {"cost_usd", 0.0}, {"llm_calls", 0}, {"tool_calls", 0}};
  for (auto& [k, v] : sum.items())
    if (auto i = usage.find(k); i != usage.end() && i->is_number()) {
      if (v.is_number_float())
        v = v.get<double>() + i->get<double>();
      else
        v = v.get<int64_t>() + i->get<int64_t>();
    }
}

// A string_view key: the object's comparator takes it without a strlen per
// comparison (the fold looks up several keys of every event).
const json* find_key(const json& obj, std::string_view key) {
  if (!obj.is_object())
    return nullptr;
  auto it = obj.find(key);
  return it == obj.end() ? nullptr : &*it;
}

// {task, item} of a unit's event (no item for the task itself). Built in
// place: an initializer list copies every element again.
json unit_payload(const task_def& td, int item) {
  json p(json::value_t::object);
  auto& fields = p.get_ref<json::object_t&>();
  fields.emplace("task", td.id);
  if (item >= 0)
    fields.emplace("item", item);
  return p;
}

// task_dispatched of a unit that runs `runs` (machine::event_of builds a
// replay's unbuilt ones with it too). Fields put in place (one per item of
// a big map): operator[] would make a key string to look up first.
json dispatch_payload(const task_def& td, task_kind runs, int item,
                      uint32_t attempt, json input) {
  auto p = unit_payload(td, item);
  auto& fields = p.get_ref<json::object_t&>();
  fields.emplace("attempt", attempt);
  if (runs == task_kind::agent)
    fields.emplace("agent", td.agent);
  else if (runs == task_kind::workflow)
    fields.emplace("workflow", td.workflow.value("name", std::string{}));
  else
    fields.emplace("tool", td.tool);
  fields.emplace("input", std::move(input));
  return p;
}

// task_completed of a map item's attempt (machine::succeeded's, and a
// replay's unbuilt one).
json item_completion_payload(const task_def& td, int item, uint32_t attempt,
                             json output, const json& usage) {
  auto p = unit_payload(td, item);
  auto& fields = p.get_ref<json::object_t&>();
  fields.emplace("attempt", attempt);
  fields.emplace("output", std::move(output));
  if (!usage.is_null())
    fields.emplace("usage", usage);
  return p;
}

} // namespace

std::pair<std::string, int> split_key(const std::string& key) {
  auto lb = key.find('[');
  if (lb == std::string::npos || key.back() != ']')
    return {key, -1};
  // Anything but digits that fit is no item (the key may come from a peer).
  int item = -1;
  auto first = key.data() + lb + 1;
  auto last = key.data() + key.size() - 1;
  auto [end, ec] = std::from_chars(first, last, item);
  if (ec != std::errc{} || end != last || first == last || item < 0)
    return {key, -1};
  return {key.substr(0, lb), item};
}

// Map items per part of a paged snapshot: a step changes a few pages of a
// big map, and a reader reads each page once.
constexpr size_t snapshot_page_items = 256;

std::pair<std::string, uint32_t> split_run(const std::string& segment) {
  auto at = segment.find('@');
  if (at == std::string::npos)
    return {segment, 1};
  uint32_t attempt = 0;
  auto digits = std::string_view{segment}.substr(at + 1);
  auto [end, ec] = std::from_chars(digits.data(),
                                   digits.data() + digits.size(), attempt);
  if (ec != std::errc{} || end != digits.data() + digits.size())
    attempt = 0;
  return {segment.substr(0, at), attempt};
}

struct machine::state {
  std::string id;
  uint64_t seq = 0;
  bool started = false;
  std::optional<definition> def;
  json input;
  std::vector<task_rt> tasks;
  std::vector<std::vector<int>> dependents;
  std::string status = "running";
  json output;
  std::string error;
  int64_t created_us = 0;
  int64_t updated_us = 0;
  size_t unfinished = 0;  // non-fallback tasks not yet terminal
  size_t human_waits = 0; // tasks waiting for a person
  size_t children = 0;    // sub-workflows started (tasks and map items)
  size_t completions = 0;
  // A fork's edits (its execution_forked event): results and answers that
  // stand in for running a task or asking a person.
  std::map<std::string, json> fork_outputs;
  std::map<std::string, json> fork_answers;
  // A fork's parent, and the tasks its edits run again (their agent turns
  // ask the model anew instead of reusing the parent's replies).
  std::string forked_from;
  std::set<std::string> fork_rerun;
  // Set once the execution failed while its on_failure tasks run: the
  // failure, {task, code, message}, which their templates read as
  // `failure`. Only those tasks' results count from then on.
  json failing;
  std::unique_ptr<tools::lua_sandbox> lua;
  // Paged snapshots (machine::paged_snapshot): where each part of the
  // state was last written, as [n, seq] of snapshot_log(id, n); {0, 0}
  // once it changed (the next snapshot writes it again).
  using part_ref = std::pair<uint64_t, uint64_t>;
  struct task_parts {
    part_ref head{};
    std::vector<part_ref> pages;
  };
  uint64_t snapshot_every = 0;
  part_ref head_ref{};
  std::vector<task_parts> parts;

  // Unit `item` of `task` (-1: the task itself) changed. An event of the
  // task itself may change its items too (finishing a map, starting one).
  void touched(int task, int item) {
    if (task < 0 || static_cast<size_t>(task) >= parts.size())
      return;
    auto& tp = parts[static_cast<size_t>(task)];
    if (item < 0) {
      tp = task_parts{};
      return;
    }
    auto page = static_cast<size_t>(item) / snapshot_page_items;
    if (page < tp.pages.size())
      tp.pages[page] = {};
  }
  // machine::replay_only: decisions build no actions.
  bool replay_only = false;
  // machine::replay_only of this machine itself (a sub-workflow's never):
  // tool dispatches and item completions come as step::unbuilt.
  bool unbuilt_decisions = false;
  // The expressions evaluated so far, parsed: a path, or nullopt (Lua).
  std::unordered_map<std::string, std::optional<std::vector<json>>> paths;

  // Sets up the tasks of a started execution (its submission, or the
  // dispatch of an item of a map of sub-workflows).
  void init(definition d, json in, int64_t time_us) {
    head_ref = {};
    parts.clear();
    def = std::move(d);
    input = std::move(in);
    started = true;
    created_us = time_us;
    tasks.assign(def->tasks.size(), task_rt{});
    dependents.assign(def->tasks.size(), {});
    unfinished = 0;
    for (size_t i = 0; i < def->tasks.size(); ++i) {
      const auto& td = def->tasks[i];
      tasks[i].remaining_deps = td.depends_on.size();
      for (const auto& dep : td.depends_on)
        dependents[def->index_of(dep)].push_back(static_cast<int>(i));
      if (!td.fallback.empty())
        tasks[def->index_of(td.fallback)].fallback_only = true;
    }
    for (size_t i = 0; i < tasks.size(); ++i)
      if (!tasks[i].fallback_only && !def->tasks[i].hook)
        ++unfinished;
  }

  // Whether a result for `task` still counts: once the execution fails,
  // only its on_failure tasks go on.
  bool accepts(int task) const {
    return failing.is_null() || def->tasks[task].hook;
  }

  // The sub-workflow state of an item of a map of sub-workflows.
  static state& inner(const unit& u) {
    return *u.child->st_;
  }

  // The unit running a sub-workflow that key `segment` names ("task" for
  // a sub-workflow task, "task[i]" for an item, "@a" for attempt a): its
  // task (-1: none) and item (-1: the task itself).
  // `any_attempt`: no "@a" names the current attempt (a person's answer),
  // else attempt 1.
  std::pair<int, int> nested_item(const std::string& segment,
                                  bool any_attempt) const {
    auto [run, attempt] = split_run(segment);
    if (attempt == 0)
      return {-1, -1};
    bool named = run.size() != segment.size(); // "@a" given
    auto [name, item] = split_key(run);
    auto ti = def ? def->index_of(name) : -1;
    const auto* u = find_unit(ti, item);
    if (!u || !u->child || u->status != unit_status::running
        || (item >= 0 && terminal(tasks[ti].status))
        || (!named && any_attempt ? false : u->attempt != attempt))
      return {-1, -1};
    return {ti, item};
  }

  // People asked, in this execution and in its running sub-workflows.
  size_t waits() const {
    size_t n = failing.is_null() ? human_waits : 0;
    for (size_t i = 0; i < tasks.size(); ++i) {
      if (terminal(tasks[i].status) || !accepts(static_cast<int>(i)))
        continue;
      if (tasks[i].child && tasks[i].status == unit_status::running)
        n += inner(tasks[i]).waits();
      for (const auto& u : tasks[i].items)
        if (u.child && u.status == unit_status::running)
          n += inner(u).waits();
    }
    return n;
  }

  bool finished() const;
  // Finished, or failed with its on_failure tasks running: no other task
  // starts.
  bool halted() const {
    return finished() || !failing.is_null();
  }
  bool finished_or_failed(int task) const;
  // The sum of the tasks' recorded usage (agents' tokens and cost), or null.
  json usage_total() const;

  // The status the index shows: "waiting" while a person is asked.
  // The status an index entry shows: "waiting" while a person is asked,
  // here or in a sub-workflow (walked only when there is one).
  const std::string& shown_status() const {
    static const std::string waiting = "waiting";
    if (std::string_view{status} != "running")
      return status;
    if (children == 0)
      return failing.is_null() && human_waits > 0 ? waiting : status;
    return waits() > 0 ? waiting : status;
  }

  // Closed tasks no longer hold the execution open.
  bool closed(int task) const {
    const auto& t = tasks[task];
    if (t.status == unit_status::failed)
      return def->tasks[task].on_failure != failure_action::fallback;
    return t.status == unit_status::done || t.status == unit_status::skipped;
  }

  // -- template evaluation ----------------------------------------------------

  struct scope {
    int item = -1;
    const json* item_value = nullptr;
  };

  json tasks_env() const {
    json out = json::object();
    for (size_t i = 0; i < tasks.size(); ++i) {
      const auto& t = tasks[i];
      if (t.status == unit_status::done || t.status == unit_status::skipped
          || t.status == unit_status::failed)
        out[def->tasks[i].id] = json{{"output", t.output}};
    }
    return out;
  }

  // What templates know of their execution: its id, so a message can
  // say how to answer it (a replay folds under the same id).
  json execution_env() const {
    return json{{"id", id}};
  }

  expected<json> eval(const std::string& raw, const scope& sc) {
    // A definition has few expressions and a map evaluates one per item:
    // each is parsed once.
    auto known = paths.find(raw);
    if (known == paths.end())
      known = paths.emplace(raw, parse_path(trim(raw))).first;
    if (const auto& path = known->second) {
      const auto& root = (*path)[0].get_ref<const std::string&>();
      if (root == "input")
        return descend(input, *path, 1);
      if (root == "item" && sc.item_value)
        return descend(*sc.item_value, *path, 1);
      if (root == "index" && sc.item >= 0 && path->size() == 1)
        return json(sc.item + 1);
      if (root == "execution")
        return descend(execution_env(), *path, 1);
      if (root == "failure" && !failing.is_null())
        return descend(failing, *path, 1);
      if (root == "tasks" && path->size() >= 2 && (*path)[1].is_string()) {
        auto idx = def->index_of((*path)[1].get_ref<const std::string&>());
        if (idx < 0)
          return json{};
        if (path->size() == 2)
          return json{{"output", tasks[idx].output}};
        if ((*path)[2] == json("output"))
          return descend(tasks[idx].output, *path, 3);
        return json{};
      }
    }
    auto expr = trim(raw);
    if (!lua) {
      auto sb = tools::lua_sandbox::create();
      if (!sb)
        return sb.error();
      lua = std::move(*sb);
    }
    json env{{"input", input}, {"tasks", tasks_env()},
             {"execution", execution_env()}};
    if (sc.item_value) {
      env["item"] = *sc.item_value;
      env["index"] = sc.item + 1;
    }
    if (!failing.is_null())
      env["failure"] = failing;
    return lua->eval(expr, env);
  }

  expected<json> render(const json& tmpl, const scope& sc,
                        const std::string& pointer) {
    if (tmpl.is_string()) {
      const auto& s = tmpl.get_ref<const std::string&>();
      auto open = s.find("{{");
      if (open == std::string::npos)
        return tmpl;
      // The reference stays text: the tool worker fills in the value, so
      // the recorded input never holds it (validation leaves such a
      // string no other expression).
      if (tools::holds_secret_reference(s))
        return tmpl;
      auto close = s.find("}}", open);
      if (open == 0 && close != std::string::npos && close + 2 == s.size()
          && s.find("{{", open + 2) == std::string::npos) {
        auto v = eval(s.substr(2, close - 2), sc);
        if (!v)
          return make_error(code_of(v.error()),
                            pointer + ": " + message_of(v.error()));
        return v;
      }
      std::string out;
      size_t pos = 0;
      while ((open = s.find("{{", pos)) != std::string::npos) {
        close = s.find("}}", open);
        if (close == std::string::npos)
          break;
        out.append(s, pos, open - pos);
        auto v = eval(s.substr(open + 2, close - open - 2), sc);
        if (!v)
          return make_error(code_of(v.error()),
                            pointer + ": " + message_of(v.error()));
        out += text_of(*v);
        pos = close + 2;
      }
      out.append(s, pos, std::string::npos);
      return json(std::move(out));
    }
    if (tmpl.is_object()) {
      json out = json::object();
      for (auto& [k, v] : tmpl.items()) {
        auto r = render(v, sc, pointer + "/" + k);
        if (!r)
          return r;
        out[k] = std::move(*r);
      }
      return out;
    }
    if (tmpl.is_array()) {
      json out = json::array();
      for (size_t i = 0; i < tmpl.size(); ++i) {
        auto r = render(tmpl[i], sc, pointer + "/" + std::to_string(i));
        if (!r)
          return r;
        out.push_back(std::move(*r));
      }
      return out;
    }
    return tmpl;
  }

  // -- folding ---------------------------------------------------------------

  void use_fork_edits(const json& edits) {
    if (auto* o = find_key(edits, "outputs"); o && o->is_object())
      for (auto& [task, v] : o->items())
        fork_outputs[task] = v;
    if (auto* a = find_key(edits, "answers"); a && a->is_object())
      for (auto& [task, v] : a->items())
        fork_answers[task] = v;
    hand_down_all();
  }

  // A fork's edits of the units of the sub-workflow that unit `item` of
  // `task` runs ("task[i]/inner", "task[i]@2/inner" for its attempt 2) go to
  // that sub-workflow keyed as it knows them ("inner"): it decides them.
  void hand_down(unit& u, int task, int item) {
    if (fork_outputs.empty() && fork_answers.empty())
      return;
    auto prefix = def->tasks[task].id;
    if (item >= 0)
      prefix += "[" + std::to_string(item) + "]";
    if (u.attempt > 1)
      prefix += "@" + std::to_string(u.attempt);
    prefix += "/";
    auto& in = inner(u);
    for (const auto* edits : {&fork_outputs, &fork_answers}) {
      auto& to = edits == &fork_outputs ? in.fork_outputs : in.fork_answers;
      for (auto i = edits->lower_bound(prefix);
           i != edits->end() && i->first.rfind(prefix, 0) == 0; ++i)
        to[i->first.substr(prefix.size())] = i->second;
    }
    in.hand_down_all();
  }

  void hand_down_all() {
    for (size_t i = 0; i < tasks.size(); ++i) {
      if (tasks[i].child)
        hand_down(tasks[i], static_cast<int>(i), -1);
      for (size_t k = 0; k < tasks[i].items.size(); ++k)
        if (tasks[i].items[k].child)
          hand_down(tasks[i].items[k], static_cast<int>(i),
                    static_cast<int>(k));
    }
  }

  unit* find_unit(int task, int item) {
    return const_cast<unit*>(std::as_const(*this).find_unit(task, item));
  }

  const unit* find_unit(int task, int item) const {
    if (task < 0 || static_cast<size_t>(task) >= tasks.size())
      return nullptr;
    const auto& t = tasks[task];
    if (item < 0)
      return &t;
    if (static_cast<size_t>(item) >= t.items.size())
      return nullptr;
    return &t.items[item];
  }

  void release(int task) {
    for (auto d : dependents[task])
      if (tasks[d].remaining_deps > 0)
        --tasks[d].remaining_deps;
  }

  void finish_task(int task, unit_status to) {
    auto& t = tasks[task];
    bool was_closed = closed(task);
    if (t.status == unit_status::human_wait && human_waits > 0)
      --human_waits;
    // Items still asking a person are not asked any more once their map
    // has ended (an item failed): they no longer make the execution wait.
    for (auto& it : t.items)
      if (it.status == unit_status::human_wait && human_waits > 0)
        --human_waits;
    t.status = to;
    if (!was_closed && closed(task) && !t.fallback_only
        && !def->tasks[task].hook && unfinished > 0)
      --unfinished;
  }

  // A unit's dispatch: the fold of task_dispatched (a replay's unbuilt
  // one too), the sub-workflow of a workflow unit aside.
  void dispatched(task_rt& t, unit& u, int item, uint32_t attempt,
                  const json* input) {
    if (item >= 0 && u.status == unit_status::blocked) {
      ++t.in_progress;
      // Items start in order, so this restores the cursor on replay.
      t.next_item = std::max(t.next_item, static_cast<size_t>(item) + 1);
    }
    u.status = unit_status::running;
    u.restarts = 0;
    u.attempt = attempt;
    if (input)
      u.input = *input;
  }

  // A unit's success: the fold of task_completed (a replay's unbuilt one
  // too).
  void completed(int ti, int item, unit& u, json output, const json* usage,
                 uint32_t attempt) {
    auto& t = tasks[ti];
    u.output = std::move(output);
    if (usage)
      u.usage = *usage;
    u.attempt = attempt;
    ++completions;
    if (item >= 0) {
      if (u.status == unit_status::human_wait && human_waits > 0)
        --human_waits;
      if (u.status != unit_status::done) {
        u.status = unit_status::done;
        ++t.done_items;
        if (t.in_progress > 0)
          --t.in_progress;
      }
      return;
    }
    finish_task(ti, unit_status::done);
    release(ti);
  }

  expected<void> fold(const event& ev) {
    const auto& p = ev.payload.get();
    // Compared as a view: a length check rejects most types at once.
    const std::string_view type{ev.type};
    auto task_index = [&]() -> int {
      auto* name = find_key(p, "task");
      return name && name->is_string()
               ? def->index_of(name->get_ref<const std::string&>())
               : -1;
    };
    auto item_of = [&]() -> int {
      auto* it = find_key(p, "item");
      return it && it->is_number_integer() ? it->get<int>() : -1;
    };
    auto bad = [&](const char* what) {
      return make_error(errc::codec_error, "execution " + id + " event "
                                             + std::to_string(ev.seq) + " ("
                                             + ev.type + "): " + what);
    };
    updated_us = ev.time_us;
    if (type == events::submitted) {
      auto* doc = find_key(p, "definition");
      if (!doc)
        return bad("no definition");
      auto parsed = parse_document(*doc, validation_context{});
      if (!parsed.def)
        return bad(parsed.errors.empty()
                     ? "invalid definition"
                     : parsed.errors.front().to_string().c_str());
      auto* in = find_key(p, "input");
      init(std::move(*parsed.def), in ? *in : json{}, ev.time_us);
      return {};
    }
    if (!def)
      return bad("event before the submission");
    if (type == events::forked) {
      // Where a fork's own history begins; its edits hold from here on.
      use_fork_edits(p.value("edits", json::object()));
      forked_from = p.value("execution", std::string{});
      const auto* edits = find_key(p, "edits");
      if (auto* r = edits ? find_key(*edits, "rerun") : nullptr;
          r && r->is_array())
        for (const auto& t : *r)
          if (t.is_string())
            fork_rerun.insert(t.get<std::string>());
      return {};
    }
    if (type == events::execution_completed) {
      status = "completed";
      if (auto* o = find_key(p, "output"))
        output = *o;
      return {};
    }
    if (type == events::execution_failed) {
      status = "failed";
      if (auto* m = find_key(p, "message"))
        error = text_of(*m);
      return {};
    }
    if (type == events::execution_cancelled) {
      status = "cancelled";
      if (auto* m = find_key(p, "reason"))
        error = text_of(*m);
      return {};
    }
    // A unit of an item's sub-workflow: "task[i]/inner" (docs/event-log.md).
    if (auto* name = find_key(p, "task"); name && name->is_string()) {
      const auto& n = name->get_ref<const std::string&>();
      if (auto slash = n.find('/'); slash != std::string::npos) {
        auto [nt, ni] = nested_item(n.substr(0, slash), false);
        if (nt < 0)
          return bad("no running sub-workflow for this unit");
        touched(nt, ni);
        auto& child = *find_unit(nt, ni)->child;
        auto inner_payload = p;
        // "task[i]/" carries an event of the sub-workflow without a task.
        if (slash + 1 == n.size())
          inner_payload.erase("task");
        else
          inner_payload["task"] = n.substr(slash + 1);
        event inner_ev{id, child.last_seq() + 1, ev.time_us, ev.type,
                       json_value{std::move(inner_payload)}};
        if (auto r = child.apply(inner_ev); !r)
          return bad(message_of(r.error()).c_str());
        return {};
      }
    }
    if (ev.type == events::on_failure_started) {
      failing = p;
      return {};
    }
    auto ti = task_index();
    auto item = item_of();
    auto* u = find_unit(ti, item);
    if (!u)
      return bad("unknown task or item");
    touched(ti, item);
    auto& t = tasks[ti];
    if (type == events::dispatched) {
      auto* a = find_key(p, "attempt");
      dispatched(t, *u, item, a ? a->get<uint32_t>() : u->attempt,
                 find_key(p, "input"));
      if (def->tasks[ti].unit_kind() == task_kind::workflow) {
        // Each attempt runs the sub-workflow afresh.
        auto nested = load_document(def->tasks[ti].workflow);
        if (!nested)
          return bad(message_of(nested.error()).c_str());
        u->child = std::make_shared<machine>(id);
        ++children;
        inner(*u).init(std::move(*nested), u->input, ev.time_us);
        hand_down(*u, ti, item);
        inner(*u).replay_only = replay_only;
      }
      return {};
    }
    if (type == events::redispatched) {
      // Only a start of this node counts toward the crash-loop limit; a
      // call lost with another node says nothing about this one.
      if (p.value("cause", std::string{"node_restart"}) == "node_restart")
        u->restarts = p.value("starts", u->restarts + 1);
      return {};
    }
    if (type == events::completed) {
      auto attempt = p.value("attempt", u->attempt);
      completed(ti, item, *u, p.value("output", json{}), find_key(p, "usage"),
                attempt);
      return {};
    }
    if (type == events::failed) {
      u->attempt = p.value("attempt", u->attempt);
      u->error = json{{"code", p.value("code", std::string{})},
                      {"message", p.value("message", std::string{})}};
      if (auto* r = find_key(p, "retry_in_ms"); r && r->is_number()) {
        u->status = unit_status::retry_wait;
        u->retry_at_us = ev.time_us + r->get<int64_t>() * 1000;
        return {};
      }
      if (item >= 0) {
        u->status = unit_status::failed;
        if (t.in_progress > 0)
          --t.in_progress;
        return {};
      }
      finish_task(ti, unit_status::failed);
      if (def->tasks[ti].on_failure == failure_action::proceed)
        release(ti);
      return {};
    }
    if (type == events::skipped) {
      finish_task(ti, unit_status::skipped);
      release(ti);
      return {};
    }
    if (type == events::map_started) {
      auto* items = find_key(p, "items");
      if (!items || !items->is_array())
        return bad("map_started without items");
      t.map_started = true;
      t.status = unit_status::running;
      t.items.assign(items->size(), unit{});
      t.item_values = *items;
      return {};
    }
    if (type == events::fallback_started) {
      auto* fb = find_key(p, "fallback");
      auto fi = fb ? def->index_of(fb->get<std::string>()) : -1;
      if (fi < 0)
        return bad("unknown fallback task");
      tasks[fi].fallback_for = ti;
      return {};
    }
    if (type == events::human_requested) {
      if (item >= 0 && u->status == unit_status::blocked) {
        ++t.in_progress;
        t.next_item = std::max(t.next_item, static_cast<size_t>(item) + 1);
      }
      if (u->status != unit_status::human_wait)
        ++human_waits;
      u->status = unit_status::human_wait;
      u->prompt = p.value("prompt", json{});
      u->attempt = 1;
      return {};
    }
    return bad("unknown event type");
  }
};

machine::machine(std::string execution_id) : st_(std::make_unique<state>()) {
  st_->id = std::move(execution_id);
}

machine::~machine() = default;
machine::machine(machine&&) noexcept = default;
machine& machine::operator=(machine&&) noexcept = default;

expected<void> machine::apply(const event& ev) {
  if (ev.seq != st_->seq + 1)
    return make_error(errc::conflict, "execution " + st_->id + ": expected seq "
                                        + std::to_string(st_->seq + 1)
                                        + ", got " + std::to_string(ev.seq));
  if (auto r = st_->fold(ev); !r)
    return r;
  st_->seq = ev.seq;
  return {};
}

// Decision helpers: each emits events (folding them at once) and actions.
namespace {

struct decider {
  machine::state& st;
  machine& m;
  step& out;
  int64_t now;
  // The jitter draw of a retry this step decides (machine::failed's); an
  // item whose sub-workflow failed otherwise retries without jitter.
  double draw = 0.5;

  void emit(const char* type, json payload) {
    // A replay's decisions are compared, not written: no id to copy.
    event ev{st.replay_only ? std::string{} : st.id, st.seq + 1, now, type,
             json_value{std::move(payload)}};
    auto r = m.apply(ev);
    // Decisions only emit events the fold accepts; a failure is a bug.
    if (!r)
      throw std::logic_error(describe(r.error()));
    out.events.push_back(std::move(ev));
    if (st.snapshot_every > 0 && st.seq % st.snapshot_every == 0)
      take_snapshot();
  }

  // The state after this step's events so far, to write with them.
  // Named by the multiple of snapshot_every it passed: later snapshots
  // pass later multiples whatever the setting, so no name is used twice.
  void take_snapshot() {
    auto passed = st.seq / st.snapshot_every * st.snapshot_every;
    auto snap = m.paged_snapshot(passed, now);
    out.snapshots.insert(out.snapshots.end(),
                         std::make_move_iterator(snap.begin()),
                         std::make_move_iterator(snap.end()));
  }

  json task_payload(int task, int item) const {
    return unit_payload(st.def->tasks[task], item);
  }

  // A replay's decision folded without its event (machine::replay_only):
  // it takes its seq as emit's event would.
  void fold_unbuilt(unbuilt_decision::kind_t kind, int task, int item,
                    uint32_t attempt, json value, json usage = nullptr) {
    ++st.seq;
    out.unbuilt.push_back(unbuilt_decision{kind, out.events.size(), st.seq,
                                           task, item, attempt,
                                           std::move(value), std::move(usage)});
    if (st.snapshot_every > 0 && st.seq % st.snapshot_every == 0)
      take_snapshot();
  }

  std::string key_of(int task, int item) const {
    const auto& id = st.def->tasks[task].id;
    return item < 0 ? id : id + "[" + std::to_string(item) + "]";
  }

  // The execution fails: at once, or once its on_failure tasks are done
  // (check_finished records it then). Their own failures start nothing.
  void fail_execution(int task, const std::string& code,
                      const std::string& message) {
    json p{{"code", code}, {"message", message}};
    if (task >= 0)
      p["task"] = st.def->tasks[task].id;
    if (!st.failing.is_null())
      return;
    bool hooks = std::any_of(st.def->tasks.begin(), st.def->tasks.end(),
                             [](const task_def& t) { return t.hook; });
    if (!hooks) {
      emit(events::execution_failed, std::move(p));
      return;
    }
    emit(events::on_failure_started, std::move(p));
    for (size_t i = 0; i < st.tasks.size(); ++i)
      if (st.def->tasks[i].hook && st.tasks[i].status == unit_status::blocked)
        start_task(static_cast<int>(i));
    // Hooks that ended at once (skipped, a template error) end it now.
    check_finished();
  }

  // The tasks without dependencies (a submission, or an item's
  // sub-workflow starting).
  void start_roots() {
    for (size_t i = 0; i < st.tasks.size() && !st.halted(); ++i)
      if (st.tasks[i].remaining_deps == 0 && !st.tasks[i].fallback_only
          && !st.def->tasks[i].hook
          && st.tasks[i].status == unit_status::blocked)
        start_task(static_cast<int>(i));
  }

  // Starts the sub-workflow of unit `item` of `task` (just dispatched,
  // so the fold has made its state).
  void start_child(int task, int item) {
    const auto& td = st.def->tasks[task];
    auto& u = *st.find_unit(task, item);
    auto& inner = machine::state::inner(u);
    if (td.timeout_ms > 0 && !st.replay_only) {
      action a;
      a.kind = action::deadline_timer;
      a.key = key_of(task, item);
      a.task_id = td.id;
      a.item = item;
      a.attempt = u.attempt;
      a.delay_ms = td.timeout_ms;
      out.actions.push_back(std::move(a));
    }
    step cs;
    decider cd{inner, *u.child, cs, now};
    if (inner.def->timeout_ms > 0 && !inner.replay_only) {
      action a;
      a.kind = action::execution_timer;
      a.delay_ms = inner.def->timeout_ms;
      cs.actions.push_back(std::move(a));
    }
    cd.start_roots();
    cd.check_finished();
    absorb(task, item, std::move(cs));
  }

  // Records the step `cs` of the sub-workflow of unit `item` of
  // `task` (already folded into it) as this execution's: its units keyed
  // under the item, its end as the item's completion or failure.
  void absorb(int task, int item, step cs) {
    const auto& td = st.def->tasks[task];
    auto attempt = st.find_unit(task, item)->attempt;
    auto local = key_of(task, item);
    auto prefix = attempt > 1 ? local + "@" + std::to_string(attempt) : local;
    std::optional<json> done;
    std::optional<json> failure;
    // The unit's sub-workflow changed without a fold of this machine.
    st.touched(task, item);
    auto seq_before = st.seq;
    for (auto& ev : cs.events) {
      if (ev.type == events::execution_completed) {
        done = ev.payload.get();
        continue;
      }
      if (ev.type == events::execution_failed) {
        failure = ev.payload.get();
        continue;
      }
      auto p = ev.payload.get();
      p["task"] = prefix + "/" + p.value("task", std::string{});
      out.events.push_back(
        event{st.id, st.seq + 1, now, ev.type, json_value{std::move(p)}});
      st.seq = out.events.back().seq;
      st.updated_us = now;
    }
    // A multiple passed inside the sub-workflow's events: the snapshot is
    // taken after them (its seq says where), never in their midst.
    if (st.snapshot_every > 0
        && st.seq / st.snapshot_every > seq_before / st.snapshot_every)
      take_snapshot();
    for (auto& a : cs.actions) {
      if (a.kind == action::execution_timer) {
        // The sub-workflow's own timeout ends the item's attempt.
        a.kind = action::deadline_timer;
        a.key = local;
        a.task_id = td.id;
        a.item = item;
        a.attempt = attempt;
      } else {
        a.key = prefix + "/" + a.key;
        a.task_id = prefix + "/" + a.task_id;
      }
      out.actions.push_back(std::move(a));
    }
    if (done && item < 0) {
      complete_task(task, done->value("output", json{}), attempt,
                    done->value("usage", json{}));
    } else if (done) {
      auto p = task_payload(task, item);
      p["attempt"] = attempt;
      p["output"] = done->value("output", json{});
      if (auto* u = find_key(*done, "usage"))
        p["usage"] = *u;
      emit(events::completed, std::move(p));
      item_done(task);
    } else if (failure) {
      attempt_failed(task, item, attempt,
                     failure->value("code", std::string{"internal"}),
                     failure->value("message", std::string{}));
    }
  }

  // Attempt `attempt` of a unit failed: a retry after a drawn delay, or
  // its final failure.
  void attempt_failed(int task, int item, uint32_t attempt,
                      const std::string& code, const std::string& message);

  void dispatch_unit(int task, int item, uint32_t attempt, json input) {
    const auto& td = st.def->tasks[task];
    auto runs = td.unit_kind();
    if (st.unbuilt_decisions && runs == task_kind::tool) {
      // What folding the event would do, without building it.
      st.updated_us = now;
      st.touched(task, item);
      st.dispatched(st.tasks[task], *st.find_unit(task, item), item, attempt,
                    &input);
      fold_unbuilt(unbuilt_decision::dispatch, task, item, attempt,
                   std::move(input));
      return;
    }
    if (st.replay_only) {
      emit(events::dispatched,
           dispatch_payload(td, runs, item, attempt, std::move(input)));
      if (runs == task_kind::workflow)
        start_child(task, item);
      return;
    }
    emit(events::dispatched, dispatch_payload(td, runs, item, attempt, input));
    if (runs == task_kind::workflow) {
      start_child(task, item);
      return;
    }
    action a;
    a.kind = runs == task_kind::agent ? action::run_agent : action::dispatch;
    if (runs == task_kind::agent) {
      a.agent = td.agent;
      if (auto i = st.def->agents.find(td.agent); i != st.def->agents.end())
        a.document = i->second;
    }
    a.key = key_of(task, item);
    a.task_id = td.id;
    a.item = item;
    a.attempt = attempt;
    a.tool = td.tool;
    a.input = std::move(input);
    a.secret_pointers = td.secret_pointers;
    a.timeout_ms = td.timeout_ms;
    out.actions.push_back(std::move(a));
  }

  // Renders a unit's input and dispatches it; a template error is a final
  // failure of the task (retrying cannot fix it).
  void start_unit(int task, int item) {
    const auto& td = st.def->tasks[task];
    machine::state::scope sc;
    json item_value;
    if (item >= 0) {
      item_value = st.tasks[task].item_values[static_cast<size_t>(item)];
      sc.item = item;
      sc.item_value = &item_value;
    }
    if (td.unit_kind() == task_kind::human) {
      ask(task, item, sc);
      return;
    }
    auto input = st.render(td.input, sc, td.pointer + "/input");
    if (!input) {
      final_failure(task, item, to_string(code_of(input.error())),
                    message_of(input.error()), 1);
      return;
    }
    // No key built per item when the execution is no fork.
    auto o = st.fork_outputs.empty()
               ? st.fork_outputs.end()
               : st.fork_outputs.find(key_of(task, item));
    if (o != st.fork_outputs.end()) {
      // A fork's edit (of a task, or of one item of a map as "task[i]"):
      // recorded as dispatched and done, nothing runs.
      auto p = task_payload(task, item);
      p["attempt"] = 1;
      if (item >= 0 && td.unit_kind() == task_kind::agent)
        p["agent"] = td.agent;
      else
        p["tool"] = td.tool;
      p["input"] = std::move(*input);
      emit(events::dispatched, std::move(p));
      if (item < 0) {
        complete_task(task, o->second, 1, nullptr, "fork");
        return;
      }
      auto c = task_payload(task, item);
      c["attempt"] = 1;
      c["output"] = o->second;
      c["by"] = "fork";
      emit(events::completed, std::move(c));
      item_done(task);
      return;
    }
    dispatch_unit(task, item, 1, std::move(*input));
  }

  // Asks a person (a human task, or an item of a map of them): records the
  // rendered prompt; the answer comes through machine::human_answer.
  void ask(int task, int item, const machine::state::scope& sc) {
    const auto& td = st.def->tasks[task];
    auto prompt = st.render(td.prompt, sc, td.pointer + "/prompt");
    if (!prompt) {
      final_failure(task, item, to_string(code_of(prompt.error())),
                    message_of(prompt.error()), 1);
      return;
    }
    auto p = task_payload(task, item);
    p["prompt"] = std::move(*prompt);
    emit(events::human_requested, std::move(p));
    auto key = key_of(task, item);
    if (auto f = st.fork_answers.find(key); f != st.fork_answers.end()) {
      auto c = task_payload(task, item);
      c["attempt"] = 1;
      c["output"] = f->second;
      c["by"] = "fork";
      emit(events::completed, std::move(c));
      if (item < 0)
        start_ready(task);
      else
        item_done(task);
      return;
    }
    if (st.replay_only)
      return;
    action a;
    a.kind = action::waiting_human;
    a.key = std::move(key);
    a.task_id = td.id;
    a.item = item;
    out.actions.push_back(std::move(a));
  }

  // An item of map `task` completed: the map completes with every item's
  // output (and the sum of their agents' usage) or starts the next items.
  void item_done(int task) {
    auto& t = st.tasks[task];
    if (t.done_items == t.items.size()) {
      json all = json::array();
      json usage;
      for (auto& it : t.items) {
        all.push_back(it.output);
        add_usage(usage, it.usage);
      }
      complete_task(task, std::move(all), 1, usage);
    } else {
      fill_map(task);
    }
  }

  void fill_map(int task) {
    auto& t = st.tasks[task];
    auto limit = st.def->tasks[task].concurrency;
    while (t.next_item < t.items.size()
           && (limit == 0 || t.in_progress < limit)) {
      auto i = static_cast<int>(t.next_item);
      start_unit(task, i);
      if (st.finished_or_failed(task) || st.halted())
        return;
    }
  }

  void start_task(int task) {
    const auto& td = st.def->tasks[task];
    machine::state::scope sc;
    if (!td.when.empty()) {
      auto cond = st.eval(td.when, sc);
      if (!cond) {
        final_failure(task, -1, to_string(code_of(cond.error())),
                      td.pointer + "/when: " + message_of(cond.error()), 1);
        return;
      }
      if (!truthy(*cond)) {
        emit(events::skipped, task_payload(task, -1));
        start_ready(task);
        return;
      }
    }
    switch (td.kind) {
      case task_kind::tool:
      case task_kind::workflow:
      case task_kind::agent:
        start_unit(task, -1);
        return;
      case task_kind::human:
        ask(task, -1, sc);
        return;
      case task_kind::map: {
        auto items = st.eval(td.items, sc);
        // Lua cannot tell an empty list from an empty table, which turns
        // into {}: that is no items, not an error.
        if (items && items->is_object() && items->empty())
          *items = json::array();
        if (!items || !items->is_array()) {
          auto msg = items ? std::string{"items did not yield a list"}
                           : message_of(items.error());
          final_failure(task, -1,
                        items ? "invalid_input"
                              : to_string(code_of(items.error())),
                        td.pointer + "/items: " + msg, 1);
          return;
        }
        auto p = task_payload(task, -1);
        p["items"] = *items;
        emit(events::map_started, std::move(p));
        if (items->empty()) {
          auto c = task_payload(task, -1);
          c["attempt"] = 1;
          c["output"] = json::array();
          emit(events::completed, std::move(c));
          start_ready(task);
          return;
        }
        fill_map(task);
        return;
      }
    }
  }

  // Starts every dependent of `task` whose dependencies are now all met.
  void start_ready(int task) {
    for (auto d : st.dependents[task]) {
      if (st.halted())
        return;
      auto& t = st.tasks[d];
      if (t.remaining_deps == 0 && t.status == unit_status::blocked
          && !t.fallback_only)
        start_task(d);
    }
  }

  void complete_task(int task, json output, uint32_t attempt,
                     const json& usage = nullptr, const char* by = nullptr) {
    auto p = task_payload(task, -1);
    p["attempt"] = attempt;
    p["output"] = std::move(output);
    if (!usage.is_null())
      p["usage"] = usage;
    if (by)
      p["by"] = by;
    emit(events::completed, std::move(p));
    auto owner = st.tasks[task].fallback_for;
    if (owner >= 0) {
      auto q = task_payload(owner, -1);
      q["attempt"] = st.tasks[owner].attempt;
      q["output"] = st.tasks[task].output;
      q["via"] = st.def->tasks[task].id;
      emit(events::completed, std::move(q));
      start_ready(owner);
    }
    start_ready(task);
  }

  void final_failure(int task, int item, const std::string& code,
                     const std::string& message, uint32_t attempt) {
    auto p = task_payload(task, item);
    p["attempt"] = attempt;
    p["code"] = code;
    p["message"] = message;
    p["final"] = true;
    emit(events::failed, std::move(p));
    if (item >= 0) {
      // One item's final failure fails its map task.
      final_failure(task, -1, code,
                    "item " + std::to_string(item) + ": " + message,
                    st.tasks[task].attempt);
      return;
    }
    const auto& td = st.def->tasks[task];
    // An on_failure task's failure is recorded, and starts nothing.
    if (td.hook)
      return;
    switch (td.on_failure) {
      case failure_action::fail:
        fail_execution(task, code, "task " + td.id + ": " + message);
        return;
      case failure_action::proceed:
        start_ready(task);
        return;
      case failure_action::fallback: {
        auto fb = st.def->index_of(td.fallback);
        auto q = task_payload(task, -1);
        q["fallback"] = td.fallback;
        emit(events::fallback_started, std::move(q));
        start_task(fb);
        return;
      }
    }
  }

  void check_finished() {
    if (st.finished())
      return;
    if (!st.failing.is_null()) {
      // The failure is recorded once every on_failure task is done.
      json failed_hooks = json::array();
      for (size_t i = 0; i < st.tasks.size(); ++i) {
        if (!st.def->tasks[i].hook)
          continue;
        if (!terminal(st.tasks[i].status))
          return;
        if (st.tasks[i].status == unit_status::failed)
          failed_hooks.push_back(st.def->tasks[i].id);
      }
      auto p = st.failing;
      if (!failed_hooks.empty())
        p["on_failure_failed"] = std::move(failed_hooks);
      emit(events::execution_failed, std::move(p));
      return;
    }
    if (st.unfinished > 0)
      return;
    json output;
    if (st.def->output.is_null()) {
      output = json::object();
      for (size_t i = 0; i < st.tasks.size(); ++i)
        if (!st.tasks[i].fallback_only && !st.def->tasks[i].hook)
          output[st.def->tasks[i].id] = st.tasks[i].output;
    } else {
      auto r = st.render(st.def->output, {}, "/output");
      if (!r) {
        fail_execution(-1, to_string(code_of(r.error())),
                       message_of(r.error()));
        return;
      }
      output = std::move(*r);
    }
    json done{{"output", std::move(output)}};
    if (auto u = st.usage_total(); !u.is_null())
      done["usage"] = std::move(u);
    emit(events::execution_completed, std::move(done));
  }

};

} // namespace

json machine::state::usage_total() const {
  json sum;
  for (const auto& t : tasks)
    add_usage(sum, t.usage);
  return sum;
}

bool machine::state::finished_or_failed(int task) const {
  return finished() || terminal(tasks[task].status);
}

bool machine::state::finished() const {
  // As a view: a few times a decision, told apart by length first.
  const std::string_view s{status};
  return s == "completed" || s == "failed" || s == "cancelled";
}

namespace {

bool retryable(const retry_policy& rp, const std::string& code) {
  if (rp.retry_on.empty())
    return code != "invalid_input" && code != "cancelled"
           && code != "crash_loop";
  return std::find(rp.retry_on.begin(), rp.retry_on.end(), code)
         != rp.retry_on.end();
}

int64_t backoff_ms(const retry_policy& rp, uint32_t attempt, double draw) {
  auto base = static_cast<double>(rp.initial_backoff_ms)
              * std::pow(rp.multiplier, static_cast<double>(attempt - 1));
  base = std::min(base, static_cast<double>(rp.max_backoff_ms));
  auto factor = 1.0 + rp.jitter * (2.0 * draw - 1.0);
  return std::max<int64_t>(0, std::llround(base * factor));
}

void decider::attempt_failed(int task, int item, uint32_t attempt,
                             const std::string& code,
                             const std::string& message) {
  const auto& td = st.def->tasks[task];
  if (attempt < td.retry.max_attempts && retryable(td.retry, code)) {
    auto delay = backoff_ms(td.retry, attempt, draw);
    auto p = task_payload(task, item);
    p["attempt"] = attempt;
    p["code"] = code;
    p["message"] = message;
    p["retry_in_ms"] = delay;
    // The draw makes the delay reproducible when a log is replayed.
    p["draw"] = draw;
    emit(events::failed, std::move(p));
    if (st.replay_only)
      return;
    action a;
    a.kind = action::retry_timer;
    a.key = key_of(task, item);
    a.task_id = td.id;
    a.item = item;
    a.attempt = attempt;
    a.delay_ms = delay;
    out.actions.push_back(std::move(a));
    return;
  }
  final_failure(task, item, code, message, attempt);
}

// A call for a unit of a sub-workflow ("task[i]/inner"): `call`
// runs it on the sub-workflow, whose step becomes this execution's.
// Calls for an item that no longer runs that sub-workflow change nothing.
template <class F>
step route_nested(machine::state& st, machine& m, const std::string& key,
                  int64_t now_us, double draw, F call) {
  step out;
  auto slash = key.find('/');
  auto [ti, item] = st.nested_item(key.substr(0, slash), false);
  if (ti < 0 || !st.accepts(ti))
    return out;
  auto& u = *st.find_unit(ti, item);
  // Before the call: the sub-workflow's people count in the status.
  auto before = st.shown_status();
  step cs = call(*u.child, key.substr(slash + 1));
  if (cs.empty())
    return out;
  decider d{st, m, out, now_us};
  d.draw = draw;
  d.absorb(ti, item, std::move(cs));
  d.check_finished();
  if (st.shown_status() != before || m.finished())
    out.index = m.info();
  return out;
}

} // namespace

expected<step> machine::submit(const json& doc, const json& input,
                               const std::string& idempotency_key,
                               int64_t now_us) {
  if (st_->started)
    return make_error(errc::conflict,
                      "execution " + st_->id + " was already submitted");
  auto parsed = load_document(doc);
  if (!parsed)
    return parsed.error();
  if (!parsed->input_schema.is_null())
    if (auto ok = check_schema(parsed->input_schema, input, "input"); !ok)
      return ok.error();
  step out;
  decider d{*st_, *this, out, now_us};
  d.emit(events::submitted,
         json{{"workflow", parsed->name},
              {"version", parsed->version},
              {"definition", doc},
              {"input", input},
              {"idempotency_key", idempotency_key}});
  if (st_->def->timeout_ms > 0 && !st_->replay_only) {
    action a;
    a.kind = action::execution_timer;
    a.delay_ms = st_->def->timeout_ms;
    out.actions.push_back(std::move(a));
  }
  d.start_roots();
  d.check_finished();
  out.index = info();
  return out;
}

step machine::succeeded(const std::string& key, uint32_t attempt,
                        const json& output, int64_t duration_us,
                        int64_t now_us, const json& usage) {
  step out;
  if (!st_->started || finished())
    return out;
  if (key.find('/') != std::string::npos)
    return route_nested(*st_, *this, key, now_us, 0.5,
                        [&](machine& child, const std::string& rest) {
                          return child.succeeded(rest, attempt, output,
                                                 duration_us, now_us, usage);
                        });
  auto [name, item] = split_key(key);
  auto ti = st_->def->index_of(name);
  auto* u = st_->find_unit(ti, item);
  if (!u || u->status != unit_status::running || u->attempt != attempt
      || (item >= 0 && st_->finished_or_failed(ti)) || !st_->accepts(ti))
    return out;
  auto before = st_->shown_status();
  decider d{*st_, *this, out, now_us};
  if (item < 0) {
    d.complete_task(ti, output, attempt, usage);
  } else if (st_->unbuilt_decisions) {
    // What folding the event would do, without building it.
    st_->updated_us = now_us;
    st_->touched(ti, item);
    st_->completed(ti, item, *u, output, usage.is_null() ? nullptr : &usage,
                   attempt);
    d.fold_unbuilt(unbuilt_decision::completion, ti, item, attempt, output,
                   usage);
    d.item_done(ti);
  } else {
    d.emit(events::completed,
           item_completion_payload(st_->def->tasks[ti], item, attempt, output,
                                   usage));
    d.item_done(ti);
  }
  d.check_finished();
  if (st_->shown_status() != before || finished())
    out.index = info();
  return out;
}

step machine::failed(const std::string& key, uint32_t attempt,
                     const caf::error& err, double draw, int64_t now_us) {
  step out;
  if (!st_->started || finished())
    return out;
  if (key.find('/') != std::string::npos)
    return route_nested(*st_, *this, key, now_us, draw,
                        [&](machine& child, const std::string& rest) {
                          return child.failed(rest, attempt, err, draw,
                                              now_us);
                        });
  auto [name, item] = split_key(key);
  auto ti = st_->def->index_of(name);
  auto* u = st_->find_unit(ti, item);
  if (!u || u->status != unit_status::running || u->attempt != attempt
      || (item >= 0 && st_->finished_or_failed(ti)) || !st_->accepts(ti))
    return out;
  auto code = err.category() == caf::atom("cadre")
                ? to_string(code_of(err))
                : err.category() == caf::atom("system") ? "worker_crashed"
                                                        : "internal";
  auto message = message_of(err);
  if (message.empty())
    message = describe(err);
  auto before = st_->shown_status();
  decider d{*st_, *this, out, now_us};
  d.draw = draw;
  d.attempt_failed(ti, item, attempt, code, message);
  d.check_finished();
  if (st_->shown_status() != before || finished())
    out.index = info();
  return out;
}

step machine::redispatch(const std::string& key, uint32_t attempt,
                         const std::string& cause, const std::string& node,
                         int64_t now_us) {
  step out;
  if (!st_->started || finished())
    return out;
  if (key.find('/') != std::string::npos)
    return route_nested(*st_, *this, key, now_us, 0.5,
                        [&](machine& child, const std::string& rest) {
                          return child.redispatch(rest, attempt, cause, node,
                                                  now_us);
                        });
  auto [name, item] = split_key(key);
  auto ti = st_->def->index_of(name);
  auto* u = st_->find_unit(ti, item);
  if (!u || u->status != unit_status::running || u->attempt != attempt
      || !st_->accepts(ti))
    return out;
  const auto& td = st_->def->tasks[ti];
  if (td.unit_kind() != task_kind::tool)
    return out;
  decider d{*st_, *this, out, now_us};
  auto p = d.task_payload(ti, item);
  p["attempt"] = attempt;
  p["cause"] = cause;
  p["node"] = node;
  d.emit(events::redispatched, std::move(p));
  action a;
  a.kind = action::dispatch;
  a.key = key;
  a.task_id = td.id;
  a.item = item;
  a.attempt = attempt;
  a.tool = td.tool;
  a.input = u->input;
  a.timeout_ms = td.timeout_ms;
  out.actions.push_back(std::move(a));
  return out;
}

step machine::retry_due(const std::string& key, uint32_t attempt,
                        int64_t now_us) {
  step out;
  if (!st_->started || finished())
    return out;
  if (key.find('/') != std::string::npos)
    return route_nested(*st_, *this, key, now_us, 0.5,
                        [&](machine& child, const std::string& rest) {
                          return child.retry_due(rest, attempt, now_us);
                        });
  auto [name, item] = split_key(key);
  auto ti = st_->def->index_of(name);
  auto* u = st_->find_unit(ti, item);
  if (!u || u->status != unit_status::retry_wait || u->attempt != attempt
      || (item >= 0 && st_->finished_or_failed(ti)) || !st_->accepts(ti))
    return out;
  auto before = st_->shown_status();
  decider d{*st_, *this, out, now_us};
  auto input = u->input;
  d.dispatch_unit(ti, item, attempt + 1, std::move(input));
  // A sub-workflow item may end at once.
  d.check_finished();
  if (st_->shown_status() != before || finished())
    out.index = info();
  return out;
}

step machine::execution_timed_out(int64_t now_us) {
  step out;
  if (!st_->started || st_->halted())
    return out;
  decider d{*st_, *this, out, now_us};
  d.fail_execution(-1, "timeout",
                   "execution timed out after "
                     + std::to_string(st_->def->timeout_ms) + " ms");
  d.check_finished();
  out.index = info();
  return out;
}

step machine::deadline_due(const std::string& key, uint32_t attempt,
                           int64_t now_us) {
  step out;
  if (!st_->started || finished())
    return out;
  if (key.find('/') != std::string::npos)
    return route_nested(*st_, *this, key, now_us, 0.5,
                        [&](machine& child, const std::string& rest) {
                          return child.deadline_due(rest, attempt, now_us);
                        });
  auto [name, item] = split_key(key);
  auto ti = st_->def->index_of(name);
  auto* u = st_->find_unit(ti, item);
  if (!u || !u->child || u->status != unit_status::running
      || u->attempt != attempt || st_->finished_or_failed(ti)
      || !st_->accepts(ti))
    return out;
  auto before = st_->shown_status();
  decider d{*st_, *this, out, now_us};
  d.attempt_failed(ti, item, attempt, "timeout",
                   "task " + key + " attempt " + std::to_string(attempt)
                     + " timed out");
  d.check_finished();
  if (st_->shown_status() != before || finished())
    out.index = info();
  return out;
}

expected<step> machine::human_answer(const std::string& task_id,
                                     const json& value, int64_t now_us) {
  if (!st_->started)
    return make_error(errc::not_found, "execution " + st_->id
                                         + " has not started");
  if (auto slash = task_id.find('/'); slash != std::string::npos) {
    // A human task of an item's sub-workflow: "task[i]/inner".
    auto [ti, item] = st_->nested_item(task_id.substr(0, slash), true);
    if (ti < 0 || finished() || !st_->accepts(ti))
      return make_error(errc::conflict,
                        "task '" + task_id + "' of execution " + st_->id
                          + " is not waiting for input (no running "
                            "sub-workflow '"
                          + task_id.substr(0, slash) + "')");
    auto rest = task_id.substr(slash + 1);
    auto& u = *st_->find_unit(ti, item);
    auto before = st_->shown_status();
    auto cs = u.child->human_answer(rest, value, now_us);
    if (!cs) {
      // Name the task as the person did.
      auto msg = message_of(cs.error());
      if (auto at = msg.find("'" + rest + "'"); at != std::string::npos)
        msg.replace(at, rest.size() + 2, "'" + task_id + "'");
      return make_error(code_of(cs.error()), msg);
    }
    step out;
    decider d{*st_, *this, out, now_us};
    d.absorb(ti, item, std::move(*cs));
    d.check_finished();
    if (st_->shown_status() != before || finished())
      out.index = info();
    return out;
  }
  // "task", or "task[i]" for item i of a map of human tasks.
  auto [name, item] = split_key(task_id);
  auto ti = st_->def->index_of(name);
  auto* u = st_->find_unit(ti, item);
  if (!u)
    return make_error(errc::not_found, "execution " + st_->id
                                         + " has no task '" + task_id + "'");
  if (finished() || u->status != unit_status::human_wait
      || (item >= 0 && st_->finished_or_failed(ti)) || !st_->accepts(ti)) {
    std::string hint;
    if (item < 0 && st_->tasks[ti].map_started)
      hint = " (it is a map: answer one of its items, '" + name + "[0]'...)";
    return make_error(errc::conflict, "task '" + task_id + "' of execution "
                                        + st_->id
                                        + " is not waiting for input" + hint);
  }
  const auto& td = st_->def->tasks[ti];
  if (!td.answer_schema.is_null())
    if (auto ok = check_schema(td.answer_schema, value,
                               "answer to task '" + task_id + "'");
        !ok)
      return ok.error();
  step out;
  auto before = st_->shown_status();
  decider d{*st_, *this, out, now_us};
  auto p = d.task_payload(ti, item);
  p["attempt"] = 1;
  p["output"] = value;
  p["by"] = "human";
  d.emit(events::completed, std::move(p));
  if (item < 0)
    d.start_ready(ti);
  else
    d.item_done(ti);
  d.check_finished();
  if (st_->shown_status() != before || finished())
    out.index = info();
  return out;
}

step machine::cancel(const std::string& reason, int64_t now_us) {
  step out;
  if (!st_->started || finished())
    return out;
  decider d{*st_, *this, out, now_us};
  d.emit(events::execution_cancelled, json{{"reason", reason}});
  out.index = info();
  return out;
}

namespace {

// What `st` has in flight after a fold: its own units' actions, and with
// `nested` those of its items' running sub-workflows (keyed under them).
std::vector<action> recover_actions(const machine::state& st, int64_t now_us,
                                    bool nested);

} // namespace

std::vector<action> machine::recover(int64_t now_us) const {
  return recover_actions(*st_, now_us, true);
}

namespace {

std::vector<action> recover_actions(const machine::state& st, int64_t now_us,
                                    bool nested) {
  std::vector<action> out;
  if (!st.started || st.finished())
    return out;
  const auto& def = *st.def;
  if (def.timeout_ms > 0 && st.failing.is_null()) {
    action a;
    a.kind = action::execution_timer;
    a.delay_ms = std::max<int64_t>(
      0, (st.created_us + def.timeout_ms * 1000 - now_us) / 1000);
    out.push_back(std::move(a));
  }
  auto add = [&](int ti, int item, const unit& u) {
    const auto& td = def.tasks[ti];
    action a;
    a.key = item < 0 ? td.id : td.id + "[" + std::to_string(item) + "]";
    a.task_id = td.id;
    a.item = item;
    a.attempt = u.attempt;
    a.tool = td.tool;
    a.input = u.input;
    a.secret_pointers = td.secret_pointers;
    a.timeout_ms = td.timeout_ms;
    if (u.child && u.status == unit_status::running) {
      // A unit running a sub-workflow: its deadline, and its units.
      const auto& inner = machine::state::inner(u);
      if (td.timeout_ms > 0) {
        a.kind = action::deadline_timer;
        a.delay_ms = std::max<int64_t>(
          0, (inner.created_us + td.timeout_ms * 1000 - now_us) / 1000);
        out.push_back(a);
      }
      if (!nested)
        return;
      auto prefix = u.attempt > 1 ? a.key + "@" + std::to_string(u.attempt)
                                  : a.key;
      for (auto& c : recover_actions(inner, now_us, true)) {
        if (c.kind == action::execution_timer) {
          c.kind = action::deadline_timer;
          c.key = a.key;
          c.task_id = td.id;
          c.item = item;
          c.attempt = u.attempt;
        } else {
          c.key = prefix + "/" + c.key;
          c.task_id = prefix + "/" + c.task_id;
        }
        out.push_back(std::move(c));
      }
      return;
    }
    switch (u.status) {
      case unit_status::running:
        // A sub-workflow runs here (its units are recovered above).
        if (td.unit_kind() == task_kind::workflow)
          return;
        a.kind = td.unit_kind() == task_kind::agent ? action::run_agent
                                                    : action::dispatch;
        if (td.unit_kind() == task_kind::agent) {
          a.agent = td.agent;
          if (auto j = def.agents.find(td.agent); j != def.agents.end())
            a.document = j->second;
        }
        break;
      case unit_status::retry_wait:
        a.kind = action::retry_timer;
        a.delay_ms = std::max<int64_t>(0, (u.retry_at_us - now_us) / 1000);
        break;
      case unit_status::human_wait:
        a.kind = action::waiting_human;
        break;
      default:
        return;
    }
    out.push_back(std::move(a));
  };
  for (size_t i = 0; i < st.tasks.size(); ++i) {
    // Once the execution failed, only its on_failure tasks go on.
    if (!st.accepts(static_cast<int>(i)))
      continue;
    const auto& t = st.tasks[i];
    if (t.map_started) {
      if (!terminal(t.status))
        for (size_t k = 0; k < t.items.size(); ++k)
          add(static_cast<int>(i), static_cast<int>(k), t.items[k]);
    } else {
      add(static_cast<int>(i), -1, t);
    }
  }
  return out;
}

} // namespace

step machine::resume(int64_t now_us, uint32_t crash_loop_limit) {
  step out;
  if (!st_->started || finished())
    return out;
  auto actions = recover_actions(*st_, now_us, false);
  auto before = st_->shown_status();
  decider d{*st_, *this, out, now_us};
  for (auto& a : actions) {
    if (a.kind != action::dispatch && a.kind != action::run_agent) {
      // Timers, people and child executions run no code in this process.
      out.actions.push_back(std::move(a));
      continue;
    }
    auto ti = st_->def->index_of(a.task_id);
    auto* u = st_->find_unit(ti, a.item);
    // An item of a map that a parked sibling has failed meanwhile.
    if (!u || u->status != unit_status::running || u->attempt != a.attempt
        || (a.item >= 0 && st_->finished_or_failed(ti))
        || !st_->accepts(ti))
      continue;
    if (crash_loop_limit > 0 && u->restarts >= crash_loop_limit) {
      d.final_failure(
        ti, a.item, "crash_loop",
        "attempt " + std::to_string(a.attempt) + " was dispatched again at "
          + std::to_string(u->restarts)
          + " starts of the node and never finished: the node stopped "
            "while running it each time (a crash loop?); it is not "
            "dispatched again",
        a.attempt);
      if (finished())
        break;
      continue;
    }
    auto p = d.task_payload(ti, a.item);
    p["attempt"] = a.attempt;
    p["cause"] = "node_restart";
    p["starts"] = u->restarts + 1;
    d.emit(events::redispatched, std::move(p));
    out.actions.push_back(std::move(a));
  }
  // The units running a sub-workflow resume it, its units keyed under
  // them (its crash loops parked the same way).
  for (size_t i = 0; i < st_->tasks.size() && !finished(); ++i) {
    if (!st_->accepts(static_cast<int>(i)) || terminal(st_->tasks[i].status))
      continue;
    if (auto& t = st_->tasks[i]; t.child && t.status == unit_status::running) {
      d.absorb(static_cast<int>(i), -1,
               t.child->resume(now_us, crash_loop_limit));
      continue;
    }
    for (size_t k = 0; k < st_->tasks[i].items.size(); ++k) {
      auto& u = st_->tasks[i].items[k];
      if (!u.child || u.status != unit_status::running)
        continue;
      auto cs = u.child->resume(now_us, crash_loop_limit);
      d.absorb(static_cast<int>(i), static_cast<int>(k), std::move(cs));
      if (terminal(st_->tasks[i].status) || finished())
        break;
    }
  }
  d.check_finished();
  if (finished()) {
    // Nothing more runs for an execution a parked task has failed.
    out.actions.clear();
  }
  if (st_->shown_status() != before || finished())
    out.index = info();
  return out;
}

const std::string& machine::id() const {
  return st_->id;
}

uint64_t machine::last_seq() const {
  return st_->seq;
}

bool machine::started() const {
  return st_->started;
}

bool machine::finished() const {
  return st_->finished();
}

const std::string& machine::status() const {
  return st_->shown_status();
}

execution_info machine::info() const {
  execution_info x;
  x.id = st_->id;
  if (st_->def) {
    x.workflow = st_->def->name;
    x.version = st_->def->version;
  }
  x.status = st_->shown_status();
  x.created_us = st_->created_us;
  x.updated_us = st_->updated_us;
  x.last_seq = st_->seq;
  x.output = json_value{st_->output};
  x.error = st_->error;
  return x;
}

const definition* machine::def() const {
  return st_->def ? &*st_->def : nullptr;
}

size_t machine::completed_tasks() const {
  return st_->completions;
}

namespace {

const char* state_name(unit_status s) {
  switch (s) {
    case unit_status::blocked:
      return "blocked";
    case unit_status::running:
      return "running";
    case unit_status::retry_wait:
      return "retry_wait";
    case unit_status::human_wait:
      return "waiting";
    case unit_status::done:
      return "done";
    case unit_status::failed:
      return "failed";
    case unit_status::skipped:
      return "skipped";
  }
  return "unknown";
}

// What a unit has got to: only the fields that mean something in its state.
json unit_view(const unit& u) {
  json out{{"state", state_name(u.status)}, {"attempt", u.attempt}};
  if (u.status != unit_status::blocked)
    out["input"] = u.input;
  if (u.status == unit_status::done || u.status == unit_status::skipped)
    out["output"] = u.output;
  if (!u.error.is_null()
      && (u.status == unit_status::failed
          || u.status == unit_status::retry_wait
          || u.status == unit_status::running))
    out["error"] = u.error;
  if (u.status == unit_status::retry_wait)
    out["retry_at_us"] = u.retry_at_us;
  return out;
}

} // namespace

json machine::view() const {
  const auto& st = *st_;
  auto info = this->info();
  json out{{"id", st.id},
           {"seq", st.seq},
           {"status", info.status},
           {"workflow", info.workflow},
           {"version", info.version},
           {"created_us", st.created_us},
           {"updated_us", st.updated_us},
           {"input", st.input}};
  if (st.status == "completed")
    out["output"] = st.output;
  if (!st.error.empty())
    out["error"] = st.error;
  if (!st.failing.is_null())
    out["failure"] = st.failing;
  json tasks = json::array();
  json timers = json::array();
  json waiting = json::array();
  if (st.def) {
    if (st.def->timeout_ms > 0 && !st.finished())
      timers.push_back(json{{"kind", "execution_timeout"},
                            {"at_us", st.created_us
                                        + st.def->timeout_ms * 1000}});
    for (size_t i = 0; i < st.tasks.size(); ++i) {
      const auto& td = st.def->tasks[i];
      const auto& t = st.tasks[i];
      auto v = unit_view(t);
      v["id"] = td.id;
      v["kind"] = kind_name(td.kind);
      if (!td.tool.empty())
        v["tool"] = td.tool;
      if (!td.agent.empty())
        v["agent"] = td.agent;
      if (t.status == unit_status::done)
        v["output"] = t.output;
      if (!t.usage.is_null())
        v["usage"] = t.usage;
      if (t.fallback_only)
        v["fallback_only"] = true;
      if (td.hook)
        v["on_failure"] = true;
      if (t.child) {
        // A sub-workflow task: its tasks, and its questions under the
        // task's key while it runs.
        auto cv = t.child->view();
        v["tasks"] = cv["tasks"];
        if (t.status == unit_status::running
            && st.accepts(static_cast<int>(i))) {
          auto prefix = td.id;
          if (t.attempt > 1)
            prefix += "@" + std::to_string(t.attempt);
          for (auto w : cv["waiting"]) {
            w["task"] = prefix + "/" + w.value("task", std::string{});
            waiting.push_back(std::move(w));
          }
        }
      }
      if (t.map_started) {
        json items = json::array();
        for (size_t k = 0; k < t.items.size(); ++k) {
          auto iv = unit_view(t.items[k]);
          iv["item"] = t.item_values[k];
          if (const auto& child = t.items[k].child) {
            // The item's sub-workflow: its tasks, and its questions under
            // the item's key while it runs.
            auto cv = child->view();
            iv["tasks"] = cv["tasks"];
            if (t.items[k].status == unit_status::running
                && !terminal(t.status) && st.accepts(static_cast<int>(i))) {
              auto prefix = td.id + "[" + std::to_string(k) + "]";
              if (t.items[k].attempt > 1)
                prefix += "@" + std::to_string(t.items[k].attempt);
              for (auto w : cv["waiting"]) {
                w["task"] = prefix + "/" + w.value("task", std::string{});
                waiting.push_back(std::move(w));
              }
            }
          }
          if (!t.items[k].usage.is_null())
            iv["usage"] = t.items[k].usage;
          if (t.items[k].status == unit_status::human_wait
              && !terminal(t.status) && st.accepts(static_cast<int>(i))) {
            auto key = td.id + "[" + std::to_string(k) + "]";
            iv["prompt"] = t.items[k].prompt;
            json w{{"task", key}, {"prompt", t.items[k].prompt}};
            if (!td.answer_schema.is_null())
              w["answer_schema"] = td.answer_schema;
            waiting.push_back(std::move(w));
          }
          items.push_back(std::move(iv));
          if (t.items[k].status == unit_status::retry_wait)
            timers.push_back(json{{"kind", "retry"},
                                  {"task", td.id + "[" + std::to_string(k)
                                             + "]"},
                                  {"at_us", t.items[k].retry_at_us}});
        }
        v["items"] = std::move(items);
      }
      if (t.status == unit_status::retry_wait)
        timers.push_back(json{{"kind", "retry"},
                              {"task", td.id},
                              {"at_us", t.retry_at_us}});
      if (t.status == unit_status::human_wait
          && st.accepts(static_cast<int>(i))) {
        v["prompt"] = t.prompt;
        json w{{"task", td.id}, {"prompt", t.prompt}};
        if (!td.answer_schema.is_null())
          w["answer_schema"] = td.answer_schema;
        waiting.push_back(std::move(w));
      }
      tasks.push_back(std::move(v));
    }
  }
  if (auto u = st.usage_total(); !u.is_null())
    out["usage"] = std::move(u);
  out["tasks"] = std::move(tasks);
  out["timers"] = std::move(timers);
  out["waiting"] = std::move(waiting);
  return out;
}

namespace {

constexpr int snapshot_format = 1;

json unit_snapshot(const unit& u) {
  json out{{"s", static_cast<int>(u.status)}, {"attempt", u.attempt},
           {"input", u.input},  {"output", u.output},
           {"error", u.error},  {"retry_at_us", u.retry_at_us}};
  if (u.restarts > 0)
    out["restarts"] = u.restarts;
  if (!u.usage.is_null())
    out["usage"] = u.usage;
  if (!u.prompt.is_null())
    out["prompt"] = u.prompt;
  if (u.child)
    out["child"] = u.child->snapshot();
  return out;
}

expected<void> unit_restore(const std::string& id, const json& j, unit& u) {
  u.status = static_cast<unit_status>(j.at("s").get<int>());
  u.attempt = j.at("attempt").get<uint32_t>();
  u.input = j.at("input");
  u.output = j.at("output");
  u.error = j.at("error");
  u.retry_at_us = j.at("retry_at_us").get<int64_t>();
  u.restarts = j.value("restarts", uint32_t{0});
  u.usage = j.value("usage", json{});
  u.prompt = j.value("prompt", json{});
  if (auto c = j.find("child"); c != j.end()) {
    auto child = machine::restore(id, *c);
    if (!child)
      return child.error();
    u.child = std::make_shared<machine>(std::move(*child));
  }
  return {};
}

// The execution's own fields, as both snapshot formats hold them.
json execution_fields(const machine::state& st) {
  return json{{"id", st.id},
              {"seq", st.seq},
              {"started", st.started},
              {"status", st.status},
              {"output", st.output},
              {"error", st.error},
              {"created_us", st.created_us},
              {"updated_us", st.updated_us},
              {"unfinished", st.unfinished},
              {"human_waits", st.human_waits},
              {"completions", st.completions},
              {"fork_outputs", st.fork_outputs},
              {"fork_answers", st.fork_answers},
              {"forked_from", st.forked_from},
              {"fork_rerun", st.fork_rerun},
              {"failing", st.failing}};
}

// Reads them back (the definition and input aside). Throws json's errors.
void restore_execution_fields(machine::state& st, const json& j) {
  st.seq = j.at("seq").get<uint64_t>();
  st.started = j.at("started").get<bool>();
  st.status = j.at("status").get<std::string>();
  st.output = j.at("output");
  st.error = j.at("error").get<std::string>();
  st.created_us = j.at("created_us").get<int64_t>();
  st.updated_us = j.at("updated_us").get<int64_t>();
  st.unfinished = j.at("unfinished").get<size_t>();
  st.human_waits = j.at("human_waits").get<size_t>();
  st.completions = j.at("completions").get<size_t>();
  st.fork_outputs = j.at("fork_outputs").get<std::map<std::string, json>>();
  st.fork_answers = j.at("fork_answers").get<std::map<std::string, json>>();
  // Absent from snapshots written before forks branched agent memory.
  st.forked_from = j.value("forked_from", std::string{});
  st.fork_rerun = j.value("fork_rerun", std::set<std::string>{});
  st.failing = j.value("failing", json{});
}

// What a restored task derives rather than stores: its sub-workflows
// counted, and its dependents.
void link_restored_task(machine::state& st, size_t i) {
  const auto& t = st.tasks[i];
  st.children += t.child ? 1 : 0;
  for (const auto& u : t.items)
    st.children += u.child ? 1 : 0;
  for (const auto& dep : st.def->tasks[i].depends_on)
    st.dependents[static_cast<size_t>(st.def->index_of(dep))].push_back(
      static_cast<int>(i));
}

} // namespace

size_t machine::state_units() const {
  size_t n = st_->tasks.size();
  for (const auto& t : st_->tasks) {
    n += t.items.size();
    if (t.child)
      n += t.child->state_units();
    for (const auto& u : t.items)
      if (u.child)
        n += u.child->state_units();
  }
  return n;
}

json machine::snapshot() const {
  const auto& st = *st_;
  json tasks = json::array();
  for (const auto& t : st.tasks) {
    auto j = unit_snapshot(t);
    j["remaining_deps"] = t.remaining_deps;
    j["fallback_only"] = t.fallback_only;
    j["fallback_for"] = t.fallback_for;
    j["map_started"] = t.map_started;
    j["item_values"] = t.item_values;
    json items = json::array();
    for (const auto& u : t.items)
      items.push_back(unit_snapshot(u));
    j["items"] = std::move(items);
    j["next_item"] = t.next_item;
    j["in_progress"] = t.in_progress;
    j["done_items"] = t.done_items;
    tasks.push_back(std::move(j));
  }
  auto out = execution_fields(st);
  out["format"] = snapshot_format;
  out["definition"] = st.def ? st.def->document : json{};
  out["input"] = st.input;
  out["tasks"] = std::move(tasks);
  return out;
}

expected<machine> machine::restore(const std::string& id, const json& snap) {
  auto bad = [&](const std::string& what) {
    return make_error(errc::codec_error,
                      "snapshot of execution " + id + ": " + what);
  };
  if (!snap.is_object() || snap.value("format", 0) != snapshot_format)
    return bad("unknown format");
  if (snap.value("id", std::string{}) != id)
    return bad("made for execution " + snap.value("id", std::string{}));
  machine m{id};
  auto& st = *m.st_;
  try {
    restore_execution_fields(st, snap);
    if (st.started) {
      auto def = load_document(snap.at("definition"));
      if (!def)
        return bad(message_of(def.error()));
      st.def = std::move(*def);
    }
    st.input = snap.at("input");
    const auto& tasks = snap.at("tasks");
    if (!st.def || tasks.size() != st.def->tasks.size()) {
      if (st.started)
        return bad("its tasks do not match its definition");
    } else {
      st.tasks.assign(tasks.size(), task_rt{});
      st.dependents.assign(tasks.size(), {});
      for (size_t i = 0; i < tasks.size(); ++i) {
        const auto& j = tasks[i];
        auto& t = st.tasks[i];
        if (auto r = unit_restore(id, j, t); !r)
          return bad(message_of(r.error()));
        t.remaining_deps = j.at("remaining_deps").get<size_t>();
        t.fallback_only = j.at("fallback_only").get<bool>();
        t.fallback_for = j.at("fallback_for").get<int>();
        t.map_started = j.at("map_started").get<bool>();
        t.item_values = j.at("item_values");
        for (const auto& u : j.at("items")) {
          t.items.emplace_back();
          if (auto r = unit_restore(id, u, t.items.back()); !r)
            return bad(message_of(r.error()));
        }
        t.next_item = j.at("next_item").get<size_t>();
        t.in_progress = j.at("in_progress").get<size_t>();
        t.done_items = j.at("done_items").get<size_t>();
        link_restored_task(st, i);
      }
    }
  } catch (const json::exception& e) {
    return bad(e.what());
  }
  return m;
}

void machine::snapshot_every(uint64_t every) {
  st_->snapshot_every = every;
}

namespace {

constexpr int paged_format = 2;

json ref_json(const std::pair<uint64_t, uint64_t>& r) {
  return json::array({r.first, r.second});
}

// A page of a map's items, column by column (fewer values to build and to
// read than an object per item; decoding values is what reading a
// snapshot costs): `sa` is attempt * 8 + state, then the inputs and the
// outputs; the rarer fields of a unit, by its place in the page, in `more`.
json page_json(const task_rt& t, size_t page) {
  auto from = page * snapshot_page_items;
  auto to = std::min(t.items.size(), from + snapshot_page_items);
  json sa(json::value_t::array), in(json::value_t::array),
    out(json::value_t::array), more(json::value_t::array);
  for (auto i = from; i < to; ++i) {
    const auto& u = t.items[i];
    sa.push_back(uint64_t{u.attempt} * 8 + static_cast<uint64_t>(u.status));
    in.push_back(u.input);
    out.push_back(u.output);
    if (u.error.is_null() && u.retry_at_us == 0 && u.restarts == 0
        && u.usage.is_null() && u.prompt.is_null() && !u.child)
      continue;
    auto full = unit_snapshot(u);
    for (const char* k : {"s", "attempt", "input", "output"})
      full.erase(k);
    more.push_back(json::array({i - from, std::move(full)}));
  }
  return json{{"sa", std::move(sa)},
              {"input", std::move(in)},
              {"output", std::move(out)},
              {"more", std::move(more)}};
}

std::pair<uint64_t, uint64_t> ref_of(const json& j) {
  if (!j.is_array() || j.size() != 2)
    throw std::invalid_argument("a part reference is not [k, seq]");
  return {j[0].get<uint64_t>(), j[1].get<uint64_t>()};
}

// A task's entry in a paged root: [remaining_deps, fallback_only,
// fallback_for, map_started, next_item, in_progress, done_items, items,
// head ref, [page refs]].
constexpr size_t task_fields = 10;

} // namespace

std::vector<event> machine::paged_snapshot(uint64_t n, int64_t now_us) {
  auto& st = *st_;
  auto log = snapshot_log(st.id, n);
  std::vector<event> out(1);
  uint64_t next = 2;
  auto add = [&](json part) {
    out.push_back(event{log, next, now_us, events::snapshot_part,
                        json_value{std::move(part)}});
    return std::make_pair(n, next++);
  };
  if (st.head_ref.first == 0)
    st.head_ref = add(json{{"definition", st.def ? st.def->document : json{}},
                           {"input", st.input}});
  st.parts.resize(st.tasks.size());
  json tasks(json::value_t::array);
  for (size_t i = 0; i < st.tasks.size(); ++i) {
    const auto& t = st.tasks[i];
    auto& tp = st.parts[i];
    if (tp.head.first == 0) {
      auto j = unit_snapshot(t);
      j["item_values"] = t.item_values;
      tp.head = add(std::move(j));
    }
    tp.pages.resize((t.items.size() + snapshot_page_items - 1)
                    / snapshot_page_items);
    json pages(json::value_t::array);
    for (size_t p = 0; p < tp.pages.size(); ++p) {
      if (tp.pages[p].first == 0)
        tp.pages[p] = add(page_json(t, p));
      pages.push_back(ref_json(tp.pages[p]));
    }
    tasks.push_back(json::array({t.remaining_deps, t.fallback_only,
                                 t.fallback_for, t.map_started, t.next_item,
                                 t.in_progress, t.done_items, t.items.size(),
                                 ref_json(tp.head), std::move(pages)}));
  }
  auto root = execution_fields(st);
  root["format"] = paged_format;
  root["head"] = ref_json(st.head_ref);
  root["page_items"] = snapshot_page_items;
  root["tasks"] = std::move(tasks);
  out[0] = event{log, 1, now_us, events::snapshot, json_value{std::move(root)}};
  return out;
}

expected<std::vector<machine::part_range>>
machine::snapshot_parts(const json& root) {
  std::vector<std::pair<uint64_t, uint64_t>> refs;
  try {
    if (!root.is_object() || root.value("format", 0) != paged_format)
      throw std::invalid_argument("not a paged snapshot");
    refs.push_back(ref_of(root.at("head")));
    for (const auto& t : root.at("tasks")) {
      if (!t.is_array() || t.size() != task_fields)
        throw std::invalid_argument("a task entry does not read");
      refs.push_back(ref_of(t[8]));
      for (const auto& p : t[9])
        refs.push_back(ref_of(p));
    }
  } catch (const std::exception& e) {
    return make_error(errc::codec_error, std::string{"snapshot: "} + e.what());
  }
  std::sort(refs.begin(), refs.end());
  refs.erase(std::unique(refs.begin(), refs.end()), refs.end());
  std::vector<part_range> out;
  for (const auto& [k, seq] : refs) {
    if (k == 0 || seq < 2)
      return make_error(errc::codec_error,
                        "snapshot: a part reference points nowhere");
    if (!out.empty() && out.back().k == k
        && out.back().from + out.back().count == seq)
      ++out.back().count;
    else
      out.push_back(part_range{k, seq, 1});
  }
  return out;
}

expected<machine>
machine::restore(const std::string& id, const json& root,
                 const std::function<const json*(uint64_t, uint64_t)>& part) {
  auto bad = [&](const std::string& what) {
    return make_error(errc::codec_error,
                      "snapshot of execution " + id + ": " + what);
  };
  if (!root.is_object() || root.value("format", 0) != paged_format)
    return bad("unknown format");
  if (root.value("id", std::string{}) != id)
    return bad("made for execution " + root.value("id", std::string{}));
  if (root.value("page_items", size_t{0}) != snapshot_page_items)
    return bad("pages of another size");
  auto get = [&](const json& ref) -> const json& {
    auto r = ref_of(ref);
    const auto* p = part(r.first, r.second);
    if (!p)
      throw std::invalid_argument("part " + std::to_string(r.first) + "/"
                                  + std::to_string(r.second) + " is missing");
    return *p;
  };
  machine m{id};
  auto& st = *m.st_;
  try {
    restore_execution_fields(st, root);
    const auto& head = get(root.at("head"));
    st.head_ref = ref_of(root.at("head"));
    if (st.started) {
      auto def = load_document(head.at("definition"));
      if (!def)
        return bad(message_of(def.error()));
      st.def = std::move(*def);
    }
    st.input = head.at("input");
    const auto& tasks = root.at("tasks");
    if (!st.def || tasks.size() != st.def->tasks.size()) {
      if (st.started)
        return bad("its tasks do not match its definition");
      return m;
    }
    st.tasks.assign(tasks.size(), task_rt{});
    st.dependents.assign(tasks.size(), {});
    st.parts.assign(tasks.size(), state::task_parts{});
    for (size_t i = 0; i < tasks.size(); ++i) {
      const auto& j = tasks[i];
      if (!j.is_array() || j.size() != task_fields)
        return bad("a task entry does not read");
      auto& t = st.tasks[i];
      auto& tp = st.parts[i];
      const auto& th = get(j[8]);
      tp.head = ref_of(j[8]);
      if (auto r = unit_restore(id, th, t); !r)
        return bad(message_of(r.error()));
      t.item_values = th.at("item_values");
      t.remaining_deps = j[0].get<size_t>();
      t.fallback_only = j[1].get<bool>();
      t.fallback_for = j[2].get<int>();
      t.map_started = j[3].get<bool>();
      t.next_item = j[4].get<size_t>();
      t.in_progress = j[5].get<size_t>();
      t.done_items = j[6].get<size_t>();
      auto n = j[7].get<size_t>();
      const auto& pages = j[9];
      if (pages.size()
          != (n + snapshot_page_items - 1) / snapshot_page_items)
        return bad("a map's pages do not hold its items");
      t.items.resize(n);
      for (size_t p = 0; p < pages.size(); ++p) {
        const auto& page = get(pages[p]);
        tp.pages.push_back(ref_of(pages[p]));
        const auto& sa = page.at("sa");
        const auto& in = page.at("input");
        const auto& out = page.at("output");
        auto from = p * snapshot_page_items;
        auto count = std::min(n - from, snapshot_page_items);
        if (sa.size() != count || in.size() != count || out.size() != count)
          return bad("a page does not hold its items");
        for (size_t x = 0; x < count; ++x) {
          auto& u = t.items[from + x];
          auto v = sa[x].get<uint64_t>();
          if (v % 8 > static_cast<uint64_t>(unit_status::skipped)
              || v / 8 > UINT32_MAX)
            return bad("an item's state does not read");
          u.status = static_cast<unit_status>(v % 8);
          u.attempt = static_cast<uint32_t>(v / 8);
          u.input = in[x];
          u.output = out[x];
        }
        for (const auto& extra : page.at("more")) {
          auto x = extra.at(0).get<size_t>();
          if (x >= count)
            return bad("a page's extra is past its items");
          auto& u = t.items[from + x];
          auto full = extra.at(1);
          full["s"] = static_cast<int>(u.status);
          full["attempt"] = u.attempt;
          full["input"] = std::move(u.input);
          full["output"] = std::move(u.output);
          if (auto r = unit_restore(id, full, u); !r)
            return bad(message_of(r.error()));
        }
      }
      link_restored_task(st, i);
    }
  } catch (const std::exception& e) {
    return bad(e.what());
  }
  return m;
}

const std::string& machine::forked_from() const {
  return st_->forked_from;
}

bool machine::fork_reruns(const std::string& key) const {
  return reruns(st_->fork_rerun, key);
}

bool reruns(const std::set<std::string>& rerun, const std::string& key) {
  if (rerun.empty())
    return false;
  // Each step of the key names a unit the key's unit runs under: "task",
  // "task[i]" and the run "task[i]@a" of a sub-workflow, then its units.
  std::string path;
  size_t from = 0;
  while (true) {
    auto slash = key.find('/', from);
    auto segment = key.substr(from, slash == std::string::npos
                                      ? std::string::npos
                                      : slash - from);
    auto run = segment.substr(0, segment.find('@'));
    auto [name, item] = split_key(run);
    if (rerun.count(path + name) > 0
        || (item >= 0 && rerun.count(path + run) > 0)
        || (run.size() != segment.size() && rerun.count(path + segment) > 0))
      return true;
    if (slash == std::string::npos)
      return false;
    path += segment + "/";
    from = slash + 1;
  }
}

void machine::replay_only() {
  st_->replay_only = true;
  st_->unbuilt_decisions = true;
}

bool machine::decided_as(const unbuilt_decision& d, const event& rec) const {
  const auto& td = st_->def->tasks[static_cast<size_t>(d.task)];
  const auto& p = rec.payload.get();
  bool dispatch = d.kind == unbuilt_decision::dispatch;
  if (rec.type != (dispatch ? events::dispatched : events::completed)
      || !p.is_object())
    return false;
  // The payload event_of(d) builds has these keys and no others: as many
  // keys, each there and equal, is the same payload. The object keeps its
  // keys sorted, so one walk meets them in this order.
  const auto& fields = p.get_ref<const json::object_t&>();
  size_t keys = 4 + (d.item >= 0 ? 1 : 0);
  if (!dispatch && d.usage.is_null())
    --keys;
  if (fields.size() != keys)
    return false;
  auto i = fields.begin();
  auto next = [&](std::string_view key) -> const json* {
    if (i == fields.end() || i->first != key)
      return nullptr;
    return &(i++)->second;
  };
  auto is = [](const json* v, const auto& want) { return v && *v == want; };
  auto is_text = [](const json* v, const std::string& want) {
    return v && v->is_string() && v->get_ref<const std::string&>() == want;
  };
  if (!is(next("attempt"), d.attempt))
    return false;
  if (dispatch) {
    // attempt, input, item, task, tool
    if (!is(next("input"), d.value))
      return false;
    if (d.item >= 0 && !is(next("item"), d.item))
      return false;
    return is_text(next("task"), td.id) && is_text(next("tool"), td.tool);
  }
  // attempt, item, output, task, usage
  if (d.item >= 0 && !is(next("item"), d.item))
    return false;
  if (!is(next("output"), d.value) || !is_text(next("task"), td.id))
    return false;
  return d.usage.is_null() || is(next("usage"), d.usage);
}

event machine::event_of(const unbuilt_decision& d) const {
  const auto& td = st_->def->tasks[static_cast<size_t>(d.task)];
  if (d.kind == unbuilt_decision::dispatch)
    return event{std::string{}, d.seq, st_->updated_us, events::dispatched,
                 json_value{dispatch_payload(td, task_kind::tool, d.item,
                                             d.attempt, d.value)}};
  return event{std::string{}, d.seq, st_->updated_us, events::completed,
               json_value{item_completion_payload(td, d.item, d.attempt,
                                                  d.value, d.usage)}};
}

void machine::use_fork_edits(const json& edits) {
  st_->use_fork_edits(edits);
}

std::string machine::unit_state(const std::string& key) const {
  if (!st_->def)
    return {};
  if (auto slash = key.find('/'); slash != std::string::npos) {
    auto [ti, item] = st_->nested_item(key.substr(0, slash), false);
    if (ti < 0)
      return {};
    return st_->find_unit(ti, item)->child->unit_state(key.substr(slash + 1));
  }
  auto [name, item] = split_key(key);
  auto* u = st_->find_unit(st_->def->index_of(name), item);
  return u ? state_name(u->status) : std::string{};
}

} // namespace cadre::workflow
