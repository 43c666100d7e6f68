// Validation of a workflow document (docs/workflows.md) into a definition.
// Every problem becomes one diagnostic; checking goes on after an error so
// that one run reports them all.

#include <algorithm>
#include <cctype>
#include <functional>
#include <limits>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <unordered_map>
#include <vector>

#include "cadre/lang/lua_sandbox.hpp"
#include "cadre/lang/secrets.hpp"
#include "cadre/workflow/agent_spec.hpp"
#include "cadre/workflow/definition.hpp"
#include "document.hpp"
#include "cadre/messages/json_text.hpp"

namespace cadre::workflow::detail {

namespace {

const std::vector<std::string> workflow_keys = {
  "name", "version", "description", "input_schema", "timeout", "output",
  "tasks", "agents", "on_failure",
};

const std::vector<std::string> task_keys = {
  "id",          "kind",   "tool",          "input",       "depends_on",
  "when",        "retry",  "timeout",       "on_failure",  "prompt",
  "answer_schema", "items", "concurrency",  "workflow",    "agent",
};

const std::vector<std::string> retry_keys = {
  "max_attempts", "backoff", "multiplier", "max_backoff", "jitter",
  "retry_on",
};

const std::vector<std::string> kind_names = {"tool", "human", "map",
                                             "workflow", "agent"};

/// Nesting limit of inline sub-workflows.
constexpr int max_workflow_depth = 16;
/// Upper bound of retry.max_attempts.
constexpr int64_t max_attempts_limit = 1000;


/// Keys that only some kinds accept.
/// A map takes the keys of what it runs per item (a tool, an agent, a
/// human task or a sub-workflow); which one is checked with the item's kind.
bool applies(const std::string& key, task_kind kind) {
  if (key == "tool")
    return kind == task_kind::tool || kind == task_kind::map;
  if (key == "input")
    return kind != task_kind::human;
  if (key == "prompt" || key == "answer_schema")
    return kind == task_kind::human || kind == task_kind::map;
  if (key == "items" || key == "concurrency")
    return kind == task_kind::map;
  if (key == "workflow")
    return kind == task_kind::workflow || kind == task_kind::map;
  if (key == "agent")
    return kind == task_kind::agent || kind == task_kind::map;
  return true;
}

std::vector<std::string> errc_names() {
  std::vector<std::string> out;
  for (int i = 1;; ++i) {
    auto name = to_string(static_cast<errc>(i));
    if (name == "unknown")
      break;
    out.push_back(std::move(name));
  }
  return out;
}

std::string trim(const std::string& s) {
  size_t b = 0;
  size_t e = s.size();
  while (b < e && std::isspace(static_cast<unsigned char>(s[b])))
    ++b;
  while (e > b && std::isspace(static_cast<unsigned char>(s[e - 1])))
    --e;
  return s.substr(b, e - b);
}

bool valid_id(const std::string& id) {
  if (id.empty())
    return false;
  auto c0 = static_cast<unsigned char>(id[0]);
  if (!std::isalpha(c0) && c0 != '_')
    return false;
  return std::all_of(id.begin(), id.end(), [](char ch) {
    auto c = static_cast<unsigned char>(ch);
    return std::isalnum(c) || c == '_' || c == '-';
  });
}

std::string in_quotes(const std::string& s) {
  return "'" + s + "'";
}

std::string hint(const std::string& word,
                 const std::vector<std::string>& candidates) {
  auto best = closest(word, candidates);
  if (best.empty())
    return {};
  return "; did you mean " + in_quotes(best) + "?";
}

/// A `tasks.<id>` or `tasks["id"]` found in a Lua expression.
struct task_ref {
  std::string id;
  /// For `tasks.a-b`: "a-b" (Lua reads it as tasks.a minus b).
  std::string dashed;
};

bool ident_char(char c) {
  return std::isalnum(static_cast<unsigned char>(c)) || c == '_';
}

std::vector<task_ref> find_task_refs(const std::string& expr) {
  std::vector<task_ref> out;
  size_t pos = 0;
  const std::string word = "tasks";
  while ((pos = expr.find(word, pos)) != std::string::npos) {
    size_t i = pos + word.size();
    bool starts_word = pos == 0
                       || (!ident_char(expr[pos - 1]) && expr[pos - 1] != '.');
    pos = i;
    if (!starts_word || (i < expr.size() && ident_char(expr[i])))
      continue;
    while (i < expr.size() && std::isspace(static_cast<unsigned char>(expr[i])))
      ++i;
    if (i >= expr.size())
      break;
    if (expr[i] == '.') {
      ++i;
      while (i < expr.size()
             && std::isspace(static_cast<unsigned char>(expr[i])))
        ++i;
      size_t b = i;
      while (i < expr.size() && ident_char(expr[i]))
        ++i;
      if (i == b)
        continue;
      task_ref ref{expr.substr(b, i - b), {}};
      size_t e = i;
      while (e < expr.size() && (ident_char(expr[e]) || expr[e] == '-'))
        ++e;
      if (e > i)
        ref.dashed = expr.substr(b, e - b);
      out.push_back(std::move(ref));
    } else if (expr[i] == '[') {
      ++i;
      while (i < expr.size()
             && std::isspace(static_cast<unsigned char>(expr[i])))
        ++i;
      if (i >= expr.size() || (expr[i] != '"' && expr[i] != '\''))
        continue;
      char q = expr[i++];
      auto end = expr.find(q, i);
      if (end == std::string::npos)
        continue;
      out.push_back({expr.substr(i, end - i), {}});
      pos = end + 1;
    }
  }
  return out;
}

struct dep_ref {
  std::string id;
  std::string pointer;
};

/// What validation keeps about a task beyond its task_def.
struct task_info {
  bool has_id = false;
  std::vector<dep_ref> deps;
  std::string fallback_pointer;
  /// Expressions and templates to check once the graph is known.
  bool check_input = false;
  bool check_prompt = false;
};

// Which tasks finish before a task starts: its depends_on, transitively,
// and those of the task it is the fallback of. Answered per query by a
// search over the dependency edges: materializing every task's closure is
// quadratic in a long chain (a 1,000-step chain spent most of its
// validation there).
class upstream_index {
public:
  upstream_index(const std::vector<std::vector<size_t>>& deps,
                 const std::vector<size_t>& fallback_of)
    : deps_(deps), fallback_of_(fallback_of) {
  }

