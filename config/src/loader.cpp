#include "cadre/config/node_config.hpp"

#include <cctype>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <limits>
#include <optional>
#include <set>
#include <sstream>
#include <string_view>
#include <type_traits>

#include "cadre/yaml/reader.hpp"
#include "cadre/messages/json_text.hpp"

#include "cadre/messages/duration.hpp"
#include "cadre/schedule/cron.hpp"

namespace cadre::config {

namespace {

/// The config file as read: the document and where each value was written.
struct source {
  const std::string& path;
  const yaml::document& doc;

  /// "file:line:column: key" at the value of `pointer` (at its key with
  /// `at_key`).
  std::string where(const std::string& pointer, const std::string& key,
                    bool at_key = false) const {
    auto at = doc.find(pointer, at_key);
    return path + ":" + std::to_string(at.line) + ":"
           + std::to_string(at.column) + ": " + key;
  }

  caf::error fail(const std::string& pointer, const std::string& key,
                  const std::string& what, bool at_key = false) const {
    return make_error(errc::invalid_config,
                      where(pointer, key, at_key) + ": " + what);
  }
};

template <class T>
expected<T> scalar(const source& src, const json& value,
                   const std::string& pointer, const std::string& key,
                   const char* expect) {
  if constexpr (std::is_same_v<T, std::string>) {
    if (value.is_string())
      return value.get<std::string>();
    // A path or a name that YAML read as a number or a boolean.
    if (auto raw = src.doc.raw_numbers.find(pointer);
        raw != src.doc.raw_numbers.end())
      return raw->second;
    if (value.is_boolean())
      return dump_json(value);
  } else if constexpr (std::is_same_v<T, bool>) {
    if (value.is_boolean())
      return value.get<bool>();
  } else if constexpr (std::is_unsigned_v<T>) {
    if (value.is_number_unsigned()
        || (value.is_number_integer() && value.get<int64_t>() >= 0))
      return value.get<T>();
  } else {
    if (value.is_number_integer()
        && (!value.is_number_unsigned()
            || value.get<uint64_t>()
                 <= static_cast<uint64_t>(std::numeric_limits<T>::max())))
      return value.get<T>();
  }
  return src.fail(pointer, key, std::string{"expected "} + expect);
}

caf::error env_error(const char* name, const std::string& what) {
  return make_error(errc::invalid_config, std::string{name} + ": " + what);
}

/// The variable's value; nullopt when unset or empty (an empty value is
/// "not set", so scripts can pass `CADRE_LLM_KIND=` through).
std::optional<std::string> env_value(const char* name) {
  auto* v = std::getenv(name);
  if (!v || *v == '\0')
    return std::nullopt;
  return std::string{v};
}

bool env_name(std::string_view x) {
  if (x.empty() || std::isdigit(static_cast<unsigned char>(x.front())))
    return false;
  for (unsigned char c : x)
    if (!std::isalnum(c) && c != '_')
      return false;
  return true;
}

/// CADRE_LLM_*: the profile `default` under llm.profiles, which every agent
/// without a `provider` uses. A kind other than the file's starts the
/// profile afresh (the file's keys were for another protocol); the other
/// variables override single keys.
expected<void> apply_llm_environment(json& llm) {
  auto kind = env_value("CADRE_LLM_KIND");
  auto base_url = env_value("CADRE_LLM_BASE_URL");
  auto model = env_value("CADRE_LLM_MODEL");
  auto key_env = env_value("CADRE_LLM_API_KEY_ENV");
  auto timeout = env_value("CADRE_LLM_TIMEOUT");
  if (!kind && !base_url && !model && !key_env && !timeout)
    return {};
  // The kinds of tools/src/llm/providers.def; config does not link tools/.
  static const std::set<std::string> kinds
    = {"anthropic", "ollama", "openai", "scripted"};
  if (kind && !kinds.count(*kind))
    return env_error("CADRE_LLM_KIND",
                     "unknown provider '" + *kind
                       + "' (known: anthropic, ollama, openai, scripted)");
  if (base_url && base_url->rfind("http://", 0) != 0
      && base_url->rfind("https://", 0) != 0)
    // Not echoed: a URL may carry credentials.
    return env_error("CADRE_LLM_BASE_URL",
                     "must start with http:// or https://");
  if (key_env && !env_name(*key_env))
    // Never echoed: a key put here by mistake is a secret.
    return env_error("CADRE_LLM_API_KEY_ENV",
                     "must be the name of the environment variable that "
                     "holds the API key (letters, digits and _, such as "
                     "OPENAI_API_KEY), not the key itself");
  json timeout_value;
  if (timeout) {
    int64_t ms = 0;
    constexpr int64_t year_ms = int64_t{365} * 24 * 3600 * 1000;
    if (!parse_duration(json(*timeout), ms).empty() || ms < 1 || ms > year_ms)
      return env_error("CADRE_LLM_TIMEOUT",
                       "expected a positive duration such as \"30s\", "
                       "\"500ms\", \"2m\" or a number of milliseconds, "
                       "got '" + *timeout + "'");
    timeout_value = timeout->find_first_not_of("0123456789")
                        == std::string::npos
                      ? json(ms)
                      : json(*timeout);
  }
  if (!llm.is_object())
    return env_error("CADRE_LLM_*", "the config's llm section is not a "
                                    "mapping");
  auto& profiles = llm["profiles"];
  if (profiles.is_null())
    profiles = json::object();
  if (!profiles.is_object())
    return env_error("CADRE_LLM_*", "the config's llm.profiles is not a "
                                    "mapping of profile names");
  auto& profile = profiles["default"];
  if (!profile.is_object())
    profile = json::object();
  json file_kind = profile.contains("kind") ? profile["kind"] : json{};
  if (kind && file_kind != json(*kind))
    profile = json{{"kind", *kind}};
  if (!profile.contains("kind")) {
    const char* set = base_url ? "CADRE_LLM_BASE_URL"
                      : model  ? "CADRE_LLM_MODEL"
                      : key_env ? "CADRE_LLM_API_KEY_ENV"
                                : "CADRE_LLM_TIMEOUT";
    return env_error(set, "set CADRE_LLM_KIND too: the config has no "
                          "llm.profiles.default to apply it to");
  }
  if (base_url)
    profile["base_url"] = *base_url;
  if (model)
    profile["model"] = *model;
  if (key_env)
    profile["api_key_env"] = *key_env;
  if (timeout)
    profile["timeout"] = timeout_value;
  return {};
}

bool schedule_name(std::string_view x) {
  if (x.empty() || x.size() > 128)
    return false;
  for (unsigned char c : x)
    if (!std::isalnum(c) && c != '.' && c != '_' && c != '-')
      return false;
  return true;
}

// Whether the scalar at `at` in `text` starts with a quote (its characters
// then start one column later).
bool quoted_at(std::string_view text, yaml::position at) {
  size_t pos = 0;
  for (int line = 1; line < at.line && pos != std::string_view::npos; ++line)
    if ((pos = text.find('\n', pos)) != std::string_view::npos)
      ++pos;
  if (pos == std::string_view::npos || at.column < 1)
    return false;
  pos += static_cast<size_t>(at.column - 1);
  return pos < text.size() && (text[pos] == '"' || text[pos] == '\'');
}

/// One entry of `schedules`, checked key by key; `names` holds the names
/// of the entries before it.
expected<schedule::spec> load_schedule(const source& src,
                                       std::string_view text,
                                       const json& item, size_t index,
                                       std::set<std::string>& names) {
  auto ptr = "/schedules/" + std::to_string(index);
  auto at = "schedules[" + std::to_string(index) + "]";
  if (!item.is_object())
    return src.fail(ptr, at,
                    "expected a mapping with name, workflow and every or "
                    "cron");
  schedule::spec s;
  auto mark = src.doc.find(ptr);
  s.origin = src.path + ":" + std::to_string(mark.line) + ":"
             + std::to_string(mark.column);
  const json* every = nullptr;
  const json* cron = nullptr;
  bool has_name = false;
  bool has_workflow = false;
  for (const auto& [key, value] : item.items()) {
    auto vptr = yaml::child_pointer(ptr, key);
    auto path = at + "." + key;
    auto text_value = [&](const char* expect) {
      return scalar<std::string>(src, value, vptr, path, expect);
    };
    if (key == "name") {
      auto v = text_value("a name");
      if (!v)
        return v.error();
      if (!value.is_string() || !schedule_name(*v))
        return src.fail(vptr, path,
                        "expected 1 to 128 letters, digits, '.', '_' or '-'");
      if (!names.insert(*v).second)
        return src.fail(vptr, path, "another schedule is named '" + *v + "'");
      s.name = *v;
      has_name = true;
    } else if (key == "workflow") {
      auto v = text_value("the path of a workflow file");
      if (!v)
        return v.error();
      if (v->empty())
        return src.fail(vptr, path, "expected the path of a workflow file");
      std::filesystem::path p{*v};
      if (p.is_relative())
        p = std::filesystem::path{src.path}.parent_path() / p;
      s.workflow = p.lexically_normal().string();
      has_workflow = true;
    } else if (key == "input") {
      s.input = value;
    } else if (key == "every") {
      every = &value;
    } else if (key == "cron") {
      cron = &value;
    } else if (key == "missed") {
      auto v = text_value("skip or run_once");
      if (!v)
        return v.error();
      if (!schedule::from_string(*v, s.missed))
        return src.fail(vptr, path,
                        "expected skip or run_once, got '" + *v + "'");
    } else if (key == "overlap") {
      auto v = text_value("skip, queue or allow");
      if (!v)
        return v.error();
      if (!schedule::from_string(*v, s.overlap))
        return src.fail(vptr, path,
                        "expected skip, queue or allow, got '" + *v + "'");
    } else {
      return src.fail(vptr, path,
                      "unknown key (known: name, workflow, input, every, "
                      "cron, missed, overlap)",
                      true);
    }
  }
  if (!has_name)
    return src.fail(ptr, at, "name is required");
  if (!has_workflow)
    return src.fail(ptr, at + " (" + s.name + ")", "workflow is required");
  if (every && cron)
    return src.fail(ptr + "/cron", at + ".cron",
                    "set either every or cron, not both");
  if (every) {
    int64_t ms = 0;
    auto eptr = ptr + "/every";
    if (every->is_object() || every->is_array())
      return src.fail(eptr, at + ".every",
                      "expected a duration such as 30s, 5m or 1h");
    if (auto problem = parse_duration(*every, ms); !problem.empty())
      return src.fail(eptr, at + ".every", problem);
    if (ms < 1000)
      return src.fail(eptr, at + ".every",
                      "at least 1s, got "
                        + (every->is_string() ? every->get<std::string>()
                                              : dump_json(*every)));
    s.every_ms = ms;
  } else if (cron) {
    auto cptr = ptr + "/cron";
    auto v = scalar<std::string>(src, *cron, cptr, at + ".cron",
                                 "a cron expression");
    if (!v)
      return v.error();
    schedule::cron_error bad;
    if (!schedule::cron::parse(*v, &bad)) {
      // Point at the field at fault: a quoted scalar starts after its
      // quote.
      auto m = src.doc.find(cptr);
      auto column = m.column + static_cast<int>(bad.offset)
                    + (quoted_at(text, m) ? 1 : 0);
      return make_error(errc::invalid_config,
                        src.path + ":" + std::to_string(m.line) + ":"
                          + std::to_string(column) + ": " + at
                          + ".cron: " + bad.message);
    }
    s.cron = *v;
  } else {
    return src.fail(ptr, at + " (" + s.name + ")",
                    "set every (a duration such as 5m) or cron (five fields "
                    "such as \"*/5 * * * *\")");
  }
  return s;
}

expected<std::vector<schedule::spec>>
load_schedules(const source& src, std::string_view text, const json& node) {
  std::vector<schedule::spec> out;
  if (node.is_null())
    return out;
  if (!node.is_array())
    return src.fail("/schedules", "schedules", "expected a list");
  std::set<std::string> names;
  for (size_t i = 0; i < node.size(); ++i) {
    auto s = load_schedule(src, text, node[i], i, names);
    if (!s)
      return s.error();
    out.push_back(std::move(*s));
  }
  return out;
}

} // namespace

expected<node_config> load_file(const std::string& path, node_config cfg) {
  std::ifstream in{path, std::ios::binary};
  if (!in)
    return make_error(errc::invalid_config, path + ": cannot read the file");
  std::ostringstream text;
  text << in.rdbuf();
  auto doc = yaml::read(text.str());
  const source src{path, doc};
  if (!doc.problems.empty()) {
    const auto& p = doc.problems.front();
    return make_error(errc::invalid_config,
                      path + ":" + std::to_string(p.at.line) + ":"
                        + std::to_string(p.at.column) + ": "
                        + (p.pointer.empty() ? "" : p.pointer + ": ")
                        + p.message);
  }
  const json& root = doc.value;
  cfg.source = path;
  if (root.is_null())
    return cfg;
  if (!root.is_object())
    return src.fail("", "/", "expected a mapping");
  static const std::set<std::string> top
    = {"store", "tools", "executions", "scheduler", "llm", "agents",
       "server", "log", "schedules", "cluster", "secrets"};
  for (const auto& [key, value] : root.items()) {
    (void) value;
    if (!top.count(key))
      return src.fail("/" + key, key,
                      "unknown key (known: store, tools, executions, "
                      "scheduler, llm, agents, server, log, schedules, "
                      "cluster, secrets)",
                      true);
  }
  auto section = [&](const char* name) -> const json* {
    auto it = root.find(name);
    return it == root.end() || it->is_null() ? nullptr : &*it;
  };
  if (auto* store = section("store")) {
    if (!store->is_object())
      return src.fail("/store", "store", "expected a mapping");
    for (const auto& [key, value] : store->items()) {
      auto at = "/store/" + key;
      if (key == "dir") {
        auto v = scalar<std::string>(src, value, at, "store.dir", "a path");
        if (!v)
          return v.error();
        cfg.store_dir = *v;
      } else if (key == "sync") {
        auto v = scalar<bool>(src, value, at, "store.sync", "true or false");
        if (!v)
          return v.error();
        cfg.store_sync = *v;
      } else if (key == "mode") {
        auto v = scalar<std::string>(src, value, at, "store.mode",
                                     "wal or sync");
        if (!v)
          return v.error();
        if (*v != "wal" && *v != "sync")
          return src.fail(at, "store.mode", "expected wal or sync, got " + *v);
        cfg.store_sync = *v == "sync";
      } else if (key == "snapshot_every") {
        auto v = scalar<uint64_t>(src, value, at, "store.snapshot_every",
                                  "a number of events (0: no snapshots)");
        if (!v)
          return v.error();
        cfg.snapshot_every = *v;
      } else if (key == "append_deadline") {
        int64_t ms = 0;
        if (value.is_object() || value.is_array())
          return src.fail(at, "store.append_deadline",
                          "expected a duration such as 60s or 500ms");
        if (auto problem = parse_duration(value, ms); !problem.empty())
          return src.fail(at, "store.append_deadline", problem);
        if (ms < 1)
          return src.fail(at, "store.append_deadline",
                          "at least 1ms, got " + dump_json(value));
        cfg.append_deadline_ms = ms;
      } else {
        return src.fail(at, "store." + key,
                        "unknown key (known: append_deadline, dir, mode, "
                        "snapshot_every, sync)",
                        true);
      }
    }
  }
  if (auto* tools = section("tools")) {
    if (!tools->is_object())
      return src.fail("/tools", "tools", "expected a mapping");
    for (const auto& [name, value] : tools->items()) {
      auto at = yaml::child_pointer("/tools", name);
      if (name == "workers") {
        auto v = scalar<size_t>(src, value, at, "tools.workers",
                                "a positive integer");
        if (!v)
          return v.error();
        cfg.default_workers = *v;
        continue;
      }
      // Checked against the tool's settings schema, the pool's keys
      // included, when the node starts (tools::tool_registry).
      tool_config tc;
      tc.settings = value;
      if (!tc.settings.is_object())
        return src.fail(at, "tools." + name, "expected a mapping");
      cfg.tools[name] = std::move(tc);
    }
  }
  for (auto key : {"executions", "scheduler"})
    if (auto* value = section(key); value && !value->is_object())
      return src.fail(std::string{"/"} + key, key, "expected a mapping");
  if (auto* ex = section("executions")) {
    if (auto v = ex->find("max_restarts"); v != ex->end()) {
      auto r = scalar<size_t>(src, *v, "/executions/max_restarts",
                              "executions.max_restarts",
                              "a non-negative integer");
      if (!r)
        return r.error();
      cfg.max_restarts = *r;
    }
    if (auto v = ex->find("restart_window_ms"); v != ex->end()) {
      auto r = scalar<int64_t>(src, *v, "/executions/restart_window_ms",
                               "executions.restart_window_ms",
                               "milliseconds");
      if (!r)
        return r.error();
      cfg.restart_window_ms = *r;
    }
    if (auto v = ex->find("crash_loop_limit"); v != ex->end()) {
      auto r = scalar<uint32_t>(src, *v, "/executions/crash_loop_limit",
                                "executions.crash_loop_limit",
                                "a non-negative integer (0: no limit)");
      if (!r)
        return r.error();
      cfg.crash_loop_limit = *r;
    }
  }
  // Checked by runtime/ when the node or the server starts
  // (agents_config.cpp, server_options.cpp), with errors that name the key.
  for (auto [key, section_json] :
       {std::pair{"llm", &cfg.llm}, std::pair{"agents", &cfg.agents},
        std::pair{"server", &cfg.server}, std::pair{"log", &cfg.log},
        std::pair{"cluster", &cfg.cluster}})
    if (auto* value = section(key)) {
      if (!value->is_object())
        return src.fail(std::string{"/"} + key, key, "expected a mapping");
      *section_json = *value;
    }
  if (auto* sched = section("schedules")) {
    auto specs = load_schedules(src, text.str(), *sched);
    if (!specs)
      return specs.error();
    cfg.schedules = std::move(*specs);
  }
  if (auto* secrets = section("secrets")) {
    if (!secrets->is_object())
      return src.fail("/secrets", "secrets", "expected a mapping");
    for (const auto& [name, value] : secrets->items()) {
      auto at = yaml::child_pointer("/secrets", name);
      auto key = "secrets." + name;
      bool word = !name.empty();
      for (unsigned char c : name)
        word = word && (std::isalnum(c) || c == '_');
      if (!word)
        return src.fail(at, key,
                        "a secret's name may hold only letters, digits "
                        "and '_'",
                        true);
      if (!value.is_object() || value.size() != 1
          || !(value.contains("env") || value.contains("file")))
        return src.fail(at, key,
                        "expected {env: VARIABLE} or {file: PATH}");
      secret_source s;
      if (auto e = value.find("env"); e != value.end()) {
        auto v = scalar<std::string>(src, *e, at + "/env", key + ".env",
                                     "the name of an environment variable");
        if (!v)
          return v.error();
        if (!env_name(*v))
          return src.fail(at + "/env", key + ".env",
                          "expected the name of an environment variable "
                          "(letters, digits, '_'), not its value");
        s.env = *v;
      } else {
        auto v = scalar<std::string>(src, value.at("file"), at + "/file",
                                     key + ".file", "a path");
        if (!v)
          return v.error();
        if (v->empty())
          return src.fail(at + "/file", key + ".file", "expected a path");
        std::filesystem::path p{*v};
        if (p.is_relative())
          p = std::filesystem::path{src.path}.parent_path() / p;
        s.file = p.string();
      }
      cfg.secrets[name] = std::move(s);
    }
  }
  if (auto* sc = section("scheduler")) {
    if (!sc->is_object())
      return src.fail("/scheduler", "scheduler", "expected a mapping");
    for (const auto& [key, value] : sc->items()) {
      auto at = "/scheduler/" + key;
      if (key == "threads") {
        auto r = scalar<size_t>(src, value, at, "scheduler.threads",
                                "a non-negative integer");
        if (!r)
          return r.error();
        cfg.scheduler_threads = *r;
      } else if (key == "spin_polls") {
        auto r = scalar<size_t>(src, value, at, "scheduler.spin_polls",
                                "an integer >= 1");
        if (!r)
          return r.error();
        if (*r < 1)
          return src.fail(at, "scheduler.spin_polls",
                          "expected an integer >= 1, got 0");
        cfg.scheduler_spin_polls = *r;
      } else {
        return src.fail(at, "scheduler." + key,
                        "unknown key (known: spin_polls, threads)", true);
      }
    }
  }
  return cfg;
}

expected<node_config> apply_environment(node_config cfg) {
  auto num = [](const char* name, size_t& out) -> expected<void> {
    auto* v = std::getenv(name);
    if (!v)
      return {};
    char* end = nullptr;
    auto x = std::strtoull(v, &end, 10);
    if (*v == '\0' || *end != '\0')
      return make_error(errc::invalid_config,
                        std::string{name} + ": expected an integer, got '"
                          + v + "'");
    out = x;
    return {};
  };
  if (auto* v = std::getenv("CADRE_STORE_DIR"))
    cfg.store_dir = v;
  if (auto* v = std::getenv("CADRE_STORE_SYNC")) {
    std::string s = v;
    if (s == "1" || s == "true")
      cfg.store_sync = true;
    else if (s == "0" || s == "false")
      cfg.store_sync = false;
    else
      return make_error(errc::invalid_config,
                        "CADRE_STORE_SYNC: expected true or false, got '" + s
                          + "'");
  }
  if (auto r = num("CADRE_WORKERS", cfg.default_workers); !r)
    return r.error();
  if (auto r = num("CADRE_SCHEDULER_THREADS", cfg.scheduler_threads); !r)
    return r.error();
  if (auto r = num("CADRE_SCHEDULER_SPIN_POLLS", cfg.scheduler_spin_polls); !r)
    return r.error();
  if (cfg.scheduler_spin_polls < 1)
    return make_error(errc::invalid_config,
                      "CADRE_SCHEDULER_SPIN_POLLS: expected an integer >= 1, "
                      "got 0");
  if (auto r = apply_llm_environment(cfg.llm); !r)
    return r.error();
  return cfg;
}

} // namespace cadre::config