  /// True when `v` is upstream of `task`.
  bool contains(size_t task, size_t v) const {
    std::vector<char> seen(deps_.size(), 0);
    std::vector<size_t> todo;
    auto push_deps = [&](size_t u) {
      for (auto d : deps_[u])
        if (!seen[d]) {
          seen[d] = 1;
          todo.push_back(d);
        }
    };
    push_deps(task);
    if (task < fallback_of_.size() && fallback_of_[task] < deps_.size())
      push_deps(fallback_of_[task]);
    // Direct dependencies first: the common case answers at once.
    for (size_t i = 0; i < todo.size(); ++i) {
      if (todo[i] == v)
        return true;
      push_deps(todo[i]);
    }
    return false;
  }

private:
  const std::vector<std::vector<size_t>>& deps_;
  const std::vector<size_t>& fallback_of_;
};

/// The upstream tasks of one task, as the reference checks ask for them.
struct upstream_scope {
  const upstream_index* index;
  size_t task;

  size_t count(size_t v) const {
    return index->contains(task, v) ? 1 : 0;
  }
};

class validator {
public:
  validator(const std::string& file, const locations* where,
            const validation_context& ctx)
    : file_(file), where_(where), ctx_(ctx) {
  }

  std::vector<diagnostic> errors;

  std::optional<definition> workflow(const json& doc, const std::string& base,
                                     int depth);

private:
  void error(const std::string& pointer, std::string message,
             bool at_key = false) {
    errors.push_back({file_,
                      where_ != nullptr ? where_->find(pointer, at_key)
                                        : source_location{},
                      pointer, std::move(message)});
  }

  void check_keys(const json& obj, const std::string& pointer,
                  const std::vector<std::string>& allowed,
                  const std::string& what) {
    for (auto it = obj.begin(); it != obj.end(); ++it) {
      const auto& key = it.key();
      if (std::find(allowed.begin(), allowed.end(), key) != allowed.end())
        continue;
      std::string msg = "unknown key " + in_quotes(key) + " in " + what;
      if (&allowed == &task_keys
          && std::find(retry_keys.begin(), retry_keys.end(), key)
               != retry_keys.end())
        msg += "; it belongs under 'retry'";
      else
        msg += hint(key, allowed);
      error(child_pointer(pointer, key), std::move(msg), true);
    }
  }

  tools::lua_sandbox* lua() {
    if (!lua_ && !lua_failed_) {
      // Validation only compiles: no libraries to load.
      tools::sandbox_options opts;
      opts.compile_only = true;
      auto sb = tools::lua_sandbox::create(opts);
      if (sb)
        lua_ = std::move(*sb);
      else
        lua_failed_ = true;
    }
    return lua_.get();
  }

  bool string_field(const json& obj, const std::string& key,
                    const std::string& pointer, std::string& out) {
    auto it = obj.find(key);
    if (it == obj.end())
      return false;
    if (!it->is_string()) {
      error(child_pointer(pointer, key),
            in_quotes(key) + " must be a string, got " + it->type_name());
      return false;
    }
    out = it->get<std::string>();
    return true;
  }

  void duration_field(const json& obj, const std::string& key,
                      const std::string& pointer, int64_t& out) {
    auto it = obj.find(key);
    if (it == obj.end())
      return;
    if (auto problem = parse_duration(*it, out); !problem.empty())
      error(child_pointer(pointer, key), in_quotes(key) + ": " + problem);
  }

  void schema_field(const json& obj, const std::string& key,
                    const std::string& pointer, json& out) {
    auto it = obj.find(key);
    if (it == obj.end())
      return;
    auto ptr = child_pointer(pointer, key);
    if (!it->is_object() && !it->is_boolean() && !it->is_null()) {
      error(ptr, in_quotes(key) + " must be a JSON Schema (an object), got "
                   + it->type_name());
      return;
    }
    if (auto problem = schema_problem(*it))
      error(ptr, in_quotes(key) + ": " + *problem);
    out = *it;
  }

  void task(const json& t, const std::string& ptr, task_def& out,
            task_info& info, int depth);
  void retry(const json& r, const std::string& ptr, retry_policy& out);
  void on_failure(const json& v, const std::string& ptr, task_def& out,
                  task_info& info);

  /// Checks one Lua expression: it compiles, and every task it reads is
  /// known, not `self` and in `scope` (scope null: every task).
  void expression(const std::string& expr, const std::string& pointer,
                  const std::unordered_map<std::string, size_t>& index,
                  const upstream_scope* scope, size_t self,
                  const std::vector<task_def>& tasks);
  void template_value(const json& tmpl, const std::string& pointer,
                      const std::unordered_map<std::string, size_t>& index,
                      const upstream_scope* scope, size_t self,
                      const std::vector<task_def>& tasks);
  /// Checks the secret references in `tmpl` (at `pointer`; `within` is the
  /// pointer below the template's root) and collects where they are into
  /// `out`; `out` null: no secret may be used here.
  void secret_references(const json& tmpl, const std::string& pointer,
                         const std::string& within,
                         std::vector<std::string>* out);

  const std::string& file_;
  const locations* where_;
  const validation_context& ctx_;
  std::unique_ptr<tools::lua_sandbox> lua_;
  bool lua_failed_ = false;
};

void validator::retry(const json& r, const std::string& ptr,
                      retry_policy& out) {
  if (r.is_number_integer()) {
    auto n = r.get<int64_t>();
    if (n < 1 || n > max_attempts_limit)
      error(ptr, "'retry' as a number is max_attempts, which must be 1 to "
                   + std::to_string(max_attempts_limit));
    else
      out.max_attempts = static_cast<uint32_t>(n);
    return;
  }
  if (!r.is_object()) {
    error(ptr, "'retry' must be a mapping (max_attempts, backoff, "
               "multiplier, max_backoff, jitter, retry_on) or a number of "
               "attempts, got "
                 + std::string{r.type_name()});
    return;
  }
  check_keys(r, ptr, retry_keys, "'retry'");
  if (auto it = r.find("max_attempts"); it != r.end()) {
    if (!it->is_number_integer() || it->get<int64_t>() < 1
        || it->get<int64_t>() > max_attempts_limit)
      error(child_pointer(ptr, "max_attempts"),
            "'max_attempts' must be an integer from 1 to "
              + std::to_string(max_attempts_limit) + ", got " + dump_json(*it));
    else
      out.max_attempts = static_cast<uint32_t>(it->get<int64_t>());
  }
  duration_field(r, "backoff", ptr, out.initial_backoff_ms);
  duration_field(r, "max_backoff", ptr, out.max_backoff_ms);
  if (auto it = r.find("multiplier"); it != r.end()) {
    if (!it->is_number() || it->get<double>() < 1)
      error(child_pointer(ptr, "multiplier"),
            "'multiplier' must be a number of at least 1, got "
              + dump_json(*it));
    else
      out.multiplier = it->get<double>();
  }
  if (auto it = r.find("jitter"); it != r.end()) {
    if (!it->is_number() || it->get<double>() < 0 || it->get<double>() > 1)
      error(child_pointer(ptr, "jitter"),
            "'jitter' must be a number from 0 to 1, got " + dump_json(*it));
    else
      out.jitter = it->get<double>();
  }
  if (r.contains("backoff") && r.contains("max_backoff")
      && out.max_backoff_ms < out.initial_backoff_ms)
    error(child_pointer(ptr, "max_backoff"),
          "'max_backoff' (" + std::to_string(out.max_backoff_ms)
            + " ms) is less than 'backoff' ("
            + std::to_string(out.initial_backoff_ms) + " ms)");
  if (auto it = r.find("retry_on"); it != r.end()) {
    auto list_ptr = child_pointer(ptr, "retry_on");
    json items = it->is_string() ? json::array({*it}) : *it;
    if (!items.is_array()) {
      error(list_ptr, "'retry_on' must be a list of error codes such as "
                      "tool_failed, timeout, worker_crashed");
      return;
    }
    static const auto names = errc_names();
    for (size_t i = 0; i < items.size(); ++i) {
      auto item_ptr = it->is_string() ? list_ptr
                                      : child_pointer(list_ptr,
                                                      std::to_string(i));
      errc code;
      if (!items[i].is_string()) {
        error(item_ptr, "an error code must be a string, got "
                          + dump_json(items[i]));
      } else if (auto name = items[i].get<std::string>();
                 name == "ok" || !from_string(name, code)) {
        auto msg = "unknown error code " + in_quotes(name) + hint(name, names);
        if (closest(name, names).empty()) {
          msg += " (known:";
          for (const auto& n : names)
            msg += " " + n;
          msg += ")";
        }
        error(item_ptr, std::move(msg));
      } else {
        out.retry_on.push_back(name);
      }
    }
  }
}

void validator::on_failure(const json& v, const std::string& ptr,
                           task_def& out, task_info& info) {
  const char* forms = "'on_failure' must be fail, continue, "
                      "fallback:<task id> or {fallback: <task id>}";
  if (v.is_object()) {
    check_keys(v, ptr, {"fallback"}, "'on_failure'");
    auto it = v.find("fallback");
    if (it == v.end() || !it->is_string()
        || trim(it->get<std::string>()).empty()) {
      error(it == v.end() ? ptr : child_pointer(ptr, "fallback"), forms);
      return;
    }
    out.on_failure = failure_action::fallback;
    out.fallback = trim(it->get<std::string>());
    info.fallback_pointer = child_pointer(ptr, "fallback");
    return;
  }
  if (!v.is_string()) {
    error(ptr, std::string{forms} + ", got " + dump_json(v));
    return;
  }
  auto text = trim(v.get<std::string>());
  if (text == "fail") {
    out.on_failure = failure_action::fail;
  } else if (text == "continue") {
    out.on_failure = failure_action::proceed;
  } else if (text.rfind("fallback", 0) == 0) {
    auto rest = trim(text.substr(8));
    if (rest.empty() || rest[0] != ':' || trim(rest.substr(1)).empty()) {
      error(ptr, "'on_failure: " + text
                   + "' names no task; write fallback:<task id>");
      return;
    }
    out.on_failure = failure_action::fallback;
    out.fallback = trim(rest.substr(1));
    info.fallback_pointer = ptr;
  } else {
    error(ptr, std::string{forms} + ", got " + in_quotes(text)
                 + hint(text, {"fail", "continue"}));
  }
}

void validator::task(const json& t, const std::string& ptr, task_def& out,
                     task_info& info, int depth) {
  out.pointer = ptr;
  if (where_ != nullptr)
    out.where = where_->find(ptr);
  if (!t.is_object()) {
    error(ptr, "a task must be a mapping with at least 'id', got "
                 + std::string{t.type_name()});
    return;
  }
  check_keys(t, ptr, task_keys, "a task");
  // id
  if (auto it = t.find("id"); it == t.end()) {
    error(ptr, "the task has no 'id'");
  } else if (!it->is_string()) {
    error(child_pointer(ptr, "id"),
          "'id' must be a string, got " + dump_json(*it));
  } else if (!valid_id(it->get<std::string>())) {
    error(child_pointer(ptr, "id"),
          "task id " + dump_json(*it)
            + " must start with a letter or '_' and hold only letters, "
              "digits, '_' and '-'");
  } else {
    out.id = it->get<std::string>();
    info.has_id = true;
  }
  // kind: given, or inferred from the keys only one kind has
  bool kind_ok = true;
  bool inferred = false;
  if (auto it = t.find("kind"); it != t.end()) {
    auto name = it->is_string() ? it->get<std::string>() : dump_json(*it);
    if (name == "tool")
      out.kind = task_kind::tool;
    else if (name == "human")
      out.kind = task_kind::human;
    else if (name == "map")
      out.kind = task_kind::map;
    else if (name == "workflow")
      out.kind = task_kind::workflow;
    else if (name == "agent")
      out.kind = task_kind::agent;
    else {
      error(child_pointer(ptr, "kind"),
            "unknown kind " + in_quotes(name) + hint(name, kind_names)
              + " (kinds: tool, human, map, workflow, agent)");
      kind_ok = false;
    }
  } else {
    inferred = true;
    std::vector<std::pair<std::string, task_kind>> hints;
    // `items` makes a map whatever runs per item (prompt, agent or tool).
    if (t.contains("items"))
      hints.emplace_back("items", task_kind::map);
    else if (t.contains("prompt"))
      hints.emplace_back("prompt", task_kind::human);
    else if (t.contains("answer_schema"))
      hints.emplace_back("answer_schema", task_kind::human);
    if (t.contains("workflow") && !t.contains("items"))
      hints.emplace_back("workflow", task_kind::workflow);
    if (t.contains("agent") && !t.contains("items"))
      hints.emplace_back("agent", task_kind::agent);
    if (hints.size() == 1) {
      out.kind = hints[0].second;
    } else if (hints.size() > 1) {
      std::string keys;
      for (const auto& [key, kind] : hints)
        keys += (keys.empty() ? "" : ", ") + in_quotes(key);
      error(ptr, "cannot tell the task's kind: " + keys
                   + " belong to different kinds; set 'kind'");
      kind_ok = false;
    }
  }
  if (kind_ok) {
    for (auto it = t.begin(); it != t.end(); ++it)
      if (!applies(it.key(), out.kind))
        error(child_pointer(ptr, it.key()),
              in_quotes(it.key()) + " does not apply to a "
                + kind_name(out.kind) + " task"
                + (inferred ? " (no 'kind' is given, so it is "
                                + std::string{kind_name(out.kind)} + ")"
                            : ""),
              true);
    auto need = [&](const char* key) {
      if (!t.contains(key))
        error(ptr, std::string{"a "} + kind_name(out.kind)
                     + " task needs " + in_quotes(key));
    };
    switch (out.kind) {
      case task_kind::tool:
        need("tool");
        break;
      case task_kind::human:
        need("prompt");
        break;
      case task_kind::map: {
        need("items");
        // What runs per item: exactly one of a tool, an agent, a prompt,
        // a sub-workflow.
        std::vector<std::string> runs;
        for (const char* key : {"tool", "agent", "prompt", "workflow"})
          if (t.contains(key))
            runs.emplace_back(key);
        if (runs.empty())
          error(ptr, "a map task needs 'tool', 'agent', 'prompt' or "
                     "'workflow' (what runs for each item)");
        else if (runs.size() > 1)
          error(child_pointer(ptr, runs[1]),
                in_quotes(runs[1]) + " and " + in_quotes(runs[0])
                  + " in one map task: each item runs one of 'tool', "
                    "'agent', 'prompt' or 'workflow'",
                true);
        else if (runs[0] == "agent")
          out.item_kind = task_kind::agent;
        else if (runs[0] == "prompt")
          out.item_kind = task_kind::human;
        else if (runs[0] == "workflow")
          out.item_kind = task_kind::workflow;
        if (out.item_kind == task_kind::human && t.contains("input"))
          error(child_pointer(ptr, "input"),
                "'input' does not apply to a map of human tasks (its items "
                "ask 'prompt')",
                true);
        if (out.item_kind != task_kind::human && t.contains("answer_schema"))
          error(child_pointer(ptr, "answer_schema"),
                "'answer_schema' applies to a map of human tasks (with "
                "'prompt')",
                true);
        break;
      }
      case task_kind::workflow:
        need("workflow");
        break;
      case task_kind::agent:
        need("agent");
        break;
    }
  }
  // tool
  if (string_field(t, "tool", ptr, out.tool)) {
    auto tool_ptr = child_pointer(ptr, "tool");
    if (out.tool.empty())
      error(tool_ptr, "'tool' must name a tool");
    else if (ctx_.tool_exists && !ctx_.tool_exists(out.tool))
      error(tool_ptr, "unknown tool " + in_quotes(out.tool)
                        + " (no tool of that name is registered)");
  }
  if (string_field(t, "agent", ptr, out.agent) && out.agent.empty())
    error(child_pointer(ptr, "agent"), "'agent' must name an agent");
  if (auto it = t.find("input"); it != t.end()) {
    out.input = *it;
    info.check_input = true;
  }
  // depends_on
  if (auto it = t.find("depends_on"); it != t.end()) {
    auto dptr = child_pointer(ptr, "depends_on");
    auto add = [&](const json& v, const std::string& p) {
      if (!v.is_string() || v.get<std::string>().empty()) {
        error(p, "a dependency must be a task id, got " + dump_json(v));
        return;
      }
      auto id = v.get<std::string>();
      if (std::find(out.depends_on.begin(), out.depends_on.end(), id)
          != out.depends_on.end()) {
        error(p, "task " + in_quotes(id) + " is listed twice in depends_on");
        return;
      }
      out.depends_on.push_back(id);
      info.deps.push_back({id, p});
    };
    if (it->is_string()) {
      add(*it, dptr);
    } else if (it->is_array()) {
      for (size_t i = 0; i < it->size(); ++i)
        add((*it)[i], child_pointer(dptr, std::to_string(i)));
    } else if (!it->is_null()) {
      error(dptr, "'depends_on' must be a task id or a list of task ids, got "
                    + dump_json(*it));
    }
  }
  // when
  if (auto it = t.find("when"); it != t.end()) {
    if (it->is_boolean())
      out.when = it->get<bool>() ? "true" : "false";
    else if (it->is_string() && !trim(it->get<std::string>()).empty())
      out.when = trim(it->get<std::string>());
    else
      error(child_pointer(ptr, "when"),
            "'when' must be a Lua expression (a string), got "
              + dump_json(*it));
  }
  if (auto it = t.find("retry"); it != t.end())
    retry(*it, child_pointer(ptr, "retry"), out.retry);
  duration_field(t, "timeout", ptr, out.timeout_ms);
  if (auto it = t.find("on_failure"); it != t.end())
    on_failure(*it, child_pointer(ptr, "on_failure"), out, info);
  // human
  if (auto it = t.find("prompt"); it != t.end()) {
    if (it->is_null() || (it->is_string() && it->get<std::string>().empty()))
      error(child_pointer(ptr, "prompt"), "'prompt' must not be empty");
    out.prompt = *it;
    info.check_prompt = true;
  }
  schema_field(t, "answer_schema", ptr, out.answer_schema);
  // map
  if (auto it = t.find("items"); it != t.end()) {
    auto iptr = child_pointer(ptr, "items");
    if (!it->is_string()) {
      error(iptr, "'items' must be a Lua expression (a string) giving the "
                  "list, got "
                    + dump_json(*it));
    } else {
      auto expr = trim(it->get<std::string>());
      // Accept the template form "{{ expr }}" too.
      if (expr.size() >= 4 && expr.rfind("{{", 0) == 0
          && expr.find("}}") == expr.size() - 2)
        expr = trim(expr.substr(2, expr.size() - 4));
      if (expr.empty())
        error(iptr, "'items' is empty");
      out.items = expr;
    }
  }
  if (auto it = t.find("concurrency"); it != t.end()) {
    if (!it->is_number_integer() || it->get<int64_t>() < 0
        || it->get<int64_t>() > std::numeric_limits<uint32_t>::max())
      error(child_pointer(ptr, "concurrency"),
            "'concurrency' must be a whole number, 0 or more (0: all at "
            "once), got "
              + dump_json(*it));
    else
      out.concurrency = static_cast<uint32_t>(it->get<int64_t>());
  }
  // workflow
  if (auto it = t.find("workflow"); it != t.end()) {
    auto wptr = child_pointer(ptr, "workflow");
    if (!it->is_object()) {
      error(wptr, "'workflow' must be an inline workflow (a mapping with "
                  "name and tasks), got "
                    + std::string{it->type_name()});
    } else if (depth + 1 > max_workflow_depth) {
      error(wptr, "sub-workflows nested deeper than "
                    + std::to_string(max_workflow_depth) + " levels");
    } else {
      workflow(*it, wptr, depth + 1);
      out.workflow = *it;
    }
  }
}

void validator::expression(
  const std::string& expr, const std::string& pointer,
  const std::unordered_map<std::string, size_t>& index,
  const upstream_scope* scope, size_t self,
  const std::vector<task_def>& tasks) {
  if (auto sb = lua(); sb != nullptr)
    if (auto ok = sb->check_expression(expr); !ok)
      error(pointer, "does not compile: " + message_of(ok.error()));
  // Candidates for a "did you mean" hint, sorted: built only for an error.
  auto known_ids = [&index] {
    std::vector<std::string> ids;
    for (const auto& [id, i] : index)
      ids.push_back(id);
    std::sort(ids.begin(), ids.end());
    return ids;
  };
  std::set<std::string> reported;
  for (const auto& ref : find_task_refs(expr)) {
    if (!reported.insert(ref.id).second)
      continue;
    auto it = index.find(ref.id);
    if (it == index.end()) {
      std::string msg = "unknown task " + in_quotes(ref.id) + " in "
                        + in_quotes("tasks." + ref.id);
      if (!ref.dashed.empty() && index.count(ref.dashed) > 0)
        msg += "; Lua reads tasks." + ref.dashed + " as a subtraction, "
               "write tasks[\"" + ref.dashed + "\"]";
      else
        msg += hint(ref.id, known_ids());
      error(pointer, std::move(msg));
    } else if (it->second == self) {
      error(pointer, "task " + in_quotes(ref.id) + " reads its own output");
    } else if (scope != nullptr && scope->count(it->second) == 0) {
      error(pointer, "task " + in_quotes(ref.id) + " is not upstream of "
                       + in_quotes(tasks[self].id)
                       + ", so its output is not known yet; add it to "
                         "depends_on");
    }
  }
}

void validator::template_value(
  const json& tmpl, const std::string& pointer,
  const std::unordered_map<std::string, size_t>& index,
  const upstream_scope* scope, size_t self,
  const std::vector<task_def>& tasks) {
  if (tmpl.is_object()) {
    for (auto it = tmpl.begin(); it != tmpl.end(); ++it)
      template_value(*it, child_pointer(pointer, it.key()), index, scope,
                     self, tasks);
  } else if (tmpl.is_array()) {
    for (size_t i = 0; i < tmpl.size(); ++i)
      template_value(tmpl[i], child_pointer(pointer, std::to_string(i)),
                     index, scope, self, tasks);
  } else if (tmpl.is_string()) {
    const auto& s = tmpl.get_ref<const std::string&>();
    size_t open = s.rfind("{{");
    if (open != std::string::npos
        && s.find("}}", open + 2) == std::string::npos) {
      error(pointer, "a '{{' is not closed by '}}'");
      return;
    }
    tools::for_each_template_expression(
      tmpl, [&](const std::string&, const std::string& expr) {
        if (expr.empty())
          error(pointer, "an empty '{{ }}'");
        else
          expression(expr, pointer, index, scope, self, tasks);
      });
  }
}

void validator::secret_references(const json& tmpl,
                                  const std::string& pointer,
                                  const std::string& within,
                                  std::vector<std::string>* out) {
  if (tmpl.is_object()) {
    for (auto it = tmpl.begin(); it != tmpl.end(); ++it)
      secret_references(*it, child_pointer(pointer, it.key()),
                        child_pointer(within, it.key()), out);
    return;
  }
  if (tmpl.is_array()) {
    for (size_t i = 0; i < tmpl.size(); ++i)
      secret_references(tmpl[i], child_pointer(pointer, std::to_string(i)),
                        child_pointer(within, std::to_string(i)), out);
    return;
  }
  if (!tmpl.is_string()
      || !tools::holds_secret_reference(tmpl.get_ref<const std::string&>()))
    return;
  if (out == nullptr) {
    error(pointer, "a secret may be used only in the input of a tool task "
                   "(here its value would be recorded or sent on)");
    return;
  }
  bool only_secrets = true;
  tools::for_each_template_expression(
    tmpl, [&](const std::string&, const std::string& expr) {
      auto name = tools::secret_reference(expr);
      if (!name)
        only_secrets = false;
      else if (ctx_.secret_exists && !ctx_.secret_exists(*name))
        error(pointer, "unknown secret " + in_quotes(*name)
                         + " (define it under 'secrets:' in the node "
                           "config)");
    });
  if (!only_secrets) {
    // Data put into the same string could carry a reference of its own.
    error(pointer, "a string with a '{{ secrets.NAME }}' may hold no other "
                   "'{{ }}' expression");
    return;
  }
  out->push_back(within);
}

std::optional<definition> validator::workflow(const json& doc,
                                              const std::string& base,
                                              int depth) {
  if (!doc.is_object()) {
    error(base, "a workflow must be a mapping with 'name' and 'tasks', got "
                  + std::string{doc.type_name()});
    return std::nullopt;
  }
  auto errors_before = errors.size();
  definition def;
  def.document = doc;
  check_keys(doc, base, workflow_keys, "the workflow");
  if (auto it = doc.find("name"); it == doc.end())
    error(base, "the workflow has no 'name'");
  else if (!it->is_string() || it->get<std::string>().empty())
    error(child_pointer(base, "name"),
          "'name' must be a non-empty string, got " + dump_json(*it));
  else
    def.name = it->get<std::string>();
  if (auto it = doc.find("version"); it != doc.end()) {
    auto vptr = child_pointer(base, "version");
    if (it->is_string()) {
      def.version = it->get<std::string>();
    } else if (it->is_number()) {
      // Keep the number as written: `version: 1.10` is "1.10", not "1.1".
      def.version = dump_json(*it);
      if (where_ != nullptr)
        if (auto raw = where_->raw_numbers.find(vptr);
            raw != where_->raw_numbers.end())
          def.version = raw->second;
    } else {
      error(vptr, "'version' must be a string or a number, got "
                    + dump_json(*it));
    }
  }
  string_field(doc, "description", base, def.description);
  schema_field(doc, "input_schema", base, def.input_schema);
  duration_field(doc, "timeout", base, def.timeout_ms);
  if (auto it = doc.find("output"); it != doc.end())
    def.output = *it;
  if (auto it = doc.find("agents"); it != doc.end()) {
    auto aptr = child_pointer(base, "agents");
    if (!it->is_object()) {
      error(aptr, "'agents' must be a mapping of agent names to agents, got "
                    + std::string{it->type_name()});
    } else {
      agent_check check;
      check.tool_exists = ctx_.tool_exists;
      for (auto a = it->begin(); a != it->end(); ++a) {
        auto ptr = child_pointer(aptr, a.key());
        if (!valid_id(a.key()))
          error(ptr, "agent name " + in_quotes(a.key())
                       + " must start with a letter or '_' and hold only "
                         "letters, digits, '_' and '-'",
                true);
        agent_spec spec;
        for (auto& p : parse_agent_spec(a.key(), *a, spec, check))
          error(ptr + p.pointer, p.message);
        def.agents[a.key()] = *a;
      }
    }
  }
  // tasks
  std::vector<task_info> infos;
  auto tptr = child_pointer(base, "tasks");
  if (auto it = doc.find("tasks"); it == doc.end()) {
    error(base, "the workflow has no 'tasks'");
  } else if (!it->is_array()) {
    error(tptr, "'tasks' must be a list of tasks, got "
                  + std::string{it->type_name()});
  } else if (it->empty()) {
    error(tptr, "'tasks' must list at least one task");
  } else {
    def.tasks.resize(it->size());
    infos.resize(it->size());
    for (size_t i = 0; i < it->size(); ++i)
      task((*it)[i], child_pointer(tptr, std::to_string(i)), def.tasks[i],
           infos[i], depth);
  }
  // on_failure: tasks run once after the execution failed (hooks), kept
  // after the tasks with `hook` set.
  if (auto it = doc.find("on_failure"); it != doc.end()) {
    auto hptr = child_pointer(base, "on_failure");
    if (!it->is_array() || it->empty()) {
      error(hptr, "'on_failure' must be a list of tasks (tool or agent) run "
                  "once after the execution failed, got "
                    + dump_json(*it));
    } else {
      for (size_t i = 0; i < it->size(); ++i) {
        auto ptr = child_pointer(hptr, std::to_string(i));
        def.tasks.emplace_back();
        infos.emplace_back();
        auto& h = def.tasks.back();
        task((*it)[i], ptr, h, infos.back(), depth);
        h.hook = true;
        if (h.kind != task_kind::tool && h.kind != task_kind::agent)
          error(ptr, "an on_failure task is a tool or an agent task, got a "
                       + std::string{kind_name(h.kind)} + " task");
        if (!h.depends_on.empty())
          error(child_pointer(ptr, "depends_on"),
                "an on_failure task has no depends_on: every one of them "
                "runs once the execution has failed");
        if (h.on_failure != failure_action::fail)
          error(child_pointer(ptr, "on_failure"),
                "an on_failure task's own failure is recorded and ends it; "
                "it takes no 'on_failure'");
      }
    }
  }
  auto& tasks = def.tasks;
  auto n = tasks.size();
  // agents named by agent tasks
  for (size_t i = 0; i < n; ++i) {
    const auto& name = tasks[i].agent;
    if (tasks[i].unit_kind() != task_kind::agent || name.empty()
        || def.agents.count(name) > 0
        || !ctx_.agent_exists || ctx_.agent_exists(name))
      continue;
    std::vector<std::string> known;
    for (const auto& [k, v] : def.agents)
      known.push_back(k);
    error(child_pointer(tasks[i].pointer, "agent"),
          "unknown agent " + in_quotes(name)
            + " (define it under 'agents:' or in the node config)"
            + hint(name, known));
  }
  // ids
  std::unordered_map<std::string, size_t> index;
  for (size_t i = 0; i < n; ++i) {
    if (!infos[i].has_id)
      continue;
    auto [it, added] = index.emplace(tasks[i].id, i);
    if (!added) {
      auto first = tasks[it->second].where.line > 0
                     ? "line " + std::to_string(tasks[it->second].where.line)
                     : tasks[it->second].pointer;
      error(child_pointer(tasks[i].pointer, "id"),
            "duplicate task id " + in_quotes(tasks[i].id) + " (first at "
              + first + ")");
    }
  }
  std::vector<std::string> ids;
  for (const auto& [id, i] : index)
    ids.push_back(id);
  std::sort(ids.begin(), ids.end());
  // depends_on
  std::vector<std::vector<size_t>> edges(n);
  for (size_t i = 0; i < n; ++i)
    for (const auto& dep : infos[i].deps) {
      if (infos[i].has_id && dep.id == tasks[i].id) {
        error(dep.pointer, "dependency cycle: " + dep.id + " -> " + dep.id
                             + " (a task cannot depend on itself)");
        continue;
      }
      auto it = index.find(dep.id);
      if (it == index.end())
        error(dep.pointer, "unknown task " + in_quotes(dep.id)
                             + " in depends_on" + hint(dep.id, ids));
      else if (tasks[it->second].hook)
        error(dep.pointer, "task " + in_quotes(dep.id)
                             + " is an on_failure task: it runs only after "
                               "the execution failed");
      else
        edges[i].push_back(it->second);
    }
  // cycles, by depth-first search in document order
  std::vector<int> color(n, 0); // 0 new, 1 on the path, 2 done
  std::vector<size_t> path;
  std::function<void(size_t)> visit = [&](size_t u) {
    color[u] = 1;
    path.push_back(u);
    for (auto v : edges[u]) {
      if (color[v] == 1) {
        auto from = std::find(path.begin(), path.end(), v);
        std::string text;
        for (auto p = from; p != path.end(); ++p)
          text += tasks[*p].id + " -> ";
        text += tasks[v].id;
        auto next = from + 1 != path.end() ? *(from + 1) : v;
        std::string at = tasks[v].pointer;
        for (const auto& dep : infos[v].deps)
          if (dep.id == tasks[next].id) {
            at = dep.pointer;
            break;
          }
        error(at, "dependency cycle: " + text
                    + " (each task depends on the next)");
      } else if (color[v] == 0) {
        visit(v);
      }
    }
    path.pop_back();
    color[u] = 2;
  };
  for (size_t i = 0; i < n; ++i)
    if (color[i] == 0)
      visit(i);
  // fallbacks
  constexpr size_t none = std::numeric_limits<size_t>::max();
  std::vector<size_t> fallback_of(n, none); // target -> the task it serves
  std::vector<size_t> fallback_to(n, none); // task -> its target
  for (size_t i = 0; i < n; ++i) {
    if (tasks[i].on_failure != failure_action::fallback)
      continue;
    const auto& target = tasks[i].fallback;
    const auto& at = infos[i].fallback_pointer;
    if (infos[i].has_id && target == tasks[i].id) {
      error(at, "a task cannot be its own fallback");
      continue;
    }
    auto it = index.find(target);
    if (it == index.end()) {
      error(at, "unknown fallback task " + in_quotes(target)
                  + hint(target, ids));
      continue;
    }
    auto j = it->second;
    if (tasks[j].hook) {
      error(at, "task " + in_quotes(target)
                  + " is an on_failure task: it runs only after the "
                    "execution failed");
      continue;
    }
    fallback_to[i] = j;
    if (!tasks[j].depends_on.empty())
      error(at, "fallback task " + in_quotes(target)
                  + " must not have depends_on: it runs only in place of "
                  + in_quotes(tasks[i].id));
    if (fallback_of[j] != none)
      error(at, "task " + in_quotes(target) + " is already the fallback of "
                  + in_quotes(tasks[fallback_of[j]].id)
                  + "; a fallback task serves one task");
    else
      fallback_of[j] = i;
  }
  for (size_t i = 0; i < n; ++i)
    for (size_t k = 0; k < infos[i].deps.size(); ++k) {
      auto it = index.find(infos[i].deps[k].id);
      if (it == index.end() || fallback_of[it->second] == none)
        continue;
      auto j = it->second;
      error(infos[i].deps[k].pointer,
            in_quotes(tasks[i].id) + " depends on " + in_quotes(tasks[j].id)
              + ", the fallback of " + in_quotes(tasks[fallback_of[j]].id)
              + ", which runs only when " + in_quotes(tasks[fallback_of[j]].id)
              + " fails");
    }
  for (size_t i = 0; i < n; ++i) {
    // Report a loop of fallbacks once, from its first task.
    std::string text = tasks[i].id;
    size_t j = fallback_to[i];
    size_t steps = 0;
    bool smallest = true;
    while (j != none && j != i && steps++ < n) {
      text += " -> " + tasks[j].id;
      smallest = smallest && j > i;
      j = fallback_to[j];
    }
    if (j == i && steps > 0 && smallest)
      error(infos[i].fallback_pointer,
            "fallback cycle: " + text + " -> " + tasks[i].id);
  }
  // A fallback task may read what the task it replaces could read.
  upstream_index upstream{edges, fallback_of};
  // expressions and templates
  for (size_t i = 0; i < n; ++i) {
    const auto& t = tasks[i];
    upstream_scope task_scope{&upstream, i};
    // An on_failure task may read every task, as the output template does.
    const auto* scope = t.hook ? nullptr : &task_scope;
    if (!t.when.empty())
      expression(t.when, child_pointer(t.pointer, "when"), index, scope, i,
                 tasks);
    if (!t.items.empty())
      expression(t.items, child_pointer(t.pointer, "items"), index, scope, i,
                 tasks);
    if (infos[i].check_input) {
      template_value(t.input, child_pointer(t.pointer, "input"), index,
                     scope, i, tasks);
      bool to_tool = t.unit_kind() == task_kind::tool;
      secret_references(t.input, child_pointer(t.pointer, "input"), "",
                        to_tool ? &tasks[i].secret_pointers : nullptr);
    }
    if (infos[i].check_prompt) {
      template_value(t.prompt, child_pointer(t.pointer, "prompt"), index,
                     scope, i, tasks);
      secret_references(t.prompt, child_pointer(t.pointer, "prompt"), "",
                        nullptr);
    }
  }
  if (!def.output.is_null()) {
    template_value(def.output, child_pointer(base, "output"), index, nullptr,
                   none, tasks);
    secret_references(def.output, child_pointer(base, "output"), "",
                      nullptr);
  }
  if (errors.size() != errors_before)
    return std::nullopt;
  return def;
}

} // namespace

parse_result validate(const json& doc, const std::string& file,
                      const locations* where, const validation_context& ctx) {
  validator v{file, where, ctx};
  parse_result result;
  result.def = v.workflow(doc, "", 0);
  result.errors = std::move(v.errors);
  if (!result.errors.empty())
    result.def.reset();
  return result;
}

} // namespace cadre::workflow::detail
